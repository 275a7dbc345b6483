"""Every kind of bad input gets a problem naming table, row and column; nothing is dropped."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from buying_groups.data.io import read_table
from buying_groups.data.schema import TABLE_ORDER, TABLES
from buying_groups.data.validate import load_tables


def _copy(src: Path, dst: Path, fmt: str = "csv", edit=None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        df = pd.read_parquet(src / f"{t}.parquet")
        if edit:
            df = edit(t, df)
        if df is None:
            continue
        if fmt == "csv":
            df.to_csv(dst / f"{t}.csv", index=False)
        else:
            df.to_parquet(dst / f"{t}.parquet", index=False)
    return dst


def _problems(data_dir, catalog, **kw):
    result = load_tables(data_dir, catalog, tables=TABLES, **kw)
    return result, [str(p) for p in result.problems]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_clean_data_passes_in_both_formats(tiny_dir, catalog, tmp_path, fmt):
    result, problems = _problems(_copy(tiny_dir, tmp_path / fmt, fmt), catalog)
    assert problems == []
    acts = result.tables["activities"]
    assert pd.api.types.is_datetime64_any_dtype(acts["timestamp"])
    assert len(acts) == len(pd.read_parquet(tiny_dir / "activities.parquet"))


def _edit_one(table, fn):
    return lambda t, df: fn(df.copy()) if t == table else df


CASES = [
    (
        "contacts",
        lambda df: df.rename(columns={"job_title": "jobtitle"}),
        "contacts, column 'jobtitle': required column 'job_title' is missing; found 'jobtitle' "
        "instead",
    ),
    (
        "accounts",
        lambda df: df.drop(columns=["account_id"]),
        "accounts, column 'account_id': required column 'account_id' is missing",
    ),
    (
        "contacts",
        lambda df: df.assign(contact_id=df["contact_id"].where(df.index != 5, df["contact_id"][3])),
        "contacts, row 6, column 'contact_id': duplicate id",
    ),
    (
        "contacts",
        lambda df: df.assign(account_id=df["account_id"].where(df.index != 2, "A999")),
        "contacts, row 3, column 'account_id': unknown account_id 'A999'",
    ),
    (
        "activities",
        lambda df: df.assign(
            timestamp=df["timestamp"].astype(str).where(df.index != 7, "last tuesday")
        ),
        "activities, row 8, column 'timestamp': unparseable timestamp: 'last tuesday'",
    ),
    (
        "activities",
        lambda df: df.assign(contact_id=df["contact_id"].where(df.index != 0, "Cx")),
        "activities, row 1, column 'contact_id': unknown contact_id 'Cx'",
    ),
    (
        "activities",
        lambda df: df.assign(channel=df["channel"].where(df.index != 4, "fax")),
        "activities, row 5, column 'channel': unknown channel",
    ),
    (
        "activities",
        lambda df: df.assign(topic=df["topic"].where(df.index != 4, "crm_suite")),
        "activities, row 5, column 'topic': unknown product topic",
    ),
    (
        "opportunities",
        lambda df: df.assign(product=df["product"].where(df.index != 0, "erp")),
        "opportunities, row 1, column 'product': unknown product",
    ),
    (
        "activities",
        lambda df: df.assign(activity_id=df["activity_id"].where(df.index != 9, "")),
        "activities, row 10, column 'activity_id': value is empty but required",
    ),
    ("contacts", lambda df: df.iloc[0:0], "contacts: the table is empty (no rows)"),
    ("opportunities", lambda df: None, "opportunities: file not found"),
]


@pytest.mark.parametrize(
    ("table", "edit", "expected"),
    CASES,
    ids=[c[2].split(":")[0] + ":" + c[2].split(":")[1][:30] for c in CASES],
)
def test_each_problem_is_named(tiny_dir, catalog, tmp_path, table, edit, expected):
    data = _copy(tiny_dir, tmp_path / "bad", "csv", _edit_one(table, edit))
    result, problems = _problems(data, catalog)
    assert not result.ok
    assert any(p.startswith(expected) for p in problems), problems


BLANKED = [
    (
        lambda df: df.assign(employees=df["employees"].astype(str).where(df.index != 1, "lots")),
        "employees",
        "expected a whole number: 'lots'",
    ),
    (
        lambda df: df.assign(
            is_customer=df["is_customer"].astype(str).where(df.index != 1, "maybe")
        ),
        "is_customer",
        "expected true/false: 'maybe'",
    ),
    (
        lambda df: df.assign(employees=df["employees"].where(df.index != 1, -5)),
        "employees",
        "must be >= 0",
    ),
]


@pytest.mark.parametrize(("edit", "column", "reason"), BLANKED, ids=[b[1] for b in BLANKED])
def test_a_bad_optional_cell_is_blanked_and_reported_not_fatal(
    tiny_dir, catalog, tmp_path, edit, column, reason
):
    """One bad enrichment cell costs that cell, not its account with all its contacts."""
    data = _copy(tiny_dir, tmp_path / "bad", "csv", _edit_one("accounts", edit))
    result = load_tables(data, catalog)
    assert result.ok, result.problems
    accounts = result.tables["accounts"]
    assert len(accounts) == result.rows_in["accounts"]  # no row lost
    assert pd.isna(accounts.loc[1, column])
    assert len(result.tables["contacts"]) == result.rows_in["contacts"]
    (rec,) = result.rejects.itertuples(index=False)
    assert (rec.table, rec.row, rec.column, rec.action) == ("accounts", 2, column, "blanked")
    assert reason in rec.reason


def test_future_events_are_rejected(tiny_dir, catalog, tmp_path):
    """An event dated after today would move the default as-of date into the future."""

    def edit(df):
        df = df.copy()
        df["timestamp"] = df["timestamp"].astype(str)
        df.loc[[3, 8], "timestamp"] = "2031-05-01T10:00:00"
        return df

    data = _copy(tiny_dir, tmp_path / "bad", "csv", _edit_one("activities", edit))
    result = load_tables(data, catalog, on_bad_rows="skip")
    assert result.ok
    acts = result.tables["activities"]
    assert len(acts) == result.rows_in["activities"] - 2
    assert acts["timestamp"].max() < pd.Timestamp("2030-01-01")
    future = result.rejects[result.rejects["table"] == "activities"]
    assert future["row"].tolist() == [4, 9] and future["reason"].str.contains("future").all()
    strict, problems = _problems(data, catalog)
    assert not strict.ok and any("in the future" in p for p in problems)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0001-01-01", "outside the supported range"),
        ("9999-12-31", "outside the supported range"),
        ("2262-04-12", "outside the supported range"),
        ("2026-13-01", "unparseable timestamp"),
    ],
)
def test_out_of_range_timestamps_are_named_not_wrapped(tiny_dir, catalog, tmp_path, value, reason):
    def edit(df):
        df = df.copy()
        df["timestamp"] = df["timestamp"].astype(str)
        df.loc[2, "timestamp"] = value
        return df

    data = _copy(tiny_dir, tmp_path / "bad", "csv", _edit_one("activities", edit))
    result, problems = _problems(data, catalog)
    assert any(p.startswith(f"activities, row 3, column 'timestamp': {reason}") for p in problems)


def test_dotted_dates_are_day_first(tiny_dir, catalog, tmp_path):
    def edit(df):
        df = df.copy()
        df["timestamp"] = df["timestamp"].astype(str)
        df.loc[0, "timestamp"] = "11.04.2026"
        return df

    data = _copy(tiny_dir, tmp_path / "d", "csv", _edit_one("activities", edit))
    result = load_tables(data, catalog)
    assert result.ok
    assert result.tables["activities"].loc[0, "timestamp"] == pd.Timestamp("2026-04-11")


def test_skip_policy_accounts_for_every_row(tiny_dir, catalog, tmp_path):
    def edit(t, df):
        df = df.copy()
        if t == "contacts":
            df.loc[5, "contact_id"] = df.loc[3, "contact_id"]
        if t == "activities":
            df["timestamp"] = df["timestamp"].astype(str)
            df.loc[[10, 20], "timestamp"] = "not a date"
        return df

    data = _copy(tiny_dir, tmp_path / "skip", "csv", edit)
    result, problems = _problems(data, catalog, on_bad_rows="skip")
    assert problems == []
    rej = result.rejects
    for t in TABLES:
        assert result.rows_in[t] == len(result.tables[t]) + int((rej["table"] == t).sum()), t
    assert set(rej.loc[rej["table"] == "activities", "row"]) >= {11, 21}
    assert rej["reason"].str.len().gt(0).all() and rej["record"].str.startswith("{").all()
    # The overwritten contact no longer exists, so its activities are rejected, each with a
    # reason, and none is silently lost.
    lost = pd.read_parquet(tiny_dir / "contacts.parquet").loc[5, "contact_id"]
    acts = pd.read_parquet(tiny_dir / "activities.parquet")
    lost_rows = set(acts.index[acts["contact_id"] == lost] + 1)
    orphans = rej[(rej["table"] == "activities") & rej["reason"].str.contains("unknown contact")]
    assert set(orphans["row"]) == lost_rows


def test_structural_problems_fail_even_when_skipping(tiny_dir, catalog, tmp_path):
    data = _copy(
        tiny_dir,
        tmp_path / "s",
        "csv",
        _edit_one("contacts", lambda df: df.rename(columns={"contact_id": "id"})),
    )
    result, _ = _problems(data, catalog, on_bad_rows="skip")
    assert not result.ok


def test_cli_prints_one_line_per_problem_without_traceback(tiny_dir, tmp_path):
    def edit(t, df):
        df = df.copy()
        if t == "contacts":
            df = df.rename(columns={"job_title": "job_titel"})
            df.loc[5, "contact_id"] = df.loc[3, "contact_id"]
        if t == "activities":
            df["timestamp"] = df["timestamp"].astype(str)
            df.loc[10, "timestamp"] = "yesterday"
        return df

    data = _copy(tiny_dir, tmp_path / "cli", "csv", edit)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "buying_groups.cli.validate_main",
            f"data_dir={data}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ")]
    assert any(ln.startswith("contacts, column 'job_titel'") for ln in lines)
    assert any(ln.startswith("contacts, row 6, column 'contact_id': duplicate id") for ln in lines)
    assert any(ln.startswith("activities, row 11, column 'timestamp': unparseable") for ln in lines)


def test_tables_are_written_whole_and_readable_as_plain_files_are(tmp_path):
    """An atomic write leaves no temporary file behind and gives the file the permissions
    ``open`` would (not the temporary file's owner-only ones)."""
    import os

    from buying_groups.data.io import write_table

    df = pd.DataFrame({"a": [1, 2]})
    for name in ("t.parquet", "t.csv"):
        write_table(df, tmp_path / name)
        umask = os.umask(0o022)
        os.umask(umask)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]


