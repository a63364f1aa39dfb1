"""What the shared state costs and how the service behaves when it fails: the audit trail's cost per
request on SQLite and PostgreSQL, and real servers under a light /score load while a worker is
killed, the database goes away, the SQLite store's filesystem fills up, or the model is missing or
corrupt at start-up.

Part 1, audit cost:
  (a) in process: `AuditLog.append` p50/p99 on SQLite (a file in a temporary folder) and on a
      throwaway PostgreSQL (tests/postgres.py), from 1 thread and from 4;
  (b) end to end: a real server (1 worker) on SQLite state and one on PostgreSQL state, POST /score
      (one checkup, top-5 SHAP) at concurrency 1 beside GET /model (not audited, no patient data) on
      the same server, and the /score handler's own time as the audit entries record it (taken
      before the entry is written): client p50 - /model p50 - handler p50 is what the audit
      middleware and the rest of the /score path add over the baseline route.
Part 2, faults, each on a real server under /score load at concurrency 4:
  (a) SIGKILL of one of 2 workers; (b) PostgreSQL halted, then resumed; (c) the SQLite state file on
  a small tmpfs filled up, then freed (needs root and `mount`; skipped with a note otherwise);
  (d) a missing model tag and a corrupt model bundle at start-up.

Statuses are counted per phase; a 500 anywhere is a bug. No timed assertions: the numbers are
printed as tables, with ratios to a baseline measured in the same run.

    .venv/bin/python bench/bench_state.py [--home DIR] [--appends 2000] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serve_ready  # bench/ is sys.path[0] when a script here runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PUBLIC = "https://risk.hospital.example"
TOKEN = "bench-state-token"
SECRET = "bench-state-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRAIN = (
    "import mlflow, sys\n"
    "from pathlib import Path\n"
    "from features.synth import generate_cohort\n"
    "from models.bundle import DEFAULT_GRID, RiskModel\n"
    "from training import registry\n"
    "from training.train import example_frame\n"
    "registry.configure(Path(sys.argv[1]))\n"
    "m = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=2000, seed=43))\n"
    "with mlflow.start_run(experiment_id=registry.experiment('bench-state')):\n"
    "    _, v = registry.log_bundle(m, example_frame())\n"
    "registry.set_alias('champion', v)\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def counts(c: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))) or "-"


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path
    home: Path
    started: float = field(default_factory=time.perf_counter)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def server_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    from tests.cds_clients import TestClientKeys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    clients = home / "cds_clients.json"
    if not clients.exists():
        CDS_KEYS.setdefault("keys", TestClientKeys()).write_allowlist(clients)
    env.update(
        CHECKUP_RISK_HOME=str(home),
        CHECKUP_RISK_PUBLIC_URL=PUBLIC,
        CHECKUP_RISK_SECRET_KEY=SECRET,
        CHECKUP_RISK_API_TOKEN=TOKEN,
        CHECKUP_RISK_CDS_CLIENTS=str(clients),
        CHECKUP_RISK_ALLOW_SYNTHETIC="1",
        CHECKUP_RISK_RATE_LIMIT="10000000",
        **(extra or {}),
    )
    return env


CDS_KEYS: dict = {}


def start(home: Path, extra: dict[str, str] | None = None, workers: int = 1, cmd: list[str] | None = None) -> Server:
    """`checkup-risk serve` (or `cmd`, e.g. a bare `bentoml serve`) on a free port; not waited for."""
    port = free_port()
    log = home / f"serve-{port}.out"
    cmd = cmd or [sys.executable, "-m", "checkup_risk_cli", "serve", "--workers", str(workers)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=server_env(home, extra),
        stdout=open(log, "w"),  # a file, not a pipe: a full pipe would stall the server
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Server(proc, f"http://127.0.0.1:{port}", log, home)


def wait_ready(server: Server, timeout: float = 180) -> float:
    """Seconds from the server's start until it is ready."""
    serve_ready.wait_ready(server.proc, server.url, server.log, timeout)
    return time.perf_counter() - server.started


def stop(server: Server) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGINT)
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)


