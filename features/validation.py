"""Checks on canonical records, both built from `features.schema`.

Two views of the same rules:
- `check_records`: fast, vectorised, per record; used at request time and in batch scoring to
  split records into scorable and rejected (with record, field and reason).
- `build_suite` / `run_suite`: the Great Expectations suite, used by `checkup-risk validate`,
  by training (its result is logged with the run) and for Data Docs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.rejects import REJECT_COLUMNS, bad_label, same_day
from features.schema import (
    EXAM_DATE_MIN,
    EXAM_DATE_RANGE_TEXT,
    FIELDS,
    ORDERED_PAIRS,
    OUTCOMES,
    PERSON_ID_CONTROL,
    PERSON_ID_CONTROL_TEXT,
    PERSON_ID_MAX_LEN,
    REQUIRED_ONE_OF,
    Field,
    label_column,
    latest_today,
    true_risk_column,
)
from features.units import other_units

PROBLEM_COLUMNS = list(REJECT_COLUMNS)  # a problem is a reject line (`features.rejects`)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def range_text(f: Field) -> str:
    unit = f" {f.unit}" if f.unit else ""
    return f"{_fmt(f.low)}-{_fmt(f.high)}{unit}"


def _today() -> pd.Timestamp:
    return pd.Timestamp(latest_today())


# Units a file's value is plausibly in by mistake, as the FHIR reader names them, and how to write
# them: not every unit FHIR reads (blood pressure in kPa, a waist in feet are typos far more often).
_SLIP_UNITS: dict[str, str] = {"mmol/l": "mmol/L", "umol/l": "µmol/L", "g/l": "g/L", "m": "m", "in": "in", "lb": "lb"}


def _slips(f: Field) -> list[tuple[float, str]]:
    """(factor, "mmol/L (x 18.02 gives mg/dL)") for each unit `f`'s values are plausibly slipped into."""
    out = []
    for unit, factor in other_units(f.name):
        if unit in _SLIP_UNITS:
            step = f"x {factor:.4g}" if factor >= 1 else f"÷ {1 / factor:.4g}"
            out.append((factor, f"{_SLIP_UNITS[unit]} ({step} gives {f.unit})"))
    return out


def _unit_slips(f: Field, x: pd.Series, out: np.ndarray) -> pd.Series:
    """Per row, "; it looks like mmol/L (x 18.02 gives mg/dL)" where a value outside the field's
    range is plausible in another unit ("... or ..." when several fit), else ""."""
    hints = pd.Series("", index=x.index, dtype=object)
    for factor, words in _slips(f):
        fits = out & (x * factor).between(f.low, f.high).to_numpy()
        hints[fits] = np.where(hints[fits].eq(""), "; it looks like " + words, hints[fits] + " or " + words)
    return hints


def unit_slip(f: Field, value: float) -> str:
    """`_unit_slips` for one value out of `f`'s range (a request's), in the same words."""
    if f.low is None or f.high is None:
        return ""
    fits = [words for factor, words in _slips(f) if f.low <= value * factor <= f.high]
    return "; it looks like " + " or ".join(fits) if fits else ""


