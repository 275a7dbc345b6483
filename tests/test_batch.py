"""Streaming validation and account buckets for batch scoring: the same rows kept and
rejected (with file row numbers) whatever the chunk and bucket sizes."""

import shutil

import numpy as np
import pandas as pd
import pytest

from buying_groups.batch.staging import stage_tables
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


def test_account_digests_see_every_row_of_an_account_and_nothing_else(tiny_dir, catalog):
    """A changed activity or subscription term changes only its account's digest; row
    order does not matter;
    the salt (models, as_of, settings) changes every digest."""
    from buying_groups.batch.cache import account_digests, activity_sums

    names = ("accounts", "contacts", "activities", "opportunities", "subscriptions")
    tables = load_tables(tiny_dir, catalog, tables=names).tables
    before = account_digests(tables, "model A")
    assert before.index.is_unique and len(before) == len(tables["accounts"])
    assert before.nunique() == len(before) and before.dtype == np.uint64

    shuffled = {name: df.sample(frac=1.0, random_state=0) for name, df in tables.items()}
    pd.testing.assert_series_equal(account_digests(shuffled, "model A").loc[before.index], before)

    acts = tables["activities"].copy()
    acts.loc[acts.index[0], "asset"] = "a new asset"
    owner = tables["contacts"].set_index("contact_id").loc[acts.at[acts.index[0], "contact_id"]]
    after = account_digests({**tables, "activities": acts}, "model A")
    changed = before.index[(after != before).to_numpy()]
    assert list(changed) == [owner["account_id"]]

    # a renewed subscription term (what else a customer owns enters its groups' state)
    subs = tables["subscriptions"].copy()
    subs.loc[subs.index[0], "seats"] = subs["seats"].iloc[0] + 1
    after = account_digests({**tables, "subscriptions": subs}, "model A")
    assert list(before.index[(after != before).to_numpy()]) == [subs["account_id"].iloc[0]]

    dropped = {**tables, "activities": tables["activities"].iloc[1:]}
    assert (account_digests(dropped, "model A") != before).sum() == 1
    assert (account_digests(tables, "model B") != before).all()

    # From the activities' per-contact sums (kept with a staging): the same digests.
    per_contact = activity_sums(tables["activities"].sample(frac=1.0, random_state=1))
    no_activities = {name: df for name, df in tables.items() if name != "activities"}
    pd.testing.assert_series_equal(account_digests(no_activities, "model A", per_contact), before)


def test_staging_is_reused_only_while_its_inputs_are_the_same(dirty_dir, catalog, tmp_path):
    """A second staging of unchanged activities and contact ids reads nothing again and
    gives the same result; a changed activities file or another bucketing stages afresh."""
    work = tmp_path / "staging"
    first = stage_tables(dirty_dir, catalog, work, "skip", 7, 5_000, reuse=True)
    marker = work / "activities" / "bucket=0" / "part-0.parquet"
    stamp = marker.stat().st_mtime_ns

    contacts_path = find_table(dirty_dir, "contacts")  # titles change, ids do not
    contacts = read_table(contacts_path)
    contacts["job_title"] = "Head of Procurement"
    write_table(contacts, contacts_path)
    again = stage_tables(dirty_dir, catalog, work, "skip", 7, 5_000, reuse=True)
    assert marker.stat().st_mtime_ns == stamp  # not rewritten
    assert (again.rows_in, again.kept, again.as_of) == (first.rows_in, first.kept, first.as_of)
    pd.testing.assert_frame_equal(again.rejects, first.rejects)
    pd.testing.assert_frame_equal(_staged_activities(again), _staged_activities(first))
    assert (again.tables["contacts"]["job_title"] == "Head of Procurement").all()
    # The activities' hashes are kept with a reusable staging and read back, not recomputed.
    sums = [first.activity_sums(k) for k in range(first.n_buckets)]
    hashes = sorted((work / "activity_hashes").glob("bucket=*.parquet"))
    assert len(hashes) == first.n_buckets and again.reusable
    stamps = [path.stat().st_mtime_ns for path in hashes]
    for k in range(again.n_buckets):
        pd.testing.assert_frame_equal(again.activity_sums(k), sums[k])
    assert [path.stat().st_mtime_ns for path in hashes] == stamps  # read, not rewritten

    rebucketed = stage_tables(dirty_dir, catalog, work, "skip", 11, 5_000, reuse=True)
    assert rebucketed.n_buckets != first.n_buckets
    assert not (work / "activity_hashes").exists()  # they belonged to the old buckets
    pd.testing.assert_frame_equal(_staged_activities(rebucketed), _staged_activities(first))

    acts_path = find_table(dirty_dir, "activities")
    acts = read_table(acts_path)
    write_table(acts.iloc[:-1], acts_path)  # the last (bad-channel) row is gone
    changed = stage_tables(dirty_dir, catalog, work, "skip", 11, 5_000, reuse=True)
    assert changed.rows_in["activities"] == first.rows_in["activities"] - 1
    assert changed.kept == rebucketed.kept and len(changed.rejects) == len(first.rejects) - 1


def test_account_cache_carries_over_only_with_the_same_models_and_as_of(
    tiny_dir, catalog, tmp_path
):
    from buying_groups.batch.cache import AccountCache

    loaded = load_tables(tiny_dir, catalog).tables
    tables = {t: loaded[t] for t in ("accounts", "contacts", "activities", "opportunities")}
    cache = AccountCache("model A|2026-06-30|3")
    split = cache.split(tables)
    assert split.tables is tables and split.contacts is None and split.contact_ids is None
    assert cache.rescored == len(tables["accounts"])
    contacts = tables["contacts"][["contact_id", "account_id"]].assign(function="sales")
    groups = tables["accounts"][["account_id"]].assign(score=0.5)
    cache.save(tmp_path / "cache", contacts, groups)

    again = AccountCache("model A|2026-06-30|3")
    assert again.load(tmp_path / "cache") == len(tables["accounts"])
    split = again.split(tables)
    assert len(split.tables["accounts"]) == len(split.tables["contacts"]) == 0
    assert len(split.tables["activities"]) == 0
    assert len(split.contacts) == len(contacts) and len(split.groups) == len(groups)
    # Given the run's output files instead of frames, it copies them: the same cache.
    contacts.to_parquet(tmp_path / "contacts.parquet", index=False)
    groups.to_parquet(tmp_path / "groups.parquet", index=False)
    cache.save(tmp_path / "copied", tmp_path / "contacts.parquet", tmp_path / "groups.parquet")
    copied = AccountCache("model A|2026-06-30|3")
    assert copied.load(tmp_path / "copied") == len(tables["accounts"])
    pd.testing.assert_frame_equal(copied.contacts, again.contacts)
    pd.testing.assert_frame_equal(copied.groups, again.groups)

    # A changed contact: its account is scored again, but only that contact of it.
    changed = tables["contacts"].copy()
    changed.loc[changed.index[0], "job_title"] = "Chief Procurement Officer"
    split = again.split({**tables, "contacts": changed})
    account = changed.at[changed.index[0], "account_id"]
    assert split.tables["accounts"]["account_id"].tolist() == [account]
    assert (split.tables["contacts"]["account_id"] == account).all()
    assert split.contact_ids.tolist() == [changed.at[changed.index[0], "contact_id"]]
    assert len(split.contacts) == len(contacts) - 1
    assert len(split.groups) == len(groups) - 1
    for other in ("model B|2026-06-30|3", "model A|2026-07-01|3"):
        assert AccountCache(other).load(tmp_path / "cache") == 0
