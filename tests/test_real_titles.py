"""The bundled real-title evaluation set, the training title lists and what keeps them apart;
transliteration; the real-title metrics and the promotion gate they feed."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buying_groups.baselines.rules import match_seniority
from buying_groups.data.real_titles import (
    LABEL_PRECEDENCE,
    RESOURCE_DIR,
    TRAINING_LISTS,
    calibration_titles,
    knowledge_examples,
    read_title_list,
    real_title_eval,
    title_key,
)
from buying_groups.data.title_typos import add_typo, with_typos
from buying_groups.models.evaluation import (
    confidence_table,
    real_title_metrics,
    real_title_table,
)
from buying_groups.models.inference import RoleModelConfig, model_text
from buying_groups.models.invariance import (
    context_invariance,
    invariance_table,
    title_contexts,
    with_title_context,
)
from buying_groups.qualify.promotion import decide
from buying_groups.taxonomy import FUNCTIONS, SENIORITIES

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
LANGUAGES = {"en", "de", "fr", "es", "ru", "pt", "it", "nl", "pl"}


def test_eval_set_is_large_labelled_and_multilingual():
    real = real_title_eval()
    assert len(real) >= 1500
    assert set(real["function"]) <= set(FUNCTIONS)
    assert set(real["seniority"]) <= set(SENIORITIES)
    counts = real["language"].value_counts()
    assert set(counts.index) == LANGUAGES
    assert (counts >= 50).all(), counts
    assert (real["activity_text"] == "").all()
    assert not real["job_title"].map(title_key).duplicated().any()  # each title counts once
    # every function of the taxonomy is represented
    assert set(real["function"]) == set(FUNCTIONS)


def test_no_training_title_is_an_eval_title():
    catalog = _catalog()
    held = {title_key(t) for t in real_title_eval()["job_title"]}
    examples = knowledge_examples(list(TRAINING_LISTS), catalog)
    assert not {title_key(t) for t in examples["job_title"]} & held
    # the exclusion is by title_key: case, accents and punctuation do not get a title through
    curated = read_title_list(RESOURCE_DIR / TRAINING_LISTS["curated"])["title"]
    first = curated.iloc[0]
    kept = knowledge_examples(["curated"], catalog, case_noise=0.0, exclude=[])
    noisy = f" {first.upper()}!"
    dropped = knowledge_examples(["curated"], catalog, case_noise=0.0, exclude=[noisy])
    assert first in set(kept["job_title"]) and first not in set(dropped["job_title"])
    assert len(dropped) == len(kept) - 1


@pytest.mark.parametrize(
    ("name", "size", "languages"),
    [
        ("probe_de_abbreviated_heads.csv", 90, {"de"}),
        ("probe_cv_titles.csv", 333, {"en", "de", "fr", "es", "it"}),
        ("probe_cv2_titles.csv", 384, {"en", "de", "fr", "es", "it", "nl"}),
    ],
)
def test_a_probe_is_labelled_and_in_no_other_list(name, size, languages):
    # scripts/probe_*.csv: written after the model they check, from none of the bundled titles
    # (docs/benchmarks.md); they must stay out of training and evaluation, and of each other
    probe = real_title_eval(SCRIPTS / name)
    assert len(probe) == size and set(probe["language"]) == languages
    keys = set(probe["job_title"].map(title_key))
    assert len(keys) == len(probe)
    assert not keys & {title_key(t) for t in real_title_eval()["job_title"]}
    for listed in TRAINING_LISTS.values():  # the lists themselves, not examples built from them
        assert not keys & set(read_title_list(RESOURCE_DIR / listed)["title"].map(title_key))
    for other in SCRIPTS.glob("probe_*.csv"):
        if other.name != name:
            assert not keys & set(read_title_list(other)["title"].map(title_key)), other.name


@pytest.mark.parametrize(
    ("name", "apprentice"), [("bls", "apprentice"), ("esco", "apprentice"), ("occupations", None)]
)
def test_parsed_seniority_guesses_are_masked(name, apprentice):
    """A BLS, ESCO or occupations title's seniority is the rules' keyword parse: kept where a
    keyword matched, the parser's default ("professional") masked."""
    titles = knowledge_examples([name], _catalog(), case_noise=0.0)
    guessed = titles["job_title"].map(match_seniority).isna()
    assert guessed.any() and (~guessed).any()
    assert titles.loc[guessed, "seniority"].isna().all()
    kept = titles.loc[~guessed]
    assert (kept["seniority"] == kept["job_title"].map(match_seniority)).all()
    assert titles["function"].notna().all()  # the function labels stay
    if apprentice:  # a word the parser reads as no level
        apprentices = titles[titles["job_title"].str.contains(apprentice, case=False)]
        assert len(apprentices) and apprentices["seniority"].isna().all()


