"""Training with xgboost.dask on a real LocalCluster gives a model of the same quality."""

import numpy as np
import pytest

from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from training.metrics import auroc

pytestmark = pytest.mark.slow


def test_dask_training_matches_local_quality():
    from dask.distributed import Client, LocalCluster

    train = generate_cohort(people=4000, seed=51)
    test = generate_cohort(people=2000, seed=52)
    settings = dict(outcomes=("hypertension", "dyslipidemia"), grid=DEFAULT_GRID[:1], cv_below_events=0)
    local = RiskModel(**settings).fit(train)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        distributed = RiskModel(**settings).fit(train, client=client)
    assert not hasattr(distributed, "_client")
    p_local, p_dask = local.predict(test), distributed.predict(test)
    for o in settings["outcomes"]:
        y = test[f"{o}_1y"].to_numpy()
        ok = ~np.isnan(y)
        a_local, a_dask = auroc(y[ok], p_local[o].to_numpy()[ok]), auroc(y[ok], p_dask[o].to_numpy()[ok])
        assert abs(a_local - a_dask) < 0.02, (o, a_local, a_dask)
        assert abs(p_dask[o][ok].mean() - y[ok].mean()) < 0.25 * y[ok].mean()
