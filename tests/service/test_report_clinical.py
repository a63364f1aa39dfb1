"""The report read as a clinician reads it (outside reviewer): values that need evaluation now come
first on every channel; a glucose or blood pressure below normal is not "normal"; a known diabetes
or hypertension is judged against its target, not staged as if new; a rough model's what-if says
it cannot estimate, not "no meaningful change"; a medicine carried from an earlier checkup is
"recorded then", not "taken now"."""

import pytest

from features.cutoffs import CRITICAL
from features.labels import critical_findings
from serving import report as report_mod
from serving.report import build_context, render_html
from serving.scoring import CRITICAL_WARNING
from tests.service.test_report import visible_text
from tests.service.test_report_honesty import record


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


def test_critical_values_are_said_first(scorer):
    extreme = record(sbp=270, dbp=150, fasting_glucose=680, hemoglobin=4.0, alt=4800)
    (result,) = scorer.score_records([extreme], explain=False)
    first = result["warnings"][0]
    assert first.startswith(f"{CRITICAL_WARNING}: Systolic blood pressure ≥180 mmHg (severe hypertension:")
    assert "Fasting glucose ≥300 mg/dL" in first and "Hemoglobin <8 g/dL" in first and "ALT ≥500 U/L" in first
    assert "270" not in first  # the cut-off, never the value
    # The same findings, structured for a caller to act on (and the CDS card to render in Korean).
    assert [(c["field"], c["direction"], c["cutoff"]) for c in result["critical"]] == [
        ("sbp", "at_or_above", 180.0),
        ("dbp", "at_or_above", 110.0),
        ("fasting_glucose", "at_or_above", 300.0),
        ("hemoglobin", "below", 8.0),
        ("alt", "at_or_above", 500.0),
    ]
    assert first == f"{CRITICAL_WARNING}: " + "; ".join(c["message"] for c in result["critical"])
    en = visible_text(render_html(scorer, extreme, "en"))
    ko = visible_text(render_html(scorer, extreme, "ko"))
    # In the header, before even the synthetic-model notice.
    assert en.index("Values that need prompt clinical evaluation") < en.index("synthetic (simulated) people")
    assert "즉시 확인이 필요한 값" in ko and "중증 고혈압" in ko
    calm = visible_text(render_html(scorer, record(), "en"))
    assert "prompt clinical evaluation" not in calm
    (calm_result,) = scorer.score_records([record()], explain=False)
    assert calm_result["critical"] == []
    assert not [w for w in calm_result["warnings"] if CRITICAL_WARNING in w]


def test_every_critical_bound_is_reached_at_its_edge_and_not_before():
    # A high bound is reached at the bound (>=); a low one only under it (<): glucose 54 is not level 2.
    for c in CRITICAL:
        inside, outside = (c.bound, c.bound - 1e-6) if c.high else (c.bound - 1e-6, c.bound)
        assert critical_findings({c.feature: inside}.get, "en"), c
        assert not critical_findings({c.feature: outside}.get, "en"), c


def test_low_glucose_and_low_pressure_are_not_normal(scorer):
    text = visible_text(render_html(scorer, record(fasting_glucose=35, sbp=70, dbp=40), "en"))
    assert "below the reference range <70" in text and "hypotension range <90/60" in text
    assert "normal <100" not in text
    ko = visible_text(render_html(scorer, record(fasting_glucose=35, sbp=70, dbp=40), "ko"))
    assert "기준치 미만 <70" in ko and "저혈압 범위 <90/60" in ko
    treated = visible_text(render_html(scorer, record(fasting_glucose=60, on_diabetes_medication=1), "en"))
    assert "hypoglycemia range <70" in treated


