"""Faults against a real `checkup-risk serve` (issue 13): a CDS client whose JWK Set server never
answers must not stall /score or /readyz; idle and slow clients are disconnected after the
configured deadlines while /score keeps answering; /metrics does not grow with the paths asked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from features.schema import EXAMPLE_RECORD
from serving.cds_auth import JWKS_TIMEOUT_S
from tests.cds_clients import TestClientKeys
from tests.integration.test_server import free_port, home  # noqa: F401 (home: the module fixture)

pytestmark = pytest.mark.slow
STALLED_ISSUER = "https://stalled.example.org"
KEEP_ALIVE_S = 2
READ_TIMEOUT_S = 3
FAST_S = 1.0


class BlackHole:
    """A TCP server that accepts connections and never answers: a JWK Set host that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def start_server(model_home: Path, env_extra: dict[str, str], workers: int = 1) -> tuple[subprocess.Popen, str, Path]:
    """`checkup-risk serve` on a free port, ready (its /readyz answers 200); the log is a file, not a
    pipe, so that an undrained pipe never stalls it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env.update(CHECKUP_RISK_HOME=str(model_home), CHECKUP_RISK_ALLOW_SYNTHETIC="1", **env_extra)
    log_path = model_home / f"serve-{port}.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text()[-3000:])
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError("server not ready: " + log_path.read_text()[-3000:])


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def faulty(home) -> Iterator[tuple[str, str]]:  # noqa: F811 (the imported fixture)
    """(url, API token) of a server that trusts one CDS client whose jwks_url hangs, with short
    keep-alive and read deadlines."""
    hole = BlackHole()
    clients = home / "stalled_clients.json"
    clients.write_text(json.dumps([{"iss": STALLED_ISSUER, "jwks_url": f"http://127.0.0.1:{hole.port}/jwks"}]))
    proc, url, _ = start_server(
        home,
        {
            "CHECKUP_RISK_CDS_CLIENTS": str(clients),
            "CHECKUP_RISK_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE_S),
            "CHECKUP_RISK_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT_S),
        },
    )
    try:
        yield url, (home / "api_token").read_text().strip()
    finally:
        stop_server(proc)
        hole.close()


async def _timed(client: httpx.AsyncClient, method: str, path: str, **kw) -> tuple[float, int]:
    t = time.perf_counter()
    r = await client.request(method, path, **kw)
    return time.perf_counter() - t, r.status_code


def test_stalled_jwks_never_blocks_score_or_readyz(faulty):
    url, token = faulty
    endpoint = f"{url}/cds-services/checkup-risk"
    keys = TestClientKeys(iss=STALLED_ISSUER)
    tokens = ["junk", "a.b.c", *(keys.token(endpoint, kid=f"unknown-{i}") for i in range(6))]
    cds_body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": {}}
    score = {"json": {"checkups": [EXAMPLE_RECORD]}, "headers": {"Authorization": f"Bearer {token}"}}

    async def run() -> tuple[list[int], list[tuple[float, int]]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            await client.post("/score", **score)  # warm: the first call pays one-off costs
            # Three waves: the first fetch hangs for the whole JWKS deadline, later ones back off.
            cds = [
                client.post(endpoint, json=cds_body, headers={"Authorization": f"Bearer {t}"})
                for _ in range(3)
                for t in tokens
            ]
            cds_task = asyncio.gather(*cds)
            probes: list[tuple[float, int]] = []
            start = time.perf_counter()
            while time.perf_counter() - start < 4 or not cds_task.done():
                probes.append(await _timed(client, "POST", "/score", **score))
                probes.append(await _timed(client, "GET", "/readyz"))
            return [r.status_code for r in await cds_task], probes

    statuses, probes = asyncio.run(run())
    assert set(statuses) == {401}, statuses
    assert all(status == 200 for _, status in probes), probes
    worst = max(seconds for seconds, _ in probes)
    # A call blocked behind the hung fetch waits out its whole deadline; one slowed only by the load
    # of the test run (1.1 s once, with four test workers on two cores) stays well under it.
    assert worst < 0.75 * JWKS_TIMEOUT_S, f"a probe or /score took {worst:.2f} s while the JWK Set host hung"


def _closed_after(sock: socket.socket, trickle: bytes = b"", limit: float = 15.0) -> tuple[float, bytes]:
    """Seconds until the server closes `sock` (sending `trickle` a byte each 0.3 s), and what it sent."""
    sock.settimeout(0.3)
    start, received = time.perf_counter(), b""
    while time.perf_counter() - start < limit:
        try:
            if trickle:
                sock.sendall(trickle[:1])
                trickle = trickle[1:] or trickle
            data = sock.recv(4096)
            if not data:
                return time.perf_counter() - start, received
            received += data
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.perf_counter() - start, received
    raise AssertionError(f"still open after {limit} s")


def test_idle_and_slow_clients_are_cut_off(faulty):
    url, token = faulty
    port = int(url.rsplit(":", 1)[1])
    results: dict[str, tuple[float, bytes]] = {}

    def client(name: str, first: bytes, trickle: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(first)
            if name == "kept-alive":
                sock.settimeout(5)
                assert b"200 OK" in sock.recv(65536)
            results[name] = _closed_after(sock, trickle)
        finally:
            sock.close()

    head = f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n".encode()
    clients = {
        "idle": (b"", b""),
        "kept-alive": (b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", b""),
        "slow headers": (head, b"X-Slow: " + b"a" * 100),
        "slow body": (head + b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{", b" " * 100),
    }
    threads = [threading.Thread(target=client, args=(n, *c)) for n, c in clients.items()]
    for t in threads:
        t.start()
    # Meanwhile /score answers as usual.
    auth = {"Authorization": f"Bearer {token}"}
    latencies = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/score", json={"checkups": [EXAMPLE_RECORD]}, headers=auth, timeout=10)
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 200
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    assert max(latencies) < FAST_S, latencies
    assert set(results) == set(clients), results
    for name in ("idle", "kept-alive"):
        assert KEEP_ALIVE_S - 0.5 < results[name][0] < KEEP_ALIVE_S + 2, (name, results[name])
    for name in ("slow headers", "slow body"):
        seconds, sent = results[name]
        assert READ_TIMEOUT_S - 0.5 < seconds < READ_TIMEOUT_S + 2, (name, seconds)
        assert sent.startswith(b"HTTP/1.1 408"), (name, sent[:100])


def test_oversize_request_head_is_refused(faulty):
    url, _ = faulty
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    with sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        _, sent = _closed_after(sock)
    assert sent.startswith(b"HTTP/1.1 431"), sent[:100]


def test_metrics_size_does_not_grow_with_paths(faulty):
    url, _ = faulty
    marker = uuid.uuid4().hex[:12]

    async def hit(paths: list[str]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=16)) as client:
            sem = asyncio.Semaphore(16)

            async def one(path: str) -> None:
                async with sem:
                    await client.get(path)

            await asyncio.gather(*(one(p) for p in paths))

    # Every label a random path can reach exists before the measurement.
    asyncio.run(hit([f"/no-such-{marker}", f"/reports/{marker}", "/metrics"]))
    before = httpx.get(f"{url}/metrics").text
    random = [f"/{marker}-{uuid.uuid4().hex}" for _ in range(500)]
    random += [f"/reports/{marker}{uuid.uuid4().hex}" for _ in range(500)]
    asyncio.run(hit(random))
    after = httpx.get(f"{url}/metrics").text
    assert marker not in after
    assert 'endpoint="__unknown__"' in after and 'endpoint="/reports/{key}"' in after
    # Only counts and sums change (a few more digits); 1,000 paths as labels would add ~100 KB.
    assert len(after) - len(before) < 2000, (len(before), len(after))
