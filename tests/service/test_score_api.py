"""The /score contract in-process (TestClient over the real BentoML ASGI app)."""

import copy
import math

import numpy as np
import pytest

from features.schema import EXAMPLE_RECORD, OUTCOMES

REC = dict(EXAMPLE_RECORD)


def post(client, checkups, **kw):
    return client.post("/score", json={"checkups": checkups, **kw})


def test_probes_are_public(client):
    for path in ("/healthz", "/livez", "/readyz"):
        assert client.get(path, headers={"Authorization": ""}).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer test-tokenx"])
def test_auth_required(client, header):
    headers = {"Authorization": header} if header else {"Authorization": ""}
    r = client.post("/score", json={"checkups": [REC]}, headers=headers)
    assert r.status_code == 401
    assert "probability" not in r.text
    # It says how to send a token, the same words for every refusal, and nothing about this one.
    (error,) = r.json()["errors"]
    assert error["message"].startswith("unauthorized: send Authorization: Bearer <token>")
    assert "CHECKUP_RISK_API_TOKEN" in error["message"] and "test-token" not in r.text


def test_api_description_is_public(client):
    # /docs and /openapi.json describe the routes and hold no patient data: a browser reads them
    # without a token.
    spec = client.get("/openapi.json", headers={"Authorization": ""})
    assert spec.status_code == 200 and "/score" in spec.json()["paths"]
    docs = client.get("/docs", headers={"Authorization": ""})
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_score_shape_and_additivity(client, service_home):
    _, model, version = service_home
    r = post(client, [REC], top_k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == version
    res = body["results"][0]
    assert res["person_id"] == REC["person_id"] and res["exam_date"] == REC["exam_date"]
    # One record: no history; `stale` is always a boolean (tests/service/test_history_score.py).
    assert res["history_checkups"] == 0 and isinstance(res["stale"], bool)
    assert set(res["risks"]) == set(OUTCOMES)
    for risk in res["risks"].values():
        if not risk["applicable"]:
            assert risk["probability"] is None and risk["reason"]
            continue
        assert 0 < risk["probability"] < 1
        assert risk["category"] in {"low", "moderate", "high", "very_high"}
        assert len(risk["contributions"]) == 5
        total = risk["base_log_odds"] + sum(c["log_odds"] for c in risk["contributions"]) + risk["other_log_odds"]
        p = risk["probability"]
        assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-6)
        mags = [abs(c["log_odds"]) for c in risk["contributions"]]
        assert mags == sorted(mags, reverse=True)


def test_matches_the_model_directly(client, service_home):
    import pandas as pd

    from features.readers import records_to_frame

    _, model, _ = service_home
    r = post(client, [REC], explain=False).json()["results"][0]
    direct = model.predict(records_to_frame([REC]).frame).iloc[0]
    for o in OUTCOMES:
        got = r["risks"][o]["probability"]
        assert (got is None and pd.isna(direct[o])) or got == pytest.approx(direct[o], rel=1e-6)


def test_not_applicable_outcome_says_why(client):
    rec = dict(REC, history_diabetes=1, sbp=150, dbp=95)
    risks = post(client, [rec]).json()["results"][0]["risks"]
    assert risks["diabetes"]["applicable"] is False and "diabetes" in risks["diabetes"]["reason"]
    assert risks["hypertension"]["applicable"] is False and risks["hypertension"]["probability"] is None


def test_missing_key_inputs_warn(client):
    rec = {"person_id": "x1", "sex": "F", "age": 61}
    res = post(client, [rec]).json()["results"][0]
    assert any("fasting_glucose" in w for w in res["warnings"])
    assert res["risks"]["cvd"]["applicable"] is True
    assert res["exam_date"]  # defaulted to today


def test_lipids_carried_from_an_earlier_panel_are_not_missing(client):
    # The model carries the last panel forward; /score had still warned that the lipids were missing.
    earlier = dict(REC, person_id="carry", exam_date="2023-05-02")
    newest = {k: v for k, v in REC.items() if k not in ("total_cholesterol", "hdl", "ldl", "triglycerides")}
    newest.update(person_id="carry", exam_date="2025-05-02")
    alone, with_history = (
        post(client, [newest]).json()["results"][0],
        post(client, [earlier, newest]).json()["results"][1],
    )
    lipids = {"total_cholesterol", "hdl", "triglycerides"}
    assert lipids <= set(alone["missing_inputs"]) and any("hdl" in w for w in alone["warnings"])
    assert not lipids & set(with_history["missing_inputs"])
    assert not any("(hdl) missing" in w for w in with_history["warnings"])
    # A panel drawn this time without HDL: HDL is missing, whatever an earlier panel held.
    partial = dict(newest, total_cholesterol=190)
    drawn = post(client, [earlier, partial]).json()["results"][1]
    assert {"hdl", "triglycerides"} <= set(drawn["missing_inputs"]) and "total_cholesterol" not in drawn[
        "missing_inputs"
    ]


