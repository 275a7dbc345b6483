"""Role models and both baselines on the bundled real job titles, per language.

    python scripts/real_titles_report.py --model-uri models:/buying-group-roles@champion

Every ``--model-uri`` (an MLflow model URI or a saved model directory) runs as its recorded
inference variant; the rules baseline needs nothing; TF-IDF is fitted on the training split
of ``--data-dir`` plus the title lists, as ``bg-train-roles`` fits it. One table: accuracy
and macro-F1 of function and seniority, overall and for each language with 50+ titles;
``--out`` also writes it as CSV. The set is evaluation only (docs/data.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.train_roles import load_examples
from buying_groups.config import catalog_from, config_dir
from buying_groups.data.real_titles import real_title_eval
from buying_groups.models.distill import load_role_model
from buying_groups.models.evaluation import real_title_metrics, real_title_table
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.runtime import use_variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-uri", nargs="*", default=["models:/buying-group-roles@champion"])
    ap.add_argument("--data-dir", default="data/demo", help="TF-IDF's training data")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = ap.parse_args()

    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train_roles", overrides=[f"data_dir={args.data_dir}"])
    catalog = catalog_from(cfg)
    real = real_title_eval()
    examples, _ = load_examples(cfg, catalog)
    preds = {
        "rules": RulesBaseline(catalog).predict(real),
        "tfidf_logreg": TfidfBaseline(catalog)
        .fit(examples[examples["split"] == "train"])
        .predict(real),
    }
    for uri in args.model_uri:
        model, tokenizer = load_role_model(uri)
        use_variant(model, tokenizer, model.config.inference_variant)
        preds[uri] = decode(model.config, predict_proba(model, tokenizer, real))
    table = pd.concat({n: real_title_table(real_title_metrics(real, p)) for n, p in preds.items()})
    counts = real["language"].value_counts()
    table.insert(0, "titles", [counts.sum() if k == "all" else counts[k] for _, k in table.index])
    print(f"{len(real):,} real job titles (never trained on)")
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string())
    if args.out is not None:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
