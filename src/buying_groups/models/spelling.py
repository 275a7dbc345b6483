"""Typing slips read as the word meant: "Sales Maanger" -> "Sales Manager".

One slip in the word that names the function ("VP Fiannce", "Einkausfleiter") leaves the
English word pieces and the character n-grams little to read: on the real evaluation titles
with their longest word's middle letters swapped, the champion's function moved on 22% of
them (``models.invariance``, context ``typo``; docs/benchmarks.md). A title word that the
model does not know, and that is one typing slip (two neighbours swapped, a letter dropped
or typed twice, never at the first letter: ``one_slip``) from a word of the training titles,
is read as that word before the model sees the title; where several are, the one in more
training titles, and a tie is left as written.

What the model knows travels with it (``RoleModelConfig.spelling``): the words of two or more
distinct titles of its training title lists, with that count (copies of a title count once;
the lists' own odd spellings, "Procurment", are in one title). Nothing else is ever
corrected: a word the model knows, a word of the encoder's vocabulary ("fiance", "dental"),
a glossary word (each with or without its accents), or a word under 5 letters stays as
written. Words are compared in lower case; the correction takes the written word's case.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

from buying_groups.data.real_titles import title_key
from buying_groups.data.title_typos import DOUBLED, DROPPED, LETTERS, SWAPPED, slip

MIN_LETTERS = 5  # shorter words are too often one slip from another real word
MIN_TITLES = 2  # a word of the vocabulary is in this many distinct training titles
MEMO = 200_000  # words remembered (a long-running server sees new ones without end)
_UNSEEN = object()


def spelling_vocabulary(titles: Iterable[str]) -> dict[str, int]:
    """Lower-case word -> the number of distinct (lower-case) ``titles`` it is in, for the
    words of ``MIN_TITLES`` or more titles and 4+ letters."""
    counts: Counter[str] = Counter()
    for title in {unicodedata.normalize("NFC", str(t)).lower() for t in titles}:
        counts.update({w for w in LETTERS.findall(title) if len(w) >= MIN_LETTERS - 1})
    return {w: n for w, n in sorted(counts.items()) if n >= MIN_TITLES}


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def one_slip(written: str, word: str) -> bool:
    """Whether ``written`` is ``word`` with one typing slip as the generator makes them
    (``data.title_typos.slip``): two neighbours swapped, a letter dropped or a letter typed
    twice, at an inner letter (never the first; never the last dropped or doubled). Other
    slips are not read: they turned real words into others: a changed letter ("Moldador"
    into "Soldador", "Tesco" into "Telco"), a first letter ("einer" into "miner"), an ending
    (inflections: "técnicas", "Kardiologii") and an added letter that is not a double
    (Spanish "metales" into English "metals")."""
    if abs(len(written) - len(word)) > 1 or written == word:
        return False
    return any(
        slip(word, i, kind) == written
        for kind in (SWAPPED, DROPPED, DOUBLED)
        for i in range(1, len(word) - 1)
    )


class Speller:
    """Reads a title's unknown words as the vocabulary word one slip away (see the module).

    ``known``: more words that are never corrected (the encoder's whole words, the glossary's);
    words are known with or without their accents ("médio" is the glossary's "medio")."""

    def __init__(self, vocabulary: Mapping[str, int], known: Iterable[str] = ()) -> None:
        self.vocabulary = dict(vocabulary)
        self.known = {title_key(w) for w in (*known, *self.vocabulary)}
        self.index: dict[str, list[str]] = {}  # a word, or it less one letter -> words
        for word in self.vocabulary:
            for key in _deletes(word) | {word}:
                self.index.setdefault(key, []).append(word)
        self._memo: dict[str, str | None] = {}

    def word(self, word: str) -> str | None:
        """The vocabulary word a lower-case ``word`` is one slip from; None where it is
        known, short, or no word or two words equally frequent are."""
        found = self._memo.get(word, _UNSEEN)  # one lookup: another thread may clear it
        if found is not _UNSEEN:
            return found
        found = None
        if len(word) >= MIN_LETTERS and title_key(word) not in self.known:
            near = {w for key in _deletes(word) | {word} for w in self.index.get(key, ())}
            ranked = sorted(
                (w for w in near if one_slip(word, w)), key=lambda w: -self.vocabulary[w]
            )
            if ranked and (
                len(ranked) == 1 or self.vocabulary[ranked[0]] > self.vocabulary[ranked[1]]
            ):
                found = ranked[0]
        if len(self._memo) >= MEMO:
            self._memo.clear()
        self._memo[word] = found
        return found

    def __call__(self, title: str) -> str:
        """``title`` with each unknown word one slip from a vocabulary word read as that
        word, in the written word's case ("SALES MAANGER" -> "SALES MANAGER"). Read in
        composed Unicode (NFC): a decomposed accent would split a word in two."""

        def fix(match: re.Match[str]) -> str:
            written = match.group(0)
            found = self.word(written.lower())
            if found is None:
                return written
            if written.isupper():
                return found.upper()
            return found[0].upper() + found[1:] if written[0].isupper() else found

        return LETTERS.sub(fix, unicodedata.normalize("NFC", title)) if title else title