def test_a_known_diabetes_and_hypertension_are_judged_against_their_targets(scorer):
    treated = record(
        history_diabetes=1, on_diabetes_medication=1, fasting_glucose=162, history_hypertension=1, sbp=128, dbp=82
    )
    text = visible_text(render_html(scorer, treated, "en"))
    assert "on diabetes treatment, above the fasting target 80–130" in text
    assert "diabetes suspected" not in text
    assert "diagnosed hypertension, below the usual 140/90 target" in text
    assert "prehypertension" not in text
    ko = visible_text(render_html(scorer, treated, "ko"))
    assert "당뇨병 치료 중, 공복 목표(80–130) 초과" in ko and "고혈압 진단, 목표(<140/90) 도달" in ko
    controlled = visible_text(render_html(scorer, record(on_diabetes_medication=1, fasting_glucose=95), "en"))
    assert "on diabetes treatment, within the fasting target 80–130" in controlled


def test_a_rough_models_what_if_says_it_cannot_estimate(scorer, monkeypatch):
    real = report_mod.what_if

    def cvd_flat(scorer_, rec, history=()):
        # Every other risk halves; CVD, the rough outcome here, moves less than its printed resolution.
        now, changes = real(scorer_, rec, history)
        return now, [
            (w, None if after is None else {o: p * (1 - 1e-4) if o == "cvd" else p / 2 for o, p in now.items()})
            for w, after in changes
        ]

    monkeypatch.setattr(report_mod, "what_if", cvd_flat)
    monkeypatch.setattr(scorer, "thin", {"cvd": (37, 273)})
    rec = record(smoking_status=3, sbp=152, dbp=94)
    ctx = build_context(scorer, rec, "en")
    keys = [o["key"] for o in ctx["outcomes"]]
    rows = [r for r in ctx["whatifs"] if r["cells"]]
    assert rows and "cvd" in keys
    for r in rows:
        assert r["cells"][keys.index("cvd")]["delta"] == "not estimable"
        assert r["cells"][keys.index("cvd")]["direction"] == "rough"

    # Rows where nothing else moves either are one line, which names what it cannot speak for.
    def flat(scorer_, rec_, history=()):
        now, changes = real(scorer_, rec_, history)
        return now, [(w, None if after is None else dict(now)) for w, after in changes]

    monkeypatch.setattr(report_mod, "what_if", flat)
    ctx = build_context(scorer, rec, "en")
    assert ctx["whatif_unchanged"] and not [r for r in ctx["whatifs"] if r["cells"]]
    assert "No meaningful change in the other risks (CVD: not estimable, rough model)" in visible_text(
        render_html(scorer, rec, "en")
    )


def test_a_checkup_between_one_and_two_years_old_says_its_months():
    import datetime as dt

    from serving.report import _age_words

    today = dt.date(2026, 12, 2)
    assert _age_words(dt.date(2025, 6, 1), today, "ko") == "1년 6개월"
    assert _age_words(dt.date(2025, 11, 1), today, "en") == "1 year 1 month"
    assert _age_words(dt.date(2025, 12, 2), today, "en") == "1 year"
    assert _age_words(dt.date(2023, 6, 2), today, "en") == "3 years"  # as the staleness warnings say it
    assert _age_words(dt.date(2023, 5, 31), dt.date(2024, 6, 30), "en") == "1 year 1 month"  # a month's end


def test_an_ldl_of_190_or_more_is_very_high_with_a_familial_hint(scorer):
    en = visible_text(render_html(scorer, record(ldl=195, total_cholesterol=280, family_history_cvd=1), "en"))
    assert "very high ≥190 (consider familial hypercholesterolemia)" in en
    ko = visible_text(render_html(scorer, record(ldl=195, total_cholesterol=280), "ko"))
    assert "매우 높음 ≥190 (가족성 고콜레스테롤혈증 감별 고려)" in ko
    assert "consider familial" not in visible_text(render_html(scorer, record(ldl=170), "en"))


def test_a_checkup_sent_without_its_date_says_today_was_assumed(scorer):
    undated = record(exam_date=None)
    assert "(no exam date sent: taken as today)" in visible_text(render_html(scorer, undated, "en"))
    assert "(검진일 미기재: 오늘로 간주)" in visible_text(render_html(scorer, undated, "ko"))
    assert "taken as today" not in visible_text(render_html(scorer, record(), "en"))


