"""CDS Hooks 2.0 over the real service app: discovery, patient-view cards, 412, feedback, and each
refusal of the client JWT."""

import copy
import re
import uuid

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from models.outcomes import OUTCOME_SPECS
from serving.cds import CDS_UNAUTHORIZED
from serving.cds_cards import NEXT_STEPS, SYNTHETIC_MARK, summary_text
from serving.cds_store import FeedbackLog
from serving.fhir_out import check_risk_assessment
from serving.state_db import open_state

URL = "http://testserver/cds-services/checkup-risk"


def _nulls(value) -> list:
    """Paths of optional-looking empties the spec forbids: null, "", [] and {}."""
    if isinstance(value, dict):
        return [k for k, v in value.items() if v in (None, "", [], {})] + [p for v in value.values() for p in _nulls(v)]
    if isinstance(value, list):
        return [p for v in value for p in _nulls(v)]
    return []


def cds_call(record: dict, **changes) -> dict:
    bundle = to_bundle(record)
    patient = bundle["entry"][0]["resource"]
    observations = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [e for e in bundle["entry"][1:] if e["resource"]["resourceType"] == "Observation"],
    }
    others = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [e for e in bundle["entry"][1:] if e["resource"]["resourceType"] != "Observation"],
    }
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://his.example.org/fhir",
        "context": {"userId": "Practitioner/1", "patientId": patient["id"]},
        "prefetch": {"patient": patient, "observations": observations, "conditions": others},
    }
    body.update(changes)
    return body


@pytest.fixture
def post(client, cds_client_keys):
    def call(body, token=None, url=URL):
        token = token or cds_client_keys.token(url)
        headers = {"Authorization": f"Bearer {token}"}
        return client.post(url.replace("http://testserver", ""), json=body, headers=headers)

    return call


def test_discovery_is_public_and_complete(client):
    r = client.get("/cds-services", headers={"Authorization": ""})
    assert r.status_code == 200
    (service,) = r.json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "checkup-risk"
    assert service["description"] and service["title"]
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert service["prefetch"]["observations"].startswith("Observation?patient={{context.patientId}}&code=")
    assert "http://loinc.org|8480-6" in service["prefetch"]["observations"]


def test_patient_view_card(post, service_home):
    _, _, version = service_home
    record = dict(EXAMPLE_RECORD, sbp=168.0, dbp=96.0, smoking_status=3)
    r = post(cds_call(record))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert len(card["summary"]) < 140 and "1년 위험" in card["summary"] and "1-yr" in card["summary"]
    # Changed by design (issue 11): a one-year risk is never "critical", which is for action now.
    assert card["indicator"] in ("info", "warning")
    # The test service's model is synthetic: a collapsed card says so in its source label too.
    assert card["source"]["label"] == f"checkup-risk (model v{version}) · 합성 데이터 모델 · synthetic-data model"
    assert card["summary"].startswith("[합성 모델·synthetic model] ")  # all that many EHRs show
    assert "Systolic" not in card["summary"]
    assert "수축기혈압" in card["detail"] or "흡연" in card["detail"]  # factors in clinical words
    assert "| 심뇌혈관질환" in card["detail"]
    assert "해당 없음 · Not applicable" in card["detail"]  # sbp 168: hypertension does not apply
    assert card["links"][0]["url"].startswith("http://testserver/reports/")
    assert card["selectionBehavior"] == "at-most-one"
    actions = card["suggestions"][0]["actions"]
    assert actions and all(a["type"] == "create" for a in actions)
    for action in actions:
        ra = action["resource"]
        RiskAssessment.model_validate(ra)
        refs = {b["reference"] for b in ra["basis"]}
        assert check_risk_assessment(ra, version, refs) == []
        assert any(ref.startswith("Observation/") for ref in refs)
    assert _nulls(r.json()) == []


