"""Penalised logistic regression on the model matrix: the baseline every outcome model must beat,
and the simpler partner the bundle blends with when it ranks better on validation data.

Missing values are imputed with the training median plus a missing-indicator per feature, so the
model still learns what "not measured" means. Its log-odds decompose exactly per feature
(coefficient x centred value, indicator included), which keeps blended explanations additive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class LinearTerms:
    """A linear model as what it adds per feature: `missing` where the value is NaN, else
    slope * value + offset; its log-odds are intercept + the sum of the terms.

    This is `LogisticRisk`'s design (imputation, indicator, standardisation) multiplied out with its
    coefficients, so scoring needs no design matrix and sums of terms are two matrix products."""

    slope: np.ndarray
    offset: np.ndarray
    missing: np.ndarray
    intercept: float

    def scaled(self, c: float) -> LinearTerms:
        """The same model with every term and the intercept multiplied by `c`."""
        return LinearTerms(c * self.slope, c * self.offset, c * self.missing, c * self.intercept)

    def terms(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds (n x F)."""
        X = np.asarray(X, dtype=float)
        return np.where(np.isnan(X), self.missing, X * self.slope + self.offset)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """intercept + the sum of the terms, per row."""
        X = np.asarray(X, dtype=float)
        miss = np.isnan(X)
        return (
            np.where(miss, 0.0, X) @ self.slope
            + miss @ (self.missing - self.offset)
            + (self.offset.sum() + self.intercept)
        )


class LogisticRisk:
    """Median imputation + missing indicators + standardisation + L2 logistic regression.

    `monotone` gives each feature's required direction (+1, -1, 0 = free); a feature whose fitted
    coefficient has the wrong sign is dropped and the model refit, so the clinical directions the
    boosted model guarantees also hold for this model and for any blend of the two.
    """

    def __init__(self, C: float = 0.1, max_iter: int = 500, monotone: tuple[int, ...] | None = None) -> None:
        self.C = C
        self.max_iter = max_iter
        self.monotone = monotone

    def _design(self, X: np.ndarray) -> np.ndarray:
        missing = np.isnan(X)
        filled = np.where(missing, self.median_, X)
        z = (filled - self.mean_) / self.scale_
        m = (missing - self.miss_mean_) / self.miss_scale_
        return np.hstack([z, m])

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRisk:
        X = np.asarray(X, dtype=float)
        with np.errstate(all="ignore"):
            median = np.nanmedian(X, axis=0)
        self.median_ = np.where(np.isnan(median), 0.0, median)
        filled = np.where(np.isnan(X), self.median_, X)
        self.mean_ = filled.mean(axis=0)
        self.scale_ = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        missing = np.isnan(X).astype(float)
        self.miss_mean_ = missing.mean(axis=0)
        self.miss_scale_ = np.where(missing.std(axis=0) > 0, missing.std(axis=0), 1.0)
        design = self._design(X)
        k = X.shape[1]
        direction = np.asarray(self.monotone if self.monotone is not None else np.zeros(k), dtype=float)
        active = np.ones(k, dtype=bool)
        for _ in range(k):
            cols = np.concatenate([active, np.ones(k, dtype=bool)])
            lr = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(design[:, cols], y)
            coef = np.zeros(2 * k)
            coef[cols] = lr.coef_[0]
            wrong = active & (direction * coef[:k] < 0)
            if not wrong.any():
                break
            active &= ~wrong
        lr.coef_ = coef[None, :]
        lr.n_features_in_ = 2 * k
        self.model_ = lr
        return self

    def terms(self) -> LinearTerms:
        """The fitted model per feature. Centred design columns have mean zero on the training rows,
        so each feature's share is its value's and its missingness's coefficient times its centred
        design value: coef_v * (x - mean) / scale + coef_m * (0 - miss_mean) / miss_scale, with the
        median for x and 1 for the indicator when x is missing."""
        coef = np.asarray(self.model_.coef_[0], dtype=float)
        k = len(self.mean_)
        cv, cm = coef[:k], coef[k:]
        absent = cm * (0.0 - self.miss_mean_) / self.miss_scale_
        return LinearTerms(
            slope=cv / self.scale_,
            offset=absent - cv * self.mean_ / self.scale_,
            missing=cv * (self.median_ - self.mean_) / self.scale_ + cm * (1.0 - self.miss_mean_) / self.miss_scale_,
            intercept=float(self.model_.intercept_[0]),
        )

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Log-odds per row."""
        return self.terms().margin(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.margin(X)))

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per-feature log-odds n x F, base value n): they add up to `margin`."""
        t = self.terms()
        per_feature = t.terms(X)
        return per_feature, np.full(len(per_feature), t.intercept)

    def to_dict(self) -> dict:
        return {
            "C": self.C,
            "max_iter": self.max_iter,
            "monotone": list(self.monotone) if self.monotone is not None else None,
            "median": self.median_.tolist(),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "miss_mean": self.miss_mean_.tolist(),
            "miss_scale": self.miss_scale_.tolist(),
            "coef": self.model_.coef_[0].tolist(),
            "intercept": float(self.model_.intercept_[0]),
        }

    @classmethod
    def from_dict(cls, d: dict) -> LogisticRisk:
        monotone = tuple(d["monotone"]) if d.get("monotone") is not None else None
        m = cls(C=d["C"], max_iter=d["max_iter"], monotone=monotone)
        m.median_ = np.array(d["median"])
        m.mean_ = np.array(d["mean"])
        m.scale_ = np.array(d["scale"])
        m.miss_mean_ = np.array(d["miss_mean"])
        m.miss_scale_ = np.array(d["miss_scale"])
        lr = LogisticRegression(C=m.C)
        lr.coef_ = np.array([d["coef"]])
        lr.intercept_ = np.array([d["intercept"]])
        lr.classes_ = np.array([0.0, 1.0])
        lr.n_features_in_ = len(d["coef"])
        m.model_ = lr
        return m
