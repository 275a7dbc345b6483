"""bg-train-roles end to end on the tiny dataset with a tiny random BERT from a local dir
(any HF id or path works through ``model.name_or_path``), tracked in a temporary MLflow
SQLite store; then the logged pyfunc, loaded in a fresh process."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from buying_groups.data.examples import labelled_examples
from buying_groups.models.role_model import RoleModel
from buying_groups.models.runtime import VARIANTS, use_variant
from buying_groups.serving.role_pyfunc import role_outputs

from .conftest import compose_config, run_cli


def _train(tmp_path, tiny_dir, tiny_bert_dir, *extra):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = "from buying_groups.cli.train_roles import main; main()"
    args = [
        "experiment=tiny",
        f"model.name_or_path={tiny_bert_dir}",
        f"data_dir={tiny_dir}",
        "trainer.epochs=1",
        "baselines=[rules,tfidf_logreg]",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'multi'}",
        *extra,
    ]
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *flags, *overrides],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return uri, proc


def _logged_model_uri(uri: str) -> str:
    """The model logged by the transformer run in the store at ``uri``."""
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(
        experiment_names=["buying-groups-roles"], filter_string="tags.`bg.model` = 'transformer'"
    ).iloc[0]
    return mlflow.search_logged_models(experiment_ids=[run["experiment_id"]], output_format="list")[
        0
    ].model_uri


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dir, tiny_bert_dir):
    tmp = tmp_path_factory.mktemp("train")
    uri, proc = _train(tmp, tiny_dir, tiny_bert_dir)
    return tmp, uri, proc


def test_configs_compose_for_training():
    cfg = compose_config("train_roles", ["experiment=tiny", "data_dir=x"])
    assert cfg.data.name == "tiny" and cfg.trainer.epochs == 2
    assert cfg.model.name_or_path is None  # default: the bundled MiniLM
    sweep = compose_config("train_roles", ["hparams_search=optuna"])
    assert sweep.optimized_metric == "validation/role_macro_f1"
    student = compose_config("train_roles", ["experiment=distill"])
    fast = compose_config("train_roles", ["experiment=distill_fast"])
    assert student.distill.teacher == fast.distill.teacher == "models:/buying-group-roles@champion"
    assert (student.distill.max_length, fast.distill.max_length) == (None, 48)
    assert (student.distill.layers, fast.distill.layers, fast.trainer.epochs) == (3, 2, 6)
    assert student.distill.freeze_embeddings and fast.distill.freeze_embeddings
    pipeline = compose_config("pipeline", [])
    # the student is a separate, longer step (bg-pipeline student=true), not the default
    assert not pipeline.student and list(pipeline.student_overrides) == ["experiment=distill"]
    assert pipeline.student_transfer is True  # its default (see configs/pipeline.yaml)
    # Students train every epoch; the teacher stops early.
    assert student.trainer.early_stopping_patience is None
    assert compose_config("train_roles", []).trainer.early_stopping_patience == 2


@pytest.mark.parametrize("bf16", [True, False, "auto"])
def test_trainer_settings_build_on_any_machine(tmp_path, bf16):
    """bf16 on a CPU (autocast) is accepted as well as on a GPU, so ``bf16: auto`` never
    stops a run on a machine with AVX512-BF16 and no CUDA."""
    from buying_groups.models.runtime import bf16_supported
    from buying_groups.models.train import training_arguments

    cfg = compose_config("train_roles", [f"trainer.bf16={bf16}"])
    args = training_arguments(cfg.trainer, tmp_path, seed=0, report_to=[])
    assert args.bf16 == (bf16_supported() if bf16 == "auto" else bf16)


def test_three_comparable_runs(trained):
    _, uri, proc = trained
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["buying-groups-roles"])
    by_name = {r["tags.mlflow.runName"]: r for _, r in runs.iterrows()}
    assert {"transformer", "rules", "tfidf_logreg"} <= set(by_name)
    names = {
        n: {
            c for c in runs.columns if c.startswith("metrics.test_ood/") and pd.notna(by_name[n][c])
        }
        for n in ("transformer", "rules", "tfidf_logreg")
    }
    assert names["transformer"] == names["rules"] == names["tfidf_logreg"]
    assert "metrics.test_ood/role_macro_f1" in names["rules"]
    t = by_name["transformer"]
    assert t["tags.dataset.name"] == "tiny" and len(t["tags.dataset.digest"]) == 64
    assert t["tags.mlflow.source.git.commit"]
    assert t["params.trainer.learning_rate"] and t["params.model.name_or_path"]
    assert pd.notna(t["metrics.eval_role_macro_f1"])  # per-epoch metrics from the Trainer
    client = mlflow.MlflowClient(uri)
    arts = {a.path for a in client.list_artifacts(t["run_id"], "plots")}
    assert "plots/confusion_test_ood_role.png" in arts
    assert client.list_artifacts(t["run_id"], "config")
    assert "role model vs baselines" in proc.stdout
    # the inference variant loaders will use: measured, chosen, recorded with the model
    assert "inference variants on" in proc.stdout
    assert pd.notna(t["metrics.variant/fp32/contacts_per_s"])
    config = json.loads((trained[0] / "run" / "role_model" / "role_model.json").read_text())
    assert config["inference_variant"] == t["tags.bg.inference_variant"] in VARIANTS


def test_pyfunc_in_a_fresh_process_matches_the_model(trained, tiny_dir):
    tmp, uri, _ = trained
    model_uri = _logged_model_uri(uri)
    sample = pd.DataFrame(
        {
            "job_title": ["VP Procurement", "", "Leiter Einkauf", "x" * 100_000],
            "activity_text": ["requested demo (data_platform)", "visited /pricing", "", ""],
        }
    )
    sample.to_json(tmp / "sample.json", orient="split")
    script = textwrap.dedent(f"""
        import json, mlflow, pandas as pd
        mlflow.set_tracking_uri({uri!r})
        m = mlflow.pyfunc.load_model({model_uri!r})
        df = pd.read_json({str(tmp / "sample.json")!r}, orient="split")
        out = m.predict(df)
        out.to_json({str(tmp / "out.json")!r}, orient="split")
        print(json.dumps(m.metadata.get_input_schema().input_names()))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["job_title", "activity_text"]
    fresh = pd.read_json(tmp / "out.json", orient="split")
    model, tok = RoleModel.load(tmp / "run" / "role_model")
    use_variant(model, tok)  # as recorded, like the pyfunc
    here = role_outputs(model, tok, sample)
    assert list(fresh["function"]) == list(here["function"])
    for p in model.config.products:
        assert list(fresh[f"role_{p}"]) == list(here[f"role_{p}"])
        np.testing.assert_allclose(
            np.stack(fresh[f"role_{p}_probs"]), np.stack(here[f"role_{p}_probs"]), atol=1e-5
        )
    assert len(fresh["function_probs"][0]) == 19


