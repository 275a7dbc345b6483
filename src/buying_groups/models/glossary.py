"""An English gloss of a title's words, appended for the transformer to read.

The default encoder knows English word pieces only: "Einkaufsleiterin" or "Responsabile
Acquisti" reach it as fragments, and what it learnt about "Head of Purchasing" from English
titles does not carry over. A bundled glossary (``resources/titles/glossary.csv``: 8
languages' job-title words, each with the English words an English title would use) lets
the model read ``Leiterin Einkauf | head purchasing``. The glossary travels inside the
model (``RoleModelConfig.glossary``), so editing the file never changes a trained model.

Words are looked up case-, accent- and punctuation-blind. Four things reach words the
list does not name, for titles no writer saw:

- a dotted abbreviation the list names joined is read joined ("RR.HH." as "rrhh"; this is
  code, so it applies to models trained before it too);
- a German word gets its female forms ("Berater" -> "Beraterin", "Kollege" -> "Kollegin");
- an unknown word ending in a German or Dutch word of 5+ letters, after 4+ letters, is read
  as a compound with that head, and with the gloss of what comes before it where that is a
  German or Dutch word or a rank prefix ("Einkaufssachbearbeiterin": purchasing clerk;
  "Obermonteur": senior fitter). Both parts are German or Dutch words (``-word`` entries),
  since any split into two known words read English titles wrongly ("Mineralogist" as
  "minera" + "logist"). On the encoder vocabulary's 15,418 English words of 6+ letters
  this reads two wrongly ("linebacker", "darmstadt"), against four with a 3-letter
  modifier ("collector" as "col" + "lector"). A model trained before these entries has none.
  The first part is also read with its linking element ("Kunden-", "Finanz-"), and a few
  English words that German and Dutch compounds are made of count as parts
  (``LOAN_HEADS``, ``LOAN_FIRST_PARTS``: "Einkaufsmanagerin": purchasing manager;
  "Personaldirektorin": hr director), never as a word alone;
- a compound that ends in an abbreviated German head ("Vertriebsltr.", "Personalref.") is
  read as the word the abbreviation shortens (``ABBREVIATED_HEADS``; code, so models
  trained before it read these too, where their glossary has the full word as a head).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from buying_groups.data.real_titles import title_key
from buying_groups.data.title_typos import LETTERS

GLOSSARY_FILE = Path(__file__).resolve().parent.parent / "resources" / "titles" / "glossary.csv"
SEPARATOR = " | "
MAX_GLOSS_WORDS = 8  # a long title's gloss stays short: the activity text shares 64 tokens
_GLOSS = re.compile(r"[a-z]+( [a-z]+){0,2}")
_DOTTED = re.compile(r"\b(?:[^\W\d_]{1,3}\.){2,}")  # "RR.HH.", "S.A.", "e.V."
LANGUAGES = ("de", "es", "fr", "it", "nl", "pl", "pt", "ru")  # the glossary's languages
COMPOUND_LANGUAGES = ("de", "nl")  # languages that write a job's words as one word
MIN_HEAD, MIN_MODIFIER = 5, 4  # letters of a compound's head and of what comes before it
# German female forms: "Leiter" -> "Leiterin(nen)", "Kollege" -> "Kollegin", "Kaufmann" ->
# "Kauffrau"
FEMALE_FORMS = (("", "in"), ("", "innen"), ("e", "in"), ("mann", "frau"))
# German rank prefixes of a compound, which no glossary row gives ("Oberarzt" is listed;
# "Obermonteur" is not; Dutch "ober" is a waiter)
RANK_PREFIXES = {"ober": "senior", "haupt": "chief", "chef": "chief", "junior": "junior"}
# English words that German and Dutch titles build compounds with ("Einkaufsmanager",
# "Vertriebscontroller", "Marketingassistentin", "Personalreferentin"). The glossary drops
# every English word, so these parts were unreadable. They are compound parts only, never a
# gloss of a word alone, so an English title stays unglossed, and so does a German female
# form alone ("Product Managerin" reads as "Product Manager"); the first parts are never
# heads ("Interpersonal" is not staff, which is what German "Personal" means).
LOAN_HEADS = ("manager", "controller", "consultant", "designer", "developer", "planner")
LOAN_FIRST_PARTS = {
    "marketing": "marketing",
    "personal": "hr",
    "sales": "sales",
    "export": "export",
    "import": "import",
    "service": "service",
    "software": "software",
    "online": "online",
    "content": "content",
    "event": "event",
    "account": "account",
    "business": "business",
    "office": "office",
    "team": "team",
}
# German abbreviations that end a compound in CRM and CV exports ("Vertriebsltr.",
# "Personalref.", "Empfangsmitarb.", "Servicetechn."): an unknown word ending in one, after
# 4+ letters, is read as the compound with the word it shortens ("Schichtltr." as
# "Schichtleiter"), where this model's glossary has that word as a German head. Consonant
# clusters and German stems: no word of the encoder's English vocabulary and no English
# title of the bundled lists ends in one after 4+ letters; a name may ("Crossref Engineer"
# reads "specialist").
ABBREVIATED_HEADS = {
    "ltr": "leiter",
    "ltg": "leitung",
    "kfm": "kaufmann",
    "kffr": "kauffrau",
    "sachb": "sachbearbeiter",
    "mitarb": "mitarbeiter",
    "ref": "referent",
    "techn": "techniker",
    "assist": "assistent",
}
# German and Dutch for "in training" after a job ("Arzt in Weiterbildung", "Huisarts in
# opleiding": a doctor in training, `entry` by the guide): read as "trainee", where the word
# alone glosses "training", which is HR's word ("Leiter Weiterbildung")
IN_TRAINING = ("weiterbildung", "ausbildung", "opleiding")
# how a compound's first part may end before the head: "Einkaufs-" (Einkauf), "Kunden-"
# (Kunde), "Finanz-" (Finanzen), "Personal-"
LINKING = (("", ""), ("s", ""), ("n", ""), ("en", ""), ("", "en"))


def word_keys(text: str) -> list[str]:
    """A title's words as ``title_key`` writes them: lower case, accents dropped."""
    return LETTERS.findall(title_key(text))


