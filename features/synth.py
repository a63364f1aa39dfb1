"""A synthetic longitudinal cohort of Korean checkup examinees, with known one-year risks.

`generate_cohort(people, seed)` simulates each person wave by wave (one wave = one checkup) in the
canonical record of `features.schema`, and draws each outcome's label from a known probability.

Design rules, and why:

* Physiology is driven by hidden person-level random effects, person slopes and AR(1) noise, so
  values persist within a person and drift realistically. What a checkup records is that
  physiology seen through treatment, measurement noise, instrument rounding and NHIS-like
  missingness (the lipid panel every fourth year, an occasional missed draw or reading).
* The oracle (`<outcome>_1y_true_risk`) is honest: it is NOT a function of the written file. A
  real disease process does not read the checkup sheet, so the risk is built from what a checkup
  cannot see: the true levels behind one noisy reading (true glucose, LDL, TG, HDL, SBP after
  treatment, eGFR), cumulative exposure (pack-years, mmHg-years of SBP above 120, mg/dL-years of
  glucose and LDL above 100), trajectories (BMI gained since age 20, the person's own BP and eGFR
  slopes) and traits no checkup records (a vascular factor such as Lp(a) or inflammation,
  beta-cell reserve, salt sensitivity, an inherited lipid trait, hidden liver fat and proteinuria
  propensity). Its functional forms (log-burdens, saturating exponentials) are deliberately unlike
  the model's derived features (TyG, non-HDL, TG/HDL, fatty liver index, waist/height, changes
  since the last checkup, carried lipids), so a model cannot reach the oracle by rediscovering the
  generator's own transforms. The gap between model and oracle is then a real one: what the
  checkup data leave unexplained.
* Diagnosis is imperfect: a true new case is recorded as a label only with probability
  `ASCERTAINMENT[outcome]` (0.6-0.9), and a rare false-positive diagnosis is recorded with
  probability `FALSE_POSITIVE[outcome]`. `<outcome>_1y_true_risk` is the probability the RECORDED
  label was drawn from (`recorded_risk`), so expected-AUROC and oracle metrics stay exact. An
  undiagnosed true case moves the person's values into the disease range without a history flag.
* Labels are incident-only, judged by `features.eligibility` exactly as serving judges a request:
  the checkup together with the person's earlier checkups (an earlier history flag still holds;
  a lipid panel, glucose, BP, creatinine or dipstick missing this time is taken from the last
  earlier measurement). A person whose last panel was already in the disease range therefore
  never gets a "new" dyslipidemia label.
* Scale and intercept of each risk were tuned once so that recorded-label base rates are near
  TARGET_RATES and the oracle AUROC (label vs true risk, eligible rows) sits in the range
  published for checkup-based models: CVD ~0.72-0.80, diabetes and hypertension ~0.78-0.88,
  dyslipidemia ~0.72-0.80, CKD ~0.78-0.85.
* Trajectories are consistent: a recorded event at one checkup (or in the unobserved second year
  of a biennial gap, or a diagnosis after a checkup that already showed the disease) shows up at
  later checkups as history, medication and treated values, and the person is no longer eligible.
* Everything is vectorised over people within a wave: Python loops run only over waves (at most
  8), outcomes and fields, never over people. Same seed, same frame.

Figures cited as "sources" are listed, with their publications, in docs/clinical-sources.md.
SDs of labs are NOT published for Korea; the spreads here are chosen to give plausible
ranges and the right prevalence of abnormal values, and are marked "chosen".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from features.eligibility import History, eligibility
from features.schema import BY_NAME, COLUMNS, OUTCOMES, label_column, true_risk_column

Arr = np.ndarray

# --------------------------------------------------------------------------------------------
# Target base rates: mean true risk over eligible checkups in the age range of TARGET_AGE_RANGES.
# --------------------------------------------------------------------------------------------

TARGET_RATES: dict[str, float] = {
    # MI 2.27 + ischaemic stroke 2.96 per 1,000 PY in 6.24 M NHIS-screened adults >= 40
    # (Jung et al., Healthcare 2024;12:2080; sources): ~0.5 %/yr at age >= 40.
    "cvd": 0.005,
    # Incident T2DM 10.4 per 1,000 PY in NHIS-HEALS adults without diabetes (Korean Diabetes Risk
    # Score, DMJ 2018;42:402; sources).
    "diabetes": 0.0104,
    # Incident hypertension 8.62 per 100 PY among normotensives aged 40-64 (Hong et al., PLoS One
    # 2020;15:e0230538; sources); 12.68 at >= 65 (not tuned to).
    "hypertension": 0.0862,
    # No Korean incidence published (sources). Chosen: ~5 %/yr among people whose
    # lipids are below every cut-off, consistent with a 40 % adult prevalence (Dyslipidemia Fact
    # Sheet 2022) reached over a few decades of adult life.
    "dyslipidemia": 0.05,
    # No Korean incidence published (sources). Chosen: ~0.7 %/yr, consistent with a
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
# Typical values by sex and age: the generator's population means (before person effects).
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


# --------------------------------------------------------------------------------------------
# The oracle: one-year probability of a first diagnosis, from HIDDEN inputs (`hidden_inputs`).
#
# Inputs are the person's true physiology at this checkup (before measurement noise, rounding and
# missingness), cumulative exposures, the weight and BP trajectories behind the readings, and
# person traits never recorded at all. None of the model's derived transforms (TyG, non-HDL,
# TG/HDL, fatty liver index, waist/height, deltas since the last checkup, carried lipids) is used:
# the forms here are log-burdens, saturating exponentials and products of hidden factors.
# `_SCALE` sets how far each outcome's risk spreads (its oracle AUROC) and `_INTERCEPT` its base
# rate; both were tuned once (people=50000, seed=1) to TARGET_RATES and to the published AUROC
# ranges of checkup-based models (see the module docstring).
# --------------------------------------------------------------------------------------------

# What every risk function reads (all arrays over the people of a wave).
HIDDEN_INPUTS: tuple[str, ...] = (
    "age",
    "male",
    "sbp",
    "log_glu",
    "ldl",
    "log_hdl",
    "log_tg",
    "egfr",
    "bmi",
    "log_ggt",
    "smoker",
    "pack_years",
    "bp_years",
    "glu_years",
    "ldl_years",
    "bmi_gain",
    "bp_slope",
    "kid_slope",
    "u_dbp",
    "u_liver",
    "u_prot",
    "u_vascular",
    "u_beta",
    "u_salt",
    "u_lipid",
    "activity_p",
    "heavy",
    "fh_cvd",
    "fh_dm",
    "dx_dm",
    "dx_htn",
    "on_statin",
)


def _burden(x: Arr, scale: float) -> Arr:
    """Concave cumulative burden: log(1 + x/scale); doubling a long exposure adds less each time."""
    return np.log1p(np.maximum(x, 0.0) / scale)


def _saturating(x: Arr, scale: float) -> Arr:
    """1 - exp(-x/scale) for x > 0: an effect that grows and then levels off."""
    return 1.0 - np.exp(-np.maximum(x, 0.0) / scale)


def cvd_score(h: Mapping[str, Arr]) -> Arr:
    """MI or stroke: age, male sex, lifetime BP burden on top of today's true SBP, pack-years and
    current smoking, LDL-years and glucose-years, kidney function loss, a hidden proteinuria
    propensity and a hidden vascular factor (Lp(a), inflammation, genes: never measured here)."""
    age = h["age"]
    return (
        0.068 * (age - 55)
        - 0.025 * _hinge(age, 75)
        + 0.45 * h["male"]
        + 0.55 * _burden(h["bp_years"], 300.0)
        + 0.012 * _hinge(h["sbp"], 120)
        + 0.30 * np.sqrt(h["pack_years"] / 10.0)
        + 0.35 * h["smoker"]
        + 0.35 * _burden(h["ldl_years"], 1500.0)
        + 0.45 * _burden(h["glu_years"], 150.0)
        + 0.3 * h["dx_dm"]
        + 0.6 * _saturating(75.0 - h["egfr"], 20.0)
        + 0.25 * np.maximum(h["u_prot"], 0.0)
        + 0.45 * h["u_vascular"]
        + 0.25 * h["fh_cvd"]
        - 0.8 * (h["activity_p"] - 0.3)
        - 0.2 * h["on_statin"]
    )


def diabetes_score(h: Mapping[str, Arr]) -> Arr:
    """Type 2 diabetes: true (not measured) glucose level, glucose-years, a hidden beta-cell
    reserve, hidden liver fat, weight gained since age 20, true TG, family history, age."""
    glu = np.exp(h["log_glu"])
    age = h["age"]
    return (
        8.0 * (h["log_glu"] - np.log(100.0))
        + 1.2 * _saturating(glu - 105.0, 12.0)
        - 0.6 * h["u_beta"]
        + 0.5 * _burden(h["glu_years"], 100.0)
        + 0.45 * np.tanh(h["u_liver"])
        + 0.06 * h["bmi_gain"]
        + 0.06 * (h["bmi"] - 23.0)
        + 0.5 * (h["log_tg"] - np.log(120.0))
        + 0.45 * h["fh_dm"]
        + 0.02 * (age - 50)
        - 0.02 * _hinge(age, 70)
        + 0.2 * h["smoker"]
        + 0.1 * np.sqrt(h["pack_years"] / 10.0)
        - 0.6 * (h["activity_p"] - 0.3)
    )


def hypertension_score(h: Mapping[str, Arr]) -> Arr:
    """Hypertension: true SBP (not one reading), the person's hidden DBP level and BP slope,
    hidden salt sensitivity, BP-years, weight gained since 20, heavy drinking, age."""
    age = h["age"]
    return (
        0.075 * (h["sbp"] - 120)
        + 0.03 * _hinge(h["sbp"], 130)
        + 0.35 * h["u_dbp"]
        + 0.9 * h["bp_slope"]
        + 0.35 * h["u_salt"]
        + 0.3 * _burden(h["bp_years"], 200.0)
        + 0.5 * np.tanh((age - 40) / 15.0)
        + 0.06 * h["bmi_gain"]
        + 0.04 * (h["bmi"] - 24.0)
        + 0.35 * h["heavy"]
        + 0.15 * h["fh_cvd"]
        + 0.1 * h["male"]
        - 0.4 * (h["activity_p"] - 0.3)
    )


def dyslipidemia_score(h: Mapping[str, Arr]) -> Arr:
    """Dyslipidemia: true LDL, TG and HDL levels, a hidden lipid trait, menopause (sex x age),
    weight gained since 20, diabetes, smoking."""
    age, male = h["age"], h["male"]
    age_term = np.where(male == 1, 0.4 * np.tanh((age - 35) / 15.0), 0.045 * np.clip(age - 45, -10, 15))
    return (
        0.035 * (h["ldl"] - 120)
        + 0.02 * _hinge(h["ldl"], 140)
        + 0.9 * (h["log_tg"] - np.log(110.0))
        + 1.2 * (np.log(50.0) - h["log_hdl"])
        + 0.35 * h["u_lipid"]
        + age_term
        + 0.07 * h["bmi_gain"]
        + 0.3 * h["dx_dm"]
        + 0.15 * h["smoker"]
        - 0.3 * (h["activity_p"] - 0.3)
    )


def ckd_score(h: Mapping[str, Arr]) -> Arr:
    """CKD (eGFR < 60 or proteinuria >= 1+): true eGFR near 60, the person's hidden eGFR slope,
    a hidden proteinuria propensity, glucose- and BP-years, diabetes, age."""
    return (
        0.09 * _below(h["egfr"], 90)
        + 0.06 * _below(h["egfr"], 72)
        - 1.5 * h["kid_slope"]
        + 0.9 * np.maximum(h["u_prot"], 0.0)
        + 0.45 * _burden(h["glu_years"], 100.0)
        + 0.35 * _burden(h["bp_years"], 300.0)
        + 0.03 * (h["age"] - 55)
        + 0.6 * h["dx_dm"]
        + 0.3 * h["dx_htn"]
        + 0.04 * _hinge(h["bmi"], 25)
        + 0.15 * h["smoker"]
    )


SCORES: dict[str, Callable[[Mapping[str, Arr]], Arr]] = {
    "cvd": cvd_score,
    "diabetes": diabetes_score,
    "hypertension": hypertension_score,
    "dyslipidemia": dyslipidemia_score,
    "ckd": ckd_score,
}

# Tuned once (people=50000, seed=1): base rates of RECORDED labels near TARGET_RATES, oracle
# AUROCs inside the published ranges.
_SCALE: dict[str, float] = {"cvd": 0.691, "diabetes": 0.823, "hypertension": 1.349, "dyslipidemia": 0.753, "ckd": 0.755}
_INTERCEPT: dict[str, float] = {
    "cvd": -6.572,
    "diabetes": -5.320,
    "hypertension": -2.416,
    "dyslipidemia": -2.829,
    "ckd": -5.915,
}

# Diagnosis ascertainment: the share of true new cases that get diagnosed (and so recorded as a
# label) within the year, and the rare false-positive diagnosis of someone without the disease.
# Chosen: hard events are nearly always caught; silent, screening-detected conditions often are
# not (hypertension awareness 69 % in the fact sheets; CKD awareness is far lower).
ASCERTAINMENT: dict[str, float] = {"cvd": 0.9, "diabetes": 0.75, "hypertension": 0.7, "dyslipidemia": 0.65, "ckd": 0.6}
FALSE_POSITIVE: dict[str, float] = {
    "cvd": 0.0002,
    "diabetes": 0.0005,
    "hypertension": 0.003,
    "dyslipidemia": 0.002,
    "ckd": 0.0,
}


def event_risk(outcome: str, h: Mapping[str, Arr]) -> Arr:
    """Probability that a true first event of `outcome` happens within the year."""
    return _sigmoid(_INTERCEPT[outcome] + _SCALE[outcome] * SCORES[outcome](h))


def recorded_risk(outcome: str, p_event: Arr) -> Arr:
    """Probability that a first diagnosis is RECORDED within the year: a true event that is
    ascertained, or a false-positive diagnosis. This is `<outcome>_1y_true_risk`."""
    return ASCERTAINMENT[outcome] * p_event + FALSE_POSITIVE[outcome] * (1.0 - p_event)


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
# (40s 30.0 %, 50s 31.8 %, 60s 24.2 %, 70s 11.0 %, 80+ 3.0 %; sources), scaled to leave
# 18 % for the 20-39 y examinees of the 20-85 y Kaggle re-release (sources).
_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (20, 30, 0.07),
    (30, 40, 0.11),
    (40, 50, 0.246),
    (50, 60, 0.261),
    (60, 70, 0.198),
    (70, 80, 0.09),
    (80, 86, 0.025),
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
    ppd: Arr
    smoke_start: Arr
    bmi20: Arr


# The traits no checkup records at all (unlike the DBP level, the BP and eGFR slopes, liver fat and
# proteinuria propensity, which leave traces in the readings).
UNRECORDED_TRAITS: tuple[str, ...] = ("vascular", "beta", "salt", "lipid")


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
    height = (
        np.where(male == 1, 170.5, 157.5) - 0.2 * (age0 - 45) + np.where(male == 1, 5.8, 5.3) * rng.standard_normal(n)
    )
    # Person effects (standard normal); a shared metabolic factor correlates adiposity, glucose,
    # TG, HDL, liver enzymes and BP beyond what BMI itself explains.
    m = rng.standard_normal(n)
    e = {
        k: rng.standard_normal(n)
        for k in ("bmi", "waist", "bp", "dbp", "glu", "ldl", "tg", "hdl", "liver", "ast", "ggt", "kid", "hb", "prot")
    }
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
    # Traits no checkup records, read only by the oracle (standard normal): a vascular factor
    # (Lp(a), inflammation, genes), beta-cell reserve, salt sensitivity, an inherited lipid trait.
    for k in UNRECORDED_TRAITS:
        u[k] = rng.standard_normal(n)
    # Smoking intensity (packs a day, mean ~0.7) and starting age, for pack-years (chosen).
    ppd = rng.gamma(3.0, 0.23, size=n)
    smoke_start = np.clip(19.0 + 3.0 * rng.standard_normal(n), 15.0, 30.0)
    # BMI at age 20, below today's by the usual adult weight gain (chosen ~2 kg/m2 by midlife).
    bmi20 = bmi_mean(male, np.full(n, 20.0)) * np.exp(0.11 * u["bmi"] + 0.05 * rng.standard_normal(n)) - 0.5
    return _People(
        male,
        age0,
        gap,
        n_exams,
        start_year,
        day_of_year,
        lipid_phase,
        height,
        u,
        slope,
        fh_cvd,
        fh_dm,
        activity_p,
        drink_u,
        heavy,
        ppd,
        smoke_start,
        bmi20,
    )


# AR(1) within-person noise: (correlation over one year, stationary SD). Chosen.
_AR: dict[str, tuple[float, float]] = {
    "bmi": (0.8, 0.035),
    "sbp": (0.6, 5.0),
    "glu": (0.6, 0.04),
    "ldl": (0.6, 10.0),
    "tg": (0.5, 0.22),
    "hdl": (0.6, 0.06),
    "liver": (0.6, 0.18),
    "ggt": (0.6, 0.15),
    "kid": (0.8, 4.0),
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
    # Cumulative exposures (hidden): pack-years, and mmHg- / mg/dL-years above a healthy level.
    cum: dict[str, Arr]


_HX = ("stroke", "heart", "htn", "dm", "dys")
_EXPOSURES = ("pack_years", "bp_years", "glu_years", "ldl_years")


def _true_levels(st: _State, ph: Mapping[str, Arr]) -> dict[str, Arr]:
    """Today's true levels after treatment (what the vessels see), before measurement noise."""
    return {
        "sbp": ph["sbp"] - 13.0 * st.on["aht"],
        "glu": np.exp(ph["log_glu"] - 0.12 * st.on["dm"]),
        "ldl": ph["ldl"] * (1 - 0.4 * st.on["statin"]),
    }


