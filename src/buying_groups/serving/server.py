"""The REST server: MLflow's scoring app (``/ping``, ``/health``, ``/version`` and the
``/invocations`` protocol), hardened for contact data.

MLflow's stock ``/invocations`` answers every failure with 400 and puts the input payload
and a stack trace in the error body. This one replaces that route and adds: a body-size
limit and a rows-per-request limit (413), error bodies that name the field and problem
without echoing input or traces, 4xx for the caller's mistakes and 5xx for the server's
own, an optional bearer token, a per-request timeout (504), and one prediction at a time
per process (fast tokenizers are not safe to share across threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import threading
import uuid
import warnings
from dataclasses import dataclass

import mlflow
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from buying_groups import __version__, registry, tracking
from buying_groups.models.inference import PredictionCache, caching
from buying_groups.qualify.compare import STAGES
from buying_groups.serving.buying_groups_pyfunc import short_name
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES

log = logging.getLogger("buying_groups.serve")
FORMATS = ("dataframe_split", "dataframe_records", "inputs")


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000
    max_rows: int = 1_000
    timeout_s: float = 30.0
    token: str | None = None  # bearer token; None: no authentication


class RequestError(Exception):
    """The caller's mistake: an HTTP status and a message that is safe to return."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


MAX_DEPTH = 16  # {"dataframe_records": [{"activities": [{...}]}]} needs 5
MAX_INT_DIGITS = 30


def _bad(message: str) -> RequestError:
    return RequestError(400, "MALFORMED_REQUEST", message)


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _bad(f"the body holds an integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a repeated key would silently keep its last value
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _bad(f"a JSON object repeats the key '{short_name(dup)}'")
    return obj


def _check_tree(payload: object) -> None:
    """Depth and text of every value: too deep, or text that is not valid Unicode (a lone
    surrogate such as \\ud800), is the caller's mistake, named by its path."""
    stack = [(payload, "body", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"the body is nested more than {MAX_DEPTH} levels deep (at {path})")
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{short_name(k)}", depth + 1) for k, v in value.items())
            for k in value:
                _check_text(k, path)
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{path}: not valid Unicode (an unpaired surrogate escape)") from None


_EVENT = {
    "type": "object",
    "required": ["timestamp", "action"],
    "properties": {
        "timestamp": {"type": "string", "format": "date-time", "example": "2026-05-01T10:00:00"},
        "channel": {"type": "string", "example": "sales"},
        "action": {"type": "string", "example": "requested_demo"},
        "asset": {"type": "string", "example": "Demo request"},
        "topic": {"type": "string", "example": "security_platform"},
    },
}
_TERM = {
    "type": "object",
    "required": ["product", "term_start", "term_end"],
    "additionalProperties": False,
    "properties": {
        "product": {"type": "string", "example": "data_platform"},
        "term_start": {"type": "string", "format": "date", "example": "2025-09-01"},
        "term_end": {"type": "string", "format": "date", "example": "2026-09-01"},
        "seats": {"type": "number", "minimum": 0},
        "amount": {"type": "number", "minimum": 0},
    },
}
_CONTACT = {
    "type": "object",
    "required": ["account_id", "contact_id", "job_title", "activities"],
    "additionalProperties": False,
    "properties": {
        "account_id": {"type": "string", "minLength": 1},
        "contact_id": {"type": "string", "minLength": 1},
        "job_title": {"type": ["string", "null"], "maxLength": 256},
        "activities": {"type": "array", "items": _EVENT},
        "as_of": {"type": "string", "format": "date", "example": "2026-06-01"},
        # contract 2: the account's subscription terms (on any of its rows)
        "subscriptions": {"type": "array", "items": _TERM},
    },
}
_MEMBER = {
    "type": "object",
    "required": ["contact_id", "function", "seniority", "role", "probability", "engaged_30d"],
    "properties": {
        "contact_id": {"type": "string"},
        "function": {"enum": list(FUNCTIONS)},
        "seniority": {"enum": list(SENIORITIES)},
        "role": {"enum": [r for r in ROLES if r != "none"]},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "engaged_30d": {"type": "boolean"},
    },
}
_GROUP = {
    "type": "object",
    "required": ["account_id", "product", "as_of", "score", "qualified", "stage", "members"],
    "properties": {
        "account_id": {"type": "string"},
        "product": {"type": "string"},
        "as_of": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "qualified": {"type": "boolean"},
        "stage": {"enum": list(STAGES)},
        "members": {"type": "array", "items": _MEMBER},
        "reasons_for": {"type": "array", "items": {"type": "string"}},
        "reasons_against": {"type": "array", "items": {"type": "string"}},
        "missing_roles": {"type": "array", "items": {"type": "string"}},
        "engage_next": {"type": "array", "items": {"type": "object"}},
        # contract 2, null without subscriptions in the request
        "segment": {"enum": ["new_logo", "expansion", "installed", None]},
        "renewal_date": {"type": ["string", "null"]},
        "renewal_risk": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "renewal_reasons": {"type": ["array", "null"], "items": {"type": "string"}},
    },
}
_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
INVOCATIONS_OPENAPI = {
    "summary": "Score the buying groups of the contacts sent (one row per contact)",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["dataframe_records"],
                            "properties": {
                                "dataframe_records": {"type": "array", "items": _CONTACT}
                            },
                        },
                        {
                            "type": "object",
                            "required": ["dataframe_split"],
                            "properties": {
                                "dataframe_split": {
                                    "type": "object",
                                    "required": ["columns", "data"],
                                    "properties": {
                                        "columns": {"type": "array", "items": {"type": "string"}},
                                        "data": {"type": "array", "items": {"type": "array"}},
                                    },
                                }
                            },
                        },
                        {
                            "type": "object",
                            "required": ["inputs"],
                            "properties": {"inputs": {"type": "array", "items": _CONTACT}},
                        },
                    ]
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "one row per account x product: score, qualified, stage, members "
            "(persona and role), reasons, missing roles, whom to engage next; segment and "
            "renewal risk when the request sends subscriptions (docs/serving.md)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"predictions": {"type": "array", "items": _GROUP}},
                    }
                }
            },
        },
        **{
            code: {"description": why, "content": {"application/json": {"schema": _ERROR}}}
            for code, why in {
                "400": "the request is malformed or a field is wrong (the message names it)",
                "401": "a bearer token is required and was missing or wrong",
                "413": "the body or the number of rows is over the limit",
                "415": "the body is not application/json",
                "500": "the server's own fault (an id to find it in the server log)",
                "504": "scoring took longer than the timeout",
            }.items()
        },
    },
}


