"""``buying-groups``: the deployable model. Contacts with their recent activities in; per
account x product group: score, qualified flag, stage, members, reasons, missing roles and
whom to engage next out. It wraps the logged role model and qualifier (MLflow artifacts, not
copies of training state) and scores through ``buying_groups.scoring``, the code path
``bg-score`` uses too."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from buying_groups import __version__
from buying_groups.data.dates import parse_date
from buying_groups.data.io import file_digest
from buying_groups.data.validate import empty_table
from buying_groups.models.runtime import prediction_key
from buying_groups.scoring import score_groups
from buying_groups.taxonomy import Catalog

REQUIRED = ("account_id", "contact_id", "job_title", "activities")
EVENT_FIELDS = ("timestamp", "channel", "action", "asset", "topic")
MAX_TITLE_CHARS = 256  # the role model cuts titles here anyway


def input_schema() -> mlflow.types.Schema:
    """One row per contact; ``activities`` is an array of event objects; ``as_of`` optional."""
    from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

    event = Object(
        [Property(f, "string", required=f in ("timestamp", "action")) for f in EVENT_FIELDS]
    )
    return Schema(
        [
            ColSpec("string", "account_id"),
            ColSpec("string", "contact_id"),
            ColSpec("string", "job_title"),
            ColSpec(Array(event), "activities"),
            ColSpec("string", "as_of", required=False),
        ]
    )


def short_name(name: object, limit: int = 24) -> str:
    """A caller's field or key name as an error message may quote it: cut, never whole."""
    text = str(name)
    return text if len(text) <= limit else text[:limit] + "..."


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _fail(row: int, field: str, problem: str) -> None:
    raise ValueError(f"row {row}, field '{field}': {problem}")


