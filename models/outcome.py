"""One fitted outcome: its booster, the logistic partner it may blend with, and its calibration.

The blend and the calibration live here and only here:

    raw log-odds        = weight * booster margin + (1 - weight) * partner margin
    calibrated log-odds = calib_a + calib_b * raw

Fitting uses `OutcomeModel.blend` (the calibration is fitted on it). For scoring, each booster's
whole map is folded into one affine `Head`: calibrated log-odds = const + scale * margin + partner
terms, and `Heads` evaluates many at once (an outcome's booster and its interval members, all
outcomes of a request), whatever evaluated the boosters (`models.engine`). Because the map is
affine in log-odds, SHAP contributions stay exactly additive through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import xgboost as xgb

from models import interval as interval_
from models.logistic import LinearTerms, LogisticRisk


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_platt(margin: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Logistic recalibration y ~ a + b * margin by Newton's method; b is kept positive so that
    calibration never reverses the model's ranking (monotone constraints survive)."""
    a, b = 0.0, 1.0
    X = np.column_stack([np.ones_like(margin), margin])
    for _ in range(iterations):
        p = sigmoid(a + b * margin)
        w = p * (1 - p) + 1e-12
        grad = X.T @ (y - p)
        hess = (X * w[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(max(b, 1e-3))


@dataclass
class Calibrated:
    """A booster and the Platt recalibration (calib_a + calib_b * raw log-odds) of its output."""

    booster: xgb.Booster
    calib_a: float
    calib_b: float


@dataclass
class Member(Calibrated):
    """One resampled member of an outcome's interval ensemble (see `models.interval`): a booster fit
    on half of the persons with the main model's setting and rounds, the logistic partner refit on
    that half (None when the main model does not blend), and its own Platt calibration."""

    linear: LogisticRisk | None = None


@dataclass
class OutcomeModel(Calibrated):
    """A fitted outcome: booster, linear partner, blend weight, recalibration, and how it was chosen.

    weight is 1 (the booster alone) unless the linear partner helped on validation.
    """

    linear: LogisticRisk
    weight: float = 1.0
    info: dict = field(default_factory=dict)
    # The interval ensemble (empty in bundles saved before it existed: no interval).
    members: list[Member] = field(default_factory=list)

    @property
    def blends(self) -> bool:
        return self.weight < 1.0

    def blend(self, margin: np.ndarray, X: np.ndarray, partner: LogisticRisk | None = None) -> np.ndarray:
        """Raw log-odds from booster margins of rows X: the margin blended with the linear partner
        (this outcome's, or a member's own `partner`) when the outcome blends."""
        margin = np.asarray(margin, dtype=float)
        if not self.blends:
            return margin
        linear = self.linear if partner is None else partner
        return self.weight * margin + (1.0 - self.weight) * linear.margin(X)

    def head(self) -> Head:
        """The outcome's booster margin to calibrated log-odds, folded into one affine map."""
        return self._head(self, self.linear)

    def member_heads(self) -> list[Head]:
        """The same for each interval member: this outcome's weight, the member's own partner (this
        outcome's where it has none) and calibration."""
        return [self._head(m, self.linear if m.linear is None else m.linear) for m in self.members]

    def _head(self, calibrated: Calibrated, partner: LogisticRisk) -> Head:
        a, b = calibrated.calib_a, calibrated.calib_b
        if not self.blends:
            return Head(a, b, None)
        # a + b * (w * margin + (1 - w) * (intercept + terms)) = const + b * w * margin + b * (1 - w) * terms
        lin = partner.terms().scaled(b * (1.0 - self.weight))
        return Head(a + lin.intercept, b * self.weight, lin)

    @property
    def interval_multiplier(self) -> float | None:
        """Half-width of the interval in member standard deviations, or None without members."""
        if len(self.members) < 2:
            return None
        return interval_.multiplier(len(self.members))


@dataclass(frozen=True)
class Head:
    """One booster's output to calibrated log-odds: const + scale * margin + the partner's terms
    (none when the outcome does not blend). Its explanation is the same map applied to SHAP values:
    contributions = scale * booster contributions + partner terms, base = const + scale * bias."""

    const: float
    scale: float
    partner: LinearTerms | None  # its intercept is already in const


class Heads:
    """Many heads evaluated together on the same rows; `which` picks heads by position."""

    def __init__(self, heads: Sequence[Head]) -> None:
        self.heads = tuple(heads)
        # Per selection of heads, their parameters gathered once: a request asks for the same few
        # selections (all outcomes, all members) every time.
        self._selections: dict[bytes, _Selection] = {}

    def select(self, which: np.ndarray) -> _Selection:
        key = np.asarray(which, dtype=np.int64).tobytes()
        chosen = self._selections.get(key)
        if chosen is None:
            chosen = self._selections[key] = _Selection([self.heads[i] for i in which])
        return chosen

    def logits(self, margin: np.ndarray, X: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Calibrated log-odds (n x k) of the heads `which` from their boosters' margins (n x k)."""
        return self.select(which).logits(margin, X)

    def explanation(
        self, contribs: np.ndarray, bias: np.ndarray, X: np.ndarray, which: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(contributions k x n x F, base n x k) in calibrated log-odds of the heads `which` from
        their boosters' SHAP values (k x n x F) and biases (n x k): they add up to `logits`."""
        return self.select(which).explanation(contribs, bias, X)


class _Selection:
    """Heads in one order, their parameters as arrays: the partner terms summed by two products."""

    def __init__(self, heads: Sequence[Head]) -> None:
        self.const = np.array([h.const for h in heads], dtype=float)
        self.scale = np.array([h.scale for h in heads], dtype=float)
        blended = [(q, h.partner) for q, h in enumerate(heads) if h.partner is not None]
        self.blended = bool(blended)
        self.cols = np.array([q for q, _ in blended], dtype=np.int64)
        if blended:
            partners = [p for _, p in blended]
            self.slope = np.array([p.slope for p in partners])
            self.offset = np.array([p.offset for p in partners])
            self.missing = np.array([p.missing for p in partners])
            self.delta = self.missing - self.offset  # what a missing value changes
            self.offset_sum = self.offset.sum(axis=1)

    def logits(self, margin: np.ndarray, X: np.ndarray) -> np.ndarray:
        out = margin.astype(float) * self.scale + self.const
        if self.blended:
            # einsum, not @: BLAS threads cost far more than these small products on a busy machine.
            miss = np.isnan(X)
            out[:, self.cols] += (
                np.einsum("nf,kf->nk", np.where(miss, 0.0, X), self.slope)
                + np.einsum("nf,kf->nk", miss.astype(float), self.delta)
                + self.offset_sum
            )
        return out

    def explanation(self, contribs: np.ndarray, bias: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per = contribs * self.scale[:, None, None]
        base = bias * self.scale + self.const
        if self.blended:
            terms = np.where(
                np.isnan(X)[None], self.missing[:, None], X[None] * self.slope[:, None] + self.offset[:, None]
            )
            per[self.cols] += terms
        return per, base
