"""Refusals every layer of the service sends the same way: FHIR and CDS routes answer with an
OperationOutcome, the others with `{"errors": [...]}`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from features.fhir import Issue
from serving.fhir_out import FHIR_JSON, operation_outcome

FHIR_PREFIXES = ("/fhir/", "/cds-services/")
# Routes that authenticate a call themselves, from its headers (CDS Hooks: the client's JWT). A body
# that cannot be read is said only once the caller is authenticated: an unauthenticated caller gets
# 401 and learns nothing else. The guard in front leaves its finding in the scope under this key.
SELF_AUTHENTICATED = ("/cds-services/checkup-risk",)
BODY_PROBLEM = "checkup_risk.body_problem"


def malformed_body(path: str, status: int, field: str | None, message: str, index: int | None = None) -> JSONResponse:
    """The refusal of a body that cannot be read (413, 415, 400, or 422 for a duplicated key or a
    number of thousands of digits);
    `index`: the record it is in, where known."""
    if path.startswith(FHIR_PREFIXES):
        code = {413: "too-costly", 415: "not-supported", 422: "duplicate"}.get(status, "structure")
        if status == 422 and "digits" in message:  # a number too long to read, not a key twice
            code = "too-long"
        response = JSONResponse(
            operation_outcome([Issue(field or "body", message)], code=code), status, media_type=FHIR_JSON
        )
    else:
        response = JSONResponse({"errors": [{"index": index, "field": field or "body", "message": message}]}, status)
    if status == 413:
        # The rest of the body is not read: the client must not reuse this connection.
        response.headers["connection"] = "close"
    return response


def unavailable(path: str, message: str) -> Response:
    """503 for a call the service cannot serve now: the shared state is down, or no model is loaded
    (the client may retry shortly)."""
    headers = {"Retry-After": "5"}
    if path.startswith(FHIR_PREFIXES):
        payload = operation_outcome([Issue("service", message)], code="transient")
        return JSONResponse(payload, status_code=503, media_type=FHIR_JSON, headers=headers)
    return JSONResponse({"errors": [{"index": None, "field": None, "message": message}]}, 503, headers=headers)


def no_route(path: str, status: int, method: str, allow: str | None) -> JSONResponse:
    """404 (no such path) or 405 (the path takes other methods, `allow`) in the service's shape;
    the path is not repeated: a client may have put a person's id in it."""
    if status == 404:
        field, message = "path", "no route has this path: the routes are listed at /docs"
    else:
        allowed = f"; it takes {allow}" if allow else ""
        field, message = "method", f"{method} is not allowed on this route{allowed}"
    headers = {"Allow": allow} if allow else None
    if path.startswith(FHIR_PREFIXES):
        code = "not-found" if status == 404 else "not-supported"
        payload = operation_outcome([Issue(field, message)], code=code)
        return JSONResponse(payload, status, headers=headers, media_type=FHIR_JSON)
    return JSONResponse({"errors": [{"index": None, "field": field, "message": message}]}, status, headers=headers)


class RouteRefusals:
    """Pure ASGI middleware: the 404 and 405 answers of the routers (BentoML's outer app says
    "Not Found" in text/plain, FastAPI `{"detail": ...}`) become `no_route`'s, so that a client
    parses one error shape everywhere. Any other answer, and a 404 a route gives in its own shape
    (an unknown report link), passes unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") == "HEAD":  # HEAD: no body to shape
            await self.app(scope, receive, send)
            return
        held: dict | None = None  # the start of a 404 or 405, until its body says whose it is
        chunks: list[bytes] = []

        async def shaped(message: dict) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] in (404, 405):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = Headers(raw=held["headers"])
            if _router_refusal(headers.get("content-type", ""), body):
                status = held["status"]
                response = no_route(scope.get("path", ""), status, scope.get("method", ""), headers.get("allow"))
                await response(scope, receive, send)
                return
            await send(held)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, shaped)


def _router_refusal(content_type: str, body: bytes) -> bool:
    """Whether a 404/405 body is a router's default (text, or FastAPI's lone "detail")."""
    if content_type.startswith("text/plain"):
        return True
    if not content_type.startswith("application/json"):
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and list(data) == ["detail"]


class ModelUnavailable(RuntimeError):
    """This worker has no model loaded (its model failed to load): calls get 503 until one does."""
