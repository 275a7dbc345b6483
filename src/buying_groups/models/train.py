"""Fine-tune the role model with the Hugging Face Trainer.

Core functions only: they take data and settings and return models and numbers. Tracking
(MLflow) happens through the Trainer's ``report_to`` and in the entry point.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from buying_groups.data.titles import TITLE_KINDS
from buying_groups.evaluate import head_metrics
from buying_groups.models.glossary import load_glossary
from buying_groups.models.inference import clean_inputs, encode_pairs, predict_proba
from buying_groups.models.role_model import (
    ADVOCACY_LEVELS,
    IGNORE,
    RoleModel,
    default_encoder_path,
)
from buying_groups.models.runtime import bf16_supported
from buying_groups.models.spelling import spelling_vocabulary
from buying_groups.taxonomy import Catalog, role_rules_table

log = logging.getLogger(__name__)
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
MIN_EXPERT_TITLES = 50  # fewer titled training contacts: no title expert


class RoleDataset(torch.utils.data.Dataset):
    """Tokenised contacts with their (possibly missing) labels."""

    def __init__(
        self,
        frame: pd.DataFrame,
        tokenizer: PreTrainedTokenizerBase,
        model: RoleModel,
        soft: Mapping[str, np.ndarray] | None = None,
        frozen: list[np.ndarray] | None = None,
    ) -> None:
        cfg = model.config
        titles, texts = clean_inputs(frame)
        self.enc = encode_pairs(tokenizer, cfg, titles, texts)
        # Teacher forcing feeds a contact's true persona to the role head only where the title
        # could tell it: a contact without one gets the model's own guess at inference.
        self.titled = np.array([bool(t.strip()) for t in titles], dtype=bool)
        self.frozen = frozen  # cached outputs of the frozen layers, one (tokens, hidden) each
        ids = cfg.label2id
        n = len(frame)

        def encode(col: str, mapping: Mapping[str, int]) -> np.ndarray:
            if col not in frame.columns:
                return np.full(n, IGNORE)
            return frame[col].map(mapping).fillna(IGNORE).astype(int).to_numpy()

        self.function = encode("function", ids["function"])
        self.seniority = encode("seniority", ids["seniority"])
        self.role = np.stack([encode(f"role_{p}", ids["role"]) for p in cfg.products], axis=1)
        # distinct advocacy kinds per product, 0 / 1 / 2+ (unknown where a frame lacks them)
        self.advocacy = np.stack(
            [
                frame[f"advocacy_{p}"].clip(upper=ADVOCACY_LEVELS - 1).fillna(IGNORE).to_numpy()
                if f"advocacy_{p}" in frame.columns
                else np.full(n, IGNORE)
                for p in cfg.products
            ],
            axis=1,
        ).astype(int)
        # a teacher's probabilities per head (distillation), row-aligned with ``frame``
        self.soft = {k: np.asarray(v, dtype=np.float32) for k, v in (soft or {}).items()}
        for head, v in self.soft.items():
            if len(v) != n:
                raise ValueError(f"soft targets for {head}: {len(v)} rows, frame has {n}")

    def __len__(self) -> int:
        return len(self.function)

    def __getitem__(self, i: int) -> dict:
        item = {k: self.enc[k][i] for k in TOKEN_KEYS if k in self.enc}
        item["function_labels"] = int(self.function[i])
        item["seniority_labels"] = int(self.seniority[i])
        item["role_labels"] = self.role[i].tolist()
        item["advocacy_labels"] = self.advocacy[i].tolist()
        item["titled"] = bool(self.titled[i])
        for head, v in self.soft.items():
            item[f"{head}_soft"] = v[i]
        if self.frozen is not None:
            item["frozen_states"] = self.frozen[i]
        return item


@dataclass
class Collator:
    """Pads token fields dynamically and stacks the label fields."""

    tokenizer: PreTrainedTokenizerBase

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        tokens = [{k: f[k] for k in TOKEN_KEYS if k in f} for f in features]
        batch = dict(self.tokenizer.pad(tokens, return_tensors="pt"))
        for key in ("function_labels", "seniority_labels", "role_labels", "advocacy_labels"):
            batch[key] = torch.tensor([f[key] for f in features], dtype=torch.long)
        if "titled" in features[0]:
            batch["titled"] = torch.tensor([f["titled"] for f in features], dtype=torch.bool)
        for key in ("function_soft", "seniority_soft", "role_soft"):
            if key in features[0]:
                batch[key] = torch.from_numpy(np.stack([f[key] for f in features]))
        if "frozen_states" in features[0]:  # padded like the tokens (to the longest, right)
            states = [f["frozen_states"] for f in features]
            shape = (len(states), batch["input_ids"].shape[1], states[0].shape[1])
            padded = np.zeros(shape, dtype=np.float32)
            for row, s in enumerate(states):
                padded[row, : len(s)] = s
            batch["frozen_states"] = torch.from_numpy(padded)
        return batch


def frozen_states(
    model: RoleModel,
    tokenizer: PreTrainedTokenizerBase,
    enc: Mapping,
    batch_size: int = 256,
    bf16: bool = False,
) -> list[np.ndarray]:
    """Each example's hidden states after the model's frozen layers, computed once so that
    training runs only the layers above them (``trainer.cache_frozen_layers``): every epoch
    would otherwise recompute the same fixed function of the same tokens. Stored as float16
    (half the memory; the states are layer-normed, well within its range)."""
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    out: list[np.ndarray | None] = [None] * len(lengths)
    was_training = model.training
    model.eval()
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            tokens = {k: [enc[k][r] for r in rows] for k in TOKEN_KEYS if k in enc}
            batch = dict(tokenizer.pad(tokens, return_tensors="pt"))
            hidden = model.frozen_layers(**batch).float().numpy().astype(np.float16)
            for j, r in enumerate(rows):
                out[r] = hidden[j, : lengths[r]]
    model.train(was_training)
    return out


def cache_frozen(
    model: RoleModel,
    tokenizer: PreTrainedTokenizerBase,
    datasets: list[RoleDataset],
    tcfg: Mapping,
    bf16: bool = False,
) -> bool:
    """Attach the frozen layers' outputs to ``datasets`` where the model and the memory
    budget (``trainer.cache_frozen_max_gb``) allow; whether it did."""
    if not tcfg.get("cache_frozen_layers") or not model.can_cache_frozen():
        return False
    tokens = sum(len(ids) for ds in datasets for ids in ds.enc["input_ids"])
    gigabytes = tokens * model.encoder.config.hidden_size * 2 / 1e9
    if gigabytes > float(tcfg.get("cache_frozen_max_gb") or 0):
        log.info("frozen layers not cached: %.1f GB over cache_frozen_max_gb", gigabytes)
        return False
    started = time.perf_counter()
    for ds in datasets:
        ds.frozen = frozen_states(model, tokenizer, ds.enc, bf16=bf16)
    log.info(
        "frozen layers cached for %d examples (%.2f GB) in %.0f s",
        sum(len(ds) for ds in datasets),
        gigabytes,
        time.perf_counter() - started,
    )
    return True


def compute_metrics(eval_pred) -> dict[str, float]:  # noqa: ANN001 (Trainer's EvalPrediction)
    """Accuracy and macro-F1 per head, the same definitions as ``evaluate``."""
    f_logits, s_logits, r_logits = eval_pred.predictions[:3]  # the auxiliary head is not scored
    f_true, s_true, r_true = eval_pred.label_ids
    out = {}
    for head, logits, true in (("function", f_logits, f_true), ("seniority", s_logits, s_true)):
        known = true != IGNORE
        for k, v in head_metrics(true[known], logits.argmax(-1)[known]).items():
            out[f"{head}_{k}"] = v
    r_pred = r_logits.argmax(-1).reshape(-1)
    r_true = r_true.reshape(-1)
    known = r_true != IGNORE
    for k, v in head_metrics(r_true[known], r_pred[known]).items():
        out[f"role_{k}"] = v
    return out


def early_stopping(trainer_cfg: Mapping) -> list[EarlyStoppingCallback]:
    """Stop after ``early_stopping_patience`` epochs without a better validation score; none
    when it is null (train every epoch; the best epoch's checkpoint is still the one kept)."""
    patience = trainer_cfg.get("early_stopping_patience")
    return [] if patience is None else [EarlyStoppingCallback(int(patience))]


def training_arguments(
    tcfg: Mapping, output_dir: Path, seed: int, report_to: list[str], run_name: str | None = None
) -> TrainingArguments:
    """TrainingArguments from the ``trainer`` config group."""
    bf16 = tcfg["bf16"]
    if bf16 == "auto":
        bf16 = bf16_supported()
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=float(tcfg["learning_rate"]),
        num_train_epochs=float(tcfg["epochs"]),
        max_steps=int(tcfg.get("max_steps") or -1),
        per_device_train_batch_size=int(tcfg["batch_size"]),
        per_device_eval_batch_size=int(tcfg["eval_batch_size"]),
        weight_decay=float(tcfg["weight_decay"]),
        warmup_steps=float(tcfg["warmup_ratio"]),
        lr_scheduler_type=str(tcfg["lr_scheduler"]),
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=int(tcfg["logging_steps"]),
        save_total_limit=int(tcfg["save_total_limit"]),
        load_best_model_at_end=True,
        metric_for_best_model=str(tcfg["metric_for_best_model"]),
        greater_is_better=True,
        label_names=["function_labels", "seniority_labels", "role_labels"],
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        bf16=bool(bf16),
        # bf16 without CUDA is CPU autocast, which TrainingArguments only accepts when told.
        use_cpu=bool(bf16) and not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        report_to=report_to,
        run_name=run_name,
        dataloader_num_workers=int(tcfg["dataloader_num_workers"]),
        disable_tqdm=bool(tcfg["disable_tqdm"]),
    )


