"""FHIR to canonical records: checkups (visits) and their history, dated conditions and treatment,
and the answers and units that real systems send (read, or left missing with a warning)."""

from __future__ import annotations

import copy

import pytest

from features.fhir import FhirInputError, read_bundle, to_bundle
from features.schema import EXAMPLE_RECORD

PID = "example-0001"
SUBJECT = {"reference": f"Patient/{PID}"}


def _record(date: str, age: int, **changes) -> dict:
    # Only fields FHIR carries; the example's 0 flags cannot be written (absence is not evidence).
    base = {
        k: v for k, v in EXAMPLE_RECORD.items() if k not in ("drinking", "activity_days_per_week") and v not in (0,)
    }
    return dict(base, exam_date=date, age=age, **changes)


def three_checkups() -> list[dict]:
    """Three visits over four years; values differ so that a mix-up shows."""
    return [
        _record(
            "2021-05-10",
            50,
            sbp=122.0,
            dbp=78.0,
            fasting_glucose=96.0,
            total_cholesterol=190.0,
            ldl=110.0,
            hdl=52.0,
            triglycerides=120.0,
            weight_kg=74.0,
        ),
        _record(
            "2023-05-15",
            52,
            sbp=128.0,
            dbp=82.0,
            fasting_glucose=101.0,
            total_cholesterol=None,
            ldl=None,
            hdl=None,
            triglycerides=None,
            weight_kg=75.5,
        ),
        _record(
            "2025-05-20",
            54,
            sbp=136.0,
            dbp=86.0,
            fasting_glucose=109.0,
            total_cholesterol=214.0,
            ldl=138.0,
            hdl=47.0,
            triglycerides=171.0,
            weight_kg=78.1,
        ),
    ]


def _entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _add(bundle: dict, resource: dict) -> dict:
    bundle["entry"].append({"resource": resource})
    return bundle


def _observation(oid: str, loinc: str, when: str, **value) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        **value,
    }


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None}


def test_three_checkups_come_back_as_three_records_oldest_first():
    records = three_checkups()
    got = read_bundle(to_bundle(records))
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15", "2025-05-20"]
    assert got.record is got.records[-1]
    for want, have in zip(records, got.records, strict=True):
        assert have == pytest.approx(_comparable(want)), want["exam_date"]
    # Each record's age is the age on its own exam date.
    assert [r["age"] for r in got.records] == [50, 52, 54]
    # The basis names the resources of all three checkups.
    assert len({ref for ref in got.basis if ref.startswith("Observation/")}) == len(
        _entries(to_bundle(records), "Observation")
    )


def test_labs_spread_over_three_days_are_one_visit():
    records = three_checkups()
    bundle = to_bundle(records)
    # The middle visit's labs are dated one and two days after its vital signs.
    for obs in _entries(bundle, "Observation"):
        if obs["effectiveDateTime"] == "2023-05-15" and obs["code"]["coding"][0]["code"] in ("1558-6", "718-7"):
            obs["effectiveDateTime"] = "2023-05-16T08:30:00+09:00"
        if obs["effectiveDateTime"] == "2023-05-15" and obs["code"]["coding"][0]["code"] in ("2160-0", "1920-8"):
            obs["effectiveDateTime"] = "2023-05-17"
    got = read_bundle(bundle)
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15", "2025-05-20"]
    assert got.records[1]["fasting_glucose"] == 101.0
    assert got.records[1]["serum_creatinine"] == EXAMPLE_RECORD["serum_creatinine"]


def test_visit_window_is_configurable():
    bundle = to_bundle(_record("2025-05-20", 54))
    _add(
        bundle,
        _observation(
            "late-sbp", "8480-6", "2025-05-30", valueQuantity={"value": 150, "unit": "mmHg", "code": "mm[Hg]"}
        ),
    )
    # Ten days later is a new checkup under the default 7-day window ...
    assert [r["exam_date"] for r in read_bundle(bundle).records] == ["2025-05-20", "2025-05-30"]
    # ... and part of the same visit with a 14-day window, where the later value wins.
    got = read_bundle(bundle, visit_window_days=14)
    assert [r["exam_date"] for r in got.records] == ["2025-05-20"] and got.record["sbp"] == 150
    # The service reads the window once at start-up (CHECKUP_RISK_FHIR_VISIT_DAYS) and passes it in.
    from serving.settings import Settings

    days = Settings.from_env({"CHECKUP_RISK_FHIR_VISIT_DAYS": "14"}).fhir_visit_days
    assert len(read_bundle(bundle, visit_window_days=days).records) == 1


