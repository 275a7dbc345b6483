"""A dataset directory: the five CRM tables, optional ground truth, and a manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from buying_groups.data.io import (
    file_digest,
    find_table,
    read_json,
    read_table,
    write_json,
    write_tables,
)
from buying_groups.data.schema import LABEL_TABLES, TABLE_ORDER
from buying_groups.data.summary import summarize
from buying_groups.data.validate import DataValidationError, load_tables
from buying_groups.taxonomy import Catalog

if TYPE_CHECKING:  # loading an export never imports the generator
    from buying_groups.data.generate import Dataset

MANIFEST = "manifest.json"
LABELS_DIR = "labels"


def write_dataset(
    ds: Dataset, directory: Path, catalog: Catalog, formats: tuple[str, ...] = ("parquet",)
) -> dict:
    """Write tables (each format asked for), labels (Parquet) and a manifest; returns it."""
    directory = Path(directory)
    table_files = write_tables(ds.tables, directory, formats)
    label_files = write_tables(ds.labels, directory / LABELS_DIR, ("parquet",))
    manifest = {
        "name": ds.config.name,
        "config": asdict(ds.config),
        "catalog": list(catalog.names),
        "export_date": str(ds.config.end.date()),
        "rows": {k: len(v) for k, v in {**ds.tables, **ds.labels}.items()},
        "digest": file_digest(p for p in table_files if p.suffix == ".parquet"),
        "summary": summarize(ds.tables, ds.labels, catalog.names),
        "files": sorted(str(p.relative_to(directory)) for p in table_files + label_files),
    }
    write_json(manifest, directory / MANIFEST)
    return manifest


def generate_dataset(directory: Path | str, data_cfg: Mapping, catalog: Catalog) -> dict:
    """Generate the synthetic export ``data_cfg`` describes into ``directory`` (Parquet);
    its manifest. Callers check ``has_tables`` first: never write over a user's export."""
    from buying_groups.data.generate import GeneratorConfig, generate

    dataset = generate(GeneratorConfig.from_config(dict(data_cfg)), catalog)
    return write_dataset(dataset, Path(directory), catalog, ("parquet",))


def dataset_manifest(directory: Path) -> dict:
    """The manifest of a generated dataset, or for an export without one (a real CRM's)
    the same keys computed from its files: ``name`` (the folder's), ``digest`` and row
    counts as the ``summary``."""
    directory = Path(directory)
    if (directory / MANIFEST).exists():
        return read_json(directory / MANIFEST)
    files = [p for n in TABLE_ORDER if (p := find_table(directory, n)) is not None]
    rows = {p.stem: len(read_table(p)) for p in files}
    return {
        "name": directory.name,
        "digest": file_digest(files),
        "rows": rows,
        "summary": {f"{k}_rows": v for k, v in rows.items()},
        "files": sorted(p.name for p in files),
    }


def has_tables(directory: Path) -> bool:
    """Whether ``directory`` holds an export (a manifest or a contacts table)."""
    directory = Path(directory)
    return (directory / MANIFEST).exists() or find_table(directory, "contacts") is not None


def read_labels(directory: Path) -> dict[str, pd.DataFrame] | None:
    """The ground-truth tables of a generated dataset, or None for user data."""
    found = {n: find_table(Path(directory) / LABELS_DIR, n) for n in LABEL_TABLES}
    if any(p is None for p in found.values()):
        return None
    return {n: read_table(p) for n, p in found.items()}


def load_dataset(
    directory: Path, catalog: Catalog
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """Validated tables (raises DataValidationError) and labels if present; an optional table
    (``subscriptions``) is there only if the export has it."""
    result = load_tables(directory, catalog, on_bad_rows="error", tables=TABLE_ORDER)
    if not result.ok:
        raise DataValidationError(result.problems)
    return result.tables, read_labels(directory)
