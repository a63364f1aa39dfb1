"""`bentoml build` of the service with its pinned model, for `bentoml containerize`."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import yaml

from serving import store
from serving.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def system_packages(kind: str = "runtime") -> list[str]:
    """Debian packages of one kind from system-packages.txt, the list the Makefile installs too."""
    names = []
    for line in (ROOT / "system-packages.txt").read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[1] == kind:
            names.append(words[0])
    return names


def bentofile(tag: str) -> dict:
    return {
        "service": "serving.service:RiskService",
        "name": "checkup-risk",
        "labels": {"model": tag},
        "include": [
            "features/*.py",
            "models/*.py",
            "training/*.py",
            "serving/*.py",
            # The shared state's schema is made by these at start-up.
            "serving/migrations/*.py",
            "serving/migrations/versions/*.py",
            "serving/templates/*.j2",
            "checkup_risk_cli.py",
        ],
        "python": {"requirements_txt": "./requirements.lock", "lock_packages": False},
        "envs": [
            {"name": "CHECKUP_RISK_MODEL_TAG", "value": tag},
            {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
            {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        ],
        # The PDF report needs Pango and HarfBuzz (WeasyPrint) and a Korean font in the image.
        "docker": {"python_version": "3.11", "system_packages": system_packages("runtime")},
    }


def build_bento(version: str, settings: Settings) -> str:
    """Import the version into the Bento store if needed and build the Bento; returns its tag.

    The caller has configured BentoML (`configure_libraries`) and MLflow (the registry) for
    `settings.home`."""
    import bentoml

    from serving import service

    tag = store.import_version(version)
    store.pin(tag, settings.home)
    # `bentoml build` imports serving.service:RiskService in this process: install the service of
    # this exact version first, whatever CHECKUP_RISK_MODEL_TAG says.
    service.install(dataclasses.replace(settings, model_tag=tag))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(bentofile(tag), f)
    try:
        bento = bentoml.bentos.build_bentofile(f.name, build_ctx=str(ROOT))
    finally:
        os.unlink(f.name)
    return str(bento.tag)
