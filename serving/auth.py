"""Bearer-token authentication for every route but the probes, the API's own description and CDS Hooks.

CDS Hooks discovery is public and CDS service calls carry the client's signed JWT instead, which
`serving.cds_auth` checks in the route. `/docs` and `/openapi.json` describe the routes and hold no
patient data, so a browser can read them (and the Swagger UI files of `/docs`) without a token.

The bootstrap token is CHECKUP_RISK_API_TOKEN when set (`Settings.api_token`); otherwise one is
created on first run and kept in CHECKUP_RISK_HOME/api_token (mode 600). It has every scope. Named
keys (`checkup-risk keys create`, serving.api_keys) have the scopes they were given: a key without
the route's scope gets 403. Comparison is constant-time; a refusal says how to send a token and
nothing else. Each named key has a rate limit per worker process (429 with Retry-After).
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from features.pseudonym import create_once
from serving.api_keys import PREFIX, SCOPES, ApiKeys, Client
from serving.refusals import unavailable
from serving.state_db import StorageUnavailable

# Open to anyone: liveness/readiness probes, Prometheus, and the API's description.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/docs", "/openapi.json"})
# The files of the /docs page (Swagger UI's script and style, served by BentoML): no data at all.
DOCS_ASSETS_PREFIX = "/static_content/"
# Discovery is public; the service and feedback routes under it check a client JWT themselves.
CDS_PREFIX = "/cds-services"
# A card's report link carries its own credential (a signature and an expiry), checked by the route:
# a clinician opens it in the EHR's browser, which has no bearer token.
REPORT_LINK_PREFIX = "/reports/"
# How to get in, in general terms: the same for every refusal, so it tells a caller nothing about
# why this one failed or what the token is.
UNAUTHORIZED = (
    "unauthorized: send Authorization: Bearer <token>; the token is CHECKUP_RISK_API_TOKEN, "
    "or the one `checkup-risk serve` printed, kept in CHECKUP_RISK_HOME/api_token"
)


def token_file(home: Path) -> Path:
    return home / "api_token"


def ensure_token(home: Path, configured: str | None) -> tuple[str, bool]:
    """(token, created): the configured token, or the stored one, or a new one written to disk."""
    if configured:
        return configured, False
    path = token_file(home)
    existed = path.exists()
    return create_once(path, lambda: secrets.token_urlsafe(32)), not existed


# A bootstrap token shorter than this (the one made here has 43) could be guessed: said, not refused,
# since test set-ups outside the project may set a short one on purpose.
MIN_TOKEN_CHARS = 32


def weak_token_warning(home: Path, configured: str | None) -> str | None:
    """A WARNING line when the bootstrap token (the configured one, else the stored one; none is
    made here) is shorter than MIN_TOKEN_CHARS or holds whitespace; None when it is fine or absent.
    It names where the token comes from, never the token (nor its length)."""
    if configured:
        token, source = configured, "CHECKUP_RISK_API_TOKEN"
        fix = f"set it to a random value of {MIN_TOKEN_CHARS} characters or more"
    else:
        path = token_file(home)
        try:
            token = path.read_text().strip()
        except OSError:  # none yet (serve makes a strong one), or unreadable (serve says so)
            return None
        source = str(path)
        fix = f"delete the file to have a new one made, or write a random value of {MIN_TOKEN_CHARS} characters or more"
    problems = _weaknesses(token)
    if not token or not problems:
        return None
    return (
        f"WARNING: the bootstrap API token in {source} {' and '.join(problems)}: it has every scope and no "
        f"rate limit, so a token that can be guessed opens every route; {fix}"
    )


def weak_secret_warning(configured: str | None) -> str | None:
    """A WARNING line when CHECKUP_RISK_SECRET_KEY is set to a value that could be guessed (the one
    made under the home has 64 characters); None when it is fine or unset. Never names the value."""
    problems = _weaknesses(configured or "")
    if not configured or not problems:
        return None
    return (
        f"WARNING: CHECKUP_RISK_SECRET_KEY {' and '.join(problems)}: it signs report links, keys the audit "
        f"pseudonyms and seals the audit chain, so set it to a random value of {MIN_TOKEN_CHARS} characters "
        "or more (the same on every instance)"
    )


def _weaknesses(secret: str) -> list[str]:
    problems = []
    if len(secret) < MIN_TOKEN_CHARS:
        problems.append(f"is shorter than {MIN_TOKEN_CHARS} characters")
    if any(c.isspace() for c in secret):
        problems.append("contains whitespace")
    return problems


# The scope each route needs, by path prefix; routes not listed (GET /model) need any valid key.
# (A report link is public: its signature is the credential.)
ROUTE_SCOPES = (("/score", "score"), ("/report", "report"), ("/fhir/", "fhir"), ("/admin/", "admin"))
BOOTSTRAP = "bootstrap"


def required_scope(path: str) -> str | None:
    for prefix, scope in ROUTE_SCOPES:
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return scope
    return None


class RateLimiter:
    """A token bucket per client in this worker process: `per_minute` calls, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_s(self, client: str) -> float:
        """0 when the call may go ahead (and is counted), else the seconds until it may."""
        now = time.monotonic()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate


