"""FHIR lifestyle answers (alcohol, physical activity) and explicit negatives (refuted Conditions,
not-taken MedicationStatements, "No family history of ..."), read from what other systems send and
written by `to_bundle` so that records -> Bundle -> records gives the records back."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from features.fhir import read_bundle, to_bundle
from features.readers import frame_to_records
from features.schema import EXAMPLE_RECORD
from features.synth import generate_cohort
from serving.fhir_in import validate_fhir as _validate_fhir
from tests.unit.test_fhir_history import SUBJECT, _add, _observation, _record, three_checkups

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
FAMILY_FIELDS = ("family_history_cvd", "family_history_diabetes")
# Record fields the FHIR path cannot give back, and why. Every other field must round-trip.
NOT_CARRIED = {
    # FHIR carries a birth date (Patient.birthDate), hence `age`; the NHIS 5-year band is not written.
    "age_group": "the band is not written: the Patient's birth date gives age",
}


# --- round trip over a synthetic cohort -------------------------------------------------------------


def _records(group: pd.DataFrame) -> list[dict]:
    return frame_to_records(group)


@pytest.fixture(scope="module")
def cohort() -> dict[str, list[dict]]:
    df = generate_cohort(people=60, seed=5)
    return {pid: _records(g) for pid, g in df.groupby("person_id", sort=True)}


def test_synthetic_people_round_trip_field_by_field(cohort):
    carried_forward = 0
    for pid, records in cohort.items():
        bundle = to_bundle(records)
        got = read_bundle(bundle).records
        assert [r["exam_date"] for r in got] == [r["exam_date"] for r in records], pid
        for k, (want, have) in enumerate(zip(records, got, strict=True)):
            for name in sorted((set(want) | set(have)) - set(NOT_CARRIED)):
                if name in FAMILY_FIELDS and name not in want and any(r.get(name) == 1 for r in records[:k]):
                    # The one designed difference: a family history known at an earlier checkup is still
                    # known at a later one that did not record the answer (the synthetic questionnaire
                    # leaves it out at random); a FamilyMemberHistory does not go away.
                    assert have.get(name) == 1, (pid, want["exam_date"], name)
                    carried_forward += 1
                    continue
                assert name in have and name in want, (pid, want["exam_date"], name, want.get(name), have.get(name))
                if isinstance(want[name], str):
                    assert have[name] == want[name], (pid, want["exam_date"], name)
                else:
                    assert have[name] == pytest.approx(want[name], abs=1e-9), (pid, want["exam_date"], name)
    # The cohort exercises what this is about: 0 flags, both drinking answers, activity.
    every = [r for records in cohort.values() for r in records]
    assert sum(r.get("history_diabetes") == 0 for r in every) > 100
    assert sum(r.get("on_statin") == 0 for r in every) > 100
    assert sum(r.get("family_history_cvd") == 0 for r in every) > 50
    assert {r.get("drinking") for r in every} >= {0.0, 1.0}
    assert len({r.get("activity_days_per_week") for r in every}) >= 5
    assert carried_forward < 0.05 * len(every)


def test_written_resources_are_valid_r4b(cohort):
    # The real fhir.resources R4B models, as the FHIR routes validate input.
    records = next(r for r in cohort.values() if len(r) >= 3)
    for entry in to_bundle(records)["entry"]:
        _validate_fhir(entry["resource"], where=entry["resource"]["resourceType"])


# --- alcohol ----------------------------------------------------------------------------------------


def _bundle_without(*fields: str) -> dict:
    return to_bundle({k: v for k, v in EXAMPLE_RECORD.items() if k not in fields})


def _alcohol(**value) -> dict:
    return _add(_bundle_without("drinking"), _observation("alc", "11331-6", "2025-06-02", **value))


@pytest.mark.parametrize(
    "value,expected",
    [
        ({"valueCodeableConcept": {"text": "Yes"}}, 1),
        ({"valueCodeableConcept": {"text": "아니오"}}, 0),
        ({"valueString": "non-drinker"}, 0),
        ({"valueBoolean": False}, 0),
        (
            {
                "valueCodeableConcept": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0136", "code": "N"}]
                }
            },
            0,
        ),
        ({"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA33-6"}]}}, 1),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "82581004", "display": "Ex-drinker"}]}}, 0),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "28127009"}]}}, 1),
    ],
)
def test_alcohol_use_answers(value, expected):
    got = read_bundle(_alcohol(**value))
    assert got.record["drinking"] == expected and got.sources["drinking"] == "Observation/alc"
    assert got.warnings == []


def test_alcohol_unknown_is_missing_and_unreadable_is_a_warning():
    unknown = read_bundle(
        _alcohol(
            valueCodeableConcept={
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}]
            }
        )
    )
    assert "drinking" not in unknown.record and unknown.warnings == []
    got = read_bundle(_alcohol(valueCodeableConcept={"text": "wine on weekends"}))
    assert "drinking" not in got.record
    (warning,) = got.warnings
    assert warning.location == "Observation/alc" and "11331-6" in warning.message
    assert got.record["sbp"] == EXAMPLE_RECORD["sbp"]  # the rest is read as usual


@pytest.mark.parametrize(
    "value,expected",
    [
        (
            {
                "valueQuantity": {
                    "value": 2,
                    "unit": "wine glasses per day",
                    "system": "http://unitsofmeasure.org",
                    "code": "/d",
                }
            },
            1,
        ),
        ({"valueQuantity": {"value": 0, "unit": "/d"}}, 0),
        ({"valueQuantity": {"value": 0.5}}, 1),
        ({"valueRange": {"low": {"value": 5, "code": "/d"}}}, 1),
        ({"valueQuantity": {"value": 0, "comparator": ">", "code": "/d"}}, 1),
    ],
)
def test_drinks_per_day(value, expected):
    bundle = _add(_bundle_without("drinking"), _observation("per-day", "74013-4", "2025-06-02", **value))
    got = read_bundle(bundle)
    assert got.record["drinking"] == expected and got.warnings == []


@pytest.mark.parametrize(
    "value",
    [
        {"valueQuantity": {"value": 2, "code": "mg"}},
        {"valueQuantity": {"value": -1, "code": "/d"}},
        {"valueQuantity": {"value": 3, "comparator": "<", "code": "/d"}},
        {"valueString": "some"},
    ],
)
def test_unreadable_drinks_per_day_is_a_warning(value):
    bundle = _add(_bundle_without("drinking"), _observation("per-day", "74013-4", "2025-06-02", **value))
    got = read_bundle(bundle)
    assert "drinking" not in got.record and "74013-4" in got.warnings[0].message


def test_newest_alcohol_answer_of_the_visit_wins():
    bundle = _alcohol(valueCodeableConcept={"text": "Yes"})
    _add(bundle, _observation("later", "74013-4", "2025-06-03", valueQuantity={"value": 0, "code": "/d"}))
    got = read_bundle(bundle)
    assert got.record["drinking"] == 0 and got.sources["drinking"] == "Observation/later"


# --- physical activity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (
            {
                "valueQuantity": {
                    "value": 3,
                    "unit": "days per week",
                    "system": "http://unitsofmeasure.org",
                    "code": "d/wk",
                }
            },
            3,
        ),
        ({"valueQuantity": {"value": 3, "unit": "days per week", "system": "http://unitsofmeasure.org"}}, 3),
        ({"valueQuantity": {"value": 0, "code": "/wk"}}, 0),
        ({"valueQuantity": {"value": 7}}, 7),
        ({"valueInteger": 5}, 5),
    ],
)
def test_exercise_days_per_week(value, expected):
    bundle = _add(_bundle_without("activity_days_per_week"), _observation("evs", "89555-7", "2025-06-02", **value))
    got = read_bundle(bundle)
    assert got.record["activity_days_per_week"] == expected and got.warnings == []
    assert got.sources["activity_days_per_week"] == "Observation/evs"


@pytest.mark.parametrize(
    "value",
    [
        {"valueQuantity": {"value": 10, "code": "d/wk"}},
        {"valueQuantity": {"value": 2.5, "code": "d/wk"}},
        {"valueQuantity": {"value": 150, "code": "min/wk"}},
        {"valueCodeableConcept": {"text": "often"}},
    ],
)
def test_unreadable_exercise_days_is_a_warning(value):
    bundle = _add(_bundle_without("activity_days_per_week"), _observation("evs", "89555-7", "2025-06-02", **value))
    got = read_bundle(bundle)
    assert "activity_days_per_week" not in got.record
    (warning,) = got.warnings
    assert warning.location == "Observation/evs" and "89555-7" in warning.message


def test_minutes_per_day_is_not_days_per_week():
    bundle = _add(
        _bundle_without("activity_days_per_week"),
        _observation("mins", "68516-4", "2025-06-02", valueQuantity={"value": 40, "code": "min/d"}),
    )
    assert "activity_days_per_week" not in read_bundle(bundle).record


# --- negatives --------------------------------------------------------------------------------------


def _condition(cid: str, code: str, *, refuted: bool = False, system: str = ICD10, **dates) -> dict:
    resource = {
        "resourceType": "Condition",
        "id": cid,
        "subject": SUBJECT,
        "code": {"coding": [{"system": system, "code": code}]},
        **dates,
    }
    if refuted:
        resource["verificationStatus"] = {"coding": [{"system": VER, "code": "refuted"}]}
    return resource


def _statement(sid: str, atc: str, status: str, **dates) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": status,
        "subject": SUBJECT,
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]},
        **dates,
    }


def test_refuted_diabetes_is_a_no_unless_a_diagnosis_exists():
    bundle = to_bundle(_record("2025-05-20", 54))  # no history fields at all
    _add(bundle, _condition("no-dm", "E11.9", refuted=True, recordedDate="2025-05-20"))
    got = read_bundle(bundle)
    assert got.record["history_diabetes"] == 0 and got.sources["history_diabetes"] == "Condition/no-dm"
    assert "history_stroke" not in got.record  # nothing said about stroke
    _add(bundle, _condition("dm", "44054006", system=SNOMED, onsetDateTime="2019-03-01"))
    got = read_bundle(bundle)
    assert got.record["history_diabetes"] == 1 and got.sources["history_diabetes"] == "Condition/dm"


def test_entered_in_error_condition_says_nothing():
    bundle = to_bundle(_record("2025-05-20", 54))
    resource = _condition("oops", "I10", recordedDate="2025-05-20")
    resource["verificationStatus"] = {"coding": [{"system": VER, "code": "entered-in-error"}]}
    assert "history_hypertension" not in read_bundle(_add(bundle, resource)).record


def test_negatives_hold_for_the_checkup_they_are_dated_at_and_a_diagnosis_never_heals():
    bundle = to_bundle(three_checkups())  # 2021-05-10, 2023-05-15, 2025-05-20
    # "No hypertension" stated at the first visit (two days into its window) and at the newest;
    # hypertension diagnosed between them: the newest is 1 all the same.
    _add(bundle, _condition("no-htn-1", "I10", refuted=True, recordedDate="2021-05-12"))
    _add(bundle, _condition("htn", "I10", onsetDateTime="2022-08-01"))
    _add(bundle, _condition("no-htn-3", "I10", refuted=True, recordedDate="2025-05-20"))
    # "No stroke" stated between two checkups speaks for neither; undated, it is the newest's.
    _add(bundle, _condition("no-stroke-gap", "I63", refuted=True, recordedDate="2022-01-01"))
    _add(bundle, _condition("no-mi", "I21", refuted=True))
    # Dyslipidemia refuted at the middle visit, diagnosed after the newest: known now.
    _add(bundle, _condition("no-lipid", "E78.5", refuted=True, recordedDate="2023-05-15"))
    _add(bundle, _condition("lipid", "E78.5", recordedDate="2025-09-01"))
    first, second, newest = read_bundle(bundle).records
    assert [r.get("history_hypertension") for r in (first, second, newest)] == [0, 1, 1]
    assert newest["history_hypertension"] == 1
    assert all("history_stroke" not in r for r in (first, second, newest))
    assert [r.get("history_heart_disease") for r in (first, second, newest)] == [None, None, 0]
    assert [r.get("history_dyslipidemia") for r in (first, second, newest)] == [None, 0, 1]


def test_not_taken_statin_is_a_no_unless_one_is_taken():
    bundle = to_bundle(three_checkups())
    _add(bundle, _statement("no-statin", "C10AA01", "not-taken", effectiveDateTime="2021-05-10"))
    _add(bundle, _statement("no-statin-2", "C10AA05", "not-taken", dateAsserted="2023-05-16"))
    _add(
        bundle,
        {
            "resourceType": "MedicationRequest",
            "id": "statin",
            "status": "active",
            "intent": "order",
            "subject": SUBJECT,
            "authoredOn": "2024-01-10",
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C10AA05"}]},
        },
    )
    _add(bundle, _statement("no-metformin", "A10BA02", "not-taken"))  # undated: the newest checkup
    got = read_bundle(bundle)
    assert [r.get("on_statin") for r in got.records] == [0, 0, 1]
    assert got.record_sources[0]["on_statin"] == "MedicationStatement/no-statin"
    assert [r.get("on_diabetes_medication") for r in got.records] == [None, None, 0]
    # An active statement of the same class at the same checkup wins over "not taken".
    _add(bundle, _statement("metformin", "A10BA02", "active", effectiveDateTime="2025-05-20"))
    assert read_bundle(bundle).record["on_diabetes_medication"] == 1


def _family(fid: str, code: str, relation: str = "FAMMEMB", **more) -> dict:
    return {
        "resourceType": "FamilyMemberHistory",
        "id": fid,
        "status": "completed",
        "patient": SUBJECT,
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": relation}]},
        "condition": [{"code": {"coding": [{"system": SNOMED, "code": code}]}}],
        **more,
    }


def test_no_family_history_of_diabetes_is_a_no_unless_a_relative_has_it():
    base = {k: v for k, v in _record("2025-05-20", 54).items() if not k.startswith("family_history")}
    bundle = _add(to_bundle(base), _family("no-fh-dm", "160274005", date="2025-05-20"))
    got = read_bundle(bundle)
    assert got.record["family_history_diabetes"] == 0 and "family_history_cvd" not in got.record
    assert got.sources["family_history_diabetes"] == "FamilyMemberHistory/no-fh-dm"
    # A per-relative "no history of" (the mother has no breast cancer) says nothing about the family.
    assert "family_history_cvd" not in read_bundle(_add(copy.deepcopy(bundle), _family("m", "700146008", "MTH"))).record
    _add(bundle, _family("father-dm", "44054006", "FTH"))
    assert read_bundle(bundle).record["family_history_diabetes"] == 1


def test_dated_family_history_counts_from_its_date():
    records = [{k: v for k, v in r.items() if not k.startswith("family_history")} for r in three_checkups()]
    bundle = to_bundle(records)
    _add(bundle, _family("no-fh-cvd", "160270001", date="2021-05-10"))
    _add(bundle, _family("mother-stroke", "230690007", "MTH", date="2022-03-01"))
    got = read_bundle(bundle).records
    assert [r.get("family_history_cvd") for r in got] == [0, 1, 1]


def test_to_bundle_writes_zeros_as_explicit_negatives():
    records = three_checkups()
    records[0].update(history_diabetes=0, on_statin=0, family_history_diabetes=0, drinking=0, activity_days_per_week=0)
    records[2].update(history_diabetes=1, on_statin=1, drinking=1, activity_days_per_week=4)
    bundle = to_bundle(records)
    kinds = {
        (
            e["resource"]["resourceType"],
            e["resource"].get("status"),
            str(e["resource"].get("verificationStatus", {}).get("coding", [{}])[0].get("code")),
        )
        for e in bundle["entry"]
    }
    assert ("Condition", None, "refuted") in kinds and ("MedicationStatement", "not-taken", "None") in kinds
    got = read_bundle(bundle).records
    assert [r.get("history_diabetes") for r in got] == [0, None, 1]
    assert [r.get("on_statin") for r in got] == [0, None, 1]
    assert [r.get("family_history_diabetes") for r in got] == [0, None, None]
    assert [r.get("drinking") for r in got] == [0, None, 1]
    assert [r.get("activity_days_per_week") for r in got] == [0, None, 4]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Diabetes mellitus type 2", {"family_history_diabetes": 1}),
        ("당뇨병", {"family_history_diabetes": 1}),
        ("Stroke", {"family_history_cvd": 1}),
        ("심근경색", {"family_history_cvd": 1}),
        ("Family history of diabetes", {"family_history_diabetes": 1}),
        ("당뇨병 가족력", {"family_history_diabetes": 1}),
        ("Mother: stroke", {"family_history_cvd": 1}),
        ("Hypertension", {}),  # not a family history field of the record
        ("Breast cancer", {}),
    ],
)
def test_family_history_is_read_from_its_text_too(text, expected):
    base = {k: v for k, v in _record("2025-05-20", 54).items() if not k.startswith("family_history")}
    relative = _family("f", "0", "FTH")
    relative["condition"] = [{"code": {"text": text}}]
    got = read_bundle(_add(to_bundle(base), relative))
    assert {k: v for k, v in got.record.items() if k.startswith("family_history")} == expected
    assert got.warnings == []


@pytest.mark.parametrize("text", ["Suspected diabetes", "No family history of diabetes", "Diabetes?"])
def test_a_doubtful_family_history_text_is_not_counted_and_is_warned(text):
    base = {k: v for k, v in _record("2025-05-20", 54).items() if not k.startswith("family_history")}
    relative = _family("f", "0", "FTH")
    relative["condition"] = [{"code": {"text": text}}]
    got = read_bundle(_add(to_bundle(base), relative))
    assert "family_history_diabetes" not in got.record
    (warning,) = got.warnings
    assert warning.location == "FamilyMemberHistory/f.condition[0].code" and "not counted" in warning.message
    relative["condition"] = [{"code": {"text": "Suspected hypertension"}}]  # could never count: no warning
    assert read_bundle(_add(to_bundle(base), relative)).warnings == []


@pytest.mark.parametrize("atc", ["C10AX09", "C10AB05", "C10AX13", "C10AC01"])  # ezetimibe, fenofibrate, evolocumab, ...
def test_a_lipid_lowering_drug_other_than_a_statin_is_treated_dyslipidemia(atc):
    # Had been ignored: a patient on ezetimibe alone was predicted a new dyslipidemia.
    base = {k: v for k, v in _record("2025-05-20", 54).items() if k not in ("history_dyslipidemia", "on_statin")}
    got = read_bundle(_add(to_bundle(base), _statement("lipid", atc, "active")))
    assert got.record["history_dyslipidemia"] == 1 and "on_statin" not in got.record
    assert got.sources["history_dyslipidemia"] == "MedicationStatement/lipid"
    # Not taking one says nothing about the diagnosis.
    assert "history_dyslipidemia" not in read_bundle(_add(to_bundle(base), _statement("no", atc, "not-taken"))).record
    # A statin (with ezetimibe too) stays what the record has always said: on_statin.
    statin = read_bundle(_add(to_bundle(base), _statement("s", "C10BA05", "active"))).record
    assert statin["on_statin"] == 1 and "history_dyslipidemia" not in statin
    # The diagnosis lasts: a stopped statement, or a request dispensed years ago, still says it.
    stopped = _statement("old", atc, "stopped", effectiveDateTime="2020-01-10")
    assert read_bundle(_add(to_bundle(base), stopped)).record["history_dyslipidemia"] == 1
    dispensed = {
        "resourceType": "MedicationRequest",
        "id": "rx",
        "status": "completed",
        "intent": "order",
        "subject": SUBJECT,
        "authoredOn": "2022-01-10",
        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]},
    }
    assert read_bundle(_add(to_bundle(base), dispensed)).record["history_dyslipidemia"] == 1
