"""Load and validate a directory of CRM tables, naming every problem by table, row and column.

Three kinds of problem, in the order they are looked for:

* table problems (file missing, table empty, required column missing or misspelled): the
  table cannot be used, always an error;
* cell problems (wrong type, unparseable timestamp, unknown channel or product, empty id,
  duplicate id): the row cannot be used;
* reference problems (a contact of an unknown account, an activity of an unknown contact...):
  the row cannot be used.

With ``on_bad_rows="error"`` any problem fails validation. With ``"skip"``, rows with cell or
reference problems are removed and returned as *rejects* (row, column, reason and the raw
record) so that rows in = rows kept + rows rejected; table problems still fail.
Rows are numbered from 1 in file order (CSV: the line number minus one for the header).
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from buying_groups.data.dates import future_after, parse_timestamps
from buying_groups.data.io import find_table, read_table
from buying_groups.data.schema import (  # noqa: F401 (re-exported: the validator's contract)
    CHANNEL_ALIASES,
    CHANNELS,
    MAX_TEXT_CHARS,
    OPTIONAL_ROWS,
    OPTIONAL_TABLES,
    PRIMARY_KEYS,
    SCHEMA,
    SUBSCRIPTION_OUTCOMES,
    TABLE_ORDER,
    TABLES,
    Col,
)
from buying_groups.taxonomy import (
    ACTION_ALIASES,
    ACTIONS,
    GENERAL_TOPIC,
    GENERIC_ACTION,
    Catalog,
    canonical_key,
)

# pandera imports pyspark.pandas when PySpark is installed, which warns about pandas 3 on
# every start; nothing here uses pyspark.pandas.
warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
import pandera.pandas as pa  # noqa: E402

TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as possible."""

    table: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = [self.table]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class ValidationResult:
    """Typed tables that passed, the problems found, and the rejected rows (skip policy)."""

    tables: dict[str, pd.DataFrame]
    problems: list[Problem]
    rejects: pd.DataFrame
    rows_in: dict[str, int] = field(default_factory=dict)
    # values read as another (a mapping rule) -> rows: "activities.channel: 'Web' -> web"
    mapped: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class DataValidationError(Exception):
    """Raised for input that cannot be used; ``problems`` says exactly why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = "\n".join(str(p) for p in problems[:50])
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the input data:\n{head}{more}")


def load_tables(
    data_dir: Path | str,
    catalog: Catalog,
    on_bad_rows: str = "error",
    tables: tuple[str, ...] = TABLES,
) -> ValidationResult:
    """Read ``data_dir/<table>.parquet`` (or ``.csv``) for each table and validate them.
    A table of ``OPTIONAL_TABLES`` whose file is absent is left out, not a problem."""
    data_dir = Path(data_dir)
    raw: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    if not data_dir.is_dir():
        raise DataValidationError([Problem("-", f"data directory {data_dir} does not exist")])
    for name in tables:
        if name in OPTIONAL_TABLES and find_table(data_dir, name) is None:
            continue
        df, problem = read_raw_table(data_dir, name)
        if problem is not None:
            problems.append(problem)
        else:
            raw[name] = df
    if problems:
        return ValidationResult({}, problems, _empty_rejects())
    return nothing_left(validate_tables(raw, catalog, on_bad_rows=on_bad_rows))


def nothing_left(result: ValidationResult) -> ValidationResult:
    """``result`` failed where a table that needs rows kept none of them: ``on_bad_rows=skip``
    rejected them all (ids exported as another type or case, say, so that no reference
    meets), and "usable after rejecting" an export with no contacts left helps nobody. The
    optional ``subscriptions`` may end empty: prospects are scored without it."""
    empty = []
    for name, df in result.tables.items():
        n = result.rows_in.get(name, 0)
        if n and not len(df) and name not in (*OPTIONAL_ROWS, *OPTIONAL_TABLES):
            reasons = result.rejects.loc[result.rejects["table"] == name, "reason"]
            why = f"; the first row's problem: {reasons.iloc[0]}" if len(reasons) else ""
            empty.append(Problem(name, f"all {n:,} rows were rejected, none is left{why}"))
    if empty:
        result.problems = [*result.problems, *empty]
        result.tables = {}
    return result


def file_not_found(table: str, stem: str, data_dir: Path) -> Problem:
    """The problem of a table whose file ``stem``.csv / .parquet is not in ``data_dir``."""
    return Problem(table, f"file not found: expected {stem}.csv or {stem}.parquet in {data_dir}")


def read_raw_table(
    data_dir: Path, table: str, stem: str | None = None
) -> tuple[pd.DataFrame | None, Problem | None]:
    """Table ``table`` as read from ``data_dir/<stem>.parquet`` (or ``.csv``; ``stem``
    defaults to the table's name), or the problem naming the missing or unreadable file."""
    stem = stem or table
    path = find_table(data_dir, stem)
    if path is None:
        return None, file_not_found(table, stem, data_dir)
    try:
        return read_table(path), None
    except UnicodeDecodeError as exc:  # a byte Windows-1252 leaves undefined
        return None, Problem(
            table,
            f"cannot read {path.name}: neither UTF-8 nor Windows-1252 text ({exc.reason}): "
            "save it as 'CSV UTF-8'",
        )
    except Exception as exc:  # unreadable file: say which and why, without a traceback
        return None, Problem(table, f"cannot read {path.name}: {exc}")


def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    catalog: Catalog,
    on_bad_rows: str = "error",
    known: Mapping[str, pd.DataFrame] | None = None,
    row_offset: int = 0,
) -> ValidationResult:
    """Validate and type in-memory tables (as read from files).

    For a chunk of a larger file: ``known`` holds tables validated earlier that references
    may point into (they are not returned), and ``row_offset`` is the number of file rows
    before the chunk, so that problems and rejects carry file row numbers.
    """
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"on_bad_rows must be 'error' or 'skip', not {on_bad_rows!r}")
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame] = {}
    bad_rows: dict[str, dict[int, list[Problem]]] = {}
    blanked_rows: dict[str, dict[int, list[Problem]]] = {}
    rows_in = {name: len(df) for name, df in raw.items()}
    mapped: Counter[str] = Counter()
    refs = dict(known or {})
    for name in TABLE_ORDER:
        if name not in raw:
            continue
        df = raw[name].reset_index(drop=True)
        # Missing columns fail the table, but the columns present are still checked so a
        # user sees every problem in one pass.
        problems.extend(_check_columns(name, df))
        if len(df) == 0 and name not in OPTIONAL_ROWS:
            problems.append(Problem(name, "the table is empty (no rows)"))
            continue
        df, cell = _coerce(name, df)
        df = normalise_values(name, df, catalog, mapped)
        cell += _check_values(name, df, catalog, row_offset)
        cell += _check_references(name, df, refs)
        soft = {c for c, spec in SCHEMA[name].items() if spec.blank_if_bad}
        by_row: dict[int, list[Problem]] = {}
        hard: list[Problem] = []
        for p in cell:
            if p.column in soft:  # blank the cell, keep the row
                df.loc[p.row - 1, p.column] = None
                blanked_rows.setdefault(name, {}).setdefault(p.row - 1, []).append(p)
            else:
                by_row.setdefault(p.row - 1, []).append(p)
                hard.append(p)
        bad_rows[name] = by_row
        problems.extend(sorted(hard, key=lambda p: (p.row or 0, p.column or "")))
        # Referencing tables are checked against the rows that survive.
        typed[name] = df.drop(index=list(by_row)) if on_bad_rows == "skip" else df
        refs[name] = typed[name]
    structural = [p for p in problems if p.row is None]
    rejects = _rejects(raw, bad_rows)
    if blanked_rows:
        blanked = _rejects(raw, blanked_rows, action="blanked")
        rejects = pd.concat([rejects, blanked], ignore_index=True) if len(rejects) else blanked
    if row_offset:
        problems = [replace(p, row=p.row + row_offset) if p.row else p for p in problems]
        rejects["row"] += row_offset
    if on_bad_rows == "skip" and not structural:
        return ValidationResult(typed, [], rejects, rows_in, dict(mapped))
    return ValidationResult(typed if not problems else {}, problems, rejects, rows_in, dict(mapped))


