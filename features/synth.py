"""A synthetic longitudinal cohort of Korean checkup examinees, with known one-year risks.

`generate_cohort(people, seed)` simulates each person wave by wave (one wave = one checkup) in the
canonical record of `features.schema`, and draws each outcome's label from a known risk function.

Design rules, and why:

* Physiology is driven by hidden person-level random effects, person slopes and AR(1) noise, so
  values persist within a person and drift realistically. The *risk*, however, is a function only
  of what the output file records: the checkup's own recorded values (after rounding and
  missingness) and the same person's earlier recorded checkups, with a documented fallback for a
  missing value (`risk_inputs`). So the true risk is the best any model could do from the file and
  the "oracle" is a fair ceiling. `true_risks(frame)` recomputes it from a written file.
* Trajectories are consistent: an event at one checkup (or in the unobserved second year of a
  biennial gap, or a diagnosis after a checkup that already showed the disease) shows up at later
  checkups as history, medication and treated values, and the person is no longer eligible.
* Everything is vectorised over people within a wave: Python loops run only over waves (at most
  8), outcomes and fields, never over people. Same seed, same frame.

Figures cited as "clinical.md" are from /work/shared/reference/clinical.md (sources given there).
SDs of labs are NOT published for Korea (clinical.md section 6); the spreads here are chosen to
give plausible ranges and the right prevalence of abnormal values, and are marked "chosen".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from features.derive import egfr_ckd_epi_2021
from features.eligibility import eligibility
from features.schema import BY_NAME, COLUMNS, OUTCOMES, label_column, true_risk_column

Arr = np.ndarray

# --------------------------------------------------------------------------------------------
# Target base rates: mean true risk over eligible checkups in the age range of TARGET_AGE_RANGES.
# --------------------------------------------------------------------------------------------

TARGET_RATES: dict[str, float] = {
    # MI 2.27 + ischaemic stroke 2.96 per 1,000 PY in 6.24 M NHIS-screened adults >= 40
    # (Jung et al., Healthcare 2024;12:2080; clinical.md section 3): ~0.5 %/yr at age >= 40.
    "cvd": 0.005,
    # Incident T2DM 10.4 per 1,000 PY in NHIS-HEALS adults without diabetes (Korean Diabetes Risk
    # Score, DMJ 2018;42:402; clinical.md section 3).
    "diabetes": 0.0104,
    # Incident hypertension 8.62 per 100 PY among normotensives aged 40-64 (Hong et al., PLoS One
    # 2020;15:e0230538; clinical.md section 3); 12.68 at >= 65 (HYPERTENSION_65PLUS_RATE).
    "hypertension": 0.0862,
    # No Korean incidence published (clinical.md section 6). Chosen: ~5 %/yr among people whose
    # lipids are below every cut-off, consistent with a 40 % adult prevalence (Dyslipidemia Fact
    # Sheet 2022) reached over a few decades of adult life.
    "dyslipidemia": 0.05,
    # No Korean incidence published (clinical.md section 6). Chosen: ~0.7 %/yr, consistent with a
    # CKD prevalence of 3-8 % (KNHANES; Park et al. JKMS 2016) rising steeply with age.
    "ckd": 0.007,
}

# Inclusive age range (years) in which each TARGET_RATES figure applies; None = no upper bound.
TARGET_AGE_RANGES: dict[str, tuple[int, int | None]] = {
    "cvd": (40, None),
    "diabetes": (20, None),
    "hypertension": (40, 64),
    "dyslipidemia": (20, None),
    "ckd": (20, None),
}

# Incident hypertension at >= 65 among normotensives (Hong et al. 2020, as above).
HYPERTENSION_65PLUS_RATE = 0.1268

# Exam years. 2011 rather than 2012 so that biennial examinees of both year parities fit 7 exams.
FIRST_YEAR = 2011
LAST_YEAR = 2024
MAX_EXAMS = 8

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _sigmoid(z: Arr) -> Arr:
    return 1.0 / (1.0 + np.exp(-z))


def _hinge(x: Arr, knot: float | Arr) -> Arr:
    """max(x - knot, 0): a threshold effect that starts at `knot`."""
    return np.maximum(np.asarray(x, dtype=float) - knot, 0.0)


def _below(x: Arr, knot: float | Arr) -> Arr:
    """max(knot - x, 0): a threshold effect below `knot`."""
    return np.maximum(knot - np.asarray(x, dtype=float), 0.0)


# --------------------------------------------------------------------------------------------
# Typical values by sex and age. They are the generator's population means (before person
# effects) and the risk functions' last-resort fallback for a value never recorded.
# --------------------------------------------------------------------------------------------


def bmi_mean(male: Arr, age: Arr) -> Arr:
    """Mean BMI: men peak in their 40s, women rise into old age; KNHANES 2018 M 24.6, F 23.2."""
    m = 24.7 + 0.01 * (age - 45) - 0.0012 * (age - 45) ** 2
    f = 23.0 + 0.06 * (age - 50) - 0.0009 * (age - 50) ** 2
    return np.where(male == 1, m, f)


def sbp_mean(male: Arr, age: Arr) -> Arr:
    """Untreated SBP at BMI 24 of a non-drinker; rises with age, steeper in women after 45
    (KNHANES VI means M 120.2 / F 116.0 mmHg, Kim et al. YMJ 2018, are reached with the BMI and
    drinking effects added)."""
    m = 111.5 + np.where(age < 45, 0.15, 0.35) * (age - 45)
    f = 106.0 + np.where(age < 45, 0.30, 0.60) * (age - 45)
    return np.where(male == 1, m, f)


def glucose_median(male: Arr, age: Arr) -> Arr:
    """Median fasting glucose (mg/dL); KNHANES 2016 mean 100.4 including diabetics."""
    return np.where(male == 1, 93.0, 90.0) * np.exp(0.0022 * (age - 45))


def ldl_mean(male: Arr, age: Arr) -> Arr:
    """LDL rises to midlife in men and after menopause in women (Park et al. KCJ 2015)."""
    m = 95.0 + 1.0 * np.clip(age - 20, 0, 25) - 0.5 * _hinge(age, 60)
    f = 95.0 + 0.2 * (age - 20) + 1.3 * np.clip(age - 45, 0, 15) - 0.5 * _hinge(age, 70)
    return np.where(male == 1, m, f)


def hdl_median(male: Arr, age: Arr) -> Arr:
    """HDL higher in women, falls with age (Park et al. KCJ 2015)."""
    return np.where(male == 1, 50.0 - 0.05 * (age - 45), 59.0 - 0.1 * _hinge(age, 50))


def tg_median(male: Arr, age: Arr) -> Arr:
    """TG median; in men it peaks around 50-54 (Park et al. KCJ 2015); KNHANES 2016 mean 144.8."""
    m = 95.0 + 1.2 * np.clip(age - 20, 0, 30) - 0.6 * _hinge(age, 55)
    f = 68.0 + 0.9 * _hinge(age, 35)
    return np.where(male == 1, m, f)


def egfr_mean(age: Arr) -> Arr:
    """Mean eGFR (CKD-EPI): slow loss before 40, ~0.9 mL/min/1.73m2 a year after."""
    return np.where(age < 40, 118.0 - 0.5 * (age - 20), 108.0 - 0.8 * (age - 40))


def typical_values(male: Arr, age: Arr) -> dict[str, Arr]:
    """Sex- and age-typical recorded values: the risk functions' fallback when a value was never
    recorded for the person."""
    bmi = bmi_mean(male, age)
    ldl = ldl_mean(male, age)
    hdl = hdl_median(male, age)
    tg = tg_median(male, age)
    sbp = sbp_mean(male, age) + 1.2 * (bmi - 24.0)
    return {
        "bmi": bmi,
        "weight_kg": bmi * np.where(male == 1, 1.70, 1.57) ** 2,
        "waist_cm": np.where(male == 1, 2.55 * bmi + 22.5, 2.3 * bmi + 22.5 + 0.12 * (age - 50)),
        "sbp": sbp,
        "dbp": np.where(male == 1, 78.5, 73.5) + 0.45 * (sbp - np.where(male == 1, 121.0, 115.0)),
        "fasting_glucose": glucose_median(male, age),
        "ldl": ldl,
        "hdl": hdl,
        "triglycerides": tg,
        "total_cholesterol": ldl + hdl + tg / 5.0,
        "egfr": egfr_mean(age),
        "urine_protein": np.ones_like(age, dtype=float),
        "ggt": np.where(male == 1, 30.0, 16.0) + 0.0 * age,
        "alt": np.where(male == 1, 22.0, 15.0) + 0.0 * age,
        "smoking_status": np.ones_like(age, dtype=float),
        "drinking": np.zeros_like(age, dtype=float),
        "family_history_cvd": np.zeros_like(age, dtype=float),
        "family_history_diabetes": np.zeros_like(age, dtype=float),
        "activity_days_per_week": np.full_like(age, 2.0, dtype=float),
    }


# --------------------------------------------------------------------------------------------
# Risk inputs: the recorded values with documented fallbacks
# --------------------------------------------------------------------------------------------

# Values that fall back, when missing, to the person's last recorded value, else to typical_values.
CARRIED_VALUES: tuple[str, ...] = (
    "weight_kg", "bmi", "waist_cm", "sbp", "dbp", "fasting_glucose", "total_cholesterol",
    "triglycerides", "hdl", "ldl", "egfr", "urine_protein", "ggt", "alt", "smoking_status",
    "drinking", "family_history_cvd", "family_history_diabetes", "activity_days_per_week",
)
# Flags where a missing value counts as 0 (as eligibility does: an unknown history is none).
FLAG_VALUES: tuple[str, ...] = (
    "history_stroke", "history_heart_disease", "history_hypertension", "history_diabetes",
    "history_dyslipidemia", "on_antihypertensive", "on_diabetes_medication", "on_statin",
)
# Change since the previous checkup (current minus previous recorded value; 0 if either is
# missing or there is no previous checkup). Same definition as derive's delta_* features.
DELTA_VALUES: tuple[str, ...] = ("weight_kg", "sbp", "fasting_glucose", "egfr")


def row_values(df: pd.DataFrame) -> dict[str, Arr]:
    """Per-record values the risk reads: the numeric record fields plus BMI and eGFR."""
    def num(name: str) -> Arr:  # an absent optional column counts as missing
        if name not in df.columns:
            return np.full(len(df), np.nan)
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)

    out = {f: num(f) for f in CARRIED_VALUES + FLAG_VALUES if f not in ("bmi", "egfr")}
    out["bmi"] = out["weight_kg"] / (num("height_cm") / 100.0) ** 2
    out["egfr"] = egfr_ckd_epi_2021(df)
    out["age"] = num("age")
    out["male"] = (df["sex"].astype(str).to_numpy() == "M").astype(float)
    return out


def risk_inputs(cur: Mapping[str, Arr], prev: Mapping[str, Arr], last: Mapping[str, Arr]) -> dict[str, Arr]:
    """The risk functions' inputs for a set of checkups.

    `cur`: this checkup's `row_values`; `prev`: the same person's previous checkup's row values
    (NaN at a first checkup); `last`: per value, the last non-missing value at an earlier checkup
    (NaN if none). Fallbacks: a missing value takes the last recorded one, else the sex/age
    typical value (`typical_values`); missing flags count as 0; deltas are 0 when not computable.
    """
    age, male = cur["age"], cur["male"]
    typical = typical_values(male, age)
    x: dict[str, Arr] = {"age": age, "male": male}
    for f in CARRIED_VALUES:
        v = np.where(np.isnan(cur[f]), last[f], cur[f])
        x[f] = np.where(np.isnan(v), typical[f], v)
    for f in FLAG_VALUES:
        x[f] = np.nan_to_num(cur[f], nan=0.0)
    for f in DELTA_VALUES:
        x[f"delta_{f}"] = np.nan_to_num(cur[f] - prev[f], nan=0.0)
    x["smoker"] = (x["smoking_status"] == 3).astype(float)
    x["former_smoker"] = (x["smoking_status"] == 2).astype(float)
    x["non_hdl"] = x["total_cholesterol"] - x["hdl"]
    return x


# --------------------------------------------------------------------------------------------
# Risk functions: one-year probability of a first diagnosis, from risk_inputs.
# Each is nonlinear (hinges, J-shapes, saturating terms), has interactions and uses the change
# since the previous checkup. Intercepts were tuned once (people=200000, seed=1) to TARGET_RATES.
# --------------------------------------------------------------------------------------------


def cvd_risk(x: Mapping[str, Arr]) -> Arr:
    """MI or stroke. Age (log-linear, flattening after 75), male sex, SBP above 115 weighted more
    in the young (age x SBP), smoking amplified by diabetes (smoking x diabetes), non-HDL, low HDL,
    low eGFR and proteinuria, a BMI J-shape, a recent SBP rise and weight loss."""
    age = x["age"]
    sbp_weight = np.clip(1.4 - 0.015 * (age - 55), 0.6, 2.0)
    z = (
        0.075 * (age - 55) - 0.03 * _hinge(age, 75)
        + 0.55 * x["male"]
        + 0.022 * _hinge(x["sbp"], 115) * sbp_weight
        + 0.25 * x["on_antihypertensive"]
        + 0.55 * x["smoker"] + 0.15 * x["former_smoker"]
        + 0.45 * x["history_diabetes"] + 0.45 * x["smoker"] * x["history_diabetes"]
        + 0.008 * _hinge(x["fasting_glucose"], 100)
        + 0.006 * (x["non_hdl"] - 140)
        + 0.025 * _below(x["hdl"], 50)
        + 0.03 * _below(x["egfr"], 75) + 0.5 * (x["urine_protein"] >= 3) + 0.2 * (x["urine_protein"] == 2)
        + 0.02 * np.minimum((x["bmi"] - 24.0) ** 2, 50.0)
        + 0.3 * x["family_history_cvd"] - 0.05 * x["activity_days_per_week"]
        - 0.15 * x["on_statin"]
        + 0.02 * np.clip(x["delta_sbp"], 0, 40)
        + 0.06 * np.clip(-x["delta_weight_kg"] - 2.0, 0, 10)
    )
    return _sigmoid(_INTERCEPT["cvd"] + z)


def diabetes_risk(x: Mapping[str, Arr]) -> Arr:
    """Type 2 diabetes. Convex glucose (steeper above 110), saturating BMI, BMI x glucose, TyG
    index, GGT, age rising then flattening, family history, rises in glucose and weight."""
    glu = x["fasting_glucose"]
    age = x["age"]
    tyg = np.log(x["triglycerides"] * glu / 2.0)
    z = (
        0.05 * _hinge(glu, 90) + 0.05 * _hinge(glu, 110)
        + 1.2 * np.tanh((x["bmi"] - 23.0) / 4.0)
        + 0.006 * _hinge(x["bmi"], 25) * _hinge(glu, 100)
        + 0.4 * (tyg - 8.5)
        + 0.25 * np.log(x["ggt"] / 25.0)
        + 0.03 * np.minimum(age - 50, 15) - 0.02 * _hinge(age, 75)
        + 0.5 * x["family_history_diabetes"] + 0.25 * x["smoker"] + 0.2 * x["history_hypertension"]
        - 0.04 * x["activity_days_per_week"]
        + 0.03 * np.clip(x["delta_fasting_glucose"], -20, 30)
        + 0.06 * np.clip(x["delta_weight_kg"], -5, 8)
    )
    return _sigmoid(_INTERCEPT["diabetes"] + z)


def hypertension_risk(x: Mapping[str, Arr]) -> Arr:
    """Hypertension. SBP (steeper above 130) and DBP above 75, saturating age, age x SBP, BMI,
    drinking x GGT, glucose, TG, a recent SBP rise and weight gain."""
    sbp, age = x["sbp"], x["age"]
    z = (
        0.06 * (sbp - 120) + 0.05 * _hinge(sbp, 130)
        + 0.045 * _hinge(x["dbp"], 75)
        + 0.6 * np.tanh((age - 40) / 15.0)
        - 0.001 * (age - 55) * _hinge(sbp, 115)
        + 0.06 * (x["bmi"] - 24.0)
        + 0.3 * x["drinking"] * np.maximum(np.log(x["ggt"] / 30.0), 0.0)
        + 0.005 * _hinge(x["fasting_glucose"], 100)
        + 0.12 * np.log(x["triglycerides"] / 120.0)
        + 0.15 * x["family_history_cvd"] + 0.15 * x["male"]
        - 0.03 * x["activity_days_per_week"]
        + 0.025 * np.clip(x["delta_sbp"], -20, 30)
        + 0.04 * np.clip(x["delta_weight_kg"], -5, 8)
    )
    return _sigmoid(_INTERCEPT["hypertension"] + z)


def dyslipidemia_risk(x: Mapping[str, Arr]) -> Arr:
    """Dyslipidemia. LDL and TG near their cut-offs, HDL near 40, TC above 200, BMI, age rising
    after menopause in women (sex x age), glucose, diabetes, smoking, recent weight gain."""
    age, male = x["age"], x["male"]
    # Caps: a value carried from an earlier abnormal panel should not make the risk certain.
    ldl, tg = np.minimum(x["ldl"], 190.0), np.minimum(x["triglycerides"], 400.0)
    age_term = np.where(male == 1, 0.4 * np.tanh((age - 35) / 15.0),
                        0.045 * np.clip(age - 45, -10, 15))
    z = (
        0.025 * (ldl - 115) + 0.025 * _hinge(ldl, 135)
        + 0.8 * np.log(tg / 100.0) + 0.01 * _hinge(tg, 150)
        + 0.05 * _below(x["hdl"], 55)
        + 0.012 * _hinge(np.minimum(x["total_cholesterol"], 280), 200)
        + age_term
        + 0.05 * (x["bmi"] - 24.0)
        + 0.006 * _hinge(x["fasting_glucose"], 95) + 0.4 * x["history_diabetes"]
        + 0.2 * x["smoker"] + 0.2 * x["history_hypertension"]
        + 0.05 * np.clip(x["delta_weight_kg"], -5, 8)
    )
    return _sigmoid(_INTERCEPT["dyslipidemia"] + z)


def ckd_risk(x: Mapping[str, Arr]) -> Arr:
    """CKD (eGFR < 60 or proteinuria >= 1+). eGFR approaching 60 (two hinges), trace proteinuria,
    age, diabetes x glucose, SBP, hypertension, BMI, and a recent eGFR fall."""
    egfr, glu = x["egfr"], x["fasting_glucose"]
    z = (
        0.07 * _below(egfr, 85) + 0.08 * _below(egfr, 70)
        + 1.3 * (x["urine_protein"] == 2)
        + 0.035 * (x["age"] - 55)
        + 0.5 * x["history_diabetes"] + 0.012 * _hinge(glu, 110) * (1.0 + x["history_diabetes"])
        + 0.015 * _hinge(x["sbp"], 120) + 0.3 * x["history_hypertension"]
        + 0.05 * _hinge(x["bmi"], 25) + 0.2 * x["smoker"]
        + 0.05 * np.clip(-x["delta_egfr"], 0, 30)
    )
    return _sigmoid(_INTERCEPT["ckd"] + z)


# Tuned once so the mean true risk over eligible rows meets TARGET_RATES (people=200000, seed=1).
_INTERCEPT: dict[str, float] = {
    "cvd": -7.8,
    "diabetes": -6.36,
    "hypertension": -2.8,
    "dyslipidemia": -4.45,
    "ckd": -6.55,
}

RISK_FUNCTIONS: dict[str, Callable[[Mapping[str, Arr]], Arr]] = {
    "cvd": cvd_risk,
    "diabetes": diabetes_risk,
    "hypertension": hypertension_risk,
    "dyslipidemia": dyslipidemia_risk,
    "ckd": ckd_risk,
}


def _history_views(values: Mapping[str, Arr], pid: Arr) -> tuple[dict[str, Arr], dict[str, Arr]]:
    """Previous-checkup and last-recorded values for rows sorted by person then date."""
    n = len(pid)
    same = np.zeros(n, dtype=bool)
    same[1:] = pid[1:] == pid[:-1]
    starts = np.flatnonzero(~same)
    run_start = np.repeat(starts, np.diff(np.append(starts, n)))
    prev: dict[str, Arr] = {}
    last: dict[str, Arr] = {}
    for f, v in values.items():
        p = np.full(n, np.nan)
        p[1:] = v[:-1]
        p[~same] = np.nan
        prev[f] = p
        idx = np.maximum.accumulate(np.where(~np.isnan(p), np.arange(n), -1))
        ok = idx >= run_start
        last[f] = np.where(ok, p[np.where(ok, idx, 0)], np.nan)
    return prev, last


def true_risks(df: pd.DataFrame) -> pd.DataFrame:
    """Every outcome's true one-year risk for each checkup of a canonical frame, from recorded
    values only (eligibility is not applied). Reproduces `<outcome>_1y_true_risk` of a generated
    cohort on its eligible rows, which is what makes the oracle a fair ceiling."""
    date = pd.to_datetime(df["exam_date"]).to_numpy(dtype="datetime64[ns]")
    pid = df["person_id"].astype(str).to_numpy(dtype=object)
    order = np.lexsort((date, pid))
    values = {k: v[order] for k, v in row_values(df).items()}
    prev, last = _history_views(values, pid[order])
    x = risk_inputs(values, prev, last)
    inverse = np.empty(len(df), dtype=np.int64)
    inverse[order] = np.arange(len(df))
    return pd.DataFrame({o: RISK_FUNCTIONS[o](x)[inverse] for o in OUTCOMES}, index=df.index)


def expected_auroc(p: Arr) -> float:
    """Label-free AUROC of risks `p` against labels drawn from them: each row is a positive with
    weight p and a negative with weight 1 - p (ties count half)."""
    p = np.sort(np.asarray(p, dtype=float))
    neg = 1.0 - p
    _, first = np.unique(p, return_index=True)  # groups of tied risks
    pos_w = np.add.reduceat(p, first)
    neg_w = np.add.reduceat(neg, first)
    neg_below = np.cumsum(neg_w) - neg_w
    # A row is never paired with itself: remove its own (tied, half-counted) pair.
    self_pairs = np.sum(p * neg)
    num = np.sum(pos_w * (neg_below + 0.5 * neg_w)) - 0.5 * self_pairs
    den = p.sum() * neg.sum() - self_pairs
    return float(num / den)


# --------------------------------------------------------------------------------------------
# The cohort: people, their schedules and hidden person effects
# --------------------------------------------------------------------------------------------

# Entry age bands (lower, upper exclusive, share). 40+ shares follow the NHIS 2020 open file
# (40s 30.0 %, 50s 31.8 %, 60s 24.2 %, 70s 11.0 %, 80+ 3.0 %; clinical.md 1.1), scaled to leave
# 18 % for the 20-39 y examinees of the 20-85 y Kaggle re-release (clinical.md 1.1).
_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (20, 30, 0.07), (30, 40, 0.11), (40, 50, 0.246), (50, 60, 0.261),
    (60, 70, 0.198), (70, 80, 0.09), (80, 86, 0.025),
)
# Number of checkups: annual examinees (workplace, ~30 %) have 2-8, biennial ones 2-7 (the
# 2011-2024 window holds 7 at most); both average ~5, so 200,000 people give ~1 M checkups.
_ANNUAL_SHARE = 0.30
_N_ANNUAL = (np.arange(2, 9), np.array([0.08, 0.12, 0.16, 0.18, 0.18, 0.15, 0.13]))
_N_BIENNIAL = (np.arange(2, 8), np.array([0.07, 0.12, 0.18, 0.22, 0.23, 0.18]))


@dataclass
class _People:
    """Fixed per-person draws: who they are, when they are examined, hidden effects."""

    male: Arr
    age0: Arr
    gap: Arr
    n_exams: Arr
    start_year: Arr
    day_of_year: Arr
    lipid_phase: Arr
    height: Arr
    u: dict[str, Arr]
    slope: dict[str, Arr]
    fh_cvd: Arr
    fh_dm: Arr
    activity_p: Arr
    drink_u: Arr
    heavy: Arr


def _draw_people(n: int, rng: np.random.Generator) -> _People:
    male = (rng.random(n) < 0.52).astype(float)  # ~52 % men among NHIS examinees (chosen)
    lows = np.array([b[0] for b in _AGE_BANDS])
    widths = np.array([b[1] - b[0] for b in _AGE_BANDS])
    shares = np.array([b[2] for b in _AGE_BANDS])
    band = rng.choice(len(_AGE_BANDS), size=n, p=shares / shares.sum())
    age0 = lows[band] + np.floor(rng.random(n) * widths[band])
    annual = rng.random(n) < _ANNUAL_SHARE
    n_annual = rng.choice(_N_ANNUAL[0], size=n, p=_N_ANNUAL[1])
    n_biennial = rng.choice(_N_BIENNIAL[0], size=n, p=_N_BIENNIAL[1])
    n_exams = np.where(annual, n_annual, n_biennial)
    gap = np.where(annual, 1, 2)
    # Start year uniform over the window; biennial examinees split evenly between even and odd
    # exam years (NHIS assigns them by birth-year parity).
    slack = LAST_YEAR - FIRST_YEAR - (n_exams - 1) * gap
    parity = np.where(annual, 0, rng.integers(0, 2, size=n))
    steps = (slack - parity) // gap + 1
    start_year = FIRST_YEAR + parity + gap * np.floor(rng.random(n) * steps).astype(int)
    day_of_year = rng.integers(20, 346, size=n)
    # Lipid panel every fourth year: annual examinees at one exam in four, biennial at one in two.
    lipid_phase = np.where(annual, rng.integers(0, 4, size=n), rng.integers(0, 2, size=n))
    # Adult height falls across older birth cohorts (~2 cm a decade of age at entry; chosen to
    # give 174/161 cm in the 20s and 164/151 cm in the 70s).
    height = (np.where(male == 1, 170.5, 157.5) - 0.2 * (age0 - 45)
              + np.where(male == 1, 5.8, 5.3) * rng.standard_normal(n))
    # Person effects (standard normal); a shared metabolic factor correlates adiposity, glucose,
    # TG, HDL, liver enzymes and BP beyond what BMI itself explains.
    m = rng.standard_normal(n)
    e = {k: rng.standard_normal(n) for k in
         ("bmi", "waist", "bp", "dbp", "glu", "ldl", "tg", "hdl", "liver", "ast", "ggt", "kid", "hb", "prot")}
    u = {
        "bmi": 0.5 * m + 0.866 * e["bmi"],
        "waist": e["waist"],
        "bp": 0.25 * m + 0.968 * e["bp"],
        "dbp": e["dbp"],
        "glu": 0.4 * m + 0.917 * e["glu"],
        "ldl": e["ldl"],
        "tg": 0.45 * m + 0.893 * e["tg"],
        "hdl": -0.35 * m + 0.937 * e["hdl"],
        "liver": 0.4 * m + 0.917 * e["liver"],
        "ast": e["ast"],
        "kid": e["kid"],
        "hb": e["hb"],
        "prot": e["prot"],
    }
    u["ggt"] = 0.5 * u["liver"] + 0.866 * e["ggt"]
    slope = {  # per year since entry
        "bmi": 0.006 * rng.standard_normal(n),  # log-BMI drift: weight gain or loss
        "bp": 0.4 * rng.standard_normal(n),  # mmHg/yr beyond the age curve
        "glu": 0.003 + 0.004 * rng.standard_normal(n),  # glucose creeps up
        "kid": 0.4 * rng.standard_normal(n),  # eGFR/yr beyond the age curve
    }
    fh_dm = (rng.random(n) < _sigmoid(-1.5 + 0.3 * u["glu"])).astype(float)  # ~20 %, clusters with glucose
    fh_cvd = (rng.random(n) < 0.15).astype(float)  # chosen
    activity_p = rng.beta(1.2, 2.6, size=n)  # mean ~2.2 days a week
    drink_u = rng.standard_normal(n)
    heavy = (rng.standard_normal(n) + 0.6 * male > 1.2).astype(float)  # high-risk drinking if a drinker
    return _People(male, age0, gap, n_exams, start_year, day_of_year, lipid_phase, height, u, slope,
                   fh_cvd, fh_dm, activity_p, drink_u, heavy)


# AR(1) within-person noise: (correlation over one year, stationary SD). Chosen.
_AR: dict[str, tuple[float, float]] = {
    "bmi": (0.8, 0.035), "sbp": (0.6, 5.0), "glu": (0.6, 0.04), "ldl": (0.6, 10.0),
    "tg": (0.5, 0.22), "hdl": (0.6, 0.06), "liver": (0.6, 0.18), "ggt": (0.6, 0.15), "kid": (0.8, 4.0),
}


@dataclass
class _State:
    """What changes between waves: behaviours, AR noise, diagnoses, medication, disease shifts."""

    smoking: Arr
    ar: dict[str, Arr]
    hx: dict[str, Arr]
    on: dict[str, Arr]
    shift: dict[str, Arr]
    ckd_path: Arr  # 0 none, 1 eGFR < 60, 2 proteinuria >= 1+: kidney damage that persists


_HX = ("stroke", "heart", "htn", "dm", "dys")
_ON = ("aht", "dm", "statin")


def _initial_state(people: _People, rng: np.random.Generator) -> _State:
    n = len(people.male)
    age, male = people.age0, people.male
    # Smoking: men ~32 % current (NHIS 2023 examinees 32.4 %, KNHANES 2022 30.0 %), women ~4-5 %
    # (NHIS 3.9 %, KNHANES 5.0 %); clinical.md 2.2. Former smoking accumulates with age in men.
    p_cur = np.where(male == 1, np.where(age < 60, 0.40, np.where(age < 70, 0.28, 0.16)), 0.05)
    p_former = np.where(male == 1, np.clip(0.05 + 0.008 * (age - 20), 0, 0.45), 0.03)
    r = rng.random(n)
    smoking = np.where(r < p_cur, 3.0, np.where(r < p_cur + p_former, 2.0, 1.0))
    ar = {k: s * rng.standard_normal(n) for k, (_, s) in _AR.items()}
    zeros = lambda: np.zeros(n)  # noqa: E731
    return _State(smoking, ar, {k: zeros() for k in _HX}, {k: zeros() for k in _ON},
                  {k: zeros() for k in ("sbp", "glu", "ldl", "kid")}, np.zeros(n, dtype=int))


def _advance(people: _People, st: _State, rng: np.random.Generator) -> None:
    """Move every person one inter-exam gap (1 or 2 years) forward."""
    n, gap = len(people.male), people.gap
    for k, (rho, sd) in _AR.items():
        r = rho ** gap
        st.ar[k] = r * st.ar[k] + sd * np.sqrt(1 - r * r) * rng.standard_normal(n)
    # Smoking: ~6 %/yr of current smokers quit, ~3 %/yr of former ones relapse (chosen).
    r = rng.random(n)
    quit, relapse = 1 - 0.94 ** gap, 1 - 0.97 ** gap
    st.smoking = np.where((st.smoking == 3) & (r < quit), 2.0,
                          np.where((st.smoking == 2) & (r < relapse), 3.0, st.smoking))
    # Diagnosed but untreated people start treatment at ~12 %/yr.
    r = rng.random(n)
    start = r < 1 - 0.88 ** gap
    st.on["aht"] = np.maximum(st.on["aht"], st.hx["htn"] * start)
    st.on["dm"] = np.maximum(st.on["dm"], st.hx["dm"] * start)
    st.on["statin"] = np.maximum(st.on["statin"], st.hx["dys"] * start)
    # Diabetes and hypertension speed up eGFR loss (chosen: 0.6 and 0.3 mL/min/1.73m2 a year).
    st.shift["kid"] -= gap * (0.6 * st.hx["dm"] + 0.3 * st.hx["htn"])


def _behaviour(people: _People, st: _State, age: Arr, rng: np.random.Generator) -> dict[str, Arr]:
    """This wave's drinking and activity. Drinking: M ~67 %, F ~41 % any (Korea 2022, clinical.md
    2.2), less with age; it persists through a person-level propensity."""
    n = len(people.male)
    p_drink = np.where(people.male == 1, 0.76 - 0.008 * _hinge(age, 45), 0.58 - 0.008 * _hinge(age, 35))
    z = 0.9 * people.drink_u + 0.436 * rng.standard_normal(n)
    drinker = (z < ndtri(np.clip(p_drink, 0.02, 0.98))).astype(float)
    activity = rng.binomial(7, people.activity_p).astype(float)
    return {"drinker": drinker, "heavy": drinker * people.heavy, "activity": activity}


def _physiology(people: _People, st: _State, beh: Mapping[str, Arr], age: Arr, t: Arr) -> dict[str, Arr]:
    """Untreated 'true' values before measurement noise."""
    male, u, s, ar = people.male, people.u, people.slope, st.ar
    smoker = (st.smoking == 3).astype(float)
    drink, heavy, act = beh["drinker"], beh["heavy"], beh["activity"]
    # BMI: log-normal around the sex/age mean; smokers a little leaner, active people too.
    bmi = bmi_mean(male, age) * np.exp(0.125 * u["bmi"] + s["bmi"] * t + ar["bmi"]) - 0.4 * smoker - 0.08 * (act - 2)
    # SBP: age curve + BMI (~1.2 mmHg per kg/m2) + alcohol + person level, slope and AR noise.
    sbp = (sbp_mean(male, age) + 1.2 * (bmi - 24) + 3.0 * drink + 3.0 * heavy + 9.0 * u["bp"]
           + s["bp"] * t + ar["sbp"] + st.shift["sbp"])
    # Glucose: log-normal, right skew from a person term that grows faster above the mean.
    log_glu = (np.log(glucose_median(male, age)) + 0.012 * (bmi - 24) + 0.035 * people.fh_dm
               + 0.065 * u["glu"] + 0.02 * np.maximum(u["glu"], 0) ** 2 + s["glu"] * t + ar["glu"] + st.shift["glu"])
    ldl = ldl_mean(male, age) + 1.5 * (bmi - 24) + 27.0 * u["ldl"] + ar["ldl"] + st.shift["ldl"]
    log_hdl = (np.log(hdl_median(male, age)) - 0.018 * (bmi - 24) + 0.08 * drink - 0.07 * smoker
               + 0.012 * (act - 2) + 0.17 * u["hdl"] + ar["hdl"])
    log_tg = (np.log(tg_median(male, age)) + 0.045 * (bmi - 24) + 0.15 * drink + 0.2 * heavy + 0.08 * smoker
              - 0.02 * (act - 2) + 0.12 * st.hx["dm"] + 0.38 * u["tg"] + ar["tg"])
    egfr = np.clip(egfr_mean(age) + 11.0 * u["kid"] + s["kid"] * t + ar["kid"] + st.shift["kid"], 5.0, 150.0)
    log_alt = (np.log(np.where(male == 1, 22.0, 15.0)) + 0.06 * (bmi - 24) + 0.08 * drink + 0.15 * heavy
               - 0.005 * (age - 45) + 0.35 * u["liver"] + ar["liver"])
    log_ggt = (np.log(np.where(male == 1, 23.0, 14.0)) + 0.045 * (bmi - 24) + 0.3 * drink + 0.45 * heavy
               + 0.15 * smoker + 0.004 * (age - 45) + 0.4 * u["ggt"] + ar["ggt"])
    return {"bmi": bmi, "sbp": sbp, "log_glu": log_glu, "ldl": ldl, "log_hdl": log_hdl, "log_tg": log_tg,
            "egfr": egfr, "log_alt": log_alt, "log_ggt": log_ggt, "smoker": smoker}


def _creatinine_for_egfr(egfr: Arr, age: Arr, male: Arr) -> Arr:
    """Inverse of the CKD-EPI 2021 equation (derive.egfr_ckd_epi_2021)."""
    kappa = np.where(male == 1, 0.9, 0.7)
    alpha = np.where(male == 1, -0.302, -0.241)
    k = egfr / (142.0 * 0.9938**age * np.where(male == 1, 1.0, 1.012))
    ratio = np.where(k >= 1.0, k ** (1.0 / alpha), k ** (-1.0 / 1.2))
    return ratio * kappa


def _measure(people: _People, st: _State, ph: Mapping[str, Arr], beh: Mapping[str, Arr], age: Arr,
             rng: np.random.Generator) -> dict[str, Arr]:
    """Measured values (treatment effects and measurement noise), unrounded and complete."""
    n, male, u = len(people.male), people.male, people.u
    nrm = lambda: rng.standard_normal(n)  # noqa: E731
    bmi = ph["bmi"]
    # Weight measured to ~0.3 kg; height ~0.3 cm around the person's fixed height.
    height = people.height + 0.3 * nrm()
    weight = bmi * (people.height / 100) ** 2 + 0.3 * nrm()
    waist = (np.where(male == 1, 2.55 * bmi + 22.5 + 0.05 * (age - 50), 2.3 * bmi + 22.5 + 0.12 * (age - 50))
             + 3.0 * u["waist"] + 1.5 * nrm())
    # Antihypertensives lower SBP ~13 mmHg; DBP tracks SBP (r ~ 0.7) and falls after 55.
    sbp = ph["sbp"] - 13.0 * st.on["aht"] + 5.0 * nrm()
    dbp = (np.where(male == 1, 78.5, 73.5) + 0.45 * (sbp - np.where(male == 1, 121.0, 115.0))
           - 0.15 * _hinge(age, 55) + 0.3 * (bmi - 24) + 1.0 * beh["drinker"] + 4.0 * u["dbp"] + 3.5 * nrm())
    glu = np.exp(ph["log_glu"] - 0.12 * st.on["dm"] + 0.045 * nrm())
    # Statins lower LDL ~40 % and TG ~12 %.
    ldl = ph["ldl"] * (1 - 0.4 * st.on["statin"]) + 5.0 * nrm()
    hdl = np.exp(ph["log_hdl"] + 0.04 * nrm())
    tg = np.exp(ph["log_tg"] - 0.12 * st.on["statin"] + 0.12 * nrm())
    tc = ldl + hdl + tg / 5.0 + 3.0 * nrm()  # Friedewald identity plus assay noise
    # Hb: M 15.2 / F 12.9 (13.2 after 50); smokers +0.35; falls in older men and with low eGFR.
    hb = (np.where(male == 1, 15.2 - 0.03 * _hinge(age, 50), 12.9 + 0.3 * (age >= 50)) + 0.35 * ph["smoker"]
          + 0.03 * (bmi - 24) - 0.04 * _below(ph["egfr"], 60) + 0.85 * u["hb"] + 0.35 * nrm())
    creat = _creatinine_for_egfr(ph["egfr"], age, male) * np.exp(0.05 * nrm())
    # Dipstick protein: an ordinal latent pushed by BP, glucose, obesity and low eGFR; cut-points
    # chosen for ~92 % negative and ~2 % >= 1+ (KNHANES dipstick 1-2 %, clinical.md 2.2).
    prot = (0.6 * u["prot"] + 0.75 * nrm() + 0.02 * (sbp - 120) + 0.012 * _hinge(glu, 100)
            + 0.04 * _hinge(bmi, 25) + 0.03 * _below(ph["egfr"], 70))
    urine = 1.0 + np.searchsorted(np.array([1.9, 2.4, 2.85, 3.2, 3.55]), prot).astype(float)
    alt = np.exp(ph["log_alt"] + 0.08 * nrm())
    alt_ref = np.where(male == 1, 22.0, 15.0)
    ast = np.exp(np.log(np.where(male == 1, 23.0, 20.0)) + 0.45 * np.log(alt / alt_ref)
                 + 0.12 * beh["heavy"] + 0.004 * (age - 45) + 0.15 * u["ast"] + 0.1 * nrm())
    ggt = np.exp(ph["log_ggt"] + 0.08 * nrm())
    return {"height_cm": height, "weight_kg": weight, "waist_cm": waist, "sbp": sbp, "dbp": dbp,
            "fasting_glucose": glu, "total_cholesterol": tc, "triglycerides": tg, "hdl": hdl, "ldl": ldl,
            "hemoglobin": hb, "urine_protein": urine, "serum_creatinine": creat, "ast": ast, "alt": alt,
            "ggt": ggt}


# Instrument resolution: BP and mg/dL labs to the unit, creatinine/Hb/anthropometry to 0.1.
_DECIMALS: dict[str, int] = {
    "height_cm": 1, "weight_kg": 1, "waist_cm": 1, "sbp": 0, "dbp": 0, "fasting_glucose": 0,
    "total_cholesterol": 0, "triglycerides": 0, "hdl": 0, "ldl": 0, "hemoglobin": 1,
    "serum_creatinine": 1, "ast": 0, "alt": 0, "ggt": 0, "urine_protein": 0,
}
_LIPIDS = ("total_cholesterol", "triglycerides", "hdl", "ldl")
_BLOOD = ("fasting_glucose", "hemoglobin", "serum_creatinine", "ast", "alt", "ggt") + _LIPIDS


def _round_and_clip(meas: Mapping[str, Arr]) -> dict[str, Arr]:
    out = {}
    for f, v in meas.items():
        fld = BY_NAME[f]
        lo = fld.low if fld.low is not None else min(fld.codes)
        hi = fld.high if fld.high is not None else max(fld.codes)
        out[f] = np.clip(np.round(v, _DECIMALS[f]), lo, hi)
    # DBP below SBP by at least 10 mmHg (a narrower pulse pressure is a misreading).
    out["dbp"] = np.minimum(out["dbp"], out["sbp"] - 10.0)
    return out


def _record(people: _People, st: _State, meas: dict[str, Arr], beh: Mapping[str, Arr], age: Arr, k: int,
            rng: np.random.Generator) -> dict[str, Arr]:
    """The recorded checkup: rounded, clipped, with NHIS-like missingness (missing is NaN)."""
    n, male = len(people.male), people.male
    rec = _round_and_clip(meas)
    # Persistent kidney damage after a CKD diagnosis: creatinine stays in the eGFR < 60 range, or
    # proteinuria stays >= 1+ (a CKD diagnosis does not heal).
    cr59 = np.ceil(_creatinine_for_egfr(np.full(n, 59.0), age, male) * 10.0) / 10.0
    cr = rec["serum_creatinine"]
    rec["serum_creatinine"] = np.where(st.ckd_path == 1, np.maximum(cr, cr59), cr)
    rec["urine_protein"] = np.where(st.ckd_path == 2, np.maximum(rec["urine_protein"], 3.0), rec["urine_protein"])
    # Lipids every fourth year: men from 24, women from 40 (clinical.md 1.1: ~60 % missing).
    every_fourth_year = (k + people.lipid_phase) % np.where(people.gap == 1, 4, 2) == 0
    lipid_year = every_fourth_year & (age >= np.where(male == 1, 24, 40))
    for f in _LIPIDS:
        rec[f] = np.where(lipid_year, rec[f], np.nan)
    # NHIS 2020 file: BP missing ~0.75 %, blood labs ~0.76 % (one missed draw), urine ~1.2 %,
    # waist ~0.01 % (clinical.md 1.1). Questionnaire items: chosen 5-8 %.
    no_blood = rng.random(n) < 0.0076
    for f in _BLOOD:
        keep = (f == "serum_creatinine") & (st.ckd_path == 1)
        rec[f] = np.where(no_blood & ~keep, np.nan, rec[f])
    no_bp = rng.random(n) < 0.0075
    rec["sbp"] = np.where(no_bp, np.nan, rec["sbp"])
    rec["dbp"] = np.where(no_bp, np.nan, rec["dbp"])
    rec["urine_protein"] = np.where((rng.random(n) < 0.012) & (st.ckd_path != 2), np.nan, rec["urine_protein"])
    rec["waist_cm"] = np.where(rng.random(n) < 0.0002, np.nan, rec["waist_cm"])
    no_family = rng.random(n) < 0.08
    rec["family_history_cvd"] = np.where(no_family, np.nan, people.fh_cvd)
    rec["family_history_diabetes"] = np.where(no_family, np.nan, people.fh_dm)
    rec["activity_days_per_week"] = np.where(rng.random(n) < 0.06, np.nan, beh["activity"])
    rec["smoking_status"] = st.smoking.copy()
    rec["drinking"] = beh["drinker"].copy()
    rec.update({
        "history_stroke": st.hx["stroke"].copy(), "history_heart_disease": st.hx["heart"].copy(),
        "history_hypertension": st.hx["htn"].copy(), "history_diabetes": st.hx["dm"].copy(),
        "history_dyslipidemia": st.hx["dys"].copy(), "on_antihypertensive": st.on["aht"].copy(),
        "on_diabetes_medication": st.on["dm"].copy(), "on_statin": st.on["statin"].copy(),
    })
    return rec


# --------------------------------------------------------------------------------------------
# Diagnoses: prevalent at entry, and incident ones carried into later waves
# --------------------------------------------------------------------------------------------


def _diagnose(st: _State, ph: Mapping[str, Arr], which: str, who: Arr, rng: np.random.Generator) -> None:
    """Mark a diagnosis of `which` for people `who` (bool) and move their hidden physiology into
    the disease range, so later checkups look like a treated or untreated patient."""
    n = len(who)
    w = who.astype(float)
    if which == "htn":
        st.hx["htn"] = np.maximum(st.hx["htn"], w)
        st.on["aht"] = np.maximum(st.on["aht"], w * (rng.random(n) < 0.8))
        st.shift["sbp"] += w * np.maximum(0.0, 145.0 + 6.0 * rng.standard_normal(n) - ph["sbp"])
    elif which == "dm":
        st.hx["dm"] = np.maximum(st.hx["dm"], w)
        st.on["dm"] = np.maximum(st.on["dm"], w * (rng.random(n) < 0.8))
        target = np.log(140.0) + 0.15 * rng.standard_normal(n)
        st.shift["glu"] += w * np.maximum(0.0, target - ph["log_glu"])
    elif which == "dys":
        st.hx["dys"] = np.maximum(st.hx["dys"], w)
        st.on["statin"] = np.maximum(st.on["statin"], w * (rng.random(n) < 0.7))
        st.shift["ldl"] += w * np.maximum(0.0, 160.0 + 15.0 * rng.standard_normal(n) - ph["ldl"])
    elif which == "cvd":
        # MI 2.27 vs ischaemic stroke 2.96 per 1,000 PY (clinical.md 3): 57 % strokes.
        stroke = rng.random(n) < 0.57
        st.hx["stroke"] = np.maximum(st.hx["stroke"], w * stroke)
        st.hx["heart"] = np.maximum(st.hx["heart"], w * ~stroke)
        st.on["statin"] = np.maximum(st.on["statin"], w * (rng.random(n) < 0.8))
    elif which == "ckd":
        path = np.where(ph["egfr"] < 62.0, 1, np.where(rng.random(n) < 0.6, 1, 2))
        new = who & (st.ckd_path == 0)
        st.ckd_path = np.where(new, path, st.ckd_path)
        target = 40.0 + 18.0 * rng.random(n)
        st.shift["kid"] += (new & (path == 1)) * np.minimum(0.0, target - ph["egfr"])
    # A statin is dyslipidemia care: keep the questionnaire consistent.
    st.hx["dys"] = np.maximum(st.hx["dys"], st.on["statin"])


def _prevalent_at_entry(people: _People, st: _State, ph: Mapping[str, Arr], rng: np.random.Generator) -> None:
    """Diagnoses already made before the first checkup, by age and the person's own values.

    Chosen so that, with the incident diagnoses added over follow-up, the checkups show history of
    hypertension ~19 % in the 40s to ~50 % in the 70s (adult prevalence 29 %, clinical.md 2.2),
    diabetes ~10 % (DM 15.5 % of >= 30 y, of whom not all diagnosed), dyslipidemia care ~20 %,
    stroke and heart disease ~2 % each.
    """
    n, age, male = len(people.male), people.age0, people.male
    p_htn = _sigmoid(-2.0 + 0.05 * (age - 55) + 0.09 * (ph["sbp"] - 130) + 0.2 * male)
    p_dm = _sigmoid(-3.0 + 0.04 * (age - 55) + 9.0 * (ph["log_glu"] - np.log(100.0))
                    + 0.4 * people.fh_dm + 0.2 * male)
    p_dys = _sigmoid(-3.0 + 0.03 * (age - 55) + 0.025 * (ph["ldl"] - 130) + 0.6 * (ph["log_tg"] - np.log(150.0)))
    htn = rng.random(n) < p_htn
    dm = rng.random(n) < p_dm
    dys = rng.random(n) < p_dys
    for which, who in (("htn", htn), ("dm", dm), ("dys", dys)):
        _diagnose(st, ph, which, who, rng)
    base = 0.5 * htn + 0.4 * dm + 0.3 * male
    stroke = rng.random(n) < _sigmoid(-5.0 + 0.08 * (age - 60) + base)
    heart = rng.random(n) < _sigmoid(-4.6 + 0.07 * (age - 60) + base)
    st.hx["stroke"] = np.maximum(st.hx["stroke"], stroke)
    st.hx["heart"] = np.maximum(st.hx["heart"], heart)
    st.on["statin"] = np.maximum(st.on["statin"], (stroke | heart) & (rng.random(n) < 0.7))
    # Medication without a stated history would be inconsistent; statins count as dyslipidemia care.
    st.hx["dys"] = np.maximum(st.hx["dys"], st.on["statin"])


# Probability that a checkup already in the disease range (ineligible by its values, no history)
# leads to a diagnosis before the next checkup: chosen, roughly the awareness figures of the fact
# sheets (hypertension awareness 69 %, clinical.md 2.2) spread over the follow-up.
_DX_AFTER_ABNORMAL: dict[str, float] = {"diabetes": 0.45, "hypertension": 0.25, "dyslipidemia": 0.15, "ckd": 0.35}
_HX_NAME = {"cvd": "cvd", "diabetes": "dm", "hypertension": "htn", "dyslipidemia": "dys", "ckd": "ckd"}


def _has_history(st: _State, outcome: str) -> Arr:
    if outcome == "cvd":
        return (st.hx["stroke"] + st.hx["heart"]) > 0
    if outcome == "ckd":
        return st.ckd_path > 0
    return st.hx[_HX_NAME[outcome]] > 0


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

_RECORD_FIELDS = tuple(c for c in COLUMNS if c not in ("person_id", "exam_date", "sex", "age", "age_group"))


def _wave_frame(rec: Mapping[str, Arr], male: Arr, age: Arr) -> pd.DataFrame:
    cols = {f: rec[f] for f in _RECORD_FIELDS}
    cols["sex"] = np.where(male == 1, "M", "F")
    cols["age"] = age
    return pd.DataFrame(cols)


def generate_cohort(people: int, seed: int, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """A synthetic cohort of `people` Korean adults, ~5 checkups each, in the canonical schema,
    with `<outcome>_1y` labels (NaN where not eligible) and `<outcome>_1y_true_risk`.

    Deterministic by `seed`. `progress(n)` is called after each wave with the number of checkups
    produced so far.
    """
    rng = np.random.default_rng(seed)
    pp = _draw_people(people, rng)
    st = _initial_state(pp, rng)
    n = people
    prev = {f: np.full(n, np.nan) for f in CARRIED_VALUES}
    last = {f: np.full(n, np.nan) for f in CARRIED_VALUES}
    waves: list[pd.DataFrame] = []
    produced = 0
    for k in range(MAX_EXAMS):
        t = k * pp.gap
        age = pp.age0 + t
        if k > 0:
            _advance(pp, st, rng)
        beh = _behaviour(pp, st, age, rng)
        ph = _physiology(pp, st, beh, age, t)
        if k == 0:
            _prevalent_at_entry(pp, st, ph, rng)
            ph = _physiology(pp, st, beh, age, t)
        rec = _record(pp, st, _measure(pp, st, ph, beh, age, rng), beh, age, k, rng)
        frame = _wave_frame(rec, pp.male, age)
        elig = eligibility(frame)
        cur = row_values(frame)
        x = risk_inputs(cur, prev, last)
        x_next = dict(x, age=x["age"] + 1.0)
        active = k < pp.n_exams
        second_year = active & (k + 1 < pp.n_exams) & (pp.gap == 2)
        for o in OUTCOMES:
            ok = elig[o].to_numpy()
            p = RISK_FUNCTIONS[o](x)
            event = ok & (rng.random(n) < p)
            frame[label_column(o)] = np.where(ok, event.astype(float), np.nan)
            frame[true_risk_column(o)] = np.where(ok, p, np.nan)
            # Unobserved second year of a biennial gap, drawn with that year's (one year older) risk.
            event2 = ok & ~event & second_year & (rng.random(n) < RISK_FUNCTIONS[o](x_next))
            abnormal = ~ok & ~_has_history(st, o) & (rng.random(n) < _DX_AFTER_ABNORMAL.get(o, 0.0))
            _diagnose(st, ph, _HX_NAME[o], event | event2 | abnormal, rng)
        for f in CARRIED_VALUES:
            v = cur[f]
            prev[f] = np.where(active, v, prev[f])
            last[f] = np.where(active & ~np.isnan(v), v, last[f])
        year = pp.start_year + t
        jitter = rng.integers(-15, 16, size=n)
        doy = np.clip(pp.day_of_year + jitter, 1, 365)
        frame["exam_date"] = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + (doy - 1)
        frame["pid"] = np.arange(n)
        frame["wave"] = k
        waves.append(frame[active])
        produced += int(active.sum())
        if progress is not None:
            progress(produced)
        if not active.any():
            break
    return _assemble(waves)


def _assemble(waves: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(waves, ignore_index=True)
    df = df.sort_values(["pid", "wave"], kind="stable").reset_index(drop=True)
    df["person_id"] = np.char.add("S", np.char.zfill((df["pid"].to_numpy() + 1).astype(str), 7))
    df["exam_date"] = pd.to_datetime(df["exam_date"]).astype("datetime64[ns]")
    # Whole numbers, stored as float64 like every numeric field of the canonical frame.
    df["age"] = np.floor(df["age"].to_numpy(dtype=float))
    df["age_group"] = np.clip(df["age"].to_numpy() // 5 + 1, 5, 18).astype(np.float64)
    targets = [c for o in OUTCOMES for c in (label_column(o), true_risk_column(o))]
    floats = {c: np.float64 for c in list(COLUMNS) + targets
              if c not in ("person_id", "exam_date", "sex", "age", "age_group")}
    return df[list(COLUMNS) + targets].astype(floats)
