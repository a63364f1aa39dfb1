"""Switching a running worker to a newly promoted champion without failing a request.

Each worker process serves one `Served` snapshot (scorer, version, Bento tag). A `ModelReloader`
asks the MLflow registry which version the `champion` alias names; when it differs from the served
one it imports that version into the Bento store, loads it, warms it with one scoring call and
only then replaces the worker's snapshot in one attribute assignment. A request in flight holds
the snapshot it started with, so it finishes on the old model; the next one gets the new model.
Rollback is the same path: move the alias back to the previous version.

Anything that goes wrong (registry unreachable, a version that is missing or will not load) leaves
the current snapshot in place; the next poll tries again. The poller runs as a daemon thread per
worker (`start`), started by the worker, never at import time; `POST /admin/reload` calls `poll`
on the worker that received it.
"""

from __future__ import annotations

import fcntl
import logging
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from models.registry_names import CHAMPION, MODEL_NAME, is_local, tracking_uri
from serving import http_metrics, store

if TYPE_CHECKING:
    from serving.scoring import Scorer

# BentoML's server logging shows INFO only under its own logger (the root logger is at WARNING):
# a switch is worth an INFO line, so this logger lives in that namespace.
log = logging.getLogger("bentoml.checkup_risk.model_reload")
# Each poll waits model_poll_seconds times a factor in this range, so that the workers of one
# server (and several servers on one registry) do not all query it at the same moment.
JITTER = (0.8, 1.2)
# Long exception texts (SQL, stack-like messages) are cut: the line must stay readable.
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Served:
    """What one worker serves: replaced as a whole, never changed in place, so a request that read
    it once scores and reports the same version."""

    scorer: Scorer
    version: str
    bento_model_tag: str

    @property
    def metric_labels(self) -> tuple[str, str]:
        """(version, training-data kind): its `checkup_risk_model_info` series on /metrics."""
        return self.version, str(self.scorer.training_data.get("kind", "unknown"))


class HasServed(Protocol):
    served: Served | None  # None: the worker's own model failed to load


class Champion(Protocol):
    """The registry as the poller sees it (a fake in unit tests)."""

    def champion(self) -> str: ...

    def source(self, version: str) -> str: ...


class MlflowChampion:
    """The champion in the MLflow registry under `home`, through a client of its own: the worker
    never touches MLflow's process-wide tracking or registry URI."""

    def __init__(self, home: Path, configured_uri: str | None = None) -> None:
        self.home = home
        self.uri = tracking_uri(home, configured_uri)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            db = self.home / "mlflow.db"
            if is_local(self.uri) and not db.exists():
                # A client creates an empty store where it finds none (a container holding only
                # its Bento, say): never from here.
                raise LookupError(f"no MLflow registry at {db}")
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def champion(self) -> str:
        return str(self.client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)

    def source(self, version: str) -> str:
        # Where the version's files are (the logged model's artifact folder): importing from there
        # needs no registry lookup through MLflow's global URIs.
        source = str(self.client.get_model_version_download_uri(MODEL_NAME, version))
        if urlsplit(source).scheme in ("", "file"):
            return source
        # Kept by an MLflow server (mlflow-artifacts:, s3:, ...): fetched through this client's
        # tracking URI into the home, then imported from there like a local version.
        from mlflow.artifacts import download_artifacts

        folder = self.home / "model-downloads" / f"v{version}"
        folder.mkdir(parents=True, exist_ok=True)
        return Path(download_artifacts(artifact_uri=source, dst_path=str(folder), tracking_uri=self.uri)).as_uri()


def load_served(bento_model: Any, stale_after_days: int) -> Served:
    """Load the bundle of a Bento model (one `checkup-risk:v<version>`) and the scorer around it."""
    from models.bundle import RiskModel
    from serving.scoring import Scorer

    model = RiskModel.load(bento_model.path_of(store.BUNDLE_SUBPATH))
    version = str(bento_model.info.labels["mlflow_version"])
    return Served(Scorer(model, version, stale_after_days=stale_after_days), version, str(bento_model.tag))


