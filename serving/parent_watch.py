"""A service worker stops when the process that started it is gone.

BentoML's supervisor (the `checkup-risk serve` process, which becomes `bentoml serve`) starts the
workers and restarts any that dies. When the supervisor itself is killed (`kill -9`, the kernel's
OOM killer), the workers are handed to PID 1 and would go on serving with nobody to restart them,
holding the port and the home's `serve.lock`, so that a restart is refused. Each worker therefore
watches its parent and stops itself when the parent changes: a plain restart then recovers.

Linux has PR_SET_PDEATHSIG for this, but it fires when the parent *thread* that forked exits,
and BentoML's supervisor is a threaded asyncio program; comparing `os.getppid()` is simple and exact.
`checkup-risk serve` passes its PID (which `bentoml serve` keeps: it is exec'd) in SERVE_PID_ENV, so
that a worker still starting when the supervisor was killed (its parent is then already PID 1)
stops too; a worker started by a plain `bentoml serve` watches the parent it has at start.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

# Under BentoML's logger namespace: BentoML shows INFO and above from there only.
log = logging.getLogger("bentoml.checkup_risk.worker")

SERVE_PID_ENV = "CHECKUP_RISK_SERVE_PID"
# How often the parent is checked: an orphan serves at most this long, plus the graceful stop.
EVERY_S = 1.0
# After SIGTERM, uvicorn finishes the requests in flight and runs the shutdown hooks (the prediction
# log's last rows); a worker that has not stopped by then is ended at once.
GRACE_S = 30.0


def watch_parent(expected: int | None = None, every_s: float = EVERY_S, grace_s: float = GRACE_S) -> threading.Thread:
    """Start a daemon thread that stops this process (SIGTERM to itself, then exit after
    `grace_s`) as soon as its parent is not `expected` (default: the parent it has now; it may
    already differ). Returns the thread."""
    parent = os.getppid() if expected is None else expected
    thread = threading.Thread(
        target=_watch, args=(parent, every_s, grace_s), name="checkup-risk-parent-watch", daemon=True
    )
    thread.start()
    return thread


def _watch(parent: int, every_s: float, grace_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    log.warning(
        "worker %d: the serve process (PID %d) that started it is gone; this worker stops so that "
        "`checkup-risk serve` can be started again",
        os.getpid(),
        parent,
    )
    # SIGTERM: the server's own graceful stop (requests in flight finish, shutdown hooks run).
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(1)
