"""The English gloss the transformer reads beside a title (models/glossary.py)."""

import pytest

from buying_groups.models.glossary import gloss, load_glossary, word_keys
from buying_groups.models.inference import RoleModelConfig, model_text

TINY = {"leiterin": "head", "einkauf": "purchasing", "vertrieb": "sales", "leiter": "head"}


def test_gloss_appends_english_words_once_and_in_order():
    assert gloss("Leiterin Einkauf (m/w/d)", TINY) == "Leiterin Einkauf (m/w/d) | head purchasing"
    assert gloss("LEITER Vertrieb / Leiterin Einkauf", TINY) == (
        "LEITER Vertrieb / Leiterin Einkauf | head sales purchasing"
    )


def test_gloss_leaves_titles_without_known_words_as_written():
    assert gloss("Head of Sales", TINY) == "Head of Sales"
    assert gloss("", TINY) == ""
    assert gloss("Leiterin Einkauf", {}) == "Leiterin Einkauf"


def test_gloss_reads_whole_words_only_without_compound_heads():
    assert gloss("Einkaufsleiterin", TINY) == "Einkaufsleiterin"  # a plain dict has no heads


@pytest.fixture
def german_dutch(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text(
        "word,gloss,language\n"
        "leiter,head,de\neinkauf,purchasing,de\nsachbearbeiter,clerk,de\n"
        "medewerker,employee,nl\nlector,professor,nl\nrrhh,hr,es\nresponsable,head,es fr\n"
        "direktor,director,ru de\nberater,consultant,de\nkollege,colleague,de\n"
        "kaufmann,clerk,de\nmonteur,fitter,de\nzona,area,es it\n",
        encoding="utf-8",
    )
    return load_glossary(path)


def test_german_words_get_their_female_forms(german_dutch):
    assert gloss("Beraterin", german_dutch) == "Beraterin | consultant"
    assert gloss("Beraterinnen", german_dutch) == "Beraterinnen | consultant"
    assert gloss("Kollegin", german_dutch) == "Kollegin | colleague"
    assert gloss("Kauffrau", german_dutch) == "Kauffrau | clerk"
    assert gloss("Responsablein", german_dutch) == "Responsablein"  # not a German word


def test_unknown_german_and_dutch_compounds_are_read_by_their_head(german_dutch):
    assert gloss("Einkaufsleiterin", german_dutch).endswith("| purchasing head")  # linking s
    assert gloss("Einkaufsachbearbeiter", german_dutch).endswith("| purchasing clerk")
    assert gloss("Gesamtleiter", german_dutch).endswith("| head")  # unknown modifier
    assert gloss("Generaldirektorin", german_dutch).endswith("| director")  # de among its languages
    assert gloss("Baliemedewerker", german_dutch).endswith("| employee")
    assert gloss("Obermonteurin", german_dutch).endswith("| senior fitter")  # rank prefix
    # a head needs 4+ letters before it; only German and Dutch words begin or end a compound
    assert gloss("Collector", german_dutch) == "Collector"
    assert gloss("Jefresponsable", german_dutch) == "Jefresponsable"
    assert gloss("Zonaleiter", german_dutch).endswith("| head")  # "zona" is not German


def test_compounds_with_english_parts_and_linking_elements(german_dutch):
    # English heads and first parts of German and Dutch compounds, and "-en" / "-n" links
    assert gloss("Einkaufsmanagerin", german_dutch).endswith("| purchasing manager")
    assert gloss("Personalleiterin", german_dutch).endswith("| hr head")
    assert gloss("Marketingsachbearbeiter", german_dutch).endswith("| marketing clerk")
    glossary = {**german_dutch, "-finanzen": "finance", "-kunde": "customer"}
    assert gloss("Finanzleiter", glossary).endswith("| finance head")  # Finanz(en)
    assert gloss("Kundenberaterin", glossary).endswith("| customer consultant")  # Kunde(n)
    # English stays unglossed: an English part alone, or an English first part as a head, and
    # the German form of an English word alone ("manager" appended made a Product Managerin a
    # people manager where the Product Manager is not)
    for title in ("Manager", "Sales Manager", "Interpersonal Skills Coach", "Telesales"):
        assert gloss(title, german_dutch) == title
    for title in ("Managerin", "Product Managerin", "Consultantin SAP", "UX-Designerinnen"):
        assert gloss(title, german_dutch) == title
    assert gloss("Product Managerin", {"managerin": "manager"}) == "Product Managerin"  # old models


def test_in_training_after_a_job_reads_as_a_trainee():
    glossary = load_glossary()
    assert gloss("Ärztin in Weiterbildung", glossary).endswith("| doctor trainee")
    assert gloss("Huisarts in opleiding", glossary).endswith("trainee")
    assert gloss("Leiter Weiterbildung", glossary).endswith("| head training")  # HR's word


def test_compounds_ending_in_an_abbreviated_head_are_read_as_the_full_word(german_dutch, tmp_path):
    assert gloss("Schichtltr. Produktion", german_dutch) == "Schichtltr. Produktion | head"
    assert gloss("Einkaufsltr.", german_dutch).endswith("| purchasing head")
    assert gloss("Einkaufssachb.", german_dutch).endswith("| purchasing clerk")
    assert gloss("Industriekfm.", german_dutch).endswith("| clerk")
    glossary = load_glossary()  # the bundled glossary has the heads and what comes before
    for title, read in [
        ("Gruppenltr. IT", "team lead"),  # listed Gruppenleiter
        ("Teamltr. Einkauf", "team lead purchasing"),  # 7 letters: shorter than a compound
        ("Abteilungsltg. Vertrieb", "department head sales"),
        ("Bürokffr.", "office clerk"),  # listed Bürokauffrau
        ("Lagermitarb.", "warehouse worker"),  # listed Lagermitarbeiter
        ("Personalref.", "hr specialist"),
        ("Servicetechn.", "service technician"),  # not "-techn", listed as "technical"
        ("Vertriebsassist.", "sales assistant"),
    ]:
        assert gloss(title, glossary).endswith("| " + read), title
    # the abbreviation needs 4+ letters before it, and a glossary with the full word as a
    # German head: with only "arbeiter" as one, "-sachb." is not read as "-arbeiter"
    assert gloss("Altr.", german_dutch) == "Altr."
    assert gloss("Maker Space Assist", glossary) == "Maker Space Assist"
    path = tmp_path / "heads.csv"
    path.write_text("word,gloss,language\narbeiter,worker,de\neinkauf,purchasing,de\n")
    assert gloss("Einkaufssachb.", load_glossary(path)) == "Einkaufssachb."


def test_dotted_abbreviations_are_joined_only_where_the_glossary_names_them(german_dutch):
    assert gloss("Directora de RR.HH. Iberia", german_dutch).endswith("| hr")
    assert gloss("Sr.Mgr. Einkauf", german_dutch) == "Sr.Mgr. Einkauf | purchasing"


def test_words_are_matched_without_case_or_accents():
    assert word_keys("Directeur Général-Adjoint") == ["directeur", "general", "adjoint"]
    assert gloss("Geschäftsführer", {"geschaftsfuhrer": "managing director"}).endswith(
        "| managing director"
    )


def test_bundled_glossary_covers_the_languages_and_no_english_title_word():
    glossary = load_glossary()
    assert len(glossary) >= 3000
    for title, word in [
        ("Leiterin Einkauf", "purchasing"),
        ("Responsable des achats", "purchasing"),
        ("Jefe de ventas", "sales"),
        ("Responsabile acquisti", "purchasing"),
        ("Hoofd inkoop", "purchasing"),
        ("Kierownik ds. sprzedaży", "sales"),
        ("Gerente de vendas", "sales"),
        ("Директор по продажам", "sales"),
    ]:
        assert word in gloss(title, glossary).split(" | ")[-1].split(), title
    english = [
        "Head of Sales",
        "Art Director",
        "Commis Chef",
        "Mineralogist",
        "Collector",
        "Gem Cutter",
        "Museum Docent",
        "Welding Robot Operator",
        "POS Graphic Designer",
    ]
    for title in english:  # English words are never glossed, whatever they mean elsewhere
        assert gloss(title, glossary) == title


def test_model_reads_the_gloss_only_when_trained_with_it():
    on = RoleModelConfig(products=["p"], glossary=TINY, transliterate=True)
    off = RoleModelConfig(products=["p"], transliterate=True)
    assert model_text("Leiterin Einkauf", on) == "Leiterin Einkauf | head purchasing"
    assert model_text("Leiterin Einkauf", off) == "Leiterin Einkauf"
    assert "glossary" not in on.to_dict()  # a table, not an MLflow parameter
    assert RoleModelConfig.from_json(on.to_json()).glossary == TINY


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("word,gloss\nLeiter,head\n", "line 2, column word"),
        ("word,gloss\nleiter,head\nleiter,boss\n", "line 3, column word.*repeated"),
        ("word,gloss\nleiter,Head!\n", "line 2, column gloss"),
        ("word,gloss\nleiter,\n", "line 2, column gloss"),
        ("wort,gloss\n", "expected columns"),
        ("word,gloss,language\nleiter,head,german\n", "line 2, column language"),
    ],
)
def test_bad_glossary_file_names_line_column_and_problem(tmp_path, text, problem):
    path = tmp_path / "g.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        load_glossary(path)
