"""A real MLflow SQLite store: log, register, alias and load give back the same model."""

import numpy as np
import pytest

from training import registry
from training.train import example_frame


@pytest.fixture
def home(tmp_path):
    registry.configure(tmp_path / "home")
    return tmp_path / "home"


def test_train_log_load_round_trip_to_1e9(model, held_out, home):
    import mlflow

    with mlflow.start_run(experiment_id=registry.experiment("test")):
        uri, version = registry.log_bundle(model, example_frame())
    registry.set_alias(registry.CHALLENGER, version)
    assert (home / "mlflow.db").exists()
    assert registry.version_of("challenger") == version
    assert registry.version_of("champion") is None
    with pytest.raises(LookupError, match=f"version {version} is the challenger: name it"):
        registry.load("champion")  # a first training run without --promote: say what there is
    loaded, v = registry.load("challenger")
    assert v == version
    # A name that is neither an alias nor a version: what the registry holds is said.
    with pytest.raises(LookupError, match=f"it holds version {version} \\(challenger {version}\\): name one"):
        registry.load("foo")
    np.testing.assert_allclose(
        loaded.predict(held_out).to_numpy(), model.predict(held_out).to_numpy(), rtol=0, atol=1e-9
    )
    # The pyfunc face gives the same probabilities.
    pyfunc = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(
        pyfunc.predict(held_out.head(50)).to_numpy(dtype=float),
        model.predict(held_out.head(50)).to_numpy(),
        rtol=0,
        atol=1e-9,
    )
    # A canonical file as a data scientist reads it: optional columns left out, integer columns (an
    # age of 50, an SBP of 120). The signature requires only person_id and sex and takes any type.
    partial = held_out.head(50).drop(columns=["waist_cm", "ldl", "urine_protein", "activity_days_per_week"])
    partial = partial.assign(
        age=partial["age"].round().astype("int64"), sbp=partial["sbp"].fillna(120).round().astype("int64")
    )
    np.testing.assert_allclose(
        pyfunc.predict(partial).to_numpy(dtype=float), model.predict(partial).to_numpy(), rtol=0, atol=1e-9
    )
    with pytest.raises(Exception, match="sex"):
        pyfunc.predict(partial.drop(columns=["sex"]))


def test_missing_version_is_a_clear_error(home):
    with pytest.raises(LookupError, match="checkup-risk train"):
        registry.load("champion")
