"""Clinical words for model features and risk categories, in Korean and English.

Raw record fields take their names and units from `features.schema`; only the derived and
longitudinal features are named here.
"""

from __future__ import annotations

from features.schema import BY_NAME

CATEGORY = {
    "ko": {"low": "낮음", "moderate": "보통", "high": "높음", "very_high": "매우 높음"},
    "en": {"low": "low", "moderate": "moderate", "high": "high", "very_high": "very high"},
}

# feature -> (Korean, English, unit)
DERIVED: dict[str, tuple[str, str, str | None]] = {
    "age_years": ("나이", "Age", "years"),
    "male": ("남성", "Male sex", None),
    "current_smoker": ("현재 흡연", "Current smoking", None),
    "bmi": ("체질량지수", "Body-mass index", "kg/m²"),
    "waist_to_height": ("허리둘레/신장 비", "Waist-to-height ratio", None),
    "egfr": ("추정사구체여과율(eGFR)", "eGFR", "mL/min/1.73m²"),
    "non_hdl": ("비HDL 콜레스테롤", "Non-HDL cholesterol", "mg/dL"),
    "tg_to_hdl": ("중성지방/HDL 비", "Triglyceride-to-HDL ratio", None),
    "tyg_index": ("TyG 지수", "TyG index", None),
    "fatty_liver_index": ("지방간 지수", "Fatty liver index", None),
    "ast_to_alt": ("AST/ALT 비", "AST/ALT ratio", None),
    "pulse_pressure": ("맥압", "Pulse pressure", "mmHg"),
    "bp_category": ("혈압 단계", "Blood-pressure stage", None),
    "prior_exams": ("이전 검진 횟수", "Earlier checkups", None),
    "years_since_last_exam": ("지난 검진 후 경과", "Years since the last checkup", "years"),
    "pct_change_egfr": ("eGFR 변화율", "Change in eGFR", "%"),
    "years_since_lipids": ("지질검사 후 경과", "Years since the last lipid panel", "years"),
}
_BINARY_FEATURES = {"male", "current_smoker"}


def feature_name(feature: str, lang: str = "ko") -> tuple[str, str | None]:
    """(clinical name, unit) of a model feature."""
    if feature in DERIVED:
        ko, en, unit = DERIVED[feature]
        return (ko if lang == "ko" else en), unit
    for prefix, ko, en in (("delta_", "{} 변화(지난 검진 대비)", "Change in {} since the last checkup"),
                           ("last_", "이전 {}", "Earlier {}")):
        if feature.startswith(prefix):
            base, unit = feature_name(feature[len(prefix):], lang)
            return (ko if lang == "ko" else en).format(base if lang == "ko" else base.lower()), unit
    f = BY_NAME[feature]
    return (f.label_ko if lang == "ko" else f.label_en), f.unit


def field_name(field: str, lang: str = "ko") -> str:
    return feature_name(field, lang)[0]


def value_words(feature: str, value: float | None, lang: str = "ko") -> str:
    """A feature value as a clinician reads it: codes by their meaning, numbers with units."""
    if value is None:
        return "미입력" if lang == "ko" else "missing"
    if feature in _BINARY_FEATURES:
        return ("예" if value else "아니오") if lang == "ko" else ("yes" if value else "no")
    f = BY_NAME.get(feature)
    if f is not None and f.codes and int(value) in f.codes:
        meaning = f.codes[int(value)]
        return {"yes": "예", "no": "아니오", "never": "비흡연", "former": "과거 흡연", "current": "현재 흡연"}.get(
            meaning, meaning) if lang == "ko" else meaning
    unit = feature_name(feature, lang)[1]
    number = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{number} {unit}" if unit and unit not in ("years",) else number


def factor(contribution: dict, lang: str = "ko") -> str:
    """'Systolic blood pressure 152 mmHg' for a {"feature", "value", "log_odds"} contribution."""
    name, _ = feature_name(contribution["feature"], lang)
    return f"{name} {value_words(contribution['feature'], contribution['value'], lang)}"