def test_pyfunc_bad_input_gets_a_clear_error(trained):
    tmp, uri, _ = trained
    model_uri = _logged_model_uri(uri)
    m = mlflow.pyfunc.load_model(model_uri)
    with pytest.raises(mlflow.exceptions.MlflowException, match="activity_text"):
        m.predict(pd.DataFrame({"job_title": ["CTO"]}))
    with pytest.raises(mlflow.exceptions.MlflowException, match="job_title"):
        m.predict(pd.DataFrame({"job_title": [123], "activity_text": [""]}))


def test_pyfunc_runs_the_variant_asked_for(trained):
    pytest.importorskip("onnxruntime")
    _, uri, _ = trained
    sample = pd.DataFrame(
        {"job_title": ["VP Procurement", "", "CTO"], "activity_text": ["", "visited /pricing", ""]}
    )
    out = {}
    for variant in ("fp32", "onnx"):
        m = mlflow.pyfunc.load_model(_logged_model_uri(uri), model_config={"variant": variant})
        assert m.unwrap_python_model().model.variant == variant
        out[variant] = m.predict(sample)
    for p in ("function", "seniority", "role_data_platform"):
        assert list(out["fp32"][p]) == list(out["onnx"][p])
        np.testing.assert_allclose(out["fp32"][f"{p}_proba"], out["onnx"][f"{p}_proba"], atol=1e-5)


