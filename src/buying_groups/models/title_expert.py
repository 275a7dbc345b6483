"""The title expert: character n-grams of the job title -> function and seniority, pooled with
the transformer's persona heads.

The transformer reads word pieces of an English vocabulary; titles in other languages and
scripts, compounds ("Einkaufsleiterin") and shop-floor jargon reach it as fragments. A
linear model on character n-grams of the title reads exactly those. The role model keeps
both and combines them log-linearly per head, ``p ~ p_transformer^(1-w) * p_expert^w``,
with ``w`` chosen on hand-labelled validation titles by log-loss (``choose_weight``; 0
turns the expert off). Contacts without a title keep the
transformer's persona: the expert knows nothing about activity.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from buying_groups.evaluate import head_metrics
from buying_groups.parallel import fit_each

EXPERT_NAME = "title_expert.joblib"
HEADS = ("function", "seniority")
WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0)


def _features() -> TfidfVectorizer:
    # Keyword-lexicon hits of the title (baselines.rules) as two extra input features were
    # tried: on the hand-labelled validation titles they cost 9 points of function macro-F1
    # and gained nothing on seniority (docs/benchmarks.md), so the expert reads characters.
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)


class TitleExpert:
    """One character n-gram logistic regression per persona head, over the model's labels."""

    def __init__(self, labels: dict[str, list[str]], C: float = 5.0) -> None:  # noqa: N803
        self.labels = labels  # head -> the role model's label order
        self.C = C
        self.models: dict[str, Pipeline] = {}

    def fit(self, titles: pd.Series, targets: pd.DataFrame, n_jobs: int = -1) -> TitleExpert:
        """Fit on non-empty titles with a known label per head, the heads in ``n_jobs``
        processes (``parallel.fit_each``)."""
        titles = titles.fillna("").astype(str)
        known = {h: (titles.str.strip() != "") & targets[h].notna() for h in HEADS}
        fitted = fit_each(
            self._pipeline,
            ((titles[known[h]].tolist(), targets[h][known[h]]) for h in HEADS),
            n_jobs,
        )
        self.models = dict(zip(HEADS, fitted, strict=True))
        return self

    def _pipeline(self) -> Pipeline:
        return Pipeline(
            [("features", _features()), ("clf", LogisticRegression(C=self.C, max_iter=500))]
        )

    def predict_proba(self, titles: list[str]) -> dict[str, np.ndarray]:
        """Probabilities per head in the role model's label order (unseen labels get 0)."""
        out = {}
        for head in HEADS:
            pipe = self.models[head]
            proba = pipe.predict_proba(titles)
            full = np.zeros((len(titles), len(self.labels[head])), dtype=np.float32)
            index = {label: i for i, label in enumerate(self.labels[head])}
            for j, label in enumerate(pipe.classes_):
                full[:, index[label]] = proba[:, j]
            out[head] = full
        return out

    def save(self, directory: Path | str) -> None:
        joblib.dump(self, Path(directory) / EXPERT_NAME)

    @staticmethod
    def load(directory: Path | str) -> TitleExpert | None:
        path = Path(directory) / EXPERT_NAME
        return joblib.load(path) if path.exists() else None


def pool(net: np.ndarray, expert: np.ndarray, weight: float, has_title: np.ndarray) -> np.ndarray:
    """Log-linear pooling of two probability tables (rows with a title only)."""
    if weight <= 0:
        return net
    eps = 1e-6
    logp = (1 - weight) * np.log(net + eps) + weight * np.log(expert + eps)
    mixed = np.exp(logp - logp.max(-1, keepdims=True))
    mixed /= mixed.sum(-1, keepdims=True)
    return np.where(has_title[:, None], mixed, net).astype(np.float32)


def choose_weight(
    net: dict[str, np.ndarray],
    expert: dict[str, np.ndarray],
    truth: pd.DataFrame,
    labels: dict[str, list[str]],
    has_title: np.ndarray,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Per head, the pooling weight with the lowest log-loss on ``truth`` (validation
    contacts; ties: the smaller weight), and the macro-F1 and log-loss of every weight tried.

    Log-loss, not macro-F1: on a few hundred validation titles macro-F1 moves in steps
    (a rare class's F1 jumps with one title) and its curve over the weights is flat, so its
    best weight was noise; log-loss, a proper score, weighs every title's probability and
    varies smoothly (docs/benchmarks.md, 2026-12-05)."""
    rows = {}
    for w in WEIGHTS:
        scores = {}
        for head in HEADS:
            proba = pool(net[head], expert[head], w, has_title)
            index = {label: i for i, label in enumerate(labels[head])}
            known = truth[head].isin(list(index)).to_numpy()  # a label the model has
            y = truth[head][known].map(index).to_numpy(dtype=int)
            p_true = proba[known][np.arange(len(y)), y]
            pred = np.asarray(labels[head], dtype=object)[proba.argmax(-1)]
            scores[f"{head}_macro_f1"] = head_metrics(truth[head][known], pred[known])["macro_f1"]
            scores[f"{head}_log_loss"] = float(-np.log(np.clip(p_true, 1e-9, 1.0)).mean())
        rows[w] = scores
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "expert weight"
    # no labelled title for a head: its weight stays 0 (the transformer alone)
    best = {
        head: float(table[f"{head}_log_loss"].idxmin())
        if table[f"{head}_log_loss"].notna().any()
        else 0.0
        for head in HEADS
    }
    return best, table