def test_a_title_in_two_lists_keeps_the_most_direct_labels_and_lists_can_repeat():
    """Hand labels win over distant ones whatever order ``title_lists`` names (BLS' group
    label "other" for "Copywriter", ESCO's parsed "manager" for "Project Manager" lost to the
    curated labels; ESCO's hand-given function wins over BLS'); ``repeat`` copies a list's
    training titles."""
    assert set(LABEL_PRECEDENCE) == set(TRAINING_LISTS)  # a new list must be ranked
    catalog = _catalog()
    both = knowledge_examples(["bls", "esco", "curated"], catalog, case_noise=0.0)
    keys = both["job_title"].map(title_key)
    assert keys.is_unique
    lists = {n: read_title_list(RESOURCE_DIR / TRAINING_LISTS[n]) for n in ("curated", "esco")}
    for name, listed in lists.items():
        listed = listed.assign(key=listed["title"].map(title_key)).drop_duplicates("key")
        if name == "esco":  # ESCO's titles that the curated list does not hold
            listed = listed[~listed["key"].isin(lists["curated"]["title"].map(title_key))]
        listed = listed.set_index("key")
        shared = both[keys.isin(listed.index)]
        assert len(shared) > 1000 and (shared["vocab"] == name).all()
        assert (shared["function"].to_numpy() == listed.loc[keys[shared.index], "function"]).all()
    persona = both.set_index("job_title")
    assert persona.loc["Copywriter", "function"] == "marketing"
    assert persona.loc["Project Manager", "seniority"] == "professional"

    once = knowledge_examples(["bls", "curated"], catalog, case_noise=0.0)
    twice = knowledge_examples(["bls", "curated"], catalog, case_noise=0.0, repeat={"curated": 2})
    curated_train = (once["vocab"] == "curated") & (once["split"] == "train")
    assert len(twice) == len(once) + curated_train.sum()
    assert twice["contact_id"].is_unique
    assert (twice["split"] == "validation").sum() == (once["split"] == "validation").sum()


def test_copies_carry_context_that_keeps_their_labels():
    catalog = _catalog()
    plain = knowledge_examples(["curated"], catalog, case_noise=0.0, repeat={"curated": 3})
    noisy = knowledge_examples(
        ["curated"], catalog, case_noise=0.0, repeat={"curated": 3}, context_noise=0.3
    )
    assert len(noisy) == len(plain)  # no extra rows: the copies change, not their number
    copy = noisy["contact_id"].str.contains("-")
    changed = noisy["job_title"] != plain["job_title"]
    assert not (changed & ~copy).any()  # originals and validation titles stay as written
    assert 0.2 < changed[copy].mean() < 0.4
    for col in ("function", "seniority", "split", "language"):  # the labels travel
        pd.testing.assert_series_equal(noisy[col], plain[col])
    # each changed title is the original with words added, in the title's language
    assert all(
        n.startswith(p)
        for n, p in zip(noisy["job_title"][changed], plain["job_title"][changed], strict=True)
    )
    german = noisy[changed & (noisy["language"] == "de")]["job_title"]
    assert german.str.contains(" bei ").any() and not german.str.contains(" chez ").any()