def test_indicator_follows_the_category(post):
    low = post(
        cds_call(
            dict(
                EXAMPLE_RECORD,
                age=25,
                smoking_status=1,
                sbp=112.0,
                dbp=70.0,
                fasting_glucose=85.0,
                ldl=90.0,
                total_cholesterol=170.0,
                family_history_cvd=0,
            )
        )
    ).json()["cards"]
    high = post(
        cds_call(dict(EXAMPLE_RECORD, age=78, sbp=178.0, dbp=88.0, fasting_glucose=118.0, smoking_status=3))
    ).json()["cards"]
    # Changed by design (issue 11): "warning" for high and very high, "info" otherwise, never "critical".
    assert len(low) == 1 and len(high) == 1
    assert low[0]["indicator"] == "info", low[0]["summary"]
    assert high[0]["indicator"] == "warning", high[0]["summary"]
    assert "높음" in high[0]["summary"] and "high 1-yr" in high[0]["summary"].lower()
    # Each summary names the next step from the one table, in Korean and in English; a synthetic
    # model's (the test service's) says "synthetic" in place of the English one (140 characters).
    steps = [step for row in NEXT_STEPS.values() for step in row.values()]
    for card in (low[0], high[0]):
        assert card["summary"].startswith(SYNTHETIC_MARK)
        assert any(ko in card["summary"] for ko, en in steps), card["summary"]
    plain = summary_text("cvd", "high", 0.05)
    assert any(ko in plain and en in plain for ko, en in steps)


def test_no_cards_when_nothing_applies(post):
    record = dict(
        EXAMPLE_RECORD,
        history_stroke=1,
        history_diabetes=1,
        history_hypertension=1,
        history_dyslipidemia=1,
        serum_creatinine=3.5,
        urine_protein=5,
    )
    r = post(cds_call(record))
    assert r.status_code == 200
    assert r.json() == {"cards": []}


def test_no_cards_outside_the_modelled_ages(post):
    assert post(cds_call(dict(EXAMPLE_RECORD, age=15))).json() == {"cards": []}


@pytest.mark.parametrize("key,how", [("patient", "missing"), ("patient", "null"), ("observations", "missing")])
def test_required_prefetch_gives_412(post, key, how):
    body = cds_call(EXAMPLE_RECORD)
    if how == "missing":
        del body["prefetch"][key]
    else:
        body["prefetch"][key] = None
    r = post(body)
    assert r.status_code == 412
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome" and f"prefetch.{key}" in outcome["issue"][0]["expression"]


def test_a_patient_prefetched_by_a_search_is_read(post):
    body = cds_call(EXAMPLE_RECORD)
    patient = body["prefetch"]["patient"]
    body["prefetch"]["patient"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": patient}]}
    assert post(body).status_code == 200
    # The same Patient as the search's match and as an include: one person.
    body = cds_call(EXAMPLE_RECORD)
    twice = [{"resource": patient, "search": {"mode": "match"}}, {"resource": patient, "search": {"mode": "include"}}]
    body["prefetch"]["patient"] = {"resourceType": "Bundle", "type": "searchset", "entry": twice}
    assert post(body).status_code == 200


def test_no_card_for_a_deceased_patient(post):
    # A one-year risk advises no one: no card (the FHIR route still answers, with a warning).
    for deceased in ({"deceasedBoolean": True}, {"deceasedDateTime": "2025-01-02"}, {"deceasedBoolean": "yes"}):
        body = cds_call(EXAMPLE_RECORD)
        body["prefetch"]["patient"].update(deceased)
        r = post(body)
        assert r.status_code == 200 and r.json() == {"cards": []}, r.text


def test_observations_sent_as_null_are_no_checkup_not_an_error(post):
    # CDS Hooks 2.0: a key the client has no data for is null; one it could not fetch is left out.
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["observations"] = None
    r = post(body)
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert card["indicator"] == "info" and "No checkup results" in card["summary"]


def test_unsent_optional_keys_and_a_partial_page_are_said(post):
    """An optional key left out, or a result that is one page of more, leaves what it would have
    checked unchecked: the card says so (a known diagnosis might be scored as new)."""
    body = cds_call(EXAMPLE_RECORD)
    for key in ("conditions", "medications", "medicationRequests", "familyHistory"):
        body["prefetch"].pop(key, None)
    observations = body["prefetch"]["observations"]
    observations["total"] = len(observations["entry"]) + 15
    observations["link"] = [{"relation": "next", "url": "https://ehr.example/fhir/Observation?page=2"}]
    [card] = post(body).json()["cards"]
    detail = card["detail"]
    assert "prefetch.conditions" in detail and "not sent: known diagnoses could not be checked" in detail
    assert "not sent: current treatment could not be checked" in detail and "family history" in detail
    assert f"one page of the search results ({len(observations['entry'])} of" in detail
    # Sent as null (no such data), or treatment through either key: nothing to say.
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"].update(conditions=None, familyHistory=None, medications=None)
    body["prefetch"].pop("medicationRequests", None)
    [card] = post(body).json()["cards"]
    assert "not sent" not in card["detail"] and "one page" not in card["detail"]


def test_no_prefetch_at_all_gives_412(post):
    body = cds_call(EXAMPLE_RECORD)
    del body["prefetch"]
    assert post(body).status_code == 412


def _failed_search(severity: str = "error", code: str = "timeout") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": "Condition search timed out after 30 s"}],
    }


