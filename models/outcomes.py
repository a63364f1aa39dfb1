"""The outcomes the bundle predicts, and the clinical directions that are certain for each.

Eligibility (who is still at risk of a first diagnosis) is a fact about the record and lives in
`features.eligibility`; this module adds what a model needs: labels and monotone constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.cutoffs import EGFR_CKD, GLUCOSE_DIABETES, LDL_HIGH, SBP_HYPERTENSION, number
from features.schema import OUTCOMES, label_column, true_risk_column

# Model features that move when a clinical input rises at every checkup of a person (its level):
# a guarantee that risk never falls as the input rises needs the same direction on each of them.
# Changes since the last checkup (delta_*, pct_change_egfr) do not move when the whole history
# rises, so they are not coupled (derive.py keeps eGFR's change a percentage for that reason).
_RISES_WITH: dict[str, dict[str, int]] = {
    "age": {"age_years": 1, "egfr": -1},  # eGFR falls as age rises at fixed creatinine (CKD-EPI)
    "sbp": {"sbp": 1, "pulse_pressure": 1, "bp_category": 1},
    "fasting_glucose": {"fasting_glucose": 1, "tyg_index": 1},
    "ldl": {"ldl": 1, "last_ldl": 1},
    "smoking": {"smoking_status": 1, "current_smoker": 1},
}


# Risk categories, lowest first (`Outcome.category`); every reader of a category keys on these.
CATEGORIES: tuple[str, ...] = ("low", "moderate", "high", "very_high")


@dataclass(frozen=True)
class Direction:
    """A monotone constraint on one model feature for one outcome, and why it is certain."""

    feature: str
    direction: int  # +1: risk never falls as the feature rises; -1: never rises
    reason: str


# The one table of monotone constraints. Only directions that hold across the whole range of the
# feature among people still at risk are declared; everything else is learned from the data.
# Reviewed and left free on purpose:
# - age for diabetes and hypertension: first diagnoses among the still-undiagnosed flatten and can
#   fall in the oldest (survivor selection, competing death), so a rising direction is not certain;
# - eGFR for CVD: J-shaped (a high creatinine-based eGFR often means low muscle mass and frailty),
#   hence age is not guaranteed for CVD through eGFR, only through the age feature itself;
# - LDL for CVD: the outcome includes stroke, and low LDL goes with more haemorrhagic stroke;
# - glucose (and TyG) for CVD: J-shaped, low fasting glucose carries excess risk too;
# - delta_sbp, delta_fasting_glucose: at a fixed current value a larger rise means a lower earlier
#   value (a lower usual level, regression to the mean), and large swings either way mark risk.
MONOTONE: dict[str, tuple[Direction, ...]] = {
    "cvd": (
        Direction("age_years", 1, "MI and stroke incidence rises with age at every adult age"),
        Direction("sbp", 1, "risk rises log-linearly with SBP down to about 115 mmHg"),
        Direction(
            "pulse_pressure",
            1,
            "coupled to SBP; at a given SBP a wider pulse pressure (stiffer arteries) carries more risk",
        ),
        Direction("bp_category", 1, "a higher blood-pressure stage never means lower risk"),
        Direction("smoking_status", 1, "never < former < current smoker, at every level of the rest"),
        Direction("current_smoker", 1, "current smoking raises MI and stroke risk"),
    ),
    "diabetes": (
        Direction(
            "fasting_glucose",
            1,
            f"the diagnosis is fasting glucose >= {number(GLUCOSE_DIABETES)} mg/dL; a higher value is closer to it",
        ),
        Direction("tyg_index", 1, "coupled to glucose; insulin resistance (TyG) raises diabetes risk across its range"),
    ),
    "hypertension": (
        Direction("sbp", 1, f"the diagnosis is SBP >= {number(SBP_HYPERTENSION)} mmHg; a higher value is closer to it"),
        Direction("pulse_pressure", 1, "coupled to SBP (SBP - DBP), so a higher SBP at the same DBP never lowers risk"),
        Direction("bp_category", 1, "a higher blood-pressure stage is closer to hypertension"),
    ),
    "dyslipidemia": (
        Direction("ldl", 1, f"the diagnosis includes LDL >= {number(LDL_HIGH)} mg/dL; a higher value is closer to it"),
        Direction("last_ldl", 1, "a higher earlier LDL means a higher usual LDL level"),
    ),
    "ckd": (
        Direction("age_years", 1, "kidney function declines and CKD incidence rises with age"),
        Direction("egfr", -1, f"CKD is eGFR < {number(EGFR_CKD)}; a lower eGFR is closer to it"),
    ),
}


@dataclass(frozen=True)
class Outcome:
    name: str
    label_en: str
    label_ko: str
    # The SNOMED CT concept a FHIR RiskAssessment codes the outcome with, and its preferred term.
    snomed: str
    snomed_term: str
    # One-year risk cut-offs between low | moderate | high | very_high: about 1x, 2x and 4x the
    # Korean yearly rate of the outcome (docs/clinical-sources.md), so "moderate" means above average.
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
        """One of `CATEGORIES`: how many of the cut-offs the probability reaches."""
        return CATEGORIES[sum(probability >= cut for cut in self.category_cuts)]

    @property
    def directions(self) -> tuple[Direction, ...]:
        """This outcome's rows of the MONOTONE table."""
        return MONOTONE[self.name]

    @property
    def increasing_in(self) -> tuple[str, ...]:
        """Clinical inputs whose rise (at every checkup of a person) never lowers this outcome's risk:
        those whose every coupled feature carries the coupled direction in the MONOTONE table."""
        declared = {d.feature: d.direction for d in self.directions}
        return tuple(c for c, coupled in _RISES_WITH.items() if all(declared.get(f) == s for f, s in coupled.items()))

    def monotone_constraints(self, features: tuple[str, ...]) -> tuple[int, ...]:
        declared = {d.feature: d.direction for d in self.directions}
        return tuple(declared.get(f, 0) for f in features)


OUTCOME_SPECS: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome(
            "cvd",
            "Cardiovascular disease (MI or stroke)",
            "심뇌혈관질환(심근경색·뇌졸중)",
            # No single concept is "MI or stroke": the nearest one that holds both, broader than the
            # outcome (it also holds heart failure, arrhythmia, ...); the card and `text` say so.
            "49601007",
            "Disorder of cardiovascular system",
            (0.005, 0.01, 0.02),
            "CVD",
            "심뇌혈관질환",
        ),
        Outcome(
            "diabetes",
            "Type 2 diabetes",
            "제2형 당뇨병",
            "44054006",
            "Diabetes mellitus type 2",
            (0.01, 0.02, 0.04),
            "Diabetes",
            "당뇨병",
        ),
        Outcome(
            "hypertension",
            "Hypertension",
            "고혈압",
            "38341003",
            "Hypertensive disorder, systemic arterial",
            (0.08, 0.16, 0.32),
            "Hypertension",
            "고혈압",
        ),
        Outcome(
            "dyslipidemia",
            "Dyslipidemia",
            "이상지질혈증",
            "370992007",
            "Dyslipidemia",
            (0.05, 0.10, 0.20),
            "Dyslipidemia",
            "이상지질혈증",
        ),
        Outcome(
            "ckd",
            "Chronic kidney disease",
            "만성콩팥병",
            "709044004",
            "Chronic kidney disease",
            (0.007, 0.014, 0.028),
            "CKD",
            "만성콩팥병",
        ),
    )
}
assert tuple(OUTCOME_SPECS) == OUTCOMES
assert set(MONOTONE) == set(OUTCOMES)
