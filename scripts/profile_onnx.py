"""Where a batch of contacts spends its time in the role model's ONNX graph, and how fast
this CPU's int8 matrix products could go at best: the evidence for how far a model of this
shape can be pushed on this machine.

    python scripts/profile_onnx.py [--model-uri models:/buying-group-roles@champion]
                                   [--data data/demo] [--n 1600] [--variant onnx-int8]

1. The model's exported graph (as ``bg-score`` runs it) scores ``--n`` OOD-test contacts in
   length-sorted batches of 32, with ONNX Runtime's profiler on; the kernel time is summed
   per operator type (tokenisation apart).
2. The same products as one encoder layer of the model (Q, K, V, output, and the two
   feed-forward products), each alone as a dynamically quantised MatMul on rows of 32
   median-length inputs: their throughput (GMAC/s) bounds contacts/s from the matrix
   products alone, with nothing else (attention, softmax, layer norm, GELU) counted.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import onnx
from omegaconf import OmegaConf
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from buying_groups.config import config_dir
from buying_groups.data.dataset import load_dataset
from buying_groups.data.examples import labelled_examples
from buying_groups.models.inference import clean_inputs, encode_pairs
from buying_groups.models.runtime import (
    export_onnx,
    onnx_session,
    scoring_threads,
    with_priors,
)
from buying_groups.taxonomy import Catalog


def batches(tokenizer, config, frame, size: int = 32) -> list[dict]:  # noqa: ANN001
    titles, texts = clean_inputs(frame)
    enc = encode_pairs(tokenizer, config, titles, texts)
    order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
    out = []
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        b = tokenizer.pad({k: [enc[k][j] for j in rows] for k in enc}, return_tensors="np")
        feeds = {k: np.asarray(b[k], dtype=np.int64) for k in b}
        feeds.setdefault("token_type_ids", np.zeros_like(feeds["input_ids"]))
        out.append(with_priors(feeds, config))  # the expert's inputs at weight 0
    return out


def matmul_ceiling(hidden: int, ffn: int, rows: int) -> float:
    """Seconds for one encoder layer's six products on ``rows`` token rows, int8 dynamic."""
    rng, total = np.random.default_rng(0), 0.0
    with tempfile.TemporaryDirectory() as d:
        for k, n in [(hidden, hidden)] * 4 + [(hidden, ffn), (ffn, hidden)]:
            w = numpy_helper.from_array((rng.standard_normal((k, n)) * 0.05).astype("f4"), "w")
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", "w"], ["y"])],
                "one_product",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
                [w],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            onnx.save(model, f"{d}/f.onnx")
            quantize_dynamic(  # as the model's own export: per-channel int8 weights
                f"{d}/f.onnx", f"{d}/q.onnx", weight_type=QuantType.QInt8, per_channel=True
            )
            s, x = onnx_session(Path(f"{d}/q.onnx")), rng.standard_normal((rows, k)).astype("f4")
            for _ in range(3):
                s.run(None, {"x": x})
            started = time.perf_counter()
            for _ in range(20):
                s.run(None, {"x": x})
            total += (time.perf_counter() - started) / 20
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-uri", default="models:/buying-group-roles@champion")
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--n", type=int, default=1600, help="OOD-test contacts to score")
    ap.add_argument("--variant", default="onnx-int8", choices=["onnx", "onnx-int8"])
    args = ap.parse_args()

    spec = OmegaConf.load(Path(config_dir()) / "catalog" / "default.yaml")
    catalog = Catalog.from_config(OmegaConf.to_container(spec, resolve=True))
    tables, labels = load_dataset(args.data, catalog)
    ood = labelled_examples(tables, labels, catalog).query("split == 'test_ood'").head(args.n)
    wrapped = mlflow.pyfunc.load_model(args.model_uri, model_config={"variant": "fp32"})
    model, tokenizer = wrapped.unwrap_python_model().model, wrapped.unwrap_python_model().tokenizer
    graph = export_onnx(model, tokenizer, int8=args.variant == "onnx-int8")
    started = time.perf_counter()
    feeds = batches(tokenizer, model.config, ood)
    tokenise = time.perf_counter() - started
    lengths = np.concatenate([f["attention_mask"].sum(1) for f in feeds])
    tokens = float(np.median(lengths))  # the median input's tokens

    profiled = onnx_session(graph, profile=True)
    for f in feeds[:2]:
        profiled.run(None, f)  # warm-up
    started = time.perf_counter()
    for f in feeds:
        profiled.run(None, f)
    seconds = time.perf_counter() - started
    per_op: collections.Counter = collections.Counter()
    for event in json.loads(Path(profiled.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    total = sum(per_op.values())
    print(f"{args.model_uri} as {args.variant}: {len(ood)} OOD contacts, {tokens:.0f} tokens")
    print(f"graph {len(ood) / seconds:.0f} contacts/s (profiler on); tokenisation {tokenise:.2f} s")
    for op, us in per_op.most_common(12):
        print(f"  {op:28s} {us / 1e6:6.2f} s  {100 * us / total:5.1f}%")

    enc = model.encoder.config
    layer = matmul_ceiling(enc.hidden_size, enc.intermediate_size, int(32 * tokens))
    bound = 32 / (layer * enc.num_hidden_layers)
    print(
        f"int8 matrix products alone ({enc.num_hidden_layers} layers x {tokens:.0f} tokens): "
        f"at most {bound:.0f} contacts/s on {scoring_threads()} threads"
    )


if __name__ == "__main__":
    main()
