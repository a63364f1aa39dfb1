"""`checkup-risk train`: read, validate, split by person, fit, evaluate, log, register, gate."""

from __future__ import annotations

import hashlib
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from features.readers import read_checkups
from features.schema import EXAMPLE_RECORD, OUTCOMES
from features.validation import run_suite, split_valid
from models.bundle import RiskModel, person_fold
from models.outcomes import OUTCOME_SPECS
from training import registry
from training.card import evaluation_report, model_card
from training.evaluate import evaluate, figures
from training.promotion import decide

TEST_SHARE = 0.2
# Salt offset so the test split of persons is independent of the model's own validation split.
_TEST_SALT = 7919


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict
    promoted: bool
    decision: str | None
    seconds: float


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_mask(records: pd.DataFrame, seed: int) -> np.ndarray:
    return person_fold(records["person_id"], seed + _TEST_SALT) < int(round(100 * TEST_SHARE))


def example_frame() -> pd.DataFrame:
    from features.readers import records_to_frame

    return records_to_frame([EXAMPLE_RECORD]).frame


def _flat(prefix: str, block: dict) -> dict[str, float]:
    keys = ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope", "ece",
            "expected_auroc", "oracle_auroc", "oracle_expected_auroc", "expected_auroc_ratio")
    out = {f"{prefix}.{k}": block[k] for k in keys if block.get(k) is not None}
    if block.get("auroc_ci"):
        out[f"{prefix}.auroc_ci_low"], out[f"{prefix}.auroc_ci_high"] = block["auroc_ci"]
    return out


@contextmanager
def dask_client(engine: str, scheduler: str | None, workers: int):
    """None for the pandas engine; else a Client of the given scheduler or of a LocalCluster."""
    if engine == "pandas":
        yield None
        return
    if engine != "dask":
        raise ValueError(f"unknown engine {engine!r}: pandas or dask")
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client


