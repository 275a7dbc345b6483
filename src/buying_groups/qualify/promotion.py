"""Promotion: how a deployable model (role model + qualifier) is measured on held-out data
and whether a candidate replaces the champion. ``bg-promote`` wires it to the registry."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig
from sklearn.metrics import average_precision_score

from buying_groups.data.examples import examples_from, label_source
from buying_groups.evaluate import HEADS, evaluate_predictions
from buying_groups.models.evaluation import real_title_metrics
from buying_groups.qualify.compare import top_k
from buying_groups.qualify.training import build_groups
from buying_groups.taxonomy import Catalog

REAL_HEADS = ("function", "seniority")

EXAMPLE = pd.DataFrame(
    {
        "account_id": ["A1", "A1"],
        "contact_id": ["C1", "C2"],
        "job_title": ["VP Information Security", "Procurement Manager"],
        "activities": [
            [
                {
                    "timestamp": "2026-05-01T10:00:00",
                    "channel": "sales",
                    "action": "requested_demo",
                    "asset": "Demo request",
                    "topic": "security_platform",
                }
            ],
            [
                {
                    "timestamp": "2026-05-03T09:30:00",
                    "channel": "web",
                    "action": "visited",
                    "asset": "/pricing",
                    "topic": "general",
                }
            ],
        ],
    }
)


def held_out_metrics(
    cfg: DictConfig,
    tables: dict,
    catalog: Catalog,
    model,  # noqa: ANN001 (a loaded buying-groups pyfunc)
) -> dict[str, float]:
    """A deployable model's PR-AUC and precision at the capacity volume on the test period
    of ``cfg.data_dir``, its own role model building the groups."""
    wrapped = model.unwrap_python_model()
    _, groups = build_groups(cfg, tables, catalog, wrapped.predict_roles, test_only=True)
    test = groups[(groups["split"] == "test") & ~groups["open_opportunity"]]
    scores = wrapped.qualifier.score(test)
    labels = test["label"].to_numpy()
    k = int(cfg.qualifier.threshold.capacity_per_snapshot * test["snapshot"].nunique())
    return {
        "pr_auc": float(average_precision_score(labels, scores)),
        "precision_at_capacity": float(labels[top_k(scores, k)].mean()),
        "flagged": float(k),
        "groups": float(len(test)),
        "positives": float(labels.sum()),
    }


def ood_test(
    cfg: DictConfig,
    tables: dict,
    labels: dict | None,
    catalog: Catalog,
) -> pd.DataFrame | None:
    """The labelled contacts of the OOD-vocabulary test split (the role models' own test, as
    ``bg-train-roles`` splits it), or None for data without ground truth."""
    if labels is None or label_source(cfg) == "crm":  # crm: measures only, never decides
        return None
    examples = examples_from(cfg, tables, labels, catalog)
    ood = examples[examples["split"] == "test_ood"].reset_index(drop=True)
    return ood if len(ood) else None


def role_ood_metrics(
    ood: pd.DataFrame,
    catalog: Catalog,
    model,  # noqa: ANN001 (a loaded buying-groups pyfunc)
) -> dict[str, float]:
    """Macro-F1 of each head of a deployable model's role model (as it runs: its recorded
    inference variant) on the OOD-vocabulary test contacts ``ood``."""
    pred = model.unwrap_python_model().roles.predict(ood[["job_title", "activity_text"]])
    metrics = evaluate_predictions(ood, pred, catalog.names, groups=["test_ood"])
    return {f"ood_{h}_macro_f1": metrics[f"test_ood/{h}_macro_f1"] for h in HEADS}


def real_title_scores(
    real: pd.DataFrame,
    model,  # noqa: ANN001
    catalog: Catalog | None = None,
) -> dict[str, float]:
    """Function and seniority macro-F1 of a deployable model's role model on the bundled
    real-title set (``data.real_titles``): the gate no candidate may fall below. With
    ``catalog``, also the role macro-F1 there (``real_title_metrics``), shown beside them."""
    pred = model.unwrap_python_model().roles.predict(real[["job_title", "activity_text"]])
    metrics = real_title_metrics(real, pred, catalog)
    heads = [h for h in (*REAL_HEADS, "role") if f"real/{h}_macro_f1" in metrics]
    return {f"real_{h}_macro_f1": metrics[f"real/{h}_macro_f1"] for h in heads}


def role_model_cost(model) -> int:  # noqa: ANN001
    """Encoder layers x input tokens of a deployable model's role model: what encoding one
    contact costs, up to a constant (the tie-breaker between equally good models)."""
    config = model.unwrap_python_model().roles.unwrap_python_model().model.config
    return int(config.encoder["num_hidden_layers"]) * int(config.max_length)


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    cost: dict[str, int | None],
    tie_tolerance: float,
    force: bool = False,
    broken: bool = False,
    role_tolerance: float | None = None,
    real_tolerance: float | None = None,
) -> tuple[bool, str]:
    """Whether the candidate replaces the champion, and why. It does when the champion is
    missing or cannot score, when its held-out PR-AUC is higher, or when its role model is
    cheaper and either its PR-AUC is within ``tie_tolerance`` of the champion's (a held-out
    test period cannot tell such models apart) or, with ``role_tolerance``, every role head's
    OOD macro-F1 is within it of the champion's and its precision at the capacity volume
    (the groups sales is sent) within ``tie_tolerance``: the inference rule, which trades no
    role accuracy and no flagged-group precision for speed. Before all of that, with
    ``real_tolerance``, a candidate whose real-title macro-F1 of function or seniority is
    more than that below the champion's is refused (unless ``force``): synthetic gains do not
    buy worse personas on real titles."""
    if broken:
        return True, "promoted (the champion cannot score a request)"
    if champion is None:
        return True, "promoted (no champion yet)"
    if real_tolerance is not None and not force:
        keys = [f"real_{h}_macro_f1" for h in REAL_HEADS]
        worse = [k for k in keys if k in champion and candidate[k] < champion[k] - real_tolerance]
        if worse:
            gaps = ", ".join(f"{k} {candidate[k]:.4f} vs {champion[k]:.4f}" for k in worse)
            return False, f"not promoted (worse on real job titles: {gaps})"
    gain = candidate["pr_auc"] - champion["pr_auc"]
    if gain > 0:
        return True, "promoted (better PR-AUC)"
    cheaper = cost["champion"] is not None and cost["candidate"] < cost["champion"]
    costs = f"{cost['candidate']} vs {cost['champion']} layers x tokens"
    if cheaper and gain >= -tie_tolerance:
        return True, (
            f"promoted (PR-AUC within {tie_tolerance} of the champion's, cheaper role model: "
            f"{costs})"
        )
    if cheaper and role_tolerance is not None:
        heads = [f"ood_{h}_macro_f1" for h in HEADS]
        as_accurate = all(candidate[h] >= champion[h] - role_tolerance for h in heads)
        as_precise = (
            candidate["precision_at_capacity"] >= champion["precision_at_capacity"] - tie_tolerance
        )
        if as_accurate and as_precise:
            return True, (
                f"promoted (cheaper role model: {costs}; every role head's OOD macro-F1 within "
                f"{role_tolerance} of the champion's and precision at the capacity volume within "
                f"{tie_tolerance}; PR-AUC {candidate['pr_auc']:.4f} vs {champion['pr_auc']:.4f})"
            )
    if force:
        return True, "promoted (forced)"
    return False, "not promoted (champion is as good or better)"


def deployable_metrics(
    cfg: DictConfig,
    tables: dict,
    catalog: Catalog,
    model,  # noqa: ANN001
    ood: pd.DataFrame | None,
    real: pd.DataFrame | None,
) -> dict[str, float]:
    """Everything a candidate and the champion are compared on: held-out qualification
    metrics, the role heads' OOD macro-F1 where labelled and the persona heads' macro-F1 on
    real titles. A model that cannot score the example request raises."""
    model.predict(EXAMPLE)
    metrics = held_out_metrics(cfg, tables, catalog, model)
    if ood is not None:
        metrics |= role_ood_metrics(ood, catalog, model)
    return metrics if real is None else metrics | real_title_scores(real, model, catalog)
