"""Provenance of training data (issue 11): detection, the stored shape, the texts, the CDS setting,
the calm-alert table and the `serve` hints. No model is fitted here."""

import pandas as pd
import pytest

from features.schema import OUTCOMES, true_risk_column
from features.synth import generate_cohort
from models import provenance
from models.outcomes import OUTCOME_SPECS
from serving import cds_cards as cds
from serving.settings import ALLOW_SYNTHETIC_ENV, Settings
from training.card import _provenance_lines


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate_cohort(people=60, seed=5)


def test_synthetic_cohort_is_detected_with_persons_and_checkups_apart(cohort):
    info = provenance.detect(cohort)
    assert info["kind"] == "synthetic"
    assert info["persons"] == cohort["person_id"].nunique() == 60
    assert info["checkups"] == len(cohort) > info["persons"]  # several checkups per person
    dates = pd.to_datetime(cohort["exam_date"])
    assert info["first_exam"] == dates.min().date().isoformat()
    assert info["last_exam"] == dates.max().date().isoformat()


def test_data_without_true_risks_are_real(cohort):
    real = cohort.drop(columns=[true_risk_column(o) for o in OUTCOMES]).assign(
        person_id=lambda d: "H-" + d["person_id"].str[1:]
    )
    assert provenance.detect(real)["kind"] == "real" and provenance.detect(real)["basis"] is None
    # One true-risk column is enough: only the generator knows a person's true risk.
    one = real.assign(**{true_risk_column("ckd"): 0.01})
    assert provenance.detect(one)["kind"] == "synthetic"
    assert provenance.detect(one)["basis"] == "true_risk_columns"


def test_synthetic_ids_mark_a_file_whose_true_risks_were_dropped(cohort):
    # Dropping the true-risk columns does not make the generator's people real (an outside tester
    # got a CDS risk card that way): the generator's ids, every one of them, still say synthetic.
    laundered = cohort.drop(columns=[true_risk_column(o) for o in OUTCOMES])
    info = provenance.detect(laundered)
    assert info["kind"] == "synthetic" and info["basis"] == "person_ids"
    assert "every person_id has the form `checkup-risk synth` gives" in provenance.summary_en(info)
    # One id of another form among them: not all the generator's, so not judged by the ids.
    mixed = laundered.copy()
    mixed.loc[0, "person_id"] = "H12345"
    assert provenance.detect(mixed)["kind"] == "real"
    assert provenance.normalise(info) == info  # the basis is kept in the manifest


def test_missing_or_unreadable_provenance_is_unknown():
    assert provenance.normalise(None) == provenance.unknown()
    assert provenance.normalise({"kind": "made-up"})["kind"] == "unknown"
    assert provenance.normalise({"kind": "real", "persons": 3, "extra": 1}) == {
        "kind": "real",
        "persons": 3,
        "checkups": None,
        "first_exam": None,
        "last_exam": None,
        "basis": None,
        "sexes": None,
        "age_bands": None,
    }
    assert not provenance.is_synthetic(provenance.unknown())
    assert "not recorded" in provenance.summary_en(provenance.unknown())


def test_notice_counts_persons_and_checkups_in_both_languages(cohort):
    info = provenance.detect(cohort)
    ko, en = provenance.synthetic_notice(info, "ko"), provenance.synthetic_notice(info, "en")
    assert f"가상 인물 {info['persons']:,}명" in ko and f"검진 {info['checkups']:,}건" in ko and "진료" in ko
    assert f"{info['persons']:,} persons, {info['checkups']:,} checkups" in en and "Not for clinical use" in en
    assert provenance.synthetic_notice(info) == f"{ko} · {en}"


def test_model_card_states_provenance(cohort):
    info = provenance.detect(cohort)
    lines = _provenance_lines(info)
    assert "**synthetic**" in lines[0] and f"{info['persons']:,} persons" in lines[0]
    assert "not for clinical use" in lines[1]
    real = _provenance_lines({**info, "kind": "real"})
    assert len(real) == 1 and "**real**" in real[0]
    assert _provenance_lines(None) == []


@pytest.mark.parametrize(
    "raw,expected",
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("true", True), (" YES ", True)],
)
def test_allow_synthetic_setting(raw, expected):
    environ = {} if raw is None else {ALLOW_SYNTHETIC_ENV: raw}
    assert Settings.from_env(environ).allow_synthetic is expected


def test_a_misspelt_allow_synthetic_stops_start_up():
    with pytest.raises(ValueError, match=ALLOW_SYNTHETIC_ENV):
        Settings.from_env({ALLOW_SYNTHETIC_ENV: "on please"})


def test_indicators_are_calm():
    assert set(cds.INDICATOR.values()) == {"info", "warning"}
    assert cds.INDICATOR["high"] == cds.INDICATOR["very_high"] == "warning"
    assert cds.INDICATOR["low"] == cds.INDICATOR["moderate"] == "info"


def test_every_outcome_and_category_has_a_next_step_that_fits_the_summary():
    categories = ("low", "moderate", "high", "very_high")
    assert set(cds.NEXT_STEPS) == set(OUTCOME_SPECS)
    for outcome, row in cds.NEXT_STEPS.items():
        assert set(row) == set(categories), outcome
        for category, (ko, en) in row.items():
            assert ko and en
            # The longest shown risks ("<0.01%", "99.9%") and a typical one.
            for p in (1e-6, 0.0031, 0.999, 0.1234):
                text = cds.summary_text(outcome, category, p)
                assert len(text) < 140, text
                assert len(cds.summary_text(outcome, category, p, rough=True)) < 140, text
                assert ko in text and en in text and OUTCOME_SPECS[outcome].short_ko in text


def test_summary_reads_as_the_issue_asks():
    text = cds.summary_text("hypertension", "high", 0.18)
    risk = cds.risk_text(0.18)  # the report's precision rule, shared
    assert text == (
        f"고혈압 1년 위험 높음({risk}): 가정혈압 측정·생활습관 상담 / "
        f"High 1-yr hypertension risk ({risk}): home BP monitoring, lifestyle counselling"
    )


def test_serve_hints_name_a_synthetic_model(cohort):
    from checkup_risk_cli import _provenance_hints

    info = provenance.detect(cohort)
    off = "\n".join(_provenance_hints(info, allow_synthetic=False))
    assert "SYNTHETIC" in off and "not for clinical use" in off and f"{ALLOW_SYNTHETIC_ENV}=1" in off
    assert "no cards" in off
    on = "\n".join(_provenance_hints(info, allow_synthetic=True))
    assert "CDS cards are on" in on
    real = _provenance_hints({**info, "kind": "real"}, allow_synthetic=False)
    assert len(real) == 1 and real[0].startswith("trained on real data")


def test_an_exam_five_years_ago_today_is_five_years_old():
    import datetime as dt

    from serving.scoring import exam_age, staleness

    today = dt.date(2026, 12, 1)
    assert exam_age(dt.date(2021, 12, 1), today)[0] == 5  # days / 365.25 had said 4
    assert exam_age(dt.date(2021, 12, 2), today)[0] == 4
    assert exam_age(dt.date(2024, 2, 29), dt.date(2025, 2, 28))[0] == 0
    said = staleness(dt.date(2026, 8, 1), today, 100)
    assert said is not None and "has partly passed" in said and "122 days old" in said
    assert "has passed" in (staleness(dt.date(2021, 12, 1), today, 730) or "")
