"""One trained model, logged to a real MLflow store, imported into a real BentoML store, and the
service app built once per session (BentoML's to_asgi() can only be built once per process)."""

import os

import pytest

from features.synth import generate_cohort
from tests.cds_clients import TestClientKeys

# Keys are made once: the service reads the allowlist when its worker starts.
CDS_CLIENT = TestClientKeys()


@pytest.fixture(scope="session")
def service_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("service-home")
    os.environ["CHECKUP_RISK_HOME"] = str(home)
    os.environ["CHECKUP_RISK_API_TOKEN"] = "test-token"
    os.environ["CHECKUP_RISK_CDS_CLIENTS"] = str(CDS_CLIENT.write_allowlist(home / "cds_clients.json"))
    # The test model learns from the synthetic cohort, and CDS gives no cards from a synthetic model
    # unless the site allows it: the card tests need them (test_provenance proves the refusal).
    os.environ["CHECKUP_RISK_ALLOW_SYNTHETIC"] = "1"
    from serving import store

    store.use_home(home)
    import mlflow

    from models.bundle import DEFAULT_GRID, RiskModel
    from training import registry
    from training.train import example_frame

    registry.configure(home)
    model = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=3000, seed=31))
    with mlflow.start_run(experiment_id=registry.experiment("service-tests")):
        _, version = registry.log_bundle(model, example_frame())
    registry.set_alias(registry.CHAMPION, version)
    store.pin(store.import_version(version, home), home)
    return home, model, version


@pytest.fixture(scope="session")
def client(service_home):
    from starlette.testclient import TestClient

    from serving.service import RiskService

    with TestClient(RiskService.to_asgi()) as c:
        c.headers["Authorization"] = "Bearer test-token"
        yield c


@pytest.fixture(scope="session")
def cds_client_keys(service_home) -> TestClientKeys:
    return CDS_CLIENT
