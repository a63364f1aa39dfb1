"""Fitting rules and persistence of the RiskModel bundle."""

import numpy as np
import pandas as pd
import pytest

from models.bundle import DEFAULT_GRID, PERSONS_FILE, RiskModel, SampleSizeWarning, person_fold
from models.logistic import LogisticRisk
from models.outcome import fit_platt


def test_person_fold_is_by_person_and_reproducible():
    ids = pd.Series(["a", "b", "a", "c", "b"] * 10)
    f = person_fold(ids, seed=3)
    assert len(set(f[ids == "a"])) == 1
    np.testing.assert_array_equal(f, person_fold(ids, seed=3))
    assert not np.array_equal(
        person_fold(pd.Series([f"p{i}" for i in range(500)]), 1),
        person_fold(pd.Series([f"p{i}" for i in range(500)]), 2),
    )


def test_fit_platt_recovers_a_known_recalibration():
    rng = np.random.default_rng(0)
    margin = rng.normal(-3, 1.5, 200_000)
    y = rng.random(margin.size) < 1 / (1 + np.exp(-(0.4 + 0.7 * margin)))
    a, b = fit_platt(margin, y.astype(float))
    assert a == pytest.approx(0.4, abs=0.05) and b == pytest.approx(0.7, abs=0.03)


def test_logistic_partner_keeps_monotone_directions():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 3))
    # The truth falls with feature 0; a +1 constraint must drop it rather than fit a negative slope.
    y = (rng.random(5000) < 1 / (1 + np.exp(-(-1 - 1.0 * X[:, 0] + 0.8 * X[:, 1])))).astype(float)
    lr = LogisticRisk(monotone=(1, 0, 0)).fit(X, y)
    assert lr.model_.coef_[0][0] == 0.0
    assert lr.model_.coef_[0][1] > 0
    contribs, base = lr.contributions(X[:10])
    np.testing.assert_allclose(contribs.sum(1) + base, lr.margin(X[:10]), atol=1e-10)


