"""The compiled kernel against the reference paths: XGBoost's own margins and pred_contribs (the
"booster" backend of `RiskModel.score`), and shap.TreeExplainer on a toy booster."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.derive import FEATURES, build_features
from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from models.kernel import CompiledBoosters


@pytest.fixture(scope="module")
def fitted() -> tuple[RiskModel, pd.DataFrame]:
    # Small and quick: one setting, a high learning rate, few rounds, 2-fold CV. Most of the time
    # goes into the logistic partners, not the boosters.
    cohort = generate_cohort(people=2000, seed=21)
    model = RiskModel(
        grid=(DEFAULT_GRID[0],), learning_rate=0.2, max_rounds=80, early_stopping_rounds=10, cv_folds=2, random_state=0
    ).fit(cohort)
    X = build_features(generate_cohort(people=300, seed=22))
    return model, X


def _variant(model: RiskModel, weight: float) -> RiskModel:
    """The same boosters and partners with every outcome's blend weight forced."""
    v = copy.copy(model)
    v.models_ = {o: dataclasses.replace(m, weight=weight) for o, m in model.models_.items()}
    return v


@pytest.fixture(scope="module", params=[1.0, 0.5], ids=["boosted", "blended"])
def pair(request, fitted) -> tuple[RiskModel, pd.DataFrame]:
    model, X = fitted
    return _variant(model, request.param), X


def _logit(p):
    return np.log(p / (1 - p))


def _dmatrix(model: RiskModel, X: pd.DataFrame) -> xgb.DMatrix:
    return xgb.DMatrix(X.to_numpy(dtype=np.float32), feature_names=list(model.feature_names_))


def _compiled_margins(model: RiskModel, X) -> dict[str, np.ndarray]:
    engine = model.engine("compiled")
    margin = engine.trees.evaluate(model._matrix(X), np.arange(len(engine.outcomes)))[0]
    return {o: margin[:, i] for i, o in enumerate(engine.outcomes)}


def test_auto_is_the_compiled_kernel_and_a_copy_with_other_models_rebuilds(pair):
    model, _ = pair
    assert model.engine().backend == "compiled" and model.engine() is model.engine("compiled")
    assert model.engine("booster").backend == "booster"
    assert all(model.engine().models[o].weight == m.weight for o, m in model.models_.items())


def test_margins_equal_the_boosters_bit_for_bit(pair):
    model, X = pair
    got = _compiled_margins(model, X.to_numpy())
    dm = _dmatrix(model, X)
    for o, m in model.models_.items():
        want = m.booster.predict(dm, output_margin=True)
        assert got[o].dtype == np.float32
        np.testing.assert_array_equal(got[o], want)


def test_probabilities_match_the_booster_backend(pair):
    model, X = pair
    want = model.score(X, backend="booster").probability
    got = model.score(X.to_numpy(), backend="compiled").probability
    for o in model.models_:
        np.testing.assert_allclose(got[o], want[o], rtol=1e-12, atol=0)


def test_contributions_match_the_booster_backend(pair):
    model, X = pair
    ref = model.score(X, explain=True, backend="booster")
    for o in model.models_:
        c_ref, b_ref = ref.contributions[o], ref.base[o]
        c, b = model.explain_features(X.to_numpy(), o)
        assert c.shape == c_ref.shape == (len(X), len(FEATURES))
        # XGBoost runs TreeSHAP in float32, the kernel in float64: the gap is XGBoost's rounding.
        np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-6)


def test_explanations_add_up_to_the_calibrated_logit(pair):
    model, X = pair
    out = model.score(X.to_numpy(), explain=True)
    plain = model.score(X.to_numpy()).probability
    for o in model.models_:
        p, c, b = out.probability[o], out.contributions[o], out.base[o]
        # The probability comes from XGBoost's float32 margin, so the sum is exact up to that
        # margin's float32 accumulation error (XGBoost's own pred_contribs has the same gap).
        np.testing.assert_allclose(c.sum(1) + b, _logit(p), rtol=0, atol=5e-6)
        np.testing.assert_allclose(p, plain[o], rtol=1e-15)
        c1, b1 = model.explain_features(X.to_numpy(), o)
        np.testing.assert_array_equal(c, c1)
        np.testing.assert_array_equal(b, b1)


