"""Every route that scores writes the prediction log (issue 15), under its source, pseudonymised:
/score (every checkup), the report, FHIR and CDS (the newest checkup, the one they answer for).
Each test flushes the worker's logger itself, then reads the log as `checkup-risk monitor` does."""

import datetime as dt
import json
import uuid

import bentoml
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from features.fhir import to_bundle
from features.pseudonym import derive, load_secret, pseudonym
from features.schema import EXAMPLE_RECORD, OUTCOMES
from models.prediction_log import read_parquet
from tests.service.test_cds import URL, cds_call

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def worker(client):
    return bentoml.get_current_service()


@pytest.fixture
def logged(worker, service_settings):
    """The rows logged for one person id so far (after an explicit flush)."""
    key = derive(load_secret(service_settings.home, service_settings.secret_key), "pseudonym")

    def rows(person_id: str) -> pd.DataFrame:
        worker.predictions.flush()
        today = dt.datetime.now(dt.UTC).date()
        frame = read_parquet(service_settings.prediction_log_path, since=today)
        return frame[frame["person_key"] == pseudonym(key, person_id)].reset_index(drop=True)

    return rows


def person() -> str:
    return f"plog-{uuid.uuid4().hex[:12]}"


def test_score_logs_every_checkup(client, logged, service_home):
    _, _, version = service_home
    pid = person()
    older = {**EXAMPLE_RECORD, "person_id": pid, "exam_date": "2023-06-01"}
    newer = {**EXAMPLE_RECORD, "person_id": pid}
    r = client.post("/score", json={"checkups": [older, newer]})
    assert r.status_code == 200, r.text
    rows = logged(pid)
    assert rows["source"].tolist() == ["score", "score"]
    assert (rows["model_version"] == version).all()
    assert sorted(rows["history_checkups"].tolist()) == [0, 1]
    answer = r.json()["results"][1]["risks"]
    for o in OUTCOMES:
        p = answer[o]["probability"]
        logged_p = rows.loc[rows["history_checkups"] == 1, f"{o}_probability"].iloc[0]
        assert logged_p == pytest.approx(p) if p is not None else pd.isna(logged_p)
    assert rows.loc[0, "sbp"] == EXAMPLE_RECORD["sbp"]


def test_fhir_logs_the_newest_checkup(client, logged):
    pid = person()
    r = client.post(
        "/fhir/risk-assessment", content=json.dumps(to_bundle({**EXAMPLE_RECORD, "person_id": pid})), headers=FHIR
    )
    assert r.status_code == 200, r.text
    rows = logged(pid)
    assert rows["source"].tolist() == ["fhir"]
    assert rows.loc[0, "exam_date"] == dt.date.fromisoformat(EXAMPLE_RECORD["exam_date"])


def test_cds_logs_the_newest_checkup(client, logged, cds_client_keys):
    pid = person()
    body = cds_call({**EXAMPLE_RECORD, "person_id": pid})
    headers = {"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
    r = client.post(URL.replace("http://testserver", ""), json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert logged(pid)["source"].tolist() == ["cds"]


def test_report_logs_the_checkup_it_reports(client, logged):
    pid = person()
    older = {**EXAMPLE_RECORD, "person_id": pid, "exam_date": "2023-06-01"}
    newer = {**EXAMPLE_RECORD, "person_id": pid}
    r = client.post("/report", json={"checkups": [newer, older], "lang": "en"})
    assert r.status_code == 200, r.text
    rows = logged(pid)
    assert rows["source"].tolist() == ["report"]
    assert rows.loc[0, "history_checkups"] == 1
    assert rows.loc[0, "exam_date"] == dt.date.fromisoformat(EXAMPLE_RECORD["exam_date"])


def test_refused_checkups_are_counted_by_field_and_not_logged(client, logged):
    def rejects(field: str) -> float:
        return REGISTRY.get_sample_value("checkup_risk_validation_rejects_total", {"field": field}) or 0.0

    pid = person()
    before = rejects("sbp"), rejects("other")
    r = client.post("/score", json={"checkups": [{**EXAMPLE_RECORD, "person_id": pid, "sbp": 999, "zzz_new": 1}]})
    assert r.status_code == 422
    assert (rejects("sbp") - before[0], rejects("other") - before[1]) == (1, 1)
    assert rejects("zzz_new") == 0
    assert logged(pid).empty
