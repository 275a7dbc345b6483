"""Streaming validation and account buckets for batch scoring: the same rows kept and
rejected (with file row numbers) whatever the chunk and bucket sizes."""

import shutil

import pandas as pd
import pytest

from buying_groups.batch import stage_tables
from buying_groups.data.io import find_table, read_table, write_table
from buying_groups.data.validate import DataValidationError, load_tables


@pytest.fixture(params=["parquet", "csv"])
def dirty_dir(tiny_dir, tmp_path, request):
    """tiny with an activity repeated at the end of the file (far from its first row, so in
    another chunk), an activity of an unknown contact and a bad channel."""
    data = tmp_path / "dirty"
    shutil.copytree(tiny_dir, data, ignore=shutil.ignore_patterns("*.csv", "labels"))
    acts = pd.read_parquet(data / "activities.parquet")
    extra = acts.iloc[[5, 6, 7]].copy()
    extra.iloc[1, extra.columns.get_loc("activity_id")] = "new-1"
    extra.iloc[1, extra.columns.get_loc("contact_id")] = "nobody"
    extra.iloc[2, extra.columns.get_loc("activity_id")] = "new-2"
    extra.iloc[2, extra.columns.get_loc("channel")] = "carrier pigeon"
    pd.concat([acts, extra], ignore_index=True).to_parquet(data / "activities.parquet")
    if request.param == "csv":  # the streaming CSV reader must number rows the same way
        for path in data.glob("*.parquet"):
            write_table(pd.read_parquet(path), path.with_suffix(".csv"))
            path.unlink()
    return data


def _staged_activities(staged):
    parts = [staged.bucket(k)["activities"] for k in range(staged.n_buckets)]
    return pd.concat(parts).sort_values("activity_id").reset_index(drop=True)


def test_chunks_and_buckets_do_not_change_what_is_kept_or_rejected(dirty_dir, catalog, tmp_path):
    whole = load_tables(dirty_dir, catalog, "skip")
    one = stage_tables(dirty_dir, catalog, tmp_path / "one", "skip", 10_000, 10**7)
    many = stage_tables(dirty_dir, catalog, tmp_path / "many", "skip", 7, 5_000)
    assert many.n_buckets > 5 and one.n_buckets == 1
    n = len(read_table(find_table(dirty_dir, "activities")))
    for staged in (one, many):
        assert staged.rows_in["activities"] == n
        assert staged.kept["activities"] == n - 3
        assert staged.kept["activities"] == len(whole.tables["activities"])
        assert staged.as_of == whole.tables["activities"]["timestamp"].max()
    for col in ("table", "row", "column", "reason"):
        expected = whole.rejects[col].tolist()
        assert one.rejects[col].tolist() == many.rejects[col].tolist() == expected
    assert "first seen in row 6" in many.rejects["reason"].iloc[0]
    pd.testing.assert_frame_equal(_staged_activities(one), _staged_activities(many))
    # Every account is in exactly one bucket, with its contacts and opportunities.
    b = many.tables
    assert b["accounts"]["bucket"].notna().all()
    merged = b["contacts"].merge(b["accounts"], on="account_id", suffixes=("", "_a"))
    assert (merged["bucket"] == merged["bucket_a"]).all()


def test_error_policy_reports_rows_across_chunks(dirty_dir, catalog, tmp_path):
    with pytest.raises(DataValidationError) as err:
        stage_tables(dirty_dir, catalog, tmp_path / "s", "error", 7, 5_000)
    rows = {(p.row, p.column) for p in err.value.problems}
    n = len(read_table(find_table(dirty_dir, "activities")))
    assert rows == {(n - 2, "activity_id"), (n - 1, "contact_id"), (n, "channel")}
