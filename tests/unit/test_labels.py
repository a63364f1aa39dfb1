"""Clinical words for features, the official cut-offs, Korean eligibility reasons, reference percentiles."""

import numpy as np
import pytest

from features.derive import FEATURES
from features.eligibility import REASONS, reason_text
from features.labels import FEATURE_LABELS, JUDGEMENTS, judgement
from models import reference
from serving.report import _printed


def test_every_feature_has_words_in_both_languages():
    assert set(FEATURE_LABELS) == set(FEATURES)
    for name, label in FEATURE_LABELS.items():
        assert label.ko and label.en and label.ko != name and label.en != name
        for lang in ("ko", "en"):
            assert label.value_text(None, lang)
        if label.codes:
            assert set(label.codes["ko"]) == set(label.codes["en"])


@pytest.mark.parametrize(
    "feature, value, lang, text",
    [
        ("sbp", 152, "en", "152 mmHg"),
        ("age_years", 54, "ko", "54세"),
        ("smoking_status", 3, "ko", "현재 흡연"),
        ("smoking_status", 3, "en", "current"),
        ("urine_protein", 3, "en", "1+"),
        ("delta_sbp", 12, "en", "+12 mmHg"),
        ("last_ldl", None, "ko", "이전 기록 없음"),
        ("ldl", None, "en", "not measured"),
        ("serum_creatinine", 0.984, "en", "0.98 mg/dL"),
    ],
)
def test_values_read_like_a_checkup_result(feature, value, lang, text):
    assert FEATURE_LABELS[feature].value_text(value, lang) == text


@pytest.mark.parametrize(
    "feature, sex, value, level",
    [
        ("sbp", "M", 119, "normal"),
        ("sbp", "M", 120, "borderline"),
        ("sbp", "F", 140, "disease"),
        ("fasting_glucose", "M", 126, "disease"),
        ("hdl", "F", 39, "disease"),
        ("hdl", "F", 45, "borderline"),
        ("serum_creatinine", "M", 1.5, "normal"),
        ("serum_creatinine", "M", 1.51, "disease"),
        ("egfr", "M", 59.9, "disease"),
        ("ggt", "M", 70, "borderline"),
        ("ggt", "F", 70, "disease"),
        ("waist_cm", "M", 88, "normal"),
        ("waist_cm", "F", 88, "borderline"),
        ("urine_protein", "M", 3, "disease"),
    ],
)
def test_judgement_levels_follow_the_official_table(feature, sex, value, level):
    assert judgement(feature, sex).level(value) == level


def test_judgement_texts():
    assert judgement("sbp", "M").text("en", FEATURE_LABELS["sbp"]) == "hypertension suspected ≥140"
    assert judgement("sbp", "M").text("ko", FEATURE_LABELS["sbp"]) == "고혈압 의심 ≥140"
    assert judgement("urine_protein", "F").text("en", FEATURE_LABELS["urine_protein"]).endswith("≥1+")
    assert judgement("hdl", "F").text("en", FEATURE_LABELS["hdl"]) == "low HDL suspected <40"
    assert judgement("waist_cm", "F").text("en", FEATURE_LABELS["waist_cm"]) == "abdominal obesity ≥85"
    assert judgement("bp_category", "M") is None
    assert all(f in FEATURES for f in JUDGEMENTS)


def test_every_eligibility_reason_reads_in_korean():
    for rid, reason in REASONS.items():
        ko = reason_text(rid, "ko", "2019-05-02")
        assert ko != reason_text(rid, "en", "2019-05-02") and any("가" <= ch <= "힣" for ch in ko)
        assert reason_text(rid, "en") == reason.en


def test_percentile_lookup_is_a_mid_rank():
    cell = {"n": 1000, "quantiles": list(np.arange(1, 100) / 1000.0)}  # risk k/1000 at the k-th percentile
    assert reference.percentile(cell, 0.0005) == 0
    assert reference.percentile(cell, 0.0505) == pytest.approx(50)
    assert reference.percentile(cell, 0.5) == 99
    flat = {"n": 1000, "quantiles": [0.01] * 99}  # everyone the same risk: the middle, not the top
    assert reference.percentile(flat, 0.01) == pytest.approx(49.5)


