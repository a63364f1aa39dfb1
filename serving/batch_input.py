"""What batch scoring reads: a checkup file, validated, as valid records and rejects per chunk.

Every input row is either a valid record or a reject (with its reasons); each chunk's accounting
is checked, so a row can never be lost between reading and writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.readers import iter_checkups, read_checkups
from features.rejects import same_day
from features.validation import PROBLEM_COLUMNS, split_valid


def validated_chunks(
    input_path: str | Path, chunk_rows: int, counts: Counter[str] | None = None
) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(rows in, valid records, rejects sorted by row) per input chunk, with the chunk's row
    accounting checked. `counts` adds up the readers' counts (`ReadResult.counts`: rows whose
    exam_date was set to today, waists of 999) over the chunks, and `sex_differs`: valid rows that
    give another sex than their person's first valid row (scored as given, but likely two persons
    under one id, or a typo).

    A second row of one person on one date is rejected within a chunk by the validation, and
    across chunks against each person's latest date so far (memory O(persons)); in a file that is
    not in date order per person, a repeat of an older date in an earlier chunk is not seen."""
    latest: pd.DataFrame | None = None  # per person_id: exam_date and the input row kept for it
    first_sex: pd.Series | None = None  # per person_id: the sex of its first valid row
    for read in iter_checkups(input_path, chunk_rows=chunk_rows):
        if counts is not None:
            counts.update(read.counts)
        records, rejects = validate_read(read.frame, read.rejects)
        records, repeats = _repeats_of_earlier_chunks(records, latest)
        if len(repeats):
            rejects = pd.concat([rejects, repeats], ignore_index=True).sort_values("index", kind="stable")
        latest = _latest_dates(records, latest)
        first_sex, differ = _other_sex(records, first_sex)
        if counts is not None:
            counts["sex_differs"] += differ
        rejected = set(rejects["index"].tolist())
        if rejected & set(records.index.tolist()) or len(records) + len(rejected) != read.rows_in:
            raise RuntimeError(
                f"row accounting broken in a chunk: {read.rows_in} rows in, {len(records)} valid, "
                f"{len(rejected)} rejected"
            )
        yield read.rows_in, records, rejects


def read_whole(input_path: str | Path) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(rows in, valid records, rejects) of a whole file: the reference for the streamed engines."""
    read = read_checkups(input_path)
    records, rejects = validate_read(read.frame, read.rejects)
    return read.rows_in, records, rejects


def validate_read(frame: pd.DataFrame, read_rejects: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid records, the reader's and the validation's rejects together, sorted by row): the rows
    `score` scores and rejects (`checkup-risk validate` reports the same)."""
    records, problems = split_valid(frame)
    parts = [r for r in (read_rejects, problems) if len(r)]
    rejects = pd.concat(parts, ignore_index=True).sort_values("index", kind="stable") if parts else read_rejects
    return records, rejects


def _repeats_of_earlier_chunks(records: pd.DataFrame, latest: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects of those whose person and date match a row kept from an earlier chunk)."""
    none = pd.DataFrame(columns=list(PROBLEM_COLUMNS))
    if latest is None or not len(records):
        return records, none
    kept_date = records["person_id"].map(latest["exam_date"])
    repeat = (records["exam_date"] == kept_date).to_numpy(dtype=bool)
    if not repeat.any():
        return records, none
    rows = records[repeat]
    rejects = pd.DataFrame(
        {
            "index": rows.index,
            "person_id": rows["person_id"].to_numpy(dtype=object),
            "field": "exam_date",
            "value": rows["exam_date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "reason": [same_day(int(i)) for i in rows["person_id"].map(latest["row"])],
        }
    )
    return records[~repeat], rejects


def _latest_dates(records: pd.DataFrame, latest: pd.DataFrame | None) -> pd.DataFrame:
    """Per person_id (the index), the latest exam_date seen so far and the first input row with it."""
    part = pd.DataFrame(
        {"exam_date": records["exam_date"].to_numpy(), "row": records.index.to_numpy()},
        index=pd.Index(records["person_id"].to_numpy(dtype=object), name="person_id"),
    )
    both = part if latest is None else pd.concat([latest, part])
    both = both[both.index.notna() & both["exam_date"].notna()]
    # Latest date first, then the earliest row with it: the row a later repeat is told about.
    both = both.sort_values(["exam_date", "row"], ascending=[False, True], kind="stable")
    return both[~both.index.duplicated(keep="first")]


def _other_sex(records: pd.DataFrame, first_sex: pd.Series | None) -> tuple[pd.Series, int]:
    """(per person_id the sex of its first valid row, rows of `records` that give another)."""
    if not len(records):
        return (first_sex if first_sex is not None else pd.Series(dtype=object)), 0
    first = records.drop_duplicates("person_id").set_index("person_id")["sex"]
    first_sex = first if first_sex is None else pd.concat([first_sex, first[~first.index.isin(first_sex.index)]])
    differ = records["sex"].to_numpy(dtype=object) != records["person_id"].map(first_sex).to_numpy(dtype=object)
    return first_sex, int(differ.sum())
