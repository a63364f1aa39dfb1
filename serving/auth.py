"""Bearer-token authentication for every route but the probes, the API's own description and CDS Hooks.

CDS Hooks discovery is public and CDS service calls carry the client's signed JWT instead, which
`serving.cds_auth` checks in the route. `/docs` and `/openapi.json` describe the routes and hold no
patient data, so a browser can read them without a token.

The token is CHECKUP_RISK_API_TOKEN when set (`Settings.api_token`); otherwise one is created on
first run and kept in CHECKUP_RISK_HOME/api_token (mode 600). Comparison is constant-time; a refusal
says how to send a token and nothing else.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

# Open to anyone: liveness/readiness probes, Prometheus, and the API's description.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/docs", "/openapi.json"})
# Discovery is public; the service and feedback routes under it check a client JWT themselves.
CDS_PREFIX = "/cds-services"
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
    if path.exists():
        return path.read_text().strip(), False
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


class BearerAuth:
    """Pure ASGI middleware (applies to BentoML routes and the mounted app alike)."""

    def __init__(self, app: Any, home: str, token: str | None) -> None:
        self.app = app
        self.home = Path(home)
        self.configured = token
        self._expected: bytes | None = None

    def _token(self) -> bytes:
        if self._expected is None:
            self._expected = ensure_token(self.home, self.configured)[0].encode()
        return self._expected

    def _authorized(self, header: bytes) -> bool:
        # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in constant time.
        # Exactly "<scheme> <token>": nothing is stripped from the token.
        scheme, _, given = header.partition(b" ")
        return hmac.compare_digest(given, self._token()) and scheme.lower() == b"bearer"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._public(scope) and not self._preflight(scope):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self._authorized(given):
                body = json.dumps({"errors": [{"index": None, "field": None, "message": UNAUTHORIZED}]}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
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
        return path in PUBLIC_PATHS or path == CDS_PREFIX or path.startswith(CDS_PREFIX + "/")
