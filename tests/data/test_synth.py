"""The synthetic cohort generator: schema, realism, missingness, labels, risks and trajectories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features import synth
from features.eligibility import eligibility
from features.schema import COLUMNS, FIELDS, OUTCOMES, age_to_group, label_column, true_risk_column

PEOPLE = 15_000
SEED = 7


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return synth.generate_cohort(PEOPLE, SEED)


@pytest.fixture(scope="module")
def eligible(cohort: pd.DataFrame) -> pd.DataFrame:
    return eligibility(cohort)


def _same_person_as_previous(df: pd.DataFrame) -> np.ndarray:
    pid = df["person_id"].to_numpy(dtype=object)
    return np.r_[False, pid[1:] == pid[:-1]]


# --- determinism and shape -------------------------------------------------------------------


def test_same_seed_same_frame_and_different_seed_differs() -> None:
    a = synth.generate_cohort(1_500, 11)
    b = synth.generate_cohort(1_500, 11)
    pd.testing.assert_frame_equal(a, b)
    c = synth.generate_cohort(1_500, 12)
    assert not (len(a) == len(c) and a.drop(columns="person_id").equals(c.drop(columns="person_id")))


def test_progress_reports_checkups_so_far() -> None:
    seen: list[int] = []
    df = synth.generate_cohort(500, 3, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(df)


def test_columns_and_dtypes(cohort: pd.DataFrame) -> None:
    targets = [c for o in OUTCOMES for c in (label_column(o), true_risk_column(o))]
    assert list(cohort.columns) == list(COLUMNS) + targets
    assert cohort["person_id"].str.fullmatch(r"S\d{7}").all()
    assert cohort["exam_date"].dtype == "datetime64[ns]"
    assert (cohort["exam_date"] == cohort["exam_date"].dt.normalize()).all()
    assert set(cohort["sex"].unique()) == {"M", "F"}
    assert cohort["age"].dtype == np.float64 and (cohort["age"] % 1 == 0).all()
    assert (cohort["age_group"] == cohort["age"].map(age_to_group)).all()
    for c in cohort.columns:
        if c not in ("person_id", "exam_date", "sex", "age", "age_group"):
            assert cohort[c].dtype == np.float64, c


def test_about_five_checkups_per_person_sorted(cohort: pd.DataFrame) -> None:
    per_person = cohort.groupby("person_id").size()
    assert per_person.between(2, 8).all()
    assert 4.5 <= per_person.mean() <= 5.5
    assert cohort["person_id"].is_monotonic_increasing
    same = _same_person_as_previous(cohort)
    assert (np.diff(cohort["exam_date"].to_numpy())[same[1:]] > np.timedelta64(300, "D")).all()
    assert (np.diff(cohort["age"].to_numpy())[same[1:]] >= 1).all()
    assert cohort["exam_date"].dt.year.between(2011, 2024).all()
    entry = cohort[~same]
    assert entry["age"].between(20, 85).all()
    assert (entry["age"] >= 40).mean() > 0.75  # weighted towards 40+ like NHIS examinees


# --- values -----------------------------------------------------------------------------------


def test_values_within_plausible_ranges_and_codes(cohort: pd.DataFrame) -> None:
    for f in FIELDS:
        if not f.numeric:
            continue
        v = cohort[f.name].dropna()
        if f.low is not None:
            assert v.min() >= f.low and v.max() <= f.high, f.name
        if f.codes:
            assert set(v.unique()) <= set(f.codes), f.name
    both = cohort[["sbp", "dbp"]].dropna()
    assert (both["dbp"] < both["sbp"]).all()


def test_instrument_rounding(cohort: pd.DataFrame) -> None:
    def on_grid(col: str, step: float) -> bool:
        v = cohort[col].dropna().to_numpy()
        return bool(np.allclose(v / step, np.round(v / step), atol=1e-6))

    whole = ("sbp", "dbp", "fasting_glucose", "total_cholesterol", "hdl", "ldl", "triglycerides", "ast", "alt", "ggt")
    for col in whole:
        assert on_grid(col, 1.0), col
    for col in ("serum_creatinine", "hemoglobin", "height_cm", "weight_kg", "waist_cm"):
        assert on_grid(col, 0.1), col


def test_sex_specific_means_match_korean_figures(cohort: pd.DataFrame) -> None:
    m = cohort["sex"] == "M"
    bmi = cohort["weight_kg"] / (cohort["height_cm"] / 100) ** 2
    # KNHANES VI 2013-14 mean SBP M 120.2 / F 116.0 (Kim et al., Yonsei Med J 2018;59:356; the cohort
    # is older, hence the tolerance); KNHANES 2018 mean BMI M 24.6 / F 23.2.
    assert abs(cohort.loc[m, "sbp"].mean() - 120.2) < 4.0
    assert abs(cohort.loc[~m, "sbp"].mean() - 116.0) < 4.0
    assert abs(bmi[m].mean() - 24.6) < 0.7
    assert abs(bmi[~m].mean() - 23.2) < 0.7
    # KNHANES 2022-23 current smoking M ~30-32 %, F ~5-6 %; any drinking 2022 M 67 %, F 41 %.
    smoker = cohort["smoking_status"] == 3
    assert 0.25 <= smoker[m].mean() <= 0.37
    assert 0.02 <= smoker[~m].mean() <= 0.08
    assert cohort.loc[m, "drinking"].mean() > cohort.loc[~m, "drinking"].mean() + 0.15
    assert cohort.loc[m, "hdl"].mean() < cohort.loc[~m, "hdl"].mean()
    assert cohort.loc[m, "hemoglobin"].mean() > cohort.loc[~m, "hemoglobin"].mean() + 1.0
    assert (cohort["urine_protein"] == 1).mean() > 0.85


def test_realistic_correlations(cohort: pd.DataFrame) -> None:
    df = cohort.assign(bmi=cohort["weight_kg"] / (cohort["height_cm"] / 100) ** 2)
    r = df[["bmi", "waist_cm", "sbp", "dbp", "fasting_glucose", "triglycerides", "hdl", "alt", "ggt"]].corr()["bmi"]
    assert r["waist_cm"] > 0.7
    for col in ("sbp", "dbp", "fasting_glucose", "triglycerides", "alt", "ggt"):
        assert r[col] > 0.2, col
    assert r["hdl"] < -0.2
    drinker = df["drinking"] == 1
    assert df.loc[drinker, "ggt"].median() > 1.2 * df.loc[~drinker, "ggt"].median()
    men = df[df["sex"] == "M"]
    smoker = men["smoking_status"] == 3
    assert men.loc[smoker, "hdl"].mean() < men.loc[~smoker, "hdl"].mean()
    assert men.loc[smoker, "hemoglobin"].mean() > men.loc[~smoker, "hemoglobin"].mean()
    untreated = df[df["on_antihypertensive"] == 0]
    assert untreated["sbp"].corr(untreated["age"]) > 0.2
    assert df["serum_creatinine"].corr(df["age"]) > 0.1


def test_within_person_persistence_and_drift(cohort: pd.DataFrame) -> None:
    same = _same_person_as_previous(cohort)
    for col, low in (("weight_kg", 0.9), ("sbp", 0.5), ("fasting_glucose", 0.5)):
        cur = cohort[col].to_numpy()
        prev = np.r_[np.nan, cur[:-1]]
        ok = same & ~np.isnan(cur) & ~np.isnan(prev)
        assert np.corrcoef(cur[ok], prev[ok])[0, 1] > low, col
    # eGFR falls about 1 mL/min/1.73m2 (about 1.3 %) a year after 40.
    from features.derive import build_features

    feats = build_features(cohort)
    slope = (feats["pct_change_egfr"] / feats["years_since_last_exam"])[cohort["age"] >= 45]
    assert -3.0 < slope.mean() < -0.5


# --- missingness ------------------------------------------------------------------------------


def test_missingness(cohort: pd.DataFrame) -> None:
    lipids = cohort[["total_cholesterol", "triglycerides", "hdl", "ldl"]].isna()
    assert 0.55 <= lipids["total_cholesterol"].mean() <= 0.65
    assert (lipids.nunique(axis=1) == 1).all()  # the panel is drawn or not, as a whole
    for col in ("sbp", "dbp", "fasting_glucose", "hemoglobin", "serum_creatinine", "ast", "alt", "ggt"):
        assert 0.002 <= cohort[col].isna().mean() <= 0.015, col
    assert 0.005 <= cohort["urine_protein"].isna().mean() <= 0.02
    for col in ("family_history_cvd", "family_history_diabetes", "activity_days_per_week"):
        assert 0.03 <= cohort[col].isna().mean() <= 0.12, col
    for col in ("person_id", "exam_date", "sex", "age", "height_cm", "weight_kg", "smoking_status", "drinking"):
        assert cohort[col].notna().all(), col
    # Missing is NaN, never a zero placeholder.
    for col in ("sbp", "fasting_glucose", "total_cholesterol", "hemoglobin", "serum_creatinine", "urine_protein"):
        assert (cohort[col] != 0).all(), col


# --- labels and true risks --------------------------------------------------------------------


def test_labels_and_risks_empty_exactly_where_ineligible(cohort: pd.DataFrame, eligible: pd.DataFrame) -> None:
    for o in OUTCOMES:
        ok = eligible[o].to_numpy()
        y, p = cohort[label_column(o)], cohort[true_risk_column(o)]
        assert np.array_equal(y.isna().to_numpy(), ~ok), o
        assert np.array_equal(p.isna().to_numpy(), ~ok), o
        assert set(y.dropna().unique()) <= {0.0, 1.0}
        assert p.dropna().between(0, 1, inclusive="neither").all()


def test_true_risk_is_not_recomputable_from_the_file(cohort: pd.DataFrame, eligible: pd.DataFrame) -> None:
    """The oracle reads hidden physiology, not the record: even a flexible fit of its log-odds on
    every model feature (and their squares) leaves a real part unexplained."""
    from features.derive import build_features

    feats = build_features(cohort)
    x = feats.to_numpy()
    miss = np.isnan(x)
    x = np.where(miss, np.nanmean(x, axis=0), x)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    design = np.column_stack([np.ones(len(x)), x, x**2, miss[:, miss.any(axis=0)]])
    for o in OUTCOMES:
        ok = eligible[o].to_numpy()
        p = cohort[true_risk_column(o)].to_numpy()[ok]
        z = np.log(p / (1 - p))
        d = design[ok]
        # Ridge-stabilised normal equations: fast, and enough to show what a linear fit can reach.
        coef = np.linalg.solve(d.T @ d + 1e-6 * np.eye(d.shape[1]), d.T @ z)
        r2 = 1 - np.var(z - d @ coef) / np.var(z)
        assert r2 < 0.9, (o, r2)
    assert not hasattr(synth, "true_risks") and not hasattr(synth, "risk_inputs")


def test_no_new_dyslipidemia_after_a_disease_range_panel(cohort: pd.DataFrame) -> None:
    """Incident-only labels: no label (event or not) where the last earlier panel was in range."""
    from features.cutoffs import HDL_LOW, LDL_HIGH, TC_HIGH, TG_HIGH
    from features.derive import build_features

    f = build_features(cohort)
    no_panel = cohort["total_cholesterol"].isna()
    last_bad = (
        (f["last_total_cholesterol"] >= TC_HIGH)
        | (f["last_ldl"] >= LDL_HIGH)
        | (f["last_triglycerides"] >= TG_HIGH)
        | (f["last_hdl"] < HDL_LOW)
    )
    carried = no_panel & last_bad
    assert carried.sum() > 100, "too few carried abnormal panels to test"
    assert cohort.loc[carried, label_column("dyslipidemia")].isna().all()
    # Earlier history flags end eligibility even where a later questionnaire leaves them blank.
    ever = cohort.groupby("person_id")["history_diabetes"].cummax().fillna(0)
    earlier = ever.groupby(cohort["person_id"]).shift(1).fillna(0) == 1
    assert cohort.loc[earlier, label_column("diabetes")].isna().all()


def test_ascertainment_is_imperfect_and_in_range() -> None:
    for o in OUTCOMES:
        assert 0.6 <= synth.ASCERTAINMENT[o] <= 0.9, o
        assert 0.0 <= synth.FALSE_POSITIVE[o] < 0.01, o
    p = np.array([0.0, 0.1, 1.0])
    rec = synth.recorded_risk("diabetes", p)
    assert rec[0] == synth.FALSE_POSITIVE["diabetes"] and rec[2] == synth.ASCERTAINMENT["diabetes"]


def test_undiagnosed_cases_exist(cohort: pd.DataFrame) -> None:
    """Some people reach the disease range with no history (missed or not yet diagnosed)."""
    untreated_high = (cohort["fasting_glucose"] >= 126) & (cohort["history_diabetes"] == 0)
    assert untreated_high.mean() > 0.005
    high_bp = ((cohort["sbp"] >= 140) | (cohort["dbp"] >= 90)) & (cohort["history_hypertension"] == 0)
    assert high_bp.mean() > 0.02


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_base_rates_near_targets(cohort: pd.DataFrame, outcome: str) -> None:
    p = cohort[true_risk_column(outcome)]
    y = cohort[label_column(outcome)]
    lo, hi = synth.TARGET_AGE_RANGES[outcome]
    in_group = p.notna() & (cohort["age"] >= lo) & (cohort["age"] <= (hi if hi is not None else 200))
    assert abs(p[in_group].mean() / synth.TARGET_RATES[outcome] - 1) < 0.2
    # Labels are Bernoulli draws from the risk: their mean agrees within sampling error.
    pe = p.dropna()
    se = np.sqrt(np.sum(pe * (1 - pe))) / len(pe)
    assert abs(y.dropna().mean() - pe.mean()) < 4 * se


def test_age_gradients(cohort: pd.DataFrame) -> None:
    htn = cohort[true_risk_column("hypertension")]
    assert htn[cohort["age"] >= 65].mean() > 1.15 * htn[cohort["age"].between(40, 64)].mean()
    cvd = cohort[true_risk_column("cvd")]
    assert cvd[cohort["age"] < 40].mean() < 0.5 * cvd[cohort["age"] >= 40].mean()


# Published AUROC ranges of checkup-based models (docs/clinical-sources.md): the oracle sits in them.
ORACLE_BANDS = {
    "cvd": (0.72, 0.80),
    "diabetes": (0.78, 0.88),
    "hypertension": (0.78, 0.88),
    "dyslipidemia": (0.72, 0.80),
    "ckd": (0.78, 0.85),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_oracle_auroc_in_band(cohort: pd.DataFrame, outcome: str) -> None:
    p = cohort[true_risk_column(outcome)].dropna()
    y = cohort[label_column(outcome)].dropna()
    lo, hi = ORACLE_BANDS[outcome]
    assert lo <= synth.expected_auroc(p.to_numpy()) <= hi
    assert lo - 0.04 <= roc_auc_score(y, p) <= hi + 0.04  # drawn labels: wider for sampling noise


def test_expected_auroc_edge_cases() -> None:
    assert synth.expected_auroc(np.full(100, 0.3)) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 5, size=200_000)
    y = rng.random(p.size) < p
    assert synth.expected_auroc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)


# --- risk function design ---------------------------------------------------------------------


def _hidden(n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """A spread of plausible hidden inputs (the oracle's inputs are never in the file)."""
    rng = np.random.default_rng(seed)
    h = {k: rng.standard_normal(n) for k in synth.HIDDEN_INPUTS if k.startswith("u_")}
    h.update(
        age=rng.uniform(30, 80, n),
        male=(rng.random(n) < 0.5).astype(float),
        sbp=rng.normal(122, 12, n),
        log_glu=np.log(rng.normal(97, 9, n)),
        ldl=rng.normal(120, 25, n),
        log_hdl=np.log(rng.normal(52, 10, n)),
        log_tg=np.log(rng.lognormal(np.log(110), 0.4, n)),
        egfr=rng.normal(90, 15, n),
        bmi=rng.normal(24, 3, n),
        log_ggt=np.log(rng.lognormal(np.log(25), 0.5, n)),
        smoker=(rng.random(n) < 0.2).astype(float),
        pack_years=rng.gamma(1.0, 8.0, n),
        bp_years=rng.gamma(1.0, 150.0, n),
        glu_years=rng.gamma(1.0, 80.0, n),
        ldl_years=rng.gamma(1.0, 600.0, n),
        bmi_gain=rng.normal(2.0, 2.0, n),
        bp_slope=rng.normal(0, 0.4, n),
        kid_slope=rng.normal(0, 0.4, n),
        activity_p=rng.beta(1.2, 2.6, n),
        heavy=(rng.random(n) < 0.1) * 1.0,
        fh_cvd=(rng.random(n) < 0.15) * 1.0,
        fh_dm=(rng.random(n) < 0.2) * 1.0,
        dx_dm=np.zeros(n),
        dx_htn=np.zeros(n),
        on_statin=np.zeros(n),
    )
    assert set(h) == set(synth.HIDDEN_INPUTS)
    return h


@pytest.mark.parametrize(
    ("outcome", "name", "step"),
    [
        ("cvd", "pack_years", 20.0),
        ("cvd", "bp_years", 300.0),
        ("cvd", "ldl_years", 1500.0),
        ("cvd", "u_vascular", 1.0),
        ("diabetes", "glu_years", 100.0),
        ("diabetes", "bmi_gain", 3.0),
        ("diabetes", "u_beta", -1.0),
        ("hypertension", "bp_slope", 0.5),
        ("hypertension", "u_salt", 1.0),
        ("hypertension", "bp_years", 200.0),
        ("dyslipidemia", "u_lipid", 1.0),
        ("dyslipidemia", "bmi_gain", 3.0),
        ("ckd", "kid_slope", -0.5),
        ("ckd", "glu_years", 100.0),
    ],
)
def test_cumulative_exposure_trajectories_and_hidden_traits_raise_risk(outcome: str, name: str, step: float) -> None:
    h = _hidden()
    moved = dict(h, **{name: h[name] + step})
    assert (synth.event_risk(outcome, moved) > synth.event_risk(outcome, h)).all()


def test_cumulative_burden_is_concave() -> None:
    """Each further decade of exposure adds less: the form is not linear in any recorded value."""
    h = _hidden()
    risk = [synth.SCORES["cvd"](dict(h, bp_years=np.full(len(h["age"]), v))) for v in (0.0, 300.0, 600.0)]
    assert ((risk[1] - risk[0]) > (risk[2] - risk[1]) + 1e-6).all()


# --- trajectory consistency -------------------------------------------------------------------

_HISTORY = {
    "cvd": ("history_stroke", "history_heart_disease"),
    "diabetes": ("history_diabetes",),
    "hypertension": ("history_hypertension",),
    "dyslipidemia": ("history_dyslipidemia",),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_event_becomes_history_and_ends_eligibility(cohort: pd.DataFrame, eligible: pd.DataFrame, outcome: str) -> None:
    y = cohort[label_column(outcome)].fillna(0.0)
    before = y.groupby(cohort["person_id"]).cumsum() - y  # events at earlier checkups
    after = (before > 0).to_numpy()
    assert after.sum() > 20, "too few later checkups after an event to test"
    assert not eligible[outcome].to_numpy()[after].any()
    if outcome in _HISTORY:
        flag = cohort.loc[after, list(_HISTORY[outcome])].max(axis=1)
        assert (flag == 1).all()
    # History flags never switch off within a person.
    for col in _HISTORY.get(outcome, ()):
        assert (cohort.groupby("person_id")[col].diff().dropna() >= 0).all()


def test_prevalent_disease_consistent_with_values(cohort: pd.DataFrame) -> None:
    treated_dm = cohort[cohort["on_diabetes_medication"] == 1]
    assert (treated_dm["history_diabetes"] == 1).all()
    assert treated_dm["fasting_glucose"].median() > 115
    assert (cohort.loc[cohort["on_antihypertensive"] == 1, "history_hypertension"] == 1).all()
    assert (cohort.loc[cohort["on_statin"] == 1, "history_dyslipidemia"] == 1).all()
    by_age = cohort.groupby(cohort["age"] >= 60)["history_hypertension"].mean()
    assert by_age[True] > 1.5 * by_age[False]


def test_unrecorded_traits_move_only_the_truth_at_the_first_checkup() -> None:
    # Without the never-recorded traits the first checkups are the same people with the same values;
    # only their true risks change (later checkups differ through the events the traits drove).
    def first(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values("exam_date").groupby("person_id").head(1).set_index("person_id").sort_index()

    designed = first(synth.generate_cohort(300, 3))
    without = first(synth.generate_cohort(300, 3, unrecorded_traits=0.0))
    measured = ["sbp", "dbp", "fasting_glucose", "ldl", "serum_creatinine", "weight_kg", "exam_date"]
    pd.testing.assert_frame_equal(designed[measured], without[measured])
    risk = designed["hypertension_1y_true_risk"].notna()
    assert not np.allclose(
        designed.loc[risk, "hypertension_1y_true_risk"], without.loc[risk, "hypertension_1y_true_risk"]
    )
