"""Console output shared by the entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from buying_groups.config import catalog_from
from buying_groups.data.dataset import (
    LABELS_DIR,
    MANIFEST,
    generate_dataset,
    has_tables,
    load_dataset,
)
from buying_groups.data.examples import crm_examples_from, examples_from, label_source
from buying_groups.data.schema import TABLE_ORDER
from buying_groups.data.validate import DataValidationError, Problem
from buying_groups.taxonomy import Catalog

# Piped output (CI logs, files) gets a readable width instead of rich's default 80.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


SAME_PROBLEM_ROWS = 5  # rows listed of a problem that many rows share


def problem_lines(problems: list[Problem]) -> list[str]:
    """One line per problem, those that only differ by their row in one line ("activities,
    column 'channel': unknown channel 'Social' (rows 2, 5, 9, 14, 20 and 640 more)"): one
    unknown value in an export would otherwise fill a screen with hundreds of lines."""
    groups: dict[tuple, list[Problem]] = {}
    for p in problems:
        groups.setdefault((p.table, p.column, p.message), []).append(p)
    lines = []
    for (table, column, message), same in groups.items():
        rows = [p.row for p in same if p.row is not None]
        if len(rows) < 2:
            lines += [str(p) for p in same]
            continue
        lines += [str(p) for p in same if p.row is None]
        more = (
            f" and {len(rows) - SAME_PROBLEM_ROWS:,} more" if len(rows) > SAME_PROBLEM_ROWS else ""
        )
        listed = ", ".join(map(str, rows[:SAME_PROBLEM_ROWS]))
        where = table + (f", column '{column}'" if column is not None else "")
        lines.append(f"{where}: {message} (rows {listed}{more})")
    return lines


def fail_with_problems(problems: list[Problem], what: str = "the input data") -> None:
    """Print the problems (``problem_lines``) and exit 1: expected input errors get no
    traceback."""
    console.print(f"[bold red]✗ {len(problems)} problem(s) in {what}:[/]")
    for line in problem_lines(problems):
        console.print(f"  {line}", markup=False, soft_wrap=True)
    sys.exit(1)


def exit_on_data_error(exc: DataValidationError) -> None:
    fail_with_problems(exc.problems)


def _cell(value: object, digits: int) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if abs(value) >= 100 or (value.is_integer() and abs(value) >= 10):
        return f"{value:,.0f}"  # a count or a speed ("groups 6,999", "279 contacts per s")
    return f"{value:.{digits}f}"


def print_frame(df: pd.DataFrame, title: str, digits: int = 3) -> None:
    """A DataFrame as a rich table (index as first column)."""
    table = Table(title=title, title_justify="left")
    table.add_column(df.index.name or "")
    for col in df.columns:
        name = str(col).replace("_accuracy", " acc").replace("_macro_f1", " F1")
        table.add_column(name.replace("_", " "), justify="right")
    # itertuples keeps each column's type; iterrows made a row of ints floats ("3.000")
    for idx, *row in df.itertuples(name=None):
        table.add_row(str(idx), *(_cell(v, digits) for v in row))
    console.print(table)


def print_mapped(mapped: dict[str, int], source: str | None = None) -> None:
    """The rows each mapping rule or value alias took (bg-validate, bg-score)."""
    if not mapped:
        return
    table = Table(title=f"read as the schema ({source or 'native'} export)", title_justify="left")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    for rule, rows in mapped.items():
        table.add_row(rule, f"{rows:,}")
    console.print(table)


def source_from(cfg: DictConfig) -> dict | None:
    """The ``source`` config group as a plain dict (None: the export follows the schema)."""
    node = cfg.get("source")
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def print_mapping(values: dict, title: str) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    for k, v in values.items():
        table.add_row(str(k), f"{v:.3f}" if isinstance(v, float) else str(v))
    console.print(table)


def users_files(directory: Path) -> list[str]:
    """The names in ``directory`` that a generated dataset does not write (its tables, their
    ``labels/``, its manifest) and that are not hidden (``.gitkeep``, ``.DS_Store``): a
    user's own files, which nothing may be generated beside."""
    if not directory.is_dir():
        return []
    ours = {f"{t}.{ext}" for t in TABLE_ORDER for ext in ("csv", "parquet")}
    ours |= {LABELS_DIR, MANIFEST}
    return sorted(
        p.name for p in directory.iterdir() if not p.name.startswith(".") and p.name not in ours
    )


def ensure_dataset(cfg: DictConfig, regenerate: bool = False) -> Path:
    """``cfg.data_dir``, generated from ``cfg.data`` first when it is missing or empty (or,
    with ``regenerate``, holds a generated dataset). A folder holding other files is a user's:
    nothing is written there, and without a contacts table the command stops saying so."""
    data_dir = Path(cfg.data_dir)
    generated = (data_dir / MANIFEST).exists()
    if has_tables(data_dir) and not (regenerate and generated):
        if regenerate:
            console.print(f"[yellow]![/] regenerate: {data_dir} is not a generated dataset, kept")
        return data_dir
    if not generated and (others := users_files(data_dir)):
        fail_with_problems(
            [
                Problem(
                    "contacts",
                    "file not found: expected contacts.csv or contacts.parquet in the "
                    "schema's shape. An export in a CRM's own shape is read with bg-validate "
                    f"source=<its source> data_dir={data_dir} output_dir=<new folder>, then "
                    "bg-pipeline data_dir=<new folder> (docs/own-data.md). Nothing was "
                    f"generated into this folder, which holds {', '.join(others[:3])}"
                    + (" ..." if len(others) > 3 else ""),
                )
            ],
            what=str(data_dir),
        )
    with console.status(f"generating '{cfg.data.name}' into {data_dir}"):
        data = OmegaConf.to_container(cfg.data, resolve=True)
        generate_dataset(data_dir, data, catalog_from(cfg))
    return data_dir


def load_or_exit(
    cfg: DictConfig, catalog: Catalog
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """The validated tables and labels of ``cfg.data_dir``; bad input ends the command with
    one line per problem."""
    try:
        return load_dataset(Path(cfg.data_dir), catalog)
    except DataValidationError as exc:
        exit_on_data_error(exc)


def load_labelled_examples(cfg: DictConfig, catalog: Catalog, purpose: str) -> pd.DataFrame:
    """The labelled contacts of ``cfg.data_dir`` with their splits: the ground truth as of
    the export date, or with ``labels=crm`` the CRM's own labels (``data.crm_labels``).
    Input errors and missing labels end the command with a clear message."""
    try:
        tables, labels = load_dataset(Path(cfg.data_dir), catalog)
        if label_source(cfg) == "crm":
            return crm_examples_from(cfg, tables, labels, catalog)
    except DataValidationError as exc:
        exit_on_data_error(exc)
    if labels is None:
        raise SystemExit(
            f"{cfg.data_dir} has no labels/ (ground truth): {purpose} needs a generated "
            "dataset, or labels=crm to learn from the CRM's own contact roles "
            "(docs/own-data.md)"
        )
    return examples_from(cfg, tables, labels, catalog)
