"""`checkup-risk monitor` on synthetic prediction logs: a quick model scores synthetic cohorts in
process (no server), the rows go to the Parquet log with `models.prediction_log.write_parquet`, and
known shifts must alarm on the right input while a fresh sample of the training distribution must
not. The false-alarm rate over 20 fresh seeds is measured in bench/bench_monitor.py (5 seeds here)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from features.derive import age_years
from features.pseudonym import derive, load_secret, pseudonym
from features.schema import OUTCOMES, age_to_group
from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from models.drift_reference import DRIFT_INPUTS, summarise_numeric
from models.prediction_log import INPUTS, probability_column, write_parquet
from models.provenance import SYNTHETIC_WARNING
from training.monitor import analyse

pytestmark = pytest.mark.slow
KEY = b"k" * 32
DAY = dt.date(2026, 11, 2)


def log_frame(
    model: RiskModel, records: pd.DataFrame, version: str = "1", key: bytes = KEY, logged_at: str = "2026-11-02T10:00"
) -> pd.DataFrame:
    """The prediction-log rows of `records` scored by `model` in process (COLUMNS_OUT)."""
    probs = model.predict(records)
    frame = pd.DataFrame({c: records[c] if c in records else np.nan for c in INPUTS}, index=records.index)
    frame["person_key"] = [pseudonym(key, p) for p in records["person_id"].astype(str)]
    frame["exam_date"] = records["exam_date"]
    frame["model_version"] = version
    frame["source"] = "batch"
    frame["history_checkups"] = 0
    frame["logged_at"] = pd.Timestamp(logged_at, tz="UTC")
    for o in OUTCOMES:
        frame[probability_column(o)] = probs[o] if o in probs else np.nan
    return frame


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=2000, seed=301))


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return generate_cohort(people=2000, seed=302)


def alarms_of(model: RiskModel, records: pd.DataFrame) -> list[dict]:
    return analyse(model.drift_reference_, log_frame(model, records))["alarms"]


def named(alarms: list[dict], statistic: str | None = None) -> set[str]:
    return {a.get("feature") or a["outcome"] for a in alarms if statistic is None or a["statistic"] == statistic}


def test_reference_saved_with_the_bundle(model, tmp_path):
    ref = model.drift_reference_
    assert set(ref["inputs"]) == set(DRIFT_INPUTS) and set(ref["outcomes"]) == set(OUTCOMES)
    # A field that only decides applicability is logged, never watched: a HIS that starts sending
    # it must not raise a drift alarm for something the model does not read.
    assert "history_ckd" in INPUTS and "history_ckd" not in DRIFT_INPUTS
    assert ref["inputs"]["sex"]["kind"] == "categorical" and len(ref["inputs"]["sbp"]["edges"]) == 9
    assert "person_id" not in json.dumps(ref) and ref["rows"] > 5000
    loaded = RiskModel.load(model.save(tmp_path / "b"))
    assert loaded.drift_reference_ == json.loads(json.dumps(ref))
    (tmp_path / "b" / "drift_reference.json").unlink()
    assert RiskModel.load(tmp_path / "b").drift_reference_ is None


def test_fresh_sample_raises_no_alarm(model, fresh):
    report = analyse(model.drift_reference_, log_frame(model, fresh))
    assert report["alarms"] == [], report["alarms"]
    assert report["max_psi"] < 0.1
    for o in OUTCOMES:
        block = report["outcomes"][o]["prediction"]
        assert abs(block["expected_auroc"] - block["reference_expected_auroc"]) < 0.03


def test_sbp_shift_names_sbp(model, fresh):
    shifted = fresh.assign(sbp=fresh["sbp"] + 15)
    alarms = alarms_of(model, shifted)
    assert "sbp" in named(alarms, "psi")
    assert "dbp" not in named(alarms)


def test_glucose_in_mmol_from_one_clinic_names_fasting_glucose(model, fresh):
    clinic = np.arange(len(fresh)) % 3 == 0  # a third of the checkups
    sent = fresh.assign(fasting_glucose=np.where(clinic, fresh["fasting_glucose"] / 18.0, fresh["fasting_glucose"]))
    assert "fasting_glucose" in named(alarms_of(model, sent), "psi")


def test_lipid_panel_disappearing_names_each_lipid(model, fresh):
    lipids = ["total_cholesterol", "hdl", "ldl", "triglycerides"]
    gone = fresh.assign(**{c: np.nan for c in lipids})
    assert set(lipids) <= named(alarms_of(model, gone), "missing_rate_change")


def test_older_population_names_age(model, fresh):
    older = fresh.assign(age=fresh["age"] + 12)
    older["age_group"] = [age_to_group(a) for a in older["age"]]
    assert "age" in named(alarms_of(model, older), "psi")


def test_age_sent_as_years_only_or_as_bands_only_is_no_drift(model, fresh):
    # The record takes age or age_group. A HIS sending ages only raised a 0% -> 100% missing-rate
    # alarm (and a PSI of 15.9) on age_group, which the model never needs when it has the age; bands
    # only (as NHIS files give) put the midpoints in other deciles of age (PSI 0.74).
    ages_only = analyse(model.drift_reference_, log_frame(model, fresh.drop(columns=["age_group"])))
    bands_only = analyse(model.drift_reference_, log_frame(model, fresh.drop(columns=["age"])))
    assert "age_group" not in ages_only["inputs"] and ages_only["alarms"] == [], ages_only["alarms"]
    assert bands_only["inputs"]["age"]["missing_rate"] == 0.0
    assert "age" not in named(bands_only["alarms"]), bands_only["alarms"]


def test_a_format_1_reference_still_watches_age_in_years(model, fresh):
    # Bundles trained before age was banded summarised it in years by deciles.
    old = json.loads(json.dumps(model.drift_reference_))
    old["format"] = 1
    old["inputs"]["age"] = summarise_numeric(age_years(generate_cohort(people=2000, seed=301)))
    report = analyse(old, log_frame(model, fresh))
    assert report["inputs"]["age"]["kind"] == "numeric"
    assert "age" not in named(report["alarms"]), report["alarms"]


def test_false_alarms_over_fresh_seeds(model):
    """5 fresh seeds here; bench/bench_monitor.py measures 20."""
    alarmed = [s for s in range(5) if alarms_of(model, generate_cohort(people=2000, seed=900 + s))]
    assert len(alarmed) <= 1, alarmed


def test_realised_performance_counts_each_checkup_once(model, fresh):
    first = log_frame(model, fresh, logged_at="2026-11-02T09:00")
    again = log_frame(model, fresh, logged_at="2026-11-03T09:00")  # the same checkups scored again
    outcomes = fresh[["person_id", "exam_date", *[f"{o}_1y" for o in OUTCOMES]]]
    report = analyse(model.drift_reference_, pd.concat([first, again]), outcomes=outcomes, key=KEY)
    assert report["logged_rows"] == 2 * len(fresh) and report["checkups"] == len(fresh)
    assert report["realised"]["matched_checkups"] == len(fresh)
    for o in OUTCOMES:
        realised = report["outcomes"][o]["realised"]
        labelled = fresh[f"{o}_1y"].notna() & model.predict(fresh)[o].notna()
        assert realised["n"] == int(labelled.sum())
        assert realised["auroc_ci"][0] <= realised["auroc"] <= realised["auroc_ci"][1]
        assert set(realised["subgroups"]["sex"]) == {"F", "M"}
        assert sum(g["n"] for g in realised["subgroups"]["age_band"].values()) == realised["n"]


def test_outcome_rows_that_disagree_about_a_checkup_are_left_out_and_said(model, fresh):
    from training.monitor import outcome_warnings

    log = log_frame(model, fresh, logged_at="2026-11-02T09:00")
    outcomes = fresh[["person_id", "exam_date", "cvd_1y"]]
    again = outcomes.iloc[:100]
    flipped = outcomes.iloc[100:150].assign(cvd_1y=1 - outcomes["cvd_1y"].iloc[100:150])
    report = analyse(model.drift_reference_, log, outcomes=pd.concat([outcomes, again, flipped]), key=KEY)
    counts = report["realised"]
    labelled = int(outcomes["cvd_1y"].iloc[100:150].notna().sum())  # an empty label flipped is still empty
    assert counts["duplicate_outcome_rows"] == 150 and counts["conflicting_outcome_checkups"] == labelled > 30
    assert counts["matched_checkups"] == len(fresh) - labelled
    (line,) = outcome_warnings(counts)
    assert line.startswith(f"{labelled} checkups have outcome rows that disagree")


@pytest.fixture(scope="module")
def home(tmp_path_factory, model):
    import mlflow

    from training import registry
    from training.train import example_frame

    home = tmp_path_factory.mktemp("monitor-home")
    # MLflow's tracking URI is process-wide: put back whatever the module before this one set.
    before = (registry._home, registry._uri, mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    registry.configure(home)
    with mlflow.start_run(experiment_id=registry.experiment("monitor-tests")):
        _, version = registry.log_bundle(model, example_frame())
    registry.set_alias("champion", version)
    old = RiskModel.load(model.save(home / "old-bundle"))
    old.drift_reference_ = None  # as a bundle saved before the reference existed
    with mlflow.start_run(experiment_id=registry.experiment("monitor-tests")):
        _, old_version = registry.log_bundle(old, example_frame())
    yield home, version, old_version
    registry._home, registry._uri = before[0], before[1]
    mlflow.set_tracking_uri(before[2])
    mlflow.set_registry_uri(before[3])


def run_cli(monkeypatch, home, *args: str) -> int:
    from checkup_risk_cli import main

    for name in ("CHECKUP_RISK_DATABASE_URL", "CHECKUP_RISK_MLFLOW_URI", "CHECKUP_RISK_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHECKUP_RISK_HOME", str(home))
    monkeypatch.setenv("CHECKUP_RISK_PREDICTION_LOG_DIR", str(home / "predictions"))
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))  # main sets it; restored afterwards
    return main(["monitor", *args])


def test_cli_exit_codes_and_files(monkeypatch, tmp_path, home, model, fresh, capsys):
    root, version, old_version = home
    key = derive(load_secret(root, None), "pseudonym")
    write_parquet(root / "predictions", log_frame(model, fresh, version, key, "2026-11-02T10:00"))
    shifted = fresh.assign(sbp=fresh["sbp"] + 15)
    write_parquet(root / "predictions", log_frame(model, shifted, version, key, "2026-11-10T10:00"))
    outcomes = tmp_path / "outcomes.csv"
    fresh[["person_id", "exam_date", "cvd_1y", "diabetes_1y"]].to_csv(outcomes, index=False)

    out = tmp_path / "quiet"
    assert run_cli(monkeypatch, root, "--since", "2026-11-01", "--until", "2026-11-05", "--out", str(out)) == 0
    report = json.loads((out / "monitor.json").read_text())
    assert report["model_version"] == version and report["alarms"] == []
    # With outcomes: the quick model (2,000 people) is visibly worse on new people than it expects of
    # itself, which the monitor reports as realised-performance alarms and nothing else; wide
    # margins silence them.
    args = ["--since", "2026-11-01", "--until", "2026-11-05", "--outcomes", str(outcomes)]
    assert run_cli(monkeypatch, root, *args, "--out", str(tmp_path / "labels")) in (0, 3)
    report = json.loads((tmp_path / "labels" / "monitor.json").read_text())
    assert {a["kind"] for a in report["alarms"]} <= {"realised_performance"}
    assert report["outcomes"]["cvd"]["realised"]["n"] > 1000
    wide = ["--threshold", "calibration_margin=5", "--threshold", "realised_auroc_drop=1"]
    assert run_cli(monkeypatch, root, *args, "--out", str(out), *wide) == 0
    page = (out / "monitor.html").read_text()
    assert "data:image/png;base64," in page
    assert SYNTHETIC_WARNING in page  # the model learned from synthetic people: said in the report
    bad = fresh[["person_id", "exam_date", "cvd_1y"]].assign(cvd_1y=2)
    bad.to_csv(tmp_path / "bad_outcomes.csv", index=False)
    bad_args = ["--since", "2026-11-01", "--until", "2026-11-05", "--outcomes", str(tmp_path / "bad_outcomes.csv")]
    capsys.readouterr()
    assert run_cli(monkeypatch, root, *bad_args, "--out", str(tmp_path / "bad")) == 2
    assert "cvd_1y must be 0, 1 or empty (data row 1, 2, 3, 4, 5 and" in capsys.readouterr().err
    # Outcome dates as the checkup reader takes them (YYYYMMDD had matched nothing, in silence); an
    # outcomes file that meets no logged checkup cannot measure what was asked (exit 2), and one that
    # meets few says so (outside tester).
    labels = fresh[["person_id", "exam_date", "cvd_1y"]]
    compact = labels.assign(exam_date=pd.to_datetime(labels["exam_date"]).dt.strftime("%Y%m%d"))
    compact.to_csv(tmp_path / "compact.csv", index=False)
    dated = ["--since", "2026-11-01", "--until", "2026-11-05", *wide]
    assert run_cli(monkeypatch, root, *dated, "--outcomes", str(tmp_path / "compact.csv"), "--out", str(out)) == 0
    assert json.loads((out / "monitor.json").read_text())["realised"]["matched_checkups"] == len(fresh)
    assert "WARNING" not in capsys.readouterr().err
    day_off = labels.assign(exam_date=pd.to_datetime(labels["exam_date"]) + pd.Timedelta(days=1))
    day_off.to_csv(tmp_path / "day_off.csv", index=False)
    assert run_cli(monkeypatch, root, *dated, "--outcomes", str(tmp_path / "day_off.csv"), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"WARNING: 0 of {len(fresh):,} outcome rows (0%) matched a logged checkup" in err
    iso = pd.to_datetime(labels["exam_date"]).dt.strftime("%Y-%m-%d")
    half = labels.assign(
        exam_date=np.where(np.arange(len(labels)) % 2 == 0, day_off["exam_date"].dt.strftime("%Y-%m-%d"), iso)
    )
    half.to_csv(tmp_path / "half.csv", index=False)
    assert run_cli(monkeypatch, root, *dated, "--outcomes", str(tmp_path / "half.csv"), "--out", str(out)) == 0
    assert "outcome rows (50%) matched a logged checkup" in capsys.readouterr().err
    assert "matched a logged checkup" in (out / "monitor.html").read_text()
    labels.assign(exam_date="10/06/2025").to_csv(tmp_path / "us_dates.csv", index=False)
    assert run_cli(monkeypatch, root, *dated, "--outcomes", str(tmp_path / "us_dates.csv"), "--out", str(out)) == 2
    assert (
        "exam_date must be a date such as 2025-06-10 or 20250610 (data row 1, 2, 3, 4, 5 and" in capsys.readouterr().err
    )

    out = tmp_path / "loud"
    assert run_cli(monkeypatch, root, "--since", "2026-11-09", "--until", "2026-11-10", "--out", str(out)) == 3
    report = json.loads((out / "monitor.json").read_text())
    assert any(a.get("feature") == "sbp" and a["statistic"] == "psi" for a in report["alarms"])
    assert "ALARM data_drift: sbp" in capsys.readouterr().out
    # A raised threshold silences it.
    args = [
        "--since",
        "2026-11-09",
        "--until",
        "2026-11-10",
        "--out",
        str(tmp_path / "t"),
        "--threshold",
        "psi_alarm=50",
    ]
    args += ["--threshold", "missing_points=1", "--threshold", "expected_auroc_drop=1"]
    assert run_cli(monkeypatch, root, *args) == 0

    import mlflow

    runs = mlflow.search_runs(experiment_names=["monitoring"])
    # One run for each monitor that got as far as its report (the bad-outcomes ones did not).
    assert len(runs) == 8 and set(runs["tags.model_version"]) == {version}
    assert "metrics.max_psi" in runs and "metrics.cvd.expected_auroc" in runs


def test_cli_cannot_run(monkeypatch, tmp_path, home, capsys):
    root, _, old_version = home
    out = str(tmp_path / "x")
    assert run_cli(monkeypatch, root, "--since", "2020-01-01", "--until", "2020-01-31", "--out", out) == 2
    assert "no predictions of model version" in capsys.readouterr().err
    assert run_cli(monkeypatch, root, "--since", "2026-11-01", "--model", old_version, "--out", out) == 2
    assert "has no drift reference" in capsys.readouterr().err
    assert run_cli(monkeypatch, root, "--since", "2026-11-01", "--model", "99", "--out", out) == 2
