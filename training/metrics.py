"""Evaluation metrics on arrays: discrimination, calibration, clinical utility.

Pure functions, no I/O. `y` holds 0/1 outcomes, `p` predicted probabilities, `sample_weight`
optional non-negative row weights. A metric that is undefined for the data (AUROC with one class,
calibration with no events, ...) comes back as NaN from the individual functions and as None from
`summarize`, whose dict is what metrics.json stores per outcome (contract section 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# The label-free expected AUROC lives with the drift reference (models), which computes it at fit
# time; one implementation, used here as well.
from models.drift_reference import expected_auroc

__all__ = [
    "auroc",
    "auroc_ci",
    "auprc",
    "brier",
    "calibration_ci",
    "calibration_intercept_slope",
    "cluster_codes",
    "ece",
    "calibration_curve",
    "net_benefit",
    "expected_auroc",
    "summarize",
    "flat_metrics",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)

# Probabilities are clipped this far from 0 and 1 before taking logits, so a prediction of exactly
# 0 or 1 gives a large finite logit instead of an infinite one.
_LOGIT_EPS = 1e-12


def _arrays(y, p, sample_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.size} vs {p.size}")
    if sample_weight is None:
        w = np.ones_like(p)
    else:
        w = np.asarray(sample_weight, dtype=float).ravel()
        if w.shape != p.shape:
            raise ValueError("sample_weight must match y and p in length")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError("sample_weight must be finite and non-negative")
    if not np.all(np.isfinite(p)):
        raise ValueError("p contains NaN or infinite values; drop those rows first")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must contain only 0 and 1")
    return y, p, w


def cluster_codes(ids) -> np.ndarray:
    """Integer codes 0..G-1 of the clusters (persons) rows belong to: what the bootstraps resample."""
    return pd.factorize(np.asarray(ids).ravel())[0]


def _draw_counts(rng: np.random.Generator, n: int, groups: np.ndarray | None) -> np.ndarray:
    """How many times each row is drawn in one bootstrap replicate. With `groups` (cluster codes
    per row) whole clusters are drawn with replacement, so a person's checkups go in or out
    together: several checkups of one person are not independent, and resampling rows would make
    the intervals too narrow."""
    if groups is None:
        return np.bincount(rng.integers(0, n, size=n), minlength=n)
    g = int(groups.max()) + 1 if groups.size else 0
    return np.bincount(rng.integers(0, g, size=g), minlength=g)[groups]


def _codes(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    codes = cluster_codes(groups)
    if codes.size != n:
        raise ValueError("groups must match y and p in length")
    return codes


# --------------------------------------------------------------------------------------------
# Discrimination
# --------------------------------------------------------------------------------------------


def _tie_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending sort order of `score` and, in that order, the index of each row's tie group."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    group = np.concatenate(([0], np.cumsum(s[1:] != s[:-1]))) if s.size else np.zeros(0, dtype=np.int64)
    return order, group


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not np.dot: 1-D BLAS ddot pays a thread start-up cost that dominates at this size.
    return float(np.einsum("i,i->", a, b))


def _grouped_auc(group: np.ndarray | None, n_groups: int, wpos: np.ndarray, wneg: np.ndarray) -> float:
    """Weighted AUC from rows already in ascending score order, with tie-group ids.

    AUC = sum over (positive, negative) pairs of w+ w- [s+ > s-] + 0.5 w+ w- [s+ == s-],
    divided by (sum w+)(sum w-). Summing weights per tie group makes it O(n); `group=None` means
    no ties (every row its own group), which skips the grouping.
    """
    if group is None:
        pos, neg = wpos, wneg
    else:
        pos = np.bincount(group, weights=wpos, minlength=n_groups)
        neg = np.bincount(group, weights=wneg, minlength=n_groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg  # negative weight strictly below each group
    concordant = _dot(pos, neg_below) + 0.5 * _dot(pos, neg)
    return float(concordant / (total_pos * total_neg))


def auroc(y, p, sample_weight=None) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present.

    Rank-based, O(n log n), equal to sklearn.metrics.roc_auc_score (weighted or not).
    """
    y, p, w = _arrays(y, p, sample_weight)
    order, group = _tie_groups(p)
    n_groups = int(group[-1]) + 1 if group.size else 0
    return _grouped_auc(group, n_groups, (w * y)[order], (w * (1 - y))[order])


