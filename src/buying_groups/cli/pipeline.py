"""bg-pipeline: the main job, end to end on the embedded defaults.

Today: generate the demo dataset (unless present) -> validate it -> report the rules
baseline. Training, qualification, promotion and scoring join as they land.
"""

from __future__ import annotations

from omegaconf import DictConfig

from buying_groups.cli.baseline import ensure_dataset, rules_report
from buying_groups.cli.common import console, print_frame, print_mapping
from buying_groups.config import hydra_entry
from buying_groups.data.dataset import MANIFEST
from buying_groups.data.io import read_json
from buying_groups.evaluate import metrics_table


def run(cfg: DictConfig) -> dict:
    console.rule("[bold]1/2 data")
    data_dir = ensure_dataset(cfg, regenerate=cfg.regenerate)
    manifest = read_json(data_dir / MANIFEST)
    print_mapping(
        {k: v for k, v in manifest["summary"].items() if not k.startswith("role_")},
        f"dataset '{manifest['name']}' in {data_dir}",
    )
    console.rule("[bold]2/2 rules baseline")
    metrics = rules_report(cfg)
    table = metrics_table({k: v for k, v in metrics.items() if not k.startswith("lang_")})
    table.index.name = "split"
    print_frame(table, "rules baseline")
    console.print(
        "[green]✓[/] done. Validate your own export with: bg-validate "
        "data_dir=<dir>  (tables described in docs/data.md)"
    )
    return {"manifest": manifest, "rules": metrics}


main = hydra_entry("pipeline", run)
