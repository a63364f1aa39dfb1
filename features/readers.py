"""Checkup files and records -> the canonical frame, without losing a row.

Two file formats are read, told apart by their headers (no flags):

* **canonical**: CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) whose columns are the
  names in :data:`features.schema.COLUMNS` (matched after stripping and case-folding).
* **nhis**: the NHIS open-data checkup file (국민건강보험공단 건강검진정보), in any year's header spelling.
  Headers are matched after removing whitespace and brackets and case-folding, so
  ``연령대코드(5세단위)`` / ``연령대 코드(5세단위)`` and ``(혈청지오티)AST`` / ``혈청지오티(AST)`` are one
  column. The mapping to the canonical record:

  - ``person_id`` = ``기준년도-가입자일련번호``, the serial zero-padded to 6 digits
    (``2020-000001``). The serial is a row number within one year's file; it does not link
    people across years.
  - ``exam_date`` is not in the file: July 1 of 기준년도 (mid-year).
  - 성별코드 1/2 -> ``sex`` M/F; 연령대코드 -> ``age_group`` (``age`` stays missing).
  - 음주여부 0/1 or N/Y -> ``drinking`` 0/1; the lab and body columns map one to one.
  - waist 999 (999.x) means "not measured": missing, counted in a note, not rejected.
  - 시도코드, sight, hearing, the oral-exam columns, 데이터공개일자 and unknown columns are ignored.

CSV text is decoded as UTF-8 (with or without BOM) when the whole file is valid UTF-8, else CP949.

The readers coerce types and check codes; they do **not** check plausible ranges (that is
``features.validation``, from the same schema). Every input row ends up either in
``ReadResult.frame`` (indexed by its 0-based input row position) or in ``ReadResult.rejects``
(one line per problem: ``index``, ``person_id``, ``field``, ``value``, ``reason``). Label and
true-risk columns (``<outcome>_1y``, ``<outcome>_1y_true_risk``) are kept as floats after the
canonical columns. Notes give counts and column names only, never patient values.

The core works on whole columns through Arrow compute kernels; Python loops run only over
rejected values.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import schema

LABEL_COLUMNS: tuple[str, ...] = tuple(
    c for o in schema.OUTCOMES for c in (schema.label_column(o), schema.true_risk_column(o))
)
REJECT_COLUMNS: tuple[str, ...] = ("index", "person_id", "field", "value", "reason")
DATE_DTYPE = "datetime64[us]"

# Reject reasons (stable strings: tests and reports match on them).
R_MISSING = "missing required field"
R_MISSING_AGE = "missing required field: age or age_group"
R_ID_TOO_LONG = f"person_id longer than {schema.PERSON_ID_MAX_LEN} characters"
R_NOT_NUMBER = "not a number"
R_NOT_INTEGER = "not an integer"
R_BAD_CODE = "not an allowed code"  # followed by the allowed codes
R_AGE_UNDER_20 = "age band under 20 is outside the model's population"
R_BAD_SEX = "not a sex code (M/F, male/female, 1 = M, 2 = F)"
R_BAD_DATE = "not a date (expected YYYY-MM-DD)"
R_NHIS_YEAR = "기준년도 (year) missing or not a year"
R_NHIS_SERIAL = "가입자일련번호 (serial number) missing or not an integer"

NOTE_ROUNDING = "height/weight are rounded to 5 cm / 5 kg in this source"
NOTE_NHIS_DATE = "exam_date is not in the NHIS file: set to July 1 of 기준년도"
NOTE_NHIS_ID = (
    "person_id is 기준년도-가입자일련번호, the serial zero-padded to 6 digits; it does not link people across years"
)
NOTE_NHIS_AGE = "age is not in the NHIS file: only the 5-year band (age_group)"

_NULL_TOKENS = ("", "na", "n/a", "nan", "null", "none", "nat", "#n/a")
_SEX_TOKENS = {
    "m": "M", "male": "M", "1": "M", "1.0": "M", "남": "M", "남자": "M",
    "f": "F", "female": "F", "2": "F", "2.0": "F", "여": "F", "여자": "F",
}  # fmt: skip
_BINARY_TOKENS = {"n": 0.0, "no": 0.0, "false": 0.0, "y": 1.0, "yes": 1.0, "true": 1.0}
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_EXTRA_DATE_FORMATS = ("%Y.%m.%d", "%Y%m%d", "%Y/%m/%d")


@dataclass
class ReadResult:
    """A canonical frame plus what could not be read.

    ``frame``: the columns of ``schema.COLUMNS`` (then label columns when present), index = 0-based
    input row position. ``rejects``: ``REJECT_COLUMNS``, one line per problem. ``counts``: the
    numbers behind the counted notes (``rows_in``, ``rows_rejected``, ``waist_999``,
    ``exam_date_defaulted``), so chunk results can be combined (:func:`concat_results`).
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
# NHIS headers

