"""Role-model inference variants on the same demo inputs: speed, latency, agreement with
fp32 and OOD macro-F1 per head, in one table.

    python scripts/bench_inference.py [--model-uri models:/buying-group-roles@champion]
                                      [--data data/demo] [--n 2000]

Variants (``buying_groups.models.runtime``, as ``bg-score variant=...`` runs them): ``fp32``
(PyTorch), ``bf16`` (PyTorch autocast), ``onnx`` (ONNX Runtime) and ``onnx-int8`` (ONNX
Runtime, dynamic int8 weights). The ONNX variants need ``pip install -e ".[onnx]"``; without
it they are skipped with a message. Batch throughput includes tokenisation (length-sorted
batches of 64, duplicates encoded once); latency is one contact (and one 10-contact
account) per call; peak memory is the process's resident peak after each variant.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from buying_groups.config import config_dir
from buying_groups.data.dataset import load_dataset
from buying_groups.data.examples import labelled_examples
from buying_groups.evaluate import evaluate_predictions
from buying_groups.models.role_model import decode, predict_proba
from buying_groups.models.runtime import VARIANTS, VariantUnavailable, use_variant
from buying_groups.taxonomy import Catalog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-uri", default="models:/buying-group-roles@champion")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--n", type=int, default=2000, help="OOD-test contacts to score")
    args = ap.parse_args()

    wrapped = mlflow.pyfunc.load_model(
        args.model_uri, model_config={"variant": "fp32"}
    ).unwrap_python_model()
    model, tokenizer = wrapped.model, wrapped.tokenizer
    spec = OmegaConf.load(Path(config_dir()) / "catalog" / "default.yaml")
    catalog = Catalog.from_config(OmegaConf.to_container(spec, resolve=True))
    tables, labels = load_dataset(args.data, catalog)
    examples = labelled_examples(tables, labels, catalog)
    ood = examples[examples["split"] == "test_ood"].head(args.n).reset_index(drop=True)
    inputs = ood[["job_title", "activity_text"]]

    rows, reference = {}, None
    for name in VARIANTS:
        try:
            use_variant(model, tokenizer, name)
        except VariantUnavailable as exc:
            print(f"skipping {name}: {exc}")
            continue

        def predict(frame: pd.DataFrame) -> dict[str, np.ndarray]:
            return predict_proba(model, tokenizer, frame)

        predict(inputs.head(64))  # warm-up
        started = time.perf_counter()
        proba = predict(inputs)
        seconds = time.perf_counter() - started
        latency, account = [], []
        for i in range(50):
            t = time.perf_counter()
            predict(inputs.iloc[[i]])
            latency.append(time.perf_counter() - t)
            t = time.perf_counter()
            predict(inputs.iloc[10 * i : 10 * i + 10])
            account.append(time.perf_counter() - t)
        pred = decode(model.config, proba)
        reference = pred if reference is None else reference
        heads = ["function", "seniority", *[f"role_{p}" for p in catalog.names]]
        agree = float(np.mean([(pred[h] == reference[h]).mean() for h in heads]))
        m = evaluate_predictions(ood, pred, catalog.names)
        rows[name] = {
            "contacts/s": len(inputs) / seconds,
            "p50 ms (1 contact)": 1000 * float(np.percentile(latency, 50)),
            "p99 ms (1 contact)": 1000 * float(np.percentile(latency, 99)),
            "p50 ms (10 contacts)": 1000 * float(np.percentile(account, 50)),
            "p99 ms (10 contacts)": 1000 * float(np.percentile(account, 99)),
            "peak RSS GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "agreement with fp32": agree,
            **{
                f"OOD {h} macro-F1": m[f"test_ood/{h}_macro_f1"]
                for h in ("function", "seniority", "role")
            },
        }
    print(
        f"{len(inputs)} OOD-test contacts, {torch.get_num_threads()} threads; "
        f"recorded default: {model.config.inference_variant}"
    )
    print(pd.DataFrame(rows).T.round(3).to_string())


if __name__ == "__main__":
    main()