def role_class_weights(role_ids: np.ndarray, n_roles: int, power: float) -> torch.Tensor:
    """``(count / max count) ** -power`` per role over known labels (power 0: all ones)."""
    known = role_ids[role_ids != IGNORE]
    counts = np.bincount(known, minlength=n_roles).astype(float)
    counts = np.maximum(counts, 1.0)
    return torch.tensor((counts / counts.max()) ** -power, dtype=torch.float32)


def optimizer(model: RoleModel, tcfg: Mapping) -> torch.optim.Optimizer:
    """AdamW with a higher learning rate for the new heads than for the pretrained encoder:
    the heads start from scratch and must catch up within a short CPU budget."""
    lr = float(tcfg["learning_rate"])
    head_lr = lr * float(tcfg["head_lr_multiplier"])
    decay, no_decay = [], []
    heads, no_decay_heads = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name == "rule_scale":  # how far to trust the spec's rules: no pull towards 0
            no_decay_heads.append(p)
        elif not name.startswith("encoder."):
            heads.append(p)
        elif p.ndim < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    wd = float(tcfg["weight_decay"])
    return torch.optim.AdamW(
        [
            {"params": decay, "lr": lr, "weight_decay": wd},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0},
            {"params": heads, "lr": head_lr, "weight_decay": wd},
            {"params": no_decay_heads, "lr": head_lr, "weight_decay": 0.0},
        ],
        lr=lr,
    )


