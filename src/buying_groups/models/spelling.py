"""Typing slips read as the word meant: "Sales Maanger" -> "Sales Manager".

One slip in the word that names the function ("VP Fiannce", "Einkausfleiter") leaves the
English word pieces and the character n-grams little to read: on the real evaluation titles
with their longest word's middle letters swapped, the champion's function moved on 22% of
them (``models.invariance``, context ``typo``; docs/benchmarks.md). A title word that the
model does not know, and that is one slip away (a letter dropped or typed twice, or two
neighbours swapped; never at the first letter and never a letter dropped or added at the
end) from exactly one word of the training titles, is read as that word before the model sees
the title. A changed letter is not read: it turned words into other real words ("Moldador",
a moulder, into "Soldador", a welder).

What the model knows travels with it (``RoleModelConfig.spelling``): the words of two or more
distinct training titles of the title lists, with that count (a training copy's slip is in
one title only, so it never counts). Nothing else is ever corrected: a word the
model knows, a word of the encoder's vocabulary ("manger", "dental"), a glossary word, a
word under 5 letters or one with two words equally close stays as written. Words are
compared in lower case; the correction takes the written word's case.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

MIN_LETTERS = 5  # shorter words are too often one slip from another real word
MIN_TITLES = 2  # a word of the vocabulary is in this many distinct training titles
MEMO = 200_000  # words remembered (a long-running server sees new ones without end)
_WORD = re.compile(r"[^\W\d_]+")


def spelling_vocabulary(titles: Iterable[str]) -> dict[str, int]:
    """Lower-case word -> the number of distinct (lower-case) ``titles`` it is in, for the
    words of ``MIN_TITLES`` or more titles and 4+ letters."""
    counts: Counter[str] = Counter()
    for title in {str(t).lower() for t in titles}:
        counts.update({w for w in _WORD.findall(title) if len(w) >= MIN_LETTERS - 1})
    return {w: n for w, n in sorted(counts.items()) if n >= MIN_TITLES}


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def one_slip(written: str, word: str) -> bool:
    """Whether ``written`` is ``word`` with one typing slip: two neighbours swapped, a letter
    dropped, or one typed twice, never at the first letter and never a letter dropped or
    added at the end. Other slips do not count: they turned real words into others: a changed
    letter ("Moldador" into "Soldador", "Tesco" into "Telco"), a first letter ("einer" into
    "miner"), an ending (inflections: "técnicas", "Kardiologii") and another added letter
    (Spanish "metales" into English "metals")."""
    if written[:1] != word[:1] or written == word:
        return False
    if len(written) == len(word):
        diff = [i for i in range(len(word)) if written[i] != word[i]]
        i = diff[0]
        return (
            len(diff) == 2
            and diff[1] == i + 1
            and written[i] == word[i + 1]
            and written[i + 1] == word[i]
        )
    if len(written) == len(word) + 1:  # a letter added: typed twice ("Mannager"); another
        # added letter is more often another language's word ("metales", "instrumentos")
        return any(
            written[:i] + written[i + 1 :] == word
            and written[i] in (written[i - 1], written[i + 1])
            for i in range(1, len(written) - 1)
        )
    if len(written) + 1 == len(word):  # a letter dropped ("Adminstrative", "Managment")
        return any(word[:i] + word[i + 1 :] == written for i in range(1, len(word) - 1))
    return False


class Speller:
    """Reads a title's unknown words as the vocabulary word one slip away (see the module).

    ``known``: more words that are never corrected (the encoder's whole words, the glossary's),
    lower case."""

    def __init__(self, vocabulary: Mapping[str, int], known: Iterable[str] = ()) -> None:
        self.vocabulary = dict(vocabulary)
        self.known = set(known) | set(self.vocabulary)
        self.index: dict[str, list[str]] = {}  # a word, or it less one letter -> words
        for word in self.vocabulary:
            for key in _deletes(word) | {word}:
                self.index.setdefault(key, []).append(word)
        self._memo: dict[str, str | None] = {}

    def word(self, word: str) -> str | None:
        """The vocabulary word a lower-case ``word`` is one slip from; None where it is
        known, short, or no word or two words equally frequent are."""
        if word in self._memo:
            return self._memo[word]
        found = None
        if len(word) >= MIN_LETTERS and word not in self.known:
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
        word, in the written word's case ("SALES MAANGER" -> "SALES MANAGER")."""

        def fix(match: re.Match[str]) -> str:
            written = match.group(0)
            found = self.word(written.lower())
            if found is None:
                return written
            if written.isupper():
                return found.upper()
            return found[0].upper() + found[1:] if written[0].isupper() else found

        return _WORD.sub(fix, title) if title else title
