"""FHIR Observations to the canonical record: LOINC mapping, newest usable value, units."""

import copy

import pytest

from features.fhir import FhirInputError, read_bundle, to_bundle
from features.schema import EXAMPLE_RECORD


def _obs(bundle: dict, loinc: str) -> dict:
    return next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == loinc
    )


def _add(bundle: dict, resource: dict) -> dict:
    bundle["entry"].append({"resource": resource})
    return bundle


def _quantity_obs(
    oid: str,
    loinc: str,
    value,
    unit: str | None,
    when: str = "2025-06-02",
    status: str = "final",
    subject: str = "Patient/example-0001",
) -> dict:
    quantity = {"value": value}
    if unit:
        quantity.update(unit=unit, system="http://unitsofmeasure.org", code=unit)
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


def test_round_trip_of_the_example_record():
    record = dict(EXAMPLE_RECORD, history_hypertension=1, on_statin=1)
    got = read_bundle(to_bundle(record)).record
    for name in (
        "sex",
        "age",
        "sbp",
        "dbp",
        "fasting_glucose",
        "ldl",
        "hdl",
        "triglycerides",
        "serum_creatinine",
        "urine_protein",
        "smoking_status",
        "height_cm",
        "weight_kg",
        "waist_cm",
        "history_hypertension",
        "on_statin",
        "family_history_cvd",
        "drinking",
        "activity_days_per_week",
    ):
        assert got[name] == pytest.approx(record[name]), name
    assert got["exam_date"] == record["exam_date"]
    # The record's 0s are written as refuted Conditions, not-taken statements, "no family history".
    for name in ("history_stroke", "on_diabetes_medication", "family_history_diabetes"):
        assert record[name] == 0 and got[name] == 0, name
    # Absence of a Condition is not evidence of absence: a field the record leaves missing stays missing.
    got = read_bundle(to_bundle({k: v for k, v in record.items() if k != "history_stroke"})).record
    assert "history_stroke" not in got


def test_newest_final_or_amended_value_wins():
    bundle = to_bundle(EXAMPLE_RECORD)
    _add(bundle, _quantity_obs("old", "8480-6", 180, "mm[Hg]", when="2020-01-01"))
    _add(bundle, _quantity_obs("newer-prelim", "8480-6", 150, "mm[Hg]", when="2025-12-01", status="preliminary"))
    _add(bundle, _quantity_obs("newer-error", "8480-6", 151, "mm[Hg]", when="2025-12-02", status="entered-in-error"))
    _add(bundle, _quantity_obs("newest", "8480-6", 128, "mm[Hg]", when="2025-11-30T09:00:00+09:00", status="amended"))
    got = read_bundle(bundle)
    assert got.record["sbp"] == 128
    assert got.sources["sbp"] == "Observation/newest"
    assert got.ignored == 2
    assert got.record["exam_date"] == "2025-11-30"


def test_blood_pressure_panel_components():
    bundle = to_bundle({k: v for k, v in EXAMPLE_RECORD.items() if k not in ("sbp", "dbp")})
    _add(
        bundle,
        {
            "resourceType": "Observation",
            "id": "bp",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "effectiveDateTime": "2025-06-02",
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": 141,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": 92,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
            ],
        },
    )
    got = read_bundle(bundle)
    assert (got.record["sbp"], got.record["dbp"]) == (141, 92)
    assert "Observation/bp" in got.basis


@pytest.mark.parametrize(
    "loinc,value,unit,field,expected",
    [
        ("1558-6", 6.0, "mmol/L", "fasting_glucose", 108.1),
        ("2093-3", 5.2, "mmol/L", "total_cholesterol", 201.1),
        ("2571-8", 1.7, "mmol/L", "triglycerides", 150.6),
        ("2160-0", 88.4, "umol/L", "serum_creatinine", 1.0),
        ("2160-0", 88.4, "µmol/L", "serum_creatinine", 1.0),
        ("14682-9", 106, "umol/L", "serum_creatinine", 1.2),
        ("718-7", 140, "g/L", "hemoglobin", 14.0),
        ("8302-2", 1.72, "m", "height_cm", 172.0),
        ("29463-7", 70000, "g", "weight_kg", 70.0),
    ],
)
def test_units_are_converted(loinc, value, unit, field, expected):
    bundle = _add(to_bundle(EXAMPLE_RECORD), _quantity_obs("x", loinc, value, unit, when="2025-07-01"))
    assert read_bundle(bundle).record[field] == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize(
    "loinc,value,unit,field",
    [
        ("2160-0", 88.4, "mmol/L", "serum_creatinine"),  # creatinine in mmol/L: a unit we do not convert
        ("1558-6", 108, "g/L", "fasting_glucose"),
        ("8480-6", 120, "kPa", "sbp"),
        ("2093-3", 200, None, "total_cholesterol"),  # no unit at all is never guessed
    ],
)
def test_unknown_or_missing_units_leave_the_field_missing_with_a_warning(loinc, value, unit, field):
    # Dated as the example checkup, so the bad value would otherwise replace the good one.
    base = {k: v for k, v in EXAMPLE_RECORD.items() if k != field}
    bundle = _add(to_bundle(base), _quantity_obs("bad-unit", loinc, value, unit, when="2025-06-02"))
    got = read_bundle(bundle)
    assert field not in got.record  # never read in a wrong unit, and the patient is not refused
    (warning,) = got.warnings
    assert warning.location == "Observation/bad-unit"
    assert loinc in warning.message and "unit" in warning.message and str(value) not in warning.message


