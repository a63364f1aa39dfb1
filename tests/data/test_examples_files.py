"""The newcomer's sample files (docs/examples) and the README's fields table stay true.

The README's first-hour section runs every command on these files; here the files are checked
without a model: the table matches features/schema.py, the records are valid API requests, and the
sample CSV holds several persons and exactly its two deliberately bad rows, which `validate` names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from features.readers import read_checkups
from features.validation import split_valid

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _fields_table_module():
    spec = importlib.util.spec_from_file_location("fields_table", ROOT / "docs" / "fields_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_fields_table_is_generated_from_the_schema():
    from features import schema

    ft = _fields_table_module()
    found = ft.current((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found is not None, "README.md lacks the fields table markers"
    assert found == ft.block(), "README fields table is stale: run .venv/bin/python docs/fields_table.py --write"
    for f in schema.FIELDS:
        assert f"| `{f.name}` |" in found
        if f.unit and f.low is not None:
            row = next(line for line in found.splitlines() if line.startswith(f"| `{f.name}` |"))
            assert f.unit in row and f"{f.low:g} .. {f.high:g}" in row


def test_sample_records_are_valid_requests():
    from serving.schemas import ReportRequest, ScoreRequest

    one = json.loads((EXAMPLES / "checkup.json").read_text())
    history = json.loads((EXAMPLES / "checkups.json").read_text())
    assert isinstance(one, dict) and isinstance(history, list) and len(history) == 3
    assert {r["person_id"] for r in history} == {one["person_id"]}
    assert history[-1] == one, "checkup.json is the newest of checkups.json"
    assert [r["exam_date"] for r in history] == sorted(r["exam_date"] for r in history)
    ScoreRequest.model_validate({"checkups": history, "top_k": 3})
    ReportRequest.model_validate({"checkups": history, "lang": "en"})


def test_sample_file_has_persons_and_exactly_two_bad_rows():
    path = EXAMPLES / "checkups.csv"
    read = read_checkups(path)
    records, problems = split_valid(read.frame)
    raw = pd.read_csv(path)
    assert 25 <= len(raw) <= 40 and raw["person_id"].nunique() >= 5
    assert read.rejected_rows + problems["index"].nunique() == 2
    assert len(records) == len(raw) - 2
    assert set(problems["field"]) == {"sbp", "age"}


def test_validate_names_the_bad_rows(tmp_path):
    env = {**os.environ, "CHECKUP_RISK_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "validate", str(EXAMPLES / "checkups.csv")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "sbp = 999" in proc.stdout and "age = 17" in proc.stdout
    assert "FAILED" in proc.stdout