def test_save_load_round_trip_is_exact(model, held_out, tmp_path):
    model.save(tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == sorted(
        ["manifest.json", "reference.json", "drift_reference.json", PERSONS_FILE]
        + [f"{o}.ubj" for o in model.models_]
        + [f"{o}.member{j}.ubj" for o, m in model.models_.items() for j in range(len(m.members))]
    )
    assert all(len(m.members) == model.interval_members for m in model.models_.values())
    again = RiskModel.load(tmp_path / "bundle")
    np.testing.assert_allclose(
        again.predict(held_out).to_numpy(), model.predict(held_out).to_numpy(), rtol=0, atol=1e-12
    )
    assert again.reference_ == model.reference_


def test_reference_percentiles_describe_the_training_population(model, cohort):
    from features.derive import age_band
    from features.eligibility import eligibility

    # Every outcome has a table for every sex x age band of this cohort (all are large enough).
    for o in model.models_:
        assert len(model.reference_[o]) == 10
    # About half of the training checkups lie below the median of their own cell.
    rows = cohort.loc[eligibility(cohort, ("cvd",))["cvd"].to_numpy() & cohort["cvd_1y"].notna().to_numpy()]
    rows = rows.loc[(rows["sex"] == "F").to_numpy() & (age_band(rows) == "60-69")]
    p = model.predict(rows)["cvd"].to_numpy()
    median = model.reference_["cvd"]["F|60-69"]["quantiles"][49]
    assert model.reference_["cvd"]["F|60-69"]["n"] == len(rows)
    assert np.mean(p < median) == pytest.approx(0.5, abs=0.05)
    pct, n = model.risk_percentile("cvd", "F", "60-69", float(np.max(p)))
    assert pct >= 98 and n == len(rows)
    assert model.risk_percentile("cvd", "F", "unknown", 0.01) is None


def test_bundle_saved_before_reference_tables_still_loads(model, held_out, tmp_path):
    model.save(tmp_path / "old")
    (tmp_path / "old" / "reference.json").unlink()
    old = RiskModel.load(tmp_path / "old")
    assert old.reference_ == {} and old.risk_percentile("cvd", "M", "50-59", 0.01) is None
    np.testing.assert_allclose(old.predict(held_out).to_numpy(), model.predict(held_out).to_numpy(), rtol=0, atol=1e-12)


def test_training_persons_are_stored_hashed_and_survive_save_load(model, cohort, held_out, tmp_path):
    trained = model.was_trained_on(cohort["person_id"])
    assert trained.dtype == bool and trained.all()
    # Synthetic cohorts of another seed reuse the same ID strings (S0000001...): those ARE the
    # training persons' IDs; other IDs are not.
    assert model.was_trained_on(held_out["person_id"]).all()
    others = "H" + held_out["person_id"].astype(str)
    assert not model.was_trained_on(others).any()
    assert len(model.trained_persons_) == cohort["person_id"].nunique()
    model.save(tmp_path / "b")
    # No raw person ID anywhere in the bundle.
    blob = b"".join(p.read_bytes() for p in (tmp_path / "b").iterdir())
    for pid in cohort["person_id"].drop_duplicates().sample(50, random_state=0):
        assert str(pid).encode() not in blob
    again = RiskModel.load(tmp_path / "b")
    mixed = pd.concat([cohort["person_id"].head(20), others.head(20)], ignore_index=True)
    np.testing.assert_array_equal(again.was_trained_on(mixed), np.r_[np.ones(20, bool), np.zeros(20, bool)])
    # Salted: the same IDs hash differently under another bundle's salt.
    from models.bundle import person_hashes

    assert len(model.person_salt_) == 16
    ids = cohort["person_id"].head(100)
    assert not np.isin(person_hashes(ids, bytes(16)), model.trained_persons_).any()


def test_bundle_saved_before_training_persons_still_loads(model, held_out, tmp_path):
    import json

    model.save(tmp_path / "old")
    (tmp_path / "old" / PERSONS_FILE).unlink()
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["training_persons"], manifest["params"]["history_dropout"], manifest["feature_ranges"]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    old = RiskModel.load(tmp_path / "old")
    # Without ranges nothing is held: held-out values beyond the training range score differently
    # (the blended outcomes' logistic partner); given the same ranges, everything else is the same.
    assert old.feature_ranges_ is None and old.training_range("sbp") is None
    old.feature_ranges_ = model.feature_ranges_
    np.testing.assert_allclose(old.predict(held_out).to_numpy(), model.predict(held_out).to_numpy(), rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="cannot tell"):
        old.was_trained_on(held_out["person_id"])


def test_training_ranges_round_trip_and_hold_only_what_lies_beyond(model, cohort, tmp_path):
    from features.derive import build_features

    X = build_features(cohort)
    low, high = model.feature_ranges_
    np.testing.assert_array_equal(low, np.nanmin(X.to_numpy(dtype=float), axis=0))
    again = RiskModel.load(model.save(tmp_path / "b"))
    np.testing.assert_array_equal(again.feature_ranges_[1], high)
    assert not model.outside_training(X).any()  # every training row lies inside
    beyond = X.head(3).copy()
    beyond["alt"] = high[list(X.columns).index("alt")] * 10
    assert model.outside_training(beyond)[:, list(X.columns).index("alt")].all()


def test_history_dropout_and_sample_size_are_recorded(model, cohort):
    from features.derive import LONGITUDINAL_FEATURES, build_features

    has_history = build_features(cohort)[list(LONGITUDINAL_FEATURES)].notna().any(axis=1)
    for m in model.models_.values():
        info = m.info
        assert 0 < info["history_dropout_rows"] <= has_history.sum()
        assert 0 < info["input_dropout_rows"] < info["rows"]
        size = info["sample_size"]
        assert size["rows"] == info["rows"] and size["events"] == info["events"]
        assert size["required_n"] == max(size["n_shrinkage"], size["n_optimism"], size["n_overall_risk"])
        assert size["enough"] == (info["rows"] >= size["required_n"])
        assert info["mode"].startswith("train/validation/calibration split")


def test_split_mode_refits_on_the_persons_set_aside(cohort, monkeypatch):
    """With many events the persons set aside to choose and calibrate are not lost: the split's
    boosters are fit on the training persons only, and the final booster on every row."""
    from models.fitting import OutcomeFitter

    trained_on = []
    train = OutcomeFitter._train

    def recording(self, params, y, tr, ev, rounds, progress=None):
        trained_on.append(set(self.data.role[tr]))
        return train(self, params, y, tr, ev, rounds, progress)

    monkeypatch.setattr(OutcomeFitter, "_train", recording)
    kw = dict(outcomes=("hypertension",), grid=DEFAULT_GRID[:1], cv_below_events=0, max_rounds=80, interval_members=0)
    model = RiskModel(**kw).fit(cohort)
    assert trained_on == [{"train"}, {"train", "valid", "calib"}]
    assert "final model refit on all rows" in model.models_["hypertension"].info["mode"]


def test_labels_far_above_a_yearly_rate_are_warned(cohort):
    """A ten-year or prevalent-disease label fed as `cvd_1y` (15% events where about 0.5% a year is
    expected) is named at fit time and kept in the outcome's info for the model card."""
    from models.bundle import EventRateWarning

    small = cohort[cohort["person_id"].isin(cohort["person_id"].unique()[:1500])].copy()
    labelled = small["cvd_1y"].notna()
    small.loc[labelled, "cvd_1y"] = (np.random.default_rng(0).random(int(labelled.sum())) < 0.15).astype(float)
    kw = dict(outcomes=("cvd",), grid=DEFAULT_GRID[:1], max_rounds=30, interval_members=0)
    with pytest.warns(EventRateWarning, match=r"cvd: 1\d\.\d% of the [\d,]+ labelled rows are events, \d+ times"):
        model = RiskModel(**kw).fit(small)
    rate = model.models_["cvd"].info["event_rate"]
    assert rate["exceeds"] and rate["rate"] > rate["limit"] * rate["reference"]


def test_missing_labels_are_a_clear_error(cohort):
    with pytest.raises(ValueError, match="label column"):
        RiskModel(outcomes=("cvd",)).fit(cohort.drop(columns=["cvd_1y"]))


def test_small_data_use_cross_validation_and_choose_among_settings():
    from features.synth import generate_cohort

    small = generate_cohort(people=1500, seed=5)
    with pytest.warns(SampleSizeWarning, match="hypertension: .* fewer than"):
        m = RiskModel(outcomes=("hypertension",)).fit(small)
    info = m.models_["hypertension"].info
    assert info["mode"].startswith("5-fold")
    assert "calibration is cross-validated, not held out" in info["mode"]
    assert info["sample_size"]["enough"] is False and info["rows"] < info["sample_size"]["required_n"]
    assert len(info["tried"]) == 3
    assert info["choice"]


@pytest.mark.parametrize("cv_below_events", [10**9, 0], ids=["cross-validated", "split"])
def test_fit_reports_progress_per_outcome_and_step(cohort, cv_below_events):
    import warnings

    from models.bundle import DEFAULT_GRID

    small = cohort[cohort["person_id"].isin(cohort["person_id"].unique()[:1500])]
    kw = dict(
        outcomes=("hypertension",),
        grid=DEFAULT_GRID[:1],
        cv_folds=2,
        cv_below_events=cv_below_events,
        max_rounds=60,
        interval_members=2,
        random_state=3,
    )
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleSizeWarning)
        m = RiskModel(**kw).fit(small, progress=lambda *a: calls.append(a))
        quiet = RiskModel(**kw).fit(small)
    mode = m.models_["hypertension"].info["mode"]
    assert mode.startswith("2-fold" if cv_below_events else "train/validation/calibration split")
    assert {c[0] for c in calls} == {"hypertension"}
    steps = [c[1] for c in calls]
    assert list(dict.fromkeys(steps)) == ["boosting rounds", "refit rounds", "interval members"]
    for step in dict.fromkeys(steps):
        done = [d for _, s, d, _ in calls if s == step]
        (total,) = {t for _, s, _, t in calls if s == step}
        # Starts at 0, never goes back, ends complete (early stopping counts its unused rounds).
        assert done[0] == 0 and done == sorted(done) and done[-1] == total
    assert calls[0][3] == 1 * (2 if cv_below_events else 1) * 60  # settings x folds x max_rounds
    refit = [d for _, s, d, _ in calls if s == "refit rounds"]
    assert refit[:-1] == list(range(0, refit[-1], 25))  # every 25 rounds, then the end
    assert [d for _, s, d, _ in calls if s == "interval members"] == [0, 1, 2]
    # The hook only watches: the model is the same without it.
    np.testing.assert_array_equal(m.predict(small).to_numpy(), quiet.predict(small).to_numpy())
