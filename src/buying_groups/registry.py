"""The MLflow model registry and model loading: finding runs and models, registering a
version, describing and tagging it, moving an alias. With ``tracking`` (runs, metrics,
artifacts) the only modules outside the pyfuncs and the server that talk to MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import mlflow

from buying_groups import tracking

if TYPE_CHECKING:
    from buying_groups.qualify.customers import RenewalModel


def load_pyfunc(uri: str, model_config: Mapping | None = None) -> mlflow.pyfunc.PyFuncModel:
    """A logged or registered model as MLflow loads it (its pyfunc)."""
    return mlflow.pyfunc.load_model(uri, model_config=dict(model_config or {}) or None)


def load_role_model_pyfunc(uri: str) -> tuple[object, object]:
    """The PyTorch role model and tokenizer inside a logged role-model pyfunc (fp32)."""
    try:
        loaded = load_pyfunc(uri, {"variant": "fp32"})
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise SystemExit(f"cannot load the role model {uri}: {exc}") from exc
    wrapped = loaded.unwrap_python_model()
    return wrapped.model, wrapped.tokenizer


def download_model(uri: str) -> str:
    """A local copy of a logged or registered model (MLflow's own cache for a store's
    artifacts); ends the command with a message a user can act on when it cannot."""
    try:
        return mlflow.artifacts.download_artifacts(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise SystemExit(
            f"cannot load {uri} from {mlflow.get_tracking_uri()}: {exc.message}\n"
            "Train and promote a model first (bg-pipeline, or bg-train-roles, "
            "bg-train-qualifier, bg-promote), or pass model_uri=<uri>"
        ) from exc


def last_run_id() -> str:
    """The id of the run this process started last."""
    return mlflow.last_active_run().info.run_id


def best_qualifier_run(
    experiment_name: str, dataset_name: str, metric: str, run_id: str | None = None
) -> mlflow.entities.Run:
    """The finished qualifier run on ``dataset_name`` with the best ``metric`` whose groups
    came from a logged role model (a deployable model needs one), or ``run_id``."""
    if run_id:
        return mlflow.get_run(run_id)
    runs = mlflow.search_runs(
        experiment_names=[experiment_name],
        filter_string="tags.`bg.kind` = 'qualifier' and tags.`bg.role_source` = 'model' "
        f"and tags.`dataset.name` = '{dataset_name}' and attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric}` DESC", "attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise SystemExit(
            f"no finished qualifier run on dataset {dataset_name!r} built on a role model in "
            f"experiment {experiment_name!r} at {mlflow.get_tracking_uri()}: run "
            "bg-train-roles, then bg-train-qualifier"
        )
    return runs[0]


def alias_version(name: str, alias: str) -> str | None:
    """The version ``name@alias`` points to, None when there is none."""
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def register(model_uri: str, name: str, description: str, tags: Mapping[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with a description and tags;
    returns the version."""
    client = mlflow.MlflowClient()
    version = str(mlflow.register_model(model_uri, name).version)
    client.update_model_version(name, version, description=description)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))
    return version


def set_alias(name: str, alias: str, version: str) -> None:
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)


def register_with_alias(model_uri: str, name: str, alias: str) -> str:
    """Register ``model_uri`` as a version of ``name`` and point ``alias`` at it."""
    version = str(mlflow.register_model(model_uri, name).version)
    set_alias(name, alias, version)
    return version


def register_if_better(
    model_uri: str, name: str, alias: str, run_id: str, metric: str
) -> tuple[str, bool]:
    """Register ``model_uri`` (logged by run ``run_id``) as a version of ``name``, and point
    ``alias`` at it unless the version holding the alias was judged on the same dataset
    (``dataset.digest`` tag) with a better ``metric``: (version, whether the alias moved).
    A holder judged on other data cannot be compared; the newer model takes the alias."""
    client = mlflow.MlflowClient()
    version = str(mlflow.register_model(model_uri, name).version)
    holder = alias_version(name, alias)
    moved = True
    if holder is not None:
        mine = client.get_run(run_id).data
        theirs = client.get_run(client.get_model_version(name, holder).run_id).data
        if theirs.tags.get("dataset.digest") == mine.tags.get("dataset.digest"):
            moved = mine.metrics.get(metric, float("-inf")) >= theirs.metrics.get(
                metric, float("-inf")
            )
    if moved:
        set_alias(name, alias, version)
    return version, moved


def load_deployable(model_uri: str, variant: str | None = None) -> tuple[object, str, str]:
    """The deployable model's parts (role model, qualifier, catalog), a description of it and
    the local directory it was downloaded to. ``variant``: the role model's inference
    variant (None: the one recorded in the model)."""
    from buying_groups.models.runtime import VariantUnavailable

    local_path = download_model(model_uri)
    try:
        model = tracking.load_model(local_path, {"variant": variant} if variant else None)
    except VariantUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    except mlflow.exceptions.MlflowException as exc:
        raise SystemExit(f"cannot load {model_uri}: {exc.message}") from exc
    version = tracking.model_identity(model_uri)["version"]
    where = f"{model_uri} (version {version})" if version else model_uri
    wrapped = model.unwrap_python_model()
    return wrapped, f"{where}, role model as {wrapped.role_variant}", local_path


def load_renewal_model(uri: str) -> RenewalModel:
    """The fitted renewal-risk model behind ``uri`` with the lead time it was trained with;
    ``LookupError`` saying why when there is none to load (not registered yet, no such
    version)."""
    from buying_groups.qualify.customers import RenewalModel

    try:
        loaded = load_pyfunc(uri)
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        message = getattr(exc, "message", str(exc)).splitlines()[0]
        raise LookupError(f"no renewal-risk model at {uri} ({message})") from exc
    version = tracking.model_identity(uri)["version"]
    lead_days = int((loaded.metadata.metadata or {}).get("lead_days", 30))
    where = f"{uri} (version {version})" if version else uri
    return RenewalModel(loaded.unwrap_python_model().model, lead_days, where)
