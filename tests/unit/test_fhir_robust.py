"""Robust FHIR reading (contract section 3): Patients referred to by fullUrl, resources that are not
valid FHIR R4, implausible values, undated and partially dated Observations, conflicting values of
one time, LOINC under its OID. A value that cannot be used leaves its field missing with a warning;
only what cannot describe a person refuses the patient."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from features.fhir import FhirInputError, read_bundle, read_patient
from features.schema import BY_NAME
from serving.fhir_in import validate_fhir

TODAY = dt.date(2025, 7, 1)
WHEN = "2025-06-10"
PATIENT_URL = "urn:uuid:6f1c1b2e-3a4d-4c5e-9f10-111213141516"
LOINC = "http://loinc.org"


def _obs(oid: str, loinc: str, value: float | str, unit: str, subject: str = "Patient/p1", **more) -> dict:
    resource = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": subject},
        "effectiveDateTime": WHEN,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }
    resource.update(more)
    return resource


def _base(subject: str = "Patient/p1", patient_url: str | None = None, patient_id: str | None = "p1") -> dict:
    """The outside tester's base(): a man born 1970-03-15, height, weight, BP 128/82, glucose 98."""
    patient = {"resourceType": "Patient", "gender": "male", "birthDate": "1970-03-15"}
    if patient_id:
        patient["id"] = patient_id
    entries = [{"resource": patient, **({"fullUrl": patient_url} if patient_url else {})}]
    for resource in (
        _obs("height", "8302-2", 172, "cm", subject),
        _obs("weight", "29463-7", 70, "kg", subject),
        _obs("sbp", "8480-6", 128, "mm[Hg]", subject),
        _obs("dbp", "8462-4", 82, "mm[Hg]", subject),
        _obs("glucose", "1558-6", 98, "mg/dL", subject),
    ):
        entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _add(bundle: dict, resource: dict, full_url: str | None = None) -> dict:
    bundle["entry"].append({"resource": resource, **({"fullUrl": full_url} if full_url else {})})
    return bundle


def _where(got, text: str) -> list[str]:
    """Every resource path a warning containing `text` names (one warning may name several)."""
    return [path for w in got.warnings if text in w.message for path in w.expressions]


# H1: references through the Patient entry's fullUrl.


def test_observations_may_refer_to_the_patient_by_its_urn_uuid_full_url():
    got = read_bundle(_base(subject=PATIENT_URL, patient_url=PATIENT_URL), today=TODAY)
    assert got.record["sbp"] == 128 and got.record["fasting_glucose"] == 98
    assert got.patient == "Patient/p1" and got.record["person_id"] == "p1"
    assert got.warnings == []


def test_a_patient_without_id_is_known_by_its_full_url():
    got = read_bundle(_base(subject=PATIENT_URL, patient_url=PATIENT_URL, patient_id=None), today=TODAY)
    assert got.record["person_id"] == "6f1c1b2e-3a4d-4c5e-9f10-111213141516"
    assert got.patient == PATIENT_URL and got.record["sbp"] == 128


def test_a_patient_known_by_its_full_url_may_be_referred_to_by_its_key():
    key = PATIENT_URL.removeprefix("urn:uuid:")
    got = read_bundle(_base(subject=f"Patient/{key}", patient_url=PATIENT_URL, patient_id=None), today=TODAY)
    assert got.record["person_id"] == key and got.record["sbp"] == 128


def test_an_absolute_full_url_is_the_patient_too():
    url = "http://his.example/fhir/Patient/p7"
    got = read_bundle(_base(subject=url, patient_url=url, patient_id=None), today=TODAY)
    assert got.record["person_id"] == "p7" and got.patient == "Patient/p7" and got.record["dbp"] == 82
    # Patient/p7 and the absolute URL both name it.
    bundle = _add(_base(subject="Patient/p7", patient_url=url, patient_id=None), _obs("hb", "718-7", 14, "g/dL", url))
    assert read_bundle(bundle, today=TODAY).record["hemoglobin"] == 14


def test_a_reference_to_another_patient_is_never_read():
    bundle = _add(
        _base(subject=PATIENT_URL, patient_url=PATIENT_URL),
        _obs("other", "718-7", 14, "g/dL", "urn:uuid:00000000-0000-0000-0000-000000000000"),
    )
    got = read_bundle(bundle, today=TODAY)
    assert "hemoglobin" not in got.record and got.record["sbp"] == 128
    assert [(w.location, w.message) for w in got.warnings] == [
        ("Observation/other.subject", "this resource refers to a different patient: not used")
    ]


