"""The probability interval: resampled members fit, saved, loaded, compiled and scored."""

import json
import shutil

import numpy as np
import pytest
import xgboost as xgb
from scipy import stats

from features.derive import build_features
from models import interval
from models.bundle import DEFAULT_GRID, RiskModel
from models.engine import all_boosters
from models.outcome import Heads


def _records(frame) -> list[dict]:
    """Held-out rows as API records: no labels or true risks, None for missing, ISO dates."""
    out = []
    for row in frame.to_dict("records"):
        rec = {
            k: (None if isinstance(v, float) and np.isnan(v) else v)
            for k, v in row.items()
            if not k.endswith("_1y") and not k.endswith("_true_risk")
        }
        rec["exam_date"] = str(rec["exam_date"])[:10]
        out.append(rec)
    return out


def _member_margins(model: RiskModel, outcome: str, X) -> np.ndarray:
    """Each member booster's own margins (n x B), as XGBoost computes them."""
    dm = xgb.DMatrix(X.to_numpy(dtype=np.float32), feature_names=list(model.feature_names_))
    return np.column_stack([m.booster.predict(dm, output_margin=True) for m in model.models_[outcome].members])


def _member_logits(model: RiskModel, outcome: str, X) -> np.ndarray:
    """Calibrated log-odds of each member (n x B): their own margins through their heads."""
    members = model.models_[outcome].member_heads()
    return Heads(members).logits(_member_margins(model, outcome, X), X.to_numpy(float), np.arange(len(members)))


def test_multiplier_is_students_t_for_half_samples():
    # Half-samples: the member spread already estimates the full-sample standard error (factor 1).
    assert interval.scale_factor(0.5) == pytest.approx(1.0)
    assert interval.scale_factor(0.8) == pytest.approx(2.0)
    assert interval.multiplier(6) == pytest.approx(stats.t.ppf(0.975, 5))
    assert interval.multiplier(6) > interval.multiplier(30) > 1.96
    with pytest.raises(ValueError):
        interval.multiplier(1)


def test_interval_is_symmetric_in_log_odds_and_contains_the_point():
    point = np.array([0.01, 0.2, 0.9])
    z = np.log(point / (1 - point))
    members = z[:, None] + np.array([[-0.2, 0.0, 0.2]] * 3)
    low, high = interval.interval(point, members, 2.0)
    sd = members.std(axis=1, ddof=1)
    np.testing.assert_allclose(np.log(low / (1 - low)), z - 2.0 * sd, atol=1e-12)
    np.testing.assert_allclose(np.log(high / (1 - high)), z + 2.0 * sd, atol=1e-12)
    # Members that all agree with the model give a zero-width interval at the point itself.
    low, high = interval.interval(point, np.repeat(z[:, None], 4, axis=1), 2.0)
    assert np.all(low <= point) and np.all(high >= point)
    np.testing.assert_allclose(high - low, 0.0, atol=1e-15)
    # Members whose mean lies off the model's logit: that shift (the smoothing bias estimate) is
    # added to both sides, on top of the spread.
    shifted = members + 0.3
    low, high = interval.interval(point, shifted, 2.0)
    np.testing.assert_allclose(np.log(low / (1 - low)), z - 2.0 * sd - 0.3, atol=1e-12)
    np.testing.assert_allclose(np.log(high / (1 - high)), z + 2.0 * sd + 0.3, atol=1e-12)
    pair = interval.pair_around(0.123456789, 0.3)
    assert pair[0] <= 0.123456789 <= pair[1] and pair[0] <= round(0.123456789, 6) <= pair[1]


def test_every_outcome_has_members_and_the_interval_contains_the_probability(model, held_out):
    assert model.has_intervals()
    probs = model.predict(held_out)
    ivs = model.predict_interval(held_out)
    for o, m in model.models_.items():
        assert len(m.members) == model.interval_members == 6
        assert m.info["interval"]["members"] == 6
        # Members are fit on half the persons, without early stopping: same number of rounds.
        assert {b.booster.num_boosted_rounds() for b in m.members} == {m.booster.num_boosted_rounds()}
        low, high = ivs[o]
        p = probs[o].to_numpy()
        ok = ~np.isnan(p)
        assert ok.sum() > 500
        assert np.all(low[ok] <= p[ok]) and np.all(p[ok] <= high[ok])
        assert np.all(np.isnan(low[~ok])) and np.all(np.isnan(high[~ok]))
        # The members disagree: a real, not degenerate, interval, but not an absurd one.
        width = np.log(high[ok] / (1 - high[ok])) - np.log(low[ok] / (1 - low[ok]))
        assert np.median(width) > 0.05, o
        assert np.median(width) < 4.0, o


def test_members_are_reproducible_and_resample_persons(cohort):
    small = cohort[cohort["person_id"].isin(cohort["person_id"].unique()[:2500])]
    kw = dict(
        outcomes=("hypertension",),
        grid=DEFAULT_GRID[:1],
        cv_below_events=0,
        interval_members=3,
        max_rounds=60,
        random_state=4,
    )
    a, b = RiskModel(**kw).fit(small), RiskModel(**kw).fit(small)
    X = build_features(small.iloc[:300])
    la, lb = (_member_logits(m, "hypertension", X) for m in (a, b))
    np.testing.assert_array_equal(la, lb)
    # Different halves of the persons: the members differ from each other.
    assert np.all(np.std(la, axis=1) > 0)
    none = RiskModel(**{**kw, "interval_members": 0}).fit(small)
    assert none.models_["hypertension"].members == [] and not none.has_intervals()
    assert none.predict_interval(small)["hypertension"] is None


