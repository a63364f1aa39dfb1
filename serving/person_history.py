"""Per-person history for streaming: the few earlier checkups that decide a later one's features.

A checkup's longitudinal features and its eligibility (:mod:`features.derive`,
:mod:`features.eligibility`) read, from the same person's earlier checkups, only: the previous
checkup, the last one that recorded each measure group (lipid panel, glucose, BP, creatinine, urine
protein) and the last one with each history or treatment flag set. :class:`PersonHistory` keeps
exactly those rows per person (usually one or two), reduced to :data:`HISTORY_COLUMNS`, so a file
streamed in chunks is scored as if read whole, in memory O(persons), never O(rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema
from features.derive import HISTORY_INPUTS as DERIVE_HISTORY_INPUTS
from features.derive import LASTING_FLAGS, build_features
from features.eligibility import ALL_FLAGS, RECORDED_BY
from features.eligibility import HISTORY_INPUTS as ELIGIBILITY_HISTORY_INPUTS
from serving.batch_output import ROW

# What the history code reads from an earlier checkup: the longitudinal features' inputs and the
# eligibility rules' inputs, each declared once next to the code that reads it.
HISTORY_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(DERIVE_HISTORY_INPUTS + ELIGIBILITY_HISTORY_INPUTS))
# The rest of a chunk's record fields (the chunk's own rows keep every field).
_OTHER_FIELDS: tuple[str, ...] = tuple(c for c in schema.COLUMNS if c not in HISTORY_COLUMNS)


def _person_date_order(frame: pd.DataFrame) -> np.ndarray:
    """Positions of ``frame`` sorted by person, then date; stable (input order among ties), as in
    ``longitudinal_features``."""
    date = pd.to_datetime(frame["exam_date"], errors="coerce").to_numpy(dtype="datetime64[ns]")
    pid = frame["person_id"].astype("string").fillna("").to_numpy(dtype=object)
    return np.lexsort((date, pid))


class PersonHistory:
    """Per person, the few earlier rows that decide every later row's features and eligibility.

    The history code (``features.derive.longitudinal_features``, ``features.eligibility``) reads,
    from a person's earlier checkups, only: the previous checkup, the last one with each measure
    group recorded (lipid panel, glucose, BP, creatinine, urine protein), and the last one with each
    history/treatment flag set. This keeps exactly those rows (usually one or two per person, each
    reduced to :data:`HISTORY_COLUMNS` with its input row), so memory is O(persons), never O(rows).
    """

    def __init__(self) -> None:
        self.kept: pd.DataFrame | None = None
        self.out_of_order_rows = 0
        self.persons: set[str] = set()

    def __len__(self) -> int:
        return len(self.persons)

    def with_history(self, records: pd.DataFrame) -> pd.DataFrame:
        """``records`` (a chunk, in input order) preceded by the kept rows of its persons; the kept
        rows get negative index labels, so ``frame.loc[records.index]`` selects the chunk again."""
        if not len(records) or self.kept is None:
            return records
        kept = self.kept[self.kept["person_id"].isin(records["person_id"].unique())]
        if not len(kept):
            return records
        last_date = kept.groupby("person_id", sort=False)["exam_date"].max()
        self.out_of_order_rows += int(
            (pd.to_datetime(records["exam_date"]) < records["person_id"].map(last_date)).sum()
        )
        hist = kept.drop(columns=[ROW])
        hist.index = pd.RangeIndex(-len(hist), 0)  # never collides with input rows (>= 0)
        return pd.concat([hist, records[list(records.columns.intersection(HISTORY_COLUMNS + _OTHER_FIELDS))]])

    def features(self, records: pd.DataFrame) -> pd.DataFrame:
        """The model matrix of ``records`` as in the whole file."""
        frame = self.with_history(records)
        return build_features(frame).loc[records.index]

    def update(self, records: pd.DataFrame) -> None:
        """Take in a scored chunk (its rows come after everything already seen, per person)."""
        if not len(records):
            return
        part = records[[c for c in HISTORY_COLUMNS if c in records.columns]].copy()
        part[ROW] = records.index.to_numpy()
        if self.kept is not None:
            part = pd.concat([self.kept[self.kept["person_id"].isin(part["person_id"].unique())], part])
            rest = self.kept[~self.kept["person_id"].isin(part["person_id"].unique())]
        else:
            rest = None
        part = part.iloc[_person_date_order(part)].reset_index(drop=True)
        self.persons.update(part["person_id"].unique().tolist())
        keep = _last_per_person(part, np.ones(len(part), dtype=bool))
        for mask in _history_masks(part):
            keep |= _last_per_person(part, mask)
        kept = part[keep]
        self.kept = kept if rest is None else pd.concat([rest, kept], ignore_index=True)


def _last_per_person(part: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """True at the last row (in person-date order) of each person where ``mask`` holds."""
    out = np.zeros(len(part), dtype=bool)
    sub = part[mask]
    if len(sub):
        out[sub.groupby("person_id", sort=False).tail(1).index.to_numpy()] = True
    return out


def _history_masks(part: pd.DataFrame) -> list[np.ndarray]:
    """Rows a later checkup may read: one mask per measure group (recorded, as eligibility judges
    it; the lipid panel by its marker, as the carried lipids do too) and per flag (set):
    eligibility's flags and the lasting answers the features carry forward."""
    masks = []
    for fields in RECORDED_BY.values():
        cols = [("serum_creatinine" if f == "egfr" else f) for f in fields]
        cols = [c for c in cols if c in part.columns]
        if cols:
            masks.append(part[cols].notna().any(axis=1).to_numpy())
    for f in dict.fromkeys(ALL_FLAGS + LASTING_FLAGS):
        if f in part.columns:
            masks.append((pd.to_numeric(part[f], errors="coerce") == 1).to_numpy())
    return masks
