"""The canonical checkup record, declared once.

Every other place that needs a field's name, unit, plausible range or codes reads it from here:
the Great Expectations suite (`features.validation.build_suite`), the fast per-record validators
(`features.validation.check_records`), the API request models, the readers and the reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["id", "date", "sex", "int", "float", "code"]

# -- sex: the record's codes and every spelling accepted for them ---------------------------------

MALE, FEMALE = "M", "F"
# The record's codes and their words; the words are also FHIR AdministrativeGender codes.
SEX_WORDS: dict[str, str] = {MALE: "male", FEMALE: "female"}
# NHIS 성별코드.
NHIS_SEX_CODES: dict[int, str] = {1: MALE, 2: FEMALE}
# What an API request may send (contract section 1): the record's codes and the NHIS codes, as
# numbers or text. Nothing looser: a request is typed by its sender.
SEX_CODES: dict[str | int, str] = {
    **{c: c for c in SEX_WORDS},
    **{k: v for k, v in NHIS_SEX_CODES.items()},
    **{str(k): v for k, v in NHIS_SEX_CODES.items()},
}
# What a file may hold, case-folded: also the words in English and Korean, and the NHIS codes as
# a float column prints them ("1.0"), since spreadsheets and exports write them so.
SEX_TOKENS: dict[str, str] = {
    **{str(k).casefold(): v for k, v in SEX_CODES.items()},
    **{w: c for c, w in SEX_WORDS.items()},
    **{f"{k}.0": v for k, v in NHIS_SEX_CODES.items()},
    "남": MALE,
    "남자": MALE,
    "여": FEMALE,
    "여자": FEMALE,
}
# The accepted spellings, as messages name them.
SEX_CODES_TEXT = (
    "/".join(SEX_WORDS)
    + ", "
    + "/".join(SEX_WORDS.values())
    + ", "
    + ", ".join(f"{k} = {v}" for k, v in NHIS_SEX_CODES.items())
)  # "M/F, male/female, 1 = M, 2 = F"
NHIS_SEX_TEXT = "NHIS code " + ", ".join(f"{k} = {v}" for k, v in NHIS_SEX_CODES.items())

# -- dates -----------------------------------------------------------------------------------------

# The plausible exam dates are EXAM_DATE_MIN .. today (contract section 1); a missing one is today.
EXAM_DATE_MIN = dt.date(2000, 1, 1)
EXAM_DATE_RANGE_TEXT = f"between {EXAM_DATE_MIN.isoformat()} and today"


def latest_today() -> dt.date:
    """Today's date where it is latest on Earth (UTC+14): the upper bound of a plausible exam date.

    A server whose clock runs on UTC is still on yesterday for the first nine hours of a day in
    Seoul; bounding by its own date refused every same-day checkup sent in those hours."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=14))).date()


@dataclass(frozen=True)
class Field:
    """One column of the canonical record.

    `low`/`high` bound the physiologically plausible range (inclusive); a value outside it is
    rejected. `codes` lists the allowed values of a coded field with their meaning. `critical`
    marks fields whose failure makes `checkup-risk validate` exit 1.
    """

    name: str
    kind: Kind
    label_en: str
    label_ko: str
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    codes: dict[int | str, str] = field(default_factory=dict)
    required: bool = False
    critical: bool = True

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float", "code")


_BINARY: dict[int | str, str] = {0: "no", 1: "yes"}

