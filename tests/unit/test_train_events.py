"""`train` stops before fitting when an outcome has too few events, naming each and the remedy."""

from __future__ import annotations

import pytest

from features.schema import label_column
from features.synth import generate_cohort
from training.train import check_events


@pytest.fixture(scope="module")
def rows():
    return generate_cohort(2000, 5)


def test_enough_events_passes(rows):
    check_events(rows, ("hypertension", "dyslipidemia"))


def test_short_outcomes_are_named_with_the_outcomes_that_can_be_trained(rows):
    few = rows.copy()
    for o in ("cvd", "ckd"):
        few[label_column(o)] = few[label_column(o)].where(few[label_column(o)].isna(), 0.0)
    with pytest.raises(ValueError) as err:
        check_events(few, ("cvd", "hypertension", "ckd"))
    text = str(err.value)
    assert "cvd (0 events in" in text and "ckd (0 events in" in text
    assert text.endswith("train the others with --outcomes hypertension")


def test_no_outcome_left_gives_no_remedy(rows):
    few = rows.copy()
    few[label_column("cvd")] = few[label_column("cvd")].where(few[label_column("cvd")].isna(), 0.0)
    with pytest.raises(ValueError, match=r"too few events to fit cvd \(0 events in [\d,]+ rows\) \(at least 10"):
        check_events(few, ("cvd",))


def test_a_tiny_file_says_how_many_persons_the_test_split_took(rows):
    # One person's file: the split held them out and "0 events in 0 rows" hid why.
    one = rows[rows["person_id"] == rows["person_id"].iloc[0]]
    with pytest.raises(
        ValueError, match=r"\(at least 10 among the training persons; 0 training persons, 1 more held out"
    ):
        check_events(one.iloc[:0], ("cvd",), held_out=one)
