"""Figures (matplotlib, headless): returned to the caller, which decides where they go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    average_precision_score,
    precision_recall_curve,
)


def confusion_matrix_figure(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], title: str
) -> plt.Figure:
    """Row-normalised confusion matrix (recall on the diagonal) with counts-free colouring."""
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        list(y_true),
        list(y_pred),
        labels=list(labels),
        normalize="true",
        ax=ax,
        xticks_rotation=90,
        colorbar=False,
        values_format=".2f",
        text_kw={"fontsize": 7},
    )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pr_curve_figure(frame: pd.DataFrame, scores: Mapping[str, str], title: str) -> plt.Figure:
    """Precision against recall for each score column (``label`` is the truth)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = frame["label"].to_numpy()
    for name, col in scores.items():
        p, r, _ = precision_recall_curve(y, frame[col].to_numpy(float))
        ap = average_precision_score(y, frame[col].to_numpy(float))
        ax.plot(r, p, label=f"{name} (PR-AUC {ap:.3f})")
    ax.axhline(y.mean(), color="grey", ls=":", label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    return fig


def lift_figure(frame: pd.DataFrame, scores: Mapping[str, str], k: int, title: str) -> plt.Figure:
    """Cumulative lift over the base rate against the number of flagged groups."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = frame["label"].to_numpy()
    n = np.arange(1, len(y) + 1)
    for name, col in scores.items():
        order = np.argsort(-frame[col].to_numpy(float), kind="stable")
        lift = (np.cumsum(y[order]) / n) / y.mean()
        ax.plot(n, lift, label=name)
    ax.axvline(k, color="grey", ls=":", label=f"QBG volume ({k})")
    ax.axhline(1, color="black", lw=0.5)
    ax.set(xscale="log", xlabel="groups flagged (highest score first)", ylabel="lift", title=title)
    ax.legend()
    fig.tight_layout()
    return fig
