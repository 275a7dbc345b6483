"""Figures (matplotlib, headless): returned to the caller, which decides where they go."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


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
