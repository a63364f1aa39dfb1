"""Training and evaluation on files shaped like real extracts (issue 10): partial columns, fractional
ages, rejected rows, and a promotion gate that a small model cannot pass by chance.

Everything runs for real: files on disk, a real MLflow store in a temporary CHECKUP_RISK_HOME, real
fits (kept small through `train(..., model_params=...)` and two outcomes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID
from training import registry
from training import train as train_module
from training.evaluate import evaluate
from training.evaluation_run import evaluate_file
from training.train import TooManyRejects, train

SMALL = {"grid": DEFAULT_GRID[:1], "cv_below_events": 0, "max_rounds": 150}
OUTCOMES = ("cvd", "diabetes")
LABELS = [f"{o}_1y" for o in OUTCOMES]
MINIMAL = ["person_id", "exam_date", "sex", "age", "sbp", "dbp", "fasting_glucose"]
LIPIDS = ["total_cholesterol", "triglycerides", "hdl", "ldl"]
# Common outcomes where a test removes or splits off rows: rare ones would leave a validation split
# without events at these sizes.
COMMON = ("hypertension", "dyslipidemia")


@pytest.fixture
def home(tmp_path) -> Path:
    registry.configure(tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    c = generate_cohort(people=700, seed=21)
    # A hospital's ids, not the generator's (those alone would mark the file synthetic).
    c["person_id"] = "P" + c["person_id"].str[1:]
    # Ages from birth dates carry a fraction (contract section 1).
    c["age"] = (c["age"] + np.random.default_rng(0).random(len(c))).round(2)
    return c


def quiet(_text: str) -> None:
    pass


def test_minimal_columns_and_fractional_ages(cohort, home, tmp_path):
    path = tmp_path / "minimal.csv"
    cohort[MINIMAL + LABELS].to_csv(path, index=False)
    said: list[str] = []
    result = train(path, outcomes=OUTCOMES, say=said.append, model_params=SMALL)
    data = result.metrics["data"]
    assert data["rejected_rows"] == 0, "fractional ages must not be rejected"
    assert data["train_rows"] + data["test_rows"] == len(cohort)
    assert any(line.startswith("rejected 0 of") for line in said)
    cvd = result.metrics["outcomes"]["cvd"]
    assert cvd["n"] > 0 and cvd["auroc"] is not None
    # The published equations need lipids: skipped with a note, not a crash.
    for name in ("prevent_10y_cvd", "framingham_2008_cvd"):
        assert cvd["baselines"][name]["skipped"] is True
        assert "total_cholesterol" in cvd["baselines"][name]["note"]
    assert any("prevent_10y_cvd skipped" in line for line in said)
    assert registry.version_of("challenger") == result.version
    # Progress a person can follow, and a run named for what it is (no true risks: real data).
    assert "fitting cvd (1 of 2)" in said and any(line.startswith("  cvd: boosting rounds") for line in said)
    assert any(line.startswith("  diabetes: interval members") for line in said)
    run = registry.client().get_run(result.run_id)
    assert run.info.run_name == f"train 2 outcomes · {cohort['person_id'].nunique():,} persons · real"


def test_without_lipids_then_evaluate_excludes_training_persons(cohort, home, tmp_path):
    path = tmp_path / "no_lipids.csv"
    cohort.drop(columns=LIPIDS).to_csv(path, index=False)
    result = train(path, outcomes=OUTCOMES, say=quiet, model_params=SMALL)
    assert set(result.metrics["outcomes"]) == set(OUTCOMES)
    model, _ = registry.load(result.version)

    # Evaluate on the whole training file: only the held-out persons may count.
    records = cohort.drop(columns=LIPIDS)
    if getattr(model, "was_trained_on", None) is None:
        metrics, _ = evaluate(records, model)
        assert metrics["excluded_training_rows"] is None and "not checked" in metrics["training_exclusion"]
        return
    metrics, _ = evaluate(records, model)
    held_out = train_module.test_mask(records, 0)
    assert metrics["excluded_training_rows"] == int((~held_out).sum())
    assert metrics["excluded_training_persons"] == records.loc[~held_out, "person_id"].nunique()
    assert metrics["n_records"] == int(held_out.sum())
    assert metrics["n_persons"] == records.loc[held_out, "person_id"].nunique()  # persons and checkups apart
    # Only training persons: a clear error, not flattering metrics.
    with pytest.raises(ValueError, match="trained on"):
        evaluate(records.loc[~held_out], model)
    # Labels on checkups an outcome does not apply to are counted, not judged.
    known = records["history_stroke"] == 1
    labelled = records.assign(cvd_1y=records["cvd_1y"].where(~known, 1.0))
    left = evaluate(labelled, model)[0]["labels_not_applicable"]["cvd"]
    assert left["rows"] == left["events"] == int((known & held_out).sum()) > 0

    # `checkup-risk evaluate`'s path: the folder, and a run named for the version and the file,
    # beside the run that trained it; the report's tables are HTML, not Markdown.
    evaluation = evaluate_file(path, result.version, tmp_path / "eval")
    run = registry.client().get_run(evaluation.run_id)
    assert run.info.run_name == f"evaluate v{result.version} on no_lipids.csv"
    assert run.info.experiment_id == registry.client().get_run(result.run_id).info.experiment_id
    assert run.data.metrics["cvd.auroc"] == evaluation.metrics["outcomes"]["cvd"]["auroc"]
    report = (tmp_path / "eval" / "report.html").read_text()
    assert "<table>" in report and "|---" not in report
    assert {p.name for p in evaluation.files} == {"metrics.json", "report.html", "model_card.md"}
    assert len(evaluation.rejects) == 0 and (tmp_path / "eval" / "rejects.csv").exists()

    # Rows that cannot count are rejected, named in rejects.csv and counted in the card: never dropped
    # in silence (a label of 2 had vanished while the card said 0 rows were rejected).
    dirty = pd.read_csv(path)
    first_label = next(c for c in dirty.columns if c.endswith("_1y"))
    dirty.loc[3, first_label] = 2
    dirty.loc[5, "sbp"] = 999
    dirty.to_csv(tmp_path / "dirty.csv", index=False)
    judged = evaluate_file(tmp_path / "dirty.csv", result.version, tmp_path / "eval-dirty")
    assert judged.metrics["rejected_rows"] == 2
    back = pd.read_csv(tmp_path / "eval-dirty" / "rejects.csv")
    assert back["row"].tolist() == [4, 6] and back["field"].tolist() == [first_label, "sbp"]
    assert "rows rejected by validation: 2" in (tmp_path / "eval-dirty" / "model_card.md").read_text()
    report = (tmp_path / "eval-dirty" / "report.html").read_text()
    assert f"2 of {len(dirty):,} rows" in report and "WARNING" not in report
    # Most of a file rejected: the report says so loudly (the CLI too, tests/integration/test_cli.py).
    dirty.loc[dirty.index % 3 == 0, "sbp"] = 999
    dirty.to_csv(tmp_path / "mostly.csv", index=False)
    mostly = evaluate_file(tmp_path / "mostly.csv", result.version, tmp_path / "eval-mostly")
    assert mostly.metrics["rejected_share"] > 0.3 and mostly.metrics["rows_in"] == len(dirty)
    assert "WARNING" in (tmp_path / "eval-mostly" / "report.html").read_text()
    labelless = dirty.drop(columns=[c for c in dirty.columns if c.endswith("_1y")])
    labelless.to_csv(tmp_path / "labelless.csv", index=False)
    with pytest.raises(ValueError, match="no label column to evaluate against"):
        evaluate_file(tmp_path / "labelless.csv", result.version, tmp_path / "eval-none")


@pytest.mark.slow
def test_too_many_rejects_stops_unless_allowed(cohort, home, tmp_path):
    bad = cohort[MINIMAL + [f"{o}_1y" for o in COMMON]].copy()
    rng = np.random.default_rng(3)
    broken = rng.random(len(bad)) < 0.30
    bad.loc[broken, "sbp"] = 999  # implausible: outside 60-280
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)

    env = {**os.environ, "CHECKUP_RISK_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "train", "--data", str(path), "--outcomes", ",".join(COMMON)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "more than the 20% allowed" in last and "--max-reject-share" in last
    assert f"{int(broken.sum()):,} rows: sbp: sbp is outside the plausible range" in proc.stderr
    assert registry.version_of("challenger") is None, "nothing may be registered"

    with pytest.raises(TooManyRejects):
        train(path, outcomes=COMMON, say=quiet, model_params=SMALL)
    said: list[str] = []
    result = train(path, outcomes=COMMON, say=said.append, model_params=SMALL, max_reject_share=0.5)
    assert result.metrics["data"]["rejected_rows"] == int(broken.sum())
    assert any(line.startswith(f"rejected {int(broken.sum()):,} of {len(bad):,} rows") for line in said)


@pytest.mark.slow
def test_small_challenger_cannot_replace_larger_champion(home, tmp_path):
    big = generate_cohort(people=3600, seed=31)
    ids = big["person_id"].unique()
    champion_ids = set(ids[:3000])
    big.loc[big["person_id"].isin(champion_ids)].to_parquet(tmp_path / "champion.parquet", index=False)
    big.loc[~big["person_id"].isin(champion_ids)].to_parquet(tmp_path / "challenger.parquet", index=False)

    champion = train(tmp_path / "champion.parquet", outcomes=COMMON, say=quiet, model_params=SMALL)
    registry.set_alias(registry.CHAMPION, champion.version)

    said: list[str] = []
    challenger = train(
        tmp_path / "challenger.parquet", outcomes=COMMON, say=said.append, promote=True, model_params=SMALL
    )
    assert not challenger.promoted
    assert registry.version_of(registry.CHAMPION) == champion.version
    assert "not enough evidence: hypertension has" in challenger.decision
    assert "held-out events, 50 needed" in challenger.decision
    assert any(line.startswith("gate compares on") for line in said)
    assert challenger.decision in said


def test_first_run_default_model_says_each_step_and_is_synthetic(home):
    """What `checkup-risk serve` does on a fresh machine (`training.default_model`), small: a cohort,
    progress lines with the seconds, the gate's decision, and a card and run that say synthetic.
    (Whether so small a model passes the gate is not the point: `serve` stops with the reason.)"""
    import mlflow

    from training.default_model import EXPERIMENT, FIRST_RUN_PARAMS, build_default

    said: list[str] = []
    result = build_default(
        home, people=2500, say=said.append, model_params={**FIRST_RUN_PARAMS, **SMALL, "cv_below_events": 0}
    )
    assert result.decision.startswith(f"version {result.version} vs champion (none): ")
    assert (registry.version_of(registry.CHAMPION) == result.version) is result.promoted
    assert said[0].startswith("[    0 s] no champion model") and "not for clinical use" in said[0]
    assert any("cohort: " in line and "checkups of 2,500 people" in line for line in said)
    for i, outcome in enumerate(("cvd", "diabetes", "hypertension", "dyslipidemia", "ckd"), start=1):
        assert any(line.endswith(f"] fitting {outcome} ({i} of 5)") for line in said), outcome
    assert any(f"registered checkup-risk version {result.version}" in line for line in said)
    run = registry.client().get_run(result.run_id)
    assert run.info.run_name == "train 5 outcomes · 2,500 persons · synthetic"
    assert run.info.experiment_id == registry.experiment(EXPERIMENT)
    card = mlflow.artifacts.load_text(f"runs:/{result.run_id}/model_card.md")
    assert "**synthetic**" in card and "not for clinical use" in card
