"""Every `CHECKUP_RISK_*` setting, read from the environment once, at an entry point.

`Settings.from_env(os.environ)` is called by the command line (`checkup_risk_cli.main`) and by the
service when BentoML starts it (`serving.service`); every other module is handed the values it
needs. A bad value stops start-up with a message naming the variable: a site that set it meant
something, and falling back to the default would hide that. docs/configuration.md lists them all.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from features.fhir import DEFAULT_TIME_ZONE, VISIT_DAYS
from serving.store import BENTO_MODEL

DEFAULT_HOME = Path(".checkup-risk")
# Two years: by then the one-year risk window after the exam has passed, with a year's grace for
# the usual delay between a checkup and the visit where it is discussed.
DEFAULT_STALE_AFTER_DAYS = 730
# The largest request body the service reads: far above a person's FHIR history, far below a flood.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
ALLOW_SYNTHETIC_ENV = "CHECKUP_RISK_ALLOW_SYNTHETIC"
# Host headers a CDS client's `aud` may name when no public URL is set (a port-less entry: any port);
# the address a connection actually reached (host:port) is accepted as well.
DEFAULT_ACCEPTED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A CDS card's report link opens for this long by default; the ceiling is an hour.
DEFAULT_LINK_S = 900
MAX_LINK_S = 3600
# Per client and worker process: far above what a clinic's HIS sends, low enough to stop a loop.
DEFAULT_RATE_LIMIT = 3000
DEFAULT_MODEL_POLL_S = 30
# Idle and slow HTTP clients (serving.http_limits): uvicorn's keep-alive, and a whole request's
# read, which an 8 MiB body over a 3 Mbit/s link still fits.
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_READ_TIMEOUT_S = 30
# Outcomes arrive about a year after a prediction: the log must outlive that year, with a margin
# for late registry data (serving.prediction_logger).
DEFAULT_PREDICTION_RETENTION_DAYS = 400
MAX_PREDICTION_RETENTION_DAYS = 3650
_ON = ("on", "1", "true", "yes")
_OFF = ("off", "0", "false", "no")
_TRUE = ("1", "true", "yes")
_FALSE = ("", "0", "false", "no")


class SettingsError(ValueError):
    """A setting whose value cannot be used; the message names the variable."""


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class Settings:
    """The deployment's configuration. Each field's `env` metadata names its variable."""

    # All state: the MLflow store, the BentoML store, the API token, the CDS routes' SQLite files.
    home: Path = field(metadata=_env("CHECKUP_RISK_HOME"))
    # Service worker processes; each loads the model once.
    workers: int = field(default=2, metadata=_env("CHECKUP_RISK_WORKERS"))
    # Request bodies larger than this get 413 before any of them is parsed.
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata=_env("CHECKUP_RISK_MAX_BODY_BYTES"))
    # A checkup older than this is stale: its one-year window has passed.
    stale_after_days: int = field(default=DEFAULT_STALE_AFTER_DAYS, metadata=_env("CHECKUP_RISK_STALE_AFTER_DAYS"))
    # FHIR Observations less than this many days after a visit's first day belong to that visit.
    fhir_visit_days: int = field(default=VISIT_DAYS, metadata=_env("CHECKUP_RISK_FHIR_VISIT_DAYS"))
    # The IANA time zone whose calendar days date FHIR checkups (a time sent as 22:40Z is 07:40 in Seoul).
    time_zone: str = field(default=DEFAULT_TIME_ZONE, metadata=_env("CHECKUP_RISK_TIME_ZONE"))
    # CDS gives cards from a model of synthetic people only when the site asks for it (demos).
    allow_synthetic: bool = field(default=False, metadata=_env(ALLOW_SYNTHETIC_ENV))
    # Browser origins allowed to call; bearer headers, never cookies, so "*" exposes nothing.
    cors_origins: tuple[str, ...] = field(default=("*",), metadata=_env("CHECKUP_RISK_CORS_ORIGINS"))
    # BentoML's OpenTelemetry span per request; off because no exporter is configured.
    tracing: bool = field(default=False, metadata=_env("CHECKUP_RISK_TRACING"))
    # The bearer token; None: the one kept under the home (created on first run). Never in repr.
    api_token: str | None = field(default=None, repr=False, metadata=_env("CHECKUP_RISK_API_TOKEN"))
    # The JSON allowlist of CDS clients; None: no client is trusted.
    cds_clients: Path | None = field(default=None, metadata=_env("CHECKUP_RISK_CDS_CLIENTS"))
    # The external base URL (no trailing slash): the `aud` CDS clients sign for, and report links.
    public_url: str | None = field(default=None, metadata=_env("CHECKUP_RISK_PUBLIC_URL"))
    # Without a public URL: the Host headers a CDS call's `aud` (and its report links) may be built
    # on; any other is refused, so a Host header alone never chooses the audience.
    accepted_hosts: tuple[str, ...] = field(
        default=DEFAULT_ACCEPTED_HOSTS, metadata=_env("CHECKUP_RISK_ACCEPTED_HOSTS")
    )
    # The shared state (replay cache, report links, keys, audit trail): a libpq URL selects
    # PostgreSQL; None: SQLite under the home. Never in repr: the URL may carry a password.
    database_url: str | None = field(default=None, repr=False, metadata=_env("CHECKUP_RISK_DATABASE_URL"))
    # Signs report links and keys pseudonyms; None: the one kept under the home. Never in repr.
    secret_key: str | None = field(default=None, repr=False, metadata=_env("CHECKUP_RISK_SECRET_KEY"))
    # How long a CDS card's report link opens (at most an hour).
    report_link_seconds: int = field(default=DEFAULT_LINK_S, metadata=_env("CHECKUP_RISK_REPORT_LINK_SECONDS"))
    # Requests per minute one named API key may make to one worker process; more get 429.
    rate_limit_per_minute: int = field(default=DEFAULT_RATE_LIMIT, metadata=_env("CHECKUP_RISK_RATE_LIMIT"))
    # How often a worker asks the registry for the champion and switches to a newly promoted one
    # (0: never; the served version then changes only with a restart).
    model_poll_seconds: int = field(default=DEFAULT_MODEL_POLL_S, metadata=_env("CHECKUP_RISK_MODEL_POLL_SECONDS"))
    # The MLflow tracking and registry store: an MLflow server's URL or a database URL, shared by
    # every instance; None: the SQLite store under the home. Never in repr (it may hold a password).
    mlflow_uri: str | None = field(default=None, repr=False, metadata=_env("CHECKUP_RISK_MLFLOW_URI"))
    # The Bento model the service loads; None: the tag `checkup-risk serve` pinned under the home.
    model_tag: str | None = field(default=None, metadata=_env("CHECKUP_RISK_MODEL_TAG"))
    # An idle connection (new, or between requests) is closed after this many seconds.
    keep_alive_seconds: int = field(default=DEFAULT_KEEP_ALIVE_S, metadata=_env("CHECKUP_RISK_KEEP_ALIVE_SECONDS"))
    # A request's headers and body must all arrive within this many seconds of its first byte.
    read_timeout_seconds: int = field(
        default=DEFAULT_READ_TIMEOUT_S, metadata=_env("CHECKUP_RISK_READ_TIMEOUT_SECONDS")
    )
    # Every scored checkup is logged (pseudonymised) for `checkup-risk monitor`; off: only the
    # /metrics signals remain.
    prediction_log: bool = field(default=True, metadata=_env("CHECKUP_RISK_PREDICTION_LOG"))
    # The Parquet log's folder; None: HOME/predictions. Ignored when the shared state is PostgreSQL
    # (the log is then its table `prediction_log`).
    prediction_log_dir: Path | None = field(default=None, metadata=_env("CHECKUP_RISK_PREDICTION_LOG_DIR"))
    # Days of the log kept; older days are deleted (at most once a day per process).
    prediction_retention_days: int = field(
        default=DEFAULT_PREDICTION_RETENTION_DAYS, metadata=_env("CHECKUP_RISK_PREDICTION_RETENTION_DAYS")
    )

    @property
    def bentoml_home(self) -> Path:
        """BentoML's model store, inside the home folder."""
        return self.home / "bentoml"

    @property
    def prediction_log_path(self) -> Path:
        """The Parquet prediction log's folder: the configured one, else HOME/predictions."""
        return self.prediction_log_dir or self.home / "predictions"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings from an environment mapping (`os.environ` at an entry point); unset or
        empty variables take their defaults."""
        home = _text(environ, "CHECKUP_RISK_HOME")
        clients = _text(environ, "CHECKUP_RISK_CDS_CLIENTS")
        log_dir = _text(environ, "CHECKUP_RISK_PREDICTION_LOG_DIR")
        return cls(
            home=Path(home or DEFAULT_HOME).resolve(),
            workers=_positive_int(environ, "CHECKUP_RISK_WORKERS", 2),
            max_body_bytes=_positive_int(environ, "CHECKUP_RISK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            stale_after_days=_positive_int(environ, "CHECKUP_RISK_STALE_AFTER_DAYS", DEFAULT_STALE_AFTER_DAYS),
            fhir_visit_days=_positive_int(environ, "CHECKUP_RISK_FHIR_VISIT_DAYS", VISIT_DAYS),
            time_zone=_time_zone(environ, "CHECKUP_RISK_TIME_ZONE"),
            allow_synthetic=_flag(environ, ALLOW_SYNTHETIC_ENV),
            cors_origins=_origins(environ, "CHECKUP_RISK_CORS_ORIGINS"),
            tracing=_flag(environ, "CHECKUP_RISK_TRACING"),
            api_token=_text(environ, "CHECKUP_RISK_API_TOKEN"),
            # Absolute, so that a child process started elsewhere reads the same file.
            cds_clients=Path(clients).resolve() if clients else None,
            public_url=_url(environ, "CHECKUP_RISK_PUBLIC_URL"),
            accepted_hosts=_hosts(environ, "CHECKUP_RISK_ACCEPTED_HOSTS"),
            database_url=_database_url(environ, "CHECKUP_RISK_DATABASE_URL"),
            mlflow_uri=_mlflow_uri(environ, "CHECKUP_RISK_MLFLOW_URI"),
            secret_key=_text(environ, "CHECKUP_RISK_SECRET_KEY"),
            report_link_seconds=_bounded_int(
                environ, "CHECKUP_RISK_REPORT_LINK_SECONDS", DEFAULT_LINK_S, 1, MAX_LINK_S
            ),
            rate_limit_per_minute=_positive_int(environ, "CHECKUP_RISK_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            model_poll_seconds=_bounded_int(environ, "CHECKUP_RISK_MODEL_POLL_SECONDS", DEFAULT_MODEL_POLL_S, 0, 86400),
            model_tag=_model_tag(environ, "CHECKUP_RISK_MODEL_TAG"),
            keep_alive_seconds=_bounded_int(environ, "CHECKUP_RISK_KEEP_ALIVE_SECONDS", DEFAULT_KEEP_ALIVE_S, 1, 300),
            read_timeout_seconds=_bounded_int(
                environ, "CHECKUP_RISK_READ_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT_S, 1, 600
            ),
            prediction_log=_switch(environ, "CHECKUP_RISK_PREDICTION_LOG", default=True),
            # Absolute, so that the service's workers and the command line write the same folder.
            prediction_log_dir=Path(log_dir).resolve() if log_dir else None,
            prediction_retention_days=_bounded_int(
                environ,
                "CHECKUP_RISK_PREDICTION_RETENTION_DAYS",
                DEFAULT_PREDICTION_RETENTION_DAYS,
                1,
                MAX_PREDICTION_RETENTION_DAYS,
            ),
        )

    def to_env(self) -> dict[str, str]:
        """The variables that give a child process (`bentoml serve`) these settings:
        `Settings.from_env(s.to_env()) == s`. Unset optional settings are left out."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                out[f.metadata["env"]] = "1" if value else "0"
            elif isinstance(value, tuple):
                out[f.metadata["env"]] = ",".join(value)
            else:
                out[f.metadata["env"]] = str(value)
        return out


