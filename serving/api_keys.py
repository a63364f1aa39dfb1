"""Named API clients: one key per calling system, with the routes it may use (its scopes).

`checkup-risk keys create NAME --scopes score,report,fhir` prints the key once; the shared state
keeps only its SHA-256 (a key is 32 random bytes, so a plain hash cannot be reversed by guessing).
A revoked key is refused by every worker from the next call on, without a restart: each call with a
named key reads its row (one indexed lookup, about a tenth of a millisecond on SQLite).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from serving.state_db import StateDB
from serving.state_tables import api_keys

# What each scope opens. `admin` is the model reload; the bootstrap token (CHECKUP_RISK_API_TOKEN)
# has every scope. GET /model describes the service and any key may read it.
SCOPES = ("score", "report", "fhir", "admin")
DEFAULT_SCOPES = ("score", "report", "fhir")
PREFIX = "ckr_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeysError(ValueError):
    """A keys command that cannot be done (bad name, unknown scope, name taken or unknown)."""


@dataclass(frozen=True)
class Client:
    """Who is calling: the key's name (or "bootstrap" for the configured token) and its scopes."""

    name: str
    scopes: frozenset[str]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_SCOPES
    scopes = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise KeysError(f"unknown scope {', '.join(unknown) or '(none)'}: choose from {', '.join(SCOPES)}")
    return scopes


class ApiKeys:
    """The named keys in the shared state."""

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def create(self, name: str, scopes: tuple[str, ...]) -> str:
        """A new key for `name` (returned once, never stored)."""
        if not _NAME.fullmatch(name):
            raise KeysError("a key name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        key = PREFIX + secrets.token_urlsafe(32)
        from sqlalchemy.exc import IntegrityError

        try:
            with self.state.connect() as db:
                db.execute(
                    api_keys.insert().values(
                        name=name, key_hash=key_hash(key), scopes=",".join(scopes), created=time.time()
                    )
                )
        except IntegrityError:
            raise KeysError(
                f"a key named {name!r} exists already (a revoked key keeps its name, so the audit trail "
                "names one client): choose another name, such as one with a date"
            ) from None
        return key

    def revoke(self, name: str) -> None:
        with self.state.connect() as db:
            done = db.execute(
                api_keys.update()
                .where(api_keys.c.name == name, api_keys.c.revoked.is_(None))
                .values(revoked=time.time())
            )
        if done.rowcount == 0:
            raise KeysError(f"no active key named {name!r}")

    def list(self) -> list[dict]:
        """Every key's name, scopes, creation and revocation times (never the key)."""
        with self.state.connect() as db:
            rows = db.execute(select(api_keys).order_by(api_keys.c.created)).mappings().all()
        return [
            {"name": r["name"], "scopes": r["scopes"].split(","), "created": r["created"], "revoked": r["revoked"]}
            for r in rows
        ]

    def lookup(self, key: str) -> Client | None:
        """The active client holding `key`, or None. StorageUnavailable when the store cannot say."""
        if not key.startswith(PREFIX):
            return None
        with self.state.connect() as db:
            row = db.execute(
                select(api_keys.c.name, api_keys.c.scopes).where(
                    api_keys.c.key_hash == key_hash(key), api_keys.c.revoked.is_(None)
                )
            ).first()
        return Client(row[0], frozenset(row[1].split(","))) if row else None
