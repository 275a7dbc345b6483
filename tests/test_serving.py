"""bg-serve with the promoted tiny champion: good and bad requests, the token, concurrency."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

# serves the promoted tiny champion (trained in a subprocess): the slow tier
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn on a free local port, in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serve_answers_good_and_bad_requests(promoted, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from buying_groups.serving.server import Limits, create_app

    _, uri, _, _ = promoted
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # an earlier test may have pointed this process elsewhere
    app = create_app("models:/buying-groups@champion", Limits(200_000, 50, 60.0, "s3cret"))
    served = running(app)
    url = served.__enter__()
    auth = {"Authorization": "Bearer s3cret"}
    event = {
        "timestamp": "2026-03-01T10:00:00",
        "channel": "sales",
        "action": "requested_demo",
        "asset": "Demo request",
        "topic": "security_platform",
    }
    good = {
        "dataframe_records": [
            {"account_id": "A1", "contact_id": "C1", "job_title": "CISO", "activities": [event]},
            {
                "account_id": "A1",
                "contact_id": "C2",
                "job_title": "Einkaufsleiter",
                "activities": [],
            },
        ]
    }

    def post(body, headers=auth, **kw):
        return requests.post(f"{url}/invocations", json=body, headers=headers, timeout=60, **kw)

    try:
        assert requests.get(f"{url}/ping", timeout=5).status_code == 200
        spec = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]["/invocations"]
        assert {"400", "401", "413", "415", "500", "504"} <= set(spec["post"]["responses"])
        assert "application/json" in spec["post"]["requestBody"]["content"]
        version = requests.get(f"{url}/version", timeout=5)
        assert version.status_code == 200
        assert version.json()["name"] == "buying-groups" and version.json()["version"]
        r = post(good)
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == 3 and {"score", "qualified", "stage", "members"} <= set(preds[0])
        # each member carries the persona the served role model gives its title
        served_model = mlflow.pyfunc.load_model("models:/buying-groups@champion")
        roles = served_model.unwrap_python_model().predict_roles(
            pd.DataFrame({"job_title": ["CISO", "Einkaufsleiter"], "activity_text": ""})
        )
        pairs = zip(roles["function"], roles["seniority"], strict=True)
        persona = dict(zip(["C1", "C2"], pairs, strict=True))
        members = [m for p in preds for m in p["members"]]
        assert members and all(
            (m["function"], m["seniority"]) == persona[m["contact_id"]] for m in members
        )
        assert post(good, headers={}).status_code == 401
        # HTTP's scheme and media type are case-insensitive; the token is not
        assert post(good, headers={"Authorization": "bearer s3cret"}).status_code == 200
        assert post(good, headers={"Authorization": "Bearer S3CRET"}).status_code == 401
        r = requests.post(
            f"{url}/invocations",
            data=json.dumps(good),
            headers={**auth, "Content-Type": "Application/JSON"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        deep = b'{"inputs":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        r = requests.post(
            f"{url}/invocations",
            data=deep,
            headers={**auth, "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 400 and "nested" in r.json()["message"]
        r = post({"dataframe_records": [{**good["dataframe_records"][0], "as_of": [1]}]})
        assert r.status_code == 400 and "as_of" in r.json()["message"]
        bad_cases = {
            "missing": ({"dataframe_records": [{"account_id": "A", "contact_id": "C"}]}, 400),
            "type": (
                {"dataframe_records": [{**good["dataframe_records"][1], "job_title": 7}]},
                400,
            ),
            "empty account": (
                {"dataframe_records": [{**good["dataframe_records"][1], "account_id": ""}]},
                400,
            ),
            "too many rows": ({"dataframe_records": good["dataframe_records"][1:] * 51}, 413),
            "too big": (
                {
                    "dataframe_records": [
                        {**good["dataframe_records"][1], "job_title": "x" * 300_000}
                    ]
                },
                413,
            ),
        }
        for name, (body, status) in bad_cases.items():
            r = post(body)
            assert r.status_code == status, (name, r.text)
            assert "x" * 50 not in r.text and "Traceback" not in r.text
        r = requests.post(
            f"{url}/invocations",
            data=b'{"inputs": [',
            headers={**auth, "Content-Type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
        # Schemathesis against the served OpenAPI contract: generated and mutated bodies,
        # never a 5xx, every status and content type documented.
        fuzz = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{url}/openapi.json",
                "-H",
                "Authorization: Bearer s3cret",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,"
                "response_schema_conformance",
                "--max-examples",
                "40",
                "--seed",
                "20261203",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert fuzz.returncode == 0, fuzz.stdout[-4000:] + fuzz.stderr[-2000:]
        with ThreadPoolExecutor(4) as pool:  # concurrent callers get the same answers
            answers = list(pool.map(lambda _: post(good).json(), range(8)))
        assert all(a == answers[0] for a in answers)
        assert post(good).status_code == 200  # still serving after all that
    finally:
        served.__exit__(None, None, None)


def test_serve_scores_the_renewals_of_the_subscriptions_sent(promoted, renewal_uri, monkeypatch):
    """Contract 2: a request may send an account's subscription terms; its groups then say
    their segment, and an owned product its renewal risk and reasons. Without the field the
    answer is as before (customer fields null)."""
    import requests

    from buying_groups.serving.server import Limits, create_app

    _, uri, _, _ = promoted
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    app = create_app(
        "models:/buying-groups@champion",
        Limits(200_000, 50, 60.0, None),
        renewal_model_uri=renewal_uri,
    )
    events = [
        {"timestamp": f"2026-0{m}-10T10:00:00", "channel": "product", "action": "used_feature",
         "topic": "data_platform"}
        for m in range(1, 6)
    ]  # fmt: skip
    term = {"product": "data_platform", "term_start": "2025-09-01", "term_end": "2026-09-01"}
    rows = [
        {"account_id": "A1", "contact_id": "C1", "job_title": "Head of Data", "activities": events,
         "subscriptions": [term]},
        {"account_id": "A1", "contact_id": "C2", "job_title": "Data Engineer", "activities": [],
         "subscriptions": [{**term, "seats": 25}]},
        {"account_id": "B1", "contact_id": "C3", "job_title": "CISO", "activities": []},
    ]  # fmt: skip
    with running(app) as url:

        def post(records):
            body = {"dataframe_records": records}
            return requests.post(f"{url}/invocations", json=body, timeout=60)

        version = requests.get(f"{url}/version", timeout=5).json()
        assert version["contract"] == 2 and version["renewal_model"].startswith(renewal_uri)
        r = post(rows)
        assert r.status_code == 200, r.text
        by = {(p["account_id"], p["product"]): p for p in r.json()["predictions"]}
        owned = by[("A1", "data_platform")]
        assert owned["segment"] == "installed" and owned["renewal_date"] == "2026-09-01"
        assert 0 <= owned["renewal_risk"] <= 1 and len(owned["renewal_reasons"]) > 0
        assert by[("A1", "security_platform")]["segment"] == "expansion"
        assert by[("B1", "data_platform")]["segment"] == "new_logo"
        assert by[("B1", "data_platform")]["renewal_risk"] is None
        # a version-1 request: the same groups, customer fields null
        old = post([{k: v for k, v in row.items() if k != "subscriptions"} for row in rows])
        assert old.status_code == 200
        assert all(
            p["segment"] is None and p["renewal_risk"] is None for p in old.json()["predictions"]
        )
        bad = {
            "product": {**term, "product": "no_such_product"},
            "term_end": {**term, "term_end": "2025-01-01"},
            "seats": {**term, "seats": -1},
            "extra": {**term, "price": 3},
        }
        for field, wrong in bad.items():
            r = post([{**rows[0], "subscriptions": [wrong]}])
            assert r.status_code == 400 and "subscriptions[0]" in r.json()["message"], (
                field,
                r.text,
            )


def test_bg_serve_workers_answer_as_the_model_does(promoted, tmp_path):
    """``bg-serve workers=2`` (spawned processes, object strings, a prediction cache) gives
    the answers the model gives in this process, cold and from the cache, and the same 400s."""
    import os
    import socket
    import time

    import requests

    from buying_groups import tracking
    from buying_groups.serving.server import parse_payload

    _, uri, _, _ = promoted
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "BG_SERVE_TOKEN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from buying_groups.cli.serve import main; main()",
            f"port={port}",
            "workers=2",
            f"tracking.uri={uri}",
            f"hydra.run.dir={tmp_path / 'serve'}",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    bodies = [
        {
            "dataframe_records": [
                {
                    "account_id": f"A{k}",
                    "contact_id": f"C{k}-{i}",
                    "job_title": title,
                    "activities": [
                        {
                            "timestamp": "2026-03-01T10:00:00Z",
                            "action": "requested_demo",
                            "channel": "sales",
                            "topic": "security_platform",
                        }
                    ]
                    * i,
                }
                for i, title in enumerate(["CISO", "Einkaufsleiter", "Директор по ИТ", ""])
            ]
        }
        for k in range(3)
    ]
    mlflow.set_tracking_uri(uri)
    model = tracking.load_model(
        mlflow.artifacts.download_artifacts("models:/buying-groups@champion")
    )
    expected = [
        json.loads(
            model.unwrap_python_model()
            .predict(None, parse_payload(json.dumps(b).encode()))
            .to_json(orient="records", date_format="iso")
        )
        for b in bodies
    ]
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert requests.get(f"{url}/version", timeout=5).json()["alias"] == "champion"
        for _ in range(3):  # cold, then from each worker's cache
            for body, want in zip(bodies, expected, strict=True):
                r = requests.post(f"{url}/invocations", json=body, timeout=60)
                assert r.status_code == 200, r.text
                assert r.json()["predictions"] == want
        bad = {"dataframe_records": [{**bodies[0]["dataframe_records"][0], "job_title": 7}]}
        r = requests.post(f"{url}/invocations", json=bad, timeout=60)
        assert r.status_code == 400 and "job_title" in r.json()["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
