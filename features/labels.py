"""Clinical words for every model feature, in Korean and English, and the official judgement cut-offs.

Whatever shows a feature to a person (the clinician report, notebooks) reads its name, unit, code
words and cut-off from here, never the feature code. Raw record fields take their labels from
`features.schema`; only the derived and longitudinal features are named here. The cut-offs are
the national checkup's result-judgement table (건강검진 실시기준 검사항목별 판정기준,
docs/clinical-sources.md): 정상B (borderline) and 질환의심 (disease suspected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from features.derive import CARRIED_LIPIDS, FEATURES, TREND_FIELDS
from features.schema import BY_NAME

Lang = Literal["ko", "en"]
LANGS: tuple[str, ...] = ("ko", "en")

# Units whose words differ by language; the others (mmHg, mg/dL, ...) read the same in both.
_UNIT_WORDS: dict[str, dict[str, str]] = {
    "years": {"ko": "세", "en": "years"},
    "days/week": {"ko": "일/주", "en": "days/week"},
    "kg/m2": {"ko": "kg/m²", "en": "kg/m²"},
    "mL/min/1.73m2": {"ko": "mL/min/1.73m²", "en": "mL/min/1.73m²"},
    "duration": {"ko": "년", "en": "years"},  # years as a time span, not an age
}
# Korean writes these units straight after the number (54세, 2일/주, 1.5년).
_NO_SPACE = ("%", "세", "년", "일/주")

_NOT_MEASURED = {"ko": "미측정", "en": "not measured"}
_NO_HISTORY = {"ko": "이전 기록 없음", "en": "no earlier record"}
_YES_NO = {"ko": {0: "아니오", 1: "예"}, "en": {0: "no", 1: "yes"}}
_CODE_WORDS: dict[str, dict[str, dict[int, str]]] = {
    "smoking_status": {"ko": {1: "비흡연", 2: "과거 흡연", 3: "현재 흡연"},
                       "en": {1: "never", 2: "former", 3: "current"}},
    "male": {"ko": {0: "여성", 1: "남성"}, "en": {0: "female", 1: "male"}},
    # Korean Society of Hypertension stages, as `features.derive.bp_category` numbers them.
    "bp_category": {"ko": {0: "정상", 1: "주의혈압", 2: "고혈압 전단계", 3: "고혈압"},
                    "en": {0: "normal", 1: "elevated", 2: "prehypertension", 3: "hypertension"}},
}

# Decimals shown per feature (checkup results are printed this way); 0 where not listed.
_DIGITS: dict[str, int] = {
    "height_cm": 1, "weight_kg": 1, "waist_cm": 1, "hemoglobin": 1, "serum_creatinine": 2,
    "bmi": 1, "waist_to_height": 2, "tg_to_hdl": 1, "tyg_index": 2, "ast_to_alt": 2,
    "years_since_last_exam": 1, "years_since_lipids": 1, "delta_weight_kg": 1, "delta_bmi": 1,
    "delta_waist_cm": 1, "pct_change_egfr": 1,
}


@dataclass(frozen=True)
class FeatureLabel:
    """How a person reads one feature: name and unit per language, words for codes."""

    ko: str
    en: str
    unit: str | None = None
    codes: dict[str, dict[int, str]] = field(default_factory=dict)  # lang -> code -> words
    digits: int = 0
    signed: bool = False  # a change: shown with its sign
    # What a missing value means: unmeasured, or (for history features) no earlier record.
    missing: dict[str, str] = field(default_factory=lambda: dict(_NOT_MEASURED))

    def name(self, lang: Lang) -> str:
        return self.ko if lang == "ko" else self.en

    def unit_text(self, lang: Lang) -> str:
        if self.unit is None:
            return ""
        return _UNIT_WORDS.get(self.unit, {}).get(lang, self.unit)

    def value_text(self, value: float | None, lang: Lang) -> str:
        """The value as a checkup result prints it: words for codes, else number and unit."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing[lang]
        if self.codes:
            words = self.codes[lang].get(int(round(value)))
            if words is not None:
                return words
        number = f"{value:+.{self.digits}f}" if self.signed else f"{value:.{self.digits}f}"
        unit = self.unit_text(lang)
        if not unit:
            return number
        return f"{number}{unit}" if unit in _NO_SPACE else f"{number} {unit}"


