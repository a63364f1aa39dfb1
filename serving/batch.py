"""Batch scoring of checkup files: every input row is either scored or written to the rejects file.

Two engines give the same output, row for row (``score_file(..., engine=...)``):

* **pandas** (here) streams the input (:mod:`serving.batch_input`) in chunks of ``chunk_rows`` rows
  and appends each chunk's scores to the output as it goes (:mod:`serving.batch_output`), so memory
  is bounded by the chunk size plus a small per-person history state (:mod:`serving.person_history`),
  never by the file.
* **dask** (:mod:`serving.batch_dask`) scores partitions of whole persons on a cluster and merges
  them back into the input row order.

Both score blocks of records the same way (:mod:`serving.batch_block`), through the model's one
scoring path (`RiskModel.score`).

Assumption of the pandas engine: **each person's checkups appear in date order in the file**
(exports are sorted by person and date; persons may be interleaved). Then the streamed scores equal
the whole-file scores exactly. A checkup dated before the same person's checkup in an earlier chunk
breaks the assumption: both it and the later checkup already scored would have the wrong history,
so the run stops with `OutOfOrder` at that chunk and writes nothing (within one chunk order does
not matter). The chunks scored before it are in the prediction log; the monitor counts each checkup
once, its latest prediction, so a run of the sorted file supersedes them.
The dask engine does not need the assumption for history, but both read the file in chunks to
validate it, so both find a repeated person and date across chunks only against the person's
latest date so far.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.rejects import HistoryGaps
from models.bundle import RiskModel
from serving.batch_block import score_block, score_frame
from serving.batch_input import read_whole, validated_chunks
from serving.batch_output import OutputWriter, RejectsWriter, check_output, output_schema, rejects_path
from serving.person_history import PersonHistory

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_WORKERS",
    "ENGINES",
    "PersonHistory",
    "read_whole",
    "rejects_path",
    "score_file",
    "score_frame",
]

ENGINES = ("pandas", "dask")
DEFAULT_CHUNK_ROWS = 200_000
DEFAULT_WORKERS = 2


class OutOfOrder(ValueError):
    """A file not in date order per person across the pandas engine's chunks: not scored."""


def score_file(
    model: RiskModel,
    input_path: str | Path,
    output_path: str | Path,
    version: str,
    progress: Callable[[int], None] | None = None,
    *,
    explain: int = 0,
    intervals: bool = False,
    engine: str = "pandas",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = DEFAULT_WORKERS,
    scheduler: str | None = None,
    on_scored: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
) -> dict:
    """Score a checkup file to ``output_path`` (.csv or .parquet) and ``OUTPUT.rejects.csv``.

    Columns: `serving.batch_output.output_columns` (``intervals`` adds each outcome's interval).
    ``progress(n)`` is called with the number of input rows done since the last call. Returns the
    row accounting (``rows_in = rows_scored + rows_rejected``, checked; a mismatch raises) and
    ``reject_reasons``: ``index``, ``field``, ``reason`` per reject line (for a summary of reasons).
    ``on_scored(records, output)`` is told each scored chunk (the pandas engine; the prediction log,
    `serving.prediction_logger.BatchLog`); the dask engine scores on its workers and tells nothing.
    """
    output_path = Path(output_path)
    check_output(output_path, Path(input_path))
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if explain < 0:
        raise ValueError("explain must be >= 0")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    out = OutputWriter(output_path, output_schema(tuple(model.models_), explain, intervals))
    rej = RejectsWriter(rejects_path(output_path))
    try:
        if engine == "pandas":
            summary = _score_pandas(
                model, input_path, version, explain, intervals, chunk_rows, out, rej, progress, on_scored
            )
        else:
            from serving.batch_dask import score_dask

            summary = score_dask(
                model, input_path, version, explain, intervals, chunk_rows, workers, scheduler, out, rej, progress
            )
        if out.rows != summary["rows_scored"] or summary["rows_scored"] + rej.rows != summary["rows_in"]:
            raise RuntimeError(
                f"row accounting broken: {summary['rows_in']} in, {out.rows} written "
                f"({summary['rows_scored']} scored), {rej.rows} rejected"
            )
    except BaseException:
        out.abort()
        rej.abort()
        raise
    out.commit()
    rej.commit()
    summary.update(
        rows_rejected=rej.rows, rejects_path=rejects_path(output_path), reject_reasons=rej.reasons(), engine=engine
    )
    return summary


def _score_pandas(
    model: RiskModel,
    input_path: str | Path,
    version: str,
    explain: int,
    intervals: bool,
    chunk_rows: int,
    out: OutputWriter,
    rej: RejectsWriter,
    progress: Callable[[int], None] | None,
    on_scored: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
) -> dict:
    history = PersonHistory()
    rows_in = scored = 0
    counts: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    gaps = HistoryGaps()
    for n_in, records, rejects in validated_chunks(input_path, chunk_rows, counts, gaps, examples):
        framed = history.with_history(records)
        if history.out_of_order_rows:
            # Streaming reads each person's checkups in file order: a checkup met in this chunk but
            # dated before one already scored makes both risks wrong (a known condition could be
            # scored as new). Stop here, before this chunk is written or logged; score_file then
            # writes nothing rather than a file of some wrong risks.
            raise OutOfOrder(
                f"{history.out_of_order_rows:,} checkups in rows {rows_in + 1:,}-{rows_in + n_in:,} are dated before "
                f"a checkup of the same person in an earlier chunk of {chunk_rows:,} rows, so their histories would "
                "be wrong; nothing was written (the prediction log keeps the rows scored before: a run of the "
                "sorted file supersedes them): sort the file by person_id, exam_date, or use --engine dask"
            )
        block = score_block(model, records, framed, version, explain, intervals)
        out.write(block)
        if on_scored is not None:
            on_scored(records, block)
        history.update(records)
        rej.write(rejects)
        rows_in += n_in
        scored += len(records)
        if progress:
            progress(n_in)
    return {
        "rows_in": rows_in,
        "rows_scored": scored,
        **gaps.counts(),
        "out_of_order_rows": history.out_of_order_rows,
        "exam_date_defaulted": counts["exam_date_defaulted"],
        "waist_999": counts["waist_999"],
        "sex_differs": counts["sex_differs"],
        "age_differs": counts["age_differs"],
        "sex_differs_rows": examples.get("sex_differs", []),
        "age_differs_rows": examples.get("age_differs", []),
        "age_group_differs": counts["age_group_differs"],
        "persons": len(history),
        "backend": model.engine().backend if scored else None,
    }
