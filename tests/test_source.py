"""Exports as CRMs write them: value aliases in every export, and source/ configs that map a
Salesforce + Marketo or a HubSpot export onto the schema, counting what each rule took."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from buying_groups.data.schema import TABLE_ORDER
from buying_groups.data.source import load_export
from buying_groups.data.validate import validate_tables
from buying_groups.taxonomy import GENERIC_ACTION

from .conftest import compose_config

SAMPLES = Path(__file__).parent / "data"
SOURCES = ("salesforce_marketo", "hubspot")


def _source(name: str) -> dict:
    cfg = compose_config("validate", [f"source={name}", "data_dir=x"])
    return OmegaConf.to_container(cfg.source, resolve=True)


def _activities(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "activity_id": [f"a{i}" for i in range(n)],
        "contact_id": ["c1"] * n,
        "timestamp": ["2026-01-01T10:00:00"] * n,
        "channel": ["web"] * n,
        "action": ["visited"] * n,
        "asset": [""] * n,
        "topic": ["general"] * n,
    }
    return pd.DataFrame(base | columns)


def _validate(acts: pd.DataFrame, catalog):
    contacts = pd.DataFrame({"contact_id": ["c1"]})
    return validate_tables({"activities": acts}, catalog, known={"contacts": contacts})


def test_channels_and_products_are_read_whatever_their_case(catalog):
    res = _validate(_activities(channel=["Web", "webinar", "EMAIL", "fax"]), catalog)
    assert [str(p) for p in res.problems] == [
        "activities, row 4, column 'channel': unknown channel; expected one of web, email, "
        "event, sales, product: 'fax'"
    ]
    res = _validate(_activities(channel=["Web", "webinar", "EMAIL"]), catalog)
    assert list(res.tables["activities"]["channel"]) == ["web", "event", "email"]
    assert res.mapped["activities.channel: 'webinar' -> event"] == 1
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2"],
            "account_id": ["a1", "a1"],
            "product": ["Data Platform", "security-platform"],
            "created_at": ["2026-01-01", "2026-01-02"],
            "closed_at": [None, None],
            "stage": ["open", "open"],
            "won": [None, None],
        }
    )
    res = validate_tables(
        {"opportunities": opps}, catalog, known={"accounts": pd.DataFrame({"account_id": ["a1"]})}
    )
    assert res.ok and list(res.tables["opportunities"]["product"]) == [
        "data_platform",
        "security_platform",
    ]


def test_intent_actions_keep_their_meaning_and_unknown_ones_count_as_activity(catalog):
    acts = _activities(action=["Free Trial Started", "Meeting Booked", "Change Score", "visited"])
    res = _validate(acts, catalog)
    assert res.ok
    assert list(res.tables["activities"]["action"]) == [
        "started_trial",
        "met_sales",
        GENERIC_ACTION,
        "visited",
    ]
    assert res.mapped["activities.action: 'Change Score' -> interacted (unknown action)"] == 1
    assert res.mapped["activities.action: 'Meeting Booked' -> met_sales"] == 1


def test_a_missing_topic_comes_from_the_asset_else_general(catalog):
    acts = _activities(
        asset=["/products/data-platform/pricing", "Zero trust in 30 minutes", "Newsletter"]
    ).drop(columns="topic")
    res = _validate(acts, catalog)
    assert res.ok
    assert list(res.tables["activities"]["topic"]) == [
        "data_platform",
        "security_platform",
        "general",
    ]
    assert res.mapped["activities.topic: (empty) -> general (no product named)"] == 1


@pytest.mark.parametrize("name", SOURCES)
def test_sample_exports_map_onto_the_schema_and_count_every_rule(name, catalog, tiny_dir):
    res = load_export(SAMPLES / name, catalog, source=_source(name))
    assert res.ok, res.problems[:5]
    acts = res.tables["activities"]
    # every activity row went through exactly one type rule, and one topic rule
    by_type = sum(v for k, v in res.mapped.items() if k.startswith("activities.type:"))
    by_topic = sum(
        v for k, v in res.mapped.items() if k.startswith("activities.topic:") and "(empty)" not in k
    )
    assert by_type == by_topic == len(acts) == res.rows_in["activities"]
    unknown = [k for k in res.mapped if "(not listed)" in k]
    assert len(unknown) == 1 and (acts["action"] == GENERIC_ACTION).sum() == res.mapped[unknown[0]]
    # the sample was written from the generator's tables: the mapping gives them back
    truth = pd.read_parquet(tiny_dir / "activities.parquet").set_index("activity_id")
    ids = acts["activity_id"].map(lambda v: v if v.startswith("E") else f"E{v}")
    truth = truth.loc[ids]
    listed = (acts["action"] != GENERIC_ACTION).to_numpy()
    assert (acts["contact_id"].to_numpy() == truth["contact_id"].to_numpy()).all()
    assert (acts["action"].to_numpy()[listed] == truth["action"].to_numpy()[listed]).all()
    # a product's topic is recovered from the asset or campaign for most events
    product = truth["topic"].to_numpy() != "general"
    assert (acts["topic"].to_numpy()[product] == truth["topic"].to_numpy()[product]).mean() > 0.8
    opps = res.tables["opportunities"]
    assert set(opps["product"]) <= set(catalog.names)
    assert opps.loc[opps["closed_at"].isna(), "won"].isna().all()  # open: no close, no outcome
    roles = res.tables["opportunity_contact_roles"]
    assert len(roles) == res.rows_in["opportunity_contact_roles"] > 0


def test_a_missing_export_column_or_file_is_named(catalog, tmp_path):
    src = SAMPLES / "hubspot"
    for f in src.glob("*.csv"):
        df = pd.read_csv(f, dtype=str)
        if f.stem == "contacts":
            df = df.drop(columns="Job Title")
        if f.stem != "deals":
            df.to_csv(tmp_path / f.name, index=False)
    res = load_export(tmp_path, catalog, source=_source("hubspot"))
    problems = [str(p) for p in res.problems]
    assert any(
        p.startswith("contacts, column 'Job Title': contacts: export column 'Job Title' is missing")
        for p in problems
    ), problems
    assert any(p.startswith("opportunities: file not found: expected deals.csv") for p in problems)


def _bg_validate(source: str, data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``bg-validate source=... data_dir=... output_dir=<tmp>/schema`` in a fresh process, as a
    user runs it; fails with its output unless it exits 0."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "buying_groups.cli.validate_main",
            f"source={source}",
            f"data_dir={data_dir}",
            f"output_dir={tmp_path / 'schema'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.mark.parametrize("name", SOURCES)
def test_bg_validate_says_how_many_rows_each_rule_took(name, tmp_path):
    proc = _bg_validate(name, SAMPLES / name, tmp_path)
    assert f"read as the schema ({name} export)" in proc.stdout
    assert "'Data Platform' -> data_platform" in proc.stdout
    assert "-> web/interacted (not listed)" in proc.stdout
    assert "is valid" in proc.stdout
    written = pd.read_parquet(tmp_path / "schema" / "activities.parquet")
    assert {"channel", "action", "topic"} <= set(written.columns) and len(written) > 1000


def _with_subscriptions(tmp_path: Path, product: str) -> Path:
    """The Salesforce sample and a subscriptions file in the schema's own shape beside it
    (no CRM export maps it): two terms of the sample's first account."""
    export = tmp_path / "export"
    export.mkdir(parents=True)
    for f in (SAMPLES / "salesforce_marketo").glob("*.csv"):
        (export / f.name).write_bytes(f.read_bytes())
    account = pd.read_csv(export / "Account.csv", dtype=str)["Id"].iloc[0]
    pd.DataFrame(
        {
            "term_id": ["T1", "T2"],
            "subscription_id": ["S1", "S1"],
            "account_id": [account, account],
            "product": ["marketing_automation", product],
            "term_start": ["2025-01-01", "2026-01-01"],
            "term_end": ["2026-01-01", "2027-01-01"],
            "seats": [10, 12],
            "amount": [1000.0, 1200.0],
            "outcome": ["renewed", None],
        }
    ).to_csv(export / "subscriptions.csv", index=False)
    return export


