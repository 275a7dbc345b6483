"""The entry points, run as a user runs them (subprocesses on the real configs)."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from buying_groups.cli.common import _cell, console, ensure_dataset, print_frame, problem_lines
from buying_groups.data.dataset import has_tables
from buying_groups.data.schema import TABLES
from buying_groups.data.validate import Problem

from .conftest import compose_config


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.93456, "0.935"),
        (6999.0, "6,999"),
        (6999, "6,999"),
        (278.996, "279"),
        (43.7, "43.700"),
        (True, "True"),
        ("fp32", "fp32"),
    ],
)
def test_table_cells_show_scores_to_three_places_and_counts_and_speeds_whole(value, shown):
    assert _cell(value, 3) == shown


def test_a_small_count_beside_scores_prints_whole():
    # a row of mixed columns: iterrows made the 3 flagged groups a float, printed "3.000"
    frame = pd.DataFrame({"flagged": [3, 6999], "precision": [0.3333, 0.0]}, index=["a", "b"])
    with console.capture() as captured:
        print_frame(frame, "by segment")
    cells = [c.strip() for line in captured.get().splitlines() for c in line.split("│")]
    assert "3" in cells and "6,999" in cells and "0.333" in cells
    assert "3.000" not in cells


@pytest.mark.parametrize("app", ["generate", "validate", "baseline", "pipeline"])
def test_configs_compose(app):
    cfg = compose_config(app, ["data=tiny"] if app != "validate" else ["data_dir=x"])
    assert cfg.catalog.products
    if app != "validate":
        assert cfg.data.name == "tiny" and cfg.data.n_accounts < 200


def test_pipeline_scores_an_export_into_a_folder_named_after_it():
    # an export's scores must not land in (and overwrite) demo's scores/demo/
    assert compose_config("pipeline")["scores_dir"] == "scores/demo"
    cfg = compose_config("pipeline", ["data_dir=/exports/acme_2026/"])
    assert cfg["scores_dir"] == "scores/acme_2026"


def test_large_config_is_large():
    cfg = compose_config("generate", ["data=large"])
    assert cfg.data.n_accounts >= 4000


def test_console_scripts_launch_their_command():
    """Every ``bg-*`` script is a launcher of the command module of the same name."""
    import importlib.util
    from importlib.metadata import entry_points

    scripts = {
        ep.name: ep.load()
        for ep in entry_points(group="console_scripts")
        if ep.value.startswith("buying_groups.")
    }
    assert len(scripts) == 10
    for name, launcher in scripts.items():
        assert name == "bg-" + launcher.__name__.replace("_", "-")
        assert importlib.util.find_spec(f"buying_groups.cli.{launcher.__name__}") is not None


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    code = f"from buying_groups.cli.{module} import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_generate_writes_every_table_in_both_formats(tmp_path):
    out = tmp_path / "tiny"
    proc = _run(
        "generate",
        "data=tiny",
        f"output_dir={out}",
        "formats=[parquet,csv]",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr
    for t in TABLES:
        assert (out / f"{t}.parquet").exists() and (out / f"{t}.csv").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["activities"] > 1000 and len(manifest["digest"]) == 64
    assert "non_english_title_share" in proc.stdout


@pytest.mark.slow
def test_pipeline_on_tiny(tmp_path, tiny_bert_dir):
    """Every step of the main job and their wiring, with the student, on the session's tiny
    2-layer encoder (the default MiniLM on tiny took 8 of the suite's minutes here and
    asserted nothing about quality; the behavioural tests and README command 1 train it)."""
    proc = _run(
        "pipeline",
        "data=tiny",
        f"data_dir={tmp_path / 'd'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"scores_dir={tmp_path / 'scores'}",
        f"model.name_or_path={tiny_bert_dir}",
        "student=true",
        "student_transfer=true",
        "trainer.epochs=1",  # wiring, not quality: one epoch of each model
        "student_overrides=['experiment=distill','distill.layers=1','trainer.epochs=1']",
        "title_lists=[curated]",  # as experiment=tiny: the BLS list would outnumber tiny
        "title_list_repeat=null",
        # tiny's few customers renew too rarely for the default backtest
        "retention_overrides=['retention.backtest_months=8','retention.min_train_positives=3']",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rules baseline" in proc.stdout and "test_ood" in proc.stdout
    assert "QBG vs MQL vs MQA" in proc.stdout and "bg-serve" in proc.stdout
    assert "renewal risk, backtest" in " ".join(proc.stdout.split())
    # The registry has both champions, and the scored files cover every input row.
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_model_version_by_alias("buying-groups", "champion")
    assert client.get_model_version_by_alias("buying-group-roles", "champion")
    # The fast student was distilled from this run's role model and competed for champion.
    assert "fast student" in proc.stdout
    versions = client.search_model_versions("name='buying-groups'")
    assert len(versions) == 2  # the student is its own candidate, on its own role model
    assert len({v.tags["role_model_uri"] for v in versions}) == 2
    assert len({v.tags["qualifier_run_id"] for v in versions}) == 2
    roles = client.get_experiment_by_name("buying-groups-roles").experiment_id
    students = client.search_runs([roles], "tags.`bg.distilled_from` LIKE '%role_model'")
    assert len(students) == 1
    # ... and also learnt from a second, unlabelled export generated beside the data.
    assert (tmp_path / "tiny_transfer" / "contacts.parquet").exists()
    assert "unlabelled transfer data" in " ".join(proc.stdout.split())
    contacts = pd.read_parquet(tmp_path / "d" / "contacts.parquet")
    scored = pd.read_parquet(tmp_path / "scores" / "contacts_scored.parquet")
    assert sorted(scored["contact_id"]) == sorted(contacts["contact_id"])
    groups = pd.read_parquet(tmp_path / "scores" / "groups_scored.parquet")
    assert len(groups) == 3 * contacts["account_id"].nunique()


def test_serve_shares_the_cores_among_its_workers():
    import os

    from buying_groups.cli.serve import threads_per_worker

    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(None, 2) == max(1, cores // 2)
    assert threads_per_worker(None, 1) == cores
    assert threads_per_worker(None, 10 * cores) == 1  # never none
    assert threads_per_worker(3, 2) == 3  # as configured


def test_a_folder_of_a_crms_own_files_is_never_generated_into(tmp_path, capsys):
    """bg-pipeline data_dir=<a Salesforce export> wrote a synthetic dataset beside the
    user's files and trained on it; now it stops and says how to read that export."""
    export = tmp_path / "sf_export"
    export.mkdir()
    (export / "Contact.csv").write_text("Id,Title\nC1,CFO\n")
    cfg = compose_config("pipeline", ["data=tiny", f"data_dir={export}"])
    with pytest.raises(SystemExit) as exit_:
        ensure_dataset(cfg)
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "contacts.csv or contacts.parquet" in out and "bg-validate source=" in out
    assert sorted(p.name for p in export.iterdir()) == ["Contact.csv"]  # nothing written
    # an empty or missing folder is the synthetic dataset's to fill
    assert not (tmp_path / "new").exists()
    assert has_tables(
        ensure_dataset(compose_config("pipeline", ["data=tiny", f"data_dir={tmp_path / 'new'}"]))
    )


