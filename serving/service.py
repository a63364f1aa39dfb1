"""The BentoML service: /score with SHAP explanations, the report, CDS Hooks and FHIR.

Each worker starts on the model version `checkup-risk serve` pinned, then follows the registry's
champion (serving.model_reload); a request is answered by one version from start to end.
Start it with `checkup-risk serve` (which pins the champion and passes the settings on) or
`bentoml serve serving.service:RiskService` with CHECKUP_RISK_HOME and BENTOML_HOME set.
Routes are a FastAPI app mounted at "/" so that request validation errors, status codes and the
OpenAPI document are exactly ours; BentoML adds /healthz, /livez and /readyz, and /metrics is ours
(serving.http_metrics). Around the routes, outermost first: the audit trail (serving.audit), the
request metrics, the API-key check (serving.auth), then CORS and the body guard.

Importing this module reads nothing and needs no model. `build_service(settings)` makes the
service class; `RiskService`, the name `bentoml serve` and `bentoml build` import, is made on first
access from the environment (PEP 562 `__getattr__`): that access is the service's entry point.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import bentoml
import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from features.pseudonym import derive, load_secret, pseudonym
from models.provenance import SYNTHETIC_WARNING, is_synthetic
from serving import cds, http_limits, http_metrics, store
from serving.api_keys import ApiKeys
from serving.audit import AuditLog, AuditTrail
from serving.auth import BearerAuth
from serving.cds_store import LinkRefused
from serving.fhir_out import FHIR_JSON
from serving.refusals import (
    BODY_PROBLEM,
    FHIR_PREFIXES,
    SELF_AUTHENTICATED,
    ModelUnavailable,
    RouteRefusals,
    malformed_body,
    unavailable,
)
from serving.schemas import MAX_ERRORS, Checkup, ReportRequest, ScoreRequest, errors_from, listed
from serving.settings import Settings
from serving.state_db import StorageUnavailable, open_state
from serving.worker import CurrentWorker, Worker, audit_persons

# Small requests (about 1 ms) are scored on the event loop: a thread hop would cost as much as the
# work. Larger batches go to the thread pool so that probes keep answering.
INLINE_RECORDS = 8
DESCRIPTION = (
    "One-year chronic-disease risk from a Korean national health checkup, with SHAP explanations. "
    "All routes but /healthz, /livez, /readyz, /metrics, /docs (and its files under /static_content/), "
    "/openapi.json and CDS Hooks need "
    "`Authorization: Bearer <token>`; CDS Hooks calls carry the client's signed JWT."
)

# JSON nested deeper than this is refused before it is parsed: no request of ours nests past ten.
MAX_JSON_DEPTH = 64
# Bodies larger than this are checked on the thread pool.
INLINE_BODY_BYTES = 64 * 1024
# Reports hold patient data: never cached; and the page needs nothing but its own inline CSS and SVG.
REPORT_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets become +1 and closing ones -1 (as int8): the running sum is the depth.
_DEPTH_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


# Routes whose body holds checkup records (errors name the record by its index).
RECORD_ROUTES = ("/score", "/report")


class MalformedBody(ValueError):
    """A request body that cannot be read as one JSON value: `field` names the key when known."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in `body`, valid JSON (brackets inside strings are
    ignored; on other input the string pattern could take quadratic time), at C speed."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_DEPTH_STEP), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max())


_REFUSED = "\x00refused"  # no JSON key a client sends starts with NUL
# Python's int() refuses a number of more than 4,300 digits (valid JSON): the shape checks stand it
# in with this mark and refuse it as out of range, naming its key.
_HUGE = object()
_HUGE_DIGITS = 4000


def _shape_int(text: str) -> object:
    """The shape checks need no number's value, only whether int() could read it."""
    return _HUGE if len(text) > _HUGE_DIGITS else 0


def _mark_refused_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out or value is _HUGE:
            out.setdefault(_REFUSED, key)
        out[key] = value
    return out