def test_at_80_or_older_the_blood_pressure_what_if_stops_under_hypertension(scorer):
    from serving.report import what_if_changes
    from tests.service.test_report_honesty import WITHIN

    (bp,) = [w for w in what_if_changes(record(age=85, sbp=156, dbp=88)) if w.key.startswith("bp")]
    assert bp.key == "bp_old" and bp.changes == {"sbp": 139.0, "dbp": 88}
    (young,) = [w for w in what_if_changes(record(age=60, sbp=156, dbp=88)) if w.key.startswith("bp")]
    assert young.key == "bp" and young.changes == {"sbp": 119.0, "dbp": 79.0}
    en = visible_text(render_html(scorer, record(age=85, sbp=156, dbp=88), "en"))
    assert "(80 or older: to just under the hypertension range)" in en
    calm = visible_text(render_html(scorer, record(**{**WITHIN, "age": 85, "sbp": 132, "dbp": 84}), "en"))
    assert "Every modifiable factor is within its target (at 80 or older" in calm
    assert "already in the normal range" not in calm


def test_at_80_or_older_the_weight_what_if_is_for_obesity_only_and_stops_under_it(scorer):
    from serving.report import what_if_changes

    def weight(**changes):
        return [w for w in what_if_changes(record(height_cm=160.0, **changes)) if w.key.startswith("bmi")]

    # BMI 24.2: pre-obesity, a what-if at 60, none at 85 (a lower weight is no goal of its own there).
    assert weight(age=60, weight_kg=62.0)[0].key == "bmi"
    assert weight(age=85, weight_kg=62.0) == []
    # BMI 27.3: at 85 to BMI 24.9 (63.7 kg), not to 22.9 (58.6 kg).
    (old,) = weight(age=85, weight_kg=70.0)
    assert old.key == "bmi_old" and old.changes == {"weight_kg": 63.7}
    (young,) = weight(age=60, weight_kg=70.0)
    assert young.changes == {"weight_kg": 63.0}  # BMI 22.9 is more than 10 % away: 10 % lost
    from tests.service.test_report_honesty import WITHIN

    calm = visible_text(
        render_html(scorer, record(**{**WITHIN, "age": 85, "height_cm": 160.0, "weight_kg": 62.0}), "en")
    )
    assert "Every modifiable factor is within its target (at 80 or older" in calm


def test_the_unchanged_line_names_the_rough_outcomes_and_speaks_for_none_when_all_are():
    from serving.report import _unchanged_label

    outcomes = [{"key": "cvd", "short": "CVD"}, {"key": "ckd", "short": "CKD"}]
    assert _unchanged_label(outcomes, {}, "en") == "No meaningful change in any risk"
    assert _unchanged_label(outcomes, {"cvd": (1, 2)}, "en").endswith("(CVD: not estimable, rough model)")
    assert _unchanged_label(outcomes, {"cvd": (1, 2), "ckd": (1, 2)}, "en").startswith("Not estimable (every model")


def test_a_record_of_sex_and_age_alone_gets_no_standing_and_says_why(scorer):
    from tests.service.test_report_honesty import bare

    ctx = build_context(scorer, bare(), "en")
    assert ctx["sparse_note"].startswith("11 of the 11 key inputs are missing")
    assert all(o["percentile"] is None for o in ctx["outcomes"])
    full = build_context(scorer, record(), "en")
    assert full["sparse_note"] is None and any(o["percentile"] for o in full["outcomes"])


def test_the_history_row_says_what_the_person_does_not_have_too(scorer):
    # Its bar is the whole group's: a lower CVD risk beside "family history of diabetes" came from
    # the stroke and heart disease the person does not have.
    text = visible_text(render_html(scorer, record(family_history_diabetes=1, history_stroke=0), "en"))
    assert "Family history of diabetes (no other history or medication)" in text
