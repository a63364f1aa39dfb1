"""The service's shared state database: SQLite under the home folder, or PostgreSQL.

Every instance and worker that points at one database acts as one service: a CDS token used on one
is a replay on another, a report link made by one opens on another, the audit trail is one chain.
`CHECKUP_RISK_DATABASE_URL` (a libpq URL: `postgresql://user@host:5432/db` or
`postgresql://user@/db?host=/socket/dir&port=5432`) selects PostgreSQL; unset, the state is the
SQLite file `state.sqlite` in the home folder. The schema is made and upgraded by the Alembic
migrations in `serving/migrations` when a process first opens the database.

A fault of the store (unreachable, read-only, full, locked too long) is `StorageUnavailable`: the
routes answer 503, readiness says not ready, and both recover when a later write succeeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url

from models.registry_names import sqlalchemy_url

# How long a call may wait for the store before it is refused: a hospital's HIS would rather get
# a quick 503 and retry than hang.
CONNECT_TIMEOUT_S = 2
LOCK_TIMEOUT_S = 2.0
# Connections per process: enough for the thread pool (40) and the CDS verifiers (8) at once.
POOL_SIZE = 8
POOL_OVERFLOW = 48
# Readiness rewrites one row at most this often per process.
HEALTH_EVERY_S = 2.0
_MIGRATIONS = Path(__file__).with_name("migrations")
# Any number, the same in every process: PostgreSQL's advisory lock serialises start-up migrations.
_MIGRATION_LOCK = 7_240_501
MIGRATION_WAIT_S = 120


# Under BentoML's logger namespace: BentoML shows INFO and WARNING lines from there only.
log = logging.getLogger("bentoml.checkup_risk.state")


class SecretMismatch(RuntimeError):
    """This process's secret is not the one the shared state was made with."""


class StorageUnavailable(RuntimeError):
    """The shared state cannot be read or written now; the request is refused with 503."""


