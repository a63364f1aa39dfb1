"""The Dask engine of batch scoring: whole persons per partition, scored on a dask.distributed cluster.

The client reads and validates the file with the same readers as the pandas engine, spills the
valid records into ``N`` partitions by a hash of ``person_id`` (every partition holds whole persons,
so the longitudinal features are exact whatever the row order), scores the partitions on the cluster
(a ``LocalCluster`` of ``workers`` processes, one thread each, or the scheduler at ``scheduler``),
and merges the partition outputs back into the input row order. The model bundle goes to the
workers once (``client.scatter(..., broadcast=True)`` of the saved bundle files); each worker process
loads it once, single-threaded, and keeps it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema
from features.rejects import HistoryGaps
from models.bundle import RiskModel
from serving.batch_block import score_frame
from serving.batch_input import validated_chunks
from serving.batch_output import ROW, OutputWriter, RejectsWriter, output_schema


@dataclass(frozen=True)
class _Bundle:
    """A saved bundle's files, as sent to the workers; equal and hashed by their digest alone, so a
    worker keeps one loaded model per bundle."""

    digest: str
    files: tuple[tuple[str, bytes], ...] = field(compare=False)

    @classmethod
    def of(cls, model: RiskModel) -> _Bundle:
        with tempfile.TemporaryDirectory(prefix="checkup-risk-bundle-") as tmp:
            d = model.save(Path(tmp) / "bundle")
            files = tuple((p.name, p.read_bytes()) for p in sorted(d.iterdir()) if p.is_file())
        digest = hashlib.sha256()
        for name, data in files:
            digest.update(name.encode() + b"\0" + data)
        return cls(digest.hexdigest(), files)


@functools.lru_cache(maxsize=4)
def _worker_model(bundle: _Bundle) -> RiskModel:
    """The bundle, loaded once per worker process: single-threaded (one worker per core; n_jobs also
    bounds the compiled kernel's threads), engine built."""
    with tempfile.TemporaryDirectory(prefix="checkup-risk-bundle-") as tmp:
        for name, data in bundle.files:
            (Path(tmp) / name).write_bytes(data)
        model = RiskModel.load(tmp)
    model.n_jobs = 1
    for m in model.models_.values():
        for b in [m.booster, *(member.booster for member in m.members)]:
            b.set_param({"nthread": 1})
    model.warm_up()
    return model


def _warm_worker(bundle: _Bundle) -> str:
    """Load the bundle (and build its engine) on a worker ahead of its first partition; its backend."""
    return _worker_model(bundle).engine().backend


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _score_partition(records_parquet: bytes, bundle: _Bundle, version: str, explain: int, intervals: bool) -> bytes:
    """Worker task: whole persons in, their output rows (with ``_row``, in row order) out."""
    model = _worker_model(bundle)
    records = pq.read_table(io.BytesIO(records_parquet)).to_pandas()
    records = records.set_index(ROW).sort_index(kind="stable")
    records.index.name = None
    scored = score_frame(model, records, version, explain, intervals)
    schema = output_schema(tuple(model.models_), explain, intervals)
    table = pa.Table.from_pandas(scored, schema=schema, preserve_index=False)
    return _parquet_bytes(table.append_column(ROW, pa.array(records.index.to_numpy(dtype="int64"))))


def _estimate_rows(path: Path) -> int:
    """Rows in a file: exact for Parquet, from the first MiB's bytes per line for CSV."""
    if path.name.lower().endswith((".parquet", ".pq")):
        return pq.ParquetFile(path).metadata.num_rows
    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(1 << 20)
    lines = max(1, head.count(b"\n"))
    if len(head) < (1 << 20):
        return lines
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        size *= 8  # compressed: assume about 8x
    return max(1, int(size / (len(head) / lines)))


def _partition_of(person_id: pd.Series, n: int) -> np.ndarray:
    """Stable partition 0..n-1 of each person (same person, same partition, in every chunk)."""
    h = pd.util.hash_pandas_object(person_id.astype("str"), index=False).to_numpy()
    return (h % np.uint64(n)).astype(np.int64)


def _start_client(workers: int, scheduler: str | None) -> tuple[Any, Any]:
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    )
    return Client(cluster), cluster


