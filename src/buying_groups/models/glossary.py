"""An English gloss of a title's words, appended for the transformer to read.

The default encoder knows English word pieces only: "Einkaufsleiterin" or "Responsabile
Acquisti" reach it as fragments, and what it learnt about "Head of Purchasing" from English
titles does not carry over. A bundled glossary (``resources/titles/glossary.csv``: 8
languages' job-title words, each with the English words an English title would use) lets
the model read ``Leiterin Einkauf | head purchasing``. The glossary travels inside the
model (``RoleModelConfig.glossary``), so editing the file never changes a trained model.

Words are looked up case-, accent- and punctuation-blind, whole words only: splitting an
unknown word into two known ones read English titles wrongly ("Mineralogist" as "minera" +
"logist"), and the glossary's German and Dutch compounds are listed whole.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from buying_groups.data.real_titles import title_key

GLOSSARY_FILE = Path(__file__).resolve().parent.parent / "resources" / "titles" / "glossary.csv"
SEPARATOR = " | "
MAX_GLOSS_WORDS = 8  # a long title's gloss stays short: the activity text shares 64 tokens
_WORD = re.compile(r"[^\W\d_]+")
_GLOSS = re.compile(r"[a-z]+( [a-z]+){0,2}")


def word_keys(text: str) -> list[str]:
    """A title's words as ``title_key`` writes them: lower case, accents dropped."""
    return _WORD.findall(title_key(text))


def load_glossary(path: Path | str | None = None) -> dict[str, str]:
    """Word -> English gloss from a ``word,gloss[,language]`` CSV (the bundled one by default).

    Raises ``ValueError`` naming the file, line and problem for an empty or repeated word or
    a gloss that is not 1-3 lower-case ASCII words."""
    path = Path(path or GLOSSARY_FILE)
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"word", "gloss"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path.name}: expected columns word, gloss")
        for line, row in enumerate(reader, start=2):
            word, gloss = (row["word"] or "").strip(), (row["gloss"] or "").strip()
            if word_keys(word) != [word]:
                raise ValueError(
                    f"{path.name}, line {line}, column word: {word!r} is not one "
                    "lower-case word without accents"
                )
            if word in out:
                raise ValueError(f"{path.name}, line {line}, column word: {word!r} repeated")
            if not _GLOSS.fullmatch(gloss):
                raise ValueError(
                    f"{path.name}, line {line}, column gloss: {gloss!r} is not "
                    "1-3 lower-case ASCII words"
                )
            out[word] = gloss
    return out


def gloss(title: str, glossary: dict[str, str]) -> str:
    """``title`` with the English gloss of its words appended, or unchanged where none is
    known: "Leiterin Einkauf" -> "Leiterin Einkauf | head purchasing"."""
    if not glossary or not title:
        return title
    words: list[str] = []
    for word in word_keys(title):
        found = glossary.get(word)
        for w in (found or "").split():
            if w not in words:
                words.append(w)
    if not words:
        return title
    return title + SEPARATOR + " ".join(words[:MAX_GLOSS_WORDS])
