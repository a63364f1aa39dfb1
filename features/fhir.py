"""FHIR R4 resources to the canonical checkup record (contract section 3).

A Patient gives sex and age; Observations coded in LOINC give the measurements (the newest final,
amended or corrected value of each wins); Conditions, FamilyMemberHistory and MedicationStatements
fill history and medication fields when present. Every quantity's unit is checked: molar units are
converted with the analyte's factor, anything else is refused with an error naming the resource, so
a value is never read in the wrong unit. The record is then validated like any other record.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from features.schema import BY_NAME

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"

# Statuses whose value is a result to use ("corrected" is a kind of "amended" in R4).
USABLE_STATUS = frozenset({"final", "amended", "corrected"})

# Unit factors into the record's unit, keyed by the normalised UCUM code or display unit.
_MASS = {"mg/dl": 1.0}
_LENGTH_CM = {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54}
_ENZYME = {"u/l": 1.0, "[iu]/l": 1.0, "iu/l": 1.0, "ukat/l": 60.0}


@dataclass(frozen=True)
class Measure:
    """How one LOINC code maps to a record field: accepted units and their factor to the record's unit."""

    field: str
    units: dict[str, float]


# Molar factors: mg/dL per mmol/L is the molar mass / 10 (glucose 180.16, cholesterol 386.65,
# triglyceride as triolein 885.7); creatinine mg/dL = umol/L / 88.42.
_CHOL = {**_MASS, "mmol/l": 38.67}
MEASURES: dict[str, Measure] = {
    "8480-6": Measure("sbp", {"mm[hg]": 1.0, "mmhg": 1.0}),
    "8462-4": Measure("dbp", {"mm[hg]": 1.0, "mmhg": 1.0}),
    "8302-2": Measure("height_cm", _LENGTH_CM),
    "29463-7": Measure("weight_kg", {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237}),
    "8280-0": Measure("waist_cm", _LENGTH_CM),
    "1558-6": Measure("fasting_glucose", {**_MASS, "mmol/l": 18.016}),
    "14771-0": Measure("fasting_glucose", {**_MASS, "mmol/l": 18.016}),
    "2093-3": Measure("total_cholesterol", _CHOL),
    "2571-8": Measure("triglycerides", {**_MASS, "mmol/l": 88.57}),
    "2085-9": Measure("hdl", _CHOL),
    "13457-7": Measure("ldl", _CHOL),
    "18262-6": Measure("ldl", _CHOL),
    "718-7": Measure("hemoglobin", {"g/dl": 1.0, "g/l": 0.1, "mmol/l": 1.6114}),
    "2160-0": Measure("serum_creatinine", {**_MASS, "umol/l": 1 / 88.42}),
    "14682-9": Measure("serum_creatinine", {**_MASS, "umol/l": 1 / 88.42}),
    "1920-8": Measure("ast", _ENZYME),
    "1742-6": Measure("alt", _ENZYME),
    "2324-2": Measure("ggt", _ENZYME),
}
# Vital-sign panels whose components carry the coded values (the FHIR blood-pressure profile).
PANELS = frozenset({"85354-9", "55284-4", "35094-2"})
URINE_PROTEIN = "20454-5"
SMOKING = "72166-2"

# Dipstick answers (SNOMED CT or text) to the record's code 1 (-) .. 6 (4+).
_DIPSTICK_SNOMED = {"260385009": 1, "167273002": 1, "260405006": 2, "260347006": 3, "260348001": 4,
                    "260349009": 5, "260350009": 6}
_DIPSTICK_TEXT = {"-": 1, "neg": 1, "negative": 1, "음성": 1, "±": 2, "+/-": 2, "trace": 2, "미량": 2,
                  "1+": 3, "+": 3, "2+": 4, "++": 4, "3+": 5, "+++": 5, "4+": 6, "++++": 6}
# Smoking status answers (ONC value set) to 1 never, 2 former, 3 current; "unknown" stays missing.
_SMOKING_SNOMED = {"266919005": 1, "8517006": 2, "449868002": 3, "428041000124106": 3,
                   "65568007": 3, "428071000124103": 3, "428061000124105": 3}
