"""Settings: every CHECKUP_RISK_* variable read in one place, bad values named, nothing read or
written at import time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving.settings import DEFAULT_STALE_AFTER_DAYS, Settings, SettingsError, configure_libraries

ROOT = Path(__file__).parents[2]


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({})
    assert s.home == tmp_path / ".checkup-risk" and s.home.is_absolute()
    assert (s.workers, s.stale_after_days, s.fhir_visit_days) == (2, DEFAULT_STALE_AFTER_DAYS, 7)
    assert s.max_body_bytes == 8 * 1024 * 1024
    assert s.allow_synthetic is False and s.tracing is False and s.cors_origins == ("*",)
    assert s.api_token is s.cds_clients is s.public_url is s.model_tag is None
    # Empty means unset, as a shell's `export VAR=` does.
    assert Settings.from_env({"CHECKUP_RISK_HOME": "", "CHECKUP_RISK_WORKERS": " "}) == s


def test_every_variable_is_read_and_round_trips(tmp_path):
    environ = {
        "CHECKUP_RISK_HOME": str(tmp_path / "home"),
        "CHECKUP_RISK_WORKERS": "4",
        "CHECKUP_RISK_MAX_BODY_BYTES": "1048576",
        "CHECKUP_RISK_ACCEPTED_HOSTS": "risk.internal:8443, localhost",
        "CHECKUP_RISK_STALE_AFTER_DAYS": " 365 ",
        "CHECKUP_RISK_FHIR_VISIT_DAYS": "14",
        "CHECKUP_RISK_TIME_ZONE": "UTC",
        "CHECKUP_RISK_ALLOW_SYNTHETIC": "yes",
        "CHECKUP_RISK_CORS_ORIGINS": "https://a.example.org, https://b.example.org",
        "CHECKUP_RISK_TRACING": "1",
        "CHECKUP_RISK_API_TOKEN": "s3cret",
        "CHECKUP_RISK_CDS_CLIENTS": str(tmp_path / "clients.json"),
        "CHECKUP_RISK_PUBLIC_URL": "https://risk.example.org/",
        "CHECKUP_RISK_MODEL_TAG": "checkup-risk:v3",
        "CHECKUP_RISK_DATABASE_URL": "postgresql://risk@/state?host=/run/postgresql&port=5432",
        "CHECKUP_RISK_SECRET_KEY": "link-and-pseudonym-secret",
        "CHECKUP_RISK_MLFLOW_URI": "https://mlflow.hospital.internal",
        "CHECKUP_RISK_REPORT_LINK_SECONDS": "600",
        "CHECKUP_RISK_RATE_LIMIT": "120",
        "CHECKUP_RISK_MODEL_POLL_SECONDS": "0",
        "CHECKUP_RISK_KEEP_ALIVE_SECONDS": "10",
        "CHECKUP_RISK_READ_TIMEOUT_SECONDS": "20",
        "CHECKUP_RISK_PREDICTION_LOG": "off",
        "CHECKUP_RISK_PREDICTION_LOG_DIR": str(tmp_path / "shared" / "predictions"),
        "CHECKUP_RISK_PREDICTION_RETENTION_DAYS": "800",
    }
    s = Settings.from_env(environ)
    assert s == Settings(
        home=tmp_path / "home",
        workers=4,
        max_body_bytes=1048576,
        accepted_hosts=("risk.internal:8443", "localhost"),
        stale_after_days=365,
        fhir_visit_days=14,
        time_zone="UTC",
        allow_synthetic=True,
        cors_origins=("https://a.example.org", "https://b.example.org"),
        tracing=True,
        api_token="s3cret",
        cds_clients=tmp_path / "clients.json",
        public_url="https://risk.example.org",
        model_tag="checkup-risk:v3",
        database_url="postgresql://risk@/state?host=/run/postgresql&port=5432",
        secret_key="link-and-pseudonym-secret",
        mlflow_uri="https://mlflow.hospital.internal",
        report_link_seconds=600,
        rate_limit_per_minute=120,
        model_poll_seconds=0,
        keep_alive_seconds=10,
        read_timeout_seconds=20,
        prediction_log=False,
        prediction_log_dir=tmp_path / "shared" / "predictions",
        prediction_retention_days=800,
    )
    # The child process `serve` starts reads the same settings back.
    assert Settings.from_env(s.to_env()) == s
    assert set(s.to_env()) == set(environ)


@pytest.mark.parametrize(
    "name,value",
    [
        ("CHECKUP_RISK_WORKERS", "two"),
        ("CHECKUP_RISK_WORKERS", "0"),
        ("CHECKUP_RISK_MAX_BODY_BYTES", "8MB"),
        ("CHECKUP_RISK_MAX_BODY_BYTES", "0"),
        ("CHECKUP_RISK_STALE_AFTER_DAYS", "1.5"),
        ("CHECKUP_RISK_FHIR_VISIT_DAYS", "-3"),
        ("CHECKUP_RISK_TIME_ZONE", "Seoul"),
        ("CHECKUP_RISK_TIME_ZONE", "../../etc/passwd"),
        ("CHECKUP_RISK_ALLOW_SYNTHETIC", "on please"),
        ("CHECKUP_RISK_TRACING", "maybe"),
        ("CHECKUP_RISK_PUBLIC_URL", "risk.example.org"),
        ("CHECKUP_RISK_CORS_ORIGINS", "*,his.example.org"),
        ("CHECKUP_RISK_DATABASE_URL", "mysql://risk@db/state"),
        ("CHECKUP_RISK_MLFLOW_URI", "ftp://mlflow"),
        ("CHECKUP_RISK_REPORT_LINK_SECONDS", "7200"),
        ("CHECKUP_RISK_RATE_LIMIT", "0"),
        ("CHECKUP_RISK_MODEL_POLL_SECONDS", "-1"),
        ("CHECKUP_RISK_ACCEPTED_HOSTS", ",,"),
        ("CHECKUP_RISK_MODEL_TAG", "latest"),
        ("CHECKUP_RISK_MODEL_TAG", "checkup-risk:latest"),
        ("CHECKUP_RISK_MODEL_TAG", "checkup-risk:v0"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_secrets_are_never_in_repr():
    environ = {
        "CHECKUP_RISK_API_TOKEN": "s3cret",
        "CHECKUP_RISK_SECRET_KEY": "k3y",
        "CHECKUP_RISK_DATABASE_URL": "postgresql://risk:pa55@db/state",
    }
    text = repr(Settings.from_env(environ))
    assert "s3cret" not in text and "k3y" not in text and "pa55" not in text


def test_a_bad_database_url_never_echoes_its_password():
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"CHECKUP_RISK_DATABASE_URL": "mysql://risk:pa55@db/state"})
    assert "pa55" not in str(e.value)


def test_configure_libraries_points_bentoml_home_and_keeps_operator_choices(tmp_path):
    environ = {"MLFLOW_DISABLE_TELEMETRY": "false"}
    configure_libraries(Settings(home=tmp_path), environ)
    assert environ["BENTOML_HOME"] == str(tmp_path / "bentoml")
    assert environ["BENTOML_DO_NOT_TRACK"] == "true" and environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"  # its INFO lines would interleave with ours


def test_cli_reports_a_bad_setting_in_one_line(tmp_path):
    env = {**os.environ, "CHECKUP_RISK_WORKERS": "many"}
    out = subprocess.run(
        [sys.executable, "-m", "checkup_risk_cli", "synth", "--people", "1", "--out", str(tmp_path / "c.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "checkup-risk synth: CHECKUP_RISK_WORKERS must be a whole number, not 'many'"


def test_importing_every_module_reads_and_writes_nothing(tmp_path):
    """On a fresh machine: no settings, no model, an empty working folder. Every module imports,
    the environment is unchanged, no file appears, and the service is only built when asked for."""
    code = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
names = ["checkup_risk_cli"]
for package in ("features", "models", "training", "serving"):
    module = importlib.import_module(package)
    names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__)]
for name in names:
    importlib.import_module(name)
# scikit-learn's own import sets these two (OpenMP work-arounds in sklearn/__init__.py).
library_set = {"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"}
changed = sorted(k for k in (set(before) | set(os.environ)) - library_set if before.get(k) != os.environ.get(k))
import serving.service
try:
    serving.service.RiskService
    built = "built"
except LookupError as e:
    built = str(e)
print(json.dumps({"modules": len(names), "changed": changed, "built": built}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKUP_RISK_", "BENTOML_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["modules"] > 30 and got["changed"] == []
    assert "no model pinned" in got["built"] and "checkup-risk serve" in got["built"]
    assert list(tmp_path.iterdir()) == []


def test_client_deadlines_default_and_bounds():
    s = Settings.from_env({})
    assert (s.keep_alive_seconds, s.read_timeout_seconds) == (5, 30)
    s = Settings.from_env({"CHECKUP_RISK_KEEP_ALIVE_SECONDS": "15", "CHECKUP_RISK_READ_TIMEOUT_SECONDS": "60"})
    assert (s.keep_alive_seconds, s.read_timeout_seconds) == (15, 60)
    assert Settings.from_env(s.to_env()) == s
    for name, value in (
        ("CHECKUP_RISK_KEEP_ALIVE_SECONDS", "0"),
        ("CHECKUP_RISK_KEEP_ALIVE_SECONDS", "5s"),
        ("CHECKUP_RISK_READ_TIMEOUT_SECONDS", "601"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_prediction_log_settings(tmp_path):
    s = Settings.from_env({"CHECKUP_RISK_HOME": str(tmp_path)})
    assert s.prediction_log is True and s.prediction_retention_days == 400
    assert s.prediction_log_dir is None and s.prediction_log_path == tmp_path / "predictions"
    for word, value in (("on", True), ("OFF", False), ("1", True), ("no", False)):
        assert Settings.from_env({"CHECKUP_RISK_PREDICTION_LOG": word}).prediction_log is value
    with pytest.raises(SettingsError, match="CHECKUP_RISK_PREDICTION_LOG must be on or off"):
        Settings.from_env({"CHECKUP_RISK_PREDICTION_LOG": "sometimes"})
    with pytest.raises(SettingsError, match="CHECKUP_RISK_PREDICTION_RETENTION_DAYS must be between"):
        Settings.from_env({"CHECKUP_RISK_PREDICTION_RETENTION_DAYS": "0"})


def test_a_secret_key_that_could_be_guessed_is_warned_about_without_showing_it():
    from serving.auth import weak_secret_warning

    warning = weak_secret_warning("x y")
    assert warning.startswith("WARNING: CHECKUP_RISK_SECRET_KEY is shorter than 32 characters and contains whitespace")
    assert "x y" not in warning
    assert weak_secret_warning("k" * 32) is None and weak_secret_warning(None) is None
