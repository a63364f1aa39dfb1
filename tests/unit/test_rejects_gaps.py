"""HistoryGaps: valid rows of persons who also have a rejected row, as `score` (both engines) and
`train` count them for their WARNING line."""

import pandas as pd

from features.rejects import HistoryGaps, history_gap, same_day


def test_gaps_count_valid_rows_of_persons_with_a_lost_row_but_not_a_same_day_repeat():
    gaps = HistoryGaps()
    records = pd.DataFrame({"person_id": ["A", "A", "B", "C"]})
    rejects = pd.DataFrame(
        {
            "index": [4, 5, 6],
            "person_id": ["A", "B", None],
            "field": ["waist_cm", "exam_date", "person_id"],
            "value": ["30", "2020-01-01", ""],
            "reason": ["outside 40-200", same_day(2), "missing"],
        }
    )
    gaps.update(records, rejects)
    assert gaps.counts() == {"history_gap_rows": 2, "history_gap_persons": 1}  # A only: B's is a repeat
    assert history_gap(2, 1, "x.csv").startswith("2 valid rows are of 1 person who also have a rejected row")
