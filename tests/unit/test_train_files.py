"""Training on the original cohort plus newly labelled checkups: `train --data A --data B`."""

import pandas as pd
import pytest

from features.rejects import R_SUPERSEDED
from features.synth import generate_cohort
from training.train import files_sha256, read_files


def test_later_files_add_checkups_and_replace_earlier_copies(tmp_path):
    cohort = generate_cohort(people=40, seed=3)
    first, second = tmp_path / "original.csv", tmp_path / "new-labels.csv"
    cohort.to_csv(first, index=False)
    # The newest checkup of five persons again, relabelled, and two checkups nobody had yet.
    again = cohort.sort_values("exam_date").groupby("person_id").tail(1).head(5).copy()
    again["cvd_1y"] = 1 - again["cvd_1y"]
    new = cohort.head(2).assign(person_id=["new-a", "new-b"])
    pd.concat([again, new]).to_csv(second, index=False)
    said = []
    read = read_files([first, second], said.append)
    assert read.rows_in == len(cohort) + 7
    assert len(read.frame) == len(cohort) + 2  # five replaced, two added
    superseded = read.rejects[read.rejects["reason"] == R_SUPERSEDED]
    assert len(superseded) == 5 and superseded["index"].max() < len(cohort)  # the earlier copies
    kept = read.frame.set_index(["person_id", "exam_date"])
    for _, row in again.iterrows():
        assert kept.loc[(row["person_id"], pd.Timestamp(row["exam_date"])), "cvd_1y"] == row["cvd_1y"]
    assert any("appear again in a later file" in s for s in said)
    assert files_sha256([first]) != files_sha256([first, second]) != files_sha256([second, first])


def test_bad_labels_and_repeated_checkups_are_rejected_before_fitting(tmp_path):
    # A label of 2 or 0.5 had gone into the fit and failed minutes later in scikit-learn, naming no
    # row; a duplicated row had been its own history.
    from training.train import read_and_check

    cohort = generate_cohort(people=60, seed=4)
    cohort.loc[3, "hypertension_1y"] = 2
    cohort.loc[7, "diabetes_1y"] = 0.5
    cohort.loc[9, "cvd_1y_true_risk"] = 1.7
    data = pd.concat([cohort, cohort.iloc[[11]]], ignore_index=True)  # row 11 again, as the last row
    path = tmp_path / "cohort.csv"
    data.to_csv(path, index=False)
    said: list[str] = []
    checked = read_and_check([path], ("cvd", "diabetes", "hypertension"), 0.2, said.append)
    assert checked.rejected == 4 and len(checked.records) == len(data) - 4
    assert not checked.records.index.isin([3, 7, 9, len(data) - 1]).any()
    text = "\n".join(said)
    assert "hypertension_1y must be 0, 1 or empty" in text and "diabetes_1y must be 0, 1 or empty" in text
    assert "cvd_1y_true_risk must be between 0 and 1" in text
    assert "the same person and exam date as row 12" in text


def test_labels_on_known_conditions_are_said_when_left_out(tmp_path):
    # Labels built as "any stroke or MI code in the year" mark people with a known stroke too: they
    # had been left out of the fit without a word.
    from training.train import read_and_check

    cohort = generate_cohort(people=300, seed=4)
    known = (cohort["history_stroke"] == 1) | (cohort["history_heart_disease"] == 1)
    cohort.loc[known, "cvd_1y"] = 1.0
    path = tmp_path / "cohort.csv"
    cohort.to_csv(path, index=False)
    said: list[str] = []
    read_and_check([path], ("cvd", "diabetes"), 0.2, said.append)
    [line] = [s for s in said if "left out: the outcome does not apply" in s]
    assert line.startswith(f"WARNING: cvd: {int(known.sum()):,} labelled rows") and "diabetes" not in line


def test_a_repeat_within_one_file_is_not_taken_for_a_later_files_copy(tmp_path):
    # With two files, a checkup twice in the same file had kept its LAST copy with the reason "in a
    # later file"; it is a repeat, whose first copy is kept, as with one file.
    from training.train import read_and_check

    cohort = generate_cohort(people=30, seed=6)
    again = cohort.iloc[[4]].assign(cvd_1y=1 - cohort.iloc[4]["cvd_1y"])
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.concat([cohort, again], ignore_index=True).to_csv(first, index=False)
    generate_cohort(people=5, seed=7).assign(person_id=lambda d: "other-" + d["person_id"]).to_csv(second, index=False)
    said: list[str] = []
    checked = read_and_check([first, second], ("cvd",), 0.2, said.append)
    assert checked.records.loc[4, "cvd_1y"] == cohort.iloc[4]["cvd_1y"]
    assert len(cohort) not in checked.records.index
    assert not any("appear again in a later file" in s for s in said)
    assert any("the same person and exam date as row 5" in s for s in said)


def test_missing_label_columns_name_the_outcomes_that_can_be_trained(tmp_path):
    from training.train import read_and_check

    path = tmp_path / "partial.csv"
    generate_cohort(people=20, seed=8).drop(columns=["ckd_1y", "dyslipidemia_1y"]).to_csv(path, index=False)
    outcomes = ("cvd", "diabetes", "hypertension", "dyslipidemia", "ckd")
    with pytest.raises(
        ValueError, match="lack label columns: dyslipidemia_1y, ckd_1y; .*--outcomes cvd,diabetes,hypertension$"
    ):
        read_and_check([path], outcomes, 0.2, lambda _: None)


@pytest.mark.parametrize("text", [",", " , ,"])
def test_an_empty_outcome_list_is_refused(text):
    # `--outcomes ,` had trained and registered a model of no outcome.
    from checkup_risk_cli import CliError, _outcomes

    with pytest.raises(CliError, match="names no outcome"):
        _outcomes(text)


def test_copies_replaced_by_a_later_file_do_not_count_toward_the_reject_limit(tmp_path):
    # Re-labelling a whole cohort (the same checkups again, newer labels) had stopped at 50% rejected.
    from training.train import read_and_check

    path = tmp_path / "cohort.csv"
    generate_cohort(people=40, seed=9).to_csv(path, index=False)
    said: list[str] = []
    checked = read_and_check([path, path], ("cvd",), 0.2, said.append)
    # Every first copy replaced, and said; replaced copies are not lost rows, so they are not counted
    # as rejected (a summary of "50% rejected" before training went on had read as a contradiction).
    assert any("appear again in a later file" in s for s in said)
    assert checked.rejected == 0 and f"rejected 0 of {len(checked.records):,} rows (0.0%)" in said
    assert checked.rows_in == len(checked.records) and checked.replaced == len(checked.records)
    assert checked.reasons.empty