def _searchset(*resources: dict) -> dict:
    entry = [
        {"resource": r, "search": {"mode": "outcome" if r["resourceType"] == "OperationOutcome" else "match"}}
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": "searchset", "entry": entry}


@pytest.mark.parametrize("severity, code", [("error", "timeout"), ("warning", "too-costly")])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_failed_observation_search_is_412_not_no_checkup(post, wrapped, severity, code):
    """The EMR's search failed (or was not run): the card must not say the patient has no checkup results."""
    body = cds_call(EXAMPLE_RECORD)
    failed = _failed_search(severity, code)
    body["prefetch"]["observations"] = _searchset(failed) if wrapped else failed
    r = post(body)
    assert r.status_code == 412, r.text
    (issue,) = r.json()["issue"]
    assert issue["expression"] == ["prefetch.observations"]
    assert issue["diagnostics"] == (
        f"the FHIR server's search failed (OperationOutcome, {severity}: {code}): no results; required prefetch data "
        "could not be fetched"
    )
    assert "30 s" not in r.text  # the server's diagnostics are never echoed


@pytest.mark.parametrize("outcome", [{"issue": 1}, {"issue": [1, {"severity": 7}]}, {}])
def test_a_malformed_outcome_in_place_of_a_search_is_no_500(post, outcome):
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", **outcome}
    r = post(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert "the FHIR server's search failed (OperationOutcome, error: no code)" in card["detail"]
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": 5}
    assert post(body).status_code == 200


@pytest.mark.parametrize("key", ["conditions", "medications"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_failed_history_search_is_said_on_the_card(post, key, wrapped):
    """A known diabetic whose Condition search timed out must not get a silent "new diabetes" card."""
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"][key] = _searchset(_failed_search()) if wrapped else _failed_search()
    r = post(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    unchecked = "known diagnoses could not be checked" if key == "conditions" else "current treatment could not be"
    said = [line for line in card["detail"].splitlines() if f"`prefetch.{key}`" in line]
    assert len(said) == 1 and "the FHIR server's search failed (OperationOutcome, error: timeout)" in said[0]
    assert unchecked in said[0]
    assert "30 s" not in card["detail"]


def test_results_with_a_warning_outcome_are_used_and_flagged(post):
    body = cds_call(EXAMPLE_RECORD)
    observations = body["prefetch"]["observations"]
    observations["entry"].append({"resource": _failed_search("warning", "incomplete"), "search": {"mode": "outcome"}})
    r = post(body)
    (card,) = r.json()["cards"]
    assert "| 심뇌혈관질환" in card["detail"]  # scored from the results sent
    assert (
        "holds an OperationOutcome (warning: incomplete) beside the data: the data sent may be incomplete"
        in (card["detail"])
    )


@pytest.mark.parametrize("kind", ["collection", None])
def test_a_failed_search_counts_whatever_type_the_bundle_claims(post, kind):
    """Not every EHR types a prefetch "searchset": an error outcome alone is still no checkup data."""
    body = cds_call(EXAMPLE_RECORD)
    wrapped = _searchset(_failed_search())
    if kind is None:
        del wrapped["type"]
    else:
        wrapped["type"] = kind
    body["prefetch"]["observations"] = wrapped
    assert post(body).status_code == 412


# The patient-view request example of the CDS Hooks 2.0 specification, verbatim.
SPEC_EXAMPLE = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {
        "patientToGreet": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "1288992",
            "active": True,
        }
    },
}


def test_spec_example_without_our_prefetch_gets_412(post):
    r = post(copy.deepcopy(SPEC_EXAMPLE))
    assert r.status_code == 412
    assert {i["expression"][0] for i in r.json()["issue"]} == {"prefetch.patient", "prefetch.observations"}


def test_spec_example_with_our_prefetch(post):
    body = copy.deepcopy(SPEC_EXAMPLE)
    bundle = to_bundle(dict(EXAMPLE_RECORD, person_id="1288992", age=70))
    body["prefetch"] = {
        "patient": bundle["entry"][0]["resource"],
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": bundle["entry"][1:]},
    }
    r = post(body)
    assert r.status_code == 200, r.text
    assert r.json()["cards"][0]["indicator"] in ("info", "warning")  # never "critical" (issue 11)


def test_cors_preflight_for_browser_clients(client):
    r = client.options(
        "/cds-services/checkup-risk",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_spec_example_request_shape(post):
    """The CDS Hooks 2.0 patient-view example request, with our prefetch filled in."""
    body = cds_call(EXAMPLE_RECORD)
    body["fhirAuthorization"] = {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Observation.read",
        "subject": "cds-service4",
    }
    body["context"]["encounterId"] = "89284"
    assert post(body).status_code == 200


@pytest.mark.parametrize(
    "change,status",
    [
        ({"hook": "order-select"}, 400),
        ({"hookInstance": ""}, 400),
        ({"context": {"patientId": "x"}}, 400),
    ],
)
def test_bad_requests_get_operation_outcome(post, change, status):
    r = post(cds_call(EXAMPLE_RECORD, **change))
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"


def test_prefetch_for_another_patient_is_refused(post):
    body = cds_call(EXAMPLE_RECORD)
    body["context"]["patientId"] = "someone-else"
    assert post(body).status_code == 422


def test_implausible_observation_is_left_out_and_named(post):
    """An implausible value is left missing with a warning naming its Observation (contract
    section 3: one unreadable value does not refuse the patient)."""
    body = cds_call(EXAMPLE_RECORD)
    sbp = next(
        e["resource"]
        for e in body["prefetch"]["observations"]["entry"]
        if e["resource"]["code"]["coding"][0]["code"] == "8480-6"
    )
    sbp["valueQuantity"]["value"] = 420
    r = post(body)
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert f"Observation/{sbp['id']}" in card["detail"] and "sbp" in card["detail"]
    # Never echo patient values (the digits may still occur inside a resource id).
    assert not re.search(r"(?<![\w.])420(?![\w.])", r.text)


# --- client JWT: every refusal is the same 401 (the reason goes to the log), and the call is not served


def test_valid_rs384_token_is_accepted(post, cds_client_keys):
    assert post(cds_call(EXAMPLE_RECORD), token=cds_client_keys.token(URL, alg="RS384")).status_code == 200


@pytest.fixture
def _refused(post, caplog):
    """Post with `token` and check the refusal: 401 with one message for every reason (no caller
    learns which issuers or keys exist), and the reason in the service log for its operators."""

    def check(_post, body, token, reason):
        caplog.clear()
        with caplog.at_level("WARNING", logger="bentoml.checkup_risk.cds"):
            r = post(body, token=token)
        assert r.status_code == 401, r.text
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.json()["issue"][0]["diagnostics"] == CDS_UNAUTHORIZED
        assert reason in caplog.text, caplog.text

    return check


def test_wrong_audience_is_refused(post, cds_client_keys, _refused):
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token("https://elsewhere.example/cds-services/x"), "aud")


def test_expired_token_is_refused(post, cds_client_keys, _refused):
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token(URL, exp_in=-120, iat=1), "expired")


def test_replayed_jti_is_refused(post, cds_client_keys, _refused):
    token = cds_client_keys.token(URL)
    assert post(cds_call(EXAMPLE_RECORD), token=token).status_code == 200
    _refused(post, cds_call(EXAMPLE_RECORD), token, "replay")


def test_alg_none_is_refused(post, cds_client_keys, _refused):
    import jwt

    token = jwt.encode(
        {"iss": cds_client_keys.iss, "aud": URL, "exp": 9999999999, "iat": 1, "jti": "n"},
        None,
        algorithm="none",
        headers={"kid": "ec-1"},
    )
    _refused(post, cds_call(EXAMPLE_RECORD), token, "algorithm")


def test_hs256_is_refused(post, cds_client_keys, _refused):
    import time

    import jwt

    secret = b"a shared secret is not a CDS client credential"
    token = jwt.encode(
        {
            "iss": cds_client_keys.iss,
            "aud": URL,
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
        },
        secret,
        algorithm="HS256",
        headers={"kid": "ec-1"},
    )
    _refused(post, cds_call(EXAMPLE_RECORD), token, "algorithm")


def test_unknown_issuer_is_refused(post, cds_client_keys, _refused):
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token(URL, iss="https://evil.example"), "issuer")


def test_unknown_kid_is_refused(post, cds_client_keys, _refused):
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token(URL, kid="nope"), "key id")