@pytest.mark.slow
def test_optuna_sweep_nests_trials_under_one_parent(tmp_path, tiny_dir, tiny_bert_dir):
    uri, proc = _train(
        tmp_path,
        tiny_dir,
        tiny_bert_dir,
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "baselines=[]",
        "tracking.log_model=false",
        "trainer.max_train_samples=200",
    )
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["buying-groups-roles"])
    parents = runs[runs["tags.bg.kind"] == "sweep"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents.iloc[0]["run_id"]]
    assert len(children) == 2
    best = parents.iloc[0]["metrics.best_validation_role_macro_f1"]
    assert best == pytest.approx(children["metrics.validation/role_macro_f1"].max())
    # The sweeper got each trial's return value: its summary agrees with MLflow.
    import yaml

    result = yaml.safe_load((tmp_path / "multi" / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(best)


def test_training_resumes_from_a_checkpoint(trained, tmp_path, tiny_dir, tiny_bert_dir):
    first, _, _ = trained
    checkpoints = sorted(
        (first / "run" / "checkpoints").glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]),
    )
    assert checkpoints, "the Trainer saves a checkpoint per epoch"
    done = int(checkpoints[-1].name.split("-")[1])
    _, proc = _train(
        tmp_path,
        tiny_dir,
        tiny_bert_dir,
        "trainer.epochs=2",
        "baselines=[]",
        "tracking.log_model=false",
        f"trainer.resume_from_checkpoint={checkpoints[-1]}",
    )
    state = json.loads(
        max(
            (tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json"),
            key=lambda p: int(p.parent.name.split("-")[1]),
        ).read_text()
    )
    assert state["global_step"] == 2 * done  # continued from the first epoch, not from zero
    assert min(h["step"] for h in state["log_history"]) > 0


def test_distilled_student_is_smaller_and_follows_its_teacher(
    trained, tmp_path, tiny_dir, tiny_bert_dir, tiny_tables, catalog
):
    """bg-train-roles distill.teacher=<role model>: a 1-layer student of the session's
    2-layer model, trained on labels and the teacher's probabilities (plus unlabelled
    transfer contacts on the teacher's probabilities alone), saved and tracked."""
    teacher_dir = trained[0] / "run" / "role_model"
    uri, proc = _train(
        tmp_path,
        tiny_dir,
        tiny_bert_dir,
        f"distill.teacher={teacher_dir}",
        "distill.layers=1",
        "distill.max_length=24",
        f"distill.transfer_data={tiny_dir}",
        "distill.transfer_max=60",
        "trainer.epochs=3",
        "baselines=[]",
        "tracking.log_model=false",
        "inference.variant=fp32",
    )
    assert "into 1 layers, 24 tokens" in proc.stdout
    assert "(60 of them unlabelled transfer data)" in " ".join(proc.stdout.split())
    student, tok = RoleModel.load(tmp_path / "run" / "role_model")
    teacher, _ = RoleModel.load(teacher_dir)
    assert student.encoder.config.num_hidden_layers == 1 < teacher.encoder.config.num_hidden_layers
    assert student.config.max_length == 24 and student.config.distilled_from == str(teacher_dir)
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["buying-groups-roles"]).iloc[0]
    assert run["tags.bg.distilled_from"] == str(teacher_dir)
    assert run["params.distill.layers"] == "1"
    # a quality floor: the student keeps most of what the teacher knows on validation
    mlflow.set_tracking_uri(trained[1])
    teacher_run = mlflow.search_runs(
        experiment_names=["buying-groups-roles"], filter_string="tags.`bg.model` = 'transformer'"
    ).iloc[0]
    # The tiny validation split is small: allow two standard errors of an accuracy on it.
    tables, labels = tiny_tables
    examples = labelled_examples(tables, labels, catalog, tables["activities"]["timestamp"].max())
    n = int((examples["split"] == "validation").sum())
    for head in ("function", "seniority"):
        key = f"metrics.validation/{head}_accuracy"
        p = teacher_run[key]
        slack = 2 * np.sqrt(p * (1 - p) / n)
        assert run[key] >= 0.9 * p - slack, (head, run[key], p, n)


