"""`bentoml build` of the service with its pinned model, for `bentoml containerize`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from serving import store

ROOT = Path(__file__).resolve().parents[1]


def bentofile(tag: str) -> dict:
    return {
        "service": "serving.service:RiskService",
        "name": "checkup-risk",
        "labels": {"model": tag},
        "include": ["features/*.py", "models/*.py", "training/*.py", "serving/*.py", "serving/templates/*.j2",
                    "checkup_risk_cli.py"],
        "python": {"requirements_txt": "./requirements.lock", "lock_packages": False},
        "envs": [
            {"name": "CHECKUP_RISK_MODEL_TAG", "value": tag},
            {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
            {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        ],
        # The PDF report needs Pango and HarfBuzz (WeasyPrint) and a Korean font in the image.
        "docker": {"python_version": "3.11",
                   "system_packages": ["libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-noto-cjk"]},
    }


def build_bento(version: str) -> str:
    """Import the version into the Bento store if needed and build the Bento; returns its tag."""
    from training.registry import home

    root = home()
    tag = store.import_version(version, root)
    store.pin(tag, root)
    os.environ["CHECKUP_RISK_MODEL_TAG"] = tag
    import bentoml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(bentofile(tag), f)
    try:
        bento = bentoml.bentos.build_bentofile(f.name, build_ctx=str(ROOT))
    finally:
        os.unlink(f.name)
    return str(bento.tag)
