"""Warnings when one person's checkups in a request disagree on age, whether each gives an age in
years or only its NHIS 5-year band (`age_group`)."""

import datetime as dt

import pytest

from serving.scoring import person_inconsistencies

EARLY, LATE = dt.date(2020, 5, 1), dt.date(2024, 5, 1)  # four years apart


def _warned(a: dict, b: dict) -> bool:
    out = person_inconsistencies([{"person_id": "p", **a}, {"person_id": "p", **b}], [EARLY, LATE])
    assert out[0] == []
    return any("age does not match the 4.0 years" in w for w in out[1])


@pytest.mark.parametrize(
    ("a", "b", "warned"),
    [
        ({"age": 50}, {"age": 54}, False),
        ({"age": 50}, {"age": 53}, False),  # a birthday just after the first checkup, ...
        ({"age": 50}, {"age": 55}, False),  # ... or just before the second one
        ({"age": 50}, {"age": 52}, True),  # had passed with a slack of two years
        ({"age": 50}, {"age": 59}, True),
        ({"age": 50}, {"age": 47}, True),
        ({"age_group": 11}, {"age_group": 11}, False),  # 50-54, then still 50-54 (50 -> 54)
        ({"age_group": 11}, {"age_group": 12}, False),  # 50-54 -> 55-59
        ({"age_group": 12}, {"age_group": 10}, True),  # 55-59 -> 45-49: younger four years on
        ({"age_group": 9}, {"age_group": 13}, True),  # 40-44 -> 60-64 in four years
        ({"age": 52}, {"age_group": 12}, False),
        ({"age": 52}, {"age_group": 9}, True),
        ({"age_group": 18}, {"age": 95}, False),  # 85+ has no upper end
        ({"age_group": 18}, {"age": 70}, True),
        ({}, {"age": 70}, False),  # nothing to compare
    ],
)
def test_ages_and_bands_are_checked_against_the_time_between(a, b, warned):
    assert _warned(a, b) is warned
