"""FHIR R4 resources to canonical checkup records (contract section 3).

A Patient gives sex and birth date; Observations coded in LOINC give the measurements;
Conditions, FamilyMemberHistory, MedicationStatements and MedicationRequests fill the history and
medication fields.

Checkups (visits). A person's Observations are grouped by date into checkups, oldest first, because
the values of one visit may be recorded over a few days (the blood drawn on Monday, the lab result
dated Wednesday): a checkup starts at the earliest date not yet placed and takes every Observation
dated less than `visit_window_days` days after that date (default 7; the service takes it from
`CHECKUP_RISK_FHIR_VISIT_DAYS`). The
window is anchored at the visit's first day, never chained, so weekly blood-pressure readings do not
merge into one endless visit. Visits are made by measurements: a questionnaire answer (smoking,
drinking, activity) joins the visit that holds its day or starts up to ANSWER_LEAD_DAYS (30) after
it, and is otherwise left out with a warning. A checkup's `exam_date` is its first day and its age is the age on that
day. Within one checkup the newest final, amended or corrected value of each field wins. The newest
checkup is the one to score; the earlier ones are its history, exactly as earlier rows of the same
person in a file: the caller passes all the records to `Scorer.score_records` and uses the newest's
result. Every checkup the bundle holds is used as history, as every earlier row of a file is (the
CDS prefetch cannot filter by date; its `_count` bounds what a server sends). A caller may pass
`history_window_years` to leave out checkups that start longer before the newest one. An
Observation with no date at all (no effective[x], no issued) is left out with a warning: it may be
years old. Two different values of one field at the same time: the newer revision
(`_newer`: issued later, a higher meta.versionId, or amended or corrected over final) is used;
results that no revision orders are combined whatever their order in the input (measurements
averaged, coded grades the higher), with a warning naming them.

Conditions count from their onset (onsetDateTime, onsetPeriod.start, else onsetAge in years from
the start of the birth year, else recordedDate): a Condition
with onset after a checkup is not history for that checkup; one without any date counts for every
checkup. For the newest checkup every known Condition counts, whatever its date: a disease diagnosed
since the last checkup is known now and is never predicted as a new one (a warning names a
Condition dated after the checkup scored, of a disease not on record before it). Treatment is read the same
way from active MedicationStatements (effective[x], else dateAsserted; up to effectivePeriod.end when
one is given, since lists often leave a finished course "active") and active MedicationRequests
(authoredOn), by ATC class; a completed (dispensed) MedicationRequest counts at checkups up to
COMPLETED_REQUEST_DAYS (a year) after it was written. A lipid-lowering drug other than a statin
says the person's dyslipidemia is treated: `history_dyslipidemia`, a diagnosis, which lasts (from
any statement or request that says it was taken, stopped or dispensed ones too).

Korean systems (KR Core 2.0). Conditions coded in KCD-8 (or any ICD-10-shaped system) are read by
their ICD-10 category ("I10.9", "E785", "E11.3†" all count). A medicine coded only in HIRA EDI or
KPIS KD codes is read by its ingredient (generic) names (`features.medications`: English INN or
Korean, combination products split into their ingredients): from the krcore-medicationIngredient
extension (an ATC code there counts as ATC), the concept's text and displays, or a referenced
Medication's code and ingredients. An ATC code, wherever given, decides alone. A medicine with
neither an ATC code nor a recognised name is a warning ("drug class could not be read"), never an
error. Laboratory Observations coded only in HIRA EDI procedure codes are not read: the KR Core
CodeSystem publishes no content and no source checked here gives the codes of the checkup tests.

Dates. An Observation's date is the first of effectiveDateTime, effectiveInstant,
effectivePeriod.start, issued that is a plausible checkup date (EXAM_DATE_MIN .. today); one that is
not (a 0001-01-01 placeholder, a typo, a future date) is a warning naming its path, and an
Observation with no plausible date, or no date at all, is left out with a warning. A patient left
without any measurement is not refused: the service answers that there is no checkup to score. A
date of a year or
a month only ("2023", "2023-05"; a birthDate too) is read as its first day, with a warning that it
is approximate. A history date (onset, recordedDate, effective,
dateAsserted, authoredOn, FamilyMemberHistory.date) before the birth year or in the future is read
as no date, with a warning; earlier dates than EXAM_DATE_MIN are real history.

Negative answers. The absence of a Condition is not a "no", so a history or treatment field is 0
only when a resource says so: a Condition of the disease with verificationStatus `refuted`, a
MedicationStatement of the class with status `not-taken` (a treatment field only, never a
diagnosis), a FamilyMemberHistory whose condition is
the SNOMED CT situation "No family history of cardiovascular disease" (160270001) or "... of
diabetes" (160274005) (the negation pattern of the FHIR FamilyMemberHistory "negation" example: a
"no history of" situation as the condition code). A negative holds for the checkup it is dated at
(Condition recordedDate, else onset; MedicationStatement effective[x], else dateAsserted;
FamilyMemberHistory date): the checkup whose visit window holds that date, or the newest checkup for
a date after it or no date at all. A positive that counts for a checkup (see above) always wins over
a negative: a diagnosis never heals, and for the newest checkup every known positive counts.
Family history is dated by FamilyMemberHistory.date like a Condition by its onset (undated: every
checkup), and is a parent's or a sibling's (`_parent_or_sibling`), as the NHIS questionnaire asks.

Lifestyle. Alcohol use is LOINC 11331-6 (History of Alcohol use; a SNOMED CT drinker / non-drinker
finding, a yes/no answer (HL7 v2-0136 Y/N, LOINC LA33-6 / LA32-8, valueBoolean) or its text) and
74013-4 (Alcoholic drinks per day: more than 0 is a drinker, 0 is not); physical activity is LOINC
89555-7 (Exercise Vital Sign: days a week of moderate to strenuous activity, 0..7, unit d/wk).

Robust reading. Every quantity's unit is checked: molar and other convertible units are converted
with the analyte's factor, so a value is never read in the wrong unit. A value that cannot be read
(an unknown answer code, a unit that cannot be converted or is missing, no number) or that lies
outside its field's plausible range (`features.schema` low..high) after conversion leaves its field
missing and becomes a warning naming the resource (for a range, the unit it was sent in, the
conversion and the range; never the value): it never refuses the patient. A result beyond a
measuring range, sent as a bound (valueQuantity.comparator: "glucose > 600 mg/dL", "GGT < 5 U/L"),
is read as its limit (just past it for a strict bound, "HDL < 40" as 39.99; an analyser's limit past
the plausible range as the range's end), with a warning, when no clinical cut-off lies between the
value read and the values the bound allows: a diabetic glucose is then never read as missing and
scored as a new diabetes. A bound across a cut-off ("glucose < 130"), and any bound on weight or
height (BMI is judged from both), is left missing, with a warning. A resource that is not
valid FHIR R4 (checked by the fhir.resources R4B models) is left out with a warning saying what is
wrong; a Patient that is not refuses. LOINC is read under its URI and its OID
(urn:oid:2.16.840.1.113883.6.1). Resources may refer to the Patient by its reference, by an
absolute URL ending in it, or by the Patient entry's fullUrl (a urn:uuid in a transaction Bundle);
a Patient without an id is known by its fullUrl, a subject with only an identifier by the Patient's
identifiers. A resource about another patient is never read, and is named in one warning. Only what
cannot describe a person (no Patient, no usable sex or birth date) is refused with `FhirInputError`.
The records are then validated like any other record by the caller.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
import math
import re
import unicodedata
import urllib.parse
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from features.answers import DIPSTICK_TEXT, text_answer
from features.condition_names import history_of_names
from features.cutoffs import BP_STAGE_BOUNDS, EGFR_CKD, JUDGEMENT_CUTS
from features.derive import Columns, egfr_ckd_epi_2021
from features.eligibility import FLAGS, RULES
from features.medications import LIPID_LOWERING, classes_of_names
from features.schema import BY_NAME, EXAM_DATE_MIN, EXAM_DATE_RANGE_TEXT, SEX_CODES, SEX_WORDS, latest_today
from features.units import UNITS

LOINC = "http://loinc.org"
# LOINC's HL7 OID, which CDA-derived and older HL7 v2 systems send as the system: read as LOINC.
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
SNOMED_OID = "urn:oid:2.16.840.1.113883.6.96"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

# Patient.gender (FHIR AdministrativeGender) -> the record's sex; "other" and "unknown" have no model.
_SEX_OF_GENDER: dict[str, str] = {word: code for code, word in SEX_WORDS.items()}

# Statuses whose value is a result to use ("corrected" is a kind of "amended" in R4).
USABLE_STATUS = frozenset({"final", "amended", "corrected"})

# Defaults of the visit window and of the history kept (each overridable per call and by environment).
VISIT_DAYS = 7
# The time zone whose calendar days date a checkup: Korea's (the service takes it from
# CHECKUP_RISK_TIME_ZONE). A result written at 07:40+09:00 or at 22:40Z the day before is one day.
DEFAULT_TIME_ZONE = "Asia/Seoul"
# Observations that are questionnaire answers, not measurements: they join a checkup, never make one.
ANSWERS = frozenset({"smoking_status", "drinking", "activity_days_per_week"})
# The NHIS questionnaire may be answered online up to weeks before the exam: an answer this many days
# (or fewer) before a visit is that visit's.
ANSWER_LEAD_DAYS = 30


@dataclass(frozen=True)
class Measure:
    """How one LOINC code maps to a record field: accepted units and their factor to the record's unit."""

    field: str
    units: dict[str, float]


# The molar LOINC codes (labs outside Korea report lipids and glucose in mmol/L under these) were
# checked against the FHIR example value-set expansion (14647-2) and public LOINC tables:
# 14771-0 Glucose [Moles/volume] in Serum or Plasma (fasting), 14647-2 Cholesterol [Moles/volume],
# 14927-8 Triglyceride [Moles/volume], 14646-4 Cholesterol in HDL [Moles/volume], 22748-8 Cholesterol
# in LDL [Moles/volume], 39469-2 Cholesterol in LDL [Moles/volume] by calculation, 14682-9 Creatinine
# [Moles/volume], 59260-0 Hemoglobin [Moles/volume] in Blood. LDL also comes as 2089-1 (Cholesterol
# in LDL [Mass/volume], the method not said: what many laboratories send), 13457-7 (calculated),
# 18262-6 (direct) and 96259-7 (Martin-Hopkins): one analyte for this model. Each also takes the mass unit, since
# systems do send a mass-unit value under a molar code, and the unit decides the factor.
MEASURES: dict[str, Measure] = {
    "8480-6": Measure("sbp", UNITS["sbp"]),
    "8462-4": Measure("dbp", UNITS["dbp"]),
    "8302-2": Measure("height_cm", UNITS["height_cm"]),
    "29463-7": Measure("weight_kg", UNITS["weight_kg"]),
    "8280-0": Measure("waist_cm", UNITS["waist_cm"]),
    "1558-6": Measure("fasting_glucose", UNITS["fasting_glucose"]),
    "14771-0": Measure("fasting_glucose", UNITS["fasting_glucose"]),
    "2093-3": Measure("total_cholesterol", UNITS["total_cholesterol"]),
    "14647-2": Measure("total_cholesterol", UNITS["total_cholesterol"]),
    "2571-8": Measure("triglycerides", UNITS["triglycerides"]),
    "14927-8": Measure("triglycerides", UNITS["triglycerides"]),
    "2085-9": Measure("hdl", UNITS["hdl"]),
    "14646-4": Measure("hdl", UNITS["hdl"]),
    "2089-1": Measure("ldl", UNITS["ldl"]),
    "13457-7": Measure("ldl", UNITS["ldl"]),
    "18262-6": Measure("ldl", UNITS["ldl"]),
    "96259-7": Measure("ldl", UNITS["ldl"]),
    "22748-8": Measure("ldl", UNITS["ldl"]),
    "39469-2": Measure("ldl", UNITS["ldl"]),
    "718-7": Measure("hemoglobin", UNITS["hemoglobin"]),
    "59260-0": Measure("hemoglobin", UNITS["hemoglobin"]),
    "2160-0": Measure("serum_creatinine", UNITS["serum_creatinine"]),
    "14682-9": Measure("serum_creatinine", UNITS["serum_creatinine"]),
    "1920-8": Measure("ast", UNITS["ast"]),
    "1742-6": Measure("alt", UNITS["alt"]),
    "2324-2": Measure("ggt", UNITS["ggt"]),
}


# Glucose codes that do not say the person was fasting (serum or plasma, blood; mass and molar):
# never read as the fasting glucose, which defines diabetes, but named in one warning, since a
# system may code a checkup's (fasting) glucose so.
NOT_FASTING_GLUCOSE = frozenset({"2345-7", "2339-0", "14749-6", "15074-8"})
# eGFR as a laboratory reports it (MDRD, CKD-EPI 2009 and 2021, by creatinine): not read, since
# eGFR is computed from the creatinine by one equation (`features.derive.egfr_ckd_epi_2021`), but
# named, so that a sender sees why a kidney result gave nothing.
EGFR_REPORTED = frozenset(
    {"33914-3", "48642-3", "48643-1", "50044-7", "62238-1", "69405-9", "77147-7", "88293-6", "88294-4", "98979-8"}
)
# Vital-sign panels whose components carry the coded values (the FHIR blood-pressure profile;
# 55284-4 is what US-Core style servers send, 85354-9 the FHIR vital-signs panel).
PANELS = frozenset({"85354-9", "55284-4", "35094-2"})
URINE_PROTEIN = "20454-5"
# The same strip read by an analyser, reported as its mg/dL pad value (5804-0 Protein [Mass/volume]
# in Urine by Test strip; 50561-0 the automated strip): a grade by the pads' usual values, or, sent
# as a coded or text answer, read as 20454-5 is.
URINE_PROTEIN_MASS = frozenset({"5804-0", "50561-0"})
SMOKING = "72166-2"
ALCOHOL = "11331-6"  # History of Alcohol use (coded or text answer)
ALCOHOL_PER_DAY = "74013-4"  # Alcoholic drinks per day (a quantity, /d)
ACTIVITY = "89555-7"  # Days per week of moderate to strenuous physical activity (Exercise Vital Sign, d/wk)
# Every Observation code this reader uses (what the CDS prefetch asks for).
OBSERVATION_CODES: tuple[str, ...] = (
    *MEASURES,
    URINE_PROTEIN,
    *sorted(URINE_PROTEIN_MASS),
    SMOKING,
    ALCOHOL,
    ALCOHOL_PER_DAY,
    ACTIVITY,
    *sorted(PANELS),
)
V2_YES_NO = "http://terminology.hl7.org/CodeSystem/v2-0136"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"