def test_a_risk_at_a_shared_floor_is_a_tie_though_the_table_keeps_six_digits():
    """A third of the group at the model's lowest risk: a person there is not "among the lowest 1%"."""
    rng = np.random.default_rng(1)
    floor = 0.0035750852
    p = np.concatenate([np.full(400, floor), floor + rng.uniform(0, 0.01, 800)])
    cell = reference.build_tables(p, np.array(["M"] * p.size), np.array(["60-69"] * p.size))["M|60-69"]
    assert reference.percentile(cell, floor) == pytest.approx(16.5, abs=1)


def test_tables_skip_small_groups():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.1, 600)
    sex = np.array(["M"] * 500 + ["F"] * 100)
    band = np.array(["50-59"] * 450 + ["60-69"] * 50 + ["50-59"] * 100)
    tables = reference.build_tables(p, sex, band)
    assert set(tables) == {"M|50-59", "F|50-59"}
    assert tables["M|50-59"]["n"] == 450 and len(tables["M|50-59"]["quantiles"]) == 99
    assert tables["M|50-59"]["quantiles"] == sorted(tables["M|50-59"]["quantiles"])


# -- Korean class cut-offs and readable risks --------------------------------------------------

from features.labels import (  # noqa: E402
    NO_MEANINGFUL_CHANGE,
    abdominal_obesity,
    bmi_class,
    bp_stage,
    bp_stage_text,
    risk_change_text,
    risk_resolution,
    risk_text,
)


@pytest.mark.parametrize(
    "bmi, key",
    [
        (18.4, "underweight"),
        (18.5, "normal"),
        (22.9, "normal"),
        (23.0, "pre_obesity"),
        (24.9, "pre_obesity"),
        (25.0, "obesity_1"),
        (29.9, "obesity_1"),
        (30.0, "obesity_2"),
        (35.0, "obesity_3"),
    ],
)
def test_ksso_bmi_classes(bmi, key):
    assert bmi_class(bmi).key == key


def test_ksso_words_and_missing():
    assert bmi_class(None) is None and bmi_class(float("nan")) is None
    assert bmi_class(24).ko.startswith("비만전단계") and bmi_class(27).en.startswith("obesity stage 1")


@pytest.mark.parametrize(
    "waist, sex, obese",
    [(90, "M", True), (89.9, "M", False), (85, "F", True), (84.9, "F", False), (None, "M", None), (95, None, None)],
)
def test_abdominal_obesity(waist, sex, obese):
    assert abdominal_obesity(waist, sex) is obese


@pytest.mark.parametrize(
    "sbp, dbp, key, complete",
    [
        (119, 79, "normal", True),
        (125, 75, "elevated", True),
        (125, 80, "prehypertension", True),
        (135, 70, "prehypertension", True),
        (140, 70, "stage_1", True),
        (130, 95, "stage_1", True),
        (165, 85, "stage_2", True),
        (150, 100, "stage_2", True),
        (None, 95, "stage_1", False),
        (145, None, "stage_1", False),
        (None, 85, "prehypertension", False),
    ],
)
def test_ksh_blood_pressure_stages(sbp, dbp, key, complete):
    stage, whole = bp_stage(sbp, dbp)
    assert (stage.key, whole) == (key, complete)


@pytest.mark.parametrize("sbp, dbp", [(None, 70), (None, 79), (125, None), (110, None), (None, None)])
def test_a_missing_reading_is_never_called_normal(sbp, dbp):
    assert bp_stage(sbp, dbp) is None
    for lang in ("ko", "en"):
        words, level = bp_stage_text(sbp, dbp, lang)
        assert level is None and "정상" not in words and "normal" not in words
    assert "unknown" in bp_stage_text(sbp, dbp, "en")[0] and "불가" in bp_stage_text(sbp, dbp, "ko")[0]


