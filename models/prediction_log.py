"""The prediction log's format: one row per scored checkup, written by the service and batch scoring
(serving.prediction_logger), read by `checkup-risk monitor` (training.monitor).

A row holds when it was logged, a pseudonymous person key (a keyed HMAC of the person id, never the
id), the exam date, the model version, where the call came from, how many earlier checkups were its
history, the model's inputs (the canonical record's fields) and the probability of each outcome
(NaN where the outcome does not apply). No name, no raw id.

Two stores, one format:
- Parquet (default): `DIR/date=YYYY-MM-DD/part-<unique>.parquet`, partitioned by the UTC day the
  rows were logged, so a period is read without opening the other days and a retention limit is a
  folder deletion.
- PostgreSQL (when the shared state is there): the table `prediction_log` (`TABLE` below), created
  by the service's migrations.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import BigInteger, Column, Date, DateTime, Float, Integer, MetaData, String, Table

from features.schema import BY_NAME, COLUMNS, OUTCOMES

# The model's inputs as logged: every canonical field but the person id (pseudonymised apart) and
# the exam date (a column of its own).
INPUTS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in ("person_id", "exam_date"))
TEXT_INPUTS: tuple[str, ...] = tuple(c for c in INPUTS if not BY_NAME[c].numeric)
META: tuple[str, ...] = ("logged_at", "person_key", "exam_date", "model_version", "source", "history_checkups")
SOURCES = ("score", "report", "cds", "fhir", "batch")
PARTITION = "date"


def probability_column(outcome: str) -> str:
    return f"{outcome}_probability"


PROBABILITIES: tuple[str, ...] = tuple(probability_column(o) for o in OUTCOMES)
COLUMNS_OUT: tuple[str, ...] = META + INPUTS + PROBABILITIES

SCHEMA = pa.schema(
    [
        pa.field("logged_at", pa.timestamp("ms", tz="UTC")),
        pa.field("person_key", pa.string()),
        pa.field("exam_date", pa.date32()),
        pa.field("model_version", pa.string()),
        pa.field("source", pa.string()),
        pa.field("history_checkups", pa.int32()),
        *(pa.field(c, pa.string() if c in TEXT_INPUTS else pa.float64()) for c in INPUTS),
        *(pa.field(c, pa.float64()) for c in PROBABILITIES),
    ]
)

metadata = MetaData()
TABLE = Table(
    "prediction_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("log_date", Date, nullable=False, index=True),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("person_key", String(64), nullable=False),
    Column("exam_date", Date),
    Column("model_version", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("history_checkups", Integer),
    *(Column(c, String(16) if c in TEXT_INPUTS else Float) for c in INPUTS),
    *(Column(c, Float) for c in PROBABILITIES),
)


def as_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` (COLUMNS_OUT, any dtypes the writer built) in the log's Arrow schema."""
    out = {}
    for f in SCHEMA:
        values = frame[f.name] if f.name in frame else pd.Series([None] * len(frame))
        if pa.types.is_floating(f.type):
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        elif f.name == "exam_date":
            values = pd.to_datetime(values, errors="coerce").dt.date
        elif f.name == "logged_at":
            values = pd.to_datetime(values, utc=True).dt.floor("ms")
        elif pa.types.is_integer(f.type):
            values = pd.to_numeric(values, errors="coerce").astype("Int32")
        else:
            values = values.astype("string")
        out[f.name] = pa.array(values, type=f.type, from_pandas=True)
    return pa.table(out, schema=SCHEMA)


def write_parquet(directory: Path, frame: pd.DataFrame) -> list[Path]:
    """Append `frame` to the Parquet log under `directory`: one new file per logging day present."""
    if frame.empty:
        return []
    table = as_table(frame)
    days = pd.to_datetime(frame["logged_at"], utc=True).dt.date.to_numpy()
    written = []
    for day in sorted(set(days)):
        folder = Path(directory) / f"{PARTITION}={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{uuid.uuid4().hex}.parquet"
        # Written under a hidden name (readers skip names starting with ".") and renamed: a reader
        # never sees half a file.
        partial = folder / f".{path.name}.tmp"
        pq.write_table(table.filter(pa.array(days == day)), partial, compression="zstd")
        partial.rename(path)
        written.append(path)
    return written


def read_parquet(
    directory: Path, since: dt.date, until: dt.date | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """The rows logged from `since` to `until` (inclusive UTC days; None: up to today)."""
    root = Path(directory)
    if not root.exists():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns or COLUMNS_OUT})
    schema = SCHEMA.append(pa.field(PARTITION, pa.date32()))
    dataset = ds.dataset(
        root, format="parquet", schema=schema, partitioning=_partitioning(), exclude_invalid_files=True
    )
    condition = ds.field(PARTITION) >= since
    if until is not None:
        condition = condition & (ds.field(PARTITION) <= until)
    return dataset.to_table(columns=list(columns or COLUMNS_OUT), filter=condition).to_pandas()


def _partitioning() -> ds.Partitioning:
    return ds.partitioning(pa.schema([pa.field(PARTITION, pa.date32())]), flavor="hive")


def purge_parquet(directory: Path, keep_days: int, today: dt.date | None = None) -> int:
    """Delete the days logged more than `keep_days` ago; returns how many day folders went."""
    today = today or dt.datetime.now(dt.UTC).date()
    cutoff = today - dt.timedelta(days=keep_days)
    removed = 0
    for folder in Path(directory).glob(f"{PARTITION}=*"):
        try:
            day = dt.date.fromisoformat(folder.name.split("=", 1)[1])
        except ValueError:
            continue
        if day < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def as_rows(frame: pd.DataFrame) -> list[dict]:
    """`frame` as rows for `TABLE` (the PostgreSQL store): NaN as NULL, dates as dates."""
    table = as_table(frame).to_pandas()
    table["log_date"] = pd.to_datetime(table["logged_at"], utc=True).dt.date
    table = table.astype(object).where(table.notna(), None)
    rows = table.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.generic):
                row[key] = value.item()
    return rows
