"""How honest is `probability_interval`? Coverage, width, cost (issue 11).

Trains a RiskModel on a synthetic cohort and scores held-out synthetic persons (another seed, person
IDs prefixed so that none is a training person). Per outcome, over the held-out checkups where it
applies:

* `cover_person`: share whose own `<outcome>_1y_true_risk` lies inside the interval. The synthetic
  truth also depends on physiology the checkup does not record, which no model of the checkup can
  know; an interval of the model's estimation uncertainty is not meant to cover it.
* `cover_like`: share whose "risk of people like this" lies inside: the mean true risk of the
  held-out checkups in the same fine bin (`--bins` quantile bins) of the model's prediction. This is
  the quantity the model estimates, E[risk | what the checkup records] (coarsened to the bins).
* `cover_point_pm`: for comparison, the share whose own true risk lies within +/- X of the point
  estimate, with X = the interval's median half-width (a fixed band as wide as a typical interval),
  and within +/-25% / +/-50% of the point estimate (relative bands).
* median interval width (probability and log-odds).

Nothing here feeds back into the model: the true-risk columns are read only to evaluate.

`--truth record` replaces the generator's truth by a risk function of the record itself
(bench/record_truth.py): there `cover_person` is the coverage the interval claims, of a truth the
model's inputs determine.

Also: fit time with and without members (`--compare-fit`), /score latency in process
(Scorer.score_records, one record, explain=True, top_k=5: p50 with members vs the same model with its
members removed) and batch throughput (1,000 records).

    .venv/bin/python bench/bench_intervals.py --people 20000 --held-out 10000 --compare-fit
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
import warnings

import numpy as np
import pandas as pd
from record_truth import relabel  # bench/ is sys.path[0] when a script here runs

from features.eligibility import eligibility
from features.schema import OUTCOMES, label_column, true_risk_column
from features.synth import generate_cohort
from models.bundle import RiskModel, SampleSizeWarning


def _records(frame: pd.DataFrame) -> list[dict]:
    drop = {label_column(o) for o in OUTCOMES} | {true_risk_column(o) for o in OUTCOMES}
    out = []
    for row in frame.to_dict("records"):
        rec = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items() if k not in drop}
        rec["exam_date"] = str(rec["exam_date"])[:10]
        out.append(rec)
    return out


def _logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def coverage(model: RiskModel, held: pd.DataFrame, bins: int) -> dict:
    probs = model.predict(held)
    ivs = model.predict_interval(held)
    applies = eligibility(held, tuple(model.models_))
    out = {}
    for o in model.models_:
        truth = held[true_risk_column(o)].to_numpy(dtype=float)
        p = probs[o].to_numpy()
        low, high = ivs[o]
        ok = applies[o].to_numpy() & ~np.isnan(p) & ~np.isnan(truth)
        p, low, high, truth = p[ok], low[ok], high[ok], truth[ok]
        # People like this: mean true risk in quantile bins of the prediction.
        edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
        b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
        counts = np.maximum(np.bincount(b, minlength=len(edges) - 1), 1)
        like = (np.bincount(b, truth, minlength=len(edges) - 1) / counts)[b]
        half = np.median((high - low) / 2)
        out[o] = {
            "n": int(ok.sum()),
            "cover_person": float(np.mean((low <= truth) & (truth <= high))),
            "cover_like": float(np.mean((low <= like) & (like <= high))),
            "cover_point_pm_median_halfwidth": float(np.mean(np.abs(truth - p) <= half)),
            "cover_point_pm25pct": float(np.mean(np.abs(truth - p) <= 0.25 * p)),
            "cover_point_pm50pct": float(np.mean(np.abs(truth - p) <= 0.50 * p)),
            "median_width": float(np.median(high - low)),
            "median_width_logit": float(np.median(_logit(high) - _logit(low))),
            "median_relative_width": float(np.median((high - low) / p)),
            "mean_probability": float(p.mean()),
            "mean_true_risk": float(truth.mean()),
            # How far the person's own risk scatters around the people-like-this risk, in log-odds,
            # vs the interval's half-width: why cover_person cannot reach 95%.
            "sd_logit_person_vs_like": float(np.std(_logit(truth) - _logit(like))),
            "median_halfwidth_logit": float(np.median(_logit(high) - _logit(low)) / 2),
        }
    return out


def latency(model: RiskModel, records: list[dict], repeats: int) -> dict:
    from serving.scoring import Scorer

    bare = copy.copy(model)
    bare.models_ = {o: dataclasses.replace(m, members=[]) for o, m in model.models_.items()}
    out = {}
    scorers = {"with_interval": Scorer(model, "bench"), "without_members": Scorer(bare, "bench")}
    for s in scorers.values():
        for r in records[:50]:
            s.score_records([dict(r)], explain=True, top_k=5)
    times = {name: [] for name in scorers}
    for i in range(repeats):  # interleaved, so that both see the same machine load
        r = records[i % len(records)]
        for name, s in scorers.items():
            t = time.perf_counter()
            s.score_records([dict(r)], explain=True, top_k=5)
            times[name].append(time.perf_counter() - t)
    for name, s in scorers.items():
        batch = [dict(r) for r in records[:1000]]
        best = min(
            _timed(lambda s=s, batch=batch: s.score_records([dict(r) for r in batch], explain=True, top_k=5))
            for _ in range(3)
        )
        out[name] = {
            "p50_ms": 1e3 * float(np.percentile(times[name], 50)),
            "p90_ms": 1e3 * float(np.percentile(times[name], 90)),
            "batch_1000_s": best,
            "batch_rows_per_s": len(batch) / best,
        }
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--held-out", type=int, default=10000)
    ap.add_argument("--held-out-seed", type=int, default=9001)
    ap.add_argument("--bins", type=int, default=50)
    ap.add_argument(
        "--truth",
        choices=("generator", "record"),
        default="generator",
        help="the synthetic generator's truth (hidden physiology), or a risk function of the record "
        "(bench/record_truth.py)",
    )
    ap.add_argument("--members", type=int, default=None, help="interval members (default: the RiskModel default)")
    ap.add_argument("--compare-fit", action="store_true", help="also fit without members, for the fit-time cost")
    ap.add_argument("--repeats", type=int, default=400)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    warnings.simplefilter("ignore", SampleSizeWarning)

    train = generate_cohort(args.people, args.seed)
    held = generate_cohort(args.held_out, args.held_out_seed)
    held["person_id"] = "heldout-" + held["person_id"].astype(str)
    if args.truth == "record":
        train, held = relabel(train, args.seed), relabel(held, args.held_out_seed)
    params = {} if args.members is None else {"interval_members": args.members}
    report: dict = {
        "truth": args.truth,
        "people": args.people,
        "checkups": len(train),
        "held_out_people": args.held_out,
        "held_out_checkups": len(held),
    }
    # Wall and CPU seconds (process + XGBoost's threads): CPU time is the steadier figure on a shared machine.
    if args.compare_fit:
        t, c = time.perf_counter(), time.process_time()
        RiskModel(random_state=0, interval_members=0).fit(train)
        report["fit_s_without_members"] = time.perf_counter() - t
        report["fit_cpu_s_without_members"] = time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    model = RiskModel(random_state=0, **params).fit(train)
    report["fit_s"] = time.perf_counter() - t
    report["fit_cpu_s"] = time.process_time() - c
    report["members"] = model.interval_members
    report["modes"] = {o: m.info["calibration"] for o, m in model.models_.items()}
    assert not model.was_trained_on(held["person_id"]).any()
    report["coverage"] = coverage(model, held, args.bins)
    print(json.dumps(report, indent=1), flush=True)  # the figures so far, before the slower latency part
    report["latency"] = latency(model, _records(held.iloc[:2000]), args.repeats)

    print(json.dumps({k: v for k, v in report.items() if k not in ("coverage", "latency")}, indent=1))
    cols = [
        "n",
        "cover_person",
        "cover_like",
        "cover_point_pm_median_halfwidth",
        "cover_point_pm25pct",
        "cover_point_pm50pct",
        "median_width",
        "median_relative_width",
        "median_halfwidth_logit",
        "sd_logit_person_vs_like",
    ]
    print(pd.DataFrame(report["coverage"]).T[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    print(pd.DataFrame(report["latency"]).T.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
