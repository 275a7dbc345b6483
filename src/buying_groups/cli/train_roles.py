"""bg-train-roles: fine-tune the role model, evaluate it and the baselines, log to MLflow.

config -> data -> model -> train -> evaluate -> log. Three runs land in one MLflow
experiment with the same metric names, so the UI compares them side by side: the
transformer, the rules baseline and TF-IDF + logistic regression.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from buying_groups import tracking
from buying_groups.baselines.rules import RulesBaseline
from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.baseline import ensure_dataset
from buying_groups.cli.common import (
    console,
    exit_on_data_error,
    load_labelled_examples,
    print_frame,
)
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest, load_dataset
from buying_groups.data.examples import contact_inputs
from buying_groups.data.real_titles import knowledge_examples, real_title_eval
from buying_groups.data.validate import DataValidationError
from buying_groups.evaluate import evaluate_predictions
from buying_groups.models.evaluation import evaluate_predictor, real_title_table
from buying_groups.models.role_model import RoleModel, decode, predict_proba
from buying_groups.models.runtime import (
    VariantUnavailable,
    check_variant,
    choose_variant,
    use_variant,
)
from buying_groups.models.train import train_role_model
from buying_groups.serving.role_pyfunc import role_outputs
from buying_groups.taxonomy import Catalog

log = logging.getLogger(__name__)
INPUT_COLUMNS = ["job_title", "activity_text"]


def load_examples(cfg: DictConfig, catalog: Catalog) -> tuple[pd.DataFrame, dict]:
    """Labelled contacts with their split; role labels thinned to ``role_label_fraction``."""
    examples = load_labelled_examples(cfg, catalog, "training")
    knowledge = knowledge_examples(cfg.title_lists, catalog, cfg.seed)
    examples = pd.concat([examples, knowledge], ignore_index=True)
    if cfg.role_label_fraction < 1.0:
        rng = np.random.default_rng(cfg.seed)
        train = (examples["split"] == "train").to_numpy()
        for p in catalog.names:
            drop = train & (rng.random(len(examples)) >= cfg.role_label_fraction)
            examples.loc[drop, f"role_{p}"] = None
    return examples, dataset_manifest(Path(cfg.data_dir))


def cap(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (a fixed random sample): the ``max_*_samples`` debug knobs."""
    return frame if not n or len(frame) <= n else frame.sample(n, random_state=seed)


def pick_variant(
    icfg: DictConfig,
    model,
    tokenizer,
    validation: pd.DataFrame,
    catalog: Catalog,  # noqa: ANN001
) -> tuple[str, pd.DataFrame]:
    """The configured inference variant, or with ``auto`` the fastest one whose validation
    macro-F1 stays within ``tolerance`` of fp32 on every head (and the measurements)."""
    if icfg.variant != "auto":
        return check_variant(icfg.variant), pd.DataFrame()
    sample = cap(validation, icfg.select_samples, 0).reset_index(drop=True)

    def head_f1(pred: pd.DataFrame) -> dict[str, float]:
        m = evaluate_predictions(sample, pred, catalog.names, groups=["validation"])
        return {h: m[f"validation/{h}_macro_f1"] for h in ("function", "seniority", "role")}

    with console.status("measuring inference variants"):
        return choose_variant(model, tokenizer, sample, head_f1, icfg.tolerance)


def load_role_model(ref: str) -> tuple[RoleModel, object]:
    """A role model from a saved directory or an MLflow model URI of a logged one."""
    if Path(ref).is_dir():
        return RoleModel.load(ref)
    import mlflow

    try:
        loaded = mlflow.pyfunc.load_model(ref, model_config={"variant": "fp32"})
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise SystemExit(f"cannot load the role model {ref}: {exc}") from exc
    wrapped = loaded.unwrap_python_model()
    return wrapped.model, wrapped.tokenizer


def load_teacher(ref: str) -> tuple[RoleModel, object, str]:
    """The model to distil from, its tokenizer and where it came from. A distilled student
    is not a teacher (a student of a student copies the copy): its own teacher is used, as
    when the champion that ``bg-pipeline train_roles=false`` distils from is a student."""
    seen = [ref]
    model, tokenizer = load_role_model(ref)
    while origin := model.config.distilled_from:
        if origin in seen:
            raise SystemExit(f"the role models {' -> '.join(seen)} distil from each other")
        console.print(f"{seen[-1]} is a distilled student: distilling from its teacher {origin}")
        if not (Path(origin).is_dir() or origin.startswith(("models:/", "runs:/"))):
            raise SystemExit(
                f"{seen[-1]} was distilled from {origin}, which no longer exists: pass "
                "distill.teacher=<a role model that is not a student>"
            )
        seen.append(origin)
        model, tokenizer = load_role_model(origin)
    return model, tokenizer, seen[-1]


