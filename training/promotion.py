"""The champion/challenger gate.

A challenger is promoted only when, on the same held-out rows (checkups of persons neither model
was trained on: `training.train` picks them), it is not worse than the champion on any outcome
beyond the confidence interval (paired bootstrap of the AUROC difference), and its calibration
stays within bounds on every outcome.

A champion is replaced only on enough evidence: per outcome at least `MIN_EVENTS` held-out events
(`checkup-risk train --promote-min-events`), and a 95% interval of the AUROC difference no wider
than `MAX_CI_WIDTH`. Otherwise the gate keeps the champion and says which outcome lacked
evidence. A small, noisy test set can then never let a model trained on few people replace a
better one by chance. Every model, the first too, must discriminate: an outcome whose AUROC's 95%
interval lies wholly below `AUROC_FLOOR` (a model no better than a coin, such as one trained on
mis-joined labels) is refused; an outcome with no champion to be measured against (a first model's,
or one the champion lacks) must moreover show an AUROC above `CHANCE` beyond its interval. The
first model is otherwise judged on calibration; an outcome
with fewer than `CALIBRATION_MIN_EVENTS` held-out events is named as not judged (and, when a champion
lacks that outcome, not added on that evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.metrics import auroc, auroc_ci, calibration_ci, calibration_intercept_slope, cluster_codes

# Calibration bounds on held-out data: slope 1 +/- 0.2 and calibration-in-the-large within
# +/- 0.2 log-odds. Like the AUROC rule, a model fails only when its 95% bootstrap interval lies
# wholly outside the bounds, so chance in a small test set does not fail a good model.
SLOPE_BOUNDS = (0.8, 1.2)
INTERCEPT_BOUNDS = (-0.2, 0.2)
# Evidence needed before a champion is replaced. With 50 events the bootstrap interval of an AUROC
# difference is typically +/- 0.03-0.05: narrower than MAX_CI_WIDTH only when the models agree closely.
MIN_EVENTS = 50
MAX_CI_WIDTH = 0.10
# Below this many held-out events an outcome's calibration is not judged at all: its bootstrap interval
# is an artefact of the few events. From here on, gross miscalibration (an 8-fold over-prediction with
# 30 events) lies wholly outside the bounds and fails.
CALIBRATION_MIN_EVENTS = 10
# Below this AUROC a risk model is of no clinical use; refused only when the whole 95% interval is
# below it, so a thin test set does not fail a real model (10 events and AUROC 0.7: CI about 0.55-0.85).
AUROC_FLOOR = 0.6
# What a first model's AUROC interval must lie wholly above: a coin's.
CHANCE = 0.5


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    per_outcome: dict = field(default_factory=dict)
    has_champion: bool = True

    def summary(self) -> str:
        kept = "keep the champion" if self.has_champion else "not promoted to be the first champion"
        verdict = "promote" if self.promote else kept
        return f"{verdict}: " + "; ".join(self.reasons)


def paired_auroc_difference(
    y: np.ndarray,
    p_new: np.ndarray,
    p_old: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    max_rows: int = 200_000,
    groups: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """AUROC(new) - AUROC(old) on the same rows, with a 95 % paired bootstrap interval (of persons
    with `groups`, a person id per row, as `metrics.auroc_ci`)."""
    rng = np.random.default_rng(seed)
    codes = None if groups is None else cluster_codes(groups)
    if len(y) > max_rows:
        keep = rng.choice(len(y), max_rows, replace=False)
        y, p_new, p_old = y[keep], p_new[keep], p_old[keep]
        codes = None if codes is None else cluster_codes(codes[keep])
    diff = auroc(y, p_new) - auroc(y, p_old)
    boots = []
    for _ in range(n_boot):
        counts = (
            rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)))
            if codes is None
            else np.bincount(rng.integers(0, codes.max() + 1, size=codes.max() + 1), minlength=codes.max() + 1)[codes]
        ).astype(float)
        if not 0 < (counts * y).sum() < counts.sum():
            continue
        boots.append(auroc(y, p_new, sample_weight=counts) - auroc(y, p_old, sample_weight=counts))
    low, high = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    return float(diff), float(low), float(high)


def outside(low: float, high: float, bounds: tuple[float, float]) -> bool:
    """Whether the interval low..high lies wholly outside `bounds` (a point: low == high). The gate's
    rule for calibration, which `evaluate` applies too."""
    return high < bounds[0] or low > bounds[1]


def calibration_ok(
    y: np.ndarray, p: np.ndarray, n_boot: int = 200, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[bool, str]:
    """Whether calibration is inside the gate's bounds, judged on the bootstrap intervals: refused
    only where an interval lies wholly outside (beyond chance); with the figures in words."""
    intercept, slope = calibration_intercept_slope(y, p)
    (i_lo, i_hi), (s_lo, s_hi) = (
        [np.nan if x is None else x for x in ci] for ci in calibration_ci(y, p, n_boot=n_boot, seed=seed, groups=groups)
    )
    text = (
        f"calibration slope {slope:.2f} (95% CI {s_lo:.2f} to {s_hi:.2f}), "
        f"intercept {intercept:+.2f} (95% CI {i_lo:+.2f} to {i_hi:+.2f})"
    )
    if outside(s_lo, s_hi, SLOPE_BOUNDS):
        return False, f"{text}: slope outside {SLOPE_BOUNDS[0]}-{SLOPE_BOUNDS[1]} beyond chance"
    if outside(i_lo, i_hi, INTERCEPT_BOUNDS):
        return False, f"{text}: intercept outside +/-{INTERCEPT_BOUNDS[1]} beyond chance"
    return True, text


def decide(
    y: dict[str, np.ndarray],
    challenger: dict[str, np.ndarray],
    champion: dict[str, np.ndarray] | None,
    seed: int = 0,
    min_events: int = MIN_EVENTS,
    max_ci_width: float = MAX_CI_WIDTH,
    persons: np.ndarray | None = None,
) -> Decision:
    """Gate on held-out labels y[outcome] and both models' probabilities on the same rows.

    `champion` is None when there is none yet: then calibration and the AUROC floor decide. Otherwise every
    outcome the champion has needs `min_events` held-out events and an AUROC-difference interval
    no wider than `max_ci_width`, or the champion stays ("not enough evidence"). With `persons` (a
    person id per row) every bootstrap interval resamples persons, not checkups.
    """
    if min_events < 1:
        raise ValueError("min_events must be at least 1")
    decision = Decision(promote=True, has_champion=champion is not None)
    if champion is not None:
        dropped = sorted(set(champion) - set(challenger))
        if dropped:
            decision.promote = False
            decision.reasons.append(f"challenger lacks outcomes the champion has: {', '.join(dropped)}")
    for outcome, p_new in challenger.items():
        yo = y[outcome]
        ok = np.isfinite(yo) & np.isfinite(p_new)
        events = int(yo[ok].sum())
        judged = bool(CALIBRATION_MIN_EVENTS <= events < ok.sum())  # a JSON true, not numpy's "True"
        discriminates = beats_chance = True
        if judged:
            who = None if persons is None else persons[ok]
            good, text = calibration_ok(yo[ok], p_new[ok], seed=seed, groups=who)
            a_low, a_high = auroc_ci(yo[ok], p_new[ok], seed=seed, groups=who)
            discriminates = not a_high < AUROC_FLOOR
            # An outcome with no champion to be compared with (a first model, or one the champion
            # lacks) must at least show, beyond chance, that it ranks better than a coin: 32 events
            # of shuffled labels gave 0.40-0.63, which the floor alone cannot refuse.
            beats_chance = (champion is not None and outcome in champion) or a_low > CHANCE
            if not discriminates:
                text = (
                    f"AUROC {auroc(yo[ok], p_new[ok]):.3f} (95% CI {a_low:.3f}-{a_high:.3f}) wholly below "
                    f"{AUROC_FLOOR}: no useful discrimination (labels joined to the wrong persons?); {text}"
                )
            elif not beats_chance:
                text = (
                    f"AUROC {auroc(yo[ok], p_new[ok]):.3f} (95% CI {a_low:.3f}-{a_high:.3f}) not shown better "
                    f"than chance ({CHANCE}), and there is no champion's {outcome} to compare it with; {text}"
                )
        elif 0 < events < ok.sum():
            # An interval from a handful of events means nothing (one event "showed" a slope of 1.31-2.32):
            # say so instead of quoting one. A first model is still promoted (there is nothing to keep);
            # an outcome a champion lacks is not added on no evidence.
            text = f"calibration not judged: {events} held-out events, {CALIBRATION_MIN_EVENTS} needed"
            good = champion is None or outcome in champion
        else:
            good, text = False, "no events in the held-out rows: cannot judge"
        row = {
            "calibration_ok": bool(good),
            "auroc_floor_ok": discriminates,
            "auroc_chance_ok": beats_chance,
            "calibration": text,
            "calibration_judged": judged,
        }
        if not (good and discriminates and beats_chance) or not judged:
            decision.reasons.append(f"{outcome}: {text}")
        if not (good and discriminates and beats_chance):
            decision.promote = False
        if champion is not None and outcome in champion:
            reason = _against_champion(
                outcome, yo, p_new, champion[outcome], ok, row, seed, min_events, max_ci_width, persons
            )
            if reason:
                decision.promote = False
                decision.reasons.append(reason)
        decision.per_outcome[outcome] = row
    if decision.promote:
        decision.reasons.append(
            "no outcome below the AUROC floor or with calibration outside the bounds beyond chance"
            + (
                ""
                if champion is None
                else " and no outcome worse than the champion beyond the CI"
                f" (each with >= {min_events} held-out events)"
            )
            + ("; no champion yet" if champion is None else "")
        )
    return decision


def _against_champion(
    outcome: str,
    yo: np.ndarray,
    p_new: np.ndarray,
    p_old: np.ndarray,
    ok: np.ndarray,
    row: dict,
    seed: int,
    min_events: int,
    max_ci_width: float,
    persons: np.ndarray | None = None,
) -> str | None:
    """Compare one outcome with the champion on the rows both score; fills `row` and returns the
    reason the champion stays (None when this outcome does not stand in the way)."""
    both = ok & np.isfinite(p_old)
    events = int(yo[both].sum())
    row.update({"held_out_rows": int(both.sum()), "held_out_events": events, "events_needed": min_events})
    if 0 < events < both.sum():
        who = None if persons is None else persons[both]
        diff, low, high = paired_auroc_difference(yo[both], p_new[both], p_old[both], seed=seed, groups=who)
        row.update({"auroc_difference": diff, "ci_low": low, "ci_high": high})
    else:
        diff = low = high = float("nan")
    row["enough_evidence"] = events >= min_events and bool(np.isfinite(high - low)) and high - low <= max_ci_width
    # Too few events first: a bootstrap of 5 events can lie wholly below zero and mean nothing.
    if events < min_events:
        return f"not enough evidence: {outcome} has {events} held-out events, {min_events} needed"
    if np.isfinite(high) and high < 0:
        return (
            f"{outcome}: AUROC worse than the champion by {-diff:.4f} "
            f"(95% CI of the difference {low:+.4f} to {high:+.4f})"
        )
    if not (np.isfinite(low) and np.isfinite(high)) or high - low > max_ci_width:
        return (
            f"not enough evidence: {outcome} AUROC difference {diff:+.4f} has a 95% CI "
            f"{low:+.4f} to {high:+.4f}, wider than {max_ci_width:.2f}"
        )
    return None
