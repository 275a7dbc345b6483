"""Invariants of the generated data: a CRM export with consistent ground truth."""

import hashlib

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from buying_groups.data.activity import advocacy_counts
from buying_groups.data.dataset import write_dataset
from buying_groups.data.generate import GeneratorConfig, generate
from buying_groups.data.schema import OPTIONAL_TABLES, SUBSCRIPTION_OUTCOMES, TABLES
from buying_groups.data.summary import summarize
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES, assign_roles


def test_tables_and_keys(tiny_dataset):
    t = tiny_dataset.tables
    assert set(t) == set(TABLES) | set(OPTIONAL_TABLES)
    for name, key in [
        ("accounts", "account_id"),
        ("contacts", "contact_id"),
        ("activities", "activity_id"),
        ("opportunities", "opportunity_id"),
    ]:
        assert len(t[name]) > 0 and t[name][key].is_unique, name
    assert t["contacts"]["account_id"].isin(t["accounts"]["account_id"]).all()
    assert t["activities"]["contact_id"].isin(t["contacts"]["contact_id"]).all()
    assert t["opportunities"]["account_id"].isin(t["accounts"]["account_id"]).all()
    ocr = t["opportunity_contact_roles"].merge(t["opportunities"], on="opportunity_id")
    ocr = ocr.merge(t["contacts"], on="contact_id", suffixes=("", "_c"))
    assert (ocr["account_id"] == ocr["account_id_c"]).all()  # roles are the opp's own people


def test_time_bounds(tiny_dataset):
    cfg = tiny_dataset.config
    acts = tiny_dataset.tables["activities"]
    assert acts["timestamp"].min() >= cfg.start and acts["timestamp"].max() < cfg.end
    assert 12 <= cfg.months <= 18
    first = acts.groupby("contact_id")["timestamp"].min()
    created = tiny_dataset.tables["contacts"].set_index("contact_id")["created_at"]
    assert (created.loc[first.index] <= first).all()  # nobody acts before entering the CRM


def test_one_open_opportunity_per_pair(tiny_dataset):
    opp = tiny_dataset.tables["opportunities"].sort_values("created_at")
    for _, g in opp.groupby(["account_id", "product"]):
        closed = g["closed_at"].to_numpy()
        closed = np.where(pd.isna(closed), np.datetime64("2100-01-01"), closed)
        assert (g["created_at"].to_numpy()[1:] > closed[:-1]).all()
    closed = opp["stage"].str.startswith("closed")
    assert opp.loc[closed, "won"].notna().all() and opp.loc[~closed, "won"].isna().all()


def test_labels_cover_the_taxonomy_and_follow_the_rules(tiny_dataset, catalog):
    cl = tiny_dataset.labels["contact_labels"]
    rl = tiny_dataset.labels["role_labels"]
    assert set(cl["function"]) == set(FUNCTIONS)
    assert set(cl["seniority"]) == set(SENIORITIES)
    assert set(rl["role"]) == set(ROLES)
    assert len(rl) == len(cl) * len(catalog.names)
    # Labels are reproducible from persona + the rendered activity window, nothing hidden.
    adv = advocacy_counts(
        tiny_dataset.tables["activities"],
        catalog.names,
        cl["contact_id"],
        as_of=tiny_dataset.config.end,
        max_events=tiny_dataset.config.max_events,
    )
    for product in catalog.products:
        expect = assign_roles(
            cl["function"], cl["seniority"], adv[product.name].to_numpy(), product
        )
        got = rl[rl["product"] == product.name].set_index("contact_id").loc[cl["contact_id"]]
        assert (got["role"].to_numpy() == expect).all()


def test_subscriptions_are_chains_of_terms_at_customers(tiny_dataset):
    t = tiny_dataset.tables
    subs, end = t["subscriptions"], tiny_dataset.config.end
    customers = t["accounts"].loc[t["accounts"]["is_customer"], "account_id"]
    assert len(subs) and subs["account_id"].isin(customers).all()
    assert set(customers) <= set(subs["account_id"])  # every customer subscribes to something
    assert subs["term_id"].is_unique and (subs["term_end"] > subs["term_start"]).all()
    assert subs["outcome"].dropna().isin(SUBSCRIPTION_OUTCOMES).all()
    # an outcome exactly when the term ended inside the export
    assert (subs["outcome"].notna() == (subs["term_end"] <= end)).all()
    for _, terms in subs.sort_values("term_start").groupby("subscription_id"):
        assert (terms["term_start"].to_numpy()[1:] == terms["term_end"].to_numpy()[:-1]).all()
        assert terms["product"].nunique() == 1
        # a churned subscription has no later term; only the last term may still run
        assert (terms["outcome"].iloc[:-1] != "churned").all()
        assert terms["outcome"].iloc[:-1].notna().all()


