"""Batch scoring: row accounting, streaming == whole file, dask == pandas, explanations, NHIS input."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.derive import FEATURES, build_features
from features.readers import read_checkups
from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from serving.batch import OutOfOrder, PersonHistory, read_whole, score_file, score_frame
from serving.batch_block import MISSING_MARK

FIXTURES = Path(__file__).parents[1] / "fixtures"
K = 3


@pytest.fixture(scope="module")
def model() -> RiskModel:
    # One setting, a single split and a high learning rate: a real bundle in a few seconds.
    return RiskModel(
        grid=(DEFAULT_GRID[0],), cv_below_events=0, learning_rate=0.3, max_rounds=200, early_stopping_rounds=10
    ).fit(generate_cohort(people=1500, seed=21))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A cohort sorted by person and date (as exports are) with the bad fixture rows mixed in."""
    cohort = generate_cohort(people=150, seed=22)
    bad = pd.read_csv(FIXTURES / "canonical_bad.csv")
    mixed = pd.concat([cohort.iloc[:300], bad, cohort.iloc[300:]], ignore_index=True)
    path = tmp_path_factory.mktemp("batch") / "mixed.csv"
    mixed.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path, mixed


@pytest.fixture(scope="module")
def reference(model, data) -> pd.DataFrame:
    """The whole-file path: every valid record at once."""
    _, records, _ = read_whole(data[0])
    return score_frame(model, records, "7", explain=K).reset_index(drop=True)


def assert_same(out: pd.DataFrame, ref: pd.DataFrame, atol: float = 1e-12) -> None:
    assert list(out.columns) == list(ref.columns)
    assert len(out) == len(ref)
    for col in ref.columns:
        a, b = ref[col], out[col].reset_index(drop=True)
        if pd.api.types.is_float_dtype(a.dtype):
            np.testing.assert_allclose(b.to_numpy(dtype=float), a.to_numpy(dtype=float), rtol=0, atol=atol, err_msg=col)
        elif col == "exam_date":
            assert (pd.to_datetime(b) == pd.to_datetime(a)).all(), col
        else:
            norm = lambda s: s.astype(object).where(s.notna(), "").astype(str).to_numpy()  # noqa: E731
            np.testing.assert_array_equal(norm(b), norm(a), err_msg=col)


def test_rows_in_equal_rows_scored_plus_rejected(model, data, tmp_path):
    path, mixed = data
    out = tmp_path / "scores.csv"
    summary = score_file(model, path, out, "7", chunk_rows=50)
    scores = pd.read_csv(out)
    rejects = pd.read_csv(f"{out}.rejects.csv")
    assert summary["rows_in"] == len(mixed) == len(scores) + rejects["row"].nunique()
    assert summary["rows_scored"] == len(scores) and summary["rows_rejected"] == rejects["row"].nunique()
    assert summary["backend"] == "compiled"  # the model's own choice (`RiskModel.engine`)
    # The bad fixture rows are the ones rejected (1-based data rows), each with a reason.
    bad_rows = set(range(301, 301 + len(pd.read_csv(FIXTURES / "canonical_bad.csv"))))
    assert set(rejects["row"]) <= bad_rows and len(set(rejects["row"])) >= 5
    assert list(rejects.columns) == ["row", "person_id", "field", "value", "reason"]
    assert rejects["reason"].notna().all()
    assert list(scores.columns[:2]) == ["person_id", "exam_date"]
    assert {f"{o}_risk" for o in model.models_} | {"model_version"} <= set(scores.columns)
    risks = scores[[f"{o}_risk" for o in model.models_]].to_numpy()
    assert np.nanmin(risks) > 0 and np.nanmax(risks) < 1 and np.isnan(risks).any()
    assert (scores["model_version"] == 7).all()
    assert (scores["model_training_data"] == model.training_data_["kind"]).all()