def test_interval_narrows_with_more_data(cohort, held_out):
    persons = cohort["person_id"].unique()
    kw = dict(outcomes=("hypertension",), grid=DEFAULT_GRID[:1], cv_below_events=0, random_state=0)
    small = RiskModel(**kw).fit(cohort[cohort["person_id"].isin(persons[:1500])])
    large = RiskModel(**kw).fit(cohort)
    for o in kw["outcomes"]:
        widths = []
        for m in (small, large):
            low, high = m.predict_interval(held_out)[o]
            ok = ~np.isnan(low)
            widths.append(np.median(np.log(high[ok] / (1 - high[ok])) - np.log(low[ok] / (1 - low[ok]))))
        # Four times the persons: the standard error shrinks, roughly by half.
        assert widths[1] < 0.8 * widths[0], (o, widths)


def test_save_load_keeps_the_members_exactly(model, held_out, tmp_path):
    path = model.save(tmp_path / "bundle")
    manifest = json.loads((path / "manifest.json").read_text())
    for o in model.models_:
        entries = manifest["outcomes"][o]["interval"]["members"]
        assert len(entries) == 6 and all((path / e["file"]).exists() for e in entries)
    again = RiskModel.load(path)
    want, got = model.predict_interval(held_out), again.predict_interval(held_out)
    for o in model.models_:
        for w, g in zip(want[o], got[o], strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_bundle_saved_before_intervals_loads_without_them(model, held_out, tmp_path):
    from serving.scoring import Scorer

    path = model.save(tmp_path / "old")
    manifest = json.loads((path / "manifest.json").read_text())
    for meta in manifest["outcomes"].values():
        for entry in meta.pop("interval")["members"]:
            (path / entry["file"]).unlink()
        meta["info"].pop("interval", None)
    manifest["params"].pop("interval_members")
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = RiskModel.load(path)
    assert not old.has_intervals() and all(v is None for v in old.predict_interval(held_out).values())
    np.testing.assert_allclose(old.predict(held_out).to_numpy(), model.predict(held_out).to_numpy(), atol=1e-12)
    res = Scorer(old, "old").score_records(_records(held_out.iloc[:1]))[0]
    applicable = [r for r in res["risks"].values() if r["applicable"]]
    assert applicable and all(r["probability_interval"] is None for r in applicable)
    assert any("probability_interval is null" in w for w in res["warnings"])
    shutil.rmtree(path)


def test_compiled_member_margins_equal_the_boosters(model, held_out):
    X = build_features(held_out.iloc[:400])
    Xn = model._matrix(X)
    trees = model.engine("compiled").trees
    boosters = all_boosters(model.models_)
    for o, m in model.models_.items():
        which = np.array([next(i for i, b in enumerate(boosters) if b is mm.booster) for mm in m.members])
        margins = trees.evaluate(Xn, which)[0]
        assert margins.shape == (len(X), 6) and margins.dtype == np.float32
        np.testing.assert_array_equal(margins, _member_margins(model, o, X))
    # The half-widths and intervals agree with the booster path's, around the same probabilities.
    compiled, booster = (model.score(X, intervals=True, backend=b) for b in ("compiled", "booster"))
    for o in model.models_:
        np.testing.assert_allclose(compiled.halfwidth[o], booster.halfwidth[o], rtol=0, atol=1e-9)
        for g, w in zip(compiled.interval(o), booster.interval(o), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-12)
    # The main outcomes are unchanged by the members compiled beside them.
    assert model.engine().outcomes == tuple(model.models_)
    probs = model.score(X, backend="booster").probability
    for o in model.models_:
        np.testing.assert_allclose(compiled.probability[o], probs[o], rtol=0, atol=1e-12)


def test_scorer_reports_the_interval(model, held_out):
    from serving.scoring import Scorer

    records = _records(held_out.iloc[:60])
    scorer = Scorer(model, "test")
    seen = 0
    for explain in (True, False):
        for res in scorer.score_records([dict(r) for r in records], explain=explain):
            assert not any("probability_interval is null" in w for w in res["warnings"])
            for risk in res["risks"].values():
                if not risk["applicable"]:
                    assert risk.get("probability_interval") is None
                    continue
                low, high = risk["probability_interval"]
                assert 0.0 <= low <= risk["probability"] <= high <= 1.0 and low < high
                seen += 1
    assert seen > 100


def test_sigmoid_and_pair_around_never_overflow():
    from models.interval import pair_around, sigmoid_float

    assert sigmoid_float(-1000.0) == 0.0 and sigmoid_float(1000.0) == 1.0 and sigmoid_float(0.0) == 0.5
    # A model fitted on few people can give member logits hundreds apart: a huge half-width.
    low, high = pair_around(0.01, 2000.0)
    assert low == 0.0 and high == 1.0
