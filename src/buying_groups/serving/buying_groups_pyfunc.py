"""``buying-groups``: the deployable model. Contacts with their recent activities in; per
account x product group: score, qualified flag, stage, members, reasons, missing roles and
whom to engage next out. It wraps the logged role model and qualifier (MLflow artifacts, not
copies of training state) and scores through ``buying_groups.scoring``, the code path
``bg-score`` uses too."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from buying_groups import __version__
from buying_groups.data.dates import future_after, parse_date
from buying_groups.data.io import file_digest
from buying_groups.data.schema import CHANNELS
from buying_groups.data.validate import empty_table, normalise_values
from buying_groups.models.runtime import prediction_key
from buying_groups.qualify.customers import GROUP_FIELDS, add_customer_fields, renewal_risk
from buying_groups.scoring import GROUPS_FORMAT, score_groups
from buying_groups.taxonomy import GENERAL_TOPIC, Catalog

REQUIRED = ("account_id", "contact_id", "job_title", "activities")
OPTIONAL = ("as_of", "subscriptions")
EVENT_FIELDS = ("timestamp", "channel", "action", "asset", "topic")
TERM_FIELDS = ("product", "term_start", "term_end", "seats", "amount")
# The request and answer contract (docs/serving.md): 2 added the optional ``subscriptions``
# field and the answer's ``segment`` and ``renewal_*`` fields; version 1 callers are unchanged.
CONTRACT = 2
MAX_TITLE_CHARS = 256  # the role model cuts titles here anyway


def input_schema() -> mlflow.types.Schema:
    """One row per contact; ``activities`` is an array of event objects; ``as_of`` and the
    account's ``subscriptions`` (an array of terms) optional."""
    from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

    event = Object(
        [Property(f, "string", required=f in ("timestamp", "action")) for f in EVENT_FIELDS]
    )
    term = Object(
        [Property(f, "string") for f in TERM_FIELDS[:3]]
        + [Property(f, "double", required=False) for f in TERM_FIELDS[3:]]
    )
    return Schema(
        [
            ColSpec("string", "account_id"),
            ColSpec("string", "contact_id"),
            ColSpec("string", "job_title"),
            ColSpec(Array(event), "activities"),
            ColSpec("string", "as_of", required=False),
            ColSpec(Array(term), "subscriptions", required=False),
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


def _terms(i: int, rec: dict, products: tuple[str, ...] | None) -> list[dict]:
    """Row ``i``'s ``subscriptions``: one record per term, each field checked."""
    terms = rec.get("subscriptions")
    if _missing(terms):
        return []
    if not isinstance(terms, list | tuple | np.ndarray):
        _fail(i, "subscriptions", "must be a list of subscription terms")
    out = []
    for j, term in enumerate(terms):
        where = f"subscriptions[{j}]"
        if not isinstance(term, dict):
            _fail(i, where, "must be an object")
        unknown = sorted(set(term) - set(TERM_FIELDS))
        if unknown:
            _fail(i, where, f"unknown field(s): {', '.join(short_name(k) for k in unknown[:5])}")
        product = term.get("product")
        if not isinstance(product, str) or (products is not None and product not in products):
            _fail(i, f"{where}.product", "must be a product of the catalog")
        dates = {}
        for f in ("term_start", "term_end"):
            if not isinstance(term.get(f), str):
                _fail(i, f"{where}.{f}", "required, a date string such as 2026-01-31")
            dates[f] = parse_date(term[f], f"row {i}, field '{where}.{f}'")
        if dates["term_end"] <= dates["term_start"]:
            _fail(i, f"{where}.term_end", "must be after term_start")
        numbers = {}
        for f in ("seats", "amount"):
            v = term.get(f)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0
            ):
                _fail(i, f"{where}.{f}", "must be a number >= 0")
            numbers[f] = np.nan if v is None else float(v)
        out.append({"account_id": rec["account_id"], "product": product, **dates, **numbers})
    return out


def _subscriptions(terms: list[dict]) -> pd.DataFrame:
    """The request's terms as a subscriptions table (a term repeated on several rows of its
    account counts once; outcomes are not known to a request)."""
    cols = ["account_id", "product", "term_start", "term_end", "seats", "amount"]
    subs = pd.DataFrame(terms, columns=cols).drop_duplicates(cols[:4], ignore_index=True)
    subs.insert(0, "term_id", [f"t{k}" for k in range(len(subs))])
    subs.insert(1, "subscription_id", subs["term_id"])
    subs["outcome"] = None
    return subs.astype({"term_start": "datetime64[ns]", "term_end": "datetime64[ns]"})


def as_files_read(activities: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """A request's events with their values read as ``bg-score`` reads a file's
    (``validate.normalise_values``: "Sales" -> sales, an action's alias, no topic -> the
    product its asset names), so REST and batch score the same events alike. A channel or
    topic still unknown, or an event after tomorrow, fails naming its row and event (never
    echoing the value)."""
    df = normalise_values("activities", activities.copy(), catalog, Counter())
    where = df["activity_id"].str.slice(1).str.split("-")  # "r<row>-<event>"
    for col, known in (("channel", CHANNELS), ("topic", (*catalog.names, GENERAL_TOPIC))):
        bad = ~df[col].isin(known).to_numpy()
        if bad.any():
            i, j = where.iat[int(np.argmax(bad))]
            _fail(int(i), f"activities[{j}].{col}", f"unknown {col}: one of {', '.join(known)}")
    after = future_after()
    future = (df["timestamp"] > after).to_numpy()
    if future.any():
        i, j = where.iat[int(np.argmax(future))]
        _fail(int(i), f"activities[{j}].timestamp", f"in the future (after {after:%Y-%m-%d})")
    return df


def request_tables(
    frame: pd.DataFrame, catalog: Catalog
) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    """The request's contacts and events as the tables the scorer reads, and the as-of date.

    Errors name the row and field and never echo the input. Accounts' size and opportunity
    history are unknown to a request: they enter as missing/none. Customer status comes
    from the optional ``subscriptions`` field (the terms of an account's products, on any
    of its rows): with the field, ``tables["subscriptions"]`` holds them (an account given
    none owns nothing); without it, there is no such table and the status is unknown.
    Events are read as a file's are (``as_files_read``) against ``catalog``, whose products
    a term must name.
    """
    products = catalog.names
    if len(frame) == 0:
        raise ValueError("the request has no rows: send at least one contact")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    extra = sorted(set(frame.columns) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        names = ", ".join(short_name(c) for c in extra[:5])
        raise ValueError(f"unknown field(s): {names}" + (" ..." if len(extra) > 5 else ""))
    contacts, events, terms = [], [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        rec = row._asdict()
        terms += _terms(i, rec, products)
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
                if not isinstance(ev.get(f), str) or not ev.get(f).strip():
                    _fail(i, f"activities[{j}].{f}", "required, a non-empty string")
            # a DateError is a ValueError naming the row and field, as _fail's are
            ts = parse_date(ev["timestamp"], f"row {i}, field 'activities[{j}].timestamp'")
            events.append(
                {
                    "activity_id": f"r{i}-{j}",
                    "contact_id": rec["contact_id"],
                    "timestamp": ts,
                    # stripped as a file's cells are
                    "channel": str(ev.get("channel") or "").strip() or "web",
                    "action": ev["action"].strip(),
                    "asset": str(ev.get("asset") or "").strip(),
                    "topic": str(ev.get("topic") or "").strip(),  # empty: the asset's product
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
    activities = as_files_read(activities, catalog)
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
    if "subscriptions" in frame.columns:
        tables["subscriptions"] = _subscriptions(terms)
    return tables, pd.Timestamp(as_of)


def groups_to_records(groups: pd.DataFrame) -> pd.DataFrame:
    """JSON-friendly output: dates as ISO strings, lists as plain lists, missing as null."""
    out = groups.copy()
    out["as_of"] = out["as_of"].astype(str)
    for col in ("members", "reasons_for", "reasons_against", "missing_roles", "engage_next"):
        out[col] = out[col].map(list)
    for col in GROUP_FIELDS:
        if col not in out:  # customer status unknown (no subscriptions field)
            out[col] = None
    out["renewal_date"] = [None if pd.isna(d) else str(d.date()) for d in out["renewal_date"]]
    out["renewal_risk"] = [None if pd.isna(r) else float(r) for r in out["renewal_risk"]]
    out["renewal_reasons"] = [None if r is None else list(r) for r in out["renewal_reasons"]]
    return out.astype({c: object for c in GROUP_FIELDS})


class BuyingGroupsPyfunc(mlflow.pyfunc.PythonModel):
    """Artifacts: ``role_model`` and ``qualifier`` (logged MLflow models), ``catalog``."""

    contract = CONTRACT
    # A fitted renewal-risk model (qualify.customers.RenewalModel) that whoever serves this
    # model may attach (bg-serve's renewal_model_uri): then the renewals of the terms a
    # request sends are scored too. None: segments only.
    renewal = None

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
                f"groups {GROUPS_FORMAT}",
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
            tables, as_of = request_tables(model_input, self.catalog)
        except ValueError as exc:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc
        groups = score_groups(self.predict_roles, self.qualifier, tables, self.catalog, as_of)
        subs = tables.get("subscriptions")
        if subs is not None:
            renewals = None
            if self.renewal is not None:
                renewals = renewal_risk(
                    self.predict_roles, self.catalog, tables, subs, self.renewal, as_of
                )
            groups = add_customer_fields(groups, tables["accounts"], subs, as_of, renewals)
        return groups_to_records(groups)
