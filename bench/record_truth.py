"""A second truth for the benches: one-year risks that are a function of what the checkups record.

`features.synth` builds its truth from physiology no checkup records (hidden traits, true levels
behind noisy readings, lifetime exposure), so no model of the record can reach it and no interval
of the model's own uncertainty can cover it. `relabel(cohort, seed)` keeps the synthetic people,
their checkups and which checkups each outcome applies to, and replaces each outcome's true risk
with a risk computed from the RECORD only: the current checkup and the same person's previous one
(the "usual" SBP and glucose are the mean of the two readings; lipids are the last panel measured),
and draws the labels from it. Its forms are not the model's features (no TyG, non-HDL, fatty liver
index or eGFR; creatinine relative to a sex-specific norm), and its coefficients are not fitted to
anything. It is what an outside cohort "with another risk function" looks like when that function
reads only what is recorded: a model can in principle learn it, so the gap to it is the model's
own, and an interval of the model's uncertainty should cover it.

Checkups after a relabelled event still show the original trajectory (the generator's diagnoses),
so eligibility and history are those of the generator: only the risks and labels change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import OUTCOMES, label_column, true_risk_column

# Log-odds at the reference person (chosen: base rates of the same order as the generator's).
_INTERCEPT = {"cvd": -6.1, "diabetes": -5.0, "hypertension": -2.6, "dyslipidemia": -3.0, "ckd": -5.6}


def _log_odds(d: pd.DataFrame) -> dict[str, np.ndarray]:
    def num(c: str, fill: float) -> pd.Series:
        return pd.to_numeric(d[c], errors="coerce").astype(float).fillna(fill)

    person = d["person_id"]
    age = num("age", 50)
    male = (d["sex"] == "M").astype(float)
    sbp, glu = num("sbp", 122), num("fasting_glucose", 97)
    prev_sbp = sbp.groupby(person).shift(1).fillna(sbp)
    prev_glu = glu.groupby(person).shift(1).fillna(glu)
    usual_sbp, usual_glu = (sbp + prev_sbp) / 2, (glu + prev_glu) / 2
    rise_glu = (glu - prev_glu).clip(lower=0)
    bmi = (num("weight_kg", 64) / (num("height_cm", 165) / 100) ** 2).clip(14, 45)
    # The last lipid panel measured, carried within the person (panels are drawn every few years).
    lipid = {c: pd.to_numeric(d[c], errors="coerce").groupby(person).ffill() for c in ("ldl", "hdl", "triglycerides")}
    ldl, hdl, tg = lipid["ldl"].fillna(118), lipid["hdl"].fillna(52), lipid["triglycerides"].fillna(115)
    cr_rel = num("serum_creatinine", 0.85) / np.where(male == 1, 0.95, 0.72)
    smoker = (num("smoking_status", 1) == 3).astype(float)
    drinker = num("drinking", 0)
    protein = (num("urine_protein", 1) >= 2).astype(float)
    fh_dm = num("family_history_diabetes", 0)
    dx_dm = num("history_diabetes", 0)
    return {
        "cvd": _INTERCEPT["cvd"]
        + 0.065 * (age - 55)
        + 0.45 * male
        + 0.018 * (usual_sbp - 120)
        + 0.55 * smoker
        + 0.9 * np.log(usual_glu / 100)
        + 0.006 * (ldl - 120)
        - 0.01 * (hdl - 50)
        + 0.4 * dx_dm,
        "diabetes": _INTERCEPT["diabetes"]
        + 8.0 * np.log(usual_glu / 100)
        + 0.02 * rise_glu
        + 0.07 * (bmi - 24)
        + 0.35 * np.log(tg / 120)
        + 0.012 * (age - 50)
        + 0.3 * fh_dm,
        "hypertension": _INTERCEPT["hypertension"]
        + 0.05 * (usual_sbp - 120)
        + 0.03 * (num("dbp", 76) - 76)
        + 0.03 * (age - 50)
        + 0.04 * (bmi - 24)
        + 0.2 * drinker,
        "dyslipidemia": _INTERCEPT["dyslipidemia"]
        + 0.035 * (ldl - 120)
        + 0.8 * np.log(tg / 110)
        - 0.02 * (hdl - 50)
        + 0.05 * (bmi - 24),
        "ckd": _INTERCEPT["ckd"]
        + 2.2 * (cr_rel - 1.0)
        + 0.05 * (age - 55)
        + 0.6 * np.log(usual_glu / 100)
        + 0.012 * (usual_sbp - 120)
        + 0.5 * protein,
    }


def relabel(cohort: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The cohort (sorted by person and date) with each outcome's true risk and label replaced
    where the outcome applies (where the generator gave a label)."""
    d = cohort.sort_values(["person_id", "exam_date"], kind="stable").copy()
    rng = np.random.default_rng(seed)
    z = _log_odds(d)
    for o in OUTCOMES:
        applies = d[label_column(o)].notna().to_numpy()
        p = 1.0 / (1.0 + np.exp(-np.asarray(z[o], dtype=float)))
        y = (rng.random(len(d)) < p).astype(float)
        d[true_risk_column(o)] = np.where(applies, p, np.nan)
        d[label_column(o)] = np.where(applies, y, np.nan)
    return d
