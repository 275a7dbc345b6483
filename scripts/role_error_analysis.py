"""Where a role model's macro-F1 comes from, and how sure the figures are.

    python scripts/role_error_analysis.py [--model-uri models:/buying-group-roles@champion]
                                          [--data-dir data/demo] [--bootstrap 1000]

Scores the in-distribution and OOD test splits (the same examples and splits as
``bg-train-roles``) with the role model and with TF-IDF + logistic regression fitted on the
same training split, then prints per split: the role report per class for both, macro-F1
with and without the rarest class, and a bootstrap over contacts (95% interval of the
model's role macro-F1 and of its lead over TF-IDF). Macro-F1 weighs each role equally, so a
class with a few dozen pairs (``champion``) moves it by whole points; the bootstrap says how
far a floor such as 0.80 is from the noise.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from sklearn.metrics import classification_report, f1_score

from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.train_roles import load_examples
from buying_groups.config import catalog_from, config_dir
from buying_groups.models.distill import load_role_model
from buying_groups.models.inference import decode, predict_proba


def stacked_roles(frame: pd.DataFrame, rows: np.ndarray, products: list[str]) -> np.ndarray:
    return np.concatenate([frame[f"role_{p}"].to_numpy()[rows] for p in products])


def role_f1(truth, pred, rows, products, labels) -> float:  # noqa: ANN001
    t, q = stacked_roles(truth, rows, products), stacked_roles(pred, rows, products)
    known = pd.notna(t)
    return f1_score(t[known].astype(str), q[known].astype(str), average="macro", labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-uri", default="models:/buying-group-roles@champion")
    ap.add_argument("--data-dir", default="data/demo")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the contacts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train_roles", overrides=[f"data_dir={args.data_dir}"])
    catalog = catalog_from(cfg)
    products = list(catalog.names)
    examples, _ = load_examples(cfg, catalog)
    evaluation = examples[examples["split"].isin(["test", "test_ood"])].reset_index(drop=True)

    model, tokenizer = load_role_model(args.model_uri)  # fp32
    model_pred = decode(model.config, predict_proba(model, tokenizer, evaluation))
    tfidf = TfidfBaseline(catalog).fit(examples[examples["split"] == "train"])
    tfidf_pred = tfidf.predict(evaluation).reset_index(drop=True)

    train_roles = stacked_roles(examples, np.flatnonzero(examples["split"] == "train"), products)
    counts = pd.Series(train_roles).value_counts()
    print(f"{args.model_uri} on {args.data_dir}; training role pairs per class: {counts.to_dict()}")
    rarest = str(counts.idxmin())
    labels = sorted(counts.index.astype(str))
    others = [c for c in labels if c != rarest]
    rng = np.random.default_rng(args.seed)
    for split in ("test", "test_ood"):
        rows = np.flatnonzero((evaluation["split"] == split).to_numpy())
        truth = stacked_roles(evaluation, rows, products)
        known = pd.notna(truth)
        for name, pred in (("model", model_pred), ("tfidf_logreg", tfidf_pred)):
            print(f"\n== {split}: {name}")
            guess = stacked_roles(pred, rows, products)
            print(classification_report(truth[known], guess[known], digits=3, zero_division=0))
        model_f1 = role_f1(evaluation, model_pred, rows, products, labels)
        tfidf_f1 = role_f1(evaluation, tfidf_pred, rows, products, labels)
        print(
            f"{split}: role macro-F1 model {model_f1:.4f}, tfidf {tfidf_f1:.4f} "
            f"(lead {model_f1 - tfidf_f1:+.4f}); without {rarest} "
            f"({int((truth[known] == rarest).sum())} pairs): model "
            f"{role_f1(evaluation, model_pred, rows, products, others):.4f}, tfidf "
            f"{role_f1(evaluation, tfidf_pred, rows, products, others):.4f}"
        )
        scores, leads = [], []
        for _ in range(args.bootstrap):
            sample = rng.choice(rows, len(rows), replace=True)
            a = role_f1(evaluation, model_pred, sample, products, labels)
            scores.append(a)
            leads.append(a - role_f1(evaluation, tfidf_pred, sample, products, labels))
        lo, hi = np.percentile(scores, [2.5, 97.5])
        llo, lhi = np.percentile(leads, [2.5, 97.5])
        print(
            f"{split}: bootstrap over {len(rows):,} contacts ({args.bootstrap}x): model role "
            f"macro-F1 95% interval [{lo:.3f}, {hi:.3f}] (sd {np.std(scores):.3f}); "
            f"lead over tfidf [{llo:+.3f}, {lhi:+.3f}]"
        )


if __name__ == "__main__":
    main()
