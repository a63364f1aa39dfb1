"""Behavioural tests of the trained bundle: clinical directions, invariance, additivity."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from features.derive import LONGITUDINAL_FEATURES, build_features
from features.eligibility import eligibility
from models.outcomes import MONOTONE, OUTCOME_SPECS


def sample_eligible(df: pd.DataFrame, outcome: str, n: int = 300, seed: int = 0) -> pd.DataFrame:
    ok = eligibility(df)[outcome]
    return df.loc[ok].sample(n, random_state=seed)


def still_eligible(base: pd.DataFrame, changed: pd.DataFrame, outcome: str) -> np.ndarray:
    return (eligibility(base)[outcome] & eligibility(changed)[outcome]).to_numpy()


# (outcome, field, change): risk must not fall when the clinical input rises. Taken from each
# outcome's guaranteed inputs (models/outcomes.py), so a reviewed-away direction is not tested;
# smoking, a code rather than a quantity, has its own test below.
_FIELD = {"age": "age", "sbp": "sbp", "fasting_glucose": "fasting_glucose", "ldl": "ldl"}
_CHANGE = {
    ("cvd", "sbp"): 15.0,
    ("hypertension", "sbp"): 8.0,
    ("cvd", "fasting_glucose"): 15.0,
    ("diabetes", "fasting_glucose"): 10.0,
    ("dyslipidemia", "ldl"): 20.0,
    ("cvd", "ldl"): 30.0,
}
DIRECTIONS = [
    (o, _FIELD[c], _CHANGE.get((o, c), 5.0))
    for o, spec in OUTCOME_SPECS.items()
    for c in spec.increasing_in
    if c != "smoking"
]


@pytest.mark.parametrize("outcome, field, change", DIRECTIONS)
def test_risk_never_falls_as_input_rises(model, held_out, outcome, field, change):
    # Whole person histories, so the longitudinal features see the change too.
    people = held_out["person_id"].drop_duplicates().sample(300, random_state=1)
    base = held_out[held_out["person_id"].isin(people)].copy()
    raised = base.copy()
    raised[field] = raised[field] + change
    if field == "age":
        raised["age_group"] = np.minimum(18, raised["age"] // 5 + 1)
    keep = still_eligible(base, raised, outcome) & base[field].notna().to_numpy()
    p0 = model.predict(base)[outcome].to_numpy()[keep]
    p1 = model.predict(raised)[outcome].to_numpy()[keep]
    assert keep.sum() > 100
    assert np.all(p1 >= p0 - 1e-12), f"{outcome} risk fell when {field} rose by {change}"


@pytest.mark.parametrize("outcome", list(MONOTONE))
def test_each_declared_direction_holds_for_its_feature(model, held_out, outcome):
    # The constraint table reaches the fitted model: moving one constrained feature (the others
    # fixed) in its direction never moves the risk the other way, including beyond the data's range.
    X = build_features(held_out.sample(400, random_state=3))
    p0 = model.predict_features(X)[outcome].to_numpy()
    for d in MONOTONE[outcome]:
        col = X[d.feature]
        for step in (0.5 * col.std(), 3 * col.std()):
            moved = X.copy()
            moved[d.feature] = col + step
            p1 = model.predict_features(moved)[outcome].to_numpy()
            ok = col.notna().to_numpy()
            assert np.all(d.direction * (p1[ok] - p0[ok]) >= -1e-12), (outcome, d.feature)


def test_smoking_never_lowers_cvd_risk(model, held_out):
    base = held_out.copy()
    base["smoking_status"] = 1.0
    smoker = base.assign(smoking_status=3.0)
    p0, p1 = model.predict(base)["cvd"], model.predict(smoker)["cvd"]
    ok = p0.notna()
    assert np.all(p1[ok] >= p0[ok] - 1e-12)


def test_person_id_never_changes_a_result(model, held_out):
    renamed = held_out.copy()
    codes = {p: f"X{i:07d}" for i, p in enumerate(renamed["person_id"].unique()[::-1])}
    renamed["person_id"] = renamed["person_id"].map(codes)
    pd.testing.assert_frame_equal(model.predict(held_out), model.predict(renamed))


def test_not_applicable_outcomes_have_no_probability(model, held_out):
    probs = model.predict(held_out)
    applies = eligibility(held_out)
    assert probs.notna().equals(applies)


def test_probabilities_are_calibrated_on_held_out_people(model, held_out):
    probs = model.predict(held_out)
    for outcome in probs:
        y = held_out[f"{outcome}_1y"]
        ok = y.notna()
        expected, observed = probs.loc[ok, outcome].sum(), y[ok].sum()
        # Observed events within ~3.5 Poisson SDs of the expected count.
        assert abs(observed - expected) < 3.5 * np.sqrt(expected) + 2, outcome


def test_checkups_scored_without_history_are_calibrated(model, held_out):
    # A request may send the current checkup alone: every longitudinal feature is then missing.
    # Scored that way, the same held-out checkups must still be calibrated (history dropout).
    X = build_features(held_out)
    has_history = X[list(LONGITUDINAL_FEATURES)].notna().any(axis=1).to_numpy()
    alone = X.copy()
    alone[list(LONGITUDINAL_FEATURES)] = np.nan
    probs = model.predict_features(alone)
    applies = eligibility(held_out)
    for outcome in probs:
        y = held_out[f"{outcome}_1y"]
        ok = (y.notna() & applies[outcome]).to_numpy() & has_history
        expected, observed = probs.loc[ok, outcome].sum(), y[ok].sum()
        assert abs(observed - expected) < 3.5 * np.sqrt(expected) + 2, (outcome, observed, expected)


@pytest.mark.parametrize("outcome", ["cvd", "diabetes", "hypertension", "dyslipidemia", "ckd"])
def test_shap_contributions_add_up_to_the_calibrated_log_odds(model, held_out, outcome):
    rows = held_out.head(200)
    contribs, base = model.explain(rows, outcome)
    p = model.predict_features(build_features(rows))[outcome].to_numpy()
    # The booster's own margin is float32 (about 1e-6 of rounding); the served path derives the
    # probability from the float64 sum, where additivity is exact (tests/service, test_kernel).
    np.testing.assert_allclose(contribs.sum(axis=1) + base, logit(p), atol=1e-5)
    assert contribs.shape[1] == len(model.feature_names_)
