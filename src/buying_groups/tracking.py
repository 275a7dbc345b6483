"""MLflow at the edge: the only module (with the entry points) that talks to MLflow.

Core code returns models, frames and numbers; this module turns them into runs: params,
the resolved config, dataset name and digest, the git commit, metrics, tables, plots and
models. Sweeps (Hydra multirun) get one parent run with every trial nested under it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig, OmegaConf

MAX_PARAM_LENGTH = 500


def setup(tracking_cfg: Mapping) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id.

    ``uri: null`` keeps ``MLFLOW_TRACKING_URI`` or MLflow's default (``sqlite:///mlflow.db``).
    """
    if not sys.stderr.isatty():  # a log file would get one line per artifact of every download
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if tracking_cfg.get("uri"):
        mlflow.set_tracking_uri(str(tracking_cfg["uri"]))
    experiment = mlflow.set_experiment(str(tracking_cfg["experiment_name"]))
    return experiment.experiment_id


def flatten(cfg: DictConfig | Mapping, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"trainer.learning_rate": "0.0001", ...}`` (values cut to fit)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:MAX_PARAM_LENGTH]
    return out


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has changes), or None outside git."""
    try:
        root = Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return None


@contextmanager
def run(
    name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
) -> Iterator[mlflow.ActiveRun]:
    """A run (nested under ``parent_run_id`` when given) tagged with the git commit."""
    all_tags = {"mlflow.source.git.commit": git_commit() or "unknown", **(tags or {})}
    with mlflow.start_run(
        run_name=name, tags=all_tags, parent_run_id=parent_run_id, nested=parent_run_id is not None
    ) as active:
        yield active


def log_context(
    cfg: DictConfig,
    dataset_name: str,
    dataset_digest: str,
    dataset_frame: pd.DataFrame | None = None,
) -> None:
    """Params (flattened config), the resolved config as YAML, and the dataset's identity."""
    params = flatten(cfg)
    # output_dir is a runtime path (in the resolved config); the Trainer logs its own.
    params = {
        k: v
        for k, v in params.items()
        if not k.startswith(("catalog.products", "labels.roles", "labels.persona."))
        and k != "output_dir"
    }  # value maps (CRM picklists) are in the resolved config below, not params
    mlflow.log_params(params)
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved_config.yaml")
    mlflow.set_tags({"dataset.name": dataset_name, "dataset.digest": dataset_digest})
    if dataset_frame is not None:
        ds = mlflow.data.from_pandas(dataset_frame, name=dataset_name, digest=dataset_digest[:16])
        mlflow.log_input(ds, context="training")


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    clean = {k: float(v) for k, v in metrics.items() if v == v}  # drop NaN
    mlflow.log_metrics(clean, step=step)


def set_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_table(frame.reset_index(), artifact_file)


def log_variants(variants: pd.DataFrame) -> None:
    """The inference variants' measurements (``evaluation.choose_variant``): a table and
    ``variant/<name>/<measure>`` metrics."""
    log_table(variants, "reports/inference_variants.json")
    log_metrics(
        {
            f"variant/{name}/{k}": float(v)
            for name, row in variants.drop(columns="chosen").iterrows()
            for k, v in row.items()
        }
    )


def log_tables(tables: Mapping[str, pd.DataFrame]) -> None:
    """Several tables, by artifact file."""
    for artifact_file, frame in tables.items():
        log_table(frame, artifact_file)


def log_json(obj: object, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, default=str), artifact_file)


def log_figures(figures: Mapping[str, object]) -> None:
    import matplotlib.pyplot as plt

    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        plt.close(fig)


def sweep_parent(sweep_dir: str, experiment_id: str, name: str) -> str:
    """The parent run of a Hydra multirun (created by its first trial)."""
    found = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.`bg.sweep_dir` = '{sweep_dir}' and tags.`bg.kind` = 'sweep'",
        output_format="list",
    )
    if found:
        return found[0].info.run_id
    with mlflow.start_run(
        run_name=name,
        tags={
            "bg.sweep_dir": sweep_dir,
            "bg.kind": "sweep",
            "mlflow.source.git.commit": git_commit() or "",
        },
    ) as parent:
        return parent.info.run_id


def update_sweep_parent(parent_run_id: str, metric: str, value: float, trial: int) -> None:
    """Record a trial's result on the parent, and the best so far."""
    client = mlflow.MlflowClient()
    history = client.get_metric_history(parent_run_id, f"trial_{metric}")
    best = max([value, *[m.value for m in history]])
    client.log_metric(parent_run_id, f"trial_{metric}", value, step=trial)
    client.log_metric(parent_run_id, f"best_{metric}", best, step=trial)


# Loaders may pick the role model's inference variant:
# mlflow.pyfunc.load_model(uri, model_config={"variant": "onnx"}); None = the recorded one.
VARIANT_CONFIG = {"variant": None}


