"""The audit trail: who looked at whose risk, when, through which route, with what answer.

Every call to a route that touches patient data appends one entry to the shared state: time,
client (API key name, CDS client `iss`, or "anonymous" for a refused call), route template,
pseudonymous patient keys (keyed HMAC of the person ids; features.pseudonym), status, model version
and latency. Never a patient value.

Entries are hash-chained: each entry's `hash` is an HMAC (keyed by the deployment secret) over its
fields and the previous entry's hash, so `checkup-risk audit verify` finds an entry changed,
inserted or deleted anywhere before the newest one; it prints the newest entry's number and hash
for the reviewer to note, which also exposes a later deletion of the newest entries.

The entry is written before the response is sent; when it cannot be written the call is refused
with 503 instead of being served unaudited (the response is dropped, not delayed).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from serving.refusals import unavailable
from serving.state_db import StateDB, StorageUnavailable
from serving.state_tables import audit

GENESIS = "0" * 64
# Routes that read or return patient data, by path prefix -> the route template recorded.
AUDITED = (
    ("/score", "/score"),
    ("/report", "/report"),
    ("/reports/", "/reports/{key}"),
    ("/fhir/risk-assessment", "/fhir/risk-assessment"),
    ("/cds-services/checkup-risk", "/cds-services/checkup-risk"),
)
_NOT_AUDITED = ("/cds-services/checkup-risk/feedback",)  # card outcomes only, no patient data
FIELDS = ("seq", "at", "client", "route", "patients", "status", "model_version", "latency_ms", "prev_hash", "hash")
_ATTEMPTS = 50
# The status recorded for a call that ended without a response (nginx's "client closed request").
NO_ANSWER = 499
CLIENT_CHARS = 256  # the width of audit.client
_PAGE = 5000


@dataclass(frozen=True)
class Entry:
    at: str
    client: str
    route: str
    patients: str  # pseudonymous keys, comma-separated, sorted
    status: int
    model_version: str
    latency_ms: float


def audited_route(path: str) -> str | None:
    """The route template recorded for `path`, or None when the route holds no patient data."""
    if path in _NOT_AUDITED:
        return None
    for prefix, template in AUDITED:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return template
    return None


def _digest(key: bytes, seq: int, prev_hash: str, entry: dict) -> str:
    fields = [seq, entry["at"], entry["client"], entry["route"], entry["patients"], entry["status"]]
    fields += [entry["model_version"], entry["latency_ms"], prev_hash]
    return hmac.new(key, json.dumps(fields, separators=(",", ":")).encode(), hashlib.sha256).hexdigest()


class AuditLog:
    """The chain in the shared state. `append` is safe across threads, processes and instances:
    each entry takes the next number with one INSERT against the primary key, and retries when
    another writer took it first."""

    def __init__(self, state: StateDB, key: bytes) -> None:
        self.state = state
        self.key = key
        self._lock = threading.Lock()  # writers of one process take turns; only processes race

    def append(self, entry: Entry) -> int:
        """Append `entry`; returns its number. StorageUnavailable when it cannot be written."""
        fields = {**entry.__dict__, "latency_ms": round(entry.latency_ms, 3)}
        with self._lock:
            for _ in range(_ATTEMPTS):
                with self.state.connect() as db:
                    last = db.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
                    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                    row = {**fields, "seq": seq, "prev_hash": prev, "hash": _digest(self.key, seq, prev, fields)}
                    try:
                        db.execute(audit.insert().values(**row))
                        return seq
                    except IntegrityError:
                        time.sleep(random.uniform(0, 0.002))  # another process took `seq`: read again
        raise StorageUnavailable("the audit trail is too busy to take an entry")

    def entries(self, since: dt.date | None = None) -> Iterator[dict]:
        """Entries in order (from `since`, by date), as dicts of FIELDS, read a page at a time."""
        last = 0
        while True:
            query = select(audit).where(audit.c.seq > last).order_by(audit.c.seq).limit(_PAGE)
            if since is not None:
                query = query.where(audit.c.at >= since.isoformat())
            with self.state.connect() as db:
                rows = [dict(r) for r in db.execute(query).mappings()]
            yield from rows
            if len(rows) < _PAGE:
                return
            last = rows[-1]["seq"]

    def verify(self) -> tuple[list[str], int, str]:
        """(problems, entries checked, newest hash): each problem names an entry number."""
        problems: list[str] = []
        expected_seq, prev, checked = 1, GENESIS, 0
        for row in self.entries():
            checked += 1
            seq = row["seq"]
            if seq != expected_seq:
                problems.append(
                    f"entries {expected_seq}..{seq - 1} are missing" if seq > expected_seq else f"entry {seq} repeats"
                )
            if row["prev_hash"] != prev:
                problems.append(f"entry {seq} does not follow the entry before it (an entry was removed or changed)")
            if not hmac.compare_digest(row["hash"], _digest(self.key, seq, row["prev_hash"], row)):
                problems.append(f"entry {seq} was changed after it was written")
            expected_seq, prev = seq + 1, row["hash"]
        return problems, checked, prev

    def export(self, out: IO[str], since: dt.date | None = None) -> int:
        """Write the entries (CSV with a header) to `out`; returns how many."""
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        n = 0
        for row in self.entries(since):
            writer.writerow({k: row[k] for k in FIELDS})
            n += 1
        return n


def _preflight(scope: dict) -> bool:
    """A CORS preflight: OPTIONS with Access-Control-Request-Method."""
    return scope.get("method") == "OPTIONS" and any(
        k.lower() == b"access-control-request-method" for k, _v in scope.get("headers") or []
    )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class AuditTrail:
    """Pure ASGI middleware, outermost: appends an entry for each call to an audited route before
    its response goes out, and answers 503 instead when the entry cannot be written.

    The routes say whose data a call touched (`scope["state"]["audit_persons"]`, person ids) and
    which model answered (`audit_model`); the auth middleware or the CDS route say who called
    (`audit_client`). Pseudonyms are made here, so no person id leaves this process.
    """

    def __init__(self, app: Any, open_log: Callable[[], tuple[AuditLog, Callable[[str], str]]]) -> None:
        self.app = app
        self._open_log = open_log
        self._log: tuple[AuditLog, Callable[[str], str]] | None = None

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        route = audited_route(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or _preflight(scope):
            # A CORS preflight asks whether a call may be made; it makes none, and reads no one's data.
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        started = time.perf_counter()
        state = scope.setdefault("state", {})
        refused = answered = False

        def entry(status: int) -> Entry:
            return Entry(
                at=now_iso(),
                client=str(state.get("audit_client") or "anonymous"),
                route=route,
                patients="",
                status=status,
                model_version=str(state.get("audit_model") or ""),
                latency_ms=(time.perf_counter() - started) * 1000,
            )

        async def audited_send(message: dict) -> None:
            nonlocal refused, answered
            if refused:
                return  # the original response is dropped: the 503 has been sent in its place
            if message["type"] == "http.response.start":
                answered = True
                try:
                    await run_in_threadpool(
                        self._append, entry(int(message["status"])), state.get("audit_persons") or ()
                    )
                except StorageUnavailable as e:
                    refused = True
                    await _send_503(send, scope.get("path", ""), str(e))
                    return
            await send(message)

        status = NO_ANSWER
        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            status = 500
            raise
        finally:
            if not answered:
                # The call touched patient data and ended without an answer of ours: the client
                # went away, BentoML's timeout cancelled it, or it failed. It is on the trail too.
                with anyio.CancelScope(shield=True), contextlib.suppress(StorageUnavailable):
                    await run_in_threadpool(self._append, entry(status), state.get("audit_persons") or ())

    def _append(self, entry: Entry, persons: Any) -> None:
        if self._log is None:
            self._log = self._open_log()
        log, pseudonym = self._log
        keys = ",".join(sorted({pseudonym(str(p)) for p in persons if p is not None}))
        # The client's name fits its column whatever an allowlisted issuer is called.
        log.append(Entry(**{**entry.__dict__, "client": entry.client[:CLIENT_CHARS], "patients": keys}))


async def _send_503(send: Any, path: str, message: str) -> None:
    response = unavailable(path, f"{message}: the call was not served because it could not be audited")
    await send({"type": "http.response.start", "status": 503, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
