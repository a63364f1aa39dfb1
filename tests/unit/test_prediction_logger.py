"""The prediction logger (issue 15): rows buffered by `log`, written by `flush` in the format of
`models.prediction_log`, pseudonymised, purged past retention, and a failing store costing a bounded
number of dropped rows, never an exception."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pseudonym import derive, pseudonym
from features.schema import EXAMPLE_RECORD, OUTCOMES
from models.prediction_log import COLUMNS_OUT, INPUTS, read_parquet, write_parquet
from serving import http_metrics
from serving.prediction_logger import BatchLog, ParquetStore, PredictionLogger, open_prediction_log
from serving.schemas import Checkup
from serving.settings import Settings

KEY = derive(b"test-secret", "pseudonym")
RAW_ID = "RAW-PERSON-7f3c91"
TODAY = dt.datetime.now(dt.UTC).date()


def record(person_id: str = RAW_ID, **changes: object) -> dict:
    r = Checkup.model_validate({**EXAMPLE_RECORD, "person_id": person_id, **changes}).model_dump()
    return r


def result(history: int = 0, applicable: bool = True) -> dict:
    risks = {}
    for i, o in enumerate(OUTCOMES):
        if applicable or i:
            risks[o] = {"probability": 0.1 + i / 10, "category": "moderate", "applicable": True}
        else:
            risks[o] = {"probability": None, "category": None, "applicable": False}
    return {"history_checkups": history, "risks": risks}


def logger(directory: Path, **kwargs: object) -> PredictionLogger:
    return PredictionLogger(ParquetStore(directory), KEY, background=False, **kwargs)  # type: ignore[arg-type]


def test_rows_are_buffered_then_flushed_to_parquet_by_day(tmp_path):
    log = logger(tmp_path)
    log.log([record(), record("other-person")], [result(0, applicable=False), result(2)], "7", "score")
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written before a flush
    assert log.flush() == 2
    files = list(tmp_path.glob(f"date={TODAY.isoformat()}/part-*.parquet"))
    assert len(files) == 1
    rows = read_parquet(tmp_path, since=TODAY)
    assert list(rows.columns) == list(COLUMNS_OUT) and len(rows) == 2
    first = rows.iloc[0]
    assert first["person_key"] == pseudonym(KEY, RAW_ID)
    assert (first["model_version"], first["source"], first["history_checkups"]) == ("7", "score", 0)
    assert first["exam_date"] == record()["exam_date"]
    assert first["sbp"] == EXAMPLE_RECORD["sbp"] and first["sex"] == "M"
    assert math.isnan(first[f"{OUTCOMES[0]}_probability"])  # not applicable: NaN
    assert rows.iloc[1][f"{OUTCOMES[1]}_probability"] == pytest.approx(0.2)
    assert rows.iloc[1]["history_checkups"] == 2
    assert log.flush() == 0  # an empty buffer writes no file
    assert len(list(tmp_path.rglob("*.parquet"))) == 1


def test_no_raw_person_id_is_written(tmp_path):
    log = logger(tmp_path)
    log.log([record()] * 3, [result()] * 3, "7", "fhir")
    log.flush()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert RAW_ID.encode() not in path.read_bytes()
    rows = read_parquet(tmp_path, since=TODAY)
    text = [str(v) for v in rows.to_numpy().ravel()]
    assert not any(RAW_ID in v for v in text)
    assert set(rows["person_key"]) == {pseudonym(KEY, RAW_ID)}


def test_retention_purges_old_days_at_most_once_a_day(tmp_path):
    old = pd.DataFrame({"logged_at": [pd.Timestamp(TODAY - dt.timedelta(days=30), tz="UTC")], "person_key": ["k"]})
    write_parquet(tmp_path, old)
    kept = pd.DataFrame({"logged_at": [pd.Timestamp(TODAY - dt.timedelta(days=5), tz="UTC")], "person_key": ["k"]})
    write_parquet(tmp_path, kept)
    log = logger(tmp_path, retention_days=10)
    log.log([record()], [result()], "7", "score")
    log.flush()
    days = sorted(p.name for p in tmp_path.glob("date=*"))
    assert days == [f"date={(TODAY - dt.timedelta(days=5)).isoformat()}", f"date={TODAY.isoformat()}"]
    # A second old day right after: not purged again until a day has passed.
    write_parquet(tmp_path, old)
    log.log([record()], [result()], "7", "score")
    log.flush()
    assert (tmp_path / f"date={(TODAY - dt.timedelta(days=30)).isoformat()}").exists()


class FailingStore:
    kind = "parquet"

    def __init__(self, directory: Path) -> None:
        self.failing = True
        self.inner = ParquetStore(directory)

    def write(self, frame: pd.DataFrame) -> None:
        if self.failing:
            raise OSError(f"disk full while writing {frame['person_key'].iloc[0]}")
        self.inner.write(frame)

    def purge(self, keep_days: int) -> int:
        raise OSError("read-only file system")


def test_a_failing_store_drops_bounded_rows_without_raising(tmp_path, caplog):
    store = FailingStore(tmp_path)
    log = PredictionLogger(store, KEY, background=False, max_rows=5)
    before = dropped_total()
    with caplog.at_level(logging.WARNING, logger="bentoml.checkup_risk.prediction_log"):
        for _ in range(4):
            log.log([record(), record()], [result(), result()], "7", "score")
            assert log.flush() == 0
    # 8 rows came, 5 are kept for the next try, 3 were dropped and counted.
    assert log.dropped == 3 and dropped_total() - before == 3
    lines = [r.getMessage() for r in caplog.records if "writing to the" in r.getMessage()]
    assert len(lines) == 1 and "OSError" in lines[0]  # one line per outage, the fault's type only
    assert not any(RAW_ID in r.getMessage() or pseudonym(KEY, RAW_ID) in r.getMessage() for r in caplog.records)
    # The buffer itself is bounded too when nothing flushes it.
    for _ in range(10):
        log.log([record()], [result()], "7", "score")
    assert len(log._rows) == 5 and log.dropped == 8
    store.failing = False
    assert log.flush() == 10  # the 5 kept from the failed writes and the 5 buffered
    assert len(read_parquet(tmp_path, since=TODAY)) == 10
    # Down at shutdown: the rows waiting are lost, counted and said (nothing tries again).
    store.failing = True
    log.log([record(), record()], [result(), result()], "7", "score")
    with caplog.at_level(logging.WARNING, logger="bentoml.checkup_risk.prediction_log"):
        log.close()
    assert log.dropped == 10 and any("2 rows lost at shutdown" in r.getMessage() for r in caplog.records)


def test_a_malformed_result_is_dropped_not_raised(tmp_path):
    log = logger(tmp_path)
    log.log([record()], [{"risks": None, "history_checkups": 0}, {}], "7", "score")  # lengths differ
    assert log.dropped == 1 and log.flush() == 0


def test_the_flush_thread_writes_when_the_buffer_fills(tmp_path):
    log = PredictionLogger(ParquetStore(tmp_path), KEY, flush_seconds=60, flush_rows=3)
    try:
        log.log([record()] * 3, [result()] * 3, "7", "cds")
        deadline = time.monotonic() + 10
        while log.written < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.written == 3
    finally:
        log.close()


def test_the_thread_counts_often_but_writes_a_file_a_minute(tmp_path):
    # A file every two seconds made 86,000 a day for a two-worker instance (outside tester).
    log = PredictionLogger(ParquetStore(tmp_path), KEY, flush_seconds=0.05, write_seconds=60)
    try:
        for _ in range(3):
            log.log([record()], [result()], "7", "score")
            time.sleep(0.2)
        assert log.written == 0 and not list(tmp_path.rglob("*.parquet"))
        assert log.flush(force=False) == 0  # not due: waits for the minute
    finally:
        log.close()
    assert log.written == 3 and len(list(tmp_path.rglob("*.parquet"))) == 1


def test_close_writes_what_is_buffered(tmp_path):
    log = PredictionLogger(ParquetStore(tmp_path), KEY, flush_seconds=60)
    log.log([record()], [result()], "7", "report")
    log.close()
    assert read_parquet(tmp_path, since=TODAY)["source"].tolist() == ["report"]


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def dropped_total() -> float:
    return sample("checkup_risk_prediction_log_dropped_rows_total")


def test_flushes_count_the_live_signals():
    log = PredictionLogger(None, KEY, background=False)  # CHECKUP_RISK_PREDICTION_LOG=off: metrics only
    outcome = OUTCOMES[0]
    before = (
        sample("checkup_risk_predictions_total", outcome=outcome, category="not_applicable"),
        sample("checkup_risk_predictions_total", outcome=OUTCOMES[1], category="moderate"),
        sample("checkup_risk_input_values_total", field="ldl"),
        sample("checkup_risk_input_missing_total", field="ldl"),
    )
    log.log([record(ldl=None), record()], [result(applicable=False), result()], "7", "score")
    assert log.flush() == 0
    after = (
        sample("checkup_risk_predictions_total", outcome=outcome, category="not_applicable"),
        sample("checkup_risk_predictions_total", outcome=OUTCOMES[1], category="moderate"),
        sample("checkup_risk_input_values_total", field="ldl"),
        sample("checkup_risk_input_missing_total", field="ldl"),
    )
    assert np.subtract(after, before).tolist() == [1, 2, 2, 1]


def test_rejects_are_labelled_from_a_fixed_list():
    before = (
        sample("checkup_risk_validation_rejects_total", field="sbp"),
        sample("checkup_risk_validation_rejects_total", field="other"),
    )
    http_metrics.count_rejects(
        [
            {"index": 0, "field": "sbp", "message": "too high"},
            {"index": 0, "field": "sbp", "message": "twice for one record: counted once"},
            {"index": 1, "field": "sbp", "message": "x"},
            {"index": 1, "field": "a-made-up-field-name", "message": "unknown field"},
            {"index": None, "field": None, "message": "x"},
        ]
    )
    after = (
        sample("checkup_risk_validation_rejects_total", field="sbp"),
        sample("checkup_risk_validation_rejects_total", field="other"),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)
    assert sample("checkup_risk_validation_rejects_total", field="a-made-up-field-name") == 0


def test_batch_rows_count_each_persons_history_across_chunks(tmp_path):
    log = logger(tmp_path)
    batch = BatchLog(log, "9")
    first = pd.DataFrame(
        [record("a", exam_date=dt.date(2020, 1, 1)), record("b"), record("a", exam_date=dt.date(2021, 1, 1))]
    )
    outcome = pd.DataFrame({f"{o}_risk": [0.1, np.nan, 0.3] for o in OUTCOMES}, index=first.index)
    batch(first, outcome)
    second = pd.DataFrame([record("a", exam_date=dt.date(2022, 1, 1))], index=[3])
    batch(second, pd.DataFrame({f"{o}_risk": [0.5] for o in OUTCOMES}, index=second.index))
    log.flush()
    rows = read_parquet(tmp_path, since=TODAY)
    assert rows["history_checkups"].tolist() == [0, 0, 1, 2]
    assert (rows["source"] == "batch").all() and (rows["model_version"] == "9").all()
    assert rows["person_key"].iloc[0] == pseudonym(KEY, "a")
    assert math.isnan(rows[f"{OUTCOMES[0]}_probability"].iloc[1])
    assert rows[f"{OUTCOMES[0]}_probability"].iloc[3] == pytest.approx(0.5)


def test_settings_choose_the_store(tmp_path):
    off = open_prediction_log(Settings(home=tmp_path, prediction_log=False), background=False)
    assert off.store is None
    on = open_prediction_log(Settings(home=tmp_path, secret_key="s"), background=False)
    assert isinstance(on.store, ParquetStore) and on.store.directory == tmp_path / "predictions"
    assert on.key == derive(b"s", "pseudonym")  # the audit trail's pseudonym key
    there = open_prediction_log(Settings(home=tmp_path, prediction_log_dir=tmp_path / "shared"), background=False)
    assert isinstance(there.store, ParquetStore) and there.store.directory == tmp_path / "shared"


def test_inputs_are_the_logged_columns():
    assert set(INPUTS) <= set(record())
