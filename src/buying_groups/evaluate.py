"""Metrics for persona and role predictions, shared by every model and baseline.

Every predictor (rules, TF-IDF, transformer) is scored by the same function so their numbers
are comparable: ``<split>/<head>_accuracy`` and ``<split>/<head>_macro_f1`` for the heads
``function``, ``seniority`` and ``role`` (all contact x product pairs pooled).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

HEADS = ("function", "seniority", "role")


def head_metrics(
    y_true: Iterable[str], y_pred: Iterable[str], min_labels: int = 0
) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes present in ``y_true``; with ``min_labels``,
    macro-F1 over those with at least that many labels (all present, where none has)."""
    t = np.asarray(list(y_true))
    p = np.asarray(list(y_pred))
    if t.dtype.kind == "O" or p.dtype.kind == "O":
        t, p = t.astype(str), p.astype(str)
    if len(t) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan")}
    classes, counts = np.unique(t, return_counts=True)
    labels = sorted(classes[counts >= min_labels]) or sorted(classes)
    return {
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
    }


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between the reported probability of the predicted
    label and how often it is right, averaged over ``bins`` equal-width probability bins
    weighted by their share of the predictions (0: "0.7" is right 70% of the time)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if len(confidence) == 0:
        return float("nan")
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(confidence))


def stack_roles(frame: pd.DataFrame, products: Iterable[str]) -> pd.Series:
    """All ``role_<product>`` columns as one long Series (contact x product pairs)."""
    return pd.concat([frame[f"role_{p}"] for p in products], ignore_index=True)


def evaluate_predictions(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    products: Iterable[str],
    group_col: str = "split",
    groups: Iterable[str] | None = None,
) -> dict[str, float]:
    """Metrics per group (split, language...) as flat ``<group>/<head>_<metric>`` keys.

    Pairs and personas whose truth is missing (a CRM that filled few roles) are left out.
    """
    products = list(products)
    out: dict[str, float] = {}
    names = list(groups) if groups is not None else sorted(truth[group_col].dropna().unique())
    for g in names:
        mask = (truth[group_col] == g).to_numpy()
        if not mask.any():
            continue
        t, p = truth[mask], pred[mask]
        for head in ("function", "seniority"):
            known = t[head].notna().to_numpy()  # CRM labels: persona unknown for some
            for k, v in head_metrics(t[head][known], p[head][known]).items():
                out[f"{g}/{head}_{k}"] = v
        rt, rp = stack_roles(t, products), stack_roles(p, products)
        known = rt.notna().to_numpy()
        for k, v in head_metrics(rt[known], rp[known]).items():
            out[f"{g}/role_{k}"] = v
    return out


def metrics_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Flat metrics as a table: one row per group, one column per head and metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        group, name = key.split("/", 1)
        rows.setdefault(group, {})[name] = value
    return pd.DataFrame.from_dict(rows, orient="index")
