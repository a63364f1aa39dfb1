"""`checkup-risk monitor`: is a registered model still scoring checkups like those it learned from,
and (once outcomes are known) is it still right?

For the rows the version logged in a period (`models.prediction_log`, Parquet or PostgreSQL), each
checkup counted once (the latest logged prediction of a (person key, exam date)):
- data drift per input and prediction drift per outcome against the bundle's drift reference
  (`training.drift`);
- expected performance before labels: the period's label-free expected AUROC and mean predicted
  probability beside the reference's;
- with an outcomes file, realised performance: AUROC, calibration intercept and slope with
  bootstrap CIs, overall, by sex and by age band.
Writes DIR/monitor.json and DIR/monitor.html and logs both as an MLflow run in the experiment
"monitoring"; exit status 3 when any alarm is raised (see docs/monitoring.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.coerce import to_date
from features.derive import age_band
from features.pseudonym import SecretMissing, derive, load_secret, pseudonym
from models import prediction_log, provenance
from models.drift_reference import DRIFT_INPUTS, input_values
from models.drift_reference import FILE as REFERENCE_FILE
from models.outcomes import OUTCOME_SPECS
from models.prediction_log import probability_column
from models.provenance import SYNTHETIC_WARNING, is_synthetic
from training import registry
from training.drift import Thresholds, input_drift, prediction_drift, realised_performance

EXPERIMENT = "monitoring"
EXIT_ALARM = 3
EXIT_CANNOT_RUN = 2
CHUNK_ROWS = 100_000
TOP_PLOTS = 6


class MonitorError(ValueError):
    """The monitor cannot run (no reference in the bundle, no predictions in the period): exit 2."""


@dataclass
class MonitorResult:
    report: dict
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None

    @property
    def alarms(self) -> list[dict]:
        return self.report["alarms"]

    @property
    def exit_code(self) -> int:
        """3 for an alarm; else 2 when outcomes were given and none of their (agreeing) rows met a
        logged checkup (the realised performance asked for could not be measured); else 0."""
        realised = self.report.get("realised")
        if self.alarms:
            return EXIT_ALARM  # what a scheduled job keys on, whatever else went wrong
        if realised is not None and not realised["matched_checkups"] and _matchable(realised):
            return EXIT_CANNOT_RUN
        return 0


# -- reading ----------------------------------------------------------------------------------


def read_log(
    since: dt.date,
    until: dt.date | None,
    version: str,
    log_dir: Path | None = None,
    database_url: str | None = None,
) -> pd.DataFrame:
    """The rows `version` logged from `since` to `until` (inclusive UTC days): from PostgreSQL when a
    database URL is given (read in chunks), else from the Parquet log under `log_dir`."""
    if database_url:
        return _read_database(since, until, version, database_url)
    if log_dir is None:
        raise MonitorError("no prediction log: give the Parquet folder or a database URL")
    frame = prediction_log.read_parquet(Path(log_dir), since, until)
    return frame.loc[frame["model_version"].astype(str) == str(version)].reset_index(drop=True)


def _read_database(since: dt.date, until: dt.date | None, version: str, url: str) -> pd.DataFrame:
    import sqlalchemy as sa

    from models.registry_names import sqlalchemy_url

    t = prediction_log.TABLE
    condition = (t.c.log_date >= since) & (t.c.model_version == str(version))
    if until is not None:
        condition = condition & (t.c.log_date <= until)
    query = sa.select(*(t.c[c] for c in prediction_log.COLUMNS_OUT)).where(condition)
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            chunks = [
                prediction_log.as_table(chunk).to_pandas()
                for chunk in pd.read_sql(query, conn.execution_options(stream_results=True), chunksize=CHUNK_ROWS)
            ]
    finally:
        engine.dispose()
    if not chunks:
        return prediction_log.as_table(pd.DataFrame(columns=list(prediction_log.COLUMNS_OUT))).to_pandas()
    return pd.concat(chunks, ignore_index=True)


def once_per_checkup(log: pd.DataFrame) -> pd.DataFrame:
    """Each checkup once: the latest logged prediction of a (person key, exam date); rows without
    an exam date stay as they are (nothing says two of them are the same checkup)."""
    keyed = log["exam_date"].notna()
    latest = (
        log.loc[keyed].sort_values("logged_at", kind="stable").drop_duplicates(["person_key", "exam_date"], keep="last")
    )
    return pd.concat([latest, log.loc[~keyed]]).sort_index()


def read_outcomes(path: str | Path) -> pd.DataFrame:
    """The outcomes file: canonical CSV or Parquet with person_id, exam_date and `<outcome>_1y`."""
    path = Path(path)
    if not path.exists():
        raise MonitorError(f"no such outcomes file: {path}")
    # Not `features.readers`: an outcomes file has no checkup fields (sex, age) for it to require.
    if path.name.lower().endswith((".parquet", ".pq")):
        frame = pd.read_parquet(path)
    else:
        # Dates as text: read as numbers, 20250610 became a time in 1970 and matched no checkup.
        frame = pd.read_csv(path, dtype={"person_id": str, "exam_date": str})
    missing = [c for c in ("person_id", "exam_date") if c not in frame]
    labels = [OUTCOME_SPECS[o].label for o in OUTCOME_SPECS if OUTCOME_SPECS[o].label in frame]
    if missing or not labels:
        raise MonitorError(
            f"{path}: an outcomes file needs person_id, exam_date and at least one of "
            + ", ".join(OUTCOME_SPECS[o].label for o in OUTCOME_SPECS)
        )
    # Dates as the checkup files' reader reads them (YYYY-MM-DD, YYYYMMDD, YYYY.MM.DD, ...), so an
    # outcome row meets the checkup that `score` logged.
    days, empty, unreadable = to_date(frame["exam_date"])
    bad = np.flatnonzero(empty | unreadable)
    if len(bad):
        rows = ", ".join(str(i + 1) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise MonitorError(f"{path}: exam_date must be a date such as 2025-06-10 or 20250610 (data row {rows})")
    frame = frame.assign(exam_date=pd.Series(days, index=frame.index).dt.date)
    for label in labels:
        value = pd.to_numeric(frame[label], errors="coerce")
        bad = np.flatnonzero((frame[label].notna() & ~value.isin([0, 1])).to_numpy())
        if len(bad):
            rows = ", ".join(str(i + 1) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise MonitorError(f"{path}: {label} must be 0, 1 or empty (data row {rows})")
    return frame[["person_id", "exam_date", *labels]]


def join_outcomes(checkups: pd.DataFrame, outcomes: pd.DataFrame, key: bytes) -> tuple[pd.DataFrame, dict]:
    """The logged checkups (once each) that have an outcome row, joined on (person key, exam date)
    with person_id pseudonymised as the log does; and counts of what matched."""
    out = outcomes.copy()
    out["person_key"] = [pseudonym(key, str(p)) for p in out.pop("person_id")]
    out["exam_date"] = pd.to_datetime(out["exam_date"], errors="coerce").dt.date
    keys = ["person_key", "exam_date"]
    duplicates = int(out.duplicated(keys).sum())
    # Copies of one checkup's outcomes that disagree: which is right is unknown, and keeping one
    # had turned a realised AUROC of 0.73 into an alarm at 0.53. Such checkups are left out, and counted.
    labels = [c for c in out.columns if c not in keys]
    repeated = out[out.duplicated(keys, keep=False)]
    disagree = repeated.groupby(keys)[labels].nunique(dropna=False).gt(1).any(axis=1)
    conflicting = disagree[disagree].index
    out = out.drop_duplicates(keys, keep="last")
    out = out[~pd.MultiIndex.from_frame(out[keys]).isin(conflicting)]
    left = checkups.assign(exam_date=pd.to_datetime(checkups["exam_date"], errors="coerce").dt.date)
    joined = left.merge(out, on=keys, how="inner", validate="many_to_one")
    return joined, {
        "outcome_rows": int(len(outcomes)),
        "duplicate_outcome_rows": duplicates,
        "conflicting_outcome_checkups": int(len(conflicting)),
        "matched_checkups": int(len(joined)),
        "unmatched_outcome_rows": int(len(out) - len(joined)),
    }


# Below this share of an outcomes file's rows meeting a logged checkup, the file is likely not the
# one for this model and period, or its ids or dates are not the ones scored: said loudly.
MIN_MATCHED_SHARE = 0.8


def _matchable(counts: dict) -> int:
    """The outcome rows that could meet a logged checkup: one per checkup, those that disagree left out."""
    return counts["outcome_rows"] - counts["duplicate_outcome_rows"] - counts.get("conflicting_outcome_checkups", 0)


def outcome_warnings(counts: dict) -> list[str]:
    """Why the realised performance may not describe the period: outcome rows that disagree about
    one checkup (left out), few outcome rows meeting a logged checkup. Matching is exact on
    person_id and exam_date."""
    lines = []
    if conflicting := counts.get("conflicting_outcome_checkups"):
        lines.append(
            f"{conflicting:,} checkups have outcome rows that disagree (the same person_id and exam_date, other "
            "labels): they are left out of the realised performance; give each checkup one outcome row"
        )
    rows = _matchable(counts)
    matched = counts["matched_checkups"]
    if rows and matched < MIN_MATCHED_SHARE * rows:
        said = "no realised performance is measured" if not matched else "the realised performance describes them only"
        lines.append(
            f"{matched:,} of {rows:,} outcome rows ({matched / rows:.0%}) matched a logged checkup of this model "
            f"version in the period: {said}; check that person_id and exam_date are the ones scored (the same "
            "day, not a day off) and that the period covers them"
        )
    return lines


# -- the analysis ---------------------------------------------------------------------------


def analyse(
    reference: dict,
    log: pd.DataFrame,
    thresholds: Thresholds | None = None,
    outcomes: pd.DataFrame | None = None,
    key: bytes | None = None,
    seed: int = 0,
) -> dict:
    """monitor.json's content for logged rows of one version (already limited to the period)."""
    t = thresholds or Thresholds()
    checkups = once_per_checkup(log)
    report: dict = {
        "logged_rows": int(len(log)),
        "checkups": int(len(checkups)),
        "persons": int(checkups["person_key"].nunique()),
        "reference": {"rows": reference["rows"], "persons": reference["persons"]},
        "thresholds": t.as_dict(),
        "inputs": {},
        "outcomes": {},
        "alarms": [],
    }
    alarms = report["alarms"]
    for column in DRIFT_INPUTS:
        ref = reference["inputs"].get(column)
        if ref is None:
            continue
        values = input_values(checkups, column, ref["kind"])
        report["inputs"][column], found = input_drift(column, ref, reference["rows"], values, t)
        alarms.extend(found)
    for outcome, ref in reference["outcomes"].items():
        column = probability_column(outcome)
        if column not in checkups:
            continue
        p = pd.to_numeric(checkups[column], errors="coerce").to_numpy(dtype=float)
        block, found = prediction_drift(outcome, ref, p, t)
        report["outcomes"][outcome] = {"prediction": block}
        alarms.extend(found)
    if outcomes is not None:
        if key is None:
            raise ValueError("joining outcomes needs the pseudonym key")
        joined, counts = join_outcomes(checkups, outcomes, key)
        report["realised"] = counts
        groups = {"sex": joined["sex"].fillna("unknown").astype(str).to_numpy(), "age_band": age_band(joined)}
        for outcome, ref in reference["outcomes"].items():
            label = OUTCOME_SPECS[outcome].label
            if label not in joined or probability_column(outcome) not in joined:
                continue
            y = pd.to_numeric(joined[label], errors="coerce").to_numpy(dtype=float)
            p = pd.to_numeric(joined[probability_column(outcome)], errors="coerce").to_numpy(dtype=float)
            persons = joined["person_key"].to_numpy()
            block, found = realised_performance(outcome, ref, y, p, groups, t, seed, persons)
            report["outcomes"].setdefault(outcome, {})["realised"] = block
            alarms.extend(found)
    psis = [b["psi"] for b in report["inputs"].values()]
    report["max_psi"] = max(psis) if psis else None
    report["max_psi_feature"] = max(report["inputs"], key=lambda c: report["inputs"][c]["psi"]) if psis else None
    return report


