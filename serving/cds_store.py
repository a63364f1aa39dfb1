"""The CDS routes' SQLite stores under the home folder, shared by all workers: the records behind a
card's report link, and the clinicians' feedback on cards."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from serving.sqlite_state import ThreadConnections

if TYPE_CHECKING:
    from serving.cds_hooks import FeedbackItem

REPORT_TTL_S = 3600


class RecentRecords:
    """Validated records behind a card's report link, kept for an hour (SQLite, shared by workers).

    The link carries a random id, not patient data; the report route still needs the API token.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = ThreadConnections(path).connection
        self._purged = 0.0
        self._db().execute("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, expires REAL, record TEXT)")

    def put(self, record: dict | list[dict]) -> str:
        """Keep one record, or one person's checkups oldest first (the last is the one reported)."""
        key = uuid.uuid4().hex
        now = time.time()
        db = self._db()
        if now - self._purged > 60:
            db.execute("DELETE FROM records WHERE expires < ?", (now,))
            self._purged = now
        db.execute("INSERT INTO records VALUES (?, ?, ?)", (key, now + REPORT_TTL_S, json.dumps(record, default=str)))
        return key

    def get_all(self, key: str) -> list[dict] | None:
        """The kept checkups, oldest first (a single kept record comes back as a list of one)."""
        row = (
            self._db()
            .execute("SELECT record FROM records WHERE id = ? AND expires >= ?", (key, time.time()))
            .fetchone()
        )
        if not row:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, list) else [value]

    def get(self, key: str) -> dict | None:
        """The reported (newest) record; its history is in `get_all`."""
        records = self.get_all(key)
        return records[-1] if records else None


class FeedbackLog:
    """Card outcomes (accepted / overridden and the override code), no patient data."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS feedback (card TEXT, outcome TEXT, reason TEXT, at TEXT)")

    def record(self, items: list[FeedbackItem]) -> None:
        rows = [
            (str(i.card), i.outcome, ((i.overrideReason or {}).get("reason") or {}).get("code"), i.outcomeTimestamp)
            for i in items
        ]
        with sqlite3.connect(self.path, timeout=5.0) as db:
            db.executemany("INSERT INTO feedback VALUES (?, ?, ?, ?)", rows)

    def counts(self) -> dict[str, int]:
        with sqlite3.connect(self.path) as db:
            return dict(db.execute("SELECT outcome, COUNT(*) FROM feedback GROUP BY outcome").fetchall())
