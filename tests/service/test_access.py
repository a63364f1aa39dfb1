"""Who may call what, and the record of it: named API keys with scopes, rate limits, and an audit
entry for every call that touches patient data (through the real service app)."""

import asyncio
import datetime as dt

from features.pseudonym import derive, load_secret, pseudonym
from features.schema import EXAMPLE_RECORD
from serving.api_keys import ApiKeys
from serving.audit import AuditLog
from serving.auth import BearerAuth
from serving.state_db import open_state


def _state(home):
    return open_state(None, home)


def _audit(home) -> AuditLog:
    return AuditLog(_state(home), derive(load_secret(home, None), "audit"))


def test_named_key_with_its_scopes(client, service_home):
    home = service_home[0]
    key = ApiKeys(_state(home)).create("lab-system", ("score",))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/score", json={"checkups": [EXAMPLE_RECORD]}, headers=auth).status_code == 200
    assert client.get("/model", headers=auth).status_code == 200
    forbidden = client.post("/report", json={"checkup": EXAMPLE_RECORD}, headers=auth)
    assert forbidden.status_code == 403 and "'report' scope" in forbidden.json()["errors"][0]["message"]
    assert client.post("/fhir/risk-assessment", json={}, headers=auth).status_code == 403
    # The scheme is case-insensitive, for named keys too.
    lower = {"Authorization": f"bearer {key}"}
    assert client.post("/score", json={"checkups": [EXAMPLE_RECORD]}, headers=lower).status_code == 200


def test_revoked_key_is_refused_without_a_restart(client, service_home, monkeypatch):
    home = service_home[0]
    keys = ApiKeys(_state(home))
    key = keys.create("retired-his", ("score", "report"))
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/score", json={"checkups": [EXAMPLE_RECORD]}, headers=auth).status_code == 200
    keys.revoke("retired-his")
    r = client.post("/score", json={"checkups": [EXAMPLE_RECORD]}, headers=auth)
    assert r.status_code == 401 and "retired" not in r.text


def test_each_patient_call_is_audited_with_a_pseudonym(client, service_home):
    home, _, version = service_home
    log = _audit(home)
    before = log.verify()[1]
    person = "audit-person-7"
    r = client.post("/score", json={"checkups": [dict(EXAMPLE_RECORD, person_id=person)]})
    assert r.status_code == 200
    refused = client.post("/score", json={"checkups": [EXAMPLE_RECORD]}, headers={"Authorization": "Bearer no"})
    assert refused.status_code == 401
    assert client.get("/model").status_code == 200  # no patient data: not audited
    preflight = {"Origin": "https://his.example.org", "Access-Control-Request-Method": "POST", "Authorization": ""}
    assert client.options("/score", headers=preflight).status_code == 200  # asks, calls nothing: not audited
    problems, checked, _ = log.verify()
    assert problems == [] and checked == before + 2
    entries = list(log.entries())[-2:]
    key = pseudonym(derive(load_secret(home, None), "pseudonym"), person)
    assert entries[0]["route"] == "/score" and entries[0]["client"] == "bootstrap"
    assert entries[0]["patients"] == key and entries[0]["status"] == 200
    assert entries[0]["model_version"] == str(version) and entries[0]["latency_ms"] > 0
    assert entries[1]["client"] == "anonymous" and entries[1]["status"] == 401
    assert all(person not in str(e) for e in entries)
    assert entries[0]["at"].startswith(dt.datetime.now(dt.UTC).date().isoformat()[:4])


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    """The limiter in front of a trivial app: the middleware is what is under test."""
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    keys = ApiKeys(open_state(None, tmp_path))
    key = keys.create("busy-client", ("score",))
    auth = BearerAuth(app, home=str(tmp_path), token="t0ken", open_keys=lambda: keys, rate_per_minute=3)

    async def call() -> tuple[int, dict]:
        sent = []

        async def send(message):
            sent.append(message)

        headers = [(b"authorization", f"Bearer {key}".encode())]
        scope = {"type": "http", "path": "/score", "method": "POST", "headers": headers}
        await auth(scope, None, send)
        return sent[0]["status"], dict(sent[0]["headers"])

    statuses = [asyncio.run(call()) for _ in range(4)]
    assert [s for s, _ in statuses] == [200, 200, 200, 429]
    assert int(statuses[3][1][b"retry-after"]) >= 1 and len(calls) == 3


def test_a_refusal_for_scope_names_the_key_in_the_audit_trail(client, service_home):
    home = service_home[0]
    key = ApiKeys(_state(home)).create("scope-prober", ("score",))
    r = client.post("/report", json={"checkup": EXAMPLE_RECORD}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    last = list(_audit(home).entries())[-1]
    assert last["client"] == "scope-prober" and last["status"] == 403 and last["route"] == "/report"