def test_an_export_keeps_its_subscriptions_in_the_schemas_shape(catalog, tmp_path):
    """bg-validate source=... output_dir=... carried the five CRM tables only: a bad
    subscriptions file passed it and renewal risk never saw the good one."""
    source = _source("salesforce_marketo")
    res = load_export(
        _with_subscriptions(tmp_path, "marketing_automation"),
        catalog,
        source=source,
        tables=TABLE_ORDER,
    )
    assert res.ok, res.problems
    assert len(res.tables["subscriptions"]) == 2
    bad = load_export(
        _with_subscriptions(tmp_path / "b", "no_such_product"),
        catalog,
        source=source,
        tables=TABLE_ORDER,
    )
    assert any(p.table == "subscriptions" and p.row == 2 for p in bad.problems), bad.problems
    # an export without the file is not a problem
    (tmp_path / "b" / "export" / "subscriptions.csv").unlink()
    res = load_export(tmp_path / "b" / "export", catalog, source=source, tables=TABLE_ORDER)
    assert res.ok and "subscriptions" not in res.tables


def test_bg_validate_writes_the_subscriptions_too(tmp_path):
    export = _with_subscriptions(tmp_path, "marketing_automation")
    proc = _bg_validate("salesforce_marketo", export, tmp_path)
    assert "subscriptions" in proc.stdout
    assert len(pd.read_parquet(tmp_path / "schema" / "subscriptions.parquet")) == 2