def test_qualifier_after_roles_uses_and_links_the_role_model(trained, tiny_dir):
    """bg-train-qualifier with no role arguments finds the newest role model and links it."""
    tmp, uri, _ = trained
    run_cli(
        "train_qualifier",
        tmp,
        "data=tiny",
        f"data_dir={tiny_dir}",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp / 'qualifier'}",
    )
    mlflow.set_tracking_uri(uri)
    roles_run = mlflow.search_runs(
        experiment_names=["buying-groups-roles"], filter_string="tags.`bg.model` = 'transformer'"
    ).iloc[0]
    q = mlflow.search_runs(experiment_names=["buying-groups-qualifier"]).iloc[0]
    assert q["tags.bg.role_source"] == "model"
    assert q["tags.bg.role_model_run_id"] == roles_run["run_id"]
    assert q["tags.bg.role_model_uri"] == _logged_model_uri(uri)


@pytest.fixture(scope="module")
def promoted(trained, tiny_dir):
    """bg-train-qualifier then bg-promote on the store of the trained tiny role model."""
    tmp, uri, _ = trained
    common = ["data=tiny", f"data_dir={tiny_dir}", f"tracking.uri={uri}"]
    run_cli("train_qualifier", tmp, *common, f"hydra.run.dir={tmp / 'q2'}")
    proc = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'promote'}")
    return tmp, uri, common, proc


def test_promote_registers_both_models_with_champion_aliases(promoted):
    tmp, uri, common, proc = promoted
    client = mlflow.MlflowClient(uri)
    v = client.get_model_version_by_alias("buying-groups", "champion")
    roles = client.get_model_version_by_alias("buying-group-roles", "champion")
    assert v.tags["decision"].startswith("promoted") and "candidate" in v.description
    assert float(v.tags["candidate_pr_auc"]) > 0
    assert roles.source and "@champion" in proc.stdout
    # The same candidate again is not better than the champion: registered, not promoted.
    again = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'promote2'}")
    assert "not promoted" in again.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version == v.version
    forced = run_cli("promote", tmp, *common, "force=true", f"hydra.run.dir={tmp / 'promote3'}")
    assert "promoted (forced)" in forced.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version != v.version


def test_promote_refuses_a_worse_candidate_and_moves_for_a_better_one(promoted):
    tmp, uri, common, _ = promoted
    client = mlflow.MlflowClient(uri)
    # A qualifier that cannot split (every leaf would need more groups than exist): one
    # score for every group, so its PR-AUC is the base rate.
    weak = ["qualifier.params.max_iter=1", "qualifier.params.min_samples_leaf=100000000"]
    run_cli("train_qualifier", tmp, *common, *weak, f"hydra.run.dir={tmp / 'weak'}")
    experiment = client.get_experiment_by_name("buying-groups-qualifier")
    weak_run = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`bg.kind` = 'qualifier'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    strong = client.get_model_version_by_alias("buying-groups", "champion")
    worse = run_cli(
        "promote", tmp, *common, f"run_id={weak_run.info.run_id}", f"hydra.run.dir={tmp / 'p4'}"
    )
    assert "not promoted" in worse.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version == strong.version
    run_cli(
        "promote",
        tmp,
        *common,
        f"run_id={weak_run.info.run_id}",
        "force=true",
        f"hydra.run.dir={tmp / 'p5'}",
    )
    weak_champion = client.get_model_version_by_alias("buying-groups", "champion")
    assert weak_champion.tags["qualifier_run_id"] == weak_run.info.run_id
    better = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'p6'}")  # the best run
    champion = client.get_model_version_by_alias("buying-groups", "champion")
    assert champion.version != weak_champion.version and "better PR-AUC" in better.stdout
    assert float(champion.tags["candidate_pr_auc"]) > float(weak_champion.tags["candidate_pr_auc"])


