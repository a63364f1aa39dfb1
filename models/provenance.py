"""Where a bundle's training data came from: synthetic people or real checkups.

A model that learned from the synthetic cohort (`checkup-risk synth`, and the default model that
`checkup-risk serve` builds on a fresh machine) describes made-up people: its numbers must never
reach a clinician as if they were about a patient. The bundle records the provenance at fit time
(`RiskModel.training_data_`), the manifest keeps it, and the service, CDS, FHIR and the report say
it. The synthetic cohort is recognised by the generator's `<outcome>_1y_true_risk` columns (real
data cannot carry a person's true risk) or, when those were dropped, by its person ids (all of the
generator's form). A real file mistaken for synthetic only keeps its model from CDS cards and says
why; the other mistake would put made-up numbers before a clinician.

Persons and checkups are counted apart: a cohort of 2,000 people has many more checkup rows, and
"n" alone reads as people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from features.derive import AGE_BANDS, age_band
from features.schema import OUTCOMES, true_risk_column
from features.synth import synthetic_ids
from models.reference import MIN_ROWS

Kind = Literal["synthetic", "real", "unknown"]
KINDS: tuple[str, ...] = ("synthetic", "real", "unknown")


# Why a training file was judged synthetic (`detect`'s `basis`), in the words the card and `train` use.
BASIS_WORDS: dict[str, str] = {
    "true_risk_columns": "the file carries the generator's true-risk columns",
    "person_ids": "no true-risk columns, but every person_id has the form `checkup-risk synth` gives",
}


def unknown() -> dict[str, Any]:
    """The provenance of a bundle saved before provenance was recorded: nothing is claimed."""
    return {
        "kind": "unknown",
        "persons": None,
        "checkups": None,
        "first_exam": None,
        "last_exam": None,
        "basis": None,
        "sexes": None,
        "age_bands": None,
    }


def _iso_day(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def detect(records: pd.DataFrame) -> dict[str, Any]:
    """The provenance of a training frame: kind, persons, checkups and the exam-date range.

    `synthetic` when any `<outcome>_1y_true_risk` column is present (only the generator knows a
    person's true risk) or every person_id has the generator's form, `real` otherwise."""
    basis = (
        "true_risk_columns"
        if any(true_risk_column(o) in records.columns for o in OUTCOMES)
        else "person_ids"
        if "person_id" in records.columns and synthetic_ids(records["person_id"])
        else None
    )
    dates = (
        pd.to_datetime(records["exam_date"], errors="coerce")
        if "exam_date" in records.columns
        else pd.Series([], dtype="datetime64[ns]")
    )
    return {
        "kind": "synthetic" if basis else "real",
        "persons": int(records["person_id"].nunique()) if "person_id" in records.columns else None,
        "checkups": int(len(records)),
        "first_exam": _iso_day(dates.min()) if len(dates) else None,
        "last_exam": _iso_day(dates.max()) if len(dates) else None,
        "basis": basis,
        **population(records),
    }


def population(records: pd.DataFrame) -> dict[str, dict[str, int] | None]:
    """Who the model learned from: persons by sex, checkups by age band (`features.derive.AGE_BANDS`).
    A model fitted on women only had scored men with no word."""
    sexes = None
    if {"person_id", "sex"} <= set(records.columns):
        first = records.drop_duplicates("person_id")
        sexes = {s: int((first["sex"] == s).sum()) for s in ("F", "M")}
    bands = pd.Series(age_band(records)).value_counts()
    return {"sexes": sexes, "age_bands": {b: int(bands.get(b, 0)) for _, _, b in AGE_BANDS}}


# Fewer training persons of a sex, or checkups of an age band, than this: the model learned too
# little about such people for their risks to be more than an extrapolation (the reference
# percentiles' own minimum).
MIN_SEEN = MIN_ROWS
SEX_WORDS = {"F": "women", "M": "men"}
UNSEEN_LEAD = "the model's training data hold"  # how `unseen`'s English warning starts (CDS picks it out)


def unseen(info: Mapping[str, Any], sex: str | None, band: str | None, lang: str = "en") -> str | None:
    """The warning for a person of a sex or an age band the training data hardly hold, in English or
    Korean, else None (and None for a bundle that did not record its population)."""
    sexes, bands = info.get("sexes"), info.get("age_bands")
    if isinstance(sexes, Mapping) and sex in SEX_WORDS and (n := int(sexes.get(sex) or 0)) < MIN_SEEN:
        who = f"{n:,} {SEX_WORDS[sex]} (persons)"
        who_ko = f"{'남성' if sex == 'M' else '여성'} {n:,}명"
    elif isinstance(bands, Mapping) and band in bands and (n := int(bands.get(band) or 0)) < MIN_SEEN:
        who = f"{n:,} checkups of people aged {band}"
        who_ko = f"{band}세 검진 {n:,}건"
    else:
        return None
    if lang == "ko":
        learned = "배운 것이 없습니다" if n == 0 else "배운 것이 적습니다"
        return f"이 모델의 학습 데이터에는 {who_ko}만 있어 이런 분에 대해 {learned}: 아래 위험은 외삽 추정입니다"
    return (
        f"{UNSEEN_LEAD} {who}: it learned {'nothing' if n == 0 else 'little'} about people like "
        "this one, so these risks are an extrapolation"
    )


def normalise(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """A manifest's `training_data` as stored, or `unknown()` for an absent or unreadable one."""
    if not isinstance(info, Mapping) or info.get("kind") not in KINDS:
        return unknown()
    return {k: info.get(k) for k in unknown()}


def is_synthetic(info: Mapping[str, Any] | None) -> bool:
    return info is not None and bool(info) and info.get("kind") == "synthetic"


def _count(n: Any) -> str:
    return f"{int(n):,}" if n is not None else "?"


def _range(info: Mapping[str, Any]) -> str:
    first, last = info.get("first_exam"), info.get("last_exam")
    return f"{first}~{last}" if first and last else "?"


def summary_en(info: Mapping[str, Any]) -> str:
    """'synthetic data: 2,400 persons, 9,100 checkups, exams 2014-01-02~2021-12-30'."""
    if info.get("kind") == "unknown":
        return "training data not recorded (bundle predates provenance)"
    why = f" ({BASIS_WORDS['person_ids']})" if info.get("basis") == "person_ids" else ""
    return (
        f"{info['kind']} data: {_count(info.get('persons'))} persons, {_count(info.get('checkups'))} checkups, "
        f"exams {_range(info)}{why}"
    )


# One wording, reused by /score, FHIR, CDS and the report so that every channel says the same.
SYNTHETIC_WARNING = (
    "model trained on synthetic (simulated) people, not real patients: "
    "for demonstration and testing only, not for clinical use"
)


def synthetic_notice(info: Mapping[str, Any], lang: Literal["ko", "en", "both"] = "both") -> str:
    """The notice of a synthetic model, persons and checkups counted apart: Korean, English, or both
    (CDS cards carry both; a report speaks its own language only)."""
    persons, checkups, span = _count(info.get("persons")), _count(info.get("checkups")), _range(info)
    ko = (
        f"합성(가상) 데이터로 학습한 모델입니다: 가상 인물 {persons}명의 검진 {checkups}건({span})으로 "
        "학습했으며, 실제 환자 진료에 사용할 수 없습니다(시연·시험용)."
    )
    en = (
        f"This model learned from synthetic (simulated) people: {persons} persons, {checkups} checkups "
        f"({span}). Not for clinical use (demonstration and testing only)."
    )
    return {"ko": ko, "en": en}.get(lang) or f"{ko} · {en}"
