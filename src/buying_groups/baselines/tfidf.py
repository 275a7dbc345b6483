"""TF-IDF + logistic regression: the classic text baseline, trained on the same data.

Character n-grams of the title (which survive typos and some languages' compounds) plus
word n-grams of the activity text; one multinomial logistic regression per head (function,
seniority, and the role of each product, on the pairs whose role is known).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from buying_groups.models.inference import clean_inputs
from buying_groups.parallel import fit_each
from buying_groups.taxonomy import Catalog


def _features() -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "title",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 4),
                    min_df=2,
                    sublinear_tf=True,
                    lowercase=True,
                ),
                "job_title",
            ),
            (
                "activity",
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                "activity_text",
            ),
        ]
    )


class TfidfBaseline:
    """Fit on labelled contacts, predict ``function``, ``seniority``, ``role_<product>``."""

    name = "tfidf_logreg"

    def __init__(self, catalog: Catalog, C: float = 5.0, max_iter: int = 300) -> None:  # noqa: N803
        self.catalog = catalog
        self.C = C
        self.max_iter = max_iter
        self.models: dict[str, Pipeline] = {}

    def _pipeline(self) -> Pipeline:
        return Pipeline(
            [("tfidf", _features()), ("clf", LogisticRegression(C=self.C, max_iter=self.max_iter))]
        )

    @staticmethod
    def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
        titles, texts = clean_inputs(frame)
        return pd.DataFrame({"job_title": titles, "activity_text": texts})

    def fit(self, train: pd.DataFrame, n_jobs: int = -1) -> TfidfBaseline:
        """One pipeline per head, fitted in ``n_jobs`` processes (``parallel.fit_each``)."""
        x = self._inputs(train)
        targets = ["function", "seniority", *[f"role_{p}" for p in self.catalog.names]]
        known = {t: train[t].notna().to_numpy() for t in targets}
        fitted = fit_each(
            self._pipeline, ((x[known[t]], train[t][known[t]]) for t in targets), n_jobs
        )
        self.models = dict(zip(targets, fitted, strict=True))
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self._inputs(frame)
        return pd.DataFrame(
            {t: np.asarray(m.predict(x), dtype=object) for t, m in self.models.items()},
            index=frame.index,
        )
