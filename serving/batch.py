"""Batch scoring of checkup files: every input row is either scored or written to the rejects file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from features.readers import read_checkups, write_rejects
from features.validation import split_valid
from models.bundle import RiskModel


def rejects_path(output: str | Path) -> Path:
    return Path(f"{output}.rejects.csv")


def score_frame(model: RiskModel, records: pd.DataFrame, version: str) -> pd.DataFrame:
    """person_id, exam_date, <outcome>_risk (NaN where not applicable), model_version."""
    probs = model.predict(records)
    out = pd.DataFrame({"person_id": records["person_id"], "exam_date": records["exam_date"]}, index=records.index)
    for outcome in probs.columns:
        out[f"{outcome}_risk"] = probs[outcome]
    out["model_version"] = version
    return out


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")


def score_file(
    model: RiskModel,
    input_path: str | Path,
    output_path: str | Path,
    version: str,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Score a whole file with the pandas engine; returns the row accounting."""
    output_path = Path(output_path)
    if not output_path.name.endswith((".csv", ".parquet")):
        raise ValueError(f"--output must end in .csv or .parquet: {output_path}")
    read = read_checkups(input_path)
    records, problems = split_valid(read.frame)
    scored = score_frame(model, records, version)
    _write(scored, output_path)
    rejects = pd.concat([read.rejects, problems], ignore_index=True).sort_values("index", kind="stable")
    write_rejects(rejects, rejects_path(output_path))
    if progress:
        progress(read.rows_in)
    rejected = int(rejects["index"].nunique()) if len(rejects) else 0
    if len(scored) + rejected != read.rows_in:
        raise RuntimeError(f"row accounting broken: {read.rows_in} in, {len(scored)} scored, {rejected} rejected")
    return {
        "rows_in": read.rows_in,
        "rows_scored": len(scored),
        "rows_rejected": rejected,
        "rejects_path": rejects_path(output_path),
    }