def test_a_patient_with_neither_id_nor_full_url_is_refused():
    with pytest.raises(FhirInputError) as e:
        read_bundle(_base(patient_id=None), today=TODAY)
    assert "needs an id" in e.value.issues[0].message


# M2: a resource that is not valid FHIR R4 is left out, never the patient.


@pytest.mark.parametrize(
    "resource, problem",
    [
        (_obs("hb", "718-7", "abc", "g/dL"), "valueQuantity.value is not a number"),
        (_obs("hb", "718-7", 14, "g/dL", colour="red"), "colour is not an element"),
        (_obs("hb", "718-7", 14, "g/dL", valueString="high"), "more than one of the choices"),
    ],
)
def test_an_invalid_resource_is_left_out_with_a_plain_warning(resource, problem):
    got = read_bundle(_add(_base(), resource), today=TODAY)
    assert "hemoglobin" not in got.record and got.record["sbp"] == 128
    [warning] = got.warnings
    assert warning.location == "Observation/hb"
    assert problem in warning.message and "not used" in warning.message
    assert "regex" not in warning.message and "Value error" not in warning.message


def test_a_blood_pressure_panel_with_an_unreadable_component_is_left_out():
    bundle = _base()
    del bundle["entry"][3:5]  # the separate SBP and DBP
    panel = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": WHEN,
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": "x"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 80}},
        ],
    }
    got = read_bundle(_add(bundle, panel), today=TODAY)
    assert "sbp" not in got.record and "dbp" not in got.record and got.record["fasting_glucose"] == 98
    assert _where(got, "component.0.valueQuantity.value is not a number") == ["Observation/bp"]


def test_an_invalid_resource_without_id_is_named_by_its_full_url():
    resource = _obs("x", "718-7", "abc", "g/dL")
    del resource["id"]
    got = read_bundle(_add(_base(), resource, "urn:uuid:hb-1"), today=TODAY)
    assert _where(got, "is not a number") == ["urn:uuid:hb-1"]


def test_a_patient_invalid_where_it_is_read_refuses_with_a_plain_message():
    bundle = _base()
    bundle["entry"][0]["resource"]["identifier"] = "p1"  # must be a list
    with pytest.raises(FhirInputError) as e:
        read_bundle(bundle, today=TODAY)
    [issue] = e.value.issues
    assert issue.location == "Patient/p1" and "identifier" in issue.message and "no person can be read" in issue.message


@pytest.mark.parametrize(
    "element, value",
    [("active", "maybe"), ("address", [{"line": "123 Main"}]), ("telecom", {"value": "1"}), ("name", "Kim")],
)
def test_a_patient_malformed_elsewhere_is_read_with_a_warning(element, value):
    bundle = _base()
    bundle["entry"][0]["resource"][element] = value
    got = read_bundle(bundle, today=TODAY)
    assert got.record["sex"] == "M" and got.record["sbp"] == 128
    [warning] = _where(got, "is not valid FHIR R4")
    assert warning == "Patient/p1" and "123 Main" not in str(got.warnings)


