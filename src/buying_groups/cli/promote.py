"""bg-promote: register the best model and move the ``champion`` alias only if it is better.

config -> best qualifier run -> deployable ``buying-groups`` model (role model + qualifier)
-> candidate and current champion measured on the same held-out data (qualify.promotion)
-> register, describe, tag -> alias (aliases, not the deprecated stages).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from buying_groups import registry, tracking
from buying_groups.cli.common import console, load_or_exit, print_frame
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest
from buying_groups.data.real_titles import real_title_eval
from buying_groups.qualify.promotion import EXAMPLE, decide, deployable_metrics, ood_test
from buying_groups.qualify.promotion import role_model_cost as cost_of

Measure = Callable[[object], dict[str, float]]


def candidate_model(cfg: DictConfig, measure: Measure) -> tuple:
    """The best qualifier run packaged with its role model as a deployable model, logged in
    its own run and measured: (qualifier run, model info, loaded model, metrics, run id)."""
    dataset = dataset_manifest(Path(cfg.data_dir))["name"]  # as the training runs tag it
    qrun = registry.best_qualifier_run(
        cfg.tracking.experiment_name, dataset, cfg.metric, cfg.run_id
    )
    role_uri = qrun.data.tags["bg.role_model_uri"]
    console.print(f"candidate: qualifier run {qrun.info.run_id}, role model {role_uri}")
    tags = {
        "bg.kind": "deployable",
        "bg.qualifier_run_id": qrun.info.run_id,
        "bg.role_model_run_id": qrun.data.tags.get("bg.role_model_run_id", ""),
        "bg.role_model_uri": role_uri,
    }
    with tracking.run("buying-groups", tags) as active:
        catalog = OmegaConf.to_container(cfg.catalog, resolve=True)
        info = tracking.log_deployable(qrun, catalog, EXAMPLE)
        model = registry.load_pyfunc(info.model_uri)
        with console.status("evaluating the candidate on the held-out test period"):
            try:  # it must answer a request before anything else
                metrics = measure(model)
            except Exception as exc:
                raise SystemExit(
                    f"the candidate from qualifier run {qrun.info.run_id} cannot score a "
                    f"request ({exc}); retrain it (bg-train-qualifier) or pick another with "
                    "run_id=<id>"
                ) from exc
        tracking.log_metrics({f"heldout/{k}": v for k, v in metrics.items()})
    return qrun, info, model, metrics, active.info.run_id


def champion_model(cfg: DictConfig, measure: Measure) -> tuple[str | None, dict | None, object]:
    """The champion's version, its metrics on the same data (None when it cannot score a
    request, which promotes any candidate) and the loaded model."""
    version = registry.alias_version(cfg.model_name, cfg.alias)
    if version is None:
        return None, None, None
    with console.status(f"evaluating {cfg.model_name}@{cfg.alias} (v{version})"):
        try:
            model = registry.load_pyfunc(f"models:/{cfg.model_name}@{cfg.alias}")
            return version, measure(model), model
        except Exception as exc:  # a champion that cannot answer a request is replaced
            console.print(f"[yellow]![/] the current champion cannot score a request: {exc}")
            return version, None, None


def run(cfg: DictConfig) -> dict:
    catalog = catalog_from(cfg)
    tables, labels = load_or_exit(cfg, catalog)
    ood = ood_test(cfg, tables, labels, catalog)
    real = real_title_eval() if cfg.real_titles else None
    tracking.setup(cfg.tracking)

    def measure(model) -> dict[str, float]:  # noqa: ANN001
        return deployable_metrics(cfg, tables, catalog, model, ood, real)

    qrun, info, model, candidate, package_run_id = candidate_model(cfg, measure)
    current, champion, champion_pyfunc = champion_model(cfg, measure)
    cost = {"candidate": cost_of(model), "champion": champion and cost_of(champion_pyfunc)}
    role_tolerance = None if ood is None else cfg.role_tolerance  # needs OOD ground truth
    promote, decision = decide(
        candidate,
        champion,
        cost,
        float(cfg.tie_tolerance),
        bool(cfg.force),
        broken=current is not None and champion is None,
        role_tolerance=None if role_tolerance is None else float(role_tolerance),
        real_tolerance=None if real is None else float(cfg.real_tolerance),
    )
    compared = {"candidate": candidate, "champion": champion}  # a metric a row: fits a terminal
    table = pd.DataFrame({k: {**v, "role_model_cost": cost[k]} for k, v in compared.items() if v})
    table.index.name = "metric"
    role_uri = qrun.data.tags["bg.role_model_uri"]
    version = registry.register(
        info.model_uri,
        cfg.model_name,
        f"Qualifier run {qrun.info.run_id}, role model {role_uri}. Held-out test period of "
        f"{cfg.data_dir}: {decision}.\n\n{table.to_string(float_format=lambda v: f'{v:.4f}')}",
        {
            "decision": decision,
            "candidate_pr_auc": f"{candidate['pr_auc']:.4f}",
            "champion_pr_auc": f"{champion['pr_auc']:.4f}" if champion else "none",
            "champion_version": current or "none",
            "qualifier_run_id": qrun.info.run_id,
            "role_model_uri": role_uri,
        },
    )
    print_frame(table, "held-out comparison")  # the decision apart: a long title wraps
    console.print(f"decision: {decision}")
    moved = f"@{cfg.alias} stays on v{current}"
    if promote:
        registry.set_alias(cfg.model_name, cfg.alias, version)
        roles = registry.register_with_alias(role_uri, cfg.roles_model_name, cfg.alias)
        moved = f"@{cfg.alias} -> v{version}; {cfg.roles_model_name} v{roles} @{cfg.alias}"
    console.print(f"{cfg.model_name} v{version} registered (run {package_run_id}); {moved}")
    return {"version": version, "promoted": promote, "candidate": candidate, "champion": champion}


main = hydra_entry("promote", run)