# Dipstick answers to the record's code 1 (-) .. 6 (4+). SNOMED CT "Urine protein test" findings
# (167273002 negative, 167274008 trace, 167275009 +, 167276005 ++, 167277001 +++, 167278006 ++++;
# checked against published value sets: note that 167275009 is "+", not trace) and the qualifier
# values some systems send instead; the LOINC answer LA6577-6 "Negative". Other LOINC answers are
# read from their display text ("Trace", "1+"), which the answer list fixes.
_DIPSTICK_SNOMED = {
    "167273002": 1,
    "167274008": 2,
    "167275009": 3,
    "167276005": 4,
    "167277001": 5,
    "167278006": 6,
    "260385009": 1,
    "260405006": 2,
    "260347006": 3,
    "260348001": 4,
    "260349009": 5,
    "260350009": 6,
}
_DIPSTICK_LOINC = {"LA6577-6": 1}
# Smoking status answers to 1 never, 2 former, 3 current. SNOMED CT (ONC / US Core value set) and the
# LOINC answers of 72166-2 (checked against the IPS LOINC-to-SNOMED concept map: LA18976-3 current
# every day, LA18977-1 current SOME day (not former), LA15920-4 former, LA18978-9 never, LA18981-3
# heavy, LA18982-1 light (both current), LA18979-7 smoker with current status unknown, LA18980-5
# unknown if ever smoked).
_SMOKING_SNOMED = {
    "266919005": 1,
    "8517006": 2,
    "449868002": 3,
    "428041000124106": 3,
    "65568007": 3,
    "428071000124103": 3,
    "428061000124105": 3,
    # Current smokers by amount: trivial, light, moderate, heavy, very heavy cigarette smoker; moderate
    # smoker (20 or less a day); occasional cigarette smoker.
    "266920004": 3,
    "160603005": 3,
    "160604004": 3,
    "160605003": 3,
    "160606002": 3,
    "56578002": 3,
    "230059006": 3,
    "77176002": None,
    "266927001": None,
}
_SMOKING_LOINC = {
    "LA18978-9": 1,
    "LA15920-4": 2,
    "LA18976-3": 3,
    "LA18977-1": 3,
    "LA18981-3": 3,
    "LA18982-1": 3,
    "LA18979-7": None,
    "LA18980-5": None,
}
_SMOKING_TEXT = {
    "never smoker": 1,
    "never": 1,
    "non-smoker": 1,
    "nonsmoker": 1,
    "비흡연": 1,
    "비흡연자": 1,
    "흡연 안함": 1,
    "흡연안함": 1,
    "피우지 않음": 1,
    "former smoker": 2,
    "ex-smoker": 2,
    "former": 2,
    "과거흡연": 2,
    "과거 흡연": 2,
    "금연": 2,
    "current smoker": 3,
    "current every day smoker": 3,
    "current some day smoker": 3,
    "smoker": 3,
    "현재흡연": 3,
    "현재 흡연": 3,
    "흡연": 3,
    # Qualifiers a Korean EMR puts in brackets after "흡연": read only with it ("흡연(현재)").
    "현재": 3,
    "과거": 2,
    "unknown": None,
    "unknown if ever smoked": None,
    "smoker, current status unknown": None,
}

# Alcohol use answers to the record's drinking (1 drinks now, 0 does not). SNOMED CT findings of
# alcohol drinking behaviour, checked against published value sets (India NDHM "Alcohol Drinking
# Status", HL7 Austria alcohol-use frequency): 219006 current drinker, 28127009 social, 228276006
# occasional, 228277002 light, 43783005 moderate, 86933000 heavy, 228278007 fairly heavy, 228279004
# very heavy drinker; 105542008 current non-drinker, 783261004 lifetime non-drinker, 82581004
# ex-drinker, 160579004 stopped drinking (not drinking now). Yes/no answers: HL7 v2-0136 Y / N (the
# yes-no-unknown value set of the HL7 vital-records guides, with v3 NullFlavor UNK) and LOINC LA33-6
# Yes / LA32-8 No. AUDIT-C (72109-2) is not read: its items and score are separate codes and a
# score alone does not say "drinks now" in one agreed way.
_DRINKING_SNOMED = {
    "219006": 1,
    "28127009": 1,
    "228276006": 1,
    "228277002": 1,
    "43783005": 1,
    "86933000": 1,
    "228278007": 1,
    "228279004": 1,
    "105542008": 0,
    "783261004": 0,
    "82581004": 0,
    "160579004": 0,
}
_DRINKING_LOINC = {"LA33-6": 1, "LA32-8": 0}
_DRINKING_OTHER = ((V2_YES_NO, {"Y": 1, "N": 0}), (NULL_FLAVOR, {"UNK": None, "ASKU": None, "NASK": None}))
_DRINKING_TEXT = {
    "yes": 1,
    "y": 1,
    "예": 1,
    "네": 1,
    "있음": 1,
    "음주": 1,
    "drinker": 1,
    "current drinker": 1,
    "drinks": 1,
    "social drinker": 1,
    "occasional drinker": 1,
    "light drinker": 1,
    "moderate drinker": 1,
    "heavy drinker": 1,
    "no": 0,
    "n": 0,
    "아니오": 0,
    "아니요": 0,
    "없음": 0,
    "비음주": 0,
    "비음주자": 0,
    "금주": 0,
    "non-drinker": 0,
    "nondrinker": 0,
    "non drinker": 0,
    "current non-drinker": 0,
    "never": 0,
    "never drinker": 0,
    "lifetime non-drinker": 0,
    "ex-drinker": 0,
    "former drinker": 0,
    "stopped drinking": 0,
    "does not drink": 0,
    "unknown": None,
    "모름": None,
}
# Units (normalised as `_unit_keys` does) of a count per day and of days per week; no unit is also
# read, since the LOINC code itself fixes what is counted.
_PER_DAY_UNITS = frozenset(
    {
        "/d",
        "1/d",
        "{drink}/d",
        "{drinks}/d",
        "{drinks}/day",
        "drinks/day",
        "drinksperday",
        "/day",
        "perday",
        "{standarddrinks}/d",
        "{standard_drinks}/d",
    }
)
_DAYS_PER_WEEK_UNITS = frozenset(
    {
        "d/wk",
        "/wk",
        "1/wk",
        "{days}/wk",
        "{day}/wk",
        "days/week",
        "daysperweek",
        "days/wk",
        "day/week",
        "d/week",
        "/week",
        "perweek",
        "일/주",
        "회/주",
    }
)

# Diagnoses: ICD-10 / KCD prefixes and SNOMED CT codes -> history field.
_HISTORY_ICD = {
    "history_stroke": ("I60", "I61", "I62", "I63", "I64", "I69"),
    # Ischaemic heart disease and heart failure, and a coronary bypass graft (Z95.1) or stent (Z95.5).
    "history_heart_disease": ("I20", "I21", "I22", "I23", "I24", "I25", "I50", "Z951", "Z955"),
    "history_hypertension": ("I10", "I11", "I12", "I13", "I15"),
    "history_diabetes": ("E10", "E11", "E12", "E13", "E14"),
    "history_dyslipidemia": ("E78",),
    # Chronic kidney disease (N18, all stages) and dependence on renal dialysis (Z99.2).
    # Hypertensive kidney disease (I12, I13) and diabetic kidney disease (E1x.2) are CKD as well.
    "history_ckd": ("N18", "Z992", "I12", "I13", "E102", "E112", "E122", "E132", "E142"),
}
_HISTORY_SNOMED = {
    # Stroke, ischaemic stroke, cerebral infarction, cerebral and subarachnoid haemorrhage, and the
    # situation "history of cerebrovascular accident".
    "230690007": "history_stroke",
    "422504002": "history_stroke",
    "432504007": "history_stroke",
    "274100004": "history_stroke",
    "21454007": "history_stroke",
    "275526006": "history_stroke",
    # Myocardial infarction (acute, STEMI, NSTEMI, old, "history of"), ischaemic heart disease,
    # angina (unstable too), coronary artery disease, heart failure (congestive, chronic congestive).
    "22298006": "history_heart_disease",
    "57054005": "history_heart_disease",
    "401303003": "history_heart_disease",
    "401314000": "history_heart_disease",
    "1755008": "history_heart_disease",
    "399211009": "history_heart_disease",
    "414545008": "history_heart_disease",
    "194828000": "history_heart_disease",
    "25106000": "history_heart_disease",
    "4557003": "history_heart_disease",
    "53741008": "history_heart_disease",
    "84114007": "history_heart_disease",
    "42343007": "history_heart_disease",
    "88805009": "history_heart_disease",
    "38341003": "history_hypertension",
    "59621000": "history_hypertension",
    "44054006": "history_diabetes",
    "73211009": "history_diabetes",
    "370992007": "history_dyslipidemia",
    "55822004": "history_dyslipidemia",
    "13644009": "history_dyslipidemia",
    # Chronic kidney disease, its stages 1 to 5 (3a, 3b), chronic renal failure and impairment, and
    # end-stage renal disease.
    "709044004": "history_ckd",
    "431855005": "history_ckd",
    "431856006": "history_ckd",
    "433144002": "history_ckd",
    "700378005": "history_ckd",
    "700379002": "history_ckd",
    "431857002": "history_ckd",
    "433146000": "history_ckd",
    "90688005": "history_ckd",
    "236425005": "history_ckd",
    "46177005": "history_ckd",
}
_FAMILY = {
    "history_stroke": "family_history_cvd",
    "history_heart_disease": "family_history_cvd",
    "history_diabetes": "family_history_diabetes",
}
# Family negatives: SNOMED CT situations "No family history of cardiovascular disease" (160270001)
# and "No family history of diabetes" (160274005), checked against DICOM CID 3758 (Cardiovascular
# Family History), as FamilyMemberHistory.condition.code.
_FAMILY_NEGATIVE = {"160270001": "family_history_cvd", "160274005": "family_history_diabetes"}
# Medicines by ATC class prefix.
_MEDICATION_ATC = {
    "on_antihypertensive": ("C02", "C03", "C07", "C08", "C09"),
    "on_diabetes_medication": ("A10",),
    "on_statin": ("C10AA", "C10BA", "C10BX"),
    # Any lipid-modifying agent (ezetimibe, fibrates, PCSK9 inhibitors, ...): dyslipidemia treated.
    LIPID_LOWERING: ("C10",),
}
# Fields a medicine implies that are diagnoses, not treatment: they last, and "not taken" says
# nothing of them.
_DIAGNOSIS_FIELDS = frozenset({LIPID_LOWERING})
# A statement counts as treatment only while "active": "intended" is not yet taken, "on-hold" is
# paused, and stopped, completed, unknown and entered-in-error say nothing about now (not-taken is a no).
_ACTIVE_STATEMENT = frozenset({"active"})
_ACTIVE_REQUEST = frozenset({"active"})
# A completed (dispensed) prescription: Korean systems (KR Core's examples among them) mark each
# dispensed chronic-disease prescription so, and renew it every one to six months. It counts as
# treatment at checkups within this many days after it was written; an older one no longer does.
COMPLETED_REQUEST_DAYS = 365
# A proposal or an option is advice, not treatment.
_NOT_TREATMENT_INTENT = frozenset({"proposal", "option"})
_REFUTED = "refuted"  # a "no": the history field is 0 at the checkup it is dated at
_IN_ERROR = "entered-in-error"  # not information at all
# A diagnosis not (yet) confirmed: neither a yes nor a no. Counting it would drop an outcome for a
# person who may not have the disease, so it is left out with a warning.
_UNCONFIRMED = frozenset({"unconfirmed", "provisional", "differential"})
_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


@dataclass(frozen=True)
class Issue:
    """One problem with the input: where (a resource reference and path) and why. Never a value.
    `paths`: the FHIRPath of each place, when one issue is about several (`location` then says them
    in words, for people); empty when `location` is the one path."""

    location: str
    message: str
    paths: tuple[str, ...] = ()

    @property
    def expressions(self) -> list[str]:
        """The OperationOutcome.issue.expression of this issue: valid FHIRPath only."""
        return list(self.paths) if self.paths else ([self.location] if self.location else [])


class FhirInputError(ValueError):
    """The resources cannot give a record. `status` is 412 when required data is absent, else 422."""

    def __init__(self, issues: list[Issue], status: int = 422) -> None:
        super().__init__("; ".join(f"{i.location}: {i.message}" for i in issues))
        self.issues = issues
        self.status = status


@dataclass
class FhirCheckup:
    """The canonical records read from FHIR for one person, with the resources each used.

    `records` are the person's checkups oldest first; the last is the one to score (`record`), the
    earlier ones are its history. Pass them all to `Scorer.score_records` and use the last result.
    """

    record: dict
    patient: str
    basis: list[str] = field(default_factory=list)  # every resource any record used
    ignored: int = 0  # results skipped for their status (preliminary, cancelled, entered-in-error)
    sources: dict[str, str] = field(default_factory=dict)  # newest record's field -> resource reference
    records: list[dict] = field(default_factory=list)
    record_sources: list[dict[str, str]] = field(default_factory=list)  # per record, as `sources`
    warnings: list[Issue] = field(default_factory=list)  # values left missing because unreadable

    def __post_init__(self) -> None:
        if not self.records:
            self.records = [self.record]
            self.record_sources = [self.sources]


@dataclass(frozen=True)
class _Value:
    name: str
    when: dt.datetime | None
    value: float | int
    ref: str
    code: str = ""  # the LOINC code it was read from
    # Which of two results taken at the same time is the newer one (`_newer`).
    issued: float | None = None  # Observation.issued as a timestamp
    version: float | None = None  # meta.versionId, when a number
    status: str = ""


@dataclass(frozen=True)
class _Dated:
    """A history or medication fact: the fields it sets and from when it holds (None: always); for
    a negative, the day it was stated (None: the newest checkup)."""

    names: frozenset[str]
    since: dt.date | None
    ref: str
    until: dt.date | None = None  # the last day it holds (None: from `since` on, for good)

    def holds_on(self, day: dt.date, newest: bool) -> bool:
        """Whether it counts at the checkup of `day`. An earlier checkup's history is what was known
        then; the newest takes every known fact, except one that has ended before it."""
        if self.until is not None and day > self.until:
            return False
        return newest or self.since is None or self.since <= day


def _ref(resource: dict, full_url: str | None) -> str:
    kind = resource.get("resourceType")
    kind = kind if isinstance(kind, str) and kind else "resource"  # a malformed one is named, never trusted
    if resource.get("id"):
        return f"{kind}/{resource['id']}"
    return full_url if isinstance(full_url, str) and full_url else kind


