"""Refusals every layer of the service sends the same way: FHIR and CDS routes answer with an
OperationOutcome, the others with `{"errors": [...]}`."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from features.fhir import Issue
from serving.fhir_out import FHIR_JSON, operation_outcome

FHIR_PREFIXES = ("/fhir/", "/cds-services/")


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
