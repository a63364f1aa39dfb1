"""/score latency and failures while the service is under attack or losing a worker, beside a
fault-free baseline measured in the same run.

Starts `checkup-risk serve` (a real `bentoml serve`, 2 workers) on a store in a temporary home (the
default model is trained on first run) unless `--home` names an existing store; the allowlist
trusts one CDS client whose jwks_url accepts connections and never answers. For each scenario a
small asyncio httpx client sends single-record /score requests at modest concurrency for
`--seconds`, while the fault runs beside it:

- baseline: no fault;
- JWKS stall: CDS calls with junk and unknown-kid tokens of the hanging issuer;
- oversize bodies: 9 MiB POSTs (413 expected);
- deep JSON: 200,000-deep nested arrays (400 expected);
- slow clients: many sockets trickling request headers a byte at a time;
- worker kill: `kill -9` of one BentoML worker two seconds in.

    .venv/bin/python bench/bench_faults.py [--home DIR] [--seconds 8] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from serve_ready import wait_ready  # bench/ is sys.path[0] when a script here runs

STALLED_ISSUER = "https://stalled.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def black_hole() -> int:
    """The port of a TCP server that accepts connections and never answers (a hanging JWKS host)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    held = []

    def accept() -> None:
        while True:
            held.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return sock.getsockname()[1]


async def score_load(url: str, token: str, concurrency: int, seconds: float) -> tuple[list[float], int]:
    """(latencies in ms, failed requests) of /score calls sent back to back by `concurrency` tasks."""
    import httpx

    from features.schema import EXAMPLE_RECORD

    body = {"checkups": [EXAMPLE_RECORD], "explain": True, "top_k": 5}
    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, limits=limits
    ) as client:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    ok = (await client.post("/score", json=body)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - t) * 1000)
                failed += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failed


async def repeat_posts(url: str, path: str, body: Callable[[], bytes], headers: Callable[[], dict], stop: float) -> str:
    """POST `body()` to `path` until `stop`, two at a time; the status codes seen, counted."""
    import httpx

    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one() -> None:
            while time.perf_counter() < stop:
                try:
                    r = await client.post(path, content=body(), headers=headers())
                    seen[str(r.status_code)] += 1
                except httpx.HTTPError as e:
                    seen[type(e).__name__] += 1

        await asyncio.gather(one(), one())
    return ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))


async def slow_clients(port: int, stop: float, sockets: int = 200) -> str:
    """`sockets` connections each sending a request head a byte every half second until `stop`."""
    closed = 0

    async def one() -> None:
        nonlocal closed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        try:
            for byte in head:
                if reader.at_eof():
                    closed += 1
                    break
                if time.perf_counter() >= stop:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)
        except OSError:
            closed += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(sockets)))
    return f"{sockets} sockets, {closed} cut off by the server"


def worker_pids(server_pid: int) -> list[int]:
    import psutil

    return [
        p.pid
        for p in psutil.Process(server_pid).children(recursive=True)
        if "_bentoml_impl.worker.service" in " ".join(p.cmdline())
    ]


async def kill_one_worker(server_pid: int, delay: float) -> str:
    await asyncio.sleep(delay)
    pids = worker_pids(server_pid)
    os.kill(pids[0], signal.SIGKILL)
    return f"killed worker {pids[0]} of {len(pids)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="existing CHECKUP_RISK_HOME with a champion (default: a fresh one)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each scenario")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent /score requests")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    home = Path(args.home or Path(tmp.name) / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    clients = Path(tmp.name) / "clients.json"
    clients.write_text(json.dumps([{"iss": STALLED_ISSUER, "jwks_url": f"http://127.0.0.1:{black_hole()}/jwks"}]))
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env.update(CHECKUP_RISK_HOME=str(home), CHECKUP_RISK_CDS_CLIENTS=str(clients))
    # One client sends all the load: the per-client rate limit would answer most of it with 429.
    env["CHECKUP_RISK_RATE_LIMIT"] = "10000000"
    # Short enough that slow clients are cut off within a scenario.
    env["CHECKUP_RISK_READ_TIMEOUT_SECONDS"] = str(max(1, int(args.seconds / 2)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tmp.name) / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=open(log_path, "w"),  # a file, not a pipe: a full pipe would stall the server
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    rows = []
    try:
        started = time.perf_counter()
        wait_ready(proc, url, log_path)
        print(f"server ready after {time.perf_counter() - started:.0f} s")
        token = (home / "api_token").read_text().strip()
        asyncio.run(score_load(url, token, args.concurrency, 2))  # warm-up
        cds = f"{url}/cds-services/checkup-risk"
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP384R1())

        def unknown_kid_token() -> str:
            now = int(time.time())
            claims = {"iss": STALLED_ISSUER, "aud": cds, "exp": now + 300, "iat": now, "jti": uuid.uuid4().hex}
            return jwt.encode(claims, key, algorithm="ES384", headers={"kid": f"unknown-{uuid.uuid4().hex[:6]}"})

        def cds_headers() -> dict:
            bad = unknown_kid_token() if uuid.uuid4().int % 2 else "junk.jwt.x"
            return {"Authorization": f"Bearer {bad}", "Content-Type": "application/json"}

        def json_headers() -> dict:
            return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        oversize = b'{"checkups": [' + b" " * (9 * 2**20) + b"]}"
        deep = b"[" * 200_000 + b"]" * 200_000
        cds_body = json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {}}).encode()
        scenarios: dict[str, Callable[[float], Awaitable[str]] | None] = {
            "baseline (no fault)": None,
            "JWKS host hangs (CDS calls with junk / unknown-kid JWTs)": lambda stop: repeat_posts(
                url, cds, lambda: cds_body, cds_headers, stop
            ),
            "oversize bodies (9 MiB POST /score)": lambda stop: repeat_posts(
                url, "/score", lambda: oversize, json_headers, stop
            ),
            "deeply nested JSON (200,000 levels)": lambda stop: repeat_posts(
                url, "/score", lambda: deep, json_headers, stop
            ),
            "slow clients (200 sockets trickling headers)": lambda stop: slow_clients(port, stop),
            "worker kill -9 under load": lambda stop: kill_one_worker(proc.pid, 2.0),
        }

        for name, fault in scenarios.items():

            async def run(fault: Callable[[float], Awaitable[str]] | None = fault) -> tuple[list[float], int, str]:
                stop = time.perf_counter() + args.seconds
                load = score_load(url, token, args.concurrency, args.seconds)
                if fault is None:
                    latencies, failed = await load
                    return latencies, failed, ""
                (latencies, failed), note = await asyncio.gather(load, fault(stop))
                return latencies, failed, note

            latencies, failed, note = asyncio.run(run())
            rows.append((name, len(latencies), failed, np.percentile(latencies, 99), max(latencies), note))
            print(f"done: {name}", flush=True)
            if "kill" in name:
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    base_p99, base_worst = rows[0][3], rows[0][4]
    print(
        f"\nPOST /score (one checkup, top-5 SHAP) at concurrency {args.concurrency} for {args.seconds:.0f} s per "
        f"scenario; {os.cpu_count()} cores, {args.workers} server workers, client and faults on the same machine\n"
    )
    print(
        "| scenario | /score requests | failed | p99 ms | worst ms | p99 / baseline | worst / baseline | fault side |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, n, failed, p99, worst, note in rows:
        print(
            f"| {name} | {n} | {failed} | {p99:.1f} | {worst:.1f} | {p99 / base_p99:.1f} | {worst / base_worst:.1f} "
            f"| {note} |"
        )


if __name__ == "__main__":
    main()
