import numpy as np

from training.promotion import calibration_ok, decide


def draw(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-3, 1.2, n)))
    y = (rng.random(n) < p).astype(float)
    return y, p


def test_first_model_is_promoted_when_calibrated():
    y, p = draw()
    d = decide({"cvd": y}, {"cvd": p}, None)
    assert d.promote, d.reasons


def test_a_first_model_not_promoted_does_not_speak_of_a_champion():
    y, p = draw()
    d = decide({"cvd": y}, {"cvd": np.clip(p * 2.5, 0, 0.99)}, None)
    assert not d.promote and d.summary().startswith("not promoted to be the first champion")
    assert decide({"cvd": y}, {"cvd": np.clip(p * 2.5, 0, 0.99)}, {"cvd": p}).summary().startswith("keep the champion")


def test_equal_challenger_is_promoted_and_worse_one_is_not():
    y, p = draw()
    assert decide({"cvd": y}, {"cvd": p}, {"cvd": p}).promote
    rng = np.random.default_rng(1)
    noisy = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 1.5, p.size))))
    # Recalibrate the noisy scores so only ranking is worse.
    d = decide({"cvd": y}, {"cvd": noisy * p.mean() / noisy.mean()}, {"cvd": p})
    assert not d.promote
    assert any("worse than the champion" in r for r in d.reasons)


def test_miscalibrated_challenger_is_not_promoted():
    y, p = draw()
    d = decide({"cvd": y}, {"cvd": np.clip(p * 2.5, 0, 0.99)}, {"cvd": p})
    assert not d.promote
    assert any("calibration" in r for r in d.reasons)
    assert calibration_ok(y, p)[0]


def test_dropping_an_outcome_is_not_promoted():
    y, p = draw()
    d = decide({"cvd": y, "ckd": y}, {"cvd": p}, {"cvd": p, "ckd": p})
    assert not d.promote


def test_thin_evidence_keeps_the_champion_and_says_why():
    y, p = draw(n=2_000, seed=2)
    y[np.flatnonzero(y)[12:]] = 0  # 12 events left
    d = decide({"cvd": y}, {"cvd": p}, {"cvd": p})
    assert not d.promote
    assert "not enough evidence: cvd has 12 held-out events, 50 needed" in d.reasons
    # The minimum is configurable.
    assert (
        "not enough evidence: cvd has 12 held-out events, 10 needed"
        not in decide({"cvd": y}, {"cvd": p}, {"cvd": p}, min_events=10).reasons
    )


def test_few_events_are_not_enough_evidence_even_when_the_interval_lies_below_zero():
    # Five events whose bootstrap lay wholly below zero had been called "AUROC worse than the champion".
    y, p = draw(n=2_000, seed=2)
    y[np.flatnonzero(y)[5:]] = 0
    worse = np.where(y == 1, p.min(), p)  # the events ranked last: every resample says worse
    d = decide({"cvd": y}, {"cvd": worse}, {"cvd": p})
    assert d.per_outcome["cvd"]["ci_high"] < 0 and d.per_outcome["cvd"]["enough_evidence"] is False
    assert "not enough evidence: cvd has 5 held-out events, 50 needed" in d.reasons
    assert not any("worse than the champion" in r for r in d.reasons)
    assert type(d.per_outcome["cvd"]["calibration_judged"]) is bool  # JSON true/false, never "True"


def test_wide_interval_of_the_difference_keeps_the_champion():
    y, p = draw(n=3_000, seed=3)
    rng = np.random.default_rng(4)
    other = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 1.0, p.size))))
    d = decide({"cvd": y}, {"cvd": other * p.mean() / other.mean()}, {"cvd": p}, min_events=10, max_ci_width=0.01)
    assert not d.promote
    assert any(
        r.startswith("not enough evidence: cvd AUROC difference") or "worse than the champion" in r for r in d.reasons
    )


def test_a_first_model_with_few_events_names_the_calibration_it_could_not_judge():
    # One held-out event had been "judged" with a meaningless interval (slope 1.61, 95% CI 1.31-2.32).
    y, p = draw(n=300, seed=4)
    y[:] = 0
    y[0] = 1
    d = decide({"cvd": y}, {"cvd": p}, None)
    assert d.promote and d.per_outcome["cvd"]["calibration_judged"] is False
    assert "cvd: calibration not judged: 1 held-out events, 10 needed" in d.reasons
    assert "CI" not in d.per_outcome["cvd"]["calibration"]


