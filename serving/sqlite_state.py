"""One SQLite connection per thread to a state file under the home folder, shared by workers.

WAL lets the workers' processes read while one writes; autocommit (isolation_level=None) keeps each
statement its own transaction, so a replay check or a link write is atomic on its own.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """`connection()` gives this thread's connection to `path`, opened on first use."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db