def test_a_typo_is_one_slip_in_one_word_and_copies_keep_their_labels():
    rng = np.random.default_rng(0)
    for title in ["Sales Manager", "Leiterin Einkauf (m/w/d)", "Директор по маркетингу"]:
        slips = {add_typo(title, rng) for _ in range(60)}
        assert title not in slips and len(slips) > 10
        for slip in slips:
            # one word differs, by one letter dropped, doubled or two neighbours swapped
            diff = [(a, b) for a, b in zip(title.split(), slip.split(), strict=True) if a != b]
            assert len(diff) == 1
            a, b = diff[0]
            inner = range(1, len(a) - 1)  # the first letter stays
            kinds = {a[:i] + a[i + 1 :] for i in inner} | {a[: i + 1] + a[i:] for i in inner}
            kinds |= {a[:i] + a[i + 1] + a[i] + a[i + 2 :] for i in inner}
            assert b in kinds
    assert add_typo("CFO / VP", rng) == "CFO / VP"  # no word of 4+ letters
    assert list(with_typos(pd.Series(["", "Controller"]), rng, 1.0))[0] == ""
    catalog = _catalog()
    args = {"case_noise": 0.0, "repeat": {"curated": 3}}
    plain = knowledge_examples(["curated"], catalog, **args)
    typos = knowledge_examples(["curated"], catalog, **args, typo_noise=0.25)
    copy = typos["contact_id"].str.contains("-")
    changed = typos["job_title"] != plain["job_title"]
    assert not (changed & ~copy).any()  # originals and validation titles as written
    assert 0.15 < changed[copy].mean() < 0.3
    for col in ("function", "seniority", "split", "language"):
        pd.testing.assert_series_equal(typos[col], plain[col])
    # with contexts: the slips draw from their own stream, so every context stays where it was
    # (and title_list_typo=0 trains on what it did before slips existed)
    context = knowledge_examples(["curated"], catalog, **args, context_noise=0.3)
    both = knowledge_examples(["curated"], catalog, **args, context_noise=0.3, typo_noise=0.25)
    slipped = both["job_title"] != context["job_title"]
    assert 0.15 < slipped[copy].mean() < 0.3
    for a, b in zip(context["job_title"][slipped], both["job_title"][slipped], strict=True):
        assert len(a.split()) == len(b.split()) and abs(len(a) - len(b)) <= 1


def test_knowledge_examples_are_title_only_with_masked_roles():
    catalog = _catalog()
    ex = knowledge_examples(["curated"], catalog, seed=3, roles=False)
    assert len(ex) > 500
    assert (ex["activity_text"] == "").all()
    # a stable share of the titles is held out for validation (choices, never training)
    share = (ex["split"] == "validation").mean()
    assert set(ex["split"]) == {"train", "validation"} and 0.1 < share < 0.2
    for p in catalog.names:
        assert ex[f"role_{p}"].isna().all()
        assert (ex[f"advocacy_{p}"] == 0).all()
    # case noise adds ALL CAPS copies, seeded
    assert ex["job_title"].str.isupper().sum() > 10
    again = knowledge_examples(["curated"], catalog, seed=3, roles=False)
    pd.testing.assert_frame_equal(ex, again)
    assert knowledge_examples([], catalog).empty
    with pytest.raises(ValueError, match="unknown title list"):
        knowledge_examples(["nope"], catalog)


def test_bad_title_list_names_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "title,function,seniority,language\nCFO,finance,executive,en\nX,finanse,entry,en\n"
    )
    with pytest.raises(ValueError, match=r"bad.csv, line 3, column 'function'.*'finanse'"):
        read_title_list(path)
    # a path given as text (as scripts pass it) gets the same message, not an AttributeError
    (tmp_path / "short.csv").write_text("job_title,function\nCFO,finance\n")
    with pytest.raises(ValueError, match=r"short.csv: missing column\(s\) \['title'"):
        real_title_eval(str(tmp_path / "short.csv"))


def test_transliteration_only_for_models_trained_with_it():
    on = RoleModelConfig(products=["p"], transliterate=True)
    off = RoleModelConfig(products=["p"])
    assert model_text("Директор по маркетингу", on) == "Direktor po marketingu"
    assert model_text("Руководитель отдела закупок", on) == "Rukovoditel otdela zakupok"
    assert model_text("Нач. отдела ИТ / CIO", on) == "Nach. otdela IT / CIO"
    assert model_text("Директор", off) == "Директор"
    assert model_text("Leiterin Einkauf", on) == "Leiterin Einkauf"


def test_real_title_metrics_overall_and_per_language():
    truth = pd.DataFrame(
        {
            "function": ["sales"] * 60 + ["finance"] * 40,
            "seniority": ["manager"] * 100,
            "language": ["en"] * 60 + ["xx"] * 40,  # xx: under 50 titles, no figures of its own
        }
    )
    pred = truth.copy()
    pred.loc[:9, "function"] = "marketing"
    m = real_title_metrics(truth, pred)
    assert m["real/function_accuracy"] == pytest.approx(0.9)
    assert m["real/en/function_accuracy"] == pytest.approx(50 / 60)
    assert m["real/seniority_macro_f1"] == 1.0
    assert not any(k.startswith("real/xx/") for k in m)
    table = real_title_table(m)
    assert list(table.index) == ["all", "en"]
    assert "real/function_calibration_error" not in m  # no probabilities, no figure
    pred["function_proba"] = 0.95  # says 0.95, right 0.9 of the time
    m = real_title_metrics(truth, pred)
    assert m["real/function_calibration_error"] == pytest.approx(0.05)
    assert "function_calibration_error" not in real_title_table(m).columns


