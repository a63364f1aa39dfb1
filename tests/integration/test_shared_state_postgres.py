"""Two real service instances on one PostgreSQL database, as behind a load balancer: one public URL,
one secret, separate homes. A CDS token used on one is refused on the other, a report link made by
one opens on the other, the audit entries of both verify as one chain, and a database outage is
answered with 503 (not 500) and not-ready, recovering when the database is back."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.schema import EXAMPLE_RECORD
from tests.cds_clients import TestClientKeys
from tests.integration.conftest import model_home as copy_model_home
from tests.integration.test_server import free_port
from tests.postgres import PostgresServer, port_for_worker

pytestmark = pytest.mark.slow
CDS = TestClientKeys()
PUBLIC = "https://risk.hospital.example"
TOKEN = "shared-bootstrap-token"
SECRET = "one-secret-for-every-instance"


@pytest.fixture(scope="module")
def database(worker_id):
    # Its own server, not the session's: this module stops and restarts it.
    with PostgresServer(port=port_for_worker(worker_id) + 200) as server:
        yield server, server.create_database("shared_state")


@pytest.fixture(scope="module")
def homes(model_template, tmp_path_factory):
    # Two homes with one registry (its artifacts stay in the template), as two machines would have.
    where = tmp_path_factory.mktemp("instances")
    return copy_model_home(model_template, where / "a"), copy_model_home(model_template, where / "b")


def _env(home: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(
        CHECKUP_RISK_HOME=str(home),
        CHECKUP_RISK_DATABASE_URL=url,
        CHECKUP_RISK_PUBLIC_URL=PUBLIC,
        CHECKUP_RISK_SECRET_KEY=SECRET,
        CHECKUP_RISK_API_TOKEN=TOKEN,
        CHECKUP_RISK_CDS_CLIENTS=str(CDS.write_allowlist(home / "cds_clients.json")),
        CHECKUP_RISK_ALLOW_SYNTHETIC="1",
    )
    return env


@pytest.fixture(scope="module")
def instances(homes, database):
    _, url = database
    started = []
    for home in homes:
        port = free_port()
        log = open(home / "serve.out", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", "1"],
            env=_env(home, url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((proc, f"http://127.0.0.1:{port}"))
    try:
        for proc, base in started:
            _wait_ready(proc, base)
        yield [base for _, base in started]
    finally:
        for proc, _ in started:
            os.killpg(proc.pid, signal.SIGINT)
        for proc, _ in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_ready(proc: subprocess.Popen, base: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the service exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{base} not ready in {timeout} s")


API = {"Authorization": f"Bearer {TOKEN}"}


def _cds(base: str, token: str) -> httpx.Response:
    from tests.service.test_cds import cds_call

    # The load balancer passes the public URL's path on: the client signs for the public URL.
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{base}/cds-services/checkup-risk", json=cds_call(EXAMPLE_RECORD), headers=headers, timeout=30)


def test_two_instances_act_as_one(instances, homes, database):
    a, b = instances
    token = CDS.token(f"{PUBLIC}/cds-services/checkup-risk")
    first = _cds(a, token)
    assert first.status_code == 200, first.text
    assert _cds(b, token).status_code == 401  # the replay, on the other instance
    assert _cds(a, token).status_code == 401

    link = first.json()["cards"][0]["links"][0]["url"]
    assert link.startswith(f"{PUBLIC}/reports/") and "sig=" in link
    opened = httpx.get(link.replace(PUBLIC, b), timeout=30)  # no bearer token, the other instance
    assert opened.status_code == 200 and "text/html" in opened.headers["content-type"]
    tampered = httpx.get(link.replace(PUBLIC, b).replace("exp=", "exp=9"), timeout=30)
    assert tampered.status_code == 403 and EXAMPLE_RECORD["person_id"] not in tampered.text

    for base in (a, b):
        r = httpx.post(f"{base}/score", json={"checkups": [EXAMPLE_RECORD]}, headers=API, timeout=30)
        assert r.status_code == 200

    env = _env(homes[0], database[1])
    done = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    checked = int(done.stdout.split("intact: ")[1].split(" ")[0])
    assert checked >= 6  # three CDS calls, one report link, one tampered link, two /score calls
    exported = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "audit", "export", "--since", "2000-01-01"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0 and EXAMPLE_RECORD["person_id"] not in exported.stdout
    assert "/cds-services/checkup-risk" in exported.stdout and PUBLIC not in exported.stdout


def test_database_outage_is_503_and_not_ready_then_recovers(instances, database):
    a, _ = instances
    server, _ = database
    server.halt()
    try:
        score = httpx.post(f"{a}/score", json={"checkups": [EXAMPLE_RECORD]}, headers=API, timeout=30)
        assert score.status_code == 503 and "Retry-After" in score.headers
        assert "audited" in score.json()["errors"][0]["message"]
        cds = _cds(a, CDS.token(f"{PUBLIC}/cds-services/checkup-risk"))
        assert cds.status_code == 503 and cds.json()["resourceType"] == "OperationOutcome"
        deadline = time.time() + 10
        while httpx.get(f"{a}/readyz", timeout=10).status_code == 200:
            assert time.time() < deadline, "still ready with the database down"
            time.sleep(0.5)
        assert httpx.get(f"{a}/livez", timeout=10).status_code == 200
    finally:
        server.resume()
    deadline = time.time() + 20
    while httpx.get(f"{a}/readyz", timeout=10).status_code != 200:
        assert time.time() < deadline, "not ready again after the database came back"
        time.sleep(0.5)
    r = httpx.post(f"{a}/score", json={"checkups": [EXAMPLE_RECORD]}, headers=API, timeout=30)
    assert r.status_code == 200
