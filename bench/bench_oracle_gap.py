"""How much of the gap to the oracle can ANY model of the record close? A learning curve.

The point-of-care goal asks for an expected-AUROC ratio to the oracle of at least 0.97. The
generator's oracle reads physiology no checkup records (hidden traits, true levels behind noisy
readings, today's lipids where the panel is drawn every few years), so part of the gap is not the
model's. This bench fits a flexible learner, scikit-learn's HistGradientBoostingClassifier (early
stopping on 15% of the rows), on the model's own features with history, for growing numbers of
synthetic persons, and reports its expected-AUROC ratio to the oracle on one held-out cohort. Where
the ratio stops rising as the data grow, the rest of the gap is information the record does not
carry. With `--truth record` (bench/record_truth.py) the truth is a function of the record, and
the same learner should approach it. With `--unrecorded-traits 0` the generator's truth loses the
traits no checkup records at all (a vascular factor, beta-cell reserve, salt sensitivity, an
inherited lipid trait): what the ratio gains then is their share of the gap.

    .venv/bin/python bench/bench_oracle_gap.py [--sizes 10000 30000 100000] [--truth record]
        [--unrecorded-traits 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from record_truth import relabel  # bench/ is sys.path[0] when a script here runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--test-people", type=int, default=15_000)
    ap.add_argument("--truth", choices=("generator", "record"), default="generator")
    ap.add_argument("--unrecorded-traits", type=float, default=1.0, help="scale of the never-recorded traits")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from sklearn.ensemble import HistGradientBoostingClassifier

    from features.derive import build_features
    from features.schema import OUTCOMES, label_column, true_risk_column
    from features.synth import generate_cohort
    from training.metrics import expected_auroc

    test = generate_cohort(args.test_people, 8, unrecorded_traits=args.unrecorded_traits)
    if args.truth == "record":
        test = relabel(test, 8)
    X_test = build_features(test).to_numpy(dtype=float)
    ratios: dict[int, dict[str, float]] = {}
    for n in args.sizes:
        t0 = time.perf_counter()
        train = generate_cohort(n, 7, unrecorded_traits=args.unrecorded_traits)
        if args.truth == "record":
            train = relabel(train, 7)
        X = build_features(train).to_numpy(dtype=float)
        ratios[n] = {}
        for o in OUTCOMES:
            y = train[label_column(o)].to_numpy(dtype=float)
            fit = np.isfinite(y)
            ok = np.isfinite(test[label_column(o)].to_numpy(dtype=float))
            truth = test[true_risk_column(o)].to_numpy(dtype=float)[ok]
            clf = HistGradientBoostingClassifier(
                max_iter=400,
                learning_rate=0.05,
                max_leaf_nodes=15,
                early_stopping=True,
                validation_fraction=0.15,
                n_iter_no_change=30,
                random_state=0,
            ).fit(X[fit], y[fit])
            p = clf.predict_proba(X_test[ok])[:, 1]
            ratios[n][o] = expected_auroc(p, truth) / expected_auroc(truth, truth)
        print(f"{n:,} persons ({len(train):,} checkups): {time.perf_counter() - t0:.0f} s", flush=True)

    print(
        f"\nexpected-AUROC ratio to the oracle ({args.truth} truth, unrecorded traits x{args.unrecorded_traits:g}), "
        f"held-out {args.test_people:,} persons"
    )
    print("| outcome | " + " | ".join(f"{n:,} persons" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for o in OUTCOMES:
        print(f"| {o} | " + " | ".join(f"{ratios[n][o]:.3f}" for n in args.sizes) + " |")


if __name__ == "__main__":
    main()
