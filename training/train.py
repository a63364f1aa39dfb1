"""`checkup-risk train`: read, validate, split by person, fit, evaluate, log, register, gate.

`train` runs the steps below in order, each a function of its own: `read_and_check` (read the file,
run the suite, count and explain rejects, stop when too many), `split` (persons for testing),
`fit_model`, `evaluate_model`, `register`, `run_gate` (with --promote) and `log_card`. Everything
inside the MLflow run is logged by the step that produced it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.derive import FEATURES
from features.eligibility import eligibility, labels_not_applicable, labels_not_applicable_lines
from features.readers import ReadResult, concat_results, read_checkups
from features.rejects import MAX_REJECT_SHARE, R_SUPERSEDED, HistoryGaps, history_gap, too_many
from features.rejects import summary as rejects_summary
from features.schema import BY_NAME, EXAMPLE_RECORD, OUTCOMES
from features.validation import SuiteReport, run_suite, split_valid
from models import provenance as provenance_
from models.bundle import RiskModel, person_fold
from models.fitting import MIN_EVENTS_TO_FIT, cannot_fit
from models.outcomes import OUTCOME_SPECS
from models.provenance import is_synthetic, summary_en
from training import registry
from training.card import evaluation_report, model_card
from training.evaluate import baseline_notes, evaluate, figures
from training.metrics import MIN_EVENTS as MIN_EVENTS_TO_JUDGE
from training.metrics import flat_metrics, too_few_events
from training.progress import FitProgress
from training.promotion import MIN_EVENTS, decide

TEST_SHARE = 0.2
# Salt offset so the test split of persons is independent of the model's own validation split.
_TEST_SALT = 7919

Say = Callable[[str], None]


class TooManyRejects(ValueError):
    """More of the file was rejected than the caller allowed; nothing was trained or logged."""


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict
    promoted: bool
    decision: str | None
    seconds: float


@dataclass
class CheckedData:
    """What reading and validation left to train on, and what they turned away."""

    records: pd.DataFrame
    rows_in: int  # rows of the files, less the copies a later file replaced
    persons: int
    rejected: int
    share: float
    gx: SuiteReport
    reasons: pd.Series  # rows per (field, reason), the 50 most common
    replaced: int = 0  # copies a later file's row replaced (newer labels): neither rows nor rejects


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_sha256(paths: list[Path]) -> str:
    """The file's SHA-256; for several files, the SHA-256 of their hashes in order."""
    if len(paths) == 1:
        return file_sha256(paths[0])
    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()


def test_mask(records: pd.DataFrame, seed: int) -> np.ndarray:
    return person_fold(records["person_id"], seed + _TEST_SALT) < int(round(100 * TEST_SHARE))


def example_frame() -> pd.DataFrame:
    from features.readers import records_to_frame

    return records_to_frame([EXAMPLE_RECORD]).frame


@contextmanager
def dask_client(engine: str, scheduler: str | None, workers: int) -> Iterator[Any]:
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
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            yield client


def run_name(outcomes: tuple[str, ...], persons: int, kind: str) -> str:
    """The MLflow run name of a training run: what was trained, on how many people, of what kind
    ('train 5 outcomes · 20,000 persons · synthetic'); one outcome is named."""
    what = outcomes[0] if len(outcomes) == 1 else f"{len(outcomes)} outcomes"
    return f"train {what} · {persons:,} persons · {kind}"


# --- the steps -----------------------------------------------------------------------------------


