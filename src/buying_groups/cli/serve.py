"""bg-serve: the champion model over REST (MLflow's scoring protocol, hardened; see
``buying_groups.serving.server``)."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from buying_groups import tracking
from buying_groups.cli.common import console
from buying_groups.config import hydra_entry
from buying_groups.models.runtime import VariantUnavailable


def threads_per_worker(threads: int | None, workers: int) -> int:
    """The transformer's threads in each worker: as configured, or (None) this process's
    cores shared among the workers, so that they do not oversubscribe the cores."""
    if threads:
        return int(threads)
    return max(1, len(os.sched_getaffinity(0)) // max(1, int(workers)))


def run(cfg: DictConfig) -> None:
    from buying_groups.serving.server import Limits, serve

    tracking.setup(cfg.tracking)
    token = os.environ.get(cfg.token_env) if cfg.token_env else None
    limits = Limits(cfg.max_body_bytes, cfg.max_rows, float(cfg.timeout_s), token or None)
    model_config = {"variant": cfg.variant} if cfg.variant else None
    threads = threads_per_worker(cfg.torch_threads, cfg.workers)
    console.print(
        f"starting: {cfg.model_uri} on http://{cfg.host}:{cfg.port}/invocations with "
        f"{cfg.workers} worker(s) of {threads} thread(s) "
        f"({'bearer token required' if token else 'no authentication'}; "
        f"max {cfg.max_rows} rows, {cfg.max_body_bytes:,} bytes per request)"
    )
    try:
        serve(
            cfg.model_uri,
            limits,
            model_config,
            cfg.prediction_cache,
            threads,
            cfg.host,
            cfg.port,
            cfg.workers,
            cfg.renewal_model_uri,
        )
    except VariantUnavailable as exc:
        raise SystemExit(str(exc)) from exc


main = hydra_entry("serve", run)
