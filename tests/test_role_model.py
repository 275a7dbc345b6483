"""Unit tests of the role model on a tiny random BERT (seconds)."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from buying_groups.models.inference import MAX_TITLE_CHARS, clean_inputs, decode, predict_proba
from buying_groups.models.role_model import IGNORE, RoleModel
from buying_groups.models.spelling import spelling_vocabulary
from buying_groups.models.train import TOKEN_KEYS, Collator, RoleDataset, role_class_weights
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES, assign_roles, role_rules_table

PRODUCTS = ["marketing_automation", "security_platform", "data_platform"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32)
    return model.eval(), AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "job_title": ["VP Procurement", "", "Leiter Einkauf", None],
            "activity_text": ["requested demo (data_platform)", "visited /pricing", "", ""],
            "function": ["procurement", "marketing", "procurement", None],
            "seniority": ["vp", "professional", "director", None],
            "role_marketing_automation": ["gatekeeper", None, "gatekeeper", None],
            "role_security_platform": ["gatekeeper", "none", None, None],
            "role_data_platform": ["gatekeeper", "none", "gatekeeper", None],
        }
    )


def test_shapes_one_pass_for_all_products(model_and_tokenizer, frame):
    model, tok = model_and_tokenizer
    calls = []
    handle = model.encoder.register_forward_hook(lambda *a: calls.append(1))
    batch = Collator(tok)([RoleDataset(frame, tok, model)[i] for i in range(len(frame))])
    out = model(**{k: v for k, v in batch.items() if not k.endswith("_labels")})
    handle.remove()
    assert len(calls) == 1  # one encoder pass serves every product
    assert out["function_logits"].shape == (4, len(FUNCTIONS))
    assert out["seniority_logits"].shape == (4, len(SENIORITIES))
    assert out["role_logits"].shape == (4, len(PRODUCTS), len(ROLES))


def test_missing_labels_are_masked_not_invented(model_and_tokenizer, frame):
    model, tok = model_and_tokenizer
    ds = RoleDataset(frame, tok, model)
    assert ds.role[1, 0] == IGNORE and ds.function[3] == IGNORE
    batch = Collator(tok)([ds[i] for i in range(len(frame))])
    full = model(**batch)["loss"]
    assert torch.isfinite(full)
    # With every role masked, the loss is the persona heads' loss only.
    batch_masked = dict(batch, role_labels=torch.full_like(batch["role_labels"], IGNORE))
    masked = model(**batch_masked)
    ce = torch.nn.functional.cross_entropy
    expect = ce(masked["function_logits"], batch["function_labels"], ignore_index=IGNORE) + ce(
        masked["seniority_logits"], batch["seniority_labels"], ignore_index=IGNORE
    )
    assert torch.allclose(masked["loss"], expect)


def test_teacher_forcing_only_where_a_title_could_tell_the_persona(model_and_tokenizer, frame):
    model, tok = model_and_tokenizer
    ds = RoleDataset(frame, tok, model)
    assert ds.titled.tolist() == [True, False, True, False]  # "" and None have no title
    batch = Collator(tok)([ds[i] for i in range(len(frame))])
    assert batch["titled"].tolist() == [True, False, True, False]
    forcing = model.config.teacher_forcing
    model.config.teacher_forcing = 1.0  # force every row that may be forced
    try:
        probs = torch.full((4, len(FUNCTIONS)), 1.0 / len(FUNCTIONS))
        forced = model._force(probs, batch["function_labels"], batch["titled"])
    finally:
        model.config.teacher_forcing = forcing
    one_hot = torch.nn.functional.one_hot(batch["function_labels"][0], len(FUNCTIONS)).float()
    assert torch.equal(forced[0], one_hot)  # a title: the true persona
    assert torch.equal(forced[1], probs[1])  # labelled but no title: its own guess stays
    assert torch.equal(forced[3], probs[3])  # no label: nothing to force


def test_save_load_roundtrip_keeps_labels_and_predictions(model_and_tokenizer, frame, tmp_path):
    model, tok = model_and_tokenizer
    model.save(tmp_path, tok)
    cfg = json.loads((tmp_path / "role_model.json").read_text())
    assert cfg["id2label"]["function"]["0"] == FUNCTIONS[0]
    assert cfg["id2label"]["role"][str(len(ROLES) - 1)] == ROLES[-1]
    assert cfg["products"] == PRODUCTS
    loaded, loaded_tok = RoleModel.load(tmp_path)
    a = predict_proba(model, tok, frame)
    b = predict_proba(loaded, loaded_tok, frame)
    for head in a:
        np.testing.assert_allclose(a[head], b[head], atol=1e-6)
    decoded = decode(loaded.config, b)
    assert set(decoded["function"]) <= set(FUNCTIONS)
    assert {f"role_{p}" for p in PRODUCTS} <= set(decoded.columns)


def test_a_typing_slip_is_read_as_the_word_the_training_titles_spell(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    titles = ["Procurement Manager", "PROCUREMENT MAANGER", "Procurement Mnager", "Procurmnt Mgr"]
    frame = pd.DataFrame({"job_title": titles, "activity_text": ""})
    plain = predict_proba(model, tok, frame)
    assert not np.allclose(plain["function"][0], plain["function"][1], atol=1e-4)
    model.config.spelling = spelling_vocabulary(
        ["Procurement Manager", "Sales Manager", "Head of Procurement"]
    )
    try:
        fixed = predict_proba(model, tok, frame)
        model.save(tmp_path, tok)
    finally:
        model.config.spelling = {}
    for head in fixed:  # both slips read as "Manager"; a title two slips away as written
        np.testing.assert_allclose(fixed[head][1:3], fixed[head][[0, 0]], atol=1e-5)
        np.testing.assert_allclose(fixed[head][3], plain[head][3], atol=1e-5)
    loaded, loaded_tok = RoleModel.load(tmp_path)  # the vocabulary travels with the model
    assert loaded.config.spelling["manager"] == 2
    np.testing.assert_allclose(
        predict_proba(loaded, loaded_tok, frame)["role"], fixed["role"], atol=1e-5
    )


def test_predictions_do_not_depend_on_batching_or_duplicates(model_and_tokenizer, frame):
    model, tok = model_and_tokenizer
    doubled = pd.concat([frame, frame], ignore_index=True)
    a = predict_proba(model, tok, doubled, batch_size=3)
    b = predict_proba(model, tok, frame, batch_size=64)
    np.testing.assert_allclose(a["role"][:4], b["role"], atol=1e-5)
    np.testing.assert_allclose(a["role"][4:], b["role"], atol=1e-5)


def test_the_prediction_cache_gives_back_what_the_model_predicted(
    model_and_tokenizer, frame, tmp_path
):
    """Cached inputs come back identical, within a run and after save/load (with more
    inputs than the cache's first block, so it grows); only kept keys are saved."""
    from buying_groups.models.inference import PredictionCache, caching, prediction_key

    model, tok = model_and_tokenizer
    model.save(tmp_path / "model", tok)
    model, tok = RoleModel.load(tmp_path / "model")  # a saved model: its weights key the cache
    many = pd.DataFrame({"job_title": [f"Buyer {i}" for i in range(1500)], "activity_text": ""})
    many = pd.concat([frame, many], ignore_index=True)
    expected = predict_proba(model, tok, many)
    with caching() as cache:
        first = predict_proba(model, tok, many.iloc[:700])
        again = predict_proba(model, tok, many)  # 700 from the cache, the rest encoded
        assert (cache.hits, cache.misses) == (700, len(many))
    for head in ("function", "seniority", "role"):
        np.testing.assert_allclose(first[head], expected[head][:700], atol=1e-6)
        np.testing.assert_allclose(again[head], expected[head], atol=1e-6)
    digest = prediction_key(model)
    keep = {PredictionCache.key(t, "") for t in many["job_title"].iloc[10:].astype(str)}
    assert cache.save(tmp_path / "cache.arrow", digest, keep=keep) == len(many) - 10
    loaded = PredictionCache()
    assert loaded.load(tmp_path / "cache.arrow", "another model", len(PRODUCTS)) == 0
    assert loaded.load(tmp_path / "cache.arrow", digest, len(PRODUCTS)) == len(many) - 10
    with caching(loaded):
        back = predict_proba(model, tok, many)
    assert (loaded.hits, loaded.misses) == (len(many) - 10, 10)
    for head in ("function", "seniority", "role"):
        np.testing.assert_allclose(back[head], expected[head], atol=1e-6)
    many.to_parquet(tmp_path / "older.parquet")  # not a cache file: nothing is reused
    assert PredictionCache().load(tmp_path / "older.parquet", digest, len(PRODUCTS)) == 0


def test_a_bounded_prediction_cache_empties_when_full_and_stays_right(
    model_and_tokenizer, tmp_path
):
    """A server's cache holds at most ``limit`` entries per model and tracks no keys for
    saving; answers after it emptied are the model's own."""
    from buying_groups.models.inference import PredictionCache, caching, prediction_key

    model, tok = model_and_tokenizer
    model.save(tmp_path / "model", tok)
    model, tok = RoleModel.load(tmp_path / "model")
    titles = pd.DataFrame({"job_title": [f"Buyer {i}" for i in range(30)], "activity_text": ""})
    expected = predict_proba(model, tok, titles)
    cache = PredictionCache(limit=20)
    with caching(cache):
        predict_proba(model, tok, titles.iloc[:15])
        assert len(cache.tables[prediction_key(model)].row) == 15
        again = predict_proba(model, tok, titles)  # 15 hits; 15 more would pass the limit
        assert (cache.hits, cache.misses) == (15, 30)
        assert len(cache.tables[prediction_key(model)].row) == 15  # emptied, then the new
        last = predict_proba(model, tok, titles.iloc[15:])
        assert cache.hits == 30
    assert not cache.used
    for head in ("function", "seniority", "role"):
        np.testing.assert_allclose(again[head], expected[head], atol=1e-6)
        np.testing.assert_allclose(last[head], expected[head][15:], atol=1e-6)


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="missing input column 'activity_text'"):
        clean_inputs(pd.DataFrame({"job_title": ["x"]}))
    with pytest.raises(ValueError, match="column 'job_title', row 1: expected text, got int"):
        clean_inputs(pd.DataFrame({"job_title": ["ok", 7], "activity_text": ["", ""]}))
    titles, _ = clean_inputs(pd.DataFrame({"job_title": ["x" * 100_000], "activity_text": [""]}))
    assert len(titles[0]) == MAX_TITLE_CHARS  # defined truncation, not a crash