def copy_home(src: Path, dst: Path) -> Path:
    """A second home on the same model (the Bento store is copied; MLflow's artifacts stay in src)."""
    skip = shutil.ignore_patterns("state.sqlite*", "serve-*.out", "prometheus_multiproc_dir", "cds_clients.json")
    shutil.copytree(src, dst, ignore=skip)
    return dst


# ---------------------------------------------------------------- part 1a


def append_latencies(state, threads: int, total: int) -> list[float]:
    from serving.audit import AuditLog, Entry, now_iso

    log = AuditLog(state, b"k" * 32)
    entry = Entry(now_iso(), "bootstrap", "/score", "ab" * 16, 200, "1", 3.2)
    for _ in range(50):  # warm the pool and the statements
        log.append(entry)
    out: list[list[float]] = [[] for _ in range(threads)]

    def run(i: int) -> None:
        for _ in range(total // threads):
            t = time.perf_counter()
            log.append(entry)
            out[i].append((time.perf_counter() - t) * 1000)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [x for part in out for x in part]


def part_1a(tmp: Path, pg_url: str, appends: int) -> list[tuple]:
    from serving.state_db import StateDB, database_url

    rows = []
    stores = {
        "SQLite (file)": database_url(None, tmp / "appends"),
        "PostgreSQL (Unix socket)": database_url(pg_url, tmp),
    }
    for name, url in stores.items():
        for threads in (1, 4):
            state = StateDB(url)
            state.migrate()
            t = time.perf_counter()
            lat = append_latencies(state, threads, appends)
            rate = len(lat) / (time.perf_counter() - t)
            rows.append((name, threads, len(lat), pct(lat, 50), pct(lat, 99), rate))
            state.dispose()
    return rows


# ---------------------------------------------------------------- part 1b


def handler_ms(home: Path, db_url: str | None, n: int) -> list[float]:
    """The /score handler's time (before the audit write) from the newest `n` audit entries."""
    from sqlalchemy import select

    from serving.state_db import StateDB, database_url
    from serving.state_tables import audit

    state = StateDB(database_url(db_url, home))
    try:
        query = select(audit.c.latency_ms).where(audit.c.route == "/score").order_by(audit.c.seq.desc()).limit(n)
        with state.connect() as db:
            return [float(r[0]) for r in db.execute(query)]
    finally:
        state.dispose()


def part_1b(server: Server, requests: int) -> dict[str, list[float]]:
    """Interleaved /score and /model at concurrency 1 on one keep-alive connection."""
    import httpx

    from features.schema import EXAMPLE_RECORD

    body = {"checkups": [EXAMPLE_RECORD], "explain": True, "top_k": 5}
    out: dict[str, list[float]] = {"score": [], "model": []}
    bad: Counter = Counter()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        for i in range(100 + requests):
            t = time.perf_counter()
            r = client.post("/score", json=body)
            score = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            m = client.get("/model")
            model = (time.perf_counter() - t) * 1000
            if r.status_code != 200 or m.status_code != 200:
                bad[f"{r.status_code}/{m.status_code}"] += 1
            if i >= 100:  # the first 100 are warm-up
                out["score"].append(score)
                out["model"].append(model)
    if bad:
        print(f"  non-200 during part 1b on {server.url}: {counts(bad)}")
    return out


# ---------------------------------------------------------------- part 2: load and probes


@dataclass
class Load:
    """Responses by route, kept with the time each request was sent."""

    seen: list[tuple[float, str, str]] = field(default_factory=list)  # (sent at, route, status)
    done: list[float] = field(default_factory=list)  # when each answer came

    def add(self, at: float, route: str, status: str) -> None:
        self.seen.append((at, route, status))
        self.done.append(time.perf_counter())

    def between(self, route: str, start: float, end: float) -> Counter:
        """Statuses of the requests sent at or after `start` and answered before `end`."""
        pairs = zip(self.seen, self.done, strict=True)
        return Counter(s for (at, r, s), done in pairs if r == route and start <= at and done < end)

    def first(self, route: str, status: str, after: float) -> float | None:
        times = [at for at, r, s in self.seen if r == route and s == status and at >= after]
        return min(times) - after if times else None


async def score_load(url: str, load: Load, concurrency: int, stop: asyncio.Event) -> None:
    import httpx

    from features.schema import EXAMPLE_RECORD

    body = {"checkups": [EXAMPLE_RECORD], "explain": True, "top_k": 5}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10, limits=limits) as client:

        async def one() -> None:
            while not stop.is_set():
                at = time.perf_counter()
                try:
                    status = str((await client.post("/score", json=body)).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                load.add(at, "/score", status)

        await asyncio.gather(*(one() for _ in range(concurrency)))


async def probes(url: str, load: Load, stop: asyncio.Event, cds: bool = False, every: float = 0.2) -> None:
    """/readyz (and a fresh CDS call when `cds`) every `every` seconds."""
    import httpx

    from features.schema import EXAMPLE_RECORD
    from tests.service.test_cds import cds_call

    keys = CDS_KEYS.get("keys")
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while not stop.is_set():
            at = time.perf_counter()
            try:
                status = str((await client.get("/readyz")).status_code)
            except httpx.HTTPError as e:
                status = type(e).__name__
            load.add(at, "/readyz", status)
            if cds and keys is not None:
                at = time.perf_counter()
                headers = {"Authorization": f"Bearer {keys.token(f'{PUBLIC}/cds-services/checkup-risk')}"}
                try:
                    r = await client.post("/cds-services/checkup-risk", json=cds_call(EXAMPLE_RECORD), headers=headers)
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                load.add(at, "CDS call", status)
            await asyncio.sleep(every)


def worker_pids(server_pid: int) -> list[int]:
    import psutil

    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            if "_bentoml_impl.worker.service" in " ".join(p.cmdline()):
                out.append(p.pid)
    return out


def part_2a(server: Server, seconds: float = 10.0) -> list[tuple]:
    load = Load()
    facts: dict[str, float | str | None] = {}

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(score_load(server.url, load, 4, stop)),
            asyncio.create_task(probes(server.url, load, stop)),
        ]
        await asyncio.sleep(2)
        before = worker_pids(server.proc.pid)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.perf_counter()
        facts["killed"] = killed
        facts["note"] = f"killed worker {victim} of {len(before)}"
        initialized = server.log_text().count("initialized")
        replaced = serving = None
        while time.perf_counter() - killed < seconds - 2:
            if replaced is None and set(worker_pids(server.proc.pid)) - set(before):
                replaced = time.perf_counter() - killed
            if serving is None and server.log_text().count("initialized") > initialized:
                serving = time.perf_counter() - killed  # the new worker has loaded its model
            await asyncio.sleep(0.1)
        facts["replaced"], facts["serving"] = replaced, serving
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    killed = float(facts["killed"])  # type: ignore[arg-type]
    replaced = facts["replaced"]
    end = float("inf")
    # /readyz back to 200 for good: after the last non-200 probe since the kill.
    ready_bad = [at for at, r, s in load.seen if r == "/readyz" and s != "200" and at >= killed]
    ready_again = (max(ready_bad) - killed) if ready_bad else 0.0
    rows = [
        ("/score before the kill", counts(load.between("/score", 0, killed)), ""),
        ("/score after the kill", counts(load.between("/score", killed, end)), ""),
        ("/readyz after the kill", counts(load.between("/readyz", killed, end)), ""),
        ("new worker process after", _s(replaced), facts["note"]),
        ("new worker initialized (model loaded) after", _s(facts["serving"]), "its 'Service ... initialized' log line"),
        ("/readyz 200 for good after", f"{ready_again:.1f} s", "0.0 s: it never failed (the other worker answered)"),
    ]
    return rows


