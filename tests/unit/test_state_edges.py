"""Edges of the shared state: secrets made by processes that start together, a secret that does not
match the state's, calls that end without an answer, hostile link and token values, credentials in
log lines."""

import asyncio
import threading

import pytest

from features.pseudonym import SecretMissing, create_once, load_secret
from serving.audit import NO_ANSWER, AuditLog, AuditTrail
from serving.cds_store import LinkRefused, ReportLinks
from serving.model_reload import _reason
from serving.state_db import SecretMismatch, StateDB


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    got: list[str] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        got.append(create_once(tmp_path / "secret_key", lambda: threading.current_thread().name))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and got[0]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no partial file left behind


def test_an_empty_secret_file_is_refused_and_checks_never_make_one(tmp_path):
    with pytest.raises(SecretMissing):
        load_secret(tmp_path, None, create=False)
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_secret(tmp_path, None)


def test_a_state_made_with_another_secret_is_refused(state):
    state.check_secret(b"first")
    state.check_secret(b"first")
    with pytest.raises(SecretMismatch, match="CHECKUP_RISK_SECRET_KEY"):
        state.check_secret(b"second")


@pytest.mark.parametrize("exp", ["²", "１２３", "12.5", "-1", "1e9", "9" * 13])
def test_a_link_expiry_that_is_not_ascii_digits_is_403(state, exp):
    with pytest.raises(LinkRefused) as refused:
        ReportLinks(state, b"k" * 32, 600).open("some-id", exp, "00")
    assert refused.value.status == 403


def test_registry_credentials_never_reach_the_log():
    text = _reason(RuntimeError("API request to http://alice:s3cret@mlflow:5000/api failed (postgresql://u:pw@db/x)"))
    assert "s3cret" not in text and "pw@" not in text and "http://***@mlflow:5000" in text


def _audited(state: StateDB, app) -> tuple[list[dict], BaseException | None]:
    log = AuditLog(state, b"a" * 32)
    trail = AuditTrail(app, open_log=lambda: (log, lambda pid: f"pk-{pid}"))
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/score", "method": "POST", "headers": []}
    error = None
    try:
        asyncio.run(trail(scope, receive, send))
    except Exception as e:
        error = e
    return list(log.entries()), error


def test_a_call_that_ends_without_an_answer_is_audited(state):
    async def gone(scope, receive, send):
        scope["state"]["audit_persons"] = ["p1"]  # read, then the client went away

    entries, error = _audited(state, gone)
    assert error is None and [e["status"] for e in entries] == [NO_ANSWER] and entries[0]["patients"] == "pk-p1"


def test_a_call_that_fails_is_audited_as_500(state):
    async def fails(scope, receive, send):
        raise RuntimeError("boom")

    entries, error = _audited(state, fails)
    assert isinstance(error, RuntimeError) and [e["status"] for e in entries] == [500]
