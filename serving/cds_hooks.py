"""The CDS Hooks 2.0 face of the service: the discovery document with its prefetch templates, and
the request bodies of the patient-view and feedback calls."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from features.fhir import LOINC, OBSERVATION_CODES

SERVICE_ID = "checkup-risk"
REQUIRED_PREFETCH = ("patient", "observations")
# CDS Hooks 2.0 prefetch templates allow only context and user tokens, no date arithmetic (today() is
# a Da Vinci CRD extension, not core), so the history cannot be limited by date in the query: all
# Observations of our codes are asked for, newest first, in one large page, and features.fhir scores
# the newest checkup with every earlier one as its history. The panel codes are listed too: a
# `code` search matches Observation.code only, so a blood-pressure panel is found by its own code.
OBSERVATION_COUNT = 1000
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code="
    + ",".join(f"{LOINC}|{c}" for c in OBSERVATION_CODES)
    + f"&_sort=-date&_count={OBSERVATION_COUNT}",
    # Optional: history and medication fields stay missing when these are absent. US-Core style
    # servers record treatment as MedicationRequest, others as MedicationStatement: both are read.
    "conditions": "Condition?patient={{context.patientId}}",
    "medications": "MedicationStatement?patient={{context.patientId}}",
    # Active ones, and completed (dispensed) ones, which count for a year after they were written.
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active,completed",
    # Family history (positives, and "No family history of ..." negatives) for the family fields.
    "familyHistory": "FamilyMemberHistory?patient={{context.patientId}}",
}
OPTIONAL_PREFETCH = ("conditions", "medications", "medicationRequests", "familyHistory")


def discovery() -> dict:
    return {
        "services": [
            {
                "hook": "patient-view",
                "id": SERVICE_ID,
                "title": "Chronic disease risk from the national health checkup (국가건강검진 만성질환 위험)",
                "description": "One-year risk of cardiovascular disease, type 2 diabetes, hypertension, "
                "dyslipidemia and chronic kidney disease from the latest checkup results, "
                "with the factors that drive it.",
                "prefetch": PREFETCH,
                "usageRequirements": "Observations coded in LOINC; the JWT issuer must be allowlisted by the service.",
            }
        ]
    }


class PatientViewContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    userId: str = Field(min_length=1)
    patientId: str = Field(min_length=1)
    encounterId: str | None = None


class CdsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    hook: Literal["patient-view"]
    # The spec asks for a UUID; any non-empty identifier is accepted, as some clients send others.
    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: uuid.UUID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: dict[str, Any] | None = None
    # Kept as the parsed instant in UTC, never as the text sent (which could carry anything): a
    # date-time with its zone, as CDS Hooks asks; a bare date, a number or a local time is refused.
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _text_only(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError("must be a date-time with its time zone (ISO 8601, e.g. 2026-11-28T10:00:00Z)")
        return v


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)
