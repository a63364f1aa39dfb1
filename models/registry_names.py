"""The names under which the MLflow model registry keeps the model.

Training registers each version under `MODEL_NAME` and moves the aliases; serving imports a
version by the same name into the BentoML store. Both read the names here, so serving never needs
`training`.
"""

from __future__ import annotations

MODEL_NAME = "checkup-risk"
# Aliases move between versions; a version number never changes what it names.
CHALLENGER = "challenger"
CHAMPION = "champion"
