"""What the routes read from the running service: the state of one worker process.

BentoML makes one service instance per worker (`serving.service` builds its class on this one);
the routes ask for it through `CurrentWorker`, a FastAPI dependency, so they need neither the
service class nor the settings at import time.
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from fastapi import Depends

from serving import store
from serving.cds_auth import CdsVerifier, ReplayCache, load_clients
from serving.cds_store import FeedbackLog, RecentRecords
from serving.settings import Settings


class Worker:
    """The model (loaded once per process), the scorer around it and the CDS routes' state."""

    def __init__(self, settings: Settings, bento_model: Any) -> None:
        from models.bundle import RiskModel
        from serving.scoring import Scorer

        home = settings.home
        model = RiskModel.load(bento_model.path_of(store.BUNDLE_SUBPATH))
        self.bento_model_tag = str(bento_model.tag)
        self.version = str(bento_model.info.labels["mlflow_version"])
        self.scorer = Scorer(model, self.version, stale_after_days=settings.stale_after_days)
        self.fhir_visit_days = settings.fhir_visit_days
        # Read per CDS call, so a test (or an operator's debugger) can flip it on a running worker.
        self.allow_synthetic = settings.allow_synthetic
        self.public_url = settings.public_url
        self.accepted_hosts = settings.accepted_hosts
        self.cds_verifier = CdsVerifier(load_clients(settings.cds_clients), ReplayCache(home / "cds_jti.sqlite"))
        self.recent_records = RecentRecords(home / "recent_records.sqlite")
        self.feedback = FeedbackLog(home / "cds_feedback.sqlite")


async def current_worker() -> Worker:
    # An async dependency runs on the event loop; a sync one would cost a thread hop per request.
    return bentoml.get_current_service()


CurrentWorker = Annotated[Worker, Depends(current_worker)]
