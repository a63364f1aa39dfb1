"""A measurement that was not taken is not a risk factor (M5): its SHAP contribution is the model's
adjustment for the missing value. The grouped (clinician) view folds it into "other", keeping
base + listed + other exact; batch --explain keeps it but names it as missing."""

from types import SimpleNamespace

import numpy as np
import pytest

from features.derive import FEATURES, LONGITUDINAL_FEATURES, absent_history, unmeasured
from features.labels import FEATURE_GROUPS, GROUPS
from serving.batch_block import MISSING_MARK, top_factors
from serving.scoring import grouped_contributions

IDX = {f: i for i, f in enumerate(FEATURES)}


def _row(seed: int = 0):
    rng = np.random.default_rng(seed)
    row = rng.normal(0, 0.3, len(FEATURES))
    x = rng.uniform(1, 200, len(FEATURES))
    history = [IDX[f] for f in LONGITUDINAL_FEATURES]
    x[history] = np.nan
    return row, float(rng.normal(-3, 1)), x


def test_unmeasured_is_missing_values_but_not_absent_history():
    _, _, x = _row()
    x[IDX["fasting_glucose"]] = np.nan
    mask = unmeasured(x[None, :])[0]
    assert mask[IDX["fasting_glucose"]]
    assert not mask[[IDX[f] for f in LONGITUDINAL_FEATURES]].any()
    assert not (mask & absent_history(x[None, :])[0]).any()
    assert mask.sum() == 1


@pytest.mark.parametrize("seed", range(10))
def test_a_group_not_measured_is_folded_into_other_exactly(seed):
    row, base, x = _row(seed)
    gone = GROUPS["liver"].features + GROUPS["glucose"].features
    x[[IDX[f] for f in gone]] = np.nan
    row[IDX["alt"]] = 5.0  # the largest contribution of all: the model's adjustment for no ALT
    hidden = absent_history(x[None, :])[0]
    listed, base_out, other = grouped_contributions(row, base, x, hidden, len(FEATURE_GROUPS))
    ids = {c["feature"] for c in listed}
    assert "liver" not in ids and "glucose" not in ids
    assert base_out + sum(c["log_odds"] for c in listed) + other == pytest.approx(base + row.sum(), abs=1e-12)
    # Every group listed: the rest is exactly absent history plus the unmeasured features.
    rest = row[hidden].sum() + row[[IDX[f] for f in gone if not hidden[IDX[f]]]].sum()
    assert other == pytest.approx(rest, abs=1e-12)


def test_a_partly_measured_group_lists_only_what_was_measured():
    row, base, x = _row(3)
    x[IDX["alt"]] = np.nan
    x[IDX["ast_to_alt"]] = np.nan  # needs ALT
    hidden = absent_history(x[None, :])[0]
    listed, _, _ = grouped_contributions(row, base, x, hidden, len(FEATURE_GROUPS))
    liver = next(c for c in listed if c["feature"] == "liver")
    assert set(liver["features"]) == {"ast", "ggt", "fatty_liver_index"}
    assert liver["log_odds"] == pytest.approx(row[[IDX["ast"], IDX["ggt"], IDX["fatty_liver_index"]]].sum())


def test_batch_explain_marks_missing_factors():
    n = 3
    X = np.random.default_rng(1).uniform(1, 200, (n, len(FEATURES)))
    X[:, [IDX[f] for f in LONGITUDINAL_FEATURES]] = np.nan
    X[0, IDX["fasting_glucose"]] = np.nan
    contrib = np.full((n, len(FEATURES)), 0.01)
    contrib[:, IDX["fasting_glucose"]] = 0.56  # the largest, in every row
    contrib[:, IDX["sbp"]] = -0.3

    class Model:
        def score(self, Xm, explain=False, outcomes=()):
            return SimpleNamespace(contributions={o: contrib[: len(Xm)] for o in outcomes})

    names, values = top_factors(Model(), X, {"diabetes": np.ones(n, dtype=bool)}, 2)["diabetes"]
    assert list(names[:, 0]) == [f"fasting_glucose{MISSING_MARK}", "fasting_glucose", "fasting_glucose"]
    assert list(names[:, 1]) == ["sbp"] * n
    np.testing.assert_allclose(values[:, 0], 0.56)  # kept, with its number
