"""Exports as CRMs write them: a ``source/`` config maps an export's files, columns and
activity types onto the input contract (docs/data.md), and counts the rows each rule took.

A source names, per schema table, the export file (``Contact`` -> ``Contact.csv`` or
``.parquet``), the export column of each schema column, value maps (case-insensitive), a
lookup in another file (Marketo's lead id -> the Salesforce contact id) and columns left empty
unless another says so (Salesforce's ``CloseDate`` of an open opportunity is a forecast, not
a close). Activity types become (channel, action) pairs; an asset or campaign can refine the
action (a form named "Request a demo" is a demo request) and names the topic through the
catalog and the source's keywords. An activity type the source does not list becomes the
generic action on ``unknown_type.channel`` instead of failing the export.

The mapped tables then go through the same validation as any export (``validate.py``). An
optional table (``subscriptions``) that the source does not map is read in the schema's own
shape where the export folder holds it, and left out where it does not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from buying_groups.data.io import find_table
from buying_groups.data.schema import OPTIONAL_TABLES
from buying_groups.data.validate import (
    SCHEMA,
    TABLES,
    DataValidationError,
    Problem,
    ValidationResult,
    load_tables,
    nothing_left,
    read_raw_table,
    topic_from_text,
    validate_tables,
)
from buying_groups.taxonomy import GENERAL_TOPIC, GENERIC_ACTION, Catalog, canonical_key

NATIVE = "native"


def is_native(source: Mapping | None) -> bool:
    """True when the export already follows the input contract (no mapping to apply)."""
    return source is None or not source.get("tables")


def load_export(
    data_dir: Path | str,
    catalog: Catalog,
    on_bad_rows: str = "error",
    tables: tuple[str, ...] = TABLES,
    source: Mapping | None = None,
) -> ValidationResult:
    """``load_tables`` for an export in ``source``'s shape: mapped, then validated; the
    result's ``mapped`` holds the rows each source rule and value alias took."""
    if is_native(source):
        return load_tables(data_dir, catalog, on_bad_rows, tables)
    try:
        raw, counts = read_export(data_dir, source, catalog, tables)
    except DataValidationError as exc:
        return ValidationResult({}, exc.problems, validate_tables({}, catalog).rejects)
    result = nothing_left(validate_tables(raw, catalog, on_bad_rows=on_bad_rows))
    result.mapped = counts | result.mapped
    return result


def read_export(
    data_dir: Path | str, source: Mapping, catalog: Catalog, tables: tuple[str, ...]
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The export's tables renamed and mapped onto the schema (still as read: validation
    follows), and the rows each mapping rule took, e.g. ``"activities.type: 'Visit Webpage'
    -> web/visited": 812``. Raises DataValidationError naming a missing file or column."""
    data_dir = Path(data_dir)
    counts: Counter[str] = Counter()
    out: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    specs = source.get("tables") or {}
    for name in tables:
        spec = specs.get(name)
        if spec is None and name in OPTIONAL_TABLES:  # no CRM exports it: the schema's shape
            if find_table(data_dir, name) is not None:
                out[name], missing = _read(data_dir, name, {"file": name})
                problems += missing
            continue
        if spec is not None and name in OPTIONAL_TABLES and not find_table(data_dir, spec["file"]):
            continue
        if spec is None:
            problems.append(Problem(name, f"source '{source.get('name')}' does not map it"))
            continue
        raw, missing = _read(data_dir, name, spec)
        if missing:
            problems += missing
            continue
        mapped, missing = _map_table(data_dir, name, raw, spec, catalog, source, counts)
        problems += missing
        out[name] = mapped
    if problems:
        raise DataValidationError(problems)
    return out, dict(counts)


def _read(data_dir: Path, name: str, spec: Mapping) -> tuple[pd.DataFrame, list[Problem]]:
    df, problem = read_raw_table(data_dir, name, spec["file"])
    return (pd.DataFrame(), [problem]) if problem is not None else (df, [])


def _map_table(
    data_dir: Path,
    name: str,
    raw: pd.DataFrame,
    spec: Mapping,
    catalog: Catalog,
    source: Mapping,
    counts: Counter[str],
) -> tuple[pd.DataFrame, list[Problem]]:
    columns: Mapping[str, str] = spec.get("columns") or {}
    file = spec["file"]
    needed = [c for c in columns.values() if c is not None]
    needed += [c for rule in (spec.get("lookup") or {}).values() for c in [rule["by"]]]
    needed += list((spec.get("blank_unless") or {}).values())
    if name == "activities" and spec.get("type_column"):
        needed.append(spec["type_column"])
    absent = sorted({c for c in needed if c not in raw.columns})
    if absent:
        found = ", ".join(map(str, raw.columns[:12]))
        return raw, [
            Problem(name, f"{file}: export column '{c}' is missing (found: {found})", column=c)
            for c in absent
        ]
    df = pd.DataFrame(index=raw.index)
    for target, column in columns.items():
        if target not in SCHEMA[name]:
            raise ValueError(f"source {source.get('name')}: {name} has no column {target!r}")
        if column is not None:
            df[target] = raw[column]
    problems: list[Problem] = []
    for target, rule in (spec.get("lookup") or {}).items():
        looked, missing = _lookup(data_dir, name, raw[rule["by"]], rule, target)
        problems += missing
        df[target] = looked
        counts[f"{name}.{target}: from {rule['file']}.{rule['value']} by {rule['by']}"] += int(
            looked.notna().sum()
        )
    for target, flag in (spec.get("blank_unless") or {}).items():
        keep = raw[flag].astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
        blanked = int((~keep & df[target].notna()).sum())
        df[target] = df[target].where(keep, None)
        if blanked:
            counts[f"{name}.{target}: emptied where {flag} is false"] += blanked
    for target, values in (spec.get("values") or {}).items():
        df[target] = _map_values(df[target], values, f"{name}.{target}", counts)
    if name == "activities" and spec.get("type_column"):
        df = _map_activity_types(df, raw, spec, catalog, source, counts)
    return df, problems


