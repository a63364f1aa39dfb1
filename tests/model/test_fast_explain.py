"""FastExplainer against the reference paths: XGBoost's own margins and pred_contribs,
RiskModel.predict_features / explain_features, and shap.TreeExplainer on a toy booster."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from features.derive import FEATURES, build_features
from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from models.fast_explain import FastExplainer


@pytest.fixture(scope="module")
def fitted() -> tuple[RiskModel, np.ndarray]:
    # Small and quick: one setting, a high learning rate, few rounds, 2-fold CV. Most of the time
    # goes into the logistic partners, not the boosters.
    cohort = generate_cohort(people=2000, seed=21)
    model = RiskModel(grid=(DEFAULT_GRID[0],), learning_rate=0.2, max_rounds=80, early_stopping_rounds=10,
                      cv_folds=2, random_state=0).fit(cohort)
    X = build_features(generate_cohort(people=300, seed=22))
    return model, X


def _variant(model: RiskModel, weight: float) -> RiskModel:
    """The same boosters and partners with every outcome's blend weight forced."""
    v = copy.copy(model)
    v.models_ = {o: dataclasses.replace(m, weight=weight) for o, m in model.models_.items()}
    return v


@pytest.fixture(scope="module", params=[1.0, 0.5], ids=["boosted", "blended"])
def pair(request, fitted):
    model, X = fitted
    v = _variant(model, request.param)
    return v, FastExplainer.from_model(v), X


def _logit(p):
    return np.log(p / (1 - p))


def test_margins_equal_the_boosters_bit_for_bit(pair):
    model, fe, X = pair
    got = fe.margins(X.to_numpy())
    dm = model._dmatrix(X)
    for o, m in model.models_.items():
        want = m.booster.predict(dm, output_margin=True)
        assert got[o].dtype == np.float32
        np.testing.assert_array_equal(got[o], want)


def test_probabilities_match_predict_features(pair):
    model, fe, X = pair
    want = model.predict_features(X)
    got = fe.predict(X.to_numpy())
    for o in model.models_:
        np.testing.assert_allclose(got[o], want[o].to_numpy(), rtol=1e-12, atol=0)


def test_contributions_match_explain_features(pair):
    model, fe, X = pair
    for o in model.models_:
        c_ref, b_ref = model.explain_features(X, o)
        c, b = fe.explain(X.to_numpy(), o)
        assert c.shape == c_ref.shape == (len(X), len(FEATURES))
        # XGBoost runs TreeSHAP in float32, this explainer in float64: the gap is XGBoost's rounding.
        np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-6)


def test_explanations_add_up_to_the_calibrated_logit(pair):
    model, fe, X = pair
    out = fe.predict_explain(X.to_numpy())
    for o in model.models_:
        p, c, b = out[o]
        # The probability comes from XGBoost's float32 margin, so the sum is exact up to that
        # margin's float32 accumulation error (XGBoost's own pred_contribs has the same gap).
        np.testing.assert_allclose(c.sum(1) + b, _logit(p), rtol=0, atol=5e-6)
        np.testing.assert_allclose(p, fe.predict(X.to_numpy())[o], rtol=1e-15)
        c1, b1 = fe.explain(X.to_numpy(), o)
        np.testing.assert_array_equal(c, c1)
        np.testing.assert_array_equal(b, b1)


def test_dataframe_input_and_column_order(pair):
    model, fe, X = pair
    shuffled = X[list(reversed(X.columns))]
    a = fe.predict_explain(shuffled.iloc[:5])
    b = fe.predict_explain(X.to_numpy()[:5])
    one = fe.predict_explain(X.to_numpy()[3])
    for o in model.models_:
        np.testing.assert_array_equal(a[o][1], b[o][1])
        np.testing.assert_array_equal(one[o][1][0], b[o][1][3])


def test_all_missing_row_follows_default_directions(pair):
    model, fe, X = pair
    Xn = X.iloc[:4].copy()
    Xn.iloc[0, :] = np.nan
    Xn.iloc[1, ::2] = np.nan
    dm = model._dmatrix(Xn)
    m = fe.margins(Xn.to_numpy())
    for o, om in model.models_.items():
        np.testing.assert_array_equal(m[o], om.booster.predict(dm, output_margin=True))
        c_ref, b_ref = model.explain_features(Xn, o)
        c, b = fe.explain(Xn.to_numpy(), o)
        np.testing.assert_allclose(c, c_ref, atol=1e-6)
        np.testing.assert_allclose(b, b_ref, atol=1e-6)


def _split_thresholds(booster) -> list[tuple[int, float]]:
    import json

    trees = json.loads(bytes(booster.save_raw("json")).decode())["learner"]["gradient_booster"]["model"]["trees"]
    out = []
    for t in trees:
        for lc, f, c in zip(t["left_children"], t["split_indices"], t["split_conditions"]):
            if lc >= 0:
                out.append((int(f), float(np.float32(c))))
    return out