def part_2b(server: Server, pg, outage_s: float = 5.0) -> tuple[list[tuple], Load]:
    load = Load()
    marks: dict[str, float] = {}

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(score_load(server.url, load, 4, stop)),
            asyncio.create_task(probes(server.url, load, stop, cds=True)),
        ]
        await asyncio.sleep(2)
        marks["halt"] = time.perf_counter()
        await asyncio.to_thread(pg.halt)
        marks["down"] = time.perf_counter()
        await asyncio.sleep(outage_s)
        marks["resume"] = time.perf_counter()
        await asyncio.to_thread(pg.resume)
        marks["up"] = time.perf_counter()
        deadline = marks["up"] + 30
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
            if (
                load.first("/readyz", "200", marks["up"]) is not None
                and load.first("/score", "200", marks["up"]) is not None
            ):
                break
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    end = float("inf")
    rows = []
    for route in ("/score", "CDS call", "/readyz"):
        rows.append(
            (
                route,
                counts(load.between(route, 0, marks["halt"])),
                counts(load.between(route, marks["down"], marks["resume"])),
                counts(load.between(route, marks["up"], end)),
            )
        )
    recovery = (load.first("/readyz", "200", marks["up"]), load.first("/score", "200", marks["up"]))
    return rows + [("recovery", f"pg_ctl stop took {marks['down'] - marks['halt']:.1f} s", "", recovery)], load