def test_window_is_anchored_at_the_first_day_not_chained():
    bundle = to_bundle(_record("2025-05-01", 54))
    for i, day in enumerate(("2025-05-05", "2025-05-09", "2025-05-13")):
        _add(bundle, _observation(f"bp{i}", "8480-6", day, valueQuantity={"value": 130 + i, "code": "mm[Hg]"}))
    got = read_bundle(bundle)
    # 05-01 .. 05-05 is one visit; 05-09 starts the next, which takes 05-13.
    assert [r["exam_date"] for r in got.records] == ["2025-05-01", "2025-05-09"]
    assert got.records[0]["sbp"] == 130 and got.record["sbp"] == 132


def test_newest_usable_value_wins_within_a_visit():
    bundle = to_bundle(_record("2025-05-20", 54))
    _add(
        bundle,
        _observation(
            "amended", "8480-6", "2025-05-22", status="amended", valueQuantity={"value": 131, "code": "mm[Hg]"}
        ),
    )
    prelim = _observation("prelim", "8480-6", "2025-05-23", valueQuantity={"value": 190, "code": "mm[Hg]"})
    prelim["status"] = "preliminary"
    _add(bundle, prelim)
    got = read_bundle(bundle)
    assert len(got.records) == 1 and got.record["sbp"] == 131 and got.sources["sbp"] == "Observation/amended"
    assert got.ignored == 1


def test_every_checkup_is_history_unless_a_window_is_asked_for():
    records = [_record("2017-03-01", 46), *three_checkups()]
    assert len(read_bundle(to_bundle(records)).records) == 4  # as every earlier row of a file
    got = read_bundle(to_bundle(records), history_window_years=5)
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15", "2025-05-20"]


def test_undated_observation_is_left_out_with_a_warning():
    # No effective[x] and no issued: the value may be years old, so it is never read as the newest's.
    bundle = to_bundle([_record("2023-05-15", 52), _record("2025-05-20", 54, hemoglobin=None)])
    undated = _observation("undated-hb", "718-7", "x", valueQuantity={"value": 13.1, "code": "g/dL"})
    del undated["effectiveDateTime"]
    _add(bundle, undated)
    got = read_bundle(bundle)
    assert "hemoglobin" not in got.record and got.records[0]["hemoglobin"] == EXAMPLE_RECORD["hemoglobin"]
    assert [(w.location, "has no date" in w.message) for w in got.warnings] == [("Observation/undated-hb", True)]


def test_condition_with_onset_after_the_first_visit_counts_only_for_later_visits():
    bundle = to_bundle(three_checkups())
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "htn",
            "subject": SUBJECT,
            "onsetDateTime": "2022-01-10",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "dm",
            "subject": SUBJECT,
            "onsetPeriod": {"start": "2023-05-15"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "lipid-undated",
            "subject": SUBJECT,
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E78.5"}]},
        },
    )
    # Diagnosed after the newest checkup: not history for any earlier one, but known now.
    _add(
        bundle,
        {
            "resourceType": "Condition",
            "id": "stroke",
            "subject": SUBJECT,
            "recordedDate": "2025-09-01",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I63.9"}]},
        },
    )
    first, second, newest = read_bundle(bundle).records
    assert "history_hypertension" not in first and second["history_hypertension"] == 1
    assert newest["history_hypertension"] == 1
    assert "history_diabetes" not in first and second["history_diabetes"] == 1  # onset on the exam day counts
    assert first["history_dyslipidemia"] == second["history_dyslipidemia"] == newest["history_dyslipidemia"] == 1
    assert "history_stroke" not in first and "history_stroke" not in second and newest["history_stroke"] == 1