# -- the report ------------------------------------------------------------------------------


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bars(title: str, block: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = block["bins"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.0, 2.6))
    ax.bar(x - 0.2, block["reference_shares"], 0.4, label="training reference", color="#9db4d6")
    ax.bar(x + 0.2, block["current_shares"], 0.4, label="this period", color="#d9822b")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="share of rows", title=title)
    ax.legend(fontsize=7)
    return fig


def _auroc_plot(report: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["outcomes"])
    x = np.arange(len(names))
    ref = [report["outcomes"][o]["prediction"]["reference_expected_auroc"] or np.nan for o in names]
    cur = [report["outcomes"][o]["prediction"]["expected_auroc"] or np.nan for o in names]
    real = [(report["outcomes"][o].get("realised") or {}).get("auroc") or np.nan for o in names]
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    ax.bar(x - 0.27, ref, 0.27, label="reference expected", color="#9db4d6")
    ax.bar(x, cur, 0.27, label="period expected", color="#d9822b")
    if any(np.isfinite(real)):
        ax.bar(x + 0.27, real, 0.27, label="period realised", color="#4b8b3b")
    ax.set_xticks(x, names)
    ax.set_ylim(0.5, 1.0)
    ax.set(ylabel="AUROC", title="Expected (label-free) and realised AUROC")
    ax.legend(fontsize=7)
    return fig


