"""bg-promote: register the best model and move the ``champion`` alias only if it is better.

config -> best qualifier run (mlflow.search_runs) -> deployable ``buying-groups`` model
(role model + qualifier) -> candidate and current champion evaluated on the same held-out
data -> register, describe, tag -> alias (aliases, not the deprecated stages).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import average_precision_score

from buying_groups import tracking
from buying_groups.cli.common import (
    console,
    examples_from,
    exit_on_data_error,
    label_source,
    print_frame,
)
from buying_groups.cli.train_qualifier import build_groups
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest, load_dataset
from buying_groups.data.real_titles import real_title_eval
from buying_groups.data.validate import DataValidationError
from buying_groups.evaluate import HEADS, evaluate_predictions
from buying_groups.models.evaluation import real_title_metrics
from buying_groups.qualify.compare import top_k

REAL_HEADS = ("function", "seniority")

EXAMPLE = pd.DataFrame(
    {
        "account_id": ["A1", "A1"],
        "contact_id": ["C1", "C2"],
        "job_title": ["VP Information Security", "Procurement Manager"],
        "activities": [
            [
                {
                    "timestamp": "2026-05-01T10:00:00",
                    "channel": "sales",
                    "action": "requested_demo",
                    "asset": "Demo request",
                    "topic": "security_platform",
                }
            ],
            [
                {
                    "timestamp": "2026-05-03T09:30:00",
                    "channel": "web",
                    "action": "visited",
                    "asset": "/pricing",
                    "topic": "general",
                }
            ],
        ],
    }
)


def best_qualifier_run(cfg: DictConfig) -> mlflow.entities.Run:
    """The finished qualifier run on this dataset with the best ``cfg.metric`` whose groups
    came from a logged role model (a deployable model needs one), or ``cfg.run_id``."""
    if cfg.run_id:
        return mlflow.get_run(cfg.run_id)
    name = dataset_manifest(Path(cfg.data_dir))["name"]  # as the training runs tag it
    runs = mlflow.search_runs(
        experiment_names=[cfg.tracking.experiment_name],
        filter_string="tags.`bg.kind` = 'qualifier' and tags.`bg.role_source` = 'model' "
        f"and tags.`dataset.name` = '{name}' and attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{cfg.metric}` DESC", "attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise SystemExit(
            f"no finished qualifier run on dataset {name!r} built on a role model "
            f"in experiment "
            f"{cfg.tracking.experiment_name!r} at {mlflow.get_tracking_uri()}: run "
            "bg-train-roles, then bg-train-qualifier"
        )
    return runs[0]


def held_out_metrics(
    cfg: DictConfig,
    tables: dict,
    catalog,  # noqa: ANN001
    model: mlflow.pyfunc.PyFuncModel,
) -> dict[str, float]:
    """A deployable model's PR-AUC and precision at the capacity volume on the test period
    of ``cfg.data_dir``, its own role model building the groups."""
    wrapped = model.unwrap_python_model()
    _, groups = build_groups(cfg, tables, catalog, wrapped.predict_roles, test_only=True)
    test = groups[(groups["split"] == "test") & ~groups["open_opportunity"]]
    scores = wrapped.qualifier.score(test)
    labels = test["label"].to_numpy()
    k = int(cfg.qualifier.threshold.capacity_per_snapshot * test["snapshot"].nunique())
    return {
        "pr_auc": float(average_precision_score(labels, scores)),
        "precision_at_capacity": float(labels[top_k(scores, k)].mean()),
        "flagged": float(k),
        "groups": float(len(test)),
        "positives": float(labels.sum()),
    }


def ood_test(
    cfg: DictConfig,
    tables: dict,
    labels: dict | None,
    catalog,  # noqa: ANN001
) -> pd.DataFrame | None:
    """The labelled contacts of the OOD-vocabulary test split (the role models' own test, as
    ``bg-train-roles`` splits it), or None for data without ground truth."""
    if labels is None or label_source(cfg) == "crm":  # crm: measures only, never decides
        return None
    examples = examples_from(cfg, tables, labels, catalog)
    ood = examples[examples["split"] == "test_ood"].reset_index(drop=True)
    return ood if len(ood) else None


def role_ood_metrics(
    ood: pd.DataFrame,
    catalog,  # noqa: ANN001
    model: mlflow.pyfunc.PyFuncModel,
) -> dict[str, float]:
    """Macro-F1 of each head of a deployable model's role model (as it runs: its recorded
    inference variant) on the OOD-vocabulary test contacts ``ood``."""
    pred = model.unwrap_python_model().roles.predict(ood[["job_title", "activity_text"]])
    metrics = evaluate_predictions(ood, pred, catalog.names, groups=["test_ood"])
    return {f"ood_{h}_macro_f1": metrics[f"test_ood/{h}_macro_f1"] for h in HEADS}


def real_title_scores(real: pd.DataFrame, model: mlflow.pyfunc.PyFuncModel) -> dict[str, float]:
    """Function and seniority macro-F1 of a deployable model's role model on the bundled
    real-title set (``data.real_titles``): the gate no candidate may fall below."""
    pred = model.unwrap_python_model().roles.predict(real[["job_title", "activity_text"]])
    metrics = real_title_metrics(real, pred)
    return {f"real_{h}_macro_f1": metrics[f"real/{h}_macro_f1"] for h in REAL_HEADS}


def role_model_cost(model: mlflow.pyfunc.PyFuncModel) -> int:
    """Encoder layers x input tokens of a deployable model's role model: what encoding one
    contact costs, up to a constant (the tie-breaker between equally good models)."""
    config = model.unwrap_python_model().roles.unwrap_python_model().model.config
    return int(config.encoder["num_hidden_layers"]) * int(config.max_length)


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    cost: dict[str, int | None],
    tie_tolerance: float,
    force: bool = False,
    broken: bool = False,
    role_tolerance: float | None = None,
    real_tolerance: float | None = None,
) -> tuple[bool, str]:
    """Whether the candidate replaces the champion, and why. It does when the champion is
    missing or cannot score, when its held-out PR-AUC is higher, or when its role model is
    cheaper and either its PR-AUC is within ``tie_tolerance`` of the champion's (a held-out
    test period cannot tell such models apart) or, with ``role_tolerance``, every role head's
    OOD macro-F1 is within it of the champion's and its precision at the capacity volume
    (the groups sales is sent) within ``tie_tolerance``: the inference rule, which trades no
    role accuracy and no flagged-group precision for speed. Before all of that, with
    ``real_tolerance``, a candidate whose real-title macro-F1 of function or seniority is
    more than that below the champion's is refused (unless ``force``): synthetic gains do not
    buy worse personas on real titles."""
    if broken:
        return True, "promoted (the champion cannot score a request)"
    if champion is None:
        return True, "promoted (no champion yet)"
    if real_tolerance is not None and not force:
        keys = [f"real_{h}_macro_f1" for h in REAL_HEADS]
        worse = [k for k in keys if k in champion and candidate[k] < champion[k] - real_tolerance]
        if worse:
            gaps = ", ".join(f"{k} {candidate[k]:.4f} vs {champion[k]:.4f}" for k in worse)
            return False, f"not promoted (worse on real job titles: {gaps})"
    gain = candidate["pr_auc"] - champion["pr_auc"]
    if gain > 0:
        return True, "promoted (better PR-AUC)"
    cheaper = cost["champion"] is not None and cost["candidate"] < cost["champion"]
    costs = f"{cost['candidate']} vs {cost['champion']} layers x tokens"
    if cheaper and gain >= -tie_tolerance:
        return True, (
            f"promoted (PR-AUC within {tie_tolerance} of the champion's, cheaper role model: "
            f"{costs})"
        )
    if cheaper and role_tolerance is not None:
        heads = [f"ood_{h}_macro_f1" for h in HEADS]
        as_accurate = all(candidate[h] >= champion[h] - role_tolerance for h in heads)
        as_precise = (
            candidate["precision_at_capacity"] >= champion["precision_at_capacity"] - tie_tolerance
        )
        if as_accurate and as_precise:
            return True, (
                f"promoted (cheaper role model: {costs}; every role head's OOD macro-F1 within "
                f"{role_tolerance} of the champion's and precision at the capacity volume within "
                f"{tie_tolerance}; PR-AUC {candidate['pr_auc']:.4f} vs {champion['pr_auc']:.4f})"
            )
    if force:
        return True, "promoted (forced)"
    return False, "not promoted (champion is as good or better)"


def run(cfg: DictConfig) -> dict:
    # -- config and data ------------------------------------------------------------------------
    catalog = catalog_from(cfg)
    try:
        tables, labels = load_dataset(Path(cfg.data_dir), catalog)
    except DataValidationError as exc:
        exit_on_data_error(exc)
    ood = ood_test(cfg, tables, labels, catalog)
    real = real_title_eval() if cfg.real_titles else None

    def evaluate(model: mlflow.pyfunc.PyFuncModel) -> dict[str, float]:
        """Held-out qualification metrics, the role heads' OOD macro-F1 where labelled and
        the persona heads' macro-F1 on real titles."""
        metrics = held_out_metrics(cfg, tables, catalog, model)
        if ood is not None:
            metrics |= role_ood_metrics(ood, catalog, model)
        return metrics if real is None else metrics | real_title_scores(real, model)

    tracking.setup(cfg.tracking)
    client = mlflow.MlflowClient()

    # -- the candidate: best qualifier run + the role model it was built on -------------------
    qrun = best_qualifier_run(cfg)
    role_uri = qrun.data.tags["bg.role_model_uri"]
    role_run_id = qrun.data.tags.get("bg.role_model_run_id", "")
    console.print(
        f"candidate: qualifier run {qrun.info.run_id} ({cfg.metric} = "
        f"{qrun.data.metrics.get(cfg.metric, float('nan')):.3f}), role model {role_uri}"
    )
    tags = {
        "bg.kind": "deployable",
        "bg.qualifier_run_id": qrun.info.run_id,
        "bg.role_model_run_id": role_run_id,
        "bg.role_model_uri": role_uri,
    }
    with tracking.run("buying-groups", tags) as active:
        qualifier_uri = tracking.logged_model_uri(qrun)
        if qualifier_uri is None:
            raise SystemExit(f"qualifier run {qrun.info.run_id} logged no model")
        info = tracking.log_buying_groups_pyfunc(
            role_uri,
            qualifier_uri,
            OmegaConf.to_container(cfg.catalog, resolve=True),
            EXAMPLE,
            metadata={"qualifier_run_id": qrun.info.run_id, "role_model_run_id": role_run_id},
        )
        model = mlflow.pyfunc.load_model(info.model_uri)
        try:  # it must answer a request before anything else
            model.predict(EXAMPLE)
        except Exception as exc:
            raise SystemExit(
                f"the candidate from qualifier run {qrun.info.run_id} cannot score a request "
                f"({exc}); retrain it with this version (bg-train-qualifier) or pick another "
                "with run_id=<id>"
            ) from exc
        with console.status("evaluating the candidate on the held-out test period"):
            candidate = evaluate(model)
        tracking.log_metrics({f"heldout/{k}": v for k, v in candidate.items()})
        package_run_id = active.info.run_id

    # -- the current champion, on the same data ----------------------------------------------
    try:
        current = client.get_model_version_by_alias(cfg.model_name, cfg.alias)
    except mlflow.exceptions.MlflowException:
        current = None
    champion, broken = None, False
    cost = {"candidate": role_model_cost(model), "champion": None}
    if current is not None:
        champion_uri = f"models:/{cfg.model_name}@{cfg.alias}"
        with console.status(f"evaluating {cfg.model_name}@{cfg.alias} (v{current.version})"):
            try:
                champion_model = mlflow.pyfunc.load_model(champion_uri)
                champion_model.predict(EXAMPLE)
                champion = evaluate(champion_model)
                cost["champion"] = role_model_cost(champion_model)
            except Exception as exc:  # a champion that cannot answer a request is replaced
                console.print(f"[yellow]![/] the current champion cannot score a request: {exc}")
                broken = True
    # The role rule needs the OOD metrics: off for data without ground truth.
    off = ood is None or cfg.role_tolerance is None
    role_tolerance = None if off else float(cfg.role_tolerance)
    real_tolerance = None if real is None else float(cfg.real_tolerance)
    promote, decision = decide(
        candidate,
        champion,
        cost,
        float(cfg.tie_tolerance),
        bool(cfg.force),
        broken,
        role_tolerance,
        real_tolerance,
    )

    # -- register, describe, alias -------------------------------------------------------------
    table = pd.DataFrame({"candidate": candidate, "champion": champion or {}}).T
    table["role model cost"] = pd.Series(cost)
    table.index.name = "model"
    version = mlflow.register_model(info.model_uri, cfg.model_name)
    description = (
        f"Qualifier run {qrun.info.run_id}, role model {role_uri}. Held-out test period of "
        f"{cfg.data_dir}: {decision}.\n\n{table.to_string(float_format=lambda v: f'{v:.4f}')}"
    )
    client.update_model_version(cfg.model_name, version.version, description=description)
    for k, v in {
        "decision": decision,
        "candidate_pr_auc": f"{candidate['pr_auc']:.4f}",
        "champion_pr_auc": f"{champion['pr_auc']:.4f}" if champion else "none",
        "champion_version": current.version if current else "none",
        "qualifier_run_id": qrun.info.run_id,
        "role_model_uri": role_uri,
    }.items():
        client.set_model_version_tag(cfg.model_name, version.version, k, v)
    roles_version = None
    if promote:
        client.set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
        roles_version = mlflow.register_model(role_uri, cfg.roles_model_name)
        client.set_registered_model_alias(cfg.roles_model_name, cfg.alias, roles_version.version)

    # -- report --------------------------------------------------------------------------------
    print_frame(table, f"held-out comparison ({decision})")
    console.print(
        f"{cfg.model_name} v{version.version} registered (run {package_run_id})"
        + (
            f"; @{cfg.alias} -> v{version.version}; {cfg.roles_model_name} "
            f"v{roles_version.version} @{cfg.alias}"
            if promote
            else f"; @{cfg.alias} stays on v{current.version}"
        )
    )
    return {
        "version": version.version,
        "promoted": bool(promote),
        "candidate": candidate,
        "champion": champion,
    }


main = hydra_entry("promote", run)
