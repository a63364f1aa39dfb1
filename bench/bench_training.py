"""Training quality and time on a synthetic cohort of about 1M checkups (issue goals).

Trains through the full pipeline (read, GX, fit, evaluate, MLflow log and register) in a fresh
CHECKUP_RISK_HOME, on some persons, tests on others, and prints per outcome: the model's and
logistic regression's AUROC, the oracle's (true risks), the expected-AUROC ratio model / oracle,
calibration slope and ECE, beside the wall time.

    .venv/bin/python bench/bench_training.py [--people 200000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        from features.synth import generate_cohort
        from training import registry
        from training.train import train

        registry.configure(Path(tmp) / "home")

        data = Path(tmp) / "cohort.parquet"
        generate_cohort(people=args.people, seed=args.seed).to_parquet(data, index=False)
        start = time.perf_counter()
        result = train(data, seed=args.seed, say=lambda s: print(f"  [{time.perf_counter() - start:6.0f} s] {s}"))
        elapsed = time.perf_counter() - start

    m = result.metrics
    print(
        f"\n{m['data']['rows']:,} checkups of {m['data']['persons']:,} people; "
        f"train {m['data']['train_rows']:,} / test {m['data']['test_rows']:,} rows (split by person); "
        f"{os.cpu_count()} cores; total {elapsed:.0f} s ({elapsed / 60:.1f} min)\n"
    )
    print(
        "| outcome | test n | events | model AUROC | LR AUROC | model/LR | oracle AUROC | E-AUROC ratio | "
        "cal. slope | ECE | choice |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for o, b in m["outcomes"].items():
        lr = b["baselines"]["logistic_regression"]["auroc"]
        print(
            f"| {o} | {b['n']:,} | {b['events']:,} | {b['auroc']:.4f} | {lr:.4f} | {b['auroc'] / lr:.3f} | "
            f"{b['oracle_auroc']:.4f} | {b['expected_auroc_ratio']:.4f} | {b['calibration_slope']:.3f} | "
            f"{b['ece']:.5f} | {b['model_choice']} |"
        )
    cvd = m["outcomes"].get("cvd", {}).get("baselines", {})
    for name in ("prevent_10y_cvd", "framingham_2008_cvd"):
        if name in cvd:
            print(
                f"\ncvd baseline {name} (10-year scale, ranking only): AUROC {cvd[name]['auroc']:.4f} "
                f"vs model {cvd[name]['model_auroc_same_rows']:.4f} on the same {cvd[name]['n']:,} rows"
            )


if __name__ == "__main__":
    main()
