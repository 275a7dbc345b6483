"""Inference variants of the role model: the same weights run as PyTorch fp32, PyTorch bf16,
ONNX Runtime fp32, or ONNX Runtime with dynamic int8 weights.

A variant is a function from one padded batch (numpy arrays) to the three heads' logits;
``predict_proba`` keeps everything around it (deduplication, the prediction cache,
length-sorted batches, batched fast tokenisation). ``evaluation.choose_variant`` measures
the variants on held-out data and picks the fastest within a tolerance of fp32 on every head;
``bg-train-roles`` records its choice in the model's config, and every loader (pyfunc,
``bg-score``, ``bg-serve``, Spark) uses it unless told otherwise.

The ONNX variants need ``pip install "buying-groups[onnx]"`` (onnx, onnxruntime). The graph
is exported once per model weights and kept under ``$BG_CACHE_DIR`` (default
``~/.cache/buying_groups``), so only the first load pays for the export.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

VARIANTS = ("fp32", "bf16", "onnx", "onnx-int8")
ONNX_HINT = 'pip install "buying-groups[onnx]"'
Runner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray]]


class VariantUnavailable(ImportError):
    """A variant whose optional dependency is not installed (the message says what to do)."""


def check_variant(variant: str) -> str:
    """``variant`` if it is known and its dependencies import; otherwise a clear error."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown inference variant '{variant}'; choose one of {VARIANTS}")
    if variant.startswith("onnx"):
        for module in ("onnxruntime", "onnx"):
            try:
                __import__(module)
            except ImportError as exc:
                raise VariantUnavailable(
                    f"inference variant '{variant}' needs the '{module}' package, which is not "
                    f"installed: {ONNX_HINT} (or choose variant=fp32)"
                ) from exc
    return variant


def bf16_supported() -> bool:
    """bf16 where it is fast: a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def available_variants() -> list[str]:
    """Variants this machine can run (bf16 only where it is native, so never slower)."""
    out = []
    for v in VARIANTS:
        if v == "bf16" and not bf16_supported():
            continue
        with contextlib.suppress(VariantUnavailable):
            out.append(check_variant(v))
    return out


def use_variant(model, tokenizer, variant: str | None = None):  # noqa: ANN001, ANN201
    """Make ``predict_proba`` run ``model`` as ``variant`` (None: the one in its config)."""
    variant = check_variant(variant or model.config.inference_variant)
    # A model chosen as bf16 on one machine may be loaded on another without it.
    if variant == "bf16" and not bf16_supported():
        warnings.warn(
            "the role model runs as bf16, but this machine has no native bf16 (CUDA bf16, "
            "AVX512-BF16 or AMX): it is emulated, several times slower than fp32; pass "
            "variant=fp32 or variant=onnx-int8 to run it another way",
            stacklevel=2,
        )
    model.variant = variant
    model.runner = _runner(model, tokenizer, variant)
    return model


# What this code computes from a model's weights, in the prediction and scoring caches' keys:
# a cache written by code that computed something else is not reused. 2: the role head reads
# the persona pooled with the title expert (before: the transformer's own).
PREDICTION_VERSION = 2


def prediction_key(model) -> str | None:  # noqa: ANN001
    """What cached predictions key on: the exact weights, the variant running them
    (variants differ in the last digits, so a cache never mixes them) and
    ``PREDICTION_VERSION``."""
    digest = getattr(model, "weights_digest", None)
    variant = getattr(model, "variant", "fp32")
    if digest is None:
        return None
    key = f"{digest}~p{PREDICTION_VERSION}"
    return key if variant == "fp32" else f"{key}+{variant}"


def _runner(model, tokenizer, variant: str) -> Runner:  # noqa: ANN001
    if variant in ("fp32", "bf16"):
        import torch

        if _THREADS:
            torch.set_num_threads(_THREADS[0])
        dtype = torch.bfloat16 if variant == "bf16" else None

        @torch.inference_mode()
        def run_torch(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
            tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                out = model(**tensors)
            return tuple(
                out[f"{h}_logits"].float().numpy() for h in ("function", "seniority", "role")
            )

        return run_torch
    return _onnx_runner(model, tokenizer, int8=variant == "onnx-int8")


# -- ONNX Runtime ------------------------------------------------------------------------------
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The title expert's persona and each row's pooling weight (function, seniority), pooled in
# the graph before the role head (``RoleModel.forward``); a row with weight 0 keeps the
# transformer's own persona.
PRIORS = ("function_prior", "seniority_prior", "prior_weight")
EXPORT_VERSION = 4  # part of the cache path: graphs exported by older code are not reused


def with_priors(batch: dict[str, np.ndarray], config) -> dict[str, np.ndarray]:  # noqa: ANN001
    """``batch`` with every graph input: where the title expert's inputs are missing (no
    expert), a uniform persona at weight 0, which leaves the transformer's own."""
    if all(k in batch for k in PRIORS):
        return batch
    n = len(batch["input_ids"])
    sizes = {"function_prior": len(config.functions), "seniority_prior": len(config.seniorities)}
    out = dict(batch)
    for name, size in sizes.items():
        out[name] = np.full((n, size), 1.0 / size, dtype=np.float32)
    out["prior_weight"] = np.zeros((n, 2), dtype=np.float32)
    return out


