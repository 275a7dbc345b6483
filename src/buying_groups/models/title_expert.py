"""The title expert: character n-grams of the job title -> function and seniority, pooled with
the transformer's persona heads.

The transformer reads word pieces of an English vocabulary; titles in other languages and
scripts, compounds ("Einkaufsleiterin") and shop-floor jargon reach it as fragments. A
linear model on character n-grams of the title reads exactly those. The role model keeps
both and combines them log-linearly per head, ``p ~ p_transformer^(1-w) * p_expert^w``,
with ``w`` chosen on hand-labelled validation titles by log-loss (``choose_weight``; 0
turns the expert off). Contacts without a title keep the
transformer's persona: the expert knows nothing about activity.

How far to trust each side depends on the title's language: the English word pieces read
English well and Polish badly. Where the training titles carry a ``language``, the expert
also learns to tell the language of a title (characters again), and each language gets its
own weight, chosen on that language's validation titles by the same log-loss with the
all-language curve as a prior worth ``LANGUAGE_PRIOR`` titles (a language with few
validation titles keeps close to the all-language weight). A title's weight is the average
of the languages' weights under its language probabilities (``TitleExpert.weights``).
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
# A language's weight minimises (n * its log-loss + LANGUAGE_PRIOR * all languages' log-loss)
# over its n validation titles: 100 titles, the least the weight's choice trusts on its own
# (models/train.attach_title_expert).
LANGUAGE_PRIOR = 100
MIN_LANGUAGE_TITLES = 20  # training titles a language needs to be told apart


def _features() -> TfidfVectorizer:
    # Keyword-lexicon hits of the title (baselines.rules) as two extra input features were
    # tried: on the hand-labelled validation titles they cost 9 points of function macro-F1
    # and gained nothing on seniority (docs/benchmarks.md), so the expert reads characters.
    # Accents are dropped: CRM exports often lose them ("Directeur General", "Gerente de
    # Operacoes"), and "é" and "e" then share every n-gram; word n-grams
    # beside the characters helped seniority a little and cost function more (2026-12-05,
    # fourth session).
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        min_df=2,
        sublinear_tf=True,
        strip_accents="unicode",
    )


class TitleExpert:
    """One character n-gram logistic regression per persona head, over the model's labels."""

    # C = 20 (weak regularisation): a title's rare n-grams ("-leiterin", "ds.") are what
    # tell it apart. Against C = 5, on the hand-labelled titles (4-fold cross-validation of
    # the training share) the expert's log-loss fell by 15% on both heads, with the accents
    # dropped too (docs/benchmarks.md, 2026-12-05, fourth session).
    def __init__(self, labels: dict[str, list[str]], C: float = 20.0) -> None:  # noqa: N803
        self.labels = labels  # head -> the role model's label order
        self.C = C
        self.models: dict[str, Pipeline] = {}
        self.language: Pipeline | None = None  # title -> language, where the titles had one

    def fit(
        self,
        titles: pd.Series,
        targets: pd.DataFrame,
        n_jobs: int = -1,
        languages: pd.Series | None = None,
    ) -> TitleExpert:
        """Fit on non-empty titles with a known label per head, the heads in ``n_jobs``
        processes (``parallel.fit_each``); with ``languages``, also a language classifier
        on the distinct titles whose language is known (languages with at least
        ``MIN_LANGUAGE_TITLES``; none with fewer than two such languages)."""
        titles = titles.fillna("").astype(str)
        known = {h: (titles.str.strip() != "") & targets[h].notna() for h in HEADS}
        fitted = fit_each(
            self._pipeline,
            ((titles[known[h]].tolist(), targets[h][known[h]]) for h in HEADS),
            n_jobs,
        )
        self.models = dict(zip(HEADS, fitted, strict=True))
        self.language = None
        if languages is not None:
            language = pd.Series(languages.to_numpy(), index=titles.index, dtype=object)
            language = language.where(language.notna(), "").astype(str).str.strip()
            told = pd.DataFrame({"title": titles, "language": language})  # "": unknown
            told = told[(told["title"].str.strip() != "") & (told["language"] != "")]
            told = told.drop_duplicates("title")
            counts = told["language"].value_counts()
            told = told[told["language"].isin(counts[counts >= MIN_LANGUAGE_TITLES].index)]
            if told["language"].nunique() >= 2:
                self.language = _language_pipeline().fit(told["title"], told["language"])
        return self

    def language_proba(self, titles: list[str]) -> tuple[np.ndarray, list[str]] | None:
        """Each title's probability per language (and the languages), or None without a
        language classifier (models saved before it, or titles without a language)."""
        lid = getattr(self, "language", None)
        if lid is None:
            return None
        return lid.predict_proba(titles), [str(c) for c in lid.classes_]

    def weights(
        self, titles: list[str], weights: dict[str, float], by_language: dict[str, dict]
    ) -> dict[str, np.ndarray]:
        """Each title's pooling weight per head: the head's weight, or with per-language
        weights the average of theirs under the title's language probabilities."""
        out = {h: np.full(len(titles), float(weights.get(h, 0.0))) for h in HEADS}
        found = self.language_proba(titles) if by_language and len(titles) else None
        if found is not None:
            proba, languages = found
            for head, per in by_language.items():
                if head in out and per:
                    default = float(weights.get(head, 0.0))
                    out[head] = proba @ np.array([per.get(lang, default) for lang in languages])
        return out

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


