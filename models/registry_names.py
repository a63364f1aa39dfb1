"""The names under which the MLflow model registry keeps the model.

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


def tracking_uri(home: Path) -> str:
    """The MLflow tracking and registry URI of the store under `home`: training writes it, serving
    polls it for the champion, so both must name the same database."""
    return f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"
