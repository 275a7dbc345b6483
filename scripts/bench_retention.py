"""Renewal risk against the recency and engagement baselines on generated data, with the
generator's group terms on and off (the ablation): one backtest per seed and setting.

    python scripts/bench_retention.py [--seeds 42 7 11] [--data demo] [--model-uri URI]

Each run generates the dataset in memory (``data.seed=<seed>``, and
``data.customers.group_effect=0`` for the ablation), predicts persona and roles from the
titles (the keyword rules, or the role model at ``--model-uri``), and runs
``bg-train-retention``'s backtest with its default settings. Prints one row per run.
"""

from __future__ import annotations

import argparse

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.config import catalog_from, config_dir
from buying_groups.data.generate import GeneratorConfig, generate
from buying_groups.qualify.groups import predict_contact_roles
from buying_groups.qualify.retention import train_retention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 11])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--model-uri", default=None, help="a role model (default: the rules)")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train_retention", overrides=[f"data={args.data}"])
    catalog = catalog_from(cfg)
    settings = OmegaConf.to_container(cfg.retention, resolve=True)
    if args.model_uri:
        import mlflow

        predict = mlflow.pyfunc.load_model(args.model_uri).predict
    else:
        predict = RulesBaseline(catalog).predict
    rows = []
    for seed in args.seeds:
        for effect in (1.0, 0.0):
            data = OmegaConf.to_container(cfg.data, resolve=True) | {"seed": seed}
            data["customers"] = {**data.get("customers", {}), "group_effect": effect}
            tables = generate(GeneratorConfig.from_config(data), catalog).tables
            roles = predict_contact_roles(predict, tables["contacts"], catalog)
            ts = tables["activities"]["timestamp"]
            result = train_retention(tables, roles, catalog, ts.min(), ts.max(), settings)
            table = result.comparison
            row = {"seed": seed, "group_effect": effect, "renewals": len(result.backtest)}
            row["at_risk"] = int(result.backtest["label"].sum())
            for method, values in table.iterrows():
                row[f"{method} precision"] = round(values["precision"], 3)
                row[f"{method} pr_auc"] = round(values["pr_auc"], 3)
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