def test_partial_reading_says_at_least():
    assert bp_stage_text(None, 95, "en")[0].startswith("at least hypertension stage 1")
    assert "이상" in bp_stage_text(145, None, "ko")[0]


@pytest.mark.parametrize(
    "p, text",
    [
        (0.0, "<0.1%"),
        (0.00049, "<0.1%"),
        (0.001, "0.1%"),
        (0.0042, "0.4%"),
        (0.0234, "2.3%"),
        (0.0996, "10%"),
        (0.1234, "12%"),
        (0.5, "50%"),
        (0.996, ">99%"),
    ],
)
def test_risk_text_has_sensible_significant_figures(p, text):
    assert risk_text(p) == text


def test_changes_below_the_printed_resolution_are_not_meaningful():
    for lang in ("ko", "en"):
        assert risk_change_text(0.0040, 0.0044, lang) == (NO_MEANINGFUL_CHANGE[lang], "same")
        assert risk_change_text(0.15, 0.145, lang) == (NO_MEANINGFUL_CHANGE[lang], "same")  # 1 pp steps at 15%
    assert risk_change_text(0.004, 0.006, "en") == ("+0.2 pp", "up")
    assert risk_change_text(0.15, 0.12, "ko") == ("−3.0%p", "down")
    assert risk_change_text(0.30, 0.12, "en") == ("−18 pp", "down")
    # A large drop inside a wide interval is still a drop (the interval is the level's uncertainty).
    assert risk_change_text(0.118, 0.042, "en") == ("−7.6 pp", "down")
    assert NO_MEANINGFUL_CHANGE == {"ko": "의미 있는 변화 없음", "en": "no meaningful change"}
    assert risk_resolution(0.05) == 0.001 and risk_resolution(0.2) == 0.01


@pytest.mark.parametrize(
    "feature, sex, value, ko, en",
    [
        ("fasting_glucose", "M", 90, "정상 <100", "normal <100"),
        ("fasting_glucose", "M", 118, "공복혈당장애 100–125", "impaired fasting glucose 100–125"),
        ("fasting_glucose", "M", 130, "당뇨병 의심 ≥126", "diabetes suspected ≥126"),
        ("ldl", "F", 140, "경계 130–159", "borderline 130–159"),
        ("hdl", "M", 35, "저HDL콜레스테롤혈증 의심 <40", "low HDL suspected <40"),
        ("egfr", "M", 75, "정상 ≥60", "normal ≥60"),
        ("serum_creatinine", "M", 1.5, "정상 ≤1.5", "normal ≤1.5"),
        ("urine_protein", "F", 2, "경계 ±", "borderline ±"),
        ("hemoglobin", "F", 11, "경계 10–11.9", "borderline 10–11.9"),
    ],
)
def test_a_result_is_named_by_the_band_it_falls_in(feature, sex, value, ko, en):
    j = judgement(feature, sex)
    assert j is not None
    assert j.text("ko", FEATURE_LABELS[feature], value) == ko
    assert j.text("en", FEATURE_LABELS[feature], value) == en
    # The band agrees with the level it is drawn with.
    assert ("정상" in ko) == (j.level(value) == "normal")


@pytest.mark.parametrize(
    "feature, value, sex, shown",
    [
        ("egfr", 59.6, "M", "59.6"),  # "60" would sit beside "kidney disease suspected <60"
        ("egfr", 75.4, "M", "75"),
        ("fasting_glucose", 125.6, "F", "125.6"),
        ("bmi", 24.96, "F", "24.96"),
        ("hemoglobin", 11.96, "F", "11.96"),
    ],
)
def test_a_value_is_printed_on_the_side_of_the_cut_off_it_is_judged_on(feature, value, sex, shown):
    assert _printed(FEATURE_LABELS[feature], value, feature, sex).value_text(value, "en").split(" ")[0] == shown