def test_sex_at_birth_is_read_when_gender_is_neither():
    bundle = _base()
    patient = bundle["entry"][0]["resource"]
    patient["gender"] = "other"
    patient["extension"] = [
        {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"}
    ]
    got = read_bundle(bundle, today=TODAY)
    assert got.record["sex"] == "F" and _where(got, "sex assigned at birth") == ["Patient/p1.gender"]
    patient["extension"][0]["valueCode"] = "UNK"
    with pytest.raises(FhirInputError):
        read_bundle(bundle, today=TODAY)
    patient["extension"], patient["address"] = 5, "bad"  # malformed where birthsex is looked for
    with pytest.raises(FhirInputError):
        read_bundle(bundle, today=TODAY)


@pytest.mark.parametrize("deceased", [{"deceasedBoolean": True}, {"deceasedDateTime": "2025-06-20"}])
def test_a_deceased_patient_is_said(deceased):
    bundle = _base()
    bundle["entry"][0]["resource"].update(deceased)
    assert _where(read_bundle(bundle, today=TODAY), "deceased") == ["Patient/p1.deceased"]
    assert not _where(read_bundle(_base(), today=TODAY), "deceased")


@pytest.mark.parametrize(
    "system", ["https://loinc.org", "http://loinc.org/", "http://www.loinc.org", "HTTP://LOINC.ORG"]
)
def test_loinc_spelled_another_way_is_loinc(system):
    bundle = _base()
    for entry in bundle["entry"][1:]:
        entry["resource"]["code"]["coding"][0]["system"] = system
    got = read_bundle(bundle, today=TODAY)
    assert got.record["sbp"] == 128 and got.record["fasting_glucose"] == 98 and got.warnings == []


def test_observations_with_no_code_read_here_are_named_in_one_warning():
    bundle = _base()
    _add(bundle, _obs("pulse", "8867-4", 70, "/min"))
    _add(bundle, _obs("local", "X-1", 3, "mg/dL") | {"code": {"coding": [{"system": "urn:local", "code": "X-1"}]}})
    got = read_bundle(bundle, today=TODAY)
    [warning] = [w for w in got.warnings if "no LOINC code this service reads" in w.message]
    assert warning.paths == ("Observation/pulse", "Observation/local")


def test_observations_contained_in_a_report_are_read():
    bundle = _base()
    glucose = next(e for e in bundle["entry"] if e["resource"].get("id") == "glucose")
    bundle["entry"].remove(glucose)
    inner = {k: v for k, v in glucose["resource"].items() if k != "subject"} | {"value": None}
    inner.pop("value")
    inner["valueQuantity"] = {**inner["valueQuantity"], "value": 104}
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": {"text": "Checkup labs"},
        "subject": {"reference": "Patient/p1"},
        "contained": [inner],
        "result": [{"reference": "#glucose"}],
    }
    got = read_bundle(_add(bundle, report), today=TODAY)
    assert got.record["fasting_glucose"] == 104 and got.sources["fasting_glucose"] == "DiagnosticReport/dr1#glucose"


@pytest.mark.parametrize(
    "container",
    [
        {"resourceType": "Immunization", "id": "imm", "status": "completed", "patient": {"reference": "Patient/p2"}},
        {
            "resourceType": "DiagnosticReport",
            "id": "dr-err",
            "status": "entered-in-error",
            "code": {"text": "Checkup labs"},
            "subject": {"reference": "Patient/p1"},
        },
        {
            "resourceType": "DiagnosticReport",
            "id": "dr-p2",
            "status": "final",
            "code": {"text": "Checkup labs"},
            "subject": {"reference": "Patient/p2"},
        },
    ],
)
def test_contained_results_of_another_person_or_a_retracted_report_are_not_read(container):
    inner = {k: v for k, v in _obs("tc", "2093-3", 250, "mg/dL").items() if k != "subject"}
    got = read_bundle(_add(_base(), {**container, "contained": [inner]}), today=TODAY)
    assert "total_cholesterol" not in got.record


def test_a_period_with_only_an_end_dates_the_observation():
    bundle = _base()
    sbp = bundle["entry"][3]["resource"]
    del sbp["effectiveDateTime"]
    sbp["effectivePeriod"] = {"end": WHEN}
    got = read_bundle(bundle, today=TODAY)
    assert got.record["sbp"] == 128 and got.warnings == []


def test_the_service_check_of_a_bundle_leaves_invalid_resources_to_the_reader():
    bundle = _add(_base(), _obs("hb", "718-7", "abc", "g/dL"))
    validate_fhir(bundle, where="Bundle")  # no refusal: the reader leaves it out
    assert _where(read_bundle(bundle, today=TODAY), "is not a number") == ["Observation/hb"]
    # An unknown resource type is left out with a warning too.
    unknown = _add(copy.deepcopy(bundle), {"resourceType": "NoSuchResource"})
    validate_fhir(unknown, where="Bundle")
    assert _where(read_bundle(unknown, today=TODAY), "not a FHIR R4 resource type")
    # The Bundle's own structure and an invalid Patient prefetch still refuse.
    with pytest.raises(FhirInputError) as e:
        validate_fhir(dict(copy.deepcopy(bundle), type="not-a-type-list", entry="x"), where="Bundle")
    assert any(i.location == "Bundle.entry" for i in e.value.issues)
    with pytest.raises(FhirInputError) as e:
        validate_fhir({"resourceType": "Patient", "id": "p1", "active": "maybe"}, where="prefetch.patient")
    assert [(i.location, i.message) for i in e.value.issues] == [("prefetch.patient.active", "is not true or false")]


