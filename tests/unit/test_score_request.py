"""The /score request model: person ids as the file readers take them, one checkup a person a day."""

import pytest
from pydantic import ValidationError

from features.schema import EXAMPLE_RECORD
from serving.schemas import ScoreRequest, errors_from


def _errors(*records: dict) -> list[dict]:
    with pytest.raises(ValidationError) as got:
        ScoreRequest.model_validate({"checkups": list(records)})
    return errors_from(got.value)


def test_person_ids_are_trimmed_and_a_blank_one_is_refused():
    ok = ScoreRequest.model_validate({"checkups": [dict(EXAMPLE_RECORD, person_id="  A1 ")]})
    assert ok.checkups[0].person_id == "A1"  # as a file's " A1 " is read
    [error] = _errors(dict(EXAMPLE_RECORD, person_id="   "))
    assert error["index"] == 0 and error["field"] == "person_id"


def test_a_trimmed_id_is_the_same_person_on_the_same_day():
    [error] = _errors(dict(EXAMPLE_RECORD, person_id="A1"), dict(EXAMPLE_RECORD, person_id=" A1"))
    assert error["index"] == 1 and error["field"] == "exam_date" and "record 0" in error["message"]


def test_an_exam_date_with_a_time_of_day_is_that_day():
    # Files read "2023-05-02 09:30:00" as the day; a request had been refused with a library message.
    for sent in ("2023-05-02T09:30:00", "2023-05-02 23:59:59+09:00", "2023-05-02T00:00:00Z", " 2023-05-02 "):
        ok = ScoreRequest.model_validate({"checkups": [dict(EXAMPLE_RECORD, exam_date=sent)]})
        assert ok.checkups[0].exam_date.isoformat() == "2023-05-02", sent
    [error] = _errors(dict(EXAMPLE_RECORD, exam_date="2023-02-30T10:00:00"))
    assert error["index"] == 0 and error["field"] == "exam_date"


def test_a_number_is_no_exam_date():
    # 1758067200 had been read as a Unix time (2025-09-17) and 20250917 refused in a library's words.
    for sent in (1758067200, 1758067200.0, "1758067200", 20250917, "20250917"):
        [error] = _errors(dict(EXAMPLE_RECORD, exam_date=sent))
        assert error["field"] == "exam_date" and "ISO date (YYYY-MM-DD)" in error["message"], sent


def test_today_in_seoul_is_never_in_the_future():
    # On a server whose clock runs on UTC, 00:00-09:00 in Seoul is still yesterday: a same-day
    # checkup had been refused as "in the future".
    import datetime as dt

    from features.schema import latest_today

    seoul_today = dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date()
    assert latest_today() >= seoul_today >= dt.date.today() - dt.timedelta(days=1)
    for sent in (seoul_today.isoformat(), f"{seoul_today.isoformat()}T00:30:00+09:00"):
        ok = ScoreRequest.model_validate({"checkups": [dict(EXAMPLE_RECORD, exam_date=sent)]})
        assert ok.checkups[0].exam_date == seoul_today
    [error] = _errors(dict(EXAMPLE_RECORD, exam_date=(latest_today() + dt.timedelta(days=1)).isoformat()))
    assert error["field"] == "exam_date" and "today" in error["message"]


def test_a_person_id_with_a_control_character_is_refused():
    [error] = _errors(dict(EXAMPLE_RECORD, person_id="\u0000x"))
    assert error["field"] == "person_id" and "control character" in error["message"]
    ok = ScoreRequest.model_validate({"checkups": [dict(EXAMPLE_RECORD, person_id="김철수-07 ")]})
    assert ok.checkups[0].person_id == "김철수-07"


def test_a_misspelt_field_names_the_field_it_likely_means():
    # As `validate` does for a file's column: "unknown field" alone left a new user guessing.
    near, far = _errors(dict(EXAMPLE_RECORD, fasting_glucos=100, wibble=1))
    assert near == {"index": 0, "field": "fasting_glucos", "message": "unknown field; did you mean 'fasting_glucose'?"}
    assert far == {"index": 0, "field": "wibble", "message": "unknown field"}


def test_a_value_out_of_range_gives_the_range_unit_and_likely_unit_slip_as_a_file_does():
    [error] = _errors(dict(EXAMPLE_RECORD, fasting_glucose=5.8))  # sent in mmol/L
    assert error == {
        "index": 0,
        "field": "fasting_glucose",
        "message": "is outside the plausible range 30-700 mg/dL; it looks like mmol/L (x 18.02 gives mg/dL)",
    }
    [error] = _errors(dict(EXAMPLE_RECORD, height_cm=1.72))
    assert error["message"] == "is outside the plausible range 120-220 cm; it looks like m (x 100 gives cm)"
    [error] = _errors(dict(EXAMPLE_RECORD, fasting_glucose=900))  # no unit makes it plausible
    assert error["message"] == "is outside the plausible range 30-700 mg/dL"


def test_a_dipstick_as_a_lab_writes_it_is_refused_with_the_codes_listed():
    # Files read "±" (features.readers); over HTTP the record takes the codes, and says which.
    [error] = _errors(dict(EXAMPLE_RECORD, urine_protein="±"))
    assert error["index"] == 0 and error["field"] == "urine_protein"
    assert error["message"] == "must be a dipstick code 1..6: 1 (-), 2 (±), 3 (1+), 4 (2+), 5 (3+), 6 (4+)"
    [error] = _errors(dict(EXAMPLE_RECORD, smoking_status="current"))
    assert error["message"] == "must be a code 1..3: 1 (never), 2 (former), 3 (current)"
    [error] = _errors(dict(EXAMPLE_RECORD, sbp="134"))  # a measurement still just says number
    assert error["message"] == "must be a number"
    ok = ScoreRequest.model_validate({"checkups": [dict(EXAMPLE_RECORD, urine_protein=2)]})
    assert ok.checkups[0].urine_protein == 2  # what is accepted is unchanged
