import pandas as pd
import pytest

from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel


@pytest.fixture(scope="session")
def cohort() -> pd.DataFrame:
    return generate_cohort(people=6000, seed=11)


@pytest.fixture(scope="session")
def held_out() -> pd.DataFrame:
    return generate_cohort(people=1500, seed=12)


@pytest.fixture(scope="session")
def model(cohort) -> RiskModel:
    # One regularisation setting keeps the tier fast; selection among settings is tested separately.
    return RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0, random_state=0).fit(cohort)