def test_role_class_weights_favour_rare_roles():
    w = role_class_weights(np.array([[0, 5], [5, 5], [5, IGNORE]]), len(ROLES), 0.5)
    assert w[0] > w[5] == 1.0 and w[1] == pytest.approx(np.sqrt(4))  # unseen counted as 1


def test_onnx_variants_match_fp32_and_export_once(
    model_and_tokenizer, frame, tmp_path, monkeypatch
):
    pytest.importorskip("onnxruntime")
    from buying_groups.models.runtime import PREDICTION_VERSION, prediction_key, use_variant

    monkeypatch.setenv("BG_CACHE_DIR", str(tmp_path / "cache"))
    model, tok = model_and_tokenizer
    model.save(tmp_path / "m", tok)
    loaded, loaded_tok = RoleModel.load(tmp_path / "m")
    attention = loaded.encoder.config._attn_implementation
    reference = predict_proba(loaded, loaded_tok, frame)
    use_variant(loaded, loaded_tok, "onnx")
    exact = predict_proba(loaded, loaded_tok, frame)
    for head in reference:
        np.testing.assert_allclose(exact[head], reference[head], atol=1e-5)
    # exported with eager attention (faster in ONNX Runtime); the PyTorch model keeps its own
    assert loaded.encoder.config._attn_implementation == attention
    exported = list((tmp_path / "cache" / "onnx").glob("*/role_model.onnx"))
    assert len(exported) == 1  # keyed by the weights: a second load reuses it
    stamp = exported[0].stat().st_mtime_ns
    use_variant(loaded, loaded_tok, "onnx-int8")
    int8 = predict_proba(loaded, loaded_tok, frame)
    assert exported[0].stat().st_mtime_ns == stamp
    for head in reference:  # quantised weights: close, not equal
        np.testing.assert_allclose(int8[head], reference[head], atol=0.05)
    # the encoder's matrix products are quantised, the heads' stay in float
    import onnx

    graph = onnx.load(str(exported[0].with_name("role_model.int8.onnx"))).graph
    integer = {
        n.name for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeLinear")
    }
    assert any(name.startswith("/model/encoder/") for name in integer)
    heads = [n for n in graph.node if n.name.startswith("/model/function_head/")]
    assert heads and {n.op_type for n in heads} <= {"Gemm", "MatMul", "Add"}
    assert not any("head" in name for name in integer)
    # cached predictions never mix variants
    assert prediction_key(loaded) == f"{loaded.weights_digest}~p{PREDICTION_VERSION}+onnx-int8"
    use_variant(loaded, loaded_tok, "fp32")
    assert prediction_key(loaded) == f"{loaded.weights_digest}~p{PREDICTION_VERSION}"