def test_dataframe_input_and_column_order(pair):
    model, X = pair
    shuffled = X[list(reversed(X.columns))]
    a = model.score(shuffled.iloc[:5], explain=True)
    b = model.score(X.to_numpy()[:5], explain=True)
    one = model.score(X.to_numpy()[3], explain=True)
    for o in model.models_:
        np.testing.assert_array_equal(a.contributions[o], b.contributions[o])
        np.testing.assert_array_equal(one.contributions[o][0], b.contributions[o][3])
    with pytest.raises(ValueError, match="feature columns"):
        model.score(X.to_numpy()[:, :-1])


def test_all_missing_row_follows_default_directions(pair):
    model, X = pair
    Xn = X.iloc[:4].copy()
    Xn.iloc[0, :] = np.nan
    Xn.iloc[1, ::2] = np.nan
    dm = _dmatrix(model, Xn)
    m = _compiled_margins(model, Xn.to_numpy())
    ref = model.score(Xn, explain=True, backend="booster")
    got = model.score(Xn, explain=True)
    for o, om in model.models_.items():
        np.testing.assert_array_equal(m[o], om.booster.predict(dm, output_margin=True))
        np.testing.assert_allclose(got.contributions[o], ref.contributions[o], atol=1e-6)
        np.testing.assert_allclose(got.base[o], ref.base[o], atol=1e-6)


def _split_thresholds(booster) -> list[tuple[int, float]]:
    trees = json.loads(bytes(booster.save_raw("json")).decode())["learner"]["gradient_booster"]["model"]["trees"]
    out = []
    for t in trees:
        for lc, f, c in zip(t["left_children"], t["split_indices"], t["split_conditions"], strict=True):
            if lc >= 0:
                out.append((int(f), float(np.float32(c))))
    return out


def test_values_at_split_thresholds(pair):
    """x exactly at a threshold goes right (x < t is false); one float32 ulp below goes left; a
    float64 value that rounds to the float32 threshold counts as the threshold."""
    model, X = pair
    base = X.to_numpy()[:1]
    rows = []
    for om in model.models_.values():
        for f, t in _split_thresholds(om.booster)[:40]:
            t32 = np.float32(t)
            for v in (
                float(t32),
                float(np.nextafter(t32, np.float32(-np.inf))),
                float(np.nextafter(t32, np.float32(np.inf))),
                float(t32) * (1 + 1e-12),
            ):
                r = base.copy()
                r[0, f] = v
                rows.append(r)
    R = np.vstack(rows)
    Rdf = pd.DataFrame(R, columns=X.columns)
    dm = _dmatrix(model, Rdf)
    m = _compiled_margins(model, R)
    ref = model.score(Rdf, explain=True, backend="booster")
    got = model.score(R, explain=True)
    for o, om in model.models_.items():
        np.testing.assert_array_equal(m[o], om.booster.predict(dm, output_margin=True))
        np.testing.assert_allclose(got.contributions[o], ref.contributions[o], atol=1e-6)