def auroc_ci(
    y, p, n_boot: int = 200, seed: int = 0, alpha: float = 0.05, sample_weight=None, groups=None
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) confidence interval for `auroc`.

    Rows are resampled with replacement, or whole clusters when `groups` (a person id per row) is
    given; each replicate is a count per row, so the scores are sorted once and every replicate
    costs O(n). Replicates with a single class are skipped. Returns (NaN, NaN) when no replicate
    is usable.
    """
    y, p, w = _arrays(y, p, sample_weight)
    n = y.size
    codes = _codes(groups, n)
    if n == 0 or n_boot < 1:
        return float("nan"), float("nan")
    order, group = _tie_groups(p)
    n_groups = int(group[-1]) + 1
    grp = None if n_groups == n else group
    ys, ws = y[order], w[order]
    wy, wny = ws * ys, ws * (1 - ys)
    # Counts drawn directly in sorted order: resampling rows is exchangeable, so this is the same
    # distribution without an extra gather; clusters keep their rows through their codes.
    sorted_codes = None if codes is None else codes[order]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        counts = _draw_counts(rng, n, sorted_codes)
        stats[b] = _grouped_auc(grp, n_groups, counts * wy, counts * wny)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def auprc(y, p, sample_weight=None) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation).

    AP = sum over distinct thresholds (descending) of (recall_k - recall_{k-1}) x precision_k,
    as sklearn.metrics.average_precision_score. NaN when there are no positives.
    """
    y, p, w = _arrays(y, p, sample_weight)
    order, group = _tie_groups(-p)  # descending scores
    if y.size == 0:
        return float("nan")
    n_groups = int(group[-1]) + 1
    tp = np.cumsum(np.bincount(group, weights=(w * y)[order], minlength=n_groups))
    fp = np.cumsum(np.bincount(group, weights=(w * (1 - y))[order], minlength=n_groups))
    total_pos = tp[-1]
    if total_pos <= 0:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    recall_step = np.diff(np.concatenate(([0.0], tp))) / total_pos
    return _dot(recall_step, precision)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def brier(y, p, sample_weight=None) -> float:
    """Mean squared error of the probabilities (weighted); NaN for no rows."""
    y, p, w = _arrays(y, p, sample_weight)
    if w.sum() <= 0:
        return float("nan")
    return float(np.average((p - y) ** 2, weights=w))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(q) - np.log1p(-q)


