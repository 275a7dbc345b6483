"""Distillation: a student cut from a teacher role model, the rows it trains on and the
teacher's probabilities on them (``bg-train-roles experiment=distill``)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from buying_groups.data.dataset import load_dataset
from buying_groups.data.examples import cap, contact_inputs
from buying_groups.models.inference import predict_proba
from buying_groups.models.role_model import RoleModel
from buying_groups.models.runtime import VariantUnavailable, use_variant
from buying_groups.taxonomy import Catalog

log = logging.getLogger(__name__)
INPUT_COLUMNS = ["job_title", "activity_text"]


def load_role_model(ref: str) -> tuple[RoleModel, object]:
    """A role model from a saved directory or an MLflow model URI of a logged one."""
    if Path(ref).is_dir():
        return RoleModel.load(ref)
    from buying_groups import registry

    return registry.load_role_model_pyfunc(ref)


def load_teacher(ref: str) -> tuple[RoleModel, object, str]:
    """The model to distil from, its tokenizer and where it came from. A distilled student
    is not a teacher (a student of a student copies the copy): its own teacher is used, as
    when the champion that ``bg-pipeline train_roles=false`` distils from is a student."""
    seen = [ref]
    model, tokenizer = load_role_model(ref)
    while origin := model.config.distilled_from:
        if origin in seen:
            raise SystemExit(f"the role models {' -> '.join(seen)} distil from each other")
        log.info("%s is a distilled student: distilling from its teacher %s", seen[-1], origin)
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
    tables, _ = load_dataset(Path(directory), catalog)  # labels, if any, are not read
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
    log.info("teacher %s: scoring %d training contacts", teacher_ref, len(train))
    soft = predict_proba(teacher, tokenizer, train)
    student = teacher.student(
        int(dcfg.layers),
        dcfg.max_length and int(dcfg.max_length),
        freeze_embeddings=bool(dcfg.freeze_embeddings),
    )
    student.config.distilled_from = teacher_ref
    student.config.distill_alpha = float(dcfg.alpha)
    n_layers = student.encoder.config.num_hidden_layers
    log.info(
        f"distilling {teacher_ref} ({teacher.encoder.config.num_hidden_layers} layers, "
        f"{teacher.config.max_length} tokens) into {n_layers} layers, "
        f"{student.config.max_length} tokens, on {len(train):,} contacts"
        + (f" ({len(transfer):,} of them unlabelled transfer data)" if transfer is not None else "")
    )
    return (student, tokenizer), soft, train
