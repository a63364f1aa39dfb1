"""FHIR from a Korean HIS (KR Core 2.0): treatment without ATC codes, read from HIRA EDI / KPIS KD
medicines by their ingredient names; KCD-8 conditions; dates that cannot be a checkup's."""

from __future__ import annotations

import datetime as dt

import pytest

from features.fhir import read_bundle, to_bundle
from features.medications import ANTIHYPERTENSIVE, DIABETES, LIPID_LOWERING, STATIN, classes_of_names
from tests.unit.test_fhir_history import SUBJECT, _add, _observation, _record, three_checkups
from tests.unit.test_fhir_lifestyle import _condition

HIRA_MEDICATION = "http://www.hl7korea.or.kr/CodeSystem/hira-edi-medication"
KPIS = "http://www.hl7korea.or.kr/CodeSystem/kpis-kdcode"
KCD8 = "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8"
ATC = "http://www.whocc.no/atc"
INGREDIENT = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/krcore-medicationIngredient"
TREATMENT = ("on_antihypertensive", "on_diabetes_medication", "on_statin")
TODAY = dt.date(2026, 6, 1)


def _request(rid: str, concept: dict | None = None, **more) -> dict:
    resource = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "authoredOn": "2025-05-20",
        **more,
    }
    if concept is not None:
        resource["medicationCodeableConcept"] = concept
    return resource


def _edi(code: str, display: str, *ingredients: dict, system: str = HIRA_MEDICATION) -> dict:
    """A KR Core medication concept: the product in HIRA EDI (or KPIS) codes, the ingredients in
    krcore-medicationIngredient extensions."""
    return {
        "extension": [{"url": INGREDIENT, "valueCodeableConcept": i} for i in ingredients],
        "coding": [{"system": system, "code": code, "display": display}],
    }


def _treatment(bundle: dict) -> dict:
    got = read_bundle(bundle, today=TODAY)
    return {name: got.record.get(name) for name in TREATMENT}


def _bundle() -> dict:
    return to_bundle(_record("2025-05-20", 54))  # no treatment fields at all


# --- medicines without ATC ---------------------------------------------------------------------------


def test_kr_core_ingredient_extension_with_a_korean_name():
    concept = _edi("645302740", "노바스크정5밀리그램", {"text": "암로디핀베실산염"})
    got = read_bundle(_add(_bundle(), _request("amlo", concept)), today=TODAY)
    assert got.record["on_antihypertensive"] == 1 and got.sources["on_antihypertensive"] == "MedicationRequest/amlo"
    assert "on_statin" not in got.record and got.warnings == []


def test_kr_core_ingredient_extension_with_an_atc_code_is_read_as_atc():
    # The extension's value is bound (preferred) to ATC in KR Core: a code there is an ATC code.
    concept = _edi("653400910", "제품", {"coding": [{"system": ATC, "code": "C10AA07", "display": "rosuvastatin"}]})
    assert _treatment(_add(_bundle(), _request("rosu", concept)))["on_statin"] == 1


