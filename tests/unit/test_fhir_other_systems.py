"""FHIR as other systems send it: questionnaire answers dated apart from the exam, batch-responses,
conditional references, time zones, coronary codes, a relative's relationship, ended courses,
panels, system OIDs, and answers written as Korean labs print them."""

from __future__ import annotations

import copy

import pytest

from features.fhir import read_bundle, to_bundle
from tests.unit.test_fhir_history import SUBJECT, _add, _observation, _record, three_checkups

SNOMED = "http://snomed.info/sct"


def _messages(checkup) -> str:
    return " | ".join(f"{w.location}: {w.message}" for w in checkup.warnings)


def _smoking(oid: str, when: str, code: str = "449868002") -> dict:
    return _observation(oid, "72166-2", when, valueCodeableConcept={"coding": [{"system": SNOMED, "code": code}]})


def _condition(cid: str, system: str, code: str, onset: str = "2020-01-01") -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": SUBJECT,
        "code": {"coding": [{"system": system, "code": code}]},
        "onsetDateTime": onset,
    }


# --- questionnaire answers join a checkup, never make one -----------------------------------------


def test_an_answer_given_before_the_exam_belongs_to_it():
    # The NHIS questionnaire is often answered online days before the exam.
    bundle = _add(to_bundle(_record("2025-05-20", 54, smoking_status=None)), _smoking("q", "2025-05-09"))
    got = read_bundle(bundle)
    assert [r["exam_date"] for r in got.records] == ["2025-05-20"]
    assert got.record["smoking_status"] == 3 and got.sources["smoking_status"] == "Observation/q"


def test_an_answer_recorded_after_the_checkup_is_left_out_and_said():
    # A smoking status refreshed at a later clinic visit is no checkup: the checkup stays the newest.
    bundle = _add(to_bundle(three_checkups()), _smoking("later", "2026-11-25"))
    got = read_bundle(bundle)
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15", "2025-05-20"]
    assert got.sources.get("smoking_status") != "Observation/later"
    assert "Observation/later: this questionnaire answer is dated on no checkup visit" in _messages(got)


def test_the_latest_answer_within_a_visit_wins_over_one_given_before_it():
    bundle = to_bundle(_record("2025-05-20", 54, smoking_status=None))
    _add(bundle, _smoking("before", "2025-05-01", code="449868002"))  # current
    _add(bundle, _smoking("on-the-day", "2025-05-21", code="8517006"))  # former
    got = read_bundle(bundle)
    assert got.record["smoking_status"] == 2 and got.sources["smoking_status"] == "Observation/on-the-day"


# --- Bundles other systems send ------------------------------------------------------------------


def test_a_batch_response_is_read_through_its_searchsets():
    plain = to_bundle(three_checkups())
    patient, *others = plain["entry"]
    half = len(others) // 2
    bundle = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {**patient, "response": {"status": "200 OK"}},
            {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": others[:half]}},
            {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": others[half:]}},
            {"response": {"status": "500 Internal Server Error"}},
            {"request": {"method": "DELETE", "url": "Observation/gone"}},  # a history's deletion: nothing to say
        ],
    }
    got = read_bundle(bundle)
    assert got.records == read_bundle(plain).records
    said = _messages(got)
    assert "Bundle.entry[3].response: a request of the batch failed (status 500)" in said
    assert "entry[4]" not in said


def test_a_malformed_resource_type_or_an_overflowing_number_is_a_warning():
    bundle = to_bundle(_record("2025-05-20", 54))
    bundle["entry"].append({"resource": {"resourceType": 5}})
    bundle["entry"].append({"resource": "not a resource"})
    _add(bundle, _observation("huge", "8480-6", "2025-05-20", valueQuantity={"value": 10**400, "code": "mm[Hg]"}))
    _add(bundle, _observation("days", "89555-7", "2025-05-20", valueInteger=10**400))
    got = read_bundle(bundle)
    said = _messages(got)
    assert "not a FHIR R4 resource type" in said and "its resource is not a FHIR resource" in said
    assert "Observation/huge" in said and "Observation/days" in said
    assert got.record["sbp"] == _record("2025-05-20", 54)["sbp"]


def test_a_conditional_reference_finds_the_patient_by_identifier():
    bundle = to_bundle(_record("2025-05-20", 54))
    patient = bundle["entry"][0]["resource"]
    patient["identifier"] = [{"system": "http://hospital.example.kr/mrn", "value": "12345"}]
    mine = _observation("mine", "8480-6", "2025-05-21", valueQuantity={"value": 151, "code": "mm[Hg]"})
    mine["subject"] = {"reference": "Patient?identifier=http://hospital.example.kr/mrn%7C12345"}
    other = copy.deepcopy(mine)
    other.update(id="theirs", subject={"reference": "Patient?identifier=http://hospital.example.kr/mrn|99999"})
    no_system = copy.deepcopy(mine)  # "|12345": an identifier without a system, which this one has
    no_system.update(id="no-system", subject={"reference": "Patient?identifier=%7C12345"})
    by_name = copy.deepcopy(mine)
    by_name.update(id="by-name", subject={"reference": "Patient?name=Kim"})  # not checkable: not this patient
    for resource in (mine, other, no_system, by_name):
        _add(bundle, resource)
    got = read_bundle(bundle)
    assert got.record["sbp"] == 151 and got.sources["sbp"] == "Observation/mine"
    said = _messages(got)
    assert "Observation/theirs.subject" in said and "Observation/by-name.subject" in said
    assert "Observation/no-system.subject" in said


