"""Readers: canonical CSV/Parquet and NHIS open-data files -> the canonical frame, no row lost."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.nhis import NOTE_NHIS_QUESTIONNAIRE, NOTE_ROUNDING, detect_source, normalise_header
from features.readers import (
    absent_key_inputs,
    concat_results,
    iter_checkups,
    read_checkups,
    records_to_frame,
    to_canonical,
    write_rejects,
)
from features.rejects import R_AGE_UNDER_20, REJECT_COLUMNS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NHIS_2020 = FIXTURES / "nhis_2020_sample.csv"
NHIS_2014 = FIXTURES / "nhis_2014_variant.csv"
SMALL = FIXTURES / "canonical_small.csv"
BAD = FIXTURES / "canonical_bad.csv"

import sys  # noqa: E402

sys.path.insert(0, str(FIXTURES))
from make_fixtures import BAD_ROWS, NHIS_2014_HEADER, NHIS_2020_HEADER  # noqa: E402

sys.path.remove(str(FIXTURES))


def _input_rows(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str, keep_default_na=False, encoding=_enc(path)))


def _enc(path: Path) -> str:
    try:
        path.read_bytes().decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp949"


def _nothing_lost(result, rows_in: int) -> None:
    assert len(result.frame) + result.rejects["index"].nunique() == rows_in
    assert not set(result.frame.index) & set(result.rejects["index"])
    assert result.counts["rows_in"] == rows_in


def _assert_canonical_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns[: len(schema.COLUMNS)]) == list(schema.COLUMNS)
    assert pd.api.types.is_string_dtype(frame["person_id"].dtype)
    assert frame["exam_date"].dtype.kind == "M"
    assert (frame["exam_date"] == frame["exam_date"].dt.normalize()).all()
    assert set(frame["sex"].unique()) <= {"M", "F"}
    for name in schema.NUMERIC_COLUMNS:
        assert frame[name].dtype == np.float64, name


# ---------------------------------------------------------------- fixtures are what they claim


def test_fixtures_are_small_and_encoded_as_claimed():
    for p in (NHIS_2020, NHIS_2014, SMALL, BAD):
        assert p.stat().st_size < 100_000
    raw2020 = NHIS_2020.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw2020.decode("utf-8")
    assert raw2020.decode("cp949").splitlines()[0].split(",") == NHIS_2020_HEADER
    assert b"\r\n" in raw2020 and len(NHIS_2020_HEADER) == 31
    assert NHIS_2014.read_bytes().startswith(b"\xef\xbb\xbf")


# ---------------------------------------------------------------- NHIS


@pytest.fixture(scope="module")
def nhis2020():
    return read_checkups(NHIS_2020)


def test_cp949_nhis_file_is_detected_and_read(nhis2020):
    assert nhis2020.source == "nhis"
    _nothing_lost(nhis2020, 200)
    assert nhis2020.rejects.empty
    _assert_canonical_dtypes(nhis2020.frame)
    assert nhis2020.frame.index.tolist() == list(range(200))


def test_nhis_code_mapping(nhis2020):
    raw = pd.read_csv(NHIS_2020, dtype=str, encoding="cp949", keep_default_na=False)
    f = nhis2020.frame
    assert f["person_id"].iloc[0] == "2020-000001"
    assert f["person_id"].is_unique
    assert (f["exam_date"] == pd.Timestamp("2020-07-01")).all()
    assert (f["sex"] == raw["성별코드"].map({"1": "M", "2": "F"}).to_numpy()).all()
    np.testing.assert_array_equal(f["age_group"], raw["연령대코드(5세단위)"].astype(float))
    assert f["age"].isna().all()
    assert f["age_group"].between(9, 18).all()
    np.testing.assert_array_equal(f["alt"], raw["(혈청지피티)ALT"].astype(float))
    np.testing.assert_array_equal(f["ast"], raw["(혈청지오티)AST"].astype(float))
    np.testing.assert_array_equal(f["drinking"], raw["음주여부"].astype(float))
    np.testing.assert_array_equal(f["smoking_status"], raw["흡연상태"].astype(float))
    # questionnaire fields are not in the open file
    assert f["history_stroke"].isna().all() and f["on_statin"].isna().all()


def test_nhis_known_dirt(nhis2020):
    f = nhis2020.frame
    assert f["waist_cm"].max() < 200
    assert pd.isna(f.loc[17, "waist_cm"]) and pd.isna(f.loc[140, "waist_cm"])
    assert "waist 999 (not measured) treated as missing in 2 rows" in nhis2020.notes
    assert NOTE_ROUNDING in nhis2020.notes
    assert NOTE_NHIS_QUESTIONNAIRE in nhis2020.notes  # a treated hypertensive is not told from the file
    assert (f["height_cm"] % 5 == 0).all() and (f["weight_kg"] % 5 == 0).all()
    assert 0.45 < f["total_cholesterol"].isna().mean() < 0.75  # lipids missing: NaN, not rejected
    assert f["sbp"].isna().sum() == 2 and f.loc[[51, 122], "dbp"].isna().all()
    # notes carry counts, never patient values
    assert not any(pid in n for pid in f["person_id"] for n in nhis2020.notes)


def test_bom_utf8_variant_headers_and_yn_drinking():
    r = read_checkups(NHIS_2014)
    raw = pd.read_csv(NHIS_2014, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    assert r.source == "nhis"
    _nothing_lost(r, 50)
    _assert_canonical_dtypes(r.frame)
    f = r.frame
    assert f["person_id"].iloc[0] == "2014-000001"
    assert set(raw["음주여부"]) == {"N", "Y"}
    np.testing.assert_array_equal(f["drinking"], raw["음주여부"].map({"N": 0.0, "Y": 1.0}))
    np.testing.assert_array_equal(f["age_group"], raw["연령대 코드(5세단위)"].astype(float))
    np.testing.assert_array_equal(f["weight_kg"], raw["체중(5Kg 단위)"].astype(float))
    np.testing.assert_array_equal(f["ggt"], raw["감마 지티피"].astype(float))
    # "(혈청지오티)ALT" (sic) is ALT, not AST
    np.testing.assert_array_equal(f["alt"], raw["(혈청지오티)ALT"].astype(float))
    np.testing.assert_array_equal(f["ast"], raw["혈청지오티(AST)"].astype(float))
    assert pd.isna(f.loc[5, "waist_cm"])
    assert "waist 999 (not measured) treated as missing in 1 row" in r.notes


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("연령대코드(5세단위)", "연령대 코드(5세단위)"),
        ("체중(5Kg단위)", "체중(5kg 단위)"),
        ("감마지티피", "감마 지티피"),
        ("(혈청지오티)AST", "혈청지오티(AST)"),
        ("LDL콜레스테롤", "LDL 콜레스테롤"),
        ("데이터공개일자", "데이터 공개일자"),
    ],
)
def test_header_normalisation(a, b):
    assert normalise_header(a) == normalise_header(b)


def test_detect_source():
    assert detect_source(NHIS_2020_HEADER) == "nhis"
    assert detect_source(NHIS_2014_HEADER) == "nhis"
    assert detect_source(schema.COLUMNS) == "canonical"


def test_nhis_under_20_band_and_bad_codes_rejected():
    raw = pd.DataFrame(
        {
            "기준년도": ["2019", "2019", "2019", "2019", "2019"],
            "가입자일련번호": ["1", "2", "3", "", "5"],
            "성별코드": ["1", "2", "3", "1", "2"],
            "연령대코드(5세단위)": ["3", "10", "10", "10", "10"],
            "흡연상태": ["1", "1", "1", "1", "9"],
            "음주여부": ["Y", "N", "1", "0", "x"],
            "시력(좌)": ["9.9", "1.0", "1.0", "1.0", "1.0"],
        }
    )
    r = to_canonical(raw, source="nhis")
    lines = {(i, fld): reason for i, fld, reason in r.rejects[["index", "field", "reason"]].itertuples(index=False)}
    assert lines[(0, "age_group")] == R_AGE_UNDER_20
    assert lines[(2, "sex")].startswith("not a sex code")
    assert lines[(3, "person_id")].startswith("가입자일련번호")
    assert lines[(4, "smoking_status")].startswith("not an allowed code")
    assert lines[(4, "drinking")] == "not a number"
    assert r.frame.index.tolist() == [1]
    assert r.frame.loc[1, "person_id"] == "2019-000002"
    _nothing_lost(r, 5)


# ---------------------------------------------------------------- canonical


def test_canonical_small():
    r = read_checkups(SMALL)
    assert r.source == "canonical"
    _nothing_lost(r, 30)
    assert r.rejects.empty
    _assert_canonical_dtypes(r.frame)
    f = r.frame
    raw = pd.read_csv(SMALL, dtype=str, keep_default_na=False)
    numeric_sex = raw["sex"].isin(["1", "2"])
    assert numeric_sex.sum() >= 2
    assert (f.loc[numeric_sex.to_numpy(), "sex"] == raw.loc[numeric_sex, "sex"].map({"1": "M", "2": "F"})).all()
    assert (f["person_id"] == "P0001").sum() == 3
    assert f.loc[f["person_id"] == "P0001", "exam_date"].dt.year.tolist() == [2019, 2021, 2023]
    for absent in ("history_dyslipidemia", "family_history_cvd", "activity_days_per_week"):
        assert f[absent].isna().all() and f[absent].dtype == np.float64
    assert any("columns absent" in n and "activity_days_per_week" in n for n in r.notes)
    # A measurement the model reads, absent for everyone, can shift the risks (outside tester): said.
    shifted = [n for n in r.notes if n.startswith("the model reads ")]
    assert len(shifted) == 1 and "activity_days_per_week" in shifted[0] and "history_dyslipidemia" not in shifted[0]
    assert f["waist_cm"].isna().any() and f["smoking_status"].isna().any()  # empty -> NaN


def test_canonical_bad_rows_rejected_with_field_and_reason(tmp_path):
    r = read_checkups(BAD)
    rows_in = _input_rows(BAD)
    _nothing_lost(r, rows_in)
    assert list(r.rejects.columns) == list(REJECT_COLUMNS)
    got = {i: (fld, reason) for i, fld, reason in r.rejects[["index", "field", "reason"]].itertuples(index=False)}
    assert set(got) == set(BAD_ROWS)
    for i, (fld, reason) in BAD_ROWS.items():
        assert got[i][0] == fld, i
        assert got[i][1].startswith(reason), (i, got[i])
    assert sorted(r.frame.index) == sorted(set(range(rows_in)) - set(BAD_ROWS))
    row = r.rejects.set_index("index")
    assert row.loc[1, "value"] == "abc" and row.loc[10, "value"] == "2.5" and row.loc[4, "value"] == ""
    assert row.loc[1, "person_id"] == "P0001"
    assert "10 of 16 rows could not be read" in r.notes

    out = tmp_path / "rejects.csv"
    write_rejects(r.rejects, out)
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(back.columns) == ["row", "person_id", "field", "value", "reason"]
    assert back["row"].astype(int).tolist() == [i + 1 for i in sorted(BAD_ROWS)]


def test_several_problems_in_one_row_count_once():
    raw = pd.DataFrame({"person_id": ["a", "b"], "sex": ["M", "Q"], "age": ["50", "x"], "sbp": ["120", "y"]})
    r = to_canonical(raw)
    assert len(r.rejects) == 3 and r.rejects["index"].nunique() == 1
    _nothing_lost(r, 2)


def test_missing_exam_date_is_today_and_noted():
    r = records_to_frame([{"person_id": "a", "sex": "F", "age": 40}])
    assert r.frame.loc[0, "exam_date"] == pd.Timestamp.today().normalize()
    assert any(n.startswith("exam_date missing in 1 row") for n in r.notes)
    assert not any("undated row" in n for n in r.notes)


def test_a_persons_undated_rows_are_said_to_be_one_days_repeats():
    # A file without exam_date: every row is today's, so a person's later rows are left out as the
    # same day's checkup. The reject reason alone ("the same person and exam date") hid the cause.
    raw = pd.DataFrame({"person_id": ["a", "a", "a", "b"], "sex": "M", "age": ["50", "51", "52", "60"]})
    [note] = [n for n in to_canonical(raw).notes if n.startswith("exam_date missing")]
    assert "in 4 rows" in note and "of these, 2 are a person's second or later undated row" in note
    assert note.endswith("give each checkup its exam_date")


def test_datetimes_with_differing_offsets_beside_plain_dates_are_read_on_the_day_written(tmp_path):
    # EMR exports write offsets; mixed with other forms they crashed score and evaluate (a traceback).
    written = [
        "2019-03-05T09:30:00+09:00",
        "03/05/2019",
        "2019-03-06T23:10:00Z",
        "2019.03.07",
        "2019-03-08T10:00:00-05:00",
    ]
    path = tmp_path / "dates.csv"
    pd.DataFrame({"person_id": list("abcde"), "sex": "M", "age": 50, "exam_date": written}).to_csv(path, index=False)
    r = read_checkups(path)
    assert r.rows_in == 5 and r.rejected_rows == 1  # "03/05/2019" is ambiguous: rejected, named
    assert r.rejects["field"].tolist() == ["exam_date"]
    days = [d.date().isoformat() for d in r.frame["exam_date"]]
    assert days == ["2019-03-05", "2019-03-06", "2019-03-07", "2019-03-08"]
    # Hour-only offsets, one-digit hours and a basic-format time beside extended ones (review).
    from features.coerce import to_date

    for written in (
        ["2019-03-05T09:30:00+09", "2019-03-06T10:30:00+09:00", "2019-03-07T09:30:00-05"],
        ["2019-03-05 9:30+09:00", "2019-03-06 10:30+09:00", "2019-03-07T10:30Z"],
        ["2019-03-05T0930+0900", "2019-03-06T10:30:00+09:00", "2019-03-07T10:30:00-05:00"],
    ):
        values, _, bad = to_date(pd.Series(written, dtype=object))
        assert [str(v)[:10] for v in values] == ["2019-03-05", "2019-03-06", "2019-03-07"] and not bad.any()


def test_labels_kept_after_canonical_columns_and_unknown_ignored():
    raw = pd.DataFrame(
        {
            "person_id": ["a", "b"],
            "sex": ["male", "FEMALE"],
            "age_group": [10, 12],
            "cvd_1y": ["1", ""],
            "cvd_1y_true_risk": [0.02, 0.01],
            "mystery": ["x", "y"],
        }
    )
    r = to_canonical(raw)
    assert list(r.frame.columns) == list(schema.COLUMNS) + ["cvd_1y", "cvd_1y_true_risk"]
    assert r.frame["cvd_1y"].tolist()[0] == 1.0 and np.isnan(r.frame["cvd_1y"].tolist()[1])
    assert r.frame["sex"].tolist() == ["M", "F"]
    assert any("mystery" in n for n in r.notes)


def test_missing_value_tokens_of_other_tools_are_missing_not_a_reject(tmp_path):
    # SAS and Stata write "." for no value, spreadsheets "-": one lipid not drawn rejected a checkup.
    p = tmp_path / "x.csv"
    p.write_text("person_id,sex,age,sbp,ldl,hdl,triglycerides\na,M,50,128,.,-,--\nb,F,41,.,NA,55,\n", encoding="utf-8")
    r = read_checkups(p)
    assert r.rejected_rows == 0 and len(r.frame) == 2
    assert r.frame["sbp"].tolist()[0] == 128 and np.isnan(r.frame["sbp"].tolist()[1])
    assert r.frame[["ldl", "triglycerides"]].isna().all().all() and np.isnan(r.frame["hdl"].tolist()[0])


def test_missing_required_column_in_a_file_is_a_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("id,sbp\n1,120\n", encoding="utf-8")
    with pytest.raises(ValueError, match="required columns missing"):
        read_checkups(p)


def test_ragged_csv_is_an_error_not_a_silent_drop(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text('person_id,sex,age\na,M,50\nb,F\nc,M,40\n\nd,"F, 2",41,9\n', encoding="utf-8")
    with pytest.raises(ValueError, match="malformed CSV rows") as e:
        read_checkups(p)
    # The lines are named (the blank line counts, the quoted comma does not split a field).
    assert "2 malformed CSV rows (not 3 fields): line 3 (2 fields), line 6 (4 fields);" in str(e.value)
    for stream in (iter_checkups(p, chunk_rows=1),):
        with pytest.raises(ValueError, match="line 3 \\(2 fields\\)"):
            list(stream)


# ---------------------------------------------------------------- streaming, parquet, gzip, records


@pytest.mark.parametrize("path", [NHIS_2020, NHIS_2014, BAD], ids=["nhis2020", "nhis2014", "bad"])
def test_iter_checkups_equals_read_checkups(path):
    whole = read_checkups(path)
    chunks = list(iter_checkups(path, chunk_rows=7))
    assert all(c.counts["rows_in"] <= 7 for c in chunks)
    combined = concat_results(chunks)
    pd.testing.assert_frame_equal(combined.frame, whole.frame)
    pd.testing.assert_frame_equal(combined.rejects, whole.rejects)
    assert combined.notes == whole.notes
    assert combined.counts == whole.counts


def test_parquet_round_trip(tmp_path):
    r = read_checkups(SMALL)
    p = tmp_path / "small.parquet"
    r.frame.reset_index(drop=True).to_parquet(p)
    back = read_checkups(p)
    pd.testing.assert_frame_equal(back.frame, r.frame.reset_index(drop=True), check_index_type=False)
    chunks = concat_results(iter_checkups(p, chunk_rows=8))
    pd.testing.assert_frame_equal(chunks.frame, back.frame)

    # An NHIS table saved as Parquet is still NHIS.
    raw = pd.read_csv(NHIS_2014, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    q = tmp_path / "nhis.parquet"
    raw.to_parquet(q)
    pd.testing.assert_frame_equal(read_checkups(q).frame, read_checkups(NHIS_2014).frame)


def test_gzip_csv(tmp_path):
    p = tmp_path / "nhis.csv.gz"
    p.write_bytes(gzip.compress(NHIS_2020.read_bytes()))
    pd.testing.assert_frame_equal(read_checkups(p).frame, read_checkups(NHIS_2020).frame)


def test_records_to_frame():
    recs = [
        {"person_id": 123, "exam_date": "2024-03-05", "sex": "M", "age": 61, "sbp": 135, "drinking": True},
        {"person_id": "p2", "exam_date": dt.date(2023, 1, 2), "sex": 2, "age_group": 12, "hdl": "48"},
        {"person_id": "p3", "sex": "F", "age": 45.5},
        {"person_id": "p4", "sex": "F", "age": 50, "smoking_status": 4, "urine_protein": None},
    ]
    r = records_to_frame(recs)
    _assert_canonical_dtypes(r.frame)
    # A fractional age is accepted (contract section 1: "a fraction, as from a birth date").
    assert r.frame.index.tolist() == [0, 1, 2] and r.frame.loc[2, "age"] == 45.5
    assert r.frame.loc[0, "person_id"] == "123" and r.frame.loc[0, "drinking"] == 1.0
    assert r.frame.loc[1, "sex"] == "F" and r.frame.loc[1, "hdl"] == 48.0
    assert r.frame.loc[1, "exam_date"] == pd.Timestamp("2023-01-02")
    assert r.rejects[["index", "field", "reason"]].values.tolist() == [
        [3, "smoking_status", "not an allowed code (1, 2, 3)"],
    ]


def test_empty_input():
    r = records_to_frame([])
    assert list(r.frame.columns) == list(schema.COLUMNS) and r.frame.empty and r.rejects.empty


# ---------------------------------------------------------------- columns that could mislead (issue 10)


def _write(tmp_path: Path, columns: dict) -> Path:
    p = tmp_path / "c.csv"
    pd.DataFrame(columns).to_csv(p, index=False)
    return p


def test_near_miss_column_is_an_error_naming_the_field(tmp_path):
    from features.readers import iter_checkups

    p = _write(tmp_path, {"person_id": ["a"], "sex": ["M"], "age": [50], "fasting_glucos": [140]})
    msg = "column 'fasting_glucos' is not a record field; did you mean 'fasting_glucose'?"
    with pytest.raises(ValueError, match=re.escape(msg)):
        read_checkups(p)
    with pytest.raises(ValueError, match=re.escape(msg)):
        next(iter_checkups(p))
    for col, field in (("sbp_mmhg", "sbp"), ("diabetes_1yr", "diabetes_1y"), ("glucose", "fasting_glucose")):
        p = _write(tmp_path, {"person_id": ["a"], "sex": ["M"], "age": [50], col: [1]})
        with pytest.raises(ValueError, match=re.escape(f"did you mean {field!r}")):
            read_checkups(p)


@pytest.mark.parametrize(
    ("column", "field", "header"),
    [
        ("수측기혈압", "sbp", "수축기혈압"),  # a mistyped syllable
        ("수축기혈압(mmHg)", "sbp", "수축기혈압"),  # a unit appended
        ("SBP", "sbp", "수축기혈압"),  # the canonical name in an NHIS file
        ("fasting glucose", "fasting_glucose", "식전혈당(공복혈당)"),
        ("Glucose", "fasting_glucose", "식전혈당(공복혈당)"),  # another name of the field
        ("식전혈당(mmol/L)", "fasting_glucose", "식전혈당(공복혈당)"),  # another unit: never ignored in silence
        ("요단백(1~6)", "urine_protein", "요단백"),  # its code range appended
        ("흡연상태코드", "smoking_status", "흡연상태"),  # "code" appended
    ],
)
def test_nhis_near_miss_header_is_an_error_naming_the_nhis_header(tmp_path, column, field, header):
    raw = pd.read_csv(NHIS_2020, dtype=str, encoding="cp949", keep_default_na=False)
    original = {"sbp": "수축기혈압", "fasting_glucose": "식전혈당(공복혈당)", "urine_protein": "요단백"}.get(
        field, "흡연상태"
    )
    p = tmp_path / "nhis.csv"
    raw.rename(columns={original: column}).to_csv(p, index=False, encoding="cp949")
    msg = f"column {column!r} is not an NHIS header this reader knows; did you mean {header!r} ({field})?"
    with pytest.raises(ValueError, match=re.escape(msg)):
        read_checkups(p)


def test_nhis_unrelated_extra_headers_are_still_ignored(tmp_path):
    raw = pd.read_csv(NHIS_2020, dtype=str, encoding="cp949", keep_default_na=False)
    # Other measures that share a stem with a field the file lacks: urine creatinine, post-meal
    # glucose, the waist ratio, a second SBP reading, VLDL.
    lacking = ["혈청크레아티닌", "식전혈당(공복혈당)", "허리둘레", "수축기혈압", "LDL콜레스테롤"]
    raw = raw.drop(columns=lacking).assign(
        요크레아티닌="1.0",
        식후혈당="140",
        허리둘레비="0.5",
        **{"수축기혈압(2차)": "120"},
        VLDL콜레스테롤="20",
        비고="x",
    )
    p = tmp_path / "nhis.csv"
    raw.to_csv(p, index=False, encoding="cp949")
    r = read_checkups(p)
    for field in ("serum_creatinine", "fasting_glucose", "waist_cm", "sbp", "ldl"):
        assert r.frame[field].isna().all(), field
    assert any("요크레아티닌" in n and "허리둘레비" in n for n in r.notes)


def test_canonical_spelling_variants_map_and_unrelated_columns_are_ignored(tmp_path):
    p = _write(
        tmp_path,
        {
            "person_id": ["a"],
            "sex": ["M"],
            "age": [50.5],
            "Fasting_Glucose ": [140],
            "Total Cholesterol": [200],
            "hemoglobin_a1c": [6.1],
            "region": ["x"],
            "family_history_cancer": [1],
            "cvd_1y": [0],
        },
    )
    r = read_checkups(p)
    assert r.rejects.empty
    assert r.frame.loc[0, "fasting_glucose"] == 140 and r.frame.loc[0, "total_cholesterol"] == 200
    assert r.frame.loc[0, "age"] == 50.5  # a fraction, as from a birth date
    assert "hemoglobin_a1c" not in r.frame.columns
    assert any("region" in n for n in r.notes)


def test_two_spellings_of_one_field_are_an_error(tmp_path):
    p = _write(tmp_path, {"person_id": ["a"], "sex": ["M"], "age": [50], "sbp": [120], "SBP": [130]})
    with pytest.raises(ValueError, match="both name the field 'sbp'"):
        read_checkups(p)


def test_absent_key_inputs_missing_or_all_empty(tmp_path):
    from features.readers import absent_input_notes, absent_key_inputs

    p = _write(
        tmp_path,
        {
            "person_id": ["a", "b"],
            "sex": ["M", "F"],
            "age": [50, 60],
            "fasting_glucose": ["", ""],
            "sbp": [120, ""],
            "dbp": [80, 70],
        },
    )
    absent = absent_key_inputs(p)
    assert "fasting_glucose" in absent and "hdl" in absent
    assert "sbp" not in absent and "dbp" not in absent
    assert "no fasting_glucose in this file: diabetes risks use no glucose" in absent_input_notes(absent)
    assert absent_key_inputs(NHIS_2020) == [] and absent_key_inputs(NHIS_2014) == []


# ---------------------------------------------------------------- files that hold no data, or another delimiter


@pytest.mark.parametrize("text", ["person_id,sex,age,sbp\n", "person_id,sex,age,sbp\r\n\r\n\n", "person_id,sex,age"])
def test_header_only_csv_is_refused_like_an_empty_file(tmp_path, text):
    path = tmp_path / "header.csv"
    path.write_text(text)
    for read in (read_checkups, lambda p: list(iter_checkups(p)), absent_key_inputs):
        with pytest.raises(ValueError, match=r"no data rows \(a header only\)"):
            read(path)


def test_header_only_parquet_is_refused(tmp_path):
    path = tmp_path / "header.parquet"
    pd.DataFrame({"person_id": pd.Series([], dtype=str), "sex": pd.Series([], dtype=str), "age": []}).to_parquet(path)
    with pytest.raises(ValueError, match="no data rows"):
        read_checkups(path)


def test_one_data_row_is_read(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("person_id,sex,age\na,M,50")  # no final line break
    assert read_checkups(path).rows_in == 1


@pytest.mark.parametrize(("sep", "named"), [(";", "';'"), ("\t", "tabs"), ("|", "'|'")])
def test_other_delimiter_is_named(tmp_path, sep, named):
    path = tmp_path / "semi.csv"
    path.write_text(sep.join(["person_id", "sex", "age", "sbp"]) + "\n" + sep.join(["a", "M", "50", "120"]) + "\n")
    with pytest.raises(ValueError) as e:
        read_checkups(path)
    assert str(e.value) == (
        f"{path}: only one column found; the file seems to use {named} as its delimiter: save it as comma-separated CSV"
    )


def test_one_column_file_without_other_delimiter_is_told_what_is_missing(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("person_id\na\n")
    with pytest.raises(ValueError, match="required columns missing"):
        read_checkups(path)


def test_impossible_calendar_dates_are_rejected_not_rolled_over():
    # Arrow's parser had read 2023-02-30 as 2023-03-02 and 2023-04-31 as 2023-05-01.
    raw = pd.DataFrame(
        {
            "person_id": list("abcdefg"),
            "exam_date": [
                "2023-02-30",
                "2023-04-31",
                "2023-02-29",
                "2023-01-99999999999999999999",  # had failed the whole file in the day check
                "2024-02-29",
                "2023-5-2",
                "20230502",
            ],
            "sex": "M",
            "age": 50,
        }
    )
    r = to_canonical(raw)
    _nothing_lost(r, 7)
    assert sorted(r.rejects["index"]) == [0, 1, 2, 3] and set(r.rejects["field"]) == {"exam_date"}
    assert r.frame["exam_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-02-29", "2023-05-02", "2023-05-02"]


def test_a_second_row_of_one_person_on_one_date_is_rejected_naming_the_first(tmp_path):
    from serving.batch_input import read_whole, validated_chunks

    path = tmp_path / "dup.csv"
    path.write_text(
        "person_id,exam_date,sex,age,sbp,dbp\n"
        "D1,2022-05-02,M,50,130,85\n"
        "D2,2022-05-02,F,50,130,85\n"
        "D1,2022-05-02,M,50,130,85\n"
        "D1,2023-05-02,M,51,131,85\n"
        "D1,2023-05-02,M,51,140,90\n"
    )
    rows_in, records, rejects = read_whole(path)
    assert list(records.index) == [0, 1, 3]
    assert rejects[["index", "field"]].values.tolist() == [[2, "exam_date"], [4, "exam_date"]]
    assert rejects["reason"].tolist() == [
        "the same person and exam date as row 1 (a person has one checkup a day): left out",
        "the same person and exam date as row 4 (a person has one checkup a day): left out",
    ]
    # Streamed two rows at a time, the repeats across chunks are found too: the same split.
    chunks = list(validated_chunks(path, 2))
    assert [i for _, r, _ in chunks for i in r.index] == [0, 1, 3]
    assert pd.concat([j for _, _, j in chunks])["reason"].tolist() == rejects["reason"].tolist()
    # The first valid copy is kept whichever way the file is read, also after an invalid one.
    flawed = tmp_path / "flawed.csv"
    flawed.write_text(
        "person_id,exam_date,sex,age,sbp,dbp\n"
        "X1,2022-01-01,M,,120,80\n"  # no age: a first chunk with no valid row
        "D1,2022-05-02,M,50,999,85\n"
        "D1,2022-05-02,M,50,130,85\n"
        "D1,2022-05-02,M,50,131,85\n"
    )
    for chunk_rows in (1, 2, 10):
        got = list(validated_chunks(flawed, chunk_rows))
        assert [i for _, r, _ in got for i in r.index] == [2], chunk_rows
        reasons = pd.concat([j for _, _, j in got]).set_index("index")["reason"]
        assert reasons[3].startswith("the same person and exam date as row 3 "), chunk_rows


def test_full_width_brackets_in_nhis_headers_are_the_headers(tmp_path):
    """Korean spreadsheets write （ ） for ( ): 식전혈당（공복혈당） is the glucose column, read, not ignored."""
    raw = pd.read_csv(NHIS_2020, dtype=str, encoding="cp949", keep_default_na=False)
    p = tmp_path / "nhis.csv"
    raw.rename(columns=lambda c: c.replace("(", "（").replace(")", "）")).to_csv(p, index=False, encoding="cp949")
    got, want = read_checkups(p), read_checkups(NHIS_2020)
    assert got.frame["fasting_glucose"].notna().sum() == want.frame["fasting_glucose"].notna().sum() > 0
    assert len(got.frame) == len(want.frame) and got.frame["age_group"].equals(want.frame["age_group"])


def test_the_reject_summary_says_what_its_top_reasons_leave_out():
    """Listed reasons covered 25 of 40 rejected rows, and nothing said there were others."""
    from features.rejects import summary

    rows = [(i, "sex", "not a sex code") for i in range(10)] + [(10 + i, f"f{i}", f"reason {i}") for i in range(8)]
    rejected, _, lines = summary(pd.DataFrame(rows, columns=["index", "field", "reason"]), 100, top=5)
    assert rejected == 18 and lines[1] == "  10 rows: sex: not a sex code" and lines[2] == "  1 row: f0: reason 0"
    assert lines[-1] == "  and 4 more reasons (4 more rows): see the rejects file"
    # A reason naming another row is one reason, whichever row it names; where the rows are listed is said.
    dups = [(20 + i, "exam_date", f"the same person and exam date as row {i + 1}") for i in range(6)]
    _, _, lines = summary(pd.DataFrame(rows[:1] + dups, columns=["index", "field", "reason"]), 100, listed_in="x.csv")
    assert lines[1] == "  6 rows: exam_date: the same person and exam date as row N"


def test_a_file_that_is_neither_utf8_nor_cp949_names_its_first_bad_line(tmp_path):
    """One corrupt byte ended the read with "'cp949' codec can't decode byte 0xff in position 6225"."""
    lines = NHIS_2020.read_bytes().split(b"\n")
    lines[5] = lines[5][:10] + b"\xff" + lines[5][10:]
    p = tmp_path / "corrupt.csv"
    p.write_bytes(b"\n".join(lines))
    msg = "line 6 (data row 5) is neither UTF-8 nor CP949 text (byte 0xff): fix or remove that line"
    with pytest.raises(ValueError, match=re.escape(msg)):
        read_checkups(p)


def test_an_nhis_file_keeps_its_outcome_labels_and_scoring_never_rejects_for_one(tmp_path):
    # Labels linked to an NHIS file had been dropped as "not used by the model", so `train` said the
    # file had none; a label that is not a number rejects the row for training, never for scoring.
    raw = pd.read_csv(NHIS_2020, encoding="cp949", dtype=str)
    raw["Hypertension_1y"] = ["0", "1"] * (len(raw) // 2) + ["0"] * (len(raw) % 2)
    raw.loc[3, "Hypertension_1y"] = "yes"
    path = tmp_path / "nhis_labelled.csv"
    raw.to_csv(path, index=False, encoding="cp949")
    read = read_checkups(path)
    labels = read.frame["hypertension_1y"]
    assert labels.isin([0.0, 1.0]).all() and labels.sum() == (raw["Hypertension_1y"] == "1").loc[labels.index].sum()
    assert not [n for n in read.notes if "ignored" in n and "1y" in n]
    assert 3 in set(read.rejects["index"]) and "hypertension_1y" in set(read.rejects["field"])
    reason = read.rejects.loc[read.rejects["field"] == "hypertension_1y", "reason"].iloc[0]
    assert reason == "not a number: a label is 0 (no event), 1 (event) or empty (not eligible)"
    for_scoring = read_checkups(path, labels=False)
    assert 3 not in set(for_scoring.rejects["index"]) and len(for_scoring.frame) == len(read.frame) + 1
    streamed = concat_results(list(iter_checkups(path, chunk_rows=7, labels=False)))
    assert len(streamed.frame) == len(for_scoring.frame)


def test_a_file_without_the_questionnaire_says_known_conditions_cannot_be_ruled_out(tmp_path):
    from features.eligibility import ALL_FLAGS as FLAG_COLUMNS
    from features.readers import header_notes

    path = tmp_path / "no_questionnaire.csv"
    pd.DataFrame([{"person_id": "a", "sex": "M", "age": 50, "sbp": 120, "on_statin": 0}]).to_csv(path, index=False)
    [note] = [n for n in header_notes(path) if "cannot be ruled out" in n]
    # on_statin is there: dyslipidemia's treatment can be checked; the others cannot.
    assert note.startswith("no history or treatment column for cvd, diabetes, hypertension, ckd:")
    full = tmp_path / "full.csv"
    pd.DataFrame([{"person_id": "a", "sex": "M", "age": 50, **dict.fromkeys(FLAG_COLUMNS, 0)}]).to_csv(
        full, index=False
    )
    assert not [n for n in header_notes(full) if "cannot be ruled out" in n]


def test_a_quote_left_open_names_the_line_it_starts_on_and_never_a_traceback(tmp_path):
    p = tmp_path / "open_quote.csv"
    p.write_text('person_id,sex,age\na,M,50\nb,"F,40\nc,M,40\nd,F,41\n', encoding="utf-8")
    with pytest.raises(ValueError, match="opened on line 3 is never closed"):
        read_checkups(p)
    # The quote runs to the end of a long file: said in one line, never a traceback.
    long = tmp_path / "long_open_quote.csv"
    long.write_text('person_id,sex,age\na,M,50\nb,"F,40\n' + "c,M,40\n" * 30_000, encoding="utf-8")
    with pytest.raises(ValueError, match="opened on line 3 is never closed"):
        read_checkups(long)
    multi = tmp_path / "multi.csv"
    multi.write_text('person_id,sex,age\na,M,50\nb,"F\nx",40,9\nc,M,40\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 3 \(4 fields\)"):  # the record starts on line 3
        read_checkups(multi)


def test_a_quoted_field_left_open_near_the_end_is_refused_not_a_silent_loss(tmp_path):
    # The parser had read every later line into the open field: 12 rows in, 5 "read", no error.
    rows = [f"p{i},M,{50 + i},note {i}" for i in range(12)]
    rows[5] = 'p5,M,55,"unterminated note'
    p = tmp_path / "open_note.csv"
    p.write_text("person_id,sex,age,note\n" + "\n".join(rows) + "\n", encoding="utf-8")
    for read in (lambda: read_checkups(p), lambda: list(iter_checkups(p, chunk_rows=4))):
        with pytest.raises(ValueError, match="quoted field opened on line 7 is never closed"):
            read()
    # A quote inside an unquoted field is a plain character, whatever the count of quotes.
    literal = tmp_path / "literal.csv"
    literal.write_text('person_id,sex,age,note\np0,M,50,5"10 tall\np1,M,51,"a, b"\n', encoding="utf-8")
    assert len(read_checkups(literal).frame) == 2


def test_a_dipstick_written_as_labs_print_it_is_read_and_a_negative_is_not_missing(tmp_path):
    # "-" is a missing value elsewhere, but the negative grade here (it had read as "not measured").
    p = tmp_path / "x.csv"
    rows = ["-", "±", "1+", "++", "+++", "4+", "음성", "trace", "3", ".", ""]
    p.write_text(
        "person_id,sex,age,urine_protein\n" + "".join(f"p{i},M,50,{v}\n" for i, v in enumerate(rows)), encoding="utf-8"
    )
    r = read_checkups(p)
    assert r.rejected_rows == 0
    got = r.frame["urine_protein"].tolist()
    assert got[:9] == [1, 2, 3, 4, 5, 6, 1, 2, 3] and np.isnan(got[9]) and np.isnan(got[10])
