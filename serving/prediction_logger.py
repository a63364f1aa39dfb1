"""Writing the prediction log (format: `models.prediction_log`) and counting the live signals of
/metrics, at a bounded cost per request.

`PredictionLogger.log` is all a request pays: it turns each scored checkup into one row (a tuple:
the person id goes through the keyed pseudonym at once, so no raw id is ever buffered) and appends
the rows to an in-memory buffer under a lock. A daemon thread flushes the buffer every
`flush_seconds`, or sooner when it holds `flush_rows` rows: it counts the rows into the Prometheus
series (`serving.http_metrics.prediction_instruments`) at once, and writes them to the store,
Parquet files by UTC day or the PostgreSQL table, every `write_seconds` (or once `flush_rows` wait),
so that a busy worker writes a file a minute, not one every two seconds (86,000 a day for two).
Shutdown writes what waits. A store that fails never fails a request: the rows stay for the
next flush, at most `max_rows` of them (the oldest are dropped past that), each dropped row is
counted in `checkup_risk_prediction_log_dropped_rows_total`, and one line (the fault's type, never
its text: a database error quotes the rows) says so once per outage.

Which rows: `/score` and batch scoring log every checkup they answer for. The report, CDS and FHIR
read a person's history but answer for the newest checkup only: that one is logged, the earlier
ones were its history (`history_checkups` says how many).

Retention: days older than `retention_days` are deleted by the flush thread, at most once a day per
process (Parquet: `purge_parquet`; PostgreSQL: DELETE by `log_date`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from sqlalchemy import select

from features.pseudonym import derive, load_secret, pseudonym
from features.schema import OUTCOMES
from models.prediction_log import COLUMNS_OUT, INPUTS, PROBABILITIES, SOURCES, purge_parquet, write_parquet
from serving.http_metrics import CATEGORIES, NOT_APPLICABLE, prediction_instruments
from serving.settings import DEFAULT_PREDICTION_RETENTION_DAYS, Settings

if TYPE_CHECKING:
    from serving.scoring import Scorer
    from serving.state_db import StateDB

# Under BentoML's logger namespace: BentoML shows WARNING lines from there only.
log = logging.getLogger("bentoml.checkup_risk.prediction_log")

FLUSH_SECONDS = 2.0
WRITE_SECONDS = 60.0
FLUSH_ROWS = 5_000
# Rows held while the store is down, per process: about 15 MB; past that the oldest are dropped.
MAX_ROWS = 50_000
PURGE_EVERY_S = 24 * 3600
DROP_WARNING_EVERY_S = 60.0
# Routes that read a person's earlier checkups as history and answer for the newest one.
NEWEST_ONLY = frozenset({"report", "cds", "fhir"})
# A row in the buffer: COLUMNS_OUT, then each outcome's category (for /metrics, not written).
CATEGORY_COLUMNS = tuple(f"{o}_category" for o in OUTCOMES)
BUFFER_COLUMNS = (*COLUMNS_OUT, *CATEGORY_COLUMNS)
_CATEGORY_SET = frozenset(CATEGORIES)


class Store(Protocol):
    """Where the rows go: Parquet files or the PostgreSQL table."""

    kind: str

    def write(self, frame: pd.DataFrame) -> None: ...

    def purge(self, keep_days: int) -> int: ...


class ParquetStore:
    """The Parquet log under `directory` (`models.prediction_log.write_parquet`)."""

    kind = "parquet"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def write(self, frame: pd.DataFrame) -> None:
        write_parquet(self.directory, frame)

    def purge(self, keep_days: int) -> int:
        return purge_parquet(self.directory, keep_days)


PURGE_BATCH = 5000


class PostgresStore:
    """The table `prediction_log` in the shared state (created by its migrations)."""

    kind = "postgresql"

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def write(self, frame: pd.DataFrame) -> None:
        from models.prediction_log import TABLE, as_rows

        rows = as_rows(frame)
        # One connection, SQLAlchemy's multi-row INSERTs (insertmanyvalues): a few statements per flush.
        with self.state.connect() as connection:
            connection.execute(TABLE.insert(), rows)

    def purge(self, keep_days: int) -> int:
        from models.prediction_log import TABLE

        cutoff = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=keep_days)
        # In batches, each well inside the statement time limit: one DELETE of a year's rows would
        # time out every day and retention (a privacy promise) would never happen.
        oldest = select(TABLE.c.id).where(TABLE.c.log_date < cutoff).limit(PURGE_BATCH)
        removed = 0
        while True:
            with self.state.connect() as connection:
                done = int(connection.execute(TABLE.delete().where(TABLE.c.id.in_(oldest))).rowcount or 0)
            removed += done
            if done < PURGE_BATCH:
                return removed


def _probability(risk: dict | None) -> float:
    p = None if risk is None else risk.get("probability")
    return float("nan") if p is None else float(p)


def _category(risk: dict | None) -> str | None:
    if risk is None:
        return None  # the model has no such outcome: nothing to count
    c = risk.get("category")
    return c if c in _CATEGORY_SET else NOT_APPLICABLE


class PredictionLogger:
    """The buffer, its flush thread and the store of one process (a service worker or a command).

    `store` None: nothing is written (CHECKUP_RISK_PREDICTION_LOG=off), the /metrics series are still
    counted. `background` False (batch scoring, tests): no thread; `log_frame` flushes when
    `flush_rows` are buffered and the caller flushes at the end (`close`)."""

    def __init__(
        self,
        store: Store | None,
        key: bytes,
        *,
        retention_days: int = DEFAULT_PREDICTION_RETENTION_DAYS,
        flush_seconds: float = FLUSH_SECONDS,
        write_seconds: float = WRITE_SECONDS,
        flush_rows: int = FLUSH_ROWS,
        max_rows: int = MAX_ROWS,
        metrics: bool = True,
        background: bool = True,
    ) -> None:
        self.store = store
        self.key = key
        self.retention_days = int(retention_days)
        self.flush_seconds = float(flush_seconds)
        self.write_seconds = float(write_seconds)
        self._written_at = time.monotonic()
        self.flush_rows = int(flush_rows)
        self.max_rows = int(max_rows)
        self.metrics = metrics
        self.dropped = 0
        self.written = 0
        self._rows: list[tuple] = []
        self._frames: list[pd.DataFrame] = []  # batch scoring's chunks, already in the log's columns
        self._unwritten: list[pd.DataFrame] = []  # counted, not yet stored (not due, or the store failed)
        self._lock = threading.Lock()  # the buffer: held for an append or a swap, never for I/O
        self._flush_lock = threading.Lock()  # one flush at a time (thread, shutdown, tests)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._purged_at: float | None = None
        self._warned_at: float | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()
            # Rows still buffered when the worker exits are written: a clean shutdown loses none.
            atexit.register(self.close)

    # -- what a request pays -----------------------------------------------------------------

    def log(self, records: Sequence[dict], results: Sequence[dict], model_version: str, source: str) -> None:
        """Buffer one row per scored record (`results` as `Scorer.score_records` gives them).
        Never raises: a row that cannot be built is counted as dropped."""
        try:
            now = dt.datetime.now(dt.UTC)
            rows = []
            for record, result in zip(records, results, strict=True):
                risks = result.get("risks") or {}
                rows.append(
                    (
                        now,
                        pseudonym(self.key, record["person_id"]),
                        record.get("exam_date"),
                        model_version,
                        source,
                        result.get("history_checkups"),
                        *[record.get(c) for c in INPUTS],
                        *[_probability(risks.get(o)) for o in OUTCOMES],
                        *[_category(risks.get(o)) for o in OUTCOMES],
                    )
                )
        except Exception as e:  # a malformed result must never fail the request it came from
            self._drop(len(records), f"a row could not be built ({type(e).__name__})")
            return
        self._append(rows)

    def observe(self, scorer: Scorer, source: str) -> Scorer:
        """`scorer`, its `score_records` calls logged under `source` (one of `SOURCES`)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")

        def observer(records: list[dict], results: list[dict], version: str) -> None:
            if source in NEWEST_ONLY and len(records) > 1:
                newest = _newest(records)
                records, results = [records[newest]], [results[newest]]
            self.log(records, results, version, source)

        return scorer.observed(observer)

    def _append(self, rows: list[tuple]) -> None:
        with self._lock:
            # Full only when the flush thread cannot keep up or has stopped: the newest rows go.
            kept = rows[: max(self.max_rows - len(self._rows), 0)]
            self._rows.extend(kept)
            buffered = len(self._rows)
        if len(kept) < len(rows):
            self._drop(len(rows) - len(kept), "the buffer is full")
        if buffered >= self.flush_rows:
            self._wake.set()

    # -- batch scoring ---------------------------------------------------------------------------

    def log_frame(self, frame: pd.DataFrame) -> None:
        """Buffer rows already in the log's columns (`batch_rows`); without a flush thread, flush
        once `flush_rows` are buffered, so a large file never sits in memory."""
        with self._lock:
            self._frames.append(frame)
            buffered = sum(len(f) for f in self._frames)
        if self._thread is None and buffered >= self.flush_rows:
            self.flush()
        elif buffered >= self.flush_rows:
            self._wake.set()

    # -- the flush ---------------------------------------------------------------------------------

    def flush(self, force: bool = True) -> int:
        """Count the buffered rows into /metrics and write them with any waiting: always when `force`,
        else once `write_seconds` have passed since the last write or `flush_rows` wait. Returns the
        rows written. Never raises."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                frames, self._frames = self._frames, []
            try:
                if rows:
                    frames.insert(0, pd.DataFrame.from_records(rows, columns=list(BUFFER_COLUMNS)))
                if self.metrics:
                    for frame in frames:
                        _count(frame)
            except Exception as e:
                self._drop(sum(len(f) for f in frames), f"rows could not be counted ({type(e).__name__})")
                return 0
            if self.store is None:
                return 0
            pending = self._unwritten + [f.reindex(columns=list(COLUMNS_OUT)) for f in frames if len(f)]
            self._unwritten = []
            waiting = sum(len(f) for f in pending)
            due = force or time.monotonic() - self._written_at >= self.write_seconds or waiting >= self.flush_rows
            if not due:
                self._unwritten = pending
                return 0
            self._written_at = time.monotonic()
            written = self._write(pending)
            self._purge()
            return written

    def _write(self, pending: list[pd.DataFrame]) -> int:
        if not pending or self.store is None:
            return 0
        frame = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
        try:
            self.store.write(frame)
        except Exception as e:
            keep = frame.iloc[-self.max_rows :] if len(frame) > self.max_rows else frame
            if len(keep) < len(frame):
                self._count_dropped(len(frame) - len(keep))
            self._unwritten = [keep]
            if not self._failing:
                # The fault's type only: a database error's text quotes the rows it could not insert.
                log.warning(
                    "prediction log: writing to the %s store failed (%s); %d rows kept for the next try",
                    self.store.kind,
                    type(e).__name__,
                    len(keep),
                )
                self._failing = True
            return 0
        if self._failing:
            log.warning("prediction log: the %s store takes writes again", self.store.kind)
            self._failing = False
        self.written += len(frame)
        return len(frame)

    def _purge(self) -> None:
        now = time.monotonic()
        if self.store is None or (self._purged_at is not None and now - self._purged_at < PURGE_EVERY_S):
            return
        self._purged_at = now
        try:
            self.store.purge(self.retention_days)
        except Exception as e:
            log.warning("prediction log: deleting days past retention failed (%s)", type(e).__name__)

    def _drop(self, n: int, why: str) -> None:
        self._count_dropped(n)
        # At most one line a minute: a full buffer would otherwise say so on every request.
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= DROP_WARNING_EVERY_S:
            self._warned_at = now
            log.warning("prediction log: %d rows dropped: %s (%d in all)", n, why, self.dropped)

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        if self.metrics and n:
            try:
                prediction_instruments()[3].inc(n)
            except Exception:  # metrics must not turn a lost row into a failed request
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush(force=self._stop.is_set())
            except Exception as e:  # flush never raises; this keeps the thread alive if it ever did
                log.warning("prediction log: flush failed (%s)", type(e).__name__)

    def close(self) -> None:
        """Stop the flush thread and write what is buffered (worker shutdown, end of a command)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()
        if self._unwritten:
            # The store is down at shutdown: nothing will try again, so the rows are lost. Say so.
            lost = sum(len(f) for f in self._unwritten)
            self._unwritten = []
            self._count_dropped(lost)
            log.warning(
                "prediction log: %d rows lost at shutdown: the %s store took no writes",
                lost,
                self.store.kind if self.store else "",
            )


