"""Role decision offsets and persona temperatures (models/calibration.py): pure logic on
made-up probabilities, and their use by ``predict_proba`` and ``decode`` on a tiny random model."""

import numpy as np
import pandas as pd
import pytest

from buying_groups.evaluate import calibration_error
from buying_groups.models.calibration import (
    MIN_LABELS,
    bagged_offsets,
    choose_persona_temperature,
    choose_role_bias,
    fit_offsets,
    fit_temperature,
    macro_f1,
)
from buying_groups.models.inference import decode, predict_proba, shift, tempered
from buying_groups.serving.role_pyfunc import role_outputs


def test_macro_f1_matches_sklearn_over_the_classes_present():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)  # class 3 never true: left out, as evaluate does
    pred = rng.integers(0, 4, 200)
    expect = f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert macro_f1(y, pred, 4) == pytest.approx(expect)


def over_called(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities of a 3-class head that over-calls rare class 1 by exp(2) (as heavy
    class weights make a head do), and the truth: 80% class 0, 10% each of 1 and 2."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.8, 0.1, 0.1])
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), y] += 2.5
    logits[:, 1] += 2.0
    return logits - np.log(np.exp(logits).sum(1, keepdims=True)), y


def test_offsets_undo_a_head_that_over_calls_a_rare_class():
    log_proba, y = over_called()
    offsets = fit_offsets(log_proba, y, reference=0)
    assert offsets[0] == 0  # the reference stays put
    assert offsets[1] < -1.0  # class 1 is called less
    before = macro_f1(y, log_proba.argmax(1), 3)
    after = macro_f1(y, (log_proba + offsets).argmax(1), 3)
    assert after > before + 0.05
    fresh_lp, fresh_y = over_called(seed=1)  # and it holds on data it did not see
    assert macro_f1(fresh_y, (fresh_lp + offsets).argmax(1), 3) > macro_f1(
        fresh_y, fresh_lp.argmax(1), 3
    )


def test_a_calibrated_head_keeps_offsets_near_zero():
    rng = np.random.default_rng(2)
    y = rng.choice(3, 3000, p=[0.6, 0.2, 0.2])
    logits = rng.normal(0, 1.0, (3000, 3))
    logits[np.arange(3000), y] += 4.0  # separable: the argmax is already right
    log_proba = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    offsets = bagged_offsets(log_proba[:, None, :], y[:, None], reference=0, resamples=5)
    assert np.abs(offsets).max() < 0.5


def test_bagging_ignores_unknown_roles():
    log_proba, y = over_called(600)
    y2 = np.stack([y, np.full_like(y, -1)], 1)  # a second product with no known roles
    lp2 = np.stack([log_proba, log_proba], 1)
    offsets = bagged_offsets(lp2, y2, reference=0, resamples=3)
    assert offsets.shape == (3,) and offsets[1] < 0


