"""Role models side by side on a generated dataset's ground truth: role F1 per product and
per class, and persona accuracy, on the test split (and the OOD test) that ``bg-train-roles``
uses with ``labels=ground_truth``. Built for the labels=crm measurement: a model trained on
the CRM's own contact roles, judged on the truth it never saw (docs/benchmarks.md).

    python scripts/crm_label_report.py --data-dir data/demo \\
        --model crm=runs:/<run>/role_model --model ground_truth=models:/buying-group-roles/1
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from sklearn.metrics import accuracy_score, f1_score

from buying_groups.cli.train_roles import load_examples
from buying_groups.config import catalog_from, config_dir
from buying_groups.models.distill import load_role_model
from buying_groups.models.inference import decode, predict_proba
from buying_groups.taxonomy import ROLES


def report(truth: pd.DataFrame, pred: pd.DataFrame, products: list[str]) -> pd.DataFrame:
    """One row: persona accuracy, role macro-F1 overall and per product, F1 per class."""
    row = {
        "function acc": accuracy_score(truth["function"], pred["function"]),
        "seniority acc": accuracy_score(truth["seniority"], pred["seniority"]),
    }
    t_all, p_all = [], []
    for p in products:
        t, q = truth[f"role_{p}"].to_numpy(), pred[f"role_{p}"].to_numpy()
        known = pd.notna(t)
        t, q = t[known].astype(str), q[known].astype(str)
        row[f"role F1 {p}"] = f1_score(t, q, average="macro", labels=list(ROLES))
        t_all.append(t)
        p_all.append(q)
    t, q = np.concatenate(t_all), np.concatenate(p_all)
    row["role F1"] = f1_score(t, q, average="macro", labels=list(ROLES))
    per_class = f1_score(t, q, average=None, labels=list(ROLES))
    row |= {f"F1 {r}": v for r, v in zip(ROLES, per_class, strict=True)}
    return pd.Series(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", default="data/demo")
    ap.add_argument("--model", action="append", required=True, help="name=model URI")
    args = ap.parse_args()
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train_roles", overrides=[f"data_dir={args.data_dir}"])
    catalog = catalog_from(cfg)
    products = list(catalog.names)
    examples, _ = load_examples(cfg, catalog)  # the ground truth and its splits
    rows = {}
    for spec in args.model:
        name, uri = spec.split("=", 1)
        model, tokenizer = load_role_model(uri)
        for split in ("test", "test_ood"):
            part = examples[examples["split"] == split].reset_index(drop=True)
            pred = decode(model.config, predict_proba(model, tokenizer, part))
            rows[(name, split)] = report(part, pred, products)
    table = pd.DataFrame(rows).T
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).T.to_string())


if __name__ == "__main__":
    main()
