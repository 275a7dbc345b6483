"""Fit independent scikit-learn models side by side in worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from joblib import Parallel, delayed, effective_n_jobs

# Each worker holds its own copy of the training inputs and their feature matrices: at most
# this many at once, so memory does not grow with the host's core count.
MAX_JOBS = 4


def fit_each(make: Callable[[], Any], data: Iterable[tuple[Any, Any]], n_jobs: int = -1) -> list:
    """``make().fit(x, y)`` for every ``(x, y)`` in ``data``, in order, in up to ``n_jobs``
    processes (-1: one per core, never more than the fits or ``MAX_JOBS``). scikit-learn's
    L-BFGS runs on one core, so on 2 cores two heads fit in the time of one."""
    data = list(data)
    jobs = max(1, min(len(data), effective_n_jobs(n_jobs), MAX_JOBS))
    return Parallel(n_jobs=jobs)(delayed(make().fit)(x, y) for x, y in data)
