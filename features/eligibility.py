"""Who is still at risk of a first diagnosis of each outcome (contract section 2).

Eligibility is a fact about a record, not about a model: the generator uses it to leave labels
empty, training to choose rows, and serving to say why an outcome does not apply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.derive import Columns, as_columns, egfr_ckd_epi_2021
from features.schema import OUTCOMES

# Disease cut-offs that already mean "has the disease" (clinical.md section 1.4).
GLUCOSE_DIABETES = 126.0
SBP_HYPERTENSION = 140.0
DBP_HYPERTENSION = 90.0
TC_HIGH = 240.0
LDL_HIGH = 160.0
TG_HIGH = 200.0
HDL_LOW = 40.0
EGFR_CKD = 60.0
URINE_PROTEIN_1PLUS = 3.0

REASONS: dict[str, dict[str, str]] = {
    "cvd": {
        "history_stroke": "history of stroke: not a first event",
        "history_heart_disease": "history of heart disease: not a first event",
    },
    "diabetes": {
        "history_diabetes": "already diagnosed with diabetes",
        "on_diabetes_medication": "on diabetes medication",
        "fasting_glucose": "fasting glucose >= 126 mg/dL is already in the diabetes range",
    },
    "hypertension": {
        "history_hypertension": "already diagnosed with hypertension",
        "on_antihypertensive": "on antihypertensive medication",
        "sbp": "blood pressure >= 140/90 mmHg is already in the hypertension range",
        "dbp": "blood pressure >= 140/90 mmHg is already in the hypertension range",
    },
    "dyslipidemia": {
        "history_dyslipidemia": "already diagnosed with dyslipidemia",
        "on_statin": "on a statin",
        "total_cholesterol": "total cholesterol >= 240 mg/dL is already in the disease range",
        "ldl": "LDL cholesterol >= 160 mg/dL is already in the disease range",
        "triglycerides": "triglycerides >= 200 mg/dL are already in the disease range",
        "hdl": "HDL cholesterol < 40 mg/dL is already in the disease range",
    },
    "ckd": {
        "egfr": "eGFR < 60 mL/min/1.73m2 already meets the CKD definition",
        "urine_protein": "urine protein >= 1+ already meets the CKD definition",
    },
}


# The same reasons in Korean, key for key (the clinician report speaks both).
REASONS_KO: dict[str, dict[str, str]] = {
    "cvd": {
        "history_stroke": "뇌졸중 과거력이 있어 첫 발생 예측 대상이 아님",
        "history_heart_disease": "심장병 과거력이 있어 첫 발생 예측 대상이 아님",
    },
    "diabetes": {
        "history_diabetes": "이미 당뇨병을 진단받음",
        "on_diabetes_medication": "당뇨약 복용 중",
        "fasting_glucose": "공복혈당 126 mg/dL 이상으로 이미 당뇨병 범위",
    },
    "hypertension": {
        "history_hypertension": "이미 고혈압을 진단받음",
        "on_antihypertensive": "고혈압약 복용 중",
        "sbp": "혈압 140/90 mmHg 이상으로 이미 고혈압 범위",
        "dbp": "혈압 140/90 mmHg 이상으로 이미 고혈압 범위",
    },
    "dyslipidemia": {
        "history_dyslipidemia": "이미 이상지질혈증을 진단받음",
        "on_statin": "스타틴 복용 중",
        "total_cholesterol": "총콜레스테롤 240 mg/dL 이상으로 이미 질환 범위",
        "ldl": "LDL 콜레스테롤 160 mg/dL 이상으로 이미 질환 범위",
        "triglycerides": "중성지방 200 mg/dL 이상으로 이미 질환 범위",
        "hdl": "HDL 콜레스테롤 40 mg/dL 미만으로 이미 질환 범위",
    },
    "ckd": {
        "egfr": "eGFR 60 mL/min/1.73m² 미만으로 이미 만성콩팥병 기준에 해당",
        "urine_protein": "요단백 1+ 이상으로 이미 만성콩팥병 기준에 해당",
    },
}
assert {o: set(r) for o, r in REASONS_KO.items()} == {o: set(r) for o, r in REASONS.items()}


def reason_text(reason: str, lang: str) -> str:
    """A reason as `applicability` gives it (English), in the asked language."""
    if lang == "en":
        return reason
    for outcome, reasons in REASONS.items():
        for key, text in reasons.items():
            if text == reason:
                return REASONS_KO[outcome][key]
    return reason


def _conditions(df: "pd.DataFrame | Columns") -> dict[str, dict[str, np.ndarray]]:
    """Per outcome, per reason key: True where that reason makes the outcome not applicable.

    A missing value never excludes: an unknown history counts as none, an unmeasured lab as normal.
    """
    cols = as_columns(df)

    def col(name: str) -> np.ndarray:
        return cols[name] if name in cols else np.full(cols.n, np.nan)

    def flag(name: str) -> np.ndarray:
        return col(name) == 1

    def at_least(name: str, cut: float) -> np.ndarray:
        return col(name) >= cut

    egfr = col("egfr") if "egfr" in cols else egfr_ckd_epi_2021(cols)
    return {
        "cvd": {"history_stroke": flag("history_stroke"),
                "history_heart_disease": flag("history_heart_disease")},
        "diabetes": {"history_diabetes": flag("history_diabetes"),
                     "on_diabetes_medication": flag("on_diabetes_medication"),
                     "fasting_glucose": at_least("fasting_glucose", GLUCOSE_DIABETES)},
        "hypertension": {"history_hypertension": flag("history_hypertension"),
                         "on_antihypertensive": flag("on_antihypertensive"),
                         "sbp": at_least("sbp", SBP_HYPERTENSION),
                         "dbp": at_least("dbp", DBP_HYPERTENSION)},
        "dyslipidemia": {"history_dyslipidemia": flag("history_dyslipidemia"),
                         "on_statin": flag("on_statin"),
                         "total_cholesterol": at_least("total_cholesterol", TC_HIGH),
                         "ldl": at_least("ldl", LDL_HIGH),
                         "triglycerides": at_least("triglycerides", TG_HIGH),
                         "hdl": col("hdl") < HDL_LOW},
        "ckd": {"egfr": egfr < EGFR_CKD,
                "urine_protein": at_least("urine_protein", URINE_PROTEIN_1PLUS)},
    }


def applicability(df: "pd.DataFrame | Columns", outcomes: tuple[str, ...] = OUTCOMES
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per outcome: (applies, reason) arrays; reason is the first listed reason it does not apply."""
    conds = _conditions(df)
    out = {}
    for o in outcomes:
        items = list(conds[o].items())
        n = len(items[0][1])
        applies = np.ones(n, dtype=bool)
        reason = np.full(n, None, dtype=object)
        # Reverse order so the first listed reason wins where several hold.
        for key, c in reversed(items):
            applies &= ~c
            reason[c] = REASONS[o][key]
        out[o] = (applies, reason)
    return out


def eligibility(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES) -> pd.DataFrame:
    """Boolean frame, one column per outcome: True where the outcome applies to the record."""
    both = applicability(df, outcomes)
    return pd.DataFrame({o: both[o][0] for o in outcomes}, index=df.index)


def ineligibility_reasons(df: pd.DataFrame, outcomes: tuple[str, ...] = OUTCOMES) -> pd.DataFrame:
    """String frame, one column per outcome: the first reason it does not apply, else None."""
    both = applicability(df, outcomes)
    return pd.DataFrame({o: both[o][1] for o in outcomes}, index=df.index)
