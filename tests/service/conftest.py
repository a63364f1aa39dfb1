"""One trained model, logged to a real MLflow store, imported into a real BentoML store, and the
service app built once per session (BentoML's to_asgi() can only be built once per process)."""

import os

import pytest

from features.synth import generate_cohort
from serving.settings import Settings, configure_libraries
from tests.cds_clients import TestClientKeys

# Keys are made once: the service reads the allowlist when its worker starts.
CDS_CLIENT = TestClientKeys()


@pytest.fixture(scope="session")
def service_settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("service-home")
    # The test model learns from the synthetic cohort, and CDS gives no cards from a synthetic model
    # unless the site allows it: the card tests need them (test_provenance proves the refusal).
    return Settings(
        home=home,
        api_token="test-token",
        allow_synthetic=True,
        cds_clients=CDS_CLIENT.write_allowlist(home / "cds_clients.json"),
    )


@pytest.fixture(scope="session")
def service_home(service_settings):
    home = service_settings.home
    # The command line, called in-process by the report tests, finds the same store.
    os.environ["CHECKUP_RISK_HOME"] = str(home)
    configure_libraries(service_settings)
    import mlflow

    from models.bundle import DEFAULT_GRID, RiskModel
    from serving import store
    from training import registry
    from training.train import example_frame

    registry.configure(home)
    model = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=3000, seed=31))
    with mlflow.start_run(experiment_id=registry.experiment("service-tests")):
        _, version = registry.log_bundle(model, example_frame())
    registry.set_alias(registry.CHAMPION, version)
    store.pin(store.import_version(version), home)
    return home, model, version


@pytest.fixture(scope="session")
def client(service_settings, service_home):
    from starlette.testclient import TestClient

    from serving.service import build_service

    with TestClient(build_service(service_settings).to_asgi()) as c:
        c.headers["Authorization"] = "Bearer test-token"
        yield c


@pytest.fixture(scope="session")
def cds_client_keys(service_home) -> TestClientKeys:
    return CDS_CLIENT


CDS_URL = "http://testserver/cds-services/checkup-risk"


@pytest.fixture
def post_cds(client, cds_client_keys):
    """POST a CDS Hooks call to the service, signed as the test CDS client."""

    def call(body: dict):
        headers = {"Authorization": f"Bearer {cds_client_keys.token(CDS_URL)}"}
        return client.post("/cds-services/checkup-risk", json=body, headers=headers)

    return call


@pytest.fixture(scope="session")
def report_links(service_settings, service_home):
    """The service's report-link store: the same shared state and secret as the running service."""
    from features.pseudonym import derive, load_secret
    from serving.cds_store import ReportLinks
    from serving.state_db import open_state

    home = service_settings.home
    return ReportLinks(open_state(None, home), derive(load_secret(home, None), "report-link"), 900)
