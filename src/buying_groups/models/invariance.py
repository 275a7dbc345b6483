"""Does a persona hold when a title carries words that say nothing about the person?

CRM and CV exports write an employer, a place, a work mode or a gender tag into the title
("Head of Sales bei Globex GmbH", "CFO | Globex", "Buyer (m/w/d)"). A role model should give
such a title the persona of the bare one; nor should a typing slip ("Sales Maanger") move it.
``context_invariance`` applies each context to the real-title evaluation set and measures
how often the persona stays the same. The employer,
city and region here are words training never sees (training's own context copies,
``data.title_context``, draw from other lists), so the check is not of memorised words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from buying_groups.data.title_typos import LETTERS, SWAPPED, slip

COMPANY = "Globex"  # a name that is no word of any title language
EMPLOYER = {
    "en": " at {c} Inc.",
    "de": " bei {c} GmbH",
    "fr": " chez {c}",
    "es": " en {c}",
    "it": " presso {c}",
    "pt": " na {c}",
    "nl": " bij {c}",
    "pl": " w {c}",
    "ru": " в {c}",
}


def typo(title: str) -> str:
    """The title with one typing slip: the two middle letters of its longest word of 5+
    letters swapped ("Sales Manager" -> "Sales Maanger", "Einkaufsleiter" -> "Einkausfleiter");
    unchanged where no word is that long, or its middle letters are equal ("Installation").
    Deterministic, so every model sees the same slips."""
    words = [w for w in LETTERS.findall(title) if len(w) >= 5]
    if not words:
        return title
    word = max(words, key=len)
    return title.replace(word, slip(word, len(word) // 2 - 1, SWAPPED), 1)


# name (an MLflow metric name) -> how it rewrites a title of a language
CONTEXTS: dict[str, Callable[[str, str], str]] = {
    "employer": lambda t, lang: t + EMPLOYER.get(lang, EMPLOYER["en"]).format(c=COMPANY),
    "at_sign": lambda t, lang: f"{t} @ {COMPANY}",
    "pipe": lambda t, lang: f"{t} | {COMPANY}",
    "parenthesised": lambda t, lang: f"{t} ({COMPANY})",
    "city": lambda t, lang: f"{t} - Berlin",
    "region": lambda t, lang: f"{t}, EMEA",
    "remote": lambda t, lang: f"{t} (Remote)",
    "gender_tag": lambda t, lang: f"{t} (m/w/d)",
    "all_caps": lambda t, lang: t.upper(),
    "typo": lambda t, lang: typo(t),
}
HEADS = ("function", "seniority")


def title_contexts(names: object) -> list[str]:
    """The configured contexts (``real_title_contexts``: a name, a list of names, or
    null/empty for none), checked against ``CONTEXTS``."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in names if n not in CONTEXTS]
    if unknown:
        raise ValueError(
            f"real_title_contexts: unknown {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(CONTEXTS)}"
        )
    return names


def has_title(real: pd.DataFrame) -> np.ndarray:
    """Which rows hold a title (a string that is not blank): the only ones a context changes."""
    return np.array([isinstance(t, str) and bool(t.strip()) for t in real["job_title"]])


def with_title_context(real: pd.DataFrame, context: str) -> pd.DataFrame:
    """``real`` (``job_title``, ``language``, ...) with ``context`` applied to every title;
    missing and blank titles stay as they are."""
    add = CONTEXTS[title_contexts(context)[0]]
    titled = has_title(real)
    pairs = zip(real["job_title"], real["language"], titled, strict=True)
    return real.assign(job_title=[add(t, lang) if ok else t for t, lang, ok in pairs])


def context_invariance(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    real: pd.DataFrame,
    bare: pd.DataFrame,
    contexts: Iterable[str] | str = ("employer",),
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Per context, over the rows with a title, the share whose function and seniority stay
    what the bare title got (``bare``: ``predict(real)``) and the accuracy with the context:
    ``real_context/<context>_<head>_same|accuracy``; and each context's predictions."""
    metrics, preds = {}, {}
    titled = has_title(real)
    for name in title_contexts(contexts):
        got = predict(with_title_context(real, name))
        for head in HEADS:
            same = got[head].to_numpy()[titled] == bare[head].to_numpy()[titled]
            metrics[f"real_context/{name}_{head}_same"] = float(same.mean())
            right = got[head].to_numpy()[titled] == real[head].to_numpy()[titled]
            metrics[f"real_context/{name}_{head}_accuracy"] = float(right.mean())
        preds[name] = got
    return metrics, preds


def invariance_table(metrics: dict[str, float]) -> pd.DataFrame:
    """``real_context/...`` metrics as a table: one row per context."""
    ends = [f"_{head}_{kind}" for head in HEADS for kind in ("same", "accuracy")]
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        name = key.removeprefix("real_context/")
        end = next((e for e in ends if name.endswith(e)), None)
        if key.startswith("real_context/") and end:
            rows.setdefault(name[: -len(end)], {})[end[1:]] = value
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("context")