def check_records(df: pd.DataFrame, labels: bool = False) -> pd.DataFrame:
    """Problems in a canonical frame: one row per (record, field) that breaks a schema rule.

    Columns: index (the frame's index label), person_id, field, value, reason. Empty when all
    records are plausible. Values outside the plausible range, codes outside their list,
    missing required fields, crossed pairs (dbp >= sbp) and a second row of one person on one
    date are problems; missing optional values are not. With `labels` (training, evaluation),
    an outcome label other than 0, 1 or empty, or a true risk outside 0-1, is one too.
    """
    found: list[pd.DataFrame] = []
    pid = df["person_id"] if "person_id" in df.columns else pd.Series(None, index=df.index, dtype=object)

    def add(mask: np.ndarray, name: str, values: pd.Series | None, reason: str | pd.Series) -> None:
        if not mask.any():
            return
        idx = df.index[mask]
        vals = values[mask].map(_fmt) if values is not None else pd.Series("", index=idx)
        found.append(
            pd.DataFrame(
                {
                    "index": idx,
                    "person_id": pid[mask].to_numpy(dtype=object),
                    "field": name,
                    "value": vals.to_numpy(dtype=object),
                    "reason": reason[mask].to_numpy(dtype=object) if isinstance(reason, pd.Series) else reason,
                }
            )
        )

    for f in FIELDS:
        if f.name not in df.columns:
            if f.required:
                add(np.ones(len(df), dtype=bool), f.name, None, f"{f.name} is required")
            continue
        col = df[f.name]
        missing = col.isna().to_numpy()
        if f.required:
            add(missing, f.name, None, f"{f.name} is required")
        if f.kind == "id":
            too_long = col.astype("string").str.len().fillna(0).to_numpy() > PERSON_ID_MAX_LEN
            empty = col.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
            add(too_long, f.name, None, f"{f.name} is longer than {PERSON_ID_MAX_LEN} characters")
            add(empty & ~missing, f.name, None, f"{f.name} is empty")
            control = col.astype("string").str.contains(PERSON_ID_CONTROL, regex=True).fillna(False)
            add(control.to_numpy(dtype=bool), f.name, None, f"{f.name} {PERSON_ID_CONTROL_TEXT}")
        elif f.kind == "date":
            d = pd.to_datetime(col, errors="coerce")
            bad = (d < pd.Timestamp(EXAM_DATE_MIN)) | (d > _today())
            add(bad.to_numpy(dtype=bool), f.name, d.dt.strftime("%Y-%m-%d"), f"{f.name} must be {EXAM_DATE_RANGE_TEXT}")
        elif f.kind == "sex":
            bad = ~col.isin(list(f.codes)) & ~col.isna()
            add(bad.to_numpy(dtype=bool), f.name, col, f"{f.name} must be one of {', '.join(map(str, f.codes))}")
        else:
            x = pd.to_numeric(col, errors="coerce").astype(float)
            nonnum = x.isna().to_numpy() & ~missing
            add(nonnum, f.name, col, f"{f.name} must be a number")
            if f.codes:
                bad = ~x.isin([float(c) for c in f.codes]).to_numpy() & ~x.isna().to_numpy()
                add(bad, f.name, x, f"{f.name} must be one of the codes {', '.join(map(_fmt, f.codes))}")
            if f.low is not None:
                out = ((x < f.low) | (x > f.high)).to_numpy()
                slips = _unit_slips(f, x, out)
                outside = f"{f.name} is outside the plausible range {range_text(f)}"
                add(slips.ne("").to_numpy(), f.name, x, outside + slips)
                out = out & slips.eq("").to_numpy()
                add(out, f.name, x, outside)
            if f.kind == "int":
                frac = (x % 1 != 0).to_numpy() & ~x.isna().to_numpy()
                add(frac, f.name, x, f"{f.name} must be a whole number")

    for group in REQUIRED_ONE_OF:
        present = np.zeros(len(df), dtype=bool)
        for name in group:
            if name in df.columns:
                present |= df[name].notna().to_numpy()
        add(~present, group[0], None, f"one of {' or '.join(group)} is required")

    for low_name, high_name in ORDERED_PAIRS:
        if low_name in df.columns and high_name in df.columns:
            lo = pd.to_numeric(df[low_name], errors="coerce")
            hi = pd.to_numeric(df[high_name], errors="coerce")
            crossed = (lo >= hi).to_numpy(dtype=bool)
            add(crossed, low_name, lo, f"{low_name} must be lower than {high_name}")

    if "person_id" in df.columns and "exam_date" in df.columns and len(df):
        # Among the rows with no other problem, so that the row kept is the first valid one, as when
        # a file is streamed in chunks (serving.batch_input.validated_chunks).
        flawed = np.zeros(len(df), dtype=bool)
        for part in found:
            flawed |= df.index.isin(part["index"])
        fine = df.loc[~flawed & (df["person_id"].notna() & df["exam_date"].notna()).to_numpy()]
        repeat = fine.duplicated(["person_id", "exam_date"], keep="first")
        if repeat.any():
            key = [fine["person_id"], fine["exam_date"]]
            first = pd.Series(fine.index, index=fine.index).groupby(key).transform("first")
            reasons = pd.Series("", index=df.index, dtype=object)
            reasons.loc[repeat.index[repeat]] = first[repeat].map(same_day).to_numpy()
            shown = pd.to_datetime(df["exam_date"], errors="coerce").dt.strftime("%Y-%m-%d")
            add(df.index.isin(repeat.index[repeat]), "exam_date", shown, reasons)

    if labels:
        for o in OUTCOMES:
            for name, allowed in ((label_column(o), "codes"), (true_risk_column(o), "range")):
                if name not in df.columns:
                    continue
                x = pd.to_numeric(df[name], errors="coerce").astype(float)
                ok = x.isin([0.0, 1.0]) if allowed == "codes" else x.between(0.0, 1.0)
                bad = (~ok & df[name].notna()).to_numpy(dtype=bool)
                add(bad, name, df[name], bad_label(name))

    if not found:
        return pd.DataFrame(columns=PROBLEM_COLUMNS)
    return pd.concat(found, ignore_index=True).sort_values("index", kind="stable").reset_index(drop=True)


