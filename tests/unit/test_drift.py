"""The monitor's statistics (training.drift) on known shifts, and the drift reference's pieces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.drift_reference import expected_auroc, summarise_categorical, summarise_numeric
from training import metrics
from training.drift import Thresholds, homogeneity, input_drift, psi, two_proportions

RNG = np.random.default_rng(5)
REF_ROWS = 20_000


def test_psi_known_values():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # (0.6 - 0.4) ln(0.6/0.4) + (0.4 - 0.6) ln(0.4/0.6) = 0.4 ln 1.5
    assert psi([0.4, 0.6], [0.6, 0.4]) == pytest.approx(0.4 * np.log(1.5))
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))  # an empty reference bin stays finite


def test_homogeneity_tests_agree_with_scipy():
    from scipy.stats import chi2_contingency

    ref, cur = np.array([100.0, 200, 300]), np.array([120.0, 180, 260])
    stat, p = homogeneity(ref, cur)
    expected = chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert stat == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    g, pg = homogeneity(ref, cur, "g")
    expected = chi2_contingency(np.vstack([ref, cur]), correction=False, lambda_="log-likelihood")
    assert g == pytest.approx(expected.statistic) and pg == pytest.approx(expected.pvalue)


def test_two_proportions():
    diff, p = two_proportions(100, 1000, 300, 1000)
    assert diff == pytest.approx(0.2) and p < 1e-20
    assert two_proportions(100, 1000, 101, 1000)[1] > 0.9


def reference_of(values: np.ndarray) -> dict:
    return summarise_numeric(values)


def test_no_shift_no_alarm_and_a_shift_alarms():
    train = RNG.normal(130, 15, REF_ROWS)
    ref = reference_of(train)
    assert len(ref["edges"]) == 9 and sum(ref["shares"]) == pytest.approx(1.0)
    block, alarms = input_drift("sbp", ref, REF_ROWS, RNG.normal(130, 15, 5000), Thresholds())
    assert alarms == [] and block["psi"] < 0.02 and block["status"] == "ok"
    block, alarms = input_drift("sbp", ref, REF_ROWS, RNG.normal(145, 15, 5000), Thresholds())
    assert block["psi"] > 0.5 and block["p_value"] < 1e-10
    assert [(a["feature"], a["statistic"]) for a in alarms] == [("sbp", "psi")]
    # A moderate shift: PSI between warn and alarm is a warning, no alarm.
    block, alarms = input_drift("sbp", ref, REF_ROWS, RNG.normal(136, 15, 20000), Thresholds())
    assert 0.1 < block["psi"] < 0.2 and block["status"] == "warn" and alarms == []


def test_a_big_shift_on_few_rows_is_not_significant():
    ref = reference_of(RNG.normal(130, 15, REF_ROWS))
    block, alarms = input_drift("sbp", ref, REF_ROWS, RNG.normal(140, 15, 8), Thresholds())
    assert block["p_value"] > 0.001 and alarms == []


def test_missing_rate_change():
    train = RNG.normal(200, 30, REF_ROWS)
    train[: REF_ROWS // 10] = np.nan  # 10 % missing
    ref = reference_of(train)
    cur = RNG.normal(200, 30, 5000)
    cur[:2500] = np.nan  # 50 % missing
    _, alarms = input_drift("ldl", ref, REF_ROWS, cur, Thresholds())
    assert ("ldl", "missing_rate_change") in {(a["feature"], a["statistic"]) for a in alarms}
    change = next(a for a in alarms if a["statistic"] == "missing_rate_change")
    assert change["value"] == pytest.approx(0.4, abs=0.02)
    cur[:2500] = RNG.normal(200, 30, 2500)
    cur[:600] = np.nan  # 12 %: within 10 points
    _, alarms = input_drift("ldl", ref, REF_ROWS, cur, Thresholds())
    assert alarms == []


def test_new_category():
    ref = summarise_categorical(pd.Series(RNG.choice([1.0, 2.0, 3.0], REF_ROWS)))
    assert set(ref["categories"]) == {"1", "2", "3"}
    cur = pd.Series(np.r_[RNG.choice([1.0, 2.0, 3.0], 5000), np.full(50, 9.0)])
    block, alarms = input_drift("smoking_status", ref, REF_ROWS, cur, Thresholds())
    assert block["new_categories"] == {"9": 50}
    assert ("smoking_status", "new_category") in {(a["feature"], a["statistic"]) for a in alarms}
    # Two rows of an unseen code: reported, not alarmed.
    cur = pd.Series(np.r_[RNG.choice([1.0, 2.0, 3.0], 5000), [9.0, 9.0]])
    block, alarms = input_drift("smoking_status", ref, REF_ROWS, cur, Thresholds())
    assert block["new_categories"] == {"9": 2} and alarms == []


def test_sex_as_text():
    ref = summarise_categorical(pd.Series(RNG.choice(["M", "F"], REF_ROWS)))
    block, alarms = input_drift("sex", ref, REF_ROWS, pd.Series(["M"] * 4000 + ["F"] * 1000), Thresholds())
    assert ("sex", "psi") in {(a["feature"], a["statistic"]) for a in alarms}


def test_expected_auroc_has_one_implementation():
    assert metrics.expected_auroc is expected_auroc
    p = RNG.uniform(0, 1, 2000)
    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert expected_auroc(np.array([0.9, 0.1, 0.8, 0.3]), y) == pytest.approx(metrics.auroc(y, [0.9, 0.1, 0.8, 0.3]))
    assert 0.5 < expected_auroc(p, p) < 1.0


def test_thresholds_from_mapping():
    t = Thresholds.from_mapping({"psi_alarm": "0.3", "test": "g"})
    assert t.psi_alarm == 0.3 and t.test == "g"
    with pytest.raises(ValueError, match="unknown threshold"):
        Thresholds.from_mapping({"psi": 1})
    with pytest.raises(ValueError):
        Thresholds.from_mapping({"test": "ks"})