def test_subscriptions_are_optional_and_checked_like_every_table(tiny_dir, catalog, tmp_path):
    from buying_groups.data.schema import OPTIONAL_TABLES

    tables = TABLES + OPTIONAL_TABLES
    without = _copy(tiny_dir, tmp_path / "without")  # an export that lacks the table
    result = load_tables(without, catalog, tables=tables)
    assert result.ok and "subscriptions" not in result.tables

    subs = pd.read_parquet(tiny_dir / "subscriptions.parquet")
    good = _copy(tiny_dir, tmp_path / "good")
    subs.to_csv(good / "subscriptions.csv", index=False)
    result = load_tables(good, catalog, tables=tables)
    assert result.ok and len(result.tables["subscriptions"]) == len(subs)
    assert result.tables["subscriptions"]["amount"].dtype == "float64"

    bad = _copy(tiny_dir, tmp_path / "bad")
    broken = subs.astype({"outcome": object, "account_id": object, "amount": object})
    broken.loc[1, "outcome"] = "cancelled"
    broken.loc[2, "account_id"] = "A999"
    broken.loc[3, "amount"] = "lots"
    broken.to_csv(bad / "subscriptions.csv", index=False)
    result = load_tables(bad, catalog, tables=tables)
    problems = [str(p) for p in result.problems]
    assert any("subscriptions, row 2, column 'outcome': unknown outcome" in p for p in problems)
    assert any("row 3, column 'account_id': unknown account_id 'A999'" in p for p in problems)
    assert len(problems) == 2  # a bad amount is blanked and reported, not fatal
    blanked = result.rejects[result.rejects["action"] == "blanked"]
    assert list(blanked["column"]) == ["amount"] and list(blanked["row"]) == [4]