def read_files(paths: list[Path], say: Say) -> ReadResult:
    """One canonical frame from one or more files (the original cohort, then newly labelled
    checkups). Row positions run on across the files, so a reject names its row in the files taken
    in order. A checkup (person and exam date) in more than one file is taken from the later file,
    which holds the newer labels; each earlier copy is reported as a reject, with the reason."""
    results, offset, file_of = [], 0, []
    for k, path in enumerate(paths):
        say(f"reading {path}")
        read = read_checkups(path)
        read.frame.index = read.frame.index + offset
        if len(read.rejects):
            read.rejects["index"] = read.rejects["index"] + offset
        offset += read.rows_in
        results.append(read)
        file_of.append(np.full(len(read.frame), k))
    read = concat_results(results)
    if len(paths) > 1:
        # Only a copy in a LATER file supersedes: two rows of one person and date within one file
        # are a repeat, which the record checks reject (the first is kept), as for a single file.
        file_no = pd.Series(np.concatenate(file_of), index=read.frame.index)
        last_file = file_no.groupby([read.frame["person_id"], read.frame["exam_date"]]).transform("max")
        earlier = (file_no < last_file).to_numpy()
        if earlier.any():
            dropped = read.frame.loc[earlier]
            lines = pd.DataFrame(
                {
                    "index": dropped.index,
                    "person_id": dropped["person_id"].to_numpy(),
                    "field": "exam_date",
                    "value": None,
                    "reason": R_SUPERSEDED,
                }
            )
            read = replace(
                read, frame=read.frame.loc[~earlier], rejects=pd.concat([read.rejects, lines], ignore_index=True)
            )
            say(f"{int(earlier.sum()):,} checkups appear again in a later file: the later file's rows are used")
    return read


def read_and_check(data: list[Path], outcomes: tuple[str, ...], max_reject_share: float, say: Say) -> CheckedData:
    """Read the files, run the validation suite and split off the rejects; say how many and why.

    Raises ValueError when label columns are missing or no valid row is left, and TooManyRejects
    when more than `max_reject_share` of the rows were rejected."""
    read = read_files(data, say)
    for note in read.notes:
        say(f"note: {note}")
    missing = [OUTCOME_SPECS[o].label for o in outcomes if OUTCOME_SPECS[o].label not in read.frame.columns]
    if missing:
        present = [o for o in outcomes if OUTCOME_SPECS[o].label in read.frame.columns]
        remedy = f"; train the others with --outcomes {','.join(present)}" if present else ""
        raise ValueError(f"training data lack label columns: {', '.join(missing)}{remedy}")
    say("validating (Great Expectations suite)")
    gx = run_suite(read.frame)
    records, problems = split_valid(read.frame, labels=True)
    found = [r for r in (read.rejects, problems) if len(r)]
    all_rejects = pd.concat(found) if found else read.rejects
    # A copy replaced by a later file's row (newer labels) is no lost data (`read_files` says how many):
    # the rows, the rejects, their share and the limit are of the rest.
    replaced = all_rejects["reason"].eq(R_SUPERSEDED).to_numpy() if len(all_rejects) else np.zeros(0, dtype=bool)
    n_replaced = int(all_rejects.loc[replaced, "index"].nunique()) if replaced.any() else 0
    lost = all_rejects[~replaced]
    reasons = lost[["field", "reason"]].value_counts().head(50) if len(lost) else pd.Series(dtype=int)
    rows_in = int(read.rows_in) - n_replaced
    rejected, share, lines = rejects_summary(lost, rows_in, listed_in="the listing of `checkup-risk validate FILE`")
    for line in lines:
        say(line)
    gaps = HistoryGaps()
    gaps.update(records, lost)
    gap = gaps.counts()
    if gap["history_gap_rows"]:
        # Their labels' applicability and their history miss what the rejected rows said.
        where = "the rows `checkup-risk validate FILE` lists"
        say("WARNING: " + history_gap(gap["history_gap_rows"], gap["history_gap_persons"], where))
    stop = too_many(rejected, rows_in, share, max_reject_share)
    if stop:
        raise TooManyRejects(
            f"{stop}; fix the file, or train on the rest with --max-reject-share SHARE or --allow-rejects"
        )
    if not len(records):
        raise ValueError("no valid rows to train on")
    for line in labels_not_applicable_lines(labels_not_applicable(records, outcomes)):
        say(line)
    return CheckedData(
        records=records,
        rows_in=rows_in,
        persons=int(read.frame["person_id"].nunique()),
        rejected=rejected,
        share=share,
        gx=gx,
        reasons=reasons,
        replaced=n_replaced,
    )


