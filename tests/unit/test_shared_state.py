"""The shared state on SQLite: migrations, report links, named keys, the audit chain, and faults
answered as StorageUnavailable (the PostgreSQL side: tests/integration/test_shared_state_postgres.py)."""

import datetime as dt
import io
import sqlite3
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import update

from features.pseudonym import derive, load_secret, pseudonym
from serving.api_keys import ApiKeys, KeysError, parse_scopes
from serving.audit import AuditLog, Entry, audited_route
from serving.cds_auth import ReplayCache
from serving.cds_store import LinkRefused, ReportLinks
from serving.state_db import StateDB, StorageUnavailable, database_url, open_state
from serving.state_tables import audit, metadata


def test_database_url_maps_libpq_urls_to_psycopg(tmp_path):
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'state.sqlite'}"
    assert database_url("postgresql://u@h:5432/db", tmp_path) == "postgresql+psycopg://u@h:5432/db"
    socket = "postgresql://u@/db?host=/run/pg&port=5433"
    assert database_url(socket, tmp_path) == "postgresql+psycopg://u@/db?host=%2Frun%2Fpg&port=5433"


def test_migrations_match_the_tables_and_are_idempotent(state):
    state.migrate()  # a second start changes nothing
    with state.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_two_processes_share_one_replay_cache(tmp_path):
    one = ReplayCache(open_state(None, tmp_path))
    two = ReplayCache(StateDB(database_url(None, tmp_path)))  # another worker: its own engine
    assert one.first_use("iss", "jti-1", time.time() + 60)
    assert not two.first_use("iss", "jti-1", time.time() + 60)
    assert two.first_use("iss", "jti-2", time.time() + 60)


def test_report_links_are_signed_and_expire(state):
    links = ReportLinks(state, b"k" * 32, lifetime_s=600)
    # An id no random key or hex signature can contain by chance ("p1" once did: a flaky test).
    records = [{"person_id": "person_no_key_holds", "exam_date": "2026-01-02"}]
    path = links.put(records)
    key, query = path.removeprefix("/reports/").split("?")
    params = dict(p.split("=") for p in query.split("&"))
    assert "person" not in path and len(key) >= 20
    assert links.open(key, params["exp"], params["sig"]) == records
    # Another instance with the same secret and database opens it; another secret does not.
    assert ReportLinks(state, b"k" * 32, 600).open(key, params["exp"], params["sig"]) == records
    for opener, exp, sig in (
        (ReportLinks(state, b"x" * 32, 600), params["exp"], params["sig"]),
        (links, str(int(params["exp"]) + 3600), params["sig"]),  # a longer life, forged
        (links, params["exp"], params["sig"][:-1] + ("0" if params["sig"][-1] != "0" else "1")),
        (links, params["exp"], None),
        (links, "soon", params["sig"]),
    ):
        with pytest.raises(LinkRefused) as refused:
            opener.open(key, exp, sig)
        assert refused.value.status == 403 and "p1" not in refused.value.message
    past = int(time.time()) - 1
    with pytest.raises(LinkRefused) as expired:
        links.open(key, str(past), links._signature(key, past))
    assert expired.value.status == 410


def test_expired_links_checkups_are_deleted_without_waiting_for_a_new_card(state):
    from sqlalchemy import func, select

    from serving.state_tables import report_links

    def kept() -> int:
        with state.connect() as db:
            return db.execute(select(func.count()).select_from(report_links)).scalar_one()

    links = ReportLinks(state, b"k" * 32, lifetime_s=-1)  # expired when made
    # This worker has just looked, so the put starts no purge of its own: one started on a thread
    # could delete the link before the count below, or after it.
    links._purged = time.time()
    links.put([{"person_id": "a"}])
    assert kept() == 1
    links.purge()  # within PURGE_EVERY_S of the last look: nothing yet
    assert kept() == 1
    probe = ReportLinks(state, b"k" * 32, 600)  # another worker, whose readiness probe comes
    probe.purge_later()  # on a thread of its own: the probe never waits for the delete
    deadline = time.monotonic() + 10
    while kept() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kept() == 0
    live = ReportLinks(state, b"k" * 32, 600)
    live.put([{"person_id": "b"}])
    live.purge(every_s=0)
    assert kept() == 1  # a link still valid keeps its checkups


def test_named_keys_are_hashed_scoped_and_revocable(state, monkeypatch):
    keys = ApiKeys(state)
    key = keys.create("his-seoul-01", parse_scopes("score,fhir"))
    assert key.startswith("ckr_")
    with sqlite3.connect(state.engine.url.database) as db:
        stored = " ".join(str(v) for row in db.execute("SELECT * FROM api_keys") for v in row)
    assert key not in stored and key.removeprefix("ckr_") not in stored
    client = keys.lookup(key)
    assert client is not None and client.name == "his-seoul-01" and client.scopes == {"score", "fhir"}
    assert keys.lookup("ckr_" + "A" * 43) is None and keys.lookup("not-a-key") is None
    with pytest.raises(KeysError):
        keys.create("his-seoul-01", ("score",))
    with pytest.raises(KeysError):
        keys.create("bad name!", ("score",))
    with pytest.raises(KeysError):
        parse_scopes("score,everything")
    other_worker = ApiKeys(StateDB(state.url))
    assert other_worker.lookup(key) is not None
    keys.revoke("his-seoul-01")
    assert other_worker.lookup(key) is None and keys.lookup(key) is None
    assert [k["name"] for k in keys.list()] == ["his-seoul-01"] and keys.list()[0]["revoked"]
    with pytest.raises(KeysError):
        keys.revoke("his-seoul-01")


