"""bg-validate: check a directory of CRM tables; one line per problem, exit 1 on failure."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from buying_groups.cli.common import console, fail_with_problems, print_mapped, source_from
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.io import write_table, write_tables
from buying_groups.data.schema import TABLE_ORDER
from buying_groups.data.source import load_export
from buying_groups.data.validate import rejected_rows


def run(cfg: DictConfig) -> int:
    catalog = catalog_from(cfg)
    result = load_export(
        Path(cfg.data_dir), catalog, cfg.on_bad_rows, tables=TABLE_ORDER, source=source_from(cfg)
    )
    print_mapped(result.mapped, cfg.source.name)
    if not result.ok:
        fail_with_problems(result.problems, what=str(cfg.data_dir))
    for name, df in result.tables.items():
        console.print(
            f"  {name:<27} {result.rows_in[name]:>9,} rows in  {len(df):>9,} valid"
            f"  {rejected_rows(result.rejects, name):>7,} rejected"
            f"  {rejected_rows(result.rejects, name, 'blanked'):>7,} with a cell blanked"
        )
    if len(result.rejects):
        path = Path(cfg.rejects_path)
        write_table(result.rejects, path)
        console.print(f"[yellow]![/] rejected rows and blanked cells, with reasons: {path}")
    n_rejected = int((result.rejects["action"] == "rejected").sum())
    if n_rejected:  # only under on_bad_rows=skip: otherwise they failed above
        console.print(
            f"[yellow]![/] {cfg.data_dir}: usable after rejecting {n_rejected:,} rows "
            "(on_bad_rows=skip)"
        )
    else:
        console.print(f"[green]✓[/] {cfg.data_dir} is valid")
    if cfg.output_dir:  # the valid rows in the schema's shape, for bg-pipeline data_dir=...
        written = write_tables(result.tables, Path(cfg.output_dir))
        console.print(f"wrote {len(written)} tables in the schema's shape to {cfg.output_dir}")
    return 0


main = hydra_entry("validate", run)
