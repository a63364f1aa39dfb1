"""HTTP metrics labelled by route template, and the `/metrics` route that shows them.

BentoML 1.4's own HTTP metrics (`RunnerTrafficMetricsMiddleware`, on when `metrics.enabled`) label
every request with `scope["path"]`, read before any routing: each distinct path a client sends,
found or not, becomes new time series (`/reports/<key>` put report keys into the labels, and 2,000
random paths made 40,000 series). That middleware sits outside every middleware a service may
add, so no rewrite of the path can reach it without breaking routing. The service therefore turns
BentoML's metrics off and counts requests here: `endpoint` is the route template (`/reports/{key}`)
or `__unknown__`, so the size of `/metrics` depends on the routes, never on the paths requested.

Workers are separate processes: BentoML sets PROMETHEUS_MULTIPROC_DIR for each, and `/metrics`
adds up the files of all of them (prometheus_client's multiprocess mode), as BentoML's did.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match, Route

NAMESPACE = "checkup_risk"
UNKNOWN = "__unknown__"
# Routes BentoML itself serves in front of the service's app (probes, its schema and index page).
BENTOML_PATHS = frozenset({"/", "/livez", "/healthz", "/readyz", "/schema.json", "/docs.json"})
# Seconds: /score answers in milliseconds; the top buckets catch JWKS stalls and timeouts (30 s).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The status recorded when BentoML's traffic timeout cancels a request: the one it then sends.
TIMED_OUT = 504


@functools.cache
def _instruments() -> tuple[Any, Any, Any]:
    """(requests counter, duration histogram, in-progress gauge), made once per process: the
    registry refuses a second metric of the same name."""
    # Imported here, not at module import: prometheus_client picks its multiprocess storage when
    # first imported, and BentoML sets PROMETHEUS_MULTIPROC_DIR before it starts a worker.
    from prometheus_client import Counter, Gauge, Histogram

    labels = ("endpoint", "http_response_code")
    total = Counter("request_total", "HTTP requests, by route template", labels, namespace=NAMESPACE)
    duration = Histogram(
        "request_duration_seconds",
        "HTTP request duration in seconds, by route template",
        labels,
        namespace=NAMESPACE,
        buckets=BUCKETS,
    )
    in_progress = Gauge(
        "request_in_progress",
        "HTTP requests being answered now, by route template",
        ("endpoint",),
        namespace=NAMESPACE,
        multiprocess_mode="livesum",
    )
    return total, duration, in_progress


class RouteMetrics:
    """Pure ASGI middleware: counts and times every HTTP request under its route template.

    `routes` are the app's Starlette routes; a path none of them matches (even by method only)
    and that is not one of BentoML's own routes is counted as `__unknown__`. No path is ever cached
    or stored: the label set is fixed by the routes.
    """

    def __init__(self, app: Any, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = [r for r in routes if isinstance(r, Route)]

    def endpoint(self, scope: dict) -> str:
        """The route template of the request in `scope`, or `__unknown__`."""
        if scope.get("path") in BENTOML_PATHS:
            return str(scope["path"])
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:  # PARTIAL: the path is right, the method is not (405)
                return route.path
        return UNKNOWN

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        total, duration, in_progress = _instruments()
        endpoint = self.endpoint(scope)
        status = 0

        async def record_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        gauge = in_progress.labels(endpoint=endpoint)
        gauge.inc()
        try:
            await self.app(scope, receive, record_status)
        except asyncio.CancelledError:
            status = status or TIMED_OUT
            raise
        finally:
            gauge.dec()
            # No response started and not cancelled: an exception, which Starlette answers with 500.
            code = str(status or 500)
            total.labels(endpoint=endpoint, http_response_code=code).inc()
            duration.labels(endpoint=endpoint, http_response_code=code).observe(time.perf_counter() - start)


def exposition() -> bytes:
    """The Prometheus text of this process, or of all workers when BentoML runs several."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    # Reads one file per worker (and per dead worker): off the event loop.
    return Response(await run_in_threadpool(exposition), media_type=CONTENT_TYPE_LATEST)
