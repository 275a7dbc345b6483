"""bg-pipeline: the main job, end to end on the embedded defaults.

generate (unless present) -> validate -> rules baseline -> train + evaluate the role model
against the baselines -> train the qualifier on groups from that model and compare it with
MQL and MQA (all in MLflow). Promotion and scoring join as they land.
"""

from __future__ import annotations

from omegaconf import DictConfig

from buying_groups.cli import train_qualifier, train_roles
from buying_groups.cli.baseline import ensure_dataset, rules_report
from buying_groups.cli.common import console, print_frame, print_mapping
from buying_groups.config import hydra_entry
from buying_groups.data.dataset import MANIFEST
from buying_groups.data.io import read_json
from buying_groups.evaluate import metrics_table


def run(cfg: DictConfig) -> dict:
    steps = 2 + int(cfg.train_roles) + int(cfg.train_qualifier)
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
    if cfg.train_qualifier:
        console.rule(f"[bold]{steps}/{steps} qualified buying groups vs MQL and MQA")
        result["qualifier_objective"] = train_qualifier.run(qualifier_config(cfg))
    console.print(
        "[green]✓[/] done. Browse runs: mlflow ui  (in this directory)  |  validate "
        "your own export: bg-validate data_dir=<dir>  (tables: docs/data.md)"
    )
    return result


def qualifier_config(cfg: DictConfig) -> DictConfig:
    """bg-train-qualifier's own config on the pipeline's data and MLflow store."""
    from hydra import compose

    overrides = [
        f"data={cfg.data.name}",
        f"data_dir={cfg.data_dir}",
        "generate_if_missing=false",
        f"seed={cfg.seed}",
        *cfg.qualifier_overrides,
    ]
    if cfg.tracking.uri:
        overrides.append(f"tracking.uri={cfg.tracking.uri}")
    qcfg = compose(config_name="train_qualifier", overrides=overrides)
    qcfg.output_dir = str(cfg.output_dir)
    return qcfg


main = hydra_entry("pipeline", run)
