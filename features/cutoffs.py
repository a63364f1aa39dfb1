"""Clinical cut-offs, declared once.

Every number that says where a measure turns borderline or diseased lives here. Eligibility
(`features.eligibility`), the blood-pressure stage feature (`features.derive.bp_category`), the
clinician's classes and judgement texts (`features.labels`), the diabetes input of the published
equations (`models.baselines`), the reasons of the monotone constraints (`models.outcomes`) and the
report's what-if targets (`serving.report`) import them; text that shows a cut-off is formatted from
these constants, never typed again. Sources are in docs/clinical-sources.md:

* the national checkup's result-judgement table (건강검진 실시기준, 검사항목별 판정기준): for each
  measure the start of 정상B (borderline) and of 질환의심 (disease suspected). Its disease cut-offs
  are also the definitions of the outcomes (contract section 2): a checkup at or beyond one already
  has the disease, so the outcome is not a first diagnosis to predict;
* the Korean Society of Hypertension (2022) blood-pressure stages;
* the Korean Society for the Study of Obesity (KSSO 2022) BMI classes and abdominal obesity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# -- disease cut-offs (질환의심): the outcome definitions -------------------------------------------

GLUCOSE_DIABETES = 126.0  # fasting glucose, mg/dL, at or above
SBP_HYPERTENSION = 140.0  # mmHg, at or above
DBP_HYPERTENSION = 90.0  # mmHg, at or above
TC_HIGH = 240.0  # total cholesterol, mg/dL, at or above
LDL_HIGH = 160.0  # mg/dL, at or above
TG_HIGH = 200.0  # triglycerides, mg/dL, at or above
HDL_LOW = 40.0  # mg/dL, below
EGFR_CKD = 60.0  # mL/min/1.73 m², below
URINE_PROTEIN_1PLUS = 3  # dipstick code (features.schema) of 1+, at or above
CREATININE_HIGH = 1.5  # mg/dL, above (the cut-off itself is still normal)

# -- borderline cut-offs (정상B starts here) -----------------------------------------------------

SBP_ELEVATED = 120.0
DBP_ELEVATED = 80.0
GLUCOSE_BORDERLINE = 100.0
TC_BORDERLINE = 200.0
LDL_BORDERLINE = 130.0
TG_BORDERLINE = 150.0
HDL_BORDERLINE = 60.0  # below
# An optimal LDL, below the borderline: the level Korean lipid guidelines aim at for most people (the
# report's what-if target).
LDL_OPTIMAL = 100.0
# KSoLA 2022: LDL 190 mg/dL or more is "very high", a statin whatever the other risks, and a reason
# to consider familial hypercholesterolemia.
LDL_VERY_HIGH = 190.0
URINE_PROTEIN_TRACE = 2  # dipstick code of ±


@dataclass(frozen=True)
class Cut:
    """One measure's row of the judgement table, for one sex or both.

    `high_is_bad`: values at or above the cut-offs are abnormal (below them for HDL, eGFR and
    haemoglobin). `strict`: the cut-off itself is still normal (creatinine > 1.5)."""

    high_is_bad: bool
    borderline: float | None
    disease: float | None
    strict: bool = False

    def beyond(self, value: float, cut: float | None) -> bool:
        if cut is None:
            return False
        if self.high_is_bad:
            return value > cut if self.strict else value >= cut
        return value < cut

    def level(self, value: float | None) -> str | None:
        """ "normal", "borderline" or "disease"; None for a missing value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.beyond(value, self.disease):
            return "disease"
        if self.beyond(value, self.borderline):
            return "borderline"
        return "normal"


# The top of the judgement table's normal haemoglobin (g/dL): above it is no anaemia, but not normal
# either (polycythaemia, dehydration, smoking); the table's low cut-offs are in JUDGEMENT_CUTS.
HEMOGLOBIN_HIGH: dict[str, float] = {"M": 16.5, "F": 15.5}

# KSSO abdominal obesity: waist at or above these (cm); the judgement table uses the same.
WAIST_ABDOMINAL_OBESITY: dict[str, float] = {"M": 90.0, "F": 85.0}