def test_single_stump_matches_xgboost_and_shap():
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    X[rng.random(400) < 0.1, 0] = np.nan
    y = (np.nan_to_num(X[:, 0], nan=1.0) + 0.3 * rng.normal(size=400) > 0).astype(float)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 1, "learning_rate": 0.5, "base_score": 0.3},
        xgb.DMatrix(X, label=y),
        num_boost_round=1,
    )
    kernel = CompiledBoosters.compile([booster])
    t = _split_thresholds(booster)[0][1]
    Q = np.array(
        [[np.nan, 0, 0], [t, 0, 0], [np.nextafter(np.float32(t), np.float32(-9)), 0, 0], [5, 1, 2], [-5, np.nan, 1]]
    )
    Q = np.vstack([Q, X[:20].astype(float)])
    dm = xgb.DMatrix(Q.astype(np.float32))
    margin, c, bias = kernel.evaluate(Q, np.array([0]), shap=True)
    np.testing.assert_array_equal(margin[:, 0], booster.predict(dm, output_margin=True))
    ref = booster.predict(dm, pred_contribs=True)
    np.testing.assert_allclose(c[0], ref[:, :-1], atol=1e-6)
    np.testing.assert_allclose(bias[:, 0], ref[:, -1], atol=1e-6)
    ex = shap.TreeExplainer(booster)
    sv = ex.shap_values(Q.astype(np.float32))
    np.testing.assert_allclose(c[0], sv, atol=1e-6)
    np.testing.assert_allclose(bias[:, 0], float(np.ravel(ex.expected_value)[0]), atol=1e-6)
    # A stump attributes everything to its split feature: leaf(x) - cover-weighted mean leaf.
    assert np.all(c[0][:, 1:] == 0)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin[:, 0].astype(float))), booster.predict(dm), rtol=1e-6)


def test_deep_trees_with_repeated_features_match_pred_contribs():
    """Depth 6 re-splits the same features along a path: exercises UNWIND."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = np.nansum(X[:, :2], axis=1) + np.sin(3 * np.nan_to_num(X[:, 2])) + rng.normal(size=3000) > 0.2
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "learning_rate": 0.3, "nthread": 1},
        xgb.DMatrix(X.astype(np.float32), label=y.astype(float)),
        num_boost_round=30,
    )
    kernel = CompiledBoosters.compile([booster])
    Q = np.ascontiguousarray(X[:300])
    dm = xgb.DMatrix(Q.astype(np.float32))
    margin, c, bias = kernel.evaluate(Q, np.array([0]), shap=True)
    np.testing.assert_array_equal(margin[:, 0], booster.predict(dm, output_margin=True))
    ref = booster.predict(dm, pred_contribs=True)
    np.testing.assert_allclose(c[0], ref[:, :-1], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(bias[:, 0], ref[:, -1], atol=1e-6)
    np.testing.assert_allclose(c[0].sum(1) + bias[:, 0], margin[:, 0], atol=1e-5)


def test_unsupported_boosters_are_refused():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(float)
    dart = xgb.train({"booster": "dart", "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 3)
    with pytest.raises(ValueError, match="gbtree"):
        CompiledBoosters.compile([dart])


def test_auto_falls_back_to_the_boosters_when_the_kernel_cannot_compile(fitted, monkeypatch):
    model, X = fitted

    def refuse(cls, boosters):
        raise ValueError("not this booster")

    monkeypatch.setattr(CompiledBoosters, "compile", classmethod(refuse))
    v = _variant(model, 1.0)
    with pytest.warns(UserWarning, match="not this booster"):
        assert v.engine().backend == "booster"
    with pytest.raises(ValueError, match="not this booster"):
        v.engine("compiled")
    ref = _variant(model, 1.0).score(X, backend="booster").probability
    for o, p in v.score(X).probability.items():
        np.testing.assert_array_equal(p, ref[o])


def test_threaded_batches_equal_single_thread(pair):
    model, X = pair
    a = model.score(X.to_numpy(), explain=True, intervals=True, threads=1)
    b = model.score(X.to_numpy(), explain=True, intervals=True, threads=2)
    for o in model.models_:
        for u, v in (
            (a.probability, b.probability),
            (a.contributions, b.contributions),
            (a.base, b.base),
            (a.halfwidth, b.halfwidth),
        ):
            np.testing.assert_array_equal(u[o], v[o])
