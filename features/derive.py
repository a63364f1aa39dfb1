"""Canonical records to the model matrix: derived and longitudinal features.

One code path serves training, batch scoring and a single API request. Missing inputs stay NaN
(the models learn what missing means); nothing is filled with zero. Person ID and exam date are
used only to order a person's checkups, never as features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.cutoffs import BP_STAGE_BOUNDS
from features.schema import FEMALE, KEY_INPUTS, MALE, age_group_midpoint

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
TREND_FIELDS: tuple[str, ...] = ("weight_kg", "bmi", "waist_cm", "sbp", "dbp", "fasting_glucose", "ggt")
# Changes reported as a percentage of the previous value (see pct_change_egfr below).
PCT_CHANGE_FIELDS: tuple[str, ...] = ("egfr",)
CARRIED_LIPIDS: tuple[str, ...] = ("total_cholesterol", "hdl", "ldl", "triglycerides")
# A checkup had its lipid panel when its total cholesterol was measured: NHIS leaves LDL empty when
# triglycerides are 400 or more, and that panel was drawn; another lipid without total cholesterol
# is no panel. The carried `last_*` lipids, eligibility (`features.eligibility`), the key inputs and
# the report all judge "a panel" by this one field.
PANEL_MARKER = "total_cholesterol"
# Answers that stay true once given: a diagnosis does not heal and a relative's disease does not go
# away. A later checkup that leaves one blank (or says no) still has it; FHIR Conditions and
# eligibility read them the same way, so every path sees the same person.
LASTING_FLAGS: tuple[str, ...] = (
    "history_stroke",
    "history_heart_disease",
    "history_hypertension",
    "history_diabetes",
    "history_dyslipidemia",
    "family_history_cvd",
    "family_history_diabetes",
)

# No count of earlier checkups: it would count the rows that happen to be in the file or request (a
# data-window artefact), so the same checkup would score differently with a longer or shorter
# extract. Without history every feature below is missing, exactly as for a first checkup.
LONGITUDINAL_FEATURES: tuple[str, ...] = (
    ("years_since_last_exam",)
    + tuple(f"delta_{f}" for f in TREND_FIELDS)
    # eGFR change as a percentage: unlike the difference, it does not move when the whole history's
    # age shifts (eGFR scales by 0.9938^age), which keeps "risk never falls as age rises" provable.
    + tuple(f"pct_change_{f}" for f in PCT_CHANGE_FIELDS)
    + tuple(f"last_{f}" for f in CARRIED_LIPIDS)
    + ("years_since_lipids",)
)

# Record columns each derived feature is computed from (`derived_features`; checked against it by
# tests/unit/test_derive.py). Whatever keeps part of a record for later (a person's history) asks
# `inputs_of` instead of listing columns again.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "age_years": ("age", "age_group"),
    "male": ("sex",),
    "current_smoker": ("smoking_status",),
    "bmi": ("height_cm", "weight_kg"),
    "waist_to_height": ("waist_cm", "height_cm"),
    "egfr": ("serum_creatinine", "sex", "age", "age_group"),
    "non_hdl": ("total_cholesterol", "hdl"),
    "tg_to_hdl": ("triglycerides", "hdl"),
    "tyg_index": ("triglycerides", "fasting_glucose"),
    "fatty_liver_index": ("triglycerides", "height_cm", "weight_kg", "ggt", "waist_cm"),
    "ast_to_alt": ("ast", "alt"),
    "pulse_pressure": ("sbp", "dbp"),
    "bp_category": ("sbp", "dbp"),
}
assert set(DERIVED_INPUTS) == set(DERIVED_FEATURES)


def inputs_of(name: str) -> tuple[str, ...]:
    """The record columns a feature (derived, or a record field itself) is computed from."""
    return DERIVED_INPUTS.get(name, (name,))


# What an earlier checkup must carry for the longitudinal features of later ones: what
# `longitudinal_features` reads, i.e. the keys that order a person's checkups, the inputs of every
# trend and percentage change, the lipids and the lasting flags. Streaming scorers keep exactly
# these columns of each person's past (with `features.eligibility.HISTORY_INPUTS`).
HISTORY_KEYS: tuple[str, ...] = ("person_id", "exam_date")
HISTORY_INPUTS: tuple[str, ...] = tuple(
    dict.fromkeys(
        HISTORY_KEYS
        + tuple(c for f in TREND_FIELDS + PCT_CHANGE_FIELDS for c in inputs_of(f))
        + CARRIED_LIPIDS
        + LASTING_FLAGS
    )
)

FEATURES: tuple[str, ...] = RAW_FEATURES + DERIVED_FEATURES + LONGITUDINAL_FEATURES
# Record columns the model reads (directly or through a derived feature). A record field outside it
# (`history_ckd`) only decides whether an outcome applies.
MODEL_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(RAW_FEATURES + tuple(c for f in DERIVED_FEATURES for c in inputs_of(f)))
)


class Columns(dict):
    """Column name -> 1-d numpy array, all of length `n`: the records as the feature code sees them.

    Building it is the only pandas step, so one record costs microseconds, not milliseconds, and
    a request can build it straight from validated JSON (`Columns.from_records`).
    """

    def __init__(self, data: dict[str, np.ndarray], n: int) -> None:
        super().__init__(data)
        self.n = n

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Columns:
        out = {}
        for c in df.columns:
            if c in _TEXT:
                out[c] = df[c].to_numpy(dtype=object)
            elif c == "exam_date":
                out[c] = pd.to_datetime(df[c], errors="coerce").to_numpy(dtype="datetime64[ns]")
            elif pd.api.types.is_float_dtype(df[c].dtype):
                out[c] = df[c].to_numpy(dtype=float, na_value=np.nan)  # the common case: no parsing
            else:
                out[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return cls(out, len(df))

    @classmethod
    def from_records(cls, records: list[dict]) -> Columns:
        """Canonical records (already validated) to columns, without pandas."""
        names = {k for r in records for k in r}
        out = {}
        for c in names:
            values = [r.get(c) for r in records]
            if c in _TEXT:
                out[c] = np.array(values, dtype=object)
            elif c == "exam_date":
                out[c] = np.array(
                    [np.datetime64(v, "ns") if v is not None else np.datetime64("NaT") for v in values],
                    dtype="datetime64[ns]",
                )
            else:
                out[c] = np.array([np.nan if v is None else v for v in values], dtype=float)
        return cls(out, len(records))


_TEXT = ("person_id", "sex")


def as_columns(data: pd.DataFrame | Columns) -> Columns:
    return data if isinstance(data, Columns) else Columns.from_frame(data)


def _num(cols: Columns, name: str) -> np.ndarray:
    if name in cols:
        return cols[name]
    return np.full(cols.n, np.nan)


def age_years(df: pd.DataFrame | Columns) -> np.ndarray:
    """Age in years; the NHIS band midpoint where only `age_group` is known."""
    cols = as_columns(df)
    age = _num(cols, "age")
    return np.where(np.isnan(age), age_group_midpoint(_num(cols, "age_group")), age)


# Age bands of subgroup reports and of the reference percentiles ("among people of the same sex and
# age band"); under 40 is one band because its events are few.
AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (20, 40, "20-39"),
    (40, 50, "40-49"),
    (50, 60, "50-59"),
    (60, 70, "60-69"),
    (70, 200, "70+"),
)


def age_band(df: pd.DataFrame | Columns) -> np.ndarray:
    """The AGE_BANDS name of each record ("unknown" without an age)."""
    age = age_years(df)
    out = np.full(len(age), "unknown", dtype=object)
    for lo, hi, name in AGE_BANDS:
        out[(age >= lo) & (age < hi)] = name
    return out


def is_male(df: pd.DataFrame | Columns) -> np.ndarray:
    cols = as_columns(df)
    if "sex" not in cols:
        return np.full(cols.n, np.nan)
    sex = cols["sex"]
    return np.where(sex == MALE, 1.0, np.where(sex == FEMALE, 0.0, np.nan))


def egfr_ckd_epi_2021(df: pd.DataFrame | Columns) -> np.ndarray:
    """eGFR (mL/min/1.73 m2) by the race-free CKD-EPI 2021 creatinine equation.

    142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female],
    k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M).  Inker et al., NEJM 2021;385:1737.
    """
    cols = as_columns(df)
    scr = _num(cols, "serum_creatinine")
    male = is_male(cols)
    age = age_years(cols)
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


# The KSH stages `bp_category` numbers (`features.cutoffs.BP_STAGE_BOUNDS`); stage 2 is folded into
# hypertension, whose risk the feature has to rank, not to grade.
_BP_CATEGORY_STAGES: tuple[str, ...] = ("elevated", "prehypertension", "stage_1")


def bp_category(sbp: np.ndarray, dbp: np.ndarray) -> np.ndarray:
    """Korean Society of Hypertension stages: 0 normal (<120/<80), 1 elevated (120-129/<80),
    2 prehypertension (130-139 or 80-89), 3 hypertension (>=140 or >=90); NaN if both missing."""
    s = np.nan_to_num(sbp, nan=-np.inf)
    d = np.nan_to_num(dbp, nan=-np.inf)
    reached = [(s >= BP_STAGE_BOUNDS[k][0]) | (d >= BP_STAGE_BOUNDS[k][1]) for k in _BP_CATEGORY_STAGES]
    cat = np.select(reached[::-1], [3.0, 2.0, 1.0], default=0.0)
    return np.where(np.isnan(sbp) & np.isnan(dbp), np.nan, cat)


def derived_features(df: pd.DataFrame | Columns) -> dict[str, np.ndarray]:
    """Features computed from one record alone."""
    df = as_columns(df)
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
    return {
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
    }


def longitudinal_features(cols: Columns, derived: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Change since the same person's previous checkup, and lipids carried from the last panel.

    Only earlier checkups are used, so a row's features never see its own future. Rows without
    `person_id` or `exam_date` are treated as having no history.
    """
    n = cols.n
    if n <= 1 or "person_id" not in cols or "exam_date" not in cols:
        return {k: np.full(n, np.nan) for k in LONGITUDINAL_FEATURES + LASTING_FLAGS}
    pid = cols["person_id"]
    missing_pid = pd.isna(pid)
    date = cols["exam_date"]
    # Stable sort keeps input order among same-day duplicates.
    order = np.lexsort((date, np.where(missing_pid, "", pid).astype(str)))
    pid_s = pid[order]
    date_s = date[order]
    valid = ~missing_pid[order] & ~np.isnat(date_s)
    same = np.zeros(n, dtype=bool)
    same[1:] = (pid_s[1:] == pid_s[:-1]) & valid[1:] & valid[:-1]

    # Index of the start of each person's run: a carried lipid panel must lie inside it.
    starts = np.flatnonzero(~same)
    run_start = np.repeat(starts, np.diff(np.append(starts, n)))
    res: dict[str, np.ndarray] = {}

    day = date_s.astype("datetime64[D]").astype("int64").astype(float)
    gap = np.full(n, np.nan)
    gap[1:] = (day[1:] - day[:-1]) / 365.25
    res["years_since_last_exam"] = np.where(same, gap, np.nan)

    for f in TREND_FIELDS:
        v = (derived[f] if f in derived else _num(cols, f))[order]
        prev = np.full(n, np.nan)
        prev[1:] = v[:-1]
        res[f"delta_{f}"] = np.where(same, v - prev, np.nan)

    for f in PCT_CHANGE_FIELDS:
        v = derived[f][order]
        prev = np.full(n, np.nan)
        prev[1:] = v[:-1]
        res[f"pct_change_{f}"] = np.where(same, 100.0 * (v / prev - 1.0), np.nan)

    # Last lipid panel strictly before this checkup, carried forward within the person.
    marker = _num(cols, PANEL_MARKER)[order]
    last_panel = np.maximum.accumulate(np.where(~np.isnan(marker), np.arange(n), -1))
    prev_panel = np.full(n, -1)
    prev_panel[1:] = last_panel[:-1]
    prev_panel = np.where(same & (prev_panel >= run_start), prev_panel, -1)
    found = prev_panel >= 0
    idx = np.where(found, prev_panel, 0)
    for f in CARRIED_LIPIDS:
        res[f"last_{f}"] = np.where(found, _num(cols, f)[order][idx], np.nan)
    res["years_since_lipids"] = np.where(found, (day - day[idx]) / 365.25, np.nan)

    # A lasting flag set at any earlier checkup (1), else NaN: feature_matrix lets it override.
    positions = np.arange(n)
    for f in LASTING_FLAGS:
        last_yes = np.maximum.accumulate(np.where(_num(cols, f)[order] == 1, positions, -1))
        prev_yes = np.full(n, -1)
        prev_yes[1:] = last_yes[:-1]
        res[f] = np.where(same & (prev_yes >= run_start), 1.0, np.nan)

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return {k: np.asarray(v, dtype=float)[inverse] for k, v in res.items()}