def _excess(st: _State, ph: Mapping[str, Arr]) -> dict[str, Arr]:
    """Yearly dose of each exposure: SBP above 120, glucose above 100, LDL above 100."""
    lv = _true_levels(st, ph)
    return {
        "bp_years": _hinge(lv["sbp"], 120.0),
        "glu_years": _hinge(lv["glu"], 100.0),
        "ldl_years": _hinge(lv["ldl"], 100.0),
    }


def _init_exposure(people: _People, st: _State, ph: Mapping[str, Arr], rng: np.random.Generator) -> None:
    """Exposure accumulated before the first checkup. Earlier adult years were at lower levels,
    so they count half, from age 25 (chosen); smokers from their starting age, former smokers
    for a random part of those years."""
    years = _hinge(people.age0, 25.0)
    for k, dose in _excess(st, ph).items():
        st.cum[k] = 0.5 * years * dose
    smoked = _hinge(people.age0, people.smoke_start)
    part = np.where(st.smoking == 3, 1.0, np.where(st.smoking == 2, rng.uniform(0.2, 0.8, len(years)), 0.0))
    st.cum["pack_years"] = people.ppd * smoked * part


def _accumulate(people: _People, st: _State, ph: Mapping[str, Arr]) -> None:
    """Add the exposure of the gap until the next checkup (at today's levels)."""
    for k, dose in _excess(st, ph).items():
        st.cum[k] = st.cum[k] + people.gap * dose
    st.cum["pack_years"] = st.cum["pack_years"] + people.gap * people.ppd * (st.smoking == 3)