def test_active_medication_request_counts_from_authored_on():
    bundle = to_bundle(three_checkups())
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "authoredOn": "2024-02-01",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C10AA05"}]},
    }
    _add(bundle, request)
    stopped = dict(copy.deepcopy(request), id="mr2", status="stopped")
    stopped["medicationCodeableConcept"]["coding"][0]["code"] = "A10BA02"
    _add(bundle, stopped)
    proposal = dict(copy.deepcopy(request), id="mr3", intent="proposal")
    proposal["medicationCodeableConcept"]["coding"][0]["code"] = "C09AA05"
    _add(bundle, proposal)
    got = read_bundle(bundle)
    assert [r.get("on_statin") for r in got.records] == [None, None, 1]
    assert got.sources["on_statin"] == "MedicationRequest/mr1"
    assert all("on_diabetes_medication" not in r and "on_antihypertensive" not in r for r in got.records)


def test_medication_request_through_a_medication_reference():
    bundle = to_bundle(_record("2025-05-20", 54))
    _add(
        bundle,
        {
            "resourceType": "Medication",
            "id": "amlodipine",
            "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C08CA01"}]},
        },
    )
    _add(
        bundle,
        {
            "resourceType": "MedicationRequest",
            "id": "mr",
            "status": "active",
            "intent": "order",
            "subject": SUBJECT,
            "medicationReference": {"reference": "Medication/amlodipine"},
        },
    )
    assert read_bundle(bundle).record["on_antihypertensive"] == 1


def test_round_trip_dates_conditions_and_medications_from_their_first_checkup():
    records = three_checkups()
    records[1]["history_hypertension"] = records[2]["history_hypertension"] = 1
    records[2]["on_statin"] = 1
    got = read_bundle(to_bundle(records)).records
    for want, have in zip(records, got, strict=True):
        assert have == pytest.approx(_comparable(want)), want["exam_date"]


def test_to_bundle_refuses_ages_that_no_birth_date_fits():
    records = three_checkups()
    records[0]["age"] = 40
    with pytest.raises(ValueError, match="birth date"):
        to_bundle(records)


# --- answers real systems send ---------------------------------------------------------------------


def _urine(concept: dict) -> dict:
    bundle = to_bundle({k: v for k, v in _record("2025-05-20", 54).items() if k != "urine_protein"})
    return _add(bundle, _observation("urine", "20454-5", "2025-05-20", valueCodeableConcept=concept))


@pytest.mark.parametrize(
    "code,expected",
    [
        ("167273002", 1),
        ("167274008", 2),
        ("167275009", 3),
        ("167276005", 4),
        ("167277001", 5),
        ("167278006", 6),
        ("260385009", 1),
        ("260405006", 2),
        ("260347006", 3),
    ],
)
def test_snomed_dipstick_findings(code, expected):
    got = read_bundle(_urine({"coding": [{"system": "http://snomed.info/sct", "code": code}]}))
    assert got.record["urine_protein"] == expected and got.warnings == []


@pytest.mark.parametrize(
    "concept,expected",
    [
        ({"coding": [{"system": "http://loinc.org", "code": "LA6577-6", "display": "Negative"}]}, 1),
        ({"coding": [{"system": "http://loinc.org", "code": "LA-unlisted", "display": "2+"}]}, 4),
        ({"text": "미량"}, 2),
        ({"text": "+++"}, 5),
        ({"text": "약양성(±)"}, 2),  # Korean lab printouts: the word and the sign
        ({"text": "음성 (-)"}, 1),
        ({"text": "양성 (2+)"}, 4),
        ({"text": "Trace (+/-)"}, 2),
        ({"text": "(±)"}, 2),
    ],
)
def test_loinc_answers_and_text_for_dipstick(concept, expected):
    assert read_bundle(_urine(concept)).record["urine_protein"] == expected