@contextmanager
def import_lock(home: Path) -> Iterator[None]:
    """Held while importing into the Bento store: the workers of a server notice a new champion at
    about the same time, and one download is enough (the others then find it imported)."""
    with open(home / "bentoml-import.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# user:password@ inside any URL an error message quotes (MLflow's quote the request URL).
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def _reason(exc: BaseException) -> str:
    # Never a credential in the log: the registry URL may carry one.
    first = _USERINFO.sub(r"\1***@", (str(exc).strip().splitlines() or [""])[0])
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


class ModelReloader:
    """Polls the registry for the champion and switches `target.served` to it."""

    def __init__(
        self,
        target: HasServed,
        home: Path,
        stale_after_days: int,
        registry: Champion | None = None,
        mlflow_uri: str | None = None,
    ) -> None:
        self.target = target
        self.home = home
        self.mlflow_uri = mlflow_uri
        self.stale_after_days = stale_after_days
        self._registry = registry
        # One poll at a time per worker: the background thread and POST /admin/reload.
        self._lock = threading.Lock()
        self._last_failure: str | None = None
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def registry(self) -> Champion:
        # Made on first use, in the thread that polls: opening the store can fail, and then the
        # next poll retries instead of the worker failing to start.
        if self._registry is None:
            self._registry = MlflowChampion(self.home, self.mlflow_uri)
        return self._registry

    def poll(self) -> bool:
        """Switch to the champion if it is not the served version; True when this call switched.
        Never raises: a failure keeps the current model and is logged once until it changes."""
        with self._lock:
            current = self.target.served
            serving = current.version if current is not None else "none"
            try:
                version = self.registry().champion()
            except Exception as exc:
                self._failed(f"cannot read the {CHAMPION} from the registry ({_reason(exc)})", current)
                return False
            if current is not None and version == current.version:
                self._last_failure = None
                return False
            try:
                served = self._load(version)
            except Exception as exc:
                self._failed(f"cannot load model version {version} ({_reason(exc)})", current)
                return False
            # The switch: one assignment, so a request sees either the old snapshot or the new one.
            self.target.served = served
            self._last_failure = None
            http_metrics.model_served(*served.metric_labels, previous=current.metric_labels if current else None)
            log.info("model reload: switched from version %s to version %s", serving, version)
            return True

    def _load(self, version: str) -> Served:
        import bentoml

        from features.schema import EXAMPLE_RECORD

        source = self.registry().source(version)
        where = urlsplit(source)
        if where.scheme == "file" and not Path(url2pathname(where.path)).exists():
            # Checked here: BentoML's import would report only an error of its own clean-up.
            raise FileNotFoundError(f"its files are missing at {source}")
        with import_lock(self.home):
            tag = store.import_version(version, source=source)
        served = load_served(bentoml.models.get(tag), self.stale_after_days)
        # Warm-up: one scoring call before any request reaches the new model, so the one-time
        # costs of a first call are paid here, and a bundle that cannot score fails here.
        served.scorer.score_records([dict(EXAMPLE_RECORD)], explain=True, top_k=5)
        return served

    def _failed(self, what: str, current: Served | None) -> None:
        # Logged once per distinct failure: a registry that stays down for an hour would otherwise
        # write a line per poll per worker. No request data is ever part of these lines.
        if what != self._last_failure:
            serving = f"still serving version {current.version}" if current is not None else "no model loaded"
            log.warning("model reload: %s; %s, retrying every poll", what, serving)
        self._last_failure = what

    def start(self, every_s: float) -> threading.Thread:
        """Poll every `every_s` seconds (with jitter) on a daemon thread, which dies with the worker."""
        self.thread = threading.Thread(target=self._run, args=(every_s,), name="model-reload", daemon=True)
        self.thread.start()
        return self.thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self, every_s: float) -> None:
        # The first poll at once: a worker BentoML restarted after a crash starts on the pinned
        # version and must not serve it for a whole period after the others moved on.
        self.poll()
        while not self._stop.wait(every_s * random.uniform(*JITTER)):
            self.poll()
