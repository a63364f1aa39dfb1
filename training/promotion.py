"""The champion/challenger gate.

A challenger is promoted only when, on the same held-out rows, it is not worse than the champion
on any outcome beyond the confidence interval (paired bootstrap of the AUROC difference), and its
calibration stays within bounds on every outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.metrics import auroc, calibration_intercept_slope

# Calibration bounds on held-out data: slope 1 +/- 0.2 and calibration-in-the-large within
# +/- 0.2 log-odds. Like the AUROC rule, a model fails only when its 95% bootstrap interval lies
# wholly outside the bounds, so chance in a small test set does not fail a good model.
SLOPE_BOUNDS = (0.8, 1.2)
INTERCEPT_BOUNDS = (-0.2, 0.2)


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    per_outcome: dict = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "promote" if self.promote else "keep the champion"
        return f"{verdict}: " + "; ".join(self.reasons)


def paired_auroc_difference(y: np.ndarray, p_new: np.ndarray, p_old: np.ndarray, n_boot: int = 200,
                            seed: int = 0, max_rows: int = 200_000) -> tuple[float, float, float]:
    """AUROC(new) - AUROC(old) on the same rows, with a 95 % paired bootstrap interval."""
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = rng.choice(len(y), max_rows, replace=False)
        y, p_new, p_old = y[keep], p_new[keep], p_old[keep]
    diff = auroc(y, p_new) - auroc(y, p_old)
    boots = []
    for _ in range(n_boot):
        counts = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y))).astype(float)
        if not 0 < (counts * y).sum() < counts.sum():
            continue
        boots.append(auroc(y, p_new, sample_weight=counts) - auroc(y, p_old, sample_weight=counts))
    low, high = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    return float(diff), float(low), float(high)


def calibration_ok(y: np.ndarray, p: np.ndarray, n_boot: int = 100, seed: int = 0,
                   max_rows: int = 100_000) -> tuple[bool, str]:
    intercept, slope = calibration_intercept_slope(y, p)
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = rng.choice(len(y), max_rows, replace=False)
        y, p = y[keep], p[keep]
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            boots.append(calibration_intercept_slope(y[idx], p[idx]))
    (i_lo, s_lo), (i_hi, s_hi) = np.nanquantile(np.array(boots), [0.025, 0.975], axis=0)
    text = (f"calibration slope {slope:.2f} (95% CI {s_lo:.2f}-{s_hi:.2f}), "
            f"intercept {intercept:+.2f} (95% CI {i_lo:+.2f} to {i_hi:+.2f})")
    if s_hi < SLOPE_BOUNDS[0] or s_lo > SLOPE_BOUNDS[1]:
        return False, f"{text}: slope outside {SLOPE_BOUNDS[0]}-{SLOPE_BOUNDS[1]} beyond chance"
    if i_hi < INTERCEPT_BOUNDS[0] or i_lo > INTERCEPT_BOUNDS[1]:
        return False, f"{text}: intercept outside +/-{INTERCEPT_BOUNDS[1]} beyond chance"
    return True, text


def decide(y: dict[str, np.ndarray], challenger: dict[str, np.ndarray],
           champion: dict[str, np.ndarray] | None, seed: int = 0) -> Decision:
    """Gate on held-out labels y[outcome] and both models' probabilities on the same rows.

    `champion` is None when there is none yet: then only calibration decides.
    """
    decision = Decision(promote=True)
    if champion is not None:
        dropped = sorted(set(champion) - set(challenger))
        if dropped:
            decision.promote = False
            decision.reasons.append(f"challenger lacks outcomes the champion has: {', '.join(dropped)}")
    for outcome, p_new in challenger.items():
        yo = y[outcome]
        ok = np.isfinite(yo) & np.isfinite(p_new)
        if 0 < yo[ok].sum() < ok.sum():
            good, text = calibration_ok(yo[ok], p_new[ok])
        else:
            good, text = False, "no events in the held-out rows: cannot judge"
        row = {"calibration_ok": good, "calibration": text}
        if not good:
            decision.promote = False
            decision.reasons.append(f"{outcome}: {text}")
        if champion is not None and outcome in champion:
            p_old = champion[outcome]
            both = ok & np.isfinite(p_old)
            diff, low, high = paired_auroc_difference(yo[both], p_new[both], p_old[both], seed=seed)
            row.update({"auroc_difference": diff, "ci_low": low, "ci_high": high})
            if high < 0:
                decision.promote = False
                decision.reasons.append(
                    f"{outcome}: AUROC worse than the champion by {-diff:.4f} (95% CI of the difference {low:+.4f} to {high:+.4f})"
                )
        decision.per_outcome[outcome] = row
    if decision.promote:
        decision.reasons.append(
            "calibration in bounds on every outcome"
            + ("" if champion is None else " and no outcome worse than the champion beyond the CI")
            + ("; no champion yet" if champion is None else "")
        )
    return decision