def request_tables(frame: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    """The request's contacts and events as the tables the scorer reads, and the as-of date.

    Errors name the row and field and never echo the input. Accounts' size and customer
    status and opportunity history are unknown to a request: they enter as missing/none.
    """
    if len(frame) == 0:
        raise ValueError("the request has no rows: send at least one contact")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    extra = sorted(set(frame.columns) - set(REQUIRED) - {"as_of"})
    if extra:
        names = ", ".join(short_name(c) for c in extra[:5])
        raise ValueError(f"unknown field(s): {names}" + (" ..." if len(extra) > 5 else ""))
    contacts, events = [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        rec = row._asdict()
        for f in ("account_id", "contact_id"):
            v = rec[f]
            if not isinstance(v, str) or not v.strip():
                _fail(i, f, "must be a non-empty string")
        title = rec["job_title"]
        if title is None or (isinstance(title, float) and np.isnan(title)):
            title = ""
        if not isinstance(title, str):
            _fail(i, "job_title", "must be a string")
        acts = rec["activities"]
        if acts is None or (isinstance(acts, float) and np.isnan(acts)):
            acts = []
        if not isinstance(acts, list | tuple | np.ndarray):
            _fail(i, "activities", "must be a list of events")
        for j, ev in enumerate(acts):
            if not isinstance(ev, dict):
                _fail(i, f"activities[{j}]", "must be an object")
            for f in ("timestamp", "action"):
                if not isinstance(ev.get(f), str) or not ev.get(f):
                    _fail(i, f"activities[{j}].{f}", "required, a non-empty string")
            # a DateError is a ValueError naming the row and field, as _fail's are
            ts = parse_date(ev["timestamp"], f"row {i}, field 'activities[{j}].timestamp'")
            events.append(
                {
                    "activity_id": f"r{i}-{j}",
                    "contact_id": rec["contact_id"],
                    "timestamp": ts,
                    "channel": str(ev.get("channel") or "web"),
                    "action": ev["action"],
                    "asset": str(ev.get("asset") or ""),
                    "topic": str(ev.get("topic") or "general"),
                }
            )
        contacts.append(
            {
                "contact_id": rec["contact_id"],
                "account_id": rec["account_id"],
                "job_title": title[:MAX_TITLE_CHARS],
            }
        )
    contacts_df = pd.DataFrame(contacts)
    dup = contacts_df["contact_id"].duplicated()
    if dup.any():
        _fail(int(np.argmax(dup.to_numpy())), "contact_id", "duplicate contact in the request")
    activities = pd.DataFrame(
        events,
        columns=["activity_id", "contact_id", "timestamp", "channel", "action", "asset", "topic"],
    ).astype({"timestamp": "datetime64[ns]"})
    accounts = pd.DataFrame({"account_id": contacts_df["account_id"].unique()})
    accounts["employees"] = np.nan
    accounts["is_customer"] = False
    opportunities = empty_table("opportunities")
    as_of = None
    if "as_of" in frame.columns:
        given = [(i, v) for i, v in enumerate(frame["as_of"]) if not _missing(v)]
        for i, v in given:  # one date for the whole request, each row checked
            day = parse_date(v, f"row {i}, field 'as_of'")
            if as_of is not None and day != as_of:
                _fail(i, "as_of", "differs from an earlier row's: one as_of per request")
            as_of = day
    if as_of is None:
        as_of = activities["timestamp"].max() if len(activities) else pd.Timestamp.now()
    tables = {
        "accounts": accounts,
        "contacts": contacts_df,
        "activities": activities,
        "opportunities": opportunities,
    }
    return tables, pd.Timestamp(as_of)


def groups_to_records(groups: pd.DataFrame) -> pd.DataFrame:
    """JSON-friendly output: dates as ISO strings, lists as plain lists."""
    out = groups.copy()
    out["as_of"] = out["as_of"].astype(str)
    for col in ("members", "reasons_for", "reasons_against", "missing_roles", "engage_next"):
        out[col] = out[col].map(list)
    return out


class BuyingGroupsPyfunc(mlflow.pyfunc.PythonModel):
    """Artifacts: ``role_model`` and ``qualifier`` (logged MLflow models), ``catalog``."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.role_model_path = context.artifacts["role_model"]  # a logged pyfunc (spark_udf)
        # model_config={"variant": ...} picks the role model's inference variant (default:
        # the one recorded in the role model's config).
        self.model_config = dict(context.model_config or {})
        # The parts' requirements are checked with the whole model's (tracking.load_model).
        self.roles = mlflow.pyfunc.load_model(
            self.role_model_path, model_config=self.model_config, suppress_warnings=True
        )
        loaded = mlflow.pyfunc.load_model(context.artifacts["qualifier"], suppress_warnings=True)
        self.qualifier = loaded.unwrap_python_model().qualifier
        with open(context.artifacts["catalog"]) as f:
            self.catalog = Catalog.from_config(json.load(f))
        # What an account's scored groups depend on besides its own rows: both models, the
        # catalog and this package's scoring code (bg-score reuses unchanged accounts).
        qualifier = [p for p in Path(context.artifacts["qualifier"]).rglob("*") if p.is_file()]
        self.scoring_key = "|".join(
            [
                # a role model without a weights digest never matches an earlier run
                self.role_weights_digest or f"undigested {uuid.uuid4()}",
                file_digest([*qualifier, Path(context.artifacts["catalog"])]),
                __version__,
            ]
        )

    @property
    def role_weights_digest(self) -> str:
        """Identifies the role model's weights and inference variant (what cached role
        predictions key on)."""
        return prediction_key(self.roles.unwrap_python_model().model)

    @property
    def role_variant(self) -> str:
        return self.roles.unwrap_python_model().model.variant

    def predict_roles(self, frame: pd.DataFrame) -> pd.DataFrame:
        # The role model's own predict, not the pyfunc wrapper's: it checks its input itself,
        # and MLflow's schema enforcement cost 3-6 ms of a 10-contact REST request.
        return self.roles.unwrap_python_model().predict(None, frame)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            tables, as_of = request_tables(model_input)
        except ValueError as exc:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc
        groups = score_groups(self.predict_roles, self.qualifier, tables, self.catalog, as_of)
        return groups_to_records(groups)
