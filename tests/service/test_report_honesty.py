"""The report says only what is true: no "all within target" where the inputs were not measured or
no outcome applies (M4), no missing measurement drawn as a risk factor (M5), and a note on an
implausible derived BMI and on a what-if that raises a risk (L10)."""

import pytest

from features.derive import FEATURES
from features.labels import FEATURE_LABELS, GROUPS
from features.schema import BMI_PLAUSIBLE, EXAMPLE_RECORD
from serving import report as report_mod
from serving.report import bmi_note, build_context, render_html, risk_text
from serving.schemas import Checkup
from tests.service.test_report import visible_text

ALL_WITHIN_EN = "Every modifiable factor is already in the normal range"
ALL_WITHIN_KO = "조절 가능한 요인이 모두 정상 범위 안에 있습니다"
CANNOT_EN = "not measured, so the effect of changing them cannot be assessed"
CANNOT_KO = "측정되지 않아 조절 효과를 평가할 수 없습니다"
LEGEND_EN = "Bars: how far each factor raised"
LEGEND_KO = "막대: 각 요인이 위험을"
# Applicability excludes every outcome: stroke (cvd), diagnosed diabetes, hypertension and
# dyslipidemia, proteinuria 4+ (ckd); activity 2 days a week is still off its target.
NO_OUTCOME = {
    "history_stroke": 1,
    "history_diabetes": 1,
    "history_hypertension": 1,
    "history_dyslipidemia": 1,
    "urine_protein": 4,
}
# Every what-if input measured and in the normal range.
WITHIN = {
    "sbp": 112,
    "dbp": 72,
    "weight_kg": 62.0,
    "ldl": 90,
    "total_cholesterol": 170,
    "fasting_glucose": 88,
    "smoking_status": 1,
    "drinking": 0,
    "activity_days_per_week": 5,
}


def record(**changes) -> dict:
    return Checkup.model_validate({**EXAMPLE_RECORD, **changes}).model_dump()


def bare() -> dict:
    return Checkup.model_validate({"person_id": "z", "sex": "F", "age": 50}).model_dump()


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


def texts(scorer, rec) -> tuple[str, str]:
    return visible_text(render_html(scorer, rec, "en")), visible_text(render_html(scorer, rec, "ko"))


# -- M4: what the what-if and risk sections say -------------------------------------------------------


def test_nothing_measured_is_not_within_target(scorer):
    en, ko = texts(scorer, bare())
    assert ALL_WITHIN_EN not in en and ALL_WITHIN_KO not in ko
    assert CANNOT_EN in en and CANNOT_KO in ko
    for f in ("sbp", "fasting_glucose", "smoking_status", "height_cm", "weight_kg", "activity_days_per_week"):
        assert FEATURE_LABELS[f].en in en.split(CANNOT_EN)[0]
        assert FEATURE_LABELS[f].ko in ko
    # Nothing was measured: not even "the measured ones are within target".
    assert "that was measured is in the normal range" not in en


def test_no_applicable_outcome_says_so_and_draws_no_legend(scorer):
    rec = record(**NO_OUTCOME)
    ctx = build_context(scorer, rec, "en")
    assert ctx["outcomes"] == [] and len(ctx["not_applicable"]) == len(scorer.outcomes)
    en, ko = texts(scorer, rec)
    assert ALL_WITHIN_EN not in en and ALL_WITHIN_KO not in ko
    assert "No outcome applies to this person" in en and "해당하는 질환이 없어 추정할 1년 위험이 없습니다" in ko
    assert "No outcome applies, so there is no risk" in en and "해당하는 질환이 없어 조절 가능한" in ko
    assert LEGEND_EN not in en and LEGEND_KO not in ko
    assert "Category cut-offs" not in en


def test_all_within_target_only_when_measured_and_within(scorer):
    en, ko = texts(scorer, record(**WITHIN))
    assert ALL_WITHIN_EN in en and ALL_WITHIN_KO in ko
    assert CANNOT_EN not in en and CANNOT_KO not in ko
    assert LEGEND_EN in en  # outcomes apply: the legend is over their bars


def test_measured_within_target_but_some_missing_names_the_missing(scorer):
    rec = record(**{**WITHIN, "fasting_glucose": None, "drinking": None})
    en, ko = texts(scorer, rec)
    assert ALL_WITHIN_EN not in en and ALL_WITHIN_KO not in ko
    missing_line = en.split(CANNOT_EN)[0].rsplit(".", 1)[-1]
    assert FEATURE_LABELS["fasting_glucose"].en in missing_line and FEATURE_LABELS["drinking"].en in missing_line
    assert FEATURE_LABELS["sbp"].en not in missing_line
    assert "Every modifiable factor that was measured is in the normal range" in en
    assert "측정된 조절 가능한 요인은 모두 정상 범위 안에 있습니다" in ko


def test_table_with_a_missing_input_also_names_it(scorer):
    rec = record(fasting_glucose=None)  # smoking, BP, BMI, LDL ... are off target: the table is shown
    ctx = build_context(scorer, rec, "en")
    assert ctx["whatifs"] or ctx["whatif_unchanged"]
    assert any(FEATURE_LABELS["fasting_glucose"].en in line and CANNOT_EN in line for line in ctx["whatif_status"])
    assert not any(ALL_WITHIN_EN in line for line in ctx["whatif_status"])


# -- M5: a missing measurement is not a factor --------------------------------------------------------


