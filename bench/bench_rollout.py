"""A model rollout and its rollback under load, on a real `checkup-risk serve` (2 workers).

On a fresh temporary home (or `--home`, a store with at least two registered versions), it trains
one small model and registers it twice (versions 1 and 2: the rollout follows the version, not the
weights), starts the server with CHECKUP_RISK_MODEL_POLL_SECONDS=1 and sends single-record /score
requests with top-3 explanations at concurrency 16 from Python threads. While they run it moves
the `champion` alias to version 2, then back to version 1 (the rollback), and reports per phase
the requests sent, those that failed (any status but 200, or no answer) and p50 / p99 / worst
latency, and the time from each alias change to the last response from the previous version.

    .venv/bin/python bench/bench_rollout.py [--home DIR] [--seconds 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from serve_ready import wait_ready  # bench/ is sys.path[0] when a script here runs

CONCURRENCY = 16
TRAIN = (
    "import mlflow\n"
    "from features.synth import generate_cohort\n"
    "from models.bundle import DEFAULT_GRID, RiskModel\n"
    "from training import registry\n"
    "from training.train import example_frame\n"
    "from pathlib import Path\n"
    "import sys\n"
    "registry.configure(Path(sys.argv[1]))\n"
    "m = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=2000, seed=47))\n"
    "for _ in range(2):\n"
    "    with mlflow.start_run(experiment_id=registry.experiment('bench-rollout')):\n"
    "        registry.log_bundle(m, example_frame())\n"
    "registry.set_alias('champion', '1')\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Answer:
    sent: float
    done: float
    ok: bool
    version: str | None


class Load:
    """CONCURRENCY threads sending /score back to back until stopped."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(CONCURRENCY)]

    def run(self) -> None:
        import httpx

        from features.schema import EXAMPLE_RECORD

        body = {"checkups": [EXAMPLE_RECORD], "top_k": 3}
        with httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(f"{self.url}/score", json=body)
                    ok = r.status_code == 200
                    self.answers.append(Answer(sent, time.monotonic(), ok, r.json()["model_version"] if ok else None))
                except Exception:  # no answer: a failure like any other
                    self.answers.append(Answer(sent, time.monotonic(), False, None))

    def all_on(self, version: str, since: float, timeout_s: float = 60.0, settle_s: float = 1.5) -> float:
        """Seconds from `since` to the last answer from another version, once only `version` has
        answered for `settle_s` seconds."""
        while time.monotonic() < since + timeout_s:
            time.sleep(0.2)
            now = time.monotonic()
            recent = [a for a in self.answers if a.sent > now - settle_s and a.ok]
            if len(recent) >= 4 and all(a.version == version for a in recent):
                others = [a.done for a in self.answers if a.done > since and a.ok and a.version != version]
                return max(others, default=since) - since
        raise SystemExit(f"not all responses on version {version} within {timeout_s} s")


def promote(home: Path, version: str) -> None:
    from mlflow import MlflowClient

    from models.registry_names import CHAMPION, MODEL_NAME, tracking_uri

    uri = tracking_uri(home)
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(MODEL_NAME, CHAMPION, version)


def row(name: str, answers: list[Answer]) -> str:
    ms = np.array([(a.done - a.sent) * 1000 for a in answers]) if answers else np.array([np.nan])
    failed = sum(not a.ok for a in answers)
    versions = ",".join(sorted({a.version for a in answers if a.version}))
    return (
        f"| {name} | {len(answers)} | {failed} | {np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} "
        f"| {ms.max():.1f} | {versions} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="existing CHECKUP_RISK_HOME with versions 1 and 2 (default: a fresh one)")
    parser.add_argument("--seconds", type=float, default=6.0, help="load before each alias change and after")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-rollout-")
    home = Path(args.home or Path(tmp.name) / "home").resolve()
    started = time.perf_counter()
    if not args.home:
        subprocess.run([sys.executable, "-c", TRAIN, str(home)], check=True, timeout=900, stderr=subprocess.DEVNULL)
        print(f"trained and registered versions 1 and 2 in {time.perf_counter() - started:.0f} s")
    else:
        promote(home, "1")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHECKUP_RISK_API_TOKEN"}
    env.update(
        CHECKUP_RISK_HOME=str(home),
        CHECKUP_RISK_MODEL_POLL_SECONDS="1",
        # One client at concurrency 16 would pass the per-client rate limit within seconds.
        CHECKUP_RISK_RATE_LIMIT="1000000",
    )
    log_path = Path(tmp.name) / "server.log"
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log_path)
        load = Load(url, (home / "api_token").read_text().strip())
        for t in load.threads:
            t.start()
        time.sleep(args.seconds)
        t_promote = time.monotonic()
        promote(home, "2")
        to_new = load.all_on("2", t_promote)
        time.sleep(args.seconds)
        t_rollback = time.monotonic()
        promote(home, "1")
        to_old = load.all_on("1", t_rollback)
        time.sleep(args.seconds)
        load.stop.set()
        for t in load.threads:
            t.join(timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    a = load.answers
    phases = [
        ("before (v1)", [x for x in a if x.sent < t_promote]),
        ("switch to v2", [x for x in a if t_promote <= x.sent <= t_promote + to_new]),
        ("after (v2)", [x for x in a if t_promote + to_new < x.sent < t_rollback]),
        ("rollback to v1", [x for x in a if t_rollback <= x.sent <= t_rollback + to_old]),
        ("after rollback (v1)", [x for x in a if x.sent > t_rollback + to_old]),
        ("all", a),
    ]
    print(
        f"\n/score, 1 record, top-3 explanations; concurrency {CONCURRENCY} (Python threads, same machine), "
        f"{args.workers} workers, CHECKUP_RISK_MODEL_POLL_SECONDS=1, {os.cpu_count()} cores\n"
    )
    print("| phase | requests | failed | p50 ms | p99 ms | worst ms | versions answering |")
    print("|---|---|---|---|---|---|---|")
    for name, answers in phases:
        print(row(name, answers))
    print(f"\nalias -> v2 to all responses on v2: {to_new:.2f} s; rollback to all on v1: {to_old:.2f} s")
    print("(a switch: the poll, then import into the Bento store, load, warm-up and one assignment)")


if __name__ == "__main__":
    main()