def _language_pipeline() -> Pipeline:
    # Balanced: the English titles far outnumber every other language's.
    return Pipeline(
        [
            ("features", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2)),
            ("clf", LogisticRegression(C=5.0, max_iter=1000, class_weight="balanced")),
        ]
    )


def pool(
    net: np.ndarray, expert: np.ndarray, weight: float | np.ndarray, has_title: np.ndarray
) -> np.ndarray:
    """Log-linear pooling of two probability tables (rows with a title only), with one
    weight or one per row."""
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (len(net),))[:, None]
    if not (w > 0).any():
        return net
    eps = 1e-6
    logp = (1 - w) * np.log(net + eps) + w * np.log(expert + eps)
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
            known = truth[head].isin(labels[head]).to_numpy()  # a label the model has
            pred = np.asarray(labels[head], dtype=object)[proba.argmax(-1)]
            scores[f"{head}_macro_f1"] = head_metrics(truth[head][known], pred[known])["macro_f1"]
            scores[f"{head}_log_loss"] = _log_loss(proba, truth[head], labels[head])
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


def _log_loss(proba: np.ndarray, truth: pd.Series, labels: list[str]) -> float:
    """Mean negative log-probability of the true label, over rows with a label the model
    has (NaN without any)."""
    index = {label: i for i, label in enumerate(labels)}
    known = truth.isin(list(index)).to_numpy()
    y = truth[known].map(index).to_numpy(dtype=int)
    if len(y) == 0:
        return float("nan")
    p_true = proba[known][np.arange(len(y)), y]
    return float(-np.log(np.clip(p_true, 1e-9, 1.0)).mean())


def choose_language_weights(
    net: dict[str, np.ndarray],
    expert: dict[str, np.ndarray],
    truth: pd.DataFrame,
    labels: dict[str, list[str]],
    language: np.ndarray,
    overall: pd.DataFrame,
    prior: float = LANGUAGE_PRIOR,
) -> dict[str, dict[str, float]]:
    """Per head and per language (``language``: each validation title's, as the expert
    tells it), the weight minimising ``n * log-loss of the language's n titles + prior *
    log-loss of all titles`` (its own titles among them; ``overall``: ``choose_weight``'s
    table on the same titles): a language with few titles stays near the all-language
    choice, one with many follows its own titles. Every row of ``truth`` has a title.
    Titles are grouped by their most likely language here, while a prediction averages the
    weights under the language probabilities: on the previous model's real titles the
    average did better than the most likely language's weight (docs/benchmarks.md,
    2026-12-05, third session)."""
    out: dict[str, dict[str, float]] = {}
    truth = truth.reset_index(drop=True)
    titled = np.ones(len(truth), dtype=bool)
    for head in HEADS:
        common = overall[f"{head}_log_loss"]
        if common.isna().all():  # no labelled title: no weight to choose
            continue
        per = {}
        for lang in sorted(set(language)):
            rows = np.flatnonzero(language == lang)
            y = truth[head].iloc[rows].reset_index(drop=True)
            n = int(y.isin(labels[head]).sum())
            score = {}
            for w in WEIGHTS:
                proba = pool(net[head][rows], expert[head][rows], w, titled[rows])
                own = _log_loss(proba, y, labels[head])
                score[w] = (n * (own if n else 0.0) + prior * common[w]) / (n + prior)
            per[str(lang)] = float(min(score, key=score.get))  # ties: the smaller weight
        out[head] = per
    return out
