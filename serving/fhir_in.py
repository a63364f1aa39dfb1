"""FHIR resources in: structure checked by the R4B models, then the records read from them
(`features.fhir`) checked by the same validator as `/score`.

Errors name the resource and never echo submitted values. Only the newest checkup's problems refuse
the call; an earlier checkup that fails validation is dropped from the history with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from features.fhir import ANSWERS, FhirCheckup, FhirInputError, Issue, bundle_entries, plain_problem
from features.schema import BY_NAME, FIELDS, ORDERED_PAIRS
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
        message = e["message"]
        if e["field"] == "age":
            # The age is the reader's, from the birth date: say what it means, not the validator's words.
            low, high = BY_NAME["age"].low, BY_NAME["age"].high
            message = f"the patient's age on the checkup's day is outside {low:g}-{high:g}, the ages of the models"
        issues.append(Issue(source, f"{e['field']}: {message}" if e["field"] else message))
    return issues


def validate_records(checkup: FhirCheckup) -> tuple[list[dict], list[Issue]]:
    """The FHIR-derived records through the same validator as /score, oldest first, and warnings.

    The newest record must be valid (errors name the resource: FhirInputError, 422). An earlier one
    that is not (an implausible old value, an age under 20) is left out of the history with a
    warning: history sharpens the estimate, and a bad old value must not block today's.
    `checkup.basis` is narrowed to the resources of the records kept.
    """
    crossed = [
        issue
        for record, sources in zip(checkup.records, checkup.record_sources, strict=True)
        for issue in _drop_crossed(record, sources)
    ]
    *earlier, newest = list(zip(checkup.records, checkup.record_sources, strict=True))
    try:
        last = Checkup.model_validate(newest[0]).model_dump()
    except ValidationError as exc:
        raise FhirInputError(_record_issues(exc, newest[1], checkup.patient)) from exc
    kept, kept_sources, warnings = [], [], crossed
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


def _drop_crossed(record: dict, sources: dict[str, str]) -> list[Issue]:
    """Leave out both values of an ordered pair that is crossed in one visit (a DBP not below the
    SBP, `features.schema.ORDERED_PAIRS`), as any unreadable value (contract section 3): which of
    the two is wrong cannot be told, and one bad reading must not refuse the patient."""
    issues = []
    for low, high in ORDERED_PAIRS:
        lo, hi = record.get(low), record.get(high)
        if lo is not None and hi is not None and lo >= hi:
            del record[low], record[high]  # absent, as the reader leaves a value it could not read
            where = sources.get(low) or sources.get(high) or ""
            issues.append(
                Issue(
                    where,
                    f"{low} is not lower than {high} in the visit of {record.get('exam_date')}: both left missing",
                )
            )
    return issues


def validate_fhir(resource: Any, where: str) -> None:
    """Structure and types by the R4B models (unknown elements, wrong types, missing required), so
    that reading the record afterwards meets only well-formed resources.

    A Bundle is checked as a Bundle (its entries' structure), not resource by resource:
    `features.fhir.read_patient` checks each resource itself and leaves an invalid one other than
    the Patient (an unknown resourceType too) out with a warning, so that one malformed value never
    refuses the patient (contract section 3). Messages say what is wrong in plain words."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    model = _model(kind)
    if model is None:
        raise FhirInputError([Issue(where, "must be a FHIR R4 resource with a known resourceType")])
    if kind == "Bundle" and isinstance(resource.get("entry"), list):
        entries = resource["entry"]
        # The Bundle itself, without its resources: each is checked when read, and one that is not
        # a FHIR R4 resource (an unknown resourceType too) is left out with a warning.
        resource = {
            **resource,
            "entry": [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e for e in entries],
        }
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for e in exc.errors():
            path, words = plain_problem(e)
            issues.append(Issue(f"{where}.{path}" if path else where, words))
        raise FhirInputError(issues) from None
    except (TypeError, ValueError, KeyError) as exc:  # fhir.resources raises these for some malformed input
        raise FhirInputError([Issue(where, f"is not a valid FHIR R4 {kind} ({type(exc).__name__})")]) from None


def check_bundle(bundle: Any, where: str) -> list[Issue]:
    """`validate_fhir` for a Bundle whose entries can still be read: a fault in the Bundle's own
    elements (a `total` that is no number, a link without a url) is a warning, since each resource
    is judged when read; a Bundle whose entries cannot be read is refused."""
    try:
        validate_fhir(bundle, where=where)
    except FhirInputError as e:
        bundle_entries(bundle, where=where)  # raises when the entries themselves cannot be read
        said = "; ".join(f"{i.location}: {i.message}" for i in e.issues[:3])
        return [Issue(where, f"is not a valid FHIR R4 Bundle ({said}): its entries are read")]
    return []


def _model(kind: object) -> Any:
    """The R4B model class of a resourceType, or None when there is none."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(kind) if isinstance(kind, str) else None
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


# Record fields a checkup measures (read from Observations): all but who the person is, the
# questionnaire's answers and the history, treatment and family flags (read from Conditions,
# medicines and FamilyMemberHistory).
MEASURED = frozenset(
    f.name
    for f in FIELDS
    if f.name not in ("person_id", "exam_date", "sex", "age", "age_group", *ANSWERS)
    and not f.name.startswith(("history_", "on_", "family_history_"))
)


def has_measurement(checkup: FhirCheckup) -> bool:
    """Whether the newest checkup holds any measured value. Without one there is no checkup to
    score: `read_patient` then gives a record of today with only the person and the history, and a
    risk of it would describe no checkup (contract section 3: not refused, not scored)."""
    return any(name in MEASURED for name in checkup.record)


def no_measurement_reason(checkup: FhirCheckup, resources: Iterable[tuple[dict, str | None]]) -> str:
    """Why no checkup measurement could be read, in words (never a value): no Observation sent, or
    how many were skipped for their status and how many gave nothing readable (see the warnings)."""
    observations = sum(1 for resource, _ in resources if resource.get("resourceType") == "Observation")
    if observations == 0:
        why = "no Observation was sent"
    else:
        parts = []
        if checkup.ignored:
            parts.append(
                "Observations skipped for their status (only final, amended or corrected results count): "
                f"{checkup.ignored} of {observations}"
            )
        if observations > checkup.ignored:
            parts.append(
                "Observations that gave no value this service reads (a code it does not read, or a value, unit "
                f"or date that could not be used: see the warnings): {observations - checkup.ignored} of {observations}"
            )
        why = "; ".join(parts)
    return f"No checkup measurement could be read, so no risk is assessed: {why}."
