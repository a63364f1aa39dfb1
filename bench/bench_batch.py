"""Rows per second of batch scoring (`checkup-risk score`) on about 1M synthetic checkups.

Runs, all on the same input file and model, in one process:
- baseline: the pandas engine WITHOUT explanations;
- the pandas engine with each outcome's interval (`--intervals`);
- the pandas engine with top-K explanations (streamed in chunks);
- the dask engine with top-K explanations (a LocalCluster of --workers processes, one thread each).

The table prints rows/s and the ratio of each run's time to the baseline's. The model is a quick
RiskModel (one regularisation setting, one train/validation/calibration split) trained on a small
cohort, unless --model-dir names a saved bundle.

    .venv/bin/python bench/bench_batch.py [--people 200000] [--explain 5] [--workers 2] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000, help="people in the scored cohort (~5 checkups each)")
    parser.add_argument("--train-people", type=int, default=20_000)
    parser.add_argument("--model-dir", help="a saved RiskModel bundle (default: train a quick one)")
    parser.add_argument("--explain", type=int, default=5, metavar="K")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--input-format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--output-format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from features.synth import generate_cohort
    from models.bundle import DEFAULT_GRID, RiskModel
    from serving.batch import score_file

    print(f"cpus {os.cpu_count()}, {load_text()} at start")
    if args.model_dir:
        model = RiskModel.load(args.model_dir)
        print(f"model: {args.model_dir}")
    else:
        train = generate_cohort(people=args.train_people, seed=args.seed + 1)
        model, t = timed(lambda: RiskModel(grid=(DEFAULT_GRID[0],), cv_below_events=0).fit(train))
        print(
            f"model: quick RiskModel on {len(train):,} checkups of {args.train_people:,} people, trained in {t:.0f} s"
        )
    trees = ", ".join(f"{o} {m.booster.num_boosted_rounds()}" for o, m in model.models_.items())
    print(f"trees per outcome: {trees}")
    print(f"scored by: {model.warm_up()}")

    cohort, t = timed(lambda: generate_cohort(people=args.people, seed=args.seed))
    n = len(cohort)
    print(f"input: {n:,} checkups of {args.people:,} people (synth {t:.0f} s)")
    runs = [
        ("pandas", 0, False, "baseline"),
        ("pandas", 0, True, "intervals"),
        ("pandas", args.explain, False, ""),
        ("dask", args.explain, False, ""),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        src = Path(tmp) / f"input.{args.input_format}"
        if args.input_format == "parquet":
            cohort.to_parquet(src, index=False)
        else:
            cohort.to_csv(src, index=False, date_format="%Y-%m-%d")
        del cohort
        for engine, k, intervals, note in runs:
            out = Path(tmp) / f"out.{args.output_format}"
            summary, t = timed(
                functools.partial(
                    score_file,
                    model,
                    src,
                    out,
                    "bench",
                    explain=k,
                    intervals=intervals,
                    engine=engine,
                    chunk_rows=args.chunk_rows,
                    workers=args.workers,
                )
            )
            assert summary["rows_in"] == n == summary["rows_scored"] + summary["rows_rejected"], summary
            label = f"{engine}" + (f" ({args.workers} workers)" if engine == "dask" else "")
            rows.append((label, k, n, t, note))
            print(f"  {label}, explain {k}: {t:.1f} s ({load_text()})", flush=True)

    base = rows[0][3]
    print()
    print(f"{'engine':<20} {'explain':>7} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'x baseline time':>16}")
    for label, k, n_rows, t, note in rows:
        print(f"{label:<20} {k:>7} {n_rows:>10,} {t:>8.1f} {n_rows / t:>10,.0f} {t / base:>16.2f}  {note}")
    print(f"\n{load_text()} at end")


if __name__ == "__main__":  # the dask workers are spawned processes: they must not rerun the benchmark
    main()
