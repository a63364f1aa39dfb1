"""Trusting CDS clients (CDS Hooks 2.0): every call carries a JWT signed by the client.

Allowlisted issuers come from the JSON file named by CHECKUP_RISK_CDS_CLIENTS (`Settings.cds_clients`):
a list of `{"iss": ..., "jwks": {JWK Set}}` or `{"iss": ..., "jwks_url": ...}`. With no file configured, no
client is trusted and every CDS call is refused. Only ES384 and RS384 are accepted (never `none` or
HMAC); `aud` must be the URL that was called; `exp` and `iat` are required; a `jti` is kept until
its token expires, in SQLite shared by all workers, so a replay is refused whichever worker gets it.

Before any key is looked up (and so before any JWK Set is fetched) the unverified header and claims
must have the right shape (`_check_shape`): a token of the wrong types is refused like any bad token,
never with an exception. A JWK Set named by `jwks_url` is fetched in a thread with a hard deadline
(`JWKS_TIMEOUT_S`), cached, and after a failed fetch not tried again for a backoff period (30 s,
doubling to 5 min), so tokens for an issuer whose key server is down cannot stall every call.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from sqlalchemy.exc import IntegrityError

from serving.state_db import StateDB
from serving.state_tables import replay

ALGORITHMS = ("ES384", "RS384")
MAX_JTI = 255
# A token living longer than this is refused: it bounds how long a jti must be remembered.
MAX_LIFETIME_S = 3600
LEEWAY_S = 30
_KEY_TYPE = {"ES384": "EC", "RS384": "RSA"}
JWKS_TTL_S = 600
# A JWK Set fetch, from connecting to the last byte, takes at most this long; a bigger body is refused.
JWKS_TIMEOUT_S = 2.0
JWKS_MAX_BYTES = 1 << 20
# After a failed fetch, no new one for this long: doubling from the first to the second.
JWKS_BACKOFF_S = (30.0, 300.0)
# exp, iat and nbf must be numbers smaller than this (seconds since 1970; year 33658).
_MAX_TIME = 1e12


class CdsAuthError(Exception):
    """A refused call; the message says why and is safe to return (it carries no token content)."""


@dataclass
class Client:
    iss: str
    jwks: dict | None = None
    jwks_url: str | None = None
    _keys: dict[str, tuple[jwt.PyJWK, dict]] = field(default_factory=dict)
    _fetched: float = 0.0
    # After a failed fetch: no other until _retry_at; _backoff doubles on each failure in a row.
    _retry_at: float = 0.0
    _backoff: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def key(self, kid: str) -> tuple[jwt.PyJWK, dict]:
        if self.jwks is not None and not self._keys:
            self._keys = _keyset(self.jwks)
        if self.jwks_url:
            with self._lock:
                if self._should_fetch(kid, time.monotonic()):
                    self._refresh(self.jwks_url)
            if not self._keys:
                raise CdsAuthError("the issuer's JWK Set could not be fetched")
        if kid not in self._keys:
            raise CdsAuthError("unknown key id for this issuer")
        return self._keys[kid]

    def _should_fetch(self, kid: str, now: float) -> bool:
        if now < self._retry_at:
            return False  # backing off after a failure: the cached keys (if any) or a refusal
        if not self._keys or now - self._fetched > JWKS_TTL_S:
            return True
        # An unknown kid may be a rotated key: refetch, but at most once a minute.
        return kid not in self._keys and now - self._fetched > 60

    def _refresh(self, url: str) -> None:
        try:
            keys = _keyset(_fetch(url))
            if not keys:
                raise CdsAuthError("the issuer's JWK Set holds no usable key")
        except CdsAuthError:
            # Keep the keys we had (if any): a key server's outage does not lock out its issuer.
            low, high = JWKS_BACKOFF_S
            self._backoff = min(max(2 * self._backoff, low), high)
            self._retry_at = time.monotonic() + self._backoff
            return
        self._keys, self._fetched, self._backoff, self._retry_at = keys, time.monotonic(), 0.0, 0.0


def _keyset(jwks: dict) -> dict[str, tuple[jwt.PyJWK, dict]]:
    """Public EC and RSA keys by kid (symmetric and private keys are never loaded). A key that
    cannot be read (an EC key without `y`, an RSA key given only as `x5c`) is skipped: one bad key in
    a client's set must not refuse, or fail, the calls its good keys sign."""
    keys = {}
    for k in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if isinstance(k, dict) and k.get("kid") and k.get("kty") in ("EC", "RSA") and "d" not in k:
            try:
                keys[k["kid"]] = (jwt.PyJWK(k), k)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                continue
    return keys


def _fetch(url: str, timeout: float = JWKS_TIMEOUT_S) -> dict:
    """The JWK Set at `url`, or CdsAuthError; never waits longer than `timeout` in all (httpx's own
    timeouts are per read, so a server sending a byte a second could hold it for much longer: the
    request runs in a daemon thread, abandoned at the deadline)."""
    result: dict = {}

    def get() -> None:
        try:
            result["doc"] = _get(url, timeout)
        except Exception as e:  # noqa: BLE001 (any failure is the same refusal, raised below)
            result["error"] = e

    thread = threading.Thread(target=get, name="jwks-fetch", daemon=True)
    thread.start()
    thread.join(timeout)
    doc = result.get("doc")
    if not isinstance(doc, dict):
        raise CdsAuthError("the issuer's JWK Set could not be fetched") from result.get("error")
    return doc