def test_key_signed_by_a_stranger_is_refused(post, _refused):
    from tests.cds_clients import TestClientKeys

    stranger = TestClientKeys()  # same issuer name and kid, different private key
    _refused(post, cds_call(EXAMPLE_RECORD), stranger.token(URL), "signature")


def test_missing_jti_and_missing_token_are_refused(post, client, cds_client_keys, _refused):
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token(URL, drop=("jti",)), "jti")
    r = client.post("/cds-services/checkup-risk", json=cds_call(EXAMPLE_RECORD))
    assert r.status_code == 401


def test_api_token_is_not_a_cds_credential(client):
    r = client.post("/cds-services/checkup-risk", json=cds_call(EXAMPLE_RECORD))  # client sends the API token
    assert r.status_code == 401


def test_public_url_sets_the_audience(post, cds_client_keys, monkeypatch, _refused):
    import bentoml

    # CHECKUP_RISK_PUBLIC_URL, as the running worker keeps it from its settings.
    monkeypatch.setattr(bentoml.get_current_service(), "public_url", "https://risk.example.org")
    public = "https://risk.example.org/cds-services/checkup-risk"
    assert post(cds_call(EXAMPLE_RECORD), token=cds_client_keys.token(public)).status_code == 200
    _refused(post, cds_call(EXAMPLE_RECORD), cds_client_keys.token(URL), "aud")


