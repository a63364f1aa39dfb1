import numpy as np
import pandas as pd
import pytest

from features.derive import (
    DERIVED_FEATURES,
    FEATURES,
    HISTORY_INPUTS,
    LASTING_FLAGS,
    LONGITUDINAL_FEATURES,
    bp_category,
    build_features,
    derived_features,
    egfr_ckd_epi_2021,
    inputs_of,
)
from features.schema import EXAMPLE_RECORD


@pytest.mark.parametrize(
    "sex, age, scr, expected, tol",
    [
        # kidney.org CKD-EPI 2021 calculator example (reported as a whole number).
        ("M", 55, 1.2, 71, 0.5),
        # Reference values from a published implementation's tests (to 0.1).
        ("F", 50, 1.0, 68.63, 0.01),
        ("M", 60, 1.5, 52.96, 0.01),
        ("M", 90, 1.5, 44, 0.5),
        ("F", 90, 1.5, 33, 0.5),
    ],
)
def test_egfr_ckd_epi_2021_reference_values(sex, age, scr, expected, tol):
    df = pd.DataFrame({"sex": [sex], "age": [age], "serum_creatinine": [scr]})
    assert egfr_ckd_epi_2021(df)[0] == pytest.approx(expected, abs=tol)


def test_egfr_low_creatinine_branch_and_age_band():
    # Below kappa the min() term applies: 142 * (0.6/0.7)^-0.241 * 0.9938^42 * 1.012, age from band 9 = 40-44.
    df = pd.DataFrame({"sex": ["F"], "age_group": [9], "serum_creatinine": [0.6]})
    expected = 142 * (0.6 / 0.7) ** -0.241 * 0.9938**42 * 1.012
    assert egfr_ckd_epi_2021(df)[0] == pytest.approx(expected, rel=1e-12)


def test_egfr_missing_creatinine_or_sex_is_missing():
    df = pd.DataFrame({"sex": ["M", None], "age": [50, 50], "serum_creatinine": [np.nan, 1.0]})
    assert np.isnan(egfr_ckd_epi_2021(df)).all()


def test_bp_category_korean_stages():
    sbp = np.array([110, 125, 135, 110, 150, np.nan, np.nan])
    dbp = np.array([70, 75, 70, 85, 80, 95, np.nan])
    assert bp_category(sbp, dbp)[:6].tolist() == [0, 1, 2, 2, 3, 3]
    assert np.isnan(bp_category(sbp, dbp)[6])


def test_derived_values_on_a_hand_made_record():
    df = pd.DataFrame(
        {
            "person_id": ["p"],
            "exam_date": ["2020-03-01"],
            "sex": ["M"],
            "age": [50],
            "height_cm": [170.0],
            "weight_kg": [72.25],
            "waist_cm": [85.0],
            "total_cholesterol": [200.0],
            "hdl": [50.0],
            "triglycerides": [150.0],
            "fasting_glucose": [100.0],
            "ggt": [30.0],
            "ast": [20.0],
            "alt": [40.0],
            "sbp": [130.0],
            "dbp": [85.0],
            "smoking_status": [3.0],
        }
    )
    x = build_features(df).iloc[0]
    assert x["bmi"] == pytest.approx(25.0)
    assert x["non_hdl"] == 150.0
    assert x["tg_to_hdl"] == 3.0
    assert x["tyg_index"] == pytest.approx(np.log(150 * 100 / 2))
    z = 0.953 * np.log(150) + 0.139 * 25.0 + 0.718 * np.log(30) + 0.053 * 85 - 15.745
    assert x["fatty_liver_index"] == pytest.approx(100 / (1 + np.exp(-z)))
    assert x["ast_to_alt"] == 0.5
    assert x["pulse_pressure"] == 45.0
    assert x["current_smoker"] == 1.0
    assert x["male"] == 1.0
    assert x["waist_to_height"] == pytest.approx(0.5)


def test_missing_stays_missing_never_zero():
    df = pd.DataFrame({"person_id": ["p"], "exam_date": ["2020-01-01"], "sex": ["F"], "age": [40]})
    x = build_features(df).iloc[0]
    assert list(x.index) == list(FEATURES)
    for name in ["sbp", "bmi", "egfr", "non_hdl", "fatty_liver_index", "delta_sbp", "last_ldl", "smoking_status"]:
        assert np.isnan(x[name]), name
    # Without history every longitudinal feature is missing (no "0 earlier checkups" count).
    assert x[list(LONGITUDINAL_FEATURES)].isna().all()


def test_longitudinal_uses_only_earlier_checkups_in_any_input_order():
    df = pd.DataFrame(
        {
            "person_id": ["a", "b", "a", "a"],
            "exam_date": ["2022-06-01", "2020-01-01", "2018-06-01", "2020-06-01"],
            "sex": ["M", "F", "M", "M"],
            "age": [54, 60, 50, 52],
            "weight_kg": [80.0, 60.0, 70.0, 75.0],
            "height_cm": [170.0, 160.0, 170.0, 170.0],
            "sbp": [140.0, 120.0, 120.0, np.nan],
            "total_cholesterol": [np.nan, 190.0, 210.0, np.nan],
            "ldl": [np.nan, 110.0, 130.0, np.nan],
        }
    )
    x = build_features(df)
    assert "prior_exams" not in x.columns
    assert x.loc[0, "delta_weight_kg"] == 5.0
    assert x.loc[3, "delta_weight_kg"] == 5.0
    assert np.isnan(x.loc[2, "delta_weight_kg"])
    assert np.isnan(x.loc[1, "delta_weight_kg"])  # another person's exam is not history
    assert np.isnan(x.loc[0, "delta_sbp"])  # previous SBP missing: change unknown, not zero
    assert x.loc[3, "years_since_last_exam"] == pytest.approx(2.0, abs=0.01)
    # Lipids carried from the 2018 panel to both later exams; never from the same exam.
    assert x.loc[3, "last_ldl"] == 130.0 and x.loc[0, "last_ldl"] == 130.0
    assert np.isnan(x.loc[2, "last_ldl"])
    assert x.loc[0, "years_since_lipids"] == pytest.approx(4.0, abs=0.01)


