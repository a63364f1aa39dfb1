"""Output rows for a block of records: risks where each outcome applies, and the top-K factors.

Explanations (``explain=K``): for each outcome the K features with the largest absolute
contribution in calibrated log-odds, in columns ``<outcome>_factor_{i}`` (feature name) and
``<outcome>_factor_{i}_log_odds``; empty where the outcome does not apply. Only the rows where an
outcome applies are explained, and "no earlier checkup" is never listed as a factor (as in /score).
A factor whose value is missing (`features.derive.unmeasured`) is listed, as the model used it, but
named with `MISSING_MARK` ("fasting_glucose (missing)"): its contribution is the model's adjustment
for the absent value, not something measured in the person.
Scores and explanations come from the model's one scoring path, `RiskModel.score`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.derive import FEATURES, absent_history, build_features, unmeasured
from features.eligibility import applicability
from models.bundle import RiskModel
from models.provenance import normalise

# Appended to a factor's feature name where the checkup has no value for it.
MISSING_MARK = " (missing)"


def score_block(
    model: RiskModel,
    records: pd.DataFrame,
    frame: pd.DataFrame,
    version: str,
    explain: int = 0,
    intervals: bool = False,
) -> pd.DataFrame:
    """The output rows of ``records`` (same index; columns `serving.batch_output.output_columns`).
    ``frame`` is ``records``, possibly preceded by earlier checkups of the same persons (negative
    index labels): features and eligibility are judged with that history, only ``records`` are
    scored."""
    outcomes = tuple(model.models_)
    X = build_features(frame)
    judged = applicability(frame, outcomes)
    keep = np.arange(len(frame)) if frame is records else frame.index.get_indexer(records.index)
    applies = {o: judged[o].applies[keep] for o in outcomes}
    Xn = np.ascontiguousarray(X.to_numpy(dtype=float)[keep])
    scored = model.score(Xn, intervals=intervals)
    out = pd.DataFrame({"person_id": records["person_id"], "exam_date": records["exam_date"]}, index=records.index)
    for o in outcomes:
        out[f"{o}_risk"] = np.where(applies[o], scored.probability[o], np.nan)
    for o in outcomes:
        out[f"{o}_reason"] = judged[o].reason[keep]
    out["model_version"] = str(version)
    # A file of scores outlives the console that said so: every row says what the model learned from.
    out["model_training_data"] = normalise(getattr(model, "training_data_", None))["kind"]
    for o in outcomes if intervals else ():
        # An outcome without interval members (a bundle saved before them) has no interval.
        low, high = scored.interval(o) or (np.full(len(Xn), np.nan),) * 2
        out[f"{o}_interval_low"] = np.where(applies[o], low, np.nan)
        out[f"{o}_interval_high"] = np.where(applies[o], high, np.nan)
    if explain > 0:
        top = top_factors(model, Xn, applies, explain)
        cols = {}
        for o in outcomes:
            names, values = top[o]
            for i in range(explain):
                cols[f"{o}_factor_{i + 1}"] = names[:, i]
                cols[f"{o}_factor_{i + 1}_log_odds"] = values[:, i]
        out = pd.concat([out, pd.DataFrame(cols, index=records.index)], axis=1)
    return out


def score_frame(
    model: RiskModel, records: pd.DataFrame, version: str, explain: int = 0, intervals: bool = False
) -> pd.DataFrame:
    """The whole-frame path (`score_block` with features and eligibility from all of ``records``)."""
    return score_block(model, records, records, version, explain, intervals)


def top_factors(
    model: RiskModel, X: np.ndarray, rows: Mapping[str, np.ndarray], k: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Top-k explanation per outcome: ``{outcome: (names n x k (object, None where not
    explained; a feature the row lacks ends in `MISSING_MARK`), log-odds n x k (NaN where not
    explained))}``; ``rows[outcome]`` is the boolean mask of the rows of the model matrix ``X`` to
    explain (the rows where the outcome applies)."""
    n = len(X)
    kk = min(k, len(FEATURES))
    names_all = np.asarray(FEATURES, dtype=object)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for o, m in rows.items():
        m = np.asarray(m, dtype=bool)
        names = np.full((n, k), None, dtype=object)
        values = np.full((n, k), np.nan)
        if m.any():
            Xm = np.ascontiguousarray(X[m])
            c = model.score(Xm, explain=True, outcomes=(o,)).contributions[o]
            unlisted = absent_history(Xm)
            idx, val = _top_k(c, kk, unlisted)
            shown = ~np.take_along_axis(unlisted, idx, axis=1)
            missing = np.take_along_axis(unmeasured(Xm), idx, axis=1)
            listed = np.where(missing, names_all[idx] + MISSING_MARK, names_all[idx])
            names[m, :kk] = np.where(shown, listed, None)
            values[m, :kk] = np.where(shown, val, np.nan)
        out[o] = (names, values)
    return out


def _top_k(contrib: np.ndarray, k: int, unlisted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest |contributions| per row, largest first
    (ties by feature order); entries where ``unlisted`` is True rank last (the caller blanks them)."""
    n, f = contrib.shape
    k = min(k, f)
    a = np.abs(contrib)
    if unlisted is not None:
        a = np.where(unlisted, -1.0, a)
    if k < f:
        part = np.argpartition(-a, k - 1, axis=1)[:, :k]
        part.sort(axis=1)
    else:
        part = np.broadcast_to(np.arange(f), (n, f)).copy()
    order = np.argsort(-np.take_along_axis(a, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(contrib, idx, axis=1)