def test_missing_measurements_are_not_drawn_as_factors(scorer):
    rec = bare()
    rec.update(sbp=150.0, dbp=95.0)  # only blood pressure measured (cf. the tester's 14_all_noeff)
    for lang in ("en", "ko"):
        ctx = build_context(scorer, rec, lang)
        assert ctx["outcomes"]
        for o in ctx["outcomes"]:
            bars = [r for r in o["waterfall"]["rows"] if r["kind"] == "bar"]
            names = {r["name"].rstrip(":") for r in bars[:-1]}
            for gid in ("liver", "glucose", "lipids", "weight", "kidney", "smoking", "hemoglobin", "waist"):
                assert GROUPS[gid].name(lang) not in names
            assert all(r["value"] != FEATURE_LABELS["sbp"].missing[lang] for r in bars[:-1])
            # The rest says that it holds what the missing inputs contributed.
            assert ("inputs not measured" if lang == "en" else "미측정 항목 포함") in bars[-1]["name"]
    # Additivity: the waterfall still ends at the headline risk.
    risks = scorer.score_records([dict(rec)], explain=True, top_k=5)[0]["risks"]
    en = visible_text(render_html(scorer, rec, "en"))
    for r in risks.values():
        if r["applicable"]:
            assert f"This person's risk {risk_text(r['probability'])}" in en


def test_fhir_rationale_and_cds_detail_list_no_unmeasured_factor(scorer):
    from features.labels import contribution_text
    from serving.cds_cards import detail
    from serving.fhir_out import _rationale

    rec = bare()
    rec.update(sbp=150.0, dbp=95.0)
    result = scorer.score_records([rec], explain=True, top_k=5)[0]
    applicable = [o for o, r in result["risks"].items() if r["applicable"]]
    assert applicable
    for o in applicable:
        text = _rationale(result, o, lambda c: contribution_text(c, "en"))
        assert "not measured" not in text
    assert "미측정" not in detail(result, "1", [])


def test_features_view_keeps_unmeasured_with_null_value(scorer):
    rec = record(fasting_glucose=None)
    result = scorer.score_records([rec], explain=True, top_k=len(FEATURES), detail="features")[0]
    listed = {c["feature"]: c for c in result["risks"]["diabetes"]["contributions"]}
    assert listed["fasting_glucose"]["value"] is None  # kept for data scientists, shown as missing
    grouped = scorer.score_records([dict(rec)], explain=True, top_k=len(GROUPS))[0]["risks"]["diabetes"]
    glucose = [c for c in grouped["contributions"] if c["feature"] == "glucose"]
    # tyg_index needs glucose too: nothing of the group was measured, so it is not a factor.
    assert glucose == []


# -- L10: notes on implausible values and on what-ifs that raise a risk -------------------------------


def test_implausible_bmi_gets_a_note(scorer):
    rec = record(height_cm=121.0, weight_kg=249.0)
    en, ko = texts(scorer, rec)
    assert "BMI 170.1" in en and "outside the plausible adult range" in en
    assert f"({BMI_PLAUSIBLE[0]:.0f}–{BMI_PLAUSIBLE[1]:.0f})" in en
    assert "성인에게 타당한 범위" in ko
    plain_en, _ = texts(scorer, record())
    assert "plausible adult range" not in plain_en


def test_bmi_note_bounds_come_from_the_schema():
    low, high = BMI_PLAUSIBLE
    height = 170.0
    at = {b: b * (height / 100.0) ** 2 for b in (low, high)}
    assert bmi_note({"height_cm": height, "weight_kg": at[low] + 0.01}, "en") is None
    assert bmi_note({"height_cm": height, "weight_kg": at[high] - 0.01}, "en") is None
    assert bmi_note({"height_cm": height, "weight_kg": at[low] - 0.5}, "en") is not None
    assert bmi_note({"height_cm": height, "weight_kg": at[high] + 0.5}, "ko") is not None
    assert bmi_note({"height_cm": None, "weight_kg": 300.0}, "en") is None


def test_what_if_that_raises_a_risk_is_shown_with_a_neutral_note(scorer, monkeypatch):
    real = report_mod.what_if

    def rising(scorer_, rec, history=()):
        now, changes = real(scorer_, rec, history)
        # Every estimate 5 pp higher than now: the model "finds no benefit" for this person.
        return now, [(w, None if after is None else {o: p + 0.05 for o, p in now.items()}) for w, after in changes]

    monkeypatch.setattr(report_mod, "what_if", rising)
    rec = record()
    for lang, note in (
        ("en", "The model found no benefit of this change for this person"),
        ("ko", "이 분에게서 모델이 이 변화의 이득을 찾지 못했습니다"),
    ):
        ctx = build_context(scorer, rec, lang)
        rows = [r for r in ctx["whatifs"] if r["cells"]]
        assert rows and all(c["raises"] for r in rows for c in r["cells"])  # shown, not hidden
        text = visible_text(render_html(scorer, rec, lang))
        assert note in text and "‡" in text
        assert ("not advice" if lang == "en" else "권고가 아닌") in text


def test_no_rise_no_note(scorer, monkeypatch):
    real = report_mod.what_if

    def falling(scorer_, rec, history=()):
        now, changes = real(scorer_, rec, history)
        return now, [(w, None if after is None else {o: p * 0.5 for o, p in now.items()}) for w, after in changes]

    monkeypatch.setattr(report_mod, "what_if", falling)
    text = visible_text(render_html(scorer, record(), "en"))
    assert "found no benefit" not in text and "‡" not in text
