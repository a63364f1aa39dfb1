"""The README's first-hour commands, run on the sample files (docs/examples) with the session's model.

`score` on the sample CSV scores every good row and rejects the two bad ones with their reasons;
`report` works on one checkup and on one person's three checkups; the `/score` body the README's
curl command sends is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_score_the_sample_file(service_home, tmp_path, capsys):
    from checkup_risk_cli import main

    out = tmp_path / "scores.csv"
    assert main(["score", "--input", str(EXAMPLES / "checkups.csv"), "--output", str(out), "--explain", "3"]) == 0
    rows = len(pd.read_csv(EXAMPLES / "checkups.csv"))
    scores = pd.read_csv(out)
    rejects = pd.read_csv(f"{out}.rejects.csv")
    assert len(scores) == rows - 2 and rejects["row"].nunique() == 2
    assert set(rejects["field"]) == {"sbp", "age"}
    assert {"person_id", "exam_date", "cvd_risk", "ckd_risk"} <= set(scores.columns)
    assert f"{rows:,} rows in, {rows - 2:,} scored" in capsys.readouterr().out


def test_report_on_one_checkup_and_on_a_persons_history(service_home, tmp_path, capsys):
    from checkup_risk_cli import main

    for name in ("checkup.json", "checkups.json"):
        target = tmp_path / f"{name}.html"
        assert main(["report", "--input", str(EXAMPLES / name), "--lang", "en", "--out", str(target)]) == 0
        html = target.read_text()
        assert '<html lang="en">' in html and "One-year risk" in html
    assert "wrote the en report" in capsys.readouterr().out


def test_the_readme_curl_body_is_accepted(client):
    checkups = json.loads((EXAMPLES / "checkups.json").read_text())
    response = client.post("/score", json={"checkups": checkups})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(checkups)
    assert results[-1]["history_checkups"] == len(checkups) - 1