# M3: implausible after conversion, the same whether or not another value exists.


def test_a_mis_united_value_is_left_missing_with_the_conversion_shown():
    bundle = _base()
    bundle["entry"][5]["resource"]["valueQuantity"].update(value=135, unit="mmol/L", code="mmol/L")
    got = read_bundle(bundle, today=TODAY)
    assert "fasting_glucose" not in got.record
    [warning] = got.warnings
    f = BY_NAME["fasting_glucose"]
    assert warning.location == "Observation/glucose"
    assert warning.message == (
        f"LOINC 1558-6 (fasting_glucose): the value sent in mmol/L, converted to mg/dL, is outside the plausible "
        f"{f.low:g}-{f.high:g} mg/dL (a typo, or a value in another unit?): left missing"
    )
    assert "135" not in warning.message  # warnings never echo submitted values


@pytest.mark.parametrize("with_valid_value", [False, True])
def test_an_implausible_value_is_a_warning_whether_or_not_another_is_there(with_valid_value):
    bundle = _base()
    if not with_valid_value:
        del bundle["entry"][3]  # the SBP 128
    got = read_bundle(_add(bundle, _obs("sbp-400", "8480-6", 400, "mm[Hg]")), today=TODAY)
    assert got.record.get("sbp") == (128 if with_valid_value else None)
    assert _where(got, "sent in mm[Hg] is outside the plausible") == ["Observation/sbp-400"]
    assert all("400" not in w.message for w in got.warnings)


def test_a_plausible_converted_value_is_read():
    bundle = _base()
    bundle["entry"][5]["resource"]["valueQuantity"].update(value=5.5, unit="mmol/L", code="mmol/L")
    got = read_bundle(bundle, today=TODAY)
    assert got.record["fasting_glucose"] == pytest.approx(99.09, abs=0.01) and got.warnings == []


# M1: no date at all.


def test_an_observation_without_any_date_is_left_out_with_a_warning():
    undated = _obs("chol", "2093-3", 210, "mg/dL")
    del undated["effectiveDateTime"]
    got = read_bundle(_add(_base(), undated), today=TODAY)
    assert "total_cholesterol" not in got.record and got.record["exam_date"] == WHEN
    assert _where(got, "has no date (effective[x] or issued)") == ["Observation/chol"]


def test_issued_still_dates_an_observation():
    dated = _obs("chol", "2093-3", 210, "mg/dL", issued="2025-06-11T08:00:00Z")
    del dated["effectiveDateTime"]
    got = read_bundle(_add(_base(), dated), today=TODAY)
    assert got.record["total_cholesterol"] == 210 and got.warnings == []


def test_an_undated_observation_of_no_code_read_is_no_warning():
    other = _obs("other", "12345-6", 1, "1")
    del other["effectiveDateTime"]
    assert read_bundle(_add(_base(), other), today=TODAY).warnings == []


# L1: two different values at the same time.


@pytest.mark.parametrize("first, second", [(150, 120), (120, 150)])
def test_two_different_values_at_the_same_time_average_whatever_their_order(first, second):
    """Search results have no order: the same patient must not get a different risk on the next page view."""
    bundle = _base()
    del bundle["entry"][3]
    bundle = _add(_add(bundle, _obs("a", "8480-6", first, "mm[Hg]")), _obs("b", "8480-6", second, "mm[Hg]"))
    got = read_bundle(bundle, today=TODAY)
    assert got.record["sbp"] == 135
    [warning] = got.warnings
    assert warning.location == "Observation/a"
    assert warning.message == (
        "2 results of LOINC 8480-6 (sbp) at the same time (Observation/a, Observation/b) have different values "
        "and none is a newer revision: their mean is used"
    )
    assert str(first) not in warning.message and str(second) not in warning.message  # never the values