def test_ingredient_extension_value_string_and_other_profile_urls():
    concept = {
        "extension": [
            {
                "url": "https://his.example.kr/fhir/StructureDefinition/medicationIngredient",
                "valueString": "Metformin HCl",
            }
        ],
        "coding": [{"system": KPIS, "code": "2000000000000", "display": "다이아벡스정"}],
    }
    assert _treatment(_add(_bundle(), _request("met", concept)))["on_diabetes_medication"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amlodipine/valsartan", {ANTIHYPERTENSIVE}),
        ("sitagliptin and metformin", {DIABETES}),
        ("Ezetimibe 10 mg / Rosuvastatin 5 mg", {STATIN, LIPID_LOWERING}),
        ("ezetimibe", {LIPID_LOWERING}),  # treated dyslipidemia, without a statin
        ("fenofibrate", {LIPID_LOWERING}),
        ("에볼로쿠맙", {LIPID_LOWERING}),
        ("omega-3-acid ethyl esters", set()),  # a supplement too: only its C10AX06 code counts
        ("암로디핀베실산염+발사르탄", {ANTIHYPERTENSIVE}),
        ("로사르탄칼륨/히드로클로로티아지드", {ANTIHYPERTENSIVE}),
        ("아토르바스타틴칼슘삼수화물", {STATIN}),
        ("엠파글리플로진/메트포르민염산염", {DIABETES}),
        ("아토르바스타틴/암로디핀", {ANTIHYPERTENSIVE, STATIN}),
        ("telmisartan + rosuvastatin", {ANTIHYPERTENSIVE, STATIN}),
        ("insulin glargine", {DIABETES}),
        ("dulaglutide", {DIABETES}),
        ("Bisoprolol fumarate", {ANTIHYPERTENSIVE}),
        ("perindopril arginine/indapamide/amlodipine", {ANTIHYPERTENSIVE}),
        ("pioglitazone", {DIABETES}),
        # Look-alikes that are not of these classes.
        ("nystatin", set()),
        ("imipenem/cilastatin", set()),
        ("울리나스타틴", set()),
        ("teduglutide", set()),
        ("timolol maleate", set()),
        ("도르졸라미드염산염/티몰롤말레산염", set()),
        ("acetaminophen", set()),
    ],
)
def test_drug_class_from_generic_names(text, expected):
    assert classes_of_names([text]) == expected


def test_name_from_text_display_and_a_referenced_medication():
    by_text = _request("t", {"coding": [{"system": HIRA_MEDICATION, "code": "1"}], "text": "Rosuvastatin 10 mg"})
    by_display = _request("d", {"coding": [{"system": KPIS, "code": "2", "display": "메트포르민염산염서방정"}]})
    medication = {
        "resourceType": "Medication",
        "id": "arb",
        "code": {"coding": [{"system": HIRA_MEDICATION, "code": "3", "display": "제품명"}]},
        "ingredient": [{"itemCodeableConcept": {"text": "올메사르탄메독소밀"}}],
    }
    by_reference = _request("r", medicationReference={"reference": "Medication/arb"})
    bundle = _bundle()
    for resource in (by_text, by_display, medication, by_reference):
        _add(bundle, resource)
    got = read_bundle(bundle, today=TODAY)
    assert [got.record[name] for name in TREATMENT] == [1, 1, 1]
    assert got.sources["on_antihypertensive"] == "MedicationRequest/r"
    assert got.warnings == []


def test_a_medication_statement_not_taken_by_name_is_a_no():
    statement = {
        "resourceType": "MedicationStatement",
        "id": "no-statin",
        "status": "not-taken",
        "subject": SUBJECT,
        "effectiveDateTime": "2025-05-20",
        "medicationCodeableConcept": {"coding": [{"system": KPIS, "code": "9", "display": "리피토정(아토르바스타틴)"}]},
    }
    assert _treatment(_add(_bundle(), statement))["on_statin"] == 0


def test_an_atc_code_decides_over_the_name():
    # ATC says an analgesic: the name is not second-guessed.
    concept = {"coding": [{"system": ATC, "code": "M01AB15", "display": "amlodipine"}]}
    got = read_bundle(_add(_bundle(), _request("atc", concept)), today=TODAY)
    assert "on_antihypertensive" not in got.record and got.warnings == []


def test_an_unreadable_medicine_is_a_warning_never_an_error():
    unknown = _request("x", _edi("641900010", "타이레놀정500밀리그램", {"text": "아세트아미노펜"}))
    no_name = _request("y", {"coding": [{"system": HIRA_MEDICATION, "code": "123456789"}]})
    no_medicine = _request("z")
    bundle = _bundle()
    for resource in (unknown, no_name, no_medicine):
        _add(bundle, resource)
    got = read_bundle(bundle, today=TODAY)
    assert all(name not in got.record for name in TREATMENT)
    assert [path for w in got.warnings for path in w.expressions] == [
        "MedicationRequest/x.medicationCodeableConcept",
        "MedicationRequest/y.medicationCodeableConcept",
        "MedicationRequest/z.medicationCodeableConcept",
    ]
    for warning in got.warnings:
        assert "drug class" in warning.message
        # Never the submitted values.
        assert "타이레놀" not in warning.message and "아세트아미노펜" not in warning.message
        assert "123456789" not in warning.message