def test_bg_score_counts_rejects_and_repeatability(promoted, tiny_dir, tmp_path):
    import shutil

    tmp, uri, _, _ = promoted
    data = tmp_path / "data"
    shutil.copytree(tiny_dir, data)
    for f in data.glob("*.csv"):
        f.unlink()
    contacts = pd.read_parquet(data / "contacts.parquet")
    contacts.loc[3, "contact_id"] = contacts.loc[2, "contact_id"]  # a duplicate id
    contacts.to_parquet(data / "contacts.parquet")
    # ONNX fp32: a contact's scores do not depend on the rest of its batch (dynamic int8's
    # activation scales do: test_role_model.py::test_batch_composition).
    args = [f"data_dir={data}", f"tracking.uri={uri}", "chunk_size=500", "variant=onnx"]
    run_cli(
        "score", tmp_path, *args, f"output_dir={tmp_path / 'a'}", f"hydra.run.dir={tmp_path / 'r1'}"
    )
    # Again in small buckets and chunks: the same output (scoring is per account).
    small = ["accounts_per_bucket=7", "chunk_rows=5000"]
    run_cli(
        "score",
        tmp_path,
        *args,
        *small,
        f"output_dir={tmp_path / 'b'}",
        f"hydra.run.dir={tmp_path / 'r2'}",
    )
    scored = pd.read_parquet(tmp_path / "a" / "contacts_scored.parquet")
    rejects = pd.read_csv(tmp_path / "a" / "rejects.csv")
    n_rejected = int((rejects["table"] == "contacts").sum())
    assert n_rejected == 1 and "duplicate" in rejects["reason"].iloc[0]
    assert len(scored) + n_rejected == len(contacts)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    for table, c in summary["counts"].items():
        assert c["rows in"] == c["scored / kept"] + c["rejected"], table
    groups = pd.read_parquet(tmp_path / "a" / "groups_scored.parquet")
    assert len(groups) == 3 * pd.read_parquet(data / "accounts.parquet")["account_id"].nunique()
    assert groups["score"].between(0, 1).all() and set(groups["stage"]) <= {
        "none",
        "identified",
        "engaged",
        "qualified",
        "opportunity",
        "won",
        "lost",
    }
    for name in ("contacts_scored.parquet", "groups_scored.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name)
        )


def test_bg_score_rescores_only_changed_contacts(promoted, tiny_dir, tmp_path):
    """A second run encodes only the changed contacts' inputs and gives the output of a
    full rescore; another role model does not read the cache."""
    import shutil

    from buying_groups.models.inference import PredictionCache

    tmp, uri, _, _ = promoted
    data = tmp_path / "data"
    shutil.copytree(tiny_dir, data, ignore=shutil.ignore_patterns("*.csv"))
    base = [
        f"data_dir={data}",
        f"tracking.uri={uri}",
        "variant=onnx",  # batch-invariant, unlike dynamic int8 (see the repeatability test)
        # Several buckets, whose few changed accounts are then scored together (the full
        # run below has one bucket): the output does not depend on how accounts are batched.
        "accounts_per_bucket=10",
        f"output_dir={tmp_path / 'daily'}",
    ]
    run_cli("score", tmp_path, *base, f"hydra.run.dir={tmp_path / 'r1'}")
    first = json.loads((tmp_path / "daily" / "summary.json").read_text())
    assert first["role_model_inputs"]["encoded"] > len(pd.read_parquet(data / "contacts.parquet"))
    contacts = pd.read_parquet(data / "contacts.parquet")
    changed = contacts.index[::100]  # 1% of contacts get a new title
    contacts.loc[changed, "job_title"] = "Chief Procurement Officer " + contacts.loc[
        changed, "contact_id"
    ].astype(str)
    contacts.to_parquet(data / "contacts.parquet")
    run_cli("score", tmp_path, *base, f"hydra.run.dir={tmp_path / 'r2'}")
    second = json.loads((tmp_path / "daily" / "summary.json").read_text())
    # Each changed contact: one new (title, activity) pair and one new title-only input.
    assert second["role_model_inputs"]["encoded"] == 2 * len(changed)
    assert second["role_model_inputs"]["from_cache"] > 10 * len(changed)
    # Only the changed contacts' accounts are scored again; the others' outputs are reused.
    touched = contacts.loc[changed, "account_id"].nunique()
    assert second["accounts"] == {
        "scored": touched,
        "from_cache": len(pd.read_parquet(data / "accounts.parquet")) - touched,
    }
    # In those accounts, the other contacts' rows are reused too.
    assert second["contacts"] == {
        "scored": len(changed),
        "from_cache": len(contacts) - len(changed),
    }
    run_cli(
        "score",
        tmp_path,
        *base[:3],
        f"output_dir={tmp_path / 'full'}",
        "cache_dir=null",
        f"hydra.run.dir={tmp_path / 'r3'}",
    )
    for name in ("contacts_scored", "groups_scored"):
        a = pd.read_parquet(tmp_path / "daily" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "full" / f"{name}.parquet")
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        for col in a.columns:
            if pd.api.types.is_float_dtype(a[col]):  # other batches: float noise only
                np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-5, err_msg=col)
            elif col not in ("members", "engage_next"):  # probabilities inside, rounded
                assert [str(v) for v in a[col]] == [str(v) for v in b[col]], col
        if name == "groups_scored":
            ids = [[(m["contact_id"], m["role"]) for m in ms] for ms in a["members"]]
            assert ids == [[(m["contact_id"], m["role"]) for m in ms] for ms in b["members"]]
    cache_file = tmp_path / "daily" / ".cache" / "role-predictions.arrow"
    assert PredictionCache().load(cache_file, "another model", 3) == 0
    assert PredictionCache().load(cache_file, second["role_weights_digest"], 3) > 0


