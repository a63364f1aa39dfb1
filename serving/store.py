"""The BentoML model store under CHECKUP_RISK_HOME, fed from the MLflow registry at a pinned version.

`checkup-risk serve` imports the champion (`models:/checkup-risk/<version>`, never an alias or
`latest` at serve time) as the Bento model `checkup-risk:v<version>` and writes that tag to
`serving.json`; the service reads the tag at start-up, so every worker starts on the same version.
A running worker then follows the `champion` alias (serving.model_reload): it imports a newly
promoted version here and switches to it; the pinned tag is only where it starts.
The caller has pointed BentoML at the home folder's store (`serving.settings.configure_libraries`)
and MLflow at the registry before it imports.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.registry_names import MODEL_NAME

BENTO_MODEL = "checkup-risk"
BUNDLE_SUBPATH = "mlflow_model/artifacts/bundle"


def tag_for(version: str) -> str:
    return f"{BENTO_MODEL}:v{version}"


def import_version(version: str, source: str | None = None) -> str:
    """Import one registered MLflow version into the Bento store (idempotent); returns its tag.

    `source`: where the version's files are (`MlflowClient.get_model_version_download_uri`); None
    reads `models:/<name>/<version>` through MLflow's configured registry. A running worker passes
    it, since it keeps MLflow's process-wide URIs untouched (serving.model_reload)."""
    import bentoml
    import bentoml.mlflow

    tag = tag_for(version)
    try:
        bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(
            tag,
            source or f"models:/{MODEL_NAME}/{version}",
            labels={"mlflow_model": MODEL_NAME, "mlflow_version": str(version)},
        )
    return tag


def pin(tag: str, home: Path) -> None:
    (home / "serving.json").write_text(json.dumps({"model_tag": tag}))


def pinned_tag(home: Path) -> str:
    """The tag `serve` pinned in the home folder; never a floating reference."""
    path = home / "serving.json"
    if not path.exists():
        raise LookupError(f"no model pinned in {path}: run `checkup-risk serve` (it imports the champion)")
    return json.loads(path.read_text())["model_tag"]
