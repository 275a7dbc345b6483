"""bg-train-roles end to end on the tiny dataset with a tiny random BERT from a local dir
(any HF id or path works through ``model.name_or_path``), tracked in a temporary MLflow
SQLite store; then the logged pyfunc, loaded in a fresh process."""

import json
import subprocess
import sys
import textwrap

import mlflow
import numpy as np
import pandas as pd
import pytest

from buying_groups.data.examples import labelled_examples
from buying_groups.evaluate import calibration_error
from buying_groups.models.role_model import RoleModel
from buying_groups.models.runtime import VARIANTS, use_variant
from buying_groups.serving.role_pyfunc import role_outputs

from .conftest import compose_config, logged_model_uri, train_tiny_role_model


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


def test_pipeline_trains_roles_with_the_same_defaults():
    """bg-pipeline passes its config to bg-train-roles' code, so it must hold every setting of
    train_roles.yaml with the same default: a key missing there falls back to ``cfg.get``'s
    None (so it did for ``title_list_repeat`` when each file kept its own copy; both now list
    configs/role_training/) and the main job would train another model."""
    from omegaconf import OmegaConf

    roles = OmegaConf.to_container(compose_config("train_roles", []), resolve=False)
    pipeline = OmegaConf.to_container(compose_config("pipeline", []), resolve=False)
    assert {k: pipeline.get(k, "<missing>") for k in roles} == roles
    assert roles["title_list_repeat"] == {"curated": 3}  # the default chosen on validation


def test_a_misspelt_real_title_context_stops_the_run_before_any_data_is_read():
    from buying_groups.cli.train_roles import train_and_log

    cfg = compose_config("train_roles", ["real_title_contexts=[employer,emoji]"])
    cfg.data_dir = "/nonexistent"  # never read: the check comes first
    with pytest.raises(SystemExit, match="real_title_contexts: unknown 'emoji'; choose from"):
        train_and_log(cfg)


def test_the_student_learns_from_the_teachers_rows(tmp_path):
    """bg-pipeline student=true: the student's bg-train-roles config takes the pipeline's
    title lists, copies, their contexts, the real-title contexts measured and the label
    fraction (command-line overrides included), unless the student's own overrides name
    them; the distill experiment's settings stay."""
    from hydra import initialize_config_dir

    from buying_groups.cli.pipeline import student_config
    from buying_groups.config import config_dir

    args = ["title_lists=[curated]", "title_list_repeat=null", "role_label_fraction=0.5"]
    args += ["title_list_context=0", "title_list_typo=0.5", "real_title_contexts=[city]"]
    pipeline = compose_config("pipeline", [*args, "student_overrides=['experiment=distill']"])
    pipeline.output_dir = str(tmp_path)  # set by Hydra in a run
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        sub = student_config(pipeline, list(pipeline.student_overrides))
        assert list(sub.title_lists) == ["curated"] and sub.title_list_repeat is None
        assert sub.title_list_context == 0 and list(sub.real_title_contexts) == ["city"]
        assert sub.title_list_typo == 0.5
        assert sub.role_label_fraction == 0.5 and list(sub.baselines) == []  # distill's
        own = ["experiment=distill", "title_lists=[bls]"]
        pipeline.student_overrides = own
        sub = student_config(pipeline, own)
        assert list(sub.title_lists) == ["bls"] and sub.title_list_repeat is None
        own = ["experiment=distill", "++role_label_fraction=0.25"]  # Hydra's prefixed form
        pipeline.student_overrides = own
        assert student_config(pipeline, own).role_label_fraction == 0.25


@pytest.mark.parametrize("bf16", [True, False, "auto"])
def test_trainer_settings_build_on_any_machine(tmp_path, bf16):
    """bf16 on a CPU (autocast) is accepted as well as on a GPU, so ``bf16: auto`` never
    stops a run on a machine with AVX512-BF16 and no CUDA."""
    from buying_groups.models.runtime import bf16_supported
    from buying_groups.models.train import training_arguments

    cfg = compose_config("train_roles", [f"trainer.bf16={bf16}"])
    args = training_arguments(cfg.trainer, tmp_path, seed=0, report_to=[])
    assert args.bf16 == (bf16_supported() if bf16 == "auto" else bf16)