def refused_record(body: bytes) -> int | None:
    """The index of the first record (of `/score` or `/report`: {"checkups": [...]}, {"checkup": {...}},
    a bare list or a bare record) that `check_json` refuses (a key twice, a number of thousands of
    digits); None when no record does (the problem is in the envelope) or the body has no records."""
    data = json.loads(body, object_pairs_hook=_mark_refused_keys, parse_int=_shape_int)
    if isinstance(data, dict) and isinstance(data.get("checkups"), list):
        records = data["checkups"]
    elif isinstance(data, dict) and isinstance(data.get("checkup"), dict):
        records = [data["checkup"]]
    else:
        records = data if isinstance(data, list) else [data]
    return next((i for i, r in enumerate(records) if _marked(r)), None)


def _marked(value: Any) -> bool:
    """Whether `value` holds, at any depth, an object `_mark_refused_keys` marked or a number too long."""
    if value is _HUGE:
        return True
    if isinstance(value, dict):
        return _REFUSED in value or any(_marked(v) for v in value.values())
    return isinstance(value, list) and any(_marked(v) for v in value)


def _refuse_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Which value would win is a guess a clinical service must not make.
            raise MalformedBody("appears more than once in one JSON object", status=422, field=key)
        if value is _HUGE:
            raise MalformedBody(
                f"is a number of more than {_HUGE_DIGITS:,} digits: out of range", status=422, field=key
            )
        out[key] = value
    return out


def check_json(body: bytes) -> None:
    """Raise MalformedBody unless `body` is one JSON value, nested at most MAX_JSON_DEPTH deep, with
    no key twice in any object and no number too long to read."""
    deep = MalformedBody(f"is nested more than {MAX_JSON_DEPTH} levels deep")
    huge: list[str] = []  # the parser says so as it reads: no second walk over every body

    def shape_int(text: str) -> object:
        got = _shape_int(text)
        if got is _HUGE:
            huge.append(text)
        return got

    try:
        json.loads(body, object_pairs_hook=_refuse_keys, parse_int=shape_int)
    except MalformedBody:
        raise
    except RecursionError:
        raise deep from None
    except UnicodeDecodeError:
        # A legacy HIS may send CP949/EUC-KR: saying so saves a support call. JSON is UTF-8 (RFC 8259);
        # a declared charset is not followed, since one body read two ways would be a guess.
        raise MalformedBody("is not UTF-8: JSON must be sent in UTF-8") from None
    except ValueError:
        raise MalformedBody("is not valid JSON") from None
    # Only now: on valid JSON the string pattern runs in linear time.
    if json_depth(body) > MAX_JSON_DEPTH:
        raise deep
    if huge:  # in a list (in an object, `_refuse_keys` named its key): no key to name
        raise MalformedBody(f"holds a number of more than {_HUGE_DIGITS:,} digits: out of range", status=422)


