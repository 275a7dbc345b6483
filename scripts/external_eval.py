"""Role models on a second, independently generated dataset: a larger untouched sample for
telling apart models whose demo test figures lie within seed-to-seed noise.

    bg-generate data.seed=7 data.n_accounts=2500 data.name=eval7 output_dir=/tmp/eval7
    python scripts/external_eval.py --data-dir /tmp/eval7 \
        --model-uri models:/buying-group-roles/1 [more URIs or saved model directories]

The models and a TF-IDF baseline (fitted on the training split of ``--train-dir``, the data
the models were trained on) score the same contacts of ``--data-dir``: every contact of its
OOD-vocabulary accounts (``ood``) and a seeded sample of the others (``in_dist``), never the
bundled title lists' rows, which the models train on. Models
run as ONNX Runtime fp32 where installed (the same outputs as PyTorch fp32, ~2x faster),
else as PyTorch fp32. One table, macro-F1 per head; ``--out`` also writes it as CSV.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.train_roles import load_examples
from buying_groups.config import catalog_from, config_dir
from buying_groups.evaluate import evaluate_predictions, metrics_table
from buying_groups.models.distill import load_role_model
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.runtime import VariantUnavailable, use_variant
from buying_groups.taxonomy import Catalog


def examples_of(data_dir: str, *overrides: str) -> tuple[pd.DataFrame, Catalog]:
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train_roles", overrides=[f"data_dir={data_dir}", *overrides])
    catalog = catalog_from(cfg)
    examples, _ = load_examples(cfg, catalog)
    return examples, catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="the independently generated dataset")
    ap.add_argument("--train-dir", default="data/demo", help="what the models were trained on")
    ap.add_argument("--model-uri", nargs="+", default=["models:/buying-group-roles@champion"])
    ap.add_argument("--in-dist", type=int, default=6000, help="in-distribution contacts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = ap.parse_args()

    # The generated contacts only: the bundled title lists' rows are the models' training
    # titles (and their copies), not an independent sample.
    examples, catalog = examples_of(args.data_dir, "title_lists=[]")
    products = list(catalog.names)
    ood = examples["split"] == "test_ood"
    in_dist = examples[~ood].sample(min(args.in_dist, int((~ood).sum())), random_state=args.seed)
    rows = pd.concat([in_dist.assign(group="in_dist"), examples[ood].assign(group="ood")])
    rows = rows.reset_index(drop=True)
    print(f"{args.data_dir}: {len(in_dist)} in-distribution and {int(ood.sum())} OOD contacts")

    train, _ = examples_of(args.train_dir)
    tfidf = TfidfBaseline(catalog).fit(train[train["split"] == "train"])
    preds = {"tfidf_logreg": tfidf.predict(rows).reset_index(drop=True)}
    for uri in args.model_uri:
        model, tokenizer = load_role_model(uri)  # fp32
        with contextlib.suppress(VariantUnavailable):  # the same outputs, ~2x faster
            use_variant(model, tokenizer, "onnx")
        preds[uri] = decode(model.config, predict_proba(model, tokenizer, rows))

    table = pd.concat(
        {
            name: metrics_table(evaluate_predictions(rows, pred, products, group_col="group"))
            for name, pred in preds.items()
        }
    )
    table = table[[c for c in table.columns if c.endswith("macro_f1")]]
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.round(4).to_string())
    if args.out is not None:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