@pytest.mark.parametrize("order", [("neg", "two"), ("two", "neg")])
def test_two_different_grades_at_the_same_time_take_the_higher_whatever_their_order(order):
    grades = {
        "neg": _obs("neg", "20454-5", 0, "1", valueCodeableConcept={"text": "Negative"}),
        "two": _obs("two", "20454-5", 0, "1", valueCodeableConcept={"text": "2+"}),
    }
    bundle = _base()
    for name in order:
        del grades[name]["valueQuantity"]
        bundle = _add(bundle, grades[name])
    got = read_bundle(bundle, today=TODAY)
    assert got.record["urine_protein"] == 4  # 2+
    assert got.sources["urine_protein"] == "Observation/two"
    [warning] = got.warnings
    assert warning.message.endswith("none is a newer revision: the higher grade is used")


T8 = "2025-06-10T08:00:00+09:00"


def _glucose(oid: str, value: float, **marks) -> dict:
    return _obs(oid, "1558-6", value, "mg/dL", effectiveDateTime=T8, **marks)


@pytest.mark.parametrize(
    "results, expected",
    [
        # A issued after B, B a later version than C, A and C not comparable: the chain keeps A.
        (
            [
                _glucose("a", 100, issued="2025-06-12T00:00:00+09:00"),
                _glucose("b", 110, issued="2025-06-11T00:00:00+09:00", meta={"versionId": "2"}),
                _glucose("c", 130, meta={"versionId": "1"}),
            ],
            100,
        ),
        # B over A by issued, A over C by version, C over B by status: a circle, every result combined.
        (
            [
                _glucose("a", 100, issued="2025-06-11T00:00:00+09:00", meta={"versionId": "2"}),
                _glucose("b", 110, issued="2025-06-12T00:00:00+09:00"),
                _glucose("c", 130, meta={"versionId": "1"}, status="amended"),
            ],
            pytest.approx(340 / 3),
        ),
        # A superseded version never enters the mean of the results that remain.
        (
            [
                _glucose("old", 90, meta={"versionId": "1"}),
                _glucose("new", 100, meta={"versionId": "2"}),
                _glucose("other", 130),
            ],
            115,
        ),
        # The same result sent twice counts once.
        ([_glucose("x", 100), _glucose("x", 100), _glucose("z", 130)], 115),
    ],
)
@pytest.mark.parametrize("order", [1, -1])
def test_revision_marks_that_order_only_some_pairs_never_crash_or_depend_on_order(results, expected, order):
    bundle = _base()
    del bundle["entry"][5]  # the base glucose
    for resource in results[::order]:
        _add(bundle, resource)
    got = read_bundle(bundle, today=TODAY)
    assert got.record["fasting_glucose"] == expected
    assert all("100" not in w.message and "130" not in w.message for w in got.warnings)


def test_a_tie_of_a_whole_number_field_rounds_the_mean():
    """Activity days of 2 and 5: 4 (3.5 rounded), not the higher, which would be the reassuring one."""
    days = [
        _obs(oid, "89555-7", n, "d/wk", valueQuantity={"value": n, "unit": "/wk"}) for oid, n in (("a", 2), ("b", 5))
    ]
    bundle = _base()
    for resource in days:
        _add(bundle, resource)
    got = read_bundle(bundle, today=TODAY)
    assert got.record["activity_days_per_week"] == 4
    assert got.warnings[0].message.endswith("their mean, rounded, is used")


def _revisions(first: dict, second: dict) -> list[dict]:
    """Glucose 120 as first sent and 108 as revised, both taken at the same time, `first` / `second`
    saying what marks the revision."""
    sent = _obs("g1", "1558-6", 120, "mg/dL", effectiveDateTime="2025-06-10T08:00:00+09:00", **first)
    revised = _obs("g1", "1558-6", 108, "mg/dL", effectiveDateTime="2025-06-10T08:00:00+09:00", **second)
    return [sent, revised]


@pytest.mark.parametrize(
    "first, second",
    [
        ({"meta": {"versionId": "1"}}, {"meta": {"versionId": "2"}, "status": "amended"}),
        ({"issued": "2025-06-10T12:00:00+09:00"}, {"issued": "2025-06-12T12:00:00+09:00", "status": "corrected"}),
        ({"meta": {"versionId": "1"}}, {"meta": {"versionId": "2"}}),
        ({}, {"status": "corrected"}),
        # Only the first carries issued, only the second a version: neither decides, the status does.
        ({"issued": "2025-06-10T12:00:00+09:00"}, {"meta": {"versionId": "2"}, "status": "corrected"}),
    ],
)
@pytest.mark.parametrize("order", [1, -1])
def test_a_revised_result_of_the_same_time_wins_whatever_the_order(first, second, order):
    bundle = _base()
    del bundle["entry"][5]  # the base glucose
    for resource in _revisions(first, second)[::order]:
        _add(bundle, resource)
    got = read_bundle(bundle, today=TODAY)
    assert got.record["fasting_glucose"] == 108
    [warning] = got.warnings
    assert "is a newer revision" in warning.message and "120" not in warning.message
    assert "2025-06" not in warning.message and 'versionId": ' not in warning.message  # no submitted value