def test_the_onnx_cache_keeps_only_the_most_recently_used_exports(tmp_path, monkeypatch):
    from buying_groups.models.runtime import prune_onnx_cache

    monkeypatch.setenv("BG_CACHE_DIR", str(tmp_path))
    root = tmp_path / "onnx"
    for age, name in enumerate(["newest", "middle", "oldest"]):
        (root / name).mkdir(parents=True)
        (root / name / "role_model.onnx").write_bytes(b"x")
        os.utime(root / name, (1_000_000 - age, 1_000_000 - age))
    assert [p.name for p in prune_onnx_cache(keep=2)] == ["oldest"]
    assert sorted(p.name for p in root.iterdir()) == ["middle", "newest"]
    monkeypatch.setenv("BG_CACHE_KEEP", "1")
    assert [p.name for p in prune_onnx_cache()] == ["middle"]


def test_pair_tokenizer_gives_the_transformers_tokenizers_ids(model_and_tokenizer, tmp_path):
    from buying_groups.models.inference import PairTokenizer

    _, tok = model_and_tokenizer
    tok.save_pretrained(tmp_path)
    titles = ["VP Procurement", "", "Руководитель отдела закупок", "Directeur des achats " * 30]
    texts = ["requested demo (data_platform)", "", "visited /pricing " * 40, "é ß 東京"]
    ours = PairTokenizer(tmp_path)
    for max_length in (8, 32, 64):
        theirs = tok(titles, texts, truncation="longest_first", max_length=max_length)
        mine = ours(titles, texts, truncation="longest_first", max_length=max_length)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert mine[key] == theirs[key], (key, max_length)
        rows = {k: mine[k][:3] for k in mine}
        padded = tok.pad({k: theirs[k][:3] for k in theirs}, return_tensors="np")
        for key, array in ours.pad(rows).items():
            np.testing.assert_array_equal(array, padded[key])
    assert ours.get_vocab() == tok.get_vocab()  # the speller's known words, either way


