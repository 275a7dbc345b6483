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
import hmac
import json
import logging
import threading
import uuid
from dataclasses import dataclass

import mlflow
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from buying_groups import tracking

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


def parse_payload(body: bytes) -> pd.DataFrame:
    """MLflow's JSON request formats -> DataFrame; errors never quote the payload."""
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "MALFORMED_REQUEST", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RequestError(
            400, "MALFORMED_REQUEST", f"the body is not valid JSON: {exc.msg} at {where}"
        ) from None
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
            + (f"; unknown key(s): {', '.join(extra[:5])}" if extra else ""),
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


def create_app(model_uri: str, limits: Limits, model_config: dict | None = None) -> FastAPI:
    """The FastAPI app serving ``model_uri`` (loaded once, here, with ``model_config``,
    e.g. ``{"variant": "onnx"}``)."""
    from mlflow.pyfunc import scoring_server

    model = tracking.load_model(mlflow.artifacts.download_artifacts(model_uri), model_config)
    try:
        python_model = model.unwrap_python_model()
    except mlflow.exceptions.MlflowException:
        python_model = None
    app = scoring_server.init(model)  # /ping, /health, /version and its timeout middleware
    app.state.variant = getattr(python_model, "role_variant", "fp32")
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/invocations"]
    lock = threading.Lock()

    def error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
        return JSONResponse({"error_code": code, "message": message}, status, headers=headers)

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        with lock:
            if python_model is not None and hasattr(python_model, "predict_roles"):
                # Our own model validates every field itself; MLflow's schema enforcement
                # would put the offending data into its error message.
                return python_model.predict(None, frame)
            return model.predict(frame)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:12]
        if limits.token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {limits.token}".encode()):
                return error(
                    401,
                    "UNAUTHENTICATED",
                    "missing or wrong bearer token",
                    {"WWW-Authenticate": "Bearer"},
                )
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json":
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
