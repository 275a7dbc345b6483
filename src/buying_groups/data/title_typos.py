"""Typing slips, as real exports hold them ("Sales Manger", "VP Fiannce", "Einkaufsleiterr").

The generator misspells 4% of its own titles, but the real titles the role model trains on
are spelt right, and a slip in the one word that names the function (a "Fiannce" the word
pieces no longer read as finance) moved the function of 22% of the real evaluation titles
(`models.invariance`, context ``typo``; docs/benchmarks.md). Training copies of real titles
with one slip (``title_list_typo``) teach the model to read through them: at 0.25 the moves
fell to 16%, at a small cost on titles as written, so the default is off. The speller
(``models.spelling``, on by default) reads slips back to the word instead, when predicting.

The slips here are random (a letter dropped, doubled or swapped with its neighbour, in a
random word of 4+ letters); the check in ``models.invariance`` swaps the two middle letters of
the longest word, deterministically: slips at places not chosen to match the training's.
A slip that swaps two equal letters changes nothing.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

LETTERS = re.compile(r"[^\W\d_]+")  # a word: a run of letters, any script (no digits, no "_")
WORD = re.compile(r"[^\W\d_]{4,}")  # a word the generator may misspell
SWAPPED, DROPPED, DOUBLED = range(3)  # the slips, in the order the generator draws them


def slip(word: str, i: int, kind: int) -> str:
    """``word`` with one slip at its letter ``i`` (an inner letter with one after it):
    ``SWAPPED`` with the next letter, ``DROPPED`` or ``DOUBLED``. The one slip function of the
    generator's titles, the training copies' and the typo check (``models.invariance``)."""
    if kind == SWAPPED:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == DROPPED:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def add_typo(title: str, rng: np.random.Generator) -> str:
    """``title`` with one slip in a random word of 4+ letters; unchanged where it has none.
    The first letter is kept: people rarely mistype it."""
    words = list(WORD.finditer(title))
    if not words:
        return title
    word = words[rng.integers(len(words))]
    start, text = word.start(), word.group()
    i = int(rng.integers(1, len(text) - 1))  # an inner letter with one after it
    slipped = slip(text, i, int(rng.integers(3)))
    return title[:start] + slipped + title[start + len(text) :]


def with_typos(titles: pd.Series, rng: np.random.Generator, share: float) -> np.ndarray:
    """A seeded ``share`` of ``titles`` with one slip each (``add_typo``); the rest as they
    are. Empty titles stay empty."""
    chosen = rng.random(len(titles)) < share
    return np.array(
        [add_typo(t, rng) if c and t else t for t, c in zip(titles, chosen, strict=True)],
        dtype=object,
    )