@pytest.mark.parametrize("chunk_rows", [23, 200])
def test_streaming_equals_whole_file(model, data, reference, tmp_path, chunk_rows):
    path, mixed = data
    # The chunks split persons: some person has checkups in two chunks.
    chunk = np.arange(len(mixed)) // chunk_rows
    assert (mixed.assign(c=chunk).groupby("person_id")["c"].nunique() > 1).any()
    out = tmp_path / "scores.parquet"
    summary = score_file(model, path, out, "7", explain=K, chunk_rows=chunk_rows)
    assert summary["out_of_order_rows"] == 0
    scored = pd.read_parquet(out)
    assert_same(scored, reference)


def test_history_features_equal_whole_frame_features(data):
    """The state itself: chunk features with history == whole-frame features, column by column."""
    _, records, _ = read_whole(data[0])
    # Family history answered once, blank afterwards: a lasting answer the features carry forward.
    records.loc[records.duplicated("person_id"), "family_history_cvd"] = np.nan
    whole = build_features(records)
    history = PersonHistory()
    parts = []
    for start in range(0, len(records), 29):
        chunk = records.iloc[start : start + 29]
        parts.append(history.features(chunk))
        history.update(chunk)
    streamed = pd.concat(parts)
    pd.testing.assert_frame_equal(streamed, whole, check_exact=False, rtol=0, atol=1e-12)
    assert (streamed["years_since_last_exam"] > 0).any() and streamed["last_hdl"].notna().any()
    assert (streamed.loc[records.duplicated("person_id"), "family_history_cvd"] == 1).any()


def test_history_eligibility_equals_whole_frame(data):
    """Eligibility judged with the kept rows == eligibility over the whole file, reasons included
    (earlier flags, and measures carried from an earlier checkup when this one lacks them)."""
    from features.eligibility import ineligibility_reasons

    _, records, _ = read_whole(data[0])
    whole = ineligibility_reasons(records)
    history = PersonHistory()
    parts = []
    for start in range(0, len(records), 17):
        chunk = records.iloc[start : start + 17]
        parts.append(ineligibility_reasons(history.with_history(chunk)).loc[chunk.index])
        history.update(chunk)
    streamed = pd.concat(parts)

    def plain(f):
        return f.astype(object).where(f.notna(), None)

    pd.testing.assert_frame_equal(plain(streamed), plain(whole))
    assert whole.apply(lambda c: c.astype(str).str.contains(r"\(20|earlier|last", regex=True)).to_numpy().any()


def test_a_file_out_of_date_order_across_chunks_is_refused_and_nothing_written(model, tmp_path):
    # Streamed, a person's earlier checkup met after a later one gave both wrong histories: a
    # disease-range lipid panel of 2015 was not known to the 2013 checkup scored in the next chunk.
    cohort = generate_cohort(people=5, seed=3).iloc[::-1]  # newest first: against the assumption
    path = tmp_path / "reversed.csv"
    cohort.to_csv(path, index=False, date_format="%Y-%m-%d")
    logged: list[int] = []
    with pytest.raises(
        OutOfOrder, match=r"checkups in rows 3-4 are dated before a checkup of the same person in an earlier chunk of 2"
    ):
        score_file(model, path, tmp_path / "s.csv", "7", chunk_rows=2, on_scored=lambda r, o: logged.append(len(r)))
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s.csv.rejects.csv").exists()
    # Stopped at the first chunk that breaks the order, before writing or logging it.
    assert logged == [2]
    # Within one chunk the order does not matter: the chunk is one person's history in full.
    summary = score_file(model, path, tmp_path / "s.csv", "7", chunk_rows=len(cohort))
    assert summary["out_of_order_rows"] == 0 and summary["rows_scored"] == len(cohort)