# "Smoker, current status unknown" and "unknown if ever smoked" cannot be placed: left missing.
_SMOKING_UNKNOWN = frozenset({"77176002", "266927001"})

# Diagnoses: ICD-10 / KCD prefixes and SNOMED CT codes -> history field.
_HISTORY_ICD = {"history_stroke": ("I60", "I61", "I62", "I63", "I64", "I69"),
                "history_heart_disease": ("I20", "I21", "I22", "I23", "I24", "I25", "I50"),
                "history_hypertension": ("I10", "I11", "I12", "I13", "I15"),
                "history_diabetes": ("E10", "E11", "E12", "E13", "E14"),
                "history_dyslipidemia": ("E78",)}
_HISTORY_SNOMED = {"230690007": "history_stroke", "422504002": "history_stroke", "22298006": "history_heart_disease",
                   "414545008": "history_heart_disease", "194828000": "history_heart_disease",
                   "53741008": "history_heart_disease", "84114007": "history_heart_disease",
                   "38341003": "history_hypertension", "59621000": "history_hypertension",
                   "44054006": "history_diabetes", "73211009": "history_diabetes",
                   "370992007": "history_dyslipidemia", "55822004": "history_dyslipidemia",
                   "13644009": "history_dyslipidemia"}
_FAMILY = {"history_stroke": "family_history_cvd", "history_heart_disease": "family_history_cvd",
           "history_diabetes": "family_history_diabetes"}
# Medicines by ATC class prefix.
_MEDICATION_ATC = {"on_antihypertensive": ("C02", "C03", "C07", "C08", "C09"),
                   "on_diabetes_medication": ("A10",), "on_statin": ("C10AA", "C10BA", "C10BX")}
_ACTIVE_MEDICATION = frozenset({"active", "intended", "on-hold"})
_REFUTED = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True)
class Issue:
    """One problem with the input: where (a resource reference and path) and why. Never a value."""

    location: str
    message: str


class FhirInputError(ValueError):
    """The resources cannot give a record. `status` is 412 when required data is absent, else 422."""

    def __init__(self, issues: list[Issue], status: int = 422) -> None:
        super().__init__("; ".join(f"{i.location}: {i.message}" for i in issues))
        self.issues = issues
        self.status = status


@dataclass
class FhirCheckup:
    """A canonical record read from FHIR, with the references of the resources it used."""

    record: dict
    patient: str
    basis: list[str] = field(default_factory=list)
    ignored: int = 0  # results skipped for their status (preliminary, cancelled, entered-in-error)
    sources: dict[str, str] = field(default_factory=dict)  # record field -> resource reference


def _ref(resource: dict, full_url: str | None) -> str:
    if resource.get("id"):
        return f"{resource.get('resourceType')}/{resource['id']}"
    return full_url or resource.get("resourceType", "resource")


def _when(text: str | None) -> dt.datetime | None:
    """A FHIR date or dateTime (possibly partial) as an aware datetime for ordering."""
    if not text or not isinstance(text, str):
        return None
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _effective(obs: dict) -> dt.datetime | None:
    return (_when(obs.get("effectiveDateTime")) or _when(obs.get("effectiveInstant"))
            or _when((obs.get("effectivePeriod") or {}).get("start")) or _when(obs.get("issued")))


def _codes(concept: dict | None, system: str) -> list[str]:
    return [c.get("code") for c in (concept or {}).get("coding") or []
            if c.get("system") == system and c.get("code")]


def _unit_key(quantity: dict) -> str:
    unit = quantity.get("code") or quantity.get("unit") or ""
    return str(unit).strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")


def _quantity(measure: Measure, quantity: dict | None, where: str, loinc: str) -> float:
    f = BY_NAME[measure.field]
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), (int, float)) \
            or isinstance(quantity.get("value"), bool):
        raise FhirInputError([Issue(where, f"LOINC {loinc} ({measure.field}) needs a valueQuantity with a number")])
    unit = _unit_key(quantity)
    if unit not in measure.units:
        shown = quantity.get("code") or quantity.get("unit") or "none"
        accepted = ", ".join(sorted({u for u in measure.units}))
        raise FhirInputError([Issue(where, f"LOINC {loinc} ({measure.field}): unit '{shown}' is not accepted "
                                           f"(accepted: {accepted}; the record is in {f.unit})")])
    value = float(quantity["value"]) * measure.units[unit]
    return round(value, 4)