def test_context_invariance_counts_personas_that_move():
    real = pd.DataFrame(
        {
            "job_title": ["VP sales", "sales rep", "Buchhalter", ""],
            "language": ["en", "en", "de", "en"],
            "function": ["sales", "sales", "finance", "other"],
            "seniority": ["vp", "individual_contributor"] * 2,
        }
    )

    def predict(frame: pd.DataFrame) -> pd.DataFrame:  # a case-sensitive keyword reader
        t = frame["job_title"]
        return pd.DataFrame(
            {
                "function": np.where(t.str.contains("sales"), "sales", "other"),
                "seniority": np.where(t.str.contains("VP"), "vp", "individual_contributor"),
            }
        )

    assert list(with_title_context(real, "employer")["job_title"]) == [
        "VP sales at Globex Inc.", "sales rep at Globex Inc.", "Buchhalter bei Globex GmbH", ""
    ]  # fmt: skip
    m, preds = context_invariance(predict, real, predict(real), ["employer", "all_caps"])
    # over the three rows with a title (the blank one cannot move)
    assert m["real_context/employer_function_same"] == 1.0
    assert m["real_context/employer_function_accuracy"] == pytest.approx(2 / 3)  # as bare
    assert m["real_context/all_caps_function_same"] == pytest.approx(1 / 3)  # SALES unread
    assert m["real_context/all_caps_seniority_same"] == 1.0
    assert set(preds) == {"employer", "all_caps"}
    # typo: the longest word's two middle letters swapped, the same slip every time
    assert list(with_title_context(real, "typo")["job_title"]) == [
        "VP slaes", "slaes rep", "Buchahlter", ""
    ]  # fmt: skip
    slip = {
        t: with_title_context(pd.DataFrame({"job_title": [t], "language": ["en"]}), "typo")
        for t in ["Sales Manager", "Director Director", "Head of IT", "Installation"]
    }
    assert [s["job_title"].iat[0] for s in slip.values()] == [
        "Sales Maanger",
        "Dircetor Director",
        "Head of IT",
        "Installation",
    ]  # the longest word, its first occurrence; none of 5+ letters or equal middle letters
    typo, _ = context_invariance(predict, real, predict(real), ["typo"])
    assert typo["real_context/typo_function_same"] == pytest.approx(1 / 3)  # "slaes" unread
    table = invariance_table(m)
    assert list(table.index) == ["employer", "all_caps"]
    assert table.loc["all_caps", "function_same"] == pytest.approx(1 / 3)
    # a context whose name starts another's keeps its own row
    table = invariance_table(
        {"real_context/city_de_function_same": 1, "real_context/city_function_same": 0}
    )
    assert table.loc["city_de", "function_same"] == 1 and table.loc["city", "function_same"] == 0
    assert title_contexts("employer") == ["employer"] and title_contexts(None) == []
    with pytest.raises(ValueError, match="real_title_contexts: unknown 'emoji'; choose from"):
        context_invariance(predict, real, predict(real), ["employer", "emoji"])


def test_confidence_table_says_how_right_each_band_is():
    truth = pd.DataFrame({"function": ["sales"] * 10})
    pred = pd.DataFrame(
        {
            "function": ["sales"] * 6 + ["finance"] * 4,
            "function_proba": [0.95] * 5 + [0.6] * 5,  # the sure half right, the rest 1 in 5
        }
    )
    t = confidence_table(truth, pred, thresholds=(0.5, 0.9)).set_index("threshold")
    assert t.loc[0.5].tolist() == pytest.approx([1.0, 0.6, float("nan")], nan_ok=True)
    assert t.loc[0.9].tolist() == pytest.approx([0.5, 1.0, 0.2])
    assert t.attrs["calibration_error"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.4)


def test_calibration_titles_are_real_names_no_model_saw():
    eval_keys = {title_key(t) for t in real_title_eval()["job_title"]}
    names = read_title_list(RESOURCE_DIR / TRAINING_LISTS["occupations"])
    seen = names["title"].iloc[:500].tolist()
    titles = calibration_titles("occupations", seen, 1000, seed=1)
    assert len(titles) == 1000 and titles["job_title"].is_unique
    keys = set(titles["job_title"].map(title_key))
    assert not keys & ({title_key(t) for t in seen} | eval_keys)
    assert set(titles["function"]) <= set(FUNCTIONS) and (titles["activity_text"] == "").all()
    assert calibration_titles("occupations", seen, 1000, seed=1).equals(titles)  # seeded
    with pytest.raises(ValueError, match="unknown title list"):
        calibration_titles("nope", [], 10)


