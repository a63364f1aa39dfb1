"""Two widely shared public teaching cohorts, written as the canonical checkup record.

Neither is a Korean national checkup file; they are real people measured by real instruments, with
their own gaps and errors, and that is what `bench/bench_real_cohort.py` needs of them. Neither file
is in this repository: the caller passes a copy. What the record cannot hold is dropped or mapped as
said below, and the peers of the bench see the same canonical columns as the model.

- `framingham`: the Framingham Heart Study teaching extract (`framingham.csv`: one examination per
  person, 4,240 rows; `TenYearCHD` is coronary heart disease within ten years). Mapped: `male` ->
  sex, `currentSmoker` -> smoking 3 (current) or 1 (the extract does not tell never from former),
  `BPMeds`, `prevalentStroke`, `prevalentHyp` and `diabetes` -> the medication and history flags,
  `totChol`, `sysBP`, `diaBP`, `glucose` (not necessarily fasting) -> the record's labs, and BMI ->
  a weight at a fixed height per sex (the record has no BMI field; the model computes BMI back
  exactly, and height alone carries nothing). Dropped: education, cigarettes a day, heart rate.
  Label: `cvd_1y` = `TenYearCHD` (a ten-year horizon: the bench compares models on the same rows,
  it does not claim a one-year risk), empty after a stroke as section 2 of the contract requires.
- `cardio70k`: the 70,000-record cardiovascular examination dataset (`cardio_train.csv`,
  semicolon-separated; `cardio` is the presence of cardiovascular disease). Mapped: age in days ->
  fractional years, `gender` 2 -> M and 1 -> F (men are the taller group), height, weight, `ap_hi`
  and `ap_lo` -> SBP and DBP (left as written: impossible readings are the validator's to reject),
  `smoke`, `alco`, and `active` -> 5 activity days a week or 0. Cholesterol and glucose are given
  only as grades 1 (normal), 2 (above normal) and 3 (well above normal); they are written as one
  value inside each grade's range (total cholesterol 180 / 220 / 260 mg/dL, glucose 90 / 112 /
  140 mg/dL), so every learner sees the grade and nothing finer. Label: `cvd_1y` = `cardio`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# A fixed height per sex turns a BMI into a weight the model reads back as the same BMI.
_HEIGHT = {"M": 175.0, "F": 162.0}
_CHOLESTEROL_BY_GRADE = {1: 180.0, 2: 220.0, 3: 260.0}
_GLUCOSE_BY_GRADE = {1: 90.0, 2: 112.0, 3: 140.0}
FORMATS = ("framingham", "cardio70k")


def framingham(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw = raw.loc[:, ~raw.columns.str.startswith("Unnamed")]
    sex = np.where(raw["male"] == 1, "M", "F")
    height = pd.Series(sex).map(_HEIGHT).to_numpy()
    stroke = raw["prevalentStroke"]
    return pd.DataFrame(
        {
            "person_id": "F" + raw.index.astype(str),
            "sex": sex,
            "age": raw["age"],
            "height_cm": height,
            "weight_kg": (raw["BMI"] * (height / 100) ** 2).round(1),
            "sbp": raw["sysBP"],
            "dbp": raw["diaBP"],
            "fasting_glucose": raw["glucose"],
            "total_cholesterol": raw["totChol"],
            "smoking_status": np.where(raw["currentSmoker"] == 1, 3, 1),
            "on_antihypertensive": raw["BPMeds"],
            "history_stroke": stroke,
            "history_hypertension": raw["prevalentHyp"],
            "history_diabetes": raw["diabetes"],
            "cvd_1y": raw["TenYearCHD"].where(stroke != 1),
        }
    )


def cardio70k(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep=";").rename(columns={"sbp": "ap_hi", "dbp": "ap_lo"})  # copies that renamed them
    return pd.DataFrame(
        {
            "person_id": "C" + raw["id"].astype(str),
            "sex": np.where(raw["gender"] == 2, "M", "F"),
            "age": (raw["age"] / 365.25).round(2),
            "height_cm": raw["height"],
            "weight_kg": raw["weight"],
            "sbp": raw["ap_hi"],
            "dbp": raw["ap_lo"],
            "total_cholesterol": raw["cholesterol"].map(_CHOLESTEROL_BY_GRADE),
            "fasting_glucose": raw["gluc"].map(_GLUCOSE_BY_GRADE),
            "smoking_status": np.where(raw["smoke"] == 1, 3, 1),
            "drinking": raw["alco"],
            "activity_days_per_week": np.where(raw["active"] == 1, 5, 0),
            "cvd_1y": raw["cardio"],
        }
    )


def to_canonical(path: Path, fmt: str) -> pd.DataFrame:
    return {"framingham": framingham, "cardio70k": cardio70k}[fmt](path)
