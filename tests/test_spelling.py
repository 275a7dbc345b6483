"""The speller reads an unknown word one typing slip from a training-title word as that word,
and leaves every other word as written."""

import pandas as pd
import pytest

from buying_groups.data.title_typos import DOUBLED, DROPPED, SWAPPED, slip
from buying_groups.models.spelling import Speller, one_slip, spelling_vocabulary
from buying_groups.models.train import vocabulary_titles

TITLES = [
    "Sales Manager",
    "Marketing Manager",
    "Head of Finance",
    "VP Finance",
    "Einkaufsleiter",
    "Leiter Einkaufsleiter",
    "Директор по маркетингу",
    "Директор по продажам",
    "Менеджер по маркетингу",
    "Senior Controller",
    "Financial Controller",
]


@pytest.fixture
def speller() -> Speller:
    return Speller(spelling_vocabulary(TITLES), known={"manger", "dental"})


def test_vocabulary_counts_distinct_titles_and_keeps_words_of_two_or_more():
    vocabulary = spelling_vocabulary([*TITLES, "SALES MANAGER", "Sales Maanger"])
    assert vocabulary["manager"] == 2  # "SALES MANAGER" is "Sales Manager" again
    assert vocabulary["finance"] == 2 and vocabulary["директор"] == 2
    assert "maanger" not in vocabulary  # a slip is in one title only
    assert "head" not in vocabulary  # one title, and short


@pytest.mark.parametrize("kind", [SWAPPED, DROPPED, DOUBLED])
@pytest.mark.parametrize("word", ["manager", "finance", "controller", "einkaufsleiter"])
def test_every_slip_of_a_known_word_is_read_as_the_word(speller, word, kind):
    for i in range(1, len(word) - 1):
        slipped = slip(word, i, kind)
        if slipped != word and len(slipped) >= 5 and slipped not in speller.known:
            assert speller.word(slipped) == word, slipped


def test_a_title_keeps_its_case_and_its_other_words(speller):
    assert speller("Sales Maanger") == "Sales Manager"
    assert speller("VP FIANNCE (m/w/d)") == "VP FINANCE (m/w/d)"
    assert speller("einkausfleiter bei Globex") == "einkaufsleiter bei Globex"
    assert speller("Директор по маркетнигу") == "Директор по маркетингу"


def test_known_short_and_unrelated_words_stay_as_written(speller):
    for title in [
        "Sales Manger",  # known (here: as the encoder's words are)
        "Dental Hygienist",  # known, and "hygienist" is near no word
        "Heaf of Fnanace",  # "heaf" is short; "fnanace" is two slips from "finance"
        "Sales Manazer",  # a changed letter: often another real word ("Moldador", "Soldador")
        "Smles Manager Nanager",  # ... and at the first letter
        "Manager Financ Finances",  # a letter dropped or added at the end: an inflection
        "Sales Manager",
        "",
    ]:
        assert speller(title) == title


def test_two_equally_frequent_words_one_slip_away_are_not_guessed():
    speller = Speller({"leiter": 3, "leitor": 3, "manager": 5})
    assert speller.word("leitr") is None  # "leiter" or "leitor"?
    speller = Speller({"leiter": 4, "leitor": 3})
    assert speller.word("leitr") == "leiter"  # the one in more titles


def test_a_slip_is_a_swap_a_dropped_or_an_added_letter_inside_the_word():
    # written, meant
    assert one_slip("maanger", "manager") and one_slip("manger", "manager")
    assert one_slip("mannager", "manager") and one_slip("managre", "manager")
    assert not one_slip("manazer", "manager") and not one_slip("amnager", "manager")
    assert not one_slip("anager", "manager") and not one_slip("managers", "manager")
    assert not one_slip("manage", "manager") and not one_slip("manager", "manager")
    assert one_slip("fiance", "finance") and not one_slip("fnanace", "finance")
    assert not one_slip("metales", "metals")  # an added letter only where typed twice
    assert not one_slip("abcd", "adcb") and not one_slip("abc", "abcde")


def test_the_vocabulary_comes_from_real_titles_once_each():
    train = pd.DataFrame(
        {
            "contact_id": ["C1", "C2", "K0000001", "K0000001-1", "K0000002", "CNT-0042"],
            "job_title": [
                "Sales Manager",
                "Sales Manger",
                "Head of Sales",
                "Head of Sales bei Globex",
                None,
                "Kaufmann",
            ],
            "title_kind": ["normal", "vague", "knowledge", "knowledge", "knowledge", "crm"],
        }
    )
    # not the generator's titles, not a list title's training copy
    assert list(vocabulary_titles(train)) == ["Head of Sales", "Kaufmann"]
    own = train.drop(columns="title_kind")  # an own export read as is: every title
    assert len(vocabulary_titles(own)) == 5


def test_the_curated_lists_copies_do_not_make_a_word_known():
    from buying_groups.data.real_titles import knowledge_examples

    from .test_real_titles import _catalog

    args = {"repeat": {"curated": 3}, "context_noise": 0.3}
    titles = vocabulary_titles(knowledge_examples(["curated"], _catalog(), **args))
    once = vocabulary_titles(knowledge_examples(["curated"], _catalog()))
    assert spelling_vocabulary(titles) == spelling_vocabulary(once)


def test_decomposed_accents_and_accentless_known_words_stay_as_written():
    import unicodedata

    speller = Speller({"maquina": 3, "cientifico": 3, "medico": 4}, known={"medio"})
    for title in ["Operador de máquina", "Científico de datos", "Professor de nível médio"]:
        nfd = unicodedata.normalize("NFD", title)
        assert speller(nfd) == unicodedata.normalize("NFC", title)