def check_media_type(content_type: bytes | None, path: str) -> None:
    """Raise MalformedBody (415) unless a body's Content-Type is JSON: application/json or an
    application/*+json type (application/fhir+json), as FastAPI reads bodies. No Content-Type is
    read as JSON too (FastAPI does), so only a type that says otherwise is refused."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower().decode("latin-1")
    if not media:
        return  # no type, or an empty one: read as JSON, as FastAPI does
    kind, _, sub = media.partition("/")
    if kind == "application" and (sub == "json" or sub.endswith("+json")):
        return
    expected = f"{FHIR_JSON} or application/json" if path.startswith(FHIR_PREFIXES) else "application/json"
    raise MalformedBody(
        f"{media or '(empty)'!r} is not supported: send the body as {expected}", status=415, field="Content-Type"
    )


class BodyGuard:
    """Pure ASGI middleware in front of every route: one answer for every body that is too large or
    not one well-formed JSON value, before any route parses it.

    A `Content-Length` above `max_bytes` gets 413 before the body is read, a streamed body 413 as
    soon as it grows past it; a body sent as another media type than JSON (`check_media_type`) 415;
    then the body must be JSON (`check_json`): 400, or 422 naming a duplicated key. FHIR and CDS
    routes answer with an OperationOutcome, the others with `{"errors": [...]}`. The body, once
    read, is handed on to the route unchanged. A route that authenticates calls itself (CDS Hooks,
    `serving.refusals.SELF_AUTHENTICATED`) gets the finding in its scope instead and says it after
    authentication, so an unauthenticated caller gets only 401 (a 413 is said at once).
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
                raise MalformedBody(f"is larger than {self.max_bytes} bytes", status=413)
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    raise MalformedBody(f"is larger than {self.max_bytes} bytes", status=413)
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if body:
                headers = scope.get("headers") or []
                check_media_type(dict(headers).get(b"content-type"), path)
                if not dict(headers).get(b"content-type", b"").strip():
                    # No type (or an empty one) is read as JSON on every route: FastAPI would parse
                    # it for some routes and not for others, so say it here once.
                    kept = [(k, v) for k, v in headers if k != b"content-type"]
                    scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
            if len(body) > INLINE_BODY_BYTES:
                # Parsing megabytes takes a second: off the event loop, so that probes keep answering.
                await run_in_threadpool(check_json, body)
            elif body:
                check_json(body)
        except MalformedBody as e:
            if e.status == 413 or not path.startswith(SELF_AUTHENTICATED):
                # A key twice in a checkup, or a number too long: name the record, as every other refusal does.
                index = refused_record(body) if e.status == 422 and path in RECORD_ROUTES else None
                await malformed_body(path, e.status, e.field, e.message, index)(scope, receive, send)
                return
            # Only a 413 comes before the whole body is read; the route says this after authentication.
            scope = {**scope, BODY_PROBLEM: (e.status, e.field, e.message)}

        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


router = APIRouter()


@router.post("/score", summary="Score checkups: one-year risk per outcome with top-k SHAP contributions")
async def score(
    request: ScoreRequest, http: Request, svc: CurrentWorker, detail: Literal["groups", "features"] = "groups"
) -> JSONResponse:
    """`?detail=features` lists contributions per model feature (for data scientists); by default
    they are grouped by the measurement they come from (blood pressure, glucose, ...)."""
    checkups: list[BaseModel] = request.checkups  # Checkup is generated at run time (serving.schemas)
    records = [c.model_dump() for c in checkups]
    audit_persons(http, records)
    # Read once: the model may switch during this call (serving.model_reload), and the version
    # in the answer (and the audit trail) must be the one that scored it.
    served = svc.current()
    http.state.audit_model = served.version
    scorer = svc.scoring("score", served)
    if len(records) <= INLINE_RECORDS:
        results = scorer.score_records(records, explain=request.explain, top_k=request.top_k, detail=detail)
    else:
        results = await run_in_threadpool(scorer.score_records, records, request.explain, request.top_k, None, detail)
    return JSONResponse({"model_version": served.version, "results": results})


@router.post(
    "/report",
    response_class=HTMLResponse,
    summary="The clinician explanation report for one checkup, or for the newest of one person's "
    "checkups (HTML, Korean by default)",
)
async def report(
    request: ReportRequest, http: Request, svc: CurrentWorker, lang: Literal["ko", "en"] | None = None
) -> HTMLResponse:
    """Body: {"checkup": record} or {"checkups": [records of one person]} (or the bare record or
    list), with "lang". A bare list cannot carry "lang": `?lang=` is read when the body has none."""
    from serving.report import render_html

    audit_persons(http, request.records())
    chosen = request.lang if "lang" in request.model_fields_set or lang is None else lang
    served = svc.current()  # one snapshot: the audit trail names the version that reported
    http.state.audit_model = served.version
    return HTMLResponse(render_html(svc.scoring("report", served), request.records(), chosen), headers=REPORT_HEADERS)


