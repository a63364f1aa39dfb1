"""The statistics of `checkup-risk monitor`: how far the checkups a model now scores have moved from
its training data, what it should expect of its own discrimination, and how it actually did once
outcomes are known.

Everything compares a period's logged rows with the bundle's drift reference
(`models.drift_reference`: binned shares, no training rows), with numpy and scipy:

- PSI, the population stability index, sum over bins of (cur - ref) ln(cur / ref), on the
  reference's decile bins (or categories) plus a bin for missing values; shares are floored at
  `EPS` so an empty bin gives a large finite term;
- a two-sample test of the same binned counts: Pearson's chi-square test of homogeneity (or the
  G-test) on the 2 x bins table, the reference's counts being its shares times its rows;
- a two-proportion z-test of the missing rate;
- categories never seen in training.

PSI says how big a shift is, the test whether it is more than chance: a shift alarms only when it
is both big and significant, so a small period cannot alarm on noise and a huge one cannot alarm on
a trivial but significant change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import stats

from models.drift_reference import (
    MISSING,
    bin_index,
    category_counts,
    expected_auroc,
    numeric_values,
)
from training.metrics import auroc, auroc_ci, calibration_ci, calibration_intercept_slope, too_few_events

EPS = 1e-4  # share floor in PSI


@dataclass(frozen=True)
class Thresholds:
    """When the monitor alarms; every value can be set from a JSON file or `--threshold NAME=VALUE`."""

    psi_alarm: float = 0.2  # PSI above which a shift is big (and alarms when the test agrees)
    psi_warn: float = 0.1  # PSI above which a shift is reported as a warning (no alarm)
    p_value: float = 0.001  # a test below this is significant
    missing_points: float = 0.10  # a missing-rate change larger than this (0.10 = 10 points), if significant
    new_category_min_rows: int = 10  # a category unseen in training alarms from this many rows ...
    new_category_min_share: float = 0.001  # ... and this share of the period's rows
    expected_auroc_drop: float = 0.03  # expected AUROC this far below the reference's alarms
    realised_auroc_drop: float = 0.05  # realised AUROC this far below the reference's expected AUROC alarms
    calibration_margin: float = 0.1  # intercept CI entirely beyond +-margin (log-odds) alarms
    min_rows: int = 200  # below this many rows (of an outcome) expected/realised performance does not alarm
    min_events: int = 10  # below this many events realised performance does not alarm
    test: str = "chi2"  # "chi2" (Pearson) or "g" (G-test, log-likelihood ratio)
    n_boot: int = 200  # bootstrap replicates of the realised-performance CIs

    def __post_init__(self) -> None:
        if self.test not in ("chi2", "g"):
            raise ValueError(f"threshold test must be 'chi2' or 'g', not {self.test!r}")
        if not 0 < self.p_value < 1:
            raise ValueError("threshold p_value must lie between 0 and 1")
        if self.psi_warn > self.psi_alarm:
            raise ValueError("threshold psi_warn must not exceed psi_alarm")

    @classmethod
    def from_mapping(cls, values: dict) -> Thresholds:
        """From names and values (a JSON file, options): unknown names are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(known)}")
        out = {}
        for name, value in values.items():
            kind = type(getattr(cls(), name))
            try:
                out[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"threshold {name} must be a {kind.__name__}, not {value!r}") from None
        return cls(**out)

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict | None = None) -> Thresholds:
        values = json.loads(Path(path).read_text()) if path else {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: thresholds must be a JSON object of names and values")
        return cls.from_mapping({**values, **(overrides or {})})

    def as_dict(self) -> dict:
        return asdict(self)


# -- the statistics ------------------------------------------------------------------------------


def psi(reference: np.ndarray, current: np.ndarray, eps: float = EPS) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(reference, dtype=float), eps)
    c = np.maximum(np.asarray(current, dtype=float), eps)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray, method: str = "chi2") -> tuple[float, float]:
    """(statistic, p-value) of a test that two binned samples come from one distribution: Pearson's
    chi-square ("chi2") or the G-test ("g") on the 2 x bins table; bins empty in both are dropped."""
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) <= 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if method == "g":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(table > 0, table * np.log(table / expected), 0.0)
        statistic = float(2.0 * terms.sum())
    else:
        statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


