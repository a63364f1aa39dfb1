"""MLflow's tracking store and model registry on one PostgreSQL database (docs/deployment.md):
a run, a registered version, the `champion` alias, and the model read back through the alias."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow

NAME = "checkup-risk-pg-check"


def test_mlflow_tracking_and_registry_on_postgres(postgres_url, tmp_path, monkeypatch):
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy import create_engine

    uri = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    # MLflow's URIs are process-wide (and copied into the environment): put back whatever the other
    # tests of this worker set (training.registry.configure points them at a SQLite store).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient()
        assert client._tracking_client.tracking_uri == uri and client._registry_uri == uri
        experiment = mlflow.create_experiment("postgres-check", artifact_location=(tmp_path / "artifacts").as_uri())

        rng = np.random.default_rng(0)
        x = rng.normal(size=(200, 3))
        y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=200) > 0).astype(int)
        model = LogisticRegression().fit(x, y)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_param("C", model.C)
            mlflow.log_metric("train_accuracy", model.score(x, y))
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=NAME)
        version = str(info.registered_model_version)
        client.set_registered_model_alias(NAME, "champion", version)

        # Read back from PostgreSQL: the run, the alias, and the model through `models:/NAME@champion`.
        stored = client.get_run(run.info.run_id)
        assert stored.data.params == {"C": "1.0"}
        assert stored.data.metrics["train_accuracy"] == pytest.approx(model.score(x, y))
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == version
        loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
        np.testing.assert_array_equal(loaded.predict(x[:20]), model.predict(x[:20]))
        assert (tmp_path / "artifacts").is_dir()  # artifacts went to the folder, not the database

        # And the rows are in PostgreSQL itself.
        engine = create_engine(uri)
        try:
            with engine.connect() as conn:
                names = conn.exec_driver_sql("select name from registered_models").scalars().all()
                alias = conn.exec_driver_sql("select alias, version from registered_model_aliases").one()
        finally:
            engine.dispose()
        assert names == [NAME] and tuple(alias) == ("champion", int(version))
    finally:
        mlflow.set_tracking_uri(previous)


def test_the_project_registry_on_postgres_is_seen_from_another_home(postgres_url, tmp_path, monkeypatch):
    """CHECKUP_RISK_MLFLOW_URI: training on one machine registers and promotes on the shared
    registry; a service instance with another home finds the champion there and imports it."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from features.synth import generate_cohort
    from models.bundle import DEFAULT_GRID, RiskModel
    from serving.model_reload import MlflowChampion
    from serving.settings import Settings
    from training import registry
    from training.train import example_frame

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry, "_home", registry._home)
    monkeypatch.setattr(registry, "_uri", registry._uri)
    settings = Settings.from_env(
        {"CHECKUP_RISK_HOME": str(tmp_path / "trainer"), "CHECKUP_RISK_MLFLOW_URI": postgres_url}
    )
    import mlflow

    uri = registry.configure(settings.home, settings.mlflow_uri)
    assert uri.startswith("postgresql+psycopg://") and not (settings.home / "mlflow.db").exists()
    model = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=1500, seed=5))
    with mlflow.start_run(experiment_id=registry.experiment("shared-registry")):
        _, version = registry.log_bundle(model, example_frame())
    registry.set_alias(registry.CHAMPION, version)

    other_home = tmp_path / "instance"
    other_home.mkdir()
    champion = MlflowChampion(other_home, postgres_url)
    assert champion.champion() == str(version)
    source = champion.source(str(version))
    assert source.startswith("file://") and not (other_home / "mlflow.db").exists()