@pytest.mark.parametrize("text", ["양성(과거)", "음성(2+)", "(+)(-)"])
def test_a_text_whose_parts_disagree_or_are_unread_is_not_half_read(text):
    got = read_bundle(_urine({"text": text}))
    assert "urine_protein" not in got.record and [w.location for w in got.warnings] == ["Observation/urine"]


def test_unknown_dipstick_code_leaves_the_field_missing_with_a_warning():
    got = read_bundle(_urine({"coding": [{"system": "http://snomed.info/sct", "code": "999999001"}]}))
    assert "urine_protein" not in got.record
    (warning,) = got.warnings
    assert warning.location == "Observation/urine" and "20454-5" in warning.message
    # The rest of the checkup is read as usual.
    assert got.record["sbp"] == EXAMPLE_RECORD["sbp"]


def _smoking(concept: dict) -> dict:
    bundle = to_bundle({k: v for k, v in _record("2025-05-20", 54).items() if k != "smoking_status"})
    return _add(bundle, _observation("smoke", "72166-2", "2025-05-20", valueCodeableConcept=concept))


@pytest.mark.parametrize(
    "system,code,expected",
    [
        ("http://loinc.org", "LA18976-3", 3),
        ("http://loinc.org", "LA18977-1", 3),  # some-day smoker is current
        ("http://loinc.org", "LA15920-4", 2),
        ("http://loinc.org", "LA18978-9", 1),
        ("http://loinc.org", "LA18981-3", 3),
        ("http://loinc.org", "LA18982-1", 3),
        ("http://snomed.info/sct", "449868002", 3),
        ("http://snomed.info/sct", "428041000124106", 3),
        ("http://snomed.info/sct", "8517006", 2),
        ("http://snomed.info/sct", "266919005", 1),
        ("http://snomed.info/sct", "428071000124103", 3),
    ],
)
def test_smoking_answers(system, code, expected):
    got = read_bundle(_smoking({"coding": [{"system": system, "code": code}]}))
    assert got.record["smoking_status"] == expected and got.warnings == []


@pytest.mark.parametrize(
    "text,expected",
    [
        ("흡연 안함", 1),
        ("흡연안함", 1),
        ("비흡연 (Never smoker)", 1),
        ("현재 흡연(Current smoker)", 3),
        ("흡연 (현재)", 3),
        ("흡연(과거)", None),
    ],
)
def test_smoking_text_answers(text, expected):
    """Korean EMR wording, alone or with the English in brackets; "흡연(과거)" ("smoking (past)") is not
    read as its first word, a current smoker."""
    assert read_bundle(_smoking({"text": text})).record.get("smoking_status") == expected


@pytest.mark.parametrize(
    "system,code",
    [
        ("http://loinc.org", "LA18980-5"),
        ("http://loinc.org", "LA18979-7"),
        ("http://snomed.info/sct", "77176002"),
        ("http://snomed.info/sct", "266927001"),
    ],
)
def test_smoking_unknown_answers_are_missing_and_said(system, code):
    # "Smoker, current status unknown" is a smoker the sender may think was read as one.
    got = read_bundle(_smoking({"coding": [{"system": system, "code": code}]}))
    [warning] = got.warnings
    assert "smoking_status" not in got.record and "does not say whether the person smokes now" in warning.message


def test_smoking_text_and_unreadable_answer():
    assert read_bundle(_smoking({"text": "Former smoker"})).record["smoking_status"] == 2
    got = read_bundle(_smoking({"text": "pipe on Sundays"}))
    assert "smoking_status" not in got.record and "72166-2" in got.warnings[0].message


