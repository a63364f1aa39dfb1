"""After a killed `checkup-risk serve`: its workers stop by themselves, and a restart refused by the
home's lock says who holds it (real processes, real file locks)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from checkup_risk_cli import CliError, _hold_serve_lock

REPO = Path(__file__).parents[2]

# Holds serve.lock as a worker of a serve does, with the serve's PID (argv[2]) recorded in it.
HOLDER = textwrap.dedent(
    """
    import fcntl, sys, time
    handle = open(sys.argv[1], "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.truncate(0)
    handle.write(sys.argv[2] + "\\n")
    handle.flush()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _hold(lock: Path, serve_pid: int) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(serve_pid)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_lock_records_the_serve_pid_and_names_orphan_workers_of_a_killed_serve(tmp_path):
    handle = _hold_serve_lock(tmp_path)
    assert (tmp_path / "serve.lock").read_text() == f"{os.getpid()}\n"
    handle.close()

    # A serve that was killed (its PID is gone) whose worker still holds the lock.
    orphan = _hold(tmp_path / "serve.lock", _dead_pid())
    try:
        with pytest.raises(CliError) as refused:
            _hold_serve_lock(tmp_path)
    finally:
        orphan.kill()
        orphan.wait()
    message = str(refused.value)
    assert "has stopped, but workers it started still hold it" in message
    assert f"(PIDs {orphan.pid})" in message and f"`kill {orphan.pid}`" in message
    assert "CHECKUP_RISK_HOME" not in message  # another home is not the fix here


def test_a_running_serve_is_named_by_its_pid(tmp_path):
    running = _hold(tmp_path / "serve.lock", os.getpid())  # a PID that is alive
    try:
        with pytest.raises(CliError, match=rf"another `checkup-risk serve` \(PID {os.getpid()}\) is running"):
            _hold_serve_lock(tmp_path)
    finally:
        running.kill()
        running.wait()
    # Once the holder is gone the lock is free again.
    _hold_serve_lock(tmp_path).close()


# A "worker": watches its parent and, on SIGTERM (as uvicorn stops gracefully), writes a mark and exits.
WORKER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from serving.parent_watch import watch_parent

    def stop(*_):
        Path(sys.argv[1]).write_text("stopped")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    watch_parent(int(sys.argv[2]) if len(sys.argv) > 2 else None, every_s=0.1, grace_s=10)
    print("watching", flush=True)
    time.sleep(60)
    """
)
# The "serve": starts the worker, says its PID and exits at once, as a `kill -9` would end it.
SERVE = textwrap.dedent(
    """
    import subprocess, sys
    worker = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert worker.stdout.readline().strip() == "watching"
    print(worker.pid, flush=True)
    """
)


def test_a_worker_stops_when_its_serve_process_is_gone(tmp_path):
    mark = tmp_path / "stopped"
    serve = subprocess.run(
        [sys.executable, "-c", SERVE, WORKER, str(mark)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    _assert_stops(int(serve.stdout.strip()), mark)


def test_a_worker_that_starts_after_its_serve_was_killed_stops_too(tmp_path):
    # Its parent is then PID 1 already: the serve's PID it was given (SERVE_PID_ENV) is not it.
    mark = tmp_path / "stopped"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(mark), str(_dead_pid())],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    _assert_stops(worker.pid, mark)
    assert worker.wait(timeout=10) == 0


def _assert_stops(pid: int, mark: Path) -> None:
    deadline = time.monotonic() + 20
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not mark.exists():
        os.kill(pid, 9)
    assert mark.read_text() == "stopped"