def authorized(header: str, token: str) -> bool:
    """An ``Authorization`` header carrying ``token``. The scheme is case-insensitive in
    HTTP (``bearer`` is ``Bearer``); the token is compared in constant time."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode()
    )


def is_json(content_type: str) -> bool:
    """A ``Content-Type`` of JSON; media types are case-insensitive (``Application/JSON``)."""
    return content_type.split(";")[0].strip().lower() == "application/json"


def parse_payload(body: bytes) -> pd.DataFrame:
    """MLflow's JSON request formats -> DataFrame; errors never quote the payload."""
    try:
        payload = json.loads(body, parse_int=_int, object_pairs_hook=_object)
    except UnicodeDecodeError:
        raise RequestError(400, "MALFORMED_REQUEST", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RequestError(
            400, "MALFORMED_REQUEST", f"the body is not valid JSON: {exc.msg} at {where}"
        ) from None
    except RecursionError:
        raise _bad(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    _check_tree(payload)
    if not isinstance(payload, dict):
        raise RequestError(
            400, "BAD_REQUEST", f"the body must be a JSON object with one of: {', '.join(FORMATS)}"
        )
    keys = [k for k in FORMATS if k in payload]
    extra = sorted(set(payload) - set(FORMATS) - {"params"})
    if len(keys) != 1 or extra:
        raise RequestError(
            400,
            "BAD_REQUEST",
            f"the body must have exactly one of {', '.join(FORMATS)}"
            + (f"; unknown key(s): {', '.join(short_name(k) for k in extra[:5])}" if extra else ""),
        )
    data = payload[keys[0]]
    if keys[0] == "dataframe_split":
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("columns"), list)
            or not isinstance(data.get("data"), list)
        ):
            raise RequestError(
                400,
                "BAD_REQUEST",
                "dataframe_split needs 'columns' (a list) and 'data' (a list of rows)",
            )
        names = [str(c) for c in data["columns"]]
        if len(set(names)) != len(names):
            dup = next(c for i, c in enumerate(names) if c in names[:i])
            raise RequestError(
                400, "BAD_REQUEST", f"dataframe_split: column '{short_name(dup)}' appears twice"
            )
        width = len(data["columns"])
        for i, row in enumerate(data["data"]):
            if not isinstance(row, list) or len(row) != width:
                raise RequestError(
                    400,
                    "BAD_REQUEST",
                    f"dataframe_split row {i}: expected a list of {width} values",
                )
        return pd.DataFrame(data["data"], columns=[str(c) for c in data["columns"]])
    if isinstance(data, dict):  # inputs as columns
        if (
            not all(isinstance(v, list) for v in data.values())
            or len({len(v) for v in data.values()}) > 1
        ):
            raise RequestError(
                400, "BAD_REQUEST", f"{keys[0]}: columns must be lists of equal length"
            )
        return pd.DataFrame(data)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RequestError(400, "BAD_REQUEST", f"{keys[0]} must be a list of objects (one per row)")
    return pd.DataFrame.from_records(data)