def _get(url: str, timeout: float) -> dict:
    import httpx

    with httpx.stream("GET", url, timeout=timeout, follow_redirects=False) as response:
        response.raise_for_status()
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > JWKS_MAX_BYTES:
                raise ValueError("JWK Set too large")
    return json.loads(body)


def _is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < _MAX_TIME


def _check_shape(header: object, claims: object) -> None:
    """Refuse a token whose unverified header or claims have the wrong types, before any key lookup;
    the messages never echo token content."""
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise CdsAuthError("malformed JWT")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = repr(alg[:20]) if isinstance(alg, str) else "of this type"
        raise CdsAuthError(f"algorithm {shown} is not accepted (only {', '.join(ALGORITHMS)})")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise CdsAuthError("typ JWT is required in the JWT header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise CdsAuthError("kid is required in the JWT header")
    jku = header.get("jku")
    if jku is not None and not isinstance(jku, str):
        raise CdsAuthError("jku not allowlisted for this issuer")
    for name in ("iss", "aud", "exp", "iat", "jti"):
        if name not in claims:
            raise CdsAuthError(f"claim {name} is required")
    if not isinstance(claims["iss"], str):
        raise CdsAuthError("issuer not allowlisted")
    aud = claims["aud"]
    if not (isinstance(aud, str) or (isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud))):
        raise CdsAuthError("aud is not this service's URL")
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_time(claims[name]):
            raise CdsAuthError(f"claim {name} must be a number of seconds")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI or not jti.isprintable():
        # Bounded and printable: it is kept in the shared state until the token expires.
        raise CdsAuthError(f"claim jti must be a printable string of 1 to {MAX_JTI} characters")


def load_clients(path: str | os.PathLike | None) -> dict[str, Client]:
    """The allowlist: issuer -> Client. A file that is missing, unreadable, not JSON, or has an entry
    without an issuer and a usable key source is a ValueError naming the file (and the entry): a
    startup error, which `serve` checks before it starts any worker."""
    if not path:
        return {}
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error.strerror or type(error).__name__})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        where = f"at line {error.lineno}, column {error.colno}"
        raise ValueError(f"{path} is not valid JSON ({error.msg} {where})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{iss, jwks | jwks_url}}")
    clients = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("iss") or not (e.get("jwks") or e.get("jwks_url")):
            raise ValueError(f"{path}: entry {i} needs iss and jwks or jwks_url")
        if (
            not isinstance(e["iss"], str)
            or not isinstance(e.get("jwks") or {}, dict)
            or not isinstance(e.get("jwks_url") or "", str)
        ):
            raise ValueError(f"{path}: entry {i}: iss and jwks_url must be strings, jwks an object")
        url = e.get("jwks_url")
        if url and not url.startswith(("https://", "http://")):
            raise ValueError(f"{path}: entry {i} ({e['iss']}): jwks_url must be an http(s) URL")
        # An inline set with no key that can be read would refuse every call of its issuer, silently.
        if e.get("jwks") and not url and not _keyset(e["jwks"]):
            raise ValueError(
                f"{path}: entry {i} ({e['iss']}): jwks holds no public EC or RSA key with a kid that can be read"
            )
        if e["iss"] in clients:
            raise ValueError(f"{path}: entry {i}: issuer {e['iss']} is listed twice")
        clients[e["iss"]] = Client(iss=e["iss"], jwks=e.get("jwks"), jwks_url=url)
    return clients


class ReplayCache:
    """jti values seen, until their token expires, in the shared state: every worker and instance
    on one database refuses a token another has accepted."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._purged = 0.0

    def first_use(self, iss: str, jti: str, exp: float) -> bool:
        """True the first time (iss, jti) is seen; atomic across processes and instances (one
        INSERT against the primary key). StorageUnavailable when the store cannot say."""
        now = time.time()
        with self.state.connect() as db:
            if now - self._purged > 60:
                db.execute(replay.delete().where(replay.c.exp < now - LEEWAY_S))
                self._purged = now
            try:
                db.execute(replay.insert().values(iss=iss, jti=jti, exp=exp))
            except IntegrityError:
                return False
        return True


class CdsVerifier:
    def __init__(self, clients: dict[str, Client], replay: ReplayCache) -> None:
        self.clients = clients
        self.replay = replay

    def verify(self, authorization: str | None, audience: str) -> dict:
        """The verified claims of the bearer JWT, or CdsAuthError saying why not."""
        # The scheme is case-insensitive and 1*SP separates it from the token (RFC 9110 11.1, 11.4).
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CdsAuthError("a Bearer JWT is required")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as e:
            raise CdsAuthError("malformed JWT") from e
        _check_shape(header, unverified)
        alg = header["alg"]
        client = self.clients.get(unverified["iss"])
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
            raise CdsAuthError("iat or nbf is in the future") from e
        except jwt.MissingRequiredClaimError as e:
            raise CdsAuthError(f"claim {e.claim} is required") from e
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            raise CdsAuthError("invalid JWT signature or claims") from e
        if claims["exp"] - time.time() > MAX_LIFETIME_S or claims["exp"] - claims["iat"] > MAX_LIFETIME_S + LEEWAY_S:
            raise CdsAuthError("the token's lifetime is over an hour")
        if not self.replay.first_use(client.iss, claims["jti"], float(claims["exp"])):
            raise CdsAuthError("jti already used (replay)")
        return claims
