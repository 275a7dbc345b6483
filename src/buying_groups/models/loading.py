"""Load a saved role model to predict: from its exported ONNX graph without PyTorch where
that graph exists for its weights, else as the PyTorch module (exporting the graph for the
next load). The one place that knows both, so that ``inference`` never imports the module
that holds the PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path

from buying_groups.models.inference import (
    CONFIG_NAME,
    TOKENIZER_DIR,
    ExportedRoleModel,
    PairTokenizer,
    RoleModelConfig,
    weights_digest,
)
from buying_groups.models.runtime import check_variant, exported_graph, use_variant
from buying_groups.models.title_expert import TitleExpert


def load_for_inference(directory: Path | str, variant: str | None = None) -> tuple[object, object]:
    """A saved role model ready to predict, running as ``variant`` (None: the one in its
    config). An ONNX variant whose graph is already exported for these weights runs without
    PyTorch (``ExportedRoleModel``, ``PairTokenizer``); otherwise the PyTorch model is built
    (and the graph exported, for the next load)."""
    directory = Path(directory)
    config = RoleModelConfig.from_json(json.loads((directory / CONFIG_NAME).read_text()))
    variant = check_variant(variant or config.inference_variant)
    # Only an ONNX variant can skip PyTorch; its graph is found by the weights' digest,
    # which is then handed on rather than hashed again.
    digest = weights_digest(directory) if variant.startswith("onnx") else None
    if (
        digest is not None
        and exported_graph(digest, int8=variant == "onnx-int8").exists()
        and (directory / TOKENIZER_DIR / "tokenizer.json").exists()
    ):
        model, tokenizer = (
            ExportedRoleModel(config, digest),
            PairTokenizer(directory / TOKENIZER_DIR),
        )
    else:
        # PyTorch and transformers only here: the ONNX path above starts without them.
        from buying_groups.models.role_model import RoleModel

        model, tokenizer = RoleModel.load(directory, digest)
    model.title_expert = TitleExpert.load(directory)
    use_variant(model, tokenizer, variant)
    return model, tokenizer
