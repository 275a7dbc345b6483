import re
from collections import Counter

import numpy as np
import pytest

from buying_groups.data import vocab
from buying_groups.data.titles import TitleComposer, held_out_terms, split_vocab
from buying_groups.taxonomy import FUNCTIONS


def test_split_vocab():
    assert split_vocab(["a", "~b", "c"]) == (["a", "c"], ["b"])


def _contains(title: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", title) is not None


def test_held_out_vocabulary_never_appears_in_distribution(tiny_dataset):
    """The OOD split measures generalisation only if its phrasings are unseen in training."""
    held = held_out_terms()
    seen_vocab = set()
    for table in (vocab.FUNCTION_TERMS, vocab.C_LEVEL, vocab.SPECIAL, vocab.ABBREVIATIONS):

        def walk(node):
            if isinstance(node, dict):
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for x in split_vocab(node)[0]:
                    seen_vocab.update(x.split("|"))

        walk(table)
    # Only terms that cannot arise from in-distribution parts are checked.
    distinctive = {t for t in held if not any(_contains(s, t) for s in seen_vocab)}
    assert len(distinctive) > 50
    labels = tiny_dataset.labels["contact_labels"].set_index("contact_id")
    contacts = tiny_dataset.tables["contacts"].set_index("contact_id")
    in_titles = contacts.loc[labels["vocab"] == "in", "job_title"]
    leaks = {t for t in distinctive if in_titles.map(lambda s, t=t: _contains(s, t)).any()}
    assert not leaks
    ood_titles = contacts.loc[labels["vocab"] == "ood", "job_title"]
    used = sum(ood_titles.map(lambda s: any(_contains(s, t) for t in distinctive)))
    assert used / len(ood_titles) > 0.3  # the OOD split really is out of distribution


@pytest.mark.parametrize("lang", vocab.LANGUAGES)
def test_every_persona_can_be_titled_in_every_language(lang):
    composer = TitleComposer(np.random.default_rng(0))
    composer.noise.p_empty = composer.noise.p_vague = 0.0
    for f in FUNCTIONS:
        for s in ("entry", "professional", "senior"):
            if f == "executive":
                continue
            title, kind = composer.compose(f, s, lang, ood=False)
            assert title and kind in ("normal", "dual")


def test_title_noise_shares():
    composer = TitleComposer(np.random.default_rng(1))
    kinds = Counter(composer.compose("marketing", "manager", "en", False)[1] for _ in range(4000))
    assert 0.035 < kinds["empty"] / 4000 < 0.065
    assert 0.025 < kinds["vague"] / 4000 < 0.055
    titles = [composer.compose("marketing", "director", "en", False)[0] for _ in range(500)]
    assert len(set(titles)) > 40  # compositional, not a short list
    assert any(t.isupper() for t in titles) and any(t.islower() for t in titles if t)