# The judgement table: feature -> row, or {sex: row} where it differs by sex.
JUDGEMENT_CUTS: dict[str, Cut | dict[str, Cut]] = {
    "sbp": Cut(True, SBP_ELEVATED, SBP_HYPERTENSION),
    "dbp": Cut(True, DBP_ELEVATED, DBP_HYPERTENSION),
    "bmi": Cut(True, 25.0, 30.0),
    "waist_cm": {sex: Cut(True, cm, None) for sex, cm in WAIST_ABDOMINAL_OBESITY.items()},
    "hemoglobin": {"M": Cut(False, 13.0, 12.0), "F": Cut(False, 12.0, 10.0)},
    "fasting_glucose": Cut(True, GLUCOSE_BORDERLINE, GLUCOSE_DIABETES),
    "total_cholesterol": Cut(True, TC_BORDERLINE, TC_HIGH),
    "hdl": Cut(False, HDL_BORDERLINE, HDL_LOW),
    "triglycerides": Cut(True, TG_BORDERLINE, TG_HIGH),
    "ldl": Cut(True, LDL_BORDERLINE, LDL_HIGH),
    "ast": Cut(True, 41.0, 51.0),
    "alt": Cut(True, 36.0, 46.0),
    "ggt": {"M": Cut(True, 64.0, 78.0), "F": Cut(True, 36.0, 46.0)},
    "urine_protein": Cut(True, URINE_PROTEIN_TRACE, URINE_PROTEIN_1PLUS),
    "serum_creatinine": Cut(True, None, CREATININE_HIGH, strict=True),
    "egfr": Cut(False, None, EGFR_CKD),
}

# -- the low ends the judgement table leaves out ---------------------------------------------------

# A fasting glucose or a blood pressure this low is not "normal" (the table has upper cut-offs only).
GLUCOSE_LOW = 70.0  # mg/dL, below: hypoglycemia (Korean Diabetes Association; below 54 is level 2)
SBP_LOW = 90.0  # mmHg, below: hypotension (with DBP_LOW)
DBP_LOW = 60.0
# KSH 2022: at this age or older blood pressure is lowered to under 140/90 at most (150 systolic for
# some), not to the normal range (falls, orthostatic hypotension).
VERY_OLD_AGE = 80.0
# Korean Diabetes Association (2023): the fasting glucose a person with diabetes is treated to.
GLUCOSE_TARGET = (80.0, 130.0)  # mg/dL, both ends inside

# -- values that need attention now --------------------------------------------------------------


@dataclass(frozen=True)
class Critical:
    """A value that needs prompt clinical evaluation, which no one-year risk describes: at or beyond
    `bound` (above when `high`, below otherwise)."""

    feature: str
    high: bool
    bound: float

    def reached(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        return value >= self.bound if self.high else value < self.bound


# KSH 2022 severe hypertension (>= 180/110: assess for urgency or emergency); a fasting glucose of
# 300 or more (ketoacidosis, hyperosmolar state) or under 54 (level 2 hypoglycemia); eGFR under 15
# (KDIGO G5, kidney failure); haemoglobin under 8 g/dL (WHO severe anaemia); AST or ALT of 500 U/L
# or more (over ten times the table's normal); triglycerides of 1000 mg/dL or more (acute pancreatitis).
CRITICAL: tuple[Critical, ...] = (
    Critical("sbp", True, 180.0),
    Critical("dbp", True, 110.0),
    Critical("fasting_glucose", True, 300.0),
    Critical("fasting_glucose", False, 54.0),
    Critical("egfr", False, 15.0),
    Critical("hemoglobin", False, 8.0),
    Critical("ast", True, 500.0),
    Critical("alt", True, 500.0),
    Critical("triglycerides", True, 1000.0),
)


# -- Korean Society of Hypertension (2022) stages ------------------------------------------------

# Stage -> (SBP lower bound, DBP lower bound), lowest stage first. A reading is in the highest stage
# that either of its numbers reaches; "elevated" is reached by SBP alone (its DBP is still < 80).
BP_STAGE_BOUNDS: dict[str, tuple[float, float]] = {
    "normal": (-math.inf, -math.inf),
    "elevated": (SBP_ELEVATED, math.inf),
    "prehypertension": (130.0, DBP_ELEVATED),
    "stage_1": (SBP_HYPERTENSION, DBP_HYPERTENSION),
    "stage_2": (160.0, 100.0),
}

# -- KSSO BMI classes (kg/m²) ----------------------------------------------------------------------

# Class -> lower bound (inclusive), lowest first: the Asian classes, lower than the WHO ones because
# Koreans carry more risk at the same BMI.
BMI_CLASS_LOWS: dict[str, float] = {
    "underweight": -math.inf,
    "normal": 18.5,
    "pre_obesity": 23.0,
    "obesity_1": 25.0,
    "obesity_2": 30.0,
    "obesity_3": 35.0,
}


def number(x: float) -> str:
    """A cut-off as text shows it: 126, not 126.0; 18.5 stays 18.5."""
    return f"{x:g}"


def band_range(lows: list[float], i: int, step: float) -> str:
    """The range of band `i` among bands with lower bounds `lows` (ascending; an infinite bound is
    one the band cannot be reached by): "<120", "120–129", "≥160". `step` is the resolution the
    values are read at (1 mmHg, 0.1 kg/m²), so a band ends one step below the next one starts."""
    later = [b for b in lows[i + 1 :] if math.isfinite(b)]
    high = later[0] if later else None
    if not math.isfinite(lows[i]):
        return f"<{number(high)}" if high is not None else ""
    if high is None:
        return f"≥{number(lows[i])}"
    return f"{number(lows[i])}–{number(round(high - step, 6))}"
