"""``bg-score engine=spark``: the same scoring, scaled out on Spark.

Reads the staged tables (validated, activities partitioned by account bucket) as Parquet,
renders each contact's activity text per bucket, scores contacts with
``mlflow.pyfunc.spark_udf`` on the registered role model, scores buying groups per bucket
with the pandas scorer inside ``applyInPandas`` (a group depends only on its account's rows),
and writes both outputs as Parquet. Needs ``pyspark`` (``pip install -e ".[spark]"``) and
Java 17 or newer; with a cluster master, ``data_dir`` and ``output_dir`` must be on storage
every executor reads.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from buying_groups.batch.staging import Staged
from buying_groups.data.schema import SCHEMA
from buying_groups.qualify.customers import GROUP_FIELDS, add_customer_fields

_MODELS: dict[str, object] = {}  # per Python worker: the buying-groups model, loaded once


def require_pyspark():  # noqa: ANN201
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SystemExit(
            'engine=spark needs pyspark: pip install -e ".[spark]" (and Java 17+)'
        ) from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SystemExit("engine=spark needs Java 17 or newer (java on PATH or JAVA_HOME)")


def session(cfg: DictConfig):  # noqa: ANN201
    from pyspark.sql import SparkSession

    if cfg.master.startswith("local"):
        # Python workers run this interpreter (the one with the package installed).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # pyspark warns about pandas 3 in every worker; the engine does not use pyspark.pandas.
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(cfg.app_name)
        # Naive timestamps mean UTC everywhere, as in the pandas engine.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        # A fresh Python worker per task: a logged model puts its own copy of this package
        # first on the worker's path when it loads, and a reused worker would then run the
        # group step on that copy instead of the installed package.
        .config("spark.python.worker.reuse", "false")
    )
    for key, value in (OmegaConf.to_container(cfg.conf) or {}).items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()


def _spark_schema(frame_types: dict[str, str]) -> str:
    return ", ".join(f"`{k}` {v}" for k, v in frame_types.items())


INPUT_TYPES = {
    "contact_id": "string",
    "account_id": "string",
    "job_title": "string",
    "activity_text": "string",
}
GROUP_TYPES = {
    "account_id": "string",
    "product": "string",
    "as_of": "timestamp",
    "score": "double",
    "qualified": "boolean",
    "stage": "string",
    "members": "array<struct<contact_id:string, function:string, seniority:string, "
    "role:string, probability:double, engaged_30d:boolean>>",
    "reasons_for": "array<string>",
    "reasons_against": "array<string>",
    "missing_roles": "array<string>",
    "engage_next": "array<struct<role:string, contact_id:string, probability:double>>",
}

KEY_TYPES = {"account_id": "string", "product": "string"}
CUSTOMER_TYPES = {
    "segment": "string",
    "renewal_date": "timestamp",
    "renewal_risk": "double",
    "renewal_reasons": "array<string>",
}
assert tuple(CUSTOMER_TYPES) == GROUP_FIELDS


def _unpack(rows: pd.DataFrame, columns: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """One bucket's rows of the stacked tables -> the tables, with their own columns."""
    out = {}
    for name, cols in columns.items():
        part = rows[rows["_table"] == name][cols].reset_index(drop=True)
        if name == "activities":
            part["timestamp"] = part["timestamp"].astype("datetime64[ns]")
        out[name] = part
    return out