class BearerAuth:
    """Pure ASGI middleware (applies to BentoML routes and the mounted app alike): the bootstrap
    token or a named key (serving.api_keys) with the route's scope, within the client's rate."""

    def __init__(
        self, app: Any, home: str, token: str | None, open_keys: Callable[[], ApiKeys], rate_per_minute: int
    ) -> None:
        self.app = app
        self.home = Path(home)
        self.configured = token
        self._expected: bytes | None = None
        self._open_keys = open_keys
        self._keys: ApiKeys | None = None
        self.limiter = RateLimiter(rate_per_minute)

    def _token(self) -> bytes:
        if self._expected is None:
            self._expected = ensure_token(self.home, self.configured)[0].encode()
        return self._expected

    async def _client(self, header: bytes) -> Client | None:
        # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in constant time.
        # "<scheme> 1*SP <token>" (RFC 9110 11.4), the field value's own surrounding whitespace
        # trimmed (5.5); the token itself is compared as sent.
        scheme, _, given = header.strip(b" \t").partition(b" ")
        given = given.lstrip(b" ")
        if scheme.lower() != b"bearer" or not given:
            return None
        if hmac.compare_digest(given, self._token()):
            return Client(BOOTSTRAP, frozenset(SCOPES))
        if not given.startswith(PREFIX.encode()):
            return None
        if self._keys is None:
            self._keys = self._open_keys()
        # A lookup is cached for a moment; a miss reads the shared state, off the event loop.
        return await run_in_threadpool(self._keys.lookup, given.decode("ascii", "replace"))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._public(scope) and not self._preflight(scope):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            try:
                client = await self._client(given)
            except StorageUnavailable as e:
                response = unavailable(scope.get("path", ""), str(e))
                await response(scope, receive, send)
                return
            needed = required_scope(scope.get("path", ""))
            if client is not None:
                # Named in the audit trail, refused or not: a reviewer sees who tried what.
                scope.setdefault("state", {})["audit_client"] = client.name
            if client is None or (needed is not None and needed not in client.scopes):
                message = UNAUTHORIZED if client is None else f"forbidden: this key lacks the {needed!r} scope"
                await _refuse(send, 401 if client is None else 403, message, [(b"www-authenticate", b"Bearer")])
                return
            # The bootstrap token is the operator's; each client system gets a named key, and limit.
            wait = 0.0 if client.name == BOOTSTRAP else self.limiter.wait_s(client.name)
            if wait > 0:
                retry = str(max(1, math.ceil(wait))).encode()
                await _refuse(send, 429, "too many requests from this client: slow down", [(b"retry-after", retry)])
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _preflight(scope: dict) -> bool:
        """A CORS preflight: browsers send it without credentials, and the app's CORS middleware
        answers it itself (it reaches no route and returns no data)."""
        if scope.get("method") != "OPTIONS":
            return False
        headers = dict(scope.get("headers") or [])
        return b"origin" in headers and b"access-control-request-method" in headers

    @staticmethod
    def _public(scope: dict) -> bool:
        path = scope.get("path", "")
        return (
            path in PUBLIC_PATHS
            or path == CDS_PREFIX
            or path.startswith((CDS_PREFIX + "/", REPORT_LINK_PREFIX, DOCS_ASSETS_PREFIX))
        )


async def _refuse(send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"errors": [{"index": None, "field": None, "message": message}]}).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), *headers]}
    )
    await send({"type": "http.response.body", "body": body})
