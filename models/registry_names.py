"""The names under which the MLflow model registry keeps the model, and the addresses of the stores
that training and serving share (the registry, a database URL's driver).

Training registers each version under `MODEL_NAME` and moves the aliases; serving imports a
version by the same name into the BentoML store. Both read the names here, so serving never needs
`training`.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "checkup-risk"
# Aliases move between versions; a version number never changes what it names.
CHALLENGER = "challenger"
CHAMPION = "champion"


def tracking_uri(home: Path, configured: str | None = None) -> str:
    """The MLflow tracking and registry URI: `configured` (CHECKUP_RISK_MLFLOW_URI: an MLflow
    server's http(s) URL or a database URL shared by every instance), else the SQLite store under
    `home`. Training writes it and serving polls it for the champion, so both read it here."""
    if not configured:
        return f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"
    return sqlalchemy_url(configured)


def sqlalchemy_url(url: str) -> str:
    """A database URL as SQLAlchemy must be given it: a libpq `postgresql://` URL names the driver
    installed (psycopg 3; SQLAlchemy would read the plain scheme as psycopg2, which is not)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_local(uri: str) -> bool:
    """Whether the registry is the SQLite file under a home (not shared with other machines)."""
    return uri.startswith("sqlite:")
