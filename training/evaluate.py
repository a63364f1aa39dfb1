"""Judging a model on labelled checkups: metrics.json (contract section 6), plots and the report.

Published equations (PREVENT, Framingham) predict 10-year risk; they are compared with the
one-year models on ranking (AUROC) only, and their calibration figures are on their own 10-year
scale, never read as one-year probabilities.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.derive import AGE_BANDS, age_band
from features.eligibility import labels_not_applicable
from models.baselines import framingham_2008_cvd, framingham_valid, prevent_10y_cvd, prevent_valid
from models.bundle import RiskModel
from models.outcomes import OUTCOME_SPECS
from training.metrics import auroc, calibration_curve, net_benefit, summarize, too_few_events
from training.promotion import CALIBRATION_MIN_EVENTS, INTERCEPT_BOUNDS, SLOPE_BOUNDS, outside

# Below these a subgroup's AUROC and calibration are too noisy to judge (flagged, not hidden).
MIN_SUBGROUP_ROWS = 200
PUBLISHED = {
    "cvd": {
        "prevent_10y_cvd": (prevent_10y_cvd, prevent_valid),
        "framingham_2008_cvd": (framingham_2008_cvd, framingham_valid),
    }
}


def subgroups(records: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Per sex x age band: size, events, AUROC and observed/expected, with too-small groups flagged."""
    sex = records["sex"].to_numpy(dtype=object)
    band = age_band(records)
    rows = []
    for s in ("F", "M"):
        for _, _, b in AGE_BANDS:
            m = (sex == s) & (band == b) & np.isfinite(p) & np.isfinite(y)
            n, events = int(m.sum()), int(y[m].sum())
            small = n < MIN_SUBGROUP_ROWS or too_few_events(events, n)
            expected = float(p[m].sum())
            rows.append(
                {
                    "sex": s,
                    "age_band": b,
                    "n": n,
                    "events": events,
                    "too_small": small,
                    "auroc": None if small or events in (0, n) else float(auroc(y[m], p[m])),
                    "observed_rate": float(events / n) if n else None,
                    "mean_predicted": float(p[m].mean()) if n else None,
                    "observed_to_expected": None if small or expected == 0 else float(events / expected),
                }
            )
    return rows


# Names the inputs each published equation needs, for the note when no row has them all.
PUBLISHED_INPUTS = {
    "prevent_10y_cvd": "sex, age, total_cholesterol, hdl, sbp, serum_creatinine (eGFR), smoking_status and "
    "diabetes status",
    "framingham_2008_cvd": "sex, age, total_cholesterol, hdl, sbp, smoking_status and diabetes status",
}
NO_TRAINING_RECORD = (
    "not checked: this model version does not record the persons it was trained on, so rows "
    "of its training persons (if any) are included and may flatter the metrics"
)


def exclude_training_persons(records: pd.DataFrame, model: RiskModel) -> tuple[pd.DataFrame, dict]:
    """The rows of persons `model` was not trained on, and what was left out.

    A model scored on its own training persons looks better than it is, so those rows never
    count. Bundles from before training persons were recorded cannot be checked: then nothing is
    excluded, and the returned dict says so (`training_exclusion`). Raises ValueError when every
    row belongs to a training person: there is nothing honest left to evaluate.
    """
    check = getattr(model, "was_trained_on", None)
    if check is None:
        return records, {
            "excluded_training_rows": None,
            "excluded_training_persons": None,
            "training_exclusion": NO_TRAINING_RECORD,
        }
    seen = np.asarray(check(records["person_id"]), dtype=bool)
    info = {
        "excluded_training_rows": int(seen.sum()),
        "excluded_training_persons": int(records.loc[seen, "person_id"].nunique()),
        "training_exclusion": "rows of persons the model was trained on are excluded",
    }
    if len(records) and seen.all():
        raise ValueError(
            f"all {len(records):,} checkups ({info['excluded_training_persons']:,} persons) belong to persons "
            "this model was trained on: evaluating on them would flatter it; use data of other persons"
        )
    return records.loc[~seen], info


