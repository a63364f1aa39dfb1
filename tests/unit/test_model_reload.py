"""The model poller's failure paths (serving.model_reload): whatever goes wrong, the worker keeps
serving the model it has, says so in one log line, and tries again on the next poll. The switch
itself, on a real server under load, is tests/integration/test_model_rollout.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from models.registry_names import tracking_uri
from serving.model_reload import MlflowChampion, ModelReloader, Served

LOGGER = "bentoml.checkup_risk.model_reload"


@dataclass
class Target:
    served: Served


@dataclass
class FakeRegistry:
    """A registry whose champion is `version`, kept at `source` (or one that cannot be reached)."""

    version: str = "999"
    source_uri: str = "file:///nonexistent/checkup-risk/999/artifacts"
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def champion(self) -> str:
        self.calls.append("champion")
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.version

    def source(self, version: str) -> str:
        return self.source_uri


def served(version: str = "1") -> Served:
    # The poller never scores with the served snapshot: a stand-in scorer is enough.
    scorer = SimpleNamespace(training_data={"kind": "unknown"})
    return Served(scorer=scorer, version=version, bento_model_tag=f"checkup-risk:v{version}")  # type: ignore[arg-type]


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_champion_at_a_missing_version_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry names version 999, whose files are gone: the import into the Bento store fails.
    # (A Bento store of our own, unless this process has opened one already: nothing is written.)
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    target = Target(served())
    before = target.served
    reloader = ModelReloader(target, tmp_path, 730, registry=FakeRegistry())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert reloader.poll() is False
        assert reloader.poll() is False  # retried, but not logged again
    assert target.served is before
    logged = lines(caplog)
    assert len(logged) == 1, logged
    assert "cannot load model version 999" in logged[0] and "still serving version 1" in logged[0]
    assert "FileNotFoundError: its files are missing" in logged[0]


def test_unreachable_registry_keeps_serving_and_logs_once_per_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = Target(served())
    registry = FakeRegistry(version="1", down=True)
    reloader = ModelReloader(target, tmp_path, 730, registry=registry)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert [reloader.poll() for _ in range(3)] == [False, False, False]
        registry.down = False  # back, and the champion is what is served: nothing to do
        assert reloader.poll() is False
        registry.down = True  # down again: a new failure, worth a new line
        assert reloader.poll() is False
    assert target.served.version == "1"
    logged = lines(caplog)
    assert len(logged) == 2 and all("cannot read the champion" in m for m in logged), logged
    assert "ConnectionError: registry unreachable" in logged[0]


def test_real_registry_without_the_model_keeps_serving_and_leaves_mlflow_global_uris(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    target = Target(served())
    registry = MlflowChampion(tmp_path)
    reloader = ModelReloader(target, tmp_path, 730, registry=registry)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert reloader.poll() is False  # no store at all: none is created
        assert not (tmp_path / "mlflow.db").exists()
        from mlflow import MlflowClient

        uri = tracking_uri(tmp_path)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()  # an empty store
        assert reloader.poll() is False
    assert target.served.version == "1"
    logged = lines(caplog)
    assert len(logged) == 2 and all("cannot read the champion" in m for m in logged), logged
    assert "no MLflow registry at" in logged[0] and "checkup-risk" in logged[1]
    # The worker's client has its own URIs: MLflow's process-wide ones are as they were.
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


def test_a_switch_is_one_assignment_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target(served("1"))
    old = target.served
    reloader = ModelReloader(target, tmp_path, 730, registry=FakeRegistry(version="2"))
    monkeypatch.setattr(reloader, "_load", lambda version: served(version))
    assert reloader.poll() is True
    assert target.served.version == "2" and old.version == "1"  # the old snapshot is untouched
    assert reloader.poll() is False  # already on the champion


def test_background_thread_polls_and_stops(tmp_path: Path) -> None:
    target = Target(served())
    registry = FakeRegistry(down=True)
    reloader = ModelReloader(target, tmp_path, 730, registry=registry)
    thread = reloader.start(0.05)
    try:
        deadline = time.monotonic() + 5
        while len(registry.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(registry.calls) >= 3 and thread.daemon
    finally:
        reloader.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert target.served.version == "1"


def test_metrics_say_which_version_a_worker_serves_and_what_it_learned_from() -> None:
    from prometheus_client import REGISTRY

    from serving import http_metrics

    def info(version: str, kind: str) -> float | None:
        return REGISTRY.get_sample_value("checkup_risk_model_info", {"version": version, "training_data": kind})

    old = Served(scorer=SimpleNamespace(training_data={"kind": "synthetic"}), version="31", bento_model_tag="t")  # type: ignore[arg-type]
    new = Served(scorer=SimpleNamespace(training_data={"kind": "real"}), version="32", bento_model_tag="t")  # type: ignore[arg-type]
    http_metrics.model_served(*old.metric_labels)
    assert info("31", "synthetic") == 1.0
    http_metrics.model_served(*new.metric_labels, previous=old.metric_labels)  # as a switch does
    assert info("31", "synthetic") == 0.0 and info("32", "real") == 1.0