def _newest(records: list[dict]) -> int:
    """The record a report, CDS or FHIR call answers for: the last in the scorer's history order."""
    from serving.scoring import person_order

    return int(person_order([r["person_id"] for r in records], [r["exam_date"] for r in records])[-1])


def _count(frame: pd.DataFrame) -> None:
    """Add a flush's rows to the /metrics series: one increment per label set, not per row."""
    if not len(frame):
        return
    predictions, values, missing, _ = prediction_instruments()
    n = len(frame)
    absent = frame[list(INPUTS)].isna().sum()
    for field in INPUTS:
        values.labels(field=field).inc(n)
        if absent[field]:
            missing.labels(field=field).inc(int(absent[field]))
    for outcome, column in zip(OUTCOMES, CATEGORY_COLUMNS, strict=True):
        if column not in frame:
            continue
        for category, count in Counter(frame[column].dropna()).items():
            predictions.labels(outcome=outcome, category=category).inc(count)


def batch_rows(
    records: pd.DataFrame,
    output: pd.DataFrame,
    model_version: str,
    history: np.ndarray,
    key: bytes,
    source: str = "batch",
) -> pd.DataFrame:
    """Batch scoring's rows for the log: `records` (the validated chunk), `output` (its scores,
    `<outcome>_risk`, same index), `history` (earlier checkups per record)."""
    out = pd.DataFrame(index=records.index)
    out["logged_at"] = dt.datetime.now(dt.UTC)
    out["person_key"] = [pseudonym(key, p) for p in records["person_id"].astype(str)]
    out["exam_date"] = records["exam_date"]
    out["model_version"] = str(model_version)
    out["source"] = source
    out["history_checkups"] = history
    for c in INPUTS:
        out[c] = records[c] if c in records else None
    categories = {}
    for o, column, category in zip(OUTCOMES, PROBABILITIES, CATEGORY_COLUMNS, strict=True):
        risk = output.get(f"{o}_risk")
        out[column] = np.nan if risk is None else pd.to_numeric(risk, errors="coerce").to_numpy()
        if risk is not None:
            from models.outcomes import OUTCOME_SPECS

            probs = out[column].to_numpy()
            categories[category] = [NOT_APPLICABLE if np.isnan(p) else OUTCOME_SPECS[o].category(p) for p in probs]
    for category, values in categories.items():
        out[category] = values
    return out.reset_index(drop=True)


