"""What batch scoring reads: a checkup file, validated, as valid records and rejects per chunk.

Every input row is either a valid record or a reject (with its reasons); each chunk's accounting
is checked, so a row can never be lost between reading and writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from features.readers import iter_checkups, read_checkups
from features.rejects import HistoryGaps, same_day
from features.schema import age_spans, age_to_group, ages_disagree
from features.validation import PROBLEM_COLUMNS, split_valid

# How many data rows a warning about inconsistent checkups names.
EXAMPLE_ROWS = 10


def validated_chunks(
    input_path: str | Path,
    chunk_rows: int,
    counts: Counter[str] | None = None,
    gaps: HistoryGaps | None = None,
    examples: dict[str, list[int]] | None = None,
) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(rows in, valid records, rejects sorted by row) per input chunk, with the chunk's row
    accounting checked. `counts` adds up the readers' counts (`ReadResult.counts`: rows whose
    exam_date was set to today, waists of 999) over the chunks, `sex_differs`: valid rows that
    give another sex than the person's previous valid row (scored as given, but likely two persons
    under one id, or a typo), and `age_differs`: valid rows whose age does not move with the time
    since that row; `examples` the first `EXAMPLE_ROWS` data rows of each of those two.

    A second row of one person on one date is rejected within a chunk by the validation, and
    across chunks against each person's latest date so far (`_Persons`); in a file that is not in
    date order per person, a repeat of an older date in an earlier chunk is not seen."""
    persons = _Persons()
    for read in iter_checkups(input_path, chunk_rows=chunk_rows, labels=False):
        if counts is not None:
            counts.update(read.counts)
        records, rejects = validate_read(read.frame, read.rejects)
        records, repeats = persons.repeats(records)
        if len(repeats):
            rejects = pd.concat([rejects, repeats], ignore_index=True).sort_values("index", kind="stable")
        sex_differ, age_differ = persons.update(records)
        if counts is not None:
            counts["sex_differs"] += int(sex_differ.sum())
            counts["age_differs"] += int(age_differ.sum())
            counts["age_group_differs"] += _outside_age_group(records)
        if examples is not None:
            # The data rows to check (1-based, as the rejects file numbers them): a count alone
            # could not be followed up. Row numbers, never values.
            for key, mask in (("sex_differs", sex_differ), ("age_differs", age_differ)):
                rows = examples.setdefault(key, [])
                rows += [int(i) + 1 for i in records.index[mask][: max(EXAMPLE_ROWS - len(rows), 0)]]
        if gaps is not None:
            gaps.update(records, rejects)
        rejected = set(rejects["index"].tolist())
        if rejected & set(records.index.tolist()) or len(records) + len(rejected) != read.rows_in:
            raise RuntimeError(
                f"row accounting broken in a chunk: {read.rows_in} rows in, {len(records)} valid, "
                f"{len(rejected)} rejected"
            )
        yield read.rows_in, records, rejects


def _outside_age_group(records: pd.DataFrame) -> int:
    """Valid rows giving both an age and an age_group that does not hold it: the age is used, as in
    /score (which warns per record)."""
    if not len(records):
        return 0
    age, group = records["age"].to_numpy(dtype=float), records["age_group"].to_numpy(dtype=float)
    both = ~np.isnan(age) & ~np.isnan(group)
    return int(sum(age_to_group(a) != int(g) for a, g in zip(age[both], group[both], strict=True)))


def read_whole(input_path: str | Path) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(rows in, valid records, rejects) of a whole file: the reference for the streamed engines."""
    read = read_checkups(input_path, labels=False)
    records, rejects = validate_read(read.frame, read.rejects)
    return read.rows_in, records, rejects


def validate_read(
    frame: pd.DataFrame, read_rejects: pd.DataFrame, labels: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid records, the reader's and the validation's rejects together, sorted by row): the rows
    `score` scores and rejects (`checkup-risk validate` reports the same). With `labels`, label
    values are checked too, as `train` checks them."""
    records, problems = split_valid(frame, labels)
    parts = [r for r in (read_rejects, problems) if len(r)]
    rejects = pd.concat(parts, ignore_index=True).sort_values("index", kind="stable") if parts else read_rejects
    return records, rejects


class _Persons:
    """What the chunks read so far say of each person_id: its latest exam_date with the input row
    that has it, and the sex, date and age of its last valid row. Memory O(persons); each chunk costs
    O(its rows)."""

    def __init__(self) -> None:
        self.latest: dict[object, tuple[pd.Timestamp, int]] = {}
        self.sex: dict[object, object] = {}
        self.aged: dict[object, tuple[float, float, float]] = {}  # (exam day, youngest, oldest age)

    def repeats(self, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(records, rejects of those whose person and date are a row kept from an earlier chunk)."""
        kept = [self.latest.get(p) for p in records["person_id"].to_numpy(dtype=object)]
        dates = records["exam_date"].to_numpy(dtype=object)
        repeat = np.array([k is not None and k[0] == d for k, d in zip(kept, dates, strict=True)], dtype=bool)
        if not repeat.any():
            return records, pd.DataFrame(columns=list(PROBLEM_COLUMNS))
        rows = records[repeat]
        rejects = pd.DataFrame(
            {
                "index": rows.index,
                "person_id": rows["person_id"].to_numpy(dtype=object),
                "field": "exam_date",
                "value": rows["exam_date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
                "reason": [same_day(k[1]) for k, r in zip(kept, repeat, strict=True) if r and k is not None],
            }
        )
        return records[~repeat], rejects

    def update(self, records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Take in a chunk's valid records; which of them give another sex than the same person's
        previous valid row (in file order), and which an age that does not move with the time since
        that row (`features.schema.ages_disagree`; `/score` compares with the previous
        checkup by date, the same thing in a file sorted by date)."""
        n = len(records)
        absent = pd.Series(np.nan, index=records.index)
        lo, hi = age_spans(*(records.get(c, absent).to_numpy(dtype=float) for c in ("age", "age_group")))
        day = records["exam_date"].to_numpy(dtype="datetime64[D]").astype("int64").astype(float)
        day[records["exam_date"].isna().to_numpy()] = np.nan
        before_lo, before_hi, before_day = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        sex_differ = np.zeros(n, dtype=bool)
        columns = (records[c].to_numpy(dtype=object) for c in ("person_id", "exam_date", "sex"))
        for k, (pid, date, sex, row) in enumerate(zip(*columns, records.index, strict=True)):
            if pd.isna(pid):
                continue
            before = self.sex.get(pid)
            sex_differ[k] = before is not None and before != sex
            self.sex[pid] = sex
            if (last := self.aged.get(pid)) is not None:
                before_day[k], before_lo[k], before_hi[k] = last
            self.aged[pid] = (day[k], lo[k], hi[k])
            if not pd.isna(date) and ((kept := self.latest.get(pid)) is None or date > kept[0]):
                self.latest[pid] = (date, int(row))
        years = (day - before_day) / 365.25
        return sex_differ, ages_disagree((before_lo, before_hi), (lo, hi), years)