@pytest.mark.parametrize(
    "sex, waist, en, ko",
    [
        ("M", 78.0, "normal <90", "정상 <90"),
        ("M", 92.0, "abdominal obesity ≥90", "복부비만 ≥90"),
        ("F", 62.0, "normal <85", "정상 <85"),
        ("F", 85.0, "abdominal obesity ≥85", "복부비만 ≥85"),
    ],
)
def test_a_waist_reads_as_the_band_it_falls_in(sex, waist, en, ko):
    """A 62 cm waist is not labelled "abdominal obesity ≥85" (the one cut-off), but normal."""
    j = judgement("waist_cm", sex)
    assert j.text("en", FEATURE_LABELS["waist_cm"], waist) == en
    assert j.text("ko", FEATURE_LABELS["waist_cm"], waist) == ko


@pytest.mark.parametrize("group", ["kidney", "lipids", "waist", "glucose", "weight", "liver"])
def test_a_measure_not_measured_shows_no_band(group):
    """ "not measured — kidney disease suspected <60" read as a diagnosis of a value nobody took."""
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    for lang in ("en", "ko"):
        shown = _group_text(group, x, "M", lang)
        assert shown["cutoff"] == "" and shown["level"] == "none", shown


def test_a_panel_without_ldl_shows_its_most_abnormal_lipid():
    """TC 260, TG 600, HDL 35 and no LDL (NHIS leaves it empty at TG >= 400): not "not measured"."""
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    for f, v in (("total_cholesterol", 260.0), ("triglycerides", 600.0), ("hdl", 35.0)):
        x[FEATURES.index(f)] = v
    shown = _group_text("lipids", x, "M", "en")
    assert shown["value"].startswith("TG 600") and shown["level"] == "disease", shown
    assert shown["cutoff"].startswith("hypertriglyceridemia suspected ≥")
    # A borderline LDL does not stand for a panel with triglycerides in the disease range; an LDL as
    # abnormal as the worst does (LDL first on a tie).
    x[FEATURES.index("ldl")] = 130.0
    assert _group_text("lipids", x, "M", "en")["value"].startswith("TG 600")
    x[FEATURES.index("ldl")] = 170.0
    assert _group_text("lipids", x, "M", "en")["value"].startswith("LDL 170")


def test_the_liver_row_shows_its_most_abnormal_enzyme():
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    for f, v in (("alt", 30.0), ("ast", 45.0), ("ggt", 180.0)):
        x[FEATURES.index(f)] = v
    shown = _group_text("liver", x, "M", "en")
    assert shown["value"] == "GGT 180 U/L" and shown["level"] == "disease", shown
    x[FEATURES.index("ggt")] = 30.0
    assert _group_text("liver", x, "M", "ko")["value"].startswith("AST 45")  # borderline beats normal
    x[FEATURES.index("ast")] = 20.0
    assert _group_text("liver", x, "M", "ko")["value"].startswith("ALT 30")  # all normal: ALT


def test_a_treated_blood_pressure_is_judged_against_the_target_not_staged():
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("sbp")], x[FEATURES.index("dbp")] = 132.0, 82.0
    assert _group_text("blood_pressure", x, "M", "en")["cutoff"].startswith("prehypertension")
    x[FEATURES.index("on_antihypertensive")] = 1.0
    shown = _group_text("blood_pressure", x, "M", "en")
    assert shown["cutoff"] == "on treatment, below the usual 140/90 target" and shown["level"] == "normal"
    x[FEATURES.index("sbp")] = 150.0
    shown = _group_text("blood_pressure", x, "M", "ko")
    assert shown["cutoff"] == "치료 중, 목표(<140/90) 미도달" and shown["level"] == "disease"
    x[FEATURES.index("sbp")], x[FEATURES.index("dbp")] = 130.0, np.nan  # one reading: no verdict
    shown = _group_text("blood_pressure", x, "M", "en")
    assert shown["cutoff"].endswith("target cannot be judged") and shown["level"] == "none"


