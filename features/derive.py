"""Canonical records to the model matrix: derived and longitudinal features.

One code path serves training, batch scoring and a single API request. Missing inputs stay NaN
(the models learn what missing means); nothing is filled with zero. Person ID and exam date are
used only to order a person's checkups, never as features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import age_group_midpoint

# Raw record fields the models see directly (codes as numbers).
RAW_FEATURES: tuple[str, ...] = (
    "height_cm",
    "weight_kg",
    "waist_cm",
    "sbp",
    "dbp",
    "fasting_glucose",
    "total_cholesterol",
    "triglycerides",
    "hdl",
    "ldl",
    "hemoglobin",
    "urine_protein",
    "serum_creatinine",
    "ast",
    "alt",
    "ggt",
    "smoking_status",
    "drinking",
    "history_stroke",
    "history_heart_disease",
    "history_hypertension",
    "history_diabetes",
    "history_dyslipidemia",
    "on_antihypertensive",
    "on_diabetes_medication",
    "on_statin",
    "family_history_cvd",
    "family_history_diabetes",
    "activity_days_per_week",
)

DERIVED_FEATURES: tuple[str, ...] = (
    "age_years",
    "male",
    "current_smoker",
    "bmi",
    "waist_to_height",
    "egfr",
    "non_hdl",
    "tg_to_hdl",
    "tyg_index",
    "fatty_liver_index",
    "ast_to_alt",
    "pulse_pressure",
    "bp_category",
)

# Values carried over from the same person's earlier checkups.
TREND_FIELDS: tuple[str, ...] = ("weight_kg", "bmi", "waist_cm", "sbp", "dbp", "fasting_glucose", "egfr", "ggt")
CARRIED_LIPIDS: tuple[str, ...] = ("total_cholesterol", "hdl", "ldl", "triglycerides")

LONGITUDINAL_FEATURES: tuple[str, ...] = (
    ("prior_exams", "years_since_last_exam")
    + tuple(f"delta_{f}" for f in TREND_FIELDS)
    + tuple(f"last_{f}" for f in CARRIED_LIPIDS)
    + ("years_since_lipids",)
)

FEATURES: tuple[str, ...] = RAW_FEATURES + DERIVED_FEATURES + LONGITUDINAL_FEATURES


def _num(df: pd.DataFrame, name: str) -> np.ndarray:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(df), np.nan)


def age_years(df: pd.DataFrame) -> np.ndarray:
    """Age in years; the NHIS band midpoint where only `age_group` is known."""
    age = _num(df, "age")
    return np.where(np.isnan(age), age_group_midpoint(_num(df, "age_group")), age)


def is_male(df: pd.DataFrame) -> np.ndarray:
    if "sex" not in df.columns:
        return np.full(len(df), np.nan)
    sex = df["sex"].to_numpy(dtype=object)
    return np.where(sex == "M", 1.0, np.where(sex == "F", 0.0, np.nan))


def egfr_ckd_epi_2021(df: pd.DataFrame) -> np.ndarray:
    """eGFR (mL/min/1.73 m2) by the race-free CKD-EPI 2021 creatinine equation.

    142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female],
    k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M).  Inker et al., NEJM 2021;385:1737.
    """
    scr = _num(df, "serum_creatinine")
    male = is_male(df)
    age = age_years(df)
    kappa = np.where(male == 1, 0.9, 0.7)
    alpha = np.where(male == 1, -0.302, -0.241)
    ratio = scr / kappa
    egfr = (
        142.0
        * np.minimum(ratio, 1.0) ** alpha
        * np.maximum(ratio, 1.0) ** -1.200
        * 0.9938**age
        * np.where(male == 1, 1.0, 1.012)
    )
    return np.where(np.isnan(male), np.nan, egfr)


def bp_category(sbp: np.ndarray, dbp: np.ndarray) -> np.ndarray:
    """Korean Society of Hypertension stages: 0 normal (<120/<80), 1 elevated (120-129/<80),
    2 prehypertension (130-139 or 80-89), 3 hypertension (>=140 or >=90); NaN if both missing."""
    s = np.nan_to_num(sbp, nan=-np.inf)
    d = np.nan_to_num(dbp, nan=-np.inf)
    cat = np.select(
        [(s >= 140) | (d >= 90), (s >= 130) | (d >= 80), s >= 120],
        [3.0, 2.0, 1.0],
        default=0.0,
    )
    return np.where(np.isnan(sbp) & np.isnan(dbp), np.nan, cat)


def derived_features(df: pd.DataFrame) -> pd.DataFrame:
    """Features computed from one record alone."""
    height_m = _num(df, "height_cm") / 100.0
    weight = _num(df, "weight_kg")
    waist = _num(df, "waist_cm")
    tg, hdl, tc = _num(df, "triglycerides"), _num(df, "hdl"), _num(df, "total_cholesterol")
    ggt, ast, alt = _num(df, "ggt"), _num(df, "ast"), _num(df, "alt")
    sbp, dbp = _num(df, "sbp"), _num(df, "dbp")
    smoking = _num(df, "smoking_status")
    bmi = weight / height_m**2
    # Fatty liver index (Bedogni 2006): z = 0.953 ln TG + 0.139 BMI + 0.718 ln GGT + 0.053 WC - 15.745.
    z = 0.953 * np.log(tg) + 0.139 * bmi + 0.718 * np.log(ggt) + 0.053 * waist - 15.745
    with np.errstate(over="ignore"):
        fli = 100.0 / (1.0 + np.exp(-z))
    return pd.DataFrame(
        {
            "age_years": age_years(df),
            "male": is_male(df),
            "current_smoker": np.where(np.isnan(smoking), np.nan, (smoking == 3).astype(float)),
            "bmi": bmi,
            "waist_to_height": waist / (height_m * 100.0),
            "egfr": egfr_ckd_epi_2021(df),
            "non_hdl": tc - hdl,
            "tg_to_hdl": tg / hdl,
            # TyG index, ln(TG x FPG / 2): insulin-resistance marker that predicts diabetes.
            "tyg_index": np.log(tg * _num(df, "fasting_glucose") / 2.0),
            "fatty_liver_index": fli,
            "ast_to_alt": ast / alt,
            "pulse_pressure": sbp - dbp,
            "bp_category": bp_category(sbp, dbp),
        },
        index=df.index,
    )


def longitudinal_features(df: pd.DataFrame, derived: pd.DataFrame) -> pd.DataFrame:
    """Change since the same person's previous checkup, and lipids carried from the last panel.

    Only earlier checkups are used, so a row's features never see its own future. Rows without
    `person_id` or `exam_date` are treated as having no history.
    """
    n = len(df)
    out = pd.DataFrame(index=df.index, columns=list(LONGITUDINAL_FEATURES), dtype=float)
    if n == 0 or "person_id" not in df.columns or "exam_date" not in df.columns:
        out["prior_exams"] = 0.0
        return out
    date = pd.to_datetime(df["exam_date"], errors="coerce")
    pid = df["person_id"].astype("string")
    # Stable sort keeps input order among same-day duplicates.
    order = np.lexsort((date.to_numpy(dtype="datetime64[ns]"), pid.fillna("").to_numpy(dtype=object)))
    pid_s = pid.to_numpy(dtype=object)[order]
    date_s = date.to_numpy(dtype="datetime64[ns]")[order]
    valid = ~pd.isna(pid_s) & ~np.isnat(date_s)
    same = np.zeros(n, dtype=bool)
    same[1:] = (pid_s[1:] == pid_s[:-1]) & valid[1:] & valid[:-1]

    # Index of the start of each person's run, to count prior exams.
    starts = np.flatnonzero(~same)
    run_start = np.repeat(starts, np.diff(np.append(starts, n)))
    res = {"prior_exams": (np.arange(n) - run_start).astype(float)}

    day = date_s.astype("datetime64[D]").astype("int64").astype(float)
    gap = np.full(n, np.nan)
    gap[1:] = (day[1:] - day[:-1]) / 365.25
    res["years_since_last_exam"] = np.where(same, gap, np.nan)

    values = {f: (derived[f] if f in derived.columns else pd.Series(_num(df, f), index=df.index)) for f in TREND_FIELDS}
    for f in TREND_FIELDS:
        v = values[f].to_numpy(dtype=float)[order]
        prev = np.full(n, np.nan)
        prev[1:] = v[:-1]
        res[f"delta_{f}"] = np.where(same, v - prev, np.nan)

    # Last lipid panel strictly before this checkup, carried forward within the person.
    tc = _num(df, "total_cholesterol")[order]
    has_panel = ~np.isnan(tc)
    last_panel = np.where(has_panel, np.arange(n), -1)
    last_panel = np.maximum.accumulate(last_panel)
    prev_panel = np.full(n, -1)
    prev_panel[1:] = last_panel[:-1]
    prev_panel = np.where(same & (prev_panel >= run_start), prev_panel, -1)
    found = prev_panel >= 0
    idx = np.where(found, prev_panel, 0)
    for f in CARRIED_LIPIDS:
        v = _num(df, f)[order]
        res[f"last_{f}"] = np.where(found, v[idx], np.nan)
    res["years_since_lipids"] = np.where(found, (day - day[idx]) / 365.25, np.nan)

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    for k, v in res.items():
        out[k] = np.asarray(v, dtype=float)[inverse]
    return out


def build_features(df: pd.DataFrame) -> pd.DataFrame:
    """The model matrix: float64 columns in `FEATURES` order, one row per input record."""
    derived = derived_features(df)
    longitudinal = longitudinal_features(df, derived)
    raw = pd.DataFrame({f: _num(df, f) for f in RAW_FEATURES}, index=df.index)
    matrix = pd.concat([raw, derived, longitudinal], axis=1)
    return matrix[list(FEATURES)].astype(float)
