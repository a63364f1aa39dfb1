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
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match, Route

from models.outcomes import CATEGORIES as OUTCOME_CATEGORIES

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


# -- what the model sees and says (issue 15): low-cardinality series, labels from fixed lists only --

# Risk categories (`models.outcomes.CATEGORIES`), and the label of an outcome that does not apply to
# the person.
NOT_APPLICABLE = "not_applicable"
CATEGORIES = (*OUTCOME_CATEGORIES, NOT_APPLICABLE)
OTHER = "other"


@functools.cache
def _fields() -> frozenset[str]:
    from features.schema import COLUMNS

    return frozenset(COLUMNS)


def field_label(name: object) -> str:
    """A record field's label: one of the canonical fields (`features.schema.COLUMNS`), else "other",
    so a client's made-up field names never become series."""
    return name if isinstance(name, str) and name in _fields() else OTHER


@functools.cache
def prediction_instruments() -> tuple[Any, Any, Any, Any]:
    """(predictions by outcome and category, input values by field, missing inputs by field,
    prediction-log rows dropped), made once per process. `rate(missing) / rate(values)` is a
    field's missing rate: `values` counts every scored record's slot for the field."""
    from prometheus_client import Counter

    predictions = Counter(
        "predictions",
        "Scored outcome risks, by outcome and risk category (not_applicable: the outcome does not apply)",
        ("outcome", "category"),
        namespace=NAMESPACE,
    )
    values = Counter(
        "input_values",
        "Model input fields of scored checkups, present or missing, by field",
        ("field",),
        namespace=NAMESPACE,
    )
    missing = Counter(
        "input_missing", "Model input fields missing in scored checkups, by field", ("field",), namespace=NAMESPACE
    )
    dropped = Counter(
        "prediction_log_dropped_rows",
        "Prediction-log rows dropped because the log could not be written (or its buffer was full)",
        namespace=NAMESPACE,
    )
    return predictions, values, missing, dropped


@functools.cache
def _model_info() -> Any:
    from prometheus_client import Gauge

    return Gauge(
        "model_info",
        "1 for the model version a worker serves, with what it learned from (training_data: synthetic, "
        "real or unknown); 0 for a version it served before",
        ("version", "training_data"),
        namespace=NAMESPACE,
        multiprocess_mode="livemax",
    )


def model_served(version: str, training_data: str, previous: tuple[str, str] | None = None) -> None:
    """Say on /metrics which version this worker now serves (and that it left `previous`), so that
    monitoring can alert on a synthetic model or on workers left on an old version."""
    gauge = _model_info()
    if previous is not None and previous != (version, training_data):
        gauge.labels(*previous).set(0)
    gauge.labels(version, training_data).set(1)


@functools.cache
def _rejects() -> Any:
    from prometheus_client import Counter

    return Counter(
        "validation_rejects",
        "Checkups refused by validation (/score, /report, FHIR, CDS; earlier FHIR checkups dropped from "
        "the history), by the field named (other: none of the record's fields)",
        ("field",),
        namespace=NAMESPACE,
    )


def count_rejects(errors: list[dict]) -> None:
    """Count the refused records in `errors` ({"index", "field", ...} as `serving.schemas.errors_from`
    makes them): once per record and field named."""
    counter = _rejects()
    for field in {(e.get("index"), field_label(e.get("field"))) for e in errors}:
        counter.labels(field=field[1]).inc()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def exposition() -> bytes:
    """The Prometheus text of this process, or of all workers when BentoML runs several."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    # A worker killed (OOM, SIGKILL) never marks itself dead: its live gauges (requests in progress,
    # the model it served) would count on until the next start. Mark every such pid now.
    for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid))
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    # Reads one file per worker (and per dead worker): off the event loop.
    return Response(await run_in_threadpool(exposition), media_type=CONTENT_TYPE_LATEST)