def load_glossary(path: Path | str | None = None) -> dict[str, str]:
    """Word -> English gloss from a ``word,gloss[,language]`` CSV (the bundled one by default;
    ``language``: the codes of the languages that use the word, space-separated),
    with derived entries: German female forms, and ``-word`` for each German or Dutch word
    (and rank prefix) that may begin or end a compound (see the module's docstring).

    Raises ``ValueError`` naming the file, line and problem for an empty or repeated word,
    a gloss that is not 1-3 lower-case ASCII words, or an unknown language code."""
    path = Path(path or GLOSSARY_FILE)
    out: dict[str, str] = {}
    languages: dict[str, set[str]] = {}
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
            langs = set((row.get("language") or "").split())
            if not langs <= set(LANGUAGES):
                raise ValueError(
                    f"{path.name}, line {line}, column language: {row['language']!r} is not "
                    f"space-separated codes of {', '.join(LANGUAGES)}"
                )
            out[word] = gloss
            languages[word] = langs
    return _with_derived(out, languages)


def _female_forms(word: str) -> list[str]:
    """A German word's female forms ("berater" -> "beraterin", "beraterinnen")."""
    if len(word) < 4 or word.endswith("in"):
        return []
    return [word[: len(word) - len(end)] + fem for end, fem in FEMALE_FORMS if word.endswith(end)]


_LOAN_FEMALE = {form for head in LOAN_HEADS for form in _female_forms(head)}  # "managerin"


def _with_derived(words: dict[str, str], languages: dict[str, set[str]]) -> dict[str, str]:
    """``words`` plus German female forms and a ``-word`` entry for each German or Dutch
    word that may begin or end a compound; a listed word is never overridden."""
    out = dict(words)
    for word, langs in languages.items():
        forms = [word] + (_female_forms(word) if "de" in langs else [])
        for form in forms[1:]:
            out.setdefault(form, words[word])
        if langs & set(COMPOUND_LANGUAGES):
            for form in forms:
                if len(form) >= MIN_MODIFIER:
                    out.setdefault("-" + form, words[word])
    for prefix, meaning in RANK_PREFIXES.items():
        out["-" + prefix] = meaning
    for head in LOAN_HEADS:
        for form in [head, *_female_forms(head)]:
            out.setdefault("-" + form, head)  # a compound's head only ("Einkaufsmanagerin")
    for first, meaning in LOAN_FIRST_PARTS.items():
        out.setdefault(first + "-", meaning)  # a first part only, never a head
    return out


def _first_part(first: str, glossary: dict[str, str]) -> str | None:
    """The gloss of a compound's first part, read with or without its linking element."""
    for drop, add in LINKING:
        if first.endswith(drop):
            stem = first[: len(first) - len(drop)] + add
            if len(stem) >= MIN_MODIFIER:
                found = glossary.get("-" + stem, glossary.get(stem + "-"))
                if found is not None:
                    return found
    return None


def _lookup(word: str, glossary: dict[str, str]) -> str | None:
    """A word's gloss: listed, else read as a German or Dutch compound by its abbreviated
    head or the longest head of 5+ letters it ends in after 4+ letters, with its modifier's
    gloss where known."""
    # "Managerin" alone reads as the English word it is: its gloss "manager" made "Product
    # Managerin" a people manager (models saved before 2026-12-08 carry that entry)
    if word in _LOAN_FEMALE:
        return None
    found = glossary.get(word)
    if found is not None:
        return found
    for short, full in ABBREVIATED_HEADS.items():  # "schichtltr" -> "schichtleiter"
        stem = word[: len(word) - len(short)]
        if word.endswith(short) and len(stem) >= MIN_MODIFIER and "-" + full in glossary:
            return glossary.get(stem + full) or _compound(stem + full, glossary)
    return _compound(word, glossary)


def _compound(word: str, glossary: dict[str, str]) -> str | None:
    """A word read as a German or Dutch compound by the longest head of 5+ letters it ends in
    after 4+ letters, with its modifier's gloss where known; None if it is none."""
    if len(word) < MIN_MODIFIER + MIN_HEAD:
        return None
    for cut in range(MIN_MODIFIER, len(word) - MIN_HEAD + 1):
        head = glossary.get("-" + word[cut:])
        if head is not None:
            modifier = _first_part(word[:cut], glossary)
            return f"{modifier} {head}" if modifier else head
    return None


def gloss(title: str, glossary: dict[str, str]) -> str:
    """``title`` with the English gloss of its words appended, or unchanged where none is
    known: "Leiterin Einkauf" -> "Leiterin Einkauf | head purchasing"."""
    if not glossary or not title:
        return title
    words: list[str] = []

    def join(match: re.Match[str]) -> str:  # "RR.HH." is one word where the glossary says so
        word = match.group(0).replace(".", "")
        return word + " " if title_key(word) in glossary else match.group(0)

    joined = _DOTTED.sub(join, title)
    before = ""
    for word in word_keys(joined):
        found = _lookup(word, glossary)
        if before == "in" and word in IN_TRAINING and found:  # "Ärztin in Weiterbildung"
            found = "trainee"
        before = word
        for w in (found or "").split():
            if w not in words:
                words.append(w)
    if not words:
        return title
    return title + SEPARATOR + " ".join(words[:MAX_GLOSS_WORDS])
