"""What the prediction log (issue 15) costs a request, and how fast its flush writes.

In process, one record, explain on: `Scorer.score_records` alone vs through the prediction logger
as the routes use it (`PredictionLogger.observe(scorer, source)` per call, its flush thread running
and writing Parquet in the background). Calls are interleaved one by one, so background load hits
both alike; p50 / p99 over `--calls` each. Also `log()` alone, and the flush's throughput: rows
counted into /metrics and written to Parquet, rows/s. Goal: <= 0.5 ms added at p50.

    .venv/bin/python bench/bench_prediction_log.py [--calls 3000] [--people 2000] [--rows 50000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _stats(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.median(a)), float(np.percentile(a, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per method, after warm-up")
    parser.add_argument("--people", type=int, default=2000, help="synthetic cohort the bench model learns from")
    parser.add_argument("--rows", type=int, default=50_000, help="rows for the flush throughput")
    args = parser.parse_args()

    from features.pseudonym import derive
    from features.schema import EXAMPLE_RECORD
    from features.synth import generate_cohort
    from models.bundle import DEFAULT_GRID, RiskModel
    from serving.prediction_logger import ParquetStore, PredictionLogger
    from serving.schemas import Checkup
    from serving.scoring import Scorer

    began = time.perf_counter()
    model = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(generate_cohort(people=args.people, seed=3))
    scorer = Scorer(model, "bench")
    record = Checkup.model_validate(EXAMPLE_RECORD).model_dump()
    key = derive(b"bench-secret", "pseudonym")
    tmp = Path(tempfile.mkdtemp(prefix="bench-prediction-log-"))
    logger = PredictionLogger(ParquetStore(tmp / "log"), key)  # its flush thread runs, as in a worker

    def plain() -> None:
        scorer.score_records([dict(record)], explain=True)

    def logged() -> None:
        logger.observe(scorer, "score").score_records([dict(record)], explain=True)

    results = scorer.score_records([dict(record)], explain=True)

    def log_only() -> None:
        logger.log([record], results, "bench", "score")

    methods = {"score_records": plain, "score_records + prediction log": logged, "log() alone": log_only}
    for f in methods.values():
        for _ in range(50):
            f()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.calls):
        for name, f in methods.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    logger.close()
    logged_rows = logger.written

    # Flush throughput: rows already buffered, counted into /metrics and written to Parquet.
    bulk = PredictionLogger(ParquetStore(tmp / "bulk"), key, background=False, max_rows=args.rows)
    for start in range(0, args.rows, 100):
        n = min(100, args.rows - start)
        bulk.log([record] * n, results * n, "bench", "batch")
    t = time.perf_counter()
    written = bulk.flush()
    flush_s = time.perf_counter() - t
    size = sum(p.stat().st_size for p in (tmp / "bulk").rglob("*.parquet"))

    base_p50, base_p99 = _stats(times["score_records"])
    print(f"\nbench_prediction_log: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {args.calls} calls each")
    print(f"{'path (one record, explain on)':<36} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8}")
    for name, samples in times.items():
        p50, p99 = _stats(samples)
        extra = f"{p50 - base_p50:+8.3f}" if name != "log() alone" else f"{'':>8}"
        print(f"{name:<36} {p50:8.3f} {p99:8.3f} {extra}")
    print(f"rows written by the flush thread during the run: {logged_rows:,}")
    print(
        f"flush: {written:,} rows counted and written to Parquet in {flush_s:.2f} s = {written / flush_s:,.0f} rows/s "
        f"({size / 1024:.0f} KiB on disk: the rows are copies of one, so they compress far below real ones)"
    )
    print(f"{time.perf_counter() - began:.0f} s in all (with training)")


if __name__ == "__main__":
    main()
