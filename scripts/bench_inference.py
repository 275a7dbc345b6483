"""Role-model inference variants on the same demo inputs: speed, latency, agreement with
fp32 and OOD macro-F1 per head, in one table.

    python scripts/bench_inference.py [--model-uri models:/buying-group-roles@champion]
                                      [--data data/demo] [--n 2000]

Variants: ``fp32`` (PyTorch, as served today), ``ort-fp32`` (ONNX Runtime on the exported
graph) and ``ort-int8`` (ONNX Runtime with dynamic int8 weights). The ONNX variants need
``pip install onnx onnxruntime``; without them they are skipped with a message. Batch
throughput includes tokenisation (length-sorted batches of 64, duplicates encoded once);
latency is one contact per call.
"""

from __future__ import annotations

import argparse
import tempfile
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
from buying_groups.models.role_model import clean_inputs, decode, predict_proba
from buying_groups.taxonomy import Catalog


class Heads(torch.nn.Module):
    """The role model with plain tensor outputs, for ONNX export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
        out = self.model(input_ids, attention_mask, token_type_ids)
        return out["function_logits"], out["seniority_logits"], out["role_logits"]


def onnx_predictor(model, tokenizer, workdir: Path, int8: bool):  # noqa: ANN001, ANN201
    import onnxruntime as ort

    path = workdir / "role_model.onnx"
    if not path.exists():
        ex = tokenizer(["vp sales"] * 2, ["visited /"] * 2, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(
            Heads(model).eval(),
            tuple(ex[k] for k in names),
            str(path),
            input_names=names,
            output_names=["function", "seniority", "role"],
            dynamic_axes={k: {0: "batch", 1: "tokens"} for k in names},
            opset_version=17,
            dynamo=False,
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = workdir / "role_model.int8.onnx"
        quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
        path = q
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(frame: pd.DataFrame, batch_size: int = 64) -> dict[str, np.ndarray]:
        titles, texts = clean_inputs(frame)
        enc = tokenizer(
            titles, texts, truncation="longest_first", max_length=model.config.max_length
        )
        order = np.argsort([len(x) for x in enc["input_ids"]], kind="stable")
        outs = {k: [None] * len(order) for k in ("function", "seniority", "role")}
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="np")
            feeds = {k: batch[k].astype(np.int64) for k in enc}
            for name, logits in zip(outs, session.run(None, feeds), strict=True):
                p = np.exp(logits - logits.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                for j, i in enumerate(idx):
                    outs[name][i] = p[j]
        return {k: np.stack(v) for k, v in outs.items()}

    return predict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-uri", default="models:/buying-group-roles@champion")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--n", type=int, default=2000, help="OOD-test contacts to score")
    args = ap.parse_args()

    wrapped = mlflow.pyfunc.load_model(args.model_uri).unwrap_python_model()
    model, tokenizer = wrapped.model, wrapped.tokenizer
    spec = OmegaConf.load(Path(config_dir()) / "catalog" / "default.yaml")
    catalog = Catalog.from_config(OmegaConf.to_container(spec, resolve=True))
    tables, labels = load_dataset(args.data, catalog)
    examples = labelled_examples(tables, labels, catalog)
    ood = examples[examples["split"] == "test_ood"].head(args.n).reset_index(drop=True)
    inputs = ood[["job_title", "activity_text"]]

    variants = {"fp32": lambda f: predict_proba(model, tokenizer, f)}
    workdir = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    try:
        variants["ort-fp32"] = onnx_predictor(model, tokenizer, workdir, int8=False)
        variants["ort-int8"] = onnx_predictor(model, tokenizer, workdir, int8=True)
    except ImportError as exc:
        print(f"skipping the ONNX variants ({exc.name} missing: pip install onnx onnxruntime)")

    rows, reference = {}, None
    for name, predict in variants.items():
        predict(inputs.head(64))  # warm-up
        started = time.perf_counter()
        proba = predict(inputs)
        seconds = time.perf_counter() - started
        latency = []
        for i in range(50):
            t = time.perf_counter()
            predict(inputs.iloc[[i]])
            latency.append(time.perf_counter() - t)
        pred = decode(model.config, proba)
        reference = pred if reference is None else reference
        heads = ["function", "seniority", *[f"role_{p}" for p in catalog.names]]
        agree = float(np.mean([(pred[h] == reference[h]).mean() for h in heads]))
        m = evaluate_predictions(ood, pred, catalog.names)
        rows[name] = {
            "contacts/s": len(inputs) / seconds,
            "p50 ms (1 contact)": 1000 * float(np.percentile(latency, 50)),
            "p99 ms (1 contact)": 1000 * float(np.percentile(latency, 99)),
            "agreement with fp32": agree,
            **{
                f"OOD {h} macro-F1": m[f"test_ood/{h}_macro_f1"]
                for h in ("function", "seniority", "role")
            },
        }
    print(f"{len(inputs)} OOD-test contacts, {torch.get_num_threads()} threads")
    print(pd.DataFrame(rows).T.round(3).to_string())


if __name__ == "__main__":
    main()
