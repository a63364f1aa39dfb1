"""MLflow "models from code" entry: the pyfunc face of the RiskModel bundle.

MLflow copies this file into each logged model and runs it at load time, so no pickled object
is ever deserialised; the bundle itself is XGBoost native files plus a JSON manifest.
"""

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from models.bundle import RiskModel


class RiskBundle(PythonModel):
    """Canonical checkup records in, one-year probabilities per outcome out (NaN: not applicable)."""

    def load_context(self, context) -> None:
        self.model = RiskModel.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)


set_model(RiskBundle())
