"""Checkup files and records -> the canonical frame, without losing a row.

Two file formats are read, told apart by their headers (no flags):

* **canonical**: CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) whose columns are the
  names in :data:`features.schema.COLUMNS` (matched as `features.headers` says).
* **nhis**: the NHIS open-data checkup file (국민건강보험공단 건강검진정보), in any year's header spelling,
  mapped to the canonical record as `features.nhis` says.

CSV text is decoded as UTF-8 (with or without BOM) when the whole file is valid UTF-8, else CP949.

The readers coerce types (`features.coerce`) and check codes; they do **not** check plausible
ranges (that is ``features.validation``, from the same schema). Every input row ends up either in
``ReadResult.frame`` (indexed by its 0-based input row position) or in ``ReadResult.rejects`` (one
line per problem, `features.rejects`). Label and true-risk columns (``<outcome>_1y``,
``<outcome>_1y_true_risk``) are kept as floats after the canonical columns. Notes give counts and
column names only, never patient values.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import schema
from features.answers import DIPSTICK_TEXT, text_answer
from features.coerce import (
    DATE_DTYPE,
    arrow_str,
    is_stringish,
    missing_series,
    null_mask,
    to_date,
    to_float,
    to_id,
    to_sex,
)
from features.derive import MODEL_COLUMNS
from features.eligibility import FLAGS
from features.headers import (
    LABEL_COLUMNS,
    check_columns,
    check_required,
    from_canonical,
    targets,
    used_columns,
)
from features.nhis import detect_source, from_nhis, waist_not_measured
from features.rejects import (
    R_AGE_UNDER_20,
    R_BAD_CODE,
    R_BAD_DATE,
    R_BAD_SEX,
    R_ID_TOO_LONG,
    R_LABEL_NOT_NUMBER,
    R_MISSING,
    R_MISSING_AGE,
    R_NOT_INTEGER,
    R_NOT_NUMBER,
    Rejects,
    empty_rejects,
)

__all__ = [
    "ReadResult",
    "absent_input_notes",
    "absent_key_inputs",
    "check_columns",
    "concat_results",
    "frame_to_records",
    "header_notes",
    "iter_checkups",
    "read_checkups",
    "records_to_frame",
    "to_canonical",
    "write_rejects",
]

SOURCES: tuple[str, ...] = ("canonical", "nhis")


@dataclass
class ReadResult:
    """A canonical frame plus what could not be read.

    ``frame``: the columns of ``schema.COLUMNS`` (then label columns when present), index = 0-based
    input row position. ``rejects``: ``features.rejects.REJECT_COLUMNS``, one line per problem.
    ``counts``: the numbers behind the counted notes (``rows_in``, ``rows_rejected``, ``waist_999``,
    ``exam_date_defaulted``, ``exam_date_undated_repeats``), so chunk results can be combined (:func:`concat_results`).
    """

    frame: pd.DataFrame
    rejects: pd.DataFrame
    source: str
    notes: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return self.counts.get("rows_in", len(self.frame))

    @property
    def rejected_rows(self) -> int:
        return int(self.rejects["index"].nunique()) if len(self.rejects) else 0


# --------------------------------------------------------------------------------------------
# Raw columns -> canonical dtypes, field by field. Each step coerces one field (or kind of
# field) and adds what it cannot take to the rejects; the order of the steps is the order of a
# row's reject lines.


def to_canonical(raw: pd.DataFrame, source: str = "canonical", offset: int = 0) -> ReadResult:
    """Raw columns -> canonical dtypes. Row ``i`` of ``raw`` gets index ``offset + i``.

    ``source`` is ``"canonical"`` (canonical column names) or ``"nhis"`` (NHIS Korean headers).
    """
    return _canonicalise(raw, source, offset, None)


# What a checkup measures or asks, among the fields the model reads (not the age, a diagnosis, a
# treatment or a family history, which other notes speak of).
_MEASURED = tuple(
    c
    for c in MODEL_COLUMNS
    if c in schema.BY_NAME and c not in ("sex", "age", "age_group") and not c.startswith(("history_", "on_", "family_"))
)


def _canonicalise(
    raw: pd.DataFrame, source: str, offset: int, header: list[str] | None, labels: bool = True
) -> ReadResult:
    """With `labels` False (scoring, which never reads a label) a label or true-risk value that is
    not a number is left empty instead of rejecting its checkup."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: expected 'canonical' or 'nhis'")
    header = [str(c) for c in raw.columns] if header is None else header
    n = len(raw)
    rej = Rejects(n)
    named, notes = from_nhis(raw, rej, header) if source == "nhis" else from_canonical(raw, header)

    def col(name: str) -> pd.Series:
        return named[name] if name in named.columns else missing_series(n)

    out: dict[str, np.ndarray] = {"person_id": _person_ids(col("person_id"), rej)}
    out["exam_date"], defaulted = _exam_dates(col("exam_date"), rej)
    out["sex"] = _sexes(col("sex"), rej)
    given = _numeric_fields(named, rej, out)
    _require_one_of(given, rej)
    counts: dict[str, int] = {"rows_in": n}
    if source == "nhis":
        counts["waist_999"] = _waist_not_measured(out, rej)
    label_names = _label_columns(named, rej if labels else Rejects(n), out)

    keep = ~rej.bad
    counts["rows_rejected"] = int(rej.bad.sum())
    counts["exam_date_defaulted"] = int((defaulted & keep).sum())
    # A person's undated rows are all today's: every one but the first is a same-day repeat.
    undated_ids = pd.Series(out["person_id"][defaulted & keep], dtype=object).dropna()
    counts["exam_date_undated_repeats"] = int(undated_ids.duplicated().sum())
    absent = [c for c in schema.COLUMNS if c not in named.columns]
    if absent and source == "canonical":
        notes.append(f"columns absent from the input, left missing: {', '.join(absent)}")
        if read := [c for c in absent if c in _MEASURED]:
            # Measured on held-out synthetic people (README): without waist_cm for everyone, the mean
            # diabetes risk fell to 0.77 of the truth; without every optional column, CVD rose to 1.40.
            notes.append(
                f"the model reads {', '.join(read)} where a checkup has them: where a whole file lacks them the "
                "risks can be shifted up or down, not only less precise; check calibration on labelled rows of "
                "this source (`checkup-risk evaluate`) before relying on them"
            )
        unchecked = [o for o in schema.OUTCOMES if not set(FLAGS[o]) & set(named.columns)]
        if unchecked:
            notes.append(
                f"no history or treatment column for {', '.join(unchecked)}: a disease already diagnosed or treated "
                "cannot be ruled out, so its risk is still given and means nothing for that person"
            )
    return ReadResult(
        frame=_kept_frame(out, keep, offset, label_names),
        rejects=rej.frame(offset, out["person_id"]),
        source=source,
        notes=notes + _count_notes(counts),
        counts=counts,
    )


