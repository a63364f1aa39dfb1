"""What batch scoring reads: a checkup file, validated, as valid records and rejects per chunk.

Every input row is either a valid record or a reject (with its reasons); each chunk's accounting
is checked, so a row can never be lost between reading and writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.readers import iter_checkups, read_checkups
from features.validation import split_valid


def validated_chunks(input_path: str | Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(rows in, valid records, rejects sorted by row) per input chunk, with the chunk's row
    accounting checked."""
    for read in iter_checkups(input_path, chunk_rows=chunk_rows):
        records, rejects = validate_read(read.frame, read.rejects)
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