def normalise_header(name: object) -> str:
    """Header key: whitespace, brackets, ``_`` and ``-`` removed, case-folded, BOM dropped."""
    return re.sub(r"[\s()\[\]{}_\-]+", "", str(name).replace("\ufeff", "")).casefold()


# target -> spellings seen in the files (any spacing / case / bracket placement matches).
_NHIS_SPELLINGS: dict[str, tuple[str, ...]] = {
    "_year": ("기준년도", "기준연도"),
    "_serial": ("가입자일련번호",),
    "sex": ("성별코드", "성별"),
    "age_group": ("연령대코드(5세단위)", "연령대코드"),
    "height_cm": ("신장(5Cm단위)", "신장"),
    "weight_kg": ("체중(5Kg단위)", "체중"),
    "waist_cm": ("허리둘레",),
    "sbp": ("수축기혈압",),
    "dbp": ("이완기혈압",),
    "fasting_glucose": ("식전혈당(공복혈당)", "식전혈당", "공복혈당"),
    "total_cholesterol": ("총콜레스테롤",),
    "triglycerides": ("트리글리세라이드", "중성지방"),
    "hdl": ("HDL콜레스테롤", "HDL"),
    "ldl": ("LDL콜레스테롤", "LDL"),
    "hemoglobin": ("혈색소",),
    "urine_protein": ("요단백",),
    "serum_creatinine": ("혈청크레아티닌",),
    "ast": ("(혈청지오티)AST", "AST"),
    # Some years print ALT as "(혈청지오티)ALT" (sic): the AST/ALT suffix decides.
    "alt": ("(혈청지피티)ALT", "(혈청지오티)ALT", "ALT"),
    "ggt": ("감마지티피", "감마지티피(γ-GTP)", "γ-GTP"),
    "smoking_status": ("흡연상태",),
    "drinking": ("음주여부",),
}
_NHIS_IGNORED: tuple[str, ...] = (
    "시도코드", "시력(좌)", "시력(우)", "청력(좌)", "청력(우)", "구강검진수검여부", "치아우식증유무",
    "결손치유무", "치아마모증유무", "제3대구치(사랑니)이상", "치석", "치석유무", "데이터공개일자",
    "데이터기준일자",
)  # fmt: skip
NHIS_HEADER_MAP: dict[str, str] = {
    normalise_header(s): target for target, spellings in _NHIS_SPELLINGS.items() for s in spellings
}
_NHIS_IGNORED_KEYS = frozenset(normalise_header(s) for s in _NHIS_IGNORED)
_NHIS_KEY_TARGETS = ("_year", "_serial", "sex")


def detect_source(columns: Iterable[object]) -> str:
    """``"nhis"`` when the headers include NHIS 기준년도, 가입자일련번호 and 성별코드; else ``"canonical"``."""
    targets = {NHIS_HEADER_MAP.get(normalise_header(c)) for c in columns}
    return "nhis" if all(t in targets for t in _NHIS_KEY_TARGETS) else "canonical"


_CANONICAL_KNOWN = frozenset(schema.COLUMNS) | frozenset(LABEL_COLUMNS)
# Loose key (separators and case dropped) -> canonical name: "Fasting Glucose", "fasting-glucose"
# and " FASTING_GLUCOSE" are the field itself, spelled another way, so they map to it.
_CANONICAL_LOOSE: dict[str, str] = {normalise_header(c): c for c in _CANONICAL_KNOWN}
assert len(_CANONICAL_LOOSE) == len(_CANONICAL_KNOWN), "two record fields share a loose key"


def _canonical_key(name: object) -> str:
    stripped = str(name).replace("\ufeff", "").strip().casefold()
    return _CANONICAL_LOOSE.get(normalise_header(stripped), stripped)


# --------------------------------------------------------------------------------------------
# Near-miss columns: a column that is almost a field's name is far more likely a misspelt field
# than an unrelated extra, and ignoring it would silently score without that input (a file with
# `fasting_glucos` gave diabetes risks a quarter of the right value). So such a column is an error
# that names the likely field; unrelated extra columns are still ignored (contract section 1).
# A suggestion is made only for a field the file does not already have.