def _raw(name: str) -> FeatureLabel:
    f = BY_NAME[name]
    codes = _CODE_WORDS.get(name)
    if codes is None and set(f.codes) == {0, 1}:
        codes = _YES_NO
    if codes is None and f.codes:
        # Dipstick symbols (-, ±, 1+ ...) read the same in both languages.
        codes = {lang: dict(f.codes) for lang in LANGS}
    return FeatureLabel(f.label_ko, f.label_en, f.unit, codes or {}, _DIGITS.get(name, 0))


def _build() -> dict[str, FeatureLabel]:
    out: dict[str, FeatureLabel] = {}
    derived = {
        "age_years": FeatureLabel("나이", "Age", "years"),
        "male": FeatureLabel("성별", "Sex", codes=_CODE_WORDS["male"]),
        "current_smoker": FeatureLabel("현재 흡연", "Current smoker", codes=_YES_NO),
        "bmi": FeatureLabel("체질량지수(BMI)", "Body mass index (BMI)", "kg/m2", digits=1),
        "waist_to_height": FeatureLabel("허리둘레/신장 비", "Waist-to-height ratio", digits=2),
        "egfr": FeatureLabel("추정사구체여과율(eGFR)", "eGFR (kidney function)", "mL/min/1.73m2"),
        "non_hdl": FeatureLabel("비HDL 콜레스테롤", "Non-HDL cholesterol", "mg/dL"),
        "tg_to_hdl": FeatureLabel("중성지방/HDL 비", "Triglyceride/HDL ratio", digits=1),
        "tyg_index": FeatureLabel("TyG 지수(인슐린 저항성)", "TyG index (insulin resistance)", digits=2),
        "fatty_liver_index": FeatureLabel("지방간 지수(FLI)", "Fatty liver index"),
        "ast_to_alt": FeatureLabel("AST/ALT 비", "AST/ALT ratio", digits=2),
        "pulse_pressure": FeatureLabel("맥압", "Pulse pressure", "mmHg"),
        "bp_category": FeatureLabel("혈압 단계", "Blood pressure stage", codes=_CODE_WORDS["bp_category"]),
        "years_since_last_exam": FeatureLabel("직전 검진 후 경과", "Time since last checkup", "duration", digits=1,
                                              missing=_NO_HISTORY),
        "pct_change_egfr": FeatureLabel("직전 검진 대비 eGFR 변화율", "eGFR change since last checkup", "%",
                                        digits=1, signed=True, missing=_NO_HISTORY),
        "years_since_lipids": FeatureLabel("직전 지질검사 후 경과", "Time since last lipid panel", "duration",
                                           digits=1, missing=_NO_HISTORY),
    }
    for name in FEATURES:
        if name in derived:
            out[name] = derived[name]
        elif name in BY_NAME:
            out[name] = _raw(name)
    for f in TREND_FIELDS:
        base = out[f]
        out[f"delta_{f}"] = FeatureLabel(f"직전 검진 대비 {base.ko} 변화", f"{base.en} change since last checkup",
                                         base.unit, digits=_DIGITS.get(f"delta_{f}", 0), signed=True,
                                         missing=_NO_HISTORY)
    for f in CARRIED_LIPIDS:
        base = out[f]
        out[f"last_{f}"] = FeatureLabel(f"직전 지질검사 {base.ko}", f"{base.en} at the last lipid panel", base.unit,
                                        missing=_NO_HISTORY)
    return out


FEATURE_LABELS: dict[str, FeatureLabel] = _build()
assert set(FEATURE_LABELS) == set(FEATURES), set(FEATURES) ^ set(FEATURE_LABELS)


