"""Real job titles: the held-out evaluation set and the title lists a role model learns from.

Two kinds of bundled lists (``resources/titles/``, provenance and licences in docs/data.md):

* ``real_titles_eval.csv``: real titles, labelled one by one after docs/labelling-guide.md, in
  nine languages. Evaluation only: nothing trains or is tuned on it, and every training list
  is de-duplicated against it (``knowledge_examples``).
* training lists (``bls``: BLS occupation titles with distant labels, ``esco``: ESCO
  occupation titles labelled one by one, ``curated``: a multilingual list labelled one by
  one, ``occupations``: national occupation names in eight languages labelled one by
  one, opt-in and a second real-title check): *persona knowledge* the generator lacks. They
  enter training as title-only contacts: no activity, so their roles are the ones the spec's
  rules give their persona (``title_list_roles``; masked otherwise).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from buying_groups.baselines.rules import match_seniority
from buying_groups.data.io import atomic_write
from buying_groups.data.splits import unit_hash
from buying_groups.data.title_context import with_context
from buying_groups.data.title_typos import with_typos
from buying_groups.taxonomy import FUNCTIONS, SENIORITIES, Catalog, Product, assign_roles

RESOURCE_DIR = Path(__file__).resolve().parent.parent / "resources" / "titles"
EVAL_FILE = "real_titles_eval.csv"
TRAINING_LISTS = {
    "bls": "bls_titles.csv",
    "esco": "esco_titles.csv",
    "occupations": "occupation_titles.csv",
    "curated": "curated_titles.csv",
}
# lists whose seniority is the rules parser's guess, not a label (masked where it matched none)
PARSED_SENIORITY = ("bls", "esco", "occupations")
# A title in two lists keeps the labels of the list labelled most directly: the curated titles
# one by one after the guide, ESCO's and the occupation names' function one by one (their
# seniority parsed), BLS' function from its occupation group. In the order named, BLS'
# "Copywriter" (other) and ESCO's "Project Manager" (a parsed manager) overrode the curated
# labels (marketing; professional).
LABEL_PRECEDENCE = ("curated", "esco", "occupations", "bls")
COLUMNS = ("title", "function", "seniority", "language")
# Languages with fewer labelled titles than this get no per-language figures (too noisy).
MIN_LANGUAGE_TITLES = 50


def title_key(title: str) -> str:
    """Case-, accent- and punctuation-blind form of a title (for de-duplication)."""
    text = unicodedata.normalize("NFKD", str(title).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def read_title_list(path: Path | str) -> pd.DataFrame:
    """A labelled title list; ``ValueError`` naming the file, row and column of a bad cell."""
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name}: missing column(s) {missing}")
    allowed = {"function": set(FUNCTIONS), "seniority": set(SENIORITIES)}
    for col, values in allowed.items():
        bad = ~frame[col].isin(values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path.name}, line {i + 2}, column '{col}': unknown value {frame[col].iloc[i]!r}"
            )
    empty = frame["title"].str.strip() == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(f"{path.name}, line {i + 2}, column 'title': empty title")
    return frame


def write_title_list(frame: pd.DataFrame, name: str) -> Path:
    """Write a title list (``COLUMNS`` and ``source``) to ``RESOURCE_DIR / name``, sorted by
    title, atomically; print its size and functions (the build scripts' report)."""
    path = RESOURCE_DIR / name
    frame = frame.sort_values("title", kind="stable")
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    print(f"{len(frame)} titles -> {path}")
    print(frame["function"].value_counts().to_string())
    return path


def real_title_eval(path: Path | str | None = None) -> pd.DataFrame:
    """The evaluation set as model inputs: ``job_title``, empty ``activity_text``, the truth
    (``function``, ``seniority``), ``language`` and ``source``."""
    frame = read_title_list(path or RESOURCE_DIR / EVAL_FILE)
    out = frame.rename(columns={"title": "job_title"})
    out["activity_text"] = ""
    keep = ["job_title", "activity_text", "function", "seniority", "language"]
    keep += [c for c in ("source",) if c in out.columns]
    return out[keep].reset_index(drop=True)


def persona_roles(frame: pd.DataFrame, product: Product) -> np.ndarray:
    """The role the spec's rules give each persona (``function``, ``seniority``) for
    ``product`` with no advocacy, as a title-only contact is labelled and a real title is
    judged; where the seniority is unknown, the role every seniority would give, else
    unknown (None)."""
    zero = np.zeros(len(frame))
    known = frame["seniority"].notna().to_numpy()
    seniority = frame["seniority"].where(known, SENIORITIES[0])
    out = assign_roles(frame["function"], seniority, zero, product).astype(object)
    each = [
        assign_roles(frame["function"], np.full(len(frame), s), zero, product) for s in SENIORITIES
    ]
    same = np.all([e == each[0] for e in each], axis=0)
    return np.where(known | same, out, None)


def knowledge_examples(
    sources: Iterable[str],
    catalog: Catalog,
    seed: int = 0,
    case_noise: float = 0.15,
    exclude: Iterable[str] | None = None,
    validation_share: float = 0.15,
    repeat: dict[str, int] | None = None,
    roles: bool = True,
    context_noise: float = 0.0,
    typo_noise: float = 0.0,
) -> pd.DataFrame:
    """Title-only contacts from the named training lists, shaped like labelled examples
    (``title_kind`` ``knowledge``; no advocacy, as there is no activity). With ``roles``
    (``title_list_roles``) their roles are the ones the spec's rules give their persona with no
    advocacy (``taxonomy.assign_roles``, as the generator labels its contacts; unknown where
    the seniority is and would decide): the role head then learns from real titles in every
    language that roles follow the persona, not the generator's title words; without, unknown.
    A stable ``validation_share`` of the titles (by a hash of the title) is split
    ``validation``, the rest ``train``: real-style titles to choose on, never trained on.
    Titles equal (``title_key``) to an ``exclude`` title (default: the evaluation set's) are
    dropped; a title in two lists is kept once, with the labels of the list first in
    ``LABEL_PRECEDENCE`` (hand labels before distant ones), whatever order ``sources`` names.
    A seeded ``case_noise`` share of the titles is added again in ALL CAPS or lower case, as
    CRM exports hold them (each copy in its title's split). ``repeat`` names a
    list's training copies (e.g. ``{"curated": 2}``: its training titles twice; ``contact_id``
    ``<id>-<k>``); a seeded ``context_noise`` share of those copies carries an employer,
    place, work mode or gender tag (``title_context``), which says nothing about the person,
    and a seeded ``typo_noise`` share one typing slip (``title_typos``).

    A BLS, ESCO or occupations title's seniority is a distant label from the rules' keyword
    parser; where no keyword matched, the parser's default (``professional``) is a guess, not
    a label, so it is masked (``None``): trained on, it taught every model the parser's blind spots
    ("Harnessmaker Apprentice" -> professional)."""
    sources = list(sources)
    unknown = [s for s in sources if s not in TRAINING_LISTS]
    if unknown:
        raise ValueError(f"unknown title list(s) {unknown}; choose from {list(TRAINING_LISTS)}")
    if not sources:
        return pd.DataFrame()
    ranked = sorted(sources, key=LABEL_PRECEDENCE.index)
    frame = pd.concat(
        [read_title_list(RESOURCE_DIR / TRAINING_LISTS[s]).assign(vocab=s) for s in ranked],
        ignore_index=True,
    )
    if exclude is None:
        exclude = real_title_eval()["job_title"]
    held = {title_key(t) for t in exclude}
    keys = frame["title"].map(title_key)
    frame = frame[~keys.isin(held) & ~keys.duplicated()]
    rng = np.random.default_rng(seed)
    noisy = frame[rng.random(len(frame)) < case_noise].copy()
    upper = rng.random(len(noisy)) < 0.5
    noisy["title"] = np.where(upper, noisy["title"].str.upper(), noisy["title"].str.lower())
    frame = pd.concat([frame, noisy], ignore_index=True).drop_duplicates("title")
    held_for_validation = unit_hash(frame["title"].map(title_key), seed) < validation_share
    out = pd.DataFrame(
        {
            "contact_id": [f"K{i:07d}" for i in range(len(frame))],
            "account_id": "knowledge",
            "job_title": frame["title"].to_numpy(),
            "activity_text": "",
            "function": frame["function"].to_numpy(),
            "seniority": frame["seniority"].to_numpy(),
            "language": frame["language"].to_numpy(),
            "title_kind": "knowledge",
            "vocab": frame["vocab"].to_numpy(),
            "split": np.where(held_for_validation, "validation", "train"),
        }
    )
    guessed = out["vocab"].isin(PARSED_SENIORITY) & out["job_title"].map(match_seniority).isna()
    out["seniority"] = out["seniority"].where(~guessed, None)
    for product in catalog.products:
        out[f"advocacy_{product.name}"] = 0
        out[f"role_{product.name}"] = persona_roles(out, product) if roles else None
    copies = []
    slips = np.random.default_rng([seed, 1])  # its own stream: the contexts stay as they were
    for name, times in (repeat or {}).items():
        train = out[(out["vocab"] == name) & (out["split"] == "train")]
        for k in range(1, int(times)):
            copy = train.assign(contact_id=train["contact_id"] + f"-{k}")
            if context_noise > 0:
                copy["job_title"] = with_context(
                    copy["job_title"], copy["language"], rng, context_noise
                )
            if typo_noise > 0:
                copy["job_title"] = with_typos(copy["job_title"], slips, typo_noise)
            copies.append(copy)
    return pd.concat([out, *copies], ignore_index=True) if copies else out


def calibration_titles(
    name: str, exclude: Iterable[str], max_titles: int, seed: int = 0
) -> pd.DataFrame:
    """Real titles to fit the reported persona probabilities on: the ``name`` list's titles
    equal (``title_key``) to no ``exclude`` title (those a model trained or was chosen on)
    and no evaluation title, at most ``max_titles`` of them (a seeded sample), as model
    inputs with their ``function`` and ``language``."""
    if name not in TRAINING_LISTS:
        raise ValueError(f"unknown title list {name!r}; choose from {list(TRAINING_LISTS)}")
    frame = read_title_list(RESOURCE_DIR / TRAINING_LISTS[name])
    held = {title_key(t) for t in exclude} | {title_key(t) for t in real_title_eval()["job_title"]}
    frame = frame[~frame["title"].map(title_key).isin(held)].drop_duplicates("title")
    if len(frame) > max_titles:
        frame = frame.sample(max_titles, random_state=seed)
    out = frame.rename(columns={"title": "job_title"})[["job_title", "function", "language"]]
    return out.assign(activity_text="").reset_index(drop=True)
