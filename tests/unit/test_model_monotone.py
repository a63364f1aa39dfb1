"""The monotone-constraint table: reviewed directions, coupling, and the model card's copy of it."""

from features.derive import FEATURES
from models.outcomes import MONOTONE, OUTCOME_SPECS
from training.card import model_card


def test_every_declared_direction_names_a_feature_and_gives_a_reason():
    for outcome, rows in MONOTONE.items():
        assert len({d.feature for d in rows}) == len(rows), outcome
        for d in rows:
            assert d.feature in FEATURES and d.direction in (1, -1) and len(d.reason) > 15, (outcome, d)


def test_uncertain_directions_stay_free():
    def constrained(outcome):
        return {d.feature for d in MONOTONE[outcome]}

    # Reviewed as not certain across the whole range (models/outcomes.py says why).
    for outcome in ("diabetes", "hypertension"):
        assert "age_years" not in constrained(outcome)
    assert not {"egfr", "ldl", "last_ldl", "fasting_glucose", "tyg_index"} & constrained("cvd")
    assert not any(f.startswith("delta_") for o in MONOTONE for f in constrained(o))


def test_guaranteed_inputs_follow_from_the_table():
    guaranteed = {o: set(s.increasing_in) for o, s in OUTCOME_SPECS.items()}
    assert guaranteed == {
        "cvd": {"sbp", "smoking"},
        "diabetes": {"fasting_glucose"},
        "hypertension": {"sbp"},
        "dyslipidemia": {"ldl"},
        "ckd": {"age"},
    }
    spec = OUTCOME_SPECS["ckd"]
    constraints = dict(zip(FEATURES, spec.monotone_constraints(FEATURES), strict=True))
    assert constraints["age_years"] == 1 and constraints["egfr"] == -1
    assert sum(map(abs, constraints.values())) == len(MONOTONE["ckd"])


def test_model_card_lists_the_table_and_the_fitting_mode():
    info = {
        "cvd": {
            "rows": 900,
            "events": 12,
            "mode": "5-fold cross-validation by person: ... (calibration is cross-validated, not held out)",
            "sample_size": {"required_n": 5000, "enough": False},
        }
    }
    card = model_card("7", {"outcomes": {}, "n_records": 10}, {}, model_info=info)
    for outcome, rows in MONOTONE.items():
        for d in rows:
            listed = any(
                line.startswith(f"| {outcome} | `{d.feature}` |") and d.reason in line for line in card.splitlines()
            )
            assert listed == (outcome == "cvd"), (outcome, d.feature)  # only the model's own outcomes
    full = model_card("7", {"outcomes": {}, "n_records": 10}, {})  # no fitting info: every outcome's table
    assert all(f"| {o} | `{rows[0].feature}` |" in full for o, rows in MONOTONE.items())
    assert "cross-validated, not held out" in card
    assert "| cvd | 900 | 12 | 5000 | no |" in card


def test_model_card_warns_of_labels_that_are_not_one_year_incidence():
    def info(rate: float) -> dict:
        event_rate = {"rate": rate, "reference": 0.005, "limit": 10.0, "times": rate / 0.005, "exceeds": rate > 0.05}
        return {"rows": 1000, "events": int(1000 * rate), "event_rate": event_rate}

    card = model_card("7", {"outcomes": {}, "n_records": 10}, {}, model_info={"cvd": info(0.152)})
    assert "**Label check (cvd):** 15.2% of the labelled training rows are events, 30 times the yearly rate" in card
    plausible = info(0.04)
    assert "Label check" not in model_card("7", {"outcomes": {}, "n_records": 10}, {}, model_info={"cvd": plausible})
    assert "Label check" not in model_card("7", {"outcomes": {}, "n_records": 10}, {}, model_info={"cvd": {}})
