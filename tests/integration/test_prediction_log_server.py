"""The live signals of the prediction log in /metrics of a real `checkup-risk serve` (issue 15):
/metrics only works with BentoML's worker processes (prometheus_client's multiprocess mode), not
under TestClient. Predictions by outcome and category, inputs and missing inputs by field, refused
checkups by field (never a made-up name), and the rows in the Parquet log once the server stops."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from features.schema import EXAMPLE_RECORD, OUTCOMES
from models.prediction_log import read_parquet
from tests.integration.test_faults_server import start_server, stop_server
from tests.integration.test_server import home  # noqa: F401 (the module fixture)

pytestmark = pytest.mark.slow


def _series(text: str, name: str) -> dict[str, float]:
    """{label text: value} of one counter in a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            out[labels] = float(value)
    return out


def test_metrics_show_predictions_inputs_and_rejects(home):  # noqa: F811 (the imported fixture)
    proc, url, _ = start_server(home, {"CHECKUP_RISK_PREDICTION_LOG_DIR": str(home / "shared-predictions")})
    try:
        headers = {"Authorization": f"Bearer {(home / 'api_token').read_text().strip()}"}
        checkups = [{**EXAMPLE_RECORD, "person_id": f"srv-{i}", "ldl": None} for i in range(3)]
        assert httpx.post(f"{url}/score", json={"checkups": checkups}, headers=headers).status_code == 200
        bad = {**EXAMPLE_RECORD, "sbp": 999, "made_up_field": 1}
        assert httpx.post(f"{url}/score", json={"checkups": [bad]}, headers=headers).status_code == 422
        # The flush thread counts the rows within about two seconds.
        deadline, text = time.monotonic() + 20, ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{url}/metrics").text
            if _series(text, "checkup_risk_predictions_total"):
                break
            time.sleep(0.25)
        predictions = _series(text, "checkup_risk_predictions_total")
        assert sum(predictions.values()) == 3 * len(OUTCOMES)
        for labels in predictions:
            assert any(f'category="{c}"' in labels for c in ("low", "moderate", "high", "very_high", "not_applicable"))
        assert _series(text, "checkup_risk_input_values_total")['{field="ldl"}'] == 3
        assert _series(text, "checkup_risk_input_missing_total")['{field="ldl"}'] == 3
        rejects = _series(text, "checkup_risk_validation_rejects_total")
        assert rejects['{field="sbp"}'] == 1 and rejects['{field="other"}'] == 1
        assert "made_up_field" not in text
    finally:
        stop_server(proc)
    rows = read_parquet(home / "shared-predictions", since=dt.datetime.now(dt.UTC).date())
    assert len(rows) == 3 and set(rows["source"]) == {"score"}
    assert not rows["person_key"].str.startswith("srv-").any()