def evaluate(
    records: pd.DataFrame,
    model: RiskModel,
    n_boot: int = 200,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """metrics.json content and, per outcome, the arrays the plots need; `say` hears one line per
    outcome (the bootstrap intervals take seconds on a large file).

    Rows of persons the model was trained on are left out first (`exclude_training_persons`);
    metrics.json says how many. Works with any subset of the optional columns: an outcome without
    scorable rows gets n = 0 and undefined metrics, and a published equation whose inputs no row
    has is skipped with a note instead of a curve.
    """
    records, exclusion = exclude_training_persons(records, model)
    if not len(records):
        raise ValueError("no valid rows to evaluate")
    probs = model.predict(records)
    logistic = model.predict_baseline(records)
    metrics: dict = {
        "n_records": int(len(records)),
        "n_persons": int(records["person_id"].nunique()),
        **exclusion,
        # Labels on checkups an outcome does not apply to: not judged (`labels_not_applicable`).
        "labels_not_applicable": {
            o: {"rows": rows, "events": events, "all_events": all_events}
            for o, (rows, events, all_events) in labels_not_applicable(records, tuple(model.models_)).items()
        },
        "outcomes": {},
    }
    curves: dict = {}
    judged = [o for o in model.models_ if OUTCOME_SPECS[o].label in records.columns]
    for k, outcome in enumerate(judged, 1):
        if say is not None:
            say(f"  metrics: {outcome} ({k} of {len(judged)})")
        block, arrays = _outcome_metrics(
            outcome,
            records,
            probs[outcome].to_numpy(dtype=float),
            logistic[outcome].to_numpy(dtype=float),
            n_boot,
            seed,
        )
        block["model_choice"] = model.models_[outcome].info.get("choice")
        metrics["outcomes"][outcome] = block
        curves[outcome] = arrays
    return metrics, curves


def _outcome_metrics(
    outcome: str, records: pd.DataFrame, p: np.ndarray, lr_all: np.ndarray, n_boot: int, seed: int
) -> tuple[dict, dict]:
    """One outcome's metrics.json block (model, baselines, subgroups) and its plot arrays, on the
    rows that have both a label and a prediction."""
    spec = OUTCOME_SPECS[outcome]
    y = pd.to_numeric(records[spec.label], errors="coerce").to_numpy(dtype=float)
    scored = np.isfinite(y) & np.isfinite(p)
    p_true = None
    if spec.true_risk in records.columns:
        p_true = pd.to_numeric(records[spec.true_risk], errors="coerce").to_numpy(dtype=float)[scored]
    # Intervals from a bootstrap of persons: a person's several checkups are not independent.
    persons = records["person_id"].to_numpy()[scored]
    block = summarize(y[scored], p[scored], p_true=p_true, n_boot=n_boot, seed=seed, groups=persons)
    if p_true is not None and block.get("oracle_expected_auroc"):
        block["expected_auroc_ratio"] = block["expected_auroc"] / block["oracle_expected_auroc"]
    lr = lr_all[scored]
    block["baselines"] = {"logistic_regression": summarize(y[scored], lr, n_boot=n_boot, seed=seed, groups=persons)}
    arrays = {"y": y[scored], "model": p[scored], "logistic_regression": lr}
    sub = records.loc[scored]
    for name, (fn, valid) in PUBLISHED.get(outcome, {}).items():
        block["baselines"][name], risk10 = _published_baseline(name, fn, valid, sub, y[scored], p[scored], n_boot, seed)
        if risk10 is not None:
            arrays[name] = risk10
    block["subgroups"] = subgroups(sub, y[scored], p[scored])
    return block, arrays


def _published_baseline(
    name: str, fn, valid, sub: pd.DataFrame, y: np.ndarray, p: np.ndarray, n_boot: int, seed: int
) -> tuple[dict, np.ndarray | None]:
    """A published 10-year equation on the same rows: its block, and its risks (None when skipped)."""
    risk10 = fn(sub, assume_untreated=True)
    ok = np.isfinite(risk10)
    if not ok.any():
        # Real extracts often lack the lipid panel or creatinine: no row can be scored by the
        # equation, so there is nothing to compare (and nothing to draw).
        return {
            "skipped": True,
            "rows_with_inputs": 0,
            "auroc": None,
            "scale": "10-year risk: compare ranking (AUROC) only",
            "note": f"skipped: no row has every input it needs ({PUBLISHED_INPUTS.get(name, 'see models.baselines')})",
        }, None
    b = summarize(y, risk10, n_boot=n_boot, seed=seed, groups=sub["person_id"].to_numpy())
    b["scale"] = "10-year risk: compare ranking (AUROC) only"
    b["rows_with_inputs"] = int(ok.sum())
    b["rows_in_valid_range"] = int(valid(sub, assume_untreated=True).sum())
    b["model_auroc_same_rows"] = float(auroc(y[ok], p[ok])) if 0 < y[ok].sum() < ok.sum() else None
    return b, risk10


def baseline_notes(metrics: dict) -> list[str]:
    """One line per skipped baseline, for the screen."""
    return [
        f"{o}: baseline {name} {b['note']}"
        for o, m in metrics["outcomes"].items()
        for name, b in m["baselines"].items()
        if b.get("skipped")
    ]


def _interval(m: dict, key: str) -> tuple[float, float]:
    """The block's bootstrap interval of `key`, or the point estimate twice where it has none."""
    low, high = m.get(f"{key}_ci") or (None, None)
    return (m[key], m[key]) if low is None or high is None else (low, high)


def _num(x: float, fmt: str) -> str:
    """`x` formatted, never as a negative zero ("-0.00")."""
    return format(round(x, 2) + 0.0, fmt)


def _calibration_judgement(m: dict, where: str = "on this file") -> tuple[str, str] | None:
    """("warning" | "note", text) for one outcome block whose calibration lies outside the promotion
    gate's bounds (from `promotion.CALIBRATION_MIN_EVENTS` events), else None. As the gate judges: a warning when
    the bootstrap interval lies outside the bounds too (beyond chance), a note when only the point
    estimate does (the events cannot tell it from calibrated)."""
    slope, intercept = m.get("calibration_slope"), m.get("calibration_intercept")
    if m.get("events", 0) < CALIBRATION_MIN_EVENTS or slope is None or intercept is None:
        return _events_judgement(m, where)
    (s_lo, s_hi), (i_lo, i_hi) = _interval(m, "calibration_slope"), _interval(m, "calibration_intercept")
    if not (outside(slope, slope, SLOPE_BOUNDS) or outside(intercept, intercept, INTERCEPT_BOUNDS)):
        return None
    # Name only the bound the estimate lies outside: a slope of 0.97 is not "outside 0.8-1.2".
    bounds = [
        f"the slope outside the gate's {SLOPE_BOUNDS[0]}-{SLOPE_BOUNDS[1]}"
        if outside(slope, slope, SLOPE_BOUNDS)
        else "",
        f"the intercept outside its +/-{INTERCEPT_BOUNDS[1]}"
        if outside(intercept, intercept, INTERCEPT_BOUNDS)
        else "",
    ]
    text = (
        f"calibration slope {_num(slope, '.2f')} (95% CI {_num(s_lo, '.2f')} to {_num(s_hi, '.2f')}) and intercept "
        f"{_num(intercept, '+.2f')} (95% CI {_num(i_lo, '+.2f')} to {_num(i_hi, '+.2f')}) {where}, "
        + " and ".join(b for b in bounds if b)
    )
    if outside(s_lo, s_hi, SLOPE_BOUNDS) or outside(i_lo, i_hi, INTERCEPT_BOUNDS):
        return (
            "warning",
            f"{text} beyond chance: its risks are not calibrated for these people; recalibrate before using them here",
        )
    return "note", (
        f"{text}, but its {m['events']:,} events cannot tell it from calibrated (the interval reaches the bounds)"
    )


# Observed events this far from the expected ones (either way), beyond chance, are no calibration
# question: the labels or the file are likely wrong (an outcome extract that lost its events).
EVENTS_RATIO_LIMIT = 2.0


def _events_judgement(m: dict, where: str) -> tuple[str, str] | None:
    """("warning", text) when an outcome too thin for a calibration fit has observed events far from
    the expected ones (ratio beyond EVENTS_RATIO_LIMIT either way, Poisson p < 0.001), else None."""
    from scipy.stats import poisson

    observed, expected = m.get("events", 0), m.get("expected_events")
    if expected is None or expected < CALIBRATION_MIN_EVENTS:
        return None
    ratio = observed / expected
    p_low, p_high = poisson.cdf(observed, expected), poisson.sf(observed - 1, expected)
    if (ratio < 1 / EVENTS_RATIO_LIMIT and p_low < 1e-3) or (ratio > EVENTS_RATIO_LIMIT and p_high < 1e-3):
        return "warning", (
            f"{observed:,} events {where} where the model expects about {expected:,.0f} (beyond chance): the "
            "labels may be incomplete or wrong (check the outcome extract), or the risks far off for these people"
        )
    return None


def calibration_warnings(metrics: dict, where: str = "on this file") -> list[str]:
    """One line per outcome whose calibration on this file (`where`) lies outside the promotion
    gate's bounds beyond chance: the risks are not calibrated for these people."""
    judged = (_calibration_judgement(m, where) for m in metrics["outcomes"].values())
    return [f"{o}: {j[1]}" for o, j in zip(metrics["outcomes"], judged, strict=True) if j and j[0] == "warning"]


# An oracle AUROC (the data's own true risks against its labels) this close to chance says the
# labels do not follow the data, which no model can: a true risk that any real disease follows
# ranks far better (clinical.md: published models reach 0.70-0.85).
ORACLE_CHANCE = 0.55


def discrimination_warnings(metrics: dict, where: str = "on this file") -> list[str]:
    """One line per outcome whose AUROC interval (`where`) reaches 0.5: the model ranks these
    people no better than chance, most often because the labels are not their checkups' (a
    broken join to the outcomes), which the true-risk columns, where there are any, confirm."""
    lines = []
    for o, m in metrics["outcomes"].items():
        ci = m.get("auroc_ci")
        if m.get("auroc") is None or not ci or ci[0] is None or ci[0] > 0.5:
            continue
        # Wholly below 0.5 is worse than chance: the model ranks the labels backwards.
        backwards = ci[1] is not None and ci[1] < 0.5
        said = "is below chance (are 0 and 1 swapped?)" if backwards else "cannot be told from chance"
        line = f"{o}: AUROC {m['auroc']:.3f} (95% CI {ci[0]:.3f} to {ci[1]:.3f}) {where} {said}"
        oracle = m.get("oracle_auroc")
        if oracle is not None and oracle < ORACLE_CHANCE:
            line += f", and the true-risk column ranks the labels no better (oracle AUROC {oracle:.3f})"
        lines.append(line + ": check that each label belongs to its checkup (the join to the outcomes)")
    return lines


def calibration_notes(metrics: dict, where: str = "on this file") -> list[str]:
    """One line per outcome whose calibration point estimate lies outside the gate's bounds while its
    interval reaches them: too few events to say the risks are miscalibrated here."""
    judged = (_calibration_judgement(m, where) for m in metrics["outcomes"].values())
    return [f"{o}: {j[1]}" for o, j in zip(metrics["outcomes"], judged, strict=True) if j and j[0] == "note"]


def exclusion_text(metrics: dict) -> str:
    """What `exclude_training_persons` left out, in words."""
    if metrics.get("excluded_training_rows") is None:
        return f"training persons {metrics.get('training_exclusion', NO_TRAINING_RECORD)}"
    return (
        f"excluded {metrics['excluded_training_rows']:,} checkups of {metrics['excluded_training_persons']:,} "
        "persons the model was trained on"
    )


def write_metrics(metrics: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, allow_nan=False))
    return path


