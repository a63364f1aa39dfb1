"""The GX suite and the per-record validators are generated from one schema: test both sides of
every bound, and that the two agree."""

import re

import numpy as np
import pandas as pd
import pytest

from features.schema import FIELDS
from features.validation import check_records, run_suite

RANGED = [f for f in FIELDS if f.low is not None]


def valid_frame(n: int = 3) -> pd.DataFrame:
    row = {"person_id": "p1", "exam_date": pd.Timestamp("2021-05-01"), "sex": "F", "age": 50.0}
    for f in FIELDS:
        if f.name in row or f.kind in ("id", "date", "sex"):
            continue
        if f.codes:
            row[f.name] = float(min(f.codes))
        elif f.low is not None:
            row[f.name] = float((f.low + f.high) // 2)
    row["sbp"], row["dbp"] = 120.0, 80.0
    df = pd.DataFrame([row] * n)
    df["person_id"] = [f"p{i}" for i in range(n)]
    return df


@pytest.mark.parametrize("f", RANGED, ids=lambda f: f.name)
def test_check_records_accepts_both_bounds_and_rejects_just_outside(f):
    df = valid_frame(4)
    lows_ok = df.copy()
    if f.name in ("sbp", "dbp"):
        # Keep dbp < sbp while probing the bounds of one of them.
        lows_ok["sbp"], lows_ok["dbp"] = 200.0, 50.0
    step = 1 if f.kind == "int" else 0.01 * max(1, f.low)
    lows_ok[f.name] = [f.low, f.high, f.low - step, f.high + 1]
    if f.name == "sbp":
        lows_ok["dbp"] = 40.0
    if f.name == "dbp":
        lows_ok["sbp"] = 270.0
        lows_ok.loc[1, "sbp"] = 279.0
        lows_ok.loc[1, "dbp"] = 178.0
        lows_ok[f.name] = [f.low, f.high - 2, f.low - 1, f.high + 1]
    p = check_records(lows_ok)
    mine = p[p.field == f.name]
    assert sorted(mine["index"].tolist()) == [2, 3], p.to_string()
    assert set(p["index"]) == {2, 3}
    assert mine["reason"].str.contains("plausible range").all()


def test_a_value_plausible_in_another_unit_says_which():
    # A new user's file in mmol/L, metres or umol/L: every row was rejected with no hint why.
    df = pd.DataFrame(
        {
            "person_id": list("abcd"),
            "sex": "M",
            "age": 50,
            "fasting_glucose": [5.8, 900, 100, 100],
            "height_cm": [1.72, 170, 170, 170],
            "serum_creatinine": [0.9, 0.9, 80, 0.9],
        }
    )
    reasons = check_records(df).set_index(["index", "field"])["reason"]
    assert reasons[(0, "fasting_glucose")].endswith("; it looks like mmol/L (x 18.02 gives mg/dL)")
    assert reasons[(1, "fasting_glucose")] == "fasting_glucose is outside the plausible range 30-700 mg/dL"
    assert reasons[(0, "height_cm")].endswith("; it looks like m (x 100 gives cm)")
    assert reasons[(2, "serum_creatinine")].endswith("; it looks like µmol/L (÷ 88.42 gives mg/dL)")
    assert len(reasons) == 4


def test_codes_required_and_pairs():
    df = valid_frame(5)
    df.loc[0, "smoking_status"] = 4
    df.loc[1, "sex"] = None
    df.loc[2, ["age", "age_group"]] = np.nan
    df.loc[3, ["sbp", "dbp"]] = [110.0, 110.0]
    df.loc[4, "urine_protein"] = 2.5
    p = check_records(df)
    got = set(zip(p["index"], p["field"], strict=True))
    assert {(0, "smoking_status"), (1, "sex"), (2, "age"), (3, "dbp"), (4, "urine_protein")} <= got
    assert check_records(valid_frame()).empty


def test_a_person_id_with_a_control_character_is_rejected():
    df = valid_frame(3)
    df["person_id"] = df["person_id"].astype(object)
    df.loc[1, "person_id"] = "ab\tc"
    df.loc[2, "person_id"] = "환자 7"
    p = check_records(df)
    assert p[["index", "field"]].values.tolist() == [[1, "person_id"]]
    assert p["reason"].iloc[0] == "person_id holds a control character"


def test_age_group_alone_is_enough():
    df = valid_frame(1).assign(age=np.nan, age_group=9.0)
    assert check_records(df.assign(age_group=np.nan))["field"].tolist() == ["age"]
    assert check_records(df).empty


def test_missing_optional_columns_are_fine():
    df = pd.DataFrame({"person_id": ["a"], "sex": ["M"], "age": [40.0]})
    assert check_records(df).empty


@pytest.fixture(scope="module")
def suite_result():
    df = valid_frame(6)
    df.loc[1, "sbp"] = 300.0  # above 280
    df.loc[2, "hdl"] = 4.0  # below 5
    df.loc[3, "smoking_status"] = 4.0
    df.loc[4, "dbp"] = 130.0  # dbp > sbp 120
    df.loc[5, "exam_date"] = pd.Timestamp("1999-12-31")
    return df, run_suite(df)


def test_gx_suite_flags_exactly_the_bad_rows(suite_result):
    df, report = suite_result
    assert not report.success
    flagged = {(f.field, ex[0]) for f in report.critical_failures for ex in f.examples}
    assert ("sbp", 1) in flagged
    assert ("hdl", 2) in flagged
    assert ("smoking_status", 3) in flagged
    assert ("sbp,dbp", 4) in flagged
    assert ("exam_date", 5) in flagged
    # The per-record validators agree row for row.
    assert set(check_records(df)["index"]) == {1, 2, 3, 4, 5}


def test_gx_suite_passes_clean_data_and_writes_data_docs(tmp_path):
    report = run_suite(valid_frame(), report_dir=tmp_path / "docs")
    assert report.success, report.failures
    assert (tmp_path / "docs" / "index.html").exists()


def test_fractional_age_is_accepted():
    # Contract section 1: an age computed from a birth date carries a fraction.
    assert check_records(valid_frame(1).assign(age=54.37)).empty
    assert check_records(valid_frame(1).assign(age=19.9))["field"].tolist() == ["age"]


def test_an_empty_column_is_said_to_be_empty_not_observed_none():
    """A mean check on a column with no value says so (an outside tester read "observed None")."""
    report = run_suite(valid_frame(6).assign(sbp=np.nan))
    (sbp,) = [f for f in report.failures if f.field == "sbp" and f.expectation == "expect_column_mean_to_be_between"]
    assert sbp.message == "no value in the file (an absent or empty column): nothing to compare"
    assert not sbp.critical and "None" not in sbp.message


def test_data_docs_of_a_file_with_unreadable_rows_say_it_failed(tmp_path):
    """The reader left 2 of 7 rows out (a bad code, an age band under 20): the command fails, and the
    Data Docs must not show the readable rest as a success."""
    report = run_suite(valid_frame(5), report_dir=tmp_path / "docs", rows_in=7)
    assert not report.success
    (rows,) = [f for f in report.failures if f.field == "rows"]
    assert rows.critical and rows.message == "5 of 7 data rows could be read"
    (page,) = [p.read_text() for p in (tmp_path / "docs").rglob("*.html") if "validations" in str(p)]
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Status: Failed" in text and "Unsuccessful Expectations 1" in text
    assert run_suite(valid_frame(5), rows_in=5).success
