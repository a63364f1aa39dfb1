"""Batch scoring of checkup files: every input row is either scored or written to the rejects file.

Two engines give the same output, row for row (``score_file(..., engine=...)``):

* **pandas** streams the input with :func:`features.readers.iter_checkups` in chunks of
  ``chunk_rows`` rows and appends each chunk's scores to the output as it goes (CSV, or Parquet
  through one ``ParquetWriter``), so memory is bounded by the chunk size plus a small per-person
  history state (below), never by the file.
* **dask** reads and validates the file with the same readers on the client, spills the valid
  records into ``N`` partitions by a hash of ``person_id`` (every partition holds whole persons,
  so the longitudinal features are exact whatever the row order), scores the partitions on a
  ``dask.distributed`` cluster (a ``LocalCluster`` of ``workers`` processes, one thread each, or the
  scheduler at ``scheduler``), and merges the partition outputs back into the input row order.
  The model bundle goes to the workers once (``client.scatter(..., broadcast=True)`` of the saved
  bundle files); each worker process loads it once and keeps it.

**Streaming history state (pandas engine).** A checkup's longitudinal features and its
eligibility (:mod:`features.derive`, :mod:`features.eligibility`) read, from the same person's
earlier checkups, only: the previous checkup, the last one that recorded each measure group (lipid
panel, glucose, BP, creatinine, urine protein) and the last one with each history or treatment flag
set. :class:`PersonHistory` keeps exactly those rows per person (usually one or two), reduced to
:data:`HISTORY_COLUMNS`. Before a chunk is scored, the kept rows of its persons are prepended (they
sort before the chunk's rows, as the earlier rows do in the whole file), features and eligibility
are judged on the combined frame, and only the chunk's own rows are scored. Only rows that pass
validation enter the history, as in the whole-file path.

Assumption: **each person's checkups appear in date order in the file** (exports are sorted by
person and date; persons may be interleaved). Then the streamed scores equal the whole-file
scores exactly. A checkup dated before the same person's checkup in an earlier chunk breaks the
assumption: it is still scored (its history is what came before it in the file), counted in the
summary as ``out_of_order_rows`` and warned about. The dask engine does not need the assumption.

Explanations (``explain=K``): for each outcome the K features with the largest absolute
contribution in calibrated log-odds, in columns ``<outcome>_factor_{i}`` (feature name) and
``<outcome>_factor_{i}_log_odds``; empty where the outcome does not apply. All explanations go
through :func:`_explain_top_k`, which uses the compiled ``models.fast_explain.FastExplainer`` when
it is importable and ``RiskModel.explain_features`` (xgboost ``pred_contribs``) otherwise.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema
from features.derive import CARRIED_LIPIDS, FEATURES, LASTING_FLAGS, absent_history, build_features
from features.derive import HISTORY_INPUTS as DERIVE_HISTORY_INPUTS
from features.eligibility import ALL_FLAGS, eligibility
from features.eligibility import GROUPS as _ELIGIBILITY_GROUPS
from features.eligibility import HISTORY_INPUTS as ELIGIBILITY_HISTORY_INPUTS
from features.readers import iter_checkups, read_checkups, write_rejects
from features.validation import split_valid
from models.bundle import RiskModel

ENGINES = ("pandas", "dask")
DEFAULT_CHUNK_ROWS = 200_000
DEFAULT_WORKERS = 2

# What the history code reads from an earlier checkup: the longitudinal features' inputs and the
# eligibility rules' inputs, each declared once next to the code that reads it.
HISTORY_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(DERIVE_HISTORY_INPUTS + ELIGIBILITY_HISTORY_INPUTS))
# The rest of a chunk's record fields (the chunk's own rows keep every field).
_OTHER_FIELDS: tuple[str, ...] = tuple(c for c in schema.COLUMNS if c not in HISTORY_COLUMNS)
_ROW = "_row"  # the global 0-based input row position, carried through spills and partition outputs


def rejects_path(output: str | Path) -> Path:
    return Path(f"{output}.rejects.csv")


# ------------------------------------------------------------------------------------------------
# Output layout


def output_columns(outcomes: tuple[str, ...], explain: int = 0) -> list[str]:
    cols = ["person_id", "exam_date"] + [f"{o}_risk" for o in outcomes] + ["model_version"]
    for o in outcomes:
        for i in range(1, explain + 1):
            cols += [f"{o}_factor_{i}", f"{o}_factor_{i}_log_odds"]
    return cols


def output_schema(outcomes: tuple[str, ...], explain: int = 0) -> pa.Schema:
    fields = []
    for c in output_columns(outcomes, explain):
        if c == "exam_date":
            t = pa.timestamp("us")
        elif c.endswith(("_risk", "_log_odds")):
            t = pa.float64()
        else:
            t = pa.string()
        fields.append(pa.field(c, t))
    return pa.schema(fields)


# ------------------------------------------------------------------------------------------------
# Explanations: the one place that chooses the explainer

_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FAST_LOCK = threading.Lock()


def _fast_explainer(model: RiskModel):
    """The compiled TreeSHAP explainer of ``model`` (built once per model), or None when
    ``models.fast_explain`` is not available or ``CHECKUP_RISK_FAST_EXPLAIN=0``."""
    if os.environ.get("CHECKUP_RISK_FAST_EXPLAIN", "1") == "0":
        return None
    with _FAST_LOCK:
        if model in _FAST:
            return _FAST[model]
        try:
            from models.fast_explain import FastExplainer
        except ImportError:
            explainer = None
        else:
            try:
                explainer = FastExplainer.from_model(model)
            except Exception as e:  # noqa: BLE001 - fall back to xgboost, but say so
                warnings.warn(f"FastExplainer unavailable ({e}); using xgboost pred_contribs", stacklevel=2)
                explainer = None
        _FAST[model] = explainer
        return explainer


def explainer_name(model: RiskModel) -> str:
    """Which explainer :func:`_explain_top_k` uses (without compiling one just to say so)."""
    if model in _FAST:
        fast = _FAST[model] is not None
    else:
        import importlib.util

        fast = (os.environ.get("CHECKUP_RISK_FAST_EXPLAIN", "1") != "0"
                and importlib.util.find_spec("models.fast_explain") is not None)
    return "FastExplainer" if fast else "xgboost pred_contribs"


# Threads for the compiled explainer (it releases the GIL); dask workers use one (a worker per core).
EXPLAIN_THREADS: int | None = None
_PARALLEL_ROWS = 20_000


def _fast_explain(fast, X: np.ndarray, outcome: str) -> np.ndarray:
    """``fast.explain`` (contributions) over row blocks in threads; per-row results do not depend on
    the blocks."""
    threads = EXPLAIN_THREADS
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(threads, len(X) // _PARALLEL_ROWS))
    if threads == 1:
        return np.asarray(fast.explain(X, outcome)[0], dtype=float)
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, len(X), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda i: fast.explain(X[bounds[i]:bounds[i + 1]], outcome)[0], range(threads)))
    return np.concatenate(parts).astype(float, copy=False)


def _top_k(contrib: np.ndarray, k: int, unlisted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest |contributions| per row, largest first
    (ties by feature order); entries where ``unlisted`` is True rank last (the caller blanks them)."""
    n, f = contrib.shape
    k = min(k, f)
    a = np.abs(contrib)
    if unlisted is not None:
        a = np.where(unlisted, -1.0, a)
    if k < f:
        part = np.argpartition(-a, k - 1, axis=1)[:, :k]
        part.sort(axis=1)
    else:
        part = np.broadcast_to(np.arange(f), (n, f)).copy()
    order = np.argsort(-np.take_along_axis(a, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(contrib, idx, axis=1)


def _explain_top_k(
    model: RiskModel, X: pd.DataFrame, rows: Mapping[str, np.ndarray], k: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Top-k explanation per outcome: ``{outcome: (names n x k (object, None where not
    explained), log-odds n x k (NaN where not explained))}``; ``rows[outcome]`` is the boolean mask of
    the rows of ``X`` to explain (the rows where the outcome applies)."""
    n = len(X)
    kk = min(k, len(FEATURES))
    names_all = np.asarray(FEATURES, dtype=object)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fast = _fast_explainer(model) if any(m.any() for m in rows.values()) else None
    Xn = X.to_numpy(dtype=float) if fast is not None else None
    for o, m in rows.items():
        m = np.asarray(m, dtype=bool)
        names = np.full((n, k), None, dtype=object)
        values = np.full((n, k), np.nan)
        if m.any():
            # Only the rows where the outcome applies are explained.
            if fast is not None and o in fast.outcomes:
                c = _fast_explain(fast, np.ascontiguousarray(Xn[m]), o)
            else:
                c = model.explain_features(X.loc[m], o)[0]
            # Absent history ("no earlier checkup") is never listed as a factor, as in /score.
            unlisted = absent_history(Xn[m] if Xn is not None else X.loc[m].to_numpy(dtype=float))
            idx, val = _top_k(c, kk, unlisted)
            shown = ~np.take_along_axis(unlisted, idx, axis=1)
            names[m, :kk] = np.where(shown, names_all[idx], None)
            values[m, :kk] = np.where(shown, val, np.nan)
        out[o] = (names, values)
    return out


# ------------------------------------------------------------------------------------------------
# Scoring a block of records whose model matrix is known


def _score_block(model: RiskModel, records: pd.DataFrame, frame: pd.DataFrame, version: str,
                 explain: int = 0) -> pd.DataFrame:
    """The output rows of ``records`` (same index). ``frame`` is ``records``, possibly preceded by
    earlier checkups of the same persons (negative index labels): features and eligibility are
    judged with that history, only ``records`` are scored."""
    outcomes = tuple(model.models_)
    X = build_features(frame)
    applies_all = eligibility(frame, outcomes)
    if len(frame) != len(records):
        X, applies_all = X.loc[records.index], applies_all.loc[records.index]
    out = pd.DataFrame({"person_id": records["person_id"], "exam_date": records["exam_date"]}, index=records.index)
    if len(records):
        probs = model.predict_features(X)
        applies = applies_all.to_numpy()
        probs = probs.where(applies)
    else:
        probs = pd.DataFrame({o: np.zeros(0) for o in outcomes}, index=records.index)
        applies = np.zeros((0, len(outcomes)), dtype=bool)
    for o in outcomes:
        out[f"{o}_risk"] = probs[o].to_numpy(dtype=float)
    out["model_version"] = str(version)
    if explain > 0:
        top = _explain_top_k(model, X, {o: applies[:, j] for j, o in enumerate(outcomes)}, explain)
        cols = {}
        for o in outcomes:
            names, values = top[o]
            for i in range(explain):
                cols[f"{o}_factor_{i + 1}"] = names[:, i]
                cols[f"{o}_factor_{i + 1}_log_odds"] = values[:, i]
        out = pd.concat([out, pd.DataFrame(cols, index=records.index)], axis=1)
    return out


def score_frame(model: RiskModel, records: pd.DataFrame, version: str, explain: int = 0) -> pd.DataFrame:
    """The whole-frame path: person_id, exam_date, <outcome>_risk (NaN where not applicable),
    model_version, and with ``explain`` the top factors; features from all of ``records``."""
    return _score_block(model, records, records, version, explain)


# ------------------------------------------------------------------------------------------------
# Per-person history for streaming


def _person_date_order(frame: pd.DataFrame) -> np.ndarray:
    """Positions of ``frame`` sorted by person, then date; stable (input order among ties), as in
    ``longitudinal_features``."""
    date = pd.to_datetime(frame["exam_date"], errors="coerce").to_numpy(dtype="datetime64[ns]")
    pid = frame["person_id"].astype("string").fillna("").to_numpy(dtype=object)
    return np.lexsort((date, pid))


class PersonHistory:
    """Per person, the few earlier rows that decide every later row's features and eligibility.

    The history code (``features.derive.longitudinal_features``, ``features.eligibility``) reads,
    from a person's earlier checkups, only: the previous checkup, the last one with each measure
    group recorded (lipid panel, glucose, BP, creatinine, urine protein), and the last one with each
    history/treatment flag set. This keeps exactly those rows (usually one or two per person, each
    reduced to :data:`HISTORY_COLUMNS` with its input row), so memory is O(persons), never O(rows).
    """

    def __init__(self) -> None:
        self.kept: pd.DataFrame | None = None
        self.out_of_order_rows = 0
        self.persons: set = set()

    def __len__(self) -> int:
        return len(self.persons)

    def with_history(self, records: pd.DataFrame) -> pd.DataFrame:
        """``records`` (a chunk, in input order) preceded by the kept rows of its persons; the kept
        rows get negative index labels, so ``frame.loc[records.index]`` selects the chunk again."""
        if not len(records) or self.kept is None:
            return records
        kept = self.kept[self.kept["person_id"].isin(records["person_id"].unique())]
        if not len(kept):
            return records
        last_date = kept.groupby("person_id", sort=False)["exam_date"].max()
        self.out_of_order_rows += int((pd.to_datetime(records["exam_date"])
                                       < records["person_id"].map(last_date)).sum())
        hist = kept.drop(columns=[_ROW])
        hist.index = pd.RangeIndex(-len(hist), 0)  # never collides with input rows (>= 0)
        return pd.concat([hist, records[list(records.columns.intersection(HISTORY_COLUMNS + _OTHER_FIELDS))]])

    def features(self, records: pd.DataFrame) -> pd.DataFrame:
        """The model matrix of ``records`` as in the whole file."""
        frame = self.with_history(records)
        return build_features(frame).loc[records.index]

    def update(self, records: pd.DataFrame) -> None:
        """Take in a scored chunk (its rows come after everything already seen, per person)."""
        if not len(records):
            return
        part = records[[c for c in HISTORY_COLUMNS if c in records.columns]].copy()
        part[_ROW] = records.index.to_numpy()
        if self.kept is not None:
            part = pd.concat([self.kept[self.kept["person_id"].isin(part["person_id"].unique())], part])
            rest = self.kept[~self.kept["person_id"].isin(part["person_id"].unique())]
        else:
            rest = None
        part = part.iloc[_person_date_order(part)].reset_index(drop=True)
        self.persons.update(part["person_id"].unique().tolist())
        keep = _last_per_person(part, np.ones(len(part), dtype=bool))
        for mask in _history_masks(part):
            keep |= _last_per_person(part, mask)
        kept = part[keep]
        self.kept = kept if rest is None else pd.concat([rest, kept], ignore_index=True)


def _last_per_person(part: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """True at the last row (in person-date order) of each person where ``mask`` holds."""
    out = np.zeros(len(part), dtype=bool)
    sub = part[mask]
    if len(sub):
        out[sub.groupby("person_id", sort=False).tail(1).index.to_numpy()] = True
    return out


def _history_masks(part: pd.DataFrame) -> list[np.ndarray]:
    """Rows a later checkup may read: one mask per measure group or lipid panel (recorded) and per
    flag (set): eligibility's flags and the lasting answers the features carry forward."""
    masks = []
    groups = list(_ELIGIBILITY_GROUPS.values()) + [(CARRIED_LIPIDS[0],)]
    for fields in groups:
        cols = [("serum_creatinine" if f == "egfr" else f) for f in fields]
        cols = [c for c in cols if c in part.columns]
        if cols:
            masks.append(part[cols].notna().any(axis=1).to_numpy())
    for f in dict.fromkeys(ALL_FLAGS + LASTING_FLAGS):
        if f in part.columns:
            masks.append((pd.to_numeric(part[f], errors="coerce") == 1).to_numpy())
    return masks


# ------------------------------------------------------------------------------------------------
# Writing


class _OutputWriter:
    """Appends output frames to a CSV or a Parquet file; the file appears at ``path`` only when
    :meth:`commit` is called (a failed run leaves no partial output behind)."""

    def __init__(self, path: Path, schema_: pa.Schema) -> None:
        self.path = path
        self.schema = schema_
        self.columns = schema_.names
        self.parquet = path.suffix == ".parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.partial")
        self.rows = 0
        if self.parquet:
            self._pq = pq.ParquetWriter(self.tmp, schema_)
        else:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
            pd.DataFrame(columns=self.columns).to_csv(self._fh, index=False)

    def write(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        frame = frame[self.columns]
        if self.parquet:
            self._pq.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        else:
            frame.to_csv(self._fh, index=False, header=False, date_format="%Y-%m-%d")
        self.rows += len(frame)

    def _close(self) -> None:
        if self.parquet:
            self._pq.close()
        else:
            self._fh.close()

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self._close()
        finally:
            self.tmp.unlink(missing_ok=True)


class _RejectsWriter:
    """Appends rejects in the format of :func:`features.readers.write_rejects`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        self._header = True
        self.rows = 0

    def write(self, rejects: pd.DataFrame) -> None:
        if not len(rejects) and not self._header:
            return
        buf = io.StringIO()
        write_rejects(rejects, buf)
        text = buf.getvalue()
        if not self._header:
            text = text.split("\n", 1)[1] if "\n" in text else ""
        self._fh.write(text)
        self._header = False
        self.rows += int(rejects["index"].nunique()) if len(rejects) else 0

    def commit(self) -> None:
        if self._header:
            self.write(pd.DataFrame(columns=["index", "person_id", "field", "value", "reason"]))
        self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)


def _validated_chunks(input_path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(rows in, valid records, rejects sorted by row) per input chunk, with the chunk's row
    accounting checked."""
    for read in iter_checkups(input_path, chunk_rows=chunk_rows):
        records, problems = split_valid(read.frame)
        parts = [r for r in (read.rejects, problems) if len(r)]
        rejects = (pd.concat(parts, ignore_index=True).sort_values("index", kind="stable")
                   if parts else read.rejects)
        rejected = set(rejects["index"].tolist())
        if rejected & set(records.index.tolist()) or len(records) + len(rejected) != read.rows_in:
            raise RuntimeError(
                f"row accounting broken in a chunk: {read.rows_in} rows in, {len(records)} valid, "
                f"{len(rejected)} rejected"
            )
        yield read.rows_in, records, rejects


def _check_output(path: Path) -> None:
    if not path.name.endswith((".csv", ".parquet")):
        raise ValueError(f"--output must end in .csv or .parquet: {path}")


# ------------------------------------------------------------------------------------------------
# Engines


def score_file(
    model: RiskModel,
    input_path: str | Path,
    output_path: str | Path,
    version: str,
    progress: Callable[[int], None] | None = None,
    *,
    explain: int = 0,
    engine: str = "pandas",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = DEFAULT_WORKERS,
    scheduler: str | None = None,
) -> dict:
    """Score a checkup file to ``output_path`` (.csv or .parquet) and ``OUTPUT.rejects.csv``.

    ``progress(n)`` is called with the number of input rows done since the last call. Returns the
    row accounting (``rows_in = rows_scored + rows_rejected``, checked; a mismatch raises).
    """
    output_path = Path(output_path)
    _check_output(output_path)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if explain < 0:
        raise ValueError("explain must be >= 0")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    out = _OutputWriter(output_path, output_schema(tuple(model.models_), explain))
    rej = _RejectsWriter(rejects_path(output_path))
    try:
        if engine == "pandas":
            summary = _score_pandas(model, input_path, version, explain, chunk_rows, out, rej, progress)
        else:
            summary = _score_dask(model, input_path, version, explain, chunk_rows, workers, scheduler,
                                  out, rej, progress)
        if out.rows != summary["rows_scored"] or summary["rows_scored"] + rej.rows != summary["rows_in"]:
            raise RuntimeError(
                f"row accounting broken: {summary['rows_in']} in, {out.rows} written "
                f"({summary['rows_scored']} scored), {rej.rows} rejected"
            )
    except BaseException:
        out.abort()
        rej.abort()
        raise
    out.commit()
    rej.commit()
    summary.update(rows_rejected=rej.rows, rejects_path=rejects_path(output_path), engine=engine,
                   explainer=explainer_name(model) if explain else None)
    if summary.get("out_of_order_rows"):
        warnings.warn(
            f"{summary['out_of_order_rows']} checkups are dated before an earlier checkup of the same "
            "person in the file: streamed longitudinal features assume date order per person "
            "(sort the file, or use --engine dask)",
            stacklevel=2,
        )
    return summary


def _score_pandas(model, input_path, version, explain, chunk_rows, out: _OutputWriter, rej: _RejectsWriter,
                  progress) -> dict:
    history = PersonHistory()
    rows_in = scored = 0
    for n_in, records, rejects in _validated_chunks(input_path, chunk_rows):
        out.write(_score_block(model, records, history.with_history(records), version, explain))
        history.update(records)
        rej.write(rejects)
        rows_in += n_in
        scored += len(records)
        if progress:
            progress(n_in)
    return {"rows_in": rows_in, "rows_scored": scored, "out_of_order_rows": history.out_of_order_rows,
            "persons": len(history)}


# -- dask -----------------------------------------------------------------------------------------

_WORKER_MODELS: dict[str, RiskModel] = {}
_WORKER_LOCK = threading.Lock()


def _bundle_payload(model: RiskModel) -> tuple[str, dict[str, bytes]]:
    """The saved bundle's files as bytes, and their digest (the workers' cache key)."""
    with tempfile.TemporaryDirectory(prefix="checkup-risk-bundle-") as tmp:
        d = model.save(Path(tmp) / "bundle")
        files = {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest(), files


def _worker_model(bundle: tuple[str, dict[str, bytes]]) -> RiskModel:
    """Load the bundle once per worker process (single-threaded xgboost: one thread per worker)."""
    key, files = bundle
    with _WORKER_LOCK:
        model = _WORKER_MODELS.get(key)
        if model is None:
            with tempfile.TemporaryDirectory(prefix="checkup-risk-bundle-") as tmp:
                for name, data in files.items():
                    (Path(tmp) / name).write_bytes(data)
                model = RiskModel.load(tmp)
            model.n_jobs = 1
            global EXPLAIN_THREADS
            EXPLAIN_THREADS = 1
            for m in model.models_.values():
                m.booster.set_param({"nthread": 1})
            _WORKER_MODELS[key] = model
        return model


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _score_partition(records_parquet: bytes, bundle, version: str, explain: int) -> bytes:
    """Worker task: whole persons in, their output rows (with ``_row``, in row order) out."""
    model = _worker_model(bundle)
    records = pq.read_table(io.BytesIO(records_parquet)).to_pandas()
    records = records.set_index(_ROW).sort_index(kind="stable")
    records.index.name = None
    scored = score_frame(model, records, version, explain)
    table = pa.Table.from_pandas(scored, schema=output_schema(tuple(model.models_), explain), preserve_index=False)
    return _parquet_bytes(table.append_column(_ROW, pa.array(records.index.to_numpy(dtype="int64"))))


def _estimate_rows(path: Path) -> int:
    """Rows in a file: exact for Parquet, from the first MiB's bytes per line for CSV."""
    if path.name.lower().endswith((".parquet", ".pq")):
        return pq.ParquetFile(path).metadata.num_rows
    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(1 << 20)
    lines = max(1, head.count(b"\n"))
    if len(head) < (1 << 20):
        return lines
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        size *= 8  # compressed: assume about 8x
    return max(1, int(size / (len(head) / lines)))


def _warm_worker(bundle, explain: int) -> bool:
    """Load the bundle (and compile the explainer) on a worker ahead of its first partition."""
    model = _worker_model(bundle)
    if explain:
        _fast_explainer(model)
    return True


def _partition_of(person_id: pd.Series, n: int) -> np.ndarray:
    """Stable partition 0..n-1 of each person (same person, same partition, in every chunk)."""
    h = pd.util.hash_pandas_object(person_id.astype("str"), index=False).to_numpy()
    return (h % np.uint64(n)).astype(np.int64)


def _start_client(workers: int, scheduler: str | None):
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _score_dask(model, input_path, version, explain, chunk_rows, workers, scheduler, out: _OutputWriter,
                rej: _RejectsWriter, progress) -> dict:
    from dask.distributed import as_completed

    if workers < 1:
        raise ValueError("workers must be >= 1")
    client, cluster = _start_client(workers, scheduler)
    try:
        worker_addrs = list(client.scheduler_info().get("workers", {}))
        n_workers = max(1, len(worker_addrs) or workers)
        est = _estimate_rows(Path(input_path))
        n_parts = max(2 * n_workers, math.ceil(est / chunk_rows))
        n_parts = int(math.ceil(n_parts / n_workers) * n_workers)
        # The bundle goes to every worker once; they load it (and compile the explainer) while the
        # client reads the file.
        [bundle] = client.scatter([_bundle_payload(model)], broadcast=True)
        warm = [client.submit(_warm_worker, bundle, explain, workers=[w], allow_other_workers=False, pure=False)
                for w in worker_addrs]
        with tempfile.TemporaryDirectory(prefix="checkup-risk-dask-") as tmp:
            tmp = Path(tmp)
            # 1. Read and validate on the client (the project readers), spill whole persons by hash.
            spill: dict[int, pq.ParquetWriter] = {}
            spill_rows = np.zeros(n_parts, dtype=np.int64)
            rows_in = 0
            for n_in, records, rejects in _validated_chunks(input_path, chunk_rows):
                rej.write(rejects)
                rows_in += n_in
                if progress and len(rejects):
                    progress(int(rejects["index"].nunique()))
                if not len(records):
                    continue
                frame = records[list(schema.COLUMNS)].copy()
                frame[_ROW] = records.index.to_numpy(dtype="int64")
                part = _partition_of(frame["person_id"], n_parts)
                for p in np.unique(part):
                    table = pa.Table.from_pandas(frame[part == p], preserve_index=False)
                    if p not in spill:
                        spill[p] = pq.ParquetWriter(tmp / f"in_{p}.parquet", table.schema, compression="zstd")
                    spill[p].write_table(table.cast(spill[p].schema))
                    spill_rows[p] += table.num_rows
            for w in spill.values():
                w.close()
            client.gather(warm)  # surfaces a worker that cannot load the bundle

            # 2. Score the partitions on the cluster, a bounded number in flight.
            todo = sorted(spill)
            window = 2 * n_workers
            results = as_completed()
            running = {}

            def submit(p: int) -> None:
                [data] = client.scatter([(tmp / f"in_{p}.parquet").read_bytes()])
                fut = client.submit(_score_partition, data, bundle, version, explain, pure=False)
                running[fut] = (p, data)
                results.add(fut)

            while todo and len(running) < window:
                submit(todo.pop(0))
            for fut in results:
                p, _ = running.pop(fut)
                (tmp / f"out_{p}.parquet").write_bytes(fut.result())
                (tmp / f"in_{p}.parquet").unlink()
                fut.release()
                if progress:
                    progress(int(spill_rows[p]))
                if todo:
                    submit(todo.pop(0))

            # 3. Merge the partition outputs (each in row order) back into the input row order.
            scored = _merge_outputs([tmp / f"out_{p}.parquet" for p in sorted(spill)], rows_in, chunk_rows, out)
        if scored != int(spill_rows.sum()):
            raise RuntimeError(f"row accounting broken: {int(spill_rows.sum())} rows sent, {scored} scored")
        return {"rows_in": rows_in, "rows_scored": scored, "partitions": n_parts, "workers": n_workers}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _merge_outputs(paths: list[Path], rows_in: int, chunk_rows: int, out: _OutputWriter) -> int:
    """k-way merge by ``_row`` of partition outputs sorted by ``_row``, one row range at a time."""
    batch = max(1024, chunk_rows // max(1, len(paths)))
    iters = [pq.ParquetFile(p).iter_batches(batch_size=batch) for p in paths]
    bufs: list[pa.Table | None] = [None] * len(paths)
    done = [False] * len(paths)
    written = 0
    for end in range(chunk_rows, rows_in + chunk_rows, chunk_rows):
        pieces = []
        for i, it in enumerate(iters):
            while not done[i] and (bufs[i] is None or bufs[i].num_rows == 0
                                   or bufs[i].column(_ROW)[-1].as_py() < end):
                nxt = next(it, None)
                if nxt is None:
                    done[i] = True
                else:
                    t = pa.Table.from_batches([nxt])
                    bufs[i] = t if bufs[i] is None else pa.concat_tables([bufs[i], t])
            if bufs[i] is None or not bufs[i].num_rows:
                continue
            cut = int(np.searchsorted(bufs[i].column(_ROW).to_numpy(), end))
            pieces.append(bufs[i].slice(0, cut))
            bufs[i] = bufs[i].slice(cut)
        if not pieces:
            continue
        merged = pa.concat_tables(pieces)
        merged = merged.take(pa.array(np.argsort(merged.column(_ROW).to_numpy(), kind="stable")))
        frame = merged.drop_columns([_ROW]).to_pandas()
        out.write(frame)
        written += len(frame)
    leftover = sum(b.num_rows for b in bufs if b is not None)
    leftover += sum(b.num_rows for i, it in enumerate(iters) if not done[i] for b in it)
    if leftover:
        raise RuntimeError(f"partition outputs hold {leftover} rows beyond the input's {rows_in}")
    return written


def read_whole(input_path: str | Path) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(rows in, valid records, rejects) of a whole file: the reference for the streamed engines."""
    read = read_checkups(input_path)
    records, problems = split_valid(read.frame)
    parts = [r for r in (read.rejects, problems) if len(r)]
    rejects = pd.concat(parts, ignore_index=True).sort_values("index", kind="stable") if parts else read.rejects
    return read.rows_in, records, rejects
