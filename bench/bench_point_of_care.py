"""Does the point of care see the model we measure? Agreement of the HIS paths with batch scoring,
calibration of a checkup scored without its history, and discrimination against the oracle and
against simpler peers trained on the same rows.

On a held-out synthetic longitudinal cohort (persons never seen in training):

  (1) agreement, last checkup of every person with >= 3 checkups: the probability from
      - `/score` with history (the person's checkups in one request: `Scorer.score_records`, the code
        behind the route) and
      - the FHIR path (the checkups written as one FHIR Bundle of Observations by `to_bundle`, read
        back by `features.fhir`, validated and scored as the CDS and /fhir routes do)
      against batch scoring of the whole file (`serving.batch.score_frame`): share within 1 %
      (relative), per outcome;
  (2) the last checkup of every person scored ALONE (no earlier checkups sent): mean predicted /
      mean true risk, per outcome, on checkups where the outcome applies;
  (3) batch with history, every held-out checkup: expected AUROC (label-free, from the true risk) of
      the model, of the logistic partner fitted on the same rows, and of a default scikit-learn
      HistGradientBoostingClassifier fitted on the same rows; and their ratio to the oracle's.

    .venv/bin/python bench/bench_point_of_care.py [--train-people 20000] [--test-people 4000] [--truth record]

`--truth record` replaces the generator's truth by a risk function of the record itself
(bench/record_truth.py): the same people and checkups, a truth a model of the record can reach.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from record_truth import relabel  # bench/ is sys.path[0] when a script here runs


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _fhir_scores(scorer, person_records: list[dict]) -> dict[str, float | None]:
    """The FHIR route's path: records -> Bundle -> features.fhir -> validated records -> Scorer."""
    from features.fhir import read_bundle, to_bundle
    from serving.fhir_in import validate_records

    read = read_bundle(to_bundle(person_records))
    records, _ = validate_records(read)
    result = scorer.score_records(records, explain=False)[-1]
    return {o: r["probability"] for o, r in result["risks"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-people", type=int, default=20_000)
    parser.add_argument("--test-people", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--truth",
        choices=("generator", "record"),
        default="generator",
        help="the synthetic generator's truth (hidden physiology), or a risk function of the record "
        "(bench/record_truth.py)",
    )
    parser.add_argument(
        "--fhir-persons", type=int, default=1000, help="persons checked through the FHIR path (it is the slowest)"
    )
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier

    from features.derive import build_features
    from features.readers import frame_to_records
    from features.schema import OUTCOMES
    from features.synth import generate_cohort
    from models.bundle import INPUT_GROUPS, RiskModel
    from models.outcomes import OUTCOME_SPECS
    from serving.batch import score_frame
    from serving.scoring import Scorer
    from training.metrics import expected_auroc

    t0 = time.perf_counter()
    train = generate_cohort(people=args.train_people, seed=args.seed)
    test = generate_cohort(people=args.test_people, seed=args.seed + 1000)
    test["person_id"] = "T" + test["person_id"].astype(str)  # never a training person
    if args.truth == "record":
        train, test = relabel(train, args.seed), relabel(test, args.seed + 1000)
    print(
        f"cohorts: train {len(train):,} checkups of {args.train_people:,} persons, "
        f"held-out {len(test):,} checkups of {args.test_people:,} persons ({time.perf_counter() - t0:.1f} s); "
        f"truth: {args.truth}"
    )

    t0 = time.perf_counter()
    model = RiskModel(random_state=args.seed).fit(train)
    fit_s = time.perf_counter() - t0
    print(f"RiskModel.fit: {fit_s:.1f} s")
    scorer = Scorer(model, "bench")

    batch = score_frame(model, test, "bench")
    test = test.reset_index(drop=True)
    batch = batch.reset_index(drop=True)

    # (1) agreement on the last checkup of persons with >= 3 checkups
    test = test.sort_values(["person_id", "exam_date"], kind="stable")
    sizes = test.groupby("person_id")["person_id"].transform("size")
    last = ~test["person_id"].duplicated(keep="last")
    persons3 = test.loc[last & (sizes >= 3), "person_id"].to_numpy()
    by_person = {pid: g for pid, g in test.groupby("person_id", sort=False)}
    agree = {o: {"score": [], "fhir": []} for o in OUTCOMES}
    t0 = time.perf_counter()
    for k, pid in enumerate(persons3):
        g = by_person[pid]
        recs = frame_to_records(g)
        i = g.index[-1]
        res = scorer.score_records([dict(r) for r in recs], explain=True)[-1]
        fhir = _fhir_scores(scorer, recs) if k < args.fhir_persons else None
        for o in OUTCOMES:
            b = batch.at[i, f"{o}_risk"]
            if pd.isna(b):
                continue
            p = res["risks"][o]["probability"]
            agree[o]["score"].append(p is not None and abs(p - b) <= 0.01 * b)
            if fhir is not None:
                q = fhir[o]
                agree[o]["fhir"].append(q is not None and abs(q - b) <= 0.01 * b)
    path_s = time.perf_counter() - t0
    rows = [
        [
            o,
            len(agree[o]["score"]),
            100 * float(np.mean(agree[o]["score"])),
            len(agree[o]["fhir"]),
            100 * float(np.mean(agree[o]["fhir"])) if agree[o]["fhir"] else float("nan"),
        ]
        for o in OUTCOMES
    ]
    print(
        f"\n(1) last checkup of {len(persons3):,} persons with >= 3 checkups: share within 1 % of batch "
        f"({path_s:.1f} s)"
    )
    print(_table(["outcome", "n /score", "% /score", "n FHIR", "% FHIR"], rows))

    # (2) the last checkup of every held-out person scored alone
    last_rows = test.loc[last]
    alone = scorer.score_records(frame_to_records(last_rows), explain=False)
    rows = []
    for o in OUTCOMES:
        p = np.array([np.nan if r["risks"][o]["probability"] is None else r["risks"][o]["probability"] for r in alone])
        truth = last_rows[OUTCOME_SPECS[o].true_risk].to_numpy(dtype=float)
        hist = batch.loc[last_rows.index, f"{o}_risk"].to_numpy(dtype=float)
        ok = np.isfinite(p) & np.isfinite(truth)
        both = ok & np.isfinite(hist)
        rows.append(
            [
                o,
                int(ok.sum()),
                float(p[ok].mean()),
                float(truth[ok].mean()),
                float(p[ok].mean() / truth[ok].mean()),
                float(hist[both].mean() / truth[both].mean()),
            ]
        )
    print("\n(2) last checkup scored alone (no history sent) vs with history: mean predicted / mean true risk")
    print(_table(["outcome", "n", "mean p alone", "mean true", "ratio alone", "ratio with history"], rows))

    # (3) discrimination with history against the oracle and peers fitted on the same rows
    X_train = build_features(train).to_numpy(dtype=float)
    X_test = build_features(test.loc[batch.index.intersection(test.index)]).to_numpy(dtype=float)
    test_sorted = test.loc[batch.index.intersection(test.index)]
    lr = model.predict_baseline(test_sorted)
    from features.eligibility import eligibility

    elig_train = eligibility(train)
    rows = []
    for o in OUTCOMES:
        spec = OUTCOME_SPECS[o]
        p = batch.loc[test_sorted.index, f"{o}_risk"].to_numpy(dtype=float)
        truth = test_sorted[spec.true_risk].to_numpy(dtype=float)
        ok = np.isfinite(p) & np.isfinite(truth)
        y_tr = train[spec.label].to_numpy(dtype=float)
        fit_rows = elig_train[o].to_numpy() & np.isfinite(y_tr)
        hgb = HistGradientBoostingClassifier(random_state=args.seed).fit(X_train[fit_rows], y_tr[fit_rows])
        p_hgb = hgb.predict_proba(X_test[ok])[:, 1]
        oracle = expected_auroc(truth[ok], truth[ok])
        e_model = expected_auroc(p[ok], truth[ok])
        e_lr = expected_auroc(lr[o].to_numpy(dtype=float)[ok], truth[ok])
        e_hgb = expected_auroc(p_hgb, truth[ok])
        rows.append([o, int(ok.sum()), oracle, e_model, e_model / oracle, e_lr, e_lr / oracle, e_hgb, e_hgb / oracle])
    print("\n(3) batch with history, every held-out checkup where the outcome applies: expected AUROC")
    print(
        _table(
            [
                "outcome",
                "n",
                "oracle",
                "model",
                "model/oracle",
                "logistic (same rows)",
                "LR/oracle",
                "HistGB default (same rows)",
                "HGB/oracle",
            ],
            rows,
        )
    )

    # (4) the same last checkups with every optional measurement and answer blank (sex, age and
    # the history questions only): the risk should be what the model expects of such a person, not
    # an extrapolation into a corner the training data never reached.
    bare_rows = last_rows.assign(**{c: np.nan for group in INPUT_GROUPS for c in group if c in last_rows})
    bare = scorer.score_records(frame_to_records(bare_rows), explain=False)
    rows = []
    for o in OUTCOMES:
        truth = last_rows[OUTCOME_SPECS[o].true_risk].to_numpy(dtype=float)
        p = np.array([np.nan if r["risks"][o]["probability"] is None else r["risks"][o]["probability"] for r in bare])
        cat = np.array([r["risks"][o]["category"] in ("high", "very_high") for r in bare])
        cat_full = np.array([r["risks"][o]["category"] in ("high", "very_high") for r in alone])
        ok = np.isfinite(p) & np.isfinite(truth)
        high_true = np.array([OUTCOME_SPECS[o].category(t) in ("high", "very_high") for t in truth[ok]])
        rows.append(
            [
                o,
                int(ok.sum()),
                float(p[ok].mean() / truth[ok].mean()),
                100 * cat[ok].mean(),
                100 * cat_full[ok].mean(),
                100 * high_true.mean(),
            ]
        )
    print("\n(4) last checkup with sex, age and history answers only: mean predicted / mean true risk, share high")
    print(_table(["outcome", "n", "ratio", "% high (bare)", "% high (full, alone)", "% high (true risk)"], rows))


if __name__ == "__main__":
    main()
