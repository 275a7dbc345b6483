"""Scoring staged buckets with the deployable model (pandas engine): contacts and groups of
each bucket, unchanged accounts taken from the ``AccountCache``."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from buying_groups.batch.cache import AccountCache, Split
from buying_groups.batch.staging import Staged
from buying_groups.data.examples import contact_inputs
from buying_groups.scoring import score_contacts, score_groups


def score_bucket(
    wrapped,  # noqa: ANN001  (the buying-groups pyfunc's Python model)
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
    contact_ids: pd.Series | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Contacts (persona, roles from title + activity; only ``contact_ids`` if given) and
    groups of some accounts."""
    contacts, activities = tables["contacts"], tables["activities"]
    if contact_ids is not None:
        contacts = contacts[contacts["contact_id"].isin(contact_ids)]
        activities = activities[activities["contact_id"].isin(contact_ids)]
    inputs = contact_inputs(contacts, activities, as_of=as_of)
    parts = []
    for start in range(0, len(inputs), chunk_size):
        chunk = inputs.iloc[start : start + chunk_size]
        parts.append(score_contacts(wrapped.predict_roles, chunk, wrapped.catalog))
        if on_contacts is not None:
            on_contacts(len(chunk))
    scored = pd.concat(parts) if parts else None
    groups = score_groups(
        wrapped.predict_roles, wrapped.qualifier, tables, wrapped.catalog, as_of, top_reasons
    )
    return scored, groups


def _keep_role_predictions(contacts: pd.DataFrame) -> None:
    """Reused contacts' role predictions stay in the active prediction cache (it keeps only
    the inputs a run used), so a later change to one contact re-encodes only that one."""
    from buying_groups.models.inference import PredictionCache, active_cache, clean_inputs

    cache = active_cache()
    if cache is None:
        return
    titles, texts = clean_inputs(contacts)
    cache.used.update(PredictionCache.key(t, a) for t, a in zip(titles, texts, strict=True))
    cache.used.update(PredictionCache.key(t, "") for t in set(titles))  # group membership


def score_buckets(
    wrapped,  # noqa: ANN001
    staged: Staged,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
    cache: AccountCache | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every bucket in turn; outputs in a canonical order (contact; account, product). With
    ``cache``, unchanged accounts and contacts come from it (the activities of unchanged
    accounts are not even read), and the changed accounts of several buckets are scored
    together, up to the largest bucket's number of accounts: a daily run's few changed
    accounts per bucket cost one model call and one group-state pass, not one per bucket,
    while memory stays bounded by a bucket's."""
    contacts, groups = [], []
    pending: list[Split] = []  # changed accounts not scored yet
    sizes = staged.tables["accounts"]["bucket"].value_counts()
    largest = int(sizes.max()) if len(sizes) else 0  # accounts of the largest bucket

    def score_pending() -> None:
        if not pending:
            return
        tables = {
            name: pd.concat([p.tables[name] for p in pending], ignore_index=True)
            for name in pending[0].tables
        }
        ids = None
        if any(p.contact_ids is not None for p in pending):
            ids = pd.concat(
                [
                    p.tables["contacts"]["contact_id"] if p.contact_ids is None else p.contact_ids
                    for p in pending
                ],
                ignore_index=True,
            )
        c, g = score_bucket(wrapped, tables, as_of, top_reasons, chunk_size, on_contacts, ids)
        if c is not None:
            contacts.append(c)
        groups.append(g)
        pending.clear()

    for k in range(staged.n_buckets):
        if cache is None:
            split = Split(staged.bucket(k), None, None, None)
        else:
            split = cache.split(staged.bucket(k, activities=False), staged.activity_sums(k))
            if len(split.tables["accounts"]):  # read only the activities still needed
                todo = None if split.groups is None else split.tables["contacts"]["contact_id"]
                split.tables["activities"] = staged.activities(k, todo)
        if split.contacts is not None:
            _keep_role_predictions(split.contacts)
            contacts.append(split.contacts)
            if on_contacts is not None:
                on_contacts(len(split.contacts))
        if split.groups is not None:
            groups.append(split.groups)
        n = len(split.tables["accounts"])
        if n == 0:
            continue
        if sum(len(p.tables["accounts"]) for p in pending) + n > largest:
            score_pending()
        pending.append(split)
    score_pending()
    return canonical_contacts(pd.concat(contacts)), canonical_groups(pd.concat(groups))


def canonical_contacts(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("contact_id", kind="stable").reset_index(drop=True)


def canonical_groups(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["account_id", "product"], kind="stable").reset_index(drop=True)
