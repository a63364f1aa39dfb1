"""`score` and `validate` say loudly when rows are rejected (outside finding M8), as `train` does:
the count, the share and the top reasons on stderr, and `score` a final WARNING line past 20%
(exit 0: both files are written, every row is in one; but a run that scored no row at all fails, exit
2, files written). Files that hold no data (L5) or use
another delimiter (L6) are refused in one line."""

from pathlib import Path

import pandas as pd
import pytest

from checkup_risk_cli import DEFAULT_MAX_REJECT_SHARE, build_parser
from tests.integration.conftest import model_home
from tests.integration.test_cli import cli

GOOD = {"person_id": "p0", "exam_date": "2025-06-10", "sex": "M", "age": 55, "sbp": 128, "dbp": 82}


def _file(path: Path, bad: int, good: int = 1) -> Path:
    rows = [{**GOOD, "person_id": f"g{i}"} for i in range(good)]
    rows += [{**GOOD, "person_id": f"b{i}", "sbp": "abc"} for i in range(bad)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def home(model_template, tmp_path_factory) -> Path:
    return model_home(model_template, tmp_path_factory.mktemp("rejects") / "home")


def test_defaults_match_train():
    from features.rejects import MAX_REJECT_SHARE

    assert DEFAULT_MAX_REJECT_SHARE == MAX_REJECT_SHARE
    args = build_parser().parse_args("train --data x.csv".split())
    assert args.max_reject_share == MAX_REJECT_SHARE and args.allow_rejects is False


def test_score_most_rows_rejected_says_so_loudly_and_keeps_both_files(home, tmp_path):
    src = _file(tmp_path / "hdr2.csv", bad=20)
    out = tmp_path / "scores.csv"
    r = cli("score", "--input", src, "--output", out, home=home)
    assert "21 rows in, 1 scored" in r.stdout and "20 rejected" in r.stdout
    assert "rejected 20 of 21 rows (95.2%):" in r.stderr
    assert "  20 rows: sbp: not a number" in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("WARNING: 20 of 21 rows (95%) were rejected, more than the 20% allowed")
    # Nothing is lost: the scored row and the rejects are written (contract section 4: exit 0).
    assert len(pd.read_csv(out)) == 1
    assert pd.read_csv(f"{out}.rejects.csv")["row"].nunique() == 20


def test_score_that_scores_no_row_fails_and_still_writes_the_rejects(home, tmp_path):
    # A scheduled job saw exit 0 and passed on an empty file (outside tester).
    src = _file(tmp_path / "allbad.csv", bad=5, good=0)
    out = tmp_path / "none.csv"
    r = cli("score", "--input", src, "--output", out, home=home, check=False)
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .endswith(f"none of the 5 rows could be scored: each is in {out}.rejects.csv with its reason")
    )
    assert pd.read_csv(f"{out}.rejects.csv")["row"].nunique() == 5


def test_score_few_rejects_have_a_summary_and_no_warning(home, tmp_path):
    r = cli("score", "--input", _file(tmp_path / "a.csv", bad=1, good=9), "--output", tmp_path / "a_out.csv", home=home)
    assert "rejected 1 of 10 rows (10.0%):" in r.stderr and "  1 row: sbp: not a number" in r.stderr
    assert "were rejected, more than" not in r.stderr
    # The template model learned from synthetic people: the command says so.
    assert "synthetic (simulated) people" in r.stderr
    r = cli("score", "--input", _file(tmp_path / "b.csv", bad=0, good=3), "--output", tmp_path / "b_out.csv", home=home)
    assert "rejected" not in r.stderr


def test_score_says_which_columns_it_ignored(home, tmp_path):
    """A column the record does not hold is named once, from the header, as `validate` names it."""
    src = tmp_path / "extra.csv"
    pd.DataFrame([{**GOOD, "clinic_code": "A1", "glucose_fast": 99}]).to_csv(src, index=False)
    r = cli("score", "--input", src, "--output", tmp_path / "extra_out.csv", home=home)
    assert r.stderr.count("note: ignored columns not in the canonical record: clinic_code, glucose_fast") == 1
    assert "note: no fasting_glucose in this file" in r.stderr


