"""bg-train-retention: which renewals are at risk, and why.

config -> data (with its subscriptions table) -> roles (the role model's predictions) ->
each renewal's group state a month before its term ends -> month-by-month backtest against
two account-level baselines -> the model on every known renewal -> open renewals ranked with
reasons -> log to MLflow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from buying_groups import registry, tracking
from buying_groups.cli.common import console, print_frame
from buying_groups.cli.train_qualifier import load_tables, role_predictor
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.io import write_table
from buying_groups.qualify.groups import predict_contact_roles
from buying_groups.qualify.nrr import nrr_figure, renewal_revenue
from buying_groups.qualify.retention import train_retention


def run(cfg: DictConfig) -> float:
    """The entry point; returns the backtest PR-AUC of the renewal-risk model."""
    try:
        return train_and_log(cfg)["backtest/renewal_risk_pr_auc"]
    except ValueError as exc:  # no subscriptions, too few renewals: say so, no traceback
        raise SystemExit(f"bg-train-retention: {exc}") from None


def train_and_log(cfg: DictConfig) -> dict[str, float]:
    """Train, backtest, log; the backtest metrics."""
    catalog = catalog_from(cfg)
    tables, manifest = load_tables(cfg, catalog)
    tracking.setup(cfg.tracking)
    predict, role_tags = role_predictor(cfg, catalog)
    ts = tables["activities"]["timestamp"]
    settings = OmegaConf.to_container(cfg.retention, resolve=True)
    with console.status("judging every renewal from its group's state"):
        roles = predict_contact_roles(predict, tables["contacts"], catalog)
        result = train_retention(tables, roles, catalog, ts.min(), ts.max(), settings)
    comparison, scored = result.comparison, result.backtest
    metrics = {
        f"backtest/{m.replace(' ', '_')}_{k}": float(v)
        for m, row in comparison.iterrows()
        for k, v in row.items()
    } | {"backtest/renewals": len(scored), "backtest/at_risk": float(scored["label"].sum())}
    revenue = renewal_revenue(scored, tables["subscriptions"])  # the NRR view's renewal side
    metrics |= {
        f"backtest/{k}": float(revenue[k].sum())
        for k in ("up_for_renewal", "revenue_at_risk", "revenue_lost", "revenue_gained")
    }

    out_dir = Path(cfg.output_dir)
    write_table(result.at_risk.astype({"reasons": str}), out_dir / "open_renewals.parquet")
    with tracking.run("retention", {"bg.kind": "retention", **role_tags}) as active:
        tracking.log_context(cfg, manifest["name"], manifest["digest"])
        tracking.log_metrics(metrics)
        tracking.log_tables(
            {
                "tables/comparison_backtest.json": comparison,
                "tables/nrr_renewals.json": revenue,
                "tables/open_renewals.json": result.at_risk.astype(
                    {"term_end": str, "decision_date": str}
                ),
            }
        )
        tracking.log_figures({"plots/nrr_renewals.png": nrr_figure(revenue, None)})
        info = tracking.log_renewal_model(
            result.model,
            scored[result.features].head(5).reset_index(drop=True),
            metadata={"features": result.features, **settings},
        )

    title = (
        f"renewal risk, backtest of the last {cfg.retention.backtest_months} months "
        f"({len(scored)} renewals, {int(scored['label'].sum())} downgraded or churned): "
        f"the top {cfg.retention.capacity_share:.0%} of each month's renewals"
    )
    print_frame(comparison, title)
    print_nrr(revenue)
    for _, row in result.at_risk.head(cfg.show).iterrows():
        console.print(
            f"[bold]{row['account_id']} x {row['product']}[/] renews {row['term_end']:%Y-%m-%d}, "
            f"risk {row['risk']:.2f}: " + "; ".join(row["reasons"])
        )
    console.print(f"model {info.model_uri}; MLflow run {active.info.run_id}")
    if cfg.registry.name:
        register(cfg.registry, info.model_uri, active.info.run_id)
    return metrics


def register(reg: DictConfig, model_uri: str, run_id: str) -> None:
    """A registry version of the model; the alias moves only to one at least as good on the
    same data."""
    metric = "backtest/renewal_risk_pr_auc"
    version, moved = registry.register_if_better(model_uri, reg.name, reg.alias, run_id, metric)
    state = f"is @{reg.alias}" if moved else f"registered; @{reg.alias} kept (better {metric})"
    console.print(f"registry: {reg.name} v{version} {state}")


def print_nrr(revenue: pd.DataFrame) -> None:
    """The NRR view's renewal side, money in whole units."""
    money = ["up_for_renewal", "revenue_at_risk", "revenue_lost", "revenue_gained"]
    view = revenue.drop(columns="valued").astype({"at_risk_actual": int})
    view[money] = view[money].round().astype("Int64")
    print_frame(view, "NRR view, renewals by month: predicted a month before vs what happened", 2)


main = hydra_entry("train_retention", run)
