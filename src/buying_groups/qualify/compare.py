"""QBG against MQL and MQA on the same snapshots: tables at equal flagged volume, journey
stages and their transitions (the PR curves and lift chart are in ``buying_groups.plots``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

STAGES = ("none", "identified", "engaged", "qualified", "opportunity", "won", "lost")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """A boolean mask of the ``k`` highest scores (ties broken by position: deterministic)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    mask = np.zeros(len(order), dtype=bool)
    mask[order[:k]] = True
    return mask


def flag_metrics(labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels, dtype=int)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((labels & flagged).sum())
    base = labels.mean() if len(labels) else float("nan")
    precision = tp / flagged.sum() if flagged.sum() else 0.0
    return {
        "flagged": int(flagged.sum()),
        "precision": precision,
        "recall": tp / labels.sum() if labels.sum() else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if labels.any() else float("nan"),
        "lift": precision / base if base else float("nan"),
        "base_rate": float(base),
    }


def comparison_table(
    frame: pd.DataFrame, scores: Mapping[str, str], k: int, own_flags: Mapping[str, str]
) -> pd.DataFrame:
    """One row per method: at equal volume (its top ``k``) and at its own threshold."""
    rows = {}
    labels = frame["label"].to_numpy()
    for name, col in scores.items():
        s = frame[col].to_numpy(float)
        equal = flag_metrics(labels, top_k(s, k), s)
        own = flag_metrics(labels, frame[own_flags[name]].to_numpy(bool), s)
        rows[name] = {
            **equal,
            "own_threshold_flagged": own["flagged"],
            "own_threshold_precision": own["precision"],
            "own_threshold_recall": own["recall"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table


def segment_comparison(
    frame: pd.DataFrame, scores: Mapping[str, str], segment_col: str = "segment"
) -> pd.DataFrame:
    """QBG vs MQL vs MQA within each segment (new logo, expansion, ...) that has positives,
    at equal volume: every method flags as many of the segment's groups as QBG does there
    (``qualified``). One row per (segment, method)."""
    rows = {}
    labels = frame["label"].to_numpy()
    segment = frame[segment_col].to_numpy()
    for seg in sorted(set(segment)):
        mask = segment == seg
        if not labels[mask].any():
            continue
        k = int(frame["qualified"].to_numpy()[mask].sum())
        for name, col in scores.items():
            s = frame[col].to_numpy(float)[mask]
            rows[(seg, name)] = flag_metrics(labels[mask], top_k(s, k), s)
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table):
        table.index.names = ["segment", "method"]
    return table


def journey_stages(groups: pd.DataFrame, qualified: np.ndarray) -> pd.Series:
    """Stage of each group at its snapshot; later stages win.

    ``won``/``lost``: the pair's last opportunity closed within the past 90 days;
    ``opportunity``: one is open; ``qualified``: QBG; ``engaged``: 2+ members active in
    30 days; ``identified``: has members; ``none``: no member yet.
    """
    recent_close = groups["days_since_closed"].to_numpy() <= 90
    outcome = groups["last_outcome"].to_numpy()
    stage = np.select(
        [
            groups["open_opportunity"].to_numpy(bool),
            recent_close & (outcome == "won"),
            recent_close & (outcome == "lost"),
            np.asarray(qualified, dtype=bool),
            groups["engaged_members"].to_numpy() >= 2,
            groups["members"].to_numpy() > 0,
        ],
        ["opportunity", "won", "lost", "qualified", "engaged", "identified"],
        "none",
    )
    return pd.Series(stage, index=groups.index, name="stage")


def stage_transitions(groups: pd.DataFrame) -> pd.DataFrame:
    """Counts of stage at one snapshot (rows) -> stage at the next (columns), per group."""
    g = groups.sort_values(["account_id", "product", "snapshot"])
    nxt = g.groupby(["account_id", "product"])["stage"].shift(-1)
    pairs = pd.DataFrame({"from": g["stage"], "to": nxt}).dropna()
    table = pd.crosstab(pairs["from"], pairs["to"])
    order = [s for s in STAGES if s in table.index or s in table.columns]
    return table.reindex(index=order, columns=order, fill_value=0)
