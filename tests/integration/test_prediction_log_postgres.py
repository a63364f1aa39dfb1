"""The prediction log in PostgreSQL (issue 15): with CHECKUP_RISK_DATABASE_URL set, the logger writes
the migrated table `prediction_log` (same columns as the Parquet log, pseudonymised), purges it by
`log_date`, and a database that goes away drops no request, only bounded rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from features.pseudonym import derive, load_secret, pseudonym
from features.schema import EXAMPLE_RECORD, OUTCOMES
from models.prediction_log import COLUMNS_OUT, TABLE, as_rows
from serving.prediction_logger import PostgresStore, open_prediction_log
from serving.schemas import Checkup
from serving.settings import Settings
from serving.state_db import open_state

RAW_ID = "RAW-PG-PERSON-55aa"


def result(p: float | None) -> dict:
    return {
        "history_checkups": 1,
        "risks": {o: {"probability": p, "category": None if p is None else "low"} for o in OUTCOMES},
    }


def test_rows_go_to_the_migrated_table_and_old_days_are_purged(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setattr("serving.prediction_logger.PURGE_BATCH", 2)  # the purge runs in batches
    settings = Settings(home=tmp_path, database_url=postgres_url, secret_key="pg-secret")
    state = open_state(postgres_url, tmp_path)
    log = open_prediction_log(settings, state, background=False)
    assert isinstance(log.store, PostgresStore)
    record = Checkup.model_validate({**EXAMPLE_RECORD, "person_id": RAW_ID}).model_dump()
    log.log([record, record], [result(0.05), result(None)], "3", "cds")

    # A row from long ago, straight into the table: the first flush's purge deletes it.
    old = pd.DataFrame({c: [None] * 5 for c in COLUMNS_OUT})
    old["logged_at"] = pd.Timestamp(dt.date.today() - dt.timedelta(days=500), tz="UTC")
    old["person_key"], old["model_version"], old["source"] = "old", "1", "score"
    with state.connect() as connection:
        connection.execute(TABLE.insert(), as_rows(old))

    assert log.flush() == 2
    with state.connect() as connection:
        rows = pd.DataFrame(connection.execute(select(TABLE)).mappings().all())
    assert len(rows) == 2  # the old one is gone
    key = derive(load_secret(tmp_path, "pg-secret"), "pseudonym")
    assert set(rows["person_key"]) == {pseudonym(key, RAW_ID)}
    assert not rows.astype(str).apply(lambda c: c.str.contains(RAW_ID)).any().any()
    assert set(rows["source"]) == {"cds"} and set(rows["log_date"]) == {dt.datetime.now(dt.UTC).date()}
    column = TABLE.c[f"{OUTCOMES[0]}_probability"]
    with state.connect() as connection:
        probs = connection.execute(select(column).order_by(column.nulls_last())).scalars().all()
    assert probs == [pytest.approx(0.05), None]  # not applicable: NULL, not NaN
    assert rows["sbp"].tolist() == [EXAMPLE_RECORD["sbp"]] * 2


def test_a_database_outage_keeps_bounded_rows(postgres_url, tmp_path):
    # A database that is not there: every write fails, as during an outage.
    base, _, query = postgres_url.partition("?")
    missing = f"{base.rsplit('/', 1)[0]}/no_such_database?{query}"
    log = open_prediction_log(Settings(home=tmp_path, database_url=missing), background=False)
    log.max_rows = 3
    record = Checkup.model_validate(EXAMPLE_RECORD).model_dump()
    for _ in range(2):
        log.log([record, record], [result(0.1), result(0.2)], "3", "score")
        assert log.flush() == 0  # never raises
    assert log.dropped == 1 and sum(len(f) for f in log._unwritten) == 3


def test_the_monitor_reads_the_table(postgres_url, tmp_path):
    """`checkup-risk monitor` with CHECKUP_RISK_DATABASE_URL reads what the service wrote."""
    from training.monitor import read_log

    settings = Settings(home=tmp_path, database_url=postgres_url, secret_key="pg-secret")
    log = open_prediction_log(settings, open_state(postgres_url, tmp_path), background=False)
    record = Checkup.model_validate({**EXAMPLE_RECORD, "person_id": RAW_ID}).model_dump()
    log.log([record] * 3, [result(0.05)] * 3, "7", "score")
    log.log([record], [result(0.05)], "8", "score")
    assert log.flush() == 4
    today = dt.datetime.now(dt.UTC).date()
    read = read_log(today, None, "7", None, postgres_url)
    assert len(read) == 3 and set(read["model_version"]) == {"7"} and list(read.columns) == list(COLUMNS_OUT)
    assert read["sbp"].tolist() == [EXAMPLE_RECORD["sbp"]] * 3
    assert read_log(today + dt.timedelta(days=1), None, "7", None, postgres_url).empty
