"""bg-baseline: the rules baseline's accuracy and macro-F1 per split and per language."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.cli.common import console, ensure_dataset, load_labelled_examples, print_frame
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.io import write_json
from buying_groups.data.splits import ROLE_SPLITS
from buying_groups.evaluate import evaluate_predictions, metrics_table


def rules_report(cfg: DictConfig) -> dict[str, float]:
    """Rules-baseline metrics on every role split and language of a labelled dataset."""
    catalog = catalog_from(cfg)
    examples = load_labelled_examples(cfg, catalog, "the baseline report")
    pred = RulesBaseline(catalog).predict(examples)
    metrics = evaluate_predictions(examples, pred, catalog.names, groups=ROLE_SPLITS)
    by_lang = evaluate_predictions(examples, pred, catalog.names, group_col="language")
    return {**metrics, **{f"lang_{k}": v for k, v in by_lang.items()}}


def run(cfg: DictConfig) -> dict[str, float]:
    if cfg.generate_if_missing:
        ensure_dataset(cfg)
    metrics = rules_report(cfg)
    table = metrics_table(metrics)
    table.index.name = "split"
    print_frame(table, "rules baseline (title keywords + role rules)")
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir) / "rules_baseline_metrics.json"
    write_json(metrics, out)
    console.print(f"metrics: {out}")
    return metrics


main = hydra_entry("baseline", run)
