"""The NHIS open-data checkup file (국민건강보험공단 건강검진정보): its headers and codes.

Headers are matched in any year's spelling, after removing whitespace and brackets and
case-folding (`normalise_header`), so ``연령대코드(5세단위)`` / ``연령대 코드(5세단위)`` and
``(혈청지오티)AST`` / ``혈청지오티(AST)`` are one column. The mapping to the canonical record:

- ``person_id`` = ``기준년도-가입자일련번호``, the serial zero-padded to 6 digits (``2020-000001``).
  The serial is a row number within one year's file; it does not link people across years.
- ``exam_date`` is not in the file: July 1 of 기준년도 (mid-year).
- 성별코드 1/2 -> ``sex`` M/F; 연령대코드 -> ``age_group`` (``age`` stays missing).
- 음주여부 0/1 or N/Y -> ``drinking`` 0/1; the lab and body columns map one to one.
- waist 999 (999.x) means "not measured": missing, counted in a note, not rejected.
- 시도코드, sight, hearing, the oral-exam columns, 데이터공개일자, 식후혈당 and unknown columns are
  ignored; an unknown column that nearly names a header the file lacks is an error naming it
  (`features.headers`).

The codes themselves (성별코드, 요단백, 흡연상태 ...) are the canonical record's codes
(`features.schema`), which were taken from this file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.coerce import DATE_DTYPE, missing_series, to_float
from features.rejects import Rejects
from features.schema import OUTCOMES, label_column, true_risk_column

R_NHIS_YEAR = "기준년도 (year) missing or not a year"
R_NHIS_SERIAL = "가입자일련번호 (serial number) missing or not an integer"

NOTE_ROUNDING = "height/weight are rounded to 5 cm / 5 kg in this source"
NOTE_NHIS_DATE = "exam_date is not in the NHIS file: set to July 1 of 기준년도"
NOTE_NHIS_ID = (
    "person_id is 기준년도-가입자일련번호, the serial zero-padded to 6 digits; it does not link people across years"
)
NOTE_NHIS_AGE = "age is not in the NHIS file: only the 5-year band (age_group)"
NOTE_NHIS_QUESTIONNAIRE = (
    "the NHIS open data hold no questionnaire (history of disease, medication, family history, activity): a disease "
    "already diagnosed or treated cannot be ruled out, so its risk is still given and means nothing for that person"
)


def normalise_header(name: object) -> str:
    """Header key: compatibility-folded (full-width brackets and letters, as Korean spreadsheets
    write them, are ASCII), whitespace, brackets, ``_`` and ``-`` removed, case-folded, BOM dropped."""
    text = unicodedata.normalize("NFKC", str(name).replace("\ufeff", ""))
    return re.sub(r"[\s()\[\]{}_\-]+", "", text).casefold()


# target -> spellings seen in the files (any spacing / case / bracket placement matches).
# `_year` and `_serial` are not record fields: they make person_id and exam_date.
NHIS_SPELLINGS: dict[str, tuple[str, ...]] = {
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
    # Other measures one syllable off a mapped header (식후혈당, post-meal glucose): known, not misspelt.
    "식후혈당",
)  # fmt: skip
NHIS_HEADER_MAP: dict[str, str] = {
    normalise_header(s): target for target, spellings in NHIS_SPELLINGS.items() for s in spellings
}
_NHIS_IGNORED_KEYS = frozenset(normalise_header(s) for s in _NHIS_IGNORED)
# The headers that mark a file as NHIS (and make its person_id).
_NHIS_KEY_TARGETS = ("_year", "_serial", "sex")
# NHIS writes 999 (999.x) for a waist that was not measured.
WAIST_NOT_MEASURED = 999


def detect_source(columns: Iterable[object]) -> str:
    """``"nhis"`` when the headers include NHIS 기준년도, 가입자일련번호 and 성별코드; else ``"canonical"``."""
    targets = {NHIS_HEADER_MAP.get(normalise_header(c)) for c in columns}
    return "nhis" if all(t in targets for t in _NHIS_KEY_TARGETS) else "canonical"


# Outcome labels added to an NHIS file by whoever linked its checkups to later diagnoses: read under
# their canonical names (`cvd_1y`, `cvd_1y_true_risk`), as in a canonical file.
_LABEL_KEYS: dict[str, str] = {normalise_header(c): c for o in OUTCOMES for c in (label_column(o), true_risk_column(o))}


def nhis_columns(columns: Iterable[object]) -> dict[str, str]:
    """Target -> the first NHIS column that holds it (columns the record does not use are left out;
    outcome label columns are kept under their canonical names)."""
    out: dict[str, str] = {}
    for c in columns:
        key = normalise_header(c)
        target = NHIS_HEADER_MAP.get(key) or _LABEL_KEYS.get(key)
        if target is not None and target not in out:
            out[target] = str(c)
    return out


def nhis_unknown(header: Iterable[object]) -> list[str]:
    """Columns that are neither mapped nor known to be unused (named in a note, checked for near misses)."""
    return [
        str(c)
        for c in header
        if normalise_header(c) not in NHIS_HEADER_MAP
        and normalise_header(c) not in _NHIS_IGNORED_KEYS
        and normalise_header(c) not in _LABEL_KEYS
    ]


def waist_not_measured(waist: np.ndarray) -> np.ndarray:
    """True where a waist value is NHIS's "not measured" (999 or 999.x)."""
    return (waist >= WAIST_NOT_MEASURED) & (waist < WAIST_NOT_MEASURED + 1)


def from_nhis(raw: pd.DataFrame, rej: Rejects, header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The raw NHIS columns renamed to record fields, with person_id and exam_date made from
    기준년도 and 가입자일련번호 (rows where either cannot be read are rejected), and the notes."""
    n = len(raw)
    by_target = {t: raw[c].reset_index(drop=True) for t, c in nhis_columns(raw.columns).items()}
    year_raw = by_target.pop("_year", missing_series(n))
    serial_raw = by_target.pop("_serial", missing_series(n))
    year, y_null, y_bad = to_float(year_raw)
    y_bad = y_bad | y_null | (year != np.round(year)) | (year < 1000) | (year > 9999)
    serial, s_null, s_bad = to_float(serial_raw)
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
    notes = [NOTE_NHIS_ID, NOTE_NHIS_DATE, NOTE_NHIS_AGE, NOTE_ROUNDING, NOTE_NHIS_QUESTIONNAIRE]
    unknown = nhis_unknown(header)
    if unknown:
        notes.append(f"ignored columns not used by the model: {', '.join(unknown)}")
    return named, notes