def test_the_same_instant_is_the_same_day_whatever_offset_it_is_written_with():
    def exam(when: str, zone: str = "Asia/Seoul") -> str:
        bundle = to_bundle(_record("2025-05-20", 54))
        for entry in bundle["entry"][1:]:
            if entry["resource"]["resourceType"] == "Observation":
                entry["resource"]["effectiveDateTime"] = when
        return read_bundle(bundle, time_zone=zone).record["exam_date"]

    assert exam("2025-05-20T07:40:00+09:00") == exam("2025-05-19T22:40:00Z") == "2025-05-20"
    assert exam("2025-05-19T22:40:00Z", zone="UTC") == "2025-05-19"
    assert exam("2025-05-20") == "2025-05-20"  # a date is a day, in any zone


# --- history: what counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "system,code",
    [
        (SNOMED, "401303003"),  # STEMI
        (SNOMED, "401314000"),  # NSTEMI
        (SNOMED, "1755008"),  # old myocardial infarction
        ("http://hl7.org/fhir/sid/icd-10", "Z95.5"),  # coronary stent
        ("http://hl7.org/fhir/sid/icd-10", "Z95.1"),  # coronary bypass graft
        ("urn:oid:2.16.840.1.113883.6.3", "I21.9"),  # ICD-10 by its OID
        ("urn:oid:2.16.840.1.113883.6.90", "I25.2"),  # ICD-10-CM by its OID
        (SNOMED, "432504007"),  # cerebral infarction
    ],
)
def test_coronary_and_cerebrovascular_codes_are_history(system, code):
    got = read_bundle(_add(to_bundle(_record("2025-05-20", 54)), _condition("c", system, code)))
    field = "history_stroke" if code == "432504007" else "history_heart_disease"
    assert got.record[field] == 1, code


def _family(fid: str, relationship: dict, snomed: str = "44054006") -> dict:
    return {
        "resourceType": "FamilyMemberHistory",
        "id": fid,
        "status": "completed",
        "patient": SUBJECT,
        "relationship": relationship,
        "condition": [{"code": {"coding": [{"system": SNOMED, "code": snomed}]}}],
    }


ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


@pytest.mark.parametrize(
    "relationship,counted",
    [
        ({"coding": [{"system": ROLE, "code": "MTH"}]}, True),
        ({"coding": [{"system": ROLE, "code": "HBRO"}]}, True),
        ({"coding": [{"system": SNOMED, "code": "72705000"}]}, True),  # mother
        ({"text": "어머니"}, True),
        ({"text": "natural mother"}, True),
        ({"coding": [{"system": "urn:oid:2.16.840.1.113883.5.111", "code": "FTH"}]}, True),
        ({"coding": [{"system": ROLE, "code": "WIFE"}]}, False),
        ({"coding": [{"system": ROLE, "code": "SPS"}]}, False),
        ({"coding": [{"system": ROLE, "code": "MTHINLAW"}]}, False),
        ({"coding": [{"system": ROLE, "code": "GRFTH"}]}, False),
        ({"text": "neighbour"}, False),
    ],
)
def test_family_history_is_a_parents_or_a_siblings(relationship, counted):
    got = read_bundle(_add(to_bundle(_record("2025-05-20", 54)), _family("f", relationship)))
    assert (got.record.get("family_history_diabetes") == 1) is counted
    assert ("FamilyMemberHistory/f.relationship" in _messages(got)) is not counted


def _statement(sid: str, atc: str, **period) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": "active",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.73", "code": atc}]},
        **period,
    }


def test_an_active_statement_whose_period_has_ended_is_not_treatment_after_its_end():
    bundle = to_bundle(_record("2025-05-20", 54))
    _add(bundle, _statement("amlodipine", "C08CA01", effectivePeriod={"start": "2018-01-01", "end": "2018-03-31"}))
    _add(bundle, _statement("metformin", "A10BA02", effectivePeriod={"start": "2024-01-01"}))  # the ATC OID
    got = read_bundle(bundle)
    assert "on_antihypertensive" not in got.record and got.record["on_diabetes_medication"] == 1
    assert "MedicationStatement/amlodipine.effectivePeriod.end: is past" in _messages(got)


# --- results and answers as labs write them --------------------------------------------------------


def test_a_panel_that_groups_its_members_is_not_named_as_unread():
    bundle = to_bundle(_record("2025-05-20", 54))
    panel = _observation("lipids", "57698-3", "2025-05-20", hasMember=[{"reference": "Observation/x"}])
    got = read_bundle(_add(bundle, panel))
    assert "Observation/lipids" not in _messages(got)


