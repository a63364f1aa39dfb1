"""Waiting for a `checkup-risk serve` started by a bench: one loop for every bench script."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 180) -> float:
    """Seconds until `url`/readyz answers 200; SystemExit with the log's tail when the server exits
    or is not ready in `timeout` seconds."""
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready in {timeout} s:\n{log_path.read_text(errors='replace')[-3000:]}")