def test_promotion_refuses_a_candidate_worse_on_real_titles():
    champion = {
        "pr_auc": 0.30,
        "real_function_macro_f1": 0.60,
        "real_seniority_macro_f1": 0.70,
    }
    better_synthetic = dict(champion, pr_auc=0.40, real_function_macro_f1=0.58)
    cost = {"candidate": 6, "champion": 6}
    promote, why = decide(better_synthetic, champion, cost, 0.005, real_tolerance=0.0)
    assert not promote and "real job titles" in why and "real_function_macro_f1" in why
    # without the gate the PR-AUC gain wins; force overrides the gate
    assert decide(better_synthetic, champion, cost, 0.005)[0]
    assert decide(better_synthetic, champion, cost, 0.005, force=True, real_tolerance=0.0)[0]
    as_good = dict(champion, pr_auc=0.40)
    assert decide(as_good, champion, cost, 0.005, real_tolerance=0.0)[0]


def _catalog():
    from buying_groups.config import catalog_from

    from .conftest import compose_config

    return catalog_from(compose_config("generate", ["data=tiny"]))


def test_pooling_mixes_only_rows_with_a_title_and_stays_a_distribution():
    import numpy as np

    from buying_groups.models.title_expert import pool

    net = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]], dtype=np.float32)
    expert = np.array([[0.0, 0.1, 0.9], [0.0, 0.1, 0.9]], dtype=np.float32)
    mixed = pool(net, expert, 0.5, np.array([True, False]))
    assert mixed[0].argmax() == 2 and np.allclose(mixed.sum(-1), 1.0)
    assert np.allclose(mixed[1], net[1])  # no title: the transformer's persona
    assert np.allclose(pool(net, expert, 0.0, np.array([True, True])), net)


def test_choose_weight_prefers_the_expert_where_it_is_right():
    import numpy as np

    from buying_groups.models.title_expert import WEIGHTS, TitleExpert, choose_weight

    labels = {"function": ["sales", "finance"], "seniority": ["entry", "manager"]}
    titles = pd.Series(
        ["Vertriebsleiter", "Kaufmann Vertrieb", "Leiter Finanzen", "Buchhalter"] * 5
    )
    truth = pd.DataFrame(
        {
            "function": ["sales", "sales", "finance", "finance"] * 5,
            "seniority": ["manager", "entry", "manager", "entry"] * 5,
        }
    )
    # a strongly regularised expert: right, but less sure than the transformer below
    expert = TitleExpert(labels, C=1.0).fit(titles, truth)
    guess = expert.predict_proba(titles.tolist())
    # a transformer that has every function backwards and every seniority right
    net = {
        "function": 1.0 - np.eye(2, dtype=np.float32)[[0, 0, 1, 1] * 5] * 0.9 - 0.05,
        "seniority": np.eye(2, dtype=np.float32)[[1, 0, 1, 0] * 5] * 0.9 + 0.05,
    }
    weights, table = choose_weight(net, guess, truth, labels, np.ones(len(titles), dtype=bool))
    assert list(table.index) == list(WEIGHTS)
    f1 = table["function_macro_f1"]
    assert weights["function"] > 0 and f1[weights["function"]] > f1[0.0]
    # the chosen weight has the lowest validation log-loss of those tried, per head
    for head in ("function", "seniority"):
        assert table[f"{head}_log_loss"][weights[head]] == table[f"{head}_log_loss"].min()
    # a transformer that is right already keeps most of its say on seniority
    assert weights["seniority"] < weights["function"]