def test_gross_miscalibration_fails_from_a_few_dozen_events():
    rng = np.random.default_rng(5)
    p = np.full(2000, 0.015)
    y = (rng.random(2000) < p).astype(float)
    assert 20 <= y.sum() < 50
    first = decide({"ckd": y}, {"ckd": p * 8}, None)
    assert not first.promote and "intercept outside" in " ".join(first.reasons)
    # An outcome the champion lacks: not added miscalibrated, nor on too few events to judge.
    _, pc = draw(n=2000)
    yc = (rng.random(2000) < pc).astype(float)
    added = decide({"cvd": yc, "ckd": y}, {"cvd": pc, "ckd": np.full(2000, 0.5)}, {"cvd": pc}, min_events=1)
    assert not added.promote and any(r.startswith("ckd: ") and "outside" in r for r in added.reasons)
    assert added.per_outcome["ckd"]["calibration_ok"] is False
    few = y.copy()
    few[np.flatnonzero(few)[3:]] = 0
    thin = decide({"cvd": yc, "ckd": few}, {"cvd": pc, "ckd": p}, {"cvd": pc}, min_events=1)
    assert not thin.promote and "ckd: calibration not judged: 3 held-out events, 10 needed" in thin.reasons


def test_a_model_no_better_than_a_coin_is_never_promoted_not_even_the_first():
    # Labels joined to the wrong persons: calibrated on average, no discrimination.
    y, p = draw()
    shuffled = np.random.default_rng(5).permutation(p)
    d = decide({"cvd": y}, {"cvd": shuffled}, None)
    assert not d.promote and "wholly below 0.6: no useful discrimination" in d.summary()
    row = d.per_outcome["cvd"]
    assert row["auroc_floor_ok"] is False  # its own field: promotion.json says which rule refused
    assert decide({"cvd": y}, {"cvd": p}, None).promote


def test_a_first_model_must_beat_chance_where_the_floor_cannot_tell():
    # Shuffled labels with 20 held-out events: an AUROC interval like 0.41-0.69 is not wholly below
    # 0.6, nor is the calibration outside its bounds beyond chance: only the first model's "better
    # than a coin" rule refuses it.
    yc, pc = draw(n=2000)
    rng = np.random.default_rng(9)
    p = 1 / (1 + np.exp(-rng.normal(-4, 1.0, 1000)))
    y = (rng.random(1000) < p).astype(float)
    assert y.sum() == 20
    shuffled = rng.permutation(p)
    d = decide({"hypertension": y}, {"hypertension": shuffled}, None)
    assert not d.promote and "not shown better than chance (0.5), and there is no champion's" in d.summary()
    assert "outside" not in d.summary()
    row = d.per_outcome["hypertension"]
    assert row["auroc_chance_ok"] is False and row["auroc_floor_ok"] is True  # which rule refused
    # An outcome the champion lacks is as uncompared as a first model's: the same rule.
    added = decide({"cvd": yc, "hypertension": y}, {"cvd": pc, "hypertension": shuffled}, {"cvd": pc}, min_events=1)
    assert not added.promote and added.per_outcome["hypertension"]["auroc_chance_ok"] is False
    # The same few events with a model that does rank: promoted as the first champion.
    assert decide({"hypertension": y}, {"hypertension": p}, None).promote


def test_the_gate_resamples_persons_so_copies_of_checkups_are_not_more_evidence():
    # 800 persons with 6 identical checkups each: a difference that the row bootstrap would call
    # precise enough is as uncertain as 800 persons make it.
    from training.promotion import paired_auroc_difference

    y, p = draw(n=800, seed=3)
    rng = np.random.default_rng(2)
    other = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 0.8, p.size))))
    y6, p6, o6 = (np.repeat(a, 6) for a in (y, p, other))
    persons = np.repeat(np.arange(800), 6)
    _, low, high = paired_auroc_difference(y, p, other, n_boot=300, seed=1)
    _, row_low, row_high = paired_auroc_difference(y6, p6, o6, n_boot=300, seed=1)
    _, person_low, person_high = paired_auroc_difference(y6, p6, o6, n_boot=300, seed=1, groups=persons)
    assert row_high - row_low < 0.6 * (high - low)
    assert abs((person_high - person_low) / (high - low) - 1) < 0.25
    # decide() passes the persons on: its reasons quote the wider interval.
    wide = decide({"cvd": y6}, {"cvd": p6}, {"cvd": o6}, persons=persons).per_outcome["cvd"]
    narrow = decide({"cvd": y6}, {"cvd": p6}, {"cvd": o6}).per_outcome["cvd"]
    assert wide["ci_high"] - wide["ci_low"] > 1.5 * (narrow["ci_high"] - narrow["ci_low"])
