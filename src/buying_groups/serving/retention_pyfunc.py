"""The renewal-risk model as an MLflow pyfunc: renewal-state rows in (the columns
``qualify.retention.renewal_states`` builds), ``risk`` and ``reasons`` out."""

from __future__ import annotations

import joblib
import mlflow
import pandas as pd

from buying_groups.qualify.retention import RenewalRisk, risk_reasons


class RetentionPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the fitted model (artifact ``renewal_risk``, a joblib file) once per process."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model: RenewalRisk = joblib.load(context.artifacts["renewal_risk"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            return renewal_outputs(self.model, model_input)
        except ValueError as exc:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc


def renewal_outputs(model: RenewalRisk, states: pd.DataFrame) -> pd.DataFrame:
    """Risk and the reasons that raise it, one row per input row."""
    return pd.DataFrame(
        {
            "risk": model.score(states),
            "reasons": risk_reasons(states, model.contributions(states)).to_numpy(),
        },
        index=states.index,
    )