# --- units -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loinc,value,unit,field,expected",
    [
        ("14771-0", 5.5, "mmol/L", "fasting_glucose", 99.1),
        ("14647-2", 5.2, "mmol/L", "total_cholesterol", 201.1),
        ("14927-8", 1.7, "mmol/L", "triglycerides", 150.6),
        ("14646-4", 1.3, "mmol/L", "hdl", 50.3),
        ("22748-8", 3.4, "mmol/L", "ldl", 131.5),
        ("39469-2", 3.4, "mmol/L", "ldl", 131.5),
        ("14682-9", 97, "umol/L", "serum_creatinine", 1.1),
        ("59260-0", 8.7, "mmol/L", "hemoglobin", 14.0),
    ],
)
def test_molar_loinc_codes_are_converted(loinc, value, unit, field, expected):
    base = {k: v for k, v in _record("2025-05-20", 54).items() if k != field}
    bundle = _add(
        to_bundle(base),
        _observation(
            "molar",
            loinc,
            "2025-05-20",
            valueQuantity={"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        ),
    )
    got = read_bundle(bundle)
    assert got.record[field] == pytest.approx(expected, abs=0.1) and got.sources[field] == "Observation/molar"


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 6.0, "unit": "mmol/L"},  # display unit only
        {"value": 6.0, "system": "http://unitsofmeasure.org", "code": "mmol/L"},  # UCUM code only
        {"value": 6.0, "unit": "millimole per liter", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    ],
)
def test_quantity_with_code_or_only_unit_text(quantity):
    base = {k: v for k, v in _record("2025-05-20", 54).items() if k != "fasting_glucose"}
    bundle = _add(to_bundle(base), _observation("g", "1558-6", "2025-05-20", valueQuantity=quantity))
    assert read_bundle(bundle).record["fasting_glucose"] == pytest.approx(108.1, abs=0.1)


@pytest.mark.parametrize(
    "loinc,value,unit,field,expected",
    [
        ("1558-6", 150, "㎎/㎗", "fasting_glucose", 150.0),  # Korean systems' compatibility characters
        ("1558-6", 150, "mg%", "fasting_glucose", 150.0),
        ("1558-6", 6.0, "mM", "fasting_glucose", 108.1),
        ("2160-0", 97, "µM", "serum_creatinine", 1.1),
        ("718-7", 14, "g%", "hemoglobin", 14.0),
        ("8480-6", 16.0, "kPa", "sbp", 120.0),
        ("29463-7", 154, "lbs", "weight_kg", 69.9),
        ("8302-2", 68, "inch", "height_cm", 172.7),
        ("8302-2", 68, "[in_us]", "height_cm", 172.7),
        ("8280-0", 3, "[ft_i]", "waist_cm", 91.4),
    ],
)
def test_units_other_systems_write_are_converted(loinc, value, unit, field, expected):
    base = {k: v for k, v in _record("2025-05-20", 54).items() if k != field}
    quantity = {"value": value, "unit": unit}
    got = read_bundle(_add(to_bundle(base), _observation("o", loinc, "2025-05-20", valueQuantity=quantity)))
    assert got.record[field] == pytest.approx(expected, abs=0.1) and not got.warnings


def test_millimetres_are_never_read_as_millimolar():
    base = {k: v for k, v in _record("2025-05-20", 54).items() if k != "waist_cm"}
    quantity = {"value": 850, "unit": "mm"}
    got = read_bundle(_add(to_bundle(base), _observation("o", "8280-0", "2025-05-20", valueQuantity=quantity)))
    assert got.record["waist_cm"] == 85.0


