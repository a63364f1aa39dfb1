"""A model trained on synthetic people says so everywhere (issue 11): /model, /score, FHIR, CDS and
the report; CDS gives no cards from it unless CHECKUP_RISK_ALLOW_SYNTHETIC=1. The session's model
(tests/service/conftest.py) is fitted on the synthetic cohort, and conftest allows synthetic cards."""

import copy
import json
import shutil

import bentoml
import pytest

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from models.bundle import RiskModel
from models.provenance import SYNTHETIC_WARNING, synthetic_notice
from serving.report import render_html
from serving.scoring import Scorer
from tests.service.test_cds import URL, cds_call

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def post(client, cds_client_keys):
    def call(body):
        token = cds_client_keys.token(URL)
        headers = {"Authorization": f"Bearer {token}"}
        return client.post(URL.replace("http://testserver", ""), json=body, headers=headers)

    return call


@pytest.fixture
def service(client):
    """The running worker's service instance (BentoML keeps the current one per process)."""
    return bentoml.get_current_service()


def test_model_route_names_synthetic_training_data(client, service_home):
    _, model, _ = service_home
    body = client.get("/model").json()
    info = body["training_data"]
    assert info["kind"] == "synthetic"
    assert any("not for clinical use" in w for w in body["warnings"])
    assert info == model.training_data_
    # Persons and checkups counted apart: the cohort has several checkups per person.
    assert 0 < info["persons"] < info["checkups"]
    assert info["first_exam"] <= info["last_exam"]


def test_bundle_keeps_provenance_and_old_bundles_load_as_unknown(service_home, tmp_path):
    _, model, _ = service_home
    saved = model.save(tmp_path / "bundle")
    assert RiskModel.load(saved).training_data_ == model.training_data_
    old = tmp_path / "old"
    shutil.copytree(saved, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["training_data"]  # as a bundle saved before provenance was recorded
    (old / "manifest.json").write_text(json.dumps(manifest))
    loaded = RiskModel.load(old)
    assert loaded.training_data_["kind"] == "unknown" and loaded.training_data_["persons"] is None
    assert not Scorer(loaded, "old").synthetic


def test_every_score_result_carries_one_synthetic_warning(client):
    records = [dict(EXAMPLE_RECORD, person_id=f"p{i}") for i in range(3)]
    r = client.post("/score", json={"checkups": records})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3
    for res in results:
        assert res["warnings"].count(SYNTHETIC_WARNING) == 1, res["warnings"]


def test_a_real_model_gives_no_synthetic_warning_and_no_banner(service_home):
    _, model, _ = service_home
    real = copy.copy(model)
    real.training_data_ = {**model.training_data_, "kind": "real"}
    scorer = Scorer(real, "real")
    (res,) = scorer.score_records([dict(EXAMPLE_RECORD)])
    assert SYNTHETIC_WARNING not in res["warnings"]
    assert 'class="provenance"' not in render_html(scorer, dict(EXAMPLE_RECORD), "en")


def test_fhir_says_synthetic_in_outcome_and_notes(client):
    r = client.post("/fhir/risk-assessment", content=json.dumps(to_bundle(EXAMPLE_RECORD)), headers=FHIR)
    assert r.status_code == 200, r.text
    resources = [e["resource"] for e in r.json()["entry"]]
    outcome = resources[-1]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "warning" and i["diagnostics"] == SYNTHETIC_WARNING for i in outcome["issue"])
    assessments = [x for x in resources if x["resourceType"] == "RiskAssessment"]
    assert assessments
    for ra in assessments:
        assert any("synthetic" in n["text"] and "not for clinical use" in n["text"] for n in ra["note"])


def test_allow_synthetic_is_read_at_start_up(service):
    # conftest set CHECKUP_RISK_ALLOW_SYNTHETIC=1 before the app was built.
    assert service.allow_synthetic is True and service.current().scorer.synthetic is True


def test_allowed_synthetic_card_says_so(post, service):
    record = dict(EXAMPLE_RECORD, sbp=168.0, dbp=96.0, smoking_status=3)
    r = post(cds_call(record))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    notice = synthetic_notice(service.current().scorer.training_data)
    assert card["detail"].startswith(f"**⚠ {notice}**")
    assert "가상 인물" in card["detail"] and "Not for clinical use" in card["detail"]
    for action in card["suggestions"][0]["actions"]:
        assert any("synthetic" in n["text"] for n in action["resource"]["note"])


def test_no_cards_from_a_synthetic_model_unless_allowed(post, service, monkeypatch):
    record = dict(EXAMPLE_RECORD, sbp=168.0, dbp=96.0, smoking_status=3)
    monkeypatch.setattr(service, "allow_synthetic", False)
    r = post(cds_call(record))
    assert r.status_code == 200, r.text
    assert r.json() == {"cards": []}
    # Requests are still checked: a broken call is refused, not silently given no cards.
    bad = cds_call(record)
    bad["prefetch"].pop("observations")
    assert post(bad).status_code == 412
    monkeypatch.setattr(service, "allow_synthetic", True)
    assert len(post(cds_call(record)).json()["cards"]) == 1


def test_stale_card_from_a_synthetic_model_says_so(post):
    record = dict(EXAMPLE_RECORD, exam_date="2015-03-02")
    (card,) = post(cds_call(record)).json()["cards"]
    assert card["indicator"] == "info" and "합성(가상) 데이터" in card["detail"]


@pytest.mark.parametrize(
    "lang,words", [("ko", "합성(가상) 데이터로 학습한 모델"), ("en", "synthetic (simulated) people")]
)
def test_report_banner(client, lang, words):
    r = client.post("/report", json={"checkup": EXAMPLE_RECORD, "lang": lang})
    assert r.status_code == 200
    assert 'class="provenance" role="alert"' in r.text and words in r.text