def test_the_same_value_twice_or_in_two_units_is_no_warning():
    bundle = _add(_base(), _obs("sbp-again", "8480-6", 128, "mm[Hg]"))
    bundle = _add(bundle, _obs("glucose-molar", "14771-0", 5.44, "mmol/L"))  # 98.0 mg/dL
    assert read_bundle(bundle, today=TODAY).warnings == []


# L4: partial dates.


@pytest.mark.parametrize("when, day", [("2025", "2025-01-01"), ("2025-05", "2025-05-01")])
def test_a_partial_observation_date_is_read_as_its_first_day_with_a_warning(when, day):
    bundle = _base()
    for entry in bundle["entry"][1:]:
        entry["resource"]["effectiveDateTime"] = when
    got = read_bundle(bundle, today=TODAY)
    assert got.record["exam_date"] == day and got.record["sbp"] == 128
    assert len(_where(got, "is a year or a month only")) == 5
    assert _where(got, "approximate")[0] == "Observation/height.effectiveDateTime"


def test_a_partial_birth_date_is_read_with_a_warning():
    bundle = _base()
    bundle["entry"][0]["resource"]["birthDate"] = "1970"
    got = read_bundle(bundle, today=TODAY)
    assert got.record["age"] == 55
    assert [(w.location, w.message) for w in got.warnings] == [
        ("Patient/p1.birthDate", "is a year or a month only: read as its first day, so the age is approximate")
    ]


# L3: LOINC under its OID.


