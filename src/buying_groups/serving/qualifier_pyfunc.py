"""The qualifier as an MLflow pyfunc: a group-state table in (one row per account x product,
the columns ``group_states`` builds); score, qualified flag, reasons and missing roles out."""

from __future__ import annotations

import joblib
import mlflow
import pandas as pd

from buying_groups.qualify.model import Qualifier, qualifier_outputs


class QualifierPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the fitted qualifier (artifact ``qualifier``, a joblib file) once per process."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.qualifier: Qualifier = joblib.load(context.artifacts["qualifier"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            return qualifier_outputs(self.qualifier, model_input)
        except ValueError as exc:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc
