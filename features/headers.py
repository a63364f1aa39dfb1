"""Which input column is which record field: canonical names, NHIS headers, near misses.

A canonical file's columns are the names in `features.schema.COLUMNS` (and the label columns),
matched after stripping, case-folding and dropping separators ("Fasting Glucose" and
"fasting-glucose" are `fasting_glucose`); an NHIS file's headers are matched by `features.nhis`.
A column that nearly names a field the file lacks is an error that names the field (see below);
other extra columns are ignored (contract section 1).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from features import schema
from features.nhis import (
    NHIS_HEADER_MAP,
    NHIS_SPELLINGS,
    detect_source,
    nhis_columns,
    nhis_unknown,
    normalise_header,
)

LABEL_COLUMNS: tuple[str, ...] = tuple(
    c for o in schema.OUTCOMES for c in (schema.label_column(o), schema.true_risk_column(o))
)
CANONICAL_KNOWN = frozenset(schema.COLUMNS) | frozenset(LABEL_COLUMNS)
# Loose key (separators and case dropped) -> canonical name: "Fasting Glucose", "fasting-glucose"
# and " FASTING_GLUCOSE" are the field itself, spelled another way, so they map to it.
_CANONICAL_LOOSE: dict[str, str] = {normalise_header(c): c for c in CANONICAL_KNOWN}
assert len(_CANONICAL_LOOSE) == len(CANONICAL_KNOWN), "two record fields share a loose key"


def canonical_key(name: object) -> str:
    """The record field a canonical column names, else the column stripped and case-folded."""
    stripped = str(name).replace("\ufeff", "").strip().casefold()
    return _CANONICAL_LOOSE.get(normalise_header(stripped), stripped)


def canonical_columns(columns: Iterable[object]) -> dict[str, str]:
    """Record field -> the first canonical column that names it (unknown columns are left out)."""
    out: dict[str, str] = {}
    for c in columns:
        key = canonical_key(c)
        if key in CANONICAL_KNOWN and key not in out:
            out[key] = str(c)
    return out


def targets(header: Iterable[object], source: str) -> dict[str, str]:
    """Record field (for NHIS also `_year` / `_serial`) -> the raw column that holds it (first occurrence)."""
    return nhis_columns(header) if source == "nhis" else canonical_columns(header)


def used_columns(header: Iterable[object], source: str) -> list[str]:
    """The raw columns a reader needs, in input order."""
    return list(targets(header, source).values())


def from_canonical(raw: pd.DataFrame, header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The raw canonical columns renamed to record fields, and a note naming the ignored ones."""
    fields = canonical_columns(raw.columns)
    named = raw.loc[:, list(fields.values())] if fields else pd.DataFrame(index=raw.index)
    named.columns = list(fields)
    used = set(used_columns(header, "canonical"))
    ignored = [c for c in header if c not in used]
    notes = [f"ignored columns not in the canonical record: {', '.join(ignored)}"] if ignored else []
    return named.reset_index(drop=True), notes


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
# Units as NHIS-style headers write them after the Korean name (수축기혈압(mmHg), 식전혈당(mg/dL)).
# A molar unit too: a glucose in mmol/L must not be ignored in silence (renamed, its values are then
# rejected as out of range, not scored as mg/dL).
_NHIS_UNIT_SUFFIXES: tuple[str, ...] = (
    "mg/dl", "g/dl", "u/l", "iu/l", "mmhg", "mmol/l", "umol/l", "μmol/l", "단위", "코드",
)  # fmt: skip
# A code range appended to a coded header (요단백(1~6), 흡연상태(1-3), which the header key reads
# "요단백1~6" and "흡연상태13"): that header.
_CODE_RANGE = re.compile(r"\d+~\d+$|\d\d$")
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


def likely_field(column: str, absent: set[str]) -> str | None:
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


# Korean headers are a few syllables long: one mistyped syllable (수측기혈압 for 수축기혈압) is a near
# miss, while a header with a syllable more or less is another measure (허리둘레비, the waist ratio;
# 수축기혈압2차, a second reading; VLDL콜레스테롤), so only same-length headers one syllable off count.
NHIS_MIN_TYPO_LENGTH = 4


def _likely_nhis_field(column: str, absent: set[str]) -> str | None:
    """As `likely_field` for an NHIS file's headers, among the targets it lacks: an NHIS header
    with one syllable mistyped, an NHIS header with a unit appended (수축기혈압(mmHg)), or a
    canonical field name or its other names (SBP, glucose)."""
    key = normalise_header(column)
    choices = {k: t for k, t in NHIS_HEADER_MAP.items() if t in absent}
    for suffix in _UNIT_SUFFIXES + _NHIS_UNIT_SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in choices:
            return choices[key[: -len(suffix)]]
    ranged = _CODE_RANGE.sub("", key)
    if ranged != key and ranged in choices:
        return choices[ranged]
    canonical = canonical_key(column)
    if canonical in absent:
        return canonical
    field = likely_field(column, {t for t in absent if not t.startswith("_")})
    if field is not None:
        return field
    typo = [
        k
        for k in choices
        if len(k) == len(key) >= NHIS_MIN_TYPO_LENGTH and sum(a != b for a, b in zip(k, key, strict=True)) == 1
    ]
    return choices[typo[0]] if len(typo) == 1 else None


def nhis_header(field: str) -> str | None:
    """The NHIS header that holds a record field (its usual spelling), or None."""
    return next((NHIS_SPELLINGS[t][0] for t in NHIS_SPELLINGS if t.lstrip("_") == field), None)


def near_miss_columns(header: Iterable[object], source: str | None = None) -> list[tuple[str, str]]:
    """(column, likely field) for each column that is not a record field but nearly names one."""
    columns = [str(c) for c in header]
    source = source or detect_source(columns)
    if source == "nhis":
        absent = set(NHIS_HEADER_MAP.values()) - set(nhis_columns(columns))
        found = [(c, _likely_nhis_field(c, absent)) for c in nhis_unknown(columns)]
    else:
        have = {canonical_key(c) for c in columns}
        unknown = [c for c in columns if canonical_key(c) not in CANONICAL_KNOWN]
        absent = set(CANONICAL_KNOWN) - have
        found = [(c, likely_field(c, absent)) for c in unknown]
    return [(c, f.lstrip("_")) for c, f in found if f is not None]


def check_columns(header: Iterable[object], source: str | None = None, where: str = "") -> None:
    """Raise ValueError naming the likely field of every near-miss column (see `near_miss_columns`)."""
    columns = [str(c) for c in header]
    source = source or detect_source(columns)
    prefix = f"{where}: " if where else ""
    if source == "canonical":
        # Two spellings of one field: only the first would be read, the other silently dropped.
        first: dict[str, str] = {}
        for c in columns:
            k = canonical_key(c)
            if k in CANONICAL_KNOWN and k in first:
                raise ValueError(f"{prefix}columns {first[k]!r} and {c!r} both name the field {k!r}; keep one")
            first.setdefault(k, c)
    misses = near_miss_columns(columns, source)
    if misses and source == "nhis":
        raise ValueError(
            prefix
            + "; ".join(
                f"column {c!r} is not an NHIS header this reader knows; did you mean {nhis_header(f)!r} ({f})?"
                for c, f in misses
            )
            + " (rename the column to that header, or drop it)"
        )
    if misses:
        raise ValueError(
            prefix
            + "; ".join(f"column {c!r} is not a record field; did you mean {f!r}?" for c, f in misses)
            + " (rename the column to the field name, or drop it)"
        )


def check_required(path: Path, header: list[str], source: str) -> None:
    """Raise ValueError when a canonical file lacks a required column (an NHIS file always has them)."""
    if source == "nhis":
        return
    keys = {canonical_key(c) for c in header}
    missing = [c for c in ("person_id", "sex") if c not in keys]
    missing += ["age or age_group" for g in schema.REQUIRED_ONE_OF if not keys & set(g)]
    if missing:
        raise ValueError(
            f"{path}: not a checkup file: required columns missing ({', '.join(missing)}); "
            "expected canonical column names or the NHIS Korean headers"
        )
