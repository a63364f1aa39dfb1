"""What batch scoring writes: the output columns and their types, and the output and rejects files.

Both files appear at their paths only when the run commits (a failed run leaves no partial output
behind); rows are appended as chunks are scored, so memory never holds the whole output.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.readers import write_rejects
from features.rejects import REJECT_COLUMNS

ROW = "_row"  # the global 0-based input row position, carried through history, spills and partition outputs
_REASON_COLUMNS = ("index", "field", "reason")


def rejects_path(output: str | Path) -> Path:
    return Path(f"{output}.rejects.csv")


def check_output(path: Path, input_path: Path | None = None) -> None:
    """Refuse an output that is not .csv or .parquet, or that (or its rejects file) is the input:
    the output replaces its file at the end, so the input would be lost."""
    if not path.name.endswith((".csv", ".parquet")):
        raise ValueError(f"--output must end in .csv or .parquet: {path}")
    if input_path is not None and Path(input_path).exists():
        for written in (path, rejects_path(path)):
            if written.exists() and os.path.samefile(written, input_path):  # a link to it too
                raise ValueError(f"{written} is the input file: scoring would overwrite it; choose another --output")


def output_columns(outcomes: tuple[str, ...], explain: int = 0, intervals: bool = False) -> list[str]:
    """person_id, exam_date, `<outcome>_risk` per outcome, `<outcome>_reason` per outcome (why it
    does not apply; empty where it does), model_version, model_training_data (synthetic, real or
    unknown: `models.provenance`); with `intervals` the nominal 95% interval
    per outcome (`<outcome>_interval_low`, `<outcome>_interval_high`); then with `explain` = K the
    top K factors per outcome: `<outcome>_factor_{i}` (feature) and `<outcome>_factor_{i}_log_odds`."""
    cols = ["person_id", "exam_date"] + [f"{o}_risk" for o in outcomes] + [f"{o}_reason" for o in outcomes]
    cols += ["model_version", "model_training_data"]
    if intervals:
        cols += [f"{o}_interval_{end}" for o in outcomes for end in ("low", "high")]
    for o in outcomes:
        for i in range(1, explain + 1):
            cols += [f"{o}_factor_{i}", f"{o}_factor_{i}_log_odds"]
    return cols


def output_schema(outcomes: tuple[str, ...], explain: int = 0, intervals: bool = False) -> pa.Schema:
    fields = []
    for c in output_columns(outcomes, explain, intervals):
        if c == "exam_date":
            t = pa.timestamp("us")
        elif c.endswith(("_risk", "_log_odds", "_interval_low", "_interval_high")):
            t = pa.float64()
        else:
            t = pa.string()
        fields.append(pa.field(c, t))
    return pa.schema(fields)


class OutputWriter:
    """Appends output frames to a CSV or a Parquet file; the file appears at ``path`` only when
    :meth:`commit` is called."""

    def __init__(self, path: Path, schema_: pa.Schema) -> None:
        self.path = path
        self.schema = schema_
        self.columns = schema_.names
        self.parquet = path.suffix == ".parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.partial")
        self.rows = 0
        if self.parquet:
            self._pq = pq.ParquetWriter(self.tmp, schema_)
        else:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
            pd.DataFrame(columns=self.columns).to_csv(self._fh, index=False)

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        frame = frame[self.columns]
        if self.parquet:
            self._pq.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        else:
            frame.to_csv(self._fh, index=False, header=False, date_format="%Y-%m-%d")
        self.rows += len(frame)

    def _close(self) -> None:
        if self.parquet:
            self._pq.close()
        else:
            self._fh.close()

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self._close()
        finally:
            self.tmp.unlink(missing_ok=True)


class RejectsWriter:
    """Appends rejects in the format of :func:`features.readers.write_rejects`; ``rows`` counts the
    input rows rejected (a row may fail on several fields), and :meth:`reasons` keeps, per reject
    line, the row, field and reason (no values, no person IDs) for the run's summary of reasons."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        self._header = True
        self.rows = 0
        self._reasons: list[pd.DataFrame] = []

    def reasons(self) -> pd.DataFrame:
        """``index``, ``field``, ``reason`` of every reject line written (as in the rejects frame)."""
        if not self._reasons:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "index" else object) for c in _REASON_COLUMNS})
        return pd.concat(self._reasons, ignore_index=True).astype({"field": object, "reason": object})

    def write(self, rejects: pd.DataFrame) -> None:
        if not len(rejects) and not self._header:
            return
        buf = io.StringIO()
        write_rejects(rejects, cast(Any, buf))  # it writes to any text stream, not only to a path
        text = buf.getvalue()
        if not self._header:
            text = text.split("\n", 1)[1] if "\n" in text else ""
        self._fh.write(text)
        self._header = False
        if len(rejects):
            self.rows += int(rejects["index"].nunique())
            # A few distinct reasons repeat over many rows: categories keep this small.
            self._reasons.append(rejects[list(_REASON_COLUMNS)].astype({"field": "category", "reason": "category"}))

    def commit(self) -> None:
        if self._header:
            self.write(pd.DataFrame(columns=list(REJECT_COLUMNS)))
        self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)
