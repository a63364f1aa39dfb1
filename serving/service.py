"""The BentoML service: one pinned model version per worker, /score with SHAP explanations.

Start it with `checkup-risk serve` (which pins the champion and sets the environment) or
`bentoml serve serving.service:RiskService` with CHECKUP_RISK_HOME and BENTOML_HOME set.
Routes are a FastAPI app mounted at "/" so that request validation errors, status codes and the
OpenAPI document are exactly ours; BentoML adds /healthz, /livez, /readyz and /metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import bentoml
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from serving import store
from serving import cds
from serving.auth import BearerAuth
from serving.cds_auth import CdsVerifier
from serving.schemas import Checkup, ReportRequest, ScoreRequest, errors_from
from features.fhir import VISIT_DAYS
from serving.scoring import positive_int_from_env, stale_after_days_from_env

HOME = Path(os.environ.get("CHECKUP_RISK_HOME", "./.checkup-risk")).resolve()
WORKERS = int(os.environ.get("CHECKUP_RISK_WORKERS", "2"))
# Days after which a checkup is stale (its one-year window has passed): flagged in every result.
STALE_AFTER_DAYS = stale_after_days_from_env(os.environ)
# Observations less than this many days after a visit's first day belong to that visit (FHIR, CDS).
FHIR_VISIT_DAYS = positive_int_from_env(os.environ, "CHECKUP_RISK_FHIR_VISIT_DAYS", VISIT_DAYS)
# CDS gives risk cards from a model trained on synthetic people only when the site asks for it (demos).
ALLOW_SYNTHETIC = cds.allow_synthetic_from_env(os.environ)
# Small requests (about 1 ms) are scored on the event loop: a thread hop would cost as much as the
# work. Larger batches go to the thread pool so that probes keep answering.
INLINE_RECORDS = 8

app = FastAPI(
    title="checkup-risk",
    version="1",
    description="One-year chronic-disease risk from a Korean national health checkup, with SHAP explanations. "
    "All routes but /healthz, /livez, /readyz and /metrics need `Authorization: Bearer <token>`.",
)


# Browser-based CDS clients (the CDS Hooks sandbox, SMART apps) call cross-origin; credentials are
# bearer headers, never cookies, so allowing any origin exposes nothing.
app.add_middleware(CORSMiddleware, allow_origins=os.environ.get("CHECKUP_RISK_CORS_ORIGINS", "*").split(","),
                   allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type"])


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Never echo the submitted values back: they are patient data.
    return JSONResponse({"errors": errors_from(list(exc.errors()))}, status_code=422)


@bentoml.service(
    name="checkup-risk",
    workers=WORKERS,
    traffic={"timeout": 30, "max_concurrency": 512},
    metrics={"enabled": True, "namespace": "checkup_risk"},
    # Access logs would add a line per request and carry nothing a probe or /metrics lacks.
    logging={"access": {"enabled": False}},
    # With no exporter configured, a span per request is pure cost; CHECKUP_RISK_TRACING=1 keeps it.
    tracing={"excluded_urls": [] if os.environ.get("CHECKUP_RISK_TRACING") == "1" else [".*"]},
    http={"port": 3000},
)
@bentoml.asgi_app(app, path="/")
class RiskService:
    # A class attribute, so `bentoml build` records exactly this model version.
    bento_model = bentoml.models.BentoModel(store.pinned_tag(HOME))

    def __init__(self) -> None:
        from models.bundle import RiskModel
        from serving.scoring import Scorer

        model = RiskModel.load(self.bento_model.path_of(store.BUNDLE_SUBPATH))
        self.version = str(self.bento_model.info.labels["mlflow_version"])
        self.scorer = Scorer(model, self.version, stale_after_days=STALE_AFTER_DAYS)
        self.fhir_visit_days = FHIR_VISIT_DAYS
        # Read per CDS call, so a test (or an operator's debugger) can flip it on a running worker.
        self.allow_synthetic = ALLOW_SYNTHETIC
        self.cds_verifier = CdsVerifier.from_env(HOME)
        self.recent_records = cds.RecentRecords(HOME / "recent_records.sqlite")
        self.feedback = cds.FeedbackLog(HOME / "cds_feedback.sqlite")

    def __is_ready__(self) -> bool:
        return getattr(self, "scorer", None) is not None


RiskService.add_asgi_middleware(BearerAuth, home=str(HOME))


async def _service() -> RiskService:
    # An async dependency runs on the event loop; a sync one would cost a thread hop per request.
    return bentoml.get_current_service()


@app.post("/score", summary="Score checkups: one-year risk per outcome with top-k SHAP contributions")
async def score(request: ScoreRequest, detail: Literal["groups", "features"] = "groups",
                svc: RiskService = Depends(_service)) -> JSONResponse:
    """`?detail=features` lists contributions per model feature (for data scientists); by default
    they are grouped by the measurement they come from (blood pressure, glucose, ...)."""
    records = [c.model_dump() for c in request.checkups]
    if len(records) <= INLINE_RECORDS:
        results = svc.scorer.score_records(records, explain=request.explain, top_k=request.top_k, detail=detail)
    else:
        results = await run_in_threadpool(svc.scorer.score_records, records, request.explain, request.top_k,
                                          None, detail)
    return JSONResponse({"model_version": svc.version, "results": results})


@app.post("/report", response_class=HTMLResponse,
          summary="The clinician explanation report for one checkup, or for the newest of one person's checkups "
                  "(HTML, Korean by default)")
async def report(request: ReportRequest, lang: Literal["ko", "en"] | None = None,
                 svc: RiskService = Depends(_service)) -> HTMLResponse:
    """Body: {"checkup": record} or {"checkups": [records of one person]} (or the bare record or
    list), with "lang". A bare list cannot carry "lang": `?lang=` is read when the body has none."""
    from serving.report import render_html

    chosen = request.lang if "lang" in request.model_fields_set or lang is None else lang
    return HTMLResponse(render_html(svc.scorer, request.records(), chosen))


@app.get("/reports/{key}", response_class=HTMLResponse,
         summary="The clinician report behind a CDS card's link (kept an hour)")
async def linked_report(key: str, lang: Literal["ko", "en"] = "ko",
                        svc: RiskService = Depends(_service)) -> HTMLResponse:
    from serving.report import render_html

    # The card's checkups, oldest first: the newest is reported with the others as its history,
    # so the page shows what the card scored.
    records = svc.recent_records.get_all(key)
    if not records:
        return JSONResponse({"errors": [{"index": None, "field": "key",
                                         "message": "no such report, or it has expired"}]}, status_code=404)
    return HTMLResponse(render_html(svc.scorer, [Checkup.model_validate(r).model_dump() for r in records], lang))


app.include_router(cds.router)


@app.get("/model", summary="The model version this worker serves")
def model_info(svc: RiskService = Depends(_service)) -> dict:
    # `training_data`: synthetic / real (or unknown for older bundles), persons and checkups apart.
    return {"model_version": svc.version, "bento_model": str(svc.bento_model.tag),
            "outcomes": list(svc.scorer.outcomes), "training_data": svc.scorer.training_data}