def _check_columns(name: str, df: pd.DataFrame) -> list[Problem]:
    expected = SCHEMA[name]
    present = [str(c) for c in df.columns]
    missing = [c for c in expected if expected[c].required and c not in present]
    extra = [c for c in present if c not in expected]
    problems = []
    for col in missing:  # "Job Title", "Contact_ID": the name in another case or spacing
        same = [c for c in extra if re.sub(r"[\s\-]+", "_", c.strip()).lower() == col]
        guess = same or difflib.get_close_matches(col, extra, n=1, cutoff=0.75)
        if guess:
            problems.append(
                Problem(
                    name,
                    f"required column '{col}' is missing; found "
                    f"'{guess[0]}' instead: is it misspelled?",
                    column=guess[0],
                )
            )
        else:
            problems.append(Problem(name, f"required column '{col}' is missing", column=col))
    return problems


_DECIMAL_COMMA = r"\s*-?\d{1,3}(?:\.\d{3})*,\d+\s*|\s*-?\d+,\d+\s*"


def _not_text(value: object, kind: str) -> str | None:
    """What a cell of an id, code or text column holds instead of text, or None. A number is
    text in an id or code column (a numeric stage id, read as its text), not for a title:
    there it is a column mixed up."""
    if isinstance(value, (list, dict, bytes, np.ndarray)):
        return type(value).__name__
    if kind == "text" and isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return f"the number {value!r}"
    return None


