"""Clinical words for every model feature, in Korean and English, and for the official judgements.

Whatever shows a feature to a person (the clinician report, notebooks) reads its name, unit, code
words and judgement from here, never the feature code. Raw record fields take their labels from
`features.schema`; only the derived and longitudinal features are named here. The cut-offs
themselves (the national checkup's result-judgement table, 정상B borderline and 질환의심 disease
suspected; the KSSO and KSH classes) are numbers in `features.cutoffs`; this module gives them words.

Also declared here, once, for the report, the CDS cards and /score: the Korean classes a clinician
reads (KSSO BMI and waist, Korean Society of Hypertension BP stages), how a risk is printed
(`risk_text`, `risk_change_text`) and which measurement each model feature comes from
(`FEATURE_GROUPS`, the grouped contributions of /score).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from features.cutoffs import (
    BMI_CLASS_LOWS,
    BP_STAGE_BOUNDS,
    CRITICAL,
    DBP_HYPERTENSION,
    DBP_LOW,
    GLUCOSE_LOW,
    GLUCOSE_TARGET,
    JUDGEMENT_CUTS,
    SBP_HYPERTENSION,
    SBP_LOW,
    WAIST_ABDOMINAL_OBESITY,
    Critical,
    Cut,
    band_range,
    number,
)
from features.derive import CARRIED_LIPIDS, FEATURES, TREND_FIELDS
from features.schema import BY_NAME

Lang = Literal["ko", "en"]
LANGS: tuple[str, ...] = ("ko", "en")

# Units whose words differ by language; the others (mmHg, mg/dL, ...) read the same in both.
_UNIT_WORDS: dict[str, dict[str, str]] = {
    "years": {"ko": "세", "en": "years"},
    "days/week": {"ko": "일/주", "en": "days/week"},  # a change; a count reads "주 2일" (`value_text`)
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
    "smoking_status": {
        "ko": {1: "비흡연", 2: "과거 흡연", 3: "현재 흡연"},
        "en": {1: "never", 2: "former", 3: "current"},
    },
    "male": {"ko": {0: "여성", 1: "남성"}, "en": {0: "female", 1: "male"}},
    # Korean Society of Hypertension stages, as `features.derive.bp_category` numbers them.
    "bp_category": {
        "ko": {0: "정상", 1: "주의혈압", 2: "고혈압 전단계", 3: "고혈압"},
        "en": {0: "normal", 1: "elevated", 2: "prehypertension", 3: "hypertension"},
    },
}

# Decimals shown per feature (checkup results are printed this way); 0 where not listed.
_DIGITS: dict[str, int] = {
    "height_cm": 1,
    "weight_kg": 1,
    "waist_cm": 1,
    "hemoglobin": 1,
    "serum_creatinine": 2,
    "bmi": 1,
    "waist_to_height": 2,
    "tg_to_hdl": 1,
    "tyg_index": 2,
    "ast_to_alt": 2,
    "years_since_last_exam": 1,
    "years_since_lipids": 1,
    "delta_weight_kg": 1,
    "delta_bmi": 1,
    "delta_waist_cm": 1,
    "pct_change_egfr": 1,
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
    completed: bool = False  # whole units completed (age 55.7 is 55, as 만 나이 and the report's header count)
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
        if self.completed:
            value = float(math.floor(value))
        number = f"{value:+.{self.digits}f}" if self.signed else f"{value:.{self.digits}f}"
        if self.unit == "days/week" and not self.signed:  # "주 2일", "2 days a week", "1 day a week"
            return f"주 {number}일" if lang == "ko" else f"{number} day{'' if value == 1 else 's'} a week"
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
        codes = {lang: {c: w for c, w in f.codes.items() if isinstance(c, int)} for lang in LANGS}
    return FeatureLabel(f.label_ko, f.label_en, f.unit, codes or {}, _DIGITS.get(name, 0))


def _build() -> dict[str, FeatureLabel]:
    out: dict[str, FeatureLabel] = {}
    derived = {
        "age_years": FeatureLabel("나이", "Age", "years", completed=True),
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
        "years_since_last_exam": FeatureLabel(
            "직전 검진 후 경과", "Time since last checkup", "duration", digits=1, missing=_NO_HISTORY
        ),
        "pct_change_egfr": FeatureLabel(
            "직전 검진 대비 eGFR 변화율",
            "eGFR change since last checkup",
            "%",
            digits=1,
            signed=True,
            missing=_NO_HISTORY,
        ),
        "years_since_lipids": FeatureLabel(
            "직전 지질검사 후 경과", "Time since last lipid panel", "duration", digits=1, missing=_NO_HISTORY
        ),
    }
    for name in FEATURES:
        if name in derived:
            out[name] = derived[name]
        elif name in BY_NAME:
            out[name] = _raw(name)
    for f in TREND_FIELDS:
        base = out[f]
        out[f"delta_{f}"] = FeatureLabel(
            f"직전 검진 대비 {base.ko} 변화",
            f"{base.en} change since last checkup",
            base.unit,
            digits=_DIGITS.get(f"delta_{f}", 0),
            signed=True,
            missing=_NO_HISTORY,
        )
    for f in CARRIED_LIPIDS:
        base = out[f]
        out[f"last_{f}"] = FeatureLabel(
            f"직전 지질검사 {base.ko}", f"{base.en} at the last lipid panel", base.unit, missing=_NO_HISTORY
        )
    return out


FEATURE_LABELS: dict[str, FeatureLabel] = _build()
assert set(FEATURE_LABELS) == set(FEATURES), set(FEATURES) ^ set(FEATURE_LABELS)


Level = Literal["normal", "borderline", "disease"]
# How far from normal a level is, for choosing the worse of two readings (None: not judged).
LEVEL_RANK: dict[Level | None, int] = {None: -1, "normal": 0, "borderline": 1, "disease": 2}


@dataclass(frozen=True)
class Judgement:
    """One row of the official judgement table for one sex (or both): its cut-offs
    (`features.cutoffs.JUDGEMENT_CUTS`) and the condition the disease cut-off suggests, in words."""

    cut: Cut
    name_ko: str
    name_en: str

    def level(self, value: float | None) -> Level | None:
        return self.cut.level(value)  # type: ignore[return-value]

    def text(self, lang: Lang, label: FeatureLabel, value: float | None = None) -> str:
        """The band `value` falls in, named with its range: "공복혈당장애 100–125" / "impaired fasting
        glucose 100–125", "정상 <100" / "normal <100", "당뇨병 의심 ≥126" / "diabetes suspected ≥126"; with only one
        cut-off (waist), "정상 <90" or "복부비만 ≥90". Without a value, the disease cut-off (else the only one)."""
        cut = self.cut.disease if self.cut.disease is not None else self.cut.borderline
        assert cut is not None, "a judgement row has at least one cut-off"
        high_bad = self.cut.high_is_bad
        if self.cut.disease is not None:
            level = self.cut.level(value)
        elif value is not None:  # one cut-off: the value is on its near (normal) side or beyond it
            level = None if self.cut.beyond(value, cut) else "normal"
        else:
            level = None
        shown = lambda x: label.codes[lang].get(int(x), number(x)) if label.codes else number(x)  # noqa: E731
        if level == "borderline":
            assert self.cut.borderline is not None and self.cut.disease is not None
            step = 1.0 if label.codes else 10.0**-label.digits  # the resolution a result is printed at
            low, high = (
                (self.cut.borderline, self.cut.disease - step)
                if high_bad
                else (self.cut.disease, self.cut.borderline - step)
            )
            words = _BORDERLINE_NAMES.get(self.name_en, _BORDERLINE)
            name = words[0] if lang == "ko" else words[1]
            return f"{name} {shown(low)}" if low == high else f"{name} {shown(low)}–{shown(high)}"
        if level == "normal":
            edge = self.cut.borderline if self.cut.borderline is not None else self.cut.disease
            assert edge is not None
            normal = _NORMAL[0] if lang == "ko" else _NORMAL[1]
            if label.codes:  # a dipstick: the grades below the first abnormal one ("-")
                return f"{normal} {shown(edge - 1)}"
            sign = ("≤" if self.cut.strict else "<") if high_bad else "≥"
            return f"{normal} {sign}{shown(edge)}"
        sign = (">" if self.cut.strict else "≥") if high_bad else "<"
        name = self.name_ko if lang == "ko" else self.name_en
        return f"{name} {sign}{shown(cut)}"


_NORMAL = ("정상", "normal")
_BORDERLINE = ("경계", "borderline")
# Borderline bands with a name of their own, by the English name of the row's disease.
_BORDERLINE_NAMES: dict[str, tuple[str, str]] = {"diabetes suspected": ("공복혈당장애", "impaired fasting glucose")}


_LIVER = ("간기능 이상 의심", "liver disease suspected")
_KIDNEY = ("신장질환 의심", "kidney disease suspected")
# The condition each row's disease cut-off suggests (the cut-offs themselves are in features.cutoffs).
_JUDGEMENT_NAMES: dict[str, tuple[str, str]] = {
    # "suspected" in both languages: one reading in a range is a finding, not a diagnosis.
    "sbp": ("고혈압 의심", "hypertension suspected"),
    "dbp": ("고혈압 의심", "hypertension suspected"),
    "bmi": ("비만", "obesity"),
    "waist_cm": ("복부비만", "abdominal obesity"),
    "hemoglobin": ("빈혈 의심", "anemia suspected"),
    "fasting_glucose": ("당뇨병 의심", "diabetes suspected"),
    "total_cholesterol": ("고콜레스테롤혈증 의심", "hypercholesterolemia suspected"),
    "hdl": ("저HDL콜레스테롤혈증 의심", "low HDL suspected"),
    "triglycerides": ("고중성지방혈증 의심", "hypertriglyceridemia suspected"),
    "ldl": ("고LDL콜레스테롤혈증 의심", "high LDL suspected"),
    "ast": _LIVER,
    "alt": _LIVER,
    "ggt": _LIVER,
    "urine_protein": _KIDNEY,
    "serum_creatinine": _KIDNEY,
    "egfr": _KIDNEY,
}
assert set(_JUDGEMENT_NAMES) == set(JUDGEMENT_CUTS)
# Feature -> judgement, or {sex: judgement} where the table differs by sex.
JUDGEMENTS: dict[str, Judgement | dict[str, Judgement]] = {
    f: (
        {sex: Judgement(c, *_JUDGEMENT_NAMES[f]) for sex, c in cut.items()}
        if isinstance(cut, dict)
        else Judgement(cut, *_JUDGEMENT_NAMES[f])
    )
    for f, cut in JUDGEMENT_CUTS.items()
}


def judgement(feature: str, sex: str | None) -> Judgement | None:
    """The judgement row of a feature for a person's sex ("M"/"F"); None where the table has none."""
    j = JUDGEMENTS.get(feature)
    if isinstance(j, dict):
        return j.get(sex or "")
    return j