def test_undated_rows_same_day_repeats_and_another_sex_are_said_and_counted(model, tmp_path):
    # A checkup without a date is today's (said, with a count); the same checkup again in a later
    # chunk is rejected naming the row kept, so it is never its own history; a person whose sex
    # changes is scored as given, and counted.
    cohort = generate_cohort(people=4, seed=5).sort_values(["person_id", "exam_date"])
    undated = cohort.iloc[[0]].assign(person_id="no-date", exam_date=None)
    rows = pd.concat([cohort, cohort.iloc[[len(cohort) - 1]], undated], ignore_index=True)
    last_of_first = int(np.flatnonzero(rows["person_id"] == rows.loc[0, "person_id"])[-1])
    rows.loc[last_of_first, "sex"] = "F" if rows.loc[0, "sex"] == "M" else "M"  # one typo in sex
    rows.loc[last_of_first, "age"] = rows.loc[0, "age"] + 30  # and one in age: 30 years on in a few
    path = tmp_path / "repeats.csv"
    rows.to_csv(path, index=False, date_format="%Y-%m-%d")
    summary = score_file(model, path, tmp_path / "r.csv", "7", chunk_rows=3)
    assert summary["exam_date_defaulted"] == 1 and summary["sex_differs"] == 1
    assert summary["age_differs"] == 1  # the file's other ages move with their dates
    # Which data rows to check: a count alone could not be followed up (outside tester).
    assert summary["sex_differs_rows"] == summary["age_differs_rows"] == [last_of_first + 1]
    assert summary["age_group_differs"] == 1  # that age is outside its row's age_group too
    assert summary["rows_rejected"] == 1 and summary["rows_scored"] == len(rows) - 1
    rejects = pd.read_csv(f"{tmp_path / 'r.csv'}.rejects.csv")
    assert rejects["row"].tolist() == [len(cohort) + 1]
    assert rejects["reason"].iloc[0].startswith(f"the same person and exam date as row {len(cohort)} ")


def test_an_output_that_is_the_input_is_refused(model, data, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(data[0].read_bytes())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="is the input file"):
        score_file(model, path, path, "7")
    sneaky = tmp_path / "out.csv"  # its rejects file would be out.csv.rejects.csv
    rejects_named = tmp_path / "out.csv.rejects.csv"
    rejects_named.write_bytes(before)
    with pytest.raises(ValueError, match="is the input file"):
        score_file(model, rejects_named, sneaky, "7")
    assert path.read_bytes() == before and rejects_named.read_bytes() == before