def split_valid(df: pd.DataFrame, labels: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records that pass every check, problems of the others); `labels` as in `check_records`."""
    problems = check_records(df, labels)
    bad = df.index.isin(problems["index"].unique())
    return df.loc[~bad], problems


# --- Great Expectations -------------------------------------------------------------------------


def _gx():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx, gxe


def build_expectations(columns: list[str] | None = None) -> list:
    """The suite's expectations, generated from the schema.

    `columns` limits range/code expectations to the columns a file has (optional columns may be
    left out of a file altogether). Each carries `meta.critical`: True for rules whose failure
    means a record cannot be scored; False for dataset-level sanity checks that only warn.
    """
    _, gxe = _gx()
    have = set(columns) if columns is not None else {f.name for f in FIELDS}
    crit = {"critical": True}
    exps: list = []
    for f in FIELDS:
        if f.required:
            exps.append(gxe.ExpectColumnToExist(column=f.name, meta=crit))
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name, meta=crit))
        if f.name not in have:
            continue
        if f.kind == "id":
            exps.append(
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column=f.name, min_value=1, max_value=PERSON_ID_MAX_LEN, meta=crit
                )
            )
        elif f.kind == "date":
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=f.name,
                    min_value=dt.datetime.combine(EXAM_DATE_MIN, dt.time()),
                    max_value=dt.datetime.combine(latest_today(), dt.time()),
                    meta=crit,
                )
            )
        elif f.codes:
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f.name, value_set=[c if f.kind == "sex" else float(c) for c in f.codes], meta=crit
                )
            )
        elif f.low is not None:
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.low, max_value=f.high, meta=crit))
    for group in REQUIRED_ONE_OF:
        first, *others = group
        if first in have and all(o in have for o in others):
            cond = " & ".join(f"{o}.isnull()" for o in others)
            exps.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=first, row_condition=cond, condition_parser="pandas", meta=crit
                )
            )
        elif not any(g in have for g in group):
            exps.append(gxe.ExpectColumnToExist(column=first, meta=crit))
    for low_name, high_name in ORDERED_PAIRS:
        if low_name in have and high_name in have:
            exps.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=high_name,
                    column_B=low_name,
                    or_equal=False,
                    ignore_row_if="either_value_is_missing",
                    meta=crit,
                )
            )
    for o in OUTCOMES:
        if label_column(o) in have:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=label_column(o), value_set=[0.0, 1.0], meta=crit))
        if true_risk_column(o) in have:
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(column=true_risk_column(o), min_value=0.0, max_value=1.0, meta=crit)
            )
    # A repeated (person, date), usually a duplicated export: the later row is rejected (`check_records`).
    if {"person_id", "exam_date"} <= have:
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=["person_id", "exam_date"], meta=crit))
    # Dataset-level sanity: warn, do not fail.
    warn = {"critical": False}
    if "sbp" in have:
        exps.append(gxe.ExpectColumnMeanToBeBetween(column="sbp", min_value=100, max_value=150, meta=warn))
    return exps


def _raised(info: dict | None) -> bool:
    """GX reports an evaluation error either flat or keyed by metric id."""
    if not info:
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


@dataclass
class Failure:
    """One failed expectation, with a few example records (index, person_id, value)."""

    expectation: str
    field: str
    critical: bool
    unexpected_count: int | None
    examples: list[tuple[Any, Any, Any]]
    message: str = ""


@dataclass
class SuiteReport:
    success: bool  # no critical expectation failed
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    docs_index: Path | None = None

    @property
    def critical_failures(self) -> list[Failure]:
        return [f for f in self.failures if f.critical]


ROW_COUNT = "expect_table_row_count_to_equal"


def run_suite(
    df: pd.DataFrame, report_dir: str | Path | None = None, examples: int = 20, rows_in: int | None = None
) -> SuiteReport:
    """Validate a canonical frame with the GX suite; optionally write Data Docs HTML to `report_dir`.

    `rows_in`: the file's data rows, of which `df` holds those the reader could read. The suite
    then expects the frame to hold them all (critical), so that Data Docs of a file with unreadable
    rows (a bad code, an age band under 20) say it failed, as the command does, instead of showing
    the readable rest as a success."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    suite = context.suites.add(gx.ExpectationSuite(name="checkup_record"))
    for e in build_expectations(list(df.columns)):
        suite.add_expectation(e)
    if rows_in is not None:
        suite.add_expectation(
            gx.expectations.ExpectTableRowCountToEqual(
                value=int(rows_in),
                meta={"critical": True, "notes": "rows the reader could read, of the file's data rows"},
            )
        )
    batch = (
        context.data_sources.add_pandas(name="checkups")
        .add_dataframe_asset(name="records")
        .add_batch_definition_whole_dataframe("whole_file")
    )
    vd = context.validation_definitions.add(gx.ValidationDefinition(name="checkup_record", data=batch, suite=suite))
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
    actions = []
    if report_dir is not None:
        report_dir = Path(report_dir).resolve()
        report_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name="report",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(report_dir)},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["report"]))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name="validate", validation_definitions=[vd], actions=actions, result_format=result_format)
    )
    result = checkpoint.run(batch_parameters={"dataframe": df})
    run = next(iter(result.run_results.values()))

    pid = df["person_id"] if "person_id" in df.columns else None
    failures = []
    for r in run.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kw = cfg.kwargs
        name = (
            kw.get("column")
            or ",".join(filter(None, [kw.get("column_A"), kw.get("column_B")]))
            or ",".join(kw.get("column_list", []))
        )
        res = r.result or {}
        idx = res.get("partial_unexpected_index_list") or []
        vals = res.get("partial_unexpected_list") or []
        # GX may cap the two lists differently: zip keeps the pairs both hold.
        ex = [
            (i, (pid.loc[i] if pid is not None and i in pid.index else None), v)
            for i, v in zip(idx, vals, strict=False)
        ]
        message = ""
        if cfg.type == ROW_COUNT:
            name = "rows"
            message = f"{res.get('observed_value', 0):,} of {kw.get('value', 0):,} data rows could be read"
        elif _raised(r.exception_info):
            message = "the check could not be evaluated on this column (wrong type?)"
        elif res.get("observed_value") is None and "observed_value" in res:
            message = "no value in the file (an absent or empty column): nothing to compare"
        elif "observed_value" in res:
            message = f"observed {res['observed_value']}"
        failures.append(
            Failure(
                expectation=cfg.type,
                field=name,
                critical=bool((cfg.meta or {}).get("critical", True)),
                unexpected_count=res.get("unexpected_count"),
                examples=ex,
                message=message,
            )
        )
    docs = report_dir / "index.html" if report_dir is not None else None
    return SuiteReport(
        success=not any(f.critical for f in failures), evaluated=len(run.results), failures=failures, docs_index=docs
    )