def train(
    data: str | Path,
    outcomes: tuple[str, ...] = OUTCOMES,
    experiment: str = "checkup-risk",
    promote: bool = False,
    seed: int = 0,
    say: Callable[[str], None] = print,
    engine: str = "pandas",
    scheduler: str | None = None,
    workers: int = 2,
) -> TrainResult:
    import mlflow

    start = time.perf_counter()
    data = Path(data)
    registry.configure()
    exp_id = registry.experiment(experiment)

    say(f"reading {data}")
    read = read_checkups(data)
    missing = [OUTCOME_SPECS[o].label for o in outcomes if OUTCOME_SPECS[o].label not in read.frame.columns]
    if missing:
        raise ValueError(f"training data lack label columns: {', '.join(missing)}")
    say("validating (Great Expectations suite)")
    gx = run_suite(read.frame)
    records, problems = split_valid(read.frame)
    rejected = read.rejected_rows + int(problems["index"].nunique()) if len(problems) else read.rejected_rows
    reasons = pd.concat([read.rejects, problems])[["field", "reason"]].value_counts().head(50)

    is_test = test_mask(records, seed)
    train_rows, test_rows = records.loc[~is_test], records.loc[is_test]
    fingerprint = {
        "sha256": file_sha256(data),
        "rows": int(read.rows_in),
        "persons": int(read.frame["person_id"].nunique()),
        "rejected_rows": int(rejected),
        "train_rows": int(len(train_rows)),
        "test_rows": int(len(test_rows)),
        "events": {o: int(pd.to_numeric(records[OUTCOME_SPECS[o].label], errors="coerce").sum()) for o in outcomes},
    }

    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_params({"data_path": str(data), "outcomes": ",".join(outcomes), "seed": seed,
                           "test_share": TEST_SHARE})
        mlflow.log_params({f"data.{k}": v for k, v in fingerprint.items() if k != "events"})
        mlflow.log_params({f"data.events.{o}": n for o, n in fingerprint["events"].items()})
        mlflow.log_metric("gx_success", float(gx.success))
        mlflow.log_dict({
            "success": gx.success,
            "evaluated": gx.evaluated,
            # Counts per failed expectation only: no values, no person IDs.
            "failures": [{"field": f.field, "expectation": f.expectation, "critical": f.critical,
                          "unexpected_count": f.unexpected_count} for f in gx.failures],
            "rejected_by_reason": [{"field": k[0], "reason": k[1], "rows": int(v)} for k, v in reasons.items()],
        }, "validation/gx_result.json")

        model = RiskModel(outcomes=outcomes, random_state=seed)
        mlflow.log_param("engine", engine)
        with dask_client(engine, scheduler, workers) as client:
            model.fit(train_rows, progress=lambda o: say(f"fitting {o}" + (" (xgboost.dask)" if client else "")),
                      client=client)
        for o, m in model.models_.items():
            say(f"  {o}: {m.info['choice']} (depth {m.info['setting'].get('max_depth')}, {m.info['rounds']} rounds)")
            mlflow.log_params({f"{o}.choice": m.info["choice"], f"{o}.rounds": m.info["rounds"],
                               f"{o}.blend_weight": m.weight,
                               **{f"{o}.{k}": v for k, v in m.info["setting"].items()}})
        mlflow.log_dict({o: m.info for o, m in model.models_.items()}, "model_selection.json")

        say(f"evaluating on {len(test_rows):,} held-out checkups")
        metrics, curves = evaluate(test_rows, model, seed=seed)
        metrics["data"] = fingerprint
        for o, block in metrics["outcomes"].items():
            mlflow.log_metrics(_flat(o, block))
            for name, b in block["baselines"].items():
                if b.get("auroc") is not None:
                    mlflow.log_metric(f"{o}.baseline.{name}.auroc", b["auroc"])
        mlflow.log_dict(metrics, "metrics.json")
        pngs = figures(model, test_rows, curves)
        with tempfile.TemporaryDirectory() as tmp:
            for name, png in pngs.items():
                (Path(tmp) / name).write_bytes(png)
            mlflow.log_artifacts(tmp, "plots")

        uri, version = registry.log_bundle(model, example_frame(), description=f"trained on {data.name}")
        registry.set_alias(registry.CHALLENGER, version)
        say(f"registered {registry.MODEL_NAME} version {version} as {registry.CHALLENGER}")

        decision_text = None
        promoted = False
        if promote:
            champion_version = registry.version_of(registry.CHAMPION)
            champion_probs = None
            if champion_version is not None:
                champion, _ = registry.load(champion_version)
                champion_probs = {o: v.to_numpy(dtype=float) for o, v in champion.predict(test_rows).items()}
            challenger_probs = {o: v.to_numpy(dtype=float) for o, v in model.predict(test_rows).items()}
            y = {o: pd.to_numeric(test_rows[OUTCOME_SPECS[o].label], errors="coerce").to_numpy(dtype=float)
                 for o in outcomes}
            decision = decide(y, challenger_probs, champion_probs, seed=seed)
            promoted = decision.promote
            decision_text = (f"version {version} vs champion {champion_version or '(none)'}: "
                             + decision.summary())
            if promoted:
                registry.set_alias(registry.CHAMPION, version)
            mlflow.set_tags({"promotion.decision": "promoted" if promoted else "rejected",
                             "promotion.reason": decision_text[:5000]})
            mlflow.log_dict({"promoted": promoted, "reason": decision_text, "per_outcome": decision.per_outcome},
                            "promotion.json")
            say(decision_text)

        card = model_card(version, metrics, fingerprint, decision_text)
        mlflow.log_text(card, "model_card.md")
        mlflow.log_text(evaluation_report(version, metrics, pngs, card), "evaluation_report.html")
        registry.client().set_model_version_tag(registry.MODEL_NAME, version, "run_id", run.info.run_id)
        elapsed = time.perf_counter() - start
        mlflow.log_metric("train_seconds", elapsed)
    return TrainResult(run.info.run_id, version, metrics, promoted, decision_text, elapsed)


def summary_table(metrics: dict) -> str:
    lines = [f"{'outcome':<13} {'n':>9} {'events':>7} {'AUROC':>6} {'LR':>6} {'oracle':>6} {'E-ratio':>7} "
             f"{'slope':>6} {'ECE':>7}"]
    for o, m in metrics["outcomes"].items():
        def f(x, d=3):
            return "   n/a" if x is None else f"{x:6.{d}f}"
        lines.append(
            f"{o:<13} {m['n']:>9,} {m['events']:>7,} {f(m['auroc'])} "
            f"{f(m['baselines']['logistic_regression']['auroc'])} {f(m.get('oracle_auroc'))} "
            f"{f(m.get('expected_auroc_ratio'))}  {f(m['calibration_slope'], 2)} {f(m['ece'], 4)}"
        )
    return "\n".join(lines)

