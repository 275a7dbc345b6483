"""Role-model inference variants on the same demo inputs: speed, latency, agreement with
fp32, OOD macro-F1 per head and persona macro-F1 on the real job titles, in one table; then
the real titles per language and variant.

    python scripts/bench_inference.py [--model-uri models:/buying-group-roles@champion ...]
                                      [--data data/demo] [--n 2000] [--variants ...]
                                      [--max-length 64 48 ...] [--batch-size 32 64 ...]

With several ``--model-uri`` (e.g. a teacher and its distilled student) every model's
variants go into the same table, and ``x baseline`` compares each with the first model's
fp32 measured in the same run.

Variants (``buying_groups.models.runtime``, as ``bg-score variant=...`` runs them): ``fp32``
(PyTorch), ``bf16`` (PyTorch autocast), ``onnx`` (ONNX Runtime) and ``onnx-int8`` (ONNX
Runtime, dynamic int8 weights). The ONNX variants need ``pip install -e ".[onnx]"``; without
it they are skipped with a message. Batch throughput includes tokenisation (length-sorted
batches of 32, duplicates encoded once); latency is one contact (and one 10-contact
account) per call; peak memory is the process's resident peak after each variant.
``--max-length`` (input tokens; default: each model's own) and ``--batch-size`` (default 32)
repeat every variant at other settings, to find the shortest input that keeps accuracy and
the batch size that runs fastest.
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
from buying_groups.data.real_titles import real_title_eval
from buying_groups.evaluate import evaluate_predictions
from buying_groups.models.evaluation import real_title_metrics, real_title_table
from buying_groups.models.inference import decode, predict_proba
from buying_groups.models.runtime import VARIANTS, VariantUnavailable, use_variant
from buying_groups.taxonomy import Catalog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-uri", nargs="+", default=["models:/buying-group-roles@champion"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--n", type=int, default=2000, help="OOD-test contacts to score")
    ap.add_argument("--repeats", type=int, default=3, help="batch passes (median reported)")
    ap.add_argument("--max-length", type=int, nargs="+", help="input tokens (default: the model's)")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[32], help="rows per batch")
    args = ap.parse_args()

    spec = OmegaConf.load(Path(config_dir()) / "catalog" / "default.yaml")
    catalog = Catalog.from_config(OmegaConf.to_container(spec, resolve=True))
    tables, labels = load_dataset(args.data, catalog)
    examples = labelled_examples(tables, labels, catalog)
    ood = examples[examples["split"] == "test_ood"].head(args.n).reset_index(drop=True)
    inputs = ood[["job_title", "activity_text"]]

    rows, baseline, by_language = {}, None, {}
    for uri in args.model_uri:
        wrapped = mlflow.pyfunc.load_model(uri, model_config={"variant": "fp32"})
        model = wrapped.unwrap_python_model().model
        tokenizer = wrapped.unwrap_python_model().tokenizer
        cfg = model.config
        layers = model.encoder.config.num_hidden_layers
        trained_length = cfg.max_length
        for max_length in args.max_length or [trained_length]:
            cfg.max_length = max_length  # inputs cut at this length from here on
            for batch_size in args.batch_size:
                label = f"{uri} ({layers} layers x {max_length} tokens, batches of {batch_size})"
                measured = bench_model(
                    model, tokenizer, inputs, ood, catalog, args.variants, args.repeats, batch_size
                )
                for name, (row, languages) in measured.items():
                    baseline = baseline or row["contacts/s"]
                    rows[(label, name)] = {"x baseline": row["contacts/s"] / baseline, **row}
                    by_language[(label, name)] = languages
        cfg.max_length = trained_length
        print(
            f"{uri} ({layers} layers x {trained_length} tokens): recorded default "
            f"{cfg.inference_variant}"
        )
    print(f"{len(inputs)} OOD-test contacts, {torch.get_num_threads()} threads")
    print(pd.DataFrame(rows).T.round(3).to_string())
    print("\nreal job titles, macro-F1 per language (function / seniority)")
    print(pd.concat(by_language, axis=1).round(3).to_string())


def bench_model(  # noqa: ANN001
    model, tokenizer, inputs, ood, catalog, variants, repeats, batch_size=32
) -> dict[str, tuple[dict, pd.DataFrame]]:
    """Speed, latency, memory, agreement with fp32, OOD and real-title macro-F1 of each
    variant, and its real-title table per language."""
    rows, reference, real = {}, None, real_title_eval()
    for name in variants:
        try:
            use_variant(model, tokenizer, name)
        except VariantUnavailable as exc:
            print(f"skipping {name}: {exc}")
            continue

        def predict(frame: pd.DataFrame) -> dict[str, np.ndarray]:
            return predict_proba(model, tokenizer, frame, batch_size=batch_size)

        predict(inputs.head(64))  # warm-up
        # This shared 2-core machine's speed drifts by ~25% from minute to minute: the
        # median of a few passes is steadier than one.
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            proba = predict(inputs)
            seconds.append(time.perf_counter() - started)
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
        on_real = real_title_metrics(real, decode(model.config, predict(real)))
        row = {
            "contacts/s": len(inputs) / float(np.median(seconds)),
            "best contacts/s": len(inputs) / min(seconds),
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
        for h in ("function", "seniority"):
            row[f"real {h} macro-F1"] = on_real[f"real/{h}_macro_f1"]
        rows[name] = row, real_title_table(on_real)[["function_macro_f1", "seniority_macro_f1"]]
    return rows


if __name__ == "__main__":
    main()
