"""The qualifier's stages between the data and the registry: buying groups at monthly
snapshots with their labels and the lead-scoring baselines, the fitted and thresholded
qualifier, its comparison with MQL and MQA at equal volume, explanations and journeys.
``bg-train-qualifier`` wires them to the config and MLflow; the notebooks call them too."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig
from sklearn.metrics import brier_score_loss

from buying_groups.data.splits import account_holdout, snapshot_dates, time_split
from buying_groups.plots import lift_figure, pr_curve_figure
from buying_groups.qualify.compare import (
    comparison_table,
    journey_stages,
    segment_comparison,
    stage_transitions,
)
from buying_groups.qualify.groups import (
    KEYS,
    add_labels,
    group_states,
    members_at,
    predict_contact_roles,
    segments,
)
from buying_groups.qualify.model import (
    Qualifier,
    choose_threshold,
    engage_next,
    fit_qualifier,
    qualifier_outputs,
)
from buying_groups.qualify.scoring_baselines import lead_scores
from buying_groups.taxonomy import Catalog

METHODS = {"QBG": "score", "MQL": "mql_score", "MQA": "mqa_score"}
FLAGS = {"QBG": "qualified", "MQL": "mql_flag", "MQA": "mqa_flag"}


def build_groups(
    cfg: DictConfig,
    tables: dict,
    catalog: Catalog,
    predict,  # noqa: ANN001
    test_only: bool = False,
) -> tuple:
    """Contact roles, and every group's labelled state with the lead-scoring baselines.

    ``test_only``: just the test period's groups, without the baselines (what ``bg-promote``
    evaluates; a snapshot's state depends only on data up to it, so the rows are the same).
    """
    contact_roles = predict_contact_roles(predict, tables["contacts"], catalog)
    ts = tables["activities"]["timestamp"]
    snaps = snapshot_dates(
        ts.min().normalize(),
        ts.max(),
        lookback_days=cfg.snapshots.lookback_days,
        horizon_days=cfg.split.label_horizon_days,
        freq=cfg.snapshots.freq,
    )
    cutoff = pd.Timestamp(cfg.split.qualification_cutoff or snaps[-cfg.split.test_snapshots])
    if not (snaps >= cutoff).any():
        raise SystemExit(
            f"no snapshot at or after the cut-off {cutoff.date()} has a full "
            f"{cfg.split.label_horizon_days}-day label window (last snapshot: "
            f"{snaps[-1].date()}); set split.qualification_cutoff earlier"
        )
    if test_only:
        snaps = snaps[snaps >= cutoff]
    groups = group_states(tables, contact_roles, catalog, snaps)
    groups = add_labels(groups, tables["opportunities"], cfg.split.label_horizon_days)
    groups["segment"] = segments(groups, tables)
    groups["split"] = time_split(
        groups["snapshot"], cutoff, cfg.split.label_horizon_days
    ).to_numpy()
    if test_only:
        return contact_roles, groups
    ls = cfg.lead_scoring
    leads = lead_scores(
        tables, catalog, snaps, half_life_days=ls.half_life_days, lookback_days=ls.lookback_days
    )
    groups = groups.merge(leads, on=KEYS, validate="one_to_one")
    groups["mql_flag"] = groups["mql_score"] >= ls.mql_threshold
    groups["mqa_flag"] = groups["mqa_score"] >= ls.mqa_threshold
    # Validation (calibration, threshold): held-out accounts over the training period; the
    # test period stays later in time, behind the label-horizon embargo.
    held = account_holdout(groups["account_id"], cfg.validation_fraction, cfg.split.seed)
    groups.loc[(groups["split"] == "train") & held, "split"] = "validation"
    return contact_roles, groups


def fit(cfg: DictConfig, usable: pd.DataFrame, features: list[str]) -> Qualifier:
    """Fit on the training split, calibrate and set the threshold on validation."""
    q = cfg.qualifier
    train_, validation = (usable[usable["split"] == s] for s in ("train", "validation"))
    qualifier = fit_qualifier(
        train_, validation, features, {"kind": q.kind, **q.params}, q.calibration, cfg.seed
    )
    qualifier.threshold = choose_threshold(
        qualifier.score(validation),
        validation["label"].to_numpy(),
        validation["snapshot"],
        q.threshold.mode,
        q.threshold.target_precision,
        # Capacity is per month for the whole account base; validation holds a share of it.
        q.threshold.capacity_per_snapshot
        * validation["account_id"].nunique()
        / usable["account_id"].nunique(),
    )
    qualifier.threshold_rule = dict(q.threshold)
    return qualifier


def evaluate(qualifier: Qualifier, usable: pd.DataFrame) -> tuple[dict, dict, dict, pd.DataFrame]:
    """QBG vs MQL vs MQA at equal flagged volume on validation and test: metrics, tables,
    figures, and the scored test groups."""
    metrics: dict[str, float] = {"threshold": qualifier.threshold}
    tables, figures, scored = {}, {}, {}
    for name in ("validation", "test"):
        frame = usable[usable["split"] == name]
        scores = qualifier.score(frame)
        frame = frame.assign(score=scores, qualified=scores >= qualifier.threshold)
        k = int(frame["qualified"].sum())
        table = comparison_table(frame, METHODS, k, FLAGS)
        for method, row in table.iterrows():
            for col in ("precision", "recall", "pr_auc", "lift", "flagged"):
                metrics[f"{name}/{method.lower()}_{col}"] = float(row[col])
        metrics[f"{name}/base_rate"] = float(frame["label"].mean())
        metrics[f"{name}/qbg_brier"] = float(brier_score_loss(frame["label"], scores))
        title = f"{name}: {frame['snapshot'].nunique()} snapshots, {len(frame):,} groups"
        figures[f"plots/pr_curves_{name}.png"] = pr_curve_figure(frame, METHODS, title)
        figures[f"plots/lift_{name}.png"] = lift_figure(frame, METHODS, max(k, 1), title)
        tables[name], scored[name] = table, frame
    # New logos and expansion (customers and the products they do not own yet) apart.
    by_segment = segment_comparison(scored["test"], METHODS)
    for (segment, method), row in by_segment.iterrows():
        for col in ("precision", "pr_auc", "flagged", "base_rate"):
            metrics[f"test/{segment}/{method.lower()}_{col}"] = float(row[col])
    if len(by_segment):
        tables["test_segments"] = by_segment
    for base in ("mql", "mqa"):
        p = metrics[f"test/{base}_precision"]
        metrics[f"test/precision_ratio_vs_{base}"] = (
            metrics["test/qbg_precision"] / p if p else float("inf")
        )
    return metrics, tables, figures, scored["test"]


def explain(
    qualifier: Qualifier,
    scored: pd.DataFrame,
    contact_roles: pd.DataFrame,
    activities: pd.DataFrame,
    top: int = 3,
) -> pd.DataFrame:
    """The latest snapshot's qualified groups with reasons, missing roles, whom to engage."""
    last = scored[scored["snapshot"] == scored["snapshot"].max()]
    flagged = last[last["qualified"]].sort_values("score", ascending=False)
    explained = pd.concat(
        [
            flagged[KEYS + ["score", "label"]].reset_index(drop=True),
            qualifier_outputs(qualifier, flagged, top=top).drop(columns=["score"]),
        ],
        axis=1,
    )
    members = members_at(contact_roles, activities, last["snapshot"].max())
    explained["engage_next"] = engage_next(flagged.reset_index(drop=True), members).to_numpy()
    return explained


def journeys(qualifier: Qualifier, groups: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every group's stage at every snapshot (added to ``groups``), the stage transitions
    and the funnel (groups per stage per snapshot)."""
    groups["score"] = qualifier.score(groups)
    groups["stage"] = journey_stages(groups, groups["score"] >= qualifier.threshold).to_numpy()
    funnel = groups.pivot_table(
        index="snapshot", columns="stage", values="account_id", aggfunc="size", fill_value=0
    )
    return stage_transitions(groups), funnel
