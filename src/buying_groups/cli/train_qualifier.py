"""bg-train-qualifier: predict qualified buying groups (QBG) and prove them against MQL and MQA.

config -> data -> roles (the role model's predictions) -> group state at monthly snapshots
-> labels -> fit + calibrate + threshold -> compare with lead and account scoring on the
test period -> explain -> log to MLflow (linked to the role model's run).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from omegaconf import DictConfig
from sklearn.metrics import brier_score_loss

from buying_groups import tracking
from buying_groups.baselines.rules import RulesBaseline
from buying_groups.cli.baseline import ensure_dataset
from buying_groups.cli.common import console, exit_on_data_error, print_frame
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest, load_dataset
from buying_groups.data.io import write_table
from buying_groups.data.splits import account_holdout, snapshot_dates, time_split
from buying_groups.data.validate import DataValidationError
from buying_groups.plots import lift_figure, pr_curve_figure
from buying_groups.qualify.compare import (
    comparison_table,
    journey_stages,
    stage_transitions,
)
from buying_groups.qualify.groups import (
    KEYS,
    add_labels,
    feature_columns,
    group_states,
    members_at,
    predict_contact_roles,
)
from buying_groups.qualify.model import Qualifier, choose_threshold, engage_next, fit_qualifier
from buying_groups.qualify.scoring_baselines import lead_scores
from buying_groups.serving.qualifier_pyfunc import qualifier_outputs
from buying_groups.taxonomy import Catalog

METHODS = {"QBG": "score", "MQL": "mql_score", "MQA": "mqa_score"}
FLAGS = {"QBG": "qualified", "MQL": "mql_flag", "MQA": "mqa_flag"}


def role_predictor(cfg: DictConfig, catalog: Catalog) -> tuple[object, dict[str, str]]:
    """The function that predicts roles, and tags saying where it came from."""
    if cfg.roles.source == "rules":
        return RulesBaseline(catalog).predict, {"bg.role_source": "rules"}
    if cfg.roles.source != "model":
        raise SystemExit(f"roles.source must be 'model' or 'rules', got {cfg.roles.source!r}")
    run_id, uri = (None, cfg.roles.model_uri)
    if uri is None:
        name = dataset_manifest(Path(cfg.data_dir))["name"]  # as bg-train-roles tags it
        run_id, uri = tracking.find_role_model(cfg.roles.experiment_name, name)
    model = mlflow.pyfunc.load_model(uri)
    run_id = run_id or model.metadata.run_id
    console.print(f"roles: {uri} (run {run_id})")
    return model.predict, {
        "bg.role_source": "model",
        "bg.role_model_uri": uri,
        "bg.role_model_run_id": str(run_id),
    }


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


def train(cfg: DictConfig, usable: pd.DataFrame, features: list[str]) -> Qualifier:
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


def run(cfg: DictConfig) -> float:
    """The entry point: train, compare, log; returns the test PR-AUC (the sweep objective)."""
    return train_and_log(cfg)["test/qbg_pr_auc"]


def train_and_log(cfg: DictConfig) -> dict[str, float]:
    # -- config and data ------------------------------------------------------------------------
    catalog = catalog_from(cfg)
    if cfg.generate_if_missing:
        ensure_dataset(cfg)
    try:
        tables, _ = load_dataset(Path(cfg.data_dir), catalog)
    except DataValidationError as exc:
        exit_on_data_error(exc)
    manifest = dataset_manifest(Path(cfg.data_dir))
    tracking.setup(cfg.tracking)
    predict, role_tags = role_predictor(cfg, catalog)

    # -- buying groups at monthly snapshots ----------------------------------------------------
    with console.status("assembling buying groups at monthly snapshots"):
        contact_roles, groups = build_groups(cfg, tables, catalog, predict)
    excluded = int(groups["open_opportunity"].sum())
    usable = groups[~groups["open_opportunity"]]
    sizes = usable.groupby("split")["label"].agg(["size", "sum", "mean"])
    sizes.columns = ["groups", "positives", "base_rate"]
    print_frame(sizes, f"snapshots (excluded {excluded:,} groups with an open opportunity)")
    features = feature_columns(usable)

    # -- model, evaluation against MQL and MQA, explanations, journeys ------------------------
    qualifier = train(cfg, usable, features)
    metrics, tables_out, figures, test = evaluate(qualifier, usable)
    explained = explain(
        qualifier, test, contact_roles, tables["activities"], cfg.explain.top_reasons
    )
    transitions, funnel = journeys(qualifier, groups)
    q = cfg.qualifier

    # -- log ------------------------------------------------------------------------------------
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(groups.drop(columns=["last_outcome"]), out_dir / "group_states.parquet")
    tags = {"bg.kind": "qualifier", "bg.model": q.kind, **role_tags}
    with tracking.run("qualifier", tags) as active:
        tracking.log_context(cfg, manifest["name"], manifest["digest"])
        tracking.log_metrics(metrics)
        for name, table in tables_out.items():
            tracking.log_table(table, f"tables/comparison_{name}.json")
        tracking.log_table(transitions, "tables/stage_transitions.json")
        tracking.log_table(
            funnel.reset_index(drop=False).set_index("snapshot"), "tables/funnel.json"
        )
        tracking.log_table(explained.astype({"snapshot": str}), "tables/qualified_groups.json")
        tracking.log_figures(figures)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "qualifier.joblib"
            joblib.dump(qualifier, path)
            example = test[features].head(5).reset_index(drop=True)
            info = tracking.log_qualifier_pyfunc(
                path,
                example,
                qualifier_outputs(qualifier, example),
                metadata={
                    "threshold": qualifier.threshold,
                    "threshold_rule": dict(q.threshold),
                    "features": features,
                    "role_model_uri": role_tags.get("bg.role_model_uri", "rules"),
                },
            )
        run_id = active.info.run_id

    # -- report --------------------------------------------------------------------------------
    print_frame(tables_out["test"], "test period: QBG vs MQL vs MQA at equal flagged volume")
    for _, row in explained.head(cfg.explain.show).iterrows():
        console.print(
            f"[bold]{row['account_id']} x {row['product']}[/] score {row['score']:.2f}: "
            + "; ".join(row["reasons_for"])
            + (f"  | missing: {', '.join(row['missing_roles'])}" if row["missing_roles"] else "")
            + (
                "  | engage next: "
                + ", ".join(f"{e['contact_id']} ({e['role']})" for e in row["engage_next"][:3])
                if row["engage_next"]
                else ""
            )
        )
    console.print(
        f"threshold {qualifier.threshold:.3f} ({q.threshold.mode}); model {info.model_uri}; "
        f"MLflow run {run_id} in {tracking.default_tracking_hint()}"
    )
    return metrics


main = hydra_entry("train_qualifier", run)