def _person_ids(raw: pd.Series, rej: Rejects) -> np.ndarray:
    """Trimmed person ids (None where missing); missing (unless NHIS already said why) and too long
    ones are rejected."""
    ids, null, length = to_id(raw)
    rej.add(null & ~rej.of("person_id"), "person_id", R_MISSING, raw)
    rej.add(length > schema.PERSON_ID_MAX_LEN, "person_id", R_ID_TOO_LONG, raw)
    return ids


def _exam_dates(raw: pd.Series, rej: Rejects) -> tuple[np.ndarray, np.ndarray]:
    """(dates, defaulted): unreadable dates are rejected; a missing one is today (the contract's
    default), and `defaulted` says where."""
    dates, null, bad = to_date(raw)
    rej.add(bad & ~rej.of("exam_date"), "exam_date", R_BAD_DATE, raw)
    today = np.datetime64(pd.Timestamp.today().normalize().to_datetime64(), "us")
    defaulted = null & ~rej.of("exam_date")
    return np.where(defaulted, today, dates).astype(DATE_DTYPE), defaulted


def _sexes(raw: pd.Series, rej: Rejects) -> np.ndarray:
    """Record sex codes; a missing or unrecognised sex is rejected (the models are sex-specific)."""
    sex, null, bad = to_sex(raw)
    rej.add(null, "sex", R_MISSING, raw)
    rej.add(bad, "sex", R_BAD_SEX, raw)
    return sex


