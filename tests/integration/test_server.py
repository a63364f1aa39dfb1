"""A real `checkup-risk serve` (which runs `bentoml serve`) in a subprocess, called over HTTP with
bentoml.SyncHTTPClient and raw httpx, plus a real `bentoml build` of the service."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.schema import EXAMPLE_RECORD
from tests.cds_clients import TestClientKeys
from tests.integration.conftest import model_home as copy_model_home

pytestmark = pytest.mark.slow
CDS = TestClientKeys()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def home(model_template, tmp_path_factory):
    """A store whose champion is a quickly trained real model (tests/integration/conftest.py; the
    default model path is the same code with a bigger cohort, tests/integration/test_cli.py trains
    through the CLI)."""
    return copy_model_home(model_template, tmp_path_factory.mktemp("server-home") / "home")


@pytest.fixture(scope="module")
def server(home):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env["CHECKUP_RISK_HOME"] = str(home)
    env["CHECKUP_RISK_CDS_CLIENTS"] = str(CDS.write_allowlist(home / "cds_clients.json"))
    # The default model is trained on the synthetic cohort: cards only when that is allowed.
    env["CHECKUP_RISK_ALLOW_SYNTHETIC"] = "1"
    log_path = home / "serve.out"
    log = open(log_path, "w")  # a file, not a pipe: an undrained pipe would stall the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 180
    url = f"http://127.0.0.1:{port}"
    while time.time() < deadline and "curl" not in log_path.read_text():
        time.sleep(0.5)
    lines = [log_path.read_text()]
    import bentoml

    client = bentoml.SyncHTTPClient(url, token=(home / "api_token").read_text().strip(), server_ready_timeout=180)
    try:
        yield url, client, "".join(lines), home
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_first_run_prints_token_and_a_working_curl(server):
    url, _, out, home = server
    token = (home / "api_token").read_text().strip()
    assert "created API token" in out and token in out
    curl = next(line.strip() for line in out.splitlines() if line.strip().startswith("curl"))
    done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    body = httpx.Response(200, content=done.stdout).json()
    assert body["results"][0]["person_id"] == EXAMPLE_RECORD["person_id"]


def test_score_through_bentoml_client(server):
    _, client, _, _ = server
    r = client.request("POST", "/score", json={"checkups": [EXAMPLE_RECORD], "top_k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"]
    assert body["results"][0]["risks"]["cvd"]["contributions"]


def test_raw_http_auth_probes_metrics(server):
    url, client, _, home = server
    refused = httpx.post(f"{url}/score", json={"checkups": [EXAMPLE_RECORD]})
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["errors"][0]["message"]
    assert (
        httpx.post(
            f"{url}/score", json={"checkups": [EXAMPLE_RECORD]}, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(f"{url}{path}").status_code == 200
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and "checkup_risk" in metrics.text
    bad = client.request("POST", "/score", json={"checkups": [dict(EXAMPLE_RECORD, sbp=999)]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sbp"
    docs = client.request("GET", "/openapi.json")
    assert docs.status_code == 200 and "/score" in docs.json()["paths"]
    # The API's description opens in a browser without a token (it holds no patient data).
    assert "/score" in httpx.get(f"{url}/openapi.json").json()["paths"]
    page = httpx.get(f"{url}/docs").text
    assert "swagger" in page.lower() and "cdn." not in page  # nothing fetched from outside (offline networks)
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        got = httpx.get(f"{url}/static_content/{asset}")
        assert got.status_code == 200 and len(got.content) > 1000, asset


def test_no_patient_data_in_server_logs(server, home):
    url, client, _, _ = server
    client.request("POST", "/score", json={"checkups": [dict(EXAMPLE_RECORD, person_id="secret-person-42")]})
    logs = "".join(p.read_text(errors="ignore") for p in (home / "bentoml").rglob("*.log"))
    assert "secret-person-42" not in logs


def test_bento_build(home):
    env = {**os.environ, "CHECKUP_RISK_HOME": str(home), "BENTOML_HOME": str(home / "bentoml")}
    out = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "bento"], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    tag = re.search(r"built Bento (\S+);", out.stdout).group(1)
    listed = subprocess.run(
        [sys.executable, "-m", "bentoml", "list", "-o", "json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert tag in listed.stdout
    # Everything the service needs at start-up travels in the Bento, the schema's migrations too.
    found = subprocess.run(
        [sys.executable, "-c", "import sys, bentoml; print(bentoml.get(sys.argv[1]).path)", tag],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    src = Path(found.stdout.strip()) / "src"
    for part in (
        "serving/migrations/env.py",
        "serving/migrations/versions/0001_shared_state.py",
        "features/pseudonym.py",
    ):
        assert (src / part).is_file(), part


def test_cds_hooks_over_real_http(server):
    """Discovery without credentials, a signed patient-view call, a replay refused, a FHIR call."""
    from features.fhir import to_bundle
    from tests.service.test_cds import cds_call

    url, _, _, home = server
    assert httpx.get(f"{url}/cds-services").json()["services"][0]["id"] == "checkup-risk"
    endpoint = f"{url}/cds-services/checkup-risk"
    token = CDS.token(endpoint)
    r = httpx.post(endpoint, json=cds_call(EXAMPLE_RECORD), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["cards"][0]["summary"]
    replay = httpx.post(endpoint, json=cds_call(EXAMPLE_RECORD), headers={"Authorization": f"Bearer {token}"})
    assert replay.status_code == 401
    api = {"Authorization": f"Bearer {(home / 'api_token').read_text().strip()}"}
    r = httpx.post(f"{url}/fhir/risk-assessment", json=to_bundle(EXAMPLE_RECORD), headers=api, timeout=30)
    assert r.status_code == 200 and r.json()["entry"][0]["resource"]["resourceType"] == "RiskAssessment"