def score_spark(
    wrapped,  # noqa: ANN001  (the buying-groups pyfunc's Python model)
    model_dir: str,
    staged: Staged,
    as_of: pd.Timestamp,
    out: Path,
    cfg: DictConfig,
    top_reasons: int = 3,
    renewals: pd.DataFrame | None = None,
) -> dict:
    """Score ``staged`` on Spark; write ``contacts_scored.parquet`` and
    ``groups_scored.parquet`` (directories of parts) under ``out``; return counts. The
    customer fields (segment, and the renewal fields from ``renewals``) are computed here,
    on the driver, and joined: Python workers import ``buying_groups`` from the model's
    logged code, which may predate them."""
    require_pyspark()
    import mlflow

    # Ship this module's functions by value: a Python worker that loaded the model first
    # imports ``buying_groups`` from the model's logged code, which may predate this module.
    from pyspark import SparkFiles, cloudpickle
    from pyspark.sql import functions as F

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark = session(cfg)
    if "spark.sql.shuffle.partitions" not in (cfg.conf or {}):
        # One task per bucket of accounts (the default 200 would be mostly empty tasks).
        spark.conf.set("spark.sql.shuffle.partitions", str(max(1, staged.n_buckets)))
    try:
        read = spark.read.parquet
        tables = {n: read(str(staged.directory / f"{n}.parquet")) for n in staged.tables}
        tables["activities"] = read(str(staged.activities_dir))
        columns = {name: [c for c in SCHEMA[name] if c in tables[name].columns] for name in tables}
        stacked = None
        for name, df in tables.items():
            df = df.withColumn("_table", F.lit(name))
            stacked = df if stacked is None else stacked.unionByName(df, allowMissingColumns=True)

        # Ship the model to every executor once; each Python worker loads it once.
        spark.sparkContext.addFile(model_dir, recursive=True)
        model_name = Path(model_dir).name
        catalog = wrapped.catalog
        model_config = dict(wrapped.model_config) or None  # the role model's variant

        def contact_rows(rows: pd.DataFrame) -> pd.DataFrame:
            from buying_groups.data.examples import contact_inputs

            t = _unpack(rows, {k: columns[k] for k in ("contacts", "activities")})
            return contact_inputs(t["contacts"], t["activities"], as_of=as_of)[list(INPUT_TYPES)]

        def group_rows(rows: pd.DataFrame) -> pd.DataFrame:
            from buying_groups.scoring import score_groups  # before the model loads (above)

            model = _MODELS.get(model_name)
            if model is None:
                path = SparkFiles.get(model_name)
                model = mlflow.pyfunc.load_model(path, model_config=model_config)
                model = model.unwrap_python_model()
                _MODELS[model_name] = model
            t = _unpack(rows, columns)
            groups = score_groups(
                model.predict_roles, model.qualifier, t, catalog, as_of, top_reasons
            )
            return groups[list(GROUP_TYPES)]

        inputs = (
            stacked.where(F.col("_table").isin("contacts", "activities"))
            .groupBy("bucket")
            .applyInPandas(contact_rows, _spark_schema(INPUT_TYPES))
        )
        role_types = {"function": "string", "function_proba": "double"}
        role_types |= {"seniority": "string", "seniority_proba": "double"}
        for p in catalog.names:
            role_types |= {f"role_{p}": "string", f"role_{p}_proba": "double"}
        roles = mlflow.pyfunc.spark_udf(
            spark,
            wrapped.role_model_path,
            result_type=_spark_schema(role_types).replace("`", ""),
            env_manager="local",
            model_config=model_config,
        )
        contacts = inputs.withColumn(
            "_pred", roles(F.col("job_title"), F.col("activity_text"))
        ).select(*INPUT_TYPES, *[F.col(f"_pred.{c}").alias(c) for c in role_types])
        groups = stacked.groupBy("bucket").applyInPandas(group_rows, _spark_schema(GROUP_TYPES))
        pairs = pd.MultiIndex.from_product(
            [staged.tables["accounts"]["account_id"], catalog.names],
            names=["account_id", "product"],
        ).to_frame(index=False)
        fields = add_customer_fields(
            pairs, staged.tables["accounts"], staged.subscriptions, as_of, renewals
        )
        fields = spark.createDataFrame(fields, _spark_schema(KEY_TYPES | CUSTOMER_TYPES))
        groups = groups.join(fields, ["account_id", "product"], "left").select(
            *GROUP_TYPES, *CUSTOMER_TYPES
        )

        # Sorted within each part only: a global orderBy samples its input first, which would
        # run the whole scoring twice.
        _write(contacts.sortWithinPartitions("contact_id"), out / "contacts_scored.parquet")
        _write(groups.sortWithinPartitions("account_id", "product"), out / "groups_scored.parquet")
        written = spark.read.parquet(str(out / "groups_scored.parquet"))
        stages = {r["stage"]: r["count"] for r in written.groupBy("stage").count().collect()}
        segments = {r["segment"]: r["count"] for r in written.groupBy("segment").count().collect()}
        return {
            "segments": dict(sorted(segments.items(), key=lambda kv: -kv[1])),
            "contacts": spark.read.parquet(str(out / "contacts_scored.parquet")).count(),
            "groups": written.count(),
            "qualified": written.where(F.col("qualified")).count(),
            "stages": dict(sorted(stages.items(), key=lambda kv: -kv[1])),
        }
    finally:
        spark.stop()


def _write(df, path: Path) -> None:  # noqa: ANN001
    """Spark commits into a fresh directory; it then replaces ``path`` (a rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    df.write.parquet(str(tmp))
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.replace(tmp, path)