def test_people_who_leave_stop_and_successors_start_later(tiny_cfg, catalog):
    from buying_groups.data.customers import installed_base, owned_products
    from buying_groups.data.generate import (
        INSTALLED_HISTORY_DAYS,
        _accounts,
        _contacts,
        _static_roles,
    )

    cfg = GeneratorConfig.from_config(OmegaConf.to_container(tiny_cfg.data, resolve=True))
    cfg.customers.leave_per_year = 2.0  # many departures in a tiny dataset
    rng = np.random.default_rng(0)
    accounts = _accounts(cfg, catalog, rng)
    contacts = _contacts(cfg, accounts, rng)
    roles = _static_roles(contacts, catalog)
    owned = owned_products(cfg.customers, catalog, accounts, rng)
    start = cfg.start - pd.Timedelta(days=INSTALLED_HISTORY_DAYS)
    base = installed_base(
        cfg.customers, start, cfg.end, catalog, contacts, roles, cfg.title_noise, owned, rng
    )
    assert len(base.left_at) and len(base.successors)
    last = base.events.groupby("contact_id")["timestamp"].max()
    left = base.left_at[base.left_at.index.isin(last.index)]
    assert (last.loc[left.index] <= left + pd.Timedelta(days=1)).all()
    first = base.events.groupby("contact_id")["timestamp"].min()
    succ = base.successors.set_index("contact_id")
    seen = succ.index[succ.index.isin(first.index)]
    assert (first.loc[seen] >= succ.loc[seen, "created_at"]).all()
    assert not succ.index.isin(contacts["contact_id"]).any()  # new people, new ids


def test_committees(tiny_dataset):
    sizes = tiny_dataset.labels["committees"].groupby("window_id").size()
    assert sizes.min() >= 3 and sizes.max() <= 21  # 3-20 plus at most one tag-along
    assert set(tiny_dataset.labels["in_market_windows"]["window_id"]) == set(sizes.index)


def test_deterministic_and_seeded(tiny_cfg, catalog, tiny_dataset, tmp_path):
    cfg = GeneratorConfig.from_config(OmegaConf.to_container(tiny_cfg.data, resolve=True))
    again = generate(cfg, catalog)
    for name in TABLES + OPTIONAL_TABLES:
        pd.testing.assert_frame_equal(again.tables[name], tiny_dataset.tables[name])
    a = write_dataset(tiny_dataset, tmp_path / "a", catalog)
    b = write_dataset(again, tmp_path / "b", catalog)
    assert a["digest"] == b["digest"]
    for f in a["files"]:
        assert (
            hashlib.sha256((tmp_path / "a" / f).read_bytes()).digest()
            == hashlib.sha256((tmp_path / "b" / f).read_bytes()).digest()
        ), f
    cfg.seed += 1
    other = generate(cfg, catalog)
    assert not other.tables["contacts"]["job_title"].equals(
        tiny_dataset.tables["contacts"]["job_title"]
    )


def test_realism_on_tiny(tiny_dataset, catalog):
    s = summarize(tiny_dataset.tables, tiny_dataset.labels, catalog.names)
    assert s["non_english_title_share"] >= 0.25
    assert 0.02 <= s["empty_title_share"] <= 0.08
    assert s["opportunity_rate_in_market"] > 2 * s["opportunity_rate_out_of_market"]
    assert s["opportunity_rate_in_market"] < 0.8
    assert s["contacts_with_crm_role_share"] < 0.2  # CRM roles are sparse, as in the field


def test_noise_contacts_engage(tiny_dataset):
    cl = tiny_dataset.labels["contact_labels"]
    n = tiny_dataset.tables["activities"].groupby("contact_id").size()
    by_kind = n.reindex(cl["contact_id"]).fillna(0).groupby(cl["noise_kind"].to_numpy()).mean()
    assert by_kind["customer_user"] > by_kind["none"]
    assert {"student", "customer_user", "none"} <= set(by_kind.index)


def test_activity_shows_function_for_empty_titles(tiny_dataset):
    """Function content is in the activity, so an empty title is not hopeless."""
    from buying_groups.data import vocab

    acts = tiny_dataset.tables["activities"].merge(
        tiny_dataset.labels["contact_labels"], on="contact_id"
    )
    own = [
        a in vocab.FUNCTION_ASSETS[f] for a, f in zip(acts["asset"], acts["function"], strict=True)
    ]
    share = np.mean(own)
    assert 0.1 < share < 0.6
