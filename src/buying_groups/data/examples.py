"""One row per contact, as the role model and the baselines read it."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from buying_groups.data.activity import (
    DEFAULT_MAX_EVENTS,
    advocacy_counts,
    recent_events,
    render_activity_text,
)
from buying_groups.data.crm_labels import CrmLabelConfig, crm_examples
from buying_groups.data.splits import role_splits
from buying_groups.taxonomy import Catalog


def cap(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (a fixed random sample): the ``max_*_samples`` debug knobs."""
    return frame if not n or len(frame) <= n else frame.sample(n, random_state=seed)


def role_model_splits(
    examples: pd.DataFrame, max_train: int | None, max_eval: int | None, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, evaluation): the training and validation contacts, and every
    split a model is scored on (validation and the held-out ones), each capped."""
    train = cap(examples[examples["split"] == "train"], max_train, seed)
    validation = cap(examples[examples["split"] == "validation"], max_eval, seed)
    held_out = examples["split"].isin(["test", "test_ood", "crm_test"])
    evaluation = pd.concat([validation, examples[held_out]])
    evaluation = pd.concat([cap(g, max_eval, seed) for _, g in evaluation.groupby("split")])
    return train, validation, evaluation


def contact_inputs(
    contacts: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> pd.DataFrame:
    """``contact_id, account_id, job_title, activity_text``: the model's input columns."""
    text = render_activity_text(
        activities, contacts["contact_id"], as_of=as_of, max_events=max_events
    )
    out = contacts[["contact_id", "account_id", "job_title"]].copy()
    out["job_title"] = out["job_title"].fillna("").astype(str)
    out["activity_text"] = text.to_numpy()
    return out.reset_index(drop=True)


def labelled_examples(
    tables: dict[str, pd.DataFrame],
    labels: dict[str, pd.DataFrame],
    catalog: Catalog,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
) -> pd.DataFrame:
    """Model inputs joined with ground truth (``function``, ``seniority``, ``role_<product>``),
    ``language``, ``title_kind`` and the account-level ``split``; ``advocacy_<product>``
    counts the distinct advocacy kinds in the rendered events (an auxiliary training target
    read from the activity log, not from the labels)."""
    # The text and the advocacy counts read the same window of events: select it once (both
    # select it again from this window, which keeps it as it is, at a fraction of the cost).
    window = recent_events(tables["activities"], as_of=as_of, max_events=max_events)
    df = contact_inputs(tables["contacts"], window, as_of, max_events)
    advocacy = advocacy_counts(window, list(catalog.names), df["contact_id"], as_of, max_events)
    for product in catalog.names:
        df[f"advocacy_{product}"] = advocacy[product].to_numpy()
    cl = labels["contact_labels"]
    df = df.merge(
        cl[["contact_id", "function", "seniority", "language", "title_kind", "vocab"]],
        on="contact_id",
        how="left",
        validate="one_to_one",
    )
    roles = labels["role_labels"].pivot(index="contact_id", columns="product", values="role")
    roles = roles.reindex(columns=list(catalog.names)).add_prefix("role_")
    df = df.merge(roles, left_on="contact_id", right_index=True, how="left")
    ood_accounts = set(df.loc[df["vocab"] == "ood", "account_id"])
    df["split"] = role_splits(df, ood_accounts, split_fractions, split_seed).to_numpy()
    return df


def label_source(cfg: DictConfig) -> str:
    """``ground_truth`` or ``crm``: what the role model learns from (``labels=``)."""
    return str(cfg.get("labels", {}).get("name", "ground_truth"))


def crm_examples_from(
    cfg: DictConfig,
    tables: dict[str, pd.DataFrame],
    labels: dict[str, pd.DataFrame] | None,
    catalog: Catalog,
) -> pd.DataFrame:
    """Examples labelled by the CRM alone (``labels=crm``). Where a ground truth exists
    (generated data) it measures, never trains: the accounts are split as
    ``labels=ground_truth`` splits them, the CRM's labels of the test accounts become
    ``crm_test`` and the ground truth of the test accounts ``test`` / ``test_ood``."""
    lcfg = CrmLabelConfig.from_config(cfg.labels, int(cfg.get("seed", 0)))
    truth = examples_from(cfg, tables, labels, catalog) if labels is not None else None
    holdout = set() if truth is None else set(truth.loc[truth["split"] == "test_ood", "account_id"])
    crm = crm_examples(
        tables,
        catalog,
        lcfg,
        max_events=cfg.data.max_events,
        split_fractions=tuple(cfg.split.fractions),
        split_seed=cfg.split.seed,
        holdout_accounts=holdout,
    )
    if truth is None:
        return crm
    crm = crm[crm["split"] != "test_ood"]
    crm.loc[crm["split"] == "test", "split"] = "crm_test"
    measured = truth[truth["split"].isin(["test", "test_ood"])]
    return pd.concat([crm, measured], ignore_index=True)


def examples_from(
    cfg: DictConfig,
    tables: dict[str, pd.DataFrame],
    labels: dict[str, pd.DataFrame],
    catalog: Catalog,
) -> pd.DataFrame:
    """Loaded tables and ground truth as labelled contacts with the configured splits
    (``cfg.data.max_events``, ``cfg.split``), as of the export date."""
    return labelled_examples(
        tables,
        labels,
        catalog,
        as_of=tables["activities"]["timestamp"].max(),
        max_events=cfg.data.max_events,
        split_fractions=tuple(cfg.split.fractions),
        split_seed=cfg.split.seed,
    )
