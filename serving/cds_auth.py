"""Trusting CDS clients (CDS Hooks 2.0): every call carries a JWT signed by the client.

Allowlisted issuers come from the JSON file named by CHECKUP_RISK_CDS_CLIENTS (`Settings.cds_clients`):
a list of `{"iss": ..., "jwks": {JWK Set}}` or `{"iss": ..., "jwks_url": ...}`. With no file configured, no
client is trusted and every CDS call is refused. Only ES384 and RS384 are accepted (never `none` or
HMAC); `aud` must be the URL that was called; `exp` and `iat` are required; a `jti` is kept until
its token expires, in SQLite shared by all workers, so a replay is refused whichever worker gets it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from serving.sqlite_state import ThreadConnections

ALGORITHMS = ("ES384", "RS384")
# A token living longer than this is refused: it bounds how long a jti must be remembered.
MAX_LIFETIME_S = 3600
LEEWAY_S = 30
_KEY_TYPE = {"ES384": "EC", "RS384": "RSA"}
JWKS_TTL_S = 600


class CdsAuthError(Exception):
    """A refused call; the message says why and is safe to return (it carries no token content)."""


@dataclass
class Client:
    iss: str
    jwks: dict | None = None
    jwks_url: str | None = None
    _keys: dict[str, tuple[jwt.PyJWK, dict]] = field(default_factory=dict)
    _fetched: float = 0.0

    def key(self, kid: str) -> tuple[jwt.PyJWK, dict]:
        if self.jwks is not None and not self._keys:
            self._keys = _keyset(self.jwks)
        if self.jwks_url and (kid not in self._keys or time.monotonic() - self._fetched > JWKS_TTL_S):
            # An unknown kid may be a rotated key: refetch, but at most once a minute.
            if time.monotonic() - self._fetched > 60 or not self._keys:
                self._keys = _keyset(_fetch(self.jwks_url))
                self._fetched = time.monotonic()
        if kid not in self._keys:
            raise CdsAuthError("unknown key id for this issuer")
        return self._keys[kid]


def _keyset(jwks: dict) -> dict[str, tuple[jwt.PyJWK, dict]]:
    """Public EC and RSA keys by kid (symmetric and private keys are never loaded)."""
    keys = {}
    for k in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if isinstance(k, dict) and k.get("kid") and k.get("kty") in ("EC", "RSA") and "d" not in k:
            try:
                keys[k["kid"]] = (jwt.PyJWK(k), k)
            except jwt.PyJWKError:
                continue
    return keys


def _fetch(url: str) -> dict:
    import httpx

    try:
        response = httpx.get(url, timeout=5.0, follow_redirects=False)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as e:
        raise CdsAuthError("the issuer's JWK Set could not be fetched") from e


def load_clients(path: str | os.PathLike | None) -> dict[str, Client]:
    """The allowlist: issuer -> Client. A missing or malformed file is a startup error."""
    if not path:
        return {}
    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{iss, jwks | jwks_url}}")
    clients = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("iss") or not (e.get("jwks") or e.get("jwks_url")):
            raise ValueError(f"{path}: entry {i} needs iss and jwks or jwks_url")
        clients[e["iss"]] = Client(iss=e["iss"], jwks=e.get("jwks"), jwks_url=e.get("jwks_url"))
    return clients


class ReplayCache:
    """jti values seen, until their token expires; one SQLite file shared by all workers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = ThreadConnections(path).connection
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS jti (iss TEXT, jti TEXT, exp REAL, PRIMARY KEY (iss, jti))")
        self._purged = 0.0

    def first_use(self, iss: str, jti: str, exp: float) -> bool:
        """True the first time (iss, jti) is seen; atomic across processes."""
        db = self._db()
        now = time.time()
        if now - self._purged > 60:
            db.execute("DELETE FROM jti WHERE exp < ?", (now - LEEWAY_S,))
            self._purged = now
        try:
            db.execute("INSERT INTO jti VALUES (?, ?, ?)", (iss, jti, exp))
        except sqlite3.IntegrityError:
            return False
        return True


class CdsVerifier:
    def __init__(self, clients: dict[str, Client], replay: ReplayCache) -> None:
        self.clients = clients
        self.replay = replay

    def verify(self, authorization: str | None, audience: str) -> dict:
        """The verified claims of the bearer JWT, or CdsAuthError saying why not."""
        if not authorization or not authorization.startswith("Bearer "):
            raise CdsAuthError("a Bearer JWT is required")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise CdsAuthError("malformed JWT") from e
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise CdsAuthError(f"algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
        if header.get("typ", "JWT").upper() != "JWT":
            raise CdsAuthError("typ must be JWT")
        if not header.get("kid"):
            raise CdsAuthError("kid is required in the JWT header")
        iss = unverified.get("iss")
        client = self.clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise CdsAuthError("issuer not allowlisted")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise CdsAuthError("jku not allowlisted for this issuer")
        key, jwk = client.key(header["kid"])
        if jwk["kty"] != _KEY_TYPE[alg] or jwk.get("alg", alg) != alg or (alg == "ES384" and jwk.get("crv") != "P-384"):
            raise CdsAuthError("the key does not match the algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=client.iss,
                leeway=LEEWAY_S,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise CdsAuthError("token expired") from e
        except jwt.InvalidAudienceError as e:
            raise CdsAuthError("aud is not this service's URL") from e
        except jwt.ImmatureSignatureError as e:
            raise CdsAuthError("iat is in the future") from e
        except jwt.MissingRequiredClaimError as e:
            raise CdsAuthError(f"claim {e.claim} is required") from e
        except jwt.PyJWTError as e:
            raise CdsAuthError("invalid JWT signature or claims") from e
        if claims["exp"] - time.time() > MAX_LIFETIME_S:
            raise CdsAuthError("exp is too far in the future")
        if not self.replay.first_use(client.iss, str(claims["jti"]), float(claims["exp"])):
            raise CdsAuthError("jti already used (replay)")
        return claims