def test_feedback(post, service_home, cds_client_keys):
    home = service_home[0]
    url = URL + "/feedback"
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "not-relevant", "system": "https://example.org"}},
                "outcomeTimestamp": "2026-11-28T10:00:00Z",
            },
            {
                "card": str(uuid.uuid4()),
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
                "outcomeTimestamp": "2026-11-28T10:01:00Z",
            },
        ]
    }
    r = post(body, url=url)
    assert r.status_code == 200, r.text
    # Read back through the service's own shared state (SQLite under the home by default).
    outcomes = FeedbackLog(open_state(None, home)).counts()
    assert outcomes["overridden"] >= 1 and outcomes["accepted"] >= 1
    # Only a code the cards offer is kept; any other (here a name in disguise) is "other", and the
    # timestamp is kept as the instant, not as the text sent.
    free = copy.deepcopy(body)
    free["feedback"][0]["overrideReason"] = {"reason": {"code": "PRIV-Zebediah-" + "x" * 5000}}
    free["feedback"][0]["card"] = card = str(uuid.uuid4())
    assert post(free, url=url).status_code == 200
    from sqlalchemy import select

    from serving.state_tables import feedback

    with open_state(None, home).connect() as db:
        kept = {r.card: (r.reason, r.at) for r in db.execute(select(feedback.c.card, feedback.c.reason, feedback.c.at))}
    assert kept[card] == ("other", "2026-11-28T10:00:00+00:00")
    assert kept[body["feedback"][0]["card"]][0] == "not-relevant"
    for sent in ("yesterday, Mr Kim", "2026-11-28", "2026-11-28T10:00:00", 1764583200):
        stamp = copy.deepcopy(body)
        stamp["feedback"][0]["outcomeTimestamp"] = sent
        assert post(stamp, url=url).status_code == 400, sent
    seoul = copy.deepcopy(body)
    seoul["feedback"][0].update(card=str(uuid.uuid4()), outcomeTimestamp="2026-11-28T19:00:00+09:00")
    assert post(seoul, url=url).status_code == 200
    with open_state(None, home).connect() as db:
        at = db.execute(select(feedback.c.at).where(feedback.c.card == seoul["feedback"][0]["card"])).scalar_one()
    assert at == "2026-11-28T10:00:00+00:00"  # the instant, in UTC
    bad = copy.deepcopy(body)
    bad["feedback"][0]["outcome"] = "ignored"
    assert post(bad, url=url).status_code == 400
    # A token for the service URL is not valid for the feedback URL.
    r = post(body, token=cds_client_keys.token(URL), url=url)
    assert r.status_code == 401 and r.json()["issue"][0]["diagnostics"] == CDS_UNAUTHORIZED


def test_card_links_to_the_clinician_report(post, client):
    card = post(cds_call(dict(EXAMPLE_RECORD, sbp=150.0))).json()["cards"][0]
    # The reasons a clinician may give for dismissing it: the only override codes feedback keeps.
    from serving.cds_cards import OVERRIDE_CODES, OVERRIDE_SYSTEM

    assert {r["code"] for r in card["overrideReasons"]} == OVERRIDE_CODES
    assert all(r["system"] == OVERRIDE_SYSTEM and " · " in r["display"] for r in card["overrideReasons"])
    path = card["links"][0]["url"].replace("http://testserver", "")
    # The link is its own credential: a clinician's browser has no bearer token.
    r = client.get(path, headers={"Authorization": ""})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "만성질환 위험" in r.text
    assert "One-year" in client.get(path + "&lang=en", headers={"Authorization": ""}).text