# -- Korean class cut-offs (declared once: the report, the cards and the feature groups read them) --


@dataclass(frozen=True)
class Band:
    """One named class of a measure: its lower bound (inclusive), words per language, and the
    judgement level it is drawn with (normal / borderline / disease)."""

    key: str
    low: float
    ko: str
    en: str
    level: Level

    def name(self, lang: Lang) -> str:
        return self.ko if lang == "ko" else self.en


# KSSO BMI classes: words ({range} is filled from `features.cutoffs.BMI_CLASS_LOWS`) and level.
_BMI_WORDS: dict[str, tuple[str, str, Level]] = {
    "underweight": ("저체중 {range}", "underweight {range}", "borderline"),
    "normal": ("정상 {range}", "normal {range}", "normal"),
    "pre_obesity": ("비만전단계 {range}", "pre-obesity {range}", "borderline"),
    "obesity_1": ("1단계 비만 {range}", "obesity stage 1 ({range})", "disease"),
    "obesity_2": ("2단계 비만 {range}", "obesity stage 2 ({range})", "disease"),
    "obesity_3": ("3단계 비만 {range}", "obesity stage 3 ({range})", "disease"),
}
# KSH stages, in the same way; {range} is "SBP range/DBP range" (`features.cutoffs.BP_STAGE_BOUNDS`).
_BP_WORDS: dict[str, tuple[str, str, Level]] = {
    "normal": ("정상혈압 {range}", "normal {range}", "normal"),
    "elevated": ("주의혈압 {range}", "elevated {range}", "borderline"),
    "prehypertension": ("고혈압 전단계 {range}", "prehypertension {range}", "borderline"),
    "stage_1": ("1기 고혈압 {range}", "hypertension stage 1 ({range})", "disease"),
    "stage_2": ("2기 고혈압 {range}", "hypertension stage 2 ({range})", "disease"),
}
assert list(_BMI_WORDS) == list(BMI_CLASS_LOWS) and list(_BP_WORDS) == list(BP_STAGE_BOUNDS)


