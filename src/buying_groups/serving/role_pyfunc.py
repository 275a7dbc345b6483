"""The role model as an MLflow pyfunc: ``job_title``, ``activity_text`` in; persona and
per-product roles (with probabilities and the full probability vectors) out."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from buying_groups.models.inference import decode, predict_proba, tempered
from buying_groups.models.loading import load_for_inference


def role_outputs(model, tokenizer, frame: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """Labels, their probabilities and the full probability vectors, one row per input."""
    proba = predict_proba(model, tokenizer, frame)
    out = decode(model.config, proba)
    proba = tempered(model.config, proba)  # the vectors as decode reports their maxima
    out["function_probs"] = list(proba["function"].astype(np.float64))
    out["seniority_probs"] = list(proba["seniority"].astype(np.float64))
    for j, product in enumerate(model.config.products):
        out[f"role_{product}_probs"] = list(proba["role"][:, j].astype(np.float64))
    return out


class RoleModelPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the saved model directory (artifact ``role_model``) once per process, running
    as the inference variant in its config unless ``model_config={"variant": ...}`` says
    otherwise (``mlflow.pyfunc.load_model(uri, model_config=...)``). An ONNX variant
    exported before on this machine loads without PyTorch (``load_for_inference``)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        variant = (context.model_config or {}).get("variant")
        self.model, self.tokenizer = load_for_inference(context.artifacts["role_model"], variant)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            return role_outputs(self.model, self.tokenizer, model_input)
        except ValueError as exc:  # bad input: say which column/row, not a stack trace
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc
