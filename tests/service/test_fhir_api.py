"""POST /fhir/risk-assessment: a FHIR Bundle in, RiskAssessments out; OperationOutcome on bad input;
and an end-to-end case from generated patients through CDS Hooks to a validated RiskAssessment."""

import copy
import datetime as dt
import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from features.fhir import read_bundle, to_bundle
from features.schema import EXAMPLE_RECORD
from features.synth import generate_cohort
from models.outcomes import OUTCOME_SPECS
from serving.fhir_out import check_risk_assessment
from tests.service.test_cds import URL, cds_call

FHIR = {"Content-Type": "application/fhir+json"}


def _entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"].get("resourceType") == kind]


def _assessments(response) -> list[dict]:
    bundle = response.json()
    Bundle.model_validate(bundle)
    # RiskAssessments come first; a warnings OperationOutcome, when there is one, is the last entry.
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RiskAssessment"]


def test_risk_assessments_match_score(client, service_home):
    _, _, version = service_home
    bundle = to_bundle(EXAMPLE_RECORD)
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assessments = _assessments(r)
    # The same record through /score gives the same probabilities.
    score = client.post("/score", json={"checkups": [read_bundle(bundle).record]}).json()
    applicable = {o: v for o, v in score["results"][0]["risks"].items() if v["applicable"]}
    assert len(assessments) == len(applicable)
    observation_refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"][1:]}
    for ra in assessments:
        RiskAssessment.model_validate(ra)
        refs = {b["reference"] for b in ra["basis"]}
        assert check_risk_assessment(ra, version, refs) == []
        assert refs - {"Patient/example-0001"} <= observation_refs
        prediction = ra["prediction"][0]
        outcome = next(o for o, s in OUTCOME_SPECS.items() if s.snomed == prediction["outcome"]["coding"][0]["code"])
        assert 0 < prediction["probabilityDecimal"] < 1
        assert prediction["probabilityDecimal"] == pytest.approx(applicable[outcome]["probability"], abs=1e-6)
        assert ra["method"]["coding"][0]["version"] == version
        assert ra["subject"] == {"reference": "Patient/example-0001"}


def test_api_token_required(client):
    r = client.post(
        "/fhir/risk-assessment",
        content=json.dumps(to_bundle(EXAMPLE_RECORD)),
        headers={**FHIR, "Authorization": "Bearer wrong"},
    )
    assert r.status_code == 401


def _broken_bundles():
    good = to_bundle(EXAMPLE_RECORD)
    cases = {"not json": b"{not json", "a list": b"[]", "a Patient": json.dumps(good["entry"][0]["resource"]).encode()}
    no_patient = copy.deepcopy(good)
    no_patient["entry"] = no_patient["entry"][1:]
    cases["no patient"] = json.dumps(no_patient).encode()
    two_patients = copy.deepcopy(good)
    other = copy.deepcopy(good["entry"][0])
    other["resource"]["id"] = "someone-else"
    two_patients["entry"].append(other)
    cases["two patients"] = json.dumps(two_patients).encode()
    return cases


def _one_invalid_observation():
    good = to_bundle(EXAMPLE_RECORD)
    text_value = copy.deepcopy(good)
    text_value["entry"][1]["resource"]["valueQuantity"]["value"] = "high"
    unknown = copy.deepcopy(good)
    unknown["entry"][1]["resource"]["colour"] = "red"
    return {"string value": text_value, "unknown element": unknown}


@pytest.mark.parametrize("name", ["string value", "unknown element"])
def test_one_invalid_observation_is_left_out_not_the_patient(client, name):
    """Contract section 3: one unreadable value does not refuse the whole patient."""
    bundle = _one_invalid_observation()[name]
    bad = bundle["entry"][1]["resource"]
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    kinds = [e["resource"]["resourceType"] for e in r.json()["entry"]]
    assert "RiskAssessment" in kinds
    outcome = r.json()["entry"][-1]["resource"]
    assert any(i.get("expression") == [f"Observation/{bad['id']}"] for i in outcome["issue"])


