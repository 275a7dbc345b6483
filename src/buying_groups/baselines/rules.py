"""The rules baseline: keyword persona parsing of job titles plus the spec's role rules.

This is what a marketing-ops team writes by hand: multilingual keyword lists, most specific
keyword first, seniority from the most senior keyword present. It reads only the title for
the persona (an empty or vague title falls back to ``other`` / ``professional``) and the
activity text only for advocacy (champions). The transformer has to beat it.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from buying_groups.taxonomy import ADVOCACY_KINDS, Catalog, assign_roles

# Function keywords. Matched as whole words/phrases on a normalised title; the longest match
# wins, so "sales operations" beats "operations" and "information security" beats
# "information".
FUNCTION_KEYWORDS: dict[str, list[str]] = {
    "executive": [
        "ceo",
        "chief executive",
        "founder",
        "co-founder",
        "cofounder",
        "owner",
        "president",
        "managing director",
        "general manager",
        "geschaftsfuhrer",
        "inhaber",
        "grunder",
        "vorstandsvorsitzender",
        "pdg",
        "directeur general",
        "directrice generale",
        "fondateur",
        "gerant",
        "director general",
        "directora general",
        "fundador",
        "propietario",
        "presidente",
        "consejero delegado",
        "генеральный директор",
        "основатель",
        "владелец",
        "собственник",
        "президент",
    ],
    "marketing": [
        "marketing",
        "mktg",
        "demand gen",
        "demand generation",
        "brand",
        "campaign",
        "campaigns",
        "cmo",
        "content marketing",
        "mercadotecnia",
        "маркетинг",
        "маркетингу",
        "маркетинга",
    ],
    "sales": [
        "sales",
        "account executive",
        "revops",
        "revenue operations",
        "vertrieb",
        "vertriebs",
        "commercial",
        "ventes",
        "ventas",
        "cro",
        "продаж",
        "продажам",
    ],
    "business_development": [
        "business development",
        "bizdev",
        "bdr",
        "sdr",
        "partnerships",
        "alliances",
        "geschaftsentwicklung",
        "developpement commercial",
        "desarrollo de negocio",
        "развитию бизнеса",
        "развития бизнеса",
    ],
    "customer_success": [
        "customer success",
        "customer support",
        "customer service",
        "client services",
        "support",
        "account manager",
        "kundenservice",
        "kundenbetreuung",
        "service client",
        "relation client",
        "atencion al cliente",
        "servicio al cliente",
        "soporte",
        "клиентского сервиса",
        "работе с клиентами",
    ],
    "information_technology": [
        "it",
        "information technology",
        "infrastructure",
        "systems",
        "network",
        "sysadmin",
        "system administrator",
        "cio",
        "informatique",
        "si",
        "sistemas",
        "ti",
        "tecnologia",
        "informatica",
        "informationstechnik",
        "ит",
    ],
    "security": [
        "security",
        "infosec",
        "cybersecurity",
        "cyber security",
        "secops",
        "soc",
        "ciso",
        "sicherheit",
        "it-sicherheit",
        "informationssicherheit",
        "securite",
        "cybersecurite",
        "seguridad",
        "ciberseguridad",
        "безопасности",
        "кибербезопасности",
    ],
    "engineering": [
        "engineering",
        "engineer",
        "software",
        "developer",
        "development",
        "r&d",
        "devops",
        "cto",
        "entwicklung",
        "softwareentwicklung",
        "ingenierie",
        "ingenieria",
        "desarrollo de software",
        "разработки",
        "разработке",
    ],
    "data_analytics": [
        "data",
        "analytics",
        "business intelligence",
        "bi",
        "data science",
        "data scientist",
        "cdo",
        "datenanalyse",
        "donnees",
        "datos",
        "analitica",
        "аналитики данных",
        "аналитике данных",
        "данных",
    ],
    "product_management": [
        "product management",
        "product manager",
        "product owner",
        "product",
        "produktmanagement",
        "produit",
        "producto",
        "продукта",
        "продукту",
    ],
    "project_management": [
        "project",
        "projects",
        "pmo",
        "program management",
        "programme management",
        "scrum master",
        "projektmanagement",
        "projets",
        "proyectos",
        "проектов",
        "проектам",
    ],
    "operations": [
        "operations",
        "ops",
        "supply chain",
        "logistics",
        "manufacturing",
        "production",
        "coo",
        "logistik",
        "produktion",
        "logistique",
        "operaciones",
        "logistica",
        "produccion",
        "логистики",
        "производства",
        "операций",
    ],
    "finance": [
        "finance",
        "financial",
        "accounting",
        "accountant",
        "controlling",
        "controller",
        "fp&a",
        "treasury",
        "cfo",
        "finanzen",
        "buchhaltung",
        "comptabilite",
        "finanzas",
        "contabilidad",
        "финансов",
        "финансам",
    ],
    "legal": [
        "legal",
        "counsel",
        "compliance",
        "privacy",
        "contracts",
        "paralegal",
        "recht",
        "datenschutz",
        "juridique",
        "conformite",
        "juridica",
        "cumplimiento",
        "правового",
        "юридическ",
    ],
    "human_resources": [
        "hr",
        "human resources",
        "people",
        "talent",
        "recruiter",
        "recruiting",
        "chro",
        "personal",
        "personalwesen",
        "ressources humaines",
        "rh",
        "recursos humanos",
        "rrhh",
        "персонала",
        "персоналу",
    ],
    "procurement": [
        "procurement",
        "purchasing",
        "sourcing",
        "buyer",
        "vendor management",
        "einkauf",
        "beschaffung",
        "achats",
        "compras",
        "adquisiciones",
        "закупок",
        "закупкам",
        "снабжения",
    ],
    "administrative": [
        "assistant",
        "executive assistant",
        "office manager",
        "receptionist",
        "secretary",
        "administration",
        "assistenz",
        "sekretarin",
        "assistante",
        "secretaire",
        "asistente",
        "secretaria",
        "ассистент",
        "секретарь",
    ],
    "consulting": [
        "consultant",
        "consulting",
        "advisory",
        "berater",
        "beratung",
        "conseil",
        "consultor",
        "consultoria",
        "консультант",
        "консалтинг",
    ],
    "other": [
        "student",
        "teacher",
        "nurse",
        "physician",
        "retired",
        "professor",
        "studentin",
        "lehrer",
        "arzt",
        "etudiant",
        "enseignant",
        "medecin",
        "estudiante",
        "profesor",
        "medico",
        "студент",
        "учитель",
        "врач",
        "пенсионер",
    ],
}

# Seniority keywords, most senior level first.
SENIORITY_KEYWORDS: list[tuple[str, list[str]]] = [
    (
        "executive",
        [
            "chief",
            "ceo",
            "cfo",
            "cio",
            "cto",
            "cmo",
            "coo",
            "ciso",
            "cro",
            "cdo",
            "chro",
            "founder",
            "co-founder",
            "owner",
            "president",
            "managing director",
            "general manager",
            "partner",
            "general counsel",
            "geschaftsfuhrer",
            "inhaber",
            "vorstand",
            "pdg",
            "directeur general",
            "fondateur",
            "director general",
            "fundador",
            "propietario",
            "presidente",
            "генеральный директор",
            "основатель",
            "владелец",
        ],
    ),
    (
        "vp",
        [
            "vp",
            "vice president",
            "svp",
            "evp",
            "global head",
            "group head",
            "vice-president",
            "vicepresidente",
            "вице-президент",
        ],
    ),
    (
        "director",
        [
            "director",
            "head of",
            "head",
            "leiter",
            "leiterin",
            "abteilungsleiter",
            "directeur",
            "directrice",
            "directora",
            "руководитель отдела",
            "начальник отдела",
            "директор",
        ],
    ),
    (
        "manager",
        [
            "manager",
            "mgr",
            "team lead",
            "supervisor",
            "teamleiter",
            "gruppenleiter",
            "responsable",
            "jefe",
            "gerente",
            "руководитель группы",
        ],
    ),
    (
        "senior",
        [
            "senior",
            "sr",
            "lead",
            "principal",
            "architect",
            "expert",
            "fachexperte",
            "experto",
            "ведущий",
            "старший",
        ],
    ),
    (
        "entry",
        [
            "intern",
            "trainee",
            "junior",
            "jr",
            "student",
            "praktikant",
            "werkstudent",
            "stagiaire",
            "becario",
            "practicante",
            "стажер",
            "стажёр",
            "младший",
        ],
    ),
]

ADVOCACY_PHRASES = {
    "requested_demo": "requested demo",
    "started_trial": "started trial",
    "attended_workshop": "attended hands-on workshop",
    "requested_pricing": "requested pricing",
    "invited_colleague": "invited colleague",
}
assert set(ADVOCACY_PHRASES) == set(ADVOCACY_KINDS)


def normalise(title: str) -> str:
    """Lower-case, strip accents (keeping Cyrillic), turn punctuation into spaces."""
    text = unicodedata.normalize("NFKD", str(title).lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w&+\-]+", " ", text)
    return f" {' '.join(text.split())} "


def _compile(words: list[str]) -> re.Pattern[str]:
    alts = sorted({normalise(w).strip() for w in words}, key=len, reverse=True)
    return re.compile(r"(?<![\w])(" + "|".join(re.escape(a) for a in alts) + r")(?![\w])")


_FUNCTION_PATTERNS = {f: _compile(ws) for f, ws in FUNCTION_KEYWORDS.items()}
_SENIORITY_PATTERNS = [(s, _compile(ws)) for s, ws in SENIORITY_KEYWORDS]


_VICE = re.compile(r"(vice president|vice-president|vicepresidente|вице-президент)")


def match_function(title: str) -> str | None:
    """The function whose longest keyword occurs in the title; None when none does.
    ("Vice president" is seniority, not the executive function.)"""
    text = _VICE.sub(" ", normalise(title))
    best, best_len = None, 0
    for function, pattern in _FUNCTION_PATTERNS.items():
        for m in pattern.finditer(text):
            if len(m.group(1)) > best_len:
                best, best_len = function, len(m.group(1))
    return best


def parse_function(title: str) -> str:
    """``match_function``, or ``other`` when no keyword occurs in the title."""
    return match_function(title) or "other"


def match_seniority(title: str) -> str | None:
    """The level of the longest seniority keyword in the title (ties: the more senior);
    None when none occurs. Longest-first keeps "vice president" from reading as
    "president"."""
    text = normalise(title)
    best, best_len = None, 0
    for seniority, pattern in _SENIORITY_PATTERNS:  # most senior first: ties keep it
        for m in pattern.finditer(text):
            if len(m.group(1)) > best_len:
                best, best_len = seniority, len(m.group(1))
    return best


def parse_seniority(title: str) -> str:
    """``match_seniority``, or ``professional`` when no keyword occurs in the title."""
    return match_seniority(title) or "professional"


def advocacy_from_text(activity_text: pd.Series, products: tuple[str, ...]) -> pd.DataFrame:
    """Distinct advocacy kinds per product mentioned in each activity text."""
    out = {}
    for p in products:
        count = np.zeros(len(activity_text), dtype=int)
        for phrase in ADVOCACY_PHRASES.values():
            pat = re.escape(phrase) + r"[^;]*\(" + re.escape(p) + r"\)"
            count += activity_text.fillna("").str.contains(pat, regex=True).to_numpy()
        out[p] = count
    return pd.DataFrame(out, index=activity_text.index)


class RulesBaseline:
    """Predict persona from title keywords, then roles by the spec's rules."""

    name = "rules"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """``inputs`` has ``job_title`` and ``activity_text``; returns ``function``,
        ``seniority`` and ``role_<product>`` columns on the same index."""
        titles = inputs["job_title"].fillna("").astype(str)
        out = pd.DataFrame(index=inputs.index)
        out["function"] = titles.map(parse_function)
        out["seniority"] = titles.map(parse_seniority)
        adv = advocacy_from_text(inputs["activity_text"].astype(str), self.catalog.names)
        for product in self.catalog.products:
            out[f"role_{product.name}"] = assign_roles(
                out["function"], out["seniority"], adv[product.name], product
            )
        return out