def hidden_inputs(
    people: _People,
    st: _State,
    ph: Mapping[str, Arr],
    beh: Mapping[str, Arr],
    age: Arr,
    unrecorded_traits: float = 1.0,
) -> dict[str, Arr]:
    """The oracle's inputs (`HIDDEN_INPUTS`) for one wave: nothing here is a recorded value.
    `unrecorded_traits` scales the traits no checkup records (`generate_cohort`)."""
    u, lv = dict(people.u), _true_levels(st, ph)
    for k in UNRECORDED_TRAITS:
        u[k] = unrecorded_traits * u[k]
    return {
        "age": age,
        "male": people.male,
        "sbp": lv["sbp"],
        "log_glu": np.log(lv["glu"]),
        "ldl": lv["ldl"],
        "log_hdl": ph["log_hdl"],
        "log_tg": ph["log_tg"],
        "egfr": ph["egfr"],
        "bmi": ph["bmi"],
        "log_ggt": ph["log_ggt"],
        "smoker": ph["smoker"],
        **st.cum,
        "bmi_gain": ph["bmi"] - people.bmi20,
        "bp_slope": people.slope["bp"],
        "kid_slope": people.slope["kid"],
        "u_dbp": u["dbp"],
        "u_liver": u["liver"],
        "u_prot": u["prot"],
        "u_vascular": u["vascular"],
        "u_beta": u["beta"],
        "u_salt": u["salt"],
        "u_lipid": u["lipid"],
        "activity_p": people.activity_p,
        "heavy": beh["heavy"],
        "fh_cvd": people.fh_cvd,
        "fh_dm": people.fh_dm,
        "dx_dm": st.hx["dm"],
        "dx_htn": st.hx["htn"],
        "on_statin": st.on["statin"],
    }