# ---------------------------------------------------------------- part 2c


def mount_small_fs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `where`; None when done, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return "not root, or no mount(8)"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    return None if done.returncode == 0 else f"mount refused: {done.stderr.strip()}"


def fill(where: Path) -> int:
    """Write zeros into where/filler until the (dedicated, small) filesystem is full; bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(where / "filler", "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                # A partial chunk may still fit.
                for small in (4096, 512, 1):
                    with contextlib.suppress(OSError):
                        while True:
                            written += f.write(chunk[:small])
                return written


def part_2c(server: Server, smallfs: Path, full_s: float = 6.0) -> list[tuple]:
    load = Load()
    marks: dict[str, float] = {}

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(score_load(server.url, load, 4, stop)),
            asyncio.create_task(probes(server.url, load, stop)),
        ]
        await asyncio.sleep(2)
        marks["fill"] = time.perf_counter()
        marks["bytes"] = await asyncio.to_thread(fill, smallfs)
        marks["full"] = time.perf_counter()
        await asyncio.sleep(full_s)
        (smallfs / "filler").unlink()
        marks["freed"] = time.perf_counter()
        deadline = marks["freed"] + 30
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
            if (
                load.first("/readyz", "200", marks["freed"]) is not None
                and load.first("/score", "200", marks["freed"]) is not None
            ):
                break
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    end = float("inf")
    rows = []
    for route in ("/score", "/readyz"):
        rows.append(
            (
                route,
                counts(load.between(route, 0, marks["fill"])),
                counts(load.between(route, marks["full"], marks["freed"])),
                counts(load.between(route, marks["freed"], end)),
            )
        )
    first_503 = load.first("/score", "503", marks["fill"])
    recovery = (load.first("/readyz", "200", marks["freed"]), load.first("/score", "200", marks["freed"]))
    note = (
        f"filled {marks['bytes'] / 2**20:.1f} MiB; first /score 503 {first_503 and f'{first_503:.2f}'} s after filling"
    )
    return rows + [("recovery", note, "", recovery)]


# ---------------------------------------------------------------- part 2d


def observe_start(server: Server, seconds: float) -> dict:
    """Watch a start-up that should fail: /readyz answers, whether the process lives, restarts."""
    import httpx

    seen: Counter = Counter()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and server.proc.poll() is None:
        try:
            seen[str(httpx.get(f"{server.url}/readyz", timeout=1).status_code)] += 1
        except httpx.HTTPError as e:
            seen[type(e).__name__] += 1
        time.sleep(0.5)
    text = server.log_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"Error|error|failed|could not", line) and "File " not in line]
    return {
        "readyz": counts(seen),
        "exit": server.proc.poll(),
        # Each failed worker start logs this line twice (two loggers).
        "restarts": len(set(re.findall(r"^(\S+) .*Application startup failed", text, re.M))),
        "last error": errors[-1][:240] if errors else "(none)",
        "exception": next((line[:200] for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception):", line)), ""),
    }


def part_2d(home: Path, tmp: Path, seconds: float) -> list[tuple]:
    from serving.settings import Settings

    # A bare `bentoml serve` with the tag set: `checkup-risk serve` pins the champion and would
    # replace CHECKUP_RISK_MODEL_TAG.
    missing_home = copy_home(home, tmp / "missing-home")
    bentoml_home = str(Settings(home=missing_home).bentoml_home)
    missing = start(
        missing_home,
        {"CHECKUP_RISK_MODEL_TAG": "checkup-risk:v999", "CHECKUP_RISK_WORKERS": "1", "BENTOML_HOME": bentoml_home},
        cmd=[sys.executable, "-m", "bentoml", "serve", "serving.service:RiskService"],
    )
    corrupt_home = copy_home(home, tmp / "corrupt-home")
    bundles = list((corrupt_home / "bentoml" / "models").rglob("*.ubj"))
    for path in bundles:
        path.write_bytes(os.urandom(100))  # the manifest stays: only the boosters are damaged
    corrupt = start(corrupt_home, workers=1)
    rows = []
    try:
        for name, server in (
            ("missing tag checkup-risk:v999 (bentoml serve)", missing),
            ("corrupt bundle: every .ubj random bytes", corrupt),
        ):
            seen = observe_start(server, seconds)
            exited = "exited " + str(seen["exit"]) if seen["exit"] is not None else "still running"
            rows.append((name, seen["readyz"], exited, seen["restarts"], seen["last error"], seen["exception"]))
    finally:
        stop(missing)
        stop(corrupt)
    return rows


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", help="existing CHECKUP_RISK_HOME with a champion (default: a small model, trained now)"
    )
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--watch", type=float, default=15.0, help="seconds to watch each failing start-up")
    args = parser.parse_args()

    from tests.postgres import BASE_PORT, PostgresServer

    began = time.perf_counter()
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-state-")
    tmp = Path(tmp_dir.name)
    home = tmp / "home"
    if args.home:
        copy_home(Path(args.home).resolve(), home)
    else:
        subprocess.run([sys.executable, "-c", TRAIN, str(home)], check=True, capture_output=True, timeout=600)
        print(f"small model trained in {time.perf_counter() - began:.0f} s", flush=True)
    pg = PostgresServer(port=BASE_PORT + 377).start()
    servers: list[Server] = []
    smallfs = tmp / "smallfs"
    mounted = False
    try:
        rows_1a = part_1a(tmp, pg.create_database("bench_appends"), args.appends)
        print("done: 1a", flush=True)

        sqlite_server = start(home)
        servers.append(sqlite_server)
        ready_s = wait_ready(sqlite_server)  # it imports and pins the model: the copies reuse it
        pg_home = copy_home(home, tmp / "pg-home")
        pg_url = pg.create_database("bench_service")
        pg_server = start(pg_home, {"CHECKUP_RISK_DATABASE_URL": pg_url})
        servers.append(pg_server)
        wait_ready(pg_server)
        print(f"done: servers ready (first after {ready_s:.0f} s)", flush=True)
        rows_1b = []
        for name, server, url in (("SQLite", sqlite_server, None), ("PostgreSQL", pg_server, pg_url)):
            lat = part_1b(server, args.requests)
            handler = handler_ms(server.home, url, args.requests)
            rows_1b.append((name, lat, handler))
        stop(sqlite_server)
        print("done: 1b", flush=True)

        rows_2b, _ = part_2b(pg_server, pg)
        stop(pg_server)
        print("done: 2b", flush=True)

        kill_server = start(copy_home(home, tmp / "kill-home"), workers=2)
        servers.append(kill_server)
        full_home = copy_home(home, tmp / "full-home")
        why_not = mount_small_fs(smallfs, "8m")
        mounted = why_not is None
        if mounted:
            (full_home / "state.sqlite").symlink_to(smallfs / "state.sqlite")
            full_server = start(full_home)
            servers.append(full_server)
        wait_ready(kill_server)
        rows_2a = part_2a(kill_server)
        stop(kill_server)
        print("done: 2a", flush=True)
        rows_2c: list[tuple] = []
        if mounted:
            wait_ready(full_server)
            rows_2c = part_2c(full_server, smallfs)
            stop(full_server)
        print("done: 2c", flush=True)

        rows_2d = part_2d(home, tmp, args.watch)
        print("done: 2d", flush=True)
    finally:
        for server in servers:
            if server.proc.poll() is None:
                stop(server)
        pg.stop()
        if mounted:
            subprocess.run(["umount", str(smallfs)], check=False)

    cores = os.cpu_count()
    print(
        f"\nbench_state: {cores} cores, client and servers on one machine, {time.perf_counter() - began:.0f} s in all"
    )

    print(f"\n1a. AuditLog.append in process ({args.appends} appends per row, after 50 warm-up)\n")
    print("| store | threads | appends | p50 ms | p99 ms | appends/s | p50 / SQLite 1 thread |")
    print("|---|---|---|---|---|---|---|")
    base = rows_1a[0][3]
    for name, threads, n, p50, p99, rate in rows_1a:
        print(f"| {name} | {threads} | {n} | {p50:.3f} | {p99:.3f} | {rate:.0f} | {p50 / base:.1f} |")

    print(
        f"\n1b. One server, 1 worker, concurrency 1: {args.requests} x (POST /score one checkup top-5 SHAP, then "
        "GET /model) after 100 warm-up pairs; handler = the /score route's own time (the audit entry's "
        "latency_ms, measured before the entry is written)\n"
    )
    print(
        "| state | /score p50 ms | /score p99 ms | /model p50 ms | /model p99 ms | handler p50 ms | "
        "/score - /model - handler, p50 ms | /score p50 / /model p50 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, lat, handler in rows_1b:
        s50, m50, h50 = pct(lat["score"], 50), pct(lat["model"], 50), pct(handler, 50)
        print(
            f"| {name} | {s50:.2f} | {pct(lat['score'], 99):.2f} | {m50:.2f} | {pct(lat['model'], 99):.2f} | "
            f"{h50:.2f} | {s50 - m50 - h50:.2f} | {s50 / m50:.1f} |"
        )

    print("\n2a. SIGKILL of one of 2 workers under /score load (concurrency 4, 10 s, kill at 2 s)\n")
    print("| what | observed | note |")
    print("|---|---|---|")
    for row in rows_2a:
        print("| " + " | ".join(str(x) for x in row) + " |")

    print("\n2b. PostgreSQL halted (pg_ctl stop -m fast) for 5 s under /score load (concurrency 4), then resumed\n")
    print("| route | before | while down | after resume |")
    print("|---|---|---|---|")
    for route, before, down, after in rows_2b[:-1]:
        print(f"| {route} | {before} | {down} | {after} |")
    _, note, _, (ready, score) = rows_2b[-1]
    print(f"\nafter resume: /readyz 200 after {_s(ready)}, /score 200 after {_s(score)}; {note}")

    print("\n2c. SQLite state file on an 8 MiB tmpfs, filled for 6 s under /score load (concurrency 4), then freed\n")
    if not rows_2c:
        print(f"skipped: no bounded filesystem ({why_not})")
    else:
        print("| route | before | while full | after freeing |")
        print("|---|---|---|---|")
        for route, before, full, after in rows_2c[:-1]:
            print(f"| {route} | {before} | {full} | {after} |")
        _, note, _, (ready, score) = rows_2c[-1]
        print(f"\nafter freeing: /readyz 200 after {_s(ready)}, /score 200 after {_s(score)}; {note}")

    print(f"\n2d. Failing start-ups, watched for {args.watch:.0f} s each\n")
    print("| start-up | /readyz answers | process | worker start failures | last error line | exception |")
    print("|---|---|---|---|---|---|")
    for row in rows_2d:
        print("| " + " | ".join(str(x).replace("|", "/") for x in row) + " |")


def _s(seconds: float | None) -> str:
    return "not seen" if seconds is None else f"{seconds:.1f} s"


if __name__ == "__main__":
    main()
