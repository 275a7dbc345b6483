"""Benchmark: buying-group assembly (group state at every monthly snapshot) on a dataset.

    python scripts/bench_groups.py --data-dir data/large   # after: bg-generate data=large

Roles come from the rules baseline here so that the timing is the assembly's own (the role
model's inference cost is benchmarked in scripts/bench_role_pyfunc.py). Prints wall times
and the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.config import config_dir
from buying_groups.data.dataset import load_dataset
from buying_groups.data.splits import snapshot_dates
from buying_groups.qualify.groups import add_labels, group_states, predict_contact_roles
from buying_groups.qualify.scoring_baselines import lead_scores
from buying_groups.taxonomy import Catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/large")
    args = parser.parse_args()
    catalog = Catalog.from_config(
        OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "catalog" / "default.yaml"))
    )
    t0 = time.perf_counter()
    tables, _ = load_dataset(Path(args.data_dir), catalog)
    t_load = time.perf_counter() - t0
    ts = tables["activities"]["timestamp"]
    snaps = snapshot_dates(ts.min().normalize(), ts.max())

    t0 = time.perf_counter()
    roles = predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)
    t_roles = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = group_states(tables, roles, catalog, snaps)
    groups = add_labels(groups, tables["opportunities"])
    t_groups = time.perf_counter() - t0
    t0 = time.perf_counter()
    lead_scores(tables, catalog, snaps)
    t_leads = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        pd.Series(
            {
                "contacts": len(tables["contacts"]),
                "activities": len(tables["activities"]),
                "snapshots": len(snaps),
                "group rows": len(groups),
                "load + validate (s)": round(t_load, 1),
                "roles, rules baseline (s)": round(t_roles, 1),
                "group state + labels (s)": round(t_groups, 1),
                "MQL/MQA scores (s)": round(t_leads, 1),
                "peak memory (MB)": round(peak_mb),
            }
        ).to_string()
    )


if __name__ == "__main__":
    main()