@pytest.mark.parametrize(
    "sbp, dbp, printed", [(139.6, 89.6, "139.6/89.6 mmHg"), (128.4, 82.0, "128/82 mmHg"), (139.6, None, "139.6/— mmHg")]
)
def test_a_blood_pressure_is_never_rounded_into_another_stage(sbp, dbp, printed):
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("sbp")] = sbp
    if dbp is not None:
        x[FEATURES.index("dbp")] = dbp
    assert _group_text("blood_pressure", x, "M", "en")["value"] == printed


@pytest.mark.parametrize(
    "egfr, protein, value, level",
    [
        (75.0, 1, "eGFR 75 mL/min/1.73m²", "normal"),  # a negative dipstick: nothing to add
        (75.0, 4, "eGFR 75 mL/min/1.73m² · urine protein 2+", "disease"),  # proteinuria with a normal eGFR
        (55.0, 2, "eGFR 55 mL/min/1.73m² · urine protein ±", "disease"),  # the worse band wins
        (None, 4, "urine protein 2+", "disease"),
    ],
)
def test_the_kidney_row_shows_proteinuria(egfr, protein, value, level):
    """Urine protein 2+ is half the CKD definition: it was nowhere in the report."""
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("urine_protein")] = protein
    if egfr is not None:
        x[FEATURES.index("egfr")] = egfr
    shown = _group_text("kidney", x, "M", "en")
    assert shown["value"] == value and shown["level"] == level


def test_age_reads_in_completed_years_as_the_report_header_does():
    # 55.7 had read "56 years" among the factors and "55 years" in the header.
    assert FEATURE_LABELS["age_years"].value_text(55.7, "en") == "55 years"
    assert FEATURE_LABELS["age_years"].value_text(55.7, "ko") == "55세"
    assert FEATURE_LABELS["sbp"].value_text(139.6, "en") == "140 mmHg"  # measurements still round


def _waterfall_of(group: str, log_odds: float, x: np.ndarray, lang: str = "en") -> dict:
    from serving.report import waterfall

    risk = {
        "base_log_odds": -3.0,
        "other_log_odds": 0.1,
        "contributions": [{"feature": group, "value": None, "log_odds": log_odds}],
    }
    return waterfall(risk, x, "M", lang)


def test_a_bar_lowering_the_risk_of_an_abnormal_value_is_marked_not_protective():
    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("sbp")], x[FEATURES.index("dbp")] = 165.0, 100.0
    against = _waterfall_of("blood_pressure", -0.1, x)
    bar = against["rows"][1]
    assert bar["note"] == "×0.90§" and against["against"]
    assert not _waterfall_of("blood_pressure", 0.1, x)["against"]  # raising it: as expected
    x[FEATURES.index("sbp")], x[FEATURES.index("dbp")] = 112.0, 70.0
    assert not _waterfall_of("blood_pressure", -0.1, x)["against"]  # a normal value lowering it: no mark


def test_a_long_waterfall_label_is_squeezed_into_the_svg_not_cut():
    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("dbp")] = 95.0
    rows = _waterfall_of("blood_pressure", 0.2, x)["rows"]
    assert rows[1]["fit"] is not None  # "Blood pressure: —/95 mmHg — at least hypertension stage 1 ..."
    short = _waterfall_of("weight", 0.2, np.full(len(FEATURES), np.nan))["rows"][1]
    assert short["fit"] is None


@pytest.mark.parametrize(
    "sex, value, cutoff", [("M", 18.0, "above the normal range >16.5"), ("F", 15.8, "above the normal range >15.5")]
)
def test_a_high_hemoglobin_is_not_called_normal(sex, value, cutoff):
    from serving.report import _group_text

    x = np.full(len(FEATURES), np.nan)
    x[FEATURES.index("hemoglobin")] = value
    shown = _group_text("hemoglobin", x, sex, "en")
    assert shown["cutoff"] == cutoff and shown["level"] == "borderline"
    x[FEATURES.index("hemoglobin")] = 14.0
    assert _group_text("hemoglobin", x, "M", "en")["cutoff"].startswith("normal")