@pytest.mark.slow
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
    # every real title's prediction, and the gaps to both baselines with their intervals
    reports = {a.path for a in client.list_artifacts(t["run_id"], "reports")}
    assert {"reports/real_title_predictions.json", "reports/real_title_gaps.json"} <= reports
    logged = mlflow.artifacts.load_dict(f"runs:/{t['run_id']}/reports/real_title_gaps.json")
    gaps = pd.DataFrame(logged["data"], columns=logged["columns"])
    assert set(gaps["other"]) == {"rules", "tfidf_logreg"}
    assert (gaps["low"] <= gaps["high"]).all()
    assert "minus each baseline's" in proc.stdout
    # the inference variant loaders will use: measured, chosen, recorded with the model
    assert "inference variants on" in proc.stdout
    assert pd.notna(t["metrics.variant/fp32/contacts_per_s"])
    config = json.loads((trained[0] / "run" / "role_model" / "role_model.json").read_text())
    assert config["inference_variant"] == t["tags.bg.inference_variant"] in VARIANTS
    # the title expert's weight per language (curated titles in 9 languages), saved and logged
    assert "reports/title_expert_languages.json" in reports
    per = config["title_expert_language_weights"]
    assert set(per) == {"function", "seniority"} and {"en", "pl", "ru"} <= set(per["function"])
    assert "title expert weight per language" in proc.stdout
    # role decision offsets: chosen on validation where it holds enough roles, saved with
    # the model (an empty list: the head's own argmax)
    assert len(config["role_bias"]) in (0, len(config["roles"]))
    # the function probabilities fitted on real occupation names it never trained on, saved
    # and logged; on the real-title set their calibration error is logged beside the labels
    assert (
        config["persona_temperature"]["function"] == t["metrics.calibration/function_temperature"]
    )
    after = t["metrics.calibration/function_log_loss_after"]
    assert after <= t["metrics.calibration/function_log_loss_before"] + 1e-9
    real_error = t["metrics.real/function_calibration_error"]
    assert 0 <= real_error <= 1
    logged = mlflow.artifacts.load_dict(f"runs:/{t['run_id']}/reports/real_title_predictions.json")
    pred = pd.DataFrame(logged["data"], columns=logged["columns"])
    right = pred["function"] == pred["function_true"]
    assert calibration_error(pred["function_proba"], right) == pytest.approx(real_error)
    assert "function probabilities: temperature" in proc.stdout
    # how often the real titles' persona holds with an employer appended, for every model
    for name in ("transformer", "rules", "tfidf_logreg"):
        assert 0 <= by_name[name]["metrics.real_context/employer_function_same"] <= 1
    assert "words that say nothing about the person" in proc.stdout


@pytest.mark.slow
def test_pyfunc_in_a_fresh_process_matches_the_model(trained, tiny_dir):
    tmp, uri, _ = trained
    model_uri = logged_model_uri(uri)
    sample = pd.DataFrame(
        {
            "job_title": ["VP Procurement", "", "Leiter Einkauf", "x" * 100_000, "VP Procuremnet"],
            "activity_text": ["requested demo (data_platform)", "visited /pricing", "", "", ""],
        }
    )
    sample.loc[4, "activity_text"] = sample.loc[0, "activity_text"]
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
    # a typing slip is read as the training titles spell the word (models/spelling.py)
    assert model.config.spelling["procurement"] >= 2
    np.testing.assert_allclose(fresh["function_probs"][4], fresh["function_probs"][0], atol=1e-6)


@pytest.mark.slow
def test_pyfunc_bad_input_gets_a_clear_error(trained):
    tmp, uri, _ = trained
    model_uri = logged_model_uri(uri)
    m = mlflow.pyfunc.load_model(model_uri)
    with pytest.raises(mlflow.exceptions.MlflowException, match="activity_text"):
        m.predict(pd.DataFrame({"job_title": ["CTO"]}))
    with pytest.raises(mlflow.exceptions.MlflowException, match="job_title"):
        m.predict(pd.DataFrame({"job_title": [123], "activity_text": [""]}))


@pytest.mark.slow
def test_pyfunc_runs_the_variant_asked_for(trained):
    pytest.importorskip("onnxruntime")
    _, uri, _ = trained
    sample = pd.DataFrame(
        {"job_title": ["VP Procurement", "", "CTO"], "activity_text": ["", "visited /pricing", ""]}
    )
    out = {}
    for variant in ("fp32", "onnx"):
        m = mlflow.pyfunc.load_model(logged_model_uri(uri), model_config={"variant": variant})
        assert m.unwrap_python_model().model.variant == variant
        out[variant] = m.predict(sample)
    for p in ("function", "seniority", "role_data_platform"):
        assert list(out["fp32"][p]) == list(out["onnx"][p])
        np.testing.assert_allclose(out["fp32"][f"{p}_proba"], out["onnx"][f"{p}_proba"], atol=1e-5)


@pytest.mark.slow
def test_optuna_sweep_nests_trials_under_one_parent(tmp_path, tiny_dir, tiny_bert_dir):
    uri, proc = train_tiny_role_model(
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


@pytest.mark.slow
def test_training_resumes_from_a_checkpoint(trained, tmp_path, tiny_dir, tiny_bert_dir):
    first, _, _ = trained
    checkpoints = sorted(
        (first / "run" / "checkpoints").glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]),
    )
    assert checkpoints, "the Trainer saves a checkpoint per epoch"
    done = int(checkpoints[-1].name.split("-")[1])
    _, proc = train_tiny_role_model(
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


@pytest.mark.slow
def test_distilled_student_is_smaller_and_follows_its_teacher(
    trained, tmp_path, tiny_dir, tiny_bert_dir, tiny_tables, catalog
):
    """bg-train-roles distill.teacher=<role model>: a 1-layer student of the session's
    2-layer model, trained on labels and the teacher's probabilities (plus unlabelled
    transfer contacts on the teacher's probabilities alone), saved and tracked."""
    teacher_dir = trained[0] / "run" / "role_model"
    uri, proc = train_tiny_role_model(
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