def _heads_module() -> type:
    """The role model with plain tensor outputs, for export (a class made on first use, so
    that importing this module does not import PyTorch)."""
    import torch

    class _Heads(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids, *priors):  # noqa: ANN001, ANN201
            given = dict(zip(PRIORS, priors, strict=True))
            out = self.model(input_ids, attention_mask, token_type_ids, **given)
            return out["function_logits"], out["seniority_logits"], out["role_logits"]

    return _Heads


def cache_root() -> Path:
    return Path(os.environ.get("BG_CACHE_DIR") or Path.home() / ".cache" / "buying_groups")


def prune_onnx_cache(keep: int | None = None) -> list[Path]:
    """Delete all but the ``keep`` most recently used exports (default ``$BG_CACHE_KEEP``
    or 8; each is ~110 MB for the 6-layer model): without a bound, every model version ever
    loaded stays on disk. Returns what it deleted."""
    keep = int(os.environ.get("BG_CACHE_KEEP", 8)) if keep is None else keep
    root = cache_root() / "onnx"
    if not root.is_dir():
        return []
    folders = sorted(
        (f for f in root.iterdir() if f.is_dir()), key=lambda f: f.stat().st_mtime, reverse=True
    )
    stale = folders[max(keep, 1) :]
    for folder in stale:
        # A process still running an old graph keeps its open session; nothing reads the
        # files again after the session is built.
        shutil.rmtree(folder, ignore_errors=True)
    return stale


@contextlib.contextmanager
def _exportable(model) -> Iterator[None]:  # noqa: ANN001
    """The model in eval mode with plain (eager) attention, put back afterwards: eager
    attention exports to MatMul/Softmax, which ONNX Runtime runs ~10% faster than the
    masking ops of PyTorch's SDPA path (docs/benchmarks.md); the outputs are the same."""
    was_training = model.training
    encoder = model.encoder
    attention = getattr(encoder.config, "_attn_implementation", None)
    switch = attention not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
    model.eval()
    if switch:
        encoder.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            encoder.set_attn_implementation(attention)
        model.train(was_training)


GRAPH_NAMES = {False: "role_model.onnx", True: "role_model.int8.onnx"}  # by int8


def exported_graph(digest: str, int8: bool = False) -> Path:
    """Where the graph of the model with weights ``digest`` is (or will be) exported."""
    return cache_root() / "onnx" / f"{digest[:32]}-{EXPORT_VERSION}" / GRAPH_NAMES[int8]


