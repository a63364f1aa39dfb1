"""Published 10-year cardiovascular risk equations, used as benchmark comparators.

Three equations, vectorised over a DataFrame of canonical checkup records (`features.schema`):

* `prevent_10y_cvd`: AHA PREVENT base model, 10-year total CVD (Khan et al., Circulation 2024).
* `framingham_2008_cvd`: Framingham general CVD (D'Agostino et al., Circulation 2008).
* `pce_10y_ascvd`: Pooled Cohort Equations, 10-year hard ASCVD (Goff et al., 2013), White
  equations (see that function for why).

All three predict a **10-year** risk. Our models predict a **1-year** risk, so the two are not the
same quantity: in evaluations these equations are used only to compare *ranking* (AUROC, AUPRC,
net-benefit curves read with care), never as 1-year probabilities, and their calibration must not
be compared with ours. Rescaling 10-year to 1-year risk would be a modelling assumption of its own.

Inputs taken from the record:

* age: `age`, or the NHIS band midpoint from `age_group` (`features.derive.age_years`);
* sex: `sex` ("M"/"F");
* total_cholesterol, hdl (mg/dL); sbp (mmHg);
* on_antihypertensive, on_statin (0/1);
* current smoker: `smoking_status == 3`;
* diabetes: any of `history_diabetes == 1`, `on_diabetes_medication == 1`,
  `fasting_glucose >= features.cutoffs.GLUCOSE_DIABETES` (126 mg/dL); 0 when none is positive and
  at least one is known; missing when all three are missing;
* eGFR (PREVENT only): an `egfr` column when the frame has one, otherwise CKD-EPI 2021 from
  `serum_creatinine` (`features.derive.egfr_ckd_epi_2021`).

A row gets NaN when any input its equation needs is missing. Rows outside an equation's valid
range are still computed (the equations extrapolate smoothly); `prevent_valid`, `framingham_valid`
and `pce_valid` say which rows are inside it, so an evaluation can report the in-range count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.cutoffs import GLUCOSE_DIABETES
from features.derive import age_years, egfr_ckd_epi_2021, is_male

__all__ = [
    "PREVENT_RANGES",
    "FRAMINGHAM_RANGES",
    "PCE_RANGES",
    "prevent_10y_cvd",
    "prevent_valid",
    "framingham_2008_cvd",
    "framingham_valid",
    "pce_10y_ascvd",
    "pce_valid",
]

# Valid input ranges, inclusive (Stata `prevent` help, docs/clinical-sources.md). BMI is not an input of
# the total-CVD base model, so its range is not checked here.
# The lab ranges the ACC/AHA calculators accept, for PREVENT and the pooled cohort equations alike.
_ACC_AHA_LAB_RANGES: dict[str, tuple[float, float]] = {
    "total_cholesterol": (130, 320),
    "hdl": (20, 100),
    "sbp": (90, 200),
}
PREVENT_RANGES: dict[str, tuple[float, float]] = {"age": (30, 79), **_ACC_AHA_LAB_RANGES, "egfr": (15, 150)}
# Framingham 2008 was derived on ages 30-74 (docs/clinical-sources.md); the paper states no lab ranges.
FRAMINGHAM_RANGES: dict[str, tuple[float, float]] = {"age": (30, 74)}
# The 2013 guideline's equations apply to ages 40-79; the ACC/AHA calculator accepts TC 130-320,
# HDL 20-100, SBP 90-200.
PCE_RANGES: dict[str, tuple[float, float]] = {"age": (40, 79), **_ACC_AHA_LAB_RANGES}

_MGDL_TO_MMOL = 0.02586  # cholesterol mg/dL -> mmol/L, as in the PREVENT equations


def _num(df: pd.DataFrame, name: str) -> np.ndarray:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(df), np.nan)


def _binary(df: pd.DataFrame, name: str) -> np.ndarray:
    """0/1 flag as float; anything else (missing, other codes) is NaN."""
    v = _num(df, name)
    return np.where((v == 0) | (v == 1), v, np.nan)


def _treatment(df: pd.DataFrame, name: str, assume_untreated: bool) -> np.ndarray:
    v = _binary(df, name)
    # NHIS extracts often lack medication fields; the caller may choose to read that as "untreated"
    # (as AHAprevent's bp_treat_default / statin_default do) instead of losing every row.
    return np.where(np.isnan(v), 0.0, v) if assume_untreated else v


def _current_smoker(df: pd.DataFrame) -> np.ndarray:
    s = _num(df, "smoking_status")
    return np.where(np.isnan(s), np.nan, (s == 3).astype(float))


def _diabetes(df: pd.DataFrame) -> np.ndarray:
    hist = _binary(df, "history_diabetes")
    meds = _binary(df, "on_diabetes_medication")
    fpg = _num(df, "fasting_glucose")
    high_fpg = np.where(np.isnan(fpg), np.nan, (fpg >= GLUCOSE_DIABETES).astype(float))
    parts = np.vstack([hist, meds, high_fpg])
    any_pos = np.nansum(parts, axis=0) > 0
    all_missing = np.isnan(parts).all(axis=0)
    return np.where(all_missing, np.nan, any_pos.astype(float))


def _egfr(df: pd.DataFrame) -> np.ndarray:
    computed = egfr_ckd_epi_2021(df)
    if "egfr" in df.columns:
        given = _num(df, "egfr")
        return np.where(np.isnan(given), computed, given)
    return computed


def _in_ranges(values: dict[str, np.ndarray], ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    ok = np.ones(len(next(iter(values.values()))), dtype=bool)
    for name, (lo, hi) in ranges.items():
        v = values[name]
        ok &= (v >= lo) & (v <= hi)  # NaN compares False, so missing is out of range
    return ok


def _valid(values: dict[str, np.ndarray], ranges: dict[str, tuple[float, float]]) -> np.ndarray:
    """Computable (no input missing) and every ranged input inside its range."""
    return _all_present(*values.values()) & _in_ranges(values, ranges)


def _all_present(*arrays: np.ndarray) -> np.ndarray:
    return ~np.any(np.isnan(np.vstack(arrays)), axis=0)


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------------
# AHA PREVENT, base model, 10-year total CVD
# --------------------------------------------------------------------------------------------

# Coefficients: Khan et al. 2024 supplement Table S12A, as transcribed in the SSC Stata
# implementation (Linden 2024, prevent10i.ado) and preventr; checked against the AHAprevent R
# package's outputs in the tests.
_PREVENT_CVD = {
    # term: (women, men)
    "const": (-3.307728, -3.031168),
    "age": (0.7939329, 0.7688528),
    "nonhdl": (0.0305239, 0.0736174),
    "hdl": (-0.1606857, -0.0954431),
    "sbp_lo": (-0.2394003, -0.4347345),
    "sbp_hi": (0.3600781, 0.3362658),
    "dm": (0.8667604, 0.7692857),
    "smoker": (0.5360739, 0.4386871),
    "egfr_lo": (0.6045917, 0.5378979),
    "egfr_hi": (0.0433769, 0.0164827),
    "bptx": (0.3151672, 0.2888790),
    "statin": (-0.1477655, -0.1337349),
    "bptx_sbp_hi": (-0.0663612, -0.0475924),
    "statin_nonhdl": (0.1197879, 0.1502730),
    "age_nonhdl": (-0.0819715, -0.0517874),
    "age_hdl": (0.0306769, 0.0191169),
    "age_sbp_hi": (-0.0946348, -0.1049477),
    "age_dm": (-0.2705700, -0.2251948),
    "age_smoker": (-0.0787150, -0.0895067),
    "age_egfr_lo": (-0.1637806, -0.1543702),
}


def _prevent_inputs(df: pd.DataFrame, assume_untreated: bool) -> dict[str, np.ndarray]:
    return {
        "age": age_years(df),
        "male": is_male(df),
        "total_cholesterol": _num(df, "total_cholesterol"),
        "hdl": _num(df, "hdl"),
        "sbp": _num(df, "sbp"),
        "egfr": _egfr(df),
        "dm": _diabetes(df),
        "smoker": _current_smoker(df),
        "bptx": _treatment(df, "on_antihypertensive", assume_untreated),
        "statin": _treatment(df, "on_statin", assume_untreated),
    }


def prevent_10y_cvd(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """AHA PREVENT base-model 10-year total-CVD risk (probability in [0, 1]) per record.

    risk = expit(x), x a sex-specific linear predictor in age_c = (age - 55)/10,
    nonHDL_c = (TC - HDL) x 0.02586 - 3.5, HDL_c = (HDL x 0.02586 - 1.3)/0.3, piecewise SBP
    (knot 110) and eGFR (knot 60), diabetes, current smoking, antihypertensive and statin use, and
    their interactions (Khan et al., Circulation 2024;149:430, docs/clinical-sources.md).

    Valid range: age 30-79, TC 130-320 mg/dL, HDL 20-100 mg/dL, SBP 90-200 mmHg,
    eGFR 15-150 mL/min/1.73 m2 (see `prevent_valid`); outside it the value is still computed.
    NaN where sex, age, TC, HDL, SBP, eGFR, diabetes, smoking or a treatment flag is missing
    (treatment flags count as 0 when `assume_untreated`).

    A 10-year risk: use it to compare ranking (AUROC) with the 1-year models, never as a 1-year
    probability.
    """
    v = _prevent_inputs(df, assume_untreated)
    female = v["male"] == 0
    c = {k: np.where(female, w, m) for k, (w, m) in _PREVENT_CVD.items()}

    age_c = (v["age"] - 55.0) / 10.0
    nonhdl = (v["total_cholesterol"] - v["hdl"]) * _MGDL_TO_MMOL - 3.5
    hdl = (v["hdl"] * _MGDL_TO_MMOL - 1.3) / 0.3
    sbp_lo = (np.minimum(v["sbp"], 110.0) - 110.0) / 20.0
    sbp_hi = (np.maximum(v["sbp"], 110.0) - 130.0) / 20.0
    egfr_lo = (np.minimum(v["egfr"], 60.0) - 60.0) / -15.0
    egfr_hi = (np.maximum(v["egfr"], 60.0) - 90.0) / -15.0
    dm, smk, bptx, statin = v["dm"], v["smoker"], v["bptx"], v["statin"]

    x = (
        c["const"]
        + c["age"] * age_c
        + c["nonhdl"] * nonhdl
        + c["hdl"] * hdl
        + c["sbp_lo"] * sbp_lo
        + c["sbp_hi"] * sbp_hi
        + c["dm"] * dm
        + c["smoker"] * smk
        + c["egfr_lo"] * egfr_lo
        + c["egfr_hi"] * egfr_hi
        + c["bptx"] * bptx
        + c["statin"] * statin
        + c["bptx_sbp_hi"] * bptx * sbp_hi
        + c["statin_nonhdl"] * statin * nonhdl
        + c["age_nonhdl"] * age_c * nonhdl
        + c["age_hdl"] * age_c * hdl
        + c["age_sbp_hi"] * age_c * sbp_hi
        + c["age_dm"] * age_c * dm
        + c["age_smoker"] * age_c * smk
        + c["age_egfr_lo"] * age_c * egfr_lo
    )
    return np.where(_all_present(*v.values()), _expit(x), np.nan)


def prevent_valid(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """True where `prevent_10y_cvd` is computable and every input lies in PREVENT's valid range."""
    return _valid(_prevent_inputs(df, assume_untreated), PREVENT_RANGES)


