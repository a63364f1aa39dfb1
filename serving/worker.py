"""What the routes read from the running service: the state of one worker process.

BentoML makes one service instance per worker (`serving.service` builds its class on this one);
the routes ask for it through `CurrentWorker`, a FastAPI dependency, so they need neither the
service class nor the settings at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from fastapi import Depends, Request

from features.pseudonym import derive, load_secret
from serving import http_metrics
from serving.cds_auth import CdsVerifier, ReplayCache, load_clients
from serving.cds_store import FeedbackLog, ReportLinks
from serving.model_reload import ModelReloader, Served, load_served
from serving.parent_watch import SERVE_PID_ENV, watch_parent
from serving.prediction_logger import open_prediction_log
from serving.refusals import ModelUnavailable
from serving.settings import Settings
from serving.state_db import SecretMismatch, StateDB, StorageUnavailable, open_state

if TYPE_CHECKING:
    from serving.scoring import Scorer

# Under BentoML's logger namespace: BentoML shows INFO and above from there only.
log = logging.getLogger("bentoml.checkup_risk.worker")


class Worker:
    """The model (loaded once per process), the scorer around it and the shared state's stores."""

    def __init__(self, settings: Settings, bento_model: Any) -> None:
        home = settings.home
        # A worker BentoML started (it has a worker index; an in-process test client has none)
        # stops when the serve process is killed, rather than serve on unsupervised and keep the
        # home's serve.lock (serving.parent_watch). First: loading the model takes seconds.
        if bentoml.server_context.worker_index is not None:
            serve_pid = os.environ.get(SERVE_PID_ENV, "")
            watch_parent(int(serve_pid) if serve_pid.isdigit() else None)
        # Everything a request needs from the model, replaced as one object when the champion
        # changes (serving.model_reload): read `served` once where scorer and version must agree.
        self.served: Served | None = _load_or_none(bento_model, settings.stale_after_days)
        if self.served is not None:
            http_metrics.model_served(*self.served.metric_labels)
        self.reloader = ModelReloader(self, home, settings.stale_after_days, mlflow_uri=settings.mlflow_uri)
        self.fhir_visit_days = settings.fhir_visit_days
        self.time_zone = settings.time_zone
        # Read per CDS call, so a test (or an operator's debugger) can flip it on a running worker.
        self.allow_synthetic = settings.allow_synthetic
        self.public_url = settings.public_url
        self.accepted_hosts = settings.accepted_hosts
        # The shared state: one database for every worker and every instance behind one URL.
        self.state = open_state(settings.database_url, home)
        secret = load_secret(home, settings.secret_key)
        self.secret_ok = _secret_matches(self.state, secret)
        self.cds_verifier = CdsVerifier(load_clients(settings.cds_clients), ReplayCache(self.state))
        self.report_links = ReportLinks(self.state, derive(secret, "report-link"), settings.report_link_seconds)
        with contextlib.suppress(StorageUnavailable):  # a store that is down: readiness says so
            self.report_links.purge(every_s=0)
        self.feedback = FeedbackLog(self.state)
        # Every scored checkup, pseudonymised, for `checkup-risk monitor` (serving.prediction_logger):
        # routes score through `scoring(source)`, which hands the results to it.
        self.predictions = open_prediction_log(settings, self.state)
        # Last, once the worker is whole: each worker process follows the champion on its own
        # thread (every worker must switch, and a request reaches only one of them).
        if settings.model_poll_seconds > 0:
            self.reloader.start(settings.model_poll_seconds)

    def current(self) -> Served:
        """The served snapshot; ModelUnavailable (503) while no model could be loaded."""
        served = self.served
        if served is None:
            raise ModelUnavailable("no model is loaded on this worker yet: retry shortly")
        return served

    def scoring(self, source: str, served: Served | None = None) -> Scorer:
        """The scorer of `served` (default: the current snapshot) whose results go to the prediction
        log under `source` (score, report, cds, fhir)."""
        return self.predictions.observe((served or self.current()).scorer, source)


def _secret_matches(state: StateDB, secret: bytes) -> bool:
    """False (with one log line; the worker is then never ready) when the shared state was made with
    another secret; True also when the store cannot say now (readiness waits for it anyway)."""
    try:
        state.check_secret(secret)
    except SecretMismatch as e:
        log.error("shared state: %s", e)
        return False
    except StorageUnavailable:
        pass
    return True


def _load_or_none(bento_model: Any, stale_after_days: int) -> Served | None:
    """The pinned model, or None with one clear log line when it cannot be loaded (a corrupt or
    partial bundle): the worker then stays up and not ready, and its poller keeps trying the
    registry's champion, instead of BentoML restarting it in a loop with a bare traceback."""
    try:
        return load_served(bento_model, stale_after_days)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        log.error(
            "model: cannot load %s from %s (%s: %s); this worker is not ready, and retries the "
            "registry's champion every CHECKUP_RISK_MODEL_POLL_SECONDS",
            bento_model.tag,
            bento_model.path,
            type(e).__name__,
            first,
        )
        return None


async def current_worker(request: Request) -> Worker:
    # An async dependency runs on the event loop; a sync one would cost a thread hop per request.
    worker = bentoml.get_current_service()
    # The audit trail records which model answered (serving.audit); no model: 503 (ModelUnavailable).
    request.state.audit_model = worker.current().version
    return worker


def audit_persons(request: Request, records: list[dict]) -> None:
    """Tell the audit trail whose data this call touches (person ids; it keeps only pseudonyms)."""
    request.state.audit_persons = [r.get("person_id") for r in records]


CurrentWorker = Annotated[Worker, Depends(current_worker)]