_ON = ("aht", "dm", "statin")


def _initial_state(people: _People, rng: np.random.Generator) -> _State:
    n = len(people.male)
    age, male = people.age0, people.male
    # Smoking: men ~32 % current (NHIS 2023 examinees 32.4 %, KNHANES 2022 30.0 %), women ~4-5 %
    # (NHIS 3.9 %, KNHANES 5.0 %); sources. Former smoking accumulates with age in men.
    p_cur = np.where(male == 1, np.where(age < 60, 0.40, np.where(age < 70, 0.28, 0.16)), 0.05)
    p_former = np.where(male == 1, np.clip(0.05 + 0.008 * (age - 20), 0, 0.45), 0.03)
    r = rng.random(n)
    smoking = np.where(r < p_cur, 3.0, np.where(r < p_cur + p_former, 2.0, 1.0))
    ar = {k: s * rng.standard_normal(n) for k, (_, s) in _AR.items()}
    zeros = lambda: np.zeros(n)  # noqa: E731
    return _State(
        smoking,
        ar,
        {k: zeros() for k in _HX},
        {k: zeros() for k in _ON},
        {k: zeros() for k in ("sbp", "glu", "ldl", "kid")},
        np.zeros(n, dtype=int),
        {k: zeros() for k in _EXPOSURES},
    )


