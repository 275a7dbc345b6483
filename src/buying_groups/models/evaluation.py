"""Evaluate any role predictor the same way: metrics per split and language, per-class
reports and confusion matrices."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from sklearn.metrics import classification_report

from buying_groups.data.splits import ROLE_SPLITS
from buying_groups.evaluate import evaluate_predictions, stack_roles
from buying_groups.plots import confusion_matrix_figure
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES, Catalog

Predictor = Callable[[pd.DataFrame], pd.DataFrame]
EVAL_SPLITS = tuple(s for s in ROLE_SPLITS if s != "train")


def evaluate_predictor(
    predict: Predictor,
    examples: pd.DataFrame,
    catalog: Catalog,
    splits: tuple[str, ...] = EVAL_SPLITS,
    figures: bool = True,
) -> tuple[dict[str, float], dict[str, dict], dict[str, object]]:
    """(flat metrics, per-class reports, confusion-matrix figures) on every split.

    Metrics: ``<split>/<head>_accuracy|macro_f1`` for each split and
    ``lang_<language>/...`` per language over the evaluation splits.
    """
    frame = examples[examples["split"].isin(splits)]
    pred = predict(frame)
    pred.index = frame.index
    metrics = evaluate_predictions(frame, pred, catalog.names, groups=splits)
    by_lang = evaluate_predictions(frame, pred, catalog.names, group_col="language")
    metrics.update({f"lang_{k}": v for k, v in by_lang.items()})
    reports: dict[str, dict] = {}
    figs: dict[str, object] = {}
    heads = {"function": FUNCTIONS, "seniority": SENIORITIES, "role": ROLES}
    for split in splits:
        mask = (frame["split"] == split).to_numpy()
        if not mask.any():
            continue
        t, p = frame[mask], pred[mask]
        for head, labels in heads.items():
            if head == "role":
                yt, yp = stack_roles(t, catalog.names), stack_roles(p, catalog.names)
                known = yt.notna().to_numpy()
                yt, yp = yt[known], yp[known]
            else:
                yt, yp = t[head], p[head]
            reports[f"{split}/{head}"] = classification_report(
                yt,
                yp,
                labels=[x for x in labels if x in set(yt) | set(yp)],
                output_dict=True,
                zero_division=0,
            )
            if figures and split in ("test", "test_ood"):
                figs[f"plots/confusion_{split}_{head}.png"] = confusion_matrix_figure(
                    yt, yp, labels, f"{head} - {split}"
                )
    return metrics, reports, figs
