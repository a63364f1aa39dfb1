"""Refusals every layer of the service sends the same way: FHIR and CDS routes answer with an
OperationOutcome, the others with `{"errors": [...]}`."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from features.fhir import Issue
from serving.fhir_out import FHIR_JSON, operation_outcome

FHIR_PREFIXES = ("/fhir/", "/cds-services/")
# Routes that authenticate a call themselves, from its headers (CDS Hooks: the client's JWT). A body
# that cannot be read is said only once the caller is authenticated: an unauthenticated caller gets
# 401 and learns nothing else. The guard in front leaves its finding in the scope under this key.
SELF_AUTHENTICATED = ("/cds-services/checkup-risk",)
BODY_PROBLEM = "checkup_risk.body_problem"


def malformed_body(path: str, status: int, field: str | None, message: str, index: int | None = None) -> JSONResponse:
    """The refusal of a body that cannot be read (413, 415, 400, or 422 for a duplicated key or a
    number of thousands of digits);
    `index`: the record it is in, where known."""
    if path.startswith(FHIR_PREFIXES):
        code = {413: "too-costly", 415: "not-supported", 422: "duplicate"}.get(status, "structure")
        if status == 422 and "digits" in message:  # a number too long to read, not a key twice
            code = "too-long"
        response = JSONResponse(
            operation_outcome([Issue(field or "body", message)], code=code), status, media_type=FHIR_JSON
        )
    else:
        response = JSONResponse({"errors": [{"index": index, "field": field or "body", "message": message}]}, status)
    if status == 413:
        # The rest of the body is not read: the client must not reuse this connection.
        response.headers["connection"] = "close"
    return response


def unavailable(path: str, message: str) -> Response:
    """503 for a call the service cannot serve now: the shared state is down, or no model is loaded
    (the client may retry shortly)."""
    headers = {"Retry-After": "5"}
    if path.startswith(FHIR_PREFIXES):
        payload = operation_outcome([Issue("service", message)], code="transient")
        return JSONResponse(payload, status_code=503, media_type=FHIR_JSON, headers=headers)
    return JSONResponse({"errors": [{"index": None, "field": None, "message": message}]}, 503, headers=headers)


class ModelUnavailable(RuntimeError):
    """This worker has no model loaded (its model failed to load): calls get 503 until one does."""
