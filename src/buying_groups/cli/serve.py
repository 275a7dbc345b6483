"""bg-serve: the champion model over REST (MLflow's scoring protocol, hardened; see
``buying_groups.serving.server``)."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from buying_groups import tracking
from buying_groups.cli.common import console
from buying_groups.config import hydra_entry
from buying_groups.models.runtime import VariantUnavailable, set_scoring_threads


def run(cfg: DictConfig) -> None:
    import uvicorn

    from buying_groups.serving.server import Limits, create_app

    tracking.setup(cfg.tracking)
    set_scoring_threads(cfg.torch_threads)
    token = os.environ.get(cfg.token_env) if cfg.token_env else None
    limits = Limits(cfg.max_body_bytes, cfg.max_rows, float(cfg.timeout_s), token or None)
    model_config = {"variant": cfg.variant} if cfg.variant else None
    with console.status(f"loading {cfg.model_uri}"):
        try:
            app = create_app(cfg.model_uri, limits, model_config)
        except VariantUnavailable as exc:
            raise SystemExit(str(exc)) from exc
    console.print(
        f"serving {cfg.model_uri} ({app.state.variant}) on "
        f"http://{cfg.host}:{cfg.port}/invocations "
        f"({'bearer token required' if token else 'no authentication'}; "
        f"max {cfg.max_rows} rows, {cfg.max_body_bytes:,} bytes per request)"
    )
    uvicorn.run(app, host=cfg.host, port=cfg.port, workers=1, log_level="info")


main = hydra_entry("serve", run)