def test_bootstrap_macro_f1_matches_head_metrics_and_gaps_say_what_is_noise():
    from buying_groups.evaluate import head_metrics
    from buying_groups.models.evaluation import _macro_f1, real_title_gaps

    rng = np.random.default_rng(0)
    n = 400
    truth = pd.DataFrame(
        {
            "job_title": [f"title {i}" for i in range(n)],
            "language": np.where(np.arange(n) < 360, "en", "xx"),  # xx: under 50 titles
            "function": rng.choice(["sales", "marketing", "it", "legal"], n),
            "seniority": rng.choice(["manager", "director", "entry"], n),
        }
    )
    noisy = truth[["function", "seniority"]].copy()
    noisy.loc[rng.random(n) < 0.3, "function"] = "finance"  # a class the truth lacks
    ones = np.ones((1, n))
    for head in ("function", "seniority"):
        t, p = truth[head].to_numpy(), noisy[head].to_numpy()
        assert _macro_f1(ones, t, p)[0] == pytest.approx(head_metrics(t, p)["macro_f1"])

    better = truth[["function", "seniority"]].copy()
    gaps = real_title_gaps(truth, {"transformer": better, "noisy": noisy, "same": better})
    assert set(gaps["language"]) == {"all", "en"}  # no figures for a language under 50 titles
    row = gaps.set_index(["head", "language", "other"])
    for lang in ("all", "en"):
        mask = (truth["language"] == lang).to_numpy() if lang != "all" else np.ones(n, bool)
        f1 = head_metrics(truth["function"][mask], noisy["function"][mask])["macro_f1"]
        better_by = row.loc[("function", lang, "noisy")]
        assert better_by["gap"] == pytest.approx(1.0 - f1)
        assert 0 < better_by["low"] <= better_by["gap"] <= better_by["high"]  # a real gap
        assert (row.loc[("function", lang, "same"), ["gap", "low", "high"]] == 0).all()


def test_the_title_expert_fits_the_same_in_parallel_as_in_one_process():
    from buying_groups.models.title_expert import TitleExpert

    titles = pd.Series(
        ["Sales Manager", "Head of Marketing", "IT Director", "CFO", "Sales Rep"] * 8
    )
    targets = pd.DataFrame(
        {
            "function": ["sales", "marketing", "information_technology", "finance", "sales"] * 8,
            "seniority": ["manager", "director", "director", "executive", "professional"] * 8,
        }
    )
    labels = {h: sorted(targets[h].unique()) for h in targets}
    one = TitleExpert(labels).fit(titles, targets, n_jobs=1).predict_proba(["Sales Director"])
    two = TitleExpert(labels).fit(titles, targets, n_jobs=2).predict_proba(["Sales Director"])
    for head in one:
        np.testing.assert_allclose(one[head], two[head])


def test_pooling_with_one_weight_per_row_equals_pooling_each_row_alone():
    from buying_groups.models.title_expert import pool

    rng = np.random.default_rng(0)
    net, expert = rng.dirichlet(np.ones(4), 6), rng.dirichlet(np.ones(4), 6)
    has_title = np.array([True, True, False, True, True, True])
    w = np.array([0.0, 0.35, 0.8, 1.0, 0.5, 0.2])
    rows = pool(net, expert, w, has_title)
    for i in range(6):
        alone = pool(net[i : i + 1], expert[i : i + 1], float(w[i]), has_title[i : i + 1])
        np.testing.assert_allclose(rows[i], alone[0], atol=1e-5)
    np.testing.assert_allclose(
        pool(net, expert, np.full(6, 0.5), has_title), pool(net, expert, 0.5, has_title), rtol=1e-6
    )


def _two_language_validation(n_de: int, n_en: int) -> tuple[dict, dict, pd.DataFrame, dict]:
    """Validation where the transformer is right on English titles and wrong on German ones,
    and the expert is right on German ones and unsure on English ones."""
    labels = {"function": ["sales", "finance"], "seniority": ["entry", "manager"]}
    n = n_de + n_en
    y = np.arange(n) % 2
    right, wrong = np.eye(2)[y] * 0.9 + 0.05, np.eye(2)[1 - y] * 0.9 + 0.05
    german = np.arange(n) < n_de
    net_p = np.where(german[:, None], wrong, right)
    expert_p = np.where(german[:, None], right, np.full((n, 2), 0.5))
    truth = pd.DataFrame(
        {"function": np.array(labels["function"])[y], "seniority": np.array(labels["seniority"])[y]}
    )
    net = {"function": net_p, "seniority": net_p}
    expert = {"function": expert_p, "seniority": expert_p}
    return net, expert, truth, {"labels": labels, "language": np.where(german, "de", "en")}


def test_each_language_gets_the_weight_its_titles_support_pulled_to_the_common_one():
    from buying_groups.models.title_expert import choose_language_weights, choose_weight

    def choose(net, expert, truth, extra, prior=100):  # noqa: ANN001, ANN202
        titled = np.ones(len(truth), bool)
        common, table = choose_weight(net, expert, truth, extra["labels"], titled)
        args = (net, expert, truth, extra["labels"], extra["language"], table, prior)
        return common, choose_language_weights(*args)

    net, expert, truth, extra = _two_language_validation(n_de=300, n_en=300)
    common, per = choose(net, expert, truth, extra)
    for head in ("function", "seniority"):
        # German titles: the expert is right and the transformer wrong, so the expert leads
        assert per[head]["de"] > per[head]["en"]
    assert per["function"]["en"] < common["function"] < per["function"]["de"]
    _, own = choose(net, expert, truth, extra, prior=0)
    assert own["function"] == {"de": 1.0, "en": 0.0}  # without the prior: each its own

    # a language with a handful of titles keeps (near) the all-language weight
    net, expert, truth, extra = _two_language_validation(n_de=4, n_en=300)
    common, per = choose(net, expert, truth, extra)
    assert common["function"] == 0.0 and per["function"]["de"] <= 0.35
    _, loose = choose(net, expert, truth, extra, prior=0)
    assert loose["function"]["de"] > per["function"]["de"]  # without the prior: its own


