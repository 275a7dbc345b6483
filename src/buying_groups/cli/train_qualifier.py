"""bg-train-qualifier: predict qualified buying groups (QBG) and prove them against MQL and MQA.

config -> data -> roles (the role model's predictions) -> group state at monthly snapshots
-> labels -> fit + calibrate + threshold -> compare with lead and account scoring on the
test period -> explain -> log to MLflow (linked to the role model's run).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from buying_groups import registry, tracking
from buying_groups.baselines.rules import RulesBaseline
from buying_groups.cli.common import console, ensure_dataset, load_or_exit, print_frame
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest
from buying_groups.data.io import write_table
from buying_groups.qualify.groups import feature_columns
from buying_groups.qualify.model import qualifier_outputs
from buying_groups.qualify.nrr import expansion_view
from buying_groups.qualify.training import build_groups, evaluate, explain, fit, journeys
from buying_groups.taxonomy import Catalog


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
    model = registry.load_pyfunc(uri)
    run_id = run_id or model.metadata.run_id
    console.print(f"roles: {uri} (run {run_id})")
    return model.predict, {
        "bg.role_source": "model",
        "bg.role_model_uri": uri,
        "bg.role_model_run_id": str(run_id),
    }


def run(cfg: DictConfig) -> float:
    """The entry point: train, compare, log; returns the test PR-AUC (the sweep objective)."""
    return train_and_log(cfg)["test/qbg_pr_auc"]


def train_and_log(cfg: DictConfig) -> dict[str, float]:
    # -- config and data ------------------------------------------------------------------------
    catalog = catalog_from(cfg)
    tables, manifest = load_tables(cfg, catalog)
    tracking.setup(cfg.tracking)
    predict, role_tags = role_predictor(cfg, catalog)

    # -- buying groups at monthly snapshots ----------------------------------------------------
    with console.status("assembling buying groups at monthly snapshots"):
        contact_roles, groups = build_groups(cfg, tables, catalog, predict)
    usable = groups[~groups["open_opportunity"]]
    print_splits(usable, excluded=len(groups) - len(usable))
    features = feature_columns(usable)

    # -- model, evaluation against MQL and MQA, explanations, journeys ------------------------
    qualifier = fit(cfg, usable, features)
    metrics, comparison, figures, test = evaluate(qualifier, usable)
    top = cfg.explain.top_reasons
    explained = explain(qualifier, test, contact_roles, tables["activities"], top)
    transitions, funnel = journeys(qualifier, groups)
    pipeline, nrr_metrics, nrr_figures = expansion_view(test)  # the NRR view's expansion side
    metrics, figures = metrics | nrr_metrics, figures | nrr_figures

    # -- log ------------------------------------------------------------------------------------
    write_table(groups.drop(columns="last_outcome"), Path(cfg.output_dir) / "group_states.parquet")
    tags = {"bg.kind": "qualifier", "bg.model": cfg.qualifier.kind, **role_tags}
    with tracking.run("qualifier", tags) as active:
        tracking.log_context(cfg, manifest["name"], manifest["digest"])
        tracking.log_metrics(metrics)
        tracking.log_tables(
            {f"tables/comparison_{name}.json": t for name, t in comparison.items()}
            | {
                "tables/stage_transitions.json": transitions,
                "tables/funnel.json": funnel.reset_index(drop=False).set_index("snapshot"),
                "tables/qualified_groups.json": explained.astype({"snapshot": str}),
            }
            | ({"tables/nrr_expansion.json": pipeline} if len(pipeline) else {})
        )
        tracking.log_figures(figures)
        example = test[features].head(5).reset_index(drop=True)
        info = tracking.log_qualifier(
            qualifier,
            example,
            qualifier_outputs(qualifier, example),
            metadata={
                "threshold": qualifier.threshold,
                "threshold_rule": dict(cfg.qualifier.threshold),
                "features": features,
                "role_model_uri": role_tags.get("bg.role_model_uri", "rules"),
            },
        )

    # -- report --------------------------------------------------------------------------------
    print_comparison(comparison)
    print_qualified(explained.head(cfg.explain.show))
    console.print(
        f"threshold {qualifier.threshold:.3f} ({cfg.qualifier.threshold.mode}); model "
        f"{info.model_uri}; MLflow run {active.info.run_id} in {tracking.default_tracking_hint()}"
    )
    return metrics


def load_tables(cfg: DictConfig, catalog: Catalog) -> tuple[dict, dict]:
    """The tables of ``cfg.data_dir`` (generated first when missing) and its manifest."""
    if cfg.generate_if_missing:
        ensure_dataset(cfg)
    tables, _ = load_or_exit(cfg, catalog)
    return tables, dataset_manifest(Path(cfg.data_dir))


def print_splits(usable: pd.DataFrame, excluded: int) -> None:
    sizes = usable.groupby("split")["label"].agg(["size", "sum", "mean"])
    sizes.columns = ["groups", "positives", "base_rate"]
    print_frame(sizes, f"snapshots (excluded {excluded:,} groups with an open opportunity)")


def print_comparison(comparison: dict[str, pd.DataFrame]) -> None:
    """The test period's comparison, overall and by segment."""
    print_frame(comparison["test"], "test period: QBG vs MQL vs MQA at equal flagged volume")
    if "test_segments" in comparison:
        segments = comparison["test_segments"][["flagged", "precision", "pr_auc", "base_rate"]]
        segments.index = [f"{segment} / {method}" for segment, method in segments.index]
        print_frame(segments, "by segment: new logos, expansion (a customer's other products)")


def print_qualified(explained: pd.DataFrame) -> None:
    """One line per qualified group: score, reasons, missing roles, whom to engage next."""
    for _, row in explained.iterrows():
        missing = ", ".join(row["missing_roles"])
        engage = ", ".join(f"{e['contact_id']} ({e['role']})" for e in row["engage_next"][:3])
        console.print(
            f"[bold]{row['account_id']} x {row['product']}[/] score {row['score']:.2f}: "
            + "; ".join(row["reasons_for"])
            + (f"  | missing: {missing}" if missing else "")
            + (f"  | engage next: {engage}" if engage else "")
        )


main = hydra_entry("train_qualifier", run)