def _entry(i: int) -> Entry:
    return Entry(dt.datetime.now(dt.UTC).isoformat(), "his", "/score", f"pk{i}", 200, "3", 1.25 + i)


def test_audit_chain_detects_changed_inserted_and_removed_entries(state):
    log = AuditLog(state, b"a" * 32)
    for i in range(6):
        assert log.append(_entry(i)) == i + 1
    problems, checked, head = log.verify()
    assert problems == [] and checked == 6 and len(head) == 64
    with state.engine.begin() as db:
        db.execute(update(audit).where(audit.c.seq == 3).values(status=403))
    assert any("entry 3 was changed" in p for p in log.verify()[0])
    with state.engine.begin() as db:
        db.execute(update(audit).where(audit.c.seq == 3).values(status=200))
        db.execute(audit.delete().where(audit.c.seq == 4))
    problems = log.verify()[0]
    assert any("4..4 are missing" in p for p in problems) and any("entry 5 does not follow" in p for p in problems)
    # A forger without the secret cannot re-seal the chain after a change.
    assert AuditLog(state, b"b" * 32).verify()[0]


def test_audit_appends_from_many_threads_and_engines_form_one_chain(tmp_path):
    logs = [AuditLog(StateDB(database_url(None, tmp_path)), b"a" * 32) for _ in range(3)]
    logs[0].state.migrate()

    def write(log: AuditLog, start: int) -> None:
        for i in range(start, start + 20):
            log.append(_entry(i))

    threads = [threading.Thread(target=write, args=(logs[i % 3], i * 100)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems, checked, _ = logs[1].verify()
    assert problems == [] and checked == 120


def test_audit_export_has_no_patient_values(state):
    log = AuditLog(state, b"a" * 32)
    key = derive(b"s" * 32, "pseudonym")
    log.append(Entry(dt.datetime.now(dt.UTC).isoformat(), "his", "/score", pseudonym(key, "P-0001"), 200, "3", 2.0))
    out = io.StringIO()
    assert log.export(out, dt.date.today()) == 1
    text = out.getvalue()
    assert text.splitlines()[0].startswith("seq,at,client,route,patients") and "P-0001" not in text
    assert log.export(io.StringIO(), dt.date.today() + dt.timedelta(days=1)) == 0


def test_pseudonyms_are_keyed_and_stable(tmp_path):
    secret = load_secret(tmp_path, None)
    assert load_secret(tmp_path, None) == secret and (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    key = derive(secret, "pseudonym")
    assert pseudonym(key, "P1") == pseudonym(key, "P1") != pseudonym(key, "P2")
    assert pseudonym(derive(b"other", "pseudonym"), "P1") != pseudonym(key, "P1")
    assert derive(secret, "audit") != key


def test_audited_routes():
    assert audited_route("/score") == "/score" and audited_route("/reports/abc") == "/reports/{key}"
    assert audited_route("/cds-services/checkup-risk") == "/cds-services/checkup-risk"
    assert audited_route("/cds-services/checkup-risk/feedback") is None
    assert audited_route("/model") is None and audited_route("/scores") is None


def test_a_store_that_cannot_be_written_is_unavailable_then_recovers(tmp_path):
    state = StateDB(database_url(None, tmp_path))
    state.migrate()
    assert state.healthy()
    links = ReportLinks(state, b"k" * 32, 600)
    state.engine.dispose()
    db_file = tmp_path / "state.sqlite"
    moved = tmp_path / "elsewhere.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if (tmp_path / f"state.sqlite{suffix}").exists():
            (tmp_path / f"state.sqlite{suffix}").rename(f"{moved}{suffix}")
    db_file.mkdir()  # the path is now a directory: nothing can open it
    with pytest.raises(StorageUnavailable):
        links.put([{"person_id": "p"}])
    # The put started a purge on a thread of its own. Left running, it could connect between the
    # rmdir and the renames below, make an empty database at the path and keep it pooled.
    with links._purging:
        pass
    state._checked_at = 0.0
    assert not state.healthy()
    db_file.rmdir()
    for suffix in ("", "-wal", "-shm"):
        if (p := tmp_path / f"elsewhere.sqlite{suffix}").exists():
            p.rename(f"{db_file}{suffix}")
    state._checked_at = 0.0
    assert state.healthy()
    assert links.put([{"person_id": "p"}]).startswith("/reports/")


def test_a_database_down_at_start_is_unavailable_not_fatal(tmp_path):
    # A worker restarted during an outage starts, is not ready, and migrates once the database answers.
    state = open_state("postgresql://risk@/state?host=/nonexistent-socket-dir&port=1", tmp_path)
    assert not state.migrated and not state.healthy()
    with pytest.raises(StorageUnavailable):
        ReportLinks(state, b"k" * 32, 600).put([{"person_id": "p"}])