def _lookup(
    data_dir: Path, name: str, keys: pd.Series, rule: Mapping, target: str
) -> tuple[pd.Series, list[Problem]]:
    """``target`` from another export file: ``rule.file``'s ``rule.value`` where its
    ``rule.key`` equals this table's ``rule.by`` (left empty, and rejected, where none)."""
    other, missing = _read(data_dir, name, {"file": rule["file"]})
    if missing:
        return pd.Series(None, index=keys.index, dtype=object), missing
    absent = [c for c in (rule["key"], rule["value"]) if c not in other.columns]
    if absent:
        return pd.Series(None, index=keys.index, dtype=object), [
            Problem(name, f"{rule['file']}: export column '{c}' is missing", column=c)
            for c in absent
        ]
    table = other.dropna(subset=[rule["key"]]).drop_duplicates(rule["key"])
    lookup = pd.Series(table[rule["value"]].to_numpy(), index=table[rule["key"]].astype(str))
    return keys.astype(str).map(lookup).where(keys.notna(), None), []


def _map_values(
    values: pd.Series, mapping: Mapping[str, object], what: str, counts: Counter[str]
) -> pd.Series:
    """Values through ``mapping`` compared by canonical_key; values not listed stay."""
    by_key = {canonical_key(str(k)): v for k, v in mapping.items()}
    out = values.astype(object).copy()
    for value, rows in values.dropna().value_counts().items():
        key = canonical_key(str(value))
        if key in by_key:
            target = by_key[key]
            out[values == value] = None if target is None else str(target)
            counts[f"{what}: {value!r} -> {target}"] += int(rows)
    return out


def _map_activity_types(
    df: pd.DataFrame,
    raw: pd.DataFrame,
    spec: Mapping,
    catalog: Catalog,
    source: Mapping,
    counts: Counter[str],
) -> pd.DataFrame:
    """Channel and action from the activity type; the action refined by the asset or
    campaign (``when_asset``); the topic from the asset and campaign where none is given."""
    types = {canonical_key(str(k)): (str(k), v) for k, v in (spec.get("types") or {}).items()}
    unknown = spec.get("unknown_type") or {"channel": "web"}
    ids = {str(k): str(v) for k, v in (spec.get("type_ids") or {}).items()}
    kind = raw[spec["type_column"]].map(lambda v: ids.get(str(v).strip(), v) if pd.notna(v) else v)
    names = (df.get("asset", pd.Series("", index=df.index)).fillna("").astype(str)).copy()
    for extra in spec.get("context_columns") or []:
        names = names + " " + raw[extra].fillna("").astype(str)
    channel = pd.Series(None, index=df.index, dtype=object)
    action = pd.Series(None, index=df.index, dtype=object)
    for value, rows in kind.fillna("").value_counts().items():
        at = (kind.fillna("") == value).to_numpy()
        hit = types.get(canonical_key(str(value)))
        if hit is None:
            channel[at], action[at] = unknown["channel"], GENERIC_ACTION
            counts[
                f"activities.type: {value!r} -> {unknown['channel']}/{GENERIC_ACTION} (not listed)"
            ] += int(rows)
            continue
        label, rule = hit
        channel[at], action[at] = rule["channel"], rule["action"]
        refined = pd.Series(rule["action"], index=df.index[at], dtype=object)
        text = names[at].str.lower()
        for pattern, refined_action in (rule.get("when_asset") or {}).items():
            match = text.str.contains(str(pattern).lower(), regex=False) & refined.eq(
                rule["action"]
            )
            refined[match] = refined_action
        for act, n in refined.value_counts().items():
            how = "" if act == rule["action"] else " (by its asset)"
            counts[f"activities.type: {label!r} -> {rule['channel']}/{act}{how}"] += int(n)
        action[at] = refined.to_numpy()
    df["channel"], df["action"] = channel, action
    if "topic" not in df:
        df["topic"] = _topic(names, catalog, source.get("topic_keywords") or {}, counts)
    return df


def _topic(
    text: pd.Series, catalog: Catalog, keywords: Mapping[str, list], counts: Counter[str]
) -> pd.Series:
    """The catalog's product an asset or campaign names (its assets, its name, or one of the
    source's ``topic_keywords``), else general."""
    topic = topic_from_text(text, catalog)
    counts["activities.topic: a catalog product or asset named"] += int(
        topic.ne(GENERAL_TOPIC).sum()
    )
    lowered = text.str.lower()
    for product, words in keywords.items():
        if product not in catalog.names:
            raise ValueError(f"topic_keywords: {product!r} is not a catalog product")
        for word in words:
            hit = topic.eq(GENERAL_TOPIC) & lowered.str.contains(str(word).lower(), regex=False)
            topic[hit] = product
            if hit.any():
                counts[f"activities.topic: keyword {word!r} -> {product}"] += int(hit.sum())
    counts["activities.topic: general (no product named)"] += int(topic.eq(GENERAL_TOPIC).sum())
    return topic