def test_an_unknown_resource_type_is_left_out_with_a_warning(client):
    # Contract section 3: only a bundle that cannot describe its person is refused.
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"].append({"resource": {"resourceType": "NoSuchResource", "id": "x"}})
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle).encode(), headers=FHIR)
    assert r.status_code == 200, r.text
    outcome = r.json()["entry"][-1]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("not a FHIR R4 resource type" in i["diagnostics"] for i in outcome["issue"])


def test_a_batch_response_is_read_through_and_a_failed_request_said(client):
    # A batch of GET searches answers with one searchset per search, and a failed request carries
    # only its response (FHIR: Bundle.entry.resource 0..1): read what came, say what did not.
    good = to_bundle(EXAMPLE_RECORD)
    patient, *others = good["entry"]
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": others}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {**patient, "response": {"status": "200 OK"}},
            {"resource": searchset, "response": {"status": "200 OK"}},
            {"response": {"status": "404 Not Found"}},
            {"fullUrl": "urn:uuid:x"},
        ],
    }
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    plain = client.post("/fhir/risk-assessment", content=json.dumps(good), headers=FHIR)
    assert [a["prediction"] for a in _assessments(r)] == [a["prediction"] for a in _assessments(plain)]
    said = [i["diagnostics"] for i in r.json()["entry"][-1]["resource"]["issue"]]
    assert any("a request of the batch failed (status 404)" in d for d in said)
    assert any("has no resource: not used" in d for d in said)


def test_malformed_values_inside_resources_are_never_a_server_error(client):
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"].append({"resource": {"resourceType": 5}})
    sbp = next(r for r in _entries(bundle, "Observation") if r["code"]["coding"][0]["code"] == "8480-6")
    # Valid JSON, a number no float holds: the value is left missing, the patient scored.
    raw = json.dumps(bundle).replace(f'"value": {sbp["valueQuantity"]["value"]}', '"value": 1' + "0" * 400, 1)
    r = client.post("/fhir/risk-assessment", content=raw.encode(), headers=FHIR)
    assert r.status_code == 200, r.text
    said = " ".join(i["diagnostics"] for i in r.json()["entry"][-1]["resource"]["issue"])
    assert "not a FHIR R4 resource type" in said and "has no numeric valueQuantity" in said


@pytest.mark.parametrize("name,body", list(_broken_bundles().items()))
def test_malformed_bundles_get_operation_outcome(client, name, body):
    r = client.post("/fhir/risk-assessment", content=body, headers=FHIR)
    assert 400 <= r.status_code < 500, (name, r.status_code)
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]
    assert all(i["severity"] == "error" and i["diagnostics"] for i in outcome["issue"])


def _recent(records: list[dict]) -> list[dict]:
    """One person's checkups moved by whole years so that the newest is within the last year (the
    synthetic cohort ends years ago; a stale checkup would get no risk card). Ages stay as they are."""
    newest = dt.date.fromisoformat(records[-1]["exam_date"])
    shift = (
        dt.date.today().year
        - newest.year
        - (1 if newest.replace(year=dt.date.today().year, day=min(newest.day, 28)) > dt.date.today() else 0)
    )
    out = []
    for r in records:
        day = dt.date.fromisoformat(r["exam_date"])
        out.append(dict(r, exam_date=day.replace(year=day.year + shift, day=min(day.day, 28)).isoformat()))
    return out