def test_an_inactive_or_proposed_unknown_medicine_says_nothing():
    bundle = _bundle()
    _add(bundle, _request("old", {"text": "unknown"}, status="stopped"))
    _add(bundle, _request("maybe", {"text": "unknown"}, intent="proposal"))
    assert read_bundle(bundle, today=TODAY).warnings == []


def test_a_completed_prescription_counts_for_a_year_after_it_was_written():
    """KR Core marks a dispensed prescription `completed`: a chronic-disease patient shows up as a
    string of completed requests, and is on treatment."""
    amlodipine = _edi("A1", "amlodipine 5mg", {"text": "암로디핀베실산염"})
    recent = _bundle()  # checkup 2025-05-20
    _add(recent, _request("rx", amlodipine, status="completed", authoredOn="2024-11-02"))
    assert _treatment(recent)["on_antihypertensive"] == 1
    stale = _bundle()
    _add(stale, _request("rx", amlodipine, status="completed", authoredOn="2023-01-10"))
    assert _treatment(stale)["on_antihypertensive"] is None  # finished over a year before
    undated = _bundle()
    _add(undated, _request("rx", amlodipine, status="completed", authoredOn=None))
    assert _treatment(undated)["on_antihypertensive"] is None


# --- KCD-8 conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ("I10", "history_hypertension"),
        ("I10.9", "history_hypertension"),
        ("E11.9", "history_diabetes"),
        ("E119", "history_diabetes"),
        ("e11.78", "history_diabetes"),
        ("E11.3†", "history_diabetes"),
        ("E785", "history_dyslipidemia"),
        ("E78.0", "history_dyslipidemia"),
        ("I63.9", "history_stroke"),
        ("I69.3", "history_stroke"),
        ("I25.10", "history_heart_disease"),
        ("I50.0", "history_heart_disease"),
    ],
)
def test_kcd8_conditions(code, field):
    bundle = _add(_bundle(), _condition("c", code, system=KCD8, onsetDateTime="2019-03-01"))
    got = read_bundle(bundle, today=TODAY)
    assert got.record[field] == 1 and got.sources[field] == "Condition/c"


@pytest.mark.parametrize("code", ["I01.0", "E16.2", "I70.0", "E07.8", "K21.9"])
def test_kcd8_codes_of_other_diseases_set_nothing(code):
    got = read_bundle(_add(_bundle(), _condition("c", code, system=KCD8)), today=TODAY)
    history = [k for k in got.record if k.startswith("history_")]
    assert history == []


def test_refuted_kcd8_condition_is_a_no():
    bundle = _add(_bundle(), _condition("no", "E11.9", refuted=True, system=KCD8, recordedDate="2025-05-20"))
    assert read_bundle(bundle, today=TODAY).record["history_diabetes"] == 0


# --- dates that cannot be a checkup's ----------------------------------------------------------------


@pytest.mark.parametrize("when", ["0001-01-01", "1999-12-31", "2026-06-02", "2031-01-01T09:00:00+09:00", "2025-13-45"])
def test_an_observation_with_an_impossible_date_is_left_out_with_a_warning(when):
    bundle = to_bundle(three_checkups())
    _add(bundle, _observation("bad", "2093-3", when, valueQuantity={"value": 999, "unit": "mg/dL"}))
    got = read_bundle(bundle, today=TODAY)
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15", "2025-05-20"]
    assert got.record["total_cholesterol"] == 214.0
    assert all(r.get("total_cholesterol") != 999 for r in got.records)
    (warning,) = got.warnings
    assert warning.location == "Observation/bad.effectiveDateTime"
    assert "not used" in warning.message and when not in warning.message


