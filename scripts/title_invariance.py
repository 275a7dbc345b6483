"""How far a role model's persona holds when a title carries words that say nothing about the
person: an employer, a place, a work mode, a gender tag, as CRM and CV exports write them.

    python scripts/title_invariance.py --model-uri models:/buying-group-roles@champion

Each context is appended to every title of the real-title evaluation set (or ``--titles``, a
CSV with ``title,function,seniority,language``); the table gives, per context, the share of
titles whose function and seniority stay what the bare title got, and the accuracy with the
context against the bare titles'. ``employer`` writes "at <company>" in the title's own
language ("bei Globex GmbH", "chez Globex", "в Globex"). ``--examples N`` prints N titles
whose function changed. A behavioural check in the spirit of the invariance tests of
``tests/test_behaviour.py``, on real titles and the full model; the figures are in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from buying_groups.data.real_titles import real_title_eval
from buying_groups.models.distill import load_role_model
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.runtime import use_variant

COMPANY = "Globex"  # a name that is no word of any title language
EMPLOYER = {
    "en": " at {c} Inc.",
    "de": " bei {c} GmbH",
    "fr": " chez {c}",
    "es": " en {c}",
    "it": " presso {c}",
    "pt": " na {c}",
    "nl": " bij {c}",
    "pl": " w {c}",
    "ru": " в {c}",
}
CONTEXTS = {
    "employer": lambda t, lang: t + EMPLOYER.get(lang, EMPLOYER["en"]).format(c=COMPANY),
    "@ employer": lambda t, lang: f"{t} @ {COMPANY}",
    "| employer": lambda t, lang: f"{t} | {COMPANY}",
    "(employer)": lambda t, lang: f"{t} ({COMPANY})",
    "- city": lambda t, lang: f"{t} - Berlin",
    "region": lambda t, lang: f"{t}, EMEA",
    "(remote)": lambda t, lang: f"{t} (Remote)",
    "(m/w/d)": lambda t, lang: f"{t} (m/w/d)",
    "ALL CAPS": lambda t, lang: t.upper(),
}


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

    def persona(titles: pd.Series) -> pd.DataFrame:
        frame = pd.DataFrame({"job_title": titles.to_numpy(), "activity_text": ""})
        return decode(model.config, predict_proba(model, tokenizer, frame))

    bare = persona(real["job_title"])
    bare_acc = {head: (bare[head] == real[head]).mean() for head in ("function", "seniority")}
    rows, moved = [], []
    for name, add in CONTEXTS.items():
        pairs = zip(real["job_title"], real["language"], strict=True)
        titles = pd.Series([add(t, lang) for t, lang in pairs])
        got = persona(titles)
        row = {"context": name, "example": titles.iloc[0]}
        for head in ("function", "seniority"):
            row[f"{head} same"] = (got[head] == bare[head]).mean()
            row[f"{head} acc"] = (got[head] == real[head]).mean()
            row[f"{head} acc bare"] = bare_acc[head]
        rows.append(row)
        changed = got["function"] != bare["function"]
        moved.append(
            pd.DataFrame(
                {
                    "context": name,
                    "title": titles[changed],
                    "bare": bare["function"][changed],
                    "with context": got["function"][changed],
                    "label": real["function"][changed],
                }
            )
        )
    with pd.option_context("display.width", 200, "display.max_colwidth", 40):
        print(f"{len(real):,} titles, {args.model_uri}")
        print(pd.DataFrame(rows).set_index("context").round(3).to_string())
        if args.examples:
            flips = pd.concat(moved).sample(frac=1.0, random_state=0).head(args.examples)
            print(flips.to_string(index=False))


if __name__ == "__main__":
    main()
