"""How far a role model's persona holds when a title carries words that say nothing about the
person (an employer, a place, a work mode, a gender tag, as CRM and CV exports write them) or
a typing slip.

    python scripts/title_invariance.py --model-uri models:/buying-group-roles@champion

Each context of ``buying_groups.models.invariance`` is applied to every title of the
real-title evaluation set (or ``--titles``, a CSV with ``title,function,seniority,language``);
the table gives, per context, the share of titles whose function and seniority stay what the
bare title got, and the accuracy with the context against the bare titles'. ``employer``
writes "at <company>" in the title's own language ("bei Globex GmbH", "chez Globex",
"в Globex"); ``typo`` swaps two letters of the longest word. ``--examples N`` prints N titles
whose function changed. ``bg-train-roles`` logs the contexts of ``real_title_contexts``
(default: employer, typo) for every model; this runs all of them on any model. The figures
are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from buying_groups.data.real_titles import real_title_eval
from buying_groups.models.distill import load_role_model
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.invariance import (
    CONTEXTS,
    context_invariance,
    invariance_table,
    with_title_context,
)
from buying_groups.models.runtime import use_variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-uri", default="models:/buying-group-roles@champion")
    ap.add_argument("--titles", type=Path, default=None, help="another labelled list")
    ap.add_argument("--variant", default=None, help="e.g. fp32 (default: the model's own)")
    ap.add_argument("--examples", type=int, default=0, help="print titles whose function moved")
    args = ap.parse_args()

    real = real_title_eval(args.titles)
    real = real[real["job_title"].fillna("").str.strip() != ""].reset_index(drop=True)
    model, tokenizer = load_role_model(args.model_uri)
    use_variant(model, tokenizer, args.variant or model.config.inference_variant)

    def persona(frame: pd.DataFrame) -> pd.DataFrame:
        return decode(model.config, predict_proba(model, tokenizer, frame))

    bare = persona(real)
    metrics, preds = context_invariance(persona, real, bare, CONTEXTS)
    table = invariance_table(metrics)
    for head in ("function", "seniority"):
        table[f"{head}_accuracy_bare"] = (bare[head].to_numpy() == real[head].to_numpy()).mean()
    table.insert(0, "example", [with_title_context(real.head(1), c)["job_title"].iat[0]
                                for c in table.index])  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_colwidth", 40):
        print(f"{len(real):,} titles, {args.model_uri}")
        print(table.round(3).to_string())
        if args.examples:
            moved = []
            for name, got in preds.items():
                changed = (got["function"] != bare["function"]).to_numpy()
                texts = with_title_context(real, name)["job_title"].to_numpy()
                moved.append(
                    pd.DataFrame(
                        {
                            "context": name,
                            "title": texts[changed],
                            "bare": bare["function"].to_numpy()[changed],
                            "with context": got["function"].to_numpy()[changed],
                            "label": real["function"].to_numpy()[changed],
                        }
                    )
                )
            flips = pd.concat(moved).sample(frac=1.0, random_state=0).head(args.examples)
            print(flips.to_string(index=False))


if __name__ == "__main__":
    main()