def _number_of(value: object) -> float | None:
    """A JSON number as a finite float, else None: a bool is no number, and an integer of hundreds of
    digits (valid JSON) overflows a float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _when(text: str | None, zone: dt.tzinfo) -> dt.datetime | None:
    """A FHIR date or dateTime (possibly partial) as an aware datetime in `zone`: a time written
    with another offset is moved into it (the same instant is the same day however it is written),
    and one without an offset, or a plain date, is read as a time there."""
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
    return value.astimezone(zone) if value.tzinfo else value.replace(tzinfo=zone)


# Where each dated resource keeps its date, in the order read: the first plausible one is used.
_OBSERVATION_DATES = (
    ("effectiveDateTime",),
    ("effectiveInstant",),
    ("effectivePeriod", "start"),
    ("effectivePeriod", "end"),
    ("issued",),
)
_ONSET_DATES = (("onsetDateTime",), ("onsetPeriod", "start"))  # then onsetAge, then recordedDate
_REFUTED_DATES = (("recordedDate",), ("onsetDateTime",), ("onsetPeriod", "start"))
_STATEMENT_DATES = (("effectiveDateTime",), ("effectivePeriod", "start"), ("dateAsserted",))
_REQUEST_DATES = (("authoredOn",),)
_FAMILY_DATES = (("date",),)


def _at(resource: dict, path: tuple[str, ...]) -> object:
    value: object = resource
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


class _Dates(NamedTuple):
    """The first plausible date of a resource, its path, and where a date was present but not plausible."""

    when: dt.datetime | None
    path: str
    bad: list[str]


def _dates(resource: dict, paths: tuple[tuple[str, ...], ...], low: dt.date, high: dt.date, zone: dt.tzinfo) -> _Dates:
    """The first date along `paths` that parses and whose day is within low..high (a placeholder
    such as 0001-01-01, a typo, a future date is no date at all); the paths passed over as bad."""
    bad: list[str] = []
    for path in paths:
        text = _at(resource, path)
        if text is None:
            continue
        when = _when(text, zone) if isinstance(text, str) else None
        day = _day(when)
        if when is not None and day is not None and low <= day <= high:
            return _Dates(when, ".".join(path), bad)
        bad.append(".".join(path))
    return _Dates(None, "", bad)


def _day(when: dt.datetime | None) -> dt.date | None:
    # The calendar day in the reading's time zone (`_when` moved it there).
    return when.date() if when is not None else None


# Other spellings of a code system's URI that mean the same system: its OID, and (`_system_key`)
# https, "www.", a trailing slash or capitals, which real systems send.
_SYSTEM_ALIASES: dict[str, str] = {
    LOINC_OID: LOINC,
    SNOMED_OID: SNOMED,
    "urn:oid:2.16.840.1.113883.6.73": ATC,
    "urn:oid:2.16.840.1.113883.5.111": ROLE_CODE,
}


@functools.lru_cache(maxsize=256)
def _system_key(system: str) -> str:
    text = system.strip()
    if text.lower().startswith("urn:"):
        alias = _SYSTEM_ALIASES.get(text.lower())
        return _system_key(alias) if alias else text
    return re.sub(r"^https?://(www\.)?", "http://", text.lower()).rstrip("/")


def _codes(concept: dict | None, system: str) -> list[str]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    key = _system_key(system)
    return [
        c["code"]
        for c in codings or []
        if isinstance(c, dict)
        and c.get("code")
        and isinstance(c.get("system"), str)
        and _system_key(c["system"]) == key
    ]


def _unit_keys(quantity: dict) -> list[str]:
    """The UCUM code first, then the display unit: some systems fill only `unit`. Compatibility
    forms (Korean systems send "㎎/㎗") read as their plain letters (NFKC)."""
    out = []
    for unit in (quantity.get("code"), quantity.get("unit")):
        if unit:
            plain = unicodedata.normalize("NFKC", str(unit)).strip().lower()
            out.append(plain.replace("µ", "u").replace("μ", "u").replace(" ", ""))
    return out


# A result beyond the measuring range comes as a bound (">600 mg/dL", "<5 U/L"): "above" or "below".
_BOUNDS: dict[str, bool] = {">": True, ">=": True, "<": False, "<=": False}


# (sex code, age in years) of the person an Observation is about, where known.
Person = tuple[str | None, float | None]

# Fields whose judgement is of a value derived from them with another field (BMI from weight and
# height): a bound on one cannot say which side of the derived value's cut-offs the person is on.
_JUDGED_THROUGH: frozenset[str] = frozenset({"height_cm", "weight_kg"})


def _reaches(value: float, bound: float) -> bool:
    return value >= bound


def _cut_sides(field_name: str) -> list[Callable[[float], bool]]:
    """One function per clinical cut-off of a field: which side of it a value lies on (as
    `features.cutoffs.Cut.beyond` judges it; the KSH stages are reached at their bounds)."""
    cuts = JUDGEMENT_CUTS.get(field_name)
    rows = list(cuts.values()) if isinstance(cuts, dict) else [cuts] if cuts else []
    sides: list[Callable[[float], bool]] = [
        functools.partial(row.beyond, cut=c) for row in rows for c in (row.borderline, row.disease) if c is not None
    ]
    if field_name in ("sbp", "dbp"):
        stage_bounds = [bounds[("sbp", "dbp").index(field_name)] for bounds in BP_STAGE_BOUNDS.values()]
        sides += [functools.partial(_reaches, bound=b) for b in stage_bounds if math.isfinite(b)]
    return sides


# How far past its limit a strict bound is read ("HDL < 40" as 39.99): finer than any field's
# resolution, so the value read lies among the values the bound allows.
_BOUND_STEP = 0.01


def bound_value(comparator: str, limit: float) -> float:
    """The value a bound is read as: its limit, or just past it for a strict bound ("<", ">")."""
    if comparator in (">=", "<="):
        return limit
    return limit + _BOUND_STEP if _BOUNDS[comparator] else limit - _BOUND_STEP


def _egfr_below_60(creatinine: float, person: Person) -> Any:
    """Whether eGFR is below 60 at this creatinine: for the person, or (sex or age unknown) for each
    adult extreme (either sex, the youngest and oldest age), one entry each."""
    sex, age = person
    if sex is not None and age is not None:
        who = [{"serum_creatinine": creatinine, "sex": sex, "age": age}]
    else:
        a = BY_NAME["age"]
        who = [{"serum_creatinine": creatinine, "sex": s, "age": x} for s in SEX_WORDS for x in (a.low, a.high)]
    return egfr_ckd_epi_2021(Columns.from_records(who)) < EGFR_CKD


def _crosses_a_cut(field_name: str, comparator: str, limit: float, person: Person = (None, None)) -> bool:
    """Whether the values a bound allows (beyond `limit`, in the record's unit) lie on both sides
    of a clinical cut-off of the field: the judgement table, the KSH stages, and for creatinine
    eGFR 60 at the person's age and sex (at any adult age and either sex when unknown). A bound that
    does not is read as `bound_value`: every judgement, and whether an outcome applies, is then what
    the true value gives ("glucose > 600" and "glucose >= 126" are diabetic, "HDL < 40" is low).
    Weight and height always do: BMI is judged from both."""
    if field_name in _JUDGED_THROUGH:
        return True
    above = _BOUNDS[comparator]
    # The value read and the far end of the allowed values: a side changes at most once between
    # them, so the two ends tell.
    near = bound_value(comparator, limit)
    far = math.inf if above else -math.inf
    if field_name == "serum_creatinine":
        # eGFR falls as creatinine rises: beyond an upper bound it is below 60 in the end, below a
        # lower bound it is above; the bound is clear when the near end is on that side.
        below_60 = _egfr_below_60(near, person)
        if not (below_60.all() if above else (~below_60).all()):
            return True
    return any(side(near) != side(far) for side in _cut_sides(field_name))


def _shows_disease(field_name: str, comparator: str, limit: float, person: Person = (None, None)) -> bool:
    """Whether every value a bound allows is in an outcome's disease range (`features.eligibility.RULES`:
    SBP >= 140 although stage 2 starts at 160; creatinine past eGFR 60 for this person although the
    judgement table's creatinine cut-off lies further): read as `bound_value` then, the outcome is
    known, whatever finer cut-offs the bound leaves open."""
    above = _BOUNDS[comparator]
    near = bound_value(comparator, limit)
    for _key, f, direction, cut in (r for rules in RULES.values() for r in rules):
        if f == "egfr" and field_name == "serum_creatinine" and above:
            if _egfr_below_60(near, person).all():
                return True
        elif f == field_name and above == (direction == ">="):
            if (near >= cut) if direction == ">=" else (near < cut):
                return True
    return False


def _quantity(
    measure: Measure, quantity: dict | None, where: str, loinc: str, person: Person = (None, None)
) -> float | Issue:
    """The value in the record's unit, or the Issue saying why it cannot be read."""
    f = BY_NAME[measure.field]
    number = _number_of(quantity.get("value")) if isinstance(quantity, dict) else None
    if quantity is None or number is None:
        return Issue(where, f"LOINC {loinc} ({measure.field}) has no numeric valueQuantity: left missing")
    comparator = quantity.get("comparator")
    if comparator is not None and comparator not in _BOUNDS:
        return Issue(where, f"LOINC {loinc} ({measure.field}) has comparator '{comparator}', not a value: left missing")
    keys = _unit_keys(quantity)
    unit = next((k for k in keys if k in measure.units), None)
    if unit is None:
        shown = quantity.get("code") or quantity.get("unit") or "none"
        accepted = ", ".join(sorted(measure.units))
        return Issue(
            where,
            f"LOINC {loinc} ({measure.field}): unit '{shown}' cannot be converted "
            f"(accepted: {accepted}; the record is in {f.unit}): left missing",
        )
    value = round(number * measure.units[unit], 4)
    if comparator is not None and _BOUNDS[comparator] and f.high is not None and value > f.high:
        # An analyser's upper limit may lie past the plausible range ("glucose > 750"): the plausible
        # end is as far as a value goes, and is on the same side of every cut-off. (A lower bound
        # below the range, "HDL < 0", allows no plausible value: it stays outside, and missing.)
        value = float(f.high)
    if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
        # Read, but not a value of this field (a typo, or a mg/dL number sent as mmol/L). The
        # warning names the unit it was read in and the conversion, never the value (warnings
        # never echo submitted values), so that the sender can see which it was.
        shown = quantity.get("code") or quantity.get("unit")
        converted = "" if measure.units[unit] == 1.0 else f", converted to {f.unit},"
        return Issue(
            where,
            f"LOINC {loinc} ({measure.field}): the value sent in {shown}{converted} is outside the plausible "
            f"{_number(f.low)}-{_number(f.high)} {f.unit} (a typo, or a value in another unit?): left missing",
        )
    if comparator is not None:
        if _crosses_a_cut(measure.field, comparator, value, person) and not _shows_disease(
            measure.field, comparator, value, person
        ):
            # "<130" glucose may be 100 or 127: reading it as 130 could call a diabetic normal.
            return Issue(
                where,
                f"LOINC {loinc} ({measure.field}) is a bound ('{comparator}') on both sides of a clinical cut-off, "
                "not a value: left missing",
            )
        read = bound_value(comparator, value)
        return min(max(read, f.low if f.low is not None else read), f.high if f.high is not None else read)
    return value


def _number(value: float | None) -> str:
    """A number as a person writes it: 2432, 0.45, 30 (never 2432.1600000001 or 3e+03)."""
    if value is None:
        return "?"
    text = f"{float(value):.4g}"
    return f"{float(value):.0f}" if "e" in text else text


def _answer(
    obs: dict,
    snomed: Mapping[str, int | None],
    loinc: Mapping[str, int | None],
    text: Mapping[str, int | None],
    others: tuple[tuple[str, Mapping[str, int | None]], ...] = (),
) -> tuple[bool, int | None]:
    """(recognised, code) of a coded or text answer; a recognised answer may mean 'unknown' (None)."""
    concept = obs.get("valueCodeableConcept")
    labels: list[object] = []
    if isinstance(concept, dict):
        for table, system in ((snomed, SNOMED), (loinc, LOINC), *((t, s) for s, t in others)):
            for code in _codes(concept, system):
                if code in table:
                    return True, table[code]
        labels = [concept.get("text")] + [c.get("display") for c in concept.get("coding") or []]
    labels.append(obs.get("valueString"))
    for label in labels:
        if isinstance(label, str) and (found := text_answer(label, text)) is not None:
            return True, found[0]
    return False, None


def _about_patient(resource: dict, reading: _Reading, key: str = "subject") -> bool:
    """Whether the resource's subject is the Patient: by reference (a version suffix such as
    "/_history/2" still names it), by a transaction's conditional reference on an identifier the
    Patient carries ("Patient?identifier=system|value"), else by such an identifier in the subject;
    no subject at all is the Bundle's one patient."""
    subject = resource.get(key)
    if not isinstance(subject, dict):
        return True
    ref = subject.get("reference")
    if ref:
        ref = _VERSION.sub("", str(ref))
        refs = reading.patient_refs
        if "?" in ref:
            return _conditional_match(ref, reading)
        return ref in refs or any(ref.endswith("/" + r) for r in refs if r.startswith("Patient/"))
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return _has_identifier(reading, ident.get("system"), str(ident["value"]))
    return True


def _has_identifier(reading: _Reading, system: object, value: str) -> bool:
    """Whether the Patient carries the identifier (any system when none is given)."""
    if system:
        return (str(system), value) in reading.patient_identifiers
    return value in {v for _, v in reading.patient_identifiers}


def _conditional_match(ref: str, reading: _Reading) -> bool:
    """Whether a conditional reference ("Patient?identifier=http://mrn|123") finds the Patient: only
    an identifier search can be checked here; any other criterion is not taken as this patient."""
    kind, _, query = ref.partition("?")
    criteria = urllib.parse.parse_qs(query)
    if kind.rsplit("/", 1)[-1] != "Patient" or set(criteria) != {"identifier"} or len(criteria["identifier"]) != 1:
        return False
    system, bar, value = criteria["identifier"][0].rpartition("|")
    if bar and not system:  # "|value": FHIR's token for an identifier without a system
        return bool(value) and ("", value) in reading.patient_identifiers
    return bool(value) and _has_identifier(reading, system if bar else None, value)


_VERSION = re.compile(r"/_history/[^/]+$")


def _identifier_key(ident: dict) -> tuple[str, str]:
    return str(ident.get("system") or ""), str(ident.get("value"))


def _elsewhere(resource: dict, ref: str, reading: _Reading, key: str = "subject") -> bool:
    """Whether the resource is about another patient: then it is left out with a warning. A bundle
    that mixes patients is an integration fault to see, but only a bundle that cannot describe
    its person is refused (contract section 3); no value of the other patient is ever read."""
    if _about_patient(resource, reading, key):
        return False
    reading.elsewhere.append(f"{ref}.{key}")
    return True


def _elsewhere_issue(paths: list[str]) -> Issue:
    """One warning for every resource about another patient (`_elsewhere`)."""
    which = "this resource refers" if len(paths) == 1 else f"these {len(paths)} resources refer"
    return _listed(paths, f"{which} to a different patient: not used")


def _revision(resource: dict, zone: dt.tzinfo) -> tuple[float | None, float | None, str]:
    """(issued, meta.versionId, status) of an Observation, for `_newer`."""
    issued = _when(resource.get("issued"), zone)
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    try:
        number = float(version) if isinstance(version, (str, int)) else None
    except (ValueError, OverflowError):
        number = None
    status = resource.get("status")
    return (
        issued.timestamp() if issued else None,
        number if number is not None and math.isfinite(number) else None,
        status if isinstance(status, str) else "",
    )


_REVISED = frozenset({"amended", "corrected"})


def _observation_values(
    resource: dict, ref: str, warnings: list[Issue], when: dt.datetime | None, person: Person = (None, None)
) -> list[_Value]:
    """Every readable value of one usable Observation (and its components); the rest become warnings.
    `person` (sex code, age in years on the Observation's day) judges a bound on creatinine."""
    out: list[_Value] = []
    # Naive `issued` times read in the checkup's zone (only their order matters).
    issued, version, status = _revision(resource, (when.tzinfo if when is not None else None) or dt.UTC)
    for part, where in _observation_parts(resource, ref):
        for loinc in dict.fromkeys(_codes(part.get("code"), LOINC)):
            got = _part_value(part, loinc, where, person)
            if isinstance(got, Issue):
                warnings.append(got)
            elif got is not None:
                out.append(_Value(got[0], when, got[1], ref, loinc, issued, version, status))
                comparator = (part.get("valueQuantity") or {}).get("comparator") if loinc in MEASURES else None
                if comparator:
                    warnings.append(_bound_note(where, loinc, got[0], comparator, float(got[1]), person))
    return out


def _bound_note(where: str, loinc: str, field_name: str, comparator: str, read: float, person: Person) -> Issue:
    """The warning for a bound read as `read`: on the same side of every clinical cut-off as the
    true value, or only in an outcome's disease range (finer grades beyond it left open)."""
    strict = comparator in (">", "<")
    inclusive = {">": ">=", "<": "<="}.get(comparator, comparator)  # `read` already lies past a strict limit
    at = f"read as its limit{' (just past it)' if strict else ''}"
    if not _crosses_a_cut(field_name, inclusive, read, person):
        said = "on the same side of every clinical cut-off as the true value"
    else:
        said = "in the disease range whatever the true value (a finer grade, a BP or kidney stage, may be higher)"
    return Issue(where, f"LOINC {loinc} ({field_name}) is a bound ('{comparator}'): {at}, {said}")


def _observation_parts(resource: dict, ref: str) -> list[tuple[dict, str]]:
    """(part, where) of the Observation and of its components (a panel's values are in them),
    without the parts recorded as not available (missing, not a problem)."""
    parts = [(resource, ref)]
    if set(_codes(resource.get("code"), LOINC)) & PANELS or resource.get("component"):
        parts += [(c, f"{ref}.component[{i}]") for i, c in enumerate(resource.get("component") or [])]
    return [
        (part, where)
        for part, where in parts
        if not (part.get("dataAbsentReason") and not any(k.startswith("value") for k in part))
    ]


# A strip's protein pads as analysers report them in mg/dL (negative, trace 10-20, 1+ 30, 2+ 100,
# 3+ 300, 4+ 1000 or more): the lowest value of each grade, for the record's codes 2 .. 6.
_STRIP_PAD_MG_DL = (10.0, 30.0, 100.0, 300.0, 1000.0)
_STRIP_UNITS = {"mg/dl": 1.0, "g/l": 100.0, "mg/l": 0.1}  # as `_unit_keys` spells them


def _strip_grade(quantity: dict, where: str, loinc: str) -> tuple[str, int] | Issue:
    """The dipstick grade of a strip's protein reported as a concentration (mg/dL pad value)."""
    number = _number_of(quantity.get("value"))
    unit = next((k for k in _unit_keys(quantity) if k in _STRIP_UNITS), None)
    if number is None or unit is None or number < 0:
        return Issue(
            where,
            f"LOINC {loinc} (urine_protein): the strip value has no number in mg/dL, g/L or mg/L: left missing",
        )
    return "urine_protein", 1 + bisect.bisect_right(_STRIP_PAD_MG_DL, number * _STRIP_UNITS[unit])


_ONE_UNIT = {"sbp": "mm[Hg]", "dbp": "mm[Hg]"}


def _part_value(
    part: dict, loinc: str, where: str, person: Person = (None, None)
) -> tuple[str, float | int] | Issue | None:
    """(record field, value) that one LOINC code of an Observation part gives; the Issue where its
    value cannot be read; None for a code this reader does not use or a known "unknown" answer."""
    if loinc in MEASURES:
        m = MEASURES[loinc]
        quantity = part.get("valueQuantity")
        whole = part.get("valueInteger")
        if quantity is None and m.field in _ONE_UNIT and isinstance(whole, int) and not isinstance(whole, bool):
            # A blood pressure has one unit: a bare integer is in it (other measures need their unit).
            quantity = {"value": whole, "code": _ONE_UNIT[m.field]}
        got = _quantity(m, quantity, where, loinc, person)
        return got if isinstance(got, Issue) else (m.field, got)
    if loinc in URINE_PROTEIN_MASS and isinstance(part.get("valueQuantity"), dict):
        return _strip_grade(part["valueQuantity"], where, loinc)
    if loinc == URINE_PROTEIN or loinc in URINE_PROTEIN_MASS:
        known, code = _answer(part, _DIPSTICK_SNOMED, _DIPSTICK_LOINC, DIPSTICK_TEXT)
        if known and code is not None:
            return "urine_protein", code
        return Issue(
            where,
            f"LOINC {loinc} (urine_protein): the answer is not a dipstick grade this service reads "
            "(negative, trace, 1+ .. 4+): left missing",
        )
    if loinc == SMOKING:
        known, code = _answer(part, _SMOKING_SNOMED, _SMOKING_LOINC, _SMOKING_TEXT)
        if code is not None:
            return "smoking_status", code
        if known:
            # "Smoker, current status unknown" or "unknown if ever smoked": missing, and said, since
            # the sender may think a smoker was read as one.
            return Issue(
                where,
                "LOINC 72166-2 (smoking_status): the answer does not say whether the person smokes now "
                "(current status or ever smoked unknown): left missing",
            )
        return Issue(
            where,
            "LOINC 72166-2 (smoking_status): the answer is not a smoking status this service reads: left missing",
        )
    if loinc == ALCOHOL:
        if isinstance(part.get("valueBoolean"), bool):
            return "drinking", int(part["valueBoolean"])
        known, code = _answer(part, _DRINKING_SNOMED, _DRINKING_LOINC, _DRINKING_TEXT, _DRINKING_OTHER)
        if code is not None:
            return "drinking", code
        return (
            None
            if known
            else Issue(
                where,
                "LOINC 11331-6 (drinking): the answer is not a yes / no or drinker "
                "status this service reads: left missing",
            )
        )
    if loinc == ALCOHOL_PER_DAY:
        drinks = _drinks_per_day(part, where)
        return drinks if isinstance(drinks, Issue) else ("drinking", drinks)
    if loinc == ACTIVITY:
        days = _days_per_week(part, where)
        return days if isinstance(days, Issue) else ("activity_days_per_week", days)
    return None


def _count(part: dict, units: frozenset[str]) -> float | str:
    """A plain count from valueQuantity (no unit, or one of `units`) or valueInteger, or why not."""
    if isinstance(part.get("valueInteger"), int) and not isinstance(part.get("valueInteger"), bool):
        whole = _number_of(part["valueInteger"])
        return "has no usable valueInteger" if whole is None else whole
    quantity = part.get("valueQuantity")
    number = _number_of(quantity.get("value")) if isinstance(quantity, dict) else None
    if quantity is None or number is None:
        return "has no numeric valueQuantity"
    keys = _unit_keys(quantity)
    if keys and not any(k in units for k in keys):
        return f"unit '{quantity.get('code') or quantity.get('unit')}' is not a count of this kind"
    if quantity.get("comparator"):
        return f"is a bound ('{quantity['comparator']}'), not a value"
    return number


def _drinks_per_day(part: dict, where: str) -> int | Issue:
    """74013-4 as drinking: more than 0 drinks a day is 1, 0 is 0."""
    quantity = part.get("valueQuantity")
    bound = (
        isinstance(quantity, dict)
        and quantity.get("comparator") in (">", ">=")
        and isinstance(quantity.get("value"), (int, float))
        and not isinstance(quantity.get("value"), bool)
        and (quantity["value"] > 0 or (quantity["comparator"] == ">" and quantity["value"] >= 0))
    )
    if bound:  # "> 0", ">= 5" a day: a drinker, whatever the exact number
        assert isinstance(quantity, dict)
        part = {**part, "valueQuantity": {k: v for k, v in quantity.items() if k != "comparator"}}
    low = (part.get("valueRange") or {}).get("low") if isinstance(part.get("valueRange"), dict) else None
    if isinstance(low, dict) and isinstance(low.get("value"), (int, float)) and low["value"] > 0:
        return 1  # "5 or more a day"
    got = _count(part, _PER_DAY_UNITS)
    if bound and not isinstance(got, str):
        return 1
    if isinstance(got, str) or got < 0:
        why = got if isinstance(got, str) else "is negative"
        return Issue(where, f"LOINC 74013-4 (drinking, drinks per day) {why}: left missing")
    return int(got > 0)


def _days_per_week(part: dict, where: str) -> int | Issue:
    """89555-7 as activity_days_per_week: a whole number of days, 0..7."""
    got = _count(part, _DAYS_PER_WEEK_UNITS)
    if isinstance(got, str):
        return Issue(where, f"LOINC 89555-7 (activity_days_per_week) {got}: left missing")
    if not 0 <= got <= 7 or got != int(got):
        return Issue(
            where, "LOINC 89555-7 (activity_days_per_week) is not a whole number of days a week (0..7): left missing"
        )
    return int(got)


class _Medicine(NamedTuple):
    """What a medication resource says its medicine is: ATC codes, and the names to read when none."""

    atc: list[str]
    names: list[str]
    unresolved: bool = False  # a medicationReference that names no Medication sent with it


def _concept_names(concept: object) -> list[str]:
    if not isinstance(concept, dict):
        return []
    labels = [concept.get("text"), *(c.get("display") for c in concept.get("coding") or [] if isinstance(c, dict))]
    return [label for label in labels if isinstance(label, str) and label.strip()]


def _ingredient_extensions(concept: object) -> tuple[list[str], list[str]]:
    """(ATC codes, names) of the KR Core ingredient extensions of a medication CodeableConcept.

    KR Core 2.0 defines it as http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/
    krcore-medicationIngredient on MedicationRequest.medicationCodeableConcept, value[x] only
    CodeableConcept, preferred binding ATC (checked against the IG's StructureDefinition and FSH
    source, github.com/hl7korea/krocre). Any url ending in "medicationIngredient" is read, and a
    valueString too, since drafts and local profiles differ from it."""
    atc: list[str] = []
    names: list[str] = []
    if not isinstance(concept, dict):
        return atc, names
    for ext in concept.get("extension") or []:
        if not isinstance(ext, dict) or not str(ext.get("url", "")).endswith("medicationIngredient"):
            continue
        value = ext.get("valueCodeableConcept")
        atc += _codes(value, ATC) if isinstance(value, dict) else []
        names += _concept_names(value)
        if isinstance(ext.get("valueString"), str) and ext["valueString"].strip():
            names.append(ext["valueString"])
    return atc, names


def _medicine(resource: dict, medications: dict[str, dict]) -> _Medicine:
    """The medicine of a MedicationStatement or MedicationRequest, from its CodeableConcept (with the
    KR Core ingredient extension) or a referenced / contained Medication (code, ingredients)."""
    concept = resource.get("medicationCodeableConcept")
    atc = _codes(concept, ATC) if isinstance(concept, dict) else []
    ext_atc, ext_names = _ingredient_extensions(concept)
    atc += ext_atc
    names = ext_names + _concept_names(concept)
    ref = (resource.get("medicationReference") or {}).get("reference")
    target = None
    if ref:
        target = medications.get(ref)
        if target is None and ref.startswith("#"):
            target = next(
                (
                    c
                    for c in resource.get("contained") or []
                    if c.get("resourceType") == "Medication" and c.get("id") == ref[1:]
                ),
                None,
            )
        if target is not None:
            atc += _codes(target.get("code"), ATC)
            for ingredient in target.get("ingredient") or []:
                item = ingredient.get("itemCodeableConcept") if isinstance(ingredient, dict) else None
                atc += _codes(item, ATC) if isinstance(item, dict) else []
                names += _concept_names(item)
            names += _concept_names(target.get("code"))
    return _Medicine(atc, names, unresolved=bool(ref) and target is None)


def _treatment_fields(medicine: _Medicine) -> set[str] | None:
    """The treatment fields the medicine sets: by ATC class when it has an ATC code, else by its
    ingredient names; None when neither says what it is."""
    if medicine.atc:
        found = {
            name for name, prefixes in _MEDICATION_ATC.items() if any(c.startswith(prefixes) for c in medicine.atc)
        }
    else:
        found = classes_of_names(medicine.names)
        if not found:
            return None
    if "on_statin" in found:
        # A statin (alone or with ezetimibe) is read as the record has always carried it: on_statin,
        # which eligibility already takes as treated dyslipidemia; the diagnosis field stays the record's.
        found.discard(LIPID_LOWERING)
    return found


def _age(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class _Person(NamedTuple):
    """Who the records are about, from the Patient resource."""

    pid: str
    ref: str
    sex: str
    birth: dt.date


@dataclass
class _Reading:
    """What a patient's resources have said so far, before it is grouped into checkups."""

    patient_refs: set[str]
    medications: dict[str, dict]  # Medication resources by reference and by fullUrl
    today: dt.date
    born: dt.date  # 1 January of the birth year: no history is dated before it
    zone: dt.tzinfo  # the time zone whose calendar days date the checkups and the history
    values: list[_Value] = field(default_factory=list)
    facts: list[_Dated] = field(default_factory=list)  # conditions, treatment and family history, dated
    negatives: list[_Dated] = field(default_factory=list)  # refuted conditions, treatment not taken, no family history
    warnings: list[Issue] = field(default_factory=list)  # values left missing because unreadable
    issues: list[Issue] = field(default_factory=list)  # what refuses the patient
    ignored: int = 0  # results skipped for their status
    unread_conditions: list[str] = field(default_factory=list)  # naming none of the history fields
    unfinished: list[tuple[str, str]] = field(default_factory=list)  # (Observation, its status): not final
    elsewhere: list[str] = field(default_factory=list)  # subject paths of resources about another patient
    not_fasting: list[str] = field(default_factory=list)  # glucose Observations not marked fasting
    unread_observations: list[str] = field(default_factory=list)  # Observations with no code read here
    patient_identifiers: frozenset[tuple[str, str]] = frozenset()  # (system, value) of Patient.identifier
    sex: str | None = None  # the record's sex code, for judging a bound on creatinine at this person's eGFR

    def history_day(self, resource: dict, ref: str, paths: tuple[tuple[str, ...], ...]) -> dt.date | None:
        """The day a history fact holds from, or None; a date before the birth year or in the future
        cannot be one, so it is read as no date (which is how such a fact has always been read)."""
        got = _dates(resource, paths, self.born, self.today, self.zone)
        for path in got.bad:
            self.warnings.append(
                Issue(f"{ref}.{path}", "is not a date between the birth year and today: read as undated")
            )
        return _day(got.when)


def read_patient(
    patient: dict,
    resources: Iterable[tuple[dict, str | None]],
    today: dt.date | None = None,
    visit_window_days: int = VISIT_DAYS,
    history_window_years: float | None = None,
    patient_url: str | None = None,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> FhirCheckup:
    """The canonical records of `patient`'s checkups from (resource, fullUrl) pairs.

    Calendar days (a checkup's exam date, a Condition's onset) are those of `time_zone`, an IANA
    name (`DEFAULT_TIME_ZONE`, Korea's): a time sent with another offset is moved into it.

    `patient_url` is the Patient entry's fullUrl in a Bundle: resources may refer to the Patient by
    it (a urn:uuid in a transaction Bundle), and a Patient without an id is known by it.
    Raises FhirInputError only when no person can be described (no Patient, id, sex or birth date,
    a Patient whose elements read here are not valid FHIR R4); unreadable values, resources that are
    not valid FHIR R4 and resources about another patient (left out) become `warnings`.
    """
    pid, patient_ref, sex, birth_at, issues, warnings = _patient(patient, patient_url)
    # The latest plausible date: the caller's today, else today where it is latest on Earth.
    bound = today or latest_today()
    today = today or dt.date.today()
    born = dt.date(birth_at.year, 1, 1) if birth_at is not None else dt.date.min
    if birth_at is not None and _partial_date(patient.get("birthDate")):
        warnings.append(
            Issue(
                f"{patient_ref}.birthDate",
                "is a year or a month only: read as its first day, so the age is approximate",
            )
        )
    resources = _valid_resources(resources, warnings)
    # A Patient known by its fullUrl only (no id) may still be referred to as Patient/<that key>.
    refs = {patient_ref, f"Patient/{pid}", *([patient_url] if patient_url else [])}
    idents = frozenset(
        _identifier_key(i) for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("value")
    )
    reading = _Reading(
        refs,
        _medications(resources),
        bound,
        born,
        zoneinfo.ZoneInfo(time_zone),
        warnings=warnings,
        issues=issues,
        patient_identifiers=idents,
        sex=sex,
    )
    for resource, full_url in resources:
        ref = _ref(resource, full_url)
        read = _RESOURCE_READERS.get(str(resource.get("resourceType")))
        if read is not None:
            read(resource, ref, reading)
        for child, child_ref in _contained_observations(resource, ref):
            _read_observation(child, child_ref, reading)
    if reading.issues:
        raise FhirInputError(reading.issues)
    if reading.unread_observations:
        reading.warnings.append(_unread_observations_issue(reading.unread_observations))
    if reading.unread_conditions:
        reading.warnings.append(_unread_conditions_issue(reading.unread_conditions))
    if reading.unfinished:
        reading.warnings.append(_unfinished_issue(reading.unfinished))
    if reading.elsewhere:
        reading.warnings.append(_elsewhere_issue(reading.elsewhere))
    if reading.not_fasting:
        reading.warnings.append(_not_fasting_issue(reading.not_fasting))
    assert sex is not None and birth_at is not None  # else an issue was raised above
    visits = _group_visits(reading.values, visit_window_days, today, reading.warnings)
    if history_window_years is not None:
        cutoff = visits[-1][0] - dt.timedelta(days=round(history_window_years * 365.25))
        visits = [v for v in visits if v[0] >= cutoff]
    reading.warnings += _newest_without_half(visits, visit_window_days)
    checkup = _checkups(_Person(pid, patient_ref, sex, birth_at.date()), visits, reading, visit_window_days)
    checkup.warnings = _merged(checkup.warnings)
    return checkup


def _merged(warnings: list[Issue]) -> list[Issue]:
    """One warning per message: the same words about many resources (fifteen results dated by a month
    only) are one line naming them (`_listed`), where the first of them stood."""
    places: dict[str, list[Issue]] = {}
    for w in warnings:
        places.setdefault(w.message, []).append(w)
    return [
        same[0] if len(same) == 1 else _listed([p for w in same for p in (w.paths or (w.location,))], message)
        for message, same in places.items()
    ]


def _patient(
    patient: dict, full_url: str | None = None
) -> tuple[str, str, str | None, dt.datetime | None, list[Issue], list[Issue]]:
    """(id, reference, sex, birth date, issues, warnings) of the Patient; no Patient, no id (nor a
    fullUrl to know it by) or a Patient whose elements read here are not valid FHIR R4 refuses at
    once, no usable sex or birth date is an issue (raised with the others, once every resource is
    read). Other malformed elements, a sex taken from the birthsex extension and a deceased
    patient are warnings."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirInputError([Issue("patient", "a Patient resource is required")], status=412)
    problem = resource_problem(patient)
    notes: list[Issue] = []
    if problem is not None:
        # A malformed address or telecom says nothing about the person's risk: only the elements
        # read here must be valid.
        where = _ref(patient, full_url)
        if resource_problem({k: v for k, v in patient.items() if k in _PATIENT_READ}) is not None:
            raise FhirInputError([Issue(where, f"the Patient is not valid FHIR R4 ({problem}): no person can be read")])
        notes.append(
            Issue(
                where,
                f"is not valid FHIR R4 ({problem}): only its id, gender, birth date, identifiers, deceased flag "
                "and birthsex extension are read",
            )
        )
    pid = patient.get("id")
    ref = f"Patient/{pid}"
    if not pid:
        pid = _id_of_url(full_url)
        if pid is None:
            raise FhirInputError([Issue("Patient.id", "the Patient needs an id (or, in a Bundle, a fullUrl)")])
        # Known by its fullUrl: a RESTful one (.../Patient/p1) gives the usual reference, a urn:uuid is its own.
        ref = f"Patient/{pid}" if re.search(r"(^|/)Patient/[^/]+$", str(full_url)) else str(full_url)
    issues: list[Issue] = []
    sex = _SEX_OF_GENDER.get(patient.get("gender") or "")
    if sex is None and (birth_sex := _birth_sex(patient)) is not None:
        sex = birth_sex
        notes.append(
            Issue(
                f"{ref}.gender",
                "is not male or female: the sex assigned at birth (birthsex extension) is used, since the risk "
                "models are sex-specific",
            )
        )
    if is_deceased(patient):
        notes.append(
            Issue(f"{ref}.deceased", "the Patient is recorded as deceased: the risks below describe no living person")
        )
    if sex is None:
        issues.append(
            Issue(f"{ref}.gender", f"must be {' or '.join(SEX_WORDS.values())}: the risk models are sex-specific")
        )
    birth_at = _when(patient.get("birthDate"), dt.UTC)  # a date: no time to move
    if birth_at is None:
        said = patient.get("birthDate") not in (None, "")
        why = "is not a date (YYYY, YYYY-MM or YYYY-MM-DD)" if said else "is missing"
        issues.append(Issue(f"{ref}.birthDate", f"{why}: it is required to know the age"))
    return pid, ref, sex, birth_at, issues, notes


# What the reader takes from a Patient (`_patient`, `read_patient`).
_PATIENT_READ = ("resourceType", "id", "gender", "birthDate", "identifier", "deceasedBoolean", "deceasedDateTime")
# Sex assigned at birth: the US Core birthsex extension (valueCode M or F).
_BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


def _birth_sex(patient: dict) -> str | None:
    extensions = patient.get("extension")
    for ext in extensions if isinstance(extensions, list) else []:
        if isinstance(ext, dict) and ext.get("url") == _BIRTH_SEX and ext.get("valueCode") in ("M", "F"):
            return str(ext["valueCode"])
    return None


def is_deceased(patient: dict) -> bool:
    """Whether the Patient is recorded as deceased: deceasedBoolean true (also as another system
    writes it, "true", "yes", 1), or any deceasedDateTime. A risk for someone who may have died is
    the worse mistake, so a malformed flag that reads as yes counts."""
    flag = patient.get("deceasedBoolean")
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("true", "yes", "y", "1")
    elif isinstance(flag, (int, float)) and not isinstance(flag, bool):
        flag = flag == 1
    return flag is True or bool(patient.get("deceasedDateTime"))


def _id_of_url(full_url: str | None) -> str | None:
    """The Patient's id from its fullUrl: .../Patient/<id> or urn:uuid:<uuid> (urn:oid:<oid>)."""
    text = str(full_url or "")
    found = re.fullmatch(r"(?:.*/)?Patient/([A-Za-z0-9.-]{1,64})", text) or re.fullmatch(
        r"urn:(?:uuid|oid):([A-Za-z0-9.-]{1,64})", text, flags=re.IGNORECASE
    )
    return found.group(1) if found else None


def _partial_date(text: object) -> bool:
    """A FHIR date of a year ("2023") or a month ("2023-05") only."""
    return isinstance(text, str) and re.fullmatch(r"\d{4}(-\d{2})?", text) is not None


# fhir.resources' names of the FHIR primitive types that hold a number or a point in time.
_NUMBER_TYPES = frozenset({"Decimal", "Integer", "Integer64", "PositiveInt", "UnsignedInt"})
_TIME_TYPES = frozenset({"Date", "DateTime", "Instant", "Time"})


def plain_problem(error: Mapping) -> tuple[str, str]:
    """(path, what is wrong in plain words) of one fhir.resources (pydantic) error; never the value."""
    path = ".".join(str(x) for x in error.get("loc", ()))
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    primitive = re.search(r"(\w+) value string does not match", message)
    name = primitive.group(1) if primitive else ""
    if "missing" in kind:
        words = "is required but missing"
    elif kind == "extra_forbidden":
        words = "is not an element of this resource in FHIR R4"
    elif name in _NUMBER_TYPES or kind.startswith(("int_", "float_", "decimal_")):
        words = "is not a number"
    elif name in _TIME_TYPES or kind.startswith(("date", "time")):
        words = "is not a valid date or time"
    elif kind.startswith("bool"):
        words = "is not true or false"
    elif name:
        words = f"is not a valid FHIR {name}"
    elif "Expect any of field value" in message:
        words = "needs one of the choices of a [x] element"
    elif "Any of one field value is expected" in message:
        words = "has more than one of the choices of a [x] element (e.g. valueQuantity and valueString)"
    elif kind == "list_type":
        words = "must be a list"
    elif kind in ("dict_type", "model_type", "json_invalid", "model_attributes_type"):
        words = "must be an object"
    elif kind.startswith("string"):
        words = "is not text of the form FHIR allows here"
    else:
        words = "is not valid here"
    return path, words


def _read_anyway(error: Mapping) -> bool:
    """An R4B error this reader deals with itself, better than by leaving the resource out: a date
    it cannot parse (read as no date, with a warning naming its path) and a required element that
    is absent (read as absent: an Observation without status is not a result to use, a medicine
    statement without a medicine gets its own warning)."""
    words = plain_problem(error)[1]
    return words in (
        "is not a valid date or time",
        "is required but missing",
        "needs one of the choices of a [x] element",
    )


def resource_problem(resource: object) -> str | None:
    """Why a resource is not valid FHIR R4 (checked by the fhir.resources R4B models), in plain
    words naming the elements (never their values); None when it is valid, or when its only problems
    are ones this reader reads through (`_read_anyway`)."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    try:
        model = get_fhir_model_class(kind) if isinstance(kind, str) else None
    except (KeyError, ValueError, ImportError, AttributeError):
        model = None
    if model is None:
        return "not a FHIR R4 resource type"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        problems = [plain_problem(e) for e in exc.errors() if not _read_anyway(e)]
        if not problems:
            return None
        shown = [f"{path} {words}" if path else words for path, words in problems[:3]]
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        return "; ".join(shown) + more
    except (TypeError, ValueError, KeyError) as exc:  # fhir.resources raises these for some malformed input
        return f"malformed ({type(exc).__name__})"
    return None


def _valid_resources(
    resources: Iterable[tuple[dict, str | None]], warnings: list[Issue]
) -> list[tuple[dict, str | None]]:
    """The resources that are valid FHIR R4; each other one is left out with a warning naming it and
    what is wrong, so that one malformed value never refuses the patient (contract section 3)."""
    kept = []
    for k, (resource, full_url) in enumerate(resources):
        if not isinstance(resource, dict):
            warnings.append(Issue(f"resource {k + 1} of the patient's", "is not a FHIR resource: it is not used"))
            continue
        problem = resource_problem(resource)
        if problem is None:
            kept.append((resource, full_url))
            continue
        ref = _ref(resource, full_url)
        where = ref if "/" in ref or ":" in ref else f"{ref} (resource {k + 1} of the patient's)"
        warnings.append(Issue(where, f"is not valid FHIR R4 ({problem}): the resource is not used"))
    return kept


def _medications(resources: list[tuple[dict, str | None]]) -> dict[str, dict]:
    """The Medication resources, by reference and by fullUrl (a MedicationStatement may name either)."""
    medications = {}
    for resource, full_url in resources:
        if resource.get("resourceType") == "Medication":
            medications[_ref(resource, None)] = resource
            if full_url:
                medications[full_url] = resource
    return medications


def _read_observation(resource: dict, ref: str, reading: _Reading) -> None:
    if _elsewhere(resource, ref, reading):
        return
    codes = set(_codes(resource.get("code"), LOINC))
    if codes & NOT_FASTING_GLUCOSE and not codes & set(MEASURES) and resource.get("status") in USABLE_STATUS:
        reading.not_fasting.append(f"{ref}.code")
        return
    if resource.get("status") not in USABLE_STATUS:
        reading.ignored += 1
        status = resource.get("status")
        if status not in _NOT_A_RESULT:
            # Named by its code only: a status that is no ObservationStatus code is never echoed.
            said = status if status in _OBSERVATION_STATUSES else ("another status" if status else "no status")
            reading.unfinished.append((ref, said))
    else:
        got = _dates(resource, _OBSERVATION_DATES, EXAM_DATE_MIN, reading.today, reading.zone)
        if got.when is None and got.bad:
            issues = [
                Issue(
                    f"{ref}.{path}",
                    f"is not a checkup date (one {EXAM_DATE_RANGE_TEXT} is needed): the Observation is not used",
                )
                for path in got.bad
            ]
            reading.warnings += issues
            return
        if got.when is None:
            # No date at all: the value may be years old, so it is not read as today's.
            unread: list[Issue] = []
            if _observation_values(resource, ref, unread, None) or unread:
                reading.warnings.append(Issue(ref, "has no date (effective[x] or issued): the Observation is not used"))
            return
        for path in got.bad:
            reading.warnings.append(
                Issue(f"{ref}.{path}", f"is not a checkup date ({EXAM_DATE_RANGE_TEXT}): {got.path} used instead")
            )
        if _partial_date(_at(resource, tuple(got.path.split(".")))):
            reading.warnings.append(
                Issue(
                    f"{ref}.{got.path}",
                    "is a year or a month only: read as its first day, so the checkup date is approximate",
                )
            )
        age = (got.when.date() - reading.born).days / 365.25 if reading.born != dt.date.min else None
        reading.values += _observation_values(resource, ref, reading.warnings, got.when, (reading.sex, age))
    if codes & EGFR_REPORTED and not codes & set(MEASURES):
        reading.warnings.append(
            Issue(
                ref,
                "is a laboratory's eGFR: not read, since eGFR is computed here from the creatinine result "
                "(LOINC 2160-0 or 14682-9, CKD-EPI 2021); send the creatinine, and a diagnosed chronic kidney "
                "disease as a Condition",
            )
        )
    elif not _read_codes(resource) and not resource.get("hasMember"):
        # A panel that groups its results (hasMember: a lipid panel, a urinalysis) holds no value:
        # its members come as Observations of their own.
        reading.unread_observations.append(ref)


def _read_codes(resource: dict) -> set[str]:
    """The LOINC codes of an Observation and its components that this reader uses."""
    codes = set(_codes(resource.get("code"), LOINC))
    for part in resource.get("component") or []:
        if isinstance(part, dict):
            codes.update(_codes(part.get("code"), LOINC))
    return codes & _READ_CODES


# Not named as unread either: the vital-signs panel (85353-1), whose members come as Observations of
# their own, and BMI (39156-5), which is computed here from height and weight.
_READ_CODES = frozenset(OBSERVATION_CODES) | NOT_FASTING_GLUCOSE | {"85353-1", "39156-5"}


def _contained_observations(resource: dict, ref: str) -> list[tuple[dict, str]]:
    """(Observation, reference) of the Observations contained in a resource (a DiagnosticReport
    that carries its results inside itself); they are about the container's subject."""
    out: list[tuple[dict, str]] = []
    contained = resource.get("contained")
    if resource.get("resourceType") not in _RESULT_CONTAINERS or resource.get("status") in _NOT_A_RESULT:
        return out  # a relative's history or a retracted report holds no result of this patient's
    for child in contained if isinstance(contained, list) else []:
        if isinstance(child, dict) and child.get("resourceType") == "Observation":
            # The container's subject is the child's unless it names its own: another patient's
            # report is then left out by `_read_observation`, as any resource about another patient.
            inner = (
                child if "subject" in child or "subject" not in resource else {**child, "subject": resource["subject"]}
            )
            out.append((inner, f"{ref}#{child.get('id') or len(out)}"))
    return out


# Resources whose contained Observations are results about the resource's own subject.
_RESULT_CONTAINERS = frozenset({"DiagnosticReport", "Observation"})


def _read_condition(resource: dict, ref: str, reading: _Reading) -> None:
    status = set(_codes(resource.get("verificationStatus"), _VER_STATUS))
    if _elsewhere(resource, ref, reading):
        return
    if _IN_ERROR in status:
        return
    names = _history_fields(resource.get("code"))
    if not names and not _icd_coded(resource.get("code")):
        # No code this service knows (text only, a local system, a SNOMED CT code outside the
        # table): the common names in its text and displays, read conservatively, else a warning.
        names = _condition_names(resource, ref, reading)
    if names and _REFUTED in status:
        reading.negatives.append(_Dated(frozenset(names), reading.history_day(resource, ref, _REFUTED_DATES), ref))
    elif names and status & _UNCONFIRMED and "confirmed" not in status:
        reading.warnings.append(
            Issue(
                f"{ref}.verificationStatus",
                "is a diagnosis not yet confirmed (unconfirmed, provisional or differential): not counted",
            )
        )
    elif names:
        since = reading.history_day(resource, ref, _ONSET_DATES)
        if since is None and isinstance(resource.get("onsetAge"), dict):
            since = _onset_age_day(resource["onsetAge"], ref, reading)
        if since is None:
            since = reading.history_day(resource, ref, (("recordedDate",),))  # when it was written down
        reading.facts.append(_Dated(frozenset(names), since, ref))


_YEARS = frozenset({"a", "yr", "yrs", "y", "year", "years"})


def _onset_age_day(age: dict, ref: str, reading: _Reading) -> dt.date | None:
    """The day an onsetAge in years points to, counted from the start of the birth year (the reader
    keeps no finer birth date for history), or None with a warning when it is past today's age."""
    value, unit = age.get("value"), str(age.get("code") or age.get("unit") or "").strip().lower()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or unit not in _YEARS or value < 0:
        reading.warnings.append(Issue(f"{ref}.onsetAge", "is not an age in years: read as undated"))
        return None
    try:
        day = reading.born + dt.timedelta(days=round(float(value) * 365.25))
    except OverflowError:
        day = dt.date.max
    if day > reading.today:
        reading.warnings.append(Issue(f"{ref}.onsetAge", "is more than the patient's age today: read as undated"))
        return None
    return day


def _icd_coded(concept: object) -> bool:
    """Whether the concept has an ICD-10 or KCD code: `_HISTORY_ICD` covers every ICD-10 category of
    the history fields, so such a code of another category is another disease, not an unknown."""
    codings = (concept.get("coding") or []) if isinstance(concept, dict) else []
    return any(_is_icd10(c.get("system")) for c in codings if isinstance(c, dict) and c.get("code"))


# ICD-10 by its OIDs (WHO ICD-10, ICD-10-CM), as systems that code by OID send it.
_ICD10_OIDS = frozenset({"urn:oid:2.16.840.1.113883.6.3", "urn:oid:2.16.840.1.113883.6.90"})


def _is_icd10(system: object) -> bool:
    """Whether a coding's system is ICD-10 or KCD (the Korean edition), by URI, name or OID."""
    s = str(system or "").strip().lower()
    return "icd-10" in s or "icd10" in s or "kcd" in s or s in _ICD10_OIDS


_CONDITIONS_READ = "stroke, heart disease, hypertension, diabetes, dyslipidemia, chronic kidney disease"


def _condition_names(resource: dict, ref: str, reading: _Reading) -> set[str]:
    """The history fields a Condition without a known code names in its text and displays
    (`features.condition_names`); when none, a warning naming the Condition (never its text)."""
    concept = resource.get("code")
    texts = _concept_names(concept)
    got = history_of_names(texts)
    if got.fields:
        return set(got.fields)
    if got.doubtful:
        # This service reads no SNOMED CT hierarchy, only a table of codes (docs/interface.md).
        code = "its SNOMED CT code is not one this service reads; " if _codes(concept, SNOMED) else ""
        message = (
            f"its text names one of {_CONDITIONS_READ} together with words this service does not read as "
            "harmless (a negation, a doubt, another person, a test or a qualifier may change its meaning): "
            f"not counted; {code}an ICD-10 / KCD-8 code would be read"
        )
        reading.warnings.append(Issue(f"{ref}.code", message))
    else:
        reading.unread_conditions.append(ref)  # most are other diseases: one warning for them all
    return set()


# Places named in words in one warning about many (`_listed`); every one is in its FHIRPaths.
_UNREAD_LISTED = 5


def _listed(paths: list[str], message: str) -> Issue:
    """One issue about many places: the first `_UNREAD_LISTED` named in words, every one as a
    FHIRPath (`Issue.paths`)."""
    where = ", ".join(paths[:_UNREAD_LISTED])
    if len(paths) > _UNREAD_LISTED:
        where += f" and {len(paths) - _UNREAD_LISTED} more"
    return Issue(where, message, tuple(paths))


def _these(n: int, one: str, many: str) -> str:
    """'this Observation has' / 'these 3 Observations have': `many` holds {n}."""
    return one if n == 1 else many.format(n=n)


def _unread_observations_issue(refs: list[str]) -> Issue:
    """One warning for every Observation with no LOINC code this reader uses (`_READ_CODES`)."""
    said = _these(len(refs), "this Observation has", "these {n} Observations have")
    return _listed(
        refs,
        f"{said} no LOINC code this service reads (the checkup's measurements, smoking, drinking and activity): "
        "not used",
    )


def _not_fasting_issue(refs: list[str]) -> Issue:
    """One warning for every glucose result not coded as fasting (`NOT_FASTING_GLUCOSE`)."""
    said = _these(len(refs), "this glucose is", "these {n} glucose results are")
    return _listed(
        refs,
        f"{said} not marked fasting (LOINC {', '.join(sorted(NOT_FASTING_GLUCOSE))}): not read as the fasting "
        "glucose; send it as 1558-6 (or 14771-0 in mmol/L) when it was drawn fasting",
    )


def _unread_conditions_issue(refs: list[str]) -> Issue:
    """One warning for every Condition whose code and text name none of the history fields: a real
    problem list holds many other diseases, and a warning each would bury the ones that matter."""
    which = "its code" if len(refs) == 1 else f"the code of each of these {len(refs)} Conditions"
    return _listed(
        [f"{r}.code" for r in refs],
        f"neither {which} nor its text names one of {_CONDITIONS_READ} in a way this service reads: "
        "if one is, it is not counted; a code (ICD-10 / KCD-8 or SNOMED CT) would be read",
    )


# Statuses that say an Observation is no result at all: skipped without a word.
_NOT_A_RESULT = frozenset({"cancelled", "entered-in-error"})
# FHIR R4 ObservationStatus.
_OBSERVATION_STATUSES = USABLE_STATUS | _NOT_A_RESULT | {"registered", "preliminary", "unknown"}


def _unfinished_issue(statuses: list[tuple[str, str]]) -> Issue:
    """One warning for the Observations left out because their result is not final (preliminary,
    registered, unknown, or no status at all): a later final result may say otherwise."""
    counts = Counter(status for _, status in statuses)
    said = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
    n = len(statuses)
    return _listed(
        [f"{r}.status" for r, _ in statuses],
        f"{'this Observation is' if n == 1 else f'these {n} Observations are'} not used ({said}): only "
        "final, amended or corrected results are read",
    )


# Family history as the checkup questionnaire asks it: a parent's or a sibling's disease (blood
# relatives; half-siblings and twins too). v3 RoleCode, the SNOMED CT persons, and common words.
_RELATIVES_ROLE = frozenset(
    {"PRN", "NPRN", "FTH", "MTH", "NFTH", "NMTH", "SIB", "NSIB", "BRO", "SIS", "NBRO", "NSIS", "HSIB", "HBRO", "HSIS"}
    | {"TWIN", "TWINBRO", "TWINSIS", "FTWIN", "FTWINBRO", "FTWINSIS", "ITWIN", "ITWINBRO", "ITWINSIS"}
)
_RELATIVES_SNOMED = frozenset({"72705000", "66839005", "40683002", "375005", "70924004", "27733009"})
_RELATIVES_TEXT = frozenset(
    {"parent", "father", "mother", "sibling", "brother", "sister", "twin", "mom", "dad"}
    | {
        "부모",
        "아버지",
        "어머니",
        "부친",
        "모친",
        "형제",
        "자매",
        "형제자매",
        "형",
        "오빠",
        "누나",
        "언니",
        "남동생",
        "여동생",
    }
)


def _parent_or_sibling(relationship: object) -> bool:
    """Whether FamilyMemberHistory.relationship names a parent or a sibling (`_RELATIVES_*`)."""
    if not isinstance(relationship, dict):
        return False
    codes = _codes(relationship, ROLE_CODE)
    if codes:
        return any(c.upper() in _RELATIVES_ROLE for c in codes)
    if _codes(relationship, SNOMED):
        return any(c in _RELATIVES_SNOMED for c in _codes(relationship, SNOMED))
    # Word by word: "natural mother", "biological father", "어머니(모)" name a parent too.
    words = {w for n in _concept_names(relationship) for w in re.findall(r"\w+", n.lower())}
    return bool(words & _RELATIVES_TEXT)


def _read_family_history(resource: dict, ref: str, reading: _Reading) -> None:
    if _elsewhere(resource, ref, reading, "patient") or resource.get("status") == _IN_ERROR:
        return
    positive: set[str] = set()
    negative: set[str] = set()
    for k, cond in enumerate(resource.get("condition") or []):
        names = _history_fields(cond.get("code"))
        said_no = {_FAMILY_NEGATIVE[c] for c in _codes(cond.get("code"), SNOMED) if c in _FAMILY_NEGATIVE}
        negative |= said_no
        if not names and not said_no and not _icd_coded(cond.get("code")):
            # Text only, or a code outside the table: read as a Condition's text is, conservatively.
            got = history_of_names(_concept_names(cond.get("code")), family=True)
            names = set(got.fields)
            if got.doubtful and got.mentioned & set(_FAMILY):  # a relative's hypertension is no record field
                reading.warnings.append(
                    Issue(
                        f"{ref}.condition[{k}].code",
                        "its text names a disease together with words this service does not read as harmless "
                        "(a negation, a doubt or a qualifier may change its meaning): not counted as family history",
                    )
                )
        positive |= {_FAMILY[name] for name in names if name in _FAMILY}
    if positive and not _parent_or_sibling(resource.get("relationship")):
        # A spouse's, an in-law's or a grandparent's disease is not the family history the models
        # learned (parents and siblings); a relationship not read is not counted either.
        reading.warnings.append(
            Issue(
                f"{ref}.relationship",
                "is not read as a parent or a sibling (the family history the checkup questionnaire asks about): "
                "not counted as family history",
            )
        )
        positive = set()
    since = reading.history_day(resource, ref, _FAMILY_DATES) if positive or negative else None
    if positive:
        reading.facts.append(_Dated(frozenset(positive), since, ref))
    if negative:
        reading.negatives.append(_Dated(frozenset(negative), since, ref))


def _read_medication(resource: dict, ref: str, reading: _Reading) -> None:
    """A MedicationStatement or MedicationRequest.

    Treatment: an active one is a fact, and so is a completed (dispensed) request for
    COMPLETED_REQUEST_DAYS after it was written; a statement of "not taken" is a negative; a
    proposal or an option is advice, not treatment. A diagnosis the medicine implies
    (`_DIAGNOSIS_FIELDS`: dyslipidemia, from a lipid-lowering drug other than a statin) lasts, as a
    diagnosis does: from any statement or request that says the drug was taken (active, completed,
    or a statement that was stopped), with no end; "not taken" never negates it."""
    statement = resource.get("resourceType") == "MedicationStatement"
    status = resource.get("status")
    not_taken = statement and status == "not-taken"
    # Treatment now: active, or a dispensed request (for a year after it was written).
    current = status in (_ACTIVE_STATEMENT if statement else _ACTIVE_REQUEST) or (
        not statement and status == "completed"
    )
    taken = current or status == "completed" or (statement and status == "stopped")
    if _elsewhere(resource, ref, reading) or resource.get("intent") in _NOT_TREATMENT_INTENT:
        return
    if not (taken or not_taken):
        return
    medicine = _medicine(resource, reading.medications)
    names = _treatment_fields(medicine)
    if names is None:
        if current or not_taken:
            # An unknown medicine may well be of another class: say so, never the name.
            where = "medicationReference" if resource.get("medicationReference") else "medicationCodeableConcept"
            why = (
                "the reference could not be resolved (no Medication with that reference or fullUrl was sent, "
                "nor a contained one)"
                if medicine.unresolved
                else "no ATC code and no ingredient name this service recognises"
            )
            reading.warnings.append(
                Issue(
                    f"{ref}.{where}",
                    f"{why}: its drug class (antihypertensive, diabetes medication, statin, other "
                    "lipid-lowering drug) could not be read",
                )
            )
        return
    since = reading.history_day(resource, ref, _STATEMENT_DATES if statement else _REQUEST_DATES)
    treatment, diagnosis = names - _DIAGNOSIS_FIELDS, names & _DIAGNOSIS_FIELDS
    if not_taken:
        if treatment:
            reading.negatives.append(_Dated(frozenset(treatment), since, ref))
        return
    if diagnosis:
        reading.facts.append(_Dated(frozenset(diagnosis), since, ref))
    if treatment and current:
        if not statement and status == "completed":
            if since is None:
                return  # a finished prescription of unknown date says nothing about any checkup
            reading.facts.append(
                _Dated(frozenset(treatment), since, ref, since + dt.timedelta(days=COMPLETED_REQUEST_DAYS))
            )
        else:
            reading.facts.append(_Dated(frozenset(treatment), since, ref, _ended(resource, ref, reading, since)))


def _ended(resource: dict, ref: str, reading: _Reading, since: dt.date | None) -> dt.date | None:
    """The last day an active MedicationStatement's effectivePeriod gives (None: no end): medication
    lists often leave a finished course "active", and its end says it is over. A year or a month
    alone ends on its last day; an end before the birth year or before the start is a typo or a
    placeholder, read as no end (the statement says "active"), with a warning."""
    end = _at(resource, ("effectivePeriod", "end"))
    when = _when(end, reading.zone) if isinstance(end, str) else None
    if when is None:
        return None
    day = when.date()
    if isinstance(end, str) and re.fullmatch(r"\d{4}", end):
        day = dt.date(day.year, 12, 31)
    elif isinstance(end, str) and re.fullmatch(r"\d{4}-\d{2}", end):
        day = (dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)) - dt.timedelta(days=1)
    if day < reading.born or (since is not None and day < since):
        reading.warnings.append(
            Issue(f"{ref}.effectivePeriod.end", "is before the birth year or the start: read as no end")
        )
        return None
    if day < reading.today:
        reading.warnings.append(
            Issue(
                f"{ref}.effectivePeriod.end",
                "is past: the medicine counts as treatment only at checkups up to that day",
            )
        )
    return day


# Resource type -> its reader; other resources are not about the record.
_RESOURCE_READERS: dict[str, Callable[[dict, str, _Reading], None]] = {
    "Observation": _read_observation,
    "Condition": _read_condition,
    "FamilyMemberHistory": _read_family_history,
    "MedicationStatement": _read_medication,
    "MedicationRequest": _read_medication,
}


def _checkups(
    person: _Person, visits: list[tuple[dt.date, dict[str, _Value]]], reading: _Reading, window: int
) -> FhirCheckup:
    """One record per visit, oldest first, with the history facts and negatives that count for it."""
    negatives_at: list[list[_Dated]] = [[] for _ in visits]  # each negative with the checkup it is dated at
    for negative in reading.negatives:
        k = _visit_of(negative.since, [v[0] for v in visits], window)
        if k is not None:
            negatives_at[k].append(negative)
    records: list[dict] = []
    record_sources: list[dict[str, str]] = []
    for k, (day, chosen) in enumerate(visits):
        record, sources = _record(person, day, chosen, reading.facts, negatives_at[k], newest=k == len(visits) - 1)
        records.append(record)
        record_sources.append(sources)
    basis = list(dict.fromkeys(ref for sources in record_sources for ref in sources.values() if ref != person.ref))
    newest = visits[-1][0]
    for fact in reading.facts:
        # On record before it: a fact that rules out the same outcome (a diagnosis, or its treatment).
        known_before = any(
            _rules_out(other.names) & _rules_out(fact.names) and (other.since is None or other.since <= newest)
            for other in reading.facts
        )
        if fact.ref.startswith("Condition/") and fact.since is not None and fact.since > newest and not known_before:
            # Counted all the same (a disease known now is never predicted as new), but said: the
            # caller may have meant an older checkup. Not for a treatment (a refill written after the
            # checkup is routine) nor for a disease already on record before it.
            reading.warnings.append(
                Issue(
                    fact.ref,
                    f"is dated after the checkup scored ({newest.isoformat()}): it counts as known at that checkup, "
                    "so what it says is not predicted as new",
                )
            )
    return FhirCheckup(
        record=records[-1],
        patient=person.ref,
        basis=basis,
        ignored=reading.ignored,
        sources=record_sources[-1],
        records=records,
        record_sources=record_sources,
        warnings=reading.warnings,
    )


def _rules_out(names: frozenset[str]) -> set[str]:
    """The outcomes these history or treatment fields make not applicable (`features.eligibility.FLAGS`)."""
    return {o for o, flags in FLAGS.items() if names & set(flags)}


def _record(
    person: _Person, day: dt.date, chosen: dict[str, _Value], facts: list[_Dated], negatives: list[_Dated], newest: bool
) -> tuple[dict, dict[str, str]]:
    """(record, field -> resource it came from) of the checkup of `day`."""
    record: dict = {
        "person_id": person.pid,
        "exam_date": day.isoformat(),
        "sex": person.sex,
        "age": _age(person.birth, day),
    }
    sources = {"sex": person.ref, "age": person.ref}
    for name, value in chosen.items():
        record[name] = value.value
        sources[name] = value.ref
    for fact in facts:
        if fact.holds_on(day, newest):
            for name in sorted(fact.names):
                record[name] = 1
                sources.setdefault(name, fact.ref)
    for negative in negatives:
        for name in sorted(negative.names):
            if name not in record:  # a positive that counts here wins
                record[name] = 0
                sources[name] = negative.ref
    return record, sources


# The two halves a checkup's results often arrive in, days apart: vital signs and body measures
# (taken at the visit), and the blood tests (resulted later). Per half: what the newest visit lacks,
# what the earlier visit had, and what the sender may do.
_VITALS = frozenset({"sbp", "dbp", "height_cm", "weight_kg", "waist_cm"})
_BLOOD = frozenset(m.field for m in MEASURES.values() if m.field not in _VITALS)
_HALVES = (
    (
        _BLOOD,
        "no blood or urine test, so it is scored without one",
        "blood and urine tests",
        "If that visit was not a checkup, send the checkup's results without it",
    ),
    (
        _VITALS,
        "no blood pressure or body measures, so it is scored without them",
        "blood pressure and body measures",
        "If both were one checkup, send them dated within one visit window",
    ),
)


def _newest_without_half(visits: list[tuple[dt.date, dict[str, _Value]]], window: int) -> list[Issue]:
    """A warning when the visit scored lacks one half of a checkup (`_HALVES`) that an earlier visit
    has: a clinic visit that took only vital signs after a checkup, or lab results dated more than a
    visit's window after the vital signs, is scored as the newest checkup without the other half,
    which counts only as its history."""
    if len(visits) < 2:
        return []
    newest_day, newest = visits[-1]
    out = []
    for fields, lacking, half, advice in _HALVES:
        had = [day for day, chosen in visits[:-1] if set(chosen) & fields]
        if set(newest) & fields or not had:
            continue
        first = min(newest.values(), key=lambda v: v.ref).ref if newest else "Bundle"
        out.append(
            Issue(
                first,
                f"the newest visit ({newest_day.isoformat()}) has {lacking}; the {half} of {had[-1].isoformat()} "
                f"count only as its history (a visit spans {window} days). {advice}",
            )
        )
    return out


def _visit_of(day: dt.date | None, starts: list[dt.date], window: int) -> int | None:
    """The checkup a negative dated `day` speaks for: the one whose visit window holds the day, the
    newest for a later day or no day; None for a day before the first or between two checkups."""
    last = len(starts) - 1
    if day is None or day >= starts[last]:
        return last
    return _visit_of_value(day, starts, window, answer=False)


def _group_visits(
    values: list[_Value], window: int, today: dt.date, warnings: list[Issue] | None = None
) -> list[tuple[dt.date, dict[str, _Value]]]:
    """(first day, field -> chosen value) per visit, oldest first (see the module docstring).

    Visits are made by the measurements. A questionnaire answer (`ANSWERS`: smoking, drinking,
    activity) joins the visit whose window holds its day, or else the first visit starting up to
    `ANSWER_LEAD_DAYS` after it (the NHIS questionnaire is often answered online before the exam);
    any other answer (a smoking status recorded at a later clinic visit) describes no checkup and is
    left out with a warning: alone it would make a "checkup" of its own and push the real one into
    the history.

    Within a visit each field takes its value of the latest time. Several values of that time: a
    newer revision (`_newer`: a later issued, higher versioned, amended or corrected result) wins;
    results that no revision orders are combined without regard to their order in the input, since
    the order of a search result means nothing (`_combine_ties`). A warning (into `warnings`) names
    every result set aside for a different value."""
    # Every value read has a date (an undated Observation is left out).
    dated = sorted(((v.when, v) for v in values if v.when is not None), key=lambda p: p[0])
    starts: list[dt.date] = []
    for when, v in dated:
        if v.name not in ANSWERS and (not starts or (when.date() - starts[-1]).days >= window):
            starts.append(when.date())  # when.date(): as `_day`
    members: list[dict[str, list[tuple[dt.datetime, _Value]]]] = [{} for _ in starts]
    unplaced: list[str] = []
    for when, v in dated:
        k = _visit_of_value(when.date(), starts, window, answer=v.name in ANSWERS)
        if k is None:
            unplaced.append(v.ref)
            continue
        members[k].setdefault(v.name, []).append((when, v))
    visits = []
    for day, fields in zip(starts, members, strict=True):
        chosen = {}
        for name, timed in fields.items():
            latest = max(when for when, _ in timed)
            chosen[name] = _choose([v for when, v in timed if when == latest], warnings)
        visits.append((day, chosen))
    if unplaced and warnings is not None:
        warnings.append(_unplaced_answers_issue(list(dict.fromkeys(unplaced)), window))
    if not visits:
        # No measurement at all: a record of today with only the person and the history; the
        # service then answers that there is no checkup to score (serving.fhir_in.has_measurement).
        visits.append((today, {}))
    return visits


def _visit_of_value(day: dt.date, starts: list[dt.date], window: int, answer: bool) -> int | None:
    """The visit a value of `day` belongs to (see `_group_visits`): the one whose window holds the
    day; for an answer also the first visit starting up to ANSWER_LEAD_DAYS later; else None."""
    k = max((i for i, start in enumerate(starts) if start <= day), default=None)
    if k is not None and (day - starts[k]).days < window:
        return k
    if answer:
        return next((i for i, start in enumerate(starts) if 0 < (start - day).days <= ANSWER_LEAD_DAYS), None)
    return None


def _unplaced_answers_issue(refs: list[str], window: int) -> Issue:
    said = _these(len(refs), "this questionnaire answer is", "these {n} questionnaire answers are")
    return _listed(
        refs,
        f"{said} dated on no checkup visit (neither within a visit's {window} days nor up to "
        f"{ANSWER_LEAD_DAYS} days before one): not used, since an answer describes the person when it was given",
    )


def _choose(same: list[_Value], warnings: list[Issue] | None) -> _Value:
    """The value of a field among its results taken at the same time (see `_group_visits`): the
    results no other is a newer revision of (`_newer`) are combined (`_combine_ties`). Revision
    marks need not order every pair (one result has `issued`, another only a version), so a chain
    keeps its undominated end, and marks that contradict each other in a circle leave every result
    combined. The same result sent twice counts once."""
    same = list(dict.fromkeys(same))
    if len(same) == 1:
        return same[0]
    current = [v for v in same if not any(_newer(o, v) for o in same)] or same
    chosen = _combine_ties(current, warnings)
    if warnings is not None:
        used = sorted(current, key=lambda v: (v.ref, v.value))
        for other in sorted(same, key=lambda v: (v.ref, v.value)):
            if other in current or not _differ(other.value, chosen.value):
                continue
            # Why, from a result that is used and newer than this one, in a fixed order; a result only
            # an unused one is newer than (a chain) is an older revision without a single reason.
            why = next((w for c in used if (w := _newer(c, other))), None)
            if len(used) == 1:
                what = f"the one in {used[0].ref} is a newer revision ({why}) and is used"
            else:
                what = f"the results in {', '.join(v.ref for v in used)} are used (combined)"
            if why is None and len(used) == 1:
                what = f"the one in {used[0].ref} is used (this one is an older revision)"
            warnings.append(
                Issue(
                    other.ref,
                    f"LOINC {other.code} ({other.name}{_said(other)}) has the same time as a newer revision "
                    f"but a different value: {what}",
                )
            )
    return chosen


def _newer(a: _Value, b: _Value) -> str | None:
    """Why result `a` is a newer revision than `b` of the same time, in words (never a value), or
    None. A correction keeps the time the sample was taken: the later `issued` decides where both
    have one, else the higher meta.versionId where both have one, else amended or corrected
    over final."""
    if a.issued is not None and b.issued is not None and a.issued != b.issued:
        return "issued later" if a.issued > b.issued else None
    if a.version is not None and b.version is not None and a.version != b.version:
        return "a higher meta.versionId" if a.version > b.version else None
    if a.status in _REVISED and b.status not in _REVISED:
        return a.status
    return None


def _combine_ties(tied: list[_Value], warnings: list[Issue] | None) -> _Value:
    """Results of one time that no revision orders: one value whatever their order in the input.
    Different measurements average (as repeated blood-pressure readings do; a whole-number field
    rounds the mean); different grades of a coded answer (urine protein, smoking) take the higher
    one, the one that is not reassuring."""
    first = min(tied, key=lambda v: (v.ref, v.value))
    values = sorted({v.value for v in tied})
    if len(tied) == 1 or not any(_differ(values[0], x) for x in values[1:]):
        return first
    kind = BY_NAME[first.name].kind
    mean = math.fsum(v.value for v in tied) / len(tied)
    value: float | int = mean if kind == "float" else math.floor(mean + 0.5) if kind == "int" else max(values)
    source = first if kind != "code" else min((v for v in tied if v.value == value), key=lambda v: (v.ref, v.value))
    if warnings is not None:
        refs = sorted(v.ref for v in tied)
        how = {"float": "their mean is used", "int": "their mean, rounded, is used"}.get(
            kind, "the higher grade is used"
        )
        warnings.append(
            Issue(
                refs[0],
                f"{len(refs)} results of LOINC {first.code} ({first.name}) at the same time ({', '.join(refs)}) have "
                f"different values and none is a newer revision: {how}",
            )
        )
    return replace(source, value=value)


def _said(value: _Value) -> str:
    return f", {value.status}" if value.status in USABLE_STATUS else ""


def _differ(a: float, b: float) -> bool:
    """Two values of one field that are not the same result (a unit conversion's rounding aside)."""
    return abs(a - b) > 0.005 * max(abs(a), abs(b), 1e-9)


def _history_fields(concept: dict | None) -> set[str]:
    out = {_HISTORY_SNOMED[c] for c in _codes(concept, SNOMED) if c in _HISTORY_SNOMED}
    for coding in (concept or {}).get("coding") or []:
        if _is_icd10(coding.get("system")):
            # KCD-8 writes "I10.9", "E785", and marks dagger / asterisk codes ("E11.3†"): the first
            # letter and digits are the ICD-10 category.
            code = re.sub(r"[^A-Z0-9]", "", str(coding.get("code", "")).upper())
            out |= {name for name, prefixes in _HISTORY_ICD.items() if code.startswith(prefixes)}
    return out


# OperationOutcome.issue.severity, worst first: "error" and "fatal" mean the search itself failed.
_SEVERITY = ("fatal", "error", "warning", "information")
_ISSUE_CODE = re.compile(r"[a-z][a-z-]{0,39}")  # an IssueType code; anything else is not echoed


def _outcome(resource: object) -> tuple[str, str] | None:
    """(worst severity, its issue codes in words) of an OperationOutcome, else None; elements of the
    wrong shape count as absent (an outcome that says nothing is no success)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return None
    listed = resource.get("issue")
    issues = [i for i in listed if isinstance(i, dict)] if isinstance(listed, list) else []
    said = [str(i.get("severity")) for i in issues if i.get("severity") in _SEVERITY]
    worst = min(said, key=_SEVERITY.index, default="error")
    codes = sorted({c for i in issues if isinstance(c := i.get("code"), str) and _ISSUE_CODE.fullmatch(c)})
    return worst, ", ".join(codes) or "no code"


def is_outcome(resource: object) -> bool:
    return _outcome(resource) is not None


def search_outcomes(value: object, where: str) -> tuple[Issue | None, list[Issue]]:
    """(the failure, other warnings) of a search result: an OperationOutcome sent instead of results,
    or beside them in a searchset, is how a FHIR server says a search failed or may be incomplete (a
    timeout, too many results). No results and an outcome of severity warning or worse is a failed
    search: reading it as "no results" would tell the clinician that the patient has no checkup or
    no known condition. The diagnostics text is never echoed (it may quote the query); the issue
    codes are. Any Bundle type counts: servers and EHRs do not all type a prefetch "searchset"."""
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        resources = [e.get("resource") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    else:
        resources = [value]
    outcomes = [o for o in map(_outcome, resources) if o is not None]
    if not outcomes:
        return None, []
    worst = min((o[0] for o in outcomes), key=_SEVERITY.index)
    codes = "; ".join(dict.fromkeys(o[1] for o in outcomes))
    if worst == "information":
        return None, []  # a server's remark ("results sorted by date"), not a failure
    if len(resources) == len(outcomes):
        return Issue(where, f"the FHIR server's search failed (OperationOutcome, {worst}: {codes}): no results"), []
    return None, [
        Issue(
            where,
            f"holds an OperationOutcome ({worst}: {codes}) beside the data: the data sent may be incomplete",
        )
    ]


def partial_page(value: object, where: str) -> Issue | None:
    """The Issue saying a search result is one page of more (a `next` link, or a `total` above the
    entries sent), else None: a server that pages below the prefetch's `_count`, or ignores it, sends
    the first page only, and what it leaves out (the newest visit, a known diagnosis) is unknown."""
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return None
    links = value.get("link")
    more = isinstance(links, list) and any(isinstance(k, dict) and k.get("relation") == "next" for k in links)
    entries = value.get("entry")
    sent = sum(
        1
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict)
        and not is_outcome(e.get("resource"))
        and not (isinstance(e.get("search"), dict) and e["search"].get("mode") == "include")
    )
    total = value.get("total")
    if more or (isinstance(total, int) and not isinstance(total, bool) and total > sent):
        shown = f" ({sent} of {total})" if isinstance(total, int) and not isinstance(total, bool) else ""
        return Issue(where, f"is one page of the search results{shown}: the data sent may be incomplete")
    return None


def bundle_entries(
    bundle: dict, where: str = "Bundle", warnings: list[Issue] | None = None
) -> list[tuple[dict, str | None]]:
    """(resource, fullUrl) for each entry of a Bundle, reading through a Bundle inside it (a
    batch-response holds one searchset per search). An entry without a resource is skipped: FHIR
    allows it (a batch's failed request carries only its `response`, a history's deletion only its
    `request`); a failed request is said in `warnings`, since what it would have fetched is missing."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirInputError([Issue(where, "must be a FHIR Bundle")])
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirInputError([Issue(f"{where}.entry", "must be a list of entries")])
    said: list[Issue] = [] if warnings is None else warnings
    out: list[tuple[dict, str | None]] = []
    for i, entry in enumerate(entries):
        at = f"{where}.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        nested = at.count(".entry[")  # Bundles are read through at most three deep
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" and nested < 3:
            # A search inside the batch may have failed or been paged, as one sent alone may.
            failed, flagged = search_outcomes(resource, f"{at}.resource")
            page = partial_page(resource, f"{at}.resource")
            said += [i for i in (failed, page) if i] + flagged
            out += [(r, u) for r, u in bundle_entries(resource, f"{at}.resource", said) if not is_outcome(r)]
        elif isinstance(resource, dict):
            out.append((resource, entry.get("fullUrl")))
        elif resource is not None:
            said.append(Issue(at, "its resource is not a FHIR resource: not used"))
        elif (problem := _failed_request(entry)) is not None:
            said.append(Issue(f"{at}.response", problem))
        elif not isinstance(entry, dict) or not (entry.get("response") or entry.get("request")):
            said.append(Issue(at, "has no resource: not used"))
    return out


def _failed_request(entry: object) -> str | None:
    """Why a batch's request failed (its response status, never the diagnostics), or None."""
    response = entry.get("response") if isinstance(entry, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    code = status.strip()[:3] if isinstance(status, str) else ""
    if not code or code.startswith("2") or not code.isdigit():
        return None
    return f"a request of the batch failed (status {code}): what it would have fetched is missing"


def same_resource_key(resource: dict) -> str:
    """A resource's content without its metadata and narrative: two copies of one resource, fetched
    at different times or rendered differently, have the same key."""
    return json.dumps({k: v for k, v in resource.items() if k not in ("meta", "text")}, sort_keys=True, default=str)


def read_bundle(
    bundle: dict,
    today: dt.date | None = None,
    visit_window_days: int = VISIT_DAYS,
    history_window_years: float | None = None,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> FhirCheckup:
    """The records of the one Patient in a Bundle (contract section 3); see `read_patient`."""
    structure: list[Issue] = []
    entries = bundle_entries(bundle, warnings=structure)
    # A searchset may hold the one Patient twice (as `match` and as `include`): the same person.
    patients = list({same_resource_key(r): (r, u) for r, u in entries if r.get("resourceType") == "Patient"}.values())
    if len(patients) != 1:
        raise FhirInputError(
            [Issue("Bundle", f"must hold exactly one Patient (found {len(patients)} different ones)")],
            status=412 if not patients else 422,
        )
    patient, patient_url = patients[0]
    checkup = read_patient(
        patient,
        [(r, u) for r, u in entries if r.get("resourceType") != "Patient"],
        today,
        visit_window_days,
        history_window_years,
        patient_url=patient_url if isinstance(patient_url, str) else None,
        time_zone=time_zone,
    )
    checkup.warnings[:0] = structure
    return checkup


# The LOINC code and UCUM unit written for each record field (the first code of MEASURES wins).
_WRITE = {m.field: code for code, m in reversed(list(MEASURES.items()))}
_UCUM = {"mmHg": "mm[Hg]", "cm": "cm", "kg": "kg", "mg/dL": "mg/dL", "g/dL": "g/dL", "U/L": "U/L"}
_DIPSTICK_WRITE = {v: k for k, v in reversed(list(_DIPSTICK_SNOMED.items()))}
_SMOKING_WRITE = {1: "266919005", 2: "8517006", 3: "449868002"}
_HISTORY_WRITE = {name: code for code, name in reversed(list(_HISTORY_SNOMED.items()))}
_MEDICATION_WRITE = {
    "on_antihypertensive": ("C09AA05", "ramipril"),
    "on_diabetes_medication": ("A10BA02", "metformin"),
    "on_statin": ("C10AA05", "atorvastatin"),
}
_FAMILY_WRITE = {"family_history_cvd": "22298006", "family_history_diabetes": "44054006"}
_FAMILY_NEGATIVE_WRITE = {
    "family_history_cvd": ("160270001", "No family history of cardiovascular disease"),
    "family_history_diabetes": ("160274005", "No family history of diabetes"),
}
_DRINKING_WRITE = {1: ("219006", "Current drinker of alcohol"), 0: ("105542008", "Current non-drinker of alcohol")}
# The lasting fields a record's 1 or 0 is written for, in the order their resources are written.
_LASTING_WRITE: tuple[str, ...] = (*_HISTORY_WRITE, *_MEDICATION_WRITE, *_FAMILY_WRITE)


def _birth_date(records: list[dict]) -> str:
    """Born on 1 January of (newest exam year - age): every record's age must then be its age."""
    newest = records[-1]
    if newest.get("age") is None:
        raise ValueError("age is needed to write a birth date")
    when = str(newest.get("exam_date") or dt.date.today().isoformat())[:10]
    birth = dt.date(int(when[:4]) - int(newest["age"]), 1, 1)
    for r in records:
        day = dt.date.fromisoformat(str(r.get("exam_date") or dt.date.today().isoformat())[:10])
        if r.get("age") is not None and _age(birth, day) != int(r["age"]):
            raise ValueError(
                f"the ages of {r['person_id']}'s records do not fit one birth date "
                f"({r['age']} on {day}); pass birth_date"
            )
    return birth.isoformat()


def to_bundle(records: dict | list[dict], birth_date: str | None = None) -> dict:
    """A FHIR R4 collection Bundle (Patient + final Observations, Conditions, medications) holding one
    person's canonical record, or a list of that person's records (several checkups, each dated).

    The inverse of `read_bundle` for the fields FHIR carries; used to build test and demo patients.
    Each checkup's Observations carry its exam_date (drinking as 11331-6, activity as 89555-7). A
    history, medication or family field that is 1 becomes one Condition, MedicationStatement or
    FamilyMemberHistory dated at the first checkup that has it. A 0 is written as what says "no"
    (the absence of a Condition is not evidence of absence), dated at that checkup: a refuted
    Condition, a not-taken MedicationStatement, a FamilyMemberHistory of "No family history of ...".
    A 0 after a 1 of the same field cannot come back (a diagnosis never heals when read).
    """
    records = [records] if isinstance(records, dict) else sorted(records, key=lambda r: str(r.get("exam_date") or ""))
    if not records:
        raise ValueError("at least one record is needed")
    if len({r["person_id"] for r in records}) != 1:
        raise ValueError("all records must be of one person")
    pid = re.sub(r"[^A-Za-z0-9.-]", "-", str(records[0]["person_id"]))[:64]  # FHIR id characters
    if birth_date is None:
        birth_date = _birth_date(records)
    entries = [
        {
            "fullUrl": f"urn:uuid:patient-{pid}",
            "resource": {
                "resourceType": "Patient",
                "id": pid,
                "gender": SEX_WORDS[SEX_CODES[records[-1]["sex"]]],
                "birthDate": birth_date,
            },
        }
    ]
    subject = {"reference": f"Patient/{pid}"}
    several = len(records) > 1
    first_seen: dict[str, str] = {}  # lasting field -> the date of the first checkup where it is 1
    for k, record in enumerate(records):
        when = str(record.get("exam_date") or dt.date.today().isoformat())[:10]
        prefix = f"{pid}-c{k}" if several else pid
        for code, display, value in _observed(record):
            entries.append(_observation(f"{prefix}-obs-{len(entries)}", code, display, value, subject, when))
        for name in _LASTING_WRITE:
            if record.get(name) == 1:
                first_seen.setdefault(name, when)
            elif record.get(name) == 0:
                entries.append(_negative(name, f"{prefix}-{name.replace('_', '-')}-no", subject, when))
    entries += _lasting(pid, subject, first_seen, several)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _observed(record: dict) -> list[tuple[str, str, dict]]:
    """(LOINC code, display, value[x]) of each field of one checkup that FHIR carries as an Observation."""
    out: list[tuple[str, str, dict]] = []
    for name in (f for f in BY_NAME if f in _WRITE):
        value = record.get(name)
        if value is not None:
            unit = str(BY_NAME[name].unit)  # every field written as a quantity has one
            out.append(
                (
                    _WRITE[name],
                    BY_NAME[name].label_en,
                    {"valueQuantity": {"value": float(value), "unit": unit, "system": UCUM, "code": _UCUM[unit]}},
                )
            )
    if record.get("urine_protein") is not None:
        code = int(record["urine_protein"])
        out.append(
            (
                URINE_PROTEIN,
                "Protein [Presence] in Urine by Test strip",
                {
                    "valueCodeableConcept": {
                        "coding": [{"system": SNOMED, "code": _DIPSTICK_WRITE[code]}],
                        "text": BY_NAME["urine_protein"].codes[code],
                    }
                },
            )
        )
    if record.get("smoking_status") is not None:
        code = int(record["smoking_status"])
        out.append(
            (
                SMOKING,
                "Tobacco smoking status",
                {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": _SMOKING_WRITE[code]}]}},
            )
        )
    if record.get("drinking") is not None:
        snomed, display = _DRINKING_WRITE[int(record["drinking"])]
        out.append(
            (
                ALCOHOL,
                "History of Alcohol use",
                {
                    "valueCodeableConcept": {
                        "coding": [{"system": SNOMED, "code": snomed, "display": display}],
                        "text": "Yes" if int(record["drinking"]) else "No",
                    }
                },
            )
        )
    if record.get("activity_days_per_week") is not None:
        out.append(
            (
                ACTIVITY,
                "Days per week of moderate to strenuous physical activity",
                {
                    "valueQuantity": {
                        "value": int(record["activity_days_per_week"]),
                        "unit": "days per week",
                        "system": UCUM,
                        "code": "d/wk",
                    }
                },
            )
        )
    return out


def _observation(oid: str, code: str, display: str, value: dict, subject: dict, when: str) -> dict:
    return {
        "fullUrl": f"urn:uuid:{oid}",
        "resource": {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": subject,
            "effectiveDateTime": when,
            **value,
        },
    }


def _lasting(pid: str, subject: dict, first_seen: dict[str, str], several: bool) -> list[dict]:
    """One Condition, MedicationStatement or FamilyMemberHistory per lasting field that was ever 1,
    dated at its first checkup when there are several."""
    out = []
    for name, code in _HISTORY_WRITE.items():
        if name in first_seen:
            out.append(
                {
                    "resource": {
                        "resourceType": "Condition",
                        "id": f"{pid}-{name.replace('_', '-')}",
                        "subject": subject,
                        "code": {"coding": [{"system": SNOMED, "code": code}]},
                        **({"onsetDateTime": first_seen[name]} if several else {}),
                    }
                }
            )
    for name, (code, display) in _MEDICATION_WRITE.items():
        if name in first_seen:
            out.append(
                {
                    "resource": {
                        "resourceType": "MedicationStatement",
                        "id": f"{pid}-{name.replace('_', '-')}",
                        "status": "active",
                        "subject": subject,
                        "medicationCodeableConcept": {"coding": [{"system": ATC, "code": code, "display": display}]},
                        **({"effectivePeriod": {"start": first_seen[name]}} if several else {}),
                    }
                }
            )
    for name, code in _FAMILY_WRITE.items():
        if name in first_seen:
            out.append(
                {
                    "resource": {
                        "resourceType": "FamilyMemberHistory",
                        "id": f"{pid}-{name.replace('_', '-')}",
                        "status": "completed",
                        "patient": subject,
                        **({"date": first_seen[name]} if several else {}),
                        "relationship": {"coding": [{"system": ROLE_CODE, "code": "FTH"}]},
                        "condition": [{"code": {"coding": [{"system": SNOMED, "code": code}]}}],
                    }
                }
            )
    return out


def _negative(name: str, rid: str, subject: dict, when: str) -> dict:
    """The resource that says `name` is 0 at the checkup of `when` (see `to_bundle`)."""
    if name in _HISTORY_WRITE:
        resource = {
            "resourceType": "Condition",
            "id": rid,
            "subject": subject,
            "verificationStatus": {"coding": [{"system": _VER_STATUS, "code": _REFUTED}]},
            "code": {"coding": [{"system": SNOMED, "code": _HISTORY_WRITE[name]}]},
            "recordedDate": when,
        }
    elif name in _MEDICATION_WRITE:
        code, display = _MEDICATION_WRITE[name]
        resource = {
            "resourceType": "MedicationStatement",
            "id": rid,
            "status": "not-taken",
            "subject": subject,
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": code, "display": display}]},
            "effectiveDateTime": when,
            "dateAsserted": when,
        }
    else:
        code, display = _FAMILY_NEGATIVE_WRITE[name]
        resource = {
            "resourceType": "FamilyMemberHistory",
            "id": rid,
            "status": "completed",
            "patient": subject,
            "date": when,
            "relationship": {"coding": [{"system": ROLE_CODE, "code": "FAMMEMB", "display": "family member"}]},
            "condition": [{"code": {"coding": [{"system": SNOMED, "code": code, "display": display}]}}],
        }
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource}
