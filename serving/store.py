"""The BentoML model store under CHECKUP_RISK_HOME, fed from the MLflow registry at a pinned version.

`checkup-risk serve` imports the champion (`models:/checkup-risk/<version>`, never an alias or
`latest` at serve time) as the Bento model `checkup-risk:v<version>` and writes that tag to
`serving.json`; the service reads the tag at start-up, so every worker serves the same version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BENTO_MODEL = "checkup-risk"
BUNDLE_SUBPATH = "mlflow_model/artifacts/bundle"


def bentoml_home(home: Path) -> Path:
    return home / "bentoml"


def use_home(home: Path) -> None:
    """Point BentoML at the home folder's store (before bentoml touches its store)."""
    os.environ["BENTOML_HOME"] = str(bentoml_home(home))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def tag_for(version: str) -> str:
    return f"{BENTO_MODEL}:v{version}"


def import_version(version: str, home: Path) -> str:
    """Import one registered MLflow version into the Bento store (idempotent); returns its tag."""
    use_home(home)
    import bentoml
    import bentoml.mlflow

    from training.registry import MODEL_NAME

    tag = tag_for(version)
    try:
        bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(tag, f"models:/{MODEL_NAME}/{version}",
                                    labels={"mlflow_model": MODEL_NAME, "mlflow_version": str(version)})
    return tag


def pin(tag: str, home: Path) -> None:
    (home / "serving.json").write_text(json.dumps({"model_tag": tag}))


def pinned_tag(home: Path) -> str:
    """CHECKUP_RISK_MODEL_TAG, else the tag `serve` pinned; never a floating reference."""
    tag = os.environ.get("CHECKUP_RISK_MODEL_TAG")
    if tag:
        return tag
    path = home / "serving.json"
    if not path.exists():
        raise LookupError(f"no model pinned in {path}: run `checkup-risk serve` (it imports the champion)")
    return json.loads(path.read_text())["model_tag"]