def test_end_to_end_generated_patients(client, cds_client_keys, service_home):
    """Generated people, with all their checkups -> FHIR bundles -> CDS call -> card -> the suggested
    RiskAssessment validated, its probability that of /score with the same checkups."""
    _, _, version = service_home
    cohort = generate_cohort(people=40, seed=5).sort_values(["person_id", "exam_date"])
    cards = 0
    for _, person in list(cohort.groupby("person_id"))[:12]:
        records = []
        for record in person.to_dict("records"):
            record = {k: (None if v != v else v) for k, v in record.items() if k in EXAMPLE_RECORD}
            record["exam_date"] = str(record["exam_date"])[:10]
            records.append(record)
        if any(r.get("age") is None for r in records):
            continue
        records = _recent(records)
        bundle = to_bundle(records)
        patient = bundle["entry"][0]["resource"]
        body = cds_call(records[-1])
        body["context"]["patientId"] = patient["id"]
        body["prefetch"] = {
            "patient": patient,
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [e for e in bundle["entry"][1:] if e["resource"]["resourceType"] == "Observation"],
            },
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [e for e in bundle["entry"][1:] if e["resource"]["resourceType"] != "Observation"],
            },
        }
        token = cds_client_keys.token(URL)
        r = client.post("/cds-services/checkup-risk", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        fhir_records = read_bundle(bundle).records
        score = client.post("/score", json={"checkups": fhir_records}).json()["results"][-1]
        for card in r.json()["cards"]:
            cards += 1
            assert len(card["summary"]) < 140
            for action in card["suggestions"][0]["actions"]:
                ra = action["resource"]
                RiskAssessment.model_validate(ra)
                assert check_risk_assessment(ra, version, {b["reference"] for b in ra["basis"]}) == []
                outcome = next(
                    o
                    for o, s in OUTCOME_SPECS.items()
                    if s.snomed == ra["prediction"][0]["outcome"]["coding"][0]["code"]
                )
                assert ra["prediction"][0]["probabilityDecimal"] == pytest.approx(
                    score["risks"][outcome]["probability"], abs=1e-6
                )
    assert cards >= 8


def test_probability_interval_travels_as_a_valid_extension(client):
    from serving.fhir_out import PROBABILITY_INTERVAL_URL

    bundle = to_bundle(EXAMPLE_RECORD)
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    score = client.post("/score", json={"checkups": [read_bundle(bundle).record]}).json()
    risks = score["results"][0]["risks"]
    assessments = _assessments(r)
    assert assessments
    for ra in assessments:
        RiskAssessment.model_validate(ra)
        prediction = ra["prediction"][0]
        outcome = next(o for o, s in OUTCOME_SPECS.items() if s.snomed == prediction["outcome"]["coding"][0]["code"])
        # probabilityDecimal stays; the interval is an extension (probability[x] cannot be both).
        assert "probabilityRange" not in prediction
        (ext,) = [e for e in prediction["extension"] if e["url"] == PROBABILITY_INTERVAL_URL]
        low, high = ext["valueRange"]["low"], ext["valueRange"]["high"]
        assert low["system"] == high["system"] == "http://unitsofmeasure.org" and low["code"] == high["code"] == "1"
        assert 0 <= low["value"] <= prediction["probabilityDecimal"] <= high["value"] <= 1
        assert [low["value"], high["value"]] == pytest.approx(risks[outcome]["probability_interval"], abs=1e-6)


def test_interval_extension_is_checked():
    from serving.fhir_out import check_risk_assessment, probability_interval_extension

    assert probability_interval_extension(None) == []
    ra = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "method": {"coding": [{"version": "1"}]},
        "basis": [{"reference": "Patient/p"}],
        "prediction": [
            {
                "outcome": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                "probabilityDecimal": 0.2,
                "extension": probability_interval_extension([0.1, 0.3]),
            }
        ],
    }
    RiskAssessment.model_validate(ra)
    assert check_risk_assessment(ra, "1", {"Patient/p"}) == []
    ra["prediction"][0]["extension"] = probability_interval_extension([0.25, 0.3])  # excludes the point
    RiskAssessment.model_validate(ra)
    assert any("interval" in p for p in check_risk_assessment(ra, "1", {"Patient/p"}))


def test_an_outcome_without_a_risk_assessment_says_why(client):
    """A diagnosed hypertension: no hypertension RiskAssessment, and the OperationOutcome says why."""
    from features.fhir import to_bundle
    from features.schema import EXAMPLE_RECORD

    r = client.post("/fhir/risk-assessment", json=to_bundle(dict(EXAMPLE_RECORD, history_hypertension=1)))
    assert r.status_code == 200, r.text
    resources = [e["resource"] for e in r.json()["entry"]]
    assessed = {ra["prediction"][0]["outcome"]["text"] for ra in resources if ra["resourceType"] == "RiskAssessment"}
    assert not any("hypertension" in a.lower() for a in assessed), assessed
    notes = [i["diagnostics"] for res in resources if res["resourceType"] == "OperationOutcome" for i in res["issue"]]
    assert any(n.startswith("hypertension: no RiskAssessment: not applicable") for n in notes), notes


