"""Bearer-token authentication for every route but the probes and CDS Hooks.

CDS Hooks discovery is public and CDS service calls carry the client's signed JWT instead, which
`serving.cds_auth` checks in the route.

The token is CHECKUP_RISK_API_TOKEN when set; otherwise one is created on first run and kept in
CHECKUP_RISK_HOME/api_token (mode 600). Comparison is constant-time; a refusal says nothing more.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

# Open to anyone: liveness/readiness probes and Prometheus.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
# Discovery is public; the service and feedback routes under it check a client JWT themselves.
CDS_PREFIX = "/cds-services"


def token_file(home: Path) -> Path:
    return home / "api_token"


def ensure_token(home: Path) -> tuple[str, bool]:
    """(token, created): the configured token, or the stored one, or a new one written to disk."""
    env = os.environ.get("CHECKUP_RISK_API_TOKEN")
    if env:
        return env, False
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

    def __init__(self, app, home: str) -> None:
        self.app = app
        self.home = Path(home)
        self._expected: bytes | None = None

    def _token(self) -> bytes:
        if self._expected is None:
            self._expected = f"Bearer {ensure_token(self.home)[0]}".encode()
        return self._expected

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._public(scope):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._token()):
                body = json.dumps({"errors": [{"index": None, "field": None, "message": "unauthorized"}]}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _public(scope) -> bool:
        path = scope.get("path", "")
        return path in PUBLIC_PATHS or path == CDS_PREFIX or path.startswith(CDS_PREFIX + "/")