# difflib ratio on loose keys at or above which a column is taken for a misspelt field name.
# 0.9 catches a slipped letter in a longer name (fasting_glucos 0.96, diabetes_1yr 0.95) but not
# other tests that share a name's stem (hemoglobin_a1c vs hemoglobin scores 0.87,
# family_history_cancer vs family_history_cvd 0.80); short names' variants are in _ALIASES.
NEAR_MISS_RATIO = 0.9
# A field name with a unit or "code" appended (sbp_mmhg, age_years, sex_code) is that field.
_UNIT_SUFFIXES: tuple[str, ...] = (
    "mmhg", "mgdl", "mgdll", "gdl", "cm", "kg", "ul", "iul", "years", "year", "yrs", "yr", "code", "cd",
)  # fmt: skip
# Common other names of a field: suggested, never mapped, because their unit or coding may differ
# (glucose in mmol/L, smoker as yes/no).
_ALIASES: dict[str, str] = {
    "glucose": "fasting_glucose", "fbs": "fasting_glucose", "fpg": "fasting_glucose",
    "fastingbloodsugar": "fasting_glucose", "glu": "fasting_glucose",
    "creatinine": "serum_creatinine", "scr": "serum_creatinine", "cr": "serum_creatinine",
    "cholesterol": "total_cholesterol", "tc": "total_cholesterol", "chol": "total_cholesterol",
    "totalchol": "total_cholesterol", "tg": "triglycerides", "trig": "triglycerides",
    "triglyceride": "triglycerides", "hb": "hemoglobin", "hgb": "hemoglobin", "haemoglobin": "hemoglobin",
    "protein": "urine_protein", "proteinuria": "urine_protein",
    "smoking": "smoking_status", "smoker": "smoking_status", "smoke": "smoking_status",
    "alcohol": "drinking", "drink": "drinking", "gender": "sex",
    "systolic": "sbp", "systolicbp": "sbp", "sysbp": "sbp", "diastolic": "dbp", "diastolicbp": "dbp",
    "diabp": "dbp", "height": "height_cm", "weight": "weight_kg", "waist": "waist_cm",
    "ageband": "age_group", "agegrp": "age_group", "hdlc": "hdl", "hdlcholesterol": "hdl", "ldlc": "ldl",
    "ldlcholesterol": "ldl", "sgot": "ast", "sgpt": "alt", "gammagtp": "ggt", "ggtp": "ggt", "gtp": "ggt",
    "patientid": "person_id", "personalid": "person_id", "examdt": "exam_date", "checkupdate": "exam_date",
    "visitdate": "exam_date",
}  # fmt: skip


def _likely_field(column: str, absent: set[str]) -> str | None:
    """The record field an unknown column most likely means to be, among `absent` fields; or None."""
    key = normalise_header(column)
    if not key:
        return None
    alias = _ALIASES.get(key)
    if alias in absent:
        return alias
    for suffix in _UNIT_SUFFIXES:
        base = _CANONICAL_LOOSE.get(key[: -len(suffix)]) if key.endswith(suffix) else None
        if base in absent:
            return base
    choices = {normalise_header(c): c for c in absent}
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=NEAR_MISS_RATIO)
    return choices[close[0]] if close else None


def _likely_nhis_field(column: str, absent: set[str]) -> str | None:
    """As `_likely_field` for NHIS Korean headers: a near spelling of a header the file lacks."""
    key = normalise_header(column)
    choices = {k: t for k, t in NHIS_HEADER_MAP.items() if t in absent}
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=NEAR_MISS_RATIO)
    return choices[close[0]] if close else None


def near_miss_columns(header: Iterable[object], source: str | None = None) -> list[tuple[str, str]]:
    """(column, likely field) for each column that is not a record field but nearly names one."""
    header = [str(c) for c in header]
    source = source or detect_source(header)
    if source == "nhis":
        have = {NHIS_HEADER_MAP.get(normalise_header(c)) for c in header}
        unknown = [c for c in header if normalise_header(c) not in NHIS_HEADER_MAP
                   and normalise_header(c) not in _NHIS_IGNORED_KEYS]
        absent = set(NHIS_HEADER_MAP.values()) - have
        found = [(c, _likely_nhis_field(c, absent)) for c in unknown]
    else:
        have = {_canonical_key(c) for c in header}
        unknown = [c for c in header if _canonical_key(c) not in _CANONICAL_KNOWN]
        absent = set(_CANONICAL_KNOWN) - have
        found = [(c, _likely_field(c, absent)) for c in unknown]
    return [(c, f.lstrip("_")) for c, f in found if f is not None]