def test_shift_moves_probabilities_and_keeps_them_distributions():
    p = np.array([[[0.5, 0.3, 0.2]]], dtype=np.float32)
    assert shift(p, []) is p  # no offsets: untouched
    q = shift(p, [0.0, np.log(2.0), 0.0])
    np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(q[0, 0], np.array([0.5, 0.6, 0.2]) / 1.3, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer

    from buying_groups.models.role_model import RoleModel

    torch.manual_seed(0)
    model = RoleModel.from_encoder(str(tiny_bert_dir), ["crm", "erp"], max_length=16)
    return model.eval(), AutoTokenizer.from_pretrained(tiny_bert_dir)


def test_predict_proba_applies_the_models_offsets(tiny):
    model, tok = tiny
    frame = pd.DataFrame({"job_title": ["CFO", ""], "activity_text": ["", "visited /pricing"]})
    plain = predict_proba(model, tok, frame)
    gatekeeper = model.config.roles.index("gatekeeper")
    model.config.role_bias = [0.0] * len(model.config.roles)
    model.config.role_bias[gatekeeper] = 50.0  # overwhelming: every pair becomes gatekeeper
    try:
        moved = predict_proba(model, tok, frame)
        roles = decode(model.config, moved)
    finally:
        model.config.role_bias = []
    np.testing.assert_allclose(moved["function"], plain["function"])  # personas untouched
    assert (roles[["role_crm", "role_erp"]] == "gatekeeper").all().all()
    np.testing.assert_allclose(predict_proba(model, tok, frame)["role"], plain["role"])


def test_choose_role_bias_needs_enough_known_roles(tiny):
    model, tok = tiny
    n = MIN_LABELS // 2 - 1  # two products: just under MIN_LABELS known pairs
    frame = pd.DataFrame(
        {
            "job_title": ["CFO"] * n,
            "activity_text": ["visited /pricing"] * n,
            "role_crm": ["none"] * n,
            "role_erp": ["decision_maker"] * n,
        }
    )
    assert choose_role_bias(model, tok, frame) == {}
    assert model.config.role_bias == []


def test_variant_speeds_are_timed_on_the_model_not_on_cached_answers(tiny, monkeypatch):
    """A pass cached before must not stand in for the timed one (fp32 would look thousands of
    times faster than it is and win); the timed pass then serves later passes (the offsets,
    the evaluation) from the cache instead of running the model again."""
    from buying_groups.models import evaluation
    from buying_groups.models.inference import caching

    model, tok = tiny
    frame = pd.DataFrame({"job_title": ["CFO", "Einkauf"], "activity_text": ["", "demo (crm)"]})
    rows_run = []
    real = evaluation.use_variant

    def counting(m, t, variant):  # noqa: ANN001
        real(m, t, variant)
        inner = m.runner
        m.runner = lambda batch: (rows_run.append(len(batch["input_ids"])), inner(batch))[1]

    monkeypatch.setattr(evaluation, "use_variant", counting)
    model.weights_digest = "test-digest"
    try:
        with caching() as outer:
            predict_proba(model, tok, frame)  # a pass cached before
            rows_run.clear()
            evaluation.measure_variants(model, tok, frame, variants=["fp32"])
            assert sum(rows_run) == 2 * len(frame)  # warm-up and the timed pass: both ran
            hits = outer.hits
            predict_proba(model, tok, frame)  # and later passes still use the cache
            assert outer.hits == hits + len(frame)
    finally:
        del model.weights_digest
        real(model, tok, "fp32")


def test_variants_are_judged_with_the_role_offsets_they_serve(tiny):
    """The variants' probabilities are measured without offsets (chosen after, from the
    same pass) and decoded with them when the choice is made, as loaders serve them."""
    from buying_groups.models.evaluation import choose_variant, measure_variants

    model, tok = tiny
    frame = pd.DataFrame({"job_title": ["CFO", "Einkauf", ""], "activity_text": ["", "a", "b"]})
    model.config.role_bias = [0.0] * len(model.config.roles)
    model.config.role_bias[0] = 9.0  # chosen before: measuring must ignore it
    runs = measure_variants(model, tok, frame, variants=["fp32"])
    assert model.config.role_bias[0] == 9.0  # and leaves it as it was
    model.config.role_bias = []
    raw = decode(model.config, predict_proba(model, tok, frame))
    np.testing.assert_allclose(runs.proba["fp32"]["role"], predict_proba(model, tok, frame)["role"])
    seen = []

    def role_f1(pred: pd.DataFrame) -> dict[str, float]:
        seen.append(pred)
        return {"role": 1.0}

    choose_variant(model.config, runs, role_f1)
    assert seen[-1].equals(raw)  # no offsets: the head's own roles
    model.config.role_bias = [0.0] * len(model.config.roles)
    model.config.role_bias[0] = 50.0  # an offset that makes the first role win everywhere
    try:
        choice, table = choose_variant(model.config, runs, role_f1)
    finally:
        model.config.role_bias = []
    first = model.config.roles[0]
    assert (seen[-1][[f"role_{p}" for p in model.config.products]] == first).all().all()
    assert choice == "fp32" and bool(table.loc["fp32", "chosen"])


def test_validation_is_scored_without_the_offsets_chosen_on_it(tiny):
    from buying_groups.models.calibration import raw_role_metrics

    model, tok = tiny
    frame = pd.DataFrame(
        {
            "job_title": ["CFO", ""],
            "activity_text": ["", "visited /pricing"],
            "split": "validation",
            "function": ["finance", "marketing"],
            "seniority": ["executive", "professional"],
            "role_crm": ["decision_maker", "none"],
            "role_erp": ["none", "none"],
        }
    )
    plain = raw_role_metrics(model, tok, frame, ["crm", "erp"])
    gatekeeper = model.config.roles.index("gatekeeper")
    model.config.role_bias = [0.0] * len(model.config.roles)
    model.config.role_bias[gatekeeper] = 50.0  # with it, every pair is a (wrong) gatekeeper
    try:
        assert raw_role_metrics(model, tok, frame, ["crm", "erp"]) == plain
        assert model.config.role_bias[gatekeeper] == 50.0  # restored
        assert set(plain) == {"validation/role_accuracy", "validation/role_macro_f1"}
        # a distilled student has its own head: it does not inherit the offsets
        assert model.student(1).config.role_bias == []
    finally:
        model.config.role_bias = []


def test_cache_merge_adds_what_is_missing_and_leaves_bounded_caches_alone():
    from buying_groups.models.inference import PredictionCache, _Entries

    def table(keys, value):
        n = len(keys)
        heads = (np.full((n, 2), value), np.full((n, 3), value), np.full((n, 1, 4), value))
        return _Entries(list(keys), tuple(h.astype(np.float32) for h in heads))

    outer, own = PredictionCache(), PredictionCache()
    outer.tables["m"] = table([b"a"], 1.0)
    own.tables["m"] = table([b"a", b"b"], 2.0)
    own.tables["n"] = table([b"c"], 3.0)
    outer.merge(own)
    assert outer.tables["m"].find([b"a", b"b"]).tolist() == [0, 1]
    assert outer.tables["m"].heads[0][0, 0] == 1.0  # an entry it had is kept
    assert outer.tables["m"].heads[0][1, 0] == 2.0 and outer.tables["n"].find([b"c"]) == [0]
    assert outer.used == {b"a", b"b", b"c"}
    bounded = PredictionCache(limit=10)
    bounded.merge(own)
    assert bounded.tables == {}


def test_judged_macro_f1_leaves_out_classes_below_the_floor():
    from buying_groups.models.evaluation import judged_macro_f1

    truth = pd.Series(["none"] * 60 + ["end_user"] * 60 + ["champion"] * 3 + [None] * 5)
    pred = truth.fillna("none").copy()
    pred.iloc[120] = "end_user"  # one of three champions missed
    assert judged_macro_f1(truth, pred, 50) == pytest.approx(
        np.mean([1.0, 2 * 60 / (60 + 61)])  # none; end_user with one false positive
    )
    assert judged_macro_f1(truth, pred, 0) < judged_macro_f1(truth, pred, 50)  # champion 0.8
    # no class with that many labels: all are judged
    assert judged_macro_f1(truth.head(10), pred.head(10), 50) == 1.0
    assert np.isnan(judged_macro_f1(pd.Series([None, None]), pd.Series(["a", "b"]), 50))


def test_a_variant_differing_on_a_rare_class_only_is_not_refused_for_it():
    """The variant check judges the classes with enough validation labels: a variant whose
    only difference is one contact of a 3-label class passes; one that differs on a common
    class by more than the tolerance does not."""
    from buying_groups.models.evaluation import VariantRuns, pick_variant
    from buying_groups.models.inference import RoleModelConfig
    from buying_groups.taxonomy import Catalog

    catalog = Catalog.from_config({"products": {"p": {"primary": ["sales"], "adjacent": []}}})
    cfg = RoleModelConfig(products=["p"])
    n = 200
    roles = ["none"] * 120 + ["end_user"] * 77 + ["champion"] * 3
    frame = pd.DataFrame({"function": ["sales"] * n, "seniority": ["senior"] * n})
    frame["role_p"] = roles

    def proba(role_names: list[str]) -> dict[str, np.ndarray]:
        def one_hot(names, labels):
            out = np.full((n, len(labels)), 0.01, dtype=np.float32)
            out[np.arange(n), [labels.index(x) for x in names]] = 0.9
            return out

        return {
            "function": one_hot(["sales"] * n, cfg.functions),
            "seniority": one_hot(["senior"] * n, cfg.seniorities),
            "role": one_hot(role_names, cfg.roles)[:, None, :],
        }

    rare = list(roles)
    rare[-1] = "end_user"  # one champion missed: champion F1 1.0 -> 0.8
    common = list(roles)
    common[120:124] = ["none"] * 4  # four end users missed: end_user F1 -0.026
    runs = VariantRuns(frame, {"fp32": 100.0, "int8": 300.0}, {"fp32": proba(roles)})
    icfg = {"variant": "auto", "tolerance": 0.005, "min_class_labels": 50}
    runs.proba["int8"] = proba(rare)
    assert pick_variant(icfg, cfg, runs, catalog)[0] == "int8"
    assert pick_variant(icfg | {"min_class_labels": 0}, cfg, runs, catalog)[0] == "fp32"
    runs.proba["int8"] = proba(common)
    assert pick_variant(icfg, cfg, runs, catalog)[0] == "fp32"


def test_calibration_error_is_zero_when_probabilities_hold_and_the_gap_when_not():
    conf = np.full(1000, 0.7)
    right = np.arange(1000) < 700  # right 70% of the time at 0.7
    assert calibration_error(conf, right) == pytest.approx(0.0)
    assert calibration_error(np.full(1000, 0.9), right) == pytest.approx(0.2)  # says 0.9
    assert calibration_error(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)


def test_fitted_temperature_undoes_an_over_confident_head():
    """Labels drawn from softmax(z), the head reporting softmax(2.5 z): the fit finds ~2.5,
    and an honest head keeps ~1."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (5000, 5))
    honest = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in honest])
    sharp = np.exp(2.5 * z) / np.exp(2.5 * z).sum(1, keepdims=True)
    assert fit_temperature(sharp, y) == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(honest, y) == pytest.approx(1.0, rel=0.1)


def test_temperature_changes_the_reported_probabilities_never_the_labels(tiny):
    model, tok = tiny
    frame = pd.DataFrame({"job_title": ["CFO", "Leiter Einkauf", ""], "activity_text": ""})
    raw = predict_proba(model, tok, frame)
    plain = decode(model.config, raw)
    model.config.persona_temperature = {"function": 3.0}
    try:
        soft = decode(model.config, raw)
        vectors = tempered(model.config, raw)["function"]
        again = predict_proba(model, tok, frame)["function"]  # what offsets and students read
        served = role_outputs(model, tok, frame)
    finally:
        model.config.persona_temperature = {}
    np.testing.assert_allclose(again, raw["function"])
    assert (served["function"] == plain["function"]).all()
    np.testing.assert_allclose(np.stack(served["function_probs"]).max(1), served["function_proba"])
    np.testing.assert_allclose(np.stack(served["seniority_probs"]), raw["seniority"], rtol=1e-6)
    assert (soft["function"] == plain["function"]).all()
    assert (soft["function_proba"] < plain["function_proba"]).all()  # softer, not sharper
    np.testing.assert_allclose(soft["function_proba"], vectors.max(1), rtol=1e-6)
    np.testing.assert_allclose(vectors.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft["seniority_proba"], plain["seniority_proba"])  # untouched


def test_a_near_tie_keeps_its_label_under_any_temperature(tiny):
    model, _ = tiny
    n_f, n_s = len(model.config.functions), len(model.config.seniorities)
    f = np.full((1, n_f), 1e-9, dtype=np.float32)
    f[0, :2] = [0.4999999, 0.5000001]  # the second, by a hair
    proba = {
        "function": f,
        "seniority": np.full((1, n_s), 1 / n_s, dtype=np.float32),
        "role": np.full((1, len(model.config.products), len(model.config.roles)), 0.2),
    }
    model.config.persona_temperature = {"function": 1e6}  # flattens the two to one value
    try:
        out = decode(model.config, proba)
    finally:
        model.config.persona_temperature = {}
    assert out["function"].iloc[0] == model.config.functions[1]


def test_choose_persona_temperature_sets_and_reports_it(tiny):
    model, tok = tiny
    titles = pd.DataFrame(
        {
            "job_title": ["CFO", "Leiter Einkauf", "Nurse", "Teacher"] * 25,
            "activity_text": "",
            "function": ["finance", "procurement", "other", "other"] * 25,
        }
    )
    scores = choose_persona_temperature(model, tok, titles)
    try:
        assert model.config.persona_temperature == {"function": scores["function_temperature"]}
        assert scores["function_log_loss_after"] <= scores["function_log_loss_before"] + 1e-9
    finally:
        model.config.persona_temperature = {}


def test_calibrate_persona_is_off_without_a_list_or_enough_unseen_titles(tiny):
    from omegaconf import OmegaConf

    from buying_groups.cli.train_roles import calibrate_persona
    from buying_groups.data.real_titles import RESOURCE_DIR, TRAINING_LISTS, read_title_list

    model, tok = tiny
    model.config.persona_temperature = {"function": 2.0}  # a stale one is always cleared
    off = OmegaConf.create({"seed": 0, "persona_calibration": {"list": None}})
    assert calibrate_persona(off, model, tok, ()) == {}
    assert model.config.persona_temperature == {}
    names = read_title_list(RESOURCE_DIR / TRAINING_LISTS["occupations"])["title"]
    trained_on_all = (pd.DataFrame({"job_title": names}),)  # as if title_lists held them
    cfg = OmegaConf.create({"seed": 0, "persona_calibration": {"list": "occupations"}})
    assert calibrate_persona(cfg, model, tok, trained_on_all) == {}
    assert model.config.persona_temperature == {}
    some = (pd.DataFrame({"job_title": names.iloc[:100]}),)
    cfg = OmegaConf.create(
        {"seed": 0, "persona_calibration": {"list": "occupations", "max_titles": 600}}
    )
    scores = calibrate_persona(cfg, model, tok, some)
    try:
        assert model.config.persona_temperature == {
            "function": scores["calibration/function_temperature"]
        }
    finally:
        model.config.persona_temperature = {}
