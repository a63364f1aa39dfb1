"""FHIR resources in: structure checked by the R4B models, then the records read from them
(`features.fhir`) checked by the same validator as `/score`.

Errors name the resource and never echo submitted values. Only the newest checkup's problems refuse
the call; an earlier checkup that fails validation is dropped from the history with a warning.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from features.fhir import FhirCheckup, FhirInputError, Issue
from serving.http_metrics import count_rejects
from serving.schemas import Checkup, errors_from


def validation_issues(exc: ValidationError, where: str = "") -> list[Issue]:
    """A pydantic error as issues naming where, never the value."""
    issues = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        issues.append(Issue(f"{where}{loc}" if loc else where or "body", str(e.get("msg", "invalid"))))
    return issues


def _record_issues(exc: ValidationError, sources: dict[str, str], patient: str) -> list[Issue]:
    issues = []
    errors = errors_from(exc, prefix=())
    # A refused checkup (or an earlier one dropped from the history), by the field named: /metrics.
    count_rejects(errors)
    for e in errors:
        source = sources.get(e["field"] or "", patient)
        issues.append(Issue(source, f"{e['field']}: {e['message']}" if e["field"] else e["message"]))
    return issues


def validate_records(checkup: FhirCheckup) -> tuple[list[dict], list[Issue]]:
    """The FHIR-derived records through the same validator as /score, oldest first, and warnings.

    The newest record must be valid (errors name the resource: FhirInputError, 422). An earlier one
    that is not (an implausible old value, an age under 20) is left out of the history with a
    warning: history sharpens the estimate, and a bad old value must not block today's.
    `checkup.basis` is narrowed to the resources of the records kept.
    """
    *earlier, newest = list(zip(checkup.records, checkup.record_sources, strict=True))
    try:
        last = Checkup.model_validate(newest[0]).model_dump()
    except ValidationError as exc:
        raise FhirInputError(_record_issues(exc, newest[1], checkup.patient)) from exc
    kept, kept_sources, warnings = [], [], []
    for record, sources in earlier:
        try:
            kept.append(Checkup.model_validate(record).model_dump())
            kept_sources.append(sources)
        except ValidationError as exc:
            for issue in _record_issues(exc, sources, checkup.patient):
                warnings.append(
                    Issue(
                        issue.location, f"earlier checkup of {record['exam_date']} not used as history: {issue.message}"
                    )
                )
    kept_sources.append(newest[1])
    checkup.basis = list(
        dict.fromkeys(ref for sources in kept_sources for ref in sources.values() if ref != checkup.patient)
    )
    return [*kept, last], warnings


def validate_fhir(resource: Any, where: str) -> None:
    """Structure and types by the R4B models (unknown elements, wrong types, missing required), so
    that reading the record afterwards meets only well-formed resources."""
    from fhir.resources.R4B import get_fhir_model_class

    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    try:
        model = get_fhir_model_class(kind) if isinstance(kind, str) else None
    except (KeyError, ValueError, ImportError, AttributeError):
        model = None
    if model is None:
        raise FhirInputError([Issue(where, "must be a FHIR R4 resource with a known resourceType")])
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        raise FhirInputError(validation_issues(exc, where=f"{where}.")) from None
    except (TypeError, ValueError, KeyError) as exc:  # fhir.resources raises these for some malformed input
        raise FhirInputError([Issue(where, f"is not a valid FHIR R4 {kind} ({type(exc).__name__})")]) from None