def check_columns(header: Iterable[object], source: str | None = None, where: str = "") -> None:
    """Raise ValueError naming the likely field of every near-miss column (see `near_miss_columns`)."""
    header = [str(c) for c in header]
    source = source or detect_source(header)
    if source == "canonical":
        # Two spellings of one field: only the first would be read, the other silently dropped.
        first: dict[str, str] = {}
        for c in header:
            k = _canonical_key(c)
            if k in _CANONICAL_KNOWN and k in first:
                prefix = f"{where}: " if where else ""
                raise ValueError(f"{prefix}columns {first[k]!r} and {c!r} both name the field {k!r}; keep one")
            first.setdefault(k, c)
    misses = near_miss_columns(header, source)
    if misses:
        prefix = f"{where}: " if where else ""
        raise ValueError(prefix + "; ".join(
            f"column {c!r} is not a record field; did you mean {f!r}?" for c, f in misses
        ) + " (rename the column to the field name, or drop it)")


def _used_columns(columns: Iterable[object], source: str) -> list[str]:
    """The raw columns a reader needs (first occurrence of each target)."""
    seen: set[str] = set()
    used: list[str] = []
    for c in columns:
        target = NHIS_HEADER_MAP.get(normalise_header(c)) if source == "nhis" else _canonical_key(c)
        if target is not None and target not in seen and (source == "nhis" or target in _CANONICAL_KNOWN):
            seen.add(target)
            used.append(str(c))
    return used


# --------------------------------------------------------------------------------------------
# Column coercion (vectorised)