def transfer_inputs(cfg: DictConfig, catalog: Catalog) -> pd.DataFrame | None:
    """The unlabelled contacts of ``cfg.distill.transfer_data`` as model inputs (their
    activity as of that export's last event), at most ``distill.transfer_max`` of them."""
    directory = cfg.distill.get("transfer_data")
    if not directory:
        return None
    try:
        tables, _ = load_dataset(Path(directory), catalog)  # labels, if any, are not read
    except DataValidationError as exc:
        exit_on_data_error(exc)
    activities = tables["activities"]
    inputs = contact_inputs(
        tables["contacts"], activities, activities["timestamp"].max(), cfg.data.max_events
    )
    return cap(inputs, cfg.distill.get("transfer_max"), cfg.seed)


def distillation(
    dcfg: DictConfig, train: pd.DataFrame, transfer: pd.DataFrame | None = None
) -> tuple[tuple, dict[str, np.ndarray], pd.DataFrame]:
    """The student cut from ``dcfg.teacher``, the rows it trains on (``train``, then the
    unlabelled ``transfer`` contacts) and the teacher's probabilities on those rows."""
    teacher, tokenizer, teacher_ref = load_teacher(str(dcfg.teacher))
    if transfer is not None:
        # Contacts without labels: the student learns them from the teacher's probabilities
        # alone (their label columns are missing, so the hard loss masks them out).
        train = pd.concat([train, transfer[INPUT_COLUMNS]], ignore_index=True)
    with contextlib.suppress(VariantUnavailable):  # the same outputs as fp32, ~2x faster
        use_variant(teacher, tokenizer, "onnx")
    with console.status(f"teacher {teacher_ref}: scoring {len(train):,} training contacts"):
        soft = predict_proba(teacher, tokenizer, train)
    student = teacher.student(
        int(dcfg.layers),
        dcfg.max_length and int(dcfg.max_length),
        freeze_embeddings=bool(dcfg.freeze_embeddings),
    )
    student.config.distilled_from = teacher_ref
    student.config.distill_alpha = float(dcfg.alpha)
    n_layers = student.encoder.config.num_hidden_layers
    console.print(
        f"distilling {teacher_ref} ({teacher.encoder.config.num_hidden_layers} layers, "
        f"{teacher.config.max_length} tokens) into {n_layers} layers, "
        f"{student.config.max_length} tokens, on {len(train):,} contacts"
        + (f" ({len(transfer):,} of them unlabelled transfer data)" if transfer is not None else "")
    )
    return (student, tokenizer), soft, train


