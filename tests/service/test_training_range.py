"""Values outside the training data's range (an acute-hepatitis ALT, a weight no examinee had) are
scored at the range's edge, said in `/score`'s warnings and the report, and never used for a what-if:
the logistic partner would otherwise extrapolate linearly (ALT 1,000 made type 2 diabetes near
certain)."""

from __future__ import annotations

import pytest

from features.schema import EXAMPLE_RECORD
from serving.report import OUTSIDE_TRAINING, what_if_changes
from serving.scoring import Scorer


@pytest.fixture(scope="module")
def scorer(service_home):
    _, model, version = service_home
    return Scorer(model, version)


def _score(client, **changes) -> dict:
    r = client.post("/score", json={"checkups": [EXAMPLE_RECORD | changes]})
    assert r.status_code == 200, r.text
    return r.json()["results"][0]


def _probabilities(result: dict) -> dict[str, float]:
    return {o: v["probability"] for o, v in result["risks"].items() if v["applicable"]}


def test_values_beyond_the_training_range_score_as_its_edge(client):
    high = _score(client, ast=1000, alt=1000, ggt=1000)
    higher = _score(client, ast=5000, alt=5000, ggt=5000)
    # Held at the edge: only what derived features (the fatty liver index, bounded) still add moves.
    assert _probabilities(high) == pytest.approx(_probabilities(higher), rel=0.1)
    assert _probabilities(high)["diabetes"] < 0.5  # not the near certainty a linear term gave
    [warning] = [w for w in high["warnings"] if "outside the range of the model's training data" in w]
    assert "alt" in warning and "ggt" in warning and "1000" not in warning
    for risk in high["risks"].values():
        if risk["applicable"]:
            low, up = risk["probability_interval"]
            assert low <= risk["probability"] <= up
    assert not any("training data" in w for w in _score(client)["warnings"])  # the example is inside


def test_the_report_says_so_and_estimates_no_what_if_beyond_the_range(client):
    html = client.post("/report", json={"checkup": EXAMPLE_RECORD | {"weight_kg": 240.0}, "lang": "en"}).text
    assert "outside the range of the model&#39;s training data" in html  # the note, HTML-escaped
    assert "not estimated (the change is beyond what the model can vouch for: a value outside the range" in html
    plain = client.post("/report", json={"checkup": EXAMPLE_RECORD, "lang": "en"}).text
    assert "training data, so scored" not in plain and "a value outside the range" not in plain


def test_only_the_measurements_sent_are_named(client):
    # Two checkups six years apart: the gap is held to the training range in silence, since the
    # caller sent dates, not a gap to check.
    earlier = EXAMPLE_RECORD | {"exam_date": "2018-03-02", "age": EXAMPLE_RECORD["age"] - 6}
    r = client.post("/score", json={"checkups": [earlier, EXAMPLE_RECORD]})
    assert r.status_code == 200, r.text
    assert not any("training data" in w for w in r.json()["results"][-1]["warnings"])


def test_a_what_if_outside_the_range_is_left_out_of_all_of_the_above(scorer):
    _, heaviest = scorer.model.training_range("weight_kg")
    record = EXAMPLE_RECORD | {"weight_kg": heaviest + 10, "smoking_status": 3, "sbp": 150.0, "dbp": 85.0}
    changes = {w.key: w for w in what_if_changes(record, scorer.model.training_range)}
    [weight] = [w for w in changes.values() if "weight_kg" in w.changes and w.key != "all"]
    assert weight.beyond == OUTSIDE_TRAINING
    assert "weight_kg" not in changes["all"].changes and "sbp" in changes["all"].changes