def test_an_exported_model_predicts_without_pytorch(model_and_tokenizer, frame, tmp_path):
    """Once its ONNX graph is exported, a saved model loads from the graph alone (no
    PyTorch, no transformers: a faster start for bg-score and bg-serve) and predicts
    exactly as the PyTorch-built model running the same graph."""
    pytest.importorskip("onnxruntime")
    import subprocess
    import sys

    from buying_groups.models.inference import ExportedRoleModel
    from buying_groups.models.loading import load_for_inference

    env = {**os.environ, "BG_CACHE_DIR": str(tmp_path / "cache")}
    model, tok = model_and_tokenizer
    model.save(tmp_path / "m", tok)
    os.environ["BG_CACHE_DIR"] = env["BG_CACHE_DIR"]
    try:
        first, first_tok = load_for_inference(tmp_path / "m", "onnx-int8")  # exports
        again, again_tok = load_for_inference(tmp_path / "m", "onnx-int8")
        fp32, _ = load_for_inference(tmp_path / "m", "fp32")
    finally:
        os.environ.pop("BG_CACHE_DIR")
    assert isinstance(first, RoleModel) and isinstance(again, ExportedRoleModel)
    assert isinstance(fp32, RoleModel)  # PyTorch variants always build the model
    assert again.weights_digest == first.weights_digest and again.variant == "onnx-int8"
    expected = predict_proba(first, first_tok, frame)
    got = predict_proba(again, again_tok, frame)
    for head in expected:
        np.testing.assert_array_equal(got[head], expected[head])
    probe = (
        "import sys, pandas as pd\n"
        "from buying_groups.models.inference import predict_proba\n"
        "from buying_groups.models.loading import load_for_inference\n"
        f"m, t = load_for_inference({str(tmp_path / 'm')!r}, 'onnx-int8')\n"
        "p = predict_proba(m, t, pd.DataFrame({'job_title': ['VP Procurement'], "
        "'activity_text': ['requested demo (data_platform)']}))\n"
        "print(type(m).__name__, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["ExportedRoleModel", "False", "False"], out.stderr[-2000:]


def test_a_missing_optional_dependency_says_how_to_install(model_and_tokenizer, monkeypatch):
    from buying_groups.models.runtime import VariantUnavailable, available_variants, use_variant

    model, tok = model_and_tokenizer
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import fails
    with pytest.raises(VariantUnavailable, match=r'pip install "buying-groups\[onnx\]"'):
        use_variant(model, tok, "onnx-int8")
    assert not {"onnx", "onnx-int8"} & set(available_variants())
    with pytest.raises(ValueError, match="unknown inference variant 'int4'"):
        use_variant(model, tok, "int4")
    assert getattr(model, "variant", "fp32") == "fp32"  # a failed switch leaves the model as it was


def test_bf16_without_native_support_warns_and_still_predicts(
    model_and_tokenizer, frame, monkeypatch
):
    """A model recorded as bf16 on an AVX512-BF16 machine, loaded where bf16 is emulated."""
    from buying_groups.models import runtime
    from buying_groups.models.runtime import use_variant

    model, tok = model_and_tokenizer
    monkeypatch.setattr(runtime, "bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16.*variant=fp32"):
        use_variant(model, tok, "bf16")
    try:
        assert predict_proba(model, tok, frame)["role"].shape == (4, len(PRODUCTS), len(ROLES))
    finally:
        use_variant(model, tok, "fp32")
    monkeypatch.setattr(runtime, "bf16_supported", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        use_variant(model, tok, "bf16")
    use_variant(model, tok, "fp32")


def test_student_keeps_evenly_spaced_layers_and_saves_like_any_role_model(
    model_and_tokenizer, frame, tmp_path
):
    model, tok = model_and_tokenizer
    n = model.encoder.config.num_hidden_layers
    student = model.student(1, max_length=16)
    assert student.encoder.config.num_hidden_layers == len(student.encoder.encoder.layer) == 1
    assert model.encoder.config.num_hidden_layers == n  # the teacher is untouched
    assert student.config.max_length == 16 and student.config.encoder["num_hidden_layers"] == 1
    # the kept layer is a copy of the teacher's first: same weights, not shared
    kept = student.encoder.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(kept, model.encoder.encoder.layer[0].attention.self.query.weight)
    assert kept.data_ptr() != model.encoder.encoder.layer[0].attention.self.query.weight.data_ptr()
    student.save(tmp_path, tok)
    loaded, _ = RoleModel.load(tmp_path)
    a, b = predict_proba(student.eval(), tok, frame), predict_proba(loaded, tok, frame)
    for head in a:
        np.testing.assert_allclose(a[head], b[head], atol=1e-6)
    with pytest.raises(ValueError, match="distill.layers must be 1..2"):
        model.student(n + 1)


def test_a_student_can_keep_the_teachers_token_embeddings_fixed(model_and_tokenizer):
    model, _ = model_and_tokenizer
    trainable = {n for n, p in model.student(1).named_parameters() if p.requires_grad}
    fixed = {
        n
        for n, p in model.student(1, freeze_embeddings=True).named_parameters()
        if not p.requires_grad
    }
    assert fixed and all(n.startswith("encoder.embeddings.") for n in fixed)
    assert fixed <= trainable  # trainable by default
    assert any(n.startswith("encoder.encoder.layer.") for n in trainable - fixed)


def test_soft_targets_pull_the_student_towards_the_teacher(model_and_tokenizer, frame):
    model, tok = model_and_tokenizer
    # a random teacher is nearly uniform: sharpen it so that there is something to learn
    soft = {
        h: p**8 / (p**8).sum(-1, keepdims=True) for h, p in predict_proba(model, tok, frame).items()
    }
    student = model.student(1)
    student.config.distill_alpha = 1.0  # teacher's probabilities only
    ds = RoleDataset(frame, tok, student, soft)
    batch = Collator(tok)([ds[i] for i in range(len(frame))])
    assert batch["role_soft"].shape == (4, len(PRODUCTS), len(ROLES))
    student.config.teacher_forcing = 0.0
    student.eval()  # no dropout: a deterministic descent (gradients still flow)
    opt = torch.optim.AdamW(student.parameters(), lr=3e-3)
    targets = {h: torch.from_numpy(p) for h, p in soft.items()}

    def kl() -> float:  # the student's divergence from the targets, summed over heads
        with torch.no_grad():
            out = student(**{k: v for k, v in batch.items() if k in TOKEN_KEYS})
        return sum(
            float(
                (t * (t.clamp(min=1e-12).log() - out[f"{h}_logits"].log_softmax(-1))).sum(-1).mean()
            )
            for h, t in targets.items()
        )

    before = kl()
    for _ in range(40):
        loss = student(**batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert kl() < 0.3 * before, (before, kl())
    with pytest.raises(ValueError, match="soft targets for role: 3 rows, frame has 4"):
        RoleDataset(frame, tok, student, {**soft, "role": soft["role"][:3]})


def test_unlabelled_rows_learn_from_the_teacher_alone(model_and_tokenizer, frame):
    """Distillation's transfer contacts carry inputs only: a batch of them has no hard
    loss (not a NaN mean over zero labels), only the teacher's probabilities."""
    model, tok = model_and_tokenizer
    inputs = frame[["job_title", "activity_text"]]
    soft = predict_proba(model, tok, inputs)
    student = model.student(1)
    student.config.distill_alpha = 0.5

    def loss(ds: RoleDataset) -> torch.Tensor:
        batch = Collator(tok)([ds[i] for i in range(len(ds))])
        assert (batch["function_labels"] == IGNORE).all() and (batch["role_labels"] == IGNORE).all()
        return student(**batch)["loss"]

    assert loss(RoleDataset(inputs, tok, student)).item() == 0.0  # nothing to learn from
    distilled = loss(RoleDataset(inputs, tok, student, soft))
    assert torch.isfinite(distilled) and distilled.item() > 0
    distilled.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_bf16_training_hands_back_a_plain_fp32_model(tiny_bert_dir, frame, catalog, tmp_path):
    """Mixed-precision training wraps forward in a bf16 autocast; the trained model must
    come back without it, so fp32 inference is fp32 and the ONNX export traces the
    weights (with the wrapper it failed: 'ComplexDouble is an unexpected tensor type')."""
    pytest.importorskip("onnxruntime")
    from buying_groups.models.runtime import use_variant
    from buying_groups.models.train import train_role_model

    from .conftest import compose_config

    overrides = [f"model.name_or_path={tiny_bert_dir}", "model.max_length=32"]
    overrides += ["trainer.bf16=true", "trainer.max_steps=2", "trainer.disable_tqdm=true"]
    cfg = compose_config("train_roles", overrides)
    model, tok, _ = train_role_model(
        frame, frame, catalog, cfg.model, cfg.trainer, tmp_path / "out", seed=0
    )
    assert model.forward.__func__ is RoleModel.forward
    model.save(tmp_path / "m", tok)
    loaded, loaded_tok = RoleModel.load(tmp_path / "m")
    reference = predict_proba(loaded, loaded_tok, frame)
    for head, p in predict_proba(model, tok, frame).items():
        np.testing.assert_allclose(p, reference[head], atol=1e-5)
    use_variant(model, tok, "onnx")
    for head, p in predict_proba(model, tok, frame).items():
        np.testing.assert_allclose(p, reference[head], atol=1e-4)


@pytest.mark.parametrize("variant", ["fp32", "onnx"])
def test_fp32_variants_score_a_contact_independently_of_its_batch(
    model_and_tokenizer, tmp_path, monkeypatch, variant
):
    """A contact's scores do not depend on which inputs share its batch, so differently
    batched runs (buckets, caches, Spark) agree. Dynamic int8 is the exception: its
    activation scales are per batch (docs/benchmarks.md), so tests comparing such runs
    score with ``variant=onnx``."""
    if variant == "onnx":
        pytest.importorskip("onnxruntime")
    from buying_groups.models.runtime import use_variant

    monkeypatch.setenv("BG_CACHE_DIR", str(tmp_path / "cache"))
    model, tok = model_and_tokenizer
    model.save(tmp_path / "m", tok)
    loaded, loaded_tok = RoleModel.load(tmp_path / "m")
    use_variant(loaded, loaded_tok, variant)
    words = ["VP", "Head of", "Senior", "Procurement", "Marketing", "Security", "Engineer"]
    frame = pd.DataFrame(
        {
            "job_title": [" ".join(words[i % 7 : i % 7 + 1 + i % 3]) for i in range(40)],
            "activity_text": ["visited /pricing; " * (i % 5) for i in range(40)],
        }
    )
    together = predict_proba(loaded, loaded_tok, frame, batch_size=16)
    for i in (0, 7, 23, 39):
        alone = predict_proba(loaded, loaded_tok, frame.iloc[[i]])
        for head in together:
            np.testing.assert_allclose(together[head][i], alone[head][0], atol=1e-5)


def test_a_student_is_never_a_teacher(model_and_tokenizer, tmp_path):
    """bg-pipeline train_roles=false distils from the champion, which may be a student: its
    own teacher is used instead (a student of a student would copy a copy)."""
    from buying_groups.models.distill import load_teacher

    model, tok = model_and_tokenizer
    model.save(tmp_path / "teacher", tok)
    student = model.student(1)
    student.config.distilled_from = str(tmp_path / "teacher")
    student.save(tmp_path / "student", tok)
    teacher, _, ref = load_teacher(str(tmp_path / "student"))
    assert ref == str(tmp_path / "teacher")
    assert teacher.encoder.config.num_hidden_layers == model.encoder.config.num_hidden_layers > 1
    assert load_teacher(str(tmp_path / "teacher"))[2] == str(tmp_path / "teacher")
    # a student whose teacher is gone says what to do
    student.config.distilled_from = str(tmp_path / "gone")
    student.save(tmp_path / "orphan", tok)
    with pytest.raises(SystemExit, match="no longer exists: pass distill.teacher="):
        load_teacher(str(tmp_path / "orphan"))


def test_the_advocacy_head_learns_counts_and_feeds_the_role_head(tiny_bert_dir, frame, tmp_path):
    """advocacy_head=true: an auxiliary 0 / 1 / 2+ target per product, masked where unknown,
    scored in the loss, not among the three heads that inference returns."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32, advocacy_head=True)
    counted = frame.assign(
        advocacy_marketing_automation=[0, 0, 0, 0],
        advocacy_security_platform=[0, 1, 0, 0],
        advocacy_data_platform=[5, 0, 0, 0],  # clipped to 2+
    )
    ds = RoleDataset(counted, tok, model)
    assert ds.advocacy[0].tolist() == [0, 0, 2] and ds.advocacy[1].tolist() == [0, 1, 0]
    assert (RoleDataset(frame, tok, model).advocacy == IGNORE).all()  # no counts: masked
    batch = Collator(tok)([ds[i] for i in range(len(counted))])
    model.eval()
    out = model(**batch)
    assert out["advocacy_logits"].shape == (len(counted), len(PRODUCTS), 3)
    masked = dict(batch, advocacy_labels=torch.full_like(batch["advocacy_labels"], IGNORE))
    extra = torch.nn.functional.cross_entropy(
        out["advocacy_logits"].reshape(-1, 3), batch["advocacy_labels"].reshape(-1)
    )
    assert torch.allclose(out["loss"], model(**masked)["loss"] + extra)
    # inference and persistence: three heads as before, the head survives a save/load
    model.save(tmp_path, tok)
    loaded, _ = RoleModel.load(tmp_path)
    assert loaded.config.advocacy_head and loaded.advocacy_head is not None
    a, b = predict_proba(model, tok, frame), predict_proba(loaded, tok, frame)
    assert set(a) == {"function", "seniority", "role"}
    for head in a:
        np.testing.assert_allclose(a[head], b[head], atol=1e-6)


def test_cached_frozen_layers_give_the_encoders_output(tiny_bert_dir, frame):
    """Training from cached frozen-layer states computes what the whole encoder computes:
    the cache changes the cost of a step, not the model."""
    from transformers import AutoTokenizer

    from buying_groups.models.train import cache_frozen, frozen_states

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32, freeze_layers=1)
    assert model.can_cache_frozen()
    model.eval()
    ds = RoleDataset(frame, tok, model)
    batch = Collator(tok)([ds[i] for i in range(len(ds))])
    tokens = {k: batch[k] for k in TOKEN_KEYS if k in batch}
    with torch.no_grad():
        whole = model(**tokens)
        assert cache_frozen(
            model, tok, [ds], {"cache_frozen_layers": True, "cache_frozen_max_gb": 1}
        )
        cached = Collator(tok)([ds[i] for i in range(len(ds))])
        assert cached["frozen_states"].shape[:2] == cached["input_ids"].shape
        split = model(**{**tokens, "frozen_states": cached["frozen_states"]})
    for head in ("function_logits", "seniority_logits", "role_logits"):
        # float16 storage of the states: equal to about 3 significant digits
        torch.testing.assert_close(split[head], whole[head], atol=2e-2, rtol=2e-2)
    states = frozen_states(model, tok, ds.enc)
    assert [len(s) for s in states] == [len(ids) for ids in ds.enc["input_ids"]]


def test_the_frozen_layer_cache_stands_aside_when_it_cannot_help(tiny_bert_dir, frame):
    from transformers import AutoTokenizer

    from buying_groups.models.train import cache_frozen

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    on = {"cache_frozen_layers": True, "cache_frozen_max_gb": 1}
    nothing_frozen = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32)
    assert not nothing_frozen.can_cache_frozen()
    assert not cache_frozen(nothing_frozen, tok, [RoleDataset(frame, tok, nothing_frozen)], on)
    model = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32, freeze_layers=1)
    ds = RoleDataset(frame, tok, model)
    assert not cache_frozen(model, tok, [ds], {**on, "cache_frozen_max_gb": 0})  # over budget
    assert not cache_frozen(model, tok, [ds], {**on, "cache_frozen_layers": False})
    assert ds.frozen is None


def test_model_layers_cuts_the_pretrained_encoder_and_round_trips(tiny_bert_dir, frame, tmp_path):
    full = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS)
    cut = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, layers=1)
    assert len(cut.encoder.encoder.layer) == cut.config.encoder["num_hidden_layers"] == 1
    # the kept layer is the pretrained first layer, not a fresh one
    torch.testing.assert_close(
        cut.encoder.encoder.layer[0].output.dense.weight,
        full.encoder.encoder.layer[0].output.dense.weight,
    )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    cut.save(tmp_path, tok)
    loaded, _ = RoleModel.load(tmp_path)
    assert len(loaded.encoder.encoder.layer) == 1
    a, b = predict_proba(cut.eval(), tok, frame), predict_proba(loaded, tok, frame)
    for head in a:
        np.testing.assert_allclose(a[head], b[head], atol=1e-6)
    with pytest.raises(ValueError, match="model.layers must be 1..2"):
        RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, layers=3)


def test_model_layers_refuses_to_freeze_every_kept_layer(tiny_bert_dir):
    with pytest.raises(ValueError, match="freeze_layers=1 would fix every one"):
        RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, layers=1, freeze_layers=1)


def test_predict_proba_pools_each_title_by_its_languages_weight(tiny_bert_dir, monkeypatch):
    """The role model's persona = the transformer's pooled with the title expert's, each
    title at the weight of its language (averaged under the language probabilities)."""
    from transformers import AutoTokenizer

    import buying_groups.models.title_expert as te
    from buying_groups.models.title_expert import TitleExpert, pool

    torch.manual_seed(0)
    model = RoleModel.from_encoder(str(tiny_bert_dir), PRODUCTS, max_length=32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    cfg = model.config
    german = [
        "Leiter Einkauf",
        "Einkaufsleiterin",
        "Vertriebsleiter",
        "Buchhalterin",
        "Leiterin Vertrieb",
        "Geschäftsführer",
    ]
    english = [
        "Purchasing Manager",
        "Buyer",
        "Sales Manager",
        "Accountant",
        "Head of Sales",
        "Managing Director",
    ]
    function = ["procurement", "procurement", "sales", "finance", "sales", "executive"]
    seniority = ["director", "director", "director", "professional", "director", "executive"]
    monkeypatch.setattr(te, "MIN_LANGUAGE_TITLES", 5)
    expert = TitleExpert({"function": cfg.functions, "seniority": cfg.seniorities}).fit(
        pd.Series((german + english) * 3),
        pd.DataFrame({"function": function * 6, "seniority": seniority * 6}),
        languages=pd.Series((["de"] * 6 + ["en"] * 6) * 3),
    )
    frame = pd.DataFrame(
        {"job_title": ["Leiterin Einkauf", "Head of Purchasing", ""], "activity_text": ""}
    )
    model.title_expert = expert
    net = predict_proba(model, tok, frame)  # no weights: the transformer alone
    cfg.title_expert_weights = {"function": 0.0, "seniority": 0.0}
    cfg.title_expert_language_weights = {"function": {"de": 1.0, "en": 0.0}}
    out = predict_proba(model, tok, frame)
    titles = frame["job_title"].tolist()
    w = expert.weights(titles, cfg.title_expert_weights, cfg.title_expert_language_weights)
    assert w["function"][0] > 0.5 > w["function"][1]  # German leans on the expert
    has_title = np.array([True, True, False])
    guess = expert.predict_proba(titles)["function"]
    expected = pool(net["function"], guess, w["function"], has_title)
    np.testing.assert_allclose(out["function"], expected, atol=1e-5)
    assert not np.allclose(out["function"][0], net["function"][0], atol=1e-3)
    np.testing.assert_allclose(out["function"][2], net["function"][2], atol=1e-5)  # no title
    np.testing.assert_allclose(out["seniority"], net["seniority"], atol=1e-5)  # no weights


@pytest.mark.parametrize("rules", [False, True], ids=["head", "head+rules"])
def test_the_role_head_reads_the_pooled_persona_in_pytorch_and_onnx(
    tiny_bert_dir, catalog, tmp_path, monkeypatch, rules
):
    """A title the expert reads better than the word pieces gets the roles of the pooled
    persona: pooled inside the model before the role head, the same in PyTorch and ONNX
    (bf16 and int8 run the same module and graph; tested against fp32 elsewhere)."""
    from transformers import AutoTokenizer

    from buying_groups.models.title_expert import TitleExpert

    monkeypatch.setenv("BG_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    table = [role_rules_table(catalog[p]) for p in PRODUCTS] if rules else []
    model = RoleModel.from_encoder(
        str(tiny_bert_dir), PRODUCTS, max_length=32, role_rules=table, advocacy_head=rules
    ).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    cfg = model.config
    titles = ["Leiter Einkauf", "Einkaufsleiterin", "Buchhalterin", "Geschäftsführer"] * 3
    truth = pd.DataFrame(
        {
            "function": ["procurement", "procurement", "finance", "executive"] * 3,
            "seniority": ["director", "director", "professional", "executive"] * 3,
        }
    )
    model.title_expert = TitleExpert({"function": cfg.functions, "seniority": cfg.seniorities})
    model.title_expert.fit(pd.Series(titles), truth)
    frame = pd.DataFrame({"job_title": ["Einkaufsleiter", ""], "activity_text": ["", "x"]})
    net = predict_proba(model, tok, frame)
    cfg.title_expert_weights = {"function": 0.9, "seniority": 0.9}
    pooled = predict_proba(model, tok, frame)
    # the titled contact's roles moved with its persona; the one without a title kept both
    assert not np.allclose(pooled["role"][0], net["role"][0], atol=1e-3)
    for head in ("function", "seniority", "role"):
        np.testing.assert_allclose(pooled[head][1], net[head][1], atol=1e-4)
    # what the graph's inputs say: the role head fed the pooled persona
    from buying_groups.models.inference import expert_priors

    batch = tok(frame["job_title"].tolist(), frame["activity_text"].tolist(), padding=True)
    feeds = {k: torch.tensor(v) for k, v in batch.items()}
    priors = expert_priors(model, frame["job_title"].tolist())
    assert priors["prior_weight"][1].tolist() == [0.0, 0.0]  # no title: no pooling
    with torch.no_grad():
        out = model(**feeds, **{k: torch.from_numpy(v) for k, v in priors.items()})
    np.testing.assert_allclose(pooled["role"], out["role_logits"].softmax(-1).numpy(), atol=1e-5)
    # with some inputs cached, each new one still gets its own title's prior
    from buying_groups.models.inference import caching

    model.weights_digest = "partial-cache-test"
    more = pd.DataFrame(
        {
            "job_title": ["", "Buchhalterin", "Einkaufsleiter", "Geschäftsführer"],
            "activity_text": ["x", "", "", ""],
        }
    )
    alone = predict_proba(model, tok, more)
    with caching():
        predict_proba(model, tok, frame)  # rows 0 and 2 of ``more``: cached, 1 and 3 new
        mixed = predict_proba(model, tok, more)
    del model.weights_digest
    for head in alone:
        np.testing.assert_allclose(mixed[head], alone[head], atol=1e-5)
    pytest.importorskip("onnxruntime")
    from buying_groups.models.runtime import use_variant

    model.save(tmp_path / "m", tok)
    loaded, loaded_tok = RoleModel.load(tmp_path / "m")
    use_variant(loaded, loaded_tok, "onnx")
    exported = predict_proba(loaded, loaded_tok, frame)
    for head in pooled:
        np.testing.assert_allclose(exported[head], pooled[head], atol=1e-5)


@pytest.mark.parametrize("advocacy_head", [False, True])
def test_with_the_rules_table_roles_follow_the_persona(tiny_bert_dir, catalog, advocacy_head):
    """With ``role_rules`` and a head that adds nothing, a contact's roles are the spec's
    rules applied to its persona, for every function x seniority (and advocacy level): the
    table's axes line up with the persona heads and the advocacy levels."""
    table = [role_rules_table(catalog[p]) for p in PRODUCTS]
    model = RoleModel.from_encoder(
        str(tiny_bert_dir), PRODUCTS, max_length=32, role_rules=table, advocacy_head=advocacy_head
    ).eval()
    cfg = model.config
    f, s = np.meshgrid(np.arange(len(cfg.functions)), np.arange(len(cfg.seniorities)))
    f, s = f.ravel(), s.ravel()
    eye_f, eye_s = torch.eye(len(cfg.functions))[f], torch.eye(len(cfg.seniorities))[s]
    names_f, names_s = np.array(cfg.functions)[f], np.array(cfg.seniorities)[s]
    for level in range(3) if advocacy_head else [None]:
        advocacy = None
        if level is not None:
            advocacy = torch.zeros(len(f), len(PRODUCTS), 3)
            advocacy[:, :, level] = 1.0
        got = model.rules_log_prior(eye_f, eye_s, advocacy).argmax(-1).numpy()
        for j, p in enumerate(PRODUCTS):
            want = assign_roles(names_f, names_s, np.full(len(f), level or 0), catalog[p])
            assert (np.array(cfg.roles)[got[:, j]] == want).all(), (p, level)
    # through forward: the head's last layer zeroed, a one-hot persona prior pooled in fully,
    # the advocacy head sure of no advocacy, then of two or more kinds (a champion's)
    n = len(f)
    with torch.no_grad():
        model.role_head[-1].weight.zero_()
        model.role_head[-1].bias.zero_()
    for level in (0, 2) if advocacy_head else [0]:
        with torch.no_grad():
            if advocacy_head:
                model.advocacy_head.weight.zero_()
                model.advocacy_head.bias.copy_(torch.eye(3)[level] * 20.0)
            out = model(
                torch.ones(n, 4, dtype=torch.long), torch.ones(n, 4, dtype=torch.long),
                function_prior=eye_f, seniority_prior=eye_s, prior_weight=torch.ones(n, 2),
            )  # fmt: skip
        roles = np.array(cfg.roles)[out["role_logits"].argmax(-1).numpy()]
        for j, p in enumerate(PRODUCTS):
            want = assign_roles(names_f, names_s, np.full(n, level), catalog[p])
            assert (roles[:, j] == want).all(), (p, level)
            assert level == 0 or (want == "champion").any()  # the level-2 case tests something