def test_a_bundle_without_a_patient_is_422_here(client):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    r = client.post("/fhir/risk-assessment", json=bundle)
    assert r.status_code == 422 and r.json()["resourceType"] == "OperationOutcome"


def test_a_known_ckd_is_never_predicted_as_new(client):
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": "ckd3",
                "subject": {"reference": "Patient/example-0001"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "N18.3"}]},
                "onsetDateTime": "2022-03-01",
            }
        }
    )
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    predicted = {ra["prediction"][0]["outcome"]["coding"][0]["code"] for ra in _assessments(r)}
    assert OUTCOME_SPECS["ckd"].snomed not in predicted and OUTCOME_SPECS["cvd"].snomed in predicted
    score = client.post("/score", json={"checkups": [EXAMPLE_RECORD | {"history_ckd": 1}]}).json()
    ckd = score["results"][0]["risks"]["ckd"]
    assert not ckd["applicable"] and ckd["reason"] == "already diagnosed with chronic kidney disease"


def test_a_known_ckd_is_said_not_to_be_a_model_input(client):
    result = client.post("/score", json={"checkups": [EXAMPLE_RECORD | {"history_ckd": 1}]}).json()["results"][0]
    assert any("chronic kidney disease is not an input" in w for w in result["warnings"])
    plain = client.post("/score", json={"checkups": [EXAMPLE_RECORD]}).json()["results"][0]
    assert not any("chronic kidney disease is not an input" in w for w in plain["warnings"])
    for lang, words in (("en", "A diagnosed chronic kidney disease is not an input"), ("ko", "진단받은 만성콩팥병은")):
        html = client.post("/report", json={"checkup": EXAMPLE_RECORD | {"history_ckd": 1}, "lang": lang}).text
        assert words in html


def test_a_patient_under_20_is_told_in_words(client):
    """The reader computes the age from the birth date: the refusal says what it means, not pydantic's words."""
    bundle = to_bundle(dict(EXAMPLE_RECORD, age=54))
    patient = bundle["entry"][0]["resource"]
    patient["birthDate"] = f"{dt.date.fromisoformat(str(EXAMPLE_RECORD['exam_date'])).year - 17}-01-01"
    r = client.post("/fhir/risk-assessment", json=bundle, headers=FHIR)
    assert r.status_code == 422, r.text
    said = " ".join(i["diagnostics"] for i in r.json()["issue"])
    assert "age: the patient's age on the checkup's day is outside 20-100, the ages of the models" in said
    assert "Input should be" not in said


def test_an_operation_outcome_in_a_collection_bundle_is_said(client):
    bundle = to_bundle(dict(EXAMPLE_RECORD, age=54))
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    bundle["entry"].append({"resource": outcome})
    r = client.post("/fhir/risk-assessment", json=bundle, headers=FHIR)
    assert r.status_code == 200 and _assessments(r)
    said = " ".join(i.get("diagnostics", "") for e in r.json()["entry"] for i in e["resource"].get("issue", []))
    assert "holds an OperationOutcome (error: timeout) beside the data: the data sent may be incomplete" in said


def test_one_page_of_a_searchset_is_said_and_an_information_outcome_is_not(client):
    bundle = to_bundle(dict(EXAMPLE_RECORD, age=54))
    bundle["type"] = "searchset"
    bundle["link"] = [{"relation": "next", "url": "https://ehr.example/fhir/Observation?page=2"}]
    remark = {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]}
    bundle["entry"].append({"resource": remark, "search": {"mode": "outcome"}})
    r = client.post("/fhir/risk-assessment", json=bundle, headers=FHIR)
    assert r.status_code == 200 and _assessments(r)
    said = " ".join(i.get("diagnostics", "") for e in r.json()["entry"] for i in e["resource"].get("issue", []))
    assert "is one page of the search results: the data sent may be incomplete" in said
    assert "beside the data" not in said