def create_app(
    model_uri: str,
    limits: Limits,
    model_config: dict | None = None,
    prediction_cache: int = 100_000,
    identity: dict | None = None,
    renewal_model_uri: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``model_uri`` (loaded once, here, with ``model_config``,
    e.g. ``{"variant": "onnx"}``). The role model's answers for up to ``prediction_cache``
    distinct titles are kept in memory (titles repeat across accounts; 0: none).
    ``identity``: what ``/version`` says, when the caller resolved it already.
    ``renewal_model_uri``: a renewal-risk model that scores the renewals of the
    subscription terms a request sends (none there, or None: segments only)."""
    from mlflow.pyfunc import scoring_server

    model = tracking.load_model(mlflow.artifacts.download_artifacts(model_uri), model_config)
    try:
        python_model = model.unwrap_python_model()
    except mlflow.exceptions.MlflowException:
        python_model = None
    app = scoring_server.init(model)  # /ping, /health and its timeout middleware
    app.state.variant = getattr(python_model, "role_variant", "fp32")
    # MLflow's /version answers MLflow's own version; a caller wants the model's.
    renewal = None
    if renewal_model_uri and hasattr(python_model, "renewal"):
        try:
            renewal = python_model.renewal = registry.load_renewal_model(renewal_model_uri)
        except LookupError as exc:
            log.warning("%s: renewals are not scored", exc)
    identity = {
        **(identity or tracking.model_identity(model_uri)),
        "contract": getattr(python_model, "contract", 1),
        "renewal_model": renewal.where if renewal is not None else None,
        "role_variant": app.state.variant,
        "package": __version__,
        "mlflow": mlflow.__version__,
    }
    # MLflow's /ping and /health send "\n" labelled application/json, which no JSON client
    # can read; ours send JSON (the model is loaded by now, or create_app raised).
    ours = ("/invocations", "/version", "/ping", "/health")
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") not in ours]
    lock = threading.Lock()
    cache = PredictionCache(limit=prediction_cache) if prediction_cache > 0 else None

    def error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
        return JSONResponse({"error_code": code, "message": message}, status, headers=headers)

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        with lock, caching(cache) if cache is not None else contextlib.nullcontext():
            if python_model is not None and hasattr(python_model, "predict_roles"):
                # Our own model validates every field itself; MLflow's schema enforcement
                # would put the offending data into its error message.
                return python_model.predict(None, frame)
            return model.predict(frame)

    @app.get("/version")
    async def version() -> Response:
        return JSONResponse(identity)

    @app.get("/ping")
    @app.get("/health")
    async def ping() -> Response:
        return JSONResponse({"status": "ok"})

    @app.post("/invocations", openapi_extra=INVOCATIONS_OPENAPI)
    async def invocations(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:12]
        if limits.token and not authorized(request.headers.get("authorization", ""), limits.token):
            return error(
                401,
                "UNAUTHENTICATED",
                "missing or wrong bearer token",
                {"WWW-Authenticate": "Bearer"},
            )
        if not is_json(request.headers.get("content-type", "")):
            return error(
                415, "UNSUPPORTED_MEDIA_TYPE", "send application/json (MLflow's JSON formats)"
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return error(
                413, "REQUEST_TOO_LARGE", f"the body exceeds {limits.max_body_bytes:,} bytes"
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                return error(
                    413, "REQUEST_TOO_LARGE", f"the body exceeds {limits.max_body_bytes:,} bytes"
                )
        try:
            frame = parse_payload(bytes(body))
            if len(frame) > limits.max_rows:
                raise RequestError(
                    413,
                    "REQUEST_TOO_LARGE",
                    f"{len(frame):,} rows; at most {limits.max_rows:,} per request",
                )
            result = await asyncio.wait_for(asyncio.to_thread(predict, frame), limits.timeout_s)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        except (TimeoutError, asyncio.TimeoutError):
            return error(504, "TIMEOUT", f"scoring took longer than {limits.timeout_s:g}s")
        except mlflow.exceptions.MlflowException as exc:
            if exc.get_http_status_code() < 500 and isinstance(exc.__cause__, ValueError):
                return error(400, "BAD_REQUEST", exc.message)  # our messages name field + row
            if exc.get_http_status_code() < 500:
                names = ", ".join(model.metadata.get_input_schema().input_names())
                return error(
                    400,
                    "BAD_REQUEST",
                    f"the input does not match the model's signature (expected columns: {names})",
                )
            log.exception("request %s failed", request_id)
            return error(500, "INTERNAL_ERROR", f"internal error (request {request_id})")
        except Exception:  # the server's own fault: log it here, tell the caller only an id
            log.exception("request %s failed", request_id)
            return error(500, "INTERNAL_ERROR", f"internal error (request {request_id})")
        records = json.loads(result.to_json(orient="records", date_format="iso"))
        return JSONResponse({"predictions": records})

    return app


SETTINGS_ENV = "BG_SERVE_SETTINGS"


def serve(
    model_uri: str,
    limits: Limits,
    model_config: dict | None,
    prediction_cache: int,
    threads: int,
    host: str,
    port: int,
    workers: int = 1,
    renewal_model_uri: str | None = None,
) -> None:
    """Run the server; ``workers`` > 1 starts that many processes on one socket, each with
    its own copy of the model (requests are CPU-bound Python: threads would share one GIL).

    An alias is resolved here, once, so that every worker serves the same version even if
    the alias moves while they start."""
    import uvicorn

    from buying_groups.models.runtime import check_variant

    identity = tracking.model_identity(model_uri)
    if identity["alias"]:
        model_uri = f"models:/{identity['name']}/{identity['version']}"
    renewal_model_uri = _pinned(renewal_model_uri)
    if workers > 1:  # fetched once; a wrong variant stops here, not in every worker
        model_uri = mlflow.artifacts.download_artifacts(model_uri)
        if (model_config or {}).get("variant"):
            check_variant(model_config["variant"])
    settings = {
        "model_uri": model_uri,
        "limits": dataclasses.asdict(limits),
        "model_config": model_config,
        "prediction_cache": prediction_cache,
        "threads": threads,
        "identity": identity,
        "tracking_uri": mlflow.get_tracking_uri(),
        "renewal_model_uri": renewal_model_uri,
    }
    if workers <= 1:
        plain_strings()
        app = app_from_settings(settings)
        log.info("serving %s (%s)", model_uri, app.state.variant)
        uvicorn.run(app, host=host, port=port, workers=1, log_level="info")
        return
    # Workers are spawned: they read the settings (the token too, as the parent read it from
    # its own environment) from theirs.
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    uvicorn.run(
        "buying_groups.serving.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def _pinned(uri: str | None) -> str | None:
    """A renewal-risk model's alias resolved to its version (every worker loads the same);
    None, with a warning, when there is none to serve."""
    if not uri:
        return None
    try:
        ident = tracking.model_identity(uri)
    except mlflow.exceptions.MlflowException as exc:
        log.warning("no renewal-risk model at %s (%s): renewals are not scored", uri, exc.message)
        return None
    return f"models:/{ident['name']}/{ident['version']}" if ident["alias"] else uri


def plain_strings() -> None:
    """Text columns as Python objects, not pandas 3's Arrow-backed strings, in a server
    process: a request's frames are tiny, and converting each small column to Arrow and
    back made a third of a warm request's time (30 -> 20 ms per 10-contact account; the
    answers are the same, tests/test_serving.py). Batch scoring keeps pandas' default."""
    # pandas 3 deprecates the option (pandas 4 drops it: then this does nothing)
    with warnings.catch_warnings(), contextlib.suppress(KeyError, pd.errors.OptionError):
        warnings.simplefilter("ignore")
        pd.set_option("future.infer_string", False)


def app_from_settings(settings: dict) -> FastAPI:
    from buying_groups.models.runtime import set_scoring_threads

    mlflow.set_tracking_uri(settings["tracking_uri"])
    set_scoring_threads(settings["threads"])
    return create_app(
        settings["model_uri"],
        Limits(**settings["limits"]),
        settings["model_config"],
        settings["prediction_cache"],
        settings["identity"],
        settings.get("renewal_model_uri"),
    )


def app_from_env() -> FastAPI:
    """The app a worker process builds (``uvicorn --factory``), from the parent's settings."""
    plain_strings()
    return app_from_settings(json.loads(os.environ[SETTINGS_ENV]))