def test_person_id_does_not_change_features():
    base = pd.DataFrame(
        {
            "person_id": ["a", "a"],
            "exam_date": ["2019-01-01", "2021-01-01"],
            "sex": ["M", "M"],
            "age": [50, 52],
            "sbp": [120.0, 130.0],
        }
    )
    renamed = base.assign(person_id=["zzz", "zzz"])
    pd.testing.assert_frame_equal(build_features(base), build_features(renamed))


def _history_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 6
    return pd.DataFrame(
        {
            "person_id": ["a"] * 3 + ["b"] * 3,
            "exam_date": ["2016-03-01", "2018-03-01", "2020-03-01"] * 2,
            "sex": ["M"] * 3 + ["F"] * 3,
            "age": [50, 52, 54, 61, 63, 65],
            "height_cm": rng.normal(165, 5, n),
            "weight_kg": rng.normal(65, 8, n),
            "waist_cm": rng.normal(82, 6, n),
            "sbp": rng.normal(125, 10, n),
            "dbp": rng.normal(78, 6, n),
            "fasting_glucose": rng.normal(100, 10, n),
            "ggt": rng.normal(30, 5, n),
            "serum_creatinine": rng.normal(0.9, 0.1, n),
            "total_cholesterol": rng.normal(195, 20, n),
            "hdl": rng.normal(52, 6, n),
            "ldl": rng.normal(115, 15, n),
            "triglycerides": rng.normal(140, 20, n),
            "ast": rng.normal(24, 3, n),
            "alt": rng.normal(22, 3, n),
            "hemoglobin": rng.normal(14, 1, n),
            "smoking_status": [1.0, 1.0, 3.0, 1.0, 2.0, 2.0],
            # Lasting answers given at an earlier checkup, blank or "no" at the latest one.
            **{f: [0.0, 1.0, np.nan, 1.0, np.nan, 0.0] for f in LASTING_FLAGS},
        }
    )


def test_history_inputs_are_all_the_longitudinal_features_read():
    full = _history_frame()
    # Earlier checkups cut down to HISTORY_INPUTS give the latest checkups the same features.
    latest = full.groupby("person_id").tail(1).index
    cut = full.copy()
    others = [c for c in cut.columns if c not in HISTORY_INPUTS]
    cut.loc[~cut.index.isin(latest), others] = np.nan
    pd.testing.assert_frame_equal(build_features(cut).loc[latest], build_features(full).loc[latest])
    # ...and dropping any one of them from the earlier checkups changes something.
    for col in HISTORY_INPUTS:
        if col in ("person_id", "exam_date", "age_group"):
            continue  # keys (tested above: other persons are not history); age_group only backs up age
        less = full.copy()
        less.loc[~less.index.isin(latest), col] = np.nan
        changed = build_features(less).loc[latest, list(LONGITUDINAL_FEATURES + LASTING_FLAGS)]
        assert not changed.equals(build_features(full).loc[latest, list(LONGITUDINAL_FEATURES + LASTING_FLAGS)]), col


def test_derived_inputs_are_what_each_derived_feature_reads():
    # Rows where SBP alone, then DBP alone, decides the blood-pressure stage.
    base = pd.DataFrame(
        [
            EXAMPLE_RECORD,
            {**EXAMPLE_RECORD, "sex": "F", "age": 40, "smoking_status": 1, "sbp": 110},
            {**EXAMPLE_RECORD, "dbp": 70},
        ]
    )
    before = derived_features(base)
    for name in DERIVED_FEATURES:
        inputs = inputs_of(name)
        others = [c for c in base.columns if c not in inputs and c not in ("person_id", "exam_date", "sex")]
        moved = base.copy()
        moved[others] = moved[others].astype(float) * 1.37 + 1  # every other numeric input changes
        assert np.array_equal(derived_features(moved)[name], before[name], equal_nan=True), name
        # ...and losing any one of its inputs (age only backs up age_group) changes it.
        for col in inputs:
            if col == "age_group":
                continue
            less = base.drop(columns=[col])
            assert not np.array_equal(derived_features(less)[name], before[name], equal_nan=True), (name, col)


def test_lasting_answers_carry_forward_but_never_backward():
    full = _history_frame()
    X = build_features(full)
    for f in LASTING_FLAGS:
        # a: 0, 1, blank -> the latest has it; b: 1, blank, "no" -> both later ones have it.
        assert X[f].tolist()[:3] == [0.0, 1.0, 1.0] and X[f].tolist()[3:] == [1.0, 1.0, 1.0]
    alone = build_features(full.drop(columns=["person_id"]))
    assert alone["history_diabetes"].isna().sum() == 2  # without history, only what each row says


def test_features_do_not_count_the_rows_in_the_window():
    # (Lasting answers given at a dropped checkup do change later ones: tested above.)
    full = _history_frame().drop(columns=list(LASTING_FLAGS))
    # The same checkup with one or two earlier checkups in the window (same previous one): same features.
    shorter = full.drop(index=[0, 3])
    pd.testing.assert_frame_equal(build_features(full).loc[[2, 5]], build_features(shorter).loc[[2, 5]])
