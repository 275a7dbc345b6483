"""bg-validate: check a directory of CRM tables; one line per problem, exit 1 on failure."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from buying_groups.cli.common import console, fail_with_problems
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.generate import TABLES
from buying_groups.data.io import write_table
from buying_groups.data.validate import load_tables


def run(cfg: DictConfig) -> int:
    catalog = catalog_from(cfg)
    result = load_tables(Path(cfg.data_dir), catalog, on_bad_rows=cfg.on_bad_rows, tables=TABLES)
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
    return 0


main = hydra_entry("validate", run)
