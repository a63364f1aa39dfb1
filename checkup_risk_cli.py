"""`checkup-risk`: the command line. Parses arguments, calls the packages, shows progress.

`main` is an entry point: it reads the settings from the environment once (`serving.settings`) and
hands them to the command as `args.settings`. Heavy libraries (pandas, MLflow, BentoML, XGBoost,
Great Expectations) are imported inside the commands that use them, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from serving.settings import Settings


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 2."""


def _progress(total: int | None, unit: str, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, mininterval=0.5, disable=None)


def _write_frame(frame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        raise CliError(f"--out must end in .parquet, .csv or .csv.gz: {path}")


def cmd_synth(args: argparse.Namespace) -> int:
    from features.synth import generate_cohort

    out = Path(args.out)
    if not out.name.endswith((".parquet", ".csv", ".csv.gz")):
        raise CliError(f"--out must end in .parquet, .csv or .csv.gz: {out}")
    if args.people < 1:
        raise CliError("--people must be 1 or more")
    start = time.perf_counter()
    with _progress(None, "checkups", "synth") as bar:
        done = [0]

        def step(n: int) -> None:
            bar.update(n - done[0])
            done[0] = n

        cohort = generate_cohort(people=args.people, seed=args.seed, progress=step)
    _write_frame(cohort, out)
    print(
        f"wrote {len(cohort):,} checkups of {cohort['person_id'].nunique():,} people to {out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _person(pid) -> str:
    """How a row's person is named on screen: its id, or that it has none."""
    import pandas as pd

    return "no person_id" if pid is None or pd.isna(pid) else f"person {pid}"


def _fmt_value(v) -> str:
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (tuple, dict)):  # a column pair's values, or a compound key's (GX gives a dict)
        return "(" + ", ".join(_fmt_value(x) for x in (v.values() if isinstance(v, dict) else v)) + ")"
    return str(v)


def _say_rejects(rows_in: int, rejects, max_share: float = 1.0, listed_in: str = "the rejects file") -> str | None:
    """Say on stderr how many of `rows_in` rows were rejected, and their top reasons, as `train`
    does (`features.rejects.summary`); nothing when none was. Returns the one-line reason to fail
    when more than `max_share` of the rows were rejected, else None."""
    from features.rejects import summary, too_many

    rejected, share, lines = summary(rejects, rows_in, listed_in=listed_in)
    if not rejected:
        return None
    for line in lines:
        print(line, file=sys.stderr)
    return too_many(rejected, rows_in, share, max_share)


def _max_reject_share(args: argparse.Namespace) -> float:
    if not 0 <= args.max_reject_share <= 1:
        raise CliError("--max-reject-share must lie between 0 and 1")
    return 1.0 if args.allow_rejects else args.max_reject_share


def cmd_validate(args: argparse.Namespace) -> int:
    from features.readers import absent_input_notes, absent_key_inputs, read_checkups
    from features.schema import OUTCOMES, label_column
    from features.validation import run_suite
    from serving.batch_input import validate_read

    path = Path(args.path)
    if not path.exists():
        raise CliError(f"no such file: {path}")
    read = read_checkups(path)
    for note in read.notes:
        print(f"note: {note}")
    for note in absent_input_notes(absent_key_inputs(path)):
        print(f"note: {note}")
    n_rows = len(read.frame) + read.rejects["index"].nunique()
    report = run_suite(read.frame, report_dir=args.report, examples=args.max_rows, rows_in=n_rows)

    print(f"{path}: {n_rows:,} rows ({read.source} format), {report.evaluated} expectations")
    if len(read.rejects):
        print(f"FAIL [critical] {read.rejects['index'].nunique():,} rows could not be read:")
        for r in read.rejects.head(args.max_rows).itertuples():
            print(f"  row {r.index + 1} ({_person(r.person_id)}): {r.field} = {r.value!s}: {r.reason}")
        _more(len(read.rejects), args.max_rows)
    for f in report.failures:
        level = "critical" if f.critical else "warning"
        count = f"{f.unexpected_count:,} rows" if f.unexpected_count is not None else f.message
        print(f"FAIL [{level}] {f.field}: {f.expectation}: {count}")
        for idx, pid, value in f.examples[: args.max_rows]:
            print(f"  row {idx + 1} ({_person(pid)}): {f.field} = {_fmt_value(value)}")
        if f.examples:
            _more(f.unexpected_count or len(f.examples), min(args.max_rows, len(f.examples)))
    if report.docs_index is not None:
        print(f"Data Docs: {report.docs_index}")
    # The rows `score` would reject (reading and the record checks), and in a labelled file the
    # rows `train` would reject for their labels too, counted and explained as they do.
    labelled = any(label_column(o) in read.frame.columns for o in OUTCOMES)
    records, rejects = validate_read(read.frame, read.rejects, labels=labelled)
    _say_rejects(n_rows, rejects, listed_in="the listing above (--max-rows N lists more)")
    if labelled:
        from features.eligibility import labels_not_applicable, labels_not_applicable_lines

        for line in labels_not_applicable_lines(labels_not_applicable(records)):
            print(line, file=sys.stderr)
    if not report.success:
        print("FAILED: critical expectations failed")
    elif len(rejects):
        by = "train (and score, but for the labels)" if labelled else "score and train"
        print(f"FAILED: {rejects['index'].nunique():,} rows would be rejected by {by} (reasons above)")
    else:
        print("PASSED")
    return 0 if report.success and not len(rejects) else 1


def _outcomes(text: str | None) -> tuple[str, ...]:
    from models.outcomes import OUTCOMES

    if text is None:
        return OUTCOMES
    chosen = tuple(o.strip() for o in text.split(",") if o.strip())
    unknown = [o for o in chosen if o not in OUTCOMES]
    if unknown:
        raise CliError(f"unknown outcome(s) {', '.join(unknown)}; choose from {', '.join(OUTCOMES)}")
    if not chosen:
        raise CliError(f"--outcomes names no outcome; choose from {', '.join(OUTCOMES)}")
    return chosen


def cmd_train(args: argparse.Namespace) -> int:
    from training import registry
    from training.evaluate import calibration_notes, calibration_warnings, discrimination_warnings
    from training.progress import timed
    from training.train import summary_table, train

    outcomes = _outcomes(args.outcomes)
    for path in args.data:
        if not Path(path).exists():
            raise CliError(f"no such file: {path}")
    max_reject_share = _max_reject_share(args)
    if args.promote_min_events < 1:
        raise CliError("--promote-min-events must be 1 or more")
    registry.configure(args.settings.home, args.settings.mlflow_uri)
    # Progress goes to stderr with the seconds in front (stdout keeps the summary table).
    say = timed(lambda text: print(text, file=sys.stderr, flush=True))
    result = train(
        args.data,
        outcomes=outcomes,
        experiment=args.experiment,
        promote=args.promote,
        seed=args.seed,
        say=say,
        engine=args.engine,
        scheduler=args.scheduler,
        workers=args.workers,
        max_reject_share=max_reject_share,
        promote_min_events=args.promote_min_events,
    )
    print(summary_table(result.metrics))
    # As `evaluate` judges the same held-out persons: the figures above, in words.
    held_out = "on the held-out persons"
    for note in calibration_notes(result.metrics, held_out):
        print(f"note: {note}")
    for warning in discrimination_warnings(result.metrics, held_out) + calibration_warnings(result.metrics, held_out):
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"run {result.run_id}: version {result.version} registered as challenger in {result.seconds:.0f} s")
    if args.promote:
        print(("PROMOTED to champion: " if result.promoted else "NOT promoted: ") + (result.decision or ""))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from features.rejects import MAX_REJECT_SHARE
    from features.rejects import summary as rejects_summary
    from training import registry
    from training.evaluate import (
        baseline_notes,
        calibration_notes,
        calibration_warnings,
        discrimination_warnings,
        exclusion_text,
    )
    from training.evaluation_run import evaluate_file
    from training.progress import timed
    from training.train import summary_table

    if not Path(args.data).exists():
        raise CliError(f"no such file: {args.data}")
    registry.configure(args.settings.home, args.settings.mlflow_uri)
    try:
        say = timed(lambda text: print(text, file=sys.stderr, flush=True))
        result = evaluate_file(args.data, args.model, args.out, seed=args.seed, say=say)
    except LookupError as e:
        raise CliError(str(e)) from None
    metrics, out = result.metrics, Path(args.out)
    print(summary_table(metrics))
    print(f"evaluated {metrics['n_records']:,} checkups of {metrics['n_persons']:,} persons; {exclusion_text(metrics)}")
    rejected, share, lines = rejects_summary(result.rejects, result.rows_in, listed_in=str(out / "rejects.csv"))
    for line in lines:
        print(line, file=sys.stderr)
    if len(result.rejects):
        print(f"rejected rows, with the reasons: {out / 'rejects.csv'}", file=sys.stderr)
    from features.eligibility import labels_not_applicable_lines

    left_out = {o: (c["rows"], c["events"], c["all_events"]) for o, c in metrics["labels_not_applicable"].items()}
    for line in labels_not_applicable_lines(left_out):
        print(line, file=sys.stderr)
    for note in baseline_notes(metrics) + calibration_notes(metrics):
        print(f"note: {note}")
    print(
        f"model version {result.version}: wrote {out / 'metrics.json'}, {out / 'report.html'}, {out / 'model_card.md'}"
    )
    for warning in discrimination_warnings(metrics) + calibration_warnings(metrics):
        print(f"WARNING: {warning}", file=sys.stderr)
    if share > MAX_REJECT_SHARE:
        print(
            f"WARNING: {rejected:,} of {result.rows_in:,} rows ({share:.0%}) were rejected, more than "
            f"{MAX_REJECT_SHARE:.0%}: the figures describe the rest of the file, which may not be a random part of it",
            file=sys.stderr,
        )
    return 0