def test_ids_stored_as_floats_still_meet_their_references(tiny_dir, catalog, tmp_path):
    """A Parquet column of integer ids with one gap is stored as float (1000.0): read as
    "1000.0" no contact met its account and skip rejected every row."""
    ids = {}

    def edit(t, df):
        df = df.copy()
        if t == "accounts":
            ids.update({a: 1000 + i for i, a in enumerate(df["account_id"])})
            df["account_id"] = df["account_id"].map(ids)
        if t in ("contacts", "opportunities"):
            df["account_id"] = df["account_id"].map(ids).astype(float)  # 1000.0
            if t == "contacts":
                df.loc[3, "account_id"] = float("nan")
        return df

    result, problems = _problems(
        _copy(tiny_dir, tmp_path / "f", "parquet", edit), catalog, on_bad_rows="skip"
    )
    assert problems == []
    contacts = result.tables["contacts"]
    assert len(contacts) == result.rows_in["contacts"] - 1  # the one without an account
    assert set(contacts["account_id"]) <= {str(i) for i in ids.values()}


def test_a_number_where_a_title_belongs_is_blanked_and_reported(tiny_dir, catalog, tmp_path):
    """An integer title column (a column mixed up in the export) read as titles "0", "1"."""
    edit = _edit_one("contacts", lambda df: df.assign(job_title=range(len(df))))
    result = load_tables(_copy(tiny_dir, tmp_path / "n", "parquet", edit), catalog)
    assert result.ok, result.problems
    assert result.tables["contacts"]["job_title"].isna().all()
    blanked = result.rejects[result.rejects["table"] == "contacts"]
    assert len(blanked) == result.rows_in["contacts"]
    assert (blanked["action"] == "blanked").all()
    assert blanked["reason"].iloc[0] == "expected text, got the number 0"