Level = Literal["normal", "borderline", "disease"]


@dataclass(frozen=True)
class Judgement:
    """One row of the official judgement table for one sex (or both).

    `high_is_bad`: values at or above the cut-offs are abnormal (below them for HDL, eGFR, Hb).
    `borderline` starts 정상B, `disease` starts 질환의심; `strict` means the cut-off itself is
    still normal (creatinine > 1.5). `name_*` is the condition the disease cut-off suggests.
    """

    high_is_bad: bool
    borderline: float | None
    disease: float | None
    name_ko: str
    name_en: str
    strict: bool = False

    def _beyond(self, value: float, cut: float | None) -> bool:
        if cut is None:
            return False
        if self.high_is_bad:
            return value > cut if self.strict else value >= cut
        return value < cut

    def level(self, value: float | None) -> Level | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self._beyond(value, self.disease):
            return "disease"
        if self._beyond(value, self.borderline):
            return "borderline"
        return "normal"

    def text(self, lang: Lang, label: FeatureLabel) -> str:
        """e.g. "고혈압 의심 ≥140" / "hypertension ≥140"; the borderline cut-off where it is the only one."""
        cut = self.disease if self.disease is not None else self.borderline
        sign = (">" if self.strict else "≥") if self.high_is_bad else "<"
        if label.codes:
            shown = label.codes[lang].get(int(cut), f"{cut:g}")
        else:
            shown = f"{cut:g}"
        name = self.name_ko if lang == "ko" else self.name_en
        return f"{name} {sign}{shown}"


def _j(high: bool, borderline, disease, ko: str, en: str, strict: bool = False) -> Judgement:
    return Judgement(high, borderline, disease, ko, en, strict)


_LIVER = ("간기능 이상 의심", "liver disease suspected")
_KIDNEY = ("신장질환 의심", "kidney disease suspected")
# Feature -> judgement, or {sex: judgement} where the table differs by sex (clinical.md 1.4).
JUDGEMENTS: dict[str, Judgement | dict[str, Judgement]] = {
    "sbp": _j(True, 120, 140, "고혈압 의심", "hypertension"),
    "dbp": _j(True, 80, 90, "고혈압 의심", "hypertension"),
    "bmi": _j(True, 25, 30, "비만", "obesity"),
    "waist_cm": {"M": _j(True, 90, None, "복부비만", "abdominal obesity"),
                 "F": _j(True, 85, None, "복부비만", "abdominal obesity")},
    "hemoglobin": {"M": _j(False, 13.0, 12.0, "빈혈 의심", "anaemia"),
                   "F": _j(False, 12.0, 10.0, "빈혈 의심", "anaemia")},
    "fasting_glucose": _j(True, 100, 126, "당뇨병 의심", "diabetes"),
    "total_cholesterol": _j(True, 200, 240, "고콜레스테롤혈증 의심", "hypercholesterolaemia"),
    "hdl": _j(False, 60, 40, "저HDL콜레스테롤혈증 의심", "low HDL"),
    "triglycerides": _j(True, 150, 200, "고중성지방혈증 의심", "hypertriglyceridaemia"),
    "ldl": _j(True, 130, 160, "고LDL콜레스테롤혈증 의심", "high LDL"),
    "ast": _j(True, 41, 51, *_LIVER),
    "alt": _j(True, 36, 46, *_LIVER),
    "ggt": {"M": _j(True, 64, 78, *_LIVER), "F": _j(True, 36, 46, *_LIVER)},
    "urine_protein": _j(True, 2, 3, *_KIDNEY),
    "serum_creatinine": _j(True, None, 1.5, *_KIDNEY, strict=True),
    "egfr": _j(False, None, 60, *_KIDNEY),
}


def judgement(feature: str, sex: str | None) -> Judgement | None:
    """The judgement row of a feature for a person's sex ("M"/"F"); None where the table has none."""
    j = JUDGEMENTS.get(feature)
    if isinstance(j, dict):
        return j.get(sex or "")
    return j