def test_an_unlabelled_hubspot_association_is_a_member_of_unknown_role(catalog, tmp_path):
    """HubSpot leaves a deal-contact association unlabelled unless a rep picks a label: every
    such row failed validation ("value is empty but required"), and with skip the contact no
    longer counted as named on the deal."""
    for f in (SAMPLES / "hubspot").glob("*.csv"):
        df = pd.read_csv(f, dtype=str)
        if f.stem == "deal_contacts":
            df.loc[df.index % 3 == 0, "Association label"] = None
        df.to_csv(tmp_path / f.name, index=False)
    res = load_export(tmp_path, catalog, source=_source("hubspot"))
    assert res.ok, res.problems[:3]
    roles = res.tables["opportunity_contact_roles"]
    assert len(roles) == res.rows_in["opportunity_contact_roles"]
    assert roles["role"].isna().sum() == (len(roles) + 2) // 3


def test_a_crm_exports_subscriptions_do_not_outlive_it_in_the_staging(catalog, tmp_path):
    """bg-score keeps its staging between runs: a second export without subscriptions was
    scored with the first one's (review of the change that reads them beside a CRM's files)."""
    from buying_groups.batch.staging import stage_tables

    export = tmp_path / "hubspot"
    shutil.copytree(SAMPLES / "hubspot", export)
    account = pd.read_csv(export / "companies.csv", dtype=str)["Record ID"].iloc[0]
    term = {"term_id": "T1", "subscription_id": "S1", "account_id": account}
    term |= {"product": "data_platform", "term_start": "2025-01-01", "term_end": "2026-01-01"}
    pd.DataFrame([term | {"outcome": "renewed"}]).to_csv(export / "subscriptions.csv", index=False)
    work, source = tmp_path / "work", _source("hubspot")
    assert len(stage_tables(export, catalog, work, "skip", source=source).subscriptions) == 1
    (export / "subscriptions.csv").unlink()
    assert stage_tables(export, catalog, work, "skip", source=source).subscriptions is None