def _advance(people: _People, st: _State, rng: np.random.Generator) -> None:
    """Move every person one inter-exam gap (1 or 2 years) forward."""
    n, gap = len(people.male), people.gap
    for k, (rho, sd) in _AR.items():
        r = rho**gap
        st.ar[k] = r * st.ar[k] + sd * np.sqrt(1 - r * r) * rng.standard_normal(n)
    # Smoking: ~6 %/yr of current smokers quit, ~3 %/yr of former ones relapse (chosen).
    r = rng.random(n)
    quit, relapse = 1 - 0.94**gap, 1 - 0.97**gap
    st.smoking = np.where(
        (st.smoking == 3) & (r < quit), 2.0, np.where((st.smoking == 2) & (r < relapse), 3.0, st.smoking)
    )
    # Diagnosed but untreated people start treatment at ~12 %/yr.
    r = rng.random(n)
    start = r < 1 - 0.88**gap
    st.on["aht"] = np.maximum(st.on["aht"], st.hx["htn"] * start)
    st.on["dm"] = np.maximum(st.on["dm"], st.hx["dm"] * start)
    st.on["statin"] = np.maximum(st.on["statin"], st.hx["dys"] * start)
    # Diabetes and hypertension speed up eGFR loss (chosen: 0.6 and 0.3 mL/min/1.73m2 a year).
    st.shift["kid"] -= gap * (0.6 * st.hx["dm"] + 0.3 * st.hx["htn"])


