"""Typed coercion of raw input columns to the canonical record's dtypes, whole columns at a time.

Each coercion returns the values with two masks, null (missing, or a missing-value token such as
"NA") and bad (present but unreadable), so that the caller (`features.readers`) can reject the bad
ones with their field and reason. Text goes through Arrow compute kernels; Python loops run only
over the values that need a second look (dates in other formats, binary words).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import SEX_TOKENS

DATE_DTYPE = "datetime64[us]"

# The ways files write "no value": blank, NA and its kin, and the "." of SAS and Stata exports and
# the "-" or "--" of spreadsheets, which rejected a whole checkup over one lipid not drawn.
_NULL_TOKENS = ("", "na", "n/a", "nan", "null", "none", "nat", "#n/a", ".", "-", "--")
_BINARY_TOKENS = {"n": 0.0, "no": 0.0, "false": 0.0, "y": 1.0, "yes": 1.0, "true": 1.0}
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_EXTRA_DATE_FORMATS = ("%Y.%m.%d", "%Y%m%d", "%Y/%m/%d")


def missing_series(n: int) -> pd.Series:
    """A column of `n` missing values (a field the input does not have)."""
    return pd.Series([None] * n, dtype=object)


def is_stringish(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def arrow_str(s: pd.Series) -> pa.Array | pa.ChunkedArray:
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


def null_mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where a trimmed string is null or a missing-value token."""
    lowered = pc.utf8_lower(arr)
    is_token = pc.is_in(lowered, value_set=pa.array(_NULL_TOKENS, type=lowered.type))
    return np.asarray(pc.or_kleene(pc.is_null(arr), is_token).fill_null(True), dtype=bool)


def as_numpy(arr: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """An Arrow array as numpy (copying where Arrow cannot share its buffer); numpy stays as it is."""
    return arr.to_numpy(zero_copy_only=False) if isinstance(arr, (pa.Array, pa.ChunkedArray)) else arr


def to_float(s: pd.Series, binary: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float64, null mask, unparseable mask). Binary fields also take Y/N, yes/no, true/false."""
    if pd.api.types.is_bool_dtype(s.dtype) or (pd.api.types.is_numeric_dtype(s.dtype) and not is_stringish(s)):
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
        null = np.isnan(vals)
        return vals, null, np.isinf(vals)
    arr = arrow_str(s)
    null = null_mask(arr)
    cleaned = pc.if_else(pa.array(null), pa.scalar(None, arr.type), arr)
    try:
        vals = as_numpy(pc.cast(cleaned, pa.float64())).astype("float64", copy=False)
        bad = np.zeros(len(s), dtype=bool)
    except pa.ArrowInvalid:
        ok = np.asarray(pc.match_substring_regex(cleaned, _NUMBER_RE).fill_null(False), dtype=bool)
        vals = as_numpy(pc.cast(pc.if_else(pa.array(ok), cleaned, pa.scalar(None, arr.type)), pa.float64()))
        vals = np.asarray(vals, dtype="float64")
        bad = ~ok & ~null
        if binary and bad.any():
            lowered = pc.utf8_lower(cleaned)
            keys = list(_BINARY_TOKENS)
            idx = as_numpy(pc.index_in(lowered, value_set=pa.array(keys, type=lowered.type)).fill_null(-1))
            hit = bad & (idx >= 0)
            vals[hit] = np.asarray([_BINARY_TOKENS[k] for k in keys])[idx[hit]]
            bad &= ~hit
    vals = np.where(null, np.nan, vals)
    bad |= np.isinf(vals)
    return vals, null, bad


_UTC_OFFSET = r"(?<=\d:\d{2})(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)\s*$"


def _one_date(text: object) -> pd.Timestamp:
    """One ISO 8601 value as a naive timestamp of the day written; NaT when unreadable."""
    t = pd.to_datetime(text, format="ISO8601", errors="coerce")
    return t.tz_localize(None) if t is not pd.NaT and t.tzinfo is not None else t


def to_date(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            text_vals, null_t, bad_t = to_date(s.where(is_text).astype("str"))
            vals = np.where(is_text, text_vals, conv.dt.normalize().to_numpy(dtype=DATE_DTYPE))
            null = np.where(is_text, null_t, s.isna().to_numpy())
            bad = np.where(is_text, bad_t, np.isnat(vals) & ~null)
            return vals.astype(DATE_DTYPE), null, bad
    arr = arrow_str(s)
    null = null_mask(arr)
    parsed = pc.strptime(arr, format="%Y-%m-%d", unit="us", error_is_null=True)
    # Arrow's strptime rolls an impossible day over ("2023-02-30" -> 2023-03-02): keep only parses
    # whose day of the month is the one written; the rest go to the strict parsers below.
    written_day = pc.struct_field(pc.extract_regex(arr, r"^\s*\d+-\d+-(?P<day>\d{1,2})(?:\D|$)"), "day")
    rolled = pc.not_equal(pc.day(parsed), pc.cast(written_day, pa.int64()))
    parsed = pc.if_else(pc.fill_null(rolled, False), pa.scalar(None, parsed.type), parsed)
    vals = as_numpy(parsed.cast(pa.timestamp("us"))).astype(DATE_DTYPE)
    todo = np.isnat(vals) & ~null
    if todo.any():
        sub = pd.Series(as_numpy(arr)[todo], dtype=object)
        # A datetime's UTC offset (EMR exports write one) is dropped: the day is the one written, as
        # for a column of one offset, and offsets that differ between rows cannot break the parse.
        sub = sub.str.replace(_UTC_OFFSET, "", regex=True)
        try:
            retry = pd.to_datetime(sub, format="ISO8601", errors="coerce")
        except ValueError:  # a form the offset pattern missed, mixing zones: one value at a time
            # Dates repeat within a file: each distinct text is parsed once.
            days = {v: _one_date(v) for v in sub.unique()}
            retry = pd.Series([days[v] for v in sub], index=sub.index, dtype="datetime64[us]")
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


def to_sex(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object array of "M"/"F"/None, null mask, unrecognised mask)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not is_stringish(s):
        s = _to_text(s)
    arr = arrow_str(s)
    null = null_mask(arr)
    lowered = pc.utf8_lower(arr)
    keys = list(SEX_TOKENS)
    idx = as_numpy(pc.index_in(lowered, value_set=pa.array(keys, type=lowered.type)).fill_null(-1))
    out = np.asarray([SEX_TOKENS[k] for k in keys] + [None], dtype=object)[idx]
    bad = (idx < 0) & ~null
    return out, null, bad


def to_id(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object array of trimmed text or None, null mask, length in characters) of an identifier."""
    arr = arrow_str(s) if len(s) else pa.array([], pa.large_string())
    null = null_mask(arr) if len(s) else np.zeros(0, dtype=bool)
    ids = np.asarray(as_numpy(arr), dtype=object)
    ids[null] = None
    return ids, null, np.asarray(pc.utf8_length(arr).fill_null(0), dtype="int64")
