"""Shared fixtures: the real Hydra configs composed with tiny settings, and one tiny dataset
generated per test session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one math thread each (and in the commands they start).
    # With PyTorch's default of one per core, four threads spin on two cores and training
    # runs several times slower than in one process.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from buying_groups.config import catalog_from, config_dir
from buying_groups.data.dataset import load_dataset, write_dataset
from buying_groups.data.generate import Dataset, GeneratorConfig, generate
from buying_groups.taxonomy import Catalog

# The files whose tests share the session's trained and promoted tiny models (``trained``,
# ``promoted``): one pytest-xdist worker runs them all, so the models are built once.
SHARED_MODEL_FILES = {
    "test_train_roles.py",
    "test_promote.py",
    "test_scoring.py",
    "test_serving.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for ``--dist loadgroup``: by file, the shared-model files together."""
    for item in items:
        name = item.path.name
        item.add_marker(
            pytest.mark.xdist_group("shared-model" if name in SHARED_MODEL_FILES else name)
        )


def compose_config(name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``configs/<name>.yaml`` exactly as the CLI would, with overrides."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=False)


def run_cli(module: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``buying_groups.cli.<module>`` with Hydra overrides in a fresh process, as a user
    runs it; fail with its output unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-c", f"from buying_groups.cli.{module} import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported ONNX graphs go to a session directory, not the user's ~/.cache (also for
    the command-line runs in subprocesses, which inherit the environment)."""
    path = tmp_path_factory.mktemp("bg-cache")
    os.environ["BG_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_cfg() -> DictConfig:
    return compose_config("generate", ["data=tiny"])


@pytest.fixture(scope="session")
def catalog(tiny_cfg: DictConfig) -> Catalog:
    return catalog_from(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cfg: DictConfig, catalog: Catalog) -> Dataset:
    gen_cfg = GeneratorConfig.from_config(OmegaConf.to_container(tiny_cfg.data, resolve=True))
    return generate(gen_cfg, catalog)


@pytest.fixture(scope="session")
def tiny_dir(
    tiny_dataset: Dataset, catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny"
    write_dataset(tiny_dataset, out, catalog, formats=("parquet", "csv"))
    return out


@pytest.fixture(scope="session")
def tiny_tables(tiny_dir: Path, catalog: Catalog):
    return load_dataset(tiny_dir, catalog)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer, saved like a Hub model:
    proves ``model.name_or_path=<dir>`` works for any encoder, and trains in seconds."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from buying_groups.models.role_model import default_encoder_path

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# -- a tiny role model trained, then promoted, once per session (training, promotion,
# scoring and serving tests share them) ---------------------------------------------------
def train_tiny_role_model(tmp_path, tiny_dir, tiny_bert_dir, *extra):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = "from buying_groups.cli.train_roles import main; main()"
    args = [
        "experiment=tiny",
        f"model.name_or_path={tiny_bert_dir}",
        f"data_dir={tiny_dir}",
        "trainer.epochs=1",
        "baselines=[rules,tfidf_logreg]",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'multi'}",
        *extra,
    ]
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *flags, *overrides],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return uri, proc


def logged_model_uri(uri: str) -> str:
    """The model logged by the transformer run in the store at ``uri``."""
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(
        experiment_names=["buying-groups-roles"], filter_string="tags.`bg.model` = 'transformer'"
    ).iloc[0]
    return mlflow.search_logged_models(experiment_ids=[run["experiment_id"]], output_format="list")[
        0
    ].model_uri


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_dir, tiny_bert_dir):
    tmp = tmp_path_factory.mktemp("train")
    uri, proc = train_tiny_role_model(tmp, tiny_dir, tiny_bert_dir)
    return tmp, uri, proc


@pytest.fixture(scope="session")
def promoted(trained, tiny_dir):
    """bg-train-qualifier then bg-promote on the store of the trained tiny role model."""
    tmp, uri, _ = trained
    common = ["data=tiny", f"data_dir={tiny_dir}", f"tracking.uri={uri}"]
    run_cli("train_qualifier", tmp, *common, f"hydra.run.dir={tmp / 'q2'}")
    proc = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'promote'}")
    return tmp, uri, common, proc


@pytest.fixture(scope="session")
def renewal_uri(promoted, tiny_dir):
    """A renewal-risk model logged (not registered: other tests see no renewal champion) on
    the promoted store, by bg-train-retention with the rules' personas."""
    tmp, uri, _, _ = promoted
    proc = run_cli(
        "train_retention", tmp, "data=tiny", f"data_dir={tiny_dir}", "roles.source=rules",
        f"tracking.uri={uri}", f"output_dir={tmp / 'ret'}", "registry.name=null",
        "retention.backtest_months=8", "retention.min_train_positives=3",
        f"hydra.run.dir={tmp / 'ret-run'}",
    )  # fmt: skip
    return re.search(r"model (models:/\S+);", proc.stdout).group(1)
