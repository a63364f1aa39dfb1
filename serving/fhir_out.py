"""FHIR R4 output: RiskAssessment resources (validated with fhir.resources R4B plus the checks it
does not make), OperationOutcome errors, and the warnings of a successful call.

Warnings (values that could not be read and were left missing, earlier checkups left out of the
history, missing key inputs, a stale newest checkup) travel as one OperationOutcome with issues of
severity `warning`, the LAST entry of the returned Bundle, so that the RiskAssessments come first.
A stale result's RiskAssessments also say so in `note`.

The probability's interval (`probability_interval` of /score: the model's own nominal 95% interval,
see models/interval.py) travels as an extension on `RiskAssessment.prediction`, because R4 allows
`probability[x]` as a decimal OR a Range, not both, and `probabilityDecimal` stays:

    "extension": [{"url": "https://github.com/checkup-risk/checkup-risk/fhir/StructureDefinition/probability-interval",
                   "valueRange": {"low":  {"value": 0.0123, "unit": "probability (0-1)",
                                           "system": "http://unitsofmeasure.org", "code": "1"},
                                  "high": {"value": 0.0345, ...same unit...}}}]

The bounds are fractions from 0 to 1 on the same scale as `probabilityDecimal` (UCUM unity "1"; not
percentages as ras-1 asks of `probabilityRange`), with low <= probabilityDecimal <= high. The
extension is left out when the model version has no interval (bundles saved before intervals)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from features.fhir import SNOMED, FhirCheckup, Issue
from models.outcomes import OUTCOME_SPECS
from models.provenance import SYNTHETIC_WARNING

MODEL_SYSTEM = "https://github.com/checkup-risk/checkup-risk/models"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
STATUS_CODES = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)
# The code system has no "very high": it maps to "high", and the rationale says "very high".
QUALITATIVE = {"low": "low", "moderate": "moderate", "high": "high", "very_high": "high"}
FHIR_JSON = "application/fhir+json"
PROBABILITY_INTERVAL_URL = "https://github.com/checkup-risk/checkup-risk/fhir/StructureDefinition/probability-interval"
_UNITY = {"unit": "probability (0-1)", "system": "http://unitsofmeasure.org", "code": "1"}


def probability_interval_extension(interval: list[float] | None) -> list[dict]:
    """The `prediction.extension` list carrying `probability_interval` as a valueRange of 0..1
    fractions (see the module docstring); empty when there is no interval."""
    if not interval:
        return []
    low, high = interval
    return [
        {
            "url": PROBABILITY_INTERVAL_URL,
            "valueRange": {
                "low": {"value": round(float(low), 6), **_UNITY},
                "high": {"value": round(float(high), 6), **_UNITY},
            },
        }
    ]


def _rationale(result: dict, outcome: str, labels) -> str:
    factors = [labels(c) for c in result["risks"][outcome].get("contributions") or [] if c["log_odds"] > 0]
    category = result["risks"][outcome]["category"].replace("_", " ")
    text = f"One-year risk {category}."
    if factors:
        text += " Raising it: " + "; ".join(factors[:3]) + "."
    return text


def risk_assessments(
    checkup: FhirCheckup,
    result: dict,
    version: str,
    labels,
    now: dt.datetime | None = None,
    history_checkups: int | None = None,
    stale: bool = False,
    synthetic: bool = False,
) -> list[dict]:
    """One RiskAssessment per applicable outcome of a scored record, as validated JSON dicts.

    `labels` turns a contribution into words for the rationale (e.g. "systolic BP 152 mmHg").
    `history_checkups` (earlier checkups scored with it) and `stale` are said in `note`; so is
    `synthetic` (a model trained on simulated people), since a RiskAssessment may be stored in the
    record apart from the OperationOutcome that also says it.
    """
    now = now or dt.datetime.now(dt.UTC)
    notes = [
        {"text": "probabilityDecimal is a fraction from 0 to 1 over the next year; a model estimate, not a diagnosis."}
    ]
    # occurrenceDateTime is when the assessment was made; the checkup it describes is said here.
    with_history = f" with {history_checkups} earlier checkup(s) as history" if history_checkups else ""
    notes.append({"text": f"Scored from the checkup of {result['exam_date']}{with_history}."})
    if stale:
        notes.append(
            {
                "text": f"The checkup of {result['exam_date']} is older than the staleness limit: this risk "
                "describes the year after that checkup, not the coming year."
            }
        )
    if synthetic:
        notes.append({"text": SYNTHETIC_WARNING[0].upper() + SYNTHETIC_WARNING[1:] + "."})
    out = []
    for outcome, risk in result["risks"].items():
        if not risk["applicable"]:
            continue
        spec = OUTCOME_SPECS[outcome]
        resource = {
            "resourceType": "RiskAssessment",
            "id": str(uuid.uuid4()),
            "status": "final",
            "subject": {"reference": checkup.patient},
            "occurrenceDateTime": now.isoformat(timespec="seconds"),
            "method": {
                "coding": [
                    {
                        "system": MODEL_SYSTEM,
                        "code": f"checkup-risk-{outcome}",
                        "version": version,
                        "display": f"checkup-risk {outcome} model, version {version}",
                    }
                ],
                "text": f"checkup-risk model version {version} (calibrated XGBoost)",
            },
            "basis": [{"reference": ref} for ref in [checkup.patient, *checkup.basis]],
            "prediction": [
                {
                    "outcome": {
                        "coding": [{"system": SNOMED, "code": spec.snomed, "display": spec.snomed_term}],
                        "text": spec.label_en,
                    },
                    "probabilityDecimal": round(risk["probability"], 6),
                    "qualitativeRisk": {
                        "coding": [{"system": RISK_PROBABILITY, "code": QUALITATIVE[risk["category"]]}],
                        "text": risk["category"].replace("_", " "),
                    },
                    "whenRange": {
                        "high": {"value": 1, "unit": "year", "system": "http://unitsofmeasure.org", "code": "a"}
                    },
                    "rationale": _rationale(result, outcome, labels),
                    **(
                        {"extension": ext}
                        if (ext := probability_interval_extension(risk.get("probability_interval")))
                        else {}
                    ),
                }
            ],
            "note": notes,
        }
        # Validated as built (dumping the model back would cost more than building it).
        RiskAssessment.model_validate(resource)
        problems = check_risk_assessment(resource, version, set(checkup.basis) | {checkup.patient})
        if problems:
            raise AssertionError("; ".join(problems))  # our own output: a bug, never the caller's fault
        out.append(resource)
    return out


def check_risk_assessment(resource: dict, version: str, known_refs: set[str]) -> list[str]:
    """What fhir.resources does not check: code bindings, ras-2, SNOMED outcome, basis, version."""
    problems = []
    if resource.get("status") not in STATUS_CODES:
        problems.append(f"status {resource.get('status')!r} is not an ObservationStatus code")
    if not (resource.get("subject") or {}).get("reference"):
        problems.append("subject reference missing")
    versions = [c.get("version") for c in (resource.get("method") or {}).get("coding") or []]
    if version not in versions:
        problems.append("method does not carry the model version")
    basis = [b.get("reference") for b in resource.get("basis") or []]
    if not basis or any(ref not in known_refs for ref in basis):
        problems.append("basis must reference the resources used")
    for i, prediction in enumerate(resource.get("prediction") or []):
        p = prediction.get("probabilityDecimal")
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            problems.append(f"prediction[{i}].probabilityDecimal must be a fraction in 0..1")
        if not any(
            c.get("system") == SNOMED and c.get("code") for c in (prediction.get("outcome") or {}).get("coding") or []
        ):
            problems.append(f"prediction[{i}].outcome must be coded in SNOMED CT")
        for ext in prediction.get("extension") or []:
            if ext.get("url") != PROBABILITY_INTERVAL_URL:
                continue
            bounds = ext.get("valueRange") or {}
            low, high = (bounds.get("low") or {}).get("value"), (bounds.get("high") or {}).get("value")
            if not (
                isinstance(low, (int, float))
                and isinstance(high, (int, float))
                and isinstance(p, (int, float))
                and 0.0 <= low <= p <= high <= 1.0
            ):
                problems.append(
                    f"prediction[{i}] probability interval must be 0 <= low <= probabilityDecimal <= high <= 1"
                )
        qualitative = (prediction.get("qualitativeRisk") or {}).get("coding") or []
        if any(
            c.get("system") != RISK_PROBABILITY or c.get("code") not in set(QUALITATIVE.values()) for c in qualitative
        ):
            problems.append(f"prediction[{i}].qualitativeRisk must use the risk-probability code system")
    if not resource.get("prediction"):
        problems.append("no prediction")
    return problems


def result_bundle(resources: list[dict], outcome: dict | None = None) -> dict:
    """A collection Bundle of already validated resources (the envelope is validated here); a
    warnings OperationOutcome, when given, is the last entry."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    Bundle.model_validate(bundle)
    bundle["entry"] = [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in [*resources, *([outcome] if outcome else [])]
    ]
    return bundle


