"""A Patient with no usable checkup measurement (no Observation, only entered-in-error or cancelled
ones, only unreadable ones, only ones dated before 2000) is neither refused nor scored as a checkup
of today: /fhir/risk-assessment answers 200 with no RiskAssessment and an OperationOutcome saying
why; CDS answers one info card without any number."""

from __future__ import annotations

import copy
import json

import pytest

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from tests.service.test_cds_history import cds_body

FHIR = {"Content-Type": "application/fhir+json"}
SBP = "example-0001-obs-4"


def _sbp_index(bundle: dict) -> int:
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["id"] == SBP)


def patient_only() -> dict:
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"] = bundle["entry"][:1]
    return bundle


def only_sbp(**changes) -> dict:
    """The Patient and the systolic BP Observation alone, changed as given."""
    full = to_bundle(EXAMPLE_RECORD)
    sbp = copy.deepcopy(full["entry"][_sbp_index(full)])
    assert sbp["resource"]["code"]["coding"][0]["code"] == "8480-6"
    sbp["resource"].update(changes)
    return {**full, "entry": [full["entry"][0], sbp]}


def with_history_only() -> dict:
    """The Patient with Conditions, medicines and family history, but no Observation."""
    bundle = to_bundle(dict(EXAMPLE_RECORD, history_hypertension=1))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Observation"]
    return bundle


CASES = {
    "patient only": (patient_only, "no Observation was sent"),
    "entered in error": (lambda: only_sbp(status="entered-in-error"), "skipped for their status"),
    "cancelled": (lambda: only_sbp(status="cancelled"), "skipped for their status"),
    "unconvertible unit": (
        lambda: only_sbp(
            valueQuantity={"value": 17, "unit": "atm", "system": "http://unitsofmeasure.org", "code": "atm"}
        ),
        "gave no value",
    ),
    "dated 1998": (lambda: only_sbp(effectiveDateTime="1998-06-10"), "gave no value"),
    "history only": (with_history_only, "no Observation was sent"),
}


def _post_fhir(client, bundle: dict):
    return client.post("/fhir/risk-assessment", content=json.dumps(bundle), headers=FHIR)


@pytest.mark.parametrize("case", list(CASES))
def test_fhir_without_a_measurement_gives_no_risk_assessment(client, case):
    make, why = CASES[case]
    r = _post_fhir(client, make())
    assert r.status_code == 200, r.text
    resources = [e["resource"] for e in r.json()["entry"]]
    assert [x["resourceType"] for x in resources] == ["OperationOutcome"]
    first, *rest = resources[0]["issue"]
    assert first["severity"] == "warning" and first["code"] == "not-found"
    assert first["diagnostics"].startswith("No checkup measurement could be read")
    assert why in first["diagnostics"]
    # The service's model learned from synthetic people: every answer says so (contract section 5).
    assert any("synthetic" in i["diagnostics"].lower() for i in rest), rest
    if case in ("unconvertible unit", "dated 1998"):
        # Why the one Observation gave nothing is listed, naming it.
        assert any(i.get("expression", [""])[0].startswith(f"Observation/{SBP}") for i in rest), rest


def test_fhir_dated_1998_names_the_date(client):
    r = _post_fhir(client, only_sbp(effectiveDateTime="1998-06-10"))
    issues = r.json()["entry"][-1]["resource"]["issue"]
    assert any(i.get("expression") == [f"Observation/{SBP}.effectiveDateTime"] for i in issues), issues
    assert all("1998" not in i["diagnostics"] for i in issues)  # the value is never echoed


def test_fhir_with_one_usable_measurement_is_still_scored(client):
    r = _post_fhir(client, only_sbp())
    assert r.status_code == 200, r.text
    assert any(e["resource"]["resourceType"] == "RiskAssessment" for e in r.json()["entry"])


def test_fhir_refusals_that_describe_no_person_stay(client):
    bundle = only_sbp(effectiveDateTime="1998-06-10")
    del bundle["entry"][0]["resource"]["gender"]
    assert _post_fhir(client, bundle).status_code == 422


# --- CDS Hooks ---------------------------------------------------------------------------------------


def _cds_body(bundle: dict, observations: dict | None = None) -> dict:
    body = cds_body(bundle)
    if observations is not None:
        body["prefetch"]["observations"] = observations
    return body


def _no_checkup_card(r) -> dict:
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert card["indicator"] == "info" and len(card["summary"]) < 140
    assert "검진 결과 없음" in card["summary"] and "No checkup results to assess" in card["summary"]
    assert "%" not in card["summary"] + card["detail"]  # no risk number anywhere
    assert "suggestions" not in card and "links" not in card
    assert "평가할 검진 결과가 없습니다" in card["detail"] and "No checkup measurement" in card["detail"]
    return card


def test_cds_with_an_empty_searchset_gives_the_no_checkup_card(post_cds):
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    card = _no_checkup_card(post_cds(_cds_body(patient_only(), empty)))
    assert "no Observation was sent" in card["detail"]
    assert "High" not in card["summary"] and "위험 높음" not in card["summary"]


@pytest.mark.parametrize("case", ["entered in error", "unconvertible unit", "dated 1998", "history only"])
def test_cds_without_a_usable_measurement_gives_the_no_checkup_card(post_cds, case):
    make, why = CASES[case]
    card = _no_checkup_card(post_cds(_cds_body(make())))
    assert why in card["detail"]
    if case in ("unconvertible unit", "dated 1998"):
        assert f"Observation/{SBP}" in card["detail"]  # the value not read is listed


def test_cds_with_a_measurement_still_gives_a_risk_card(post_cds):
    r = post_cds(_cds_body(only_sbp()))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert "1-yr" in card["summary"]


def test_a_crossed_blood_pressure_leaves_both_values_out_not_the_patient(client):
    bundle = to_bundle(EXAMPLE_RECORD)
    for entry in bundle["entry"]:
        code = entry["resource"].get("code", {}).get("coding", [{}])[0].get("code")
        if code == "8462-4":  # DBP above the SBP of the same visit
            entry["resource"]["valueQuantity"]["value"] = EXAMPLE_RECORD["sbp"] + 10
    r = _post_fhir(client, bundle)
    assert r.status_code == 200, r.text
    kinds = [e["resource"]["resourceType"] for e in r.json()["entry"]]
    assert "RiskAssessment" in kinds
    issues = r.json()["entry"][-1]["resource"]["issue"]
    assert any("dbp is not lower than sbp" in i["diagnostics"] for i in issues), issues
    assert all(str(EXAMPLE_RECORD["sbp"] + 10) not in i["diagnostics"] for i in issues)