@pytest.mark.parametrize(
    "loinc,field,comparator,value,unit,read,outcome",
    [
        # Beyond every cut-off: read as its limit, so the disease it shows is not predicted as new.
        ("1558-6", "fasting_glucose", ">", 600, "mg/dL", 600.0, "diabetes"),
        ("1558-6", "fasting_glucose", ">", 33.3, "mmol/L", 599.95, "diabetes"),
        ("2160-0", "serum_creatinine", ">", 10, "mg/dL", 10.0, "ckd"),
        ("2085-9", "hdl", "<", 20, "mg/dL", 20.0, "dyslipidemia"),
        ("2093-3", "total_cholesterol", ">=", 300, "mg/dL", 300.0, "dyslipidemia"),
        ("1920-8", "ast", "<", 5, "U/L", 5.0, None),
        # A cut-off at the limit: ">= 126" is diabetic, "< 40" HDL is low, "< 100" glucose normal.
        ("1558-6", "fasting_glucose", ">=", 126, "mg/dL", 126.0, "diabetes"),
        ("2085-9", "hdl", "<", 40, "mg/dL", 39.99, "dyslipidemia"),
        ("1558-6", "fasting_glucose", "<", 100, "mg/dL", 99.99, None),
        # An analyser's limit past the plausible range: its plausible end, still diabetic.
        ("1558-6", "fasting_glucose", ">", 750, "mg/dL", 700.0, "diabetes"),
        # In the disease range, though a finer grade beyond it is open: read, so the outcome is known.
        ("8480-6", "sbp", ">=", 140, "mm[Hg]", 140.0, "hypertension"),
        ("8462-4", "dbp", ">=", 90, "mm[Hg]", 90.0, "hypertension"),
        ("2160-0", "serum_creatinine", ">", 1.4, "mg/dL", 1.41, "ckd"),  # eGFR < 60 for this man of 54
        # Across a cut-off (diabetic or not; eGFR below 60 for a young man only from 1.65; 126 itself
        # diabetic, 125 not): missing. Weight and height never: BMI is judged from both.
        ("1558-6", "fasting_glucose", "<", 130, "mg/dL", None, None),
        ("1558-6", "fasting_glucose", "<=", 126, "mg/dL", None, None),
        ("2160-0", "serum_creatinine", "<", 1.6, "mg/dL", None, None),
        ("8480-6", "sbp", ">", 139, "mm[Hg]", None, None),
        ("2085-9", "hdl", "<", 45, "mg/dL", None, None),
        ("29463-7", "weight_kg", "<", 60, "kg", None, None),
        ("2085-9", "hdl", "<", -3, "mg/dL", None, None),  # allows no plausible value
        ("1920-8", "ast", "ad", 5, "U/L", None, None),  # "sufficient to achieve": not a bound
    ],
)
def test_a_bound_is_read_as_its_limit_only_where_no_cut_off_lies_beyond_it(
    loinc, field, comparator, value, unit, read, outcome
):
    from features.derive import Columns
    from features.eligibility import applicability

    base = {k: v for k, v in _record("2025-05-20", 54).items() if k != field}
    quantity = {"value": value, "comparator": comparator, "code": unit}
    got = read_bundle(_add(to_bundle(base), _observation("b", loinc, "2025-05-20", valueQuantity=quantity)))
    [warning] = [w for w in got.warnings if w.location == "Observation/b"]
    named = f"'{comparator}'" in warning.message or "outside the plausible" in warning.message
    assert named and str(value) not in warning.message.replace(loinc, "")  # never the value
    if read is None:
        assert field not in got.record and "left missing" in warning.message
    else:
        assert got.record[field] == pytest.approx(read, abs=0.011) and "read as its limit" in warning.message
        finer = "in the disease range whatever the true value" in warning.message
        assert finer == (field in ("sbp", "dbp") or (field == "serum_creatinine" and read < 2)), warning.message
    if outcome is not None:
        assert not applicability(Columns.from_records([got.record]), (outcome,))[outcome].applies[0]


def test_the_same_patient_twice_is_one_person_and_two_patients_are_refused():
    import copy

    bundle = to_bundle(_record("2025-05-20", 54))
    [patient] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    again = copy.deepcopy(patient)
    again["resource"]["meta"] = {"lastUpdated": "2025-06-01T00:00:00Z"}  # fetched again, as an include
    again["search"] = {"mode": "include"}
    got = read_bundle({**bundle, "entry": bundle["entry"] + [again]})
    assert got.record == read_bundle(bundle).record
    other = copy.deepcopy(patient)
    other["resource"]["birthDate"] = "1960-01-01"
    with pytest.raises(FhirInputError) as e:
        read_bundle({**bundle, "entry": bundle["entry"] + [other]})
    assert "found 2 different" in e.value.issues[0].message


def test_only_a_bundle_that_cannot_describe_a_person_is_refused():
    bundle = to_bundle(_record("2025-05-20", 54))
    del bundle["entry"][0]["resource"]["gender"]
    with pytest.raises(FhirInputError) as e:
        read_bundle(bundle)
    assert e.value.issues[0].location.endswith(".gender")
