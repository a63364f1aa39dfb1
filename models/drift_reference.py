"""What the training data looked like, kept with the bundle so that `checkup-risk monitor` can tell
when the checkups a model now scores (the prediction log) no longer look like them.

Privacy-safe by construction: no training row, no person id, only per-column summaries of the
kind a published table 1 would print:

- per model input (`DRIFT_INPUTS`: the logged inputs the model reads): the missing rate; for a measurement, the
  training deciles as bin edges and each bin's share of the present values; for a coded field
  (sex, codes, small counts), each category's share of the present values;
- per outcome, over the rows the outcome was fit on: the deciles and bin shares of the predicted
  probability, its mean, the observed event rate, the label-free expected AUROC of the model's
  own probabilities (`expected_auroc(p, p)`), rows and persons.

Drift tools such as Evidently compare two sets of ROWS; a model artifact must not carry rows of
real patients, so the monitor (training.drift) works on these binned shares with numpy and scipy.
Bundles saved before this reference existed have none: the monitor says so and stops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.derive import MODEL_COLUMNS, age_years
from features.schema import BY_NAME
from models.prediction_log import INPUTS

# The logged inputs whose drift is watched: what the model reads. A field that only decides whether an
# outcome applies (`history_ckd`) is logged but not watched. Age is watched once, by its NHIS 5-year
# band (`input_values`): a record gives the years or the band, and watching `age` and `age_group`
# apart raised a missing-rate alarm at a site sending only one; watching years by deciles called a
# site sending bands (as NHIS files do) drift, since band midpoints fall in other deciles.
DRIFT_INPUTS: tuple[str, ...] = tuple(c for c in INPUTS if c in MODEL_COLUMNS and c != "age_group")


def input_values(frame: pd.DataFrame, column: str, kind: str | None = None) -> pd.Series:
    """The values of one `DRIFT_INPUTS` column in a frame of records or logged inputs, as the
    reference and the monitor both summarise them (age: the NHIS band code, of `age` or else the
    `age_group` given). `kind` is the reference's summary kind: a format-1 reference summarised age
    in years ("numeric")."""
    if column == "age":
        years = age_years(frame[[c for c in ("age", "age_group") if c in frame]])
        banded = np.clip(years // 5 + 1, 5, 18) if kind != "numeric" else years
        return pd.Series(banded, index=frame.index)
    return frame[column] if column in frame else pd.Series(np.nan, index=frame.index)


# 2: age by band code (format 1 had age in years by deciles, and age_group apart).
FORMAT = 2
FILE = "drift_reference.json"
DECILES = np.arange(1, 10) / 10.0
MISSING = "missing"  # the name of the extra bin holding the missing values


def is_categorical(column: str) -> bool:
    """Whether an input is summarised by category shares (sex, coded fields, small whole counts)
    rather than by decile bins; age by its 5-year band (`input_values`)."""
    return column == "age" or BY_NAME[column].kind in ("sex", "code", "int")


def category_key(value: object) -> str:
    """One spelling per category, so the shares of a float column of codes (1.0) and the JSON
    reference ("1") meet: whole numbers without a decimal point, text as it is."""
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def numeric_values(values: pd.Series | np.ndarray) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def bin_index(values: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """The bin of each (present) value: 0..len(edges); a value on an edge goes to the bin above."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def decile_edges(values: np.ndarray) -> list[float]:
    """The distinct inner decile edges of the present values (fewer when values tie)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return []
    return [float(f"{x:.8g}") for x in np.unique(np.quantile(v, DECILES))]


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(f"{c / total:.6g}") if total else 0.0 for c in counts]


def summarise_numeric(values: np.ndarray) -> dict:
    present = np.isfinite(values)
    edges = decile_edges(values)
    counts = np.bincount(bin_index(values[present], edges), minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "missing_rate": float(1.0 - present.mean()) if values.size else 0.0,
        "edges": edges,
        "shares": _shares(counts),
    }


def category_counts(values: pd.Series | np.ndarray) -> tuple[dict[str, int], int]:
    """({category: rows}, missing rows) of one coded column."""
    s = pd.Series(values)
    missing = s.isna()
    counts = s[~missing].value_counts()
    out: dict[str, int] = {}
    for value, n in counts.items():
        key = category_key(value)
        out[key] = out.get(key, 0) + int(n)
    return out, int(missing.sum())


def summarise_categorical(values: pd.Series | np.ndarray) -> dict:
    counts, missing = category_counts(values)
    n = sum(counts.values()) + missing
    keys = sorted(counts)
    shares = _shares(np.array([counts[k] for k in keys], dtype=float))
    return {
        "kind": "categorical",
        "missing_rate": float(missing / n) if n else 0.0,
        "categories": dict(zip(keys, shares, strict=True)),
    }


def build(
    records: pd.DataFrame,
    probabilities: pd.DataFrame,
    fitted_rows: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
) -> dict:
    """The reference of a model fit on `records` (canonical frame): `probabilities` are its
    predictions for those rows (one column per outcome), `fitted_rows[o]` the rows outcome `o` was
    fit on, `labels[o]` that outcome's 0/1 labels (NaN where none)."""
    inputs = {}
    for column in DRIFT_INPUTS:
        raw = input_values(records, column)
        inputs[column] = (
            summarise_categorical(raw) if is_categorical(column) else summarise_numeric(numeric_values(raw))
        )
    person = records["person_id"].astype(str).to_numpy()
    outcomes = {}
    for outcome, rows in fitted_rows.items():
        p = probabilities[outcome].to_numpy(dtype=float)[rows]
        y = np.asarray(labels[outcome], dtype=float)[rows]
        ok = np.isfinite(p)
        p, y = p[ok], y[ok]
        edges = decile_edges(p)
        counts = np.bincount(bin_index(p, edges), minlength=len(edges) + 1)
        outcomes[outcome] = {
            "n": int(p.size),
            "persons": int(np.unique(person[rows][ok]).size),
            "events": int(np.nansum(y)),
            "event_rate": float(np.nanmean(y)) if p.size else None,
            "mean_probability": float(p.mean()) if p.size else None,
            "expected_auroc": expected_auroc(p, p) if p.size else None,
            "edges": edges,
            "shares": _shares(counts),
        }
    return {
        "format": FORMAT,
        "what": "per-input missing rates and binned shares, and per-outcome predicted-probability "
        "bins, means and expected AUROC, over the training data (no rows)",
        "rows": int(len(records)),
        "persons": int(np.unique(person).size),
        "inputs": inputs,
        "outcomes": outcomes,
    }


