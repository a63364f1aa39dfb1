"""The MLflow tracking store and model registry under CHECKUP_RISK_HOME.

SQLite backend (`mlflow.db`) and a local artifact root (`mlartifacts/`), both inside the home
folder, so the store moves with it. The registered model `checkup-risk` holds one version per
training run; aliases `challenger` and `champion` move, versions never change.

An entry point (the command line, a notebook, a test) calls `configure(home)` once; MLflow's
tracking URI is process-wide, so the home it points into is kept beside it and later calls here
(and `train`, which calls `configure()`) use the same store.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.schema import FIELDS
from models.registry_names import CHALLENGER, CHAMPION, MODEL_NAME, tracking_uri

if TYPE_CHECKING:
    import pandas as pd

    from models.bundle import RiskModel

# The registry's names are used through this module by training and the command line.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "bundle_path",
    "client",
    "configure",
    "experiment",
    "home",
    "load",
    "log_bundle",
    "set_alias",
    "version_of",
]

_home: Path | None = None
_uri: str | None = None


def home() -> Path:
    """The home folder `configure` pointed MLflow at."""
    if _home is None:
        raise LookupError(
            "the model registry has no home folder yet: call training.registry.configure(home) "
            "first (the command line does, with CHECKUP_RISK_HOME)"
        )
    return _home


def configure(root: Path | None = None, uri: str | None = None) -> str:
    """Point MLflow at the registry: `uri` (CHECKUP_RISK_MLFLOW_URI, shared by every instance) or the
    SQLite store in `root`. With no arguments: the home and registry configured before. Returns the
    tracking URI."""
    global _home, _uri
    if root is None:
        root, uri = home(), _uri
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    import mlflow

    uri = tracking_uri(root, uri)
    _uri = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _home = root
    return uri


def experiment(name: str, root: Path | None = None) -> str:
    """Experiment id, created with its artifacts inside the home folder."""
    import mlflow

    root = root or home()
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    if _uri is not None and _uri.startswith(("http://", "https://")):
        # An MLflow server keeps the artifacts where it was told to (--artifacts-destination).
        return mlflow.create_experiment(name)
    location = (root / "mlartifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def _requirements() -> list[str]:
    names = ["xgboost-cpu", "pandas", "numpy", "scikit-learn", "pyarrow", "checkup-risk"]
    out = []
    for n in names:
        try:
            out.append(f"{n}=={metadata.version(n)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def input_schema() -> Any:
    """The pyfunc's input: every record field by name, only `person_id` and `sex` required (a file
    may leave the optional columns out), and of any type, since a file's integer column (an age of
    50, an SBP of 120) is a valid number that MLflow's strict `double` refuses to convert; the
    model's own reader checks the values."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return Schema([ColSpec(AnyType(), f.name, required=f.required) for f in FIELDS])


def log_bundle(model: RiskModel, input_example: pd.DataFrame, description: str = "") -> tuple[str, str]:
    """Log the bundle in the active run and register it; returns (model URI, version)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature, infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = model.save(Path(tmp) / "bundle")
        signature = ModelSignature(input_schema(), infer_signature(input_example, model.predict(input_example)).outputs)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"bundle": str(bundle_dir)},
            signature=signature,
            input_example=input_example,
            pip_requirements=_requirements(),
            registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    if description:
        client().update_model_version(MODEL_NAME, version, description=description)
    return info.model_uri, version


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def version_of(ref: str) -> str | None:
    """Resolve an alias (`champion`, `challenger`) or a version number; None if absent."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        if ref.isdigit():
            return str(c.get_model_version(MODEL_NAME, ref).version)
        return str(c.get_model_version_by_alias(MODEL_NAME, ref).version)
    except MlflowException:
        return None


def registered() -> str:
    """The versions and aliases the registry holds, in words ("versions 1-4 (champion 1, challenger
    4)"); empty when it holds none."""
    from mlflow.exceptions import MlflowException

    try:
        versions = sorted(int(v.version) for v in client().search_model_versions(f"name='{MODEL_NAME}'"))
        aliases = client().get_registered_model(MODEL_NAME).aliases
    except MlflowException:
        return ""
    if not versions:
        return ""
    listed = f"version {versions[0]}" if len(versions) == 1 else f"versions {', '.join(map(str, versions))}"
    if len(versions) > 3 and versions == list(range(versions[0], versions[-1] + 1)):
        listed = f"versions {versions[0]}-{versions[-1]}"
    named = ", ".join(f"{a} {v}" for a, v in sorted(aliases.items()))
    return f"{listed} ({named})" if named else listed


def outcomes_of(version: str) -> tuple[str, ...] | None:
    """The outcomes a registered version predicts, from its training run's `outcomes` parameter
    (None when the run does not say)."""
    run_id = client().get_model_version(MODEL_NAME, version).run_id
    if not run_id:
        return None
    text = client().get_run(run_id).data.params.get("outcomes")
    return tuple(text.split(",")) if text else None


def set_alias(alias: str, version: str) -> None:
    client().set_registered_model_alias(MODEL_NAME, alias, version)


def bundle_path(version: str, dst: Path) -> Path:
    """Download a version's bundle folder (XGBoost native files + manifest) to dst."""
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=str(dst))
    return Path(local) / "artifacts" / "bundle"


def load(ref: str = CHAMPION) -> tuple[RiskModel, str]:
    """The bundle behind an alias or version, and its version number."""
    from models.bundle import RiskModel

    version = version_of(ref)
    if version is None:
        other = version_of(CHALLENGER) if ref == CHAMPION else None
        held = registered()
        remedy = (
            f"version {other} is the challenger: name it (--model {CHALLENGER}), make it champion "
            f"(`checkup-risk promote {other}`, after reading why the gate did not), or train with --promote"
            if other is not None
            else f"it holds {held}: name one of those"
            if held
            else "run `checkup-risk train` first"
        )
        raise LookupError(f"no model version {ref!r} in the registry at {home()}: {remedy}")
    with tempfile.TemporaryDirectory() as tmp:
        return RiskModel.load(bundle_path(version, Path(tmp))), version