def test_the_title_expert_tells_the_language_and_mixes_the_weights_by_it():
    from buying_groups.models.title_expert import TitleExpert

    german = [
        "Leiter Vertrieb",
        "Vertriebsleiterin",
        "Geschäftsführer",
        "Buchhalterin",
        "Leiterin Finanzen",
        "Einkaufsleiter",
        "Kaufmännischer Leiter",
        "Vertriebsmitarbeiter",
    ]
    english = [
        "Sales Manager",
        "Head of Sales",
        "Chief Executive Officer",
        "Accountant",
        "Finance Director",
        "Purchasing Manager",
        "Sales Representative",
        "Controller",
    ]
    titles = pd.Series((german + english) * 3)
    function = [
        "sales",
        "sales",
        "executive",
        "finance",
        "finance",
        "operations",
        "finance",
        "sales",
    ]
    seniority = [
        "manager",
        "manager",
        "executive",
        "professional",
        "director",
        "manager",
        "director",
        "professional",
    ]
    targets = pd.DataFrame({"function": function * 6, "seniority": seniority * 6})
    languages = pd.Series((["de"] * 8 + ["en"] * 8) * 3)
    labels = {h: sorted(targets[h].unique()) for h in targets}
    expert = TitleExpert(labels)
    import buying_groups.models.title_expert as te

    old, te.MIN_LANGUAGE_TITLES = te.MIN_LANGUAGE_TITLES, 5
    try:
        expert.fit(titles, targets, languages=languages)
    finally:
        te.MIN_LANGUAGE_TITLES = old
    proba, langs = expert.language_proba(["Vertriebsleiter Deutschland", "Head of Finance"])
    assert langs == ["de", "en"] and proba[0].argmax() == 0 and proba[1].argmax() == 1
    w = expert.weights(
        ["Vertriebsleiter Deutschland", "Head of Finance"],
        {"function": 0.5, "seniority": 0.5},
        {"function": {"de": 1.0, "en": 0.0}},
    )
    assert w["function"][0] > 0.5 > w["function"][1]  # by the title's language
    np.testing.assert_allclose(w["function"], proba[:, 0])  # averaged under its probabilities
    assert (w["seniority"] == 0.5).all()  # no per-language weights: the head's own
    # an empty language is an unknown one, not a language of its own
    blank = TitleExpert(labels)
    te.MIN_LANGUAGE_TITLES = 5
    try:
        blank.fit(titles, targets, languages=languages.where(languages == "de", " "))
    finally:
        te.MIN_LANGUAGE_TITLES = old
    assert blank.language_proba(["Leiter Vertrieb"]) is None  # one known language: none
    # without languages there is no classifier, and every title gets the head's weight
    plain = TitleExpert(labels).fit(titles, targets)
    assert plain.language_proba(["Leiter Vertrieb"]) is None
    w = plain.weights(["Leiter Vertrieb"], {"function": 0.65}, {"function": {"de": 1.0}})
    assert w["function"].tolist() == [0.65] and w["seniority"].tolist() == [0.0]


def test_title_list_roles_follow_their_persona_where_the_rules_decide(catalog):
    """With ``roles``, a title-only contact's roles are the spec's for its persona and no
    advocacy; an unknown seniority leaves a role unknown unless every seniority agrees."""
    from buying_groups.data.real_titles import knowledge_examples
    from buying_groups.taxonomy import assign_roles

    plain = knowledge_examples(["bls", "curated"], catalog, seed=0, roles=False)
    assert plain[[f"role_{p}" for p in catalog.names]].isna().all().all()
    k = knowledge_examples(["bls", "curated"], catalog, seed=0)  # roles by default
    known = k["seniority"].notna()
    for product in catalog.products:
        col = k[f"role_{product.name}"]
        rules = assign_roles(k["function"], k["seniority"], np.zeros(len(k)), product)
        assert (col[known] == rules[known.to_numpy()]).all()
        assert set(col[k["function"] == "other"]) == {"none"}  # no seniority matters
        # a buyer is a gatekeeper, or none at entry level: without a seniority, unknown
        assert col[~known & (k["function"] == "procurement")].isna().all()
    assert k["split"].isin(["train", "validation"]).all()