def _bands(words: dict[str, tuple[str, str, Level]], lows: list[float], ranges: list[str]) -> tuple[Band, ...]:
    return tuple(
        Band(key, low, ko.format(range=r), en.format(range=r), level)
        for (key, (ko, en, level)), low, r in zip(words.items(), lows, ranges, strict=True)
    )


_BMI_LOWS = list(BMI_CLASS_LOWS.values())
BMI_CLASSES: tuple[Band, ...] = _bands(
    _BMI_WORDS, _BMI_LOWS, [band_range(_BMI_LOWS, i, 0.1) for i in range(len(_BMI_LOWS))]
)

_SBP_LOWS = [s for s, _ in BP_STAGE_BOUNDS.values()]
_DBP_LOWS = [d for _, d in BP_STAGE_BOUNDS.values()]
# (stage with its SBP lower bound in `low`, DBP lower bound): a reading is in the highest stage that
# either of its numbers reaches.
BP_STAGES: tuple[tuple[Band, float], ...] = tuple(
    zip(
        _bands(
            _BP_WORDS,
            _SBP_LOWS,
            [f"{band_range(_SBP_LOWS, i, 1)}/{band_range(_DBP_LOWS, i, 1)}" for i in range(len(_SBP_LOWS))],
        ),
        _DBP_LOWS,
        strict=True,
    )
)
BP_UNKNOWN: dict[str, str] = {
    "ko": "혈압 단계 판단 불가(한쪽 측정값 없음)",
    "en": "BP stage unknown (one reading missing)",
}
BP_AT_LEAST: dict[str, str] = {"ko": "{stage} 이상(한쪽 측정값 없음)", "en": "at least {stage} (one reading missing)"}