def load_model(local_path: str | Path, model_config: Mapping | None = None):  # noqa: ANN201
    """``mlflow.pyfunc.load_model`` of a downloaded model, with the environment checked by
    ``requirement_mismatches`` (logged as warnings) instead of MLflow's own check, which maps
    every installed package to its modules first: 0.45 s of a 10-second rescore."""
    model = mlflow.pyfunc.load_model(
        str(local_path), model_config=dict(model_config or {}) or None, suppress_warnings=True
    )
    problems = requirement_mismatches(local_path)
    if problems:
        logging.getLogger(__name__).warning(
            "the model's environment differs from this one (`mlflow.pyfunc."
            "get_model_dependencies` gives its requirements):\n - %s",
            "\n - ".join(problems),
        )
    return model


def requirement_mismatches(model_dir: str | Path) -> list[str]:
    """The model's pinned requirements (its ``requirements.txt`` and its parts') and Python
    version that this environment does not meet, as MLflow's loader would warn about them."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    problems = []
    for path in sorted(Path(model_dir).rglob("requirements.txt")):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            try:
                req = Requirement(line)
            except InvalidRequirement:  # blank, an option, a path or a URL: not checked
                continue
            if req.marker and not req.marker.evaluate():
                continue
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                problems.append(f"{req.name} (installed: none, required: {line})")
                continue
            if req.name == "mlflow" and Version(installed).is_devrelease:
                continue
            if req.specifier and not req.specifier.contains(installed, prereleases=True):
                problems.append(f"{req.name} (installed: {installed}, required: {line})")
    meta = mlflow.models.Model.load(str(Path(model_dir) / "MLmodel"))
    wanted = meta.flavors.get("python_function", {}).get("python_version")
    here = platform.python_version()
    if wanted and Version(wanted).release[:2] != Version(here).release[:2]:
        problems.append(f"Python (installed: {here}, logged with: {wanted})")
    return sorted(set(problems))


def _pin(*packages: str, onnx: bool = False) -> list[str]:
    """Exact versions of ``packages``; with ``onnx``, also onnx and onnxruntime where
    installed (the role model may then run as an onnx inference variant)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = [f"{p}=={version(p).split('+')[0]}" for p in packages]
    for optional in ("onnx", "onnxruntime") if onnx else ():
        with suppress(PackageNotFoundError):
            pins.append(f"{optional}=={version(optional)}")
    return pins