def test_real_title_roles_are_scored_against_the_personas_rules(catalog):
    from buying_groups.taxonomy import assign_roles

    truth = pd.DataFrame(
        {
            "function": ["procurement", "marketing", "other"],
            "seniority": ["director", "vp", "professional"],
            "language": "en",
        }
    )
    zero = np.zeros(3)
    right = {f"role_{p.name}": assign_roles(truth.function, truth.seniority, zero, p)
             for p in catalog.products}  # fmt: skip
    pred = truth[["function", "seniority"]].assign(**right)
    m = real_title_metrics(truth, pred, catalog)
    assert m["real/role_accuracy"] == 1.0 and m["real/role_macro_f1"] == 1.0
    wrong = pred.assign(**{f"role_{p}": "none" for p in catalog.names})
    assert real_title_metrics(truth, wrong, catalog)["real/role_accuracy"] < 1.0
    assert "real/role_accuracy" not in real_title_metrics(truth, pred)  # no catalog: persona only


def test_the_main_jobs_report_shows_real_title_roles_beside_the_persona():
    from buying_groups.cli.pipeline import persona_lines

    roles = {
        "transformer": {"real/function_macro_f1": 0.85, "real/seniority_macro_f1": 0.93}
        | {"real/role_macro_f1": 0.81},
        "rules": {"real/function_macro_f1": 0.54, "real/seniority_macro_f1": 0.8}
        | {"real/role_macro_f1": 0.61},
    }
    lines = persona_lines(roles)
    assert lines[0].endswith("transformer 0.850 / 0.930, rules 0.540 / 0.800")
    assert lines[1].startswith("role macro-F1, real job titles")
    assert lines[1].endswith("transformer 0.810, rules 0.610")
    assert persona_lines({}) == []


def test_bls_function_overrides_are_applied():
    """The guide's labels for the BLS titles the group mapping calls `other` are in the list
    (scripts/build_title_lists.py applies them; a rebuild without them would fail here)."""
    overrides = pd.read_csv(SCRIPTS / "bls_function_overrides.csv")
    assert set(overrides["function"]) <= set(FUNCTIONS)
    assert not overrides["title"].duplicated().any()
    bls = read_title_list(RESOURCE_DIR / TRAINING_LISTS["bls"]).set_index("title")["function"]
    assert overrides["title"].isin(bls.index).all()
    assert (bls[overrides["title"]].to_numpy() == overrides["function"].to_numpy()).all()
    assert (overrides["function"] == "operations").sum() >= 100  # rule 6's manual operations


def test_occupation_names_keep_their_jobs_label_in_every_gender_form():
    """scripts/build_occupation_titles.py gives every form of a job its one label: the
    Austrian list's "Spezialist*in", "Spezialistin" and "Spezialist" agree; one name has one
    label in every language."""
    labels = pd.read_csv(SCRIPTS / "occupation_labels.csv")
    assert set(labels["function"]) == {*FUNCTIONS, "drop"} and labels["key"].is_unique
    occ = read_title_list(RESOURCE_DIR / TRAINING_LISTS["occupations"])
    assert set(occ["language"]) == LANGUAGES - {"ru"}
    keys = occ["title"].map(title_key)
    assert keys.is_unique
    # a name two lists label differently is left out ("Administrator": IT in the Polish list,
    # administrative in the English one); the English list is there
    assert {"administrator", "web designer", "supervisor"}.isdisjoint(keys)
    english = occ[occ["language"] == "en"]
    assert len(english) > 1500
    # faker names some English jobs in both word orders: one job, one label
    reordered = english["title"].str.replace(r"^(.+?), (.+)$", r"\2 \1", regex=True)
    pairs = english.assign(job=reordered.map(title_key)).groupby("job")["function"]
    assert (pairs.nunique() == 1).all() and (pairs.size() > 1).sum() >= 5
    german = occ[occ["language"] == "de"].set_index("title")["function"]
    neutral = [t for t in german.index if t.endswith("*in")]
    assert len(neutral) > 1000
    pairs = [(t, form) for t in neutral for form in (t[:-3] + "in", t[:-3]) if form in german.index]
    assert len(pairs) > 1500
    assert all(german[t] == german[form] for t, form in pairs)