def _numeric_fields(named: pd.DataFrame, rej: Rejects, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every numeric field into `out` (NaN where missing or unreadable); returns where each was left
    empty (the required-one-of rule reads it)."""
    n = rej.n
    empty: dict[str, np.ndarray] = {}
    for f in schema.FIELDS:
        if not f.numeric:
            continue
        if f.name not in named.columns:
            out[f.name], empty[f.name] = np.full(n, np.nan), np.ones(n, dtype=bool)
            continue
        out[f.name], empty[f.name] = _numeric(f, named[f.name], rej)
    return empty


def _numeric(f: schema.Field, raw: pd.Series, rej: Rejects) -> tuple[np.ndarray, np.ndarray]:
    """(values, empty) of one numeric field. Rejected: not a number, not an integer where the field
    counts or codes, not one of its codes."""
    binary = f.kind == "code" and set(f.codes) == {0, 1}
    if f.name == "urine_protein":
        raw = _dipstick_signs(raw)
    vals, null, bad = to_float(raw, binary=binary)
    rej.add(bad, f.name, R_NOT_NUMBER, raw)
    present = ~null & ~bad
    if f.kind in ("int", "code"):
        with np.errstate(invalid="ignore"):
            nonint = present & (vals != np.round(vals))
        rej.add(nonint, f.name, R_NOT_INTEGER, raw)
        present &= ~nonint
    if f.kind == "code":
        _reject_other_codes(f, vals, present, raw, rej)
    return np.where(bad, np.nan, vals), null


def _dipstick_signs(raw: pd.Series) -> pd.Series:
    """A dipstick column as labs write it ("-", "±", "1+", "++", "음성", "trace") in its codes 1-6;
    codes and other text as they are. Before the missing-value tokens: "-" is a negative result here."""
    if not (raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype)):
        return raw
    words = {v: text_answer(v, DIPSTICK_TEXT) for v in raw.dropna().unique() if isinstance(v, str)}
    codes = {v: str(found[0]) for v, found in words.items() if found is not None and found[0] is not None}
    return raw.map(lambda v: codes.get(v, v)) if codes else raw


def _reject_other_codes(f: schema.Field, vals: np.ndarray, present: np.ndarray, raw: pd.Series, rej: Rejects) -> None:
    codes = np.asarray([c for c in f.codes if isinstance(c, (int, float))], dtype="float64")
    not_code = present & ~np.isin(vals, codes)
    if f.name == "age_group":
        # An NHIS band below 20 years is a real code, but of people the models were not made for.
        under_20 = not_code & (vals >= 1) & (vals < min(f.codes))
        rej.add(under_20, f.name, R_AGE_UNDER_20, raw)
        not_code &= ~under_20
    rej.add(not_code, f.name, f"{R_BAD_CODE} ({', '.join(str(c) for c in f.codes)})", raw)


def _require_one_of(empty: dict[str, np.ndarray], rej: Rejects) -> None:
    for group in schema.REQUIRED_ONE_OF:
        none_given = np.logical_and.reduce([empty[g] for g in group])
        rej.add(none_given, group[0], R_MISSING_AGE if group == ("age", "age_group") else R_MISSING, None)


def _waist_not_measured(out: dict[str, np.ndarray], rej: Rejects) -> int:
    """NHIS's waist 999 made missing (not rejected); returns how many kept rows had it."""
    w999 = waist_not_measured(out["waist_cm"])
    out["waist_cm"] = np.where(w999, np.nan, out["waist_cm"])
    return int((w999 & ~rej.bad).sum())


_LABELS = frozenset(schema.label_column(o) for o in schema.OUTCOMES)


def _label_columns(named: pd.DataFrame, rej: Rejects, out: dict[str, np.ndarray]) -> list[str]:
    """The label and true-risk columns present, as floats into `out`; returns their names."""
    labels = [c for c in LABEL_COLUMNS if c in named.columns]
    for c in labels:
        vals, _null, bad = to_float(named[c])
        rej.add(bad, c, R_LABEL_NOT_NUMBER if c in _LABELS else R_NOT_NUMBER, named[c])
        out[c] = np.where(bad, np.nan, vals)
    return labels


def _kept_frame(out: dict[str, np.ndarray], keep: np.ndarray, offset: int, labels: list[str]) -> pd.DataFrame:
    """The rows not rejected, canonical columns then labels, indexed by input position."""
    n = len(keep)
    index = pd.RangeIndex(offset, offset + n)[keep] if n else pd.RangeIndex(offset, offset)
    frame = pd.DataFrame({c: np.asarray(v)[keep] for c, v in out.items()}, index=index)
    frame["person_id"] = frame["person_id"].astype("str")
    frame["sex"] = frame["sex"].astype("str")
    frame["exam_date"] = frame["exam_date"].astype(DATE_DTYPE)
    return frame[list(schema.COLUMNS) + labels]


# --------------------------------------------------------------------------------------------
# Results: notes, chunks, records


def _rows(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def _count_notes(counts: dict[str, int]) -> list[str]:
    notes = []
    if counts.get("waist_999"):
        notes.append(f"waist 999 (not measured) treated as missing in {_rows(counts['waist_999'])}")
    if counts.get("exam_date_defaulted"):
        today = pd.Timestamp.today().date().isoformat()
        note = f"exam_date missing in {_rows(counts['exam_date_defaulted'])}: set to today ({today})"
        if repeats := counts.get("exam_date_undated_repeats"):
            note += (
                f"; of these, {repeats} {'is' if repeats == 1 else 'are'} a person's second or later undated row,"
                " the same day's checkup, so left out: give each checkup its exam_date"
            )
        notes.append(note)
    if counts.get("rows_rejected"):
        notes.append(f"{counts['rows_rejected']} of {counts.get('rows_in', 0)} rows could not be read")
    return notes


def concat_results(results: Iterable[ReadResult]) -> ReadResult:
    """One result from chunk results (as from :func:`iter_checkups`): counts summed, notes redone."""
    results = list(results)
    if not results:
        raise ValueError("no results to combine")
    counts: dict[str, int] = {}
    static: list[str] = []
    for r in results:
        for k, v in r.counts.items():
            counts[k] = counts.get(k, 0) + v
        for note in r.notes:
            if note not in _count_notes(r.counts) and note not in static:
                static.append(note)
    frames = [r.frame for r in results]
    rejects = [r.rejects for r in results if len(r.rejects)]
    return ReadResult(
        frame=pd.concat(frames) if len(frames) > 1 else frames[0],
        rejects=pd.concat(rejects, ignore_index=True) if rejects else empty_rejects(),
        source=results[0].source,
        notes=static + _count_notes(counts),
        counts=counts,
    )


def records_to_frame(records: list[dict]) -> ReadResult:
    """API/JSON records (dicts with canonical keys) -> canonical frame; unknown keys are ignored here."""
    raw = pd.DataFrame.from_records(list(records)) if records else pd.DataFrame()
    raw = raw.astype(object) if len(raw.columns) else raw
    return to_canonical(raw, "canonical", 0)


def frame_to_records(frame: pd.DataFrame) -> list[dict]:
    """Canonical rows -> API/JSON records: record fields only, missing values left out, ISO dates.

    The inverse of `records_to_frame`, for sending a file's rows to /score, FHIR or CDS."""
    cols = [c for c in schema.COLUMNS if c in frame.columns]
    out = []
    for row in frame[cols].itertuples(index=False):
        rec: dict = {}
        for c, v in zip(cols, row, strict=True):
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
                continue
            if c == "exam_date":
                rec[c] = pd.Timestamp(v).date().isoformat()
            elif isinstance(v, str):
                rec[c] = v
            else:
                rec[c] = float(v)
        out.append(rec)
    return out


# --------------------------------------------------------------------------------------------
# Files


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        return "csv"
    raise ValueError(f"{path}: unsupported file type (expected .csv, .csv.gz or .parquet)")


def _undecodable_line(path: Path, encoding: str) -> tuple[int, int] | None:
    """(file line, byte) of the first byte that `encoding` cannot decode, else None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with pa.input_stream(str(path), compression="detect") as f:
        while True:
            chunk = f.read(1 << 22)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                # The error's position is in the chunk after the decoder's held-back bytes: near enough
                # to count lines, since a held-back multibyte start is never a newline.
                at = max(e.start - len(decoder.getstate()[0]), 0)
                return lines + chunk[:at].count(b"\n"), chunk[at] if at < len(chunk) else chunk[-1]
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def _detect_encoding(path: Path) -> str:
    """'utf8' when the whole file decodes as UTF-8 (BOM or not), else 'cp949'; a file that is neither
    is refused naming its first undecodable line (one bad byte would otherwise end the read with a
    codec error that names no row)."""
    if _undecodable_line(path, "utf-8") is None:
        return "utf8"
    bad = _undecodable_line(path, "cp949")
    if bad is not None:
        line, byte = bad
        raise ValueError(
            f"{path}: line {line:,} (data row {line - 1:,}) is neither UTF-8 nor CP949 text (byte 0x{byte:02x}): "
            "fix or remove that line, or save the file again as UTF-8"
        )
    return "cp949"


# Delimiters of spreadsheet exports other than the comma (European Excel: ';'), as named in messages.
_OTHER_DELIMITERS = {";": "';'", "\t": "tabs", "|": "'|'"}


def _csv_header(path: Path, encoding: str) -> list[str]:
    """The header of a CSV file; ValueError when no data row follows it (a file of a header only
    is refused as an empty file is) or when it seems to use another delimiter than the comma."""
    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(1 << 20)
    text = head.decode("utf-8-sig" if encoding == "utf8" else encoding, errors="replace")
    lines = text.splitlines()
    first = lines[0] if lines else ""
    header = next(csv.reader([first]), [])
    if len(header) == 1:
        counts = {d: first.count(d) for d in _OTHER_DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter]:
            raise ValueError(
                f"{path}: only one column found; the file seems to use {_OTHER_DELIMITERS[delimiter]} as its "
                "delimiter: save it as comma-separated CSV"
            )
    # pyarrow skips blank lines; a longer header than the bytes read is taken as followed by data.
    if len(head) < 1 << 20 and not any(line.strip() for line in lines[1:]):
        raise ValueError(f"{path}: no data rows (a header only)")
    return header


class _BadRows:
    """Counts the lines that do not have the header's number of fields (pyarrow skips them here), so
    that the file is refused whole, naming the first few lines."""

    SHOWN = 5

    def __init__(self, encoding: str) -> None:
        self.count = 0
        self.expected = 0
        self.encoding = encoding

    def __call__(self, row) -> str:
        self.count += 1
        self.expected = row.expected_columns
        return "skip"

    def _first_lines(self, path: Path) -> list[tuple[int, int]]:
        """(line number, fields) of the first malformed records: pyarrow's threaded reader does not
        know them, so the file is read again, once, on this error path only."""
        found: list[tuple[int, int]] = []
        with _open_text(path, self.encoding) as f:
            reader = csv.reader(f)
            start = 1  # a quoted field may span lines: a record is named by the line it starts on
            try:
                for record in reader:
                    if record and len(record) != self.expected:
                        found.append((start, len(record)))
                        if len(found) == self.SHOWN:
                            break
                    start = reader.line_num + 1
            except csv.Error:  # an unterminated quote running to the end of the file: the lines so far
                pass
        return found

    def check(self, path: Path) -> None:
        if self.count:
            shown = self._first_lines(path)
            where = ", ".join(f"line {n} ({k} fields)" for n, k in shown)
            more = f" and {self.count - len(shown)} more" if self.count > len(shown) else ""
            at = f": {where}{more}" if shown else ""
            rows = "row" if self.count == 1 else "rows"
            raise ValueError(
                f"{path}: {self.count} malformed CSV {rows} (not {self.expected} fields){at}; "
                "nothing was read so that no row is silently dropped"
            )


def _open_text(path: Path, encoding: str, binary: bool = False):  # noqa: ANN202 (a file object)
    """The file as the rest of this module reads it (compression detected by pyarrow), as bytes or
    as text in `encoding`."""
    raw = pa.input_stream(str(path), compression="detect")
    if binary:
        return raw
    return io.TextIOWrapper(raw, encoding=encoding or "utf-8", errors="replace", newline="")


def _check_quotes(path: Path, encoding: str) -> None:
    """Refuse a CSV whose quoted field is left open: the parser reads every later line into that
    field and the rows vanish without an error (a note ending `"unterminated` near the end). An odd
    number of quote characters is the sign; the field must open at a field's start, since a quote
    inside an unquoted field is a plain character. Costs one fast pass over the bytes."""
    count = 0
    with _open_text(path, encoding, binary=True) as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            count += chunk.count(b'"')
    if count % 2 == 0:
        return
    opened_at, open_now = None, False
    with _open_text(path, encoding) as f:
        for n, line in enumerate(f, 1):
            for i, ch in enumerate(line):
                if ch == '"':
                    if not open_now and (i == 0 or line[i - 1] == ","):
                        opened_at = n
                    open_now = not open_now
    if open_now and opened_at is not None:
        raise ValueError(
            f"{path}: a quoted field opened on line {opened_at} is never closed, so every later line would be read "
            "into it; nothing was read so that no row is silently dropped"
        )


def _open(path: str | Path) -> tuple[Path, str, str, list[str]]:
    path = Path(path)
    kind = _file_kind(path)
    if kind == "parquet":
        meta = pq.read_metadata(path)
        header = list(meta.schema.to_arrow_schema().names)
        encoding = ""
        if meta.num_rows == 0:
            raise ValueError(f"{path}: no data rows (columns only)")
    else:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file")
        encoding = _detect_encoding(path)
        header = _csv_header(path, encoding)
    source = detect_source(header)
    check_columns(header, source, where=str(path))
    check_required(path, header, source)
    return path, kind, encoding, header


def _csv_options(header: list[str], encoding: str, block_size: int | None = None):
    read = pacsv.ReadOptions(encoding=encoding, **({"block_size": block_size} if block_size else {}))
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    bad = _BadRows(encoding)
    return read, pacsv.ParseOptions(invalid_row_handler=bad), convert, bad


def _table_result(table: pa.Table, header: list[str], source: str, offset: int, labels: bool = True) -> ReadResult:
    used = used_columns(header, source)
    df = table.select(used).to_pandas() if used else pd.DataFrame(index=range(table.num_rows))
    return _canonicalise(df, source, offset, header, labels)


def read_checkups(path: str | Path, labels: bool = True) -> ReadResult:
    """Read a canonical CSV/Parquet or NHIS open-data file into the canonical frame. With `labels`
    False (scoring) a label that is not a number is left empty, never a reason to reject a row."""
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    if kind == "parquet":
        table = pq.read_table(path, columns=used_columns(header, source))
    else:
        _check_quotes(path, encoding)
        read, parse, convert, bad = _csv_options(header, encoding)
        table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        bad.check(path)
    return _table_result(table, header, source, 0, labels)


def _rebatch(batches: Iterable[pa.RecordBatch], n: int) -> Iterator[pa.Table]:
    buf: list[pa.RecordBatch] = []
    size = 0
    for b in batches:
        while b.num_rows:
            take = min(n - size, b.num_rows)
            buf.append(b.slice(0, take))
            size += take
            b = b.slice(take)
            if size == n:
                yield pa.Table.from_batches(buf)
                buf, size = [], 0
    if buf:
        yield pa.Table.from_batches(buf)


def iter_checkups(path: str | Path, chunk_rows: int = 200_000, labels: bool = True) -> Iterator[ReadResult]:
    """Stream a file in chunks of at most ``chunk_rows`` input rows (bounded memory).

    Same semantics as :func:`read_checkups`; each chunk's frame index continues the global row
    positions, and its notes count that chunk only (:func:`concat_results` combines them).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    used = used_columns(header, source)
    if kind == "parquet":
        pf = pq.ParquetFile(path)
        batches: Iterable[pa.RecordBatch] = pf.iter_batches(batch_size=chunk_rows, columns=used)
        bad = None
    else:
        _check_quotes(path, encoding)
        read, parse, convert, bad = _csv_options(header, encoding, block_size=1 << 22)
        convert.include_columns = used
        batches = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    offset = 0
    for table in _rebatch(batches, chunk_rows):
        if bad is not None:
            bad.check(path)
        result = _table_result(table, header, source, offset, labels)
        offset += table.num_rows
        yield result
    if bad is not None:
        bad.check(path)
    if offset == 0:
        empty = pa.table({c: pa.array([], pa.string()) for c in used})
        yield _table_result(empty, header, source, 0, labels)


def absent_key_inputs(path: str | Path, chunk_rows: int = 100_000) -> list[str]:
    """Key inputs (`schema.KEY_INPUTS`) absent from the whole file: no column, or a column that is
    empty in every row. Reads only those columns, and stops as soon as each has shown a value."""
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    cols = targets(header, source)
    todo = {cols[k]: k for k in schema.KEY_INPUTS if k in cols}
    absent = {k for k in schema.KEY_INPUTS if k not in cols}
    if todo:
        if kind == "parquet":
            batches: Iterable[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(
                batch_size=chunk_rows, columns=list(todo)
            )
        else:
            read, parse, convert, _bad = _csv_options(header, encoding, block_size=1 << 22)
            convert.include_columns = list(todo)
            batches = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        empty = set(todo)
        for batch in batches:
            for c in list(empty):
                s = batch.column(batch.schema.get_field_index(c)).to_pandas()
                if is_stringish(s):
                    has_value = (~null_mask(arrow_str(s))).any() if len(s) else False
                else:
                    has_value = s.notna().any()
                if has_value:
                    empty.discard(c)
            if not empty:
                break
        absent |= {todo[c] for c in empty}
    return [k for k in schema.KEY_INPUTS if k in absent]


def header_notes(path: str | Path) -> list[str]:
    """The notes the file's header alone gives (columns ignored, columns absent), read from the header
    only: for a command that streams the file and would otherwise say them never or once a chunk."""
    path, _kind, _encoding, header = _open(path)
    source = detect_source(header)
    empty = pa.table({c: pa.array([], pa.string()) for c in used_columns(header, source)})
    return _table_result(empty, header, source, 0).notes


def absent_input_notes(absent: Iterable[str]) -> list[str]:
    """One line per file-wide absent key input, with what the risks then lack."""
    return [f"no {k} in this file: {schema.KEY_INPUT_EFFECTS[k]}" for k in absent]


def write_rejects(rejects: pd.DataFrame, path: str | Path) -> None:
    """Rejects as CSV: ``row`` (1-based data row), ``person_id``, ``field``, ``value``, ``reason``."""
    out = pd.DataFrame(
        {
            "row": rejects["index"].astype("int64") + 1,
            "person_id": rejects["person_id"],
            "field": rejects["field"],
            "value": rejects["value"],
            "reason": rejects["reason"],
        }
    )
    out.to_csv(path, index=False, encoding="utf-8")
