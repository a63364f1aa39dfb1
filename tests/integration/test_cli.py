"""The command line end to end, as a user runs it: synth, validate, train, evaluate, score."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"


def cli(*args, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHECKUP_RISK_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_help_and_bad_arguments(tmp_path):
    assert "synth" in cli("--help", home=tmp_path).stdout
    bad = cli("validate", tmp_path / "missing.csv", home=tmp_path, check=False)
    assert bad.returncode != 0 and "no such file" in bad.stderr


def test_validate_nhis_file_without_flags(tmp_path):
    out = cli("validate", FIXTURES / "nhis_2020_sample.csv", home=tmp_path)
    assert "nhis format" in out.stdout and "PASSED" in out.stdout


def test_validate_names_implausible_value(tmp_path):
    cli("synth", "--people", 300, "--seed", 4, "--out", tmp_path / "c.csv", home=tmp_path)
    df = pd.read_csv(tmp_path / "c.csv")
    df.loc[7, "hdl"] = 900
    df.to_csv(tmp_path / "bad.csv", index=False)
    assert "PASSED" in cli("validate", tmp_path / "c.csv", "--report", tmp_path / "docs", home=tmp_path).stdout
    assert (tmp_path / "docs" / "index.html").exists()
    bad = cli("validate", tmp_path / "bad.csv", home=tmp_path, check=False)
    assert bad.returncode == 1
    assert "row 8" in bad.stdout and "hdl = 900" in bad.stdout


@pytest.mark.slow
def test_train_promote_evaluate_score(tmp_path):
    home = tmp_path / "home"
    cli("synth", "--people", 2500, "--seed", 3, "--out", tmp_path / "train.parquet", home=home)
    out = cli("train", "--data", tmp_path / "train.parquet", "--promote", home=home)
    assert "PROMOTED to champion" in out.stdout
    assert (home / "mlflow.db").exists()

    cli("synth", "--people", 800, "--seed", 4, "--out", tmp_path / "eval.csv", home=home)
    ev = cli("evaluate", "--data", tmp_path / "eval.csv", "--out", tmp_path / "eval", home=home)
    # Progress on stderr, step by step (contract section 4), the metrics table alone on stdout.
    steps = [line.split("] ", 1)[-1] for line in ev.stderr.splitlines() if line.startswith("[")]
    assert steps[:2] == ["loading model champion", "reading eval.csv"], ev.stderr
    assert "  metrics: cvd (1 of 5)" in steps and steps[-1] == "logging the evaluation to MLflow"
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    cvd = metrics["outcomes"]["cvd"]
    for key in (
        "n",
        "events",
        "auroc",
        "auroc_ci",
        "auprc",
        "brier",
        "calibration_intercept",
        "calibration_slope",
        "ece",
        "net_benefit",
        "oracle_auroc",
        "expected_auroc",
        "subgroups",
    ):
        assert key in cvd, key
    assert {"logistic_regression", "prevent_10y_cvd", "framingham_2008_cvd"} <= set(cvd["baselines"])
    assert (tmp_path / "eval" / "report.html").stat().st_size > 10_000
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert "Intended use" in card
    # The card tells the file judged from the data the version learned from (fingerprinted by its run).
    evaluated = re.search(r"- File `eval.csv`, fingerprint `([0-9a-f]{64})`: ([\d,]+) rows of 800 persons", card)
    trained = re.search(r"- Source file fingerprint: `([0-9a-f]{64})`; ([\d,]+) checkups of 2,500 persons", card)
    assert evaluated and trained and evaluated[1] != trained[1], card
    assert int(evaluated[2].replace(",", "")) == metrics["rows_in"]
    # Most of the file rejected: evaluated on the rest, and said loudly (as score and train do).
    heavy = pd.read_csv(tmp_path / "eval.csv")
    heavy.loc[heavy.index % 10 < 3, "sbp"] = 999
    heavy.assign(clinic_code="A1").to_csv(tmp_path / "heavy.csv", index=False)
    out = cli("evaluate", "--data", tmp_path / "heavy.csv", "--out", tmp_path / "eval-heavy", home=home)
    assert out.stderr.strip().splitlines()[-1].startswith("WARNING: ")
    # The reader's notes, as train and score say them (an NHIS file's caveats had gone unsaid).
    assert "note: " in out.stderr and "clinic_code" in out.stderr
    assert "were rejected, more than 20%: the figures describe the rest of the file" in out.stderr

    # Score a file with bad rows: nothing is lost.
    good = pd.read_csv(tmp_path / "eval.csv").head(200)
    bad = pd.read_csv(FIXTURES / "canonical_bad.csv")
    mixed = pd.concat([good, bad], ignore_index=True)
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    cli("score", "--input", tmp_path / "mixed.csv", "--output", tmp_path / "scores.csv", home=home)
    scores = pd.read_csv(tmp_path / "scores.csv")
    rejects = pd.read_csv(tmp_path / "scores.csv.rejects.csv")
    assert len(scores) + rejects["row"].nunique() == len(mixed)
    assert {"person_id", "exam_date", "cvd_risk", "ckd_risk"} <= set(scores.columns)
    assert scores["cvd_risk"].between(0, 1).all() or scores["cvd_risk"].isna().any()
    # Patient data written by a command are its owner's only (the umask set at the entry point).
    for written in (tmp_path / "scores.csv", tmp_path / "scores.csv.rejects.csv", home / "mlflow.db"):
        assert written.stat().st_mode & 0o077 == 0, written

    # A second version (small, to keep the test quick): the gate weighs it against the champion and
    # says why. The gate's rules themselves are tested in tests/unit/test_promotion.py.
    cli("synth", "--people", 1500, "--seed", 5, "--out", tmp_path / "second.parquet", home=home)
    common = "hypertension,dyslipidemia"
    out = cli("train", "--data", tmp_path / "second.parquet", "--outcomes", common, "--promote", home=home)
    assert "version 2 vs champion 1: keep the champion: challenger lacks outcomes the champion has: " in out.stdout
    # By hand the gate is bypassed: the lost outcomes are said loudly.
    out = cli("promote", "2", home=home)
    assert (
        "WARNING: version 2 has no cvd, diabetes, ckd model: /score, FHIR and CDS stop giving those risks" in out.stderr
    )


def test_serve_refuses_a_busy_port_or_home_at_once_in_one_line(tmp_path):
    import fcntl
    import socket

    from tests.integration.test_server import free_port

    # Before any training: a fresh home would otherwise train for minutes and then fail.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--port", port, home=tmp_path / "a", check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use (another server on that port?)" in out.stderr
    assert "is not a TCP port" in cli("serve", "--port", 70000, home=tmp_path / "a", check=False).stderr
    # BentoML binds an IP address only: a name is refused here, not after a first run's training.
    assert "is not an IP address" in cli("serve", "--host", "localhost", home=tmp_path / "a", check=False).stderr
    home = tmp_path / "b"
    home.mkdir()
    with open(home / "serve.lock", "a+") as held:  # as a running `serve` holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = cli("serve", "--port", free_port(), home=home, check=False)
    assert out.returncode == 2 and "another `checkup-risk serve` is running on this home" in out.stderr
    assert not (home / "mlflow.db").exists()  # stopped before anything else


@pytest.mark.parametrize(
    "content, said",
    [
        (None, "cannot be read (No such file or directory)"),
        ("{bad", "is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
        ('[{"iss": "his"}]', "entry 0 needs iss and jwks or jwks_url"),
        ('[{"iss": "his", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}]', "jwks holds no public EC or RSA key"),
        ('[{"iss": "his", "jwks_url": "file:///etc/passwd"}]', "jwks_url must be an http(s) URL"),
    ],
)
def test_serve_refuses_a_bad_cds_client_list_in_one_line_before_anything(tmp_path, content, said):
    """It printed "serving" and then every worker crash-looped with a traceback."""
    from tests.integration.test_server import free_port

    clients = tmp_path / "clients.json"
    if content is not None:
        clients.write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(CHECKUP_RISK_HOME=str(tmp_path / "home"), CHECKUP_RISK_CDS_CLIENTS=str(clients))
    out = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and not out.stdout, (out.stdout, out.stderr)
    assert out.stderr.startswith(f"checkup-risk serve: CHECKUP_RISK_CDS_CLIENTS: {clients}") and said in out.stderr
    assert not (tmp_path / "home" / "mlflow.db").exists()  # stopped before any training


def test_serve_refuses_a_prediction_log_folder_it_cannot_write_before_anything(tmp_path):
    """It started, and each worker warned a minute after the first scored request."""
    from tests.integration.test_server import free_port

    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "predictions"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKUP_RISK_")}
    env.update(CHECKUP_RISK_HOME=str(tmp_path / "home"), CHECKUP_RISK_PREDICTION_LOG_DIR=str(folder))
    serve = [sys.executable, "-m", "checkup_risk_cli", "serve", "--port", str(free_port())]
    out = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, (out.stdout, out.stderr)
    assert f"checkup-risk serve: CHECKUP_RISK_PREDICTION_LOG_DIR: {folder} cannot be written (Not a directory)" in (
        out.stderr
    )
    assert not (tmp_path / "home" / "mlflow.db").exists()


def test_validate_refuses_misspelt_column_and_names_absent_inputs(tmp_path):
    df = pd.DataFrame(
        {"person_id": ["a", "b"], "sex": ["M", "F"], "age": [50.4, 61.9], "sbp": [120, 130], "dbp": [80, 85]}
    )
    df.assign(fasting_glucos=[100, 140]).to_csv(tmp_path / "typo.csv", index=False)
    bad = cli("validate", tmp_path / "typo.csv", home=tmp_path, check=False)
    assert bad.returncode != 0
    assert "column 'fasting_glucos' is not a record field; did you mean 'fasting_glucose'?" in bad.stderr
    df.to_csv(tmp_path / "ok.csv", index=False)
    ok = cli("validate", tmp_path / "ok.csv", home=tmp_path)
    assert "no fasting_glucose in this file: diabetes risks use no glucose" in ok.stdout
    assert "PASSED" in ok.stdout