def test_the_next_date_of_the_observation_is_used_when_the_first_is_impossible():
    bundle = to_bundle(_record("2025-05-20", 54, ldl=None))
    obs = _observation("ldl", "13457-7", "0001-01-01", valueQuantity={"value": 131, "unit": "mg/dL"})
    obs["issued"] = "2025-05-21T10:00:00+09:00"
    got = read_bundle(_add(bundle, obs), today=TODAY)
    assert got.record["ldl"] == 131 and got.record["exam_date"] == "2025-05-20"
    (warning,) = got.warnings
    assert warning.location == "Observation/ldl.effectiveDateTime" and "issued used instead" in warning.message


def test_only_impossible_dates_leaves_no_measurement_with_warnings():
    """Not refused (contract section 3): the person is described; the service then finds no
    checkup measurement and scores nothing (tests/service/test_fhir_no_checkup.py)."""
    bundle = to_bundle(_record("2025-05-20", 54))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            entry["resource"]["effectiveDateTime"] = "0001-01-01"
    got = read_bundle(bundle, today=TODAY)
    assert not {"sbp", "fasting_glucose", "weight_kg"} & set(got.record)
    dated = [w for w in got.warnings if w.expressions[0].endswith(".effectiveDateTime")]
    assert dated and all("0001-01-01" not in w.location + w.message for w in dated)


def test_a_future_checkup_does_not_refuse_the_patient():
    bundle = to_bundle(three_checkups())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and resource["effectiveDateTime"] == "2025-05-20":
            resource["effectiveDateTime"] = "2027-05-20"
    got = read_bundle(bundle, today=TODAY)
    assert [r["exam_date"] for r in got.records] == ["2021-05-10", "2023-05-15"]
    assert got.warnings and all(p.endswith(".effectiveDateTime") for w in got.warnings for p in w.expressions)


@pytest.mark.parametrize("when", ["0001-01-01", "2030-01-01", "not-a-date"])
def test_an_impossible_history_date_is_read_as_undated(when):
    bundle = to_bundle(three_checkups())
    _add(bundle, _condition("dm", "E11.9", system=KCD8, onsetDateTime=when))
    _add(bundle, _request("statin", {"text": "rosuvastatin"}, authoredOn=when))
    got = read_bundle(bundle, today=TODAY)
    # Undated history holds for every checkup.
    assert [r.get("history_diabetes") for r in got.records] == [1, 1, 1]
    assert [r.get("on_statin") for r in got.records] == [1, 1, 1]
    assert sorted(path for w in got.warnings for path in w.expressions) == [
        "Condition/dm.onsetDateTime",
        "MedicationRequest/statin.authoredOn",
    ]
    assert all(when not in w.message for w in got.warnings)


def test_a_history_date_before_2000_is_a_real_date():
    # EXAM_DATE_MIN bounds checkups, not diagnoses: a 1995 diagnosis is history, with no warning.
    bundle = to_bundle(three_checkups())
    _add(bundle, _condition("htn", "I10", system=KCD8, onsetDateTime="1995-04-01"))
    got = read_bundle(bundle, today=TODAY)
    assert [r.get("history_hypertension") for r in got.records] == [1, 1, 1] and got.warnings == []


def test_an_impossible_negative_date_speaks_for_the_newest_checkup():
    bundle = to_bundle(three_checkups())
    _add(bundle, _condition("no-dm", "E11", refuted=True, system=KCD8, recordedDate="0001-01-01"))
    got = read_bundle(bundle, today=TODAY)
    assert [r.get("history_diabetes") for r in got.records] == [None, None, 0]
    assert [path for w in got.warnings for path in w.expressions] == ["Condition/no-dm.recordedDate"]