def test_explain_columns_ordered_and_match_model_explain(model, data, reference):
    _, records, _ = read_whole(data[0])
    X = build_features(records)
    for o in model.models_:
        names = [f"{o}_factor_{i}" for i in range(1, K + 1)]
        values = reference[[f"{o}_factor_{i}_log_odds" for i in range(1, K + 1)]].to_numpy()
        applies = reference[f"{o}_risk"].notna().to_numpy()
        assert set(names) <= set(reference.columns)
        # Empty where the outcome does not apply, filled where it does.
        assert np.isnan(values[~applies]).all() and reference.loc[~applies, names].isna().all().all()
        assert not np.isnan(values[applies]).any()
        # Ordered by |log-odds|, largest first.
        assert (np.diff(np.abs(values[applies]), axis=1) <= 1e-15).all()
        # The same numbers as xgboost's own pred_contribs (float32: about 1e-6).
        rows = np.flatnonzero(applies)[:: max(1, applies.sum() // 6)][:6]
        contrib = model.score(X.iloc[rows], explain=True, outcomes=(o,), backend="booster").contributions[o]
        for r, c in zip(rows, contrib, strict=True):
            top = np.sort(np.abs(c))[::-1][:K]
            np.testing.assert_allclose(np.abs(values[r]), top, rtol=0, atol=1e-5)
            for name, v in zip(reference.loc[r, names], values[r], strict=True):
                np.testing.assert_allclose(c[FEATURES.index(name.removesuffix(MISSING_MARK))], v, rtol=0, atol=1e-5)


def test_reasons_and_intervals_are_those_of_score(model, data, tmp_path):
    """`<outcome>_reason` and, with `intervals`, `<outcome>_interval_low/_high` say what /score's
    `reason` and `probability_interval` say for the same checkup with the same history, streamed."""
    from serving.scoring import Scorer

    out = tmp_path / "scores.parquet"
    score_file(model, data[0], out, "7", intervals=True, chunk_rows=70)
    scores = pd.read_parquet(out)
    _, records, _ = read_whole(data[0])
    frame = records.reset_index(drop=True)
    as_request = [
        {k: (v.date() if isinstance(v, pd.Timestamp) else None if pd.isna(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    results = Scorer(model, "7").score_records(as_request, explain=False)
    key = lambda d: list(zip(d["person_id"].astype(str), pd.to_datetime(d["exam_date"]).dt.date, strict=True))  # noqa: E731
    scores.index = pd.MultiIndex.from_tuples(key(scores))
    assert scores.index.is_unique
    said = {o: 0 for o in model.models_}
    for (pid, date), r in zip(key(frame), results, strict=True):
        row = scores.loc[(pid, date)]
        for o, risk in r["risks"].items():
            if risk["applicable"]:
                assert pd.isna(row[f"{o}_reason"])
                low, high = risk["probability_interval"]
                assert row[f"{o}_interval_low"] == pytest.approx(low, abs=1e-6)
                assert row[f"{o}_interval_high"] == pytest.approx(high, abs=1e-6)
                assert low <= row[f"{o}_risk"] <= high
            else:
                assert row[f"{o}_reason"] == risk["reason"] and risk["reason"]
                assert pd.isna(row[f"{o}_risk"]) and pd.isna(row[f"{o}_interval_low"])
                said[o] += 1
    assert all(said.values()), said  # every outcome has rows it does not apply to, each with its reason
    # Without --intervals there are no interval columns.
    plain = tmp_path / "plain.csv"
    score_file(model, data[0], plain, "7")
    assert not [c for c in pd.read_csv(plain).columns if "_interval_" in c]


def test_a_frame_with_a_repeated_index_scores_as_before(model, data):
    # `score_frame` is a public path: a frame whose index repeats (two concatenated files) scores.
    _, records, _ = read_whole(data[0])
    twice = pd.concat([records.iloc[:40], records.iloc[:40].assign(person_id=lambda d: "x" + d["person_id"])])
    assert not twice.index.is_unique
    out = score_frame(model, twice, "7")
    assert len(out) == 80 and out.index.equals(twice.index)
    np.testing.assert_allclose(out["cvd_risk"].iloc[:40].to_numpy(), out["cvd_risk"].iloc[40:].to_numpy())


def test_nhis_file_scores(model, tmp_path):
    src = FIXTURES / "nhis_2020_sample.csv"
    out = tmp_path / "nhis.csv"
    summary = score_file(model, src, out, "7", explain=2, chunk_rows=64)
    scores = pd.read_csv(out, dtype={"person_id": str})
    rows_in = read_checkups(src).rows_in
    assert summary["rows_in"] == rows_in == summary["rows_scored"] + summary["rows_rejected"]
    assert len(scores) == summary["rows_scored"] > 0.9 * rows_in
    assert scores["person_id"].str.match(r"^2020-\d{6}$").all()
    assert (scores["exam_date"] == "2020-07-01").all()
    risks = scores[[f"{o}_risk" for o in model.models_]]
    assert risks.notna().any().all() and ((risks > 0) & (risks < 1) | risks.isna()).all().all()
    assert scores["cvd_factor_1"].notna().any()


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield c
    c.close()


COUNTS = (
    "rows_in",
    "rows_scored",
    "rows_rejected",
    "exam_date_defaulted",
    "sex_differs",
    "age_differs",
    "age_group_differs",
    "history_gap_rows",
    "history_gap_persons",
)


@pytest.mark.slow  # worker processes start and compile the explainer: 20-70 s on two busy cores
def test_dask_equals_pandas(model, data, reference, tmp_path, cluster):
    path, _ = data
    pandas_out, dask_out = tmp_path / "p.csv", tmp_path / "d.csv"
    p = score_file(model, path, pandas_out, "7", explain=K, chunk_rows=79)
    d = score_file(
        model, path, dask_out, "7", explain=K, chunk_rows=79, engine="dask", scheduler=cluster.scheduler_address
    )
    assert d["partitions"] >= 4 and d["workers"] == 2 and d["backend"] == p["backend"] == "compiled"
    assert {k: d[k] for k in COUNTS} == {k: p[k] for k in COUNTS}
    assert_same(pd.read_csv(dask_out), pd.read_csv(pandas_out))
    assert Path(f"{dask_out}.rejects.csv").read_bytes() == Path(f"{pandas_out}.rejects.csv").read_bytes()
    assert_same(pd.read_csv(dask_out), reference)
    # With intervals the workers write the same interval columns.
    with_intervals = tmp_path / "di.parquet"
    score_file(model, path, with_intervals, "7", intervals=True, engine="dask", scheduler=cluster.scheduler_address)
    _, records, _ = read_whole(path)
    want = score_frame(model, records, "7", intervals=True).reset_index(drop=True)
    assert_same(pd.read_parquet(with_intervals), want)


@pytest.mark.slow
def test_dask_is_exact_in_any_row_order(model, data, tmp_path, cluster):
    """Partitions hold whole persons, so the dask engine needs no date order; output keeps row order."""
    _, mixed = data
    shuffled = mixed.sample(frac=1.0, random_state=5).reset_index(drop=True)
    path = tmp_path / "shuffled.csv"
    shuffled.to_csv(path, index=False)
    out = tmp_path / "d.parquet"
    score_file(model, path, out, "7", explain=K, chunk_rows=150, engine="dask", scheduler=cluster.scheduler_address)
    _, records, _ = read_whole(path)
    assert_same(pd.read_parquet(out), score_frame(model, records, "7", explain=K).reset_index(drop=True))


@pytest.mark.slow
def test_dask_local_cluster_of_its_own(model, data, reference, tmp_path):
    out = tmp_path / "d.parquet"
    summary = score_file(model, data[0], out, "7", explain=K, engine="dask", workers=2, chunk_rows=300)
    assert summary["workers"] == 2
    assert_same(pd.read_parquet(out), reference)


@pytest.mark.slow
def test_cli_score_with_registry(model, data, tmp_path, monkeypatch):
    import mlflow

    from training import registry
    from training.train import example_frame

    home = tmp_path / "home"
    registry.configure(home)
    with mlflow.start_run(experiment_id=registry.experiment("test")):
        _, version = registry.log_bundle(model, example_frame())
    registry.set_alias(registry.CHAMPION, version)

    out = tmp_path / "cli.csv"
    env = {**os.environ, "CHECKUP_RISK_HOME": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "checkup_risk_cli",
        "score",
        "--input",
        str(data[0]),
        "--output",
        str(out),
        "--explain",
        str(K),
        "--intervals",
        "--chunk-rows",
        "100",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"model version {version}" in proc.stdout and "rejected" in proc.stdout
    scores = pd.read_csv(out)
    assert (scores["model_version"].astype(str) == version).all()
    _, records, _ = read_whole(data[0])
    ref = score_frame(model, records, version, explain=K, intervals=True).reset_index(drop=True)
    assert_same(scores.drop(columns="model_version"), ref.drop(columns="model_version"), atol=1e-9)

    bad = subprocess.run(cmd[:-2] + ["--workers", "3"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--engine dask" in bad.stderr
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "x.txt")], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2


def test_scored_rows_of_a_person_with_a_rejected_row_are_counted(model, tmp_path):
    # A rejected checkup's stroke is missing from its person's history: the later row may be scored
    # as a first event, and the command must say so (the CLI prints it as a WARNING).
    cohort = generate_cohort(people=30, seed=23)
    pid = cohort["person_id"].value_counts().index[0]  # a person with several checkups
    first = cohort.index[cohort["person_id"] == pid][0]
    cohort.loc[first, "waist_cm"] = 30.0  # implausible: the row is rejected
    path = tmp_path / "gap.csv"
    cohort.to_csv(path, index=False, date_format="%Y-%m-%d")
    summary = score_file(model, path, tmp_path / "out.csv", "7")
    assert summary["history_gap_persons"] == 1
    assert summary["history_gap_rows"] == int((cohort["person_id"] == pid).sum()) - 1
    clean = generate_cohort(people=30, seed=23)
    # A second row of a kept checkup (same person, same day) is rejected but loses nothing.
    repeated = pd.concat([clean, clean.loc[[first]]], ignore_index=True)
    path = tmp_path / "clean.csv"
    repeated.to_csv(path, index=False, date_format="%Y-%m-%d")
    summary = score_file(model, path, tmp_path / "clean_out.csv", "7")
    assert summary["rows_rejected"] == 1 and summary["history_gap_rows"] == 0
