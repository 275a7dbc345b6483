import pandas as pd

from buying_groups.data.examples import labelled_examples
from buying_groups.data.splits import role_splits, snapshot_dates, time_split


def test_role_splits_by_account(tiny_dataset, catalog):
    ex = labelled_examples(tiny_dataset.tables, tiny_dataset.labels, catalog)
    per_account = ex.groupby("account_id")["split"].nunique()
    assert (per_account == 1).all()  # no account in two splits
    assert set(ex["split"]) == {"train", "validation", "test", "test_ood"}
    assert (ex.loc[ex["split"] == "test_ood", "vocab"] == "ood").all()
    assert (ex.loc[ex["split"] != "test_ood", "vocab"] == "in").all()
    accounts = ex.loc[ex["split"] != "test_ood"].drop_duplicates("account_id")
    share = accounts["split"].value_counts(normalize=True)
    assert 0.55 < share["train"] < 0.85


def test_role_splits_are_stable():
    contacts = pd.DataFrame({"account_id": [f"A{i}" for i in range(200)]})
    a = role_splits(contacts, set(), seed=3)
    b = role_splits(contacts.iloc[::-1], set(), seed=3).sort_index()
    assert a.equals(b)
    assert not a.equals(role_splits(contacts, set(), seed=4))


def test_time_split_has_an_embargo():
    snaps = snapshot_dates("2025-01-01", "2026-07-01")
    assert snaps[0] == pd.Timestamp("2025-02-01") and snaps[-1] == pd.Timestamp("2026-04-01")
    split = time_split(snaps, "2026-01-01", horizon_days=90)
    train = snaps[(split == "train").to_numpy()]
    test = snaps[(split == "test").to_numpy()]
    assert (train + pd.Timedelta(days=90) <= pd.Timestamp("2026-01-01")).all()
    assert (test >= pd.Timestamp("2026-01-01")).all()
    assert (split == "embargo").sum() == 2  # Nov and Dec: their labels reach into 2026


def test_champions_count_two_advocacy_kinds(tiny_dataset, catalog):
    """The auxiliary advocacy target (read from the activity log) agrees with the labels: a
    champion pair has 2+ distinct advocacy kinds for its product in the rendered window."""
    tables = tiny_dataset.tables
    as_of = tables["activities"]["timestamp"].max()
    ex = labelled_examples(tables, tiny_dataset.labels, catalog, as_of=as_of)
    champions = 0
    for p in catalog.names:
        champ = (ex[f"role_{p}"] == "champion").to_numpy()
        assert (ex.loc[champ, f"advocacy_{p}"] >= 2).all(), p
        assert ex[f"advocacy_{p}"].between(0, 5).all()
        champions += champ.sum()
    assert champions > 0
