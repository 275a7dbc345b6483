"""Write ``src/buying_groups/resources/titles/occupation_titles.csv``: real occupation names in
German, French, Portuguese, Spanish, Italian, Polish, Dutch and English, with the function
labellers gave each after docs/labelling-guide.md and the seniority of the rules baseline's
keyword parser (masked where it matched none, as for the BLS and ESCO lists).

The names are the occupation lists two MIT-licensed packages bundle (their origins, as the
packages state them, in docs/data.md):

- ``faker`` 40.63.0, ``faker/providers/job/<locale>``: de_AT (the Austrian careers
  database bic.at, each job in its neutral, female and male form), fr_FR (ONISEP, via
  data.gouv.fr), pt_BR (CBO 2002, Brazil's occupation classification), es (ISCO-08's
  Spanish titles), pl_PL, en_US (the default English list, British in style: "Accountant,
  chartered"; no origin stated);
- ``mimesis`` 22.2.0, ``mimesis/datasets/<lang>/person.json``, key ``occupation``: it, pl,
  nl, de, fr, es, pt, en.

Labellers saw one form of each job (``--dump`` writes them: key, title, language) and gave
``key,function`` (``drop`` for a name that is no title; their labels are
``scripts/occupation_labels.csv``); every form of a job gets its label. A name that two
jobs label differently ("Administrator": IT in the Polish list, administrative in the
English one) is left out as ambiguous; a name two jobs label the same is kept once, under the
language of the list read first (the order below).

    pip download --no-deps faker==40.63.0 mimesis==22.2.0 -d /tmp/occ
    for w in /tmp/occ/*.whl; do unzip -qo "$w" -d /tmp/occ; done
    python scripts/build_occupation_titles.py --packages /tmp/occ --dump jobs.csv
    python scripts/build_occupation_titles.py --packages /tmp/occ \
        --labels scripts/occupation_labels.csv
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

import pandas as pd

from buying_groups.baselines.rules import parse_seniority
from buying_groups.data.real_titles import title_key, write_title_list
from buying_groups.taxonomy import FUNCTIONS

FAKER = {"de_AT": "de", "fr_FR": "fr", "pt_BR": "pt", "es": "es", "pl_PL": "pl", "en_US": "en"}
MIMESIS = ("it", "pl", "nl", "de", "fr", "es", "pt", "en")


def jobs(packages: Path) -> pd.DataFrame:
    """One row per job form: ``key`` (the job's), ``title``, ``language``, ``source``; the
    first form of each key is the one labellers saw."""
    sys.path.insert(0, str(packages))  # the unpacked wheels: only the data modules are read
    rows: list[tuple[str, str, str, str]] = []
    for locale, lang in FAKER.items():
        provider = importlib.import_module(f"faker.providers.job.{locale}").Provider
        if hasattr(provider, "jobs_dict"):  # de_AT: neutral ("Leiter*in"), female, male
            for i, job in enumerate(provider.jobs_dict):
                for form in ("neutral", "female", "male"):
                    rows.append((f"faker-{locale}-{i}", job[form], lang, f"faker {locale}"))
        else:
            names = [*provider.jobs, *getattr(provider, "jobs_female", [])]
            source = f"faker {locale}"
            rows += [(f"faker-{locale}-{i}", n, lang, source) for i, n in enumerate(names)]
    for lang in MIMESIS:
        data = json.loads((packages / "mimesis" / "datasets" / lang / "person.json").read_text())
        for i, name in enumerate(data["occupation"]):
            for form in re.split(r"\s+/\s+", name):  # "Anwalt / Anwältin": two forms
                rows.append((f"mimesis-{lang}-{i}", form, lang, "mimesis"))
    frame = pd.DataFrame(rows, columns=["key", "title", "language", "source"])
    frame["title"] = frame["title"].str.strip()
    return frame[frame["title"] != ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packages", type=Path, required=True, help="the unpacked wheels")
    ap.add_argument("--dump", type=Path, help="write the jobs to label (key,title,language)")
    ap.add_argument("--labels", type=Path, nargs="*", default=[], help="key,function")
    args = ap.parse_args()
    forms = jobs(args.packages)
    if args.dump:
        shown = forms.drop_duplicates("key")
        shown = shown[~shown["title"].map(title_key).duplicated()]
        shown[["key", "title", "language"]].to_csv(args.dump, index=False)
        print(f"{len(shown)} jobs to label -> {args.dump}")
        return
    labels = pd.concat([pd.read_csv(p, dtype=str) for p in args.labels], ignore_index=True)
    bad = ~labels["function"].isin([*FUNCTIONS, "drop"]) | labels["key"].duplicated(keep=False)
    if bad.any():
        raise ValueError(f"unknown functions or keys labelled twice:\n{labels[bad].head(20)}")
    table = forms.merge(labels[["key", "function"]], on="key", how="left")
    table["tkey"] = table["title"].map(title_key)
    labelled = table["function"].notna()
    # a form not shown (its name equals a shown one: "accessoiriste" is both genders) is
    # that one's; any other unlabelled job is reported
    unlabelled = table[~labelled & ~table["tkey"].isin(table.loc[labelled, "tkey"])]
    if len(unlabelled):
        print(f"{unlabelled['key'].nunique()} jobs without a label, left out:")
        print(unlabelled.head(20).to_string())
    table = table[labelled & (table["function"] != "drop")].drop_duplicates(["tkey", "function"])
    table = table[~table["tkey"].duplicated(keep=False)]  # one name, two labels: ambiguous
    out = pd.DataFrame(
        {
            "title": table["title"],
            "function": table["function"],
            "seniority": table["title"].map(parse_seniority),
            "language": table["language"],
            "source": table["source"],
        }
    )
    write_title_list(out, "occupation_titles.csv")


if __name__ == "__main__":
    main()