def _coded_answer(obs: dict, snomed: dict[str, int], text: dict[str, int]) -> int | None:
    concept = obs.get("valueCodeableConcept")
    if concept:
        for code in _codes(concept, SNOMED):
            if code in snomed:
                return snomed[code]
        for label in [concept.get("text")] + [c.get("display") for c in concept.get("coding") or []]:
            if isinstance(label, str) and label.strip().lower() in text:
                return text[label.strip().lower()]
    value = obs.get("valueString")
    if isinstance(value, str) and value.strip().lower() in text:
        return text[value.strip().lower()]
    return None


def _about_patient(resource: dict, patient_refs: set[str], key: str = "subject") -> bool:
    ref = (resource.get(key) or {}).get("reference")
    if not ref:
        return True
    return ref in patient_refs or any(ref.endswith("/" + r) for r in patient_refs if r.startswith("Patient/"))


def read_patient(patient: dict, resources: Iterable[tuple[dict, str | None]],
                 today: dt.date | None = None) -> FhirCheckup:
    """The canonical record of `patient` from (resource, fullUrl) pairs; raises FhirInputError."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirInputError([Issue("patient", "a Patient resource is required")], status=412)
    pid = patient.get("id")
    if not pid:
        raise FhirInputError([Issue("Patient.id", "the Patient needs an id")])
    patient_refs = {f"Patient/{pid}"}
    issues: list[Issue] = []
    gender = patient.get("gender")
    sex = {"male": "M", "female": "F"}.get(gender or "")
    if sex is None:
        issues.append(Issue(f"Patient/{pid}.gender",
                            "must be male or female: the risk models are sex-specific"))
    birth = _when(patient.get("birthDate"))
    if birth is None:
        issues.append(Issue(f"Patient/{pid}.birthDate", "is required to know the age"))

    newest: dict[str, tuple[dt.datetime, object, str]] = {}
    ignored = 0

    def offer(name: str, when: dt.datetime | None, value: object, ref: str) -> None:
        stamp = when or dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        if name not in newest or stamp > newest[name][0]:
            newest[name] = (stamp, value, ref)

    history: dict[str, tuple[int, str]] = {}
    for resource, full_url in resources:
        kind = resource.get("resourceType")
        ref = _ref(resource, full_url)
        if kind == "Observation":
            if not _about_patient(resource, patient_refs):
                issues.append(Issue(f"{ref}.subject", "refers to a different patient"))
                continue
            if resource.get("status") not in USABLE_STATUS:
                ignored += 1
                continue
            when = _effective(resource)
            parts = [(resource, ref)]
            if set(_codes(resource.get("code"), LOINC)) & PANELS or resource.get("component"):
                parts += [(c, f"{ref}.component[{i}]") for i, c in enumerate(resource.get("component") or [])]
            for part, where in parts:
                if part.get("dataAbsentReason") and not any(k.startswith("value") for k in part):
                    continue  # a result recorded as not available: missing, not an error
                for loinc in _codes(part.get("code"), LOINC):
                    try:
                        if loinc in MEASURES:
                            m = MEASURES[loinc]
                            offer(m.field, when, _quantity(m, part.get("valueQuantity"), where, loinc), ref)
                        elif loinc == URINE_PROTEIN:
                            code = _coded_answer(part, _DIPSTICK_SNOMED, _DIPSTICK_TEXT)
                            if code is None:
                                raise FhirInputError([Issue(where, "LOINC 20454-5 (urine_protein) needs a dipstick "
                                                                   "answer: negative, trace, 1+ .. 4+")])
                            offer("urine_protein", when, code, ref)
                        elif loinc == SMOKING:
                            codes = _codes(part.get("valueCodeableConcept"), SNOMED)
                            code = _coded_answer(part, _SMOKING_SNOMED, {})
                            if code is not None:
                                offer("smoking_status", when, code, ref)
                            elif not set(codes) & _SMOKING_UNKNOWN:
                                raise FhirInputError([Issue(where, "LOINC 72166-2 (smoking_status) needs a SNOMED "
                                                                   "CT smoking-status answer")])
                    except FhirInputError as e:
                        issues.extend(e.issues)
        elif kind == "Condition":
            if not _about_patient(resource, patient_refs) or \
                    set(_codes(resource.get("verificationStatus"), "http://terminology.hl7.org/CodeSystem/"
                                                                    "condition-ver-status")) & _REFUTED:
                continue
            for name in _history_fields(resource.get("code")):
                history[name] = (1, ref)
        elif kind == "FamilyMemberHistory":
            if not _about_patient(resource, patient_refs, "patient") or resource.get("status") == "entered-in-error":
                continue
            for cond in resource.get("condition") or []:
                for name in _history_fields(cond.get("code")):
                    if name in _FAMILY:
                        history[_FAMILY[name]] = (1, ref)
        elif kind == "MedicationStatement":
            if not _about_patient(resource, patient_refs) or resource.get("status") not in _ACTIVE_MEDICATION:
                continue
            atc = _codes(resource.get("medicationCodeableConcept"), ATC)
            for name, prefixes in _MEDICATION_ATC.items():
                if any(c.startswith(prefixes) for c in atc):
                    history[name] = (1, ref)
    if issues:
        raise FhirInputError(issues)

    stamps = [w for w, _, _ in newest.values() if w.year > 1]
    exam_day = max(stamps).date() if stamps else (today or dt.date.today())
    record: dict = {"person_id": pid, "exam_date": exam_day.isoformat(), "sex": sex}
    age = exam_day.year - birth.year - ((exam_day.month, exam_day.day) < (birth.month, birth.day))
    record["age"] = age
    sources = {"sex": f"Patient/{pid}", "age": f"Patient/{pid}"}
    for name, (_, value, ref) in newest.items():
        record[name] = value
        sources[name] = ref
    for name, (value, ref) in history.items():
        record[name] = value
        sources[name] = ref
    basis = list(dict.fromkeys(ref for name, ref in sources.items() if not ref.startswith("Patient/")))
    return FhirCheckup(record=record, patient=f"Patient/{pid}", basis=basis, ignored=ignored, sources=sources)


def _history_fields(concept: dict | None) -> set[str]:
    out = {_HISTORY_SNOMED[c] for c in _codes(concept, SNOMED) if c in _HISTORY_SNOMED}
    for coding in (concept or {}).get("coding") or []:
        system = str(coding.get("system", "")).lower()
        if "icd-10" in system or "icd10" in system or "kcd" in system:
            code = str(coding.get("code", "")).upper().replace(".", "")
            out |= {name for name, prefixes in _HISTORY_ICD.items() if code.startswith(prefixes)}
    return out


def bundle_entries(bundle: dict, where: str = "Bundle") -> list[tuple[dict, str | None]]:
    """(resource, fullUrl) for each entry; an entry without a resource is an error."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirInputError([Issue(where, "must be a FHIR Bundle")])
    out = []
    for i, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not resource.get("resourceType"):
            raise FhirInputError([Issue(f"{where}.entry[{i}]", "has no resource")])
        out.append((resource, entry.get("fullUrl")))
    return out