def _id_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _coerce(name: str, df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Give each column its type; every cell that cannot be converted is a problem."""
    problems: list[Problem] = []
    out = pd.DataFrame(index=df.index)
    for col, spec in SCHEMA[name].items():
        if col not in df.columns:
            continue
        s = df[col]
        missing = s.isna()
        if (
            spec.kind in ("id", "str", "text")
            and pd.api.types.is_string_dtype(s.dtype)
            and (not pd.api.types.is_object_dtype(s.dtype))
        ):
            # A string column (Parquet strings, CSV text) holds only text: vectorised.
            col_values = s.str.strip().astype(object).where(~missing, None)
            out[col] = col_values.fillna("") if spec.kind == "text" else col_values
        elif spec.kind in ("id", "str", "text"):
            values = s.astype(object).to_numpy()
            pairs = zip(values, missing, strict=True)
            why = [None if m else _not_text(v, spec.kind) for v, m in pairs]
            wrong = np.array([w is not None for w in why], dtype=bool)
            for i in np.flatnonzero(wrong):
                problems.append(
                    Problem(name, f"expected text, got {why[i]}", row=int(i) + 1, column=col)
                )
            # Ids and codes exported as numbers read as their text ("1000", also where a
            # column with a gap was stored as float: 1000.0), so references still meet.
            text = [
                None if m or w else _id_text(v)
                for v, m, w in zip(values, missing, wrong, strict=True)
            ]
            col_values = pd.Series(text, index=df.index, dtype=object)
            out[col] = col_values.fillna("") if spec.kind == "text" else col_values
        elif spec.kind == "int":
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & ~missing
            bad |= num.notna() & (num != np.round(num))
            out[col] = num.where(~bad).round().astype("Int64")
            problems += _cell_problems(name, col, s, bad, "expected a whole number")
        elif spec.kind == "number":
            num = pd.to_numeric(s, errors="coerce")
            comma = num.isna() & ~missing & s.astype(str).str.fullmatch(_DECIMAL_COMMA)
            if comma.any():  # "2520,00", "1.234,50": Excel where the comma is the decimal mark
                text = s[comma].astype(str).str.replace(".", "", regex=False)
                num[comma] = pd.to_numeric(text.str.replace(",", ".", regex=False))
            bad = (num.isna() & ~missing) | ~np.isfinite(num.fillna(0.0))
            out[col] = num.where(~bad).astype("float64")
            problems += _cell_problems(name, col, s, bad, "expected a number")
        elif spec.kind == "bool":
            if pd.api.types.is_bool_dtype(s):
                out[col] = s.astype("boolean")
                continue
            text = s.astype(str).str.strip().str.lower()
            val = pd.Series(pd.NA, index=s.index, dtype="boolean")
            val[text.isin(TRUE)] = True
            val[text.isin(FALSE)] = False
            bad = val.isna() & ~missing
            out[col] = val
            problems += _cell_problems(name, col, s, bad, "expected true/false")
        elif spec.kind == "timestamp":
            ts, reasons = parse_timestamps(s)
            out[col] = ts
            problems += [
                Problem(name, f"{reasons.iat[i]}: {_show(s.iat[i])}", row=int(i) + 1, column=col)
                for i in np.flatnonzero(reasons.notna().to_numpy())
            ]
        if not spec.nullable and spec.kind != "text":
            empty = out[col].isna() & ~df.index.isin(
                [p.row - 1 for p in problems if p.column == col]
            )
            if spec.kind in ("id", "str"):
                empty |= out[col].eq("").fillna(False).astype(bool)
            problems += [
                Problem(name, "value is empty but required", row=int(i) + 1, column=col)
                for i in np.flatnonzero(empty.to_numpy())
            ]
    return out, problems


def normalise_values(
    name: str, df: pd.DataFrame, catalog: Catalog, mapped: Counter[str]
) -> pd.DataFrame:
    """Read the values exports spell their own way as the schema's (``Web`` -> ``web``,
    ``Meeting Booked`` -> ``met_sales``, ``Data Platform`` -> ``data_platform``; an unknown
    action -> ``interacted``; no topic -> the product its asset names, else ``general``),
    counting the rows each rule took in ``mapped``. Values left unknown are rejected later."""
    products = {canonical_key(p): p for p in catalog.names}
    for col, spec in SCHEMA[name].items():
        if spec.kind == "text" and col in df:
            # a 50 MB title would be carried into every output; models read far less
            long = df[col].str.len().gt(MAX_TEXT_CHARS).fillna(False).astype(bool)
            if long.any():
                df.loc[long, col] = df.loc[long, col].str.slice(0, MAX_TEXT_CHARS)
                mapped[f"{name}.{col}: cut to {MAX_TEXT_CHARS:,} characters"] += int(long.sum())
    if name == "activities":
        if "channel" in df:
            known = {c: c for c in CHANNELS}
            df["channel"] = _map_values(df["channel"], known | CHANNEL_ALIASES, None, name, mapped)
        if "action" in df:
            known = {a: a for a in (*ACTIONS, GENERIC_ACTION)} | ACTION_ALIASES
            df["action"] = _map_values(df["action"], known, GENERIC_ACTION, name, mapped)
        topic = df["topic"] if "topic" in df else pd.Series(None, index=df.index, dtype=object)
        known = products | {GENERAL_TOPIC: GENERAL_TOPIC}
        topic = _map_values(topic, known, None, name, mapped, column="topic")
        empty = topic.isna() | topic.eq("")
        if empty.any():
            asset = df["asset"] if "asset" in df else pd.Series("", index=df.index)
            derived = topic_from_text(asset[empty], catalog)
            for value, rows in derived.value_counts().items():
                how = "from the asset" if value != GENERAL_TOPIC else "no product named"
                mapped[f"{name}.topic: (empty) -> {value} ({how})"] += int(rows)
            topic = topic.where(~empty, derived)
        df["topic"] = topic
    elif name in ("opportunities", "subscriptions") and "product" in df:
        df["product"] = _map_values(df["product"], products, None, name, mapped)
    return df


def _map_values(
    values: pd.Series,
    known: Mapping[str, str],
    fallback: str | None,
    table: str,
    mapped: Counter[str],
    column: str | None = None,
) -> pd.Series:
    """Each distinct value through ``known`` (exact, then by canonical_key), else
    ``fallback`` (None: left as it is); rows of every value that changed are counted."""
    column = column or str(values.name)
    lookup: dict[object, object] = {}
    for value in values.dropna().unique():
        text = str(value)
        if text == "" or known.get(text) == text:
            continue
        key = canonical_key(text)
        target = known.get(key, fallback)
        if target is not None:
            lookup[value] = target
    if not lookup:
        return values
    out = values.map(lambda v: lookup.get(v, v)).astype(object)
    counts = values[values.isin(list(lookup))].value_counts()
    for value, rows in counts.items():
        target = lookup[value]
        unknown = (
            " (unknown action)"
            if target == fallback and canonical_key(str(value)) not in known
            else ""
        )
        mapped[f"{table}.{column}: {_show(value)} -> {target}{unknown}"] += int(rows)
    return out


def topic_from_text(text: pd.Series, catalog: Catalog) -> pd.Series:
    """The product an asset or campaign name points to: one of the catalog's assets, or its
    name in the text (``/products/data-platform``, "Data Platform webinar"); else general."""
    assets = {
        a.lower(): p.name for p in catalog.products for names in p.assets.values() for a in names
    }
    keys = [(f"_{canonical_key(p)}_", p) for p in catalog.names]

    def one(value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            return GENERAL_TOPIC
        if value.strip().lower() in assets:
            return assets[value.strip().lower()]
        padded = f"_{canonical_key(value)}_"
        return next((p for k, p in keys if k in padded), GENERAL_TOPIC)

    uniq = {v: one(v) for v in text.dropna().unique()}
    return text.map(lambda v: uniq.get(v, GENERAL_TOPIC)).astype(object)


def _cell_problems(name: str, col: str, raw: pd.Series, bad: pd.Series, what: str) -> list[Problem]:
    return [
        Problem(name, f"{what}: {_show(raw.iat[i])}", row=int(i) + 1, column=col)
        for i in np.flatnonzero(bad.to_numpy())
    ]


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    # a rejects file shows what a row held, not a 50 MB cell
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "...'"


def _value_schema(name: str, catalog: Catalog) -> pa.DataFrameSchema:
    """Value rules (categories, ranges) as a pandera schema over the typed table."""
    checks: dict[str, list[pa.Check]] = {
        "accounts": {"employees": [pa.Check.ge(0, error="must be >= 0")]},
        "activities": {
            "channel": [
                pa.Check.isin(
                    CHANNELS, error=f"unknown channel; expected one of {', '.join(CHANNELS)}"
                )
            ],
            "topic": [
                pa.Check.isin(
                    [*catalog.names, GENERAL_TOPIC],
                    error=f"unknown product topic; expected '{GENERAL_TOPIC}' or "
                    f"a catalog product ({', '.join(catalog.names)})",
                )
            ],
        },
        "subscriptions": {
            "product": [
                pa.Check.isin(
                    catalog.names,
                    error=f"unknown product; the catalog has {', '.join(catalog.names)}",
                )
            ],
            "outcome": [
                pa.Check.isin(
                    SUBSCRIPTION_OUTCOMES,
                    error=f"unknown outcome; expected {', '.join(SUBSCRIPTION_OUTCOMES)} or empty",
                )
            ],
            "seats": [pa.Check.ge(0, error="must be >= 0")],
            "amount": [pa.Check.ge(0, error="must be >= 0")],
        },
        "opportunities": {
            "product": [
                pa.Check.isin(
                    catalog.names,
                    error=f"unknown product; the catalog has {', '.join(catalog.names)}",
                )
            ],
        },
    }.get(name, {})
    return pa.DataFrameSchema(
        {col: pa.Column(checks=c, nullable=True, required=False) for col, c in checks.items()},
        strict=False,
    )


def _check_values(
    name: str, df: pd.DataFrame, catalog: Catalog, row_offset: int = 0
) -> list[Problem]:
    problems = []
    try:
        _value_schema(name, catalog).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases.dropna(subset=["index"])
        for col, check, value, idx in fc[["column", "check", "failure_case", "index"]].itertuples(
            index=False
        ):
            problems.append(
                Problem(name, f"{check}: {_show(value)}", row=int(idx) + 1, column=str(col))
            )
    if name == "activities" and "timestamp" in df.columns:
        # An event after today is a clock or import error; kept, it would move the default
        # as-of date (the newest activity) into the future and age every group.
        after = future_after()
        future = (df["timestamp"] > after).fillna(False).to_numpy(dtype=bool)
        problems += [
            Problem(
                name,
                f"in the future (after {after:%Y-%m-%d}): {df['timestamp'].iat[i]}",
                row=int(i) + 1,
                column="timestamp",
            )
            for i in np.flatnonzero(future)
        ]
    key = PRIMARY_KEYS.get(name)
    if key is not None and key in df.columns:
        ids = df[key]
        dup = ids.duplicated(keep="first") & ids.notna()
        first = {v: i for i, v in reversed(list(enumerate(ids)))}
        problems += [
            Problem(
                name,
                f"duplicate id {_show(ids.iat[i])} "
                f"(first seen in row {first[ids.iat[i]] + 1 + row_offset})",
                row=int(i) + 1,
                column=key,
            )
            for i in np.flatnonzero(dup.to_numpy())
        ]
    return problems


def _check_references(
    name: str, df: pd.DataFrame, typed: Mapping[str, pd.DataFrame]
) -> list[Problem]:
    problems = []
    for col, spec in SCHEMA[name].items():
        if spec.references is None or col not in df.columns:
            continue
        table, key = spec.references.split(".")
        if table not in typed or key not in typed[table].columns:
            continue  # the referenced table already failed; its problems say why
        known = pd.Index(typed[table][key].dropna())
        orphan = df[col].notna() & ~df[col].isin(known)
        problems += [
            Problem(
                name,
                f"unknown {key} {_show(df[col].iat[i])} (not among the valid rows of {table})",
                row=int(i) + 1,
                column=col,
            )
            for i in np.flatnonzero(orphan.to_numpy())
        ]
    return problems


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": pd.Series(dtype=object),
            "row": pd.Series(dtype="int64"),
            "column": pd.Series(dtype=object),
            "reason": pd.Series(dtype=object),
            "record": pd.Series(dtype=object),
            "action": pd.Series(dtype=object),
        }
    )


_DTYPES = {"int": "Int64", "bool": "boolean", "timestamp": "datetime64[ns]"}


def empty_table(name: str) -> pd.DataFrame:
    """Table ``name`` with no rows, its columns typed as validation types them."""
    return pd.DataFrame(
        {col: pd.Series(dtype=_DTYPES.get(spec.kind, object)) for col, spec in SCHEMA[name].items()}
    )


def rejected_rows(rejects: pd.DataFrame, table: str, action: str = "rejected") -> int:
    """How many rows of ``table`` were rejected (``action="blanked"``: kept with a blanked
    cell)."""
    return int(((rejects["table"] == table) & (rejects["action"] == action)).sum())


def _rejects(
    raw: Mapping[str, pd.DataFrame],
    bad_rows: Mapping[str, Mapping[int, list[Problem]]],
    action: str = "rejected",
) -> pd.DataFrame:
    """One row per rejected input row (or, ``action="blanked"``, per row with blanked
    cells): where, why (all reasons) and the raw record as JSON."""
    rows = []
    for name, by_row in bad_rows.items():
        df = raw[name].reset_index(drop=True)
        for i in sorted(by_row):
            ps = by_row[i]
            record = {
                str(k): None
                if not isinstance(v, (list, dict, np.ndarray)) and pd.isna(v)
                else _cut(str(v))
                for k, v in df.iloc[i].items()
            }
            rows.append(
                (
                    name,
                    i + 1,
                    ", ".join(sorted({p.column or "" for p in ps})),
                    "; ".join(p.message for p in ps),
                    json.dumps(record, ensure_ascii=False),
                    action,
                )
            )
    if not rows:
        return _empty_rejects()
    return pd.DataFrame(rows, columns=["table", "row", "column", "reason", "record", "action"])
