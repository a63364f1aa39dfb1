"""Clinical words for features, the official cut-offs, Korean eligibility reasons, reference percentiles."""

import numpy as np
import pytest

from features.derive import FEATURES
from features.eligibility import REASONS, reason_text
from features.labels import FEATURE_LABELS, JUDGEMENTS, judgement
from models import reference


def test_every_feature_has_words_in_both_languages():
    assert set(FEATURE_LABELS) == set(FEATURES)
    for name, label in FEATURE_LABELS.items():
        assert label.ko and label.en and label.ko != name and label.en != name
        for lang in ("ko", "en"):
            assert label.value_text(None, lang)
        if label.codes:
            assert set(label.codes["ko"]) == set(label.codes["en"])


@pytest.mark.parametrize("feature, value, lang, text", [
    ("sbp", 152, "en", "152 mmHg"),
    ("age_years", 54, "ko", "54세"),
    ("smoking_status", 3, "ko", "현재 흡연"),
    ("smoking_status", 3, "en", "current"),
    ("urine_protein", 3, "en", "1+"),
    ("delta_sbp", 12, "en", "+12 mmHg"),
    ("last_ldl", None, "ko", "이전 기록 없음"),
    ("ldl", None, "en", "not measured"),
    ("serum_creatinine", 0.984, "en", "0.98 mg/dL"),
])
def test_values_read_like_a_checkup_result(feature, value, lang, text):
    assert FEATURE_LABELS[feature].value_text(value, lang) == text


@pytest.mark.parametrize("feature, sex, value, level", [
    ("sbp", "M", 119, "normal"), ("sbp", "M", 120, "borderline"), ("sbp", "F", 140, "disease"),
    ("fasting_glucose", "M", 126, "disease"), ("hdl", "F", 39, "disease"), ("hdl", "F", 45, "borderline"),
    ("serum_creatinine", "M", 1.5, "normal"), ("serum_creatinine", "M", 1.51, "disease"),
    ("egfr", "M", 59.9, "disease"), ("ggt", "M", 70, "borderline"), ("ggt", "F", 70, "disease"),
    ("waist_cm", "M", 88, "normal"), ("waist_cm", "F", 88, "borderline"), ("urine_protein", "M", 3, "disease"),
])
def test_judgement_levels_follow_the_official_table(feature, sex, value, level):
    assert judgement(feature, sex).level(value) == level


def test_judgement_texts():
    assert judgement("sbp", "M").text("en", FEATURE_LABELS["sbp"]) == "hypertension ≥140"
    assert judgement("sbp", "M").text("ko", FEATURE_LABELS["sbp"]) == "고혈압 의심 ≥140"
    assert judgement("urine_protein", "F").text("en", FEATURE_LABELS["urine_protein"]).endswith("≥1+")
    assert judgement("hdl", "F").text("en", FEATURE_LABELS["hdl"]) == "low HDL <40"
    assert judgement("waist_cm", "F").text("en", FEATURE_LABELS["waist_cm"]) == "abdominal obesity ≥85"
    assert judgement("bp_category", "M") is None
    assert all(f in FEATURES for f in JUDGEMENTS)


def test_every_eligibility_reason_reads_in_korean():
    for reasons in REASONS.values():
        for text in reasons.values():
            ko = reason_text(text, "ko")
            assert ko != text and any("가" <= ch <= "힣" for ch in ko)
            assert reason_text(text, "en") == text


def test_percentile_lookup_is_a_mid_rank():
    cell = {"n": 1000, "quantiles": list(np.arange(1, 100) / 1000.0)}  # risk k/1000 at the k-th percentile
    assert reference.percentile(cell, 0.0005) == 0
    assert reference.percentile(cell, 0.0505) == pytest.approx(50)
    assert reference.percentile(cell, 0.5) == 99
    flat = {"n": 1000, "quantiles": [0.01] * 99}  # everyone the same risk: the middle, not the top
    assert reference.percentile(flat, 0.01) == pytest.approx(49.5)


def test_tables_skip_small_groups():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.1, 600)
    sex = np.array(["M"] * 500 + ["F"] * 100)
    band = np.array(["50-59"] * 450 + ["60-69"] * 50 + ["50-59"] * 100)
    tables = reference.build_tables(p, sex, band)
    assert set(tables) == {"M|50-59", "F|50-59"}
    assert tables["M|50-59"]["n"] == 450 and len(tables["M|50-59"]["quantiles"]) == 99
    assert tables["M|50-59"]["quantiles"] == sorted(tables["M|50-59"]["quantiles"])