def vocabulary_titles(train: pd.DataFrame) -> pd.Series:
    """The titles a model's spelling vocabulary is read from: real ones, spelt as written.
    Not the generator's (``title_kind`` normal, dual, vague or empty: it misspells 4% of them
    on purpose), and not the title lists' extra training copies (``contact_id`` ending in
    ``-<k>``: with an employer or a tag, a copy would count as another title). Every title
    where there is no ``title_kind`` (an own export read as is)."""
    titles = train["job_title"]
    if "title_kind" in train.columns:
        kind = train["title_kind"]
        ids = train["contact_id"].astype(str)  # a CRM's own ids may end in "-42": only a
        copy = (kind == "knowledge") & ids.str.contains(r"-\d+$", regex=True)  # list's copies
        titles = titles[~kind.isin(TITLE_KINDS) & ~copy]
    return titles.dropna()


def train_role_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    catalog: Catalog,
    model_cfg: Mapping,
    trainer_cfg: Mapping,
    output_dir: Path,
    seed: int,
    report_to: list[str] | None = None,
    run_name: str | None = None,
    start: tuple[RoleModel, PreTrainedTokenizerBase] | None = None,
    soft: Mapping[str, np.ndarray] | None = None,
) -> tuple[RoleModel, PreTrainedTokenizerBase, dict]:
    """Fine-tune on ``train`` with early stopping on ``validation``; returns the best model,
    its tokenizer and the Trainer's training metrics.

    By default a fresh model on the configured encoder; ``start`` trains a given model
    instead (a student cut from a teacher), and ``soft`` adds the teacher's probabilities
    on ``train`` as targets (weighted by the model's ``distill_alpha``)."""
    set_seed(seed)
    if start is not None:
        model, tokenizer = start
    else:
        name = model_cfg.get("name_or_path") or default_encoder_path()
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = RoleModel.from_encoder(
            model_cfg.get("name_or_path"),
            list(catalog.names),
            layers=model_cfg.get("layers"),
            max_length=int(model_cfg["max_length"]),
            product_embedding_dim=int(model_cfg["product_embedding_dim"]),
            dropout=float(model_cfg["dropout"]),
            freeze_layers=int(model_cfg.get("freeze_layers") or 0),
            teacher_forcing=float(model_cfg.get("teacher_forcing") or 0.0),
            advocacy_head=bool(model_cfg.get("advocacy_head", False)),
            role_rules=[role_rules_table(p) for p in catalog.products]
            if model_cfg.get("role_rules", False)
            else [],
            transliterate=bool(model_cfg.get("transliterate", False)),
            glossary=load_glossary() if model_cfg.get("glossary", False) else {},
            spelling=spelling_vocabulary(vocabulary_titles(train))
            if model_cfg.get("spelling", False)
            else {},
        )
    train_ds = RoleDataset(train, tokenizer, model, soft)
    eval_ds = RoleDataset(validation, tokenizer, model)
    model.role_class_weights.copy_(
        role_class_weights(
            train_ds.role, len(model.config.roles), float(trainer_cfg["role_weight_power"])
        )
    )
    args = training_arguments(trainer_cfg, output_dir, seed, report_to or [], run_name)
    cache_frozen(model, tokenizer, [train_ds, eval_ds], trainer_cfg, bf16=args.bf16)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=Collator(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=early_stopping(trainer_cfg),
        optimizers=(optimizer(model, trainer_cfg), None),
    )
    resume = trainer_cfg.get("resume_from_checkpoint")
    result = trainer.train(resume_from_checkpoint=resume if resume else None)
    # The best checkpoint's validation metrics were logged at its epoch; the caller
    # evaluates the final model on every split, so no extra evaluation pass here.
    metrics = dict(result.metrics)
    # Mixed precision wraps forward in an autocast; what the caller gets (to evaluate, time
    # as fp32, export to ONNX, save) must be the plain model.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    if model_cfg.get("title_expert"):
        weights = attach_title_expert(model, tokenizer, train, validation)
        if len(weights):
            metrics["title_expert_weights"] = dict(model.config.title_expert_weights)
            metrics["title_expert_language_weights"] = model.config.title_expert_language_weights
            metrics["title_expert_choice"] = weights.round(4).to_dict(orient="index")
    return model, tokenizer, metrics


