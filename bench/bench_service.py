"""Latency and throughput of the real HTTP service with explanations on, beside in-process floors.

Starts `checkup-risk serve` (a real `bentoml serve`, 2 workers) on a store in a temporary home
(the default model: built-in synthetic cohort, trained and promoted on first run) unless
`--home` names an existing store, then sends single-record /score requests with top-5
explanations at concurrency 1, 8 and 32 (loopback, bounded in count and time): first from an
asyncio httpx client, then from wrk (Debian package) when it is installed, whose client costs
far less CPU on the same two cores. In the same run it times, in process, the raw booster margin for all five
outcomes (the floor) and a naive per-request `shap.TreeExplainer`, and samples the service's
resident memory (all its processes) during the load.

    .venv/bin/python bench/bench_service.py [--home DIR] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from serve_ready import wait_ready  # bench/ is sys.path[0] when a script here runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def wrk_load(url: str, token: str, body: dict, concurrency: int, seconds: int) -> tuple[float, float, float, int]:
    """(p50 ms, p99 ms, requests/s, non-2xx) from wrk, a C load generator: it leaves the two
    cores to the server instead of spending them on a Python client."""
    import json
    import re
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_text(json.dumps(body))
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = io.open("{Path(tmp) / "body.json"}"):read("*a")\n'
        )
        out = subprocess.run(
            [
                shutil.which("wrk"),
                "-t",
                str(min(2, concurrency)),
                "-c",
                str(concurrency),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                str(script),
                "-H",
                f"Authorization: Bearer {token}",
                f"{url}/score",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return ms("50%"), ms("99%"), rps, int(bad.group(1)) if bad else 0


async def load(url: str, token: str, body: dict, concurrency: int, total: int) -> tuple[list[float], float, int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal sent, errors
            while sent < total:
                sent += 1
                t = time.perf_counter()
                r = await client.post("/score", json=body)
                latencies.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, len(latencies) / elapsed, errors


def in_process_floors(home: Path, record: dict, n: int = 2000) -> dict[str, list[float]]:
    import bentoml
    import shap

    from features.derive import Columns, feature_matrix
    from models.bundle import RiskModel
    from serving import store
    from serving.settings import Settings, configure_libraries

    # The model the server served: the pinned version in the Bento store.
    configure_libraries(Settings(home=home))
    model = RiskModel.load(bentoml.models.get(store.pinned_tag(home)).path_of(store.BUNDLE_SUBPATH))
    X = feature_matrix(Columns.from_records([record])).astype(np.float32)
    boosters = [m.booster for m in model.models_.values()]
    out: dict[str, list[float]] = {"raw booster margin, 5 outcomes": [], "naive shap.TreeExplainer per request": []}
    for b in boosters:
        b.inplace_predict(X, predict_type="margin")
    for _ in range(n):
        t = time.perf_counter()
        for b in boosters:
            b.inplace_predict(X, predict_type="margin")
        out["raw booster margin, 5 outcomes"].append((time.perf_counter() - t) * 1000)
    for _ in range(max(50, n // 20)):
        t = time.perf_counter()
        for b in boosters:
            shap.TreeExplainer(b).shap_values(X)
        out["naive shap.TreeExplainer per request"].append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="existing CHECKUP_RISK_HOME with a champion (default: a fresh one)")
    parser.add_argument("--keep-home", help="copy the fresh home here afterwards, to reuse with --home")
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    args = parser.parse_args()

    from features.schema import EXAMPLE_RECORD

    tmp = tempfile.TemporaryDirectory()
    home = Path(args.home or Path(tmp.name) / "home").resolve()
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env["CHECKUP_RISK_HOME"] = str(home)
    port = free_port()
    started = time.perf_counter()
    log = open(Path(tmp.name) / "server.log", "w")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    peak = [0.0]
    stop = threading.Event()
    try:
        wait_ready(proc, url, (Path(tmp.name) / "server.log"))
        print(f"server ready after {time.perf_counter() - started:.0f} s (includes the default model on a fresh home)")
        token = (home / "api_token").read_text().strip()
        body = {"checkups": [EXAMPLE_RECORD], "explain": True, "top_k": 5}

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(proc.pid))
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        asyncio.run(load(url, token, body, 4, 200))  # warm-up
        rows = []
        for c in (1, 8, 32):
            lat, rps, errors = asyncio.run(load(url, token, body, c, args.requests))
            rows.append((f"HTTP /score, concurrency {c} (Python client)", pct(lat, 50), pct(lat, 99), rps, errors))
        import shutil

        if shutil.which("wrk"):
            for c in (1, 8, 32):
                p50, p99, rps, errors = wrk_load(url, token, body, c, args.seconds)
                rows.append((f"HTTP /score, concurrency {c} (wrk)", p50, p99, rps, errors))
        else:
            print("wrk not found (apt-get install wrk): Python client figures only")
        stop.set()
        floors = in_process_floors(home, EXAMPLE_RECORD)
    finally:
        stop.set()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    if args.keep_home and not args.home:
        import shutil

        shutil.copytree(home, args.keep_home, dirs_exist_ok=True)
    floor = statistics.median(floors["raw booster margin, 5 outcomes"])
    print(
        f"\none checkup, five outcomes, top-5 SHAP explanations; {os.cpu_count()} cores, "
        f"{args.workers} server workers, client on the same machine\n"
    )
    print("| what | p50 ms | p99 ms | req/s (explained checkups/s) | errors | p50 / raw booster |")
    print("|---|---|---|---|---|---|")
    for name, p50, p99, rps, errors in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {errors} | {p50 / floor:.1f} |")
    for name, lat in floors.items():
        print(
            f"| in-process: {name} | {pct(lat, 50):.3f} | {pct(lat, 99):.3f} | {1000 / pct(lat, 50):.0f} | 0 | "
            f"{pct(lat, 50) / floor:.1f} |"
        )
    print(f"\npeak service RSS (all server processes): {peak[0]:.0f} MB")


if __name__ == "__main__":
    main()