@router.get(
    "/reports/{key}",
    response_class=HTMLResponse,
    summary="The clinician report behind a CDS card's signed link (no bearer token: the link's "
    "signature and expiry are the credential)",
)
async def linked_report(
    key: str,
    http: Request,
    svc: CurrentWorker,
    exp: str | None = None,
    sig: str | None = None,
    lang: Literal["ko", "en"] = "ko",
) -> Response:
    from serving.report import render_html

    try:
        records = await run_in_threadpool(svc.report_links.open, key, exp, sig)
    except LinkRefused as e:
        # No patient data and no hint of whether the id exists.
        return JSONResponse(
            {"errors": [{"index": None, "field": "link", "message": e.message}]},
            status_code=e.status,
            headers={"Cache-Control": "no-store"},
        )
    # The card's checkups, oldest first: the newest is reported with the others as its history,
    # so the page shows what the card scored.
    checkups = [Checkup.model_validate(r).model_dump() for r in records]
    audit_persons(http, checkups)
    # A clinician opening a card's link: the audit trail names the link, not a key.
    http.state.audit_client = "report-link"
    served = svc.current()
    http.state.audit_model = served.version
    return HTMLResponse(render_html(svc.scoring("report", served), checkups, lang), headers=REPORT_HEADERS)


@router.get("/model", summary="The model version this worker serves")
def model_info(svc: CurrentWorker) -> dict:
    # `training_data`: synthetic / real (or unknown for older bundles), persons and checkups apart.
    served = svc.current()  # one snapshot: the version and its bundle's facts together
    info = served.scorer.training_data
    return {
        "model_version": served.version,
        "bento_model": served.bento_model_tag,
        "outcomes": list(served.scorer.outcomes),
        "training_data": info,
        # Said in words too, as every response of a synthetic model says it.
        "warnings": [SYNTHETIC_WARNING] if is_synthetic(info) else [],
    }


@router.post("/admin/reload", summary="Switch this worker to the registry's champion now (admin scope)")
async def reload_model(svc: CurrentWorker) -> dict:
    """Polls the registry at once in the worker that takes this call; with several workers the
    others switch on their own poll (CHECKUP_RISK_MODEL_POLL_SECONDS). `switched`: whether this
    call changed the served version; a version that fails to load leaves the current one."""
    # Loading and warming a model takes seconds of CPU: off the event loop.
    switched = await run_in_threadpool(svc.reloader.poll)
    return {"model_version": svc.current().version, "switched": switched}


def build_app(settings: Settings) -> FastAPI:
    """The routes, with the CORS origins of `settings`."""
    app = FastAPI(title="checkup-risk", version="1", description=DESCRIPTION, docs_url=None)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # FastAPI's page loads Swagger UI from a CDN, which a hospital network often cannot reach;
        # BentoML serves the same assets itself under /static_content (unless its `new_index`
        # feature is turned on, which moves them; tests/integration/test_server.py would fail).
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="checkup-risk API",
            swagger_js_url="/static_content/swagger-ui-bundle.js",
            swagger_css_url="/static_content/swagger-ui.css",
            swagger_favicon_url="/static_content/favicon-light-32x32.png",
        )

    # Added before CORS, so that CORS wraps it and its refusals carry CORS headers too.
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    # Browser-based CDS clients (the CDS Hooks sandbox, SMART apps) call cross-origin; credentials are
    # bearer headers, never cookies, so allowing any origin (the default) exposes nothing.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the submitted values back: they are patient data.
        raw = list(exc.errors())
        # Tens of thousands of errors (1,000 records of 70 unknown keys) take a while: off the loop.
        errors = errors_from(raw) if len(raw) <= MAX_ERRORS else await run_in_threadpool(errors_from, raw)
        if request.url.path in ("/score", "/report"):
            # Checkups refused, by the field named, for /metrics (serving.http_metrics): all of them,
            # though the answer lists only the first MAX_ERRORS.
            http_metrics.count_rejects(errors)
        return JSONResponse({"errors": listed(errors)}, status_code=422)

    @app.exception_handler(ModelUnavailable)
    @app.exception_handler(StorageUnavailable)
    async def _storage(request: Request, exc: Exception) -> Response:
        # The state a call needs (replay check, report link, audit) cannot be kept: refuse it
        # rather than serve unchecked or unaudited; readiness says not ready until a write succeeds.
        return unavailable(request.url.path, str(exc))

    app.include_router(router)
    app.include_router(cds.router)
    app.include_router(http_metrics.router)
    return app


