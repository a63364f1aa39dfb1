"""CDS Hooks 2.0 (patient-view) and FHIR routes.

`GET /cds-services` is discovery (public); `POST /cds-services/checkup-risk` and its feedback
endpoint check the client's signed JWT (serving.cds_auth) instead of the API token;
`POST /fhir/risk-assessment` (API token) turns a FHIR Bundle into RiskAssessments. FHIR errors come
back as OperationOutcome, never as a 500, and never echo submitted values.

Both read all of the person's checkups (features.fhir groups Observations into visits) and score them
together, so the newest is scored with the earlier ones as its history, as `/score` and batch do.
Values that cannot be read are left missing and listed: in the card's detail, and in the FHIR
response as an OperationOutcome entry of severity `warning` at the end of the returned Bundle.

The pieces live apart: the wire format in `serving.cds_hooks`, card text in `serving.cds_cards`,
the shared-state stores in `serving.cds_store`, reading and checking FHIR input in `serving.fhir_in`.

Synthetic models: a model trained on simulated people (`models.provenance`) gives no cards unless
the service was started with `CHECKUP_RISK_ALLOW_SYNTHETIC=1` (`Settings.allow_synthetic`, kept on
the worker as `allow_synthetic`); then every card says so, in Korean and English, and its
RiskAssessment suggestions carry the same note.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, NamedTuple

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from features.fhir import (
    FhirInputError,
    Issue,
    bundle_entries,
    is_deceased,
    is_outcome,
    partial_page,
    read_bundle,
    read_patient,
    same_resource_key,
    search_outcomes,
)
from features.schema import BY_NAME
from models.provenance import SYNTHETIC_WARNING
from serving.cds_auth import CdsAuthError
from serving.cds_cards import card, factor_words, mark_synthetic, no_checkup_card, stale_card
from serving.cds_hooks import OPTIONAL_PREFETCH, REQUIRED_PREFETCH, CdsRequest, FeedbackRequest, discovery
from serving.fhir_in import (
    check_bundle,
    has_measurement,
    no_measurement_reason,
    validate_records,
    validation_issues,
)
from serving.fhir_out import (
    FHIR_JSON,
    no_checkup_outcome,
    operation_outcome,
    result_bundle,
    risk_assessments,
    warnings_outcome,
)
from serving.refusals import BODY_PROBLEM, malformed_body
from serving.worker import CurrentWorker, Worker, audit_persons

log = logging.getLogger("bentoml.checkup_risk.cds")
# The body of every CDS 401: the same words whatever was wrong (the log says what).
CDS_UNAUTHORIZED = "unauthorized: a signed JWT of an allowlisted CDS client, for this service's URL, is required"


def _fhir_error(issues: list[Issue], status: int, code: str = "invalid") -> JSONResponse:
    return JSONResponse(operation_outcome(issues, code=code), status_code=status, media_type=FHIR_JSON)


def _audience(request: Request, svc: Worker) -> str:
    """The URL the client's JWT must name: the public URL + path behind a proxy, else the one called,
    if its host is accepted (a bare Host header never chooses the audience)."""
    return _base(request, svc) + request.url.path


def _base(request: Request, svc: Worker) -> str:
    if svc.public_url:
        return svc.public_url
    netloc = request.url.netloc.lower()
    host = netloc[: netloc.index("]") + 1] if netloc.startswith("[") and "]" in netloc else netloc.rsplit(":", 1)[0]
    accepted = svc.accepted_hosts
    # The address this connection reached is no client's choice: host:port as the server saw it.
    server = request.scope.get("server")
    reached: set[str] = set()
    if server and server[0]:
        name = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0]).lower()
        reached = {f"{name}:{server[1]}"}
        if (request.url.scheme, server[1]) in (("http", 80), ("https", 443)):
            reached.add(name)
    if netloc not in accepted and host not in accepted and netloc not in reached:
        raise CdsAuthError("this host is not accepted: set CHECKUP_RISK_PUBLIC_URL or CHECKUP_RISK_ACCEPTED_HOSTS")
    return f"{request.url.scheme}://{request.url.netloc}"


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FhirInputError([Issue("body", "is not valid JSON")], status=400) from None


router = APIRouter()


@router.get("/cds-services", summary="CDS Hooks discovery (public)", tags=["CDS Hooks"])
def cds_discovery() -> dict:
    return discovery()


# Threads verifying CDS JWTs at once, per worker. Their own pool: a JWK Set fetch may hold a thread
# for JWKS_TIMEOUT_S, and the shared pool also runs BentoML's /readyz check and large /score calls.
VERIFY_THREADS = 8
_verify_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = weakref.WeakKeyDictionary()


async def _authorize(request: Request, svc: Worker) -> JSONResponse | None:
    """None when the call's JWT is good and its body readable, else the refusal to send: 401 first,
    then what the body guard found wrong with the body (`serving.refusals.SELF_AUTHENTICATED`).
    Verification (a JWK Set fetch, the signature check, the replay store) runs on a thread: it never
    holds up the event loop."""
    loop = asyncio.get_running_loop()
    limiter = _verify_limiters.get(loop)
    if limiter is None:
        limiter = _verify_limiters[loop] = CapacityLimiter(VERIFY_THREADS)
    try:
        audience = _audience(request, svc)
        authorization = request.headers.get("authorization")
        claims = await anyio.to_thread.run_sync(svc.cds_verifier.verify, authorization, audience, limiter=limiter)
    except CdsAuthError as e:
        # One message for every refusal (contract section 5): the reason would let a caller map the
        # allowlisted issuers and key ids. Operators read it in the log, which holds no patient data.
        log.warning("CDS call refused (401): %s", e)
        response = _fhir_error([Issue("Authorization", CDS_UNAUTHORIZED)], 401, code="security")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    # The audit trail names the verified client (serving.audit).
    request.state.audit_client = f"cds:{claims['iss']}"
    problem = request.scope.get(BODY_PROBLEM)  # found by the body guard, said only now
    return malformed_body(request.url.path, *problem) if problem else None


class Prefetched(NamedTuple):
    """One prefetch key read: its resources, warnings on its structure, the FHIR server's failed
    search (or None), and the Issue saying it is one page of more (or None)."""

    resources: list[tuple[dict, str | None]]
    warnings: list[Issue]
    failed: Issue | None
    page: Issue | None


def _prefetched_resources(prefetch: dict, key: str) -> Prefetched:
    """One prefetch key: a searchset Bundle's resources (`check_bundle`), or one resource sent bare;
    an OperationOutcome in place of the results, or among them, is the server's word on the search
    (`search_outcomes`); a `next` link or a larger `total`, that the results are one page
    (`partial_page`)."""
    value = prefetch.get(key)
    if value is None:
        return Prefetched([], [], None, None)
    failed, said = search_outcomes(value, f"prefetch.{key}")
    page = partial_page(value, f"prefetch.{key}")
    if is_outcome(value):
        return Prefetched([], said, failed, None)
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str) and value["resourceType"] != "Bundle":
        return Prefetched([(value, None)], [], None, None)  # the reader judges it, as each resource of a Bundle
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise FhirInputError([Issue(f"prefetch.{key}", "must be a Bundle (or one FHIR resource)")])
    warnings = said + check_bundle(value, where=f"prefetch.{key}")
    entries = [(r, url) for r, url in bundle_entries(value, f"prefetch.{key}", warnings) if not is_outcome(r)]
    return Prefetched(entries, warnings, failed, page)


# The resources each optional prefetch key is for.
_KIND = {
    "conditions": "Condition",
    "medications": "MedicationStatement",
    "medicationRequests": "MedicationRequest",
    "familyHistory": "FamilyMemberHistory",
}
assert set(_KIND) == set(OPTIONAL_PREFETCH)
# What a failed, partial or unsent optional search leaves unchecked, for the clinician.
_UNCHECKED = {
    "conditions": "known diagnoses could not be checked: a disease already diagnosed may be scored as new",
    "medications": "current treatment could not be checked: a treated disease may be scored as new",
    "medicationRequests": "current treatment could not be checked: a treated disease may be scored as new",
    "familyHistory": "family history could not be checked",
}


def _optional_resources(prefetch: dict) -> tuple[list[tuple[dict, str | None]], list[Issue]]:
    """(resources, warnings) of the optional prefetch keys: one that cannot be read, or whose search
    failed, is left out with a warning (a failure first in the list: it says what could not be
    checked), since the history it would add is optional and must not refuse the patient."""
    resources: list[tuple[dict, str | None]] = []
    failures: list[Issue] = []
    warnings: list[Issue] = []
    for key in OPTIONAL_PREFETCH:
        try:
            got = _prefetched_resources(prefetch, key)
        except FhirInputError as e:
            said = "; ".join(f"{i.location}: {i.message}" for i in e.issues[:3])
            warnings.append(Issue(f"prefetch.{key}", f"could not be read ({said}): left out"))
            continue
        resources += got.resources
        warnings += got.warnings
        for issue in (got.failed, got.page):
            if issue is not None:
                failures.append(Issue(issue.location, f"{issue.message}; {_UNCHECKED[key]}"))
    # A client that could not, or chose not to, fetch a key does not send it (CDS Hooks 2.0; a key
    # sent as null means "no such data"): what it would have checked is unchecked, unless resources
    # of its kind came under another key. Treatment is checked through either of its two keys.
    # A resourceType that is not a string (a list from a fuzzing or broken client) is no kind at all.
    came = {kind for r, _url in resources if isinstance(kind := r.get("resourceType"), str)}
    unchecked = [k for k in OPTIONAL_PREFETCH if k not in prefetch and _KIND[k] not in came]
    if {"medications", "medicationRequests"} - set(unchecked):
        unchecked = [k for k in unchecked if k not in ("medications", "medicationRequests")]
    for key in dict.fromkeys("medications" if k == "medicationRequests" else k for k in unchecked):
        failures.append(Issue(f"prefetch.{key}", f"not sent: {_UNCHECKED[key]}"))
    return resources, failures + warnings


def _not_described(patient: object, issues: list[Issue]) -> bool:
    """Whether the reader refused the Patient only for a person the models do not describe: a gender
    other, unknown or not recorded (no birthsex extension), or no birth date. A value that is there
    but unreadable ("Male", "1960/05/03") is bad input, refused as such (422)."""
    if not isinstance(patient, dict):
        return False
    gender, born = patient.get("gender"), patient.get("birthDate")
    allowed = ([".gender"] if gender in (None, "", "other", "unknown") else []) + (
        [".birthDate"] if born in (None, "") else []
    )
    return bool(allowed) and all(i.location.endswith(tuple(allowed)) for i in issues)


@router.post("/cds-services/checkup-risk", summary="CDS Hooks patient-view service (client JWT)", tags=["CDS Hooks"])
async def cds_patient_view(request: Request, svc: CurrentWorker) -> JSONResponse:
    refused = await _authorize(request, svc)
    if refused is not None:
        return refused
    patient: object = None
    try:
        body = await _json_body(request)
        try:
            call = CdsRequest.model_validate(body)
        except ValidationError as exc:
            return _fhir_error(validation_issues(exc), 400)
        prefetch = call.prefetch or {}
        # A required key left out could not be fetched: 412. Observations sent as null are "no such
        # data" (CDS Hooks 2.0): no checkup, said on an info card. A null Patient is no patient.
        missing = [k for k in REQUIRED_PREFETCH if k not in prefetch or (k == "patient" and prefetch[k] is None)]
        if missing:
            return _fhir_error(
                [
                    Issue(
                        f"prefetch.{k}",
                        "required prefetch data is missing or null (this service never queries the FHIR server "
                        "itself: send it as prefetch)",
                    )
                    for k in missing
                ],
                412,
                code="required",
            )
        patient = prefetch["patient"]
        if isinstance(patient, dict) and patient.get("resourceType") == "Bundle":
            # A client that prefetched the Patient by a search sends a one-Patient searchset.
            # (The same Patient twice, as `match` and `include`, is one.)
            found = {
                same_resource_key(r): r
                for r, _url in bundle_entries(patient, "prefetch.patient")
                if r.get("resourceType") == "Patient"
            }
            patient = next(iter(found.values())) if len(found) == 1 else patient
        if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
            return _fhir_error([Issue("prefetch.patient", "must be a Patient resource")], 412, code="required")
        # The searchsets' structure here; the resources themselves (the Patient too) are judged by
        # the reader, exactly as in a Bundle sent to /fhir/risk-assessment.
        observations, structure, failed, page = _prefetched_resources(prefetch, "observations")
        if page is not None:
            structure = [page, *structure]
        if failed is not None:
            # Not "no checkup results": the results could not be fetched, and the card must not say otherwise.
            return _fhir_error(
                [Issue(failed.location, f"{failed.message}; required prefetch data could not be fetched")],
                412,
                code="required",
            )
        optional, unread = _optional_resources(prefetch)
        unread[:0] = structure
        audit_persons(request, [{"person_id": call.context.patientId}])
        if patient.get("id") != call.context.patientId:
            return _fhir_error([Issue("prefetch.patient", "is not the patient in context.patientId")], 422)
        resources = observations + optional
        checkup = read_patient(patient, resources, visit_window_days=svc.fhir_visit_days, time_zone=svc.time_zone)
        age = checkup.record.get("age")
        low, high = BY_NAME["age"].low, BY_NAME["age"].high
        if age is None or not low <= age <= high or is_deceased(patient):
            # Outside the population the models describe, or no living person to advise: no card.
            return JSONResponse({"cards": []})
        records, dropped = validate_records(checkup)
    except FhirInputError as e:
        if e.issues and _not_described(patient, e.issues):
            # A sex other than male or female (no birthsex extension) or no birth date: the models
            # describe no such person, as for an age outside them. No card, not an error that a
            # chart opened every day would log each time (/fhir/risk-assessment still refuses it).
            return JSONResponse({"cards": []})
        return _fhir_error(e.issues, e.status)
    # One snapshot for the whole call: the model may switch meanwhile (serving.model_reload).
    served = svc.current()
    request.state.audit_model = served.version
    synthetic = served.scorer.synthetic
    if synthetic and not svc.allow_synthetic:
        # A model of made-up people: no card, unless the site asked for it (a demo, a test system).
        # The request was still checked above, so a client learns of its own errors either way.
        return JSONResponse({"cards": []})
    warnings = [*unread, *checkup.warnings, *dropped]
    if not has_measurement(checkup):
        # No checkup result at all: one info card that says so, with no number (as for stale data).
        empty = no_checkup_card(served.version, no_measurement_reason(checkup, resources), warnings)
        return JSONResponse({"cards": [mark_synthetic(empty, served.scorer.training_data) if synthetic else empty]})
    # All checkups together: the newest is scored with the earlier ones as its history.
    result = svc.scoring("cds", served).score_records(records, explain=True, top_k=5)[-1]
    one: dict | None
    if result.get("stale"):
        one = stale_card(result, served.version, warnings)
    else:
        assessments = risk_assessments(
            checkup, result, served.version, lambda c: factor_words(c, "en"), synthetic=synthetic
        )
        report_url = None
        if assessments:
            # A signed, short-lived link: it opens in the EHR's browser without a bearer token.
            report_url = _base(request, svc) + await run_in_threadpool(svc.report_links.put, records)
        missing = result["missing_inputs"]
        one = card(result, served.version, assessments, report_url, missing, warnings, served.scorer.thin)
    if one is not None and synthetic:
        one = mark_synthetic(one, served.scorer.training_data)
    # Exactly one card when there is something to say, never several: one calm message per chart view.
    return JSONResponse({"cards": [one] if one else []})


@router.post("/cds-services/checkup-risk/feedback", summary="CDS Hooks feedback (client JWT)", tags=["CDS Hooks"])
async def cds_feedback(request: Request, svc: CurrentWorker) -> JSONResponse:
    refused = await _authorize(request, svc)
    if refused is not None:
        return refused
    try:
        body = FeedbackRequest.model_validate(await _json_body(request))
    except FhirInputError as e:
        return _fhir_error(e.issues, e.status)
    except ValidationError as exc:
        return _fhir_error(validation_issues(exc), 400)
    await run_in_threadpool(svc.feedback.record, body.feedback)
    return JSONResponse({})


@router.post("/fhir/risk-assessment", summary="FHIR Bundle in, Bundle of RiskAssessment out", tags=["FHIR"])
async def fhir_risk_assessment(request: Request, svc: CurrentWorker) -> JSONResponse:
    try:
        bundle = await _json_body(request)
        if not isinstance(bundle, dict):
            raise FhirInputError([Issue("body", "must be a FHIR Bundle")])
        failed, flagged = search_outcomes(bundle, "Bundle")
        page = partial_page(bundle, "Bundle")
        structure = [i for i in (failed, page) if i] + flagged + check_bundle(bundle, where="Bundle")
        checkup = read_bundle(bundle, visit_window_days=svc.fhir_visit_days, time_zone=svc.time_zone)
        checkup.warnings[:0] = structure
        audit_persons(request, checkup.records)
        records, dropped = validate_records(checkup)
    except FhirInputError as e:
        # 412 is CDS's "required prefetch missing"; here a Bundle without its Patient is bad input.
        return _fhir_error(e.issues, 422 if e.status == 412 else e.status)
    if not has_measurement(checkup):
        # A person without any checkup result: not refused (contract section 3), not scored either.
        reason = no_measurement_reason(checkup, bundle_entries(bundle))
        # The model that would have scored: a synthetic one says so in every answer (contract section 5).
        notes = [SYNTHETIC_WARNING] if svc.current().scorer.synthetic else []
        empty = no_checkup_outcome(reason, [*checkup.warnings, *dropped], notes)
        return JSONResponse(result_bundle([], empty), media_type=FHIR_JSON)
    served = svc.current()
    request.state.audit_model = served.version
    result = svc.scoring("fhir", served).score_records(records, explain=True, top_k=5)[-1]
    notes = list(result.get("warnings") or [])  # a stale checkup is said there (`Scorer`)
    assessments = risk_assessments(
        checkup,
        result,
        served.version,
        lambda c: factor_words(c, "en"),
        history_checkups=result.get("history_checkups", len(records) - 1),
        stale=bool(result.get("stale")),
        synthetic=served.scorer.synthetic,
    )
    # An outcome without a RiskAssessment says why (contract section 2), e.g. a diagnosis on record.
    not_applicable = [
        f"{o}: no RiskAssessment: not applicable: {r['reason']}"
        for o, r in result["risks"].items()
        if not r.get("applicable") and r.get("reason")
    ]
    outcome = warnings_outcome([*checkup.warnings, *dropped], notes, not_applicable)
    return JSONResponse(result_bundle(assessments, outcome), media_type=FHIR_JSON)
