"""`checkup-risk evaluate`: judge a registered version on a labelled file.

Writes the folder (`metrics.json`, `report.html`, `model_card.md`, and `rejects.csv`: the rows left
out, with row, field, value and reason, never logged to MLflow) and logs the first three as an
MLflow run named for what it is ('evaluate v3 on cohort.csv'), in the experiment of the version's
own training run, so a version's evaluations sit beside the run that trained it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.readers import read_checkups, write_rejects
from features.rejects import empty_rejects
from features.validation import split_valid
from models.outcomes import OUTCOME_SPECS
from models.provenance import is_synthetic
from training import registry
from training.card import evaluation_report, model_card
from training.evaluate import evaluate, figures, write_metrics
from training.metrics import flat_metrics
from training.train import file_sha256

# Where an evaluation is logged when its version's training run cannot be found.
FALLBACK_EXPERIMENT = "checkup-risk"


@dataclass
class EvaluationResult:
    version: str
    metrics: dict
    run_id: str
    files: list[Path]
    rejects: pd.DataFrame  # the rows left out (`features.rejects.REJECT_COLUMNS`), also in out/rejects.csv
    rows_in: int


def run_name(version: str, data: Path) -> str:
    """'evaluate v3 on cohort.csv': the version judged and the file it was judged on."""
    return f"evaluate v{version} on {data.name}"


def _training_run(version: str):  # -> mlflow.entities.Run | None
    """The MLflow run that trained `version`, or None (deleted, or a version registered by hand)."""
    from mlflow.exceptions import MlflowException

    client = registry.client()
    try:
        run_id = client.get_model_version(registry.MODEL_NAME, version).tags.get("run_id")
        return client.get_run(run_id) if run_id else None
    except MlflowException:
        return None


def _experiment_of(version: str) -> str:
    """The experiment id of the run that trained `version`, else the fallback experiment's."""
    run = _training_run(version)
    return run.info.experiment_id if run is not None else registry.experiment(FALLBACK_EXPERIMENT)


def training_fingerprint(version: str) -> dict:
    """The data fingerprint the version's training run logged (`train.split`: sha256, rows, persons,
    rejected rows, events per outcome), or {} when the run or its fingerprint cannot be found."""
    run = _training_run(version)
    params = run.data.params if run is not None else {}
    try:
        counts = {k: int(params[f"data.{k}"]) for k in ("rows", "persons", "rejected_rows") if f"data.{k}" in params}
        events = {k.removeprefix("data.events."): int(v) for k, v in params.items() if k.startswith("data.events.")}
    except ValueError:  # a parameter edited by hand: claim nothing
        return {}
    return {"sha256": params["data.sha256"], **counts, "events": events} if "data.sha256" in params else {}


def write_outputs(out: Path, version: str, metrics: dict, card: str, report: str) -> list[Path]:
    """metrics.json, model_card.md and report.html in `out`; their paths."""
    metrics_path = write_metrics(metrics, out / "metrics.json")
    card_path, report_path = out / "model_card.md", out / "report.html"
    card_path.write_text(card)
    report_path.write_text(report)
    return [metrics_path, report_path, card_path]


def log_run(version: str, data: Path, metrics: dict, files: list[Path]) -> str:
    """The evaluation as an MLflow run: parameters, headline metrics per outcome, the files; its id."""
    import mlflow

    with mlflow.start_run(experiment_id=_experiment_of(version), run_name=run_name(version, data)) as run:
        mlflow.set_tags({"kind": "evaluation", "model_version": version})
        mlflow.log_params(
            {
                "data_path": str(data),
                "model_version": version,
                "n_records": metrics["n_records"],
                "rejected_rows": metrics.get("rejected_rows", 0),
            }
        )
        for outcome, block in metrics["outcomes"].items():
            mlflow.log_metrics(flat_metrics(outcome, block))
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id


def evaluate_file(
    data: str | Path, model_ref: str, out: str | Path, seed: int = 0, say: Callable[[str], None] | None = None
) -> EvaluationResult:
    """Evaluate the version behind `model_ref` (alias or number) on a labelled file; `say` hears a
    line at each step (contract section 4: progress on work that takes more than a few seconds).

    Raises LookupError when the registry has no such version, ValueError when no row is valid."""
    say = say or (lambda _text: None)
    data, out = Path(data), Path(out)
    registry.configure()
    say(f"loading model {model_ref}")
    model, version = registry.load(model_ref)
    say(f"reading {data.name}")
    read = read_checkups(data)
    for note in read.notes:  # as `train` and `score` say them (an NHIS file's caveats among them)
        say(f"note: {note}")
    labels = [OUTCOME_SPECS[o].label for o in model.models_ if OUTCOME_SPECS[o].label in read.frame.columns]
    if not labels:
        wanted = ", ".join(OUTCOME_SPECS[o].label for o in model.models_)
        raise ValueError(f"{data}: no label column to evaluate against (one of {wanted})")
    records, problems = split_valid(read.frame, labels=True)
    found = [r for r in (read.rejects, problems) if len(r)]
    rejects = pd.concat(found, ignore_index=True).sort_values("index", kind="stable") if found else empty_rejects()
    if not len(records):
        raise ValueError(f"{data}: no valid rows to evaluate ({read.rows_in:,} rows, all rejected)")
    say(f"scoring {len(records):,} checkups with version {version} and computing the metrics (bootstrap intervals)")
    metrics, curves = evaluate(records, model, seed=seed, say=say)
    metrics["model_version"] = version
    metrics["rejected_rows"] = int(rejects["index"].nunique()) if len(rejects) else 0
    metrics["rows_in"] = int(read.rows_in)
    metrics["rejected_share"] = metrics["rejected_rows"] / max(int(read.rows_in), 1)
    # The evaluated file's size, and what the model itself learned from (the bundle's provenance).
    card = model_card(
        version,
        metrics,
        {
            **training_fingerprint(version),
            "training_data": getattr(model, "training_data_", None),
            "evaluated": {
                "file": data.name,
                "sha256": file_sha256(data),
                "rows": read.rows_in,
                "persons": int(read.frame["person_id"].nunique()),
                "rejected_rows": metrics["rejected_rows"],
            },
        },
        model_info={o: m.info for o, m in model.models_.items()},  # how the model was fitted, and its label checks
    )
    say("drawing the plots and writing the report")
    synthetic = is_synthetic(getattr(model, "training_data_", None))
    report = evaluation_report(version, metrics, figures(model, records, curves), card, synthetic)
    files = write_outputs(out, version, metrics, card, report)
    # The rejected rows, with their values, for the person who sent the file: next to the metrics,
    # never in the MLflow run (which holds no patient values).
    write_rejects(rejects, out / "rejects.csv")
    say("logging the evaluation to MLflow")
    return EvaluationResult(version, metrics, log_run(version, data, metrics, files), files, rejects, int(read.rows_in))