def test_mmol_glucose_is_never_read_as_mg_dl():
    bundle = _add(to_bundle(EXAMPLE_RECORD), _quantity_obs("g", "1558-6", 7.0, "mmol/L", when="2025-07-01"))
    assert read_bundle(bundle).record["fasting_glucose"] > 100


def test_another_patients_observation_is_left_out_with_a_warning():
    # Contract section 3: only a bundle that cannot describe its person is refused; the other
    # patient's value is never read.
    bundle = _add(to_bundle(EXAMPLE_RECORD), _quantity_obs("y", "8480-6", 99, "mm[Hg]", subject="Patient/other"))
    got = read_bundle(bundle)
    assert got.record["sbp"] == EXAMPLE_RECORD["sbp"]
    [warning] = [w for w in got.warnings if "different patient" in w.message]
    assert warning.expressions == ["Observation/y.subject"]


def test_patient_gender_and_birth_date_are_required():
    bundle = to_bundle(EXAMPLE_RECORD)
    patient = bundle["entry"][0]["resource"]
    patient["gender"] = "unknown"
    del patient["birthDate"]
    with pytest.raises(FhirInputError) as e:
        read_bundle(bundle)
    assert {i.location.split(".")[-1] for i in e.value.issues} == {"gender", "birthDate"}


def test_no_patient_is_a_precondition_failure():
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"] = bundle["entry"][1:]
    with pytest.raises(FhirInputError) as e:
        read_bundle(bundle)
    assert e.value.status == 412


def test_age_at_the_exam_date():
    bundle = to_bundle(EXAMPLE_RECORD)
    bundle["entry"][0]["resource"]["birthDate"] = "1971-06-03"  # one day short of 54 on 2025-06-02
    assert read_bundle(bundle).record["age"] == 53


def test_coded_answers():
    bundle = to_bundle(dict(EXAMPLE_RECORD, urine_protein=4, smoking_status=2))
    got = read_bundle(bundle).record
    assert (got["urine_protein"], got["smoking_status"]) == (4, 2)
    text_dipstick = copy.deepcopy(bundle)
    obs = _obs(text_dipstick, "20454-5")
    obs["valueCodeableConcept"] = {"text": "Trace"}
    assert read_bundle(text_dipstick).record["urine_protein"] == 2
    unknown_smoking = copy.deepcopy(bundle)
    _obs(unknown_smoking, "72166-2")["valueCodeableConcept"] = {
        "coding": [{"system": "http://snomed.info/sct", "code": "266927001"}]
    }
    assert "smoking_status" not in read_bundle(unknown_smoking).record


def test_icd10_conditions_and_atc_medications():
    bundle = to_bundle(EXAMPLE_RECORD)
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/example-0001"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "c2",
            "subject": {"reference": "Patient/example-0001"},
            "verificationStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]
            },
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I63.9"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "MedicationStatement",
            "id": "m1",
            "status": "active",
            "subject": {"reference": "Patient/example-0001"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C08CA01"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "MedicationStatement",
            "id": "m2",
            "status": "stopped",
            "subject": {"reference": "Patient/example-0001"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
        },
    )
    got = read_bundle(bundle).record
    assert got["history_diabetes"] == 1 and got["on_antihypertensive"] == 1
    # A refuted Condition is a "no"; a stopped statement says nothing about now (the example's 0 stays).
    assert got["history_stroke"] == 0
    assert (
        "on_diabetes_medication"
        not in read_bundle(
            {**bundle, "entry": [e for e in bundle["entry"] if not e["resource"].get("id", "").endswith("-no")]}
        ).record
    )


def test_data_absent_reason_is_missing_not_an_error():
    bundle = to_bundle({k: v for k, v in EXAMPLE_RECORD.items() if k != "ldl"})
    _add(
        bundle,
        {
            "resourceType": "Observation",
            "id": "no-ldl",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "13457-7"}]},
            "dataAbsentReason": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}
                ]
            },
        },
    )
    assert "ldl" not in read_bundle(bundle).record
