"""The outcomes the bundle predicts, and the clinical directions that are certain for each.

Eligibility (who is still at risk of a first diagnosis) is a fact about the record and lives in
`features.eligibility`; this module adds what a model needs: labels and monotone constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.schema import OUTCOMES, label_column, true_risk_column

# Features that move together with a rise in one clinical input: a monotone guarantee on the
# input needs the same direction on each of them (eGFR falls as age rises at fixed creatinine).
_RISES_WITH: dict[str, dict[str, int]] = {
    "age": {"age_years": 1, "egfr": -1},
    "sbp": {"sbp": 1, "pulse_pressure": 1, "bp_category": 1, "delta_sbp": 1},
    "fasting_glucose": {"fasting_glucose": 1, "tyg_index": 1, "delta_fasting_glucose": 1},
    "ldl": {"ldl": 1, "last_ldl": 1},
    "smoking": {"smoking_status": 1, "current_smoker": 1},
}


@dataclass(frozen=True)
class Outcome:
    name: str
    label_en: str
    label_ko: str
    snomed: str
    # Inputs whose rise never lowers this outcome's risk (clinically certain directions only).
    increasing_in: tuple[str, ...]
    # One-year risk cut-offs between low | moderate | high | very_high: about 1x, 2x and 4x the
    # Korean yearly rate of the outcome (clinical.md section 3), so "moderate" means above average.
    category_cuts: tuple[float, float, float]
    # Names short enough for a table header.
    short_en: str = ""
    short_ko: str = ""

    @property
    def label(self) -> str:
        return label_column(self.name)

    @property
    def true_risk(self) -> str:
        return true_risk_column(self.name)

    def category(self, probability: float) -> str:
        low, high, very_high = self.category_cuts
        if probability >= very_high:
            return "very_high"
        if probability >= high:
            return "high"
        if probability >= low:
            return "moderate"
        return "low"

    def monotone_constraints(self, features: tuple[str, ...]) -> tuple[int, ...]:
        directions: dict[str, int] = {}
        for clinical in self.increasing_in:
            directions.update(_RISES_WITH[clinical])
        return tuple(directions.get(f, 0) for f in features)


OUTCOME_SPECS: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("cvd", "Cardiovascular disease (MI or stroke)", "심뇌혈관질환(심근경색·뇌졸중)", "49601007",
                ("age", "sbp", "fasting_glucose", "ldl", "smoking"), (0.005, 0.01, 0.02), "CVD", "심뇌혈관질환"),
        Outcome("diabetes", "Type 2 diabetes", "제2형 당뇨병", "44054006", ("age", "fasting_glucose"),
                (0.01, 0.02, 0.04), "Diabetes", "당뇨병"),
        Outcome("hypertension", "Hypertension", "고혈압", "38341003", ("age", "sbp"), (0.08, 0.16, 0.32), "Hypertension",
                "고혈압"),
        Outcome("dyslipidemia", "Dyslipidemia", "이상지질혈증", "370992007", ("ldl",), (0.05, 0.10, 0.20), "Dyslipidemia",
                "이상지질혈증"),
        Outcome("ckd", "Chronic kidney disease", "만성콩팥병", "709044004", ("age",), (0.007, 0.014, 0.028), "CKD", "만성콩팥병"),
    )
}
assert tuple(OUTCOME_SPECS) == OUTCOMES
