"""Behavioural tests of a role model trained in this test session on the tiny dataset and
the bundled title lists (the default MiniLM encoder, a few epochs): invariance, direction,
real-style titles in several languages, activity."""

import numpy as np
import pandas as pd
import pytest

from buying_groups.data.examples import labelled_examples
from buying_groups.data.real_titles import knowledge_examples, persona_roles
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.train import train_role_model
from buying_groups.taxonomy import seniority_rank

from .conftest import compose_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_dataset, catalog, tmp_path_factory):
    # Without the frozen-layer cache: the recipe the real-style titles were checked on (the
    # cache changes training only by the frozen layers' dropout, but that is enough to move a
    # title or two of a model this small, differently on each host).
    overrides = ["experiment=tiny", "data_dir=unused", "trainer.epochs=6"]
    cfg = compose_config("train_roles", [*overrides, "trainer.cache_frozen_layers=false"])
    ex = labelled_examples(
        tiny_dataset.tables,
        tiny_dataset.labels,
        catalog,
        as_of=tiny_dataset.config.end,
        max_events=cfg.data.max_events,
    )
    # the title lists the real model learns from too (title-only contacts, their roles the
    # rules' for their persona)
    knowledge = knowledge_examples(
        cfg.title_lists,
        catalog,
        cfg.seed,
        repeat=cfg.title_list_repeat,
        roles=cfg.title_list_roles,
    )
    model, tok, _ = train_role_model(
        pd.concat([ex[ex["split"] == "train"], knowledge], ignore_index=True),
        ex[ex["split"] == "validation"],
        catalog,
        cfg.model,
        cfg.trainer,
        tmp_path_factory.mktemp("behaviour"),
        seed=cfg.seed,
    )
    return model, tok, ex


@pytest.fixture(scope="module")
def model(trained):
    model, tok, _ = trained

    def predict(titles, activities=None):
        frame = pd.DataFrame(
            {"job_title": titles, "activity_text": activities or [""] * len(titles)}
        )
        return decode(model.config, predict_proba(model, tok, frame))

    return predict


INVARIANT = [
    ["VP Procurement", "Vice President, Procurement", "vp procurement"],
    ["IT Director", "Director, IT", "Director of IT"],
    ["Head of Marketing", "HEAD OF MARKETING", "head of marketing"],
    ["Senior Software Engineer", "Sr. Software Engineer", "senior software engineer"],
    ["Chief Financial Officer", "CFO", "cfo"],
]


@pytest.mark.parametrize("titles", INVARIANT, ids=[t[0] for t in INVARIANT])
def test_invariance_to_case_abbreviation_and_word_order(model, titles):
    pred = model(titles)
    assert pred["function"].nunique() == 1, pred[["function", "seniority"]]
    assert pred["seniority"].nunique() == 1, pred[["function", "seniority"]]


DIRECTION = [
    ("Marketing Specialist", "Senior Marketing Specialist"),
    ("Data Analyst", "Senior Data Analyst"),
    ("Security Analyst", "Head of Security"),
    ("Procurement Specialist", "Head of Procurement"),
    ("Sales Manager", "Head of Sales"),
    ("Finance Analyst", "Senior Finance Analyst"),
]


@pytest.mark.parametrize(("base", "more"), DIRECTION, ids=[d[1] for d in DIRECTION])
def test_senior_or_head_of_never_lowers_seniority(model, base, more):
    pred = model([base, more])
    ranks = seniority_rank(pred["seniority"])
    assert ranks[1] >= ranks[0], list(pred["seniority"])


LANGUAGES = [
    "Head of Procurement",
    "Leiter Einkauf",
    "Directeur des achats",
    "Руководитель отдела закупок",
]


@pytest.mark.parametrize("title", LANGUAGES)
def test_same_persona_across_languages(model, title):
    pred = model([title])
    assert (pred["function"].iat[0], pred["seniority"].iat[0]) == ("procurement", "director")


def test_same_seniority_across_languages(model):
    assert set(model(LANGUAGES)["seniority"]) == {"director"}


