"""Bounded load test of ``bg-serve`` on loopback.

    python scripts/load_test.py                      # starts bg-serve on a free port
    python scripts/load_test.py --url http://127.0.0.1:5001/invocations   # a running server
    python scripts/load_test.py --clients 8 --seconds 30 --contacts 10 --events 20
    python scripts/load_test.py --roles --clients 1 --contacts 1 --variant onnx

Each request is one account of ``--contacts`` contacts with ``--events`` events each, built
from the demo data (real titles and events, so tokenisation and group scoring do real work).
With ``--roles`` the server serves the role model (``buying-group-roles@champion``) and each
request is ``--contacts`` contacts' ``job_title`` and ``activity_text`` (persona and roles
only, no groups). ``--variant`` starts the server with that inference variant.
``--clients`` threads send requests back to back for ``--seconds``; the script prints
requests/s, p50/p99 latency and the number of errors (any status other than 200).
Requests cycle through every demo account with enough contacts (about 500), so a title the
server has scored before comes back as often as titles repeat across accounts; ``--serve
prediction_cache=0`` measures a server that runs the role model for every request, ``--warm
60`` one after a minute of the same traffic (steady state: its workers have seen the titles).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests


def account_requests(data_dir: Path, contacts: int, events: int, n: int) -> list[dict]:
    """``n`` request bodies, each one account's first ``contacts`` contacts with their newest
    ``events`` events (accounts with enough contacts, in a fixed order)."""
    cs = pd.read_parquet(data_dir / "contacts.parquet")
    acts = pd.read_parquet(data_dir / "activities.parquet").sort_values(
        ["contact_id", "timestamp"], ascending=[True, False]
    )
    acts = acts.groupby("contact_id").head(events)
    by_contact = {
        c: [
            {
                "timestamp": t.isoformat(),
                "channel": ch,
                "action": a,
                "asset": s,
                "topic": tp,
            }
            for t, ch, a, s, tp in zip(
                g["timestamp"], g["channel"], g["action"], g["asset"], g["topic"], strict=True
            )
        ]
        for c, g in acts.groupby("contact_id")
    }
    sizes = cs.groupby("account_id").size()
    bodies = []
    for account in sizes[sizes >= contacts].index[:n]:
        rows = cs[cs["account_id"] == account].head(contacts)
        records = [
            {
                "account_id": account,
                "contact_id": r.contact_id,
                "job_title": r.job_title or "",
                "activities": by_contact.get(r.contact_id, []),
            }
            for r in rows.itertuples()
        ]
        bodies.append({"dataframe_records": records})
    return bodies


def role_requests(data_dir: Path, contacts: int, n: int) -> list[dict]:
    """``n`` request bodies of ``contacts`` contacts' model inputs (title, activity text)."""
    from buying_groups.data.examples import contact_inputs

    cs = pd.read_parquet(data_dir / "contacts.parquet").head(n * contacts)
    acts = pd.read_parquet(data_dir / "activities.parquet")
    inputs = contact_inputs(cs, acts[acts["contact_id"].isin(cs["contact_id"])])
    rows = inputs[["job_title", "activity_text"]].to_dict(orient="records")
    return [{"dataframe_records": rows[i : i + contacts]} for i in range(0, len(rows), contacts)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    port: int, model_uri: str | None, variant: str | None, extra: list[str]
) -> subprocess.Popen:
    cmd = ["bg-serve", f"port={port}"] + ([f"model_uri={model_uri}"] if model_uri else [])
    cmd += ([f"variant={variant}"] if variant else []) + extra
    env = {k: v for k, v in os.environ.items() if k != "BG_SERVE_TOKEN"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"bg-serve exited with {proc.returncode}")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("bg-serve did not answer /ping within 120 s")


def hammer(
    url: str, bodies: list[dict], clients: int, seconds: float, reconnect: bool = False
) -> dict:
    """``clients`` threads posting ``bodies`` in turn for ``seconds``; each keeps one
    connection unless ``reconnect`` (a new one per request: the server's workers, which
    each accept their own connections, all see every body)."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        session = requests if reconnect else requests.Session()
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = session.post(url, json=bodies[i % len(bodies)], timeout=60)
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                if r.status_code != 200:
                    errors.append(r.status_code)
            i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(lat),
        "requests/s": len(lat) / wall,
        "p50 ms": float(np.percentile(lat, 50)),
        "p99 ms": float(np.percentile(lat, 99)),
        "errors": len(errors),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server's /invocations (default: start bg-serve)")
    ap.add_argument("--model-uri", help="model_uri for the started bg-serve")
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--contacts", type=int, default=10)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--roles", action="store_true", help="serve and call the role model")
    ap.add_argument("--variant", help="the server's inference variant (default: the model's)")
    ap.add_argument(
        "--warm",
        type=float,
        default=0,
        help="seconds of the same traffic before timing, not counted: a server in steady "
        "state, whose workers have seen the titles (default 0: one warm-up request)",
    )
    ap.add_argument(
        "--serve",
        nargs="*",
        default=[],
        help="more bg-serve overrides, e.g. workers=1 prediction_cache=0 (a cold role model)",
    )
    args = ap.parse_args()
    if args.roles:
        args.model_uri = args.model_uri or "models:/buying-group-roles@champion"
        bodies = role_requests(Path(args.data), args.contacts, n=200)
    else:
        bodies = account_requests(Path(args.data), args.contacts, args.events, n=100_000)
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = start_server(port, args.model_uri, args.variant, args.serve)
        url = f"http://127.0.0.1:{port}/invocations"
    try:
        requests.post(url, json=bodies[0], timeout=60).raise_for_status()  # warm-up
        if args.warm:
            hammer(url, bodies, max(args.clients, 8), args.warm, reconnect=True)
        result = hammer(url, bodies, args.clients, args.seconds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    what = (
        f"{args.contacts} contact(s) of the role model"
        if args.roles
        else f"one account of {args.contacts} contacts x {args.events} events"
    )
    print(
        f"{args.clients} clients x {args.seconds:.0f}s, {what} per request, "
        f"variant {args.variant or 'as recorded'}"
        + (f", bg-serve {' '.join(args.serve)}" if args.serve else "")
        + (f", after {args.warm:.0f}s of the same traffic (warm)" if args.warm else "")
    )
    cells = [f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()]
    print(" | ".join(cells))


if __name__ == "__main__":
    main()