def expected_auroc(p_score, p_true) -> float:
    """Label-free expected AUROC of `p_score` when outcomes are Bernoulli(`p_true`).

    Each row counts as a positive with weight p_true and as a negative with weight 1 - p_true;
    the result is E[concordant pairs] / E[positive-negative pairs] over independent outcomes,
    pairs of distinct rows only (a row cannot be its own case and control). Ties count one half.
    Equals AUROC(y, p_score) when p_true is 0/1; `expected_auroc(p, p)` is what a model expects of
    itself if its probabilities are right, which needs no label (the monitor's expected
    performance). O(n log n). The one implementation: `training.metrics` re-exports it.
    """
    s = np.asarray(p_score, dtype=float).ravel()
    t = np.asarray(p_true, dtype=float).ravel()
    if s.shape != t.shape:
        raise ValueError("p_score and p_true differ in length")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(t))):
        raise ValueError("p_score and p_true must be finite")
    if np.any((t < 0) | (t > 1)):
        raise ValueError("p_true must lie in [0, 1]")
    if s.size == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ordered = s[order]
    group = np.concatenate(([0], np.cumsum(ordered[1:] != ordered[:-1])))
    n_groups = int(group[-1]) + 1
    wpos, wneg = t[order], 1.0 - t[order]
    pos = np.bincount(group, weights=wpos, minlength=n_groups)
    neg = np.bincount(group, weights=wneg, minlength=n_groups)
    neg_below = np.cumsum(neg) - neg
    # einsum, not np.dot: 1-D BLAS ddot pays a thread start-up cost that dominates at this size.
    # The grouped sums include each row paired with itself (always a tie, weight t(1-t)); remove.
    self_pairs = float(np.einsum("i,i->", wpos, wneg))
    concordant = float(np.einsum("i,i->", pos, neg_below)) + 0.5 * (float(np.einsum("i,i->", pos, neg)) - self_pairs)
    total = float(pos.sum() * neg.sum()) - self_pairs
    if total <= 0:
        return float("nan")
    return float(concordant / total)


__all__ = ["FILE", "MISSING", "build", "expected_auroc", "is_categorical"]