def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) >= 10 ** (-digits) or x == 0 else f"{x:.1e}"
    return html.escape(str(x))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, str) else _f(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def alarm_text(a: dict) -> str:
    """One line per alarm: what, where, how big."""
    name = a.get("feature") or a.get("outcome")
    if a["statistic"] == "new_category":
        return f"{name}: new categories {a['categories']} (unseen in training)"
    if a["statistic"] == "missing_rate_change":
        return (
            f"{name}: missing rate {a['reference']:.1%} -> {a['current']:.1%} "
            f"(change {a['value']:+.1%}, limit {a['threshold']:.0%}, p {a['p_value']:.1e})"
        )
    extra = f", p {a['p_value']:.1e}" if "p_value" in a else ""
    ci = f", CI {a['ci'][0]:.3f} to {a['ci'][1]:.3f}" if a.get("ci") else ""
    return f"{name}: {a['statistic']} {a['value']:.3f} (threshold {a['threshold']:.3f}{extra}{ci})"


def render_html(report: dict) -> str:
    alarms = report["alarms"]
    inputs = report["inputs"]
    ranked = sorted(inputs, key=lambda c: inputs[c]["psi"], reverse=True)
    alarmed = [c for c in ranked if inputs[c]["status"] == "alarm"]
    shown = alarmed + [c for c in ranked[:TOP_PLOTS] if c not in alarmed]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>checkup-risk monitor</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:13px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        ".alarm{color:#b00020;font-weight:bold}.ok{color:#2e7d32}img{max-width:100%}</style></head><body>",
        f"<h1>Monitoring model version {html.escape(str(report.get('model_version')))}</h1>",
        *(
            [f"<p class='alarm'>{html.escape(SYNTHETIC_WARNING)}</p>"]
            if is_synthetic(report.get("training_data"))
            else []
        ),
        f"<p>Period {html.escape(str(report.get('since')))} to {html.escape(str(report.get('until')))} "
        f"(UTC log days): {report['logged_rows']:,} logged predictions, {report['checkups']:,} checkups "
        f"(each counted once), {report['persons']:,} persons. Training reference: "
        f"{report['reference']['rows']:,} checkups of {report['reference']['persons']:,} persons.</p>",
    ]
    if alarms:
        parts.append(f"<h2 class='alarm'>{len(alarms)} alarm(s)</h2><ul>")
        parts += [f"<li>{html.escape(a['kind'])}: {html.escape(alarm_text(a))}</li>" for a in alarms]
        parts.append("</ul>")
    else:
        parts.append("<h2 class='ok'>No alarm</h2>")
    parts.append("<h2>Expected performance (before labels)</h2>")
    parts.append(f"<img src='{_png(_auroc_plot(report))}'>" if report["outcomes"] else "")
    rows = []
    for o, b in report["outcomes"].items():
        pr = b["prediction"]
        rows.append(
            [
                o,
                pr["rows"],
                pr["reference_expected_auroc"],
                pr["expected_auroc"],
                pr["reference_mean_probability"],
                pr["mean_probability"],
                pr["reference_event_rate"],
                pr["psi"],
                pr["p_value"],
                pr["status"],
            ]
        )
    parts.append(
        _table(
            [
                "outcome",
                "rows",
                "reference expected AUROC",
                "expected AUROC",
                "reference mean p",
                "mean p (expected event rate)",
                "reference event rate",
                "prediction PSI",
                "p-value",
                "status",
            ],
            rows,
        )
    )
    for o, b in report["outcomes"].items():
        title = f"Predicted probability: {o}"
        parts.append(f"<img src='{_png(_bars(title, b['prediction']))}'>")
    if "realised" in report:
        counts = report["realised"]
        parts.append(
            f"<h2>Realised performance</h2><p>{counts['matched_checkups']:,} logged checkups matched an outcome "
            f"row ({counts['outcome_rows']:,} rows in the file, {counts['duplicate_outcome_rows']:,} duplicates).</p>"
        )
        for line in outcome_warnings(counts):
            parts.append(f"<p><strong>Warning:</strong> {html.escape(line)}.</p>")
        rows = []
        for o, b in report["outcomes"].items():
            r = b.get("realised")
            if r is None:
                continue
            rows.append(_realised_row(o, "all", r))
            for group, cells in r["subgroups"].items():
                rows += [_realised_row(o, f"{group} {g}", c) for g, c in cells.items()]
        parts.append(
            _table(
                ["outcome", "group", "n", "events", "AUROC (95% CI)", "intercept (95% CI)", "slope (95% CI)", "O/E"],
                rows,
            )
        )
    parts.append("<h2>Data drift per input</h2>")
    for c in shown:
        title = f"{c}: PSI {inputs[c]['psi']:.3f}"
        parts.append(f"<img src='{_png(_bars(title, inputs[c]))}'>")
    rows = [
        [
            c,
            inputs[c]["kind"],
            inputs[c]["rows"],
            inputs[c]["psi"],
            inputs[c]["p_value"],
            inputs[c]["missing_rate_reference"],
            inputs[c]["missing_rate"],
            ", ".join(inputs[c]["new_categories"]) or "",
            f"<span class='{inputs[c]['status']}'>{inputs[c]['status']}</span>",
        ]
        for c in ranked
    ]
    parts.append(
        _table(
            ["input", "kind", "rows", "PSI", "p-value", "reference missing", "missing", "new categories", "status"],
            rows,
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _ci(value, ci) -> str:
    if value is None:
        return "–"
    if not ci or ci[0] is None:
        return _f(value)
    return f"{_f(value)} ({_f(ci[0])} to {_f(ci[1])})"


def _realised_row(outcome: str, group: str, r: dict) -> list:
    oe = r["observed_rate"] / r["mean_probability"] if r["n"] and r["mean_probability"] else None
    return [
        outcome,
        group,
        r["n"],
        r["events"],
        _ci(r["auroc"], r["auroc_ci"]),
        _ci(r["calibration_intercept"], r["calibration_intercept_ci"]),
        _ci(r["calibration_slope"], r["calibration_slope_ci"]),
        oe,
    ]


# -- the run ---------------------------------------------------------------------------------


def write_outputs(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "monitor.json", out / "monitor.html"
    json_path.write_text(json.dumps(report, indent=2, default=str, allow_nan=False))
    html_path.write_text(render_html(report))
    return [json_path, html_path]


def _clean(x):
    """NaN and infinities as None, so monitor.json is strict JSON."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def log_run(report: dict, files: list[Path]) -> str:
    import mlflow

    version = str(report["model_version"])
    with mlflow.start_run(
        experiment_id=registry.experiment(EXPERIMENT), run_name=f"monitor v{version} {report['since']}"
    ) as run:
        mlflow.set_tags({"kind": "monitoring", "model_version": version})
        mlflow.log_params(
            {
                "model_version": version,
                "since": report["since"],
                "until": report["until"],
                "checkups": report["checkups"],
            }
        )
        metrics = {"alarms": float(len(report["alarms"])), "checkups": float(report["checkups"])}
        if report["max_psi"] is not None:
            metrics["max_psi"] = report["max_psi"]
        for o, b in report["outcomes"].items():
            for name, value in (
                ("expected_auroc", b.get("prediction", {}).get("expected_auroc")),
                ("reference_expected_auroc", b.get("prediction", {}).get("reference_expected_auroc")),
                ("prediction_psi", b.get("prediction", {}).get("psi")),
                ("realised_auroc", (b.get("realised") or {}).get("auroc")),
                ("calibration_intercept", (b.get("realised") or {}).get("calibration_intercept")),
            ):
                if value is not None:
                    metrics[f"{o}.{name}"] = float(value)
        mlflow.log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id


def monitor(
    since: dt.date,
    until: dt.date | None,
    model_ref: str,
    out: str | Path,
    *,
    home: Path,
    secret_key: str | None = None,
    log_dir: Path | None = None,
    database_url: str | None = None,
    outcomes_path: str | Path | None = None,
    thresholds: Thresholds | None = None,
    log_mlflow: bool = True,
    seed: int = 0,
) -> MonitorResult:
    """The whole run: resolve the version, read its predictions, analyse, write, log to MLflow.

    Raises LookupError (no such version), MonitorError (no drift reference in the bundle, no
    predictions of that version in the period, an unreadable outcomes file)."""
    if until is not None and until < since:
        raise MonitorError(f"--until {until} is before --since {since}")
    registry.configure()
    model, version = registry.load(model_ref)
    reference = getattr(model, "drift_reference_", None)
    if reference is None:
        raise MonitorError(
            f"model version {version} has no drift reference ({REFERENCE_FILE}): it was trained before the "
            "monitor existed; retrain it (checkup-risk train) to monitor it"
        )
    log = read_log(since, until, version, log_dir, database_url)
    if log.empty:
        where = "the prediction_log table" if database_url else f"{log_dir}"
        raise MonitorError(
            f"no predictions of model version {version} ({model_ref}) logged from {since} to "
            f"{until or 'today'} in {where}"
        )
    outcomes = read_outcomes(outcomes_path) if outcomes_path else None
    key = None
    if outcomes is not None:
        try:
            # Never a new secret: the logged pseudonyms were made with the service's.
            key = derive(load_secret(Path(home), secret_key, create=False), "pseudonym")
        except SecretMissing as e:
            raise MonitorError(str(e)) from None
    report = analyse(reference, log, thresholds, outcomes, key, seed)
    report = _clean(
        {
            "model_ref": model_ref,
            "model_version": version,
            # What the model learned from: a synthetic one is named so in the report (contract section 5).
            "training_data": provenance.normalise(getattr(model, "training_data_", None)),
            "since": since.isoformat(),
            "until": (until or dt.datetime.now(dt.UTC).date()).isoformat(),
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "source": "postgresql" if database_url else "parquet",
            **report,
        }
    )
    files = write_outputs(report, Path(out))
    run_id = log_run(report, files) if log_mlflow else None
    return MonitorResult(report, files, run_id)
