"""Where the Hydra configs live, and the small helpers every entry point shares."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from buying_groups.taxonomy import Catalog

# ${basename:${data_dir}}: a default output folder named after the export it came from, so
# bg-pipeline data_dir=<export> does not write over demo's scores.
if not OmegaConf.has_resolver("basename"):
    OmegaConf.register_new_resolver("basename", lambda path: Path(str(path)).name)


def config_dir() -> str:
    """The config directory: ``$BG_CONFIG_DIR``, the copy bundled in the wheel, or the
    repository's ``configs/`` (editable installs)."""
    if env := os.environ.get("BG_CONFIG_DIR"):
        return str(Path(env).resolve())
    bundled = Path(__file__).parent / "configs"
    if bundled.is_dir():
        return str(bundled)
    repo = Path(__file__).resolve().parents[2] / "configs"
    if repo.is_dir():
        return str(repo)
    raise FileNotFoundError("no configs/ directory found; set BG_CONFIG_DIR")


def hydra_entry(config_name: str, task: Callable[[DictConfig], object]) -> Callable[[], None]:
    """A console-script ``main()`` running ``task`` as a Hydra app on ``config_name``.

    Built when called, not at import: importing a CLI module does no work. Process tuning
    (signals, the garbage collector) is ``cli.launch``'s.
    """

    def main() -> None:
        import hydra

        hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")(task)()

    return main


def catalog_from(cfg: DictConfig) -> Catalog:
    return Catalog.from_config(OmegaConf.to_container(cfg.catalog, resolve=True))