class BatchLog:
    """`serving.batch.score_file`'s `on_scored`: each scored chunk's rows, with each record's count of
    earlier checkups of its person in the file so far (the file is read in date order per person)."""

    def __init__(self, logger: PredictionLogger, model_version: str) -> None:
        self.logger = logger
        self.model_version = model_version
        self.seen: Counter[str] = Counter()

    def __call__(self, records: pd.DataFrame, output: pd.DataFrame) -> None:
        if not len(records):
            return
        try:
            ids = records["person_id"].astype(str)
            day = pd.to_datetime(records["exam_date"], errors="coerce")
            order = np.lexsort((day.to_numpy(dtype="datetime64[ns]"), ids.to_numpy(dtype=str)))
            ranked = ids.iloc[order]
            within = ranked.groupby(ranked, sort=False).cumcount().to_numpy()
            history = np.empty(len(records), dtype=np.int64)
            history[order] = within + np.array([self.seen[p] for p in ranked], dtype=np.int64)
            self.seen.update(ids.tolist())
            frame = batch_rows(records, output, self.model_version, history, self.logger.key)
        except Exception as e:
            self.logger._drop(len(records), f"rows could not be built ({type(e).__name__})")
            return
        self.logger.log_frame(frame)


def open_prediction_log(
    settings: Settings, state: StateDB | None = None, *, background: bool = True, metrics: bool = True
) -> PredictionLogger:
    """The prediction log of `settings`: the PostgreSQL table when the shared state is PostgreSQL
    (`state`, or one opened here), else Parquet under `settings.prediction_log_path`; no store when
    CHECKUP_RISK_PREDICTION_LOG is off. The person key is the audit trail's pseudonym."""
    key = derive(load_secret(settings.home, settings.secret_key), "pseudonym")
    store: Store | None = None
    if settings.prediction_log:
        if settings.database_url:
            if state is None:
                from serving.state_db import open_state

                state = open_state(settings.database_url, settings.home)
            store = PostgresStore(state)
        else:
            store = ParquetStore(settings.prediction_log_path)
    return PredictionLogger(
        store, key, retention_days=settings.prediction_retention_days, background=background, metrics=metrics
    )