# Real-style titles per function family and language, none of them a training title (the
# title lists, which drop every evaluation title, or the generator's vocabulary): the
# function must come out right.
REAL_STYLE = {
    "sales": [
        "Vertriebsleiterin DACH (m/w/d)",
        "Directrice Commerciale France",
        "Jefa de Ventas Zona Norte",
        "Менеджер по продажам B2B",
    ],
    "marketing": [
        "Leitung Marketing & Kommunikation",
        "Resp. Marketing Digital & Acquisition",
        "Gerente de Marketing y Comunicación",
        "Директор по маркетингу",
    ],
    "finance": [
        "Leiter Finanzbuchhaltung",
        "Directeur Administratif et Financier",
        "Contador General",
        "Главный бухгалтер",
    ],
    "information_technology": [
        "IT-Leiter",
        "Responsable Informatique et Réseaux",
        "Jefe de Sistemas Informáticos",
        "Начальник отдела ИТ",
    ],
    "human_resources": [
        "Referentin Personalentwicklung",
        "Chargée de recrutement",
        "Directora de Recursos Humanos",
        "Менеджер по персоналу",
    ],
    "procurement": [
        "Einkaufsleiterin",
        "Acheteuse Senior Industrie",
        "Jefe de Compras",
        "Руководитель отдела закупок",
    ],
    "executive": [
        "Inhaberin und Geschäftsführerin",
        "Président Directeur Général",
        "Socio Fundador y CEO",
        "Генеральный директор и основатель",
    ],
    "other": [
        "Oberärztin Kardiologie",
        "Professeure des écoles CM2",
        "Enfermera de quirófano",
        "Учитель английского языка",
    ],
}
# Every one must pass. Until 2026-12-07 five were marked xfail (not strict) as known
# failures of older recipes: "Contador General" read as executive, "Enfermera de quirófano"
# as a business function, "IT-Leiter", "Acheteuse Senior Industrie" and "Менеджер по
# продажам B2B" missed. With today's title lists all five pass with bf16 training on Intel
# Xeon (CI, 2026-12-07) and AMD EPYC, and with fp32 training on AMD EPYC (2026-12-07), so
# they are plain tests again.
REAL_CASES = [pytest.param(f, t, id=t) for f, titles in REAL_STYLE.items() for t in titles]

# Abbreviated titles as CRM reps type them (labelling guide, "Abbreviations and acronyms");
# none of them is in a title list. Before the abbreviated training titles (2026-12-06) the
# demo champion read "Sr. AE" as procurement and "TA Partner" as consulting.
ABBREVIATED = [
    ("sales", "Sr. AE - Enterprise"),
    ("human_resources", "HRBP - Operations"),
    ("finance", "Dir. FP&A"),
    ("procurement", "Resp. Achats Groupe"),
    ("sales", "Зам. нач. отдела продаж"),
    ("legal", "DPO - Group"),
    ("marketing", "Mktg Mgr DACH"),
]


@pytest.mark.parametrize(
    ("function", "title"), [*REAL_CASES, *(pytest.param(*a, id=a[1]) for a in ABBREVIATED)]
)
def test_real_style_titles_per_language(model, function, title):
    assert model([title])["function"].iat[0] == function


def test_roles_follow_the_reported_persona_without_activity(model, catalog):
    """Minimum functionality: a title with no activity gets, for every product, the role the
    spec's rules give the persona the model reports, for at least 95% of the real-style
    titles x products, whether or not the persona itself is right. (The tiny model passed
    this without the rules table too; the table's own checks are in test_role_model.)"""
    titles = [t for ts in REAL_STYLE.values() for t in ts]
    pred = model(titles)
    agree, off = [], []
    for p in catalog.products:
        got, want = pred[f"role_{p.name}"].to_numpy(), persona_roles(pred, p)
        agree.append(got == want)
        off += [(titles[i], p.name, got[i], want[i]) for i in np.flatnonzero(got != want)]
    assert np.concatenate(agree).mean() >= 0.95, off


ACTIVITY = [
    (
        "security",
        'downloaded "Phishing simulation kit"; downloaded "CVE weekly digest"; '
        "visited /blog/incident-postmortems",
    ),
    (
        "finance",
        'downloaded "Month-end close checklist"; downloaded "Budget planning template"; '
        "visited /blog/cash-flow",
    ),
    (
        "engineering",
        'downloaded "API design guidelines"; visited /blog/ci-cd-pipelines; '
        'downloaded "Code review checklist"',
    ),
]


@pytest.mark.parametrize(("function", "activity"), ACTIVITY, ids=[a[0] for a in ACTIVITY])
def test_activity_decides_function_for_an_empty_title(model, function, activity):
    assert model([""], [activity])["function"].iat[0] == function


@pytest.mark.parametrize("variant", ["bf16", "onnx", "onnx-int8"])
def test_inference_variant_agrees_with_fp32(trained, variant):
    """Every variant gives the fp32 model's labels for at least 98% of the predictions on a
    fixed sample (persona and every product's role), whether or not this CPU makes it
    faster."""
    from buying_groups.models.runtime import use_variant

    model, tok, ex = trained
    sample = ex[ex["split"] != "train"][["job_title", "activity_text"]].head(300)
    use_variant(model, tok, "fp32")
    reference = decode(model.config, predict_proba(model, tok, sample))
    use_variant(model, tok, variant)
    try:
        pred = decode(model.config, predict_proba(model, tok, sample))
    finally:
        use_variant(model, tok, "fp32")
    heads = [c for c in reference.columns if not c.endswith("_proba")]
    agreement = {h: float((pred[h] == reference[h]).mean()) for h in heads}
    # All predictions (persona and every product's role) pooled: at least 98% the same;
    # and no single head far off.
    assert sum(agreement.values()) / len(agreement) >= 0.98, agreement
    assert min(agreement.values()) >= 0.95, agreement