def read_bundle(bundle: dict, today: dt.date | None = None) -> FhirCheckup:
    """The record of the one Patient in a Bundle (contract section 3)."""
    entries = bundle_entries(bundle)
    patients = [r for r, _ in entries if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise FhirInputError([Issue("Bundle", f"must hold exactly one Patient (found {len(patients)})")],
                             status=412 if not patients else 422)
    return read_patient(patients[0], [(r, u) for r, u in entries if r.get("resourceType") != "Patient"], today)


# The LOINC code and UCUM unit written for each record field (the first code of MEASURES wins).
_WRITE = {m.field: code for code, m in reversed(list(MEASURES.items()))}
_UCUM = {"mmHg": "mm[Hg]", "cm": "cm", "kg": "kg", "mg/dL": "mg/dL", "g/dL": "g/dL", "U/L": "U/L"}
_DIPSTICK_WRITE = {v: k for k, v in reversed(list(_DIPSTICK_SNOMED.items()))}
_SMOKING_WRITE = {1: "266919005", 2: "8517006", 3: "449868002"}
_HISTORY_WRITE = {name: code for code, name in reversed(list(_HISTORY_SNOMED.items()))}
_MEDICATION_WRITE = {"on_antihypertensive": ("C09AA05", "ramipril"), "on_diabetes_medication": ("A10BA02", "metformin"),
                     "on_statin": ("C10AA05", "atorvastatin")}


def to_bundle(record: dict, birth_date: str | None = None) -> dict:
    """A FHIR R4 collection Bundle (Patient + final Observations) holding a canonical record.

    The inverse of `read_bundle` for the fields FHIR carries; used to build test and demo patients.
    """
    pid = re.sub(r"[^A-Za-z0-9.-]", "-", str(record["person_id"]))[:64]  # FHIR id characters
    when = str(record.get("exam_date") or dt.date.today().isoformat())
    if birth_date is None:
        age = record.get("age")
        if age is None:
            raise ValueError("age is needed to write a birth date")
        # Born on 1 January: the age at the exam is exactly `age`.
        birth_date = dt.date(int(when[:4]) - int(age), 1, 1).isoformat()
    sex = {"M": "male", "F": "female", 1: "male", 2: "female"}[record["sex"]]
    entries = [{"fullUrl": f"urn:uuid:patient-{pid}",
                "resource": {"resourceType": "Patient", "id": pid, "gender": sex, "birthDate": birth_date}}]

    def observation(n: int, code: str, display: str, value: dict) -> None:
        oid = f"{pid}-obs-{n}"
        entries.append({"fullUrl": f"urn:uuid:{oid}", "resource": {
            "resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when, **value}})

    for name in (f for f in BY_NAME if f in _WRITE):
        value, code = record.get(name), _WRITE[name]
        if value is not None:
            unit = BY_NAME[name].unit
            observation(len(entries), code, BY_NAME[name].label_en,
                        {"valueQuantity": {"value": float(value), "unit": unit, "system": "http://unitsofmeasure.org",
                                           "code": _UCUM[unit]}})
    if record.get("urine_protein") is not None:
        code = int(record["urine_protein"])
        observation(len(entries), URINE_PROTEIN, "Protein [Presence] in Urine by Test strip",
                    {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": _DIPSTICK_WRITE[code]}],
                                              "text": BY_NAME["urine_protein"].codes[code]}})
    if record.get("smoking_status") is not None:
        code = int(record["smoking_status"])
        observation(len(entries), SMOKING, "Tobacco smoking status",
                    {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": _SMOKING_WRITE[code]}]}})
    subject = {"reference": f"Patient/{pid}"}
    for name, code in _HISTORY_WRITE.items():
        if record.get(name) == 1:
            entries.append({"resource": {"resourceType": "Condition", "id": f"{pid}-{name.replace('_', '-')}", "subject": subject,
                                         "code": {"coding": [{"system": SNOMED, "code": code}]}}})
    for name, (code, display) in _MEDICATION_WRITE.items():
        if record.get(name) == 1:
            entries.append({"resource": {"resourceType": "MedicationStatement", "id": f"{pid}-{name.replace('_', '-')}",
                                         "status": "active", "subject": subject,
                                         "medicationCodeableConcept": {"coding": [{"system": ATC, "code": code,
                                                                                   "display": display}]}}})
    for name, code in (("family_history_cvd", "22298006"), ("family_history_diabetes", "44054006")):
        if record.get(name) == 1:
            entries.append({"resource": {"resourceType": "FamilyMemberHistory", "id": f"{pid}-{name.replace('_', '-')}",
                                         "status": "completed", "patient": subject,
                                         "relationship": {"coding": [{
                                             "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                             "code": "FTH"}]},
                                         "condition": [{"code": {"coding": [{"system": SNOMED, "code": code}]}}]}})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
