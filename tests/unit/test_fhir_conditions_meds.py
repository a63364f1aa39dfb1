"""FHIR Conditions read by their text when no known code names them (conservatively: a negation, a
doubt or a qualifier reads nothing, and says so); MedicationStatement counts only when active; an
unresolvable medicationReference is said as such."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.condition_names import CONDITION_NAMES, history_of_names
from features.eligibility import ineligibility_reasons
from features.fhir import read_bundle, to_bundle
from tests.unit.test_fhir_history import SUBJECT, _add, _record
from tests.unit.test_fhir_lifestyle import _statement

TODAY = dt.date(2026, 6, 1)
SNOMED = "http://snomed.info/sct"
KCD8 = "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8"
HISTORY = tuple(CONDITION_NAMES)


def _bundle() -> dict:
    return to_bundle(_record("2025-05-20", 54))  # no history or treatment fields at all


def _condition(cid: str, code: dict, **more) -> dict:
    return {"resourceType": "Condition", "id": cid, "subject": SUBJECT, "code": code, **more}


def _read(*resources: dict):
    bundle = _bundle()
    for resource in resources:
        _add(bundle, resource)
    return read_bundle(bundle, today=TODAY)


def _history(got) -> dict:
    return {k: v for k, v in got.record.items() if k.startswith("history_")}


# --- Conditions by text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("Essential hypertension", "history_hypertension"),
        ("고혈압", "history_hypertension"),
        ("본태성 고혈압", "history_hypertension"),
        ("Type 2 diabetes mellitus", "history_diabetes"),
        ("Type 2 diabetes mellitus without complications", "history_diabetes"),
        ("제2형 당뇨병", "history_diabetes"),
        ("당뇨", "history_diabetes"),
        ("Dyslipidemia", "history_dyslipidemia"),
        ("Hyperlipidaemia", "history_dyslipidemia"),
        ("Pure hypercholesterolaemia", "history_dyslipidemia"),
        ("이상지질혈증", "history_dyslipidemia"),
        ("고지혈증", "history_dyslipidemia"),
        ("Stroke", "history_stroke"),
        ("Cerebral infarction", "history_stroke"),
        ("뇌졸중", "history_stroke"),
        ("뇌경색", "history_stroke"),
        ("Old myocardial infarction", "history_heart_disease"),
        ("Ischaemic heart disease", "history_heart_disease"),
        ("Ischemic heart disease", "history_heart_disease"),
        ("Unstable angina", "history_heart_disease"),
        ("급성 심근경색", "history_heart_disease"),
        ("협심증", "history_heart_disease"),
        ("Non-insulin-dependent diabetes mellitus", "history_diabetes"),
        ("Hypertension, essential", "history_hypertension"),
        # An outside test's cases: kinds, courses and care of the same disease, abbreviations.
        ("Ischemic stroke", "history_stroke"),
        ("s/p stroke", "history_stroke"),
        ("Post-stroke", "history_stroke"),
        ("뇌졸중 후유증", "history_stroke"),
        ("old CVA", "history_stroke"),
        ("Hyperlipidemia on statin", "history_dyslipidemia"),
        ("고지혈증 약 복용중", "history_dyslipidemia"),
        ("high cholesterol", "history_dyslipidemia"),
        ("hypertension, well controlled", "history_hypertension"),
        ("Old MI, s/p PCI", "history_heart_disease"),
        ("CAD s/p CABG", "history_heart_disease"),
        ("협심증 스텐트 시술", "history_heart_disease"),
        ("HTN", "history_hypertension"),
        ("T2DM", "history_diabetes"),
        ("DM", "history_diabetes"),
        ("Hx of MI", "history_heart_disease"),
        ("CAD", "history_heart_disease"),
        ("Heart attack", "history_heart_disease"),
    ],
)
def test_a_text_only_condition_is_read_by_its_common_name(text, field):
    got = _read(_condition("c", {"text": text}, onsetDateTime="2019-03-01"))
    assert _history(got) == {field: 1}
    assert got.sources[field] == "Condition/c"
    assert got.warnings == []


@pytest.mark.parametrize(
    "text",
    [
        "No hypertension",
        "Denies hypertension",
        "Hypertension: rule out",
        "R/O hypertension",
        "Without diabetes",
        "History of stroke: negative",
        "Suspected angina",
        "hypertension?",
        "Family history of diabetes",
        "Pulmonary hypertension",
        "Gestational diabetes",
        "Diabetes insipidus",
        "Heat stroke",
        "Screening for diabetes",
        "고혈압 없음",
        "당뇨 의증",
        "고혈압 가족력",
        "임신성 당뇨",
        # A review's cases: blanks and signs, unknowns, tests, relatives, another disease.
        "Hypertension: none",
        "nil hypertension",
        "Hypertension (-)",
        "고혈압(-)",
        "고혈압 무",
        "unknown hypertension",
        "고혈압 미상",
        "Diabetes test",
        "당뇨 검사",
        "모친 고혈압",
        "어머니: 당뇨",
        "TIA (mini stroke)",
        "Pre-diabetes",
        "No DM",
        "DM (-)",
        "Mother: HTN",
        "Family hx of MI",
        "borderline HTN",
        "R/O MI",
    ],
)
def test_a_negated_or_doubtful_text_is_not_read_and_is_warned(text):
    got = _read(_condition("c", {"text": text}))
    assert _history(got) == {}
    (warning,) = got.warnings
    assert warning.location == "Condition/c.code"
    assert "negation" in warning.message and "not counted" in warning.message
    assert text not in warning.message  # never the submitted text


@pytest.mark.parametrize("text", ["Asthma", "폐고혈압", "Hypertensive heart disease"])
def test_a_text_that_names_no_condition_read_is_warned(text):
    got = _read(_condition("c", {"text": text}))
    assert _history(got) == {}
    (warning,) = got.warnings
    assert warning.location == "Condition/c.code" and "not counted" in warning.message
    assert text not in warning.message


def test_a_condition_without_code_or_text_is_warned():
    got = _read({"resourceType": "Condition", "id": "c", "subject": SUBJECT})
    assert _history(got) == {}
    (warning,) = got.warnings
    assert warning.location == "Condition/c.code" and "neither its code nor its text" in warning.message


def test_many_other_diseases_are_one_warning_naming_them():
    # A real problem list: asthma, arthritis, ... one warning, not one per Condition.
    others = [
        _condition(f"o{k}", {"coding": [{"system": SNOMED, "code": str(195967001 + k)}], "text": t})
        for k, t in enumerate(["Asthma", "Osteoarthritis", "GERD", "Gout", "Cataract", "Insomnia", "Myopia"])
    ]
    doubtful = _condition("d", {"text": "R/O MI"})
    got = _read(*others, doubtful, _condition("h", {"text": "Essential hypertension"}))
    assert _history(got) == {"history_hypertension": 1}
    assert len(got.warnings) == 2
    unread = next(w for w in got.warnings if w.location.startswith("Condition/o0"))
    assert unread.location == ", ".join(f"Condition/o{k}.code" for k in range(5)) + " and 2 more"
    assert "each of these 7 Conditions" in unread.message and "Asthma" not in unread.message
    assert unread.expressions == [f"Condition/o{k}.code" for k in range(7)]  # FHIRPath each, for OperationOutcome
    assert any(w.location == "Condition/d.code" and "negation" in w.message for w in got.warnings)


def test_an_unknown_code_is_read_by_its_display_or_text():
    local = {"coding": [{"system": "https://his.example.kr/dx", "code": "HTN01", "display": "Hypertension"}]}
    got = _read(_condition("local", local))
    assert _history(got) == {"history_hypertension": 1} and got.warnings == []
    # 1201005 (benign essential hypertension) is a SNOMED CT code outside the table: its text counts.
    snomed = {"coding": [{"system": SNOMED, "code": "1201005"}], "text": "Benign essential hypertension"}
    got = _read(_condition("sct", snomed))
    assert _history(got) == {"history_hypertension": 1} and got.warnings == []


def test_an_icd_code_of_another_disease_is_not_read_by_its_text_nor_warned():
    # The ICD-10 / KCD-8 code says which disease it is; the table covers every category it reads.
    concept = {"coding": [{"system": KCD8, "code": "K21.9"}], "text": "Reflux, hypertension follow-up"}
    got = _read(_condition("gerd", concept))
    assert _history(got) == {} and got.warnings == []


def test_a_known_code_wins_and_is_not_warned():
    concept = {"coding": [{"system": SNOMED, "code": "38341003"}], "text": "no idea"}
    got = _read(_condition("htn", concept))
    assert _history(got) == {"history_hypertension": 1} and got.warnings == []


def test_a_refuted_text_only_condition_is_a_no():
    vs = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    got = _read(_condition("no-dm", {"text": "Type 2 diabetes"}, verificationStatus=vs, recordedDate="2025-05-20"))
    assert got.record["history_diabetes"] == 0 and got.sources["history_diabetes"] == "Condition/no-dm"


def test_one_doubtful_text_keeps_the_other_labels_from_counting():
    concept = {
        "coding": [{"system": "https://his.example.kr/dx", "code": "X1", "display": "Hypertension"}],
        "text": "R/O hypertension",
    }
    got = _read(_condition("c", concept))
    assert _history(got) == {}
    assert len(got.warnings) == 1


def test_the_names_table_reads_mixed_texts():
    got = history_of_names(["Hypertension and type 2 diabetes (고혈압, 당뇨병)"])
    assert got.fields == {"history_hypertension", "history_diabetes"} and not got.doubtful
    got = history_of_names(["hypertension; diabetes"])
    assert got.fields == {"history_hypertension", "history_diabetes"} and not got.doubtful
    assert set(CONDITION_NAMES) == {
        "history_ckd",
        "history_hypertension",
        "history_diabetes",
        "history_dyslipidemia",
        "history_stroke",
        "history_heart_disease",
    }


# --- MedicationStatement status ----------------------------------------------------------------------


def test_an_active_statement_is_treatment():
    got = _read(_statement("s", "C09AA05", "active", effectiveDateTime="2024-01-10"))
    assert got.record["on_antihypertensive"] == 1


@pytest.mark.parametrize("status", ["intended", "on-hold", "stopped", "completed", "entered-in-error", "unknown"])
def test_a_statement_that_is_not_active_is_no_treatment(status):
    got = _read(_statement("s", "C09AA05", status, effectiveDateTime="2024-01-10"))
    assert "on_antihypertensive" not in got.record
    assert got.warnings == []


def test_a_not_taken_statement_stays_a_no():
    got = _read(_statement("s", "C09AA05", "not-taken", effectiveDateTime="2025-05-20"))
    assert got.record["on_antihypertensive"] == 0


# --- medicationReference -----------------------------------------------------------------------------


def _by_reference(kind: str, ref: str) -> dict:
    resource = {
        "resourceType": kind,
        "id": "m",
        "status": "active",
        "subject": SUBJECT,
        "medicationReference": {"reference": ref},
    }
    if kind == "MedicationRequest":
        resource["intent"] = "order"
    return resource


@pytest.mark.parametrize("kind", ["MedicationStatement", "MedicationRequest"])
@pytest.mark.parametrize("ref", ["Medication/nope", "#missing"])
def test_an_unresolvable_medication_reference_is_said_so(kind, ref):
    got = _read(_by_reference(kind, ref))
    (warning,) = got.warnings
    assert warning.location == f"{kind}/m.medicationReference"
    assert "could not be resolved" in warning.message and "no ATC code" not in warning.message
    assert ref not in warning.message


def test_a_resolved_reference_without_a_known_class_keeps_its_reason():
    medication = {"resourceType": "Medication", "id": "x", "code": {"text": "something unknown"}}
    got = _read(medication, _by_reference("MedicationStatement", "Medication/x"))
    (warning,) = got.warnings
    assert "no ATC code" in warning.message and "could not be resolved" not in warning.message


@pytest.mark.parametrize("status", ["unconfirmed", "provisional", "differential"])
def test_an_unconfirmed_condition_is_not_counted_and_is_warned(status):
    vs = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": status}]}
    got = _read(_condition("maybe", {"text": "Hypertension"}, verificationStatus=vs, onsetDateTime="2019-03-01"))
    assert _history(got) == {}
    (warning,) = got.warnings
    assert warning.location == "Condition/maybe.verificationStatus" and "not counted" in warning.message


def test_a_condition_about_another_patient_is_not_used_and_is_warned():
    other = dict(_condition("theirs", {"text": "Hypertension"}), subject={"reference": "Patient/someone-else"})
    got = _read(other)
    assert _history(got) == {}
    (warning,) = got.warnings
    assert warning.location == "Condition/theirs.subject" and "different patient" in warning.message


# --- a known chronic kidney disease ------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "N18.3"}]},
        {"coding": [{"system": KCD8, "code": "N184"}]},
        {"coding": [{"system": KCD8, "code": "Z99.2"}]},  # on dialysis
        {"coding": [{"system": SNOMED, "code": "433144002"}]},  # CKD stage 3
        {"coding": [{"system": SNOMED, "code": "46177005"}]},  # end-stage renal disease
        {"text": "Chronic kidney disease"},
        {"text": "CKD stage 3a"},
        {"text": "Chronic kidney disease, stage 4"},
        {"text": "ESRD on hemodialysis"},
        {"text": "만성콩팥병"},
        {"text": "만성콩팥병 3기"},
        {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I12.9"}]},  # hypertensive CKD
        {"coding": [{"system": KCD8, "code": "E11.2"}]},  # diabetic kidney disease
    ],
)
def test_a_ckd_diagnosis_sets_history_ckd_and_ckd_does_not_apply(code):
    got = _read(_condition("ckd", code, onsetDateTime="2022-03-01"))
    assert got.record["history_ckd"] == 1 and got.sources["history_ckd"] == "Condition/ckd"
    reasons = ineligibility_reasons(pd.DataFrame([got.record]))
    assert reasons.loc[0, "ckd"] == "already diagnosed with chronic kidney disease"
    assert reasons.loc[0, "cvd"] is None  # no other outcome by the kidney disease


def test_a_ckd_diagnosis_is_written_back_and_read_again():
    record = _record("2025-05-20", 54) | {"history_ckd": 1}
    assert read_bundle(to_bundle(record), today=TODAY).record["history_ckd"] == 1


def test_a_laboratory_egfr_is_named_not_read():
    egfr = {
        "resourceType": "Observation",
        "id": "egfr",
        "status": "final",
        "subject": SUBJECT,
        "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8"}]},
        "effectiveDateTime": "2025-05-20",
        "valueQuantity": {"value": 45, "unit": "mL/min/{1.73_m2}"},
    }
    got = _read(egfr)
    [warning] = [w for w in got.warnings if w.location == "Observation/egfr"]
    assert "laboratory's eGFR" in warning.message and "45" not in warning.message