def warnings_outcome(reading: list[Issue], notes: list[str], information: Sequence[str] = ()) -> dict | None:
    """The warnings of a successful call as an OperationOutcome (None when there is nothing to say).

    `reading`: values left missing or checkups left out, with where (code `value`, never the value);
    `notes`: the scorer's warnings and the stale notice (code `informational`); `information`:
    facts of severity `information`, such as why an outcome has no RiskAssessment.
    """
    issues = [
        {
            "severity": "warning",
            "code": "value",
            "diagnostics": i.message,
            **({"expression": i.expressions} if i.expressions else {}),
        }
        for i in reading
    ]
    issues += [{"severity": "warning", "code": "informational", "diagnostics": n} for n in notes]
    issues += [{"severity": "information", "code": "informational", "diagnostics": n} for n in information]
    if not issues:
        return None
    body = {"resourceType": "OperationOutcome", "id": str(uuid.uuid4()), "issue": issues}
    return OperationOutcome.model_validate(body).model_dump(mode="json", exclude_none=True)


def no_checkup_outcome(reason: str, reading: list[Issue], notes: Sequence[str] = ()) -> dict:
    """The OperationOutcome of a call with no checkup measurement (no RiskAssessment goes with it):
    why first (severity `warning`, code `not-found`), then each value that could not be read and the
    `notes` (such as the synthetic-model notice)."""
    rest = warnings_outcome(reading, list(notes))
    issues = [{"severity": "warning", "code": "not-found", "diagnostics": reason}, *(rest["issue"] if rest else [])]
    body = {"resourceType": "OperationOutcome", "id": str(uuid.uuid4()), "issue": issues}
    return OperationOutcome.model_validate(body).model_dump(mode="json", exclude_none=True)


def operation_outcome(issues: list[Issue], code: str = "invalid", severity: str = "error") -> dict:
    """The FHIR error body: one issue per problem, with where it is (never the submitted value)."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": code,
                "diagnostics": i.message,
                **({"expression": i.expressions} if i.expressions else {}),
            }
            for i in issues
        ],
    }
    return OperationOutcome.model_validate(body).model_dump(mode="json", exclude_none=True)
