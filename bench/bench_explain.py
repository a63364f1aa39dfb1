"""Latency of one request (one record, all outcomes, score + SHAP explanation) and batch throughput.

Compares, per call after warm-up (median and p99, ratio to the floor (a)):

  (a) floor: the boosters' own margin, `booster.inplace_predict(row, predict_type="margin")` x outcomes
  (b) XGBoost `pred_contribs` on a DMatrix built per request, x outcomes
  (c) naive: `shap.TreeExplainer(booster).shap_values(row)` built per request, x outcomes
  (d) `RiskModel.score(row, explain=True)`: the one scoring path, on the compiled kernel
  (e) `build_features(record)` + `RiskModel.score(explain=True)`: the full in-process path
  (f) `feature_matrix(Columns.from_records)` + `RiskModel.score(explain=True, intervals=True)`: what
      the service's `Scorer` asks of the model per request

plus the cost of `build_features` alone and of one `booster.predict(DMatrix, output_margin=True)`,
and rows/s for a 10k-row batch: the compiled kernel vs pred_contribs. Trains its own bundle on a synthetic
cohort unless `--bundle DIR` is given. Methods are interleaved in rounds, so a varying background
load hits all of them alike.

    .venv/bin/python bench/bench_explain.py [--bundle DIR] [--people 20000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _stats(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.median(a)), float(np.percentile(a, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a saved RiskModel bundle; trained here if absent")
    parser.add_argument("--save", type=Path, help="save the bundle trained here to this directory")
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per method (after warm-up)")
    parser.add_argument(
        "--naive-calls", type=int, default=40, help="timed calls for (c), which builds five TreeExplainers per call"
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the calls are split into")
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    import numba
    import pandas as pd
    import shap
    import xgboost as xgb

    from features.derive import build_features
    from features.synth import generate_cohort
    from models.bundle import RiskModel
    from models.engine import Engine

    load_before = os.getloadavg()
    if args.bundle:
        model = RiskModel.load(args.bundle)
        print(f"bundle {args.bundle}")
    else:
        cohort = generate_cohort(people=args.people, seed=args.seed)
        start = time.perf_counter()
        model = RiskModel(random_state=args.seed).fit(cohort)
        print(f"trained on {len(cohort):,} checkups of {args.people:,} people in {time.perf_counter() - start:.0f} s")
        if args.save:
            model.save(args.save)

    start = time.perf_counter()
    Engine.build(model.models_, model.feature_names_, "compiled")
    print(f"compiled engine build (parse + compile + warm-up): {time.perf_counter() - start:.2f} s")
    if model.warm_up() != "compiled":
        raise AssertionError("the model is not served by the compiled kernel")
    outcomes = tuple(model.models_)
    boosters = [model.models_[o].booster for o in outcomes]
    shapes = ", ".join(
        f"{o} {m.booster.num_boosted_rounds()} trees d{m.info.get('setting', {}).get('max_depth', '?')}"
        f"{'' if m.weight == 1 else f' w={m.weight:g}'}"
        for o, m in model.models_.items()
    )
    print(f"outcomes: {shapes}")

    records = generate_cohort(people=200, seed=args.seed + 100)
    record = records.iloc[[7]]
    X1 = build_features(record)
    row = X1.to_numpy(dtype=np.float64)
    row32 = X1.to_numpy(dtype=np.float32)
    names = list(model.feature_names_)

    single = []  # the same boosters restricted to one thread (no OpenMP pool hand-off)
    for b in boosters:
        b1 = b.copy()
        b1.set_param({"nthread": 1})
        single.append(b1)

    def a_floor():
        return [b.inplace_predict(row32, predict_type="margin") for b in boosters]

    def a_floor_1t():
        return [b.inplace_predict(row32, predict_type="margin") for b in single]

    def dmatrix_margin_one():
        return boosters[0].predict(xgb.DMatrix(row32, feature_names=names), output_margin=True)

    def b_pred_contribs():
        dm = xgb.DMatrix(row32, feature_names=names)
        return [b.predict(dm, pred_contribs=True) for b in boosters]

    def b_pred_contribs_1t():
        dm = xgb.DMatrix(row32, feature_names=names, nthread=1)
        return [b.predict(dm, pred_contribs=True) for b in single]

    def c_naive_shap():
        return [shap.TreeExplainer(b).shap_values(row32) for b in boosters]

    def d_fast():
        return model.score(row, explain=True)

    def e_full():
        return model.score(build_features(record), explain=True)

    def f_features():
        return build_features(record)

    # The pandas-free path from a validated record, where features.derive provides it.
    try:
        from features.derive import Columns, feature_matrix
    except ImportError:
        Columns = feature_matrix = None
    rec = {
        k: (
            None
            if pd.isna(v)
            else str(pd.Timestamp(v).date())
            if k == "exam_date"
            else v.item()
            if hasattr(v, "item")
            else v
        )
        for k, v in record.iloc[0].items()
    }

    def g_full_columns():
        return model.score(feature_matrix(Columns.from_records([rec])), explain=True, intervals=True)

    def h_columns():
        return feature_matrix(Columns.from_records([rec]))

    methods = [
        ("(a) inplace_predict margin x5 (default threads)", a_floor, args.calls),
        ("    same, boosters with nthread=1", a_floor_1t, args.calls),
        ("    one booster.predict(DMatrix, output_margin) incl. DMatrix", dmatrix_margin_one, args.calls),
        ("(b) DMatrix + pred_contribs x5", b_pred_contribs, args.calls),
        ("    same, nthread=1", b_pred_contribs_1t, args.calls),
        ("(c) naive shap.TreeExplainer(b).shap_values x5", c_naive_shap, args.naive_calls),
        ("(d) RiskModel.score(explain)", d_fast, args.calls),
        ("(e) build_features + RiskModel.score(explain)", e_full, args.calls),
        ("    build_features alone (1-row DataFrame)", f_features, args.calls),
    ]
    if feature_matrix is not None:
        if not np.array_equal(h_columns(), row, equal_nan=True):
            raise AssertionError("feature_matrix(Columns.from_records) differs from build_features")
        methods += [
            ("(f) feature_matrix(Columns.from_records) + score(explain, intervals)", g_full_columns, args.calls),
            ("    feature_matrix(Columns.from_records) alone", h_columns, args.calls),
        ]
    for _, fn, _ in methods:  # warm-up
        for _ in range(3 if fn is c_naive_shap else 50):
            fn()
    samples: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    clock = time.perf_counter
    for r in range(args.rounds):
        for name, fn, calls in methods:
            per_round = calls // args.rounds + (1 if r < calls % args.rounds else 0)
            s = samples[name]
            for _ in range(per_round):
                t0 = clock()
                fn()
                s.append(clock() - t0)

    # The floor is the faster of the two (a) configurations: with the default thread pool, a busy
    # second core can make OpenMP hand-offs cost far more than the trees themselves.
    floor_name = min(methods[:2], key=lambda m: _stats(samples[m[0]])[0])[0]
    floor = _stats(samples[floor_name])[0]
    print(
        f"\n{os.cpu_count()} cores; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"xgboost {xgb.__version__}, shap {shap.__version__}, numba {numba.__version__}"
    )
    print(f"floor = {floor_name.strip()!r}\n")
    print("| path (one record, all outcomes) | calls | median ms | p99 ms | median / floor |")
    print("|---|---|---|---|---|")
    for name, _, _ in methods:
        med, p99 = _stats(samples[name])
        print(f"| {name.strip()} | {len(samples[name])} | {med:.3f} | {p99:.3f} | {med / floor:.2f} |")

    # Batch throughput.
    big = generate_cohort(people=max(args.batch // 4, 100), seed=args.seed + 200)
    Xb = build_features(big).iloc[: args.batch]
    Xn = Xb.to_numpy(dtype=np.float64)

    def batch_fast():
        return model.score(Xn, explain=True, threads=1)

    def batch_fast_threads():
        return model.score(Xn, explain=True, threads=os.cpu_count() or 1)

    def batch_xgb():
        dm = xgb.DMatrix(Xb.to_numpy(dtype=np.float32), feature_names=names)
        return [b.predict(dm, pred_contribs=True) for b in boosters]

    print(f"\n| batch of {len(Xb):,} rows, all outcomes, score + explanation | median s (3 runs) | rows/s |")
    print("|---|---|---|")
    one, many = batch_fast().contributions, batch_fast_threads().contributions
    if not all(np.array_equal(one[o], many[o]) for o in one):
        raise AssertionError("threaded kernel differs from single-threaded")
    for name, fn in (
        ("RiskModel.score(explain) (1 thread)", batch_fast),
        (f"RiskModel.score(explain) (threads={os.cpu_count()})", batch_fast_threads),
        (f"DMatrix + pred_contribs x{len(boosters)} (all cores)", batch_xgb),
    ):
        ts = []
        for _ in range(3):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
        med = float(np.median(ts))
        print(f"| {name} | {med:.3f} | {len(Xb) / med:,.0f} |")
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
        "(a load near or above the core count means other processes competed for the CPU)"
    )


if __name__ == "__main__":
    main()