def test_values_at_split_thresholds(pair):
    """x exactly at a threshold goes right (x < t is false); one float32 ulp below goes left; a
    float64 value that rounds to the float32 threshold counts as the threshold."""
    model, fe, X = pair
    base = X.to_numpy()[:1]
    rows = []
    for o, om in model.models_.items():
        for f, t in _split_thresholds(om.booster)[:40]:
            t32 = np.float32(t)
            for v in (float(t32), float(np.nextafter(t32, np.float32(-np.inf))),
                      float(np.nextafter(t32, np.float32(np.inf))), float(t32) * (1 + 1e-12)):
                r = base.copy()
                r[0, f] = v
                rows.append(r)
    R = np.vstack(rows)
    Rdf = pd.DataFrame(R, columns=X.columns)
    dm = model._dmatrix(Rdf)
    m = fe.margins(R)
    for o, om in model.models_.items():
        np.testing.assert_array_equal(m[o], om.booster.predict(dm, output_margin=True))
        c_ref, b_ref = model.explain_features(Rdf, o)
        c, b = fe.explain(R, o)
        np.testing.assert_allclose(c, c_ref, atol=1e-6)


def test_single_stump_matches_xgboost_and_shap():
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    X[rng.random(400) < 0.1, 0] = np.nan
    y = (np.nan_to_num(X[:, 0], nan=1.0) + 0.3 * rng.normal(size=400) > 0).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 1, "learning_rate": 0.5, "base_score": 0.3},
                        xgb.DMatrix(X, label=y), num_boost_round=1)
    fe = FastExplainer.from_boosters({"toy": booster})
    t = _split_thresholds(booster)[0][1]
    Q = np.array([[np.nan, 0, 0], [t, 0, 0], [np.nextafter(np.float32(t), np.float32(-9)), 0, 0], [5, 1, 2],
                  [-5, np.nan, 1]])
    Q = np.vstack([Q, X[:20].astype(float)])
    dm = xgb.DMatrix(Q.astype(np.float32))
    np.testing.assert_array_equal(fe.margins(Q)["toy"], booster.predict(dm, output_margin=True))
    ref = booster.predict(dm, pred_contribs=True)
    c, b = fe.explain(Q, "toy")
    np.testing.assert_allclose(c, ref[:, :-1], atol=1e-6)
    np.testing.assert_allclose(b, ref[:, -1], atol=1e-6)
    ex = shap.TreeExplainer(booster)
    sv = ex.shap_values(Q.astype(np.float32))
    np.testing.assert_allclose(c, sv, atol=1e-6)
    np.testing.assert_allclose(b, float(np.ravel(ex.expected_value)[0]), atol=1e-6)
    # A stump attributes everything to its split feature: leaf(x) - cover-weighted mean leaf.
    assert np.all(c[:, 1:] == 0)
    np.testing.assert_allclose(fe.predict(Q)["toy"], booster.predict(dm), rtol=1e-6)


def test_deep_trees_with_repeated_features_match_pred_contribs():
    """Depth 6 re-splits the same features along a path: exercises UNWIND."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nansum(X[:, :2], axis=1) + np.sin(3 * np.nan_to_num(X[:, 2])) + rng.normal(size=3000) > 0.2)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "learning_rate": 0.3, "nthread": 1},
                        xgb.DMatrix(X.astype(np.float32), label=y.astype(float)), num_boost_round=30)
    fe = FastExplainer.from_boosters({"deep": booster})
    Q = X[:300]
    dm = xgb.DMatrix(Q.astype(np.float32))
    np.testing.assert_array_equal(fe.margins(Q)["deep"], booster.predict(dm, output_margin=True))
    ref = booster.predict(dm, pred_contribs=True)
    c, b = fe.explain(Q, "deep")
    np.testing.assert_allclose(c, ref[:, :-1], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(b, ref[:, -1], atol=1e-6)
    np.testing.assert_allclose(c.sum(1) + b, fe.margins(Q)["deep"], atol=1e-5)


def test_unsupported_boosters_are_refused():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(float)
    dart = xgb.train({"booster": "dart", "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 3)
    with pytest.raises(ValueError, match="gbtree"):
        FastExplainer.from_boosters({"d": dart})


def test_threaded_batches_equal_single_thread(pair):
    model, fe, X = pair
    a = fe.predict_explain(X.to_numpy())
    b = fe.predict_explain(X.to_numpy(), threads=2)
    for o in model.models_:
        for u, v in zip(a[o], b[o]):
            np.testing.assert_array_equal(u, v)