def test_the_patient_is_judged_as_in_a_fhir_bundle(post, client):
    """One reader for the Patient: an unreadable optional date does not refuse it on either path,
    and a Patient that is not valid FHIR is refused on both."""
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["patient"]["deceasedDateTime"] = "not-a-date"
    assert post(body).status_code == 200, post(body).text
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"][0]["resource"]["deceasedDateTime"] = "not-a-date"
    r = client.post("/fhir/risk-assessment", json=bundle)
    assert r.status_code == 200, r.text
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["patient"]["gender"] = 5
    assert post(body).status_code == 422


@pytest.mark.parametrize("gender", ["other", "unknown", None])
def test_a_patient_the_models_do_not_describe_gets_no_card_not_an_error(post, client, gender):
    """patient-view fires on every chart opened: a sex other than male or female (no birthsex
    extension) or no birth date is no card, as an age outside the models is; the FHIR endpoint,
    asked for a risk, still says why it cannot give one."""
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["patient"].pop("gender")
    if gender:
        body["prefetch"]["patient"]["gender"] = gender
    r = post(body)
    assert r.status_code == 200 and r.json() == {"cards": []}, r.text
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"][0]["resource"].pop("gender")
    assert client.post("/fhir/risk-assessment", json=bundle).status_code == 422
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["patient"].pop("birthDate")
    assert post(body).json() == {"cards": []}
    # A value that is there but unreadable is bad input, said as such (a misconfigured sender).
    body = cds_call(EXAMPLE_RECORD)
    body["prefetch"]["patient"]["birthDate"] = "1960/05/03"
    assert post(body).status_code == 422


def test_a_value_that_needs_evaluation_now_heads_a_warning_card(post):
    (card,) = post(cds_call(dict(EXAMPLE_RECORD, sbp=270.0, dbp=150.0))).json()["cards"]
    assert card["indicator"] == "warning"
    lines = card["detail"].splitlines()
    # First after the synthetic-model notice, which heads every card of such a model.
    at = lines.index("**즉시 확인이 필요한 값 · Values that need prompt clinical evaluation**")
    assert at <= 2, lines[:4]
    # Each item in Korean and English, from the result's structured `critical` list.
    assert lines[at + 1].startswith("- 수축기혈압 ≥180 mmHg (중증 고혈압")
    assert "· Systolic blood pressure ≥180 mmHg (severe hypertension:" in lines[at + 1]
    assert "· Diastolic blood pressure ≥110 mmHg" in lines[at + 2]
    # The summary, the one line many EHRs show, says it: never "low risk, routine checkups".
    assert card["summary"].endswith("즉시 확인이 필요한 값 · Values that need prompt clinical evaluation")
    (calm,) = post(cds_call(EXAMPLE_RECORD)).json()["cards"]
    assert "prompt clinical evaluation" not in calm["detail"] + calm["summary"]
    # A person for whom no outcome applies (every disease known) still gets the one card.
    known = dict(
        EXAMPLE_RECORD,
        sbp=270.0,
        dbp=150.0,
        history_stroke=1,
        history_diabetes=1,
        history_hypertension=1,
        history_dyslipidemia=1,
        urine_protein=4,
    )
    (only,) = post(cds_call(known)).json()["cards"]
    assert only["indicator"] == "warning" and "Systolic blood pressure ≥180 mmHg" in only["detail"]
    assert "suggestions" not in only


def test_a_rough_outcome_is_marked_on_the_card(post, service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    thin = Scorer(model, version).thin
    (card,) = post(cds_call(dict(EXAMPLE_RECORD, sbp=128.0, dbp=80.0))).json()["cards"]
    rows = [line for line in card["detail"].splitlines() if line.startswith("| ") and "---" not in line][1:]
    marked = [row for row in rows if "(대략적 추정 · rough: " in row]
    assert thin and len(marked) == len(thin), (thin, rows)
    # The headline too, when its outcome is one of them.
    words = card["summary"].removeprefix(SYNTHETIC_MARK + " ")
    headline = next(o for o in OUTCOME_SPECS if words.startswith(OUTCOME_SPECS[o].short_ko + " "))
    assert ("≈" in card["summary"]) == (headline in thin), (card["summary"], thin)
