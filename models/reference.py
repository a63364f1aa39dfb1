"""Where a predicted risk stands among people of the same sex and age band in the training data.

At fit time every outcome gets a compact table: per sex x age band (`features.derive.AGE_BANDS`),
the 1st..99th percentiles of the predicted one-year risk over the training checkups the outcome
applies to. The table is saved in the bundle manifest, so it travels with the model and always
describes the model that made the prediction. Bundles saved before it existed simply have none.
"""

from __future__ import annotations

import numpy as np

from features.derive import AGE_BANDS

QUANTILES = np.arange(1, 100) / 100.0
# Below this many checkups a band's upper percentiles rest on a handful of people: not quoted.
MIN_ROWS = 100


def cell_key(sex: str, band: str) -> str:
    return f"{sex}|{band}"


def build_tables(probability: np.ndarray, sex: np.ndarray, band: np.ndarray) -> dict[str, dict]:
    """{"M|50-59": {"n": rows, "quantiles": [99 risks]}} for every cell with enough rows."""
    out = {}
    for s in ("F", "M"):
        for _, _, b in AGE_BANDS:
            m = (sex == s) & (band == b) & np.isfinite(probability)
            n = int(m.sum())
            if n < MIN_ROWS:
                continue
            q = np.quantile(probability[m], QUANTILES)
            # Six significant digits: the manifest stays small and ranks do not change.
            out[cell_key(s, b)] = {"n": n, "quantiles": [float(f"{x:.6g}") for x in q]}
    return out


def percentile(cell: dict, probability: float) -> float:
    """Share (0..100) of the cell's training checkups with a lower predicted risk.

    Quantiles that equal the risk (many people share a predicted risk at the flat ends of a tree
    model) count half, as a mid-rank, so a tie does not read as "higher than everyone".
    """
    q = np.asarray(cell["quantiles"], dtype=float)
    probability = float(f"{probability:.6g}")  # as the quantiles were stored, so that a tie stays a tie
    below = np.searchsorted(q, probability, side="left")
    not_above = np.searchsorted(q, probability, side="right")
    # k quantiles below p means p lies above the k-th percentile: about k % of people are lower.
    return float((below + not_above) / 2.0 * 100.0 / (len(q) + 1))