def two_proportions(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """(difference p2 - p1, two-sided p-value) of the pooled two-proportion z-test."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se <= 0:
        return float(p2 - p1), 1.0 if p1 == p2 else 0.0
    return float(p2 - p1), float(2 * stats.norm.sf(abs(p2 - p1) / se))


def _edge_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = [f"{e:.4g}" for e in edges]
    return [f"< {fmt[0]}"] + [f"{a} to < {b}" for a, b in zip(fmt[:-1], fmt[1:], strict=True)] + [f">= {fmt[-1]}"]


def _alarm(kind: str, name_key: str, name: str, statistic: str, value: float, threshold: float, **more) -> dict:
    return {"kind": kind, name_key: name, "statistic": statistic, "value": value, "threshold": threshold, **more}


def _shift(
    ref_shares: np.ndarray, ref_rows: int, cur_counts: np.ndarray, t: Thresholds
) -> tuple[float, float, float, str]:
    """(PSI, test statistic, p-value, status ok/warn/alarm) of current counts against reference shares."""
    n = cur_counts.sum()
    if n <= 0:
        return 0.0, 0.0, 1.0, "ok"
    value = psi(ref_shares, cur_counts / n)
    statistic, p = homogeneity(ref_shares * ref_rows, cur_counts, t.test)
    significant = p < t.p_value
    status = "alarm" if value > t.psi_alarm and significant else "warn" if value > t.psi_warn and significant else "ok"
    return value, statistic, p, status


def input_drift(column: str, ref: dict, ref_rows: int, values, t: Thresholds) -> tuple[dict, list[dict]]:
    """One input's drift block and its alarms: PSI and test on the reference bins plus a missing
    bin, the missing-rate change and its test, categories unseen in training."""
    alarms: list[dict] = []
    new: dict[str, int] = {}
    categorical = ref["kind"] == "categorical"
    if categorical:
        counts, missing = category_counts(values)
        known = list(ref["categories"])
        new = {k: v for k, v in counts.items() if k not in ref["categories"]}
        labels = known + (["new"] if new else [])
        present = np.array([counts.get(k, 0) for k in known] + ([sum(new.values())] if new else []), dtype=float)
        ref_present = np.array([ref["categories"][k] for k in known] + ([0.0] if new else []), dtype=float)
    else:
        v = numeric_values(values)
        ok = np.isfinite(v)
        missing = int((~ok).sum())
        labels = _edge_labels(ref["edges"])
        present = np.bincount(bin_index(v[ok], ref["edges"]), minlength=len(ref["edges"]) + 1).astype(float)
        ref_present = np.asarray(ref["shares"], dtype=float)
    n = float(present.sum() + missing)
    m_ref = float(ref["missing_rate"])
    ref_shares = np.append(ref_present * (1 - m_ref), m_ref)
    cur_counts = np.append(present, missing)
    value, statistic, p, status = _shift(ref_shares, ref_rows, cur_counts, t)
    m_cur = missing / n if n else 0.0
    change, p_missing = two_proportions(m_ref * ref_rows, ref_rows, missing, n)
    if status == "alarm":
        alarms.append(_alarm("data_drift", "feature", column, "psi", value, t.psi_alarm, p_value=p))
    if abs(change) > t.missing_points and p_missing < t.p_value:
        alarms.append(
            _alarm(
                "data_drift",
                "feature",
                column,
                "missing_rate_change",
                change,
                t.missing_points,
                p_value=p_missing,
                reference=m_ref,
                current=m_cur,
            )
        )
    big_new = {k: c for k, c in new.items() if c >= t.new_category_min_rows and c >= t.new_category_min_share * n}
    if big_new:
        alarms.append(
            _alarm(
                "data_drift",
                "feature",
                column,
                "new_category",
                float(sum(big_new.values())),
                float(t.new_category_min_rows),
                categories=big_new,
            )
        )
    block = {
        "kind": ref["kind"],
        "rows": int(n),
        "psi": value,
        "test": t.test,
        "test_statistic": statistic,
        "p_value": p,
        "status": "alarm" if alarms else status,
        "missing_rate_reference": m_ref,
        "missing_rate": m_cur,
        "missing_rate_change": change,
        "missing_rate_p_value": p_missing,
        "new_categories": new,
        "bins": labels + [MISSING],
        "reference_shares": ref_shares.tolist(),
        "current_shares": (cur_counts / n if n else cur_counts).tolist(),
    }
    return block, alarms


def prediction_drift(outcome: str, ref: dict, p: np.ndarray, t: Thresholds) -> tuple[dict, list[dict]]:
    """An outcome's predicted-probability shift (PSI and test on the training deciles, means) and
    its expected performance (label-free expected AUROC, expected event rate) beside the reference."""
    p = np.asarray(p, dtype=float)
    p = p[np.isfinite(p)]
    counts = np.bincount(bin_index(p, ref["edges"]), minlength=len(ref["edges"]) + 1).astype(float)
    ref_shares = np.asarray(ref["shares"], dtype=float)
    value, statistic, p_value, status = _shift(ref_shares, int(ref["n"]), counts, t)
    alarms = []
    if status == "alarm":
        alarms.append(
            _alarm("prediction_drift", "outcome", outcome, "prediction_psi", value, t.psi_alarm, p_value=p_value)
        )
    expected = expected_auroc(p, p) if p.size else float("nan")
    ref_expected = ref.get("expected_auroc")
    drop = ref_expected - expected if ref_expected is not None and p.size else float("nan")
    if p.size >= t.min_rows and np.isfinite(drop) and drop > t.expected_auroc_drop:
        alarms.append(
            _alarm(
                "expected_performance",
                "outcome",
                outcome,
                "expected_auroc_drop",
                drop,
                t.expected_auroc_drop,
                expected_auroc=expected,
                reference_expected_auroc=ref_expected,
            )
        )
    block = {
        "rows": int(p.size),
        "psi": value,
        "test": t.test,
        "test_statistic": statistic,
        "p_value": p_value,
        "status": "alarm" if alarms else status,
        "mean_probability": float(p.mean()) if p.size else None,
        "reference_mean_probability": ref.get("mean_probability"),
        "reference_event_rate": ref.get("event_rate"),
        "expected_auroc": expected if p.size else None,
        "reference_expected_auroc": ref_expected,
        "expected_auroc_drop": drop if p.size else None,
        "bins": _edge_labels(ref["edges"]),
        "reference_shares": ref_shares.tolist(),
        "current_shares": (counts / counts.sum() if counts.sum() else counts).tolist(),
    }
    return block, alarms


# -- realised performance ----------------------------------------------------------------------


def _num(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def realised_block(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int, persons: np.ndarray | None = None) -> dict:
    """n, events, AUROC with its CI, calibration intercept and slope with theirs, observed and mean
    predicted rate; the AUROC and calibration are null when `too_small` (`too_few_events`). With
    `persons` (a person key per row) the intervals resample persons, not checkups."""
    n, events = int(y.size), int(y.sum())
    out: dict = {
        "n": n,
        "events": events,
        "observed_rate": events / n if n else None,
        "mean_probability": float(p.mean()) if n else None,
        "too_small": too_few_events(events, n),
    }
    if not out["too_small"]:
        intercept, slope = calibration_intercept_slope(y, p)
        i_ci, s_ci = calibration_ci(y, p, n_boot, seed, groups=persons)
        out.update(
            auroc=_num(auroc(y, p)),
            auroc_ci=[_num(x) for x in auroc_ci(y, p, n_boot=n_boot, seed=seed, groups=persons)],
            calibration_intercept=_num(intercept),
            calibration_intercept_ci=i_ci,
            calibration_slope=_num(slope),
            calibration_slope_ci=s_ci,
        )
    else:
        out.update(
            auroc=None,
            auroc_ci=None,
            calibration_intercept=None,
            calibration_intercept_ci=None,
            calibration_slope=None,
            calibration_slope_ci=None,
        )
    return out


def realised_performance(
    outcome: str,
    ref: dict,
    y: np.ndarray,
    p: np.ndarray,
    groups: dict[str, np.ndarray],
    t: Thresholds,
    seed: int = 0,
    persons: np.ndarray | None = None,
) -> tuple[dict, list[dict]]:
    """Overall and per subgroup (`groups`: name -> label per row, e.g. sex, age band), and the
    overall alarms: the calibration intercept's CI entirely beyond +-margin, or the AUROC below the
    reference's expected AUROC by more than the threshold with its CI's upper end below it too."""
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    persons = None if persons is None else np.asarray(persons)[ok]
    block = realised_block(y, p, t.n_boot, seed, persons)
    block["subgroups"] = {}
    for name, labels in groups.items():
        labels = np.asarray(labels, dtype=object)[ok]
        block["subgroups"][name] = {
            str(g): realised_block(
                y[labels == g], p[labels == g], t.n_boot, seed, None if persons is None else persons[labels == g]
            )
            for g in sorted(set(labels))
        }
    alarms: list[dict] = []
    if block["n"] < t.min_rows or block["events"] < t.min_events or block["auroc"] is None:
        block["judged"] = False
        return block, alarms
    block["judged"] = True
    low, high = block["calibration_intercept_ci"]
    if low is not None and high is not None and (low > t.calibration_margin or high < -t.calibration_margin):
        alarms.append(
            _alarm(
                "realised_performance",
                "outcome",
                outcome,
                "calibration_intercept",
                block["calibration_intercept"],
                t.calibration_margin,
                ci=[low, high],
            )
        )
    ref_expected = ref.get("expected_auroc")
    ci_high = (block["auroc_ci"] or [None, None])[1]
    if (
        ref_expected is not None
        and block["auroc"] < ref_expected - t.realised_auroc_drop
        and ci_high is not None
        and ci_high < ref_expected
    ):
        alarms.append(
            _alarm(
                "realised_performance",
                "outcome",
                outcome,
                "auroc",
                block["auroc"],
                ref_expected - t.realised_auroc_drop,
                ci=block["auroc_ci"],
                reference_expected_auroc=ref_expected,
            )
        )
    return block, alarms