FIELDS: tuple[Field, ...] = (
    Field("person_id", "id", "Person ID", "개인 식별자", required=True),
    Field("exam_date", "date", "Exam date", "검진일"),
    Field("sex", "sex", "Sex", "성별", codes={c: w for c, w in SEX_WORDS.items()}, required=True),
    # A float: an age computed from a birth date carries a fraction (contract section 1).
    Field("age", "float", "Age", "나이", "years", 20, 100),
    Field(
        "age_group",
        "code",
        "Age band (NHIS 5-year code)",
        "연령대코드",
        codes={c: f"{5 * c - 5}-{5 * c - 1}" if c < 18 else "85+" for c in range(5, 19)},
    ),
    Field("height_cm", "float", "Height", "신장", "cm", 120, 220),
    Field("weight_kg", "float", "Weight", "체중", "kg", 25, 250),
    Field("waist_cm", "float", "Waist circumference", "허리둘레", "cm", 40, 180),
    Field("sbp", "float", "Systolic blood pressure", "수축기혈압", "mmHg", 60, 280),
    Field("dbp", "float", "Diastolic blood pressure", "이완기혈압", "mmHg", 30, 180),
    Field("fasting_glucose", "float", "Fasting glucose", "공복혈당", "mg/dL", 30, 700),
    Field("total_cholesterol", "float", "Total cholesterol", "총콜레스테롤", "mg/dL", 50, 600),
    Field("triglycerides", "float", "Triglycerides", "중성지방", "mg/dL", 10, 5000),
    Field("hdl", "float", "HDL cholesterol", "HDL 콜레스테롤", "mg/dL", 5, 200),
    Field("ldl", "float", "LDL cholesterol", "LDL 콜레스테롤", "mg/dL", 5, 500),
    Field("hemoglobin", "float", "Hemoglobin", "혈색소", "g/dL", 3, 25),
    Field(
        "urine_protein",
        "code",
        "Urine protein (dipstick)",
        "요단백",
        codes={1: "-", 2: "±", 3: "1+", 4: "2+", 5: "3+", 6: "4+"},
    ),
    Field("serum_creatinine", "float", "Serum creatinine", "혈청크레아티닌", "mg/dL", 0.1, 20),
    Field("ast", "float", "AST", "AST(SGOT)", "U/L", 1, 5000),
    Field("alt", "float", "ALT", "ALT(SGPT)", "U/L", 1, 5000),
    Field("ggt", "float", "Gamma-GTP", "감마지티피", "U/L", 1, 5000),
    Field(
        "smoking_status",
        "code",
        "Smoking",
        "흡연상태",
        codes={1: "never", 2: "former", 3: "current"},
    ),
    Field("drinking", "code", "Alcohol use", "음주여부", codes=_BINARY),
    Field("history_stroke", "code", "History of stroke", "뇌졸중 과거력", codes=_BINARY),
    Field("history_heart_disease", "code", "History of heart disease", "심장병 과거력", codes=_BINARY),
    Field("history_hypertension", "code", "History of hypertension", "고혈압 과거력", codes=_BINARY),
    Field("history_diabetes", "code", "History of diabetes", "당뇨병 과거력", codes=_BINARY),
    Field("history_dyslipidemia", "code", "History of dyslipidemia", "이상지질혈증 과거력", codes=_BINARY),
    # Not on the NHIS questionnaire (a file leaves it blank); FHIR reads it from a CKD Condition.
    Field("history_ckd", "code", "History of chronic kidney disease", "만성콩팥병 과거력", codes=_BINARY),
    Field("on_antihypertensive", "code", "on antihypertensive drugs", "고혈압약 복용", codes=_BINARY),
    Field("on_diabetes_medication", "code", "on diabetes drugs", "당뇨약 복용", codes=_BINARY),
    Field("on_statin", "code", "on a statin", "스타틴 복용", codes=_BINARY),
    Field("family_history_cvd", "code", "Family history of CVD", "심뇌혈관질환 가족력", codes=_BINARY),
    Field("family_history_diabetes", "code", "Family history of diabetes", "당뇨병 가족력", codes=_BINARY),
    Field(
        "activity_days_per_week",
        "int",
        "Days a week with 30 min moderate activity",
        "주당 중강도 신체활동 일수",
        "days/week",
        0,
        7,
    ),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.numeric)

PERSON_ID_MAX_LEN = 64
# A control character in an id is a corrupted export, never part of a person's id (it would also be
# echoed into outputs and logs as it is).
PERSON_ID_CONTROL = r"[\x00-\x1f\x7f]"
PERSON_ID_CONTROL_TEXT = "holds a control character"

# (field that must be lower, field that must be higher): checked only when both are present.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (("dbp", "sbp"),)

# The plausible adult range of a BMI derived from height and weight (kg/m²). The fields above bound
# each input on its own, so their ratio can still be impossible (121 cm with 249 kg is BMI 170).
# Below about 12 an adult does not survive for long (starvation); above 70 is vanishingly rare at a
# health checkup. Such a BMI is not refused (each input is plausible alone): the report adds a note
# and /score a warning to check height and weight.
BMI_PLAUSIBLE: tuple[float, float] = (12.0, 70.0)


def implausible_bmi(height_cm: float | None, weight_kg: float | None) -> float | None:
    """The BMI of this height and weight when it lies outside BMI_PLAUSIBLE, else None."""
    if height_cm is None or weight_kg is None:
        return None
    bmi = float(weight_kg) / (float(height_cm) / 100.0) ** 2
    return None if BMI_PLAUSIBLE[0] <= bmi <= BMI_PLAUSIBLE[1] else bmi


# At least one column of each group must be present in every record.
REQUIRED_ONE_OF: tuple[tuple[str, ...], ...] = (("age", "age_group"),)

# Key inputs whose absence a response mentions; the models still score without them.
KEY_INPUTS: tuple[str, ...] = (
    "sbp",
    "dbp",
    "fasting_glucose",
    "total_cholesterol",
    "hdl",
    "triglycerides",
    "serum_creatinine",
    "urine_protein",
    "height_cm",
    "weight_kg",
    "smoking_status",
)