def sweep_context(experiment_id: str) -> tuple[str | None, int | None]:
    """(parent run id, trial number) under ``-m`` (multirun); (None, None) otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    parent = tracking.sweep_parent(hc.sweep.dir, experiment_id, f"sweep {hc.job.name}")
    return parent, int(hc.job.num)


def run(cfg: DictConfig) -> float:
    """The Hydra entry point: the optimised metric (for sweeps)."""
    return train_and_log(cfg)["objective"]


def train_and_log(cfg: DictConfig) -> dict:
    """Train, evaluate and log; every model's metrics by name, and the ``objective``."""
    # -- config and data ------------------------------------------------------------------------
    catalog = catalog_from(cfg)
    if cfg.generate_if_missing:
        ensure_dataset(cfg)
    examples, manifest = load_examples(cfg, catalog)
    t = cfg.trainer
    train = cap(examples[examples["split"] == "train"], t.max_train_samples, cfg.seed)
    validation = cap(examples[examples["split"] == "validation"], t.max_eval_samples, cfg.seed)
    held_out = examples["split"].isin(["test", "test_ood", "crm_test"])
    evaluation = pd.concat([validation, examples[held_out]])
    evaluation = pd.concat(
        [cap(g, t.max_eval_samples, cfg.seed) for _, g in evaluation.groupby("split")]
    )
    real = real_title_eval() if cfg.real_titles else None
    console.print(
        f"data: {manifest['name']}  train {len(train):,} (title lists "
        f"{int((train['title_kind'] == 'knowledge').sum()):,})  validation {len(validation):,}  "
        f"test+ood {len(evaluation) - len(validation):,}"
        + (f"  real titles {len(real):,}" if real is not None else "")
    )
    experiment_id = tracking.setup(cfg.tracking)
    parent, trial = sweep_context(experiment_id)
    context = {"cfg": cfg, "dataset_name": manifest["name"], "dataset_digest": manifest["digest"]}
    results: dict[str, dict[str, float]] = {}

    # -- the transformer -------------------------------------------------------------------------
    with tracking.run(
        "transformer", {"bg.kind": "role_model", "bg.model": "transformer"}, parent_run_id=parent
    ) as active:
        tracking.log_context(**context, dataset_frame=train[INPUT_COLUMNS])
        output_dir = Path(cfg.output_dir)
        start, soft, fit_rows = (
            distillation(cfg.distill, train, transfer_inputs(cfg, catalog))
            if cfg.distill.teacher
            else (None, None, train)
        )
        if start is not None:
            tracking.set_tags({"bg.distilled_from": start[0].config.distilled_from})
        started = time.perf_counter()
        model, tokenizer, fit_metrics = train_role_model(
            fit_rows,
            validation,
            list(catalog.names),
            cfg.model,
            t,
            output_dir / "checkpoints",
            cfg.seed,
            report_to=["mlflow"],
            start=start,
            soft=soft,
        )
        train_seconds = time.perf_counter() - started
        if "title_expert_choice" in fit_metrics:
            choice = pd.DataFrame.from_dict(fit_metrics["title_expert_choice"], orient="index")
            w = model.config.title_expert_weights
            print_frame(choice, f"title expert: validation macro-F1 by pooling weight (chosen {w})")
            tracking.log_table(choice, "reports/title_expert.json")

        def predict(frame: pd.DataFrame) -> pd.DataFrame:
            return decode(model.config, predict_proba(model, tokenizer, frame))

        started = time.perf_counter()
        metrics, reports, figures = evaluate_predictor(predict, evaluation, catalog, real=real)
        eval_seconds = time.perf_counter() - started
        metrics.update(
            {
                "train_seconds": train_seconds,
                "train_examples_per_second": len(fit_rows) * float(t.epochs) / train_seconds,
                "eval_contacts_per_second": len(evaluation) / eval_seconds,
            }
        )
        tracking.log_metrics(metrics)
        tracking.log_json(reports, "reports/classification_reports.json")
        tracking.log_figures(figures)

        # -- how loaders will run it: the fastest variant that keeps accuracy ----------------
        variant, variants = pick_variant(cfg.inference, model, tokenizer, validation, catalog)
        model.config.inference_variant = variant
        if len(variants):
            title = f"inference variants on {len(validation.head(cfg.inference.select_samples))}"
            print_frame(variants, f"{title} validation contacts (chosen: {variant})")
            tracking.log_table(variants, "reports/inference_variants.json")
            tracking.log_metrics(
                {
                    f"variant/{name}/{k}": float(v)
                    for name, row in variants.drop(columns="chosen").iterrows()
                    for k, v in row.items()
                }
            )
        tracking.set_tags({"bg.inference_variant": variant})
        model_dir = output_dir / "role_model"
        model.save(model_dir, tokenizer)
        if cfg.tracking.log_model:
            example = evaluation[INPUT_COLUMNS].head(5).reset_index(drop=True)
            info = tracking.log_role_pyfunc(
                model_dir,
                example,
                role_outputs(model, tokenizer, example),
                metadata={
                    "products": list(catalog.names),
                    "dataset": manifest["name"],
                    "dataset_digest": manifest["digest"],
                    "variant": variant,
                },
            )
            console.print(f"model: {info.model_uri}")
        results["transformer"] = metrics
        run_id = active.info.run_id

    # -- baselines, same data, same metrics, own runs ------------------------------------------
    for name in cfg.baselines:
        with tracking.run(name, {"bg.kind": "role_model", "bg.model": name}, parent_run_id=parent):
            tracking.log_context(**context)
            baseline = RulesBaseline(catalog) if name == "rules" else TfidfBaseline(catalog)
            if name == "tfidf_logreg":
                baseline.fit(train)
            metrics, reports, figures = evaluate_predictor(
                baseline.predict, evaluation, catalog, real=real
            )
            tracking.log_metrics(metrics)
            tracking.log_json(reports, "reports/classification_reports.json")
            tracking.log_figures(figures)
            results[name] = metrics

    # -- report --------------------------------------------------------------------------------
    rows = {}
    for name, m in results.items():
        for split in ("validation", "test", "test_ood", "crm_test"):
            row = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith(f"{split}/")}
            if row:
                rows[f"{name} / {split}"] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model / split"
    print_frame(table, "role model vs baselines")
    if real is not None:
        print_frame(
            pd.concat({name: real_title_table(m) for name, m in results.items()}),
            f"real job titles ({len(real):,}, never trained on; docs/data.md)",
        )
    console.print(
        f"trained in {train_seconds:.0f}s; MLflow run {run_id} in "
        f"{tracking.default_tracking_hint()}"
    )
    objective = results["transformer"][cfg.optimized_metric]
    if parent is not None:
        tracking.update_sweep_parent(
            parent, cfg.optimized_metric.replace("/", "_"), objective, trial
        )
    OmegaConf.save(cfg, Path(cfg.output_dir) / "train_roles_config.yaml", resolve=True)
    return {**results, "objective": float(objective)}


main = hydra_entry("train_roles", run)
