"""FHIR and CDS Hooks with a person's history: several checkups in, the newest scored with the earlier
ones as history (the same probability as /score and batch), unreadable values as warnings (200, never
4xx), and a stale newest checkup (no number on the card, a warning in FHIR)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import uuid

import pandas as pd
import pytest

from features.fhir import read_bundle, to_bundle
from models.outcomes import OUTCOME_SPECS
from serving.batch import score_frame
from serving.fhir_in import validate_records
from serving.scoring import Scorer
from tests.unit.test_fhir_history import three_checkups

FHIR = {"Content-Type": "application/fhir+json"}


def spread_labs(bundle: dict, day: str = "2023-05-15") -> dict:
    """The visit of `day` with its labs dated one and two days later (one visit over three days)."""
    bundle = copy.deepcopy(bundle)
    for e in bundle["entry"]:
        obs = e["resource"]
        if obs["resourceType"] != "Observation" or obs["effectiveDateTime"] != day:
            continue
        code = obs["code"]["coding"][0]["code"]
        if code in ("1558-6", "2093-3", "2571-8", "2085-9", "13457-7", "718-7"):
            obs["effectiveDateTime"] = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        elif code in ("2160-0", "1920-8", "1742-6", "2324-2", "20454-5"):
            later = dt.date.fromisoformat(day) + dt.timedelta(days=2)
            obs["effectiveDateTime"] = later.isoformat() + "T09:00:00+09:00"
    return bundle


def cds_body(bundle: dict) -> dict:
    patient = bundle["entry"][0]["resource"]
    rest = [e for e in bundle["entry"][1:]]
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://his.example.org/fhir",
        "context": {"userId": "Practitioner/1", "patientId": patient["id"]},
        "prefetch": {
            "patient": patient,
            "observations": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [e for e in rest if e["resource"]["resourceType"] == "Observation"],
            },
            # Family history and statements ride with the conditions, as in test_cds.cds_call.
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [e for e in rest if e["resource"]["resourceType"] not in ("Observation", "MedicationRequest")],
            },
            "medicationRequests": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [e for e in rest if e["resource"]["resourceType"] == "MedicationRequest"],
            },
        },
    }


def _applicable(result: dict) -> dict[str, float]:
    return {o: r["probability"] for o, r in result["risks"].items() if r["applicable"]}


def _fhir_probabilities(response) -> dict[str, float]:
    by_snomed = {s.snomed: o for o, s in OUTCOME_SPECS.items()}
    out = {}
    for e in response.json()["entry"]:
        if e["resource"]["resourceType"] == "RiskAssessment":
            p = e["resource"]["prediction"][0]
            out[by_snomed[p["outcome"]["coding"][0]["code"]]] = p["probabilityDecimal"]
    return out


def test_three_visits_score_as_score_and_batch(client, service_home):
    _, model, version = service_home
    records = three_checkups()
    bundle = spread_labs(to_bundle(records))

    # /score with the three records: the newest's result uses the two earlier ones as history.
    score = client.post("/score", json={"checkups": records}).json()["results"]
    newest = score[-1]
    assert newest["history_checkups"] == 2
    expected = _applicable(newest)
    assert expected

    # FHIR -> records -> the scorer: the same probabilities to 1e-9.
    checkup = read_bundle(bundle)
    assert [r["exam_date"] for r in checkup.records] == [r["exam_date"] for r in records]
    fhir_records, dropped = validate_records(checkup)
    assert dropped == []
    got = Scorer(model, version).score_records(fhir_records, explain=True, top_k=5)[-1]
    assert got["history_checkups"] == 2
    assert _applicable(got).keys() == expected.keys()
    for o, p in expected.items():
        assert _applicable(got)[o] == pytest.approx(p, abs=1e-9), o

    # Without the history the newest checkup scores differently: history is really used.
    alone = Scorer(model, version).score_records([fhir_records[-1]], explain=True, top_k=5)[0]
    assert any(abs(_applicable(alone).get(o, p) - p) > 1e-6 for o, p in expected.items())

    # The batch path (the whole-frame scorer of `checkup-risk score`) on the same three rows.
    frame = pd.DataFrame(records)
    frame["exam_date"] = pd.to_datetime(frame["exam_date"])
    batch = score_frame(model, frame, version).sort_values("exam_date").iloc[-1]
    for o, p in expected.items():
        assert batch[f"{o}_risk"] == pytest.approx(p, abs=1e-6), o  # booster float32 margin vs float64 SHAP sum

    # The HTTP routes: RiskAssessment probabilities (rounded to 6 decimals) and the CDS suggestion.
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    probabilities = _fhir_probabilities(r)
    assert probabilities.keys() == expected.keys()
    for o, p in expected.items():
        assert probabilities[o] == pytest.approx(p, abs=1e-6), o
    notes = [
        n["text"]
        for e in r.json()["entry"]
        if e["resource"]["resourceType"] == "RiskAssessment"
        for n in e["resource"]["note"]
    ]
    assert any("2 earlier checkup" in n for n in notes)


def test_cds_card_uses_the_history(post_cds, client):
    records = three_checkups()
    body = cds_body(spread_labs(to_bundle(records)))
    r = post_cds(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert "이전 검진 2회" in card["detail"] and "2 earlier checkup(s)" in card["detail"]
    expected = _applicable(client.post("/score", json={"checkups": records}).json()["results"][-1])
    for action in card["suggestions"][0]["actions"]:
        ra = action["resource"]
        code = ra["prediction"][0]["outcome"]["coding"][0]["code"]
        outcome = next(o for o, s in OUTCOME_SPECS.items() if s.snomed == code)
        assert ra["prediction"][0]["probabilityDecimal"] == pytest.approx(expected[outcome], abs=1e-6)
        # The basis names Observations of every visit used.
        days = {ref for ref in (b["reference"] for b in ra["basis"]) if "-c0-" in ref}
        assert days, "the oldest visit's Observations are part of the basis"


def _with_unknown_dipstick(bundle: dict) -> dict:
    bundle = copy.deepcopy(bundle)
    urine = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "20454-5"
        and e["resource"]["effectiveDateTime"] == "2025-05-20"
    )
    urine["valueCodeableConcept"] = {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "999999001", "display": "Urine protein finding we do not know"}
        ]
    }
    return bundle, urine["id"]


def test_unknown_dipstick_code_is_a_warning_not_a_4xx(client, post_cds):
    records = three_checkups()
    bundle, urine_id = _with_unknown_dipstick(to_bundle(records))

    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    entries = [e["resource"] for e in r.json()["entry"]]
    assert entries[0]["resourceType"] == "RiskAssessment"
    outcome = entries[-1]
    assert outcome["resourceType"] == "OperationOutcome"
    reading = [i for i in outcome["issue"] if i.get("expression") == [f"Observation/{urine_id}"]]
    assert reading and reading[0]["severity"] == "warning" and "20454-5" in reading[0]["diagnostics"]
    for ra in entries:
        if ra["resourceType"] == "RiskAssessment":
            assert {"reference": f"Observation/{urine_id}"} not in ra["basis"]
    # The field is missing, exactly as /score without it.
    without = [dict(r) for r in records]
    without[-1]["urine_protein"] = None
    expected = _applicable(client.post("/score", json={"checkups": without}).json()["results"][-1])
    got = _fhir_probabilities(r)
    assert got.keys() == expected.keys()
    for o, p in expected.items():
        assert got[o] == pytest.approx(p, abs=1e-6), o

    card_response = post_cds(cds_body(bundle))
    assert card_response.status_code == 200, card_response.text
    (card,) = card_response.json()["cards"]
    assert "보낸 자료에 대한 참고 · Notes on the data sent" in card["detail"]
    assert f"Observation/{urine_id}" in card["detail"]


def test_implausible_value_in_an_earlier_checkup_is_left_out_with_a_warning(client):
    records = three_checkups()
    bundle = to_bundle(records)
    old_sbp = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "8480-6"
        and e["resource"]["effectiveDateTime"] == "2021-05-10"
    )
    old_sbp["valueQuantity"]["value"] = 420
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    # The value is never echoed; its digits may still occur inside a probability or an id.
    assert not re.search(r"(?<![\w.])420(?![\w.])", r.text)
    outcome = r.json()["entry"][-1]["resource"]
    assert any(
        i.get("expression") == [f"Observation/{old_sbp['id']}"] and "left missing" in i["diagnostics"]
        for i in outcome["issue"]
    )
    # The earlier checkup stays in the history, without its SBP (as the same checkups sent to /score).
    records[0]["sbp"] = None
    expected = _applicable(client.post("/score", json={"checkups": records}).json()["results"][-1])
    got = _fhir_probabilities(r)
    for o, p in expected.items():
        assert got[o] == pytest.approx(p, abs=1e-6), o


def _stale_records() -> list[dict]:
    # Newest checkup five years before today: past the default 730-day limit.
    today = dt.date.today()
    out = []
    for k, years_ago in enumerate((9, 7, 5)):
        day = dt.date(today.year - years_ago, 3, 2)
        record = three_checkups()[k]
        record["exam_date"] = day.isoformat()
        record["age"] = day.year - 1971
        out.append(record)
    return out


def test_stale_patient_gets_no_number_on_the_card(post_cds):
    records = _stale_records()
    r = post_cds(cds_body(to_bundle(records)))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert card["indicator"] == "info" and len(card["summary"]) < 140
    assert records[-1]["exam_date"] in card["summary"]
    assert "1년 위험 미표시" in card["summary"] and "too old" in card["summary"]
    assert "%" not in card["summary"] + card["detail"]  # no risk number anywhere
    assert "suggestions" not in card and "links" not in card
    assert "오래되었습니다" in card["detail"] and "out of date" in card["detail"]
    # Its age in whole years, as the staleness warning on the same card says it ("4 years old").
    exam, today = dt.date.fromisoformat(records[-1]["exam_date"]), dt.date.today()
    years = today.year - exam.year - ((today.month, today.day) < (exam.month, exam.day))  # calendar years
    assert f"{years}년 전 · {years} years ago" in card["detail"], card["detail"]
    assert f"is {years} years old" in card["detail"]


def test_stale_patient_is_said_in_the_fhir_warnings(client):
    records = _stale_records()
    r = client.post("/fhir/risk-assessment", content=json.dumps(to_bundle(records)), headers=FHIR)
    assert r.status_code == 200, r.text
    entries = [e["resource"] for e in r.json()["entry"]]
    outcome = entries[-1]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(
        "stale" in i["diagnostics"] and records[-1]["exam_date"] in i["diagnostics"]
        for i in outcome["issue"]
        if i["severity"] == "warning"
    )
    for ra in entries[:-1]:
        assert any("staleness limit" in n["text"] for n in ra["note"])


def test_discovery_asks_for_history_and_both_medication_kinds(client):
    (service,) = client.get("/cds-services").json()["services"]
    prefetch = service["prefetch"]
    observations = prefetch["observations"]
    assert "_sort=-date" in observations and "_count=1000" in observations
    for code in ("85354-9", "55284-4", "14647-2", "14771-0", "20454-5", "72166-2"):
        assert f"http://loinc.org|{code}" in observations
    assert prefetch["medications"].startswith("MedicationStatement?patient={{context.patientId}}")
    # Completed (dispensed) requests count for a year after they were written, so they are asked for too.
    assert prefetch["medicationRequests"] == "MedicationRequest?patient={{context.patientId}}&status=active,completed"
    assert prefetch["conditions"] == "Condition?patient={{context.patientId}}"
    # CDS Hooks 2.0 templates take only context / user tokens: no date arithmetic in any of them.
    assert all("today" not in t for t in prefetch.values())


def test_medication_request_in_prefetch_counts(post_cds):
    records = three_checkups()
    bundle = to_bundle(records)
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "id": "mr-amlo",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/{bundle['entry'][0]['resource']['id']}"},
                "authoredOn": "2024-01-05",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C08CA01"}]},
            }
        }
    )
    (card,) = post_cds(cds_body(bundle)).json()["cards"]
    # On an antihypertensive: hypertension is not predicted as a new diagnosis.
    assert "고혈압약 복용 중" in card["detail"] or "on antihypertensive medication" in card["detail"]


@pytest.mark.parametrize("conditions", ["garbage", {"resourceType": "Bundle", "type": 7}, [1, 2]])
def test_an_unreadable_optional_prefetch_is_left_out_with_a_warning(post_cds, conditions):
    body = cds_body(to_bundle(three_checkups()))
    body["prefetch"]["conditions"] = conditions
    r = post_cds(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert "prefetch.conditions" in card["detail"]


def test_one_condition_sent_bare_instead_of_a_bundle_is_read(post_cds):
    records = three_checkups()
    body = cds_body(to_bundle(records))
    body["prefetch"]["conditions"] = {
        "resourceType": "Condition",
        "id": "dm",
        "subject": {"reference": f"Patient/{body['context']['patientId']}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
    }
    r = post_cds(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    predicted = {
        a["resource"]["prediction"][0]["outcome"]["coding"][0]["code"] for a in card["suggestions"][0]["actions"]
    }
    assert OUTCOME_SPECS["diabetes"].snomed not in predicted  # a known diabetes is never predicted as new


def test_a_searchset_with_a_malformed_total_still_gives_its_conditions(post_cds, client):
    body = cds_body(to_bundle(three_checkups()))
    body["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": "many",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "dm",
                    "subject": {"reference": f"Patient/{body['context']['patientId']}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
                }
            }
        ],
    }
    r = post_cds(body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    predicted = {
        a["resource"]["prediction"][0]["outcome"]["coding"][0]["code"] for a in card["suggestions"][0]["actions"]
    }
    assert OUTCOME_SPECS["diabetes"].snomed not in predicted and "prefetch.conditions" in card["detail"]
    # The same fault in a Bundle sent to /fhir: read, with a warning.
    bundle = to_bundle(three_checkups()) | {"total": "many"}
    r = client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)
    assert r.status_code == 200, r.text
    issues = r.json()["entry"][-1]["resource"]["issue"]
    assert any("is not a valid FHIR R4 Bundle" in i["diagnostics"] for i in issues)