def test_loinc_coded_under_its_oid_is_read():
    bundle = _base()
    del bundle["entry"][3]
    sbp = _obs("sbp-oid", "8480-6", 150, "mm[Hg]")
    sbp["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"
    got = read_bundle(_add(bundle, sbp), today=TODAY)
    assert got.record["sbp"] == 150 and got.sources["sbp"] == "Observation/sbp-oid"


def test_read_patient_takes_the_patient_full_url():
    bundle = _base(subject=PATIENT_URL)
    patient = bundle["entry"][0]["resource"]
    resources = [(e["resource"], e.get("fullUrl")) for e in bundle["entry"][1:]]
    assert read_patient(patient, resources, today=TODAY, patient_url=PATIENT_URL).record["sbp"] == 128
    # Without it, the urn:uuid names no known patient: nothing of it is read, and each is named.
    got = read_patient(patient, resources, today=TODAY)
    assert "sbp" not in got.record
    [warning] = got.warnings
    assert "these 5 resources refer to a different patient" in warning.message and len(warning.expressions) == 5


def test_a_non_resource_entry_is_left_out_with_a_warning():
    bundle = _base()
    patient = bundle["entry"][0]["resource"]
    resources = [(e["resource"], e.get("fullUrl")) for e in bundle["entry"][1:]] + [("junk", None), (None, None)]
    got = read_patient(patient, resources, today=TODAY)
    assert got.record["sbp"] == 128
    [warning] = got.warnings  # one warning for both
    assert warning.message == "is not a FHIR resource: it is not used" and len(warning.expressions) == 2


def test_the_same_warning_about_many_resources_is_one_line_naming_them():
    """Fifteen results dated by a month only are one line in a CDS card, not fifteen."""
    bundle = _base()
    for k in range(3):
        _add(bundle, _obs(f"hb{k}", "718-7", 14, "g/dL"))
    for entry in bundle["entry"][1:]:
        entry["resource"]["effectiveDateTime"] = "2025-05"
    got = read_bundle(bundle, today=TODAY)
    [warning] = got.warnings
    assert warning.location.startswith("Observation/height.effectiveDateTime, Observation/weight.effectiveDateTime")
    assert warning.location.endswith(" and 3 more") and len(warning.expressions) == 8


@pytest.mark.parametrize(("birth", "said"), [("not-a-date", "is not a date"), (None, "is missing")])
def test_a_birth_date_that_cannot_be_read_says_why(birth, said):
    bundle = _base()
    if birth is None:
        del bundle["entry"][0]["resource"]["birthDate"]
    else:
        bundle["entry"][0]["resource"]["birthDate"] = birth
    with pytest.raises(FhirInputError) as err:
        read_bundle(bundle, today=TODAY)
    assert any(i.location.endswith(".birthDate") and i.message.startswith(said) for i in err.value.issues)


def test_results_not_final_are_left_out_with_one_warning_naming_them():
    # An Observation with no status had been dropped without a word; a preliminary one too.
    no_status = _obs("tc", "2093-3", 300, "mg/dL")
    del no_status["status"]
    bundle = _add(_add(_base(), no_status), _obs("ldl", "18262-6", 190, "mg/dL", status="preliminary"))
    _add(bundle, _obs("hdl", "2085-9", 40, "mg/dL", status="cancelled"))  # not a result: no word
    got = read_bundle(bundle, today=TODAY)
    assert "total_cholesterol" not in got.record and "ldl" not in got.record
    [warning] = [w for w in got.warnings if "not used (" in w.message]
    assert warning.expressions == ["Observation/tc.status", "Observation/ldl.status"]
    assert "these 2 Observations are not used (no status: 1, preliminary: 1)" in warning.message
    assert got.record["sbp"] == 128  # the final results are read as ever
    # A status that is no ObservationStatus code is never echoed (it may hold anything).
    odd = _add(_base(), _obs("x", "2093-3", 300, "mg/dL", status="Kim 010-1234"))
    [warning] = [w for w in read_bundle(odd, today=TODAY).warnings if "not used (" in w.message]
    assert "another status: 1" in warning.message and "Kim" not in warning.message


def test_a_glucose_not_marked_fasting_is_named_and_not_read_as_fasting():
    bundle = _base()
    del bundle["entry"][5]  # the fasting glucose
    _add(bundle, _obs("random", "2345-7", 180, "mg/dL"))
    got = read_bundle(bundle, today=TODAY)
    assert "fasting_glucose" not in got.record
    [warning] = [w for w in got.warnings if "not marked fasting" in w.message]
    assert warning.expressions == ["Observation/random.code"] and "1558-6" in warning.message


def test_the_patient_is_known_by_a_versioned_reference_or_its_identifier():
    bundle = _base()
    bundle["entry"][0]["resource"]["identifier"] = [{"system": "urn:oid:1.2.410.1", "value": "MRN-1"}]
    _add(bundle, _obs("hb", "718-7", 14, "g/dL", "Patient/p1/_history/2"))  # a version of the same Patient
    mine = _obs("tc", "2093-3", 190, "mg/dL")
    mine["subject"] = {"identifier": {"system": "urn:oid:1.2.410.1", "value": "MRN-1"}}
    theirs = _obs("ldl", "18262-6", 150, "mg/dL")
    theirs["subject"] = {"identifier": {"system": "urn:oid:1.2.410.1", "value": "MRN-2"}}
    got = read_bundle(_add(_add(bundle, mine), theirs), today=TODAY)
    assert got.record["hemoglobin"] == 14 and got.record["total_cholesterol"] == 190
    assert "ldl" not in got.record  # another patient's identifier: never read
    assert _where(got, "different patient") == ["Observation/ldl.subject"]


def test_a_later_visit_without_blood_tests_is_said():
    bundle = _add(_base(), _obs("later-height", "8302-2", 172, "cm", effectiveDateTime="2025-06-30"))
    got = read_bundle(bundle, today=TODAY)
    assert got.record["exam_date"] == "2025-06-30" and "fasting_glucose" not in got.record
    [warning] = _where(got, "has no blood or urine test")
    assert warning == "Observation/later-height"
    assert not _where(read_bundle(_base(), today=TODAY), "has no blood or urine test")


def test_lab_results_a_visit_window_after_the_vital_signs_are_said():
    """Vital signs on one day, the labs eight days later: the labs are the newest visit, scored without
    a blood pressure, and the warning says where the blood pressure went (not that it was never sent)."""
    bundle = _base()
    bundle["entry"][5]["resource"]["effectiveDateTime"] = "2025-06-18"  # the glucose
    got = read_bundle(bundle, today=TODAY)
    assert got.record["exam_date"] == "2025-06-18" and "sbp" not in got.record
    assert [r.get("sbp") for r in got.records] == [128, None]
    [warning] = [w for w in got.warnings if "has no blood pressure or body measures" in w.message]
    assert warning.location == "Observation/glucose"
    assert warning.message == (
        "the newest visit (2025-06-18) has no blood pressure or body measures, so it is scored without them; the "
        "blood pressure and body measures of 2025-06-10 count only as its history (a visit spans 7 days). If both "
        "were one checkup, send them dated within one visit window"
    )


def test_a_condition_dated_after_the_checkup_scored_counts_and_is_said():
    """Hypertension diagnosed after the newest checkup is known now: never predicted as new, but said,
    since the caller may have meant another checkup or the onset may be a typo."""
    condition = {
        "resourceType": "Condition",
        "id": "htn",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        "onsetDateTime": "2025-06-20",
    }
    got = read_bundle(_add(_base(), condition), today=TODAY)
    assert got.record["history_hypertension"] == 1
    assert _where(got, "is dated after the checkup scored (2025-06-10)") == ["Condition/htn"]
    condition["onsetDateTime"] = "2024-01-01"
    assert not _where(read_bundle(_add(_base(), condition), today=TODAY), "is dated after the checkup")


@pytest.mark.parametrize(
    "onset_age, counts_at_the_first, warned",
    [(40, True, None), (54.5, False, None), (60, True, "is more than the patient's age today")],
)
def test_onset_age_dates_a_condition(onset_age, counts_at_the_first, warned):
    """Born 1970: hypertension since age 40 counts at a 2020 checkup, since 54.5 (mid-2024) it does not;
    an onset age past today's age is impossible, read as undated (counts everywhere) and said."""
    bundle = _base()
    _add(bundle, _obs("old-sbp", "8480-6", 126, "mm[Hg]", effectiveDateTime="2020-06-10"))
    condition = {
        "resourceType": "Condition",
        "id": "htn",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        "onsetAge": {"value": onset_age, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
    }
    got = read_bundle(_add(bundle, condition), today=TODAY)
    assert got.records[0]["exam_date"] == "2020-06-10"
    assert got.records[0].get("history_hypertension") == (1 if counts_at_the_first else None)
    assert got.record["history_hypertension"] == 1
    assert _where(got, warned or "onsetAge") == (["Condition/htn.onsetAge"] if warned else [])


def _htn(cid: str, **dates) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        **dates,
    }


def test_a_condition_already_on_record_before_the_checkup_is_not_said_again():
    """A second Condition of the same disease written after the checkup (a problem-list update) adds nothing."""
    bundle = _add(_add(_base(), _htn("old", onsetDateTime="2020-01-01")), _htn("new", recordedDate="2025-06-20"))
    assert not _where(read_bundle(bundle, today=TODAY), "is dated after the checkup")


def test_onset_age_comes_before_the_date_the_condition_was_written_down():
    """Onset at 40 (1970 + 40), written into the EMR in 2024: history at a 2020 checkup."""
    bundle = _add(_base(), _obs("old-sbp", "8480-6", 126, "mm[Hg]", effectiveDateTime="2020-06-10"))
    condition = _htn("htn", recordedDate="2024-03-01", onsetAge={"value": 40, "unit": "a"})
    got = read_bundle(_add(bundle, condition), today=TODAY)
    assert got.records[0]["exam_date"] == "2020-06-10" and got.records[0]["history_hypertension"] == 1


def test_a_condition_after_the_checkup_of_a_disease_already_treated_is_not_said():
    """An antihypertensive taken before the checkup already rules hypertension out: a Condition written
    after it adds nothing to say."""
    statement = {
        "resourceType": "MedicationStatement",
        "id": "aht",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C09AA02"}]},
        "effectiveDateTime": "2024-01-01",
    }
    bundle = _add(_add(_base(), statement), _htn("new", onsetDateTime="2025-06-20"))
    got = read_bundle(bundle, today=TODAY)
    assert got.record["on_antihypertensive"] == 1 and got.record["history_hypertension"] == 1
    assert not _where(got, "is dated after the checkup")