def test_higher_sbp_never_lowers_cvd_risk(client):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(40):
        r = dict(REC, person_id=f"m{i}", age=int(rng.integers(30, 80)), sbp=int(rng.integers(95, 170)))
        r["dbp"] = min(r["dbp"], r["sbp"] - 20)
        recs.append(r)
    higher = [dict(r, sbp=r["sbp"] + 15) for r in recs]
    p0 = [x["risks"]["cvd"]["probability"] for x in post(client, recs, explain=False).json()["results"]]
    p1 = [x["risks"]["cvd"]["probability"] for x in post(client, higher, explain=False).json()["results"]]
    assert all(b >= a - 1e-12 for a, b in zip(p0, p1, strict=True))


def test_person_id_does_not_change_results(client):
    a = post(client, [REC]).json()["results"][0]["risks"]
    b = post(client, [dict(REC, person_id="someone-else")]).json()["results"][0]["risks"]
    assert a == b


BAD = [
    ("sbp", "abc", "sbp"),
    ("sbp", "120", "sbp"),
    ("sbp", 400, "sbp"),
    ("hdl", 1, "hdl"),
    ("smoking_status", 4, "smoking_status"),
    ("urine_protein", 2.5, "urine_protein"),
    ("sex", "X", "sex"),
    ("drinking", True, "drinking"),
    ("exam_date", "2020-13-45", "exam_date"),
    ("exam_date", "1999-01-01", "exam_date"),
    ("dbp", 150, "dbp"),
    ("unknown_field", 1, "unknown_field"),
    ("person_id", "x" * 65, "person_id"),
]


@pytest.mark.parametrize("field, value, named", BAD, ids=[f"{b[0]}={str(b[1])[:10]}" for b in BAD])
def test_bad_input_is_4xx_naming_record_and_field(client, field, value, named):
    good = dict(REC, person_id="ok")
    bad = dict(REC, **{field: value})
    r = post(client, [good, bad])
    assert r.status_code in (400, 422), r.text
    errors = r.json()["errors"]
    assert any(e["index"] == 1 and e["field"] == named for e in errors), errors
    if len(str(value)) >= 3 and field != "unknown_field":
        assert str(value) not in r.text  # no echo of patient values


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_rejected(client, literal):
    body = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50, "sbp": ' + literal + "}]}"
    r = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0] == {"index": 0, "field": "sbp", "message": r.json()["errors"][0]["message"]}


def test_missing_required_fields(client):
    r = post(client, [{"person_id": "a", "age": 50}])
    assert r.status_code == 422
    assert {"index": 0, "field": "sex"} == {k: r.json()["errors"][0][k] for k in ("index", "field")}
    r = post(client, [{"person_id": "a", "sex": "M"}])
    assert r.json()["errors"][0]["field"] == "age"


def test_empty_oversized_and_malformed_batches(client):
    assert post(client, []).status_code == 422
    r = post(client, [dict(REC, person_id=f"p{i}") for i in range(1001)], explain=False)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "checkups"
    r = client.post("/score", content="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and "errors" in r.json()
    assert client.post("/score", json={"records": [REC]}).status_code == 422
    assert post(client, [REC], top_k=-1).status_code == 422


def test_batch_of_1000_is_scored(client):
    recs = [dict(REC, person_id=f"p{i}", age=30 + i % 50) for i in range(1000)]
    r = post(client, recs, top_k=3)
    assert r.status_code == 200
    assert len(r.json()["results"]) == 1000


def test_nhis_codes_accepted(client):
    rec = copy.deepcopy(REC)
    rec.update(sex=1, age=None, age_group=11)
    res = post(client, [rec]).json()["results"][0]
    assert res["risks"]["cvd"]["applicable"]
    assert any("band" in w for w in res["warnings"])


def test_model_route_names_version(client, service_home):
    assert client.get("/model").json()["model_version"] == service_home[2]


def test_every_applicable_risk_carries_its_interval(client, service_home):
    _, model, _ = service_home
    assert model.has_intervals()
    for explain in (True, False):
        r = post(client, [REC], top_k=5, explain=explain)
        assert r.status_code == 200, r.text
        res = r.json()["results"][0]
        assert not any("probability_interval" in w for w in res["warnings"])
        applicable = [v for v in res["risks"].values() if v["applicable"]]
        assert applicable
        for risk in res["risks"].values():
            if not risk["applicable"]:
                assert risk.get("probability_interval") is None
                continue
            low, high = risk["probability_interval"]
            assert 0 <= low <= risk["probability"] <= high <= 1 and low < high


@pytest.mark.parametrize("body", [{"explain": "yes"}, {"explain": 1}, {"top_k": "3"}, {"top_k": 2.0}])
def test_request_options_are_strictly_typed(client, body):
    r = client.post("/score", json={"checkups": [EXAMPLE_RECORD], **body})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] in ("explain", "top_k")


def test_an_age_outside_its_age_group_is_said(client):
    r = client.post("/score", json={"checkups": [dict(EXAMPLE_RECORD, age=50, age_group=10)]})
    assert r.status_code == 200
    assert any("outside age_group 10 (45-49): the age was used" in w for w in r.json()["results"][0]["warnings"])
    ok = client.post("/score", json={"checkups": [dict(EXAMPLE_RECORD, age=47, age_group=10)]}).json()
    assert not any("outside age_group" in w for w in ok["results"][0]["warnings"])