def _behaviour(people: _People, st: _State, age: Arr, rng: np.random.Generator) -> dict[str, Arr]:
    """This wave's drinking and activity. Drinking: M ~67 %, F ~41 % any (Korea 2022, sources
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
    sbp = (
        sbp_mean(male, age)
        + 1.2 * (bmi - 24)
        + 3.0 * drink
        + 3.0 * heavy
        + 9.0 * u["bp"]
        + s["bp"] * t
        + ar["sbp"]
        + st.shift["sbp"]
    )
    # Glucose: log-normal, right skew from a person term that grows faster above the mean.
    log_glu = (
        np.log(glucose_median(male, age))
        + 0.012 * (bmi - 24)
        + 0.035 * people.fh_dm
        + 0.065 * u["glu"]
        + 0.02 * np.maximum(u["glu"], 0) ** 2
        + s["glu"] * t
        + ar["glu"]
        + st.shift["glu"]
    )
    ldl = ldl_mean(male, age) + 1.5 * (bmi - 24) + 27.0 * u["ldl"] + ar["ldl"] + st.shift["ldl"]
    log_hdl = (
        np.log(hdl_median(male, age))
        - 0.018 * (bmi - 24)
        + 0.08 * drink
        - 0.07 * smoker
        + 0.012 * (act - 2)
        + 0.17 * u["hdl"]
        + ar["hdl"]
    )
    log_tg = (
        np.log(tg_median(male, age))
        + 0.045 * (bmi - 24)
        + 0.15 * drink
        + 0.2 * heavy
        + 0.08 * smoker
        - 0.02 * (act - 2)
        + 0.12 * st.hx["dm"]
        + 0.38 * u["tg"]
        + ar["tg"]
    )
    egfr = np.clip(egfr_mean(age) + 11.0 * u["kid"] + s["kid"] * t + ar["kid"] + st.shift["kid"], 5.0, 150.0)
    log_alt = (
        np.log(np.where(male == 1, 22.0, 15.0))
        + 0.06 * (bmi - 24)
        + 0.08 * drink
        + 0.15 * heavy
        - 0.005 * (age - 45)
        + 0.35 * u["liver"]
        + ar["liver"]
    )
    log_ggt = (
        np.log(np.where(male == 1, 23.0, 14.0))
        + 0.045 * (bmi - 24)
        + 0.3 * drink
        + 0.45 * heavy
        + 0.15 * smoker
        + 0.004 * (age - 45)
        + 0.4 * u["ggt"]
        + ar["ggt"]
    )
    return {
        "bmi": bmi,
        "sbp": sbp,
        "log_glu": log_glu,
        "ldl": ldl,
        "log_hdl": log_hdl,
        "log_tg": log_tg,
        "egfr": egfr,
        "log_alt": log_alt,
        "log_ggt": log_ggt,
        "smoker": smoker,
    }


def _creatinine_for_egfr(egfr: Arr, age: Arr, male: Arr) -> Arr:
    """Inverse of the CKD-EPI 2021 equation (derive.egfr_ckd_epi_2021)."""
    kappa = np.where(male == 1, 0.9, 0.7)
    alpha = np.where(male == 1, -0.302, -0.241)
    k = egfr / (142.0 * 0.9938**age * np.where(male == 1, 1.0, 1.012))
    ratio = np.where(k >= 1.0, k ** (1.0 / alpha), k ** (-1.0 / 1.2))
    return ratio * kappa


def _measure(
    people: _People, st: _State, ph: Mapping[str, Arr], beh: Mapping[str, Arr], age: Arr, rng: np.random.Generator
) -> dict[str, Arr]:
    """Measured values (treatment effects and measurement noise), unrounded and complete."""
    n, male, u = len(people.male), people.male, people.u
    nrm = lambda: rng.standard_normal(n)  # noqa: E731
    bmi = ph["bmi"]
    # Weight measured to ~0.3 kg; height ~0.3 cm around the person's fixed height.
    height = people.height + 0.3 * nrm()
    weight = bmi * (people.height / 100) ** 2 + 0.3 * nrm()
    waist = (
        np.where(male == 1, 2.55 * bmi + 22.5 + 0.05 * (age - 50), 2.3 * bmi + 22.5 + 0.12 * (age - 50))
        + 3.0 * u["waist"]
        + 1.5 * nrm()
    )
    # Antihypertensives lower SBP ~13 mmHg; DBP tracks SBP (r ~ 0.7) and falls after 55.
    sbp = ph["sbp"] - 13.0 * st.on["aht"] + 5.0 * nrm()
    dbp = (
        np.where(male == 1, 78.5, 73.5)
        + 0.45 * (sbp - np.where(male == 1, 121.0, 115.0))
        - 0.15 * _hinge(age, 55)
        + 0.3 * (bmi - 24)
        + 1.0 * beh["drinker"]
        + 4.0 * u["dbp"]
        + 3.5 * nrm()
    )
    glu = np.exp(ph["log_glu"] - 0.12 * st.on["dm"] + 0.045 * nrm())
    # Statins lower LDL ~40 % and TG ~12 %.
    ldl = ph["ldl"] * (1 - 0.4 * st.on["statin"]) + 5.0 * nrm()
    hdl = np.exp(ph["log_hdl"] + 0.04 * nrm())
    tg = np.exp(ph["log_tg"] - 0.12 * st.on["statin"] + 0.12 * nrm())
    tc = ldl + hdl + tg / 5.0 + 3.0 * nrm()  # Friedewald identity plus assay noise
    # Hb: M 15.2 / F 12.9 (13.2 after 50); smokers +0.35; falls in older men and with low eGFR.
    hb = (
        np.where(male == 1, 15.2 - 0.03 * _hinge(age, 50), 12.9 + 0.3 * (age >= 50))
        + 0.35 * ph["smoker"]
        + 0.03 * (bmi - 24)
        - 0.04 * _below(ph["egfr"], 60)
        + 0.85 * u["hb"]
        + 0.35 * nrm()
    )
    creat = _creatinine_for_egfr(ph["egfr"], age, male) * np.exp(0.05 * nrm())
    # Dipstick protein: an ordinal latent pushed by BP, glucose, obesity and low eGFR; cut-points
    # chosen for ~92 % negative and ~2 % >= 1+ (KNHANES dipstick 1-2 %, sources).
    prot = (
        0.6 * u["prot"]
        + 0.75 * nrm()
        + 0.02 * (sbp - 120)
        + 0.012 * _hinge(glu, 100)
        + 0.04 * _hinge(bmi, 25)
        + 0.03 * _below(ph["egfr"], 70)
    )
    urine = 1.0 + np.searchsorted(np.array([1.9, 2.4, 2.85, 3.2, 3.55]), prot).astype(float)
    alt = np.exp(ph["log_alt"] + 0.08 * nrm())
    alt_ref = np.where(male == 1, 22.0, 15.0)
    ast = np.exp(
        np.log(np.where(male == 1, 23.0, 20.0))
        + 0.45 * np.log(alt / alt_ref)
        + 0.12 * beh["heavy"]
        + 0.004 * (age - 45)
        + 0.15 * u["ast"]
        + 0.1 * nrm()
    )
    ggt = np.exp(ph["log_ggt"] + 0.08 * nrm())
    return {
        "height_cm": height,
        "weight_kg": weight,
        "waist_cm": waist,
        "sbp": sbp,
        "dbp": dbp,
        "fasting_glucose": glu,
        "total_cholesterol": tc,
        "triglycerides": tg,
        "hdl": hdl,
        "ldl": ldl,
        "hemoglobin": hb,
        "urine_protein": urine,
        "serum_creatinine": creat,
        "ast": ast,
        "alt": alt,
        "ggt": ggt,
    }


# Instrument resolution: BP and mg/dL labs to the unit, creatinine/Hb/anthropometry to 0.1.
_DECIMALS: dict[str, int] = {
    "height_cm": 1,
    "weight_kg": 1,
    "waist_cm": 1,
    "sbp": 0,
    "dbp": 0,
    "fasting_glucose": 0,
    "total_cholesterol": 0,
    "triglycerides": 0,
    "hdl": 0,
    "ldl": 0,
    "hemoglobin": 1,
    "serum_creatinine": 1,
    "ast": 0,
    "alt": 0,
    "ggt": 0,
    "urine_protein": 0,
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


def _record(
    people: _People,
    st: _State,
    meas: dict[str, Arr],
    beh: Mapping[str, Arr],
    age: Arr,
    k: int,
    rng: np.random.Generator,
) -> dict[str, Arr]:
    """The recorded checkup: rounded, clipped, with NHIS-like missingness (missing is NaN)."""
    n, male = len(people.male), people.male
    rec = _round_and_clip(meas)
    # Persistent kidney damage after a CKD diagnosis: creatinine stays in the eGFR < 60 range, or
    # proteinuria stays >= 1+ (a CKD diagnosis does not heal).
    cr59 = np.ceil(_creatinine_for_egfr(np.full(n, 59.0), age, male) * 10.0) / 10.0
    cr = rec["serum_creatinine"]
    rec["serum_creatinine"] = np.where(st.ckd_path == 1, np.maximum(cr, cr59), cr)
    rec["urine_protein"] = np.where(st.ckd_path == 2, np.maximum(rec["urine_protein"], 3.0), rec["urine_protein"])
    # Lipids every fourth year: men from 24, women from 40 (sources: ~60 % missing).
    every_fourth_year = (k + people.lipid_phase) % np.where(people.gap == 1, 4, 2) == 0
    lipid_year = every_fourth_year & (age >= np.where(male == 1, 24, 40))
    for f in _LIPIDS:
        rec[f] = np.where(lipid_year, rec[f], np.nan)
    # NHIS 2020 file: BP missing ~0.75 %, blood labs ~0.76 % (one missed draw), urine ~1.2 %,
    # waist ~0.01 % (sources). Questionnaire items: chosen 5-8 %.
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
    rec["history_ckd"] = np.full(n, np.nan)  # not on the NHIS questionnaire
    rec["smoking_status"] = st.smoking.copy()
    rec["drinking"] = beh["drinker"].copy()
    rec.update(
        {
            "history_stroke": st.hx["stroke"].copy(),
            "history_heart_disease": st.hx["heart"].copy(),
            "history_hypertension": st.hx["htn"].copy(),
            "history_diabetes": st.hx["dm"].copy(),
            "history_dyslipidemia": st.hx["dys"].copy(),
            "on_antihypertensive": st.on["aht"].copy(),
            "on_diabetes_medication": st.on["dm"].copy(),
            "on_statin": st.on["statin"].copy(),
        }
    )
    return rec


# --------------------------------------------------------------------------------------------
# Diagnoses: prevalent at entry, and incident ones carried into later waves
# --------------------------------------------------------------------------------------------


def _diagnose(
    st: _State, ph: Mapping[str, Arr], which: str, who: Arr, rng: np.random.Generator, onset: Arr | None = None
) -> None:
    """Mark a diagnosis of `which` for people `who` (bool), and move the physiology of people
    `onset` (default: `who`) into the disease range, so later checkups look like a treated or
    untreated patient. An undiagnosed true case is in `onset` only (values in the disease range,
    no history); a false-positive diagnosis is in `who` only."""
    n = len(who)
    w = who.astype(float)
    o = w if onset is None else onset.astype(float)
    if which == "htn":
        st.hx["htn"] = np.maximum(st.hx["htn"], w)
        st.on["aht"] = np.maximum(st.on["aht"], w * (rng.random(n) < 0.8))
        st.shift["sbp"] += o * np.maximum(0.0, 145.0 + 6.0 * rng.standard_normal(n) - ph["sbp"])
    elif which == "dm":
        st.hx["dm"] = np.maximum(st.hx["dm"], w)
        st.on["dm"] = np.maximum(st.on["dm"], w * (rng.random(n) < 0.8))
        target = np.log(140.0) + 0.15 * rng.standard_normal(n)
        st.shift["glu"] += o * np.maximum(0.0, target - ph["log_glu"])
    elif which == "dys":
        st.hx["dys"] = np.maximum(st.hx["dys"], w)
        st.on["statin"] = np.maximum(st.on["statin"], w * (rng.random(n) < 0.7))
        st.shift["ldl"] += o * np.maximum(0.0, 160.0 + 15.0 * rng.standard_normal(n) - ph["ldl"])
    elif which == "cvd":
        # MI 2.27 vs ischaemic stroke 2.96 per 1,000 PY (sources 3): 57 % strokes.
        stroke = rng.random(n) < 0.57
        st.hx["stroke"] = np.maximum(st.hx["stroke"], w * stroke)
        st.hx["heart"] = np.maximum(st.hx["heart"], w * ~stroke)
        st.on["statin"] = np.maximum(st.on["statin"], w * (rng.random(n) < 0.8))
    elif which == "ckd":
        # Kidney damage is physiology (no questionnaire flag exists): it follows the onset.
        path = np.where(ph["egfr"] < 62.0, 1, np.where(rng.random(n) < 0.6, 1, 2))
        new = (o > 0) & (st.ckd_path == 0)
        st.ckd_path = np.where(new, path, st.ckd_path)
        target = 40.0 + 18.0 * rng.random(n)
        st.shift["kid"] += (new & (path == 1)) * np.minimum(0.0, target - ph["egfr"])
    # A statin is dyslipidemia care: keep the questionnaire consistent.
    st.hx["dys"] = np.maximum(st.hx["dys"], st.on["statin"])


def _prevalent_at_entry(people: _People, st: _State, ph: Mapping[str, Arr], rng: np.random.Generator) -> None:
    """Diagnoses already made before the first checkup, by age and the person's own values.

    Chosen so that, with the incident diagnoses added over follow-up, the checkups show history of
    hypertension ~19 % in the 40s to ~50 % in the 70s (adult prevalence 29 %, sources),
    diabetes ~10 % (DM 15.5 % of >= 30 y, of whom not all diagnosed), dyslipidemia care ~20 %,
    stroke and heart disease ~2 % each.
    """
    n, age, male = len(people.male), people.age0, people.male
    p_htn = _sigmoid(-2.0 + 0.05 * (age - 55) + 0.09 * (ph["sbp"] - 130) + 0.2 * male)
    p_dm = _sigmoid(-3.0 + 0.04 * (age - 55) + 9.0 * (ph["log_glu"] - np.log(100.0)) + 0.4 * people.fh_dm + 0.2 * male)
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
# sheets (hypertension awareness 69 %, sources) spread over the follow-up.
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


def generate_cohort(
    people: int, seed: int, progress: Callable[[int], None] | None = None, unrecorded_traits: float = 1.0
) -> pd.DataFrame:
    """A synthetic cohort of `people` Korean adults, ~5 checkups each, in the canonical schema,
    with `<outcome>_1y` labels (NaN where not eligible) and `<outcome>_1y_true_risk`.

    Deterministic by `seed`. `progress(n)` is called after each wave with the number of checkups
    produced so far. `unrecorded_traits` scales the oracle's traits that no checkup records
    (`UNRECORDED_TRAITS`): 1 is the cohort as designed; 0 removes them (the intercepts are not
    re-tuned), which `bench/bench_oracle_gap.py` uses to measure how much of the gap they make.
    """
    if not 1 <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be 1 to {MAX_PEOPLE:,} (the person ids have {PERSON_ID_DIGITS} digits)")
    rng = np.random.default_rng(seed)
    pp = _draw_people(people, rng)
    st = _initial_state(pp, rng)
    n = people
    # Each person's earlier checkups as eligibility sees them (one source of truth with serving).
    history = History.empty(n)
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
            _init_exposure(pp, st, ph, rng)
        rec = _record(pp, st, _measure(pp, st, ph, beh, age, rng), beh, age, k, rng)
        frame = _wave_frame(rec, pp.male, age)
        year = pp.start_year + t
        doy = np.clip(pp.day_of_year + rng.integers(-15, 16, size=n), 1, 365)
        exam_date = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + (doy - 1)
        active = k < pp.n_exams
        elig = eligibility(frame, history=history)
        history = history.advance(frame, exam_date, active)
        h = hidden_inputs(pp, st, ph, beh, age, unrecorded_traits)
        h_next = dict(h, age=age + 1.0)
        second_year = active & (k + 1 < pp.n_exams) & (pp.gap == 2)
        for o in OUTCOMES:
            ok = elig[o].to_numpy()
            p_event = event_risk(o, h)
            # A true first event, and whether it is diagnosed (recorded) within the year.
            true_event = ok & (rng.random(n) < p_event)
            r = rng.random(n)
            label = ok & np.where(true_event, r < ASCERTAINMENT[o], r < FALSE_POSITIVE[o])
            frame[label_column(o)] = np.where(ok, label.astype(float), np.nan)
            frame[true_risk_column(o)] = np.where(ok, recorded_risk(o, p_event), np.nan)
            # Unobserved second year of a biennial gap, drawn with that year's (one year older) risk.
            event2 = ok & ~true_event & second_year & (rng.random(n) < event_risk(o, h_next))
            dx2 = event2 & (rng.random(n) < ASCERTAINMENT[o])
            abnormal = ~ok & ~_has_history(st, o) & (rng.random(n) < _DX_AFTER_ABNORMAL.get(o, 0.0))
            _diagnose(st, ph, _HX_NAME[o], label | dx2 | abnormal, rng, onset=true_event | event2 | abnormal)
        _accumulate(pp, st, ph)
        frame["exam_date"] = exam_date
        frame["pid"] = np.arange(n)
        frame["wave"] = k
        waves.append(frame[active])
        produced += int(active.sum())
        if progress is not None:
            progress(produced)
        if not active.any():
            break
    return _assemble(waves)


# The generator's person ids: "S" and the person's number in seven digits (so at most 9,999,999
# people a cohort). Every id of exactly that form marks a file as synthetic even when its
# true-risk columns were dropped (`models.provenance.detect`); a hospital's "S" and 8-12 digits do not.
PERSON_ID_PREFIX, PERSON_ID_DIGITS = "S", 7
PERSON_ID_PATTERN = rf"{PERSON_ID_PREFIX}\d{{{PERSON_ID_DIGITS}}}"
MAX_PEOPLE = 10**PERSON_ID_DIGITS - 1


def synthetic_ids(ids: pd.Series) -> bool:
    """True when there are ids and every one has the generator's form."""
    ids = ids.dropna().astype(str)
    return len(ids) > 0 and bool(ids.str.fullmatch(PERSON_ID_PATTERN).all())


def _assemble(waves: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(waves, ignore_index=True)
    df = df.sort_values(["pid", "wave"], kind="stable").reset_index(drop=True)
    number = np.char.zfill((df["pid"].to_numpy() + 1).astype(str), PERSON_ID_DIGITS)
    df["person_id"] = np.char.add(PERSON_ID_PREFIX, number)
    df["exam_date"] = pd.to_datetime(df["exam_date"]).astype("datetime64[ns]")
    # Whole numbers, stored as float64 like every numeric field of the canonical frame.
    df["age"] = np.floor(df["age"].to_numpy(dtype=float))
    df["age_group"] = np.clip(df["age"].to_numpy() // 5 + 1, 5, 18).astype(np.float64)
    targets = [c for o in OUTCOMES for c in (label_column(o), true_risk_column(o))]
    floats = {
        c: np.float64 for c in list(COLUMNS) + targets if c not in ("person_id", "exam_date", "sex", "age", "age_group")
    }
    return df[list(COLUMNS) + targets].astype(floats)