def _missing(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def bmi_class(bmi: float | None) -> Band | None:
    """The KSSO class of a BMI, None when it is missing."""
    if bmi is None or _missing(bmi):
        return None
    return [b for b in BMI_CLASSES if bmi >= b.low][-1]


def abdominal_obesity(waist_cm: float | None, sex: str | None) -> bool | None:
    """KSSO abdominal obesity (`features.cutoffs.WAIST_ABDOMINAL_OBESITY`, by sex); None when it
    cannot be judged."""
    if waist_cm is None or _missing(waist_cm) or sex not in WAIST_ABDOMINAL_OBESITY:
        return None
    return waist_cm >= WAIST_ABDOMINAL_OBESITY[sex]


def bp_stage(sbp: float | None, dbp: float | None) -> tuple[Band, bool] | None:
    """(KSH stage, complete) of a reading. With one number missing, the other can only show that the
    stage is at least what it reaches; that is said (complete False) where it reaches
    prehypertension or more, and nothing is said below that: a normal DBP with no SBP is not a
    normal blood pressure. None when the stage cannot be judged."""
    s_missing, d_missing = _missing(sbp), _missing(dbp)
    if s_missing and d_missing:
        return None
    reached = [
        stage
        for stage, d_low in BP_STAGES
        if (sbp is not None and not s_missing and sbp >= stage.low)
        or (dbp is not None and not d_missing and dbp >= d_low)
    ]
    stage = reached[-1]
    if not (s_missing or d_missing):
        return stage, True
    if stage.key in ("normal", "elevated"):
        return None
    return stage, False


# KSH stages describe untreated pressure: a treated reading is judged against the usual target.
_TREATED = {
    "ko": (
        f"치료 중, 목표(<{number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)}) 도달",
        f"치료 중, 목표(<{number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)}) 미도달",
        f"치료 중, 한쪽 혈압값이 없어 목표(<{number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)}) 도달 여부 판단 불가",
    ),
    "en": (
        f"on treatment, below the usual {number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)} target",
        f"on treatment, not below the usual {number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)} target",
        f"on treatment, one reading missing: the {number(SBP_HYPERTENSION)}/{number(DBP_HYPERTENSION)} target "
        "cannot be judged",
    ),
}


# A pressure already diagnosed as hypertension, with no treatment recorded: not "prehypertension".
_DIAGNOSED = {
    "ko": ("고혈압 진단, ", "치료 중, "),
    "en": ("diagnosed hypertension, ", "on treatment, "),
}
_LOW_BP = {
    "ko": f"저혈압 범위 <{number(SBP_LOW)}/{number(DBP_LOW)}",
    "en": f"hypotension range <{number(SBP_LOW)}/{number(DBP_LOW)}",
}


def bp_stage_text(
    sbp: float | None, dbp: float | None, lang: Lang, treated: bool = False, diagnosed: bool = False
) -> tuple[str, Level | None]:
    """The KSH stage in words and its level; "unknown" words (level None) where it cannot be judged.
    On antihypertensive treatment, or with hypertension diagnosed, the stages do not apply: whether
    the reading is below the usual treatment target (KSH: < 140/90 for most) is said instead. A
    reading under 90/60 is in the hypotension range, never "normal"."""
    judged = bp_stage(sbp, dbp)
    # Hypotension: a systolic under 90, or a diastolic under 60 beside a normal systolic. A low
    # diastolic beside a high systolic (160/58, a wide pulse pressure of old age) is hypertension.
    s_low = sbp is not None and not _missing(sbp) and sbp < SBP_LOW
    d_low = dbp is not None and not _missing(dbp) and dbp < DBP_LOW and judged is not None and judged[0].key == "normal"
    if s_low or d_low:
        return _LOW_BP[lang], "borderline"
    if judged is None:
        return BP_UNKNOWN[lang], None
    if treated or diagnosed:
        above = (sbp is not None and sbp >= SBP_HYPERTENSION) or (dbp is not None and dbp >= DBP_HYPERTENSION)
        reached, missed, unknown = _TREATED[lang]
        if not treated:  # the same judgement, with what is known said first
            untreated, on = _DIAGNOSED[lang]
            reached, missed, unknown = (untreated + w.removeprefix(on) for w in (reached, missed, unknown))
        if above:
            return missed, "disease"
        return (reached, "normal") if sbp is not None and dbp is not None else (unknown, None)
    stage, complete = judged
    if complete:
        return stage.name(lang), stage.level
    return BP_AT_LEAST[lang].format(stage=stage.name(lang)), stage.level


# -- values that need attention now (features.cutoffs.CRITICAL) ----------------------------------

_SEVERE_BP = (
    "중증 고혈압, 고혈압 긴급·응급 여부 평가 필요",
    "severe hypertension: assess for hypertensive urgency or emergency",
)
_LIVER_RISE = ("간효소 현저한 상승(정상의 10배 이상)", "marked liver enzyme rise (over ten times normal)")
_CRITICAL_WHY: dict[tuple[str, bool], tuple[str, str]] = {
    ("sbp", True): _SEVERE_BP,
    ("dbp", True): _SEVERE_BP,
    ("fasting_glucose", True): (
        "중증 고혈당, 당뇨병케톤산증·고혈당고삼투압상태 평가 필요",
        "severe hyperglycemia: assess for ketoacidosis or a hyperosmolar state",
    ),
    ("fasting_glucose", False): ("2단계 저혈당", "level 2 hypoglycemia"),
    ("egfr", False): ("신부전 범위(G5)", "kidney failure range (G5)"),
    ("hemoglobin", False): ("중증 빈혈", "severe anemia"),
    ("ast", True): _LIVER_RISE,
    ("alt", True): _LIVER_RISE,
    ("triglycerides", True): (
        "중증 고중성지방혈증, 급성 췌장염 위험",
        "severe hypertriglyceridemia: risk of acute pancreatitis",
    ),
}
assert set(_CRITICAL_WHY) == {(c.feature, c.high) for c in CRITICAL}


# The heading every channel (report, `/score` warning, CDS card) puts over the reached cut-offs.
CRITICAL_HEADING: dict[str, str] = {
    "ko": "즉시 확인이 필요한 값",
    "en": "Values that need prompt clinical evaluation",
}


def critical_reached(values: Callable[[str], float | None]) -> list[Critical]:
    """The `CRITICAL` cut-offs one checkup's values (`values(feature)`) reach, in table order."""
    return [c for c in CRITICAL if c.reached(values(c.feature))]


def critical_text(c: Critical, lang: Lang) -> str:
    """One reached cut-off as "Systolic blood pressure ≥180 mmHg (severe hypertension: ...)": the
    cut-off, never the value (warnings never echo submitted values); a reader that shows the value
    shows it beside."""
    label = FEATURE_LABELS[c.feature]
    unit = label.unit_text(lang)
    bound = f"{'≥' if c.high else '<'}{number(c.bound)}{'' if not unit else ' ' + unit}"
    why = _CRITICAL_WHY[(c.feature, c.high)]
    return f"{label.name(lang)} {bound} ({why[0] if lang == 'ko' else why[1]})"


def critical_findings(values: Callable[[str], float | None], lang: Lang) -> list[str]:
    """The values of one checkup that need prompt clinical evaluation, as text (`critical_text`)."""
    return [critical_text(c, lang) for c in critical_reached(values)]


# -- glucose: the low end, and a known diabetes judged against its treatment target ---------------

_GLUCOSE_BELOW = {
    "ko": f"기준치 미만 <{number(GLUCOSE_LOW)}",
    "en": f"below the reference range <{number(GLUCOSE_LOW)}",
}
_GLUCOSE_LOW = {"ko": f"저혈당 범위 <{number(GLUCOSE_LOW)}", "en": f"hypoglycemia range <{number(GLUCOSE_LOW)}"}
_KNOWN_DIABETES = {
    "ko": (
        "당뇨병 치료 중",
        "당뇨병 진단",
        "공복 목표({target}) 범위",
        "공복 목표({target}) 초과",
        "공복 목표({target}) 미만",
    ),
    "en": (
        "on diabetes treatment",
        "diagnosed diabetes",
        "within the fasting target {target}",
        "above the fasting target {target}",
        "below the fasting target {target}",
    ),
}


def glucose_text(value: float, lang: Lang, treated: bool, diagnosed: bool) -> tuple[str, Level] | None:
    """The fasting glucose's words where the judgement table's do not apply: under 70 (hypoglycemia,
    never "normal"), or a diabetes already known (treated or diagnosed: never "diabetes suspected";
    judged against the Korean Diabetes Association's fasting target). None otherwise."""
    if value < GLUCOSE_LOW:
        # Hypoglycemia is the word for a person treated for diabetes; in others a fasting 54-69 is
        # below the reference range, not yet disease (under 54 is a critical value for everyone).
        return (_GLUCOSE_LOW[lang], "disease") if treated or diagnosed else (_GLUCOSE_BELOW[lang], "borderline")
    if not (treated or diagnosed):
        return None
    on, known, within, above, below = _KNOWN_DIABETES[lang]
    low, high = GLUCOSE_TARGET
    target = f"{number(low)}–{number(high)}"
    where, level = (above, "disease") if value > high else (below, "borderline") if value < low else (within, "normal")
    return f"{on if treated else known}, {where.format(target=target)}", level  # type: ignore[return-value]


# -- risks as a reader sees them (report, CDS cards and FHIR text use this one function) -----------

NO_MEANINGFUL_CHANGE: dict[str, str] = {"ko": "의미 있는 변화 없음", "en": "no meaningful change"}
_PP = {"ko": "%p", "en": " pp"}


def risk_text(p: float) -> str:
    """A probability with the significant figures a one-year risk deserves: "<0.1%", "0.4%", "2.3%",
    "12%", ">99%". A model calibrated on a cohort does not know a risk to better than about a tenth
    of a percent, nor a double-digit risk to better than a percentage point."""
    a = 100.0 * float(p)
    if a < 0.1:
        return "<0.1%"
    if a >= 99.5:
        return ">99%"
    if round(a, 1) < 10:
        return f"{a:.1f}%"
    return f"{a:.0f}%"


def risk_resolution(p: float) -> float:
    """The smallest step `risk_text` shows around p, as a probability (0.1 pp below 10 %, 1 pp above)."""
    return 0.001 if round(100.0 * float(p), 1) < 10 else 0.01


def risk_change_text(before: float, after: float, lang: Lang) -> tuple[str, str]:
    """(words, direction: down / up / same) for a change of risk. A change smaller than what the
    risks are shown to is "no meaningful change": a reader should not act on a difference the
    printed numbers cannot carry.

    The probability interval is not the yardstick: it is the uncertainty of the risk's level, and
    a what-if compares two answers of the same model for the same person, whose errors largely
    cancel (a drop from 12% to 4% inside an interval of 4-32% is still a drop)."""
    threshold = max(risk_resolution(before), risk_resolution(after))
    d = float(after) - float(before)
    if abs(d) < threshold:
        return NO_MEANINGFUL_CHANGE[lang], "same"
    pp = 100.0 * abs(d)
    number = f"{pp:.1f}" if round(pp, 1) < 10 else f"{pp:.0f}"
    return f"{'−' if d < 0 else '+'}{number}{_PP[lang]}", "down" if d < 0 else "up"


# -- feature groups: SHAP contributions in the measurements a clinician reads ---------------------


@dataclass(frozen=True)
class FeatureGroup:
    """A measurement a clinician reads, with every model feature computed from it.

    `main`: the feature whose value stands for the group (the contract's "value"), or None where
    no single number does (history). `factor`: False for a group that is no property of the person
    (the time since the last checkup, a matter of scheduling): never listed among a person's
    factors, its share stays in the rest."""

    id: str
    ko: str
    en: str
    main: str | None
    features: tuple[str, ...]
    factor: bool = True

    def name(self, lang: Lang) -> str:
        return self.ko if lang == "ko" else self.en


_HISTORY_FLAGS = tuple(f for f in FEATURES if f.startswith(("history_", "on_", "family_history_")))

# Every model feature in exactly one group (checked below, and by tests/unit/test_groups.py).
# Decisions a reader may question:
# - height belongs with weight and BMI (it only enters the model through body size); the
#   waist-to-height ratio goes with waist, because waist is what a clinician would change.
# - TyG = ln(TG x glucose / 2) goes wholly to glucose: it is used as an insulin-resistance
#   (glycaemic) marker and predicts diabetes; splitting it would make a group's number depend on
#   an arbitrary share. The fatty liver index (TG, BMI, GGT, waist) goes to the liver, whose
#   condition it estimates.
# - the time since the last checkup is its own group: it is about the record, not the body.
FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup("age", "나이", "Age", "age_years", ("age_years",)),
    FeatureGroup("sex", "성별", "Sex", "male", ("male",)),
    FeatureGroup(
        "weight",
        "체중·체질량지수",
        "Weight and BMI",
        "bmi",
        ("height_cm", "weight_kg", "bmi", "delta_weight_kg", "delta_bmi"),
    ),
    FeatureGroup(
        "waist", "허리둘레", "Waist circumference", "waist_cm", ("waist_cm", "waist_to_height", "delta_waist_cm")
    ),
    FeatureGroup(
        "blood_pressure",
        "혈압",
        "Blood pressure",
        "sbp",
        ("sbp", "dbp", "pulse_pressure", "bp_category", "delta_sbp", "delta_dbp"),
    ),
    FeatureGroup(
        "glucose",
        "공복혈당",
        "Fasting glucose",
        "fasting_glucose",
        ("fasting_glucose", "tyg_index", "delta_fasting_glucose"),
    ),
    FeatureGroup(
        "lipids",
        "지질(콜레스테롤·중성지방)",
        "Lipids (cholesterol, triglycerides)",
        "ldl",
        ("total_cholesterol", "triglycerides", "hdl", "ldl", "non_hdl", "tg_to_hdl")
        + tuple(f"last_{f}" for f in CARRIED_LIPIDS)
        + ("years_since_lipids",),
    ),
    FeatureGroup(
        "kidney",
        "신장기능",
        "Kidney function",
        "egfr",
        ("serum_creatinine", "egfr", "urine_protein", "pct_change_egfr"),
    ),
    FeatureGroup(
        "liver", "간기능", "Liver enzymes", "alt", ("ast", "alt", "ggt", "ast_to_alt", "fatty_liver_index", "delta_ggt")
    ),
    FeatureGroup("hemoglobin", "혈색소", "Hemoglobin", "hemoglobin", ("hemoglobin",)),
    FeatureGroup("smoking", "흡연", "Smoking", "smoking_status", ("smoking_status", "current_smoker")),
    FeatureGroup("drinking", "음주", "Drinking", "drinking", ("drinking",)),
    FeatureGroup("activity", "신체활동", "Physical activity", "activity_days_per_week", ("activity_days_per_week",)),
    FeatureGroup("history", "병력·복약·가족력", "History, medication, family history", None, _HISTORY_FLAGS),
    FeatureGroup(
        "interval",
        "직전 검진 후 경과",
        "Time since last checkup",
        "years_since_last_exam",
        ("years_since_last_exam",),
        factor=False,
    ),
)
GROUPS: dict[str, FeatureGroup] = {g.id: g for g in FEATURE_GROUPS}
GROUP_OF: dict[str, str] = {f: g.id for g in FEATURE_GROUPS for f in g.features}
assert sum(len(g.features) for g in FEATURE_GROUPS) == len(GROUP_OF), "a feature is in two groups"
assert set(GROUP_OF) == set(FEATURES), set(FEATURES) ^ set(GROUP_OF)
assert all(g.main is None or g.main in g.features for g in FEATURE_GROUPS)


