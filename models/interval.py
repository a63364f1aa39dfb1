"""The model's own uncertainty about a probability: a nominal 95% interval from resampled members.

Method (fitted in `models.fitting`, evaluated here and by `models.engine`):

* After an outcome's setting, rounds, blend weight and calibration are chosen, B member boosters
  are fit, each on a random HALF of the persons (without replacement; a person's checkups and their
  history-dropout copies travel together) of the rows the main booster was fit on, with the same
  setting and the same number of rounds, without early stopping. When the main model blends in the
  logistic partner, each member refits its partner on the same half. Each member also refits the
  Platt calibration on the other half, the persons it was not fit on, as the main model's
  calibration comes from persons its choosing model was not fit on. The calibration's uncertainty
  is then part of the spread; with few events it is the larger part.
* For an estimator that is smooth in the data, the spread of half-sample estimates around the
  full-sample one equals the spread of the full-sample estimate itself: with m of n units,
  Var(theta_m - theta_n) ~ sigma^2 (1/m - 1/n), so the member spread times sqrt(m / (n - m)) estimates
  the standard error; for halves the factor is 1 (half-sampling ~ the bootstrap, Efron 1982, ch. 6;
  Politis & Romano 1994). It is cheaper than the bootstrap: each member sees half the rows.
* On the calibrated log-odds scale, around the main model's own logit z:
  z +/- (t(0.975, B - 1) * factor * s + |mean - z|), where s is the members' standard deviation
  about their mean. Student's t, not 1.96: s comes from only B draws. Mapped back with the sigmoid,
  the interval always contains the probability.
* |mean - z| is the smoothing bias that resampling alone misses. A boosted model smooths more
  where data are thin, and a half-sample smooths more than the full sample; how far the members'
  mean lies from the full model estimates that bias (the half-sampling analogue of the bootstrap's
  bias estimate, Efron & Tibshirani 1993, ch. 10). It widens the interval on both sides, rather than
  moving it, because a bias estimate from B members is itself noisy. On a truth that is a function
  of the record (bench/record_truth.py, 10,000 training persons), it raised the coverage of the
  true risk from 77-96% to 88-98%; without it, the interval missed up to a quarter of the truth.

What it is, and what it is not: this is the ESTIMATION uncertainty of the model's probability for
people with this checkup (how much it would move if refit on another sample of the same size). It
says nothing about what the checkup does not record; a person's own risk, which also depends on
unrecorded physiology, scatters around the probability by more than this interval (see
bench/bench_intervals.py for measured coverage of both targets).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVEL = 0.95
SUBSAMPLE = 0.5  # share of persons in each member's sample (half-sampling)
METHOD = (
    "half-sampling of persons: members refit with the chosen setting and rounds on random halves of "
    "the persons; logit +/- (t(0.975, B-1) * sqrt(m/(n-m)) * member SD + |member mean - logit|), around "
    "the model's logit"
)


def scale_factor(share: float = SUBSAMPLE) -> float:
    """sqrt(m / (n - m)): from the spread of m-of-n subsample estimates to the full sample's SE."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"subsample share must be in (0, 1), not {share}")
    return float(np.sqrt(share / (1.0 - share)))


def multiplier(members: int, level: float = LEVEL, share: float = SUBSAMPLE) -> float:
    """Half-width of the interval in units of the members' standard deviation."""
    if members < 2:
        raise ValueError("an interval needs at least two members")
    return float(stats.t.ppf(0.5 + level / 2.0, members - 1)) * scale_factor(share)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1.0 - 1e-15)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def halfwidth(member_logits: np.ndarray, mult: float | np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Per row, the interval's half-width in calibrated log-odds: `mult` times the standard
    deviation (ddof=1) of that row's member logits (n x B; or n x outcomes x B with a multiplier
    per outcome), plus, with `center` (the model's own logits, n or n x outcomes), how far the
    members' mean lies from it: the smoothing bias estimate (see the module docstring)."""
    z = np.asarray(member_logits, dtype=float)
    half = mult * z.std(axis=-1, ddof=1)
    if center is not None:
        half = half + np.abs(z.mean(axis=-1) - np.asarray(center, dtype=float))
    return half


def around(point: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) probabilities: logit(point) -/+ half, mapped back; always contains `point`."""
    point = np.asarray(point, dtype=float)
    z = logit(point)
    low, high = sigmoid(z - half), sigmoid(z + half)
    # Exact containment despite rounding in the logit/sigmoid round trip.
    return np.minimum(low, point), np.maximum(high, point)


def interval(point: np.ndarray, member_logits: np.ndarray, mult: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) probabilities around `point` (n probabilities) from its members' logits (n x B)."""
    point = np.asarray(point, dtype=float)
    members = np.asarray(member_logits, dtype=float).reshape(len(point), -1)
    return around(point, halfwidth(members, mult, logit(point)))


def as_pair(low: float, high: float, digits: int = 6) -> list[float]:
    """The API's `probability_interval`: [low, high], rounded outward so that it still contains
    the probability."""
    scale = 10.0**digits
    return [min(math.floor(low * scale) / scale, float(low)), max(math.ceil(high * scale) / scale, float(high))]


def sigmoid_float(x: float) -> float:
    """`sigmoid` for one float, without overflow for any finite or infinite x (a model
    fitted on few people can give member logits hundreds apart)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def pair_around(point: float, half: float, digits: int = 6) -> list[float]:
    """`around` for one probability (plain floats, for the per-request path), as `as_pair` returns it."""
    p = min(max(float(point), 1e-15), 1.0 - 1e-15)
    z = math.log(p) - math.log1p(-p)
    low = min(sigmoid_float(z - half), float(point))
    high = max(sigmoid_float(z + half), float(point))
    return as_pair(low, high, digits)
