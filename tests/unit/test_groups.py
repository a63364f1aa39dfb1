"""SHAP contributions by measurement group: the one table covers every feature, and group sums keep
base + listed + other equal to the log-odds exactly as the per-feature view does."""

import numpy as np
import pytest

from features.derive import FEATURES, LONGITUDINAL_FEATURES
from features.labels import FEATURE_GROUPS, GROUP_OF, GROUPS, contribution_text
from serving.scoring import grouped_contributions


def test_every_feature_is_in_exactly_one_group():
    members = [f for g in FEATURE_GROUPS for f in g.features]
    assert sorted(members) == sorted(FEATURES)
    assert len(members) == len(set(members))
    assert set(GROUP_OF) == set(FEATURES)
    for g in FEATURE_GROUPS:
        assert g.ko and g.en and g.ko != g.id and (g.main is None or g.main in g.features)


@pytest.mark.parametrize(
    "feature, group",
    [
        ("sbp", "blood_pressure"),
        ("dbp", "blood_pressure"),
        ("pulse_pressure", "blood_pressure"),
        ("bp_category", "blood_pressure"),
        ("delta_sbp", "blood_pressure"),
        ("bmi", "weight"),
        ("height_cm", "weight"),
        ("delta_weight_kg", "weight"),
        ("waist_cm", "waist"),
        ("waist_to_height", "waist"),
        ("tyg_index", "glucose"),
        ("fasting_glucose", "glucose"),
        ("last_ldl", "lipids"),
        ("non_hdl", "lipids"),
        ("egfr", "kidney"),
        ("pct_change_egfr", "kidney"),
        ("urine_protein", "kidney"),
        ("fatty_liver_index", "liver"),
        ("ast_to_alt", "liver"),
        ("current_smoker", "smoking"),
        ("on_statin", "history"),
        ("family_history_diabetes", "history"),
        ("hemoglobin", "hemoglobin"),
        ("age_years", "age"),
        ("male", "sex"),
    ],
)
def test_features_go_to_the_measurement_they_come_from(feature, group):
    assert GROUP_OF[feature] == group


def _case(seed: int, hide_history: bool):
    rng = np.random.default_rng(seed)
    row = rng.normal(0, 0.3, len(FEATURES))
    x = rng.uniform(1, 200, len(FEATURES))
    hidden = np.zeros(len(FEATURES), dtype=bool)
    if hide_history:
        idx = [FEATURES.index(f) for f in LONGITUDINAL_FEATURES]
        x[idx] = np.nan
        hidden[idx] = True
    return row, float(rng.normal(-3, 1)), x, hidden


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("hide_history", [False, True])
@pytest.mark.parametrize("top_k", [0, 3, 5, len(FEATURE_GROUPS)])
def test_group_sums_keep_additivity(seed, hide_history, top_k):
    row, base, x, hidden = _case(seed, hide_history)
    listed, base_out, other = grouped_contributions(row, base, x, hidden, top_k)
    assert base_out == base
    # Exactly what the per-feature view promises: base + listed + other is the model's log-odds.
    assert base + sum(c["log_odds"] for c in listed) + other == pytest.approx(base + row.sum(), abs=1e-12)
    for c in listed:
        group = GROUPS[c["feature"]]
        idx = [FEATURES.index(f) for f in c["features"]]
        assert set(c["features"]) <= set(group.features)
        assert c["log_odds"] == pytest.approx(row[idx].sum(), abs=1e-12)
        assert not hidden[idx].any()  # absent history is never inside a listed group
        want = None if group.main is None or np.isnan(x[FEATURES.index(group.main)]) else x[FEATURES.index(group.main)]
        assert c["value"] == (None if want is None else pytest.approx(want, abs=1e-4))
    mags = [abs(c["log_odds"]) for c in listed]
    assert mags == sorted(mags, reverse=True)
    factors = {GROUP_OF[f] for f, h in zip(FEATURES, hidden, strict=True) if not h and GROUPS[GROUP_OF[f]].factor}
    assert len(listed) == min(top_k, len(factors))


def test_a_group_of_only_absent_history_is_not_listed():
    row, base, x, hidden = _case(1, hide_history=True)
    listed, _, other = grouped_contributions(row, base, x, hidden, len(FEATURE_GROUPS))
    assert "interval" not in {c["feature"] for c in listed}  # years since last exam: no earlier checkup
    hidden_sum = row[hidden].sum()
    assert other == pytest.approx(hidden_sum, abs=1e-12)  # all groups listed: the rest is absent history


def test_contribution_words_for_both_views():
    assert (
        contribution_text({"feature": "blood_pressure", "value": 152.0}, "en")
        == "Blood pressure: Systolic blood pressure 152 mmHg"
    )
    assert "152 mmHg" in contribution_text({"feature": "blood_pressure", "value": 152.0}, "ko")
    assert contribution_text({"feature": "history", "value": None}, "ko") == GROUPS["history"].ko
    assert contribution_text({"feature": "sbp", "value": 152.0}, "en").endswith("152 mmHg")
    assert contribution_text({"feature": "smoking", "value": 3.0}, "ko") == "흡연: 현재 흡연"


def test_a_listed_group_without_its_main_measure_says_the_others_were_measured():
    """A panel without LDL drove the CVD risk: the card must not read "LDL not measured" as the factor."""
    lipids = GROUPS["lipids"].en
    assert contribution_text({"feature": "lipids", "value": None}, "en") == (
        f"{lipids}: LDL cholesterol not measured, others measured"
    )
    assert contribution_text({"feature": "lipids", "value": None}, "ko").endswith("다른 항목 측정됨")
    assert contribution_text({"feature": "lipids", "value": 150.0}, "en") == f"{lipids}: LDL cholesterol 150 mg/dL"


def test_the_time_since_the_last_checkup_is_never_listed_as_a_factor():
    from serving.scoring import grouped_contributions

    x = np.full(len(FEATURES), 1.0)
    row = np.zeros(len(FEATURES))
    row[FEATURES.index("years_since_last_exam")] = -2.0  # the largest share of all
    row[FEATURES.index("sbp")] = 0.3
    listed, base, other = grouped_contributions(row, -3.0, x, np.zeros(len(FEATURES), dtype=bool), top_k=5)
    assert listed[0]["feature"] == "blood_pressure" and "interval" not in {c["feature"] for c in listed}
    assert base + sum(c["log_odds"] for c in listed) + other == pytest.approx(-3.0 + row.sum())
