"""bg-score with the promoted tiny champion: rejects, repeatability, rescoring only what changed,
CRM export shapes, and the Spark engine against the pandas one."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from .conftest import run_cli

# bg-score in subprocesses with the promoted tiny champion: the slow tier
pytestmark = pytest.mark.slow


def test_bg_score_counts_rejects_and_repeatability(promoted, tiny_dir, tmp_path):

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
    assert summary["counts"]["contacts"]["scored / kept"] == 296
    groups = pd.read_parquet(tmp_path / "out" / "groups_scored.parquet")
    assert len(groups) == 12 * 3 and groups["score"].between(0, 1).all()


def _spark_available() -> bool:
    import importlib.util

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


def test_bg_score_adds_segments_and_renewal_risk(promoted, renewal_uri, tiny_dir, tmp_path):
    """With a renewal-risk model: every running term scored, installed groups carry it;
    without one (renewal_model_uri=null): segments only, and no stale renewals file."""
    _, uri, _, _ = promoted
    out = tmp_path / "scores"
    args = [f"data_dir={tiny_dir}", f"tracking.uri={uri}", f"output_dir={out}"]
    proc = run_cli("score", tmp_path, *args, f"renewal_model_uri={renewal_uri}")
    assert "renewals:" in proc.stdout and "segments:" in proc.stdout
    renewals = pd.read_parquet(out / "renewals_scored.parquet")
    groups = pd.read_parquet(out / "groups_scored.parquet")
    installed = groups["segment"] == "installed"
    assert len(renewals) > 0 and renewals["risk"].between(0, 1).all()
    assert installed.sum() > 0 and groups.loc[installed, "renewal_risk"].notna().all()
    assert groups.loc[~installed, "renewal_risk"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["renewal_model"].startswith(renewal_uri) and summary["renewals_scored"] == len(
        renewals
    )
    assert "subscriptions" in summary["counts"]

    run_cli("score", tmp_path, *args, "renewal_model_uri=null", "cache_dir=null")
    again = pd.read_parquet(out / "groups_scored.parquet")
    assert not (out / "renewals_scored.parquet").exists() and again["renewal_risk"].isna().all()
    assert (again["segment"] == groups["segment"]).all()