# --- plots -------------------------------------------------------------------------------------


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _drawable(y: np.ndarray, p: np.ndarray) -> bool:
    """A curve needs rows with a prediction; a ROC curve also needs both classes among them."""
    ok = np.isfinite(np.asarray(p, dtype=float))
    return bool(ok.any()) and 0 < y[ok].sum() < ok.sum()


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(p)
    y, p = y[ok], p[ok]
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(y[order])
    fp = np.cumsum(1 - y[order])
    return np.r_[0, fp / max(fp[-1], 1)], np.r_[0, tp / max(tp[-1], 1)]


def plot_roc(outcome: str, arrays: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    y = arrays["y"]
    for name, p in arrays.items():
        p = np.asarray(p, dtype=float)
        if name == "y" or not _drawable(y, p):
            continue  # a baseline without usable rows has no curve (its note is in metrics.json)
        fpr, tpr = _roc_points(y, p)
        ax.plot(fpr, tpr, lw=1.2, label=name)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC: {outcome}")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_calibration(outcome: str, arrays: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    y = arrays["y"]
    for name in ("model", "logistic_regression"):
        cc = calibration_curve(y, arrays[name], n_bins=10)
        ax.plot(cc["mean_predicted"], cc["observed_rate"], marker="o", ms=3, lw=1, label=name)
    top = float(np.nanmax([np.nanquantile(arrays["model"], 0.995), y.mean() * 2]))
    ax.plot([0, top], [0, top], ls=":", c="grey")
    ax.set(xlabel="predicted 1-year risk", ylabel="observed 1-year rate", title=f"Calibration: {outcome}")
    ax.legend(fontsize=7)
    return fig


def plot_decision_curve(outcome: str, arrays: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = arrays["y"]
    top = max(0.02, float(np.nanquantile(arrays["model"], 0.99)))
    thresholds = np.linspace(top / 50, top, 40)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for name in ("model", "logistic_regression"):
        nb = net_benefit(y, arrays[name], thresholds)
        ax.plot(thresholds, nb["model"], lw=1.2, label=name)
    nb = net_benefit(y, arrays["model"], thresholds)
    ax.plot(thresholds, nb["treat_all"], ls="--", c="grey", lw=1, label="treat all")
    ax.axhline(0, c="black", lw=0.8, label="treat none")
    ax.set_ylim(-y.mean() * 0.2, y.mean() * 1.1)
    ax.set(xlabel="threshold probability", ylabel="net benefit", title=f"Decision curve: {outcome}")
    ax.legend(fontsize=7)
    return fig


def plot_shap_summary(model: RiskModel, records: pd.DataFrame, outcome: str, max_rows: int = 2000, seed: int = 0):
    """Global explanation: mean |SHAP| (log-odds) of the top features on a sample of rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = records.sample(min(max_rows, len(records)), random_state=seed)
    contribs, _ = model.explain(sample, outcome)
    mean_abs = pd.Series(np.abs(contribs).mean(axis=0), index=model.feature_names_).sort_values().tail(15)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.barh(mean_abs.index, mean_abs.values, color="#4472c4")
    ax.set(xlabel="mean |SHAP| (log-odds)", title=f"Top features: {outcome}")
    return fig


def figures(model: RiskModel, records: pd.DataFrame, curves: dict) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by file name.

    An outcome without both classes among its scored rows gets no curves (nothing to draw); the
    SHAP summary uses the same rows as the metrics (training persons left out).
    """
    figs = {}
    records, _ = exclude_training_persons(records, model)
    applicable = model.predict(records).notna()
    for outcome, arrays in curves.items():
        if not _drawable(arrays["y"], arrays["model"]):
            continue
        figs[f"roc_{outcome}.png"] = _png(plot_roc(outcome, arrays))
        figs[f"calibration_{outcome}.png"] = _png(plot_calibration(outcome, arrays))
        figs[f"decision_curve_{outcome}.png"] = _png(plot_decision_curve(outcome, arrays))
        if applicable[outcome].any():
            figs[f"shap_summary_{outcome}.png"] = _png(
                plot_shap_summary(model, records.loc[applicable[outcome]], outcome)
            )
    return figs