def feature_matrix(data: pd.DataFrame | Columns) -> np.ndarray:
    """The model matrix as a float64 array (n x len(FEATURES)), columns in `FEATURES` order."""
    cols = as_columns(data)
    derived = derived_features(cols)
    longitudinal = longitudinal_features(cols, derived)
    out = np.empty((cols.n, len(FEATURES)), dtype=float)
    for j, f in enumerate(FEATURES):
        if f in LASTING_FLAGS:
            v = np.where(longitudinal[f] == 1, 1.0, _num(cols, f))
        else:
            found = derived.get(f)
            if found is None:
                found = longitudinal.get(f)
            v = _num(cols, f) if found is None else found
        out[:, j] = v
    return out


_LONGITUDINAL_COLUMNS = np.array([FEATURES.index(f) for f in LONGITUDINAL_FEATURES], dtype=np.int64)


def absent_history(X: np.ndarray) -> np.ndarray:
    """Boolean, the shape of the model matrix `X`: True where a feature only says the history lacks
    something (no earlier checkup, no earlier lipid panel). Its contribution is never listed as a
    factor to a clinician; it stays in the unlisted rest, so additivity holds."""
    hidden = np.zeros(X.shape, dtype=bool)
    hidden[:, _LONGITUDINAL_COLUMNS] = np.isnan(X[:, _LONGITUDINAL_COLUMNS])
    return hidden