@pytest.mark.parametrize(
    "text,grade", [("음성(\u2212)", 1), ("（－）", 1), ("Neg.", 1), ("양성(+)", 3), ("Positive", 3), ("양성(2+)", 4)]
)
def test_dipstick_texts_as_labs_print_them(text, grade):
    bundle = to_bundle(_record("2025-05-20", 54, urine_protein=None))
    got = read_bundle(_add(bundle, _observation("u", "20454-5", "2025-05-20", valueString=text)))
    assert got.record["urine_protein"] == grade


@pytest.mark.parametrize("code", ["160603005", "160604004", "56578002", "230059006"])
def test_smokers_by_amount_are_current_smokers(code):
    got = read_bundle(
        _add(to_bundle(_record("2025-05-20", 54, smoking_status=None)), _smoking("s", "2025-05-20", code))
    )
    assert got.record["smoking_status"] == 3


def test_an_ended_course_reads_a_partial_end_as_its_last_day_and_a_placeholder_as_no_end():
    def on_treatment(**period) -> bool:
        bundle = _add(to_bundle(_record("2025-05-20", 54)), _statement("s", "C08CA01", effectivePeriod=period))
        return read_bundle(bundle).record.get("on_antihypertensive") == 1

    assert on_treatment(start="2024-01-01", end="2025-05")  # through May 2025: still taken on 20 May
    assert not on_treatment(start="2024-01-01", end="2025-04")
    assert on_treatment(start="2024-01-01", end="0001-01-01")  # a placeholder ends nothing
    assert on_treatment(start="2024-01-01", end="2023-06-30")  # an end before the start: a typo


def test_a_search_failed_or_paged_inside_a_batch_response_is_said():
    plain = to_bundle(three_checkups())
    patient, *others = plain["entry"]
    paged = {"resourceType": "Bundle", "type": "searchset", "total": 400, "entry": others}
    failed = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "too-costly"}]}}
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [patient, {"resource": paged}, {"resource": failed}],
    }
    said = _messages(read_bundle(bundle))
    assert "Bundle.entry[1].resource: is one page of the search results" in said
    assert "Bundle.entry[2].resource: the FHIR server's search failed (OperationOutcome, error: too-costly)" in said


@pytest.mark.parametrize(
    "value,unit,grade",
    [(0, "mg/dL", 1), (15, "mg/dL", 2), (30, "mg/dL", 3), (100, "mg/dl", 4), (3.0, "g/L", 5), (2000, "mg/dL", 6)],
)
@pytest.mark.parametrize("loinc", ["5804-0", "50561-0"])
def test_a_strip_protein_reported_as_its_pad_value_is_a_dipstick_grade(loinc, value, unit, grade):
    # Analysers report the strip's protein pad in mg/dL under these codes, not as a grade.
    bundle = to_bundle(_record("2025-05-20", 54, urine_protein=None))
    q = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    got = read_bundle(_add(bundle, _observation("u", loinc, "2025-05-20", valueQuantity=q)))
    assert got.record["urine_protein"] == grade and got.sources["urine_protein"] == "Observation/u"


def test_a_strip_protein_without_a_readable_unit_is_left_missing_and_said():
    bundle = to_bundle(_record("2025-05-20", 54, urine_protein=None))
    got = read_bundle(_add(bundle, _observation("u", "5804-0", "2025-05-20", valueQuantity={"value": 30})))
    assert got.record.get("urine_protein") is None
    assert "Observation/u: LOINC 5804-0 (urine_protein)" in _messages(got)
    got = read_bundle(
        _add(
            to_bundle(_record("2025-05-20", 54, urine_protein=None)),
            _observation("t", "5804-0", "2025-05-20", valueString="2+"),
        )
    )
    assert got.record["urine_protein"] == 4


@pytest.mark.parametrize("loinc", ["2089-1", "96259-7"])
def test_ldl_under_the_codes_laboratories_send_is_read(loinc):
    bundle = to_bundle(_record("2025-05-20", 54, ldl=None))
    q = {"value": 165, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    got = read_bundle(_add(bundle, _observation("ldl", loinc, "2025-05-20", valueQuantity=q)))
    assert got.record["ldl"] == 165 and got.sources["ldl"] == "Observation/ldl"


def test_a_blood_pressure_sent_as_a_bare_integer_is_read_in_mmhg_and_other_measures_are_not():
    bundle = to_bundle(_record("2025-05-20", 54, sbp=None, fasting_glucose=None))
    _add(bundle, _observation("s", "8480-6", "2025-05-20", valueInteger=142))
    got = read_bundle(_add(bundle, _observation("g", "1558-6", "2025-05-20", valueInteger=7)))
    assert got.record["sbp"] == 142 and got.sources["sbp"] == "Observation/s"
    assert got.record.get("fasting_glucose") is None  # mg/dL or mmol/L? not guessed
    assert "Observation/g: LOINC 1558-6 (fasting_glucose) has no numeric valueQuantity" in _messages(got)
