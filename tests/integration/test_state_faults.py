"""Faults of the shared state and the model at start-up, on a real `checkup-risk serve`: the SQLite
store's filesystem full (a small tmpfs holding only the state file) is answered with 503 and
not-ready, and recovers once space is back; a server told to serve a model tag that does not exist
never reports ready and says why in its log."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.schema import EXAMPLE_RECORD
from tests.integration.conftest import model_home as copy_model_home
from tests.integration.test_faults_server import start_server, stop_server
from tests.integration.test_server import free_port

pytestmark = pytest.mark.slow
SMALL_FS = "4m"
# Long enough not to draw the weak-token WARNING, which would be a second line on stderr.
STRONG_TOKEN = "state-faults-" + "x" * 32


@pytest.fixture(scope="module")
def model_home(model_template, tmp_path_factory):
    """A home whose champion is the small real model of tests/integration/conftest.py."""
    return copy_model_home(model_template, tmp_path_factory.mktemp("state-faults") / "home")


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of SMALL_FS mounted for this test only (root and mount(8) needed), unmounted after."""
    where = tmp_path / "small-fs"
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a bounded filesystem needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount refused: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(where: Path) -> None:
    """Zeros into where/filler until the (dedicated, small) filesystem has no byte left."""
    with open(where / "filler", "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)


def _until(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def test_full_sqlite_store_is_503_and_not_ready_then_recovers(model_home, small_fs, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(model_home, home, ignore=shutil.ignore_patterns("state.sqlite*", "serve-*.out"))
    # Only the state database lives on the small filesystem (SQLite keeps its WAL beside the target).
    (home / "state.sqlite").symlink_to(small_fs / "state.sqlite")
    proc, url, log_path = start_server(home, {})
    try:
        auth = {"Authorization": f"Bearer {(home / 'api_token').read_text().strip()}"}
        body = {"checkups": [EXAMPLE_RECORD]}
        with httpx.Client(base_url=url, timeout=15) as client:
            assert client.post("/score", json=body, headers=auth).status_code == 200
            _fill(small_fs)
            statuses: list[int] = []

            def refused() -> httpx.Response | None:
                r = client.post("/score", json=body, headers=auth)
                statuses.append(r.status_code)
                return r if r.status_code != 200 else None

            # A WAL file that already has room may take a few more entries before a write needs space.
            r = _until(refused, 20, "no /score refusal with the store full")
            assert 500 not in statuses, statuses
            assert r.status_code == 503, (r.status_code, r.text)
            assert "Retry-After" in r.headers
            payload = r.json()
            assert set(payload) == {"errors"} and isinstance(payload["errors"], list) and payload["errors"]
            assert "audited" in payload["errors"][0]["message"]
            assert EXAMPLE_RECORD["person_id"] not in r.text
            _until(lambda: client.get("/readyz").status_code == 503, 10, "/readyz not 503 with the store full")
            assert client.get("/livez").status_code == 200

            (small_fs / "filler").unlink()
            _until(lambda: client.get("/readyz").status_code == 200, 20, "/readyz not 200 once space was back")
            assert client.post("/score", json=body, headers=auth).status_code == 200
    finally:
        stop_server(proc)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def test_missing_model_tag_never_reports_ready(model_home):
    # A bare `bentoml serve`: `checkup-risk serve` pins the champion in place of CHECKUP_RISK_MODEL_TAG.
    port = free_port()
    log_path = model_home / f"missing-tag-{port}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(
        CHECKUP_RISK_HOME=str(model_home),
        BENTOML_HOME=str(model_home / "bentoml"),
        CHECKUP_RISK_MODEL_TAG="checkup-risk:v999",
        CHECKUP_RISK_WORKERS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(port)],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 40
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code != 200, "ready"
            time.sleep(0.3)
        assert proc.poll() is not None and proc.returncode != 0, "kept running without its model"
    finally:
        if proc.poll() is None:
            stop_server(proc)
    log = log_path.read_text()
    assert "checkup-risk:v999" in log and "could not be found" in log, log[-2000:]


def test_corrupt_model_stays_up_not_ready_and_says_why(model_home, tmp_path):
    """Every booster file of the imported model overwritten: the worker stays up (no restart loop),
    not ready, answers 503, and one log line names the model and its folder."""
    home = tmp_path / "home"
    shutil.copytree(model_home, home, ignore=shutil.ignore_patterns("state.sqlite*", "*.out"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(CHECKUP_RISK_HOME=str(home), BENTOML_HOME=str(home / "bentoml"))
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from training import registry; from serving import store\n"
            "registry.configure(Path(sys.argv[1])); print(store.import_version('1'))",
            str(home),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    tag = imported.stdout.strip().splitlines()[-1]
    boosters = list((home / "bentoml" / "models").rglob("*.ubj"))
    assert boosters
    for path in boosters:
        path.write_bytes(os.urandom(path.stat().st_size))
    port = free_port()
    log_path = tmp_path / "corrupt.out"
    env.update(CHECKUP_RISK_MODEL_TAG=tag, CHECKUP_RISK_WORKERS="1", CHECKUP_RISK_API_TOKEN=STRONG_TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService", "--port", str(port)],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: "cannot load" in log_path.read_text(), 90, "no log line about the model")
        _until(lambda: _answers(f"{url}/livez"), 30, "the worker did not stay up")
        assert httpx.get(f"{url}/readyz", timeout=5).status_code != 200
        r = httpx.post(
            f"{url}/score", json={"checkups": [EXAMPLE_RECORD]}, headers={"Authorization": f"Bearer {STRONG_TOKEN}"}
        )
        assert r.status_code == 503 and "no model is loaded" in r.json()["errors"][0]["message"]
        assert proc.poll() is None
    finally:
        stop_server(proc)
    log = log_path.read_text()
    assert f"model: cannot load {tag}" in log and str(home / "bentoml") in log, log[-2000:]
    assert log.count("model: cannot load") == 1, "restarted in a loop"


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def test_serve_with_a_damaged_bundle_stops_in_one_line_naming_it(model_home, tmp_path):
    """A bundle whose manifest cannot be read: `serve` stops before saying "serving", naming the
    model and the file (it said "serving model version 1" and then a bare JSON parser error)."""
    home = tmp_path / "home"
    shutil.copytree(model_home, home, ignore=shutil.ignore_patterns("state.sqlite*", "*.out"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(CHECKUP_RISK_HOME=str(home), CHECKUP_RISK_API_TOKEN=STRONG_TOKEN)
    serve = [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(free_port())]
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from training import registry; from serving import store\n"
            "registry.configure(Path(sys.argv[1])); print(store.import_version(registry.version_of('champion')))",
            str(home),
        ],
        env={**env, "BENTOML_HOME": str(home / "bentoml")},
        check=True,
        capture_output=True,
    )
    manifests = list((home / "bentoml" / "models").rglob("manifest.json"))
    assert manifests
    for path in manifests:
        path.write_text('{"training_data": {"kind": "real" "persons": 3}}')
    done = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "serving model version" not in done.stdout, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert "cannot be read" in line and "manifest.json" in line and "promote another version" in line