def score_dask(
    model: RiskModel,
    input_path: str | Path,
    version: str,
    explain: int,
    intervals: bool,
    chunk_rows: int,
    workers: int,
    scheduler: str | None,
    out: OutputWriter,
    rej: RejectsWriter,
    progress: Callable[[int], None] | None,
) -> dict:
    """Score ``input_path`` into ``out`` and ``rej`` on a cluster; the row accounting as a dict."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    client, cluster = _start_client(workers, scheduler)
    try:
        worker_addrs = list(client.scheduler_info().get("workers", {}))
        n_workers = max(1, len(worker_addrs) or workers)
        n_parts = max(2 * n_workers, math.ceil(_estimate_rows(Path(input_path)) / chunk_rows))
        n_parts = int(math.ceil(n_parts / n_workers) * n_workers)
        # The bundle goes to every worker once; they load it (and build its engine) while the
        # client reads the file.
        [bundle] = client.scatter([_Bundle.of(model)], broadcast=True)
        warm = [
            client.submit(_warm_worker, bundle, workers=[w], allow_other_workers=False, pure=False)
            for w in worker_addrs
        ]
        with tempfile.TemporaryDirectory(prefix="checkup-risk-dask-") as tmp_name:
            tmp = Path(tmp_name)
            counts: Counter[str] = Counter()
            examples: dict[str, list[int]] = {}
            gaps = HistoryGaps()
            rows_in, spill_rows = _spill(input_path, chunk_rows, n_parts, tmp, rej, progress, counts, gaps, examples)
            backends = client.gather(warm)  # surfaces a worker that cannot load the bundle
            done = _score_partitions(
                client, bundle, version, explain, intervals, tmp, spill_rows, 2 * n_workers, progress
            )
            scored = _merge_outputs([tmp / f"out_{p}.parquet" for p in done], rows_in, chunk_rows, out)
        if scored != int(spill_rows.sum()):
            raise RuntimeError(f"row accounting broken: {int(spill_rows.sum())} rows sent, {scored} scored")
        return {
            "rows_in": rows_in,
            "rows_scored": scored,
            **gaps.counts(),
            "exam_date_defaulted": counts["exam_date_defaulted"],
            "waist_999": counts["waist_999"],
            "sex_differs": counts["sex_differs"],
            "age_differs": counts["age_differs"],
            "sex_differs_rows": examples.get("sex_differs", []),
            "age_differs_rows": examples.get("age_differs", []),
            "age_group_differs": counts["age_group_differs"],
            "partitions": n_parts,
            "workers": n_workers,
            "backend": backends[0] if backends else None,
        }
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _spill(
    input_path: str | Path,
    chunk_rows: int,
    n_parts: int,
    tmp: Path,
    rej: RejectsWriter,
    progress: Callable[[int], None] | None,
    counts: Counter[str],
    gaps: HistoryGaps,
    examples: dict[str, list[int]],
) -> tuple[int, np.ndarray]:
    """Read and validate on the client (the project readers), write the rejects, and spill the valid
    records, whole persons by hash, to ``tmp/in_{p}.parquet``: (rows in, rows spilled per partition).
    The readers' counts are added to `counts`."""
    spill: dict[int, pq.ParquetWriter] = {}
    spill_rows = np.zeros(n_parts, dtype=np.int64)
    rows_in = 0
    try:
        for n_in, records, rejects in validated_chunks(input_path, chunk_rows, counts, gaps, examples):
            rej.write(rejects)
            rows_in += n_in
            if progress and len(rejects):
                progress(int(rejects["index"].nunique()))
            if not len(records):
                continue
            frame = records[list(schema.COLUMNS)].copy()
            frame[ROW] = records.index.to_numpy(dtype="int64")
            part = _partition_of(frame["person_id"], n_parts)
            for p in np.unique(part):
                table = pa.Table.from_pandas(frame[part == p], preserve_index=False)
                if p not in spill:
                    spill[p] = pq.ParquetWriter(tmp / f"in_{p}.parquet", table.schema, compression="zstd")
                spill[p].write_table(table.cast(spill[p].schema))
                spill_rows[p] += table.num_rows
    finally:
        for w in spill.values():
            w.close()
    return rows_in, spill_rows


def _score_partitions(
    client: Any,
    bundle: Any,
    version: str,
    explain: int,
    intervals: bool,
    tmp: Path,
    spill_rows: np.ndarray,
    window: int,
    progress: Callable[[int], None] | None,
) -> list[int]:
    """Score every spilled partition on the cluster, at most ``window`` in flight, each output to
    ``tmp/out_{p}.parquet``; the partitions scored, in order."""
    from dask.distributed import as_completed

    parts = [int(p) for p in np.flatnonzero(spill_rows)]
    todo = list(parts)
    results = as_completed()
    running: dict[Any, tuple[int, Any]] = {}  # task -> (partition, its input, held until the task ends)

    def submit(p: int) -> None:
        [data] = client.scatter([(tmp / f"in_{p}.parquet").read_bytes()])
        fut = client.submit(_score_partition, data, bundle, version, explain, intervals, pure=False)
        running[fut] = (p, data)
        results.add(fut)

    while todo and len(running) < window:
        submit(todo.pop(0))
    for fut in results:
        p, _ = running.pop(fut)
        (tmp / f"out_{p}.parquet").write_bytes(fut.result())
        (tmp / f"in_{p}.parquet").unlink()
        fut.release()
        if progress:
            progress(int(spill_rows[p]))
        if todo:
            submit(todo.pop(0))
    return parts


def _merge_outputs(paths: list[Path], rows_in: int, chunk_rows: int, out: OutputWriter) -> int:
    """k-way merge by ``_row`` of partition outputs sorted by ``_row``, one row range at a time."""
    batch = max(1024, chunk_rows // max(1, len(paths)))
    iters = [pq.ParquetFile(p).iter_batches(batch_size=batch) for p in paths]
    bufs: list[pa.Table | None] = [None] * len(paths)
    done = [False] * len(paths)
    written = 0
    for end in range(chunk_rows, rows_in + chunk_rows, chunk_rows):
        pieces = []
        for i, it in enumerate(iters):
            buf = bufs[i]
            while not done[i] and (buf is None or buf.num_rows == 0 or buf.column(ROW)[-1].as_py() < end):
                nxt = next(it, None)
                if nxt is None:
                    done[i] = True
                else:
                    t = pa.Table.from_batches([nxt])
                    buf = t if buf is None else pa.concat_tables([buf, t])
            if buf is None or not buf.num_rows:
                bufs[i] = buf
                continue
            cut = int(np.searchsorted(buf.column(ROW).to_numpy(), end))
            pieces.append(buf.slice(0, cut))
            bufs[i] = buf.slice(cut)
        if not pieces:
            continue
        merged = pa.concat_tables(pieces)
        merged = merged.take(pa.array(np.argsort(merged.column(ROW).to_numpy(), kind="stable")))
        frame = merged.drop_columns([ROW]).to_pandas()
        out.write(frame)
        written += len(frame)
    leftover = sum(b.num_rows for b in bufs if b is not None)
    leftover += sum(b.num_rows for i, it in enumerate(iters) if not done[i] for b in it)
    if leftover:
        raise RuntimeError(f"partition outputs hold {leftover} rows beyond the input's {rows_in}")
    return written