def _loglik(eta: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    # log-likelihood of a logistic model; logaddexp avoids overflow for large |eta|.
    return _dot(w, y * eta - np.logaddexp(0.0, eta))


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _newton_logistic(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray, beta0: np.ndarray, max_iter: int = 100
) -> np.ndarray | None:
    """Weighted logistic-regression MLE by Newton-Raphson with step halving; None if it fails."""
    beta = beta0.astype(float).copy()
    ll = _loglik(offset + X @ beta, y, w)
    for _ in range(max_iter):
        eta = offset + X @ beta
        mu = _expit(eta)
        grad = X.T @ (w * (y - mu))
        hess = (X * (w * mu * (1 - mu))[:, None]).T @ X
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        # Step halving keeps every iteration an ascent step, so far-off starts cannot diverge.
        t = 1.0
        while t > 1e-10:
            cand = beta + t * step
            ll_new = _loglik(offset + X @ cand, y, w)
            if ll_new >= ll - 1e-12 * abs(ll):
                break
            t *= 0.5
        else:
            return beta
        beta, ll_old, ll = cand, ll, ll_new
        if np.max(np.abs(t * step)) < 1e-10 or abs(ll - ll_old) < 1e-12 * (abs(ll) + 1):
            return beta
    return beta if np.all(np.isfinite(beta)) else None


def calibration_intercept_slope(y, p, sample_weight=None) -> tuple[float, float]:
    """Calibration-in-the-large intercept and calibration slope of probabilities `p`.

    slope: coefficient b of logit(p) in the logistic regression y ~ a + b logit(p) (target 1;
    below 1 means predictions too extreme). intercept: a in y ~ a + offset(logit(p)), i.e. the
    mean shift needed with the slope fixed at 1 (target 0; positive means under-prediction).
    Both NaN without events or non-events (the MLE does not exist); slope NaN when p is constant.
    """
    y, p, w = _arrays(y, p, sample_weight)
    pos, neg = _dot(w, y), _dot(w, 1 - y)
    if pos <= 0 or neg <= 0:
        return float("nan"), float("nan")
    z = _logit(p)
    ones = np.ones((y.size, 1))
    zero = np.zeros(y.size)
    a = _newton_logistic(ones, y, w, offset=z, beta0=np.zeros(1))
    intercept = float(a[0]) if a is not None else float("nan")
    if np.ptp(z) <= 0:
        return intercept, float("nan")
    X = np.column_stack([ones[:, 0], z])
    ab = _newton_logistic(X, y, w, offset=zero, beta0=np.array([0.0, 1.0]))
    slope = float(ab[1]) if ab is not None else float("nan")
    return intercept, slope


def calibration_ci(
    y: np.ndarray, p: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05, groups=None
) -> tuple[list[float | None], list[float | None]]:
    """Percentile bootstrap CIs of the calibration intercept and slope.

    Rows are grouped by (label, logit rounded to 0.01) first, and each replicate's resample of rows
    (of whole clusters with `groups`, as in `auroc_ci`) is summed into those groups: each
    replicate's two logistic fits cost thousands of groups instead of every row (a change of logit
    below 0.005 moves neither)."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    codes = _codes(groups, y.size)
    z = np.round(_logit(p), 2)
    keys, inverse, counts = np.unique(np.column_stack([y, z]), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    pg = np.bincount(inverse, weights=p) / counts
    yg = keys[:, 0]
    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    share = counts / n

    def weights() -> np.ndarray:
        if codes is None:
            return rng.multinomial(n, share)
        return np.bincount(inverse, weights=_draw_counts(rng, n, codes), minlength=len(counts))

    draws = np.array([calibration_intercept_slope(yg, pg, sample_weight=weights()) for _ in range(n_boot)])

    def ci(col: np.ndarray) -> list[float | None]:
        col = col[np.isfinite(col)]
        if col.size == 0:
            return [None, None]
        return [float(x) for x in np.quantile(col, [alpha / 2, 1 - alpha / 2])]

    return ci(draws[:, 0]), ci(draws[:, 1])


def _bins(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin index per row: quantile bins (equal counts, ties kept together) or uniform on [0, 1]."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', not {strategy!r}")
    # Inner edges only: the lowest bin is closed below and the highest closed above.
    return np.searchsorted(edges[1:-1], p, side="right")


def calibration_curve(y, p, n_bins: int = 10, strategy: str = "quantile", sample_weight=None) -> pd.DataFrame:
    """Per-bin mean prediction, observed event rate and row count, for calibration plots.

    Columns: bin, mean_predicted, observed_rate, count (and weight, the bin's total weight).
    Empty bins are left out.
    """
    y, p, w = _arrays(y, p, sample_weight)
    cols = ["bin", "mean_predicted", "observed_rate", "count", "weight"]
    if y.size == 0:
        return pd.DataFrame(columns=cols)
    b = _bins(p, n_bins, strategy)
    m = int(b.max()) + 1
    count = np.bincount(b, minlength=m)
    weight = np.bincount(b, weights=w, minlength=m)
    keep = weight > 0
    sum_p = np.bincount(b, weights=w * p, minlength=m)
    sum_y = np.bincount(b, weights=w * y, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "bin": np.arange(m)[keep],
                "mean_predicted": (sum_p / weight)[keep],
                "observed_rate": (sum_y / weight)[keep],
                "count": count[keep],
                "weight": weight[keep],
            }
        )


def ece(y, p, n_bins: int = 10, strategy: str = "quantile", sample_weight=None) -> float:
    """Expected calibration error: sum over bins of (bin weight share) x |observed - mean predicted|.

    NaN for no rows.
    """
    curve = calibration_curve(y, p, n_bins=n_bins, strategy=strategy, sample_weight=sample_weight)
    total = curve["weight"].sum()
    if len(curve) == 0 or total <= 0:
        return float("nan")
    gap = np.abs(curve["observed_rate"] - curve["mean_predicted"])
    return _dot((curve["weight"] / total).to_numpy(), gap.to_numpy())


# --------------------------------------------------------------------------------------------
# Clinical utility
# --------------------------------------------------------------------------------------------


def net_benefit(
    y, p, thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS, sample_weight=None
) -> dict[str, list[float]]:
    """Decision-curve net benefit (Vickers & Elkin 2006) at each threshold probability pt.

    NB(pt) = TP/n - FP/n x pt/(1 - pt), treating rows with p >= pt. Returns lists aligned with
    `thresholds` under "threshold", "model", "treat_all" (everyone treated: prevalence -
    (1 - prevalence) pt/(1 - pt)) and "treat_none" (always 0). NaN everywhere for no rows.
    """
    y, p, w = _arrays(y, p, sample_weight)
    pts = np.asarray(thresholds, dtype=float).ravel()
    if np.any((pts <= 0) | (pts >= 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    n = w.sum()
    if n <= 0:
        nan = [float("nan")] * pts.size
        return {
            "threshold": pts.tolist(),
            "model": nan,
            "treat_all": list(nan),
            "treat_none": [0.0] * pts.size,
        }
    odds = pts / (1 - pts)
    treat = p[None, :] >= pts[:, None]  # thresholds x rows; thresholds are few
    tp = treat @ (w * y) / n
    fp = treat @ (w * (1 - y)) / n
    prevalence = _dot(w, y) / n
    return {
        "threshold": pts.tolist(),
        "model": (tp - fp * odds).tolist(),
        "treat_all": (prevalence - (1 - prevalence) * odds).tolist(),
        "treat_none": [0.0] * pts.size,
    }


# --------------------------------------------------------------------------------------------
# The metrics.json block
# --------------------------------------------------------------------------------------------


def _f(x) -> float | None:
    """Plain float for JSON; None for NaN / undefined."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


# Below this many events (or non-events) a bootstrap interval of the AUROC and a calibration fit
# mean nothing (one event gave an interval of width 0.05 and a slope of -266): the block says
# `too_small`, keeps the point AUROC and leaves the interval and the calibration fit empty.
MIN_EVENTS = 10


def too_few_events(events: int, n: int) -> bool:
    """Whether `events` among `n` rows are too few (or too nearly all) to judge discrimination and
    calibration (`MIN_EVENTS`): evaluation blocks, subgroups and the monitor's realised figures."""
    return min(events, n - events) < MIN_EVENTS


def summarize(
    y,
    p,
    p_true=None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    n_boot: int = 200,
    seed: int = 0,
    groups=None,
) -> dict:
    """One outcome's metrics.json block (contract section 6), all values JSON-serialisable.

    `groups` (a person id per row) makes the bootstrap intervals resample persons, not checkups.

    Keys: n, events, expected_events, auroc, auroc_ci [low, high], auprc, brier, calibration_intercept,
    calibration_slope (each with its bootstrap `_ci`), ece, net_benefit {str(threshold): {model,
    treat_all}}; with `p_true` also
    oracle_auroc (AUROC of p_true against y), expected_auroc (model) and oracle_expected_auroc.
    Rows whose prediction (or p_true) is missing are dropped first, so `n` counts scored rows.
    Undefined metrics (no events, all events, n = 0) are None, and so are the intervals and the
    calibration fit when `too_small` (fewer than MIN_EVENTS events or non-events).
    """
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    keep = np.isfinite(p) & np.isfinite(y)
    t = None
    if p_true is not None:
        t = np.asarray(p_true, dtype=float).ravel()
        keep &= np.isfinite(t)
        t = t[keep]
    y, p = y[keep], p[keep]
    if groups is not None:
        groups = np.asarray(groups).ravel()[keep]
    n, events = int(y.size), int(y.sum())
    two_classes = 0 < events < n
    too_small = too_few_events(events, n)

    intercept_ci: list[float | None] | None = None
    slope_ci: list[float | None] | None = None
    if two_classes and not too_small:
        low, high = auroc_ci(y, p, n_boot=n_boot, seed=seed, groups=groups)
        intercept, slope = calibration_intercept_slope(y, p)
        intercept_ci, slope_ci = calibration_ci(y, p, n_boot=n_boot, seed=seed, groups=groups)
    else:
        low = high = intercept = slope = float("nan")
    nb = net_benefit(y, p, thresholds)
    out: dict = {
        "n": n,
        "events": events,
        # The events the model expects on these rows: against `events`, calibration in the large,
        # which needs no fit and so says something even where too few events allow none.
        "expected_events": _f(float(p.sum())),
        "auroc": _f(auroc(y, p)) if two_classes else None,
        "auroc_ci": [_f(low), _f(high)] if two_classes and not too_small else None,
        "auprc": _f(auprc(y, p)) if events > 0 else None,
        "brier": _f(brier(y, p)) if n > 0 else None,
        "calibration_intercept": _f(intercept),
        "calibration_slope": _f(slope),
        "calibration_intercept_ci": intercept_ci,
        "calibration_slope_ci": slope_ci,
        "ece": _f(ece(y, p)) if n > 0 else None,
        "net_benefit": {
            str(th): {"model": _f(m), "treat_all": _f(a)}
            for th, m, a in zip(thresholds, nb["model"], nb["treat_all"], strict=True)
        },
        "too_small": too_small,
    }
    if t is not None:
        out["oracle_auroc"] = _f(auroc(y, t)) if two_classes else None
        out["expected_auroc"] = _f(expected_auroc(p, t)) if n > 0 else None
        out["oracle_expected_auroc"] = _f(expected_auroc(t, t)) if n > 0 else None
    return out


# The headline figures of a `summarize` block, as MLflow metrics (flat names, numbers only).
_HEADLINE = (
    "auroc",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "ece",
    "expected_auroc",
    "oracle_auroc",
    "oracle_expected_auroc",
    "expected_auroc_ratio",
)


def flat_metrics(prefix: str, block: dict) -> dict[str, float]:
    """`{prefix}.auroc`, `{prefix}.auroc_ci_low`, ... for the defined headline figures of a block."""
    out = {f"{prefix}.{k}": block[k] for k in _HEADLINE if block.get(k) is not None}
    if block.get("auroc_ci"):
        out[f"{prefix}.auroc_ci_low"], out[f"{prefix}.auroc_ci_high"] = block["auroc_ci"]
    return out