def test_a_table_with_every_row_rejected_is_not_usable(tiny_dir, catalog, tmp_path):
    """Contact ids lower-cased in the activities: skip rejected them all and called the
    export usable, with nothing to score."""
    edit = _edit_one("contacts", lambda df: df.assign(account_id=df["account_id"].str.lower()))
    result, problems = _problems(
        _copy(tiny_dir, tmp_path / "r", "csv", edit), catalog, on_bad_rows="skip"
    )
    assert not result.ok and result.tables == {}
    assert any(
        p.startswith("contacts: all ")
        and "rows were rejected, none is left" in p
        and "unknown account_id" in p
        for p in problems
    ), problems


def test_excel_csv_files_are_read_as_written(tiny_dir, catalog, tmp_path):
    """Excel outside English writes ";"-separated CSV in Windows-1252 ("Directeur général",
    "Geschäftsführer"): each failed with a tokenizer or codec error. Tabs read too."""
    data = _copy(tiny_dir, tmp_path / "x", "csv")
    contacts = pd.read_csv(data / "contacts.csv", dtype=str, keep_default_na=False)
    contacts.loc[0, "job_title"] = "Geschäftsführer; Inhaber"
    contacts.to_csv(
        data / "contacts.csv", index=False, sep=";", encoding="cp1252", errors="replace"
    )
    acts = pd.read_csv(data / "activities.csv", dtype=str, keep_default_na=False)
    acts.to_csv(data / "activities.csv", index=False, sep="\t")
    result, problems = _problems(data, catalog)
    assert problems == []
    assert result.tables["contacts"].loc[0, "job_title"] == "Geschäftsführer; Inhaber"
    assert len(result.tables["activities"]) == len(acts)


def test_a_column_in_another_case_or_spacing_is_named():
    from buying_groups.data.validate import _check_columns

    df = pd.DataFrame(columns=["Contact_ID", "account_id", "Job Title", "created_at"])
    problems = [str(p) for p in _check_columns("contacts", df)]
    expected = "required column 'contact_id' is missing; found 'Contact_ID' instead"
    assert any(expected in p for p in problems), problems


def test_csv_encodings_and_separators_are_judged_on_the_whole_file(tmp_path):
    """A Windows-1252 accent past the first 64 KiB, a quoted header label holding ';', a
    file mixing UTF-8 with another encoding, and UTF-16 (review of the first version)."""
    from buying_groups.data.io import csv_options

    late = tmp_path / "late.csv"
    late.write_bytes(b"a,b\n" + b"x,y\n" * 30_000 + "é,z\n".encode("cp1252"))
    assert csv_options(late) == {"sep": ",", "encoding": "cp1252"}
    assert read_table(late).iloc[-1, 0] == "é"
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('id,role,"Notes (who; what; when; where)"\n1,CFO,"a; b"\n2,CEO,c\n')
    assert csv_options(quoted)["sep"] == ","
    semi = tmp_path / "semi.csv"
    semi.write_text('id;name;"Umsatz, EUR"\n1;Müller;2520,00\n2;Schulz;1.234,50\n')
    assert csv_options(semi) == {"sep": ";", "encoding": "utf-8-sig"}
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes("a\nGeschäftsführer\n".encode() + "Müller\n".encode("cp1252"))
    with pytest.raises(ValueError, match="UTF-8 mixed with another encoding"):
        csv_options(mixed)
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text("a,b\n1,2\n", encoding="utf-16")
    with pytest.raises(ValueError, match="UTF-16"):
        csv_options(utf16)


def test_decimal_commas_are_read_as_excel_writes_them(tiny_dir, catalog, tmp_path):
    """German Excel writes amounts "2520,00" and "1.234,50": each was blanked as not a number."""
    data = _copy(tiny_dir, tmp_path / "d")
    subs = pd.read_parquet(tiny_dir / "subscriptions.parquet").astype({"amount": object})
    subs.loc[0, "amount"], subs.loc[1, "amount"] = "2520,00", "1.234,50"
    subs.to_csv(data / "subscriptions.csv", index=False, sep=";")
    result = load_tables(data, catalog, tables=TABLE_ORDER)
    assert result.ok, result.problems
    assert list(result.tables["subscriptions"]["amount"].iloc[:2]) == [2520.0, 1234.5]
    assert len(result.rejects) == 0