# --------------------------------------------------------------------------------------------
# Cox-model equations: risk = 1 - S0 ** exp(sum(beta x) - mean)
# --------------------------------------------------------------------------------------------


def _cox_risk(lp: np.ndarray, mean: np.ndarray, s0: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The risk where `ok` (every input present), else NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        # -expm1(log(S0) * exp(.)) == 1 - S0**exp(.), accurate for small risks.
        return np.where(ok, -np.expm1(np.log(s0) * np.exp(lp - mean)), np.nan)


def _cox_inputs(df: pd.DataFrame, assume_untreated: bool) -> dict[str, np.ndarray]:
    return {
        "age": age_years(df),
        "male": is_male(df),
        "total_cholesterol": _num(df, "total_cholesterol"),
        "hdl": _num(df, "hdl"),
        "sbp": _num(df, "sbp"),
        "dm": _diabetes(df),
        "smoker": _current_smoker(df),
        "bptx": _treatment(df, "on_antihypertensive", assume_untreated),
    }


# D'Agostino et al. 2008, Table 2 (docs/clinical-sources.md): (women, men).
_FRAMINGHAM = {
    "ln_age": (2.32888, 3.06117),
    "ln_tc": (1.20904, 1.12370),
    "ln_hdl": (-0.70833, -0.93263),
    "ln_sbp_untreated": (2.76157, 1.93303),
    "ln_sbp_treated": (2.82263, 1.99881),
    "smoker": (0.52873, 0.65451),
    "dm": (0.69154, 0.57367),
    "s0": (0.95012, 0.88936),
    "mean": (26.1931, 23.9802),
}


def framingham_2008_cvd(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """Framingham 2008 general-CVD 10-year risk (probability in [0, 1]) per record.

    risk = 1 - S0^exp(sum(beta x) - mean), sex-specific, in ln age, ln TC, ln HDL, ln SBP (treated or
    untreated coefficient), current smoking and diabetes (D'Agostino et al., Circulation
    2008;117:743, docs/clinical-sources.md). Outcome: CHD, stroke, peripheral artery disease or heart failure.

    Valid range: age 30-74, the derivation cohort (see `framingham_valid`); outside it the value is
    still computed. NaN where sex, age, TC, HDL, SBP, smoking, diabetes or antihypertensive use is
    missing (the last counts as 0 when `assume_untreated`).

    A 10-year risk: use it to compare ranking (AUROC) with the 1-year models, never as a 1-year
    probability.
    """
    v = _cox_inputs(df, assume_untreated)
    female = v["male"] == 0
    c = {k: np.where(female, w, m) for k, (w, m) in _FRAMINGHAM.items()}
    with np.errstate(divide="ignore", invalid="ignore"):  # non-positive inputs -> NaN/-inf, masked below
        ln_age, ln_tc, ln_hdl, ln_sbp = (np.log(v[k]) for k in ("age", "total_cholesterol", "hdl", "sbp"))
    lp = (
        c["ln_age"] * ln_age
        + c["ln_tc"] * ln_tc
        + c["ln_hdl"] * ln_hdl
        + np.where(v["bptx"] == 1, c["ln_sbp_treated"], c["ln_sbp_untreated"]) * ln_sbp
        + c["smoker"] * v["smoker"]
        + c["dm"] * v["dm"]
    )
    return _cox_risk(lp, c["mean"], c["s0"], _all_present(*v.values()))


def framingham_valid(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """True where `framingham_2008_cvd` is computable and age is within 30-74."""
    return _valid(_cox_inputs(df, assume_untreated), FRAMINGHAM_RANGES)


# Goff et al. 2013 guideline, Table A, White equations (docs/clinical-sources.md): (women, men).
_PCE_WHITE = {
    "ln_age": (-29.799, 12.344),
    "ln_age_sq": (4.884, 0.0),
    "ln_tc": (13.540, 11.853),
    "ln_age_ln_tc": (-3.114, -2.664),
    "ln_hdl": (-13.578, -7.990),
    "ln_age_ln_hdl": (3.149, 1.769),
    "ln_sbp_treated": (2.019, 1.797),
    "ln_sbp_untreated": (1.957, 1.764),
    "smoker": (7.574, 7.837),
    "ln_age_smoker": (-1.665, -1.795),
    "dm": (0.661, 0.658),
    "s0": (0.9665, 0.9144),
    "mean": (-29.18, 61.18),
}


def pce_10y_ascvd(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """Pooled Cohort Equations 10-year hard-ASCVD risk (probability in [0, 1]), White equations.

    risk = 1 - S0^exp(sum(beta x) - mean), sex-specific (Goff et al. 2013 ACC/AHA guideline,
    docs/clinical-sources.md). Outcome: nonfatal MI, CHD death, fatal or nonfatal stroke.

    Why the White equations for Korean adults: the PCE exist only for White and African-American
    people, and the guideline advises the White equations for other groups. In the Korean Heart
    Study (Jung et al., Atherosclerosis 2015) both ranked similarly (AUROC 0.727 vs 0.725 in men,
    0.738 vs 0.739 in women); the White equation mis-calibrates Koreans (over-predicts men,
    under-predicts women), which does not matter for a ranking comparison.

    Valid range: age 40-79, TC 130-320, HDL 20-100, SBP 90-200 (see `pce_valid`); outside it the
    value is still computed. NaN where sex, age, TC, HDL, SBP, smoking, diabetes or
    antihypertensive use is missing (the last counts as 0 when `assume_untreated`).

    A 10-year risk: use it to compare ranking (AUROC) with the 1-year models, never as a 1-year
    probability.
    """
    v = _cox_inputs(df, assume_untreated)
    female = v["male"] == 0
    c = {k: np.where(female, w, m) for k, (w, m) in _PCE_WHITE.items()}
    with np.errstate(divide="ignore", invalid="ignore"):  # non-positive inputs -> NaN/-inf
        ln_age, ln_tc, ln_hdl, ln_sbp = (np.log(v[k]) for k in ("age", "total_cholesterol", "hdl", "sbp"))
    smk = v["smoker"]
    lp = (
        c["ln_age"] * ln_age
        + c["ln_age_sq"] * ln_age**2
        + c["ln_tc"] * ln_tc
        + c["ln_age_ln_tc"] * ln_age * ln_tc
        + c["ln_hdl"] * ln_hdl
        + c["ln_age_ln_hdl"] * ln_age * ln_hdl
        + np.where(v["bptx"] == 1, c["ln_sbp_treated"], c["ln_sbp_untreated"]) * ln_sbp
        + c["smoker"] * smk
        + c["ln_age_smoker"] * ln_age * smk
        + c["dm"] * v["dm"]
    )
    return _cox_risk(lp, c["mean"], c["s0"], _all_present(*v.values()))


def pce_valid(df: pd.DataFrame, *, assume_untreated: bool = False) -> np.ndarray:
    """True where `pce_10y_ascvd` is computable and every input lies in the guideline's range."""
    return _valid(_cox_inputs(df, assume_untreated), PCE_RANGES)
