"""labels=crm: training labels from what a real CRM holds, never from the ground truth."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from buying_groups.data.crm_labels import CrmLabelConfig, crm_examples
from buying_groups.data.validate import DataValidationError
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def crm_cfg() -> CrmLabelConfig:
    cfg = compose_config("train_roles", ["labels=crm", "labels.none_from=mapped"])
    return CrmLabelConfig.from_config(cfg.labels)


def _tables(tiny_tables) -> dict[str, pd.DataFrame]:
    tables, _ = tiny_tables  # the ground truth is not passed on: a CRM has none
    return {k: v.copy() for k, v in tables.items()}


def _labelled(examples: pd.DataFrame, contact_id: str, product: str) -> pd.Series:
    rows = examples[examples["contact_id"] == contact_id]
    return rows[f"role_{product}"].dropna()


def test_generator_writes_what_a_crm_holds(tiny_tables, crm_cfg):
    tables = _tables(tiny_tables)
    ocr, contacts = tables["opportunity_contact_roles"], tables["contacts"]
    assert set(ocr["role"]) <= set(crm_cfg.roles)  # Salesforce picklist names
    assert {"Decision Maker", "Influencer"} <= set(ocr["role"])
    share = ocr["contact_id"].nunique() / len(contacts)
    assert 0.01 < share < 0.15  # a few percent of contacts, as in the field
    enriched = contacts["job_function"].notna().mean()
    assert 0.2 < enriched < 0.4
    # reps list senior people far more often than the contacts' own mix
    senior = contacts["contact_id"].isin(ocr["contact_id"])
    _, labels = tiny_tables
    level = labels["contact_labels"].set_index("contact_id")["seniority"]
    top = level.isin(["director", "vp", "executive"])
    assert top[contacts.loc[senior, "contact_id"]].mean() > 1.5 * top.mean()


def test_roles_come_only_from_ocr_rows(tiny_tables, catalog, crm_cfg):
    tables = _tables(tiny_tables)
    ocr = tables["opportunity_contact_roles"]
    mapped = ocr[ocr["role"].map(lambda v: crm_cfg.roles.get(v)).notna()]
    row = mapped.iloc[0]
    opps = tables["opportunities"].set_index("opportunity_id")
    product = opps.at[row["opportunity_id"], "product"]
    before = crm_examples(tables, catalog, crm_cfg)
    assert crm_cfg.roles[row["role"]] in set(_labelled(before, row["contact_id"], product))
    # every role label is one a rep wrote
    n_roles = sum(before[f"role_{p}"].notna().sum() for p in catalog.names)
    assert n_roles == len(mapped)
    others = ocr[ocr["contact_id"] == row["contact_id"]]
    tables["opportunity_contact_roles"] = ocr.drop(index=others.index).reset_index(drop=True)
    after = crm_examples(tables, catalog, crm_cfg)
    assert _labelled(after, row["contact_id"], product).empty


def test_activity_after_the_opportunity_does_not_change_the_text(tiny_tables, catalog, crm_cfg):
    tables = _tables(tiny_tables)
    ocr = tables["opportunity_contact_roles"].merge(tables["opportunities"], on="opportunity_id")
    row = ocr.iloc[0]
    before = crm_examples(tables, catalog, crm_cfg)
    late = pd.DataFrame(
        {
            "activity_id": ["LATE1"],
            "contact_id": [row["contact_id"]],
            "timestamp": [row["created_at"] + pd.Timedelta(days=1)],
            "channel": ["sales"],
            "action": ["requested_demo"],
            "asset": [None],
            "topic": [row["product"]],
        }
    )
    tables["activities"] = pd.concat([tables["activities"], late], ignore_index=True)
    after = crm_examples(tables, catalog, crm_cfg)

    def text(examples: pd.DataFrame) -> str:
        hit = (examples["contact_id"] == row["contact_id"]) & (
            examples["as_of"] == row["created_at"]
        )
        return examples.loc[hit, "activity_text"].iloc[0]

    assert text(after) == text(before)


def test_unknown_role_value_is_named(tiny_tables, catalog, crm_cfg):
    tables = _tables(tiny_tables)
    tables["opportunity_contact_roles"].loc[3, "role"] = "Kingmaker"
    with pytest.raises(DataValidationError) as err:
        crm_examples(tables, catalog, crm_cfg)
    message = str(err.value)
    assert "row 4" in message and "'Kingmaker'" in message and "labels.roles" in message


@pytest.mark.parametrize(
    ("edit", "override", "expected"),
    [
        ("unknown_role", None, "unknown value 'Kingmaker'"),
        ("no_ocr", None, "has no opportunity contact roles"),
        (None, "labels.roles=null", "no role mapping"),
    ],
)
def test_bad_crm_labels_stop_with_one_clear_message(tiny_dir, tmp_path, edit, override, expected):
    data = tmp_path / "export"
    shutil.copytree(tiny_dir, data, ignore=shutil.ignore_patterns("labels", "*.csv"))
    ocr_path = data / "opportunity_contact_roles.parquet"
    ocr = pd.read_parquet(ocr_path)
    if edit == "unknown_role":
        ocr.loc[0, "role"] = "Kingmaker"
    elif edit == "no_ocr":
        ocr = ocr.iloc[0:0]
    ocr.to_parquet(ocr_path, index=False)
    args = ["labels=crm", f"data_dir={data}", "generate_if_missing=false"]
    args += [override] if override else []
    proc = subprocess.run(
        [sys.executable, "-c", "from buying_groups.cli.train_roles import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in out and "Traceback" not in out, out[-2000:]


@pytest.mark.slow
def test_pipeline_on_an_export_without_ground_truth(tiny_dir, tiny_bert_dir, tmp_path):
    """bg-pipeline labels=crm on an export with no labels/ and no manifest (a real CRM's):
    it trains from the contact roles, registers a champion and scores every contact."""
    data = tmp_path / "export"
    shutil.copytree(
        tiny_dir, data, ignore=shutil.ignore_patterns("labels", "*.csv", "manifest.json")
    )
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "data=tiny",
        "labels=crm",
        f"data_dir={data}",
        f"tracking.uri={db}",
        f"scores_dir={tmp_path / 'scores'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "title_lists=[curated]",
        "title_list_repeat=null",
        "trainer.epochs=1",
        f"model.name_or_path={tiny_bert_dir}",  # the session's tiny encoder: seconds, not minutes
    ]
    proc = subprocess.run(
        [sys.executable, "-c", "from buying_groups.cli.pipeline import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (data / "labels").exists()  # nothing was generated into the export
    import mlflow

    client = mlflow.MlflowClient(db)
    assert client.get_model_version_by_alias("buying-groups", "champion")
    contacts = pd.read_parquet(data / "contacts.parquet")
    scored = pd.read_parquet(tmp_path / "scores" / "contacts_scored.parquet")
    rejected = tmp_path / "scores" / "rejects.csv"
    n_rejected = len(pd.read_csv(rejected)) if rejected.exists() else 0
    assert len(scored) + n_rejected == len(contacts)