# What a file-wide absence of a key input costs, said by `validate` and `score` (the models still
# score without it, as missing values).
KEY_INPUT_EFFECTS: dict[str, str] = {
    "sbp": "hypertension and cvd risks use no systolic blood pressure",
    "dbp": "hypertension and cvd risks use no diastolic blood pressure",
    "fasting_glucose": "diabetes risks use no glucose",
    "total_cholesterol": "dyslipidemia and cvd risks use no total cholesterol",
    "hdl": "dyslipidemia and cvd risks use no HDL cholesterol",
    "triglycerides": "dyslipidemia risks use no triglycerides",
    "serum_creatinine": "ckd risks use no eGFR (no creatinine)",
    "urine_protein": "ckd risks use no proteinuria",
    "height_cm": "no BMI for any risk (no height)",
    "weight_kg": "no BMI for any risk (no weight)",
    "smoking_status": "risks use no smoking status",
}
assert set(KEY_INPUT_EFFECTS) == set(KEY_INPUTS)

OUTCOMES: tuple[str, ...] = ("cvd", "diabetes", "hypertension", "dyslipidemia", "ckd")


def label_column(outcome: str) -> str:
    return f"{outcome}_1y"


def true_risk_column(outcome: str) -> str:
    return f"{outcome}_1y_true_risk"


def age_group_midpoint(code):
    """Band midpoint in years for NHIS age codes, scalar or array (5 = 20-24 -> 22; 18 = 85+ -> 87)."""
    return np.where(np.asarray(code) == 18, 87.0, 5.0 * np.asarray(code, dtype=float) - 3.0)


def age_to_group(age: float) -> int:
    """NHIS 5-year band code for an age in years."""
    return int(min(18, max(5, age // 5 + 1)))


# An age that moves by more than this many years apart from the time between two checkups of one
# person says they may not be one person: over L years a whole-year age (floored or rounded) moves
# by floor(L) or ceil(L), never a year or more from L.
AGE_SLACK_YEARS = 1.0


def age_spans(age: object, age_group: object) -> tuple[np.ndarray, np.ndarray]:
    """(youngest, oldest) ages each checkup allows: its age, or the span of its 5-year `age_group`
    (code c is ages 5c - 5 to 5c - 1; 18 is 85+); NaN where it gives neither. Arrays or scalars
    (None is missing)."""
    years = np.asarray(age, dtype=float)
    code = np.asarray(age_group, dtype=float)
    band_hi = np.where(code < 18, 5.0 * code, 120.0)
    return np.where(np.isnan(years), 5.0 * code - 5.0, years), np.where(np.isnan(years), band_hi, years)


def ages_disagree(
    earlier: tuple[np.ndarray, np.ndarray], later: tuple[np.ndarray, np.ndarray], years: object
) -> np.ndarray:
    """Where two checkups' ages (`age_spans`) cannot be one person's `years` apart (False where an
    age or the years are missing)."""
    (lo_a, hi_a), (lo_b, hi_b), gap = earlier, later, np.asarray(years, dtype=float)
    fits = (lo_b - hi_a - AGE_SLACK_YEARS <= gap) & (gap <= hi_b - lo_a + AGE_SLACK_YEARS)
    return ~fits & ~np.isnan(lo_a) & ~np.isnan(lo_b) & ~np.isnan(gap)


# A made-up, typical record (no real person): the documented example for the API, the MLflow
# signature's input example, and the curl command printed by `serve`.
EXAMPLE_RECORD: dict[str, object] = {
    "person_id": "example-0001",
    "exam_date": "2025-06-02",
    "sex": "M",
    "age": 54,
    "height_cm": 171.2,
    "weight_kg": 76.4,
    "waist_cm": 88.0,
    "sbp": 134,
    "dbp": 86,
    "fasting_glucose": 108,
    "total_cholesterol": 212,
    "triglycerides": 168,
    "hdl": 44,
    "ldl": 134,
    "hemoglobin": 15.1,
    "urine_protein": 1,
    "serum_creatinine": 0.98,
    "ast": 27,
    "alt": 33,
    "ggt": 52,
    "smoking_status": 3,
    "drinking": 1,
    "history_stroke": 0,
    "history_heart_disease": 0,
    "history_hypertension": 0,
    "history_diabetes": 0,
    "history_dyslipidemia": 0,
    "on_antihypertensive": 0,
    "on_diabetes_medication": 0,
    "on_statin": 0,
    "family_history_cvd": 1,
    "family_history_diabetes": 0,
    "activity_days_per_week": 2,
}
