"""The CDS routes' stores in the shared state (serving.state_db): the checkups behind a card's
report link, and the clinicians' feedback on cards."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from serving.cds_cards import OVERRIDE_CODES
from serving.state_db import StateDB, StorageUnavailable
from serving.state_tables import feedback, report_links

if TYPE_CHECKING:
    from serving.cds_hooks import FeedbackItem


# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


class LinkRefused(Exception):
    """A report link that does not open: 403 when it was not made by this service (or was altered),
    410 when it has expired. The message says which, and nothing about the report."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# Under BentoML's logger namespace: BentoML shows WARNING lines from there only.
log = logging.getLogger("bentoml.checkup_risk.report_links")

# How often expired report links are looked for (a delete over an index of expiry times).
PURGE_EVERY_S = 30.0


class ReportLinks:
    """The checkups behind a card's report link, kept until the link expires.

    A link is `/reports/<id>?exp=<unix time>&sig=<HMAC of id and exp>`: the id is random (it says
    nothing about the person), and the signature lets the link open without a bearer token, on any
    instance that shares the secret and the database, until `exp`.
    """

    def __init__(self, state: StateDB, signing_key: bytes, lifetime_s: int) -> None:
        self.state = state
        self.key = signing_key
        self.lifetime_s = lifetime_s
        self._purged = 0.0
        self._purging = threading.Lock()

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self.key, f"{key}.{expires}".encode(), hashlib.sha256).hexdigest()

    def put(self, records: list[dict]) -> str:
        """Keep one person's checkups, oldest first (the last is the one reported); returns the
        link's path and query."""
        key = secrets.token_urlsafe(16)
        expires = int(time.time()) + self.lifetime_s
        self.purge_later()
        with self.state.connect() as db:
            db.execute(report_links.insert().values(id=key, expires=expires, records=json.dumps(records, default=str)))
        return f"/reports/{key}?exp={expires}&sig={self._signature(key, expires)}"

    def purge(self, every_s: float = PURGE_EVERY_S) -> None:
        """Delete the checkups of expired links, at most once every `every_s` seconds. Called when the
        worker starts, and through `purge_later` when a link is made and by readiness probes, so
        expired checkups do not wait for the next card (they stayed 13 minutes past expiry, and
        across a restart)."""
        now = time.time()
        if now - self._purged < every_s:
            return
        self._purged = now
        with self.state.connect() as db:
            db.execute(report_links.delete().where(report_links.c.expires < now))

    def purge_later(self) -> None:
        """`purge` on a thread of its own when one is due, never waiting: a probe must answer at once
        even when the database is slow to take the delete."""
        if time.time() - self._purged < PURGE_EVERY_S or not self._purging.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self.purge()
            except StorageUnavailable:
                pass  # readiness says so on its own check; the next probe tries again
            except Exception as e:  # the type only: a database error's text can quote rows
                log.warning("report links: deleting expired links failed (%s)", type(e).__name__)
            finally:
                self._purging.release()

        try:
            threading.Thread(target=run, name="report-link-purge", daemon=True).start()
        except RuntimeError:  # no thread to be had (shutdown, exhaustion): the next call tries again
            self._purging.release()

    def open(self, key: str, expires: str | None, signature: str | None) -> list[dict]:
        """The checkups behind a signed link, or LinkRefused."""
        if not expires or not signature or not _UNIX_TIME.fullmatch(expires):
            raise LinkRefused(403, "this report link is not valid")
        if not hmac.compare_digest(signature.encode(), self._signature(key, int(expires)).encode()):
            raise LinkRefused(403, "this report link is not valid")
        if int(expires) < time.time():
            raise LinkRefused(410, "this report link has expired: open the card again for a new one")
        with self.state.connect() as db:
            row = db.execute(select(report_links.c.records).where(report_links.c.id == key)).first()
        if row is None:
            raise LinkRefused(410, "this report link has expired: open the card again for a new one")
        value = json.loads(row[0])
        return value if isinstance(value, list) else [value]


def override_code(reason: Mapping[str, Any] | None) -> str | None:
    """The override code as kept: one the cards offer (`OVERRIDE_REASONS`), "other" for any other
    code, None when no reason was given."""
    coding = (reason or {}).get("reason")
    code = coding.get("code") if isinstance(coding, Mapping) else None
    if code is None:
        return None
    return code if isinstance(code, str) and code in OVERRIDE_CODES else "other"


class FeedbackLog:
    """Card outcomes (accepted / overridden and the override code), no patient data."""

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def record(self, items: list[FeedbackItem]) -> None:
        rows = [
            {
                "card": str(i.card),
                "outcome": i.outcome,
                "reason": override_code(i.overrideReason),
                "at": i.outcomeTimestamp.astimezone(dt.UTC).isoformat(),
            }
            for i in items
        ]
        if rows:
            with self.state.connect() as db:
                db.execute(feedback.insert(), rows)

    def counts(self) -> dict[str, int]:
        with self.state.connect() as db:
            rows = db.execute(select(feedback.c.outcome, func.count()).group_by(feedback.c.outcome)).all()
        return {outcome: n for outcome, n in rows}
