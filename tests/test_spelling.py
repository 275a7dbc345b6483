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
    assert speller("Директор по маркетинку") == "Директор по маркетингу"  # a changed letter


def test_known_short_and_unrelated_words_stay_as_written(speller):
    for title in [
        "Sales Manger",  # an encoder word: known
        "Dental Hygienist",  # known, and "hygienist" is near no word
        "Heaf of Fnanace",  # "heaf" is short; "fnanace" is two slips from "finance"
        "Sales Manager",
        "",
    ]:
        assert speller(title) == title


def test_two_equally_frequent_words_one_slip_away_are_not_guessed():
    speller = Speller({"leiter": 3, "leiten": 3, "manager": 5})
    assert speller.word("leitex") is None  # "leiter" or "leiten"?
    speller = Speller({"leiter": 4, "leiten": 3})
    assert speller.word("leitex") == "leiter"  # the one in more titles


def test_one_slip_is_optimal_string_alignment_distance_one():
    assert one_slip("manager", "maanger") and one_slip("manager", "manger")
    assert one_slip("manager", "mannager") and one_slip("manager", "manazer")
    assert not one_slip("manager", "manager") and not one_slip("manager", "mnaagre")
    assert one_slip("finance", "fiance") and not one_slip("finance", "fnanace")
    assert not one_slip("abcd", "badc") and not one_slip("abc", "abcde")


def test_the_vocabulary_comes_from_the_title_lists_not_the_generator():
    train = pd.DataFrame(
        {
            "job_title": ["Sales Manager", "Sales Manger", None, "Head of Sales"],
            "title_kind": ["normal", "normal", "knowledge", "knowledge"],
        }
    )
    assert list(vocabulary_titles(train)) == ["Head of Sales"]
    own = train.drop(columns="title_kind")  # an own export without lists: its own titles
    assert list(vocabulary_titles(own)) == ["Sales Manager", "Sales Manger", "Head of Sales"]