def test_validate_prints_the_same_summary(tmp_path):
    r = cli("validate", _file(tmp_path / "v.csv", bad=20), home=tmp_path, check=False)
    assert r.returncode == 1 and "FAILED" in r.stdout
    assert "rejected 20 of 21 rows (95.2%):" in r.stderr and "  20 rows: sbp: not a number" in r.stderr


def test_validate_says_when_its_listing_stops_short(tmp_path):
    src = tmp_path / "many.csv"
    pd.DataFrame([{**GOOD, "person_id": f"p{i}", "sbp": 300} for i in range(25)]).to_csv(src, index=False)
    r = cli("validate", src, home=tmp_path, check=False)
    assert r.returncode == 1
    assert "  ... 5 more not listed (the first 20 shown; --max-rows N lists more)" in r.stdout
    r = cli("validate", src, "--max-rows", "30", home=tmp_path, check=False)
    assert "more not listed" not in r.stdout and r.stdout.count("sbp = 300") >= 25


def test_validate_counts_the_label_values_train_would_reject(tmp_path):
    rows = [{**GOOD, "person_id": f"g{i}", "cvd_1y": 0, "diabetes_1y": 0} for i in range(7)]
    rows[0]["cvd_1y"], rows[1]["cvd_1y"], rows[2]["diabetes_1y"] = 2, "yes", -1
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    r = cli("validate", tmp_path / "labels.csv", home=tmp_path, check=False)
    assert r.returncode == 1 and "rejected 3 of 7 rows" in r.stderr, r.stderr
    assert "FAILED" in r.stdout
    # A file without labels is judged as score judges it.
    pd.DataFrame(rows).drop(columns=["cvd_1y", "diabetes_1y"]).to_csv(tmp_path / "plain.csv", index=False)
    assert "PASSED" in cli("validate", tmp_path / "plain.csv", home=tmp_path).stdout


def test_header_only_and_semicolon_files_are_refused_in_one_line(home, tmp_path):
    (tmp_path / "header.csv").write_text("person_id,sex,age,sbp\n")
    (tmp_path / "semi.csv").write_text("person_id;sex;age;sbp\np1;M;50;120\n")
    for name, reason in (
        ("header.csv", "no data rows (a header only)"),
        ("semi.csv", "only one column found; the file seems to use ';' as its delimiter"),
    ):
        score = ("score", "--input", tmp_path / name, "--output", tmp_path / "o.csv")
        for args in (("validate", tmp_path / name), score):
            r = cli(*args, home=home, check=False)
            assert r.returncode == 2, (args, r.stdout, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and reason in lines[0], (args, r.stderr)
            assert "PASSED" not in r.stdout and "0 rows" not in r.stdout
    assert not (tmp_path / "o.csv").exists()


def test_files_that_cannot_be_read_are_one_line_not_a_traceback(home, tmp_path):
    import gzip

    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(b"person_id,sex,age\np1,M,50\n" * 50)[:40])
    for args in (
        ("report", "--input", tmp_path, "--out", tmp_path / "r.html"),
        ("validate", tmp_path / "folder.csv"),
        ("validate", tmp_path / "cut.csv.gz"),
        ("score", "--input", tmp_path / "cut.csv.gz", "--output", tmp_path / "o.csv"),
    ):
        r = cli(*args, home=home, check=False)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"checkup-risk {args[0]}: "), (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_score_says_which_waists_it_read_as_not_measured(home, tmp_path):
    """NHIS writes 999 for a waist not measured: validate said so and score did not."""
    from tests.integration.test_cli import FIXTURES

    raw = pd.read_csv(FIXTURES / "nhis_2020_sample.csv", dtype=str, encoding="cp949", keep_default_na=False)
    raw.loc[raw.index[:3], "허리둘레"] = "999"
    not_measured = int(pd.to_numeric(raw["허리둘레"], errors="coerce").eq(999).sum())  # the fixture has some too
    src = tmp_path / "nhis.csv"
    raw.to_csv(src, index=False, encoding="cp949")
    r = cli("score", "--input", src, "--output", tmp_path / "s.csv", home=home)
    assert f"note: waist 999 (NHIS: not measured) treated as missing in {not_measured} rows" in r.stderr
    assert "the NHIS open data hold no questionnaire" in r.stderr
