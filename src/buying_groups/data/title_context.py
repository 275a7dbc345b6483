"""Words a CRM or CV title carries that say nothing about the person: an employer, a place, a
work mode, a gender tag ("Einkaufsleiter bei Müller Logistik GmbH", "SDR @ Hooli", "Head of
IT, DACH", "Buchhalter (m/w/d)"). Training copies of real titles with one of them teach the
role model to read past them: without, an employer such as "at Globex Inc." changed the
function of 6.5% of the real evaluation titles (docs/benchmarks.md).

The fillers here are for training only; ``models.invariance`` (logged by ``bg-train-roles``,
all its contexts in ``scripts/title_invariance.py``) measures with others (Globex, Berlin,
EMEA, Remote), so it stays a check on words the model never saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Employers, some with a sector word, so that a word after "at" is learned as the employer's,
# not the person's ("Nordbank AG" says nothing about a "Key Account Manager" there).
EMPLOYERS = (
    "Northwind Traders", "Contoso Ltd", "Fabrikam", "Initech", "Hooli", "Vandelay Industries",
    "Nordbank AG", "Müller Logistik GmbH", "Acme Software", "Stadtwerke Lindau",
    "Banco Atlântico", "Groupe Lumière", "Rossi Costruzioni S.p.A.", "Van Dijk Bouw B.V.",
    "Polmex Sp. z o.o.", "ООО Вектор", "Siemens AG", "Deloitte", "Telekom", "SAP SE",
    "Allianz", "Carrefour", "Santander", "Philips", "Orlen", "Сбербанк", "Stellantis",
    "Kühne + Nagel", "Pharma Nord", "Hotel Adler", "Klinikum Süd", "Data Systems Inc.",
)  # fmt: skip
AT = {  # "title at employer" in the title's language
    "en": ("{t} at {x}",), "de": ("{t} bei {x}",), "fr": ("{t} chez {x}", "{t} - {x}"),
    "es": ("{t} en {x}",), "it": ("{t} presso {x}", "{t} in {x}"),
    "pt": ("{t} na {x}", "{t} no {x}"), "nl": ("{t} bij {x}",),
    "pl": ("{t} w {x}", "{t} - {x}"), "ru": ("{t} в {x}", "{t}, {x}"),
}  # fmt: skip
CITIES = (
    "Hamburg", "München", "Wien", "Zürich", "London", "Manchester", "New York", "Chicago",
    "Paris", "Lyon", "Madrid", "Barcelona", "Milano", "Roma", "Lisboa", "São Paulo",
    "Amsterdam", "Rotterdam", "Warszawa", "Kraków", "Москва", "Dublin", "Toronto",
)  # fmt: skip
REGIONS = ("DACH", "APAC", "Nordics", "LATAM", "Benelux", "North America", "CEE", "UK&I")
WORK = ("Hybrid", "Homeoffice", "Teilzeit", "Part-time", "Télétravail", "Remoto", "Freelance")
GENDER = {
    "de": ("(m/w/d)", "(w/m/d)", "(m/f/d)", "(all genders)"), "fr": ("(H/F)", "(F/H)"),
    "es": ("(h/m)",), "it": ("(m/f)",), "nl": ("(m/v)", "(m/v/x)"), "pl": ("(k/m)",),
    "en": ("(m/f/d)",), "pt": ("(m/f)",), "ru": ("",),
}  # fmt: skip
# Each form: its templates ({t} the title, {x} the context) and the words {x} is drawn from,
# by language ("en" for a language without its own); no words: the employer.
FORMS = {
    "at": (AT, None),
    "@": ({"en": ("{t} @ {x}",)}, None),
    "|": ({"en": ("{t} | {x}",)}, None),
    "(employer)": ({"en": ("{t} ({x})",)}, None),
    "city": ({"en": ("{t} - {x}", "{t}, {x}", "{t} – {x}", "{t} | {x}")}, {"en": CITIES}),
    "region": ({"en": ("{t} {x}", "{t}, {x}", "{t} - {x}")}, {"en": REGIONS}),
    "work": ({"en": ("{t} ({x})",)}, {"en": WORK}),
    "gender": ({"en": ("{t} {x}",)}, GENDER),
}


def add_context(title: str, language: str, rng: np.random.Generator) -> str:
    """``title`` with one context of a random form, in its language where that matters."""
    pick = lambda items: items[rng.integers(len(items))]  # noqa: E731
    in_language = lambda table: table.get(language, table["en"])  # noqa: E731
    employer = pick(EMPLOYERS)
    templates, words = FORMS[pick(tuple(FORMS))]
    template = pick(in_language(templates))
    context = employer if words is None else pick(in_language(words))
    return template.format(t=title, x=context).rstrip()  # Russian has no gender tag


def with_context(
    titles: pd.Series, languages: pd.Series, rng: np.random.Generator, share: float
) -> np.ndarray:
    """A seeded ``share`` of ``titles`` with a context added (``add_context``); the rest as
    they are. Empty titles stay empty."""
    chosen = rng.random(len(titles)) < share
    return np.array(
        [
            add_context(t, lang, rng) if c and t else t
            for t, lang, c in zip(titles, languages, chosen, strict=True)
        ],
        dtype=object,
    )
