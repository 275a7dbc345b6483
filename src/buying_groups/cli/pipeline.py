"""bg-pipeline: the main job, end to end on the embedded defaults.

generate (unless present) -> validate -> rules baseline -> train + evaluate the role model
against the baselines (MLflow). Qualification, promotion and scoring join as they land.
"""

from __future__ import annotations

from omegaconf import DictConfig

from buying_groups.cli import train_roles
from buying_groups.cli.baseline import ensure_dataset, rules_report
from buying_groups.cli.common import console, print_frame, print_mapping
from buying_groups.config import hydra_entry
from buying_groups.data.dataset import MANIFEST
from buying_groups.data.io import read_json
from buying_groups.evaluate import metrics_table


def run(cfg: DictConfig) -> dict:
    steps = 3 if cfg.train_roles else 2
    console.rule(f"[bold]1/{steps} data")
    data_dir = ensure_dataset(cfg, regenerate=cfg.regenerate)
    manifest = read_json(data_dir / MANIFEST)
    print_mapping(
        {k: v for k, v in manifest["summary"].items() if not k.startswith("role_")},
        f"dataset '{manifest['name']}' in {data_dir}",
    )
    console.rule(f"[bold]2/{steps} rules baseline")
    metrics = rules_report(cfg)
    table = metrics_table({k: v for k, v in metrics.items() if not k.startswith("lang_")})
    table.index.name = "split"
    print_frame(table, "rules baseline")
    result = {"manifest": manifest, "rules": metrics}
    if cfg.train_roles:
        console.rule(f"[bold]3/{steps} role model (fine-tuning; progress below)")
        result["role_model_objective"] = train_roles.run(cfg)
    console.print(
        "[green]✓[/] done. Browse runs: mlflow ui  (in this directory)  |  validate "
        "your own export: bg-validate data_dir=<dir>  (tables: docs/data.md)"
    )
    return result


main = hydra_entry("pipeline", run)