def export_onnx(model, tokenizer, int8: bool = False) -> Path:  # noqa: ANN001
    """The model as an ONNX graph (int8: dynamically quantised weights), exported once per
    weights digest and reused; written atomically so concurrent loaders never see half.
    ``model`` may be an ``ExportedRoleModel`` (no PyTorch) when the graph exists."""
    digest = getattr(model, "weights_digest", None)
    if digest is None:  # an in-memory model never saved: a directory that lives with it
        if getattr(model, "_onnx_dir", None) is None:
            model._onnx_dir = tempfile.TemporaryDirectory(prefix="bg-onnx-")
        folder = Path(model._onnx_dir.name)
    else:
        folder = exported_graph(digest).parent
        fresh = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)  # "recently used", for prune_onnx_cache
        if fresh:
            prune_onnx_cache()
    fp32, q = folder / GRAPH_NAMES[False], folder / GRAPH_NAMES[True]
    if int8 and q.exists():
        return q
    if not fp32.exists():
        import torch

        _Heads = _heads_module()
        example = tokenizer(["vp sales"] * 2, ["visited pricing"] * 2, return_tensors="np")
        example = with_priors(dict(example), model.config)
        example = {k: torch.from_numpy(v) for k, v in example.items()}
        example["prior_weight"][0] = 0.5  # traced with the pooling path taken
        names = [*INPUT_NAMES, *PRIORS]
        tmp = folder / f".{os.getpid()}.{fp32.name}"
        with _exportable(model), torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about shape checks it freezes; they are constant for this
            # model (no causal mask, no past keys), and the graph is tested against fp32.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Heads(model),
                tuple(example[k] for k in names),
                str(tmp),
                input_names=names,
                output_names=["function", "seniority", "role"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in INPUT_NAMES}
                | {k: {0: "batch"} for k in PRIORS},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, fp32)
    if not int8:
        return fp32
    if not q.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = folder / f".{os.getpid()}.{q.name}"
        # Per-channel scales: per-tensor ones lose ~1.5 points of OOD role macro-F1 here.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quiet its advice to pre-process (tested without)
        try:
            quantize_dynamic(
                str(fp32),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=head_products(fp32),
            )
        finally:
            root.setLevel(level)
        os.replace(tmp, q)
    return q


def head_products(graph: Path) -> list[str]:
    """The matrix products after the encoder (persona, advocacy and role heads): int8 keeps
    them in float. They hold 3% of the weights and well under 1% of a contact's multiply-adds,
    but every rounding there moves a decision directly: with them quantised too, the
    2026-12-06 champion's validation role macro-F1 (without its offsets) fell twice as far
    (docs/benchmarks.md)."""
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    heads = [n for n in nodes if n.op_type in ("MatMul", "Gemm")]
    heads = [n for n in heads if not n.name.startswith("/model/encoder/")]
    # The quantiser first rewrites a Gemm as "<name>_MatMul" + "<name>_Add" (onnxruntime
    # 1.2x-1.3x); the exclusion list names both forms.
    return [name for n in heads for name in (n.name, f"{n.name}_MatMul")]


_THREADS: list[int] = []  # set by set_scoring_threads


def set_scoring_threads(n: int) -> None:
    """Intra-op threads of the one scoring thread, for PyTorch and ONNX Runtime alike
    (``bg-serve``: cores not oversubscribed), without importing PyTorch for it."""
    _THREADS[:] = [int(n)]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))


def scoring_threads() -> int:
    """What ``set_scoring_threads`` set; else PyTorch's setting where PyTorch is loaded, else
    ``OMP_NUM_THREADS`` or the cores this process may use (PyTorch's own default)."""
    if _THREADS:
        return _THREADS[0]
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))


def onnx_session(path: Path, profile: bool = False):  # noqa: ANN201  (an ort.InferenceSession)
    """An ONNX Runtime CPU session of the graph at ``path`` as scoring runs it (``profile``:
    with ONNX Runtime's profiler on, for scripts/profile_onnx.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One scoring thread's worth of cores, as for PyTorch: no oversubscription under a server.
    options.intra_op_num_threads = scoring_threads()
    options.inter_op_num_threads = 1
    options.enable_profiling = profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_runner(model, tokenizer, int8: bool) -> Runner:  # noqa: ANN001
    session = onnx_session(export_onnx(model, tokenizer, int8))

    def run_onnx(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        batch = with_priors(batch, model.config)
        feeds = {k: batch[k].astype(np.int64) for k in INPUT_NAMES if k in batch}
        if "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        feeds |= {k: batch[k].astype(np.float32) for k in PRIORS}
        return tuple(session.run(None, feeds))

    return run_onnx
