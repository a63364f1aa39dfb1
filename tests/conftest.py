"""Shared set-up of the whole suite.

Where tests write: never into the source tree. Every file a test makes lives under pytest's base
temporary directory (one per run, and one per xdist worker): the store (CHECKUP_RISK_HOME) is a
temporary folder for the whole session, so `make test` (which exports the repository's
`.checkup-risk`) never touches the model a person serves. The files a person may want to look at
afterwards (report PDFs, Chromium screenshots) go to the `artifacts` folder: a temporary one, or
the folder named by CHECKUP_RISK_TEST_ARTIFACTS, e.g.
`CHECKUP_RISK_TEST_ARTIFACTS=/tmp/report-shots make test`.

Parallel runs: `make test` runs pytest-xdist workers with `--dist loadfile --no-loadscope-reorder`
(pyproject.toml), and `pytest_xdist_make_scheduler` below widens the file units: the folders whose
conftest trains a session model (tests/service, tests/model) are one unit each, so each model is
fitted once, by one worker. (xdist_group marks would say the same, but `--dist loadgroup` does not
group on pytest 9: pytest-xdist issue #1386.) `pytest_collection_modifyitems` puts the units
measured longest first and the rest of the slow tier next, so the command-line training starts at
once and the short units fill in around the long ones. Each worker gets its share of the cores for
XGBoost's OpenMP threads: two workers on two cores each running two threads fight over them.
"""

import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, PostgresUnavailable, port_for_worker

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
# Hypothesis keeps a cache under ./.hypothesis by default: the repository root. Its examples
# database is off anyway (tests/service/test_fuzz.py derandomizes).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "checkup-risk-hypothesis"))

if (workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT")) and "OMP_NUM_THREADS" not in os.environ:
    # Read when XGBoost / OpenBLAS load, so set before any test module is imported. Inherited by the
    # command-line and server processes the tests start.
    _threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)

FIXTURES = Path(__file__).parent / "fixtures"

# Folders whose conftest trains a session model, minus the modules that do not use it (and train
# their own module model): one xdist unit each. Every other module is a unit of its own.
SHARED_MODEL_FOLDERS = {
    "tests/service/": ("tests/service/test_batch.py",),  # service_home: a model in MLflow and BentoML, the app
    "tests/model/": ("tests/model/test_kernel.py",),  # model: fitted on 6,000 people
}
# The units measured longest, longest first (seconds on two cores shared with other work, 2026-11):
# the command line's real training (200), training on real-shaped files (110), the notebooks (110),
# a real server and Bento build (90). Then come the other units holding a slow test.
LONGEST_FIRST = (
    "tests/integration/test_cli.py",
    "tests/integration/test_train_real_shaped.py",
    "tests/integration/test_notebooks.py",
    "tests/integration/test_server.py",
)


def unit_of(nodeid: str) -> str:
    """The xdist work unit of a test: its module, or the shared-model folder holding it."""
    module = nodeid.split("::", 1)[0]
    for folder, own_models in SHARED_MODEL_FOLDERS.items():
        if module.startswith(folder) and module not in own_models:
            return folder
    return module


@pytest.hookimpl(tryfirst=True)  # before xdist's own choice
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedModelScheduling(LoadScopeScheduling):
        """`--dist loadfile`, with the shared-model folders as one unit each (see unit_of)."""

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return SharedModelScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Order the units for xdist, which hands them out in the order of their first test: the longest
    first, then those holding a slow test, then the rest. Within a module, its slow tests first, so
    that a worker takes its next unit once the long test is done, not while it runs. Units and
    modules stay together, so a module fixture is built once in a serial run too."""
    first: dict[str, int] = {}
    slow_units: set[str] = set()
    for i, item in enumerate(items):
        unit = unit_of(item.nodeid)
        first.setdefault(unit, i)
        first.setdefault(item.nodeid.split("::", 1)[0], i)
        if item.get_closest_marker("slow"):
            slow_units.add(unit)

    def key(pair):
        i, item = pair
        unit, module = unit_of(item.nodeid), item.nodeid.split("::", 1)[0]
        if unit in LONGEST_FIRST:
            rank = LONGEST_FIRST.index(unit)
        else:
            rank = len(LONGEST_FIRST) + (unit not in slow_units)
        return rank, first[unit], first[module], item.get_closest_marker("slow") is None, i

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


@pytest.fixture(scope="session", autouse=True)
def _temporary_home(tmp_path_factory):
    """The store of a session that asks for none: a temporary folder, never the repository's."""
    os.environ["CHECKUP_RISK_HOME"] = str(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where tests keep files for a person to look at (see the module docstring)."""
    kept = os.environ.get("CHECKUP_RISK_TEST_ARTIFACTS")
    if not kept:
        return tmp_path_factory.mktemp("artifacts")
    path = Path(kept).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (tests/postgres.py), started on first use: one per xdist worker,
    on port 54000 + the worker's number, reached through a Unix socket in its own /tmp folder. Stopped
    and removed when the session ends. Missing binaries fail the test: CI installs them (`make sysdeps`)."""
    missing = None
    try:
        server = PostgresServer(port=port_for_worker(os.environ.get("PYTEST_XDIST_WORKER", "master")))
        server.start()
    except PostgresUnavailable as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(f"no PostgreSQL for the tests: {missing}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, as a libpq URL:
    `postgresql://postgres@/DBNAME?host=SOCKDIR&port=PORT` (SQLAlchemy: `postgresql+psycopg://...`).
    Dropped afterwards, open connections and all."""
    url = postgres_server.create_database(request.node.name)
    yield url
    try:
        postgres_server.drop_database(url)
    except Exception as exc:  # the whole cluster goes at the end of the session anyway
        warnings.warn(f"could not drop the test database {url}: {exc}", stacklevel=1)