@pytest.mark.parametrize("source", ["salesforce_marketo", "hubspot"])
def test_bg_score_reads_a_crm_export_through_its_source(promoted, tmp_path, source):
    """The sample exports in tests/data/ scored as they are, with the rows each mapping
    rule took on screen and in summary.json; every row scored or rejected."""
    from pathlib import Path

    tmp, uri, _, _ = promoted
    export = Path(__file__).parent / "data" / source
    proc = run_cli(
        "score",
        tmp_path,
        f"source={source}",
        f"data_dir={export}",
        f"tracking.uri={uri}",
        f"output_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert f"read as the schema ({source} export)" in proc.stdout
    assert "-> web/interacted (not listed)" in proc.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert any(k.startswith("activities.type: ") for k in summary["mapped"])
    for table, c in summary["counts"].items():
        assert c["rows in"] == c["scored / kept"] + c["rejected"], table
    assert summary["counts"]["contacts"]["scored / kept"] == 280
    groups = pd.read_parquet(tmp_path / "out" / "groups_scored.parquet")
    assert len(groups) == 12 * 3 and groups["score"].between(0, 1).all()


def _spark_available() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


@pytest.mark.skipif(not _spark_available(), reason="needs pyspark and Java 17+")
def test_spark_engine_equals_pandas_engine(promoted, tiny_dir, tmp_path):
    _, uri, _, _ = promoted
    args = [f"data_dir={tiny_dir}", f"tracking.uri={uri}", "accounts_per_bucket=40"]
    args.append("variant=onnx")  # Spark batches differently: a batch-invariant variant
    for engine in ("pandas", "spark"):
        run_cli(
            "score",
            tmp_path,
            *args,
            f"engine={engine}",
            "spark.master='local[2]'",
            f"output_dir={tmp_path / engine}",
            f"hydra.run.dir={tmp_path / ('r' + engine)}",
        )
    for name, keys in (
        ("contacts_scored", ["contact_id"]),
        ("groups_scored", ["account_id", "product"]),
    ):
        a = pd.read_parquet(tmp_path / "pandas" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "spark" / f"{name}.parquet")  # a directory of parts
        a, b = (x.sort_values(keys).reset_index(drop=True) for x in (a, b))
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
        for col in a.columns:
            if pd.api.types.is_float_dtype(a[col]):  # batches differ: float noise only
                np.testing.assert_allclose(a[col], b[col], rtol=0, atol=1e-5, err_msg=col)
            else:
                assert [str(v) for v in a[col]] == [str(v) for v in b[col]], col
    summaries = [
        json.loads((tmp_path / e / "summary.json").read_text()) for e in ("pandas", "spark")
    ]
    assert summaries[0]["counts"] == summaries[1]["counts"]


def test_serve_answers_good_and_bad_requests(promoted, monkeypatch):
    import socket
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import requests
    import uvicorn

    from buying_groups.serving.server import Limits, create_app

    _, uri, _, _ = promoted
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    app = create_app("models:/buying-groups@champion", Limits(200_000, 50, 60.0, "s3cret"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    auth = {"Authorization": "Bearer s3cret"}
    event = {
        "timestamp": "2026-03-01T10:00:00",
        "channel": "sales",
        "action": "requested_demo",
        "asset": "Demo request",
        "topic": "security_platform",
    }
    good = {
        "dataframe_records": [
            {"account_id": "A1", "contact_id": "C1", "job_title": "CISO", "activities": [event]},
            {
                "account_id": "A1",
                "contact_id": "C2",
                "job_title": "Einkaufsleiter",
                "activities": [],
            },
        ]
    }

    def post(body, headers=auth, **kw):
        return requests.post(f"{url}/invocations", json=body, headers=headers, timeout=60, **kw)

    try:
        assert requests.get(f"{url}/ping", timeout=5).status_code == 200
        spec = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]["/invocations"]
        assert {"400", "401", "413", "415", "500", "504"} <= set(spec["post"]["responses"])
        assert "application/json" in spec["post"]["requestBody"]["content"]
        version = requests.get(f"{url}/version", timeout=5)
        assert version.status_code == 200
        assert version.json()["name"] == "buying-groups" and version.json()["version"]
        r = post(good)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == 3 and {"score", "qualified", "stage", "members"} <= set(preds[0])
        assert post(good, headers={}).status_code == 401
        # HTTP's scheme and media type are case-insensitive; the token is not
        assert post(good, headers={"Authorization": "bearer s3cret"}).status_code == 200
        assert post(good, headers={"Authorization": "Bearer S3CRET"}).status_code == 401
        r = requests.post(
            f"{url}/invocations",
            data=json.dumps(good),
            headers={**auth, "Content-Type": "Application/JSON"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        deep = b'{"inputs":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        r = requests.post(
            f"{url}/invocations",
            data=deep,
            headers={**auth, "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 400 and "nested" in r.json()["message"]
        r = post({"dataframe_records": [{**good["dataframe_records"][0], "as_of": [1]}]})
        assert r.status_code == 400 and "as_of" in r.json()["message"]
        bad_cases = {
            "missing": ({"dataframe_records": [{"account_id": "A", "contact_id": "C"}]}, 400),
            "type": (
                {"dataframe_records": [{**good["dataframe_records"][1], "job_title": 7}]},
                400,
            ),
            "empty account": (
                {"dataframe_records": [{**good["dataframe_records"][1], "account_id": ""}]},
                400,
            ),
            "too many rows": ({"dataframe_records": good["dataframe_records"][1:] * 51}, 413),
            "too big": (
                {
                    "dataframe_records": [
                        {**good["dataframe_records"][1], "job_title": "x" * 300_000}
                    ]
                },
                413,
            ),
        }
        for name, (body, status) in bad_cases.items():
            r = post(body)
            assert r.status_code == status, (name, r.text)
            assert "x" * 50 not in r.text and "Traceback" not in r.text
        r = requests.post(
            f"{url}/invocations",
            data=b'{"inputs": [',
            headers={**auth, "Content-Type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        # Schemathesis against the served OpenAPI contract: generated and mutated bodies,
        # never a 5xx, every status and content type documented.
        fuzz = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{url}/openapi.json",
                "-H",
                "Authorization: Bearer s3cret",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance",
                "--max-examples",
                "40",
                "--seed",
                "20261203",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert fuzz.returncode == 0, fuzz.stdout[-4000:] + fuzz.stderr[-2000:]
        with ThreadPoolExecutor(4) as pool:  # concurrent callers get the same answers
            answers = list(pool.map(lambda _: post(good).json(), range(8)))
        assert all(a == answers[0] for a in answers)
        assert post(good).status_code == 200  # still serving after all that
    finally:
        server.should_exit = True
        thread.join(timeout=10)
