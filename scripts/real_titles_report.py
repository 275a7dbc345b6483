"""Role models and both baselines on the bundled real job titles, per language.

    python scripts/real_titles_report.py --model-uri models:/buying-group-roles@champion

Every ``--model-uri`` (an MLflow model URI or a saved model directory) runs as its recorded
inference variant; the rules baseline needs nothing; TF-IDF is fitted on the training split
of ``--data-dir`` plus the title lists, as ``bg-train-roles`` fits it. One table: accuracy
and macro-F1 of function and seniority, and of the roles each title's labelled persona
implies with no activity, overall and for each language with 50+ titles;
``--out`` also writes it as CSV. The set is evaluation only (docs/data.md).

Each model's macro-F1 minus each baseline's follows, per language, with the 90% paired
bootstrap interval of ``bg-train-roles``' gap table. ``--source written-eval-4`` scores only
the titles whose ``source`` starts so (there: the 560 abbreviated ones; ``written-eval``: all
2,064 added on 2026-12-06; docs/data.md).

``--titles`` scores another labelled list instead, function only, leaving out every title the
training data holds: e.g. the national occupation names no default training reads,
``--titles src/buying_groups/resources/titles/occupation_titles.csv`` (its seniority is the
rules' keyword parse, no label; docs/data.md). ``--seniority`` scores a list's seniority too,
where it is a label: ``--titles scripts/probe_de_abbreviated_heads.csv --seniority``
(90 German titles whose compounds end in an abbreviated head, docs/benchmarks.md).

``--parts`` also scores each model's two readers apart, its title expert alone and its
transformer alone (no pooling), and prints the model's macro-F1 minus each with the paired
bootstrap interval of ``bg-train-roles``' gap table: what pooling adds, per language.
``--variant`` runs every model as that inference variant instead of its recorded one.

``--confidence`` also prints, per model, how far its reported function probability can be
trusted on these titles: the share at or above 0.5 / 0.7 / 0.8 / 0.9, their accuracy and the
accuracy of those below (the titles to send to review), and the calibration error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.train_roles import load_examples
from buying_groups.config import catalog_from, config_dir
from buying_groups.data.real_titles import TRAINING_LISTS, real_title_eval, title_key
from buying_groups.models.calibration import CALIBRATION_TITLES
from buying_groups.models.distill import load_role_model
from buying_groups.models.evaluation import (
    confidence_table,
    real_title_gaps,
    real_title_metrics,
    real_title_table,
)
from buying_groups.models.inference import clean_inputs, decode, predict_proba
from buying_groups.models.runtime import use_variant


def parts(model, tokenizer, real: pd.DataFrame) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    """The model's title expert alone (argmax of its own probabilities) and its transformer
    alone (the expert detached while it predicts)."""
    expert, cfg = model.title_expert, model.config
    guess = expert.predict_proba(clean_inputs(real)[0])  # the titles as written (no speller)
    alone = {
        head: np.asarray(labels, dtype=object)[guess[head].argmax(1)]
        for head, labels in (("function", cfg.functions), ("seniority", cfg.seniorities))
    }
    model.title_expert = None
    try:
        net = decode(cfg, predict_proba(model, tokenizer, real))
    finally:
        model.title_expert = expert
    return {"expert alone": pd.DataFrame(alone), "transformer alone": net}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-uri", nargs="*", default=["models:/buying-group-roles@champion"])
    ap.add_argument("--data-dir", default="data/demo", help="TF-IDF's training data")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    ap.add_argument("--parts", action="store_true", help="also the expert and transformer alone")
    ap.add_argument("--variant", default=None, help="e.g. fp32 (default: each model's own)")
    ap.add_argument("--source", default=None, help="only titles whose source starts so")
    ap.add_argument("--titles", type=Path, default=None, help="another labelled list (function)")
    ap.add_argument("--seniority", action="store_true", help="--titles' seniority is a label")
    ap.add_argument("--confidence", action="store_true", help="accuracy by reported probability")
    args = ap.parse_args()
    if args.seniority and not args.titles:
        ap.error("--seniority needs --titles (the evaluation set's seniority is always scored)")

    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train_roles", overrides=[f"data_dir={args.data_dir}"])
    catalog = catalog_from(cfg)
    real = real_title_eval(args.titles)
    if args.source:
        real = real[real["source"].str.startswith(args.source)].reset_index(drop=True)
    examples, _ = load_examples(cfg, catalog)
    if args.titles:  # never trained on: not a title of the training data (lists included)
        seen = set(examples["job_title"].map(title_key))
        real = real[~real["job_title"].map(title_key).isin(seen)].reset_index(drop=True)
    preds = {
        "rules": RulesBaseline(catalog).predict(real),
        "tfidf_logreg": TfidfBaseline(catalog)
        .fit(examples[examples["split"] == "train"])
        .predict(real),
    }
    gaps = []
    for uri in args.model_uri:
        model, tokenizer = load_role_model(uri)
        use_variant(model, tokenizer, args.variant or model.config.inference_variant)
        preds[uri] = decode(model.config, predict_proba(model, tokenizer, real))
        versus = {uri: preds[uri], "rules": preds["rules"], "tfidf_logreg": preds["tfidf_logreg"]}
        if args.parts and getattr(model, "title_expert", None) is not None:
            alone = parts(model, tokenizer, real)
            versus.update(alone)
            preds.update({f"{uri} {name}": p for name, p in alone.items()})
        gaps.append(real_title_gaps(real, versus, model=uri).assign(model=uri))
    table = pd.concat(
        {n: real_title_table(real_title_metrics(real, p, catalog)) for n, p in preds.items()}
    )
    if args.titles and not args.seniority:
        table = table[[c for c in table.columns if c.startswith("function")]]
        gaps = [g[g["head"] == "function"] for g in gaps]
    counts = real["language"].value_counts()
    table.insert(0, "titles", [counts.sum() if k == "all" else counts[k] for _, k in table.index])
    print(f"{len(real):,} real job titles (never trained on)")
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string())
        for gap in gaps:
            print(f"\n{gap['model'].iloc[0]}: macro-F1 minus each (90% paired bootstrap interval)")
            print(gap.drop(columns="model").round(3).to_string(index=False))
        fitted = cfg.get("persona_calibration") or {}
        if (
            args.confidence
            and args.titles
            and TRAINING_LISTS.get(fitted.get("list")) == args.titles.name
        ):
            print(
                f"\nnote: the function temperature was fitted on up to "
                f"{fitted.get('max_titles') or CALIBRATION_TITLES} of these titles"
            )
        for uri in args.model_uri if args.confidence else []:
            conf = confidence_table(real, preds[uri])
            err = conf.attrs["calibration_error"]
            print(f"\n{uri}: function accuracy by its reported probability (error {err:.3f})")
            print(conf.round(3).to_string(index=False))
    if args.out is not None:
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
