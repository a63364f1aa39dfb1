"""On a real cohort, is the model at least as good as simpler peers trained on the same rows?

The file is read and validated as `checkup-risk train` reads it (rejected rows are counted and
left out), then split by person into K folds. In each fold the model (`RiskModel`, default
settings: its own regularisation grid and model choice on validation persons) is fitted on the
other folds, and so are four peers:

- the model's own logistic partner (L2, the model's features);
- a logistic regression on the file's canonical columns (median imputation with missing
  indicators, standardised, C chosen by 3-fold cross-validated log-loss over persons);
- a default scikit-learn HistGradientBoostingClassifier on the file's canonical columns;
- the same default HistGradientBoostingClassifier on the model's features.

Every held-out row gets one prediction from each; the table gives the pooled out-of-fold AUROC,
Brier score and mean predicted / observed rate on the rows where the outcome applies, and the
difference in AUROC between the model and each peer with a 95% interval from a paired bootstrap
of persons (1,000 resamples). The interval holds the fitted models fixed: it is the test sample's
noise, not the spread of refits. A difference whose interval holds 0 is a tie at this sample
size. The AUROC pools the five fold models' predictions (each fold's model ranks its own rows).

    .venv/bin/python bench/bench_real_cohort.py --data FILE [--format canonical|framingham|cardio70k]
        [--outcomes cvd] [--folds 5] [--seed 1]

`--format` converts one of two public teaching cohorts first (bench/real_cohorts.py says how).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from real_cohorts import FORMATS, to_canonical  # bench/ is sys.path[0] when a script here runs
from sklearn.pipeline import Pipeline


def _raw_matrix(records: pd.DataFrame) -> np.ndarray:
    """The canonical record's own numeric columns, as a peer would use the file (no derived features)."""
    from features.schema import COLUMNS

    cols = [c for c in COLUMNS if c not in ("person_id", "exam_date", "sex", "age_group")]
    X = records.reindex(columns=cols).apply(pd.to_numeric, errors="coerce")
    X = X.loc[:, X.notna().any()]
    X.insert(0, "male", (records["sex"] == "M").astype(float))
    return X.to_numpy(dtype=float)


def _tuned_logistic(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> Pipeline:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prep = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    Z = prep.fit_transform(X)
    folds = list(GroupKFold(n_splits=3).split(Z, y, groups))
    lr = LogisticRegressionCV(Cs=10, cv=folds, scoring="neg_log_loss", max_iter=5000, random_state=seed).fit(Z, y)
    return make_pipeline(prep, lr)


def _paired_diff(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, persons: np.ndarray, seed: int
) -> tuple[float, float, float]:
    """AUROC(a) - AUROC(b) and its 95% interval, resampling persons with replacement."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(persons, return_inverse=True)
    rows_of = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[rows_of], np.arange(len(uniq)))
    ends = np.append(starts[1:], len(inv))
    diffs = []
    for _ in range(1000):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([rows_of[s:e] for s, e in zip(starts[pick], ends[pick], strict=True)])
        if 0 < y[idx].sum() < len(idx):
            diffs.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    point = roc_auc_score(y, a) - roc_auc_score(y, b)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--format", choices=("canonical", *FORMATS), default="canonical")
    ap.add_argument("--outcomes", default=None, help="comma-separated; default: those with a label column")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from features.derive import build_features
    from features.eligibility import eligibility
    from features.schema import OUTCOMES, label_column
    from models.bundle import RiskModel, person_fold
    from training.train import read_and_check

    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if args.format != "canonical":
            path = Path(tmp) / "cohort.csv"
            to_canonical(args.data, args.format).to_csv(path, index=False)
        parquet = path.suffix.lower() in (".parquet", ".pq")
        head = pq.read_schema(path).names if parquet else pd.read_csv(path, nrows=0).columns
        outcomes = (
            tuple(args.outcomes.split(",")) if args.outcomes else tuple(o for o in OUTCOMES if label_column(o) in head)
        )
        checked = read_and_check([path], outcomes, max_reject_share=1.0, say=lambda s: print(s, flush=True))
    records = checked.records.reset_index(drop=True)
    print(
        f"{len(records):,} valid checkups of {records['person_id'].nunique():,} persons; outcomes {', '.join(outcomes)}"
    )

    # Salted apart from the model's own person buckets (same hash), or its inner folds would
    # line up with these and one would be empty.
    fold = person_fold(records["person_id"], args.seed + 7919, buckets=args.folds)
    feats = build_features(records)
    feats = feats.loc[:, feats.notna().any()].to_numpy(dtype=float)  # HistGB cannot bin an all-empty column
    raw = _raw_matrix(records)
    applies = eligibility(records, outcomes)
    names = [
        "model",
        "logistic partner",
        "LR (columns, tuned C)",
        "HistGB default (columns)",
        "HistGB default (features)",
    ]
    pred = {o: {n: np.full(len(records), np.nan) for n in names} for o in outcomes}
    t0 = time.perf_counter()
    for k in range(args.folds):
        tr, te = fold != k, fold == k
        model = RiskModel(outcomes=outcomes, random_state=args.seed).fit(records.loc[tr])
        p_model = model.predict(records.loc[te])
        p_partner = model.predict_baseline(records.loc[te])
        for o in outcomes:
            y = pd.to_numeric(records[label_column(o)], errors="coerce").to_numpy(dtype=float)
            fit = tr & applies[o].to_numpy() & np.isfinite(y)
            pred[o]["model"][te] = p_model[o].to_numpy(dtype=float)
            pred[o]["logistic partner"][te] = p_partner[o].to_numpy(dtype=float)
            lr = _tuned_logistic(raw[fit], y[fit], records.loc[fit, "person_id"].to_numpy(), args.seed)
            pred[o]["LR (columns, tuned C)"][te] = lr.predict_proba(raw[te])[:, 1]
            hgb = HistGradientBoostingClassifier(random_state=args.seed).fit(raw[fit], y[fit])
            pred[o]["HistGB default (columns)"][te] = hgb.predict_proba(raw[te])[:, 1]
            hgb_f = HistGradientBoostingClassifier(random_state=args.seed).fit(feats[fit], y[fit])
            pred[o]["HistGB default (features)"][te] = hgb_f.predict_proba(feats[te])[:, 1]
        print(f"fold {k + 1}/{args.folds} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    persons = records["person_id"].to_numpy()
    for o in outcomes:
        y = pd.to_numeric(records[label_column(o)], errors="coerce").to_numpy(dtype=float)
        ok = applies[o].to_numpy() & np.isfinite(y) & np.all([np.isfinite(pred[o][n]) for n in names], axis=0)
        yy = y[ok]
        print(
            f"\n{o}: {int(ok.sum()):,} held-out rows where it applies, {int(yy.sum()):,} events "
            f"({args.folds}-fold by person)"
        )
        print("| method | AUROC | model - method (95% CI) | Brier | mean predicted / observed |")
        print("|---|---|---|---|---|")
        for n in names:
            p = pred[o][n][ok]
            if n == "model":
                diff = "-"
            else:
                d, lo, hi = _paired_diff(yy, pred[o]["model"][ok], p, persons[ok], args.seed)
                diff = f"{d:+.4f} ({lo:+.4f} to {hi:+.4f})"
            print(
                f"| {n} | {roc_auc_score(yy, p):.4f} | {diff} | {brier_score_loss(yy, p):.4f} | "
                f"{p.mean() / yy.mean():.3f} |"
            )


if __name__ == "__main__":
    main()