def missing_key_inputs(records: Sequence[Mapping[str, object]], X: np.ndarray) -> list[list[str]]:
    """Per record, the key inputs (`KEY_INPUTS`) it lacks, in that order. When this checkup has no
    lipid panel (`PANEL_MARKER`), a lipid of the person's last earlier panel is not missing: the
    model has it, and the report shows it as that panel's. A lipid left out of a panel drawn this
    time is missing."""
    no_panel = np.array([r.get(PANEL_MARKER) is None for r in records], dtype=bool)
    carried = {f: no_panel & ~np.isnan(X[:, FEATURES.index(f"last_{f}")]) for f in CARRIED_LIPIDS}
    return [
        [k for k in KEY_INPUTS if r.get(k) is None and not (k in carried and carried[k][i])]
        for i, r in enumerate(records)
    ]


def unmeasured(X: np.ndarray) -> np.ndarray:
    """Boolean, the shape of the model matrix `X`: True where a feature of the checkup itself is
    missing (not measured, or not computable from what was measured). Its SHAP contribution is the
    model's adjustment for the missing value, not a risk factor of the person: clinician-facing
    explanations fold it into the unlisted rest (`serving.scoring.grouped_contributions`), and the
    data-scientist views that list it say it was missing. Absent history is `absent_history`."""
    missing = np.isnan(X)
    missing[:, _LONGITUDINAL_COLUMNS] = False
    return missing


def build_features(df: pd.DataFrame) -> pd.DataFrame:
    """The model matrix as a frame: float64 columns in `FEATURES` order, one row per record."""
    return pd.DataFrame(feature_matrix(df), index=df.index, columns=list(FEATURES))