def configure_libraries(settings: Settings, environ: MutableMapping[str, str] = os.environ) -> None:
    """Point BentoML at the home folder's store and keep BentoML and MLflow offline.

    These libraries take this configuration only from the environment (BentoML reads BENTOML_HOME
    when it first opens its store), so the command line writes it here, before either starts, and
    nothing else in the project writes to the environment. Telemetry opt-outs are defaults: an
    operator's own value wins. The service sets nothing: `checkup-risk serve`, the Makefile or the
    container image started it with these already set. Great Expectations 1.x sends no analytics.
    """
    environ["BENTOML_HOME"] = str(settings.bentoml_home)
    environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow would draw its own progress bar for every artifact download, between ours.
    environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Its INFO lines ("Validating input example ...") would interleave with the commands' own words.
    environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _text(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    return _bounded_int(environ, name, default, 1, None)


def _bounded_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = _text(environ, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if high is None and value < low:
        raise SettingsError(f"{name} must be at least {low}, not {value}")
    if high is not None and not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg")


def _database_url(environ: Mapping[str, str], name: str) -> str | None:
    example = "a PostgreSQL URL such as postgresql://user@host:5432/db or postgresql://user@/db?host=/socket/dir"
    return _url_of_scheme(environ, name, _POSTGRES, example)


def _mlflow_uri(environ: Mapping[str, str], name: str) -> str | None:
    example = "an MLflow server URL (https://mlflow.internal) or a database URL (postgresql://user@host/mlflow)"
    return _url_of_scheme(environ, name, ("http", "https", "sqlite", *_POSTGRES), example)


def _url_of_scheme(environ: Mapping[str, str], name: str, schemes: tuple[str, ...], example: str) -> str | None:
    raw = _text(environ, name)
    if raw is None:
        return None
    scheme = urlsplit(raw).scheme
    if scheme not in schemes:
        # Never the value itself: it may hold a password.
        raise SettingsError(f"{name} must be {example}; scheme {scheme or 'missing'!r} is not")
    return raw


def _time_zone(environ: Mapping[str, str], name: str) -> str:
    raw = _text(environ, name)
    if raw is None:
        return DEFAULT_TIME_ZONE
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name} must be an IANA time zone such as Asia/Seoul, not {raw!r}") from None
    return raw


def _flag(environ: Mapping[str, str], name: str) -> bool:
    # Anything but the listed spellings is an error: guessing "on" for a typo could, for
    # ALLOW_SYNTHETIC, put made-up numbers in front of clinicians.
    raw = (environ.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be 1 or 0, not {raw!r}")


def _switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """on/off (or 1/0, true/false, yes/no); unset or empty: `default`. Anything else is an error."""
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise SettingsError(f"{name} must be on or off, not {raw!r}")


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(environ, name)
    if raw is None:
        return ("*",)
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    for o in origins:
        if o != "*" and not _is_http_url(o):
            raise SettingsError(
                f"{name} must be * or comma-separated origins such as https://his.example.org, not {o!r}"
            )
    return origins


def _hosts(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(environ, name)
    if raw is None:
        return DEFAULT_ACCEPTED_HOSTS
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if not hosts:  # ",,": an empty allowlist would refuse every request
        raise SettingsError(f"{name} names no host: name hosts such as risk.internal:3000, or unset it for the default")
    for h in hosts:
        if urlsplit(f"http://{h}").netloc != h or "@" in h or "/" in h:
            raise SettingsError(f"{name} must be comma-separated hosts such as risk.internal:3000, not {h!r}")
    return hosts


def _model_tag(environ: Mapping[str, str], name: str) -> str | None:
    """A pinned Bento tag, `checkup-risk:v<version>`: never `latest` or another floating reference,
    which would let workers of one service start on different versions."""
    raw = _text(environ, name)
    if raw is None:
        return None
    if not re.fullmatch(rf"{re.escape(BENTO_MODEL)}:v[1-9][0-9]*", raw):
        raise SettingsError(f"{name} must be a pinned tag such as {BENTO_MODEL}:v3, not {raw!r}")
    return raw


def _url(environ: Mapping[str, str], name: str) -> str | None:
    raw = _text(environ, name)
    if raw is None:
        return None
    if not _is_http_url(raw):
        raise SettingsError(f"{name} must be an http:// or https:// URL such as https://risk.example.org, not {raw!r}")
    return raw.rstrip("/")


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
