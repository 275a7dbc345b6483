"""bg-generate: write a synthetic CRM export with ground truth to ``data/<name>/``."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from buying_groups.cli.common import console, print_mapping
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import write_dataset
from buying_groups.data.generate import GeneratorConfig, generate


def run(cfg: DictConfig) -> dict:
    """Generate and write the dataset described by ``cfg``; returns its manifest."""
    catalog = catalog_from(cfg)
    gen_cfg = GeneratorConfig.from_config(OmegaConf.to_container(cfg.data, resolve=True))
    started = time.perf_counter()
    with console.status(f"generating '{gen_cfg.name}' (seed {gen_cfg.seed})..."):
        ds = generate(gen_cfg, catalog)
        manifest = write_dataset(ds, Path(cfg.output_dir), catalog, tuple(cfg.formats))
    console.print(
        f"[green]✓[/] wrote {len(manifest['files'])} files to {cfg.output_dir} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    print_mapping(manifest["summary"], f"dataset '{gen_cfg.name}'")
    return manifest


main = hydra_entry("generate", run)