def _more(total: int, shown: int) -> None:
    """Say that a listing stopped short, and how to see more."""
    if total > shown:
        print(f"  ... {total - shown:,} more not listed (the first {shown:,} shown; --max-rows N lists more)")


def _rows_text(rows: list[int], total: int) -> str:
    """'data rows 12, 40 and 1,713 more': where to look, by row number (never a value)."""
    shown = ", ".join(f"{r:,}" for r in rows)
    more = total - len(rows)
    return f"data row{'s' if total > 1 else ''} {shown}" + (f" and {more:,} more" if more > 0 else "")


def cmd_score(args: argparse.Namespace) -> int:
    from features.readers import absent_input_notes, absent_key_inputs, header_notes
    from features.rejects import MAX_REJECT_SHARE, history_gap
    from serving.batch import OutOfOrder, score_file
    from serving.batch_output import check_output
    from training import registry

    if not Path(args.input).exists():
        raise CliError(f"no such file: {args.input}")
    try:
        check_output(Path(args.output), Path(args.input))  # before the model loads: said at once
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.explain < 0:
        raise CliError("--explain must be 0 or more")
    workers_given = args.workers is not None
    args.workers = 2 if args.workers is None else args.workers
    if args.engine != "dask" and (args.scheduler or workers_given):
        raise CliError("--scheduler and --workers need --engine dask")
    if args.chunk_rows < 1 or args.workers < 1:
        raise CliError("--chunk-rows and --workers must be 1 or more")
    # Before loading the model: a misspelt column (near-miss) fails here, in one line, and inputs the
    # whole file lacks are said once rather than as a missing input on every row.
    absent = absent_key_inputs(args.input)
    registry.configure(args.settings.home, args.settings.mlflow_uri)
    try:
        model, version = registry.load(args.model)
    except LookupError as e:
        raise CliError(str(e)) from None
    for note in header_notes(args.input) + absent_input_notes(absent):
        print(f"note: {note}", file=sys.stderr)
    from models import provenance

    if provenance.is_synthetic(provenance.normalise(getattr(model, "training_data_", None))):
        print(f"WARNING: model version {version}: {provenance.SYNTHETIC_WARNING}", file=sys.stderr)
    total = None
    if str(args.input).lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        total = pq.ParquetFile(args.input).metadata.num_rows
    # Scored rows go to the prediction log (source "batch") as the service's do; the dask engine
    # scores on its workers and is not logged.
    predictions = None
    if args.settings.prediction_log and args.engine == "pandas":
        from serving.prediction_logger import BatchLog, open_prediction_log

        predictions = open_prediction_log(args.settings, background=False, metrics=False)
    elif args.settings.prediction_log:
        print("note: --engine dask does not write the prediction log", file=sys.stderr)
    try:
        with _progress(total, "rows", f"score ({args.engine})") as bar:
            summary = score_file(
                model,
                args.input,
                args.output,
                version=version,
                progress=bar.update,
                explain=args.explain,
                intervals=args.intervals,
                engine=args.engine,
                chunk_rows=args.chunk_rows,
                workers=args.workers,
                scheduler=args.scheduler,
                on_scored=None if predictions is None else BatchLog(predictions, version),
            )
    except OutOfOrder as e:
        raise CliError(str(e)) from None
    finally:
        if predictions is not None:
            predictions.close()  # the rows still buffered; a failed write is a warning, never an error
    if summary.get("waist_999"):
        print(
            f"note: waist 999 (NHIS: not measured) treated as missing in {summary['waist_999']:,} rows", file=sys.stderr
        )
    if summary.get("exam_date_defaulted"):
        print(
            f"note: exam_date missing in {summary['exam_date_defaulted']:,} rows: set to today "
            "(a checkup without a date is scored as today's)",
            file=sys.stderr,
        )
    if summary.get("sex_differs"):
        print(
            f"warning: {summary['sex_differs']:,} checkups give another sex than the same person_id's previous "
            "row in the file: each was scored as given; check that they are one person's "
            f"({_rows_text(summary.get('sex_differs_rows', []), summary['sex_differs'])})",
            file=sys.stderr,
        )
    if summary.get("age_differs"):
        print(
            f"warning: {summary['age_differs']:,} checkups give an age that does not move with the time since the "
            "same person_id's previous row in the file: each was scored as given; check both ages "
            f"({_rows_text(summary.get('age_differs_rows', []), summary['age_differs'])})",
            file=sys.stderr,
        )
    if summary.get("age_group_differs"):
        print(
            f"warning: {summary['age_group_differs']:,} checkups give an age outside the age_group given with it: "
            "the age was used; check both",
            file=sys.stderr,
        )
    print(
        f"model version {version}: {summary['rows_in']:,} rows in, {summary['rows_scored']:,} scored "
        f"-> {args.output}, {summary['rows_rejected']:,} rejected -> {summary['rejects_path']}"
    )
    too_many = _say_rejects(
        summary["rows_in"], summary["reject_reasons"], MAX_REJECT_SHARE, str(summary["rejects_path"])
    )
    if summary.get("history_gap_rows"):
        # A rejected checkup's diagnosis is not in its person's history: a known condition may be scored as new.
        gap = history_gap(summary["history_gap_rows"], summary["history_gap_persons"], str(summary["rejects_path"]))
        print(f"WARNING: {gap}", file=sys.stderr)
    if too_many:
        # Every row is in one of the two files, so the run did what it promises (contract section 4),
        # but a file that loses this much is likely the wrong file or misread: say it last and loudly.
        print(f"WARNING: {too_many}: check the input before using {args.output}", file=sys.stderr)
    if summary["rows_in"] and not summary["rows_scored"]:
        # Both files are written, but a run that scored nothing delivered nothing: a scheduled job
        # must not read it as success.
        raise CliError(
            f"none of the {summary['rows_in']:,} rows could be scored: each is in {summary['rejects_path']} "
            "with its reason"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from pydantic import ValidationError

    from serving.schemas import ReportRequest, errors_from
    from training import registry

    source, out = Path(args.input), Path(args.out)
    if out.suffix not in (".html", ".pdf"):
        raise CliError(f"--out must end in .html or .pdf: {out}")
    if not source.exists():
        raise CliError(f"no such file: {source}")
    try:
        body = json.loads(source.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"{source}: not JSON ({e})") from None
    # One record, {"checkup": record}, {"checkups": [records]} or a bare list of one person's
    # records: ReportRequest reads every shape, as POST /report does.
    if isinstance(body, list):
        body = {"checkups": body}
    if isinstance(body, dict) and args.lang:
        body["lang"] = args.lang  # the command line wins over the file
    try:
        request = ReportRequest.model_validate(body)
    except ValidationError as e:
        # Name the record, the field and the rule, never the value (it is patient data).
        raise CliError(
            f"{source}: "
            + "; ".join(
                (
                    f"record {x['index']}, "
                    if x["index"] is not None and isinstance(body, dict) and "checkups" in body
                    else ""
                )
                + f"{x['field'] or 'record'}: {x['message']}"
                for x in errors_from(e, ())
            )
        ) from None
    registry.configure(args.settings.home, args.settings.mlflow_uri)
    try:
        model, version = registry.load(args.model)
    except LookupError as e:
        raise CliError(str(e)) from None
    from serving.report import render_html, render_pdf
    from serving.scoring import Scorer

    # The same staleness rule as the service, from the same setting.
    scorer = Scorer(model, version, stale_after_days=args.settings.stale_after_days)
    # A report from a version other than the champion says so: it is not what the HIS is shown.
    champion = registry.version_of("champion") or ""
    html = render_html(scorer, request.records(), request.lang, champion=champion)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pdf":
        out.write_bytes(render_pdf(html))
    else:
        out.write_text(html, encoding="utf-8")
    role = "the champion" if version == champion else "not the champion: the report says it is for comparison"
    print(f"model version {version} ({role}): wrote the {request.lang} report to {out}")
    return 0


def _champion_or_default(people: int | None) -> str:
    """The champion's version; on a fresh machine, first build the default model from the
    built-in synthetic cohort (synth, train, promote), saying each step (`training.default_model`)."""
    from training import registry

    version = registry.version_of(registry.CHAMPION)
    if version is not None:
        return version
    from training.default_model import DEFAULT_PEOPLE, build_default

    result = build_default(
        registry.home(),
        DEFAULT_PEOPLE if people is None else people,
        say=lambda t: print(t, file=sys.stderr, flush=True),
    )
    if not result.promoted:
        raise CliError(f"the default model did not pass the promotion gate: {result.decision}")
    print(f"default model ready: version {result.version} in {result.seconds:.0f} s of training", file=sys.stderr)
    return result.version


def _served_training_data(tag: str) -> dict:
    """The pinned bundle's provenance (`models.provenance`), read from its manifest in the BentoML store."""
    import json

    import bentoml

    from models import provenance
    from serving import store

    model = bentoml.models.get(tag)
    manifest = Path(model.path_of(store.BUNDLE_SUBPATH)) / "manifest.json"
    try:
        return provenance.normalise(json.loads(manifest.read_text()).get("training_data"))
    except (OSError, ValueError) as e:
        # Before "serving ..." is printed: a damaged bundle stops serve with the file it could not read.
        raise CliError(
            f"model {tag} cannot be read ({manifest}: {e}): delete {model.path} so that serve imports it "
            "again from the registry, or promote another version"
        ) from None


def _provenance_hints(info: dict, allow_synthetic: bool) -> list[str]:
    """What `serve` prints about the model's training data: out of the box (the default model) it is
    synthetic, and whoever starts the service must know before a clinician sees a number."""
    from models import provenance
    from serving.settings import ALLOW_SYNTHETIC_ENV

    lines = [f"trained on {provenance.summary_en(info)}"]
    if provenance.is_synthetic(info):
        cds = (
            f"CDS cards are on (each marked synthetic) because {ALLOW_SYNTHETIC_ENV}=1"
            if allow_synthetic
            else f"CDS gives no cards; set {ALLOW_SYNTHETIC_ENV}=1 to see them in a demo"
        )
        lines += [
            "WARNING: this model learned from SYNTHETIC (simulated) people and is not for clinical use.",
            f"  /score, /fhir/risk-assessment and the report say so in every response; {cds}.",
            "  To serve a model of real people: `checkup-risk train --data FILE --promote` on real checkups.",
        ]
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import shlex

    from features.schema import EXAMPLE_RECORD
    from serving import store
    from serving.auth import ensure_token, token_file, weak_secret_warning, weak_token_warning
    from training import registry

    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be 1 or more")
    settings = args.settings
    home = settings.home
    # Both before a first run's training (minutes): a second instance on one home would share its
    # metrics files and prediction log, and a port in use would fail only after it.
    lock = _hold_serve_lock(home)
    _check_port(args.host, args.port)
    _check_cds_clients(settings.cds_clients)
    _check_prediction_log_dir(settings)
    registry.configure(home, settings.mlflow_uri)
    version = _champion_or_default(args.default_people)
    tag = store.import_version(version)
    store.pin(tag, home)
    # The shared state is created or upgraded now, and the secret made (one, before the workers
    # start) and checked against the state's, so a database that is unreachable or was made with
    # another secret stops here with a clear message instead of in every worker.
    from features.pseudonym import load_secret

    _state(settings, load_secret(home, settings.secret_key))
    token, created = ensure_token(home, settings.api_token)
    for warning in (weak_token_warning(home, settings.api_token), weak_secret_warning(settings.secret_key)):
        if warning:
            print(warning, file=sys.stderr)
    if settings.model_tag and settings.model_tag != tag:
        print(
            f"note: CHECKUP_RISK_MODEL_TAG ({settings.model_tag}) is for a bare `bentoml serve`: "
            f"`checkup-risk serve` starts on the champion, {tag}",
            file=sys.stderr,
        )
    if settings.api_token:
        auth = "Authorization: Bearer $CHECKUP_RISK_API_TOKEN"
    else:
        auth = f"Authorization: Bearer $(cat {shlex.quote(str(token_file(home)))})"
        if created:
            print(f"created API token (kept in {token_file(home)}): {token}")
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    body = json.dumps({"checkups": [EXAMPLE_RECORD], "top_k": 3})
    training_data = _served_training_data(tag)
    print(f"serving model version {version} ({tag}) on http://{args.host}:{args.port}")
    for line in _provenance_hints(training_data, settings.allow_synthetic):
        print(line)
    print("try:")
    print(
        f'  curl -s -X POST http://{host}:{args.port}/score -H "{auth}" '
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    sys.stdout.flush()
    # The service reads its settings from the environment it starts with: these, with this exact
    # model version and the worker count asked for (BENTOML_HOME came from configure_libraries).
    served = dataclasses.replace(settings, model_tag=tag, workers=args.workers or settings.workers)
    # The workers stop when this process (their supervisor after exec: same PID) is gone.
    from serving.parent_watch import SERVE_PID_ENV

    env = {**os.environ, **served.to_env(), SERVE_PID_ENV: str(os.getpid())}
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:RiskService",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    assert not lock.closed  # held through exec
    os.execvpe(cmd[0], cmd, env)
    return 0


def _check_cds_clients(path: Path | None) -> None:
    """The CDS client allowlist is read now, so that a bad one stops `serve` in one line instead of
    failing in every worker after "serving" was printed."""
    from serving.cds_auth import load_clients

    try:
        load_clients(path)
    except ValueError as e:
        raise CliError(f"CHECKUP_RISK_CDS_CLIENTS: {e}") from None


def _check_prediction_log_dir(settings: Settings) -> None:
    """The Parquet prediction log's folder must be writable now: otherwise every worker would only
    warn a minute after the first scored request, and the monitor would have nothing to read."""
    import tempfile

    if not settings.prediction_log or settings.database_url:  # off, or PostgreSQL's table instead
        return
    folder = settings.prediction_log_path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise CliError(
            f"CHECKUP_RISK_PREDICTION_LOG_DIR: {folder} cannot be written ({e.strerror or type(e).__name__}): "
            "name a writable folder, or set CHECKUP_RISK_PREDICTION_LOG=off"
        ) from None


def _hold_serve_lock(home: Path) -> IO[str]:
    """Lock `home/serve.lock` for as long as the service runs: the descriptor is inherited by the
    `bentoml serve` this process becomes (exec keeps it, and the PID) and by its workers, and the
    lock goes with the last of them. The file records this PID, so that a refusal can tell a
    running serve from workers a killed one left behind."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    path = home / "serve.lock"
    handle = open(path, "a+")  # noqa: SIM115 (held open on purpose, through exec)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CliError(_lock_held_message(home, path)) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    os.set_inheritable(handle.fileno(), True)
    return handle


def _lock_held_message(home: Path, path: Path) -> str:
    """Why serve cannot start on `home`: another serve runs there, or (its recorded PID is gone)
    the workers of a serve that was killed still hold the lock, named by PID where /proc shows them."""
    try:
        serve_pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        serve_pid = None  # written by an older release, or not yet: say what is known
    if serve_pid is None or _alive(serve_pid):
        running = "" if serve_pid is None else f" (PID {serve_pid})"
        return (
            f"another `checkup-risk serve`{running} is running on this home ({home}): give each instance its own "
            "CHECKUP_RISK_HOME (several instances share state through CHECKUP_RISK_DATABASE_URL)"
        )
    holders = _holders(path)
    if holders:
        pids = " ".join(map(str, holders))
        what = f"still hold it (PIDs {pids}): stop them (`kill {pids}`) and start serve again"
    else:
        what = f"still hold it: stop the processes that have {path} open (`fuser -v {path}`) and start serve again"
    return f"the `checkup-risk serve` of this home ({home}, PID {serve_pid}) has stopped, but workers it started {what}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def _holders(path: Path) -> list[int]:
    """The PIDs of the processes that have `path` open, found in /proc (Linux; only the processes
    this user may inspect; none elsewhere)."""
    target = str(path.resolve())
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                found.append(int(fd_dir.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(found)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1 to 65535)")
    return port


def _host(text: str) -> str:
    # BentoML binds an IP address only: a name would fail after a first run's training.
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text} is not an IP address (for example 127.0.0.1, 0.0.0.0 or ::)"
        ) from None
    return text


def _check_port(host: str, port: int) -> None:
    """CliError when `host:port` cannot be listened on (in use, not allowed, no such address)."""
    import errno
    import socket

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    for family, kind, proto, _, address in addresses[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as e:
                hint = " (another server on that port?)" if e.errno == errno.EADDRINUSE else ""
                raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None


def cmd_promote(args: argparse.Namespace) -> int:
    import datetime as dt

    from training import registry

    registry.configure(args.settings.home, args.settings.mlflow_uri)
    version = registry.version_of(args.version)
    if version is None:
        raise CliError(f"no registered version {args.version!r}")
    previous = registry.version_of(registry.CHAMPION)
    registry.set_alias(registry.CHAMPION, version)
    # A promotion by hand bypasses the gate: the version says so, as a gated one carries its decision.
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tags = {"promotion.decision": "promoted by hand, without the gate", "promotion.previous": previous or "none"}
    for key, value in {**tags, "promotion.at": when}.items():
        registry.client().set_model_version_tag(registry.MODEL_NAME, version, key, value)
    print(f"champion: version {previous or '(none)'} -> version {version}")
    print(f"note: promoted without the gate (no comparison with version {previous or '(none)'}); tagged on the version")
    if previous:
        # The gate refuses a challenger that lacks a champion's outcome; by hand it is only said, loudly.
        try:
            before, after = registry.outcomes_of(previous), registry.outcomes_of(version)
        except Exception as e:  # the promotion is done: a registry that cannot say more is only noted
            print(f"note: the outcomes of both versions could not be compared ({type(e).__name__})", file=sys.stderr)
            before = after = None
        lost = [o for o in before or () if after is not None and o not in after]
        if lost:
            print(
                f"WARNING: version {version} has no {', '.join(lost)} model: /score, FHIR and CDS stop giving "
                f"{'that risk' if len(lost) == 1 else 'those risks'} (version {previous} gave them)",
                file=sys.stderr,
            )
    print("running servers switch within CHECKUP_RISK_MODEL_POLL_SECONDS (their log says when)")
    return 0


def _state(settings, secret: bytes | None = None):
    """The shared state, checked to answer now; with `secret`, checked to have been made with it.
    A SQLite file found empty is said once, here, as a WARNING on stderr."""
    from serving.state_db import SecretMismatch, StateFileDamaged, StorageUnavailable, emptied_warning, open_state

    try:
        state = open_state(settings.database_url, settings.home, quiet=True)
        if state.started_empty:
            print(f"WARNING: {emptied_warning(state)}", file=sys.stderr)
        if secret is not None:
            state.check_secret(secret)
        else:
            with state.connect():
                pass
    except StateFileDamaged as e:
        raise CliError(str(e)) from None
    except StorageUnavailable as e:
        if settings.database_url:
            raise CliError(f"{e}: check CHECKUP_RISK_DATABASE_URL and that the database server is running") from None
        # No database server: the state is the SQLite file in the home folder.
        raise CliError(
            f"{e}: check that {settings.home / 'state.sqlite'} and its folder can be read and written, "
            "and that the disk is not full"
        ) from None
    except SecretMismatch as e:
        raise CliError(str(e)) from None
    return state


def cmd_keys(args: argparse.Namespace) -> int:
    import datetime as dt

    from serving.api_keys import ApiKeys, KeysError, parse_scopes
    from serving.auth import weak_token_warning

    keys = ApiKeys(_state(args.settings))
    # The bootstrap token outranks every named key: a weak one is said wherever keys are managed.
    warning = weak_token_warning(args.settings.home, args.settings.api_token)
    if warning:
        print(warning, file=sys.stderr)
    try:
        if args.keys_command == "create":
            key = keys.create(args.name, parse_scopes(args.scopes))
            print(f"created key {args.name!r}; it is shown only now, keep it in the client's secret store:")
            print(key)
        elif args.keys_command == "revoke":
            keys.revoke(args.name)
            print(f"revoked key {args.name!r}: every worker refuses it from the next call")
        else:
            print(f"{'name':24} {'scopes':24} {'created (UTC)':20} revoked (UTC)")
            for k in keys.list():

                def when(t):
                    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else "-"

                print(f"{k['name']:24} {','.join(k['scopes']):24} {when(k['created']):20} {when(k['revoked'])}")
    except KeysError as e:
        raise CliError(str(e)) from None
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from features.pseudonym import derive, load_secret
    from serving.audit import AuditLog

    settings = args.settings
    log = AuditLog(_state(settings), derive(load_secret(settings.home, settings.secret_key), "audit"))
    if args.audit_command == "verify":
        problems, checked, head = log.verify()
        for p in problems:
            print(f"audit trail: {p}", file=sys.stderr)
        if problems:
            print(f"audit trail NOT intact: {len(problems)} problem(s) in {checked} entries", file=sys.stderr)
            return 1
        if checked == 0:
            # Nothing was checked: "intact" would vouch for a trail that may have been emptied.
            print("audit trail: no entries to verify (an emptied or new state holds none)")
            return 0
        print(f"audit trail intact: {checked} entries; newest {checked} hash {head}")
        print("note the newest entry's number and hash: a later deletion of the newest entries shows against it")
        return 0
    since = _date(args.since, "--since")
    if args.out:
        with open(args.out, "w", newline="") as f:
            n = log.export(f, since)
        print(f"wrote {n} audit entries since {since} to {args.out}", file=sys.stderr)
    else:
        n = log.export(sys.stdout, since)
        print(f"{n} audit entries since {since}", file=sys.stderr)
    return 0


def _thresholds(args: argparse.Namespace):
    from training.drift import Thresholds

    overrides = {}
    for item in args.threshold or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--threshold takes NAME=VALUE, not {item!r}")
        overrides[name.strip()] = value.strip()
    if args.thresholds and not Path(args.thresholds).exists():
        raise CliError(f"no such thresholds file: {args.thresholds}")
    return Thresholds.from_file(args.thresholds, overrides)


def cmd_monitor(args: argparse.Namespace) -> int:
    from training import registry
    from training.monitor import alarm_text, monitor, outcome_warnings

    settings = args.settings
    since = _date(args.since, "--since")
    until = _date(args.until, "--until") if args.until else None
    thresholds = _thresholds(args)
    registry.configure(settings.home, settings.mlflow_uri)
    try:
        result = monitor(
            since,
            until,
            args.model,
            args.out,
            home=settings.home,
            secret_key=settings.secret_key,
            log_dir=settings.prediction_log_path,
            database_url=settings.database_url,
            outcomes_path=args.outcomes,
            thresholds=thresholds,
            seed=args.seed,
        )
    except LookupError as e:
        raise CliError(str(e)) from None
    report = result.report
    print(
        f"model version {report['model_version']}: {report['checkups']:,} checkups ({report['logged_rows']:,} logged "
        f"predictions) from {report['since']} to {report['until']}; max PSI {report['max_psi'] or 0:.3f} "
        f"({report['max_psi_feature']})"
    )
    for outcome, block in report["outcomes"].items():
        p = block["prediction"]
        line = f"  {outcome}: expected AUROC {p['expected_auroc'] or float('nan'):.3f} (reference "
        line += f"{p['reference_expected_auroc'] or float('nan'):.3f}), mean p {p['mean_probability'] or 0:.4f}"
        if block.get("realised") and block["realised"].get("auroc") is not None:
            line += f", realised AUROC {block['realised']['auroc']:.3f} on {block['realised']['n']:,}"
        print(line)
    for alarm in result.alarms:
        print(f"ALARM {alarm['kind']}: {alarm_text(alarm)}")
    print(f"{len(result.alarms)} alarm(s); wrote {result.files[0]} and {result.files[1]}")
    for line in outcome_warnings(report["realised"]) if "realised" in report else []:
        print(f"WARNING: {line}", file=sys.stderr)
    return result.exit_code


def _date(text: str, option: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} must be a date such as 2026-01-31") from None


def cmd_bento(args: argparse.Namespace) -> int:
    from serving.bento import build_bento
    from training import registry

    registry.configure(args.settings.home, args.settings.mlflow_uri)
    tag = build_bento(_champion_or_default(args.default_people), args.settings)
    print(f"built Bento {tag}; make an OCI image with: bentoml containerize {tag}")
    return 0


# As features.rejects.MAX_REJECT_SHARE (not imported here, so that --help stays fast).
DEFAULT_MAX_REJECT_SHARE = 0.2


def _reject_options(p: argparse.ArgumentParser, stop: str, allow: str) -> None:
    """`--max-reject-share` and `--allow-rejects` of `train`."""
    p.add_argument(
        "--max-reject-share",
        type=float,
        default=DEFAULT_MAX_REJECT_SHARE,
        metavar="SHARE",
        help=f"{stop}; the count and top 5 reasons go to stderr either way (default {DEFAULT_MAX_REJECT_SHARE})",
    )
    p.add_argument("--allow-rejects", action="store_true", help=f"{allow} (same as --max-reject-share 1)")


def build_parser() -> argparse.ArgumentParser:
    from models.outcomes import OUTCOMES

    parser = argparse.ArgumentParser(
        prog="checkup-risk",
        description="One-year chronic-disease risk from Korean national health checkups.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic longitudinal cohort with labels and true risks")
    p.add_argument("--people", type=int, required=True, help="number of people")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same cohort)")
    p.add_argument("--out", required=True, help="output file (.parquet, .csv or .csv.gz)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="run the Great Expectations suite on a checkup file")
    p.add_argument("path", help="canonical CSV/Parquet or NHIS open-data CSV")
    p.add_argument("--report", metavar="DIR", help="write Data Docs HTML to DIR")
    p.add_argument("--max-rows", type=int, default=20, help="failing rows listed per expectation")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="train the outcome models, log to MLflow, register a version")
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="labelled checkups (canonical CSV/Parquet or NHIS); give it again to add files, e.g. the "
        "original cohort and newly labelled checkups (a checkup in a later file replaces an earlier copy)",
    )
    p.add_argument("--outcomes", help=f"comma-separated subset of {','.join(OUTCOMES)}")
    p.add_argument("--experiment", default="checkup-risk", help="MLflow experiment name")
    p.add_argument(
        "--promote", action="store_true", help="make the new version champion if it is not worse than the current one"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--engine",
        choices=["pandas", "dask"],
        default="pandas",
        help="dask: train the boosted models with xgboost.dask on a Dask cluster",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    # Defaults as training.promotion.MIN_EVENTS (not imported here, so that --help stays fast).
    _reject_options(
        p,
        "stop (exit 2, nothing trained) when validation rejects more than this share of the rows",
        "train on the valid rows however many are rejected",
    )
    p.add_argument(
        "--promote-min-events",
        type=int,
        default=50,
        metavar="N",
        help="with --promote: held-out events each outcome needs (on persons neither model was "
        "trained on) before the champion can be replaced; fewer keeps the champion (default 50)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="metrics.json, HTML report and model card on labelled data",
        description="Rows of persons the model was trained on are left out (counted in "
        "metrics.json as excluded_training_rows / excluded_training_persons).",
    )
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="champion", help="alias (champion, challenger) or version number")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("score", help="score a file of checkups")
    p.add_argument("--input", required=True, help="canonical CSV/Parquet or NHIS open-data CSV")
    p.add_argument("--output", required=True, help="output .csv or .parquet; rejects go to OUTPUT.rejects.csv")
    p.add_argument("--model", default="champion", help="alias (champion, challenger) or version number")
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help="add the K strongest factors per outcome (feature, log-odds), by |log-odds|",
    )
    p.add_argument(
        "--intervals",
        action="store_true",
        help="add each outcome's nominal 95%% interval (<outcome>_interval_low/_high), as /score's "
        "probability_interval; scoring takes several times longer",
    )
    p.add_argument(
        "--engine",
        choices=["pandas", "dask"],
        default="pandas",
        help="pandas: stream the file in chunks in this process (assumes each person's checkups "
        "are in date order, as exports are); dask: partition by person over a dask cluster",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler address (default: start a local cluster of --workers processes)",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="worker processes of the local dask cluster (default 2)"
    )
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=200_000,
        metavar="N",
        help="rows read (and held) at a time; also the dask partition size (default 200000)",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "report",
        help="the clinician explanation report (HTML or PDF) for one checkup, "
        "or for the newest of one person's checkups",
    )
    p.add_argument(
        "--input",
        required=True,
        metavar="CHECKUP.json",
        help="one canonical record as JSON, or a JSON list of one person's records (the newest is "
        'reported, the earlier ones are its history), or {"checkup": record} / '
        '{"checkups": [records]} with an optional "lang": "ko"|"en"',
    )
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.html or FILE.pdf (the extension decides)")
    p.add_argument("--lang", choices=["ko", "en"], default=None, help="report language (default ko)")
    p.add_argument("--model", default="champion", help="alias (champion, challenger) or version number")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="start the BentoML HTTP service on the champion model")
    p.add_argument("--port", type=_port, default=3000)
    p.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, each loads the model once (default: CHECKUP_RISK_WORKERS, else 2)",
    )
    p.add_argument(
        "--default-people",
        type=int,
        default=None,
        metavar="N",
        help="size of the synthetic cohort for the default model when no champion exists "
        "(default: the first-run size, a few minutes of training on 2 cores)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "promote",
        help="make a registered version the champion without the gate (a rollback: the previous version)",
    )
    p.add_argument("version", help="a version number, or an alias such as challenger")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("keys", help="named API keys: create (printed once), list, revoke")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    k = keys.add_parser("create", help="create a key for one client system; prints it once")
    k.add_argument("name", help="the client's name, e.g. his-seoul-01 (shown in the audit trail)")
    k.add_argument(
        "--scopes",
        default="score,report,fhir",
        help="comma-separated routes it may call: score, report, fhir, admin (default: score,report,fhir)",
    )
    k = keys.add_parser("list", help="list keys (never the keys themselves)")
    k = keys.add_parser("revoke", help="revoke a key; every worker refuses it from the next call")
    k.add_argument("name")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("audit", help="the hash-chained audit trail: verify it, or export its entries")
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit.add_parser("verify", help="exit 1 when any entry was changed, inserted or removed")
    a = audit.add_parser("export", help="write entries (CSV; no patient values) from a date on")
    a.add_argument("--since", required=True, metavar="DATE", help="first day to export (YYYY-MM-DD, UTC)")
    a.add_argument("--out", default=None, metavar="FILE", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "monitor",
        help="drift, expected and realised performance of logged predictions; exit 3 on an alarm",
        description="Compares the predictions one model version logged in a period (each checkup once) with "
        "the training reference saved in its bundle: data drift per input, prediction drift and expected AUROC "
        "per outcome, and with --outcomes realised AUROC and calibration. Writes DIR/monitor.json and "
        "DIR/monitor.html and an MLflow run in the experiment 'monitoring'. Exit 0: no alarm; 3: an alarm; "
        "2: cannot run (no such version, no predictions, no reference in the bundle). docs/monitoring.md.",
    )
    p.add_argument("--since", required=True, help="first UTC day of the period (YYYY-MM-DD)")
    p.add_argument("--until", default=None, help="last UTC day of the period (default: today)")
    p.add_argument("--model", default="champion", help="alias (champion, challenger) or version number")
    p.add_argument("--outcomes", default=None, help="CSV/Parquet: person_id, exam_date, <outcome>_1y")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--thresholds", default=None, metavar="FILE.json", help="thresholds (training.drift.Thresholds)")
    p.add_argument(
        "--threshold",
        action="append",
        metavar="NAME=VALUE",
        help="one threshold, e.g. psi_alarm=0.25 (repeatable; wins over --thresholds)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("bento", help="build a Bento of the service and the pinned champion (for containers)")
    p.add_argument("--default-people", type=int, default=None, metavar="N")
    p.set_defaults(func=cmd_bento)
    return parser


def main(argv: list[str] | None = None) -> int:
    from serving.settings import Settings, configure_libraries

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    # What every command writes (the home's state, prediction log and registry; scores and reports)
    # holds patient data: readable by its owner only, as the API token and secret always were.
    previous = os.umask(0o077)
    os.umask(previous | 0o077)
    try:
        args.settings = Settings.from_env(os.environ)
        configure_libraries(args.settings)
        return handler(args)
    except CliError as e:
        print(f"checkup-risk {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, ValueError) as e:
        # A file that cannot be read or written (a folder, a truncated .gz, no permission): one
        # line, no traceback. Libraries' messages can span lines; the first says what happened.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"checkup-risk {args.command}: {first}", file=sys.stderr)
        return 2
    finally:
        os.umask(previous)  # main() called in-process (tests, notebooks) leaves the caller's mask


if __name__ == "__main__":
    sys.exit(main())
