"""Rows per second for synth, read, validate and feature building, on about 1M checkups.

Each step is timed beside a baseline run in the same process, and the table prints the ratio
(step time / baseline time):
- synth: drawing the same number of standard normals with numpy (the floor for any generator);
- read: the plain pandas reader of the same file (what canonicalising and checking adds);
- validate (GX): the per-record validators built from the same schema;
- features: selecting and casting the raw columns.

    .venv/bin/python bench/bench_foundation.py [--people 200000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from features.derive import RAW_FEATURES, build_features
    from features.readers import read_checkups
    from features.synth import generate_cohort
    from features.validation import check_records, run_suite

    rows = []
    cohort, t = timed(lambda: generate_cohort(people=args.people, seed=args.seed))
    n = len(cohort)
    _, tb = timed(lambda: np.random.default_rng(0).standard_normal((n, cohort.shape[1])))
    rows.append(("synth", n, t, "numpy normals, same shape", tb))

    with tempfile.TemporaryDirectory() as tmp:
        pq = Path(tmp) / "c.parquet"
        csv = Path(tmp) / "c.csv"
        cohort.to_parquet(pq, index=False)
        cohort.to_csv(csv, index=False, date_format="%Y-%m-%d")
        read, t = timed(lambda: read_checkups(pq))
        _, tb = timed(lambda: pd.read_parquet(pq))
        rows.append(("read parquet", n, t, "pandas.read_parquet", tb))
        _, t = timed(lambda: read_checkups(csv))
        _, tb = timed(lambda: pd.read_csv(csv))
        rows.append(("read csv", n, t, "pandas.read_csv", tb))

    frame = read.frame
    report, t = timed(lambda: run_suite(frame))
    problems, tb = timed(lambda: check_records(frame))
    rows.append(("validate (GX suite)", n, t, "per-record validators", tb))
    assert report.success and problems.empty, "the synthetic cohort must validate"

    _, t = timed(lambda: build_features(frame))
    _, tb = timed(lambda: frame[list(RAW_FEATURES)].astype(float))
    rows.append(("build features", n, t, "raw columns as float", tb))

    print(f"\n{n:,} checkups of {args.people:,} people (seed {args.seed}), {os.cpu_count()} cores\n")
    print(f"| {'step':<22} | {'seconds':>8} | {'rows/s':>11} | {'baseline':<26} | {'base s':>7} | {'ratio':>6} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 13}|{'-' * 28}|{'-' * 9}|{'-' * 8}|")
    for step, count, secs, base, base_secs in rows:
        print(
            f"| {step:<22} | {secs:8.2f} | {count / secs:11,.0f} | {base:<26} | {base_secs:7.2f} |"
            f" {secs / base_secs:6.1f} |"
        )


if __name__ == "__main__":
    main()