def split(
    data: list[Path], checked: CheckedData, outcomes: tuple[str, ...], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(training rows, test rows, the data's fingerprint): test persons are never trained on."""
    records = checked.records
    is_test = test_mask(records, seed)
    train_rows, test_rows = records.loc[~is_test], records.loc[is_test]
    fingerprint = {
        "sha256": files_sha256(data),
        "rows": checked.rows_in,
        "persons": checked.persons,
        "rejected_rows": checked.rejected,
        "replaced_rows": checked.replaced,
        "train_rows": int(len(train_rows)),
        "test_rows": int(len(test_rows)),
        "events": {o: int(pd.to_numeric(records[OUTCOME_SPECS[o].label], errors="coerce").sum()) for o in outcomes},
    }
    return train_rows, test_rows, fingerprint


def log_inputs(data: list[Path], outcomes: tuple[str, ...], seed: int, fingerprint: dict, checked: CheckedData) -> None:
    """The run's parameters and the validation result (counts only: no values, no person IDs)."""
    import mlflow

    mlflow.log_params(
        {"data_path": ",".join(map(str, data)), "outcomes": ",".join(outcomes), "seed": seed, "test_share": TEST_SHARE}
    )
    mlflow.log_params({f"data.{k}": v for k, v in fingerprint.items() if k != "events"})
    mlflow.log_params({f"data.events.{o}": n for o, n in fingerprint["events"].items()})
    gx = checked.gx
    mlflow.log_metric("gx_success", float(gx.success))
    mlflow.log_dict(
        {
            "success": gx.success,
            "evaluated": gx.evaluated,
            "failures": [
                {
                    "field": f.field,
                    "expectation": f.expectation,
                    "critical": f.critical,
                    "unexpected_count": f.unexpected_count,
                }
                for f in gx.failures
            ],
            "rejected_by_reason": [{"field": k[0], "reason": k[1], "rows": int(v)} for k, v in checked.reasons.items()],
            "rejected_share": checked.share,
        },
        "validation/gx_result.json",
    )


def check_events(train_rows: pd.DataFrame, outcomes: tuple[str, ...], held_out: pd.DataFrame | None = None) -> None:
    """Stop before fitting when an outcome has too few events in the training persons to be fit
    at all, naming every such outcome and the `--outcomes` that can be trained instead (and how
    many persons the test split, `held_out`, took: a tiny file may leave none to train on)."""
    eligible = eligibility(train_rows, outcomes)
    short = {}
    for o in outcomes:
        y = pd.to_numeric(train_rows[OUTCOME_SPECS[o].label], errors="coerce")
        y = y[eligible[o].to_numpy() & y.notna().to_numpy()]
        if cannot_fit(len(y), int(y.sum())):
            short[o] = f"{o} ({int(y.sum()):,} events in {len(y):,} rows)"
    if not short:
        return
    rest = [o for o in outcomes if o not in short]
    remedy = f"; train the others with --outcomes {','.join(rest)}" if rest else ""
    split_note = ""
    if held_out is not None:
        split_note = (
            f"; {train_rows['person_id'].nunique():,} training persons, {held_out['person_id'].nunique():,} "
            "more held out for testing"
        )
    raise ValueError(
        f"too few events to fit {', '.join(short.values())} (at least {MIN_EVENTS_TO_FIT} among the training "
        f"persons{split_note}){remedy}"
    )


def fit_model(
    train_rows: pd.DataFrame,
    outcomes: tuple[str, ...],
    seed: int,
    model_params: dict | None,
    engine: str,
    scheduler: str | None,
    workers: int,
    say: Say,
) -> RiskModel:
    """Fit the bundle, saying its progress and warnings, and log what each outcome chose."""
    import mlflow

    model = RiskModel(outcomes=outcomes, random_state=seed, **(model_params or {}))
    mlflow.log_param("engine", engine)
    # The model warns (warnings.warn) when an outcome has too little data to learn from; on the
    # command line such warnings would be lost or garbled among progress lines, so say them.
    with dask_client(engine, scheduler, workers) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        progress = FitProgress(say, outcomes, suffix=" (xgboost.dask)" if client else "")
        model.fit(train_rows, progress=progress, client=client)
    # UserWarnings are the model's messages to its user (too little data, ...); numpy's
    # RuntimeWarnings and deprecations say nothing a user can act on.
    fit_warnings = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    for text in fit_warnings:
        say(f"warning: {text}")
    if fit_warnings:
        mlflow.log_dict({"warnings": fit_warnings}, "fit_warnings.json")
    for o, m in model.models_.items():
        say(f"  {o}: {m.info['choice']} (depth {m.info['setting'].get('max_depth')}, {m.info['rounds']} rounds)")
        mlflow.log_params(
            {
                f"{o}.choice": m.info["choice"],
                f"{o}.rounds": m.info["rounds"],
                f"{o}.blend_weight": m.weight,
                **{f"{o}.{k}": v for k, v in m.info["setting"].items()},
            }
        )
    mlflow.log_dict({o: m.info for o, m in model.models_.items()}, "model_selection.json")
    return model


def log_provenance(model: RiskModel, fingerprint: dict, say: Say) -> dict:
    """Where the data came from, as the bundle records it (synthetic when the file carries the
    generator's true risks): searchable in MLflow, stated in the model card, served by /model."""
    import mlflow

    info = model.training_data_
    mlflow.log_params({f"training_data.{k}": v for k, v in info.items()})
    mlflow.set_tag("training_data", info["kind"])
    fingerprint["training_data"] = info
    say(f"training data: {summary_en(info)}")
    return info


def evaluate_model(
    model: RiskModel, test_rows: pd.DataFrame, fingerprint: dict, seed: int, say: Say
) -> tuple[dict, dict[str, bytes]]:
    """metrics.json and the plots on the held-out persons, both logged; (metrics, PNGs by name)."""
    import mlflow

    say(f"evaluating on {len(test_rows):,} held-out checkups")
    metrics, curves = evaluate(test_rows, model, seed=seed)
    metrics["data"] = fingerprint
    for note in baseline_notes(metrics):
        say(f"note: {note}")
    for o, block in metrics["outcomes"].items():
        mlflow.log_metrics(flat_metrics(o, block))
        for name, b in block["baselines"].items():
            if b.get("auroc") is not None:
                mlflow.log_metric(f"{o}.baseline.{name}.auroc", b["auroc"])
    mlflow.log_dict(metrics, "metrics.json")
    say("drawing the evaluation plots")
    pngs = figures(model, test_rows, curves)
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in pngs.items():
            (Path(tmp) / name).write_bytes(png)
        mlflow.log_artifacts(tmp, "plots")
    return metrics, pngs


def register(model: RiskModel, data: list[Path], say: Say) -> str:
    """Log the bundle, register it as a new version and make it the challenger; its version."""
    say(f"registering the model in {registry.MODEL_NAME}")
    names = " + ".join(p.name for p in data)
    _, version = registry.log_bundle(model, example_frame(), description=f"trained on {names}")
    registry.set_alias(registry.CHALLENGER, version)
    say(f"registered {registry.MODEL_NAME} version {version} as {registry.CHALLENGER}")
    return version


def run_gate(
    model: RiskModel,
    version: str,
    test_rows: pd.DataFrame,
    outcomes: tuple[str, ...],
    seed: int,
    min_events: int,
    say: Say,
) -> tuple[bool, str]:
    """The champion/challenger gate on rows neither model was trained on; (promoted, decision text)."""
    import mlflow

    champion_version = registry.version_of(registry.CHAMPION)
    champion = registry.load(champion_version)[0] if champion_version is not None else None
    compare_rows, compare_note = _comparison_rows(test_rows, model, champion, champion_version)
    say(compare_note)
    champion_probs = None
    if champion is not None:
        champion_probs = {o: v.to_numpy(dtype=float) for o, v in champion.predict(compare_rows).items()}
    challenger_probs = {o: v.to_numpy(dtype=float) for o, v in model.predict(compare_rows).items()}
    y = {
        o: pd.to_numeric(compare_rows[OUTCOME_SPECS[o].label], errors="coerce").to_numpy(dtype=float) for o in outcomes
    }
    persons = compare_rows["person_id"].to_numpy()
    decision = decide(y, challenger_probs, champion_probs, seed=seed, min_events=min_events, persons=persons)
    unjudged = inputs_not_compared(compare_rows, champion)
    if unjudged:
        decision.promote = False
        decision.reasons.append(
            f"the held-out rows have no {', '.join(unjudged)}, which champion {champion_version} learned from: "
            "both models were judged without them, so the comparison says nothing of checkups that have them "
            f"(`checkup-risk promote {version}` promotes it by hand)"
        )
    promoted = decision.promote
    text = f"version {version} vs champion {champion_version or '(none)'}: " + decision.summary()
    if promoted:
        registry.set_alias(registry.CHAMPION, version)
    mlflow.set_tags({"promotion.decision": "promoted" if promoted else "rejected", "promotion.reason": text[:5000]})
    mlflow.log_dict(
        {
            "promoted": promoted,
            "reason": text,
            "compared_on": compare_note,
            "min_events": min_events,
            "per_outcome": decision.per_outcome,
        },
        "promotion.json",
    )
    say(text)
    return promoted, text


def log_card(
    version: str,
    metrics: dict,
    fingerprint: dict,
    decision: str | None,
    model: RiskModel,
    pngs: dict[str, bytes],
    run_id: str,
) -> None:
    """The model card and the evaluation report into the run; the version tagged with its run."""
    import mlflow

    card = model_card(version, metrics, fingerprint, decision, model_info={o: m.info for o, m in model.models_.items()})
    mlflow.log_text(card, "model_card.md")
    report = evaluation_report(version, metrics, pngs, card, is_synthetic(model.training_data_))
    mlflow.log_text(report, "evaluation_report.html")
    client = registry.client()
    client.set_model_version_tag(registry.MODEL_NAME, version, "run_id", run_id)
    client.set_model_version_tag(registry.MODEL_NAME, version, "training_data", model.training_data_["kind"])


def train(
    data: str | Path | Sequence[str | Path],
    outcomes: tuple[str, ...] = OUTCOMES,
    experiment: str = "checkup-risk",
    promote: bool = False,
    seed: int = 0,
    say: Say = print,
    engine: str = "pandas",
    scheduler: str | None = None,
    workers: int = 2,
    max_reject_share: float = MAX_REJECT_SHARE,
    promote_min_events: int = MIN_EVENTS,
    model_params: dict | None = None,
) -> TrainResult:
    """Read, validate, fit, evaluate, log and register; with `promote`, run the gate. `data` is a
    file, or several (combined by `read_files`).

    Raises TooManyRejects (a ValueError) before anything is fitted or logged when more than
    `max_reject_share` of the rows fail reading or validation (1.0 never stops).
    `model_params` go to `RiskModel` (tests and the first-run default model use it for smaller,
    faster settings).
    """
    import mlflow

    if not 0 <= max_reject_share <= 1:
        raise ValueError("max_reject_share must lie between 0 and 1")
    start = time.perf_counter()
    # Several files: the original cohort and newly labelled checkups, trained on together.
    paths = [Path(data)] if isinstance(data, str | Path) else [Path(d) for d in data]
    registry.configure()
    exp_id = registry.experiment(experiment)

    checked = read_and_check(paths, outcomes, max_reject_share, say)
    train_rows, test_rows, fingerprint = split(paths, checked, outcomes, seed)
    check_events(train_rows, outcomes, held_out=test_rows)
    name = run_name(outcomes, checked.persons, provenance_.detect(checked.records)["kind"])
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
        log_inputs(paths, outcomes, seed, fingerprint, checked)
        model = fit_model(train_rows, outcomes, seed, model_params, engine, scheduler, workers, say)
        log_provenance(model, fingerprint, say)
        metrics, pngs = evaluate_model(model, test_rows, fingerprint, seed, say)
        version = register(model, paths, say)
        promoted, decision = (
            run_gate(model, version, test_rows, outcomes, seed, promote_min_events, say) if promote else (False, None)
        )
        log_card(version, metrics, fingerprint, decision, model, pngs, run.info.run_id)
        elapsed = time.perf_counter() - start
        mlflow.log_metric("train_seconds", elapsed)
    return TrainResult(run.info.run_id, version, metrics, promoted, decision, elapsed)


# The checkup's own measurements and answers: a model learns from them, and a file can lack them.
_MEASURED: tuple[str, ...] = tuple(f for f in FEATURES if f in BY_NAME and not BY_NAME[f].required and f != "age_group")


def inputs_not_compared(rows: pd.DataFrame, champion: RiskModel | None) -> list[str]:
    """The champion's inputs that no comparison row has: a file without them (no blood pressure,
    no glucose) judges both models without them, and a challenger trained on such a file then looks
    as good as a champion that uses them (it was, by 0.005 AUROC, and 0.17 worse on complete rows)."""
    if champion is None:
        return []
    return [
        f
        for f in _MEASURED
        if champion.training_range(f) is not None
        and (f not in rows or pd.to_numeric(rows[f], errors="coerce").isna().all())
    ]


def _comparison_rows(
    test_rows: pd.DataFrame, challenger: RiskModel, champion: RiskModel | None, champion_version: str | None
) -> tuple[pd.DataFrame, str]:
    """Held-out rows of persons neither model was trained on, and a line saying what they are.

    The challenger's test persons are held out from it by construction; the champion may have been
    trained on any of them (another file, or the same people again), and judging it on its own
    training persons would flatter it, so those rows go too.
    """
    seen = np.zeros(len(test_rows), dtype=bool)
    unknown = []
    for name, m in (("challenger", challenger), (f"champion {champion_version}", champion)):
        if m is None:
            continue
        check = getattr(m, "was_trained_on", None)
        if check is None:
            unknown.append(name)
        else:
            seen |= np.asarray(check(test_rows["person_id"]), dtype=bool)
    rows = test_rows.loc[~seen]
    text = (
        f"gate compares on {len(rows):,} held-out checkups of {rows['person_id'].nunique():,} persons "
        f"neither model was trained on ({int(seen.sum()):,} checkups of training persons excluded)"
    )
    if unknown:
        text += f"; not recorded in {' and '.join(unknown)}: its training persons could not be excluded"
    return rows, text


def summary_table(metrics: dict) -> str:
    lines = [
        f"{'outcome':<13} {'n':>9} {'events':>7} {'AUROC':>6} {'LR':>6} {'oracle':>6} {'E-ratio':>7} "
        f"{'slope':>6} {'ECE':>7}"
    ]
    few = []
    for o, m in metrics["outcomes"].items():

        def f(x, d=3):
            return "   n/a" if x is None else f"{x:6.{d}f}"

        # An AUROC of 3 events printed like any other was read as a result: marked, and said below.
        small = m["events"] > 0 and too_few_events(m["events"], m["n"])
        few += [o] if small else []
        lines.append(
            f"{o:<13} {m['n']:>9,} {m['events']:>7,} {f(m['auroc'])} "
            f"{f(m['baselines']['logistic_regression']['auroc'])} {f(m.get('oracle_auroc'))} "
            f"{f(m.get('expected_auroc_ratio'))}  {f(m['calibration_slope'], 2)} {f(m['ece'], 4)}"
            + (" *" if small else "")
        )
    if few:
        lines.append(
            f"* fewer than {MIN_EVENTS_TO_JUDGE} events or non-events: the AUROC is not a result to judge the "
            "model by, and no calibration is fitted"
        )
    return "\n".join(lines)
