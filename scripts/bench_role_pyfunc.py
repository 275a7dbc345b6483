"""Throughput of the logged role-model pyfunc on demo inputs (all products at once).

    python scripts/bench_role_pyfunc.py --model-uri models:/m-... [--n 2000] [--data data/demo]

Loads the model through ``mlflow.pyfunc.load_model`` exactly as a batch job would, renders
activity text for ``n`` contacts, and times ``predict`` (tokenisation included) after one
warm-up call. Prints contacts/second.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mlflow
import pandas as pd
import torch

from buying_groups.data.examples import contact_inputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-uri", required=True)
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    contacts = pd.read_parquet(Path(args.data) / "contacts.parquet").head(args.n)
    acts = pd.read_parquet(Path(args.data) / "activities.parquet")
    inputs = contact_inputs(contacts, acts[acts["contact_id"].isin(contacts["contact_id"])])
    frame = inputs[["job_title", "activity_text"]]
    model = mlflow.pyfunc.load_model(args.model_uri)
    model.predict(frame.head(64))  # warm-up
    started = time.perf_counter()
    out = model.predict(frame)
    seconds = time.perf_counter() - started
    print(
        f"{len(out)} contacts x {sum(c.endswith('_probs') for c in out.columns) - 2} products "
        f"in {seconds:.1f}s: {len(out) / seconds:.0f} contacts/s "
        f"(torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