class StateFileDamaged(StorageUnavailable):
    """The SQLite state file is not a readable SQLite database (damaged, or another file put in
    its place): no retry mends it, so the message says what the operator can do."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the state file {path} is not a readable SQLite database (damaged, or not SQLite): restore it "
            "from a backup; moving it aside starts a new, empty state, without the named API keys and the "
            "audit trail kept in it"
        )
        self.path = path


# SQLite's answers for a file that is not a database, or one whose pages are damaged.
_DAMAGED_CODES = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}


def database_url(configured: str | None, home: Path) -> str:
    """The SQLAlchemy URL of the state database: PostgreSQL through psycopg 3 when a libpq URL is
    configured, else the SQLite file in the home folder."""
    if not configured:
        return f"sqlite:///{home / 'state.sqlite'}"
    return make_url(sqlalchemy_url(configured)).render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: workers read while one writes; NORMAL sync is durable across a process crash, which is
    # the failure a service worker has. The busy timeout bounds how long a write waits for the lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_S * 1000)}")
    cursor.close()


class StateDB:
    """One engine per process; `connect()` hands out a connection whose every statement commits
    on its own (each store operation is one atomic statement), with faults as StorageUnavailable."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(
                url,
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                pool_timeout=CONNECT_TIMEOUT_S,
                connect_args={
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "options": f"-c statement_timeout={int(LOCK_TIMEOUT_S * 1000)}",
                },
            )
        self.migrated = False
        # The SQLite file existed but was empty when this process first migrated it.
        self.started_empty = False
        self._ok = True
        self._checked_at = 0.0
        self._health_lock = threading.Lock()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode. IntegrityError passes through (a store may
        expect it: a replayed token, a taken name); every other database fault becomes
        StorageUnavailable and marks the store unhealthy until a write succeeds again."""
        if not self.migrated:
            self.migrate()  # the database was down when this process started
        try:
            with self.engine.connect() as connection:
                yield connection
        except exc.IntegrityError:
            raise
        except exc.TimeoutError as e:
            # Every pooled connection is in use: busy, not broken, so readiness stays as it is.
            raise StorageUnavailable("the shared state store is busy (all connections in use)") from e
        except (exc.SQLAlchemyError, OSError) as e:
            # Readiness says so at once, and checks again on the next probe.
            self._ok, self._checked_at = False, 0.0
            if self.damaged(e):
                raise StateFileDamaged(str(self.sqlite_path)) from e
            # The driver's message names the file or server, never a request's data.
            raise StorageUnavailable(f"the shared state store is unavailable ({type(e).__name__})") from e

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of the state; None for PostgreSQL (or an in-memory SQLite)."""
        path = make_url(self.url).database if self.dialect == "sqlite" else None
        return Path(path) if path and path != ":memory:" else None

    def damaged(self, error: BaseException) -> bool:
        """Whether `error` says the SQLite file is not a database, or is damaged."""
        original = getattr(error, "orig", None)
        return (
            self.sqlite_path is not None
            and isinstance(original, sqlite3.DatabaseError)
            # The primary code: the low byte of an extended one (SQLITE_CORRUPT_INDEX, ...).
            and (getattr(original, "sqlite_errorcode", 0) or 0) & 0xFF in _DAMAGED_CODES
        )

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe when several processes start
        at once: they take turns)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        self.migrated = True  # for the connection below; reset if this fails
        try:
            self._upgrade(config)
        except StorageUnavailable:
            self.migrated = False
            raise
        except Exception as e:
            # An Alembic error: a database migrated by a newer release than this one (a rolling
            # deploy), or a broken schema. Said in words, and retried on the next use.
            self.migrated = False
            raise StorageUnavailable(
                f"the shared state's schema cannot be brought up to date ({type(e).__name__}: {e})"
            ) from e

    def _upgrade(self, config: Any) -> None:
        with self._migration_lock():
            # Before the first connection writes into it, and under the lock (so that another
            # process's new file is never taken for an emptied one): an existing file of 0 bytes
            # held a state once (a full disk, a bad copy, a mistake), and SQLite would silently
            # start a new one in it.
            path = self.sqlite_path
            if path is not None and path.is_file() and path.stat().st_size == 0:
                self.started_empty = True
            self._upgrade_locked(config)

    def _upgrade_locked(self, config: Any) -> None:
        from alembic import command

        with self.connect() as connection:
            if self.dialect == "postgresql":
                # A schema change may take longer than a request's statement limit; waiting for
                # another instance's migration is bounded instead.
                connection.execute(text("SET statement_timeout = 0"))
                connection.execute(text(f"SET lock_timeout = '{MIGRATION_WAIT_S}s'"))
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            finally:
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.dialect != "sqlite":
            yield
            return
        path = make_url(self.url).database
        lock_path = Path(f"{path}.migrate.lock") if path else None
        if lock_path is None:
            yield
            return
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def healthy(self) -> bool:
        """Whether the store takes writes now: one tiny write at most every HEALTH_EVERY_S seconds
        (readiness probes call this), the answer remembered in between, so a store that is down
        costs a probe one connection timeout every few seconds, not every time."""
        now = time.monotonic()
        if now - self._checked_at < HEALTH_EVERY_S or not self._health_lock.acquire(blocking=False):
            return self._ok
        try:
            from serving.state_tables import health

            with self.connect() as connection:
                if connection.execute(health.update().where(health.c.id == 1).values(at=time.time())).rowcount == 0:
                    with contextlib.suppress(exc.IntegrityError):
                        connection.execute(health.insert().values(id=1, at=time.time()))
            self._ok = True
        except StorageUnavailable:
            self._ok = False
        finally:
            self._checked_at = time.monotonic()
            self._health_lock.release()
        return self._ok

    def check_secret(self, secret: bytes) -> None:
        """Record the secret's fingerprint on first use; SecretMismatch when the shared state was made
        with another secret (instances sharing a database must share CHECKUP_RISK_SECRET_KEY, or
        links would not open across them and the audit chain would read as tampered)."""
        from sqlalchemy import select

        from features.pseudonym import derive
        from serving.state_tables import meta

        fingerprint = derive(secret, "fingerprint").hex()[:32]
        with self.connect() as db:
            with contextlib.suppress(exc.IntegrityError):
                db.execute(meta.insert().values(key="secret", value=fingerprint))
            kept = db.execute(select(meta.c.value).where(meta.c.key == "secret")).scalar_one()
        if kept != fingerprint:
            raise SecretMismatch(
                "the shared state was made with another secret: set CHECKUP_RISK_SECRET_KEY to the value the "
                "other instances use (a secret created under this home does not match theirs)"
            )

    def dispose(self) -> None:
        self.engine.dispose()


_OPENED: dict[str, StateDB] = {}
_OPENED_LOCK = threading.Lock()


def open_state(configured_url: str | None, home: Path, quiet: bool = False) -> StateDB:
    """This process's StateDB for the settings' database, migrated on first open. One per process
    and URL: the auth middleware and the routes share its pool. A database that is down now does
    not stop the process (a worker restarted during an outage would otherwise fail in a loop): the
    store is then migrated on its first successful use, and until then is unavailable. `quiet`:
    the caller (the command line) says faults and an emptied file itself, in its own words."""
    url = database_url(configured_url, home)
    with _OPENED_LOCK:
        state = _OPENED.get(url)
        if state is None:
            state = StateDB(url)
            try:
                state.migrate()
            except StorageUnavailable as e:
                if not quiet:
                    log.warning("shared state: %s; not ready until it answers", e)
            if state.started_empty and not quiet:
                log.warning("shared state: %s", emptied_warning(state))
            _OPENED[url] = state
        return state


def emptied_warning(state: StateDB) -> str:
    """What is said when the SQLite state file was found empty (`StateDB.started_empty`)."""
    return (
        f"the state file {state.sqlite_path} was empty (0 bytes), so a new state starts in it: the named API "
        "keys and the audit trail it held before are not in it (restore the file from a backup to keep them)"
    )
