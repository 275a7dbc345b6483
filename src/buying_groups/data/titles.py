"""Compose realistic, noisy job titles for a persona (function x seniority) in five languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from buying_groups.data import vocab
from buying_groups.data.title_typos import slip

TITLE_KINDS = ("normal", "dual", "vague", "empty")


def split_vocab(items: list[str]) -> tuple[list[str], list[str]]:
    """Split a vocabulary list into (in-distribution items, held-out items)."""
    held = [i[1:] for i in items if i.startswith("~")]
    seen = [i for i in items if not i.startswith("~")]
    return seen, held


def held_out_terms() -> set[str]:
    """Every held-out vocabulary item (for tests: none may appear in in-distribution titles)."""
    out: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            out.update(split_vocab([x for x in node if isinstance(x, str)])[1])

    for table in (
        vocab.FUNCTION_TERMS,
        vocab.TEMPLATES,
        vocab.C_LEVEL,
        vocab.SPECIAL,
        vocab.ABBREVIATIONS,
    ):
        walk(table)
    return out


@dataclass
class TitleNoise:
    """Probabilities of the title distortions seen in CRM exports."""

    p_empty: float = 0.05
    p_vague: float = 0.04
    p_dual: float = 0.03
    p_abbreviate: float = 0.3
    p_upper: float = 0.04
    p_lower: float = 0.05
    p_typo: float = 0.04
    p_held_out: float = 0.65  # at OOD accounts: chance each slot uses held-out vocabulary


class TitleComposer:
    """Draws titles from the vocabulary with a seeded generator."""

    def __init__(self, rng: np.random.Generator, noise: TitleNoise | None = None) -> None:
        self.rng = rng
        self.noise = noise or TitleNoise()

    # -- choosing from vocabulary lists -------------------------------------------------------
    def _pick(self, items: list[str], ood: bool) -> str | None:
        seen, held = split_vocab(items)
        if ood and held and (not seen or self.rng.random() < self.noise.p_held_out):
            return held[self.rng.integers(len(held))]
        if not seen:
            return None
        return seen[self.rng.integers(len(seen))]

    # -- composing ----------------------------------------------------------------------------
    def compose(self, function: str, seniority: str, lang: str, ood: bool) -> tuple[str, str]:
        """Return (title, kind) for one contact; kind is one of ``TITLE_KINDS``."""
        r = self.rng.random()
        n = self.noise
        if r < n.p_empty:
            return "", "empty"
        if r < n.p_empty + n.p_vague:
            title = self._pick(vocab.VAGUE[lang][seniority], ood) or ""
            return self._distort(title, ood), "vague"
        title = self._render(function, seniority, lang, ood)
        kind = "normal"
        if r < n.p_empty + n.p_vague + n.p_dual:
            second = self._render(function, seniority, lang, ood)
            if second.lower() != title.lower():
                sep = vocab.DUAL_SEPARATORS[self.rng.integers(len(vocab.DUAL_SEPARATORS))]
                title, kind = f"{title}{sep}{second}", "dual"
        return self._distort(title, ood), kind

    def _render(self, function: str, seniority: str, lang: str, ood: bool) -> str:
        special = vocab.SPECIAL.get(lang, {}).get(function, {}).get(seniority)
        terms = vocab.FUNCTION_TERMS.get(lang, {}).get(function)
        templates = vocab.TEMPLATES.get(lang, {}).get(seniority)
        if seniority == "executive" and function != "executive":
            options = list(vocab.C_LEVEL.get(function, [])) + list(special or [])
            if terms and templates and self.rng.random() < 0.3:
                return self._fill(templates, terms, ood, lang) or self._pick(options, ood) or ""
            title = self._pick(options, ood)
            if title:
                return title
        if special and (not terms or not templates or self.rng.random() < 0.5):
            title = self._pick(special, ood)
            if title:
                return title
        if terms and templates:
            title = self._fill(templates, terms, ood, lang)
            if title:
                return title
        if lang != "en":  # no way to say it in this language: fall back to English
            return self._render(function, seniority, "en", ood)
        raise ValueError(f"no title vocabulary for {function}/{seniority}")

    def _fill(self, templates: list[str], terms: list[str], ood: bool, lang: str) -> str | None:
        term = self._pick(terms, ood)
        if term is None:
            return None
        forms = term.split("|")
        first, second = forms[0], forms[1] if len(forms) > 1 else forms[0]
        usable = [t for t in templates if "{S}" not in t or second]
        template = self._pick(usable, ood)
        if template is None:
            return None
        title = template.replace("{F}", first).replace("{S}", second)
        if lang == "fr":  # elision: "Chargé de achats" -> "Chargé d'achats"
            title = re.sub(r"\bde ([aeiouhéèêAEIOUÉ])", r"d'\1", title)
        return re.sub(r"\s+", " ", title).strip()

    # -- noise --------------------------------------------------------------------------------
    def _distort(self, title: str, ood: bool) -> str:
        n = self.noise
        if title and self.rng.random() < n.p_abbreviate:
            title = self._abbreviate(title, ood)
        if title and self.rng.random() < n.p_typo:
            title = self._typo(title)
        r = self.rng.random()
        if r < n.p_upper:
            title = title.upper()
        elif r < n.p_upper + n.p_lower:
            title = title.lower()
        return title

    def _abbreviate(self, title: str, ood: bool) -> str:
        for long, shorts in vocab.ABBREVIATIONS.items():
            if long in title and self.rng.random() < 0.7:
                short = self._pick(shorts, ood)
                if short:
                    title = re.sub(rf"\b{re.escape(long)}\b", short, title)
        return title

    def _typo(self, title: str) -> str:
        words = title.split(" ")
        long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if not long_words:
            return title
        i = long_words[self.rng.integers(len(long_words))]
        w = words[i]
        j = int(self.rng.integers(1, len(w) - 1))
        words[i] = slip(w, j, int(self.rng.integers(3)))
        return " ".join(words)
