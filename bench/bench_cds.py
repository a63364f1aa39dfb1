"""Reliability of the CDS Hooks endpoint under sustained load (loopback only, bounded).

Starts `checkup-risk serve` (2 workers) with a generated CDS client allowlisted, then holds
concurrency 16 on `POST /cds-services/checkup-risk` for `--seconds` (default 300): every call
carries a freshly signed ES384 JWT and the prefetch of one of 200 generated patients, each with all
of their checkups (dates moved by whole years so the newest is recent, not stale). It records
each latency and status, and samples the service's resident memory (all its processes) every 5 s.
As a baseline in the same run, the same patients' checkups go to `POST /score` at the same
concurrency for a shorter time. Prints one table; exits 1 on any error or a p99 over 500 ms.

    .venv/bin/python bench/bench_cds.py [--home DIR] [--seconds 300] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from serve_ready import wait_ready  # bench/ is sys.path[0] when a script here runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_service import free_port, rss_mb  # noqa: E402


def _recent(records: list[dict], today: dt.date) -> list[dict]:
    """Move one person's checkups by whole years so the newest falls in the last year (the synthetic
    cohort ends years ago, and a stale newest checkup gets a short card with no scoring shown)."""
    newest = dt.date.fromisoformat(records[-1]["exam_date"])
    shift = today.year - newest.year - (1 if newest.replace(year=today.year, day=min(newest.day, 28)) > today else 0)
    out = []
    for r in records:
        day = dt.date.fromisoformat(r["exam_date"])
        out.append(dict(r, exam_date=day.replace(year=day.year + shift, day=min(day.day, 28)).isoformat()))
    return out


def patients(n: int) -> list[list[dict]]:
    """Each generated person's checkups, oldest first (FHIR carries the history, as a HIS would)."""
    from features.synth import generate_cohort

    cohort = generate_cohort(people=n, seed=77).sort_values(["person_id", "exam_date"])
    keep = [c for c in cohort.columns if not c.endswith(("_1y", "_true_risk"))]
    today = dt.date.today()
    out = []
    for _, person in cohort[keep].groupby("person_id"):
        records = []
        for record in person.to_dict("records"):
            record = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
            record["exam_date"] = str(record["exam_date"])[:10]
            records.append(record)
        if all(r.get("age") is not None for r in records):
            out.append(_recent(records, today))
    return out


def cds_body(records: list[dict]) -> dict:
    """A patient-view call whose prefetch holds all of the person's checkups."""
    from features.fhir import to_bundle
    from tests.service.test_cds import cds_call

    bundle = to_bundle(records)
    body = cds_call(records[-1])
    rest = bundle["entry"][1:]
    body["prefetch"] = {
        "patient": bundle["entry"][0]["resource"],
        "observations": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [e for e in rest if e["resource"]["resourceType"] == "Observation"],
        },
        "conditions": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [e for e in rest if e["resource"]["resourceType"] != "Observation"],
        },
    }
    body["context"]["patientId"] = bundle["entry"][0]["resource"]["id"]
    return body


async def hold(url: str, path: str, make, concurrency: int, seconds: float) -> tuple[list[float], dict[int, int]]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < deadline:
                body, headers = make(i)
                i += concurrency
                t = time.perf_counter()
                try:
                    r = await client.post(path, json=body, headers=headers)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="existing CHECKUP_RISK_HOME with a champion (default: a fresh one)")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from tests.cds_clients import TestClientKeys

    tmp = tempfile.TemporaryDirectory()
    home = Path(args.home or Path(tmp.name) / "home").resolve()
    keys = TestClientKeys()
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env["CHECKUP_RISK_HOME"] = str(home)
    env["CHECKUP_RISK_CDS_CLIENTS"] = str(keys.write_allowlist(Path(tmp.name) / "cds_clients.json"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env["CHECKUP_RISK_PUBLIC_URL"] = url
    log_path = Path(tmp.name) / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    memory: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        wait_ready(proc, url, log_path)
        token = (home / "api_token").read_text().strip()
        people = patients(250)[:200]
        bodies = [cds_body(p) for p in people]
        endpoint = f"{url}/cds-services/checkup-risk"

        def cds_request(i: int):
            return bodies[i % len(bodies)], {"Authorization": f"Bearer {keys.token(endpoint)}"}

        def score_request(i: int):
            return {"checkups": people[i % len(people)], "explain": True, "top_k": 5}, {
                "Authorization": f"Bearer {token}"
            }

        asyncio.run(hold(url, "/cds-services/checkup-risk", cds_request, 4, 5))  # warm-up
        base_lat, base_status = asyncio.run(hold(url, "/score", score_request, args.concurrency, args.baseline_seconds))
        start = time.perf_counter()

        def sample() -> None:
            while not stop.is_set():
                memory.append((time.perf_counter() - start, rss_mb(proc.pid)))
                stop.wait(5)

        threading.Thread(target=sample, daemon=True).start()
        cds_lat, cds_status = asyncio.run(
            hold(url, "/cds-services/checkup-risk", cds_request, args.concurrency, args.seconds)
        )
        stop.set()
    finally:
        stop.set()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    def row(name, lat, status, seconds, base_p50):
        errors = sum(n for s, n in status.items() if s != 200)
        p50 = np.percentile(lat, 50)
        print(
            f"| {name} | {len(lat)} | {len(lat) / seconds:.0f} | {p50:.1f} | {np.percentile(lat, 95):.1f} | "
            f"{np.percentile(lat, 99):.1f} | {max(lat):.1f} | {errors} | {p50 / base_p50:.2f} |"
        )
        return errors

    base_p50 = float(np.percentile(base_lat, 50))
    print(
        f"\n{os.cpu_count()} cores, {args.workers} server workers, concurrency {args.concurrency}, "
        f"client on the same machine (loopback)\n"
    )
    print("| what | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | p50 / baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    row(
        f"baseline: POST /score, top-5 ({args.baseline_seconds:.0f} s)",
        base_lat,
        base_status,
        args.baseline_seconds,
        base_p50,
    )
    errors = row(
        f"POST /cds-services/checkup-risk, signed JWT each ({args.seconds:.0f} s)",
        cds_lat,
        cds_status,
        args.seconds,
        base_p50,
    )
    t = np.array([m[0] for m in memory])
    mb = np.array([m[1] for m in memory])
    settled = t >= min(60.0, t.max() / 2)
    slope = float(np.polyfit(t[settled] / 60, mb[settled], 1)[0]) if settled.sum() > 2 else float("nan")
    print(
        f"\nservice RSS (all processes): start {mb[0]:.0f} MB, end {mb[-1]:.0f} MB, max {mb.max():.0f} MB; "
        f"trend after the first minute {slope:+.2f} MB/min over {len(mb)} samples"
    )
    p99 = float(np.percentile(cds_lat, 99))
    ok = errors == 0 and p99 < 500
    print(f"\nstatuses: {cds_status}; verdict: {'PASS' if ok else 'FAIL'} (zero errors, p99 < 500 ms)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