def attach_title_expert(
    model: RoleModel,
    tokenizer: PreTrainedTokenizerBase,
    train: pd.DataFrame,
    validation: pd.DataFrame,
) -> pd.DataFrame:
    """Fit the character n-gram title expert on the training titles and set its pooling
    weight per persona head to the one with the lowest log-loss on validation titles: the
    hand-labelled list's held-out share where it has 100 or more (the closest to real CRM
    titles; the BLS titles' labels are distant), else every title list's, else every titled
    validation contact. Where training titles carry a ``language``, each language gets its
    own weight too (``title_expert.choose_language_weights``). Returns the score of every
    weight tried (empty, and no expert, with fewer than ``MIN_EXPERT_TITLES`` titled
    training contacts or one class in a head)."""
    from buying_groups.models.title_expert import (
        TitleExpert,
        choose_language_weights,
        choose_weight,
    )

    cfg = model.config
    labels = {"function": cfg.functions, "seniority": cfg.seniorities}
    cfg.title_expert_weights = {}  # the transformer's own persona, to pool against
    cfg.title_expert_language_weights = {}
    model.title_expert = None
    titled = train[train["job_title"].fillna("").astype(str).str.strip() != ""]
    if len(titled) < MIN_EXPERT_TITLES or any(titled[h].nunique() < 2 for h in labels):
        return pd.DataFrame()  # too few titles to learn from: the transformer alone
    titles = validation["job_title"].fillna("").astype(str)
    choose_on = validation[titles.str.strip() != ""]
    if "vocab" in choose_on.columns:
        for vocab in (["curated"], ["curated", "bls"]):
            if choose_on["vocab"].isin(vocab).sum() >= 100:
                choose_on = choose_on[choose_on["vocab"].isin(vocab)]
                break
    net = predict_proba(model, tokenizer, choose_on)
    languages = train["language"] if "language" in train.columns else None
    expert = TitleExpert(labels).fit(
        train["job_title"], train[["function", "seniority"]], languages=languages
    )
    choose_titles = choose_on["job_title"].astype(str).tolist()
    guess = expert.predict_proba(choose_titles)
    has_title = np.ones(len(choose_on), dtype=bool)
    weights, table = choose_weight(net, guess, choose_on, labels, has_title)
    model.title_expert, cfg.title_expert_weights = expert, weights
    found = expert.language_proba(choose_titles)
    if found is not None:  # a weight per language, as the expert tells a title's language
        language = np.asarray(found[1], dtype=object)[found[0].argmax(1)]
        cfg.title_expert_language_weights = choose_language_weights(
            net, guess, choose_on, labels, language, table
        )
    return table