_OTHERS_MEASURED = {"ko": "다른 항목 측정됨", "en": "others measured"}


def contribution_text(contribution: dict, lang: Lang) -> str:
    """One listed SHAP contribution in clinical words, for either view of /score: a group
    ("Blood pressure: Systolic BP 152 mmHg") or a model feature ("Systolic BP 152 mmHg")."""
    key, value = contribution["feature"], contribution.get("value")
    group = GROUPS.get(key)
    if group is None:
        label = FEATURE_LABELS[key]
        return f"{label.name(lang)} {label.value_text(value, lang)}"
    if group.main is None:
        return group.name(lang)
    label = FEATURE_LABELS[group.main]
    shown = label.value_text(value, lang)
    if value is None and label.name(lang) != group.name(lang):
        # A listed group whose main measure is missing drew on its others (a panel without LDL, a
        # creatinine without an eGFR age): not "LDL not measured" as if that were the factor.
        return f"{group.name(lang)}: {label.name(lang)} {shown}, {_OTHERS_MEASURED[lang]}"
    if label.name(lang) == group.name(lang):
        return f"{group.name(lang)} {shown}"
    if label.codes and value is not None:  # words read on their own: "Smoking: current"
        return f"{group.name(lang)}: {shown}"
    return f"{group.name(lang)}: {label.name(lang)} {shown}"
