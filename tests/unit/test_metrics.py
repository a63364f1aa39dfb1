"""Metrics against answers worked out by hand, and against scikit-learn on random data."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.metrics import (
    auprc,
    auroc,
    auroc_ci,
    brier,
    calibration_ci,
    calibration_curve,
    calibration_intercept_slope,
    ece,
    expected_auroc,
    net_benefit,
    summarize,
)

Y4 = np.array([0, 0, 1, 1])
P4 = np.array([0.1, 0.4, 0.35, 0.8])


def _expit(x):
    return 1 / (1 + np.exp(-x))


def _logit(p):
    return np.log(p / (1 - p))


# --- AUROC -------------------------------------------------------------------------------------


def test_auroc_by_hand():
    # Pairs (pos, neg): (0.35, 0.1) yes, (0.35, 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes -> 3/4.
    assert auroc(Y4, P4) == pytest.approx(0.75, abs=1e-15)


def test_auroc_ties_count_half():
    # (0.5, 0.1) 1, (0.5, 0.5) 0.5, (0.9, 0.1) 1, (0.9, 0.5) 1 -> 3.5/4.
    assert auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875, abs=1e-15)
    assert auroc([0, 1], [0.3, 0.3]) == pytest.approx(0.5, abs=1e-15)


def test_weighted_auroc_by_hand_and_as_repetition():
    # Weight 2 on the negative at 0.4: concordant weight 1 + 0 + 1 + 2 = 4 of (1+1)(1+2) = 6.
    w = np.array([1, 2, 1, 1])
    assert auroc(Y4, P4, sample_weight=w) == pytest.approx(2 / 3, abs=1e-15)
    assert auroc(np.repeat(Y4, w), np.repeat(P4, w)) == pytest.approx(2 / 3, abs=1e-15)


def test_auroc_matches_sklearn_on_random_data_with_ties_and_weights():
    rng = np.random.default_rng(0)
    for n in (7, 100, 5000):
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), 2)  # rounding makes ties
        w = rng.random(n)
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert auroc(y, p, w) == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)


def test_auroc_one_class_is_nan():
    assert np.isnan(auroc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert np.isnan(auroc([1, 1], [0.1, 0.2]))


def test_auroc_rejects_bad_input():
    with pytest.raises(ValueError):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        auroc([0, 1, 1], [0.1, 0.2])


def test_auroc_ci_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    n = 2000
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    low, high = auroc_ci(y, p, n_boot=200, seed=3)
    assert low < auroc(y, p) < high
    assert high - low < 0.1
    assert auroc_ci(y, p, n_boot=200, seed=3) == (low, high)
    assert all(np.isnan(auroc_ci([0, 0, 0], [0.1, 0.2, 0.3], n_boot=20)))


def test_auroc_ci_width_close_to_hanley_mcneil():
    # Sanity of the bootstrap against the Hanley-McNeil standard error (95% CI ~ +-1.96 SE).
    rng = np.random.default_rng(2)
    n = 4000
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    a = auroc(y, p)
    n1, n0 = y.sum(), n - y.sum()
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a**2) + (n0 - 1) * (q2 - a**2)) / (n1 * n0))
    low, high = auroc_ci(y, p, n_boot=300, seed=0)
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_intervals_resample_persons_so_repeated_checkups_do_not_narrow_them():
    # Each of 1,000 persons has 5 identical checkups: the data hold 1,000 independent people, not
    # 5,000. Resampling rows narrows the interval by about sqrt(5); resampling persons does not.
    rng = np.random.default_rng(4)
    n = 1000
    p = _expit(rng.normal(-1.5, 1.0, n))
    y = (rng.random(n) < p).astype(int)
    y5, p5, persons = np.repeat(y, 5), np.repeat(p, 5), np.repeat(np.arange(n).astype(str), 5)

    def width(interval):
        return interval[1] - interval[0]

    single = width(auroc_ci(y, p, n_boot=300, seed=1))
    assert width(auroc_ci(y5, p5, n_boot=300, seed=1)) == pytest.approx(single / np.sqrt(5), rel=0.25)
    assert width(auroc_ci(y5, p5, n_boot=300, seed=1, groups=persons)) == pytest.approx(single, rel=0.2)
    intercept_single, slope_single = calibration_ci(y, p, n_boot=300, seed=1)
    intercept_rows, _ = calibration_ci(y5, p5, n_boot=300, seed=1)
    intercept_persons, slope_persons = calibration_ci(y5, p5, n_boot=300, seed=1, groups=persons)
    assert width(intercept_rows) == pytest.approx(width(intercept_single) / np.sqrt(5), rel=0.25)
    assert width(intercept_persons) == pytest.approx(width(intercept_single), rel=0.2)
    assert width(slope_persons) == pytest.approx(width(slope_single), rel=0.2)
    # summarize passes them on; one row per person gives the row bootstrap's interval.
    block = summarize(y5, p5, n_boot=300, seed=1, groups=persons)
    assert width(block["auroc_ci"]) == pytest.approx(single, rel=0.2)
    ids = np.arange(n).astype(str)
    with pytest.raises(ValueError, match="groups"):
        auroc_ci(y, p, groups=ids[:-1])


# --- AUPRC, Brier ------------------------------------------------------------------------------


def test_auprc_by_hand():
    # Descending: 0.8 (pos) P=1 R=1/2; 0.4 (neg); 0.35 (pos) P=2/3 R=1 -> 1/2 + 1/2 * 2/3.
    assert auprc(Y4, P4) == pytest.approx(0.5 + 1 / 3, abs=1e-15)


def test_auprc_matches_sklearn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 3000)
    p = np.round(rng.random(3000), 2)
    w = rng.random(3000)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert auprc(y, p, w) == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=1e-12)
    assert np.isnan(auprc([0, 0], [0.2, 0.3]))


def test_brier_by_hand():
    # (0.2^2 + 0.4^2 + 0.1^2) / 3 = 0.21 / 3.
    assert brier([0, 1, 1], [0.2, 0.6, 0.9]) == pytest.approx(0.07, abs=1e-15)
    # Weighted: (1 x 0.04 + 3 x 0.16) / 4.
    assert brier([0, 1], [0.2, 0.6], sample_weight=[1, 3]) == pytest.approx(0.13, abs=1e-15)


# --- Calibration ---------------------------------------------------------------------------------


def test_calibration_intercept_constant_prediction_by_hand():
    # p = 0.5 everywhere, observed rate 1/4: intercept = logit(0.25) - logit(0.5) = -ln 3.
    y = np.array([1, 0, 0, 0])
    intercept, slope = calibration_intercept_slope(y, np.full(4, 0.5))
    assert intercept == pytest.approx(-np.log(3), abs=1e-9)
    assert np.isnan(slope)  # logit(p) has no spread


def test_calibration_slope_saturated_two_groups_by_hand():
    # Two groups at logit(p) = -1 and +1 with observed rates 0.2 and 0.6: the logistic fit is
    # saturated, so a - b = logit(0.2) and a + b = logit(0.6).
    p = np.repeat([_expit(-1.0), _expit(1.0)], 10)
    y = np.array([1] * 2 + [0] * 8 + [1] * 6 + [0] * 4)
    _, slope = calibration_intercept_slope(y, p)
    assert slope == pytest.approx((_logit(0.6) - _logit(0.2)) / 2, abs=1e-8)


def test_calibration_perfect_on_large_sample():
    rng = np.random.default_rng(5)
    p = _expit(rng.normal(-2.0, 1.0, 200_000))
    y = (rng.random(p.size) < p).astype(int)
    intercept, slope = calibration_intercept_slope(y, p)
    assert intercept == pytest.approx(0.0, abs=0.03)
    assert slope == pytest.approx(1.0, abs=0.03)


def test_calibration_detects_extreme_and_shifted_predictions():
    rng = np.random.default_rng(6)
    p_true = _expit(rng.normal(-2.0, 1.0, 200_000))
    y = (rng.random(p_true.size) < p_true).astype(int)
    _, slope = calibration_intercept_slope(y, _expit(2 * _logit(p_true)))  # twice as extreme
    assert slope == pytest.approx(0.5, abs=0.03)
    intercept, slope = calibration_intercept_slope(y, _expit(_logit(p_true) - 0.5))  # too low
    assert intercept == pytest.approx(0.5, abs=0.03)
    assert slope == pytest.approx(1.0, abs=0.03)


def test_calibration_handles_probabilities_of_exactly_zero_and_one():
    intercept, slope = calibration_intercept_slope([0, 1, 0, 1, 1], [0.0, 1.0, 0.3, 0.6, 0.2])
    assert np.isfinite(intercept) and np.isfinite(slope)


def test_calibration_undefined_without_both_classes():
    assert all(np.isnan(calibration_intercept_slope([0, 0, 0], [0.1, 0.2, 0.3])))
    assert all(np.isnan(calibration_intercept_slope([1, 1], [0.1, 0.2])))


def test_ece_zero_when_observed_matches_predicted():
    p = np.array([0.2] * 5 + [0.6] * 5)
    y = np.array([1, 0, 0, 0, 0] + [1, 1, 1, 0, 0])
    assert ece(y, p, n_bins=2) == pytest.approx(0.0, abs=1e-15)
    assert ece(y, p, n_bins=10) == pytest.approx(0.0, abs=1e-15)  # ties stay in one bin


def test_ece_by_hand():
    # Two equal bins, no events: 0.5 x |0 - 0.2| + 0.5 x |0 - 0.6| = 0.4.
    p = np.array([0.2] * 5 + [0.6] * 5)
    assert ece(np.zeros(10), p, n_bins=2) == pytest.approx(0.4, abs=1e-15)
    # Uniform bins: 3 rows at 0.05 (1 event), 1 row at 0.95 (1 event):
    # 3/4 x |1/3 - 0.05| + 1/4 x |1 - 0.95|.
    expected = 0.75 * (1 / 3 - 0.05) + 0.25 * 0.05
    got = ece([1, 0, 0, 1], [0.05, 0.05, 0.05, 0.95], strategy="uniform")
    assert got == pytest.approx(expected, abs=1e-15)


def test_calibration_curve_columns_and_counts():
    rng = np.random.default_rng(7)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    curve = calibration_curve(y, p, n_bins=10)
    assert isinstance(curve, pd.DataFrame)
    assert {"mean_predicted", "observed_rate", "count"} <= set(curve.columns)
    assert len(curve) == 10 and curve["count"].sum() == 1000
    assert (curve["count"] == 100).all()  # quantile bins: equal counts without ties
    assert curve["mean_predicted"].is_monotonic_increasing


# --- Net benefit ---------------------------------------------------------------------------------


def test_net_benefit_by_hand():
    # pt = 0.3: treat p >= 0.3 -> rows 0.4 (neg), 0.35 (pos), 0.8 (pos): TP 2, FP 1 of 4.
    #   model 2/4 - 1/4 x 0.3/0.7; treat all 2/4 - 2/4 x 0.3/0.7.
    # pt = 0.5: treat only 0.8 (pos): model 1/4; treat all 1/2 - 1/2 x 1 = 0.
    nb = net_benefit(Y4, P4, thresholds=[0.3, 0.5])
    assert nb["threshold"] == [0.3, 0.5]
    np.testing.assert_allclose(nb["model"], [0.5 - 0.25 * 3 / 7, 0.25], atol=1e-15)
    np.testing.assert_allclose(nb["treat_all"], [0.5 - 0.5 * 3 / 7, 0.0], atol=1e-15)
    assert nb["treat_none"] == [0.0, 0.0]


def test_net_benefit_rejects_thresholds_outside_unit_interval():
    with pytest.raises(ValueError):
        net_benefit(Y4, P4, thresholds=[0.0, 0.5])


# --- Expected AUROC ------------------------------------------------------------------------------


def _expected_auroc_brute_force(s, t):
    num = den = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            if i == j:
                continue
            wt = t[i] * (1 - t[j])
            den += wt
            num += wt * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / den


def test_expected_auroc_equals_auroc_for_binary_truth():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500), 2)
    assert expected_auroc(s, y) == pytest.approx(auroc(y, s), abs=1e-12)
    assert expected_auroc(P4, Y4) == pytest.approx(0.75, abs=1e-15)


def test_expected_auroc_matches_brute_force_with_ties():
    rng = np.random.default_rng(9)
    s = np.round(rng.random(60), 1)
    t = rng.random(60)
    assert expected_auroc(s, t) == pytest.approx(_expected_auroc_brute_force(s, t), abs=1e-12)
    assert expected_auroc(t, t) == pytest.approx(_expected_auroc_brute_force(t, t), abs=1e-12)


def test_expected_auroc_by_hand():
    # Two rows, s = (0.2, 0.9), t = (0.5, 0.5): distinct pairs (1 pos, 0 neg) weight 0.25
    # concordant, (0 pos, 1 neg) weight 0.25 discordant -> 1/2. Constant scores -> 1/2.
    assert expected_auroc([0.2, 0.9], [0.5, 0.5]) == pytest.approx(0.5, abs=1e-15)
    assert expected_auroc([0.3, 0.3, 0.3], [0.1, 0.5, 0.9]) == pytest.approx(0.5, abs=1e-15)
    # s = (0.2, 0.9), t = (0.1, 0.8): concordant 0.8 x 0.9, discordant 0.1 x 0.2.
    assert expected_auroc([0.2, 0.9], [0.1, 0.8]) == pytest.approx(0.72 / 0.74, abs=1e-15)


def test_oracle_expected_auroc_beats_noisy_score():
    rng = np.random.default_rng(10)
    t = _expit(rng.normal(-2, 1, 20_000))
    noisy = _expit(_logit(t) + rng.normal(0, 1, t.size))
    assert expected_auroc(t, t) > expected_auroc(noisy, t) > 0.5


# --- summarize -----------------------------------------------------------------------------------

KEYS = {
    "n",
    "events",
    "expected_events",
    "auroc",
    "auroc_ci",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "calibration_intercept_ci",
    "calibration_slope_ci",
    "ece",
    "net_benefit",
    "too_small",
}


def test_summarize_keys_types_and_values():
    rng = np.random.default_rng(11)
    t = _expit(rng.normal(-2, 1, 3000))
    y = (rng.random(t.size) < t).astype(int)
    p = _expit(_logit(t) + rng.normal(0, 0.5, t.size))
    out = summarize(y, p, p_true=t, n_boot=50)
    assert set(out) == KEYS | {"oracle_auroc", "expected_auroc", "oracle_expected_auroc"}
    json.dumps(out, allow_nan=False)  # plain, finite, serialisable
    assert out["n"] == 3000 and out["events"] == int(y.sum())
    assert type(out["n"]) is int and type(out["auroc"]) is float
    assert out["auroc"] == pytest.approx(auroc(y, p))
    assert out["auroc_ci"][0] < out["auroc"] < out["auroc_ci"][1]
    assert out["calibration_slope_ci"][0] < out["calibration_slope"] < out["calibration_slope_ci"][1]
    assert out["calibration_intercept_ci"][0] < out["calibration_intercept"] < out["calibration_intercept_ci"][1]
    assert out["oracle_auroc"] == pytest.approx(auroc(y, t))
    assert out["expected_auroc"] == pytest.approx(expected_auroc(p, t))
    assert out["oracle_expected_auroc"] == pytest.approx(expected_auroc(t, t))
    assert list(out["net_benefit"]) == ["0.005", "0.01", "0.02", "0.05", "0.1", "0.2"]
    assert set(out["net_benefit"]["0.05"]) == {"model", "treat_all"}


def test_summarize_without_p_true_has_only_contract_keys():
    out = summarize(Y4, P4, n_boot=20)
    assert set(out) == KEYS
    assert out["auroc"] == pytest.approx(0.75)
    assert out["brier"] == pytest.approx(np.mean((P4 - Y4) ** 2))


def test_too_few_events_keep_the_auroc_but_no_interval_or_calibration_fit():
    # One event in 216 rows had given an AUROC interval of [0.934, 0.981] and a slope of -266.
    rng = np.random.default_rng(12)
    p = rng.random(216)
    y = np.zeros(216, dtype=int)
    y[np.argmax(p)] = 1
    out = summarize(y, p, n_boot=50)
    assert out["too_small"] is True and out["auroc"] == pytest.approx(1.0)
    assert out["auroc_ci"] is None and out["calibration_slope"] is None and out["calibration_intercept"] is None
    big = summarize((rng.random(3000) < 0.1).astype(int), rng.random(3000), n_boot=20)
    assert big["too_small"] is False and big["auroc_ci"] is not None and big["calibration_slope"] is not None


@pytest.mark.parametrize(
    "y, p",
    [
        (np.array([], dtype=int), np.array([])),
        (np.zeros(5, dtype=int), np.linspace(0.1, 0.5, 5)),
        (np.ones(5, dtype=int), np.linspace(0.1, 0.5, 5)),
    ],
    ids=["empty", "no-events", "all-events"],
)
def test_summarize_degenerate_cases_return_none(y, p):
    out = summarize(y, p, p_true=np.full(len(y), 0.3), n_boot=20)
    json.dumps(out, allow_nan=False)
    assert out["n"] == len(y)
    for key in ("auroc", "auroc_ci", "calibration_intercept", "calibration_slope", "oracle_auroc"):
        assert out[key] is None
    if len(y):
        assert out["brier"] is not None and out["ece"] is not None
        assert out["expected_auroc"] == pytest.approx(0.5)  # constant p_true: nothing to rank
        assert (out["auprc"] is None) == (y.sum() == 0)
    else:
        assert out["brier"] is None and out["ece"] is None and out["auprc"] is None
        assert all(v == {"model": None, "treat_all": None} for v in out["net_benefit"].values())


def test_summarize_drops_rows_without_prediction():
    p = np.array([0.1, 0.4, np.nan, 0.35, 0.8])
    y = np.array([0, 0, 1, 1, 1])
    out = summarize(y, p, n_boot=20)
    assert out["n"] == 4 and out["events"] == 2
    assert out["auroc"] == pytest.approx(0.75)


def test_the_summary_table_marks_an_auroc_of_too_few_events():
    from training.train import summary_table

    def block(n, events, auroc):
        return {
            "n": n,
            "events": events,
            "auroc": auroc,
            "baselines": {"logistic_regression": {"auroc": auroc}},
            "calibration_slope": None,
            "ece": 0.01,
        }

    table = summary_table(
        {"outcomes": {"cvd": block(3322, 0, None), "ckd": block(3322, 3, 0.874), "diabetes": block(3322, 200, 0.8)}}
    )
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert rows["ckd"].endswith(" *") and not rows["diabetes"].endswith("*") and not rows["cvd"].endswith("*")
    assert rows["*"].startswith("* fewer than 10 events or non-events")


def test_an_auroc_that_cannot_be_told_from_chance_is_a_warning_naming_the_label_join():
    # A model trained on shuffled labels (a broken join) was registered without a word.
    from training.evaluate import discrimination_warnings

    rng = np.random.default_rng(0)
    p_true = rng.uniform(0.01, 0.3, 3000)
    y = rng.binomial(1, p_true).astype(float)
    shuffled = rng.permutation(y)
    metrics = {
        "outcomes": {
            "cvd": summarize(y, p_true, p_true, n_boot=100),
            "hypertension": summarize(shuffled, p_true + rng.normal(0, 0.01, 3000).clip(-0.009), p_true, n_boot=100),
        }
    }
    (line,) = discrimination_warnings(metrics, "on the held-out persons")
    assert line.startswith("hypertension: AUROC 0.") and "on the held-out persons cannot be told from chance" in line
    assert "oracle AUROC 0." in line and line.endswith(
        "check that each label belongs to its checkup (the join to the outcomes)"
    )
    # Wholly below 0.5: the labels look swapped.
    swapped = {"outcomes": {"cvd": summarize(1 - y, p_true, p_true, n_boot=100)}}
    (line,) = discrimination_warnings(swapped, "on this file")
    assert "on this file is below chance (are 0 and 1 swapped?)" in line
