"""bg-validate: check a directory of CRM tables; one line per problem, exit 1 on failure."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from buying_groups.cli.common import console, fail_with_problems, print_mapped, source_from
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.generate import TABLES
from buying_groups.data.io import write_table, write_tables
from buying_groups.data.source import load_export


def run(cfg: DictConfig) -> int:
    catalog = catalog_from(cfg)
    result = load_export(
        Path(cfg.data_dir), catalog, cfg.on_bad_rows, tables=TABLES, source=source_from(cfg)
    )
    print_mapped(result.mapped, cfg.source.name)
    if not result.ok:
        fail_with_problems(result.problems, what=str(cfg.data_dir))
    for name, df in result.tables.items():
        rejected = int((result.rejects["table"] == name).sum())
        console.print(
            f"  {name:<27} {result.rows_in[name]:>9,} rows in  {len(df):>9,} valid"
            f"  {rejected:>7,} rejected"
        )
    if len(result.rejects):
        path = Path(cfg.rejects_path)
        write_table(result.rejects, path)
        console.print(f"[yellow]![/] {len(result.rejects)} rejected rows with reasons: {path}")
    console.print(f"[green]✓[/] {cfg.data_dir} is valid")
    if cfg.output_dir:  # the valid rows in the schema's shape, for bg-pipeline data_dir=...
        written = write_tables(result.tables, Path(cfg.output_dir))
        console.print(f"wrote {len(written)} tables in the schema's shape to {cfg.output_dir}")
    return 0


main = hydra_entry("validate", run)