def test_one_problem_of_many_rows_is_one_line():
    many = [
        Problem("activities", "unknown channel 'Social'", row=r, column="channel")
        for r in range(2, 700)
    ]
    whole = Problem("activities", "unknown channel 'Social'", column="channel")  # no row
    lines = problem_lines(
        [*many, whole, Problem("contacts", "duplicate id 'C1'", row=4, column="contact_id")]
    )
    assert lines == [
        "activities, column 'channel': unknown channel 'Social'",
        "activities, column 'channel': unknown channel 'Social' (rows 2, 3, 4, 5, 6 and 693 more)",
        "contacts, row 4, column 'contact_id': duplicate id 'C1'",
    ]


def test_hidden_files_and_a_half_written_dataset_are_generated_over(tmp_path):
    """A folder with only .gitkeep, or an interrupted generation (tables, no manifest, no
    contacts yet), is the synthetic dataset's to fill, as before."""
    for name, files in (("keep", [".gitkeep"]), ("half", ["accounts.parquet", "labels"])):
        folder = tmp_path / name
        folder.mkdir()
        for f in files:
            (folder / f).mkdir() if "." not in f[1:] else (folder / f).write_text("")
        cfg = compose_config("pipeline", ["data=tiny", f"data_dir={folder}"])
        assert has_tables(ensure_dataset(cfg))
