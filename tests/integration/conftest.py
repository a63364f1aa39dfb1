"""One small model for the real-server tests: trained and registered once per test process (xdist
worker), then copied into each module's own home, so that every module starts from the same
registered champion without paying for training again."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Version 1 of the registry is the champion. The cohort is the smallest that gives every outcome
# enough events for a calibrated model.
TRAIN = (
    "import sys\n"
    "import mlflow\n"
    "from pathlib import Path\n"
    "from features.synth import generate_cohort\n"
    "from models.bundle import DEFAULT_GRID, RiskModel\n"
    "from training import registry\n"
    "from training.train import example_frame\n"
    "registry.configure(Path(sys.argv[1]))\n"
    "m = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=2000, seed=43))\n"
    "with mlflow.start_run(experiment_id=registry.experiment('server-tests')):\n"
    "    _, v = registry.log_bundle(m, example_frame())\n"
    "registry.set_alias('champion', v)\n"
)


@pytest.fixture(scope="session")
def model_template(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("model-template")
    # A subprocess: MLflow's tracking URI is process-wide, and the service tests point it elsewhere.
    subprocess.run([sys.executable, "-c", TRAIN, str(home)], check=True, timeout=600)
    return home


def model_home(template: Path, where: Path) -> Path:
    """A home of its own with the template's registry (whose artifacts stay in the template)."""
    shutil.copytree(template, where)
    return where