def _is_stringish(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def _arrow_str(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A string Arrow array of ``s`` (zero copy for Arrow-backed strings), whitespace trimmed."""
    if s.dtype == object:
        s = s.map(_object_to_text, na_action="ignore").astype("str")
    elif not pd.api.types.is_string_dtype(s.dtype):
        s = _to_text(s)
    arr = pa.array(s, from_pandas=True)
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    return pc.utf8_trim_whitespace(arr)


def _object_to_text(v: object) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _to_text(s: pd.Series) -> pd.Series:
    """Numbers to text without a trailing ``.0`` for integral floats (IDs, codes)."""
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(v)
        if np.all(v[finite] == np.round(v[finite])):
            return s.astype("Int64").astype("str")
    return s.astype("str")


def _null_mask(arr) -> np.ndarray:
    """True where a trimmed string is null or a missing-value token."""
    lowered = pc.utf8_lower(arr)
    is_token = pc.is_in(lowered, value_set=pa.array(_NULL_TOKENS, type=lowered.type))
    return np.asarray(pc.or_kleene(pc.is_null(arr), is_token).fill_null(True), dtype=bool)


def _np(arr) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False) if isinstance(arr, (pa.Array, pa.ChunkedArray)) else arr


def _to_float(s: pd.Series, binary: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float64, null mask, unparseable mask). Binary fields also take Y/N, yes/no, true/false."""
    if pd.api.types.is_bool_dtype(s.dtype) or (
        pd.api.types.is_numeric_dtype(s.dtype) and not _is_stringish(s)
    ):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        null = np.isnan(vals)
        return vals, null, np.isinf(vals)
    arr = _arrow_str(s)
    null = _null_mask(arr)
    cleaned = pc.if_else(pa.array(null), pa.scalar(None, arr.type), arr)
    try:
        vals = _np(pc.cast(cleaned, pa.float64())).astype("float64", copy=False)
        bad = np.zeros(len(s), dtype=bool)
    except pa.ArrowInvalid:
        ok = np.asarray(pc.match_substring_regex(cleaned, _NUMBER_RE).fill_null(False), dtype=bool)
        vals = _np(pc.cast(pc.if_else(pa.array(ok), cleaned, pa.scalar(None, arr.type)), pa.float64()))
        vals = np.asarray(vals, dtype="float64")
        bad = ~ok & ~null
        if binary and bad.any():
            lowered = pc.utf8_lower(cleaned)
            keys = list(_BINARY_TOKENS)
            idx = _np(pc.index_in(lowered, value_set=pa.array(keys, type=lowered.type)).fill_null(-1))
            hit = bad & (idx >= 0)
            vals[hit] = np.asarray([_BINARY_TOKENS[k] for k in keys])[idx[hit]]
            bad &= ~hit
    vals = np.where(null, np.nan, vals)
    bad |= np.isinf(vals)
    return vals, null, bad


def _to_date(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(datetime64[us] values at midnight, null mask, unparseable mask)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        d = s
        if getattr(d.dt, "tz", None) is not None:
            d = d.dt.tz_localize(None)
        vals = d.dt.normalize().to_numpy(dtype=DATE_DTYPE)
        null = np.isnat(vals)
        return vals, null, np.zeros(len(s), dtype=bool)
    if s.dtype == object and len(s):
        # date/datetime objects from API callers: let pandas convert them, text goes below.
        is_text = s.map(lambda v: isinstance(v, str), na_action="ignore").fillna(True).astype(bool)
        if not is_text.all():
            conv = pd.to_datetime(s.where(~is_text), errors="coerce")
            text_vals, null_t, bad_t = _to_date(s.where(is_text).astype("str"))
            vals = np.where(is_text, text_vals, conv.dt.normalize().to_numpy(dtype=DATE_DTYPE))
            null = np.where(is_text, null_t, s.isna().to_numpy())
            bad = np.where(is_text, bad_t, np.isnat(vals) & ~null)
            return vals.astype(DATE_DTYPE), null, bad
    arr = _arrow_str(s)
    null = _null_mask(arr)
    parsed = pc.strptime(arr, format="%Y-%m-%d", unit="us", error_is_null=True)
    vals = _np(parsed.cast(pa.timestamp("us"))).astype(DATE_DTYPE)
    todo = np.isnat(vals) & ~null
    if todo.any():
        sub = pd.Series(_np(arr)[todo], dtype=object)
        retry = pd.to_datetime(sub, format="ISO8601", errors="coerce")
        for fmt in _EXTRA_DATE_FORMATS:
            missing = retry.isna()
            if not missing.any():
                break
            retry[missing] = pd.to_datetime(sub[missing], format=fmt, errors="coerce")
        if getattr(retry.dt, "tz", None) is not None:
            retry = retry.dt.tz_localize(None)
        vals[todo] = retry.dt.normalize().to_numpy(dtype=DATE_DTYPE)
    bad = np.isnat(vals) & ~null
    return vals, null, bad


def _to_sex(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object array of "M"/"F"/None, null mask, unrecognised mask)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not _is_stringish(s):
        s = _to_text(s)
    arr = _arrow_str(s)
    null = _null_mask(arr)
    lowered = pc.utf8_lower(arr)
    keys = list(_SEX_TOKENS)
    idx = _np(pc.index_in(lowered, value_set=pa.array(keys, type=lowered.type)).fill_null(-1))
    out = np.asarray([_SEX_TOKENS[k] for k in keys] + [None], dtype=object)[idx]
    bad = (idx < 0) & ~null
    return out, null, bad


# --------------------------------------------------------------------------------------------
# Rejects


class _Rejects:
    def __init__(self, n: int) -> None:
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.by_field: dict[str, np.ndarray] = {}
        self._parts: list[tuple[np.ndarray, str, str, pd.Series | None]] = []

    def add(self, mask: np.ndarray, field_name: str, reason: str, raw: pd.Series | None) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self._parts.append((np.flatnonzero(mask), field_name, reason, raw))
        self.bad |= mask
        prev = self.by_field.get(field_name)
        self.by_field[field_name] = mask if prev is None else (prev | mask)

    def frame(self, offset: int, person_id: np.ndarray) -> pd.DataFrame:
        rows = []
        for pos, field_name, reason, raw in self._parts:
            values = [""] * len(pos) if raw is None else [_display(v) for v in raw.iloc[pos]]
            for p, v in zip(pos.tolist(), values):
                pid = person_id[p]
                rows.append((offset + p, None if _isna(pid) else str(pid), field_name, v, reason))
        out = pd.DataFrame(rows, columns=list(REJECT_COLUMNS))
        out = out.astype({"index": "int64"}) if len(out) else _empty_rejects()
        return out.sort_values("index", kind="stable").reset_index(drop=True)


def _isna(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _display(v: object) -> str:
    if _isna(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "index" else object) for c in REJECT_COLUMNS})


# --------------------------------------------------------------------------------------------
# The core


def _missing_series(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=object)


def _allowed(f: schema.Field) -> str:
    return ", ".join(str(c) for c in f.codes)


def _from_canonical(raw: pd.DataFrame, header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    cols = _used_columns(raw.columns, "canonical")
    named = raw.loc[:, cols] if cols else pd.DataFrame(index=raw.index)
    named.columns = [_canonical_key(c) for c in cols]
    ignored = [c for c in header if c not in _used_columns(header, "canonical")]
    notes = [f"ignored columns not in the canonical record: {', '.join(ignored)}"] if ignored else []
    return named.reset_index(drop=True), notes


def _from_nhis(raw: pd.DataFrame, rej: _Rejects, header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    n = len(raw)
    cols = _used_columns(raw.columns, "nhis")
    by_target = {NHIS_HEADER_MAP[normalise_header(c)]: raw[c].reset_index(drop=True) for c in cols}
    unknown = [
        c
        for c in header
        if normalise_header(c) not in NHIS_HEADER_MAP and normalise_header(c) not in _NHIS_IGNORED_KEYS
    ]
    year_raw = by_target.pop("_year", _missing_series(n))
    serial_raw = by_target.pop("_serial", _missing_series(n))
    year, y_null, y_bad = _to_float(year_raw)
    y_bad = y_bad | y_null | (year != np.round(year)) | (year < 1000) | (year > 9999)
    serial, s_null, s_bad = _to_float(serial_raw)
    s_bad = s_bad | s_null | (serial != np.round(serial)) | (serial < 0)
    rej.add(s_bad, "person_id", R_NHIS_SERIAL, serial_raw)
    rej.add(y_bad, "exam_date", R_NHIS_YEAR, year_raw)
    ok = ~(y_bad | s_bad)
    yr = np.where(y_bad, 1970, year).astype("int64")
    y_txt = pd.Series(yr).astype("str")
    s_txt = pd.Series(np.where(s_bad, 0, serial).astype("int64")).astype("str").str.zfill(6)
    pid = (y_txt + "-" + s_txt).where(ok)
    july_1 = ((yr - 1970).astype("datetime64[Y]").astype("datetime64[M]") + 6).astype(DATE_DTYPE)
    july_1[y_bad] = np.datetime64("NaT")
    named = pd.DataFrame(by_target)
    named.insert(0, "person_id", pid.astype("str"))
    named.insert(1, "exam_date", pd.Series(july_1, dtype=DATE_DTYPE))
    notes = [NOTE_NHIS_ID, NOTE_NHIS_DATE, NOTE_NHIS_AGE, NOTE_ROUNDING]
    if unknown:
        notes.append(f"ignored columns not used by the model: {', '.join(unknown)}")
    return named, notes


def to_canonical(raw: pd.DataFrame, source: str = "canonical", offset: int = 0) -> ReadResult:
    """Raw columns -> canonical dtypes. Row ``i`` of ``raw`` gets index ``offset + i``.

    ``source`` is ``"canonical"`` (canonical column names) or ``"nhis"`` (NHIS Korean headers).
    """
    return _canonicalise(raw, source, offset, None)


def _canonicalise(raw: pd.DataFrame, source: str, offset: int, header: list[str] | None) -> ReadResult:
    if source not in ("canonical", "nhis"):
        raise ValueError(f"unknown source {source!r}: expected 'canonical' or 'nhis'")
    header = [str(c) for c in raw.columns] if header is None else header
    n = len(raw)
    rej = _Rejects(n)
    if source == "nhis":
        named, static_notes = _from_nhis(raw, rej, header)
    else:
        named, static_notes = _from_canonical(raw, header)

    out: dict[str, object] = {}
    absent = [c for c in schema.COLUMNS if c not in named.columns]
    col = lambda name: named[name] if name in named.columns else _missing_series(n)  # noqa: E731

    # person_id
    pid_raw = col("person_id")
    pid_arr = _arrow_str(pid_raw) if n else pa.array([], pa.large_string())
    pid_null = _null_mask(pid_arr) if n else np.zeros(0, dtype=bool)
    pid = np.asarray(_np(pid_arr), dtype=object)
    pid[pid_null] = None
    already = rej.by_field.get("person_id", np.zeros(n, dtype=bool))
    rej.add(pid_null & ~already, "person_id", R_MISSING, pid_raw)
    too_long = np.asarray(pc.utf8_length(pid_arr).fill_null(0), dtype="int64") > schema.PERSON_ID_MAX_LEN
    rej.add(too_long, "person_id", R_ID_TOO_LONG, pid_raw)
    out["person_id"] = pid

    # exam_date (missing -> today, per the contract)
    date_raw = col("exam_date")
    dates, d_null, d_bad = _to_date(date_raw)
    rej.add(d_bad & ~rej.by_field.get("exam_date", np.zeros(n, dtype=bool)), "exam_date", R_BAD_DATE, date_raw)
    today = np.datetime64(pd.Timestamp.today().normalize().to_datetime64(), "us")
    defaulted = d_null & ~rej.by_field.get("exam_date", np.zeros(n, dtype=bool))
    dates = np.where(defaulted, today, dates).astype(DATE_DTYPE)
    out["exam_date"] = dates

    # sex
    sex_raw = col("sex")
    sex, sx_null, sx_bad = _to_sex(sex_raw)
    rej.add(sx_null, "sex", R_MISSING, sex_raw)
    rej.add(sx_bad, "sex", R_BAD_SEX, sex_raw)
    out["sex"] = sex

    # numeric fields
    raw_null: dict[str, np.ndarray] = {}
    for f in schema.FIELDS:
        if not f.numeric:
            continue
        if f.name not in named.columns:
            out[f.name] = np.full(n, np.nan)
            raw_null[f.name] = np.ones(n, dtype=bool)
            continue
        s = named[f.name]
        binary = f.kind == "code" and set(f.codes) == {0, 1}
        vals, null, bad = _to_float(s, binary=binary)
        raw_null[f.name] = null
        rej.add(bad, f.name, R_NOT_NUMBER, s)
        present = ~null & ~bad
        if f.kind in ("int", "code"):
            with np.errstate(invalid="ignore"):
                nonint = present & (vals != np.round(vals))
            rej.add(nonint, f.name, R_NOT_INTEGER, s)
            present &= ~nonint
        if f.kind == "code":
            codes = np.asarray([c for c in f.codes if isinstance(c, (int, float))], dtype="float64")
            not_code = present & ~np.isin(vals, codes)
            if f.name == "age_group":
                under_20 = not_code & (vals >= 1) & (vals < min(f.codes))
                rej.add(under_20, f.name, R_AGE_UNDER_20, s)
                not_code &= ~under_20
            rej.add(not_code, f.name, f"{R_BAD_CODE} ({_allowed(f)})", s)
        out[f.name] = np.where(bad, np.nan, vals)

    for group in schema.REQUIRED_ONE_OF:
        none_given = np.logical_and.reduce([raw_null[g] for g in group])
        rej.add(none_given, group[0], R_MISSING_AGE if group == ("age", "age_group") else R_MISSING, None)

    # NHIS dirt: waist 999 / 999.x = not measured.
    counts: dict[str, int] = {"rows_in": n}
    if source == "nhis":
        waist = out["waist_cm"]
        w999 = (waist >= 999) & (waist < 1000)
        out["waist_cm"] = np.where(w999, np.nan, waist)
        counts["waist_999"] = int((w999 & ~rej.bad).sum())

    labels = [c for c in LABEL_COLUMNS if c in named.columns]
    for c in labels:
        vals, _null, bad = _to_float(named[c])
        rej.add(bad, c, R_NOT_NUMBER, named[c])
        out[c] = np.where(bad, np.nan, vals)

    keep = ~rej.bad
    counts["rows_rejected"] = int(rej.bad.sum())
    counts["exam_date_defaulted"] = int((defaulted & keep).sum())
    index = pd.RangeIndex(offset, offset + n)[keep] if n else pd.RangeIndex(offset, offset)
    frame = pd.DataFrame({c: np.asarray(v)[keep] for c, v in out.items()}, index=index)
    frame["person_id"] = frame["person_id"].astype("str")
    frame["sex"] = frame["sex"].astype("str")
    frame["exam_date"] = frame["exam_date"].astype(DATE_DTYPE)
    frame = frame[list(schema.COLUMNS) + labels]

    if absent and source == "canonical":
        static_notes.append(f"columns absent from the input, left missing: {', '.join(absent)}")
    return ReadResult(
        frame=frame,
        rejects=rej.frame(offset, pid),
        source=source,
        notes=static_notes + _count_notes(counts),
        counts=counts,
    )


def _rows(k: int) -> str:
    return f"{k} row" if k == 1 else f"{k} rows"


def _count_notes(counts: dict[str, int]) -> list[str]:
    notes = []
    if counts.get("waist_999"):
        notes.append(f"waist 999 (not measured) treated as missing in {_rows(counts['waist_999'])}")
    if counts.get("exam_date_defaulted"):
        today = pd.Timestamp.today().date().isoformat()
        notes.append(f"exam_date missing in {_rows(counts['exam_date_defaulted'])}: set to today ({today})")
    if counts.get("rows_rejected"):
        notes.append(f"{counts['rows_rejected']} of {counts.get('rows_in', 0)} rows rejected (see rejects)")
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
        rejects=pd.concat(rejects, ignore_index=True) if rejects else _empty_rejects(),
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
        for c, v in zip(cols, row):
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


def _detect_encoding(path: Path) -> str:
    """'utf8' when the whole file decodes as UTF-8 (BOM or not), else 'cp949'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with pa.input_stream(str(path), compression="detect") as f:
        try:
            while chunk := f.read(1 << 22):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp949"
    return "utf8"


def _csv_header(path: Path, encoding: str) -> list[str]:
    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(1 << 20)
    text = head.decode("utf-8-sig" if encoding == "utf8" else encoding, errors="replace")
    first = text.splitlines()[0] if text else ""
    return next(csv.reader([first]), [])


class _BadRows:
    def __init__(self) -> None:
        self.count = 0
        self.expected = 0

    def __call__(self, row) -> str:
        self.count += 1
        self.expected = row.expected_columns
        return "skip"

    def check(self, path: Path) -> None:
        if self.count:
            raise ValueError(
                f"{path}: {self.count} malformed CSV rows (not {self.expected} fields); "
                "nothing was read so that no row is silently dropped"
            )


def _open(path: str | Path) -> tuple[Path, str, str, list[str]]:
    path = Path(path)
    kind = _file_kind(path)
    if kind == "parquet":
        header = list(pq.read_schema(path).names)
        encoding = ""
    else:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file")
        encoding = _detect_encoding(path)
        header = _csv_header(path, encoding)
    source = detect_source(header)
    check_columns(header, source, where=str(path))
    _check_required(path, header, source)
    return path, kind, encoding, header


def _check_required(path: Path, header: list[str], source: str) -> None:
    if source == "nhis":
        return
    keys = {_canonical_key(c) for c in header}
    missing = [c for c in ("person_id", "sex") if c not in keys]
    missing += ["age or age_group" for g in schema.REQUIRED_ONE_OF if not keys & set(g)]
    if missing:
        raise ValueError(
            f"{path}: not a checkup file: required columns missing ({', '.join(missing)}); "
            "expected canonical column names or the NHIS Korean headers"
        )


def _csv_options(header: list[str], encoding: str, block_size: int | None = None):
    read = pacsv.ReadOptions(encoding=encoding, **({"block_size": block_size} if block_size else {}))
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    bad = _BadRows()
    return read, pacsv.ParseOptions(invalid_row_handler=bad), convert, bad


def _table_result(table: pa.Table, header: list[str], source: str, offset: int) -> ReadResult:
    used = _used_columns(header, source)
    df = table.select(used).to_pandas() if used else pd.DataFrame(index=range(table.num_rows))
    return _canonicalise(df, source, offset, header)


def read_checkups(path: str | Path) -> ReadResult:
    """Read a canonical CSV/Parquet or NHIS open-data file into the canonical frame."""
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    if kind == "parquet":
        table = pq.read_table(path, columns=_used_columns(header, source))
    else:
        read, parse, convert, bad = _csv_options(header, encoding)
        table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        bad.check(path)
    return _table_result(table, header, source, 0)


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


def iter_checkups(path: str | Path, chunk_rows: int = 200_000) -> Iterator[ReadResult]:
    """Stream a file in chunks of at most ``chunk_rows`` input rows (bounded memory).

    Same semantics as :func:`read_checkups`; each chunk's frame index continues the global row
    positions, and its notes count that chunk only (:func:`concat_results` combines them).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    used = _used_columns(header, source)
    if kind == "parquet":
        pf = pq.ParquetFile(path)
        batches: Iterable[pa.RecordBatch] = pf.iter_batches(batch_size=chunk_rows, columns=used)
        bad = None
    else:
        read, parse, convert, bad = _csv_options(header, encoding, block_size=1 << 22)
        convert.include_columns = used
        batches = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    offset = 0
    for table in _rebatch(batches, chunk_rows):
        if bad is not None:
            bad.check(path)
        result = _table_result(table, header, source, offset)
        offset += table.num_rows
        yield result
    if bad is not None:
        bad.check(path)
    if offset == 0:
        empty = pa.table({c: pa.array([], pa.string()) for c in used})
        yield _table_result(empty, header, source, 0)


def _targets(header: list[str], source: str) -> dict[str, str]:
    """Record field -> the raw column that holds it (first occurrence)."""
    out: dict[str, str] = {}
    for c in header:
        t = NHIS_HEADER_MAP.get(normalise_header(c)) if source == "nhis" else _canonical_key(c)
        if t is not None and t not in out:
            out[t] = c
    return out


def absent_key_inputs(path: str | Path, chunk_rows: int = 100_000) -> list[str]:
    """Key inputs (`schema.KEY_INPUTS`) absent from the whole file: no column, or a column that is
    empty in every row. Reads only those columns, and stops as soon as each has shown a value."""
    path, kind, encoding, header = _open(path)
    source = detect_source(header)
    cols = _targets(header, source)
    todo = {cols[k]: k for k in schema.KEY_INPUTS if k in cols}
    absent = {k for k in schema.KEY_INPUTS if k not in cols}
    if todo:
        if kind == "parquet":
            batches: Iterable[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(
                batch_size=chunk_rows, columns=list(todo))
        else:
            read, parse, convert, _bad = _csv_options(header, encoding, block_size=1 << 22)
            convert.include_columns = list(todo)
            batches = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        empty = set(todo)
        for batch in batches:
            for c in list(empty):
                s = batch.column(batch.schema.get_field_index(c)).to_pandas()
                if _is_stringish(s):
                    has_value = (~_null_mask(_arrow_str(s))).any() if len(s) else False
                else:
                    has_value = s.notna().any()
                if has_value:
                    empty.discard(c)
            if not empty:
                break
        absent |= {todo[c] for c in empty}
    return [k for k in schema.KEY_INPUTS if k in absent]


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
