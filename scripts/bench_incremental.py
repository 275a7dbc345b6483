"""Full vs incremental batch scoring: score a data directory, change a fraction of the
contacts' titles, score again with the prediction cache, and compare the times.

    python scripts/bench_incremental.py --data-dir data/large --work /tmp/inc [--fraction 0.01]

Runs ``bg-score`` as a user would (the champion of the current MLflow store); each run's
wall time and peak memory come from ``/usr/bin/time``, its scoring time from
``summary.json``. The cache starts empty, so the first run is a full scoring.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd


def score(data: Path, out: Path, *extra: str) -> dict:
    cmd = ["/usr/bin/time", "-f", "%e %M", "bg-score", f"data_dir={data}", f"output_dir={out}"]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bg-score failed:\n{proc.stderr[-4000:]}")
    wall, kb = re.findall(r"^([\d.]+) (\d+)$", proc.stderr, flags=re.M)[-1]
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall s": float(wall),
        "peak GB": int(kb) / 1e6,
        "scoring s": summary["seconds"],
        "contacts": summary["contacts_scored"],
        **{f"role inputs {k}": v for k, v in summary["role_model_inputs"].items()},
        **{f"accounts {k}": v for k, v in summary["accounts"].items()},
        **{f"contacts {k}": v for k, v in summary["contacts"].items()},
        **{f"{k} s": v for k, v in summary["seconds_by_phase"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path("data/large"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_incremental"))
    ap.add_argument("--fraction", type=float, default=0.01)
    args = ap.parse_args()
    data = args.work / "data"
    if args.work.exists():
        shutil.rmtree(args.work)
    shutil.copytree(args.data_dir, data, ignore=shutil.ignore_patterns("*.csv", "labels"))
    out = args.work / "scores"

    full = score(data, out)
    contacts = pd.read_parquet(data / "contacts.parquet")
    step = round(1 / args.fraction)
    changed = contacts.index[::step]
    contacts.loc[changed, "job_title"] = "Head of Procurement " + contacts.loc[
        changed, "contact_id"
    ].astype(str)
    contacts.to_parquet(data / "contacts.parquet")
    incremental = score(data, out)

    table = pd.DataFrame({"full": full, f"after changing {len(changed):,} contacts": incremental})
    print(table.to_string())
    ratio = incremental["wall s"] / full["wall s"]
    print(f"incremental / full wall time: {ratio:.1%}")


if __name__ == "__main__":
    main()