def build_service(settings: Settings) -> bentoml.Service[Any]:
    """The BentoML service of `settings`: its model is `settings.model_tag`, else the tag
    `checkup-risk serve` pinned under the home (LookupError when there is none)."""
    tag = settings.model_tag or store.pinned_tag(settings.home)

    class RiskService(Worker):
        # A class attribute, so `bentoml build` records exactly this model version.
        bento_model = bentoml.models.BentoModel(tag)

        def __init__(self) -> None:
            super().__init__(settings, self.bento_model)

        @bentoml.on_shutdown
        def _write_prediction_log(self) -> None:
            # The rows buffered since the last flush (atexit does it too, if this hook is skipped).
            self.predictions.close()

        def __is_ready__(self) -> bool:
            # Ready when the model is loaded and the shared state takes writes (BentoML calls this
            # on a thread, so a store that is down never blocks the event loop).
            # A secret that does not match the shared state's keeps it out of the pool for good.
            ready = getattr(self, "served", None) is not None and self.secret_ok and self.state.healthy()
            if ready:
                self.report_links.purge_later()
            return ready

    app = build_app(settings)
    # Deadlines for idle and slow clients, in the uvicorn server BentoML starts after this import.
    http_limits.install(settings.keep_alive_seconds, settings.read_timeout_seconds)
    service = bentoml.service(
        name="checkup-risk",
        workers=settings.workers,
        traffic={"timeout": 30, "max_concurrency": 512},
        # BentoML's HTTP metrics label each raw path (a series per path a client tries): off, and
        # http_metrics.RouteMetrics labels by route template instead and serves /metrics.
        metrics={"enabled": False},
        # Access logs would add a line per request and carry nothing a probe or /metrics lacks.
        logging={"access": {"enabled": False}},
        # With no exporter configured, a span per request is pure cost; CHECKUP_RISK_TRACING=1 keeps it.
        tracing={"excluded_urls": [] if settings.tracing else [".*"]},
        http={"port": 3000},
    )(bentoml.asgi_app(app, path="/")(RiskService))
    # Added first, so it is the outermost: refused calls (401, 403, 429) are audited too.
    service.add_asgi_middleware(AuditTrail, open_log=functools.partial(open_audit, settings))
    # Outside BearerAuth, so that refused calls are counted too.
    # The routers' own routes: FastAPI keeps included routers behind one private entry of app.routes.
    routes = [*app.routes, *router.routes, *cds.router.routes, *http_metrics.router.routes]
    service.add_asgi_middleware(http_metrics.RouteMetrics, routes=routes)
    service.add_asgi_middleware(
        BearerAuth,
        home=str(settings.home),
        token=settings.api_token,
        open_keys=functools.partial(open_keys, settings),
        rate_per_minute=settings.rate_limit_per_minute,
    )
    # Innermost: it sees the routers' own 404 and 405 (BentoML's and FastAPI's) and gives them the
    # service's error shape; an unauthenticated caller still gets 401 first.
    service.add_asgi_middleware(RouteRefusals)
    return service


def open_keys(settings: Settings) -> ApiKeys:
    """The named API keys in the shared state of `settings` (opened in the worker process)."""
    return ApiKeys(open_state(settings.database_url, settings.home))


def open_audit(settings: Settings) -> tuple[AuditLog, Callable[[str], str]]:
    """The audit trail of `settings` and the pseudonym function for its patient keys."""
    secret = load_secret(settings.home, settings.secret_key)
    log = AuditLog(open_state(settings.database_url, settings.home), derive(secret, "audit"))
    return log, functools.partial(pseudonym, derive(secret, "pseudonym"))


def install(settings: Settings) -> bentoml.Service[Any]:
    """Build the service of `settings` and make it this module's `RiskService`, the one that
    `bentoml serve` and `bentoml build` then import in this process."""
    service = build_service(settings)
    globals()["RiskService"] = service
    return service


def __getattr__(name: str) -> Any:
    # Runs only while RiskService is not installed yet: the first access builds it from the
    # environment of the process BentoML started.
    if name == "RiskService":
        return install(Settings.from_env(os.environ))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