def _log_pyfunc(
    name: str,
    python_model: mlflow.pyfunc.PythonModel,
    artifacts: Mapping[str, str],
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    requirements: list[str],
    metadata: Mapping[str, object] | None,
    signature: mlflow.models.ModelSignature | None = None,
    model_config: Mapping[str, object] | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log a pyfunc with this package's code, pinned requirements, signature and example;
    ``model_config`` names the settings a loader may override (MLflow ignores others)."""
    import buying_groups

    signature = signature or mlflow.models.infer_signature(input_example, output_example)
    with tempfile.TemporaryDirectory() as tmp:
        # Ship the package without its bytecode caches.
        code = Path(tmp) / "buying_groups"
        _copy_package(Path(buying_groups.__file__).parent, code)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts=dict(artifacts),
            code_paths=[str(code)],
            signature=signature,
            input_example=input_example,
            pip_requirements=requirements,
            metadata=dict(metadata or {}),
            model_config=dict(model_config) if model_config else None,
        )


def log_role_pyfunc(
    model_dir: Path,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    metadata: Mapping[str, object] | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log the role model as an MLflow pyfunc (weights, tokenizer and labels as an artifact;
    this package's code shipped with it; pinned requirements; signature and example)."""
    from buying_groups.serving.role_pyfunc import RoleModelPyfunc

    return _log_pyfunc(
        "role_model",
        RoleModelPyfunc(),
        {"role_model": str(model_dir)},
        input_example,
        output_example,
        _pin("mlflow", "torch", "transformers", "pandas", "safetensors", "tokenizers", onnx=True),
        metadata,
        model_config=VARIANT_CONFIG,
    )


def _log_joblib_pyfunc(
    name: str,
    python_model: mlflow.pyfunc.PythonModel,
    fitted: object,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    requirements: list[str],
    metadata: Mapping[str, object] | None,
) -> mlflow.models.model.ModelInfo:
    """Log ``fitted`` (saved with joblib as the artifact ``name``) behind ``python_model``."""
    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.joblib"
        joblib.dump(fitted, path)
        return _log_pyfunc(
            name,
            python_model,
            {name: str(path)},
            input_example,
            output_example,
            requirements,
            metadata,
        )


def log_qualifier(
    qualifier: object,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    metadata: Mapping[str, object] | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log a fitted qualifier (saved with joblib; group-state table in, score, flag and
    reasons out) as the qualifier pyfunc."""
    from buying_groups.serving.qualifier_pyfunc import QualifierPyfunc

    return _log_joblib_pyfunc(
        "qualifier",
        QualifierPyfunc(),
        qualifier,
        input_example,
        output_example,
        _pin("mlflow", "scikit-learn", "pandas", "numpy", "shap", "joblib"),
        metadata,
    )


def log_renewal_model(
    model: object, input_example: pd.DataFrame, metadata: Mapping[str, object] | None = None
) -> mlflow.models.model.ModelInfo:
    """Log a fitted renewal-risk model (joblib; renewal states in, risk and reasons out)."""
    from buying_groups.serving.retention_pyfunc import RetentionPyfunc, renewal_outputs

    return _log_joblib_pyfunc(
        "renewal_risk",
        RetentionPyfunc(),
        model,
        input_example,
        renewal_outputs(model, input_example),
        _pin("mlflow", "scikit-learn", "pandas", "numpy", "joblib"),
        metadata,
    )


def log_buying_groups_pyfunc(
    role_model_uri: str,
    qualifier_uri: str,
    catalog: Mapping,
    input_example: pd.DataFrame,
    metadata: Mapping[str, object] | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log the deployable ``buying-groups`` model: the logged role model and qualifier as
    artifacts, the catalog, and the request schema (contacts with arrays of events)."""
    from mlflow.models import ModelSignature

    from buying_groups.serving.buying_groups_pyfunc import BuyingGroupsPyfunc, input_schema

    with tempfile.TemporaryDirectory() as tmp:
        catalog_file = Path(tmp) / "catalog.json"
        catalog_file.write_text(json.dumps(catalog))
        artifacts = {
            "role_model": role_model_uri,
            "qualifier": qualifier_uri,
            "catalog": str(catalog_file),
        }
        return _log_pyfunc(
            "buying_groups",
            BuyingGroupsPyfunc(),
            artifacts,
            input_example,
            None,
            _pin(
                "mlflow",
                "torch",
                "transformers",
                "pandas",
                "safetensors",
                "tokenizers",
                "scikit-learn",
                "shap",
                "joblib",
                onnx=True,
            ),
            metadata,
            signature=ModelSignature(inputs=input_schema()),
            model_config=VARIANT_CONFIG,
        )


def log_deployable(
    qualifier_run: mlflow.entities.Run, catalog: Mapping, input_example: pd.DataFrame
) -> mlflow.models.model.ModelInfo:
    """Log, in the active run, the deployable model made of ``qualifier_run``'s qualifier
    and the role model its groups came from."""
    qualifier_uri = logged_model_uri(qualifier_run)
    if qualifier_uri is None:
        raise SystemExit(f"qualifier run {qualifier_run.info.run_id} logged no model")
    tags = qualifier_run.data.tags
    return log_buying_groups_pyfunc(
        tags["bg.role_model_uri"],
        qualifier_uri,
        catalog,
        input_example,
        metadata={
            "qualifier_run_id": qualifier_run.info.run_id,
            "role_model_run_id": tags.get("bg.role_model_run_id", ""),
        },
    )


def logged_model_uri(run: mlflow.entities.Run) -> str | None:
    """The URI of the model a run logged (MLflow 3 logged models), None if it logged none."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    return models[0].model_uri if models else None


def find_role_model(experiment_name: str, dataset_name: str | None = None) -> tuple[str, str]:
    """(run id, model URI) of the newest finished role-model run that logged its model,
    preferring runs trained on ``dataset_name``."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    runs = (
        mlflow.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`bg.model` = 'transformer' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            output_format="list",
        )
        if experiment
        else []
    )
    runs.sort(key=lambda r: r.data.tags.get("dataset.name") != dataset_name)  # stable
    for run in runs:
        uri = logged_model_uri(run)
        if uri:
            return run.info.run_id, uri
    raise SystemExit(
        f"no logged role model in MLflow experiment {experiment_name!r} at "
        f"{mlflow.get_tracking_uri()}: run bg-train-roles first, pass roles.model_uri=<uri>, "
        "or use roles.source=rules"
    )


def _copy_package(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "configs"))


def default_tracking_hint() -> str:
    """Where the runs are, in words a user can act on."""
    uri = mlflow.get_tracking_uri()
    return f"{uri}  (browse: mlflow ui --backend-store-uri {uri})" if "://" in uri else uri


def model_identity(model_uri: str) -> dict[str, str | None]:
    """``{"name", "version", "alias", "uri"}`` of a registered model URI
    (``models:/<name>@<alias>`` or ``models:/<name>/<version>``); name and version are None
    for a run or a path."""
    ident: dict[str, str | None] = {"uri": model_uri, "name": None, "version": None, "alias": None}
    if model_uri.startswith("models:/"):
        ref = model_uri[len("models:/") :]
        client = mlflow.MlflowClient()
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
            ident |= {"name": name, "version": str(version), "alias": alias}
        elif "/" in ref:
            name, version = ref.rsplit("/", 1)
            ident |= {"name": name, "version": version}
    return ident
