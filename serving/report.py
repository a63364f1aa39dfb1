"""The clinician explanation report: one A4 page per checkup, Korean by default, HTML or PDF.

It reports one checkup; given several checkups of one person, it reports the newest and uses the
earlier ones as its history (features and applicability, as /score does), and says how many. A
checkup older than the scorer's `stale_after_days` carries a notice that its one-year window has
passed. Absent history is never drawn as a factor (serving.scoring keeps it in "other factors").

For each outcome that applies: the one-year risk (at the precision `features.labels.risk_text`
gives it, with the model's interval when the result has one) and its category with the source of
its cut-offs, where it stands among people of the same sex and age band in the training
population (the bundle's reference percentiles), and a SHAP waterfall of the strongest
measurements (contributions grouped as /score groups them) with values and their Korean class
(KSH BP stage, KSSO BMI class, the official judgement cut-offs). Then what the model estimates if
modifiable factors reached coherent targets (recomputed through the same feature pipeline; a
change beyond plausible clinical bounds is named, not estimated; a change of an outcome's own
defining measure is marked), trends of the main measures and of the risk over the person's
checkups (inline SVG), the missing inputs that would sharpen the estimate, and why the other
outcomes do not apply.

It says only what is true: where no outcome applies, the risk and what-if sections say so (and no
legend is drawn over them); a what-if input that was not measured is named as not assessable, and
"every factor within target" is said only when each was measured; a missing measurement is never a
factor of the waterfall (its contribution is in "other factors", `serving.scoring`); a what-if
that raises a risk is shown with a note that the model found no benefit, not as advice; a derived
BMI outside `features.schema.BMI_PLAUSIBLE` gets a note to check height and weight.

Feature names, units and judgement words come from `features.labels`, the cut-offs and what-if
targets from `features.cutoffs`, outcome names from `models.outcomes`, eligibility reasons (by
their id) and each outcome's defining measures from `features.eligibility`; every other word a
reader sees is in `TEXT`, once, in both languages. The template autoescapes everything.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from features.cutoffs import (
    BMI_CLASS_LOWS,
    DBP_ELEVATED,
    DBP_HYPERTENSION,
    GLUCOSE_BORDERLINE,
    HEMOGLOBIN_HIGH,
    LDL_OPTIMAL,
    LDL_VERY_HIGH,
    SBP_ELEVATED,
    SBP_HYPERTENSION,
    VERY_OLD_AGE,
    number,
)
from features.derive import FEATURES, PANEL_MARKER, Columns, age_band, age_years, feature_matrix, unmeasured
from features.eligibility import ALL_FLAGS, DEFINING_FIELDS, earlier_in_range, reason_text
from features.labels import (
    CRITICAL_HEADING,
    FEATURE_LABELS,
    GROUPS,
    LEVEL_RANK,
    FeatureLabel,
    Lang,
    Level,
    abdominal_obesity,
    bmi_class,
    bp_stage,
    bp_stage_text,
    critical_findings,
    glucose_text,
    judgement,
    risk_change_text,
    risk_text,
)
from features.schema import BMI_PLAUSIBLE, BY_NAME, KEY_INPUTS, implausible_bmi
from models import provenance
from models.interval import sigmoid_float
from models.outcomes import OUTCOME_SPECS
from models.provenance import synthetic_notice
from serving.scoring import KNOWN_CKD_WARNING, Scorer, exam_age, feature_value, measurements_outside, person_order

TEMPLATES = Path(__file__).with_name("templates")
TOP_FACTORS = 5

# Targets of the what-if estimates: the 정상A side of each judgement (features.cutoffs), in whole
# units where the table's 정상A ends below a cut-off (glucose < 100 is 99; BP < 120/80 is 119/79,
# since 120 systolic or 80 diastolic is already elevated or prehypertension).
TARGET_SBP = SBP_ELEVATED - 1.0
TARGET_DBP = DBP_ELEVATED - 1.0
# At VERY_OLD_AGE or older the what-if stops just under hypertension (features.cutoffs).
TARGET_SBP_OLD = SBP_HYPERTENSION - 1.0
TARGET_DBP_OLD = DBP_HYPERTENSION - 1.0
# KSSO: losing 5-10 % of body weight is the realistic first goal; a what-if asks no more of a person.
MAX_WEIGHT_LOSS = 0.10
TARGET_BMI = BMI_CLASS_LOWS["pre_obesity"] - 0.1  # the top of KSSO's normal class (18.5-22.9)
# At VERY_OLD_AGE or older a lower weight is no goal of its own (sarcopenia, frailty): the what-if
# is offered for obesity only and stops at the top of pre-obesity.
TARGET_BMI_OLD = BMI_CLASS_LOWS["obesity_1"] - 0.1
TARGET_LDL = LDL_OPTIMAL
TARGET_GLUCOSE = GLUCOSE_BORDERLINE - 1.0
TARGET_ACTIVITY_DAYS = 5

TEXT: dict[str, dict[str, str]] = {
    "title": {
        "ko": "국가건강검진 기반 1년 내 만성질환 위험 설명서",
        "en": "One-year chronic disease risk from the national health checkup",
    },
    "person": {"ko": "{sex} {age} · 검진일 {date} · ID {pid}", "en": "{sex}, {age} · exam {date} · ID {pid}"},
    "age": {"ko": "{age}세", "en": "{age} years"},
    "date_assumed": {"ko": "{date}(검진일 미기재: 오늘로 간주)", "en": "{date} (no exam date sent: taken as today)"},
    "age_band": {"ko": "{band}세(연령대)", "en": "aged {band} (band)"},
    "sex_M": {"ko": "남성", "en": "Male"},
    "sex_F": {"ko": "여성", "en": "Female"},
    "group_M": {"ko": "남성", "en": "men"},
    "group_F": {"ko": "여성", "en": "women"},
    "band": {"ko": "{band}세", "en": "aged {band}"},
    "band_top": {"ko": "{low}세 이상", "en": "aged {low} and over"},
    "risk_1y": {"ko": "1년 내 발생 위험", "en": "One-year risk"},
    "cat_low": {"ko": "낮음", "en": "Low"},
    "cat_moderate": {"ko": "다소 높음", "en": "Moderate"},
    "cat_high": {"ko": "높음", "en": "High"},
    "cat_very_high": {"ko": "매우 높음", "en": "Very high"},
    # A rough model (too few events to fit well) gets no coloured level: a clinician reads the badge.
    "cat_rough": {"ko": "등급 미표시", "en": "Not graded"},
    "categories": {
        "ko": "위험 구분(낮음·다소 높음·높음·매우 높음)의 경계는 기준 연간 발생률의 약 1배·2배·4배입니다.",
        "en": "Category cut-offs (low, moderate, high, very high) are about 1x, 2x and 4x a reference yearly rate.",
    },
    # Where each outcome's reference rate comes from (docs/clinical-sources.md): a published Korean
    # rate for three of them; none was found for dyslipidemia and CKD.
    "source_cvd": {
        "ko": "심뇌혈관질환: 한국인 40세 이상 심근경색+허혈성(출혈성 제외) 뇌졸중 연간 약 0.5% (Jung 등, Healthcare "
        "2024, 국민건강보험 검진 코호트)",
        "en": "CVD: about 0.5% a year, MI + ischemic (not hemorrhagic) stroke in Korean adults 40+ (Jung et al., "
        "Healthcare 2024, NHIS screening cohort)",
    },
    "source_diabetes": {
        "ko": "당뇨병: 연간 1.04% (한국인 당뇨병 위험점수, Diabetes Metab J 2018, NHIS-HEALS)",
        "en": "Diabetes: 1.04% a year (Korean Diabetes Risk Score, Diabetes Metab J 2018, NHIS-HEALS)",
    },
    "source_hypertension": {
        "ko": "고혈압: 정상혈압 성인 연간 약 8.6% (Hong 등, PLoS One 2020, NHIS-HEALS)",
        "en": "Hypertension: about 8.6% a year in normotensive adults (Hong et al., PLoS One 2020, NHIS-HEALS)",
    },
    "source_dyslipidemia": {
        "ko": "이상지질혈증: 공개된 한국인 연간 발생률이 없어, 성인 유병률 40%에 맞춰 정한 연간 약 5%"
        "(합성 코호트가 따르는 발생률)",
        "en": "Dyslipidemia: no published Korean yearly rate; about 5% a year, chosen to fit a 40% adult "
        "prevalence (the rate the synthetic cohort follows)",
    },
    "source_ckd": {
        "ko": "만성콩팥병: 공개된 한국인 연간 발생률이 없어, 유병률 3-8%(국민건강영양조사)에 맞춰 정한 연간 약 0.7%"
        "(합성 코호트가 따르는 발생률)",
        "en": "CKD: no published Korean yearly rate; about 0.7% a year, chosen to fit a 3-8% prevalence "
        "(KNHANES; the rate the synthetic cohort follows)",
    },
    # n counts the training checkups of the group (a person may have several), not persons.
    "percentile": {
        "ko": "같은 성별·연령대({group}) 학습 데이터 검진 {n}건 중 약 {pct}%보다 높은 위험",
        "en": "Higher than about {pct}% of {n} training checkups of {group}",
    },
    "percentile_lowest": {
        "ko": "같은 성별·연령대({group}) 학습 데이터 검진 {n}건 중 가장 낮은 1% 이내",
        "en": "Among the lowest 1% of {n} training checkups of {group}",
    },
    # An outcome fitted on fewer events than the sample-size criteria ask for (models.sample_size).
    "thin": {
        "ko": "대략적 추정: 학습 발생 {events}건(필요 약 {needed}건)",
        "en": "Rough: fitted on {events} events (~{needed} needed)",
    },
    # The SHAP base: the model's expected log-odds, read as the risk of a typical person.
    # Not "기준": the categories' reference rates are named so, and two numbers under one word confused.
    "base": {"ko": "모델 평균 위험 {risk}", "en": "Model average risk {risk}"},
    # Short, in a table cell: the outcome's column head says "rough" and why (`thin`).
    "whatif_thin": {"ko": "추정 불가", "en": "not estimable"},
    "others": {"ko": "기타 {n}개 요인", "en": "{n} other factors"},
    # The rest holds what missing measurements contributed (the model's adjustment for their absence).
    "others_unmeasured": {
        "ko": "기타 {n}개 요인(미측정 항목 포함)",
        "en": "{n} other factors, incl. inputs not measured",
    },
    "no_outcome": {
        "ko": "이 분에게 해당하는 질환이 없어 추정할 1년 위험이 없습니다(아래에 이유).",
        "en": "No outcome applies to this person, so there is no one-year risk to estimate (why: below).",
    },
    "whatif_no_outcome": {
        "ko": "해당하는 질환이 없어 조절 가능한 요인의 효과를 추정할 위험이 없습니다.",
        "en": "No outcome applies, so there is no risk on which to estimate the effect of modifiable factors.",
    },
    "whatif_missing": {
        "ko": "{what}: 측정되지 않아 조절 효과를 평가할 수 없습니다.",
        "en": "{what}: not measured, so the effect of changing them cannot be assessed.",
    },
    "whatif_carried": {
        "ko": "LDL 콜레스테롤: 이번 검진에 없어 {years}년 전 검사 값을 그대로 사용하므로 "
        "조절 효과를 평가할 수 없습니다.",
        "en": "LDL cholesterol: not drawn this time (the panel of {years} y ago is used as it was), so the effect "
        "of changing it cannot be assessed.",
    },
    "whatif_measured_within": {
        "ko": "측정된 조절 가능한 요인은 모두 정상 범위 안에 있습니다.",
        "en": "Every modifiable factor that was measured is in the normal range.",
    },
    # A measurement in its disease range whose bar lowers the risk: shown as the model computed it
    # (the bars add up exactly), and said to be no protective effect.
    "against": {
        "ko": "§ 이상 범위 값이 추정을 낮춤: 모델이 학습한 패턴이며 보호 효과 아님",
        "en": "§ an abnormal value lowering the estimate: a pattern the model learned, not protection",
    },
    # A what-if whose estimate rises is shown, never hidden, but not as advice.
    "whatif_raises": {
        "ko": "‡ 이 분에게서 모델이 이 변화의 이득을 찾지 못했습니다(추정 위험이 오히려 높음). "
        "권고가 아닌 모델의 추정치입니다.",
        "en": "‡ The model found no benefit of this change for this person (its estimate rises): "
        "a model estimate, not advice.",
    },
    "bmi_implausible": {
        "ko": "신장 {height} cm, 체중 {weight} kg로 계산한 BMI {bmi}는 성인에게 타당한 범위({low}–{high}) 밖입니다: "
        "BMI를 쓰는 추정을 읽기 전에 신장과 체중을 확인하세요.",
        "en": "BMI {bmi} from height {height} cm and weight {weight} kg is outside the plausible adult range "
        "({low}–{high}): check height and weight before reading the estimates that use it.",
    },
    "final": {"ko": "이 분의 위험 {risk}", "en": "This person's risk {risk}"},
    "waterfall_note": {
        "ko": "막대: 각 요인이 위험을 높인(빨강) 또는 낮춘(파랑) 정도(로그 오즈), ×: 오즈 배수",
        "en": "Bars: how far each factor raised (red) or lowered (blue) the risk (log-odds); x: odds multiplier",
    },
    "not_applicable": {"ko": "해당하지 않는 질환", "en": "Outcomes that do not apply"},
    "whatif": {
        "ko": "조절 가능한 요인이 정상 범위라면: 모델 추정 위험",
        "en": "If modifiable factors were in the normal range: model estimates",
    },
    "whatif_note": {
        "ko": "다른 값은 그대로 둔 추정치로 효과를 보장하지 않으며, 치료 목표는 아닙니다.",
        "en": "Recomputed with all else unchanged: estimates, not promises, nor treatment targets.",
    },
    "whatif_none_old": {
        "ko": "조절 가능한 요인이 모두 목표 범위 안에 있습니다"
        "(80세 이상: 혈압은 고혈압 범위 미만, BMI는 비만 범위 미만).",
        "en": "Every modifiable factor is within its target (at 80 or older, blood pressure under the hypertension "
        "range and BMI under the obesity range).",
    },
    "whatif_none": {
        "ko": "조절 가능한 요인이 모두 정상 범위 안에 있습니다.",
        "en": "Every modifiable factor is already in the normal range.",
    },
    "whatif_now": {"ko": "현재", "en": "Now"},
    # The dipstick beside the eGFR on the kidney row, mid-sentence.
    "urine_protein_short": {"ko": "요단백", "en": "urine protein"},
    "whatif_unchanged": {"ko": "모든 질환에서 의미 있는 변화 없음", "en": "No meaningful change in any risk"},
    "whatif_unchanged_all_rough": {
        "ko": "추정 불가(모든 질환이 대략적 모델: 학습 발생 수 부족)",
        "en": "Not estimable (every model here is rough: too few events)",
    },
    "whatif_unchanged_rough": {
        "ko": "다른 질환에서 의미 있는 변화 없음({rough}: 추정 불가, 대략적 모델)",
        "en": "No meaningful change in the other risks ({rough}: not estimable, rough model)",
    },
    "history_flags_none": {"ko": "없음", "en": "none"},
    "history_others_none": {"ko": " (그 밖의 병력·복약 없음)", "en": " (no other history or medication)"},
    "defining": {
        "ko": "† 그 질환을 정의하는 측정값 자체를 바꾼 추정이므로 해석에 주의",
        "en": "† changes the outcome's own defining measure: read with care",
    },
    "whatif_bounds": {
        "ko": "변화 폭은 임상적으로 타당한 범위(최대 감소 {bounds}, 체중은 최대 10% 감량)와 학습 데이터의 "
        "범위 안에서만 추정합니다.",
        "en": "Changes are estimated only within plausible clinical bounds (largest fall {bounds}; "
        "weight at most 10% lost) and within the range of the training data.",
    },
    "whatif_bounds_unranged": {
        "ko": "변화 폭은 임상적으로 타당한 범위(최대 감소 {bounds}, 체중은 최대 10% 감량) 안에서만 "
        "추정합니다(이 모델 버전에는 학습 데이터의 변수 범위 정보가 없음).",
        "en": "Changes are estimated only within plausible clinical bounds (largest fall {bounds}; "
        "weight at most 10% lost); this model version carries no training-data ranges.",
    },
    "ckd_note": {
        "ko": "진단받은 만성콩팥병은 위험 모델의 입력이 아닙니다(학습 데이터에 기록이 없음): 다른 질환의 위험은 "
        "이를 반영하지 않아 실제보다 낮을 수 있습니다.",
        "en": "A diagnosed chronic kidney disease is not an input of the risk models (their training data do not "
        "record it): the other risks do not account for it and may be too low.",
    },
    "range_note": {
        "ko": "{what}: 모델의 학습 데이터 범위 밖의 값이라, 모델이 배운 가장 가까운 값으로 추정했습니다"
        "(위험이 그 값을 더 따라가지 않음). 값을 확인하고 추정은 조심해서 읽으세요.",
        "en": "{what}: outside the range of the model's training data, so scored as the nearest value it "
        "learned from (the risks do not follow it further). Check the values and read the estimates with care.",
    },
    "whatif_outside": {
        "ko": "{what}: 추정하지 않음 (변화 폭이 모델이 뒷받침하는 범위를 벗어남: {why})",
        "en": "{what}: not estimated (the change is beyond what the model can vouch for: {why})",
    },
    "interval": {"ko": "모델 추정 정밀도(95%) {low}–{high}", "en": "model precision (95%) {low}–{high}"},
    # What the interval is, and what it is not (it covered the generator's true risk of synthetic
    # people far less often than 95%: what no checkup records is not in it).
    "interval_note": {
        "ko": "모델 추정 정밀도(95%)는 모델을 다시 학습시켰을 때 이 추정값이 놓일 범위이며, 검진에 기록되지 않는 "
        "요인 때문에 이 분의 실제 위험은 이보다 더 넓게 분포할 수 있습니다.",
        "en": "Model precision (95%) is where this model's estimate would lie if it were refitted; the person's own "
        "risk varies more, with what no checkup records.",
    },
    "trends": {"ko": "검진별 추이", "en": "Trends over checkups"},
    "trends_risk": {
        "ko": "검진 시점별 1년 위험 (각 검진을 그 이전 검진과 함께 같은 방식으로 계산)",
        "en": "One-year risk at each checkup (each scored the same way, with its own earlier checkups)",
    },
    "trend_bmi": {"ko": "체질량지수 (kg/m²)", "en": "BMI (kg/m²)"},
    "trend_sbp": {"ko": "수축기혈압 (mmHg)", "en": "Systolic BP (mmHg)"},
    "trend_fasting_glucose": {"ko": "공복혈당 (mg/dL)", "en": "Fasting glucose (mg/dL)"},
    "trend_ldl": {"ko": "LDL 콜레스테롤 (mg/dL)", "en": "LDL cholesterol (mg/dL)"},
    "trend_egfr": {"ko": "eGFR (mL/min/1.73m²)", "en": "eGFR (mL/min/1.73m²)"},
    "trend_none": {"ko": "측정값 없음", "en": "not measured"},
    # The ring's legend, in the chart's axis row: short. ○ = no panel that day, the earlier one used.
    "trend_no_panel": {"ko": "○ 이전 지질검사 사용", "en": "○ earlier panel used"},
    # A lipid panel is drawn every few years: the model uses the last one, and so does the report.
    "carried_panel": {
        "ko": "{value} (이번 검진에 없어 {years}년 전 검사 사용)",
        "en": "{value} (not drawn this time: the panel of {years} y ago)",
    },
    "whatif_change": {"ko": "변화", "en": "Change"},
    "earlier_range": {
        "ko": "이전 검진에서 질환 범위였던 값: {items}. 진단 여부를 확인하십시오: 진단되었다면 아래 위험은 새 발생의 "
        "위험이 아닙니다.",
        "en": "Earlier checkups had a value in a disease range: {items}. Check whether it was diagnosed: if so, the "
        "risk below is not that of a new case.",
    },
    "quit_unknown": {"ko": "금연 기간 미기록", "en": "time since quitting not recorded"},
    "above_normal": {"ko": "정상 범위 초과 >{high}", "en": "above the normal range >{high}"},
    "sparse": {
        "ko": "주요 검사 {n}개 중 {k}개가 없어, 아래 위험은 이 분보다 모델의 기본값을 더 많이 반영합니다: "
        "같은 성별·연령대 안의 위치는 표시하지 않으며, 위험 수준은 참고로만 보십시오.",
        "en": "{k} of the {n} key inputs are missing, so the risks below say more of the model's defaults than of this "
        "person: no standing among people of the same sex and age is shown; read the levels as indicative only.",
    },
    "ldl_very_high": {
        "ko": "매우 높음 ≥{cut} (가족성 고콜레스테롤혈증 감별 고려)",
        "en": "very high ≥{cut} (consider familial hypercholesterolemia)",
    },
    # The model learnt "former smoker" from people who had quit for years: the estimate is for then.
    "quit_smoking": {
        "ko": "장기 금연 시 (현재 흡연 → 과거 흡연)",
        "en": "After long-term cessation (current → former smoker)",
    },
    "bp": {"ko": "혈압 {before} → {after} mmHg", "en": "Blood pressure {before} → {after} mmHg"},
    "bp_old": {
        "ko": "혈압 {before} → {after} mmHg (80세 이상: 고혈압 범위 바로 아래까지)",
        "en": "Blood pressure {before} → {after} mmHg (80 or older: to just under the hypertension range)",
    },
    "bmi": {
        "ko": "체중 {before} → {after} kg (BMI {bmi_before} → {bmi_after})",
        "en": "Weight {before} → {after} kg (BMI {bmi_before} → {bmi_after})",
    },
    "bmi_old": {
        "ko": "체중 {before} → {after} kg (BMI {bmi_before} → {bmi_after}; 80세 이상: 비만 범위 바로 아래까지)",
        "en": "Weight {before} → {after} kg (BMI {bmi_before} → {bmi_after}; 80 or older: to just under the "
        "obesity range)",
    },
    "ldl": {"ko": "LDL 콜레스테롤 {before} → {after} mg/dL", "en": "LDL cholesterol {before} → {after} mg/dL"},
    "glucose": {"ko": "공복혈당 {before} → {after} mg/dL", "en": "Fasting glucose {before} → {after} mg/dL"},
    # Drinking is recorded as yes / no: how much is unknown, so heavy drinking is not represented.
    "stop_drinking": {
        "ko": "금주 (음주 여부만 기록, 음주량 미반영)",
        "en": "Stop drinking (yes / no only: amount not recorded)",
    },
    "activity": {
        "ko": "주 {after}일 이상 30분 중강도 운동 (현재 {before}일)",
        "en": "30 min moderate activity {after} days a week (now {before})",
    },
    "all": {"ko": "위 항목 모두", "en": "All of the above"},
    "pp": {"ko": "%p", "en": " pp"},
    "missing": {"ko": "추가하면 추정이 더 정확해지는 검사", "en": "Missing inputs that would sharpen the estimate"},
    "missing_none": {"ko": "주요 검사 항목이 모두 있습니다.", "en": "All key inputs are present."},
    "unanswered": {
        "ko": "문진 미응답({what}): 이미 진단·치료 중인 질환이면 그 질환의 새 발생 추정은 해당되지 않음",
        "en": "questions not answered ({what}): for a disease already diagnosed or treated, "
        "its estimate does not apply",
    },
    "unanswered_all": {"ko": "과거력·복용약 문진 전체", "en": "all history and medication questions"},
    "age_band_only": {
        "ko": "정확한 나이(5세 연령대의 중앙값을 사용함)",
        "en": "exact age (the midpoint of the 5-year band was used)",
    },
    "history_none": {
        "ko": "이전 검진 기록 없음: 이번 검진만으로 추정했습니다.",
        "en": "No earlier checkups given: estimated from this checkup alone.",
    },
    "history_some": {
        "ko": "이력으로 사용한 이전 검진 {n}회 ({dates})",
        "en": "Earlier checkups used as history: {n} ({dates})",
    },
    # Past the one-year window but not yet stale (CHECKUP_RISK_STALE_AFTER_DAYS): numbers, and a word.
    "past_window": {
        "ko": "이 검진은 {age} 전 검진으로, 아래 위험은 검진 후 1년(이미 지난 기간)에 대한 추정입니다. 최근 검진 "
        "결과가 있으면 다시 평가하세요.",
        "en": "This checkup is {age} old: the risks below are for the year after it, which has passed. Reassess with "
        "a recent checkup when there is one.",
    },
    "critical": {
        "ko": f"{CRITICAL_HEADING['ko']}(아래 1년 위험 추정과 별개로 신속한 임상 평가가 필요합니다):",
        "en": f"{CRITICAL_HEADING['en']}, whatever the one-year risks below say:",
    },
    "stale": {
        "ko": "이 검진은 {age} 전 검진으로, 검진 후 1년의 위험 기간이 이미 지났습니다. 아래 위험은 그 검진 후 "
        "1년에 대한 추정이며 현재의 위험이 아닙니다. 최근 검진 결과로 다시 평가하세요.",
        "en": "This checkup is {age} old: the one-year risk window after it has passed. The risks below are "
        "for the year after that checkup, not for now; reassess with a recent checkup.",
    },
    "years": {"ko": "{n}년", "en": "{n} years"},
    "one_year": {"ko": "1년", "en": "1 year"},
    "days": {"ko": "{n}일", "en": "{n} days"},
    "and_months": {"ko": " {n}개월", "en": " {n} months"},
    "and_one_month": {"ko": " 1개월", "en": " 1 month"},
    "footer": {"ko": "모델 버전 {version} · 작성일 {date}", "en": "Model version {version} · report date {date}"},
    "not_champion": {
        "ko": "이 설명서는 모델 버전 {version}으로 작성되었으며, 진료에 쓰이는 현재 모델(버전 {champion})이 "
        "아닙니다: 모델 비교용입니다.",
        "en": "This report uses model version {version}, not the model that serves care (version {champion}): "
        "for comparing models only.",
    },
    "no_champion": {
        "ko": "이 설명서는 모델 버전 {version}으로 작성되었으며, 아직 진료에 쓰도록 승인된 모델이 없습니다: 모델 "
        "비교용입니다.",
        "en": "This report uses model version {version}; no model has yet been approved to serve care: for "
        "comparing models only.",
    },
    "caveat": {
        "ko": "진료를 돕기 위한 모델 추정치이며 진단이 아니고 임상적 판단을 대신하지 않습니다.",
        "en": "Model estimates to support clinical judgement, not a diagnosis and not a substitute for it.",
    },
}


def t(key: str, lang: Lang, **kw: object) -> str:
    text = TEXT[key][lang]
    return text.format(**kw) if kw else text


def _number(x: float, digits: int = 0) -> str:
    return f"{x:.{digits}f}"


def _question_name(field: str, lang: Lang) -> str:
    """A question's name inside a sentence: 'history of stroke', not 'History of stroke'."""
    if lang == "ko":
        return BY_NAME[field].label_ko
    text = BY_NAME[field].label_en
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


# The checkup questionnaire's answers that rule an outcome out (`features.eligibility.ALL_FLAGS`):
# unanswered, the outcome is judged applicable and estimated as for a person without the disease or
# its treatment. (The NHIS questionnaire asks no CKD history: `history_ckd` is a record field other
# systems may send.)
_QUESTIONS = tuple(f for f in ALL_FLAGS if f != "history_ckd")


# -- what-if ------------------------------------------------------------------------------------


# A what-if is held to plausible clinical bounds, and the report says so: the largest change a
# person could reach and that a checkup cohort holds many examples of. Beyond them the model
# extrapolates along a few trees' edges, and the row says it was not estimated. A change that moves
# a feature outside the training data's range is not estimated either (`what_if`).
# field: (largest fall in its unit, (Korean, English) short name). Weight is not here: its target is
# itself bounded (`MAX_WEIGHT_LOSS`), since some loss is always a realistic goal.
_MAX_FALL: dict[str, tuple[float, tuple[str, str]]] = {
    "sbp": (50.0, ("수축기혈압", "systolic")),
    "ldl": (100.0, ("LDL", "LDL")),
    "fasting_glucose": (40.0, ("공복혈당", "glucose")),
}


def _fall_words(field_name: str, limit: float, names: tuple[str, str]) -> str:
    """ "수축기혈압 50 mmHg / systolic 50 mmHg" (one form where both names are the same)."""
    forms = [f"{name} {number(limit)} {BY_NAME[field_name].unit}" for name in dict.fromkeys(names)]
    return " / ".join(forms)


# field: (largest fall, its words as `_lang_part` reads them).
MAX_CHANGE: dict[str, tuple[float, str]] = {
    f: (limit, _fall_words(f, limit, names)) for f, (limit, names) in _MAX_FALL.items()
}


@dataclass(frozen=True)
class WhatIf:
    """One change of modifiable inputs: its TEXT key, the record fields it sets, the words' values,
    and why it was not estimated (None when it was)."""

    key: str
    changes: dict[str, float]
    words: dict[str, str]
    beyond: str | None = None


def _beyond(record: dict, changes: dict[str, float]) -> str | None:
    """The bound a change passes (its words), else None."""
    for f, (limit, words) in MAX_CHANGE.items():
        if f not in changes or record.get(f) is None:
            continue
        if record[f] - changes[f] > limit + 1e-9:
            return words
    return None


# The inputs `what_if_changes` reads, each factor with the fields it needs: where one is missing the
# effect of changing that factor cannot be assessed, and the report says so (never "within target").
WHAT_IF_INPUTS: tuple[tuple[str, ...], ...] = (
    ("smoking_status",),
    ("sbp",),
    ("height_cm", "weight_kg"),
    ("ldl",),
    ("fasting_glucose",),
    ("drinking",),
    ("activity_days_per_week",),
)


def what_if_unassessed(record: dict) -> tuple[list[str], bool]:
    """(the what-if input fields this record lacks, in `WHAT_IF_INPUTS` order; whether any factor
    had every field it needs measured)."""
    missing = [f for fields in WHAT_IF_INPUTS for f in fields if record.get(f) is None]
    measured = any(all(record.get(f) is not None for f in fields) for fields in WHAT_IF_INPUTS)
    return missing, measured


def bmi_note(record: dict, lang: Lang) -> str | None:
    """A note where the BMI derived from the record's height and weight is outside
    `features.schema.BMI_PLAUSIBLE` (each input may be plausible alone), else None."""
    height, weight = record.get("height_cm"), record.get("weight_kg")
    bmi = implausible_bmi(height, weight)
    if bmi is None or height is None or weight is None:
        return None
    low, high = BMI_PLAUSIBLE
    return t(
        "bmi_implausible",
        lang,
        bmi=_number(bmi, 1),
        height=_number(height, 1),
        weight=_number(weight, 1),
        low=_number(low),
        high=_number(high),
    )


def range_note(scorer: Scorer, row: np.ndarray, lang: Lang) -> str | None:
    """A note naming the checkup's features outside the training data's range (scored at its edge,
    `serving.scoring.measurements_outside`), else None."""
    [outside] = measurements_outside(scorer.model, np.atleast_2d(row))
    if not outside:
        return None
    what = ", ".join(FEATURE_LABELS[f].name(lang) for f in outside)
    return t("range_note", lang, what=what)


def _old(record: dict) -> bool:
    """Whether the person is `VERY_OLD_AGE` or older (the band's midpoint where only the band is known)."""
    age = age_years(Columns.from_records([record]))[0]
    return bool(age >= VERY_OLD_AGE)


def what_if_changes(
    record: dict, training_range: Callable[[str], tuple[float, float] | None] | None = None
) -> list[WhatIf]:
    """The modifiable factors of this record that are off target, each with its target values.

    Only inputs change; every derived feature (BMI, TyG, pulse pressure, current smoker ...) is
    recomputed from them by the feature pipeline, so the model sees a consistent record. Blood
    pressure moves as one reading: SBP to 119 and DBP to min(its value, 79); at 80 or older to
    139 and min(its value, 89). Weight goes to BMI 22.9 (at 80 or older 24.9, and only from
    obesity), at most 10 % lost. A change beyond
    `MAX_CHANGE` is kept, marked `beyond`, and left out of "all of the above".
    """
    out: list[WhatIf] = []
    get = record.get
    if get("smoking_status") == 3:
        out.append(WhatIf("quit_smoking", {"smoking_status": 2}, {}))
    sbp, dbp = get("sbp"), get("dbp")
    old = _old(record)
    top_sbp, top_dbp = (TARGET_SBP_OLD, TARGET_DBP_OLD) if old else (TARGET_SBP, TARGET_DBP)
    if sbp is not None and (sbp > top_sbp or (dbp is not None and dbp > top_dbp)):
        changes = {"sbp": min(sbp, top_sbp)}
        if dbp is not None:
            changes["dbp"] = min(dbp, top_dbp)
        # As sent, to 0.1 mmHg: 139.6/89.6 is not "140/90", which is already hypertension.
        before = f"{sbp:g}/{dbp:g}" if dbp is not None else f"{sbp:g}"
        after = f"{_number(changes['sbp'])}/{_number(changes['dbp'])}" if dbp is not None else _number(changes["sbp"])
        out.append(
            WhatIf("bp_old" if old else "bp", changes, {"before": before, "after": after}, _beyond(record, changes))
        )
    height, weight = get("height_cm"), get("weight_kg")
    if height is not None and weight is not None:
        bmi = weight / (height / 100.0) ** 2
        top_bmi = TARGET_BMI_OLD if old else TARGET_BMI
        if bmi > top_bmi:
            # The target BMI, or the 10 % loss KSSO sets as a realistic goal where it is further away.
            target = max(top_bmi * (height / 100.0) ** 2, weight * (1.0 - MAX_WEIGHT_LOSS))
            changes = {"weight_kg": round(target, 1)}
            out.append(
                WhatIf(
                    "bmi_old" if old else "bmi",
                    changes,
                    {
                        "before": _number(weight, 1),
                        "after": _number(changes["weight_kg"], 1),
                        "bmi_before": _number(bmi, 1),
                        "bmi_after": _number(changes["weight_kg"] / (height / 100.0) ** 2, 1),
                    },
                )
            )
    ldl = get("ldl")
    if ldl is not None and ldl > TARGET_LDL:
        changes = {"ldl": TARGET_LDL}
        if get("total_cholesterol") is not None:
            # Total = LDL + HDL + VLDL: lowering LDL lowers the total by as much (non-HDL follows).
            changes["total_cholesterol"] = get("total_cholesterol") - (ldl - TARGET_LDL)
        out.append(
            WhatIf("ldl", changes, {"before": _number(ldl), "after": _number(TARGET_LDL)}, _beyond(record, changes))
        )
    glucose = get("fasting_glucose")
    if glucose is not None and glucose > TARGET_GLUCOSE:
        changes = {"fasting_glucose": TARGET_GLUCOSE}
        out.append(
            WhatIf(
                "glucose",
                changes,
                {"before": _number(glucose), "after": _number(TARGET_GLUCOSE)},
                _beyond(record, changes),
            )
        )
    if get("drinking") == 1:
        out.append(WhatIf("stop_drinking", {"drinking": 0}, {}))
    days = get("activity_days_per_week")
    if days is not None and days < TARGET_ACTIVITY_DAYS:
        out.append(
            WhatIf(
                "activity",
                {"activity_days_per_week": TARGET_ACTIVITY_DAYS},
                {"before": str(int(days)), "after": str(TARGET_ACTIVITY_DAYS)},
            )
        )
    if training_range is not None:
        out = [_within_training(w, record, training_range) for w in out]
    estimated = [w for w in out if w.beyond is None]
    if len(estimated) > 1:
        combined: dict[str, float] = {}
        for w in estimated:
            combined.update(w.changes)
        out.append(WhatIf("all", combined, {}))
    return out


def what_if(
    scorer: Scorer, record: dict, history: list[dict] | tuple[dict, ...] = ()
) -> tuple[dict[str, float], list[tuple[WhatIf, dict[str, float] | None]]]:
    """(risk now, [(change, risk after, or None where the change was not estimated)]) per outcome,
    all from one model call.

    Each variant is featurised on its own after the same `history` (the person's earlier
    checkups, all dated no later than `record`), as a request with that history would be, so
    variants never read as earlier checkups of one another while changes since the last checkup
    follow the changed values; the "now" row comes from the same call, so a difference is the
    model's and not float rounding.
    """
    changes = what_if_changes(record, scorer.model.training_range)
    estimated = [w for w in changes if w.beyond is None]
    variants = [record] + [{**record, **w.changes} for w in estimated]
    history = list(history)
    # The variant comes last in the request and is the newest (ties keep input order), so it is the
    # last row; feature_matrix returns rows in input order.
    X = np.vstack([feature_matrix(Columns.from_records(history + [v]))[-1:] for v in variants])
    probs = scorer.probabilities(X)
    now = {o: float(p[0]) for o, p in probs.items()}
    after = {id(w): {o: float(p[i + 1]) for o, p in probs.items()} for i, w in enumerate(estimated)}
    return now, [(w, after.get(id(w))) for w in changes]


# Why a what-if outside the training data is not estimated (`WhatIf.beyond`, "Korean / English").
OUTSIDE_TRAINING = "학습 데이터 범위 밖의 값 / a value outside the range of the training data"


def _within_training(w: WhatIf, record: dict, training_range: Callable[[str], tuple[float, float] | None]) -> WhatIf:
    """`w`, marked not estimated where a field it sets lies outside the training data's range, now
    or after the change: the model would score it at the range's edge, and "no change" would be
    that edge's artefact, not the person's. Derived features follow in silence (`_matrix`)."""
    if w.beyond is not None:
        return w
    for f, target in w.changes.items():
        bounds = training_range(f) if f in FEATURES else None
        if bounds is None:
            continue
        low, high = bounds
        for v in (record.get(f), target):
            if v is not None and not low <= float(v) <= high:
                return replace(w, beyond=OUTSIDE_TRAINING)
    return w


# -- the waterfall --------------------------------------------------------------------------------

SVG_WIDTH = 524
LABEL_WIDTH = 326
NOTE_WIDTH = 36
ROW = 10  # 7.5-point text; 10 px rows keep five outcomes and the trends on one A4 page


# The measurement a group's number is, where the group's name does not say it.
_VALUE_NAME = {"weight": "BMI", "kidney": "eGFR"}
_MEMBER_NAME = {
    "ldl": "LDL",
    "triglycerides": "TG",
    "total_cholesterol": "TC",
    "hdl": "HDL",
    "alt": "ALT",
    "ast": "AST",
    "ggt": "GGT",
}
# Groups whose row shows the member whose Korean judgement is the most abnormal, the first listed on
# a tie: LDL (then triglycerides, the usual reason LDL is missing) and ALT.
_SHOWN_MEMBERS = {
    "lipids": ("ldl", "triglycerides", "total_cholesterol", "hdl"),
    "liver": ("alt", "ast", "ggt"),
}


def _worst_member(group_id: str, x: np.ndarray, sex: str | None) -> str:
    """The measured member of a group (`_SHOWN_MEMBERS`) whose judgement is the most abnormal: a
    normal LDL beside triglycerides of 220, or a normal ALT beside a GGT of 180, must not stand for
    the group. The first member when none is measured."""
    members = _SHOWN_MEMBERS[group_id]
    measured = [f for f in members if feature_value(x, f) is not None]
    if not measured:
        return members[0]

    def rank(f: str) -> int:
        j = judgement(f, sex)
        return LEVEL_RANK[j.level(feature_value(x, f)) if j is not None else None]

    return max(measured, key=rank)  # max keeps the first of equal ranks


def _printed(label: FeatureLabel, v: float | None, feature: str, sex: str | None) -> FeatureLabel:
    """`label`, with one more digit where rounding to its own would carry the value across the band
    it is judged in (eGFR 59.6 printed "60" beside "kidney disease suspected <60")."""
    if v is None or label.codes:
        return label
    j = judgement(feature, sex)
    band = bmi_class if feature == "bmi" else (j.level if j is not None else None)
    if band is None or band(round(v, label.digits)) == band(v):
        return label
    return replace(label, digits=label.digits + 1)


def _group_text(group_id: str, x: np.ndarray, sex: str | None, lang: Lang) -> dict:
    """A measurement group's name, its value as a checkup result prints it, the Korean cut-off
    class it falls in and the level it is drawn with. `x`: the checkup's model row (FEATURES)."""
    group = GROUPS[group_id]
    name, cutoff, level = group.name(lang), "", None
    if group_id == "blood_pressure":
        sbp, dbp = feature_value(x, "sbp"), feature_value(x, "dbp")
        # One more digit where rounding would carry the reading into another stage (139.6/89.6 is
        # not "140/90" beside "prehypertension"), as `_printed` does for one measure.
        rounded = [None if v is None else round(v) for v in (sbp, dbp)]
        digits = 0 if bp_stage(*rounded) == bp_stage(sbp, dbp) else 1
        shown = [
            replace(FEATURE_LABELS[f], digits=digits).value_text(v, lang).split(" ")[0] if v is not None else "—"
            for f, v in (("sbp", sbp), ("dbp", dbp))
        ]
        value = f"{shown[0]}/{shown[1]} mmHg" if (sbp, dbp) != (None, None) else FEATURE_LABELS["sbp"].missing[lang]
        cutoff, level = bp_stage_text(
            sbp,
            dbp,
            lang,
            treated=feature_value(x, "on_antihypertensive") == 1,
            diagnosed=feature_value(x, "history_hypertension") == 1,
        )
    elif group_id == "history":
        flags = [FEATURE_LABELS[f].name(lang) for f in group.features if feature_value(x, f) == 1]
        value = ", ".join(flags) if flags else t("history_flags_none", lang)
        if flags and any(feature_value(x, f) == 0 for f in group.features):
            # The bar is the whole group's: "family history of diabetes ×0.63" for CVD came from the
            # stroke and heart disease this person does not have, which the words must say too.
            value += t("history_others_none", lang)
        level = "borderline" if flags else None
    else:
        main = group.main
        assert main is not None, f"group {group_id} has no main feature"  # only history has none
        v = feature_value(x, main)
        no_panel = feature_value(x, PANEL_MARKER) is None  # features.derive.PANEL_MARKER
        carried = group_id == "lipids" and v is None and no_panel and feature_value(x, f"last_{main}") is not None
        if carried:
            v = feature_value(x, f"last_{main}")
        if group_id in _SHOWN_MEMBERS and not carried and not (group_id == "lipids" and no_panel):
            # The most abnormal measured member stands for the group (a panel without LDL, which
            # NHIS leaves empty when triglycerides are 400 or more, too: never "not measured").
            main = _worst_member(group_id, x, sex)
            v = feature_value(x, main)
        value = _printed(FEATURE_LABELS[main], v, main, sex).value_text(v, lang)
        if v is not None and group_id in _SHOWN_MEMBERS:
            value = f"{_MEMBER_NAME[main]} {value}"  # "LDL 140 mg/dL", "GGT 180 U/L": which member the number is
        elif v is not None and group_id in _VALUE_NAME:
            value = f"{_VALUE_NAME[group_id]} {value}"
        if group_id == "smoking" and v == 2:  # the record says former, never since when
            value = f"{value} ({t('quit_unknown', lang)})"
        if carried:
            years = feature_value(x, "years_since_lipids")
            value = t("carried_panel", lang, value=value, years=_number(years, 1) if years is not None else "?")
        if group_id == "weight":
            cls = bmi_class(v)
            cutoff, level = (cls.name(lang), cls.level) if cls is not None else ("", None)
        elif group_id == "waist":
            obese = abdominal_obesity(v, sex)
            j = judgement("waist_cm", sex)
            if j is not None:
                cutoff, level = j.text(lang, FEATURE_LABELS["waist_cm"], v), ("disease" if obese else "normal")
        else:
            j = judgement(main, sex)
            if j is not None:
                cutoff, level = j.text(lang, FEATURE_LABELS[main], v), j.level(v)
            known = (
                glucose_text(
                    v, lang, feature_value(x, "on_diabetes_medication") == 1, feature_value(x, "history_diabetes") == 1
                )
                if main == "fasting_glucose" and v is not None
                else None
            )
            if known is not None:  # 35 is not "normal <100"; a treated diabetic's 162 is not "suspected"
                cutoff, level = known
            high = HEMOGLOBIN_HIGH.get(sex or "") if main == "hemoglobin" else None
            if high is not None and v is not None and v > high:  # 18 g/dL is not "normal ≥13"
                cutoff, level = t("above_normal", lang, high=number(high)), "borderline"
            if main == "ldl" and v is not None and v >= LDL_VERY_HIGH:
                cutoff, level = t("ldl_very_high", lang, cut=number(LDL_VERY_HIGH)), "disease"
        if v is None:
            cutoff, level = "", None  # no value, no band: "not measured", never "kidney disease suspected"
        if group_id == "kidney":
            value, cutoff, level = _with_protein(x, sex, lang, value, cutoff, level)
    return {"name": name + ":", "value": value, "cutoff": cutoff, "level": level or "none"}


def _with_protein(
    x: np.ndarray, sex: str | None, lang: Lang, value: str, cutoff: str, level: Level | None
) -> tuple[str, str, Level | None]:
    """The kidney row with the dipstick beside the eGFR where it is not negative: proteinuria is
    half the CKD definition, and a normal eGFR alone would hide it. The worse of the two bands wins."""
    protein = feature_value(x, "urine_protein")
    j = judgement("urine_protein", sex)
    if protein is None or j is None or j.level(protein) == "normal":
        return value, cutoff, level
    words = FEATURE_LABELS["urine_protein"].value_text(protein, lang)
    name = t("urine_protein_short", lang)
    value = f"{value} · {name} {words}" if level is not None else f"{name} {words}"
    if LEVEL_RANK[j.level(protein)] > LEVEL_RANK[level]:
        cutoff, level = j.text(lang, FEATURE_LABELS["urine_protein"], protein), j.level(protein)
    return value, cutoff, level


def waterfall(risk: dict, values: np.ndarray, sex: str | None, lang: Lang) -> dict:
    """Geometry and words of one outcome's SHAP waterfall: base -> each top measurement group ->
    the rest -> risk. `risk` is a grouped /score result, `values` the checkup's model row.

    The axis is log-odds, where SHAP contributions add up exactly; the ends are labelled as risks.
    """
    base = risk["base_log_odds"]
    steps = [(c["feature"], c["value"], c["log_odds"]) for c in risk["contributions"]]
    n_other = len(GROUPS) - len(steps)
    # What missing measurements contributed is in the rest (serving.scoring.grouped_contributions).
    others = "others_unmeasured" if unmeasured(values[None, :])[0].any() else "others"
    steps.append((None, None, risk["other_log_odds"]))
    cum = [base]
    for *_, lo in steps:
        cum.append(cum[-1] + lo)
    lo_x, hi_x = min(cum), max(cum)
    pad = max(0.05 * (hi_x - lo_x), 1e-3)
    lo_x, hi_x = lo_x - pad, hi_x + pad
    bar_left, bar_width = LABEL_WIDTH, SVG_WIDTH - LABEL_WIDTH - NOTE_WIDTH

    def x(v: float) -> float:
        return round(bar_left + (v - lo_x) / (hi_x - lo_x) * bar_width, 1)

    base_risk = sigmoid_float(base)
    rows = [{"kind": "end", "y": 0, "x": x(base), "text": t("base", lang, risk=risk_text(base_risk))}]
    for i, (feature, _value, lo) in enumerate(steps):
        a, b = x(cum[i]), x(cum[i + 1])
        row = {
            "kind": "bar",
            "y": (i + 1) * ROW,
            "x": min(a, b),
            "w": max(abs(b - a), 1.0),
            "up": lo > 0,
            "link": b,
            "note": f"×{math.exp(min(lo, 700.0)):.2f}",
        }
        if feature is None:
            row.update(name=t(others, lang, n=n_other), value="", cutoff="", level="none")
        else:
            row.update(_group_text(feature, values, sex, lang))
            if row["level"] == "disease" and lo < 0:
                row["note"] += "§"
        row["fit"] = _label_fit(f"{row['name']} {row['value']} — {row['cutoff']}")
        rows.append(row)
    final = sigmoid_float(cum[-1])
    rows.append(
        {"kind": "end", "y": (len(steps) + 1) * ROW, "x": x(cum[-1]), "text": t("final", lang, risk=risk_text(final))}
    )
    return {
        "against": any(str(r.get("note", "")).endswith("§") for r in rows),
        "width": SVG_WIDTH,
        "height": (len(steps) + 2) * ROW + 2,
        "rows": rows,
        "row": ROW,
        "label_width": LABEL_WIDTH,
        "note_x": SVG_WIDTH - NOTE_WIDTH + 4,
    }


def _label_fit(text: str) -> float | None:
    """The width to squeeze a waterfall label into when it would run past the SVG's left edge
    (drawn right-aligned at LABEL_WIDTH - 4), else None: an estimate at 7.5 px, a wide (Korean)
    character 7.5 px and any other 4.2 px, generous so that a long English label is never cut."""
    room = LABEL_WIDTH - 6
    wide = sum(1 for c in text if unicodedata.east_asian_width(c) in ("W", "F"))
    estimate = 7.5 * wide + 4.2 * (len(text) - wide)
    return float(room) if estimate > room else None


# -- trends over checkups --------------------------------------------------------------------------

TREND_MEASURES: tuple[str, ...] = ("sbp", "fasting_glucose", "bmi", "ldl", "egfr")
CHART_W, CHART_H = 134, 32  # five to a row across the A4 column, two rows within the page
_PAD_X, _PAD_TOP, _PAD_BOTTOM = 14, 9, 9


def trend_chart(
    title: str,
    dates: list[dt.date],
    values: list[float | None],
    fmt,
    empty: str,
    from_zero: bool = False,
    hollow: list[bool] | None = None,
    note: str | None = None,
) -> dict:
    """One small inline-SVG line chart: x is time (proportional to the dates), y spans the values,
    each point labelled with its value; missing values are gaps; a `hollow` point is drawn as a
    ring, explained by `note`. Geometry only, words elsewhere.

    The y range never magnifies noise: risks start at zero (12% -> 11% must not look like a fall
    to nothing), and a measure's range spans at least 20% of its level (SBP 128 -> 130 stays flat)."""
    days = [d.toordinal() for d in dates]
    span = max(days[-1] - days[0], 1)
    inner_w, inner_h = CHART_W - 2 * _PAD_X, CHART_H - _PAD_TOP - _PAD_BOTTOM
    present = [v for v in values if v is not None]
    lo, hi = (min(present), max(present)) if present else (0.0, 1.0)
    if from_zero:
        lo, hi = 0.0, max(hi, 1e-6) * 1.1
    else:
        widen = max(0.2 * abs(hi + lo) / 2.0 - (hi - lo), 0.0) / 2.0
        lo, hi = lo - widen, hi + widen
        pad = (hi - lo) * 0.1 or 1e-6
        lo, hi = lo - pad, hi + pad
    points: list[dict[str, Any]] = []
    segments: list[list[str]] = []
    current: list[str] = []
    rings = hollow or [False] * len(values)
    for d, v, ring in zip(days, values, rings, strict=False):
        if v is None:
            if current:
                segments.append(current)
            current = []
            continue
        px = round(_PAD_X + (d - days[0]) / span * inner_w, 1)
        py = round(_PAD_TOP + (hi - v) / (hi - lo) * inner_h, 1)
        points.append({"x": px, "y": py, "label": fmt(v), "hollow": ring})
        current.append(f"{px},{py}")
    if current:
        segments.append(current)
    return {
        "title": title,
        "w": CHART_W,
        "h": CHART_H,
        "points": points,
        "lines": [" ".join(seg) for seg in segments if len(seg) > 1],
        "first": dates[0].strftime("%Y-%m"),
        "last": dates[-1].strftime("%Y-%m"),
        "base_y": CHART_H - _PAD_BOTTOM + 2,
        "empty": None if present else empty,
        "note": note if any(p["hollow"] for p in points) else None,
    }


def trends(
    records: list[dict], results: list[dict], X: np.ndarray, order: list[int], outcomes: tuple[str, ...], lang: Lang
) -> dict:
    """The person's main measures and one-year risks at each checkup, oldest first. Each checkup's
    risk is the one `score_records` gave it with its own earlier checkups, the path /score takes."""
    dates = [records[i]["exam_date"] for i in order]
    empty = t("trend_none", lang)
    measures = []
    for m in TREND_MEASURES:
        col = FEATURES.index(m)
        values = [None if math.isnan(X[i, col]) else float(X[i, col]) for i in order]
        digits = 1 if m == "bmi" else 0
        measures.append(trend_chart(t(f"trend_{m}", lang), dates, values, lambda v, d=digits: f"{v:.{d}f}", empty))
    risks = []
    for o in outcomes:
        values = [results[i]["risks"][o]["probability"] for i in order]
        if all(v is None for v in values):
            continue
        spec = OUTCOME_SPECS[o]
        # Dyslipidemia is judged on the lipid panel: at a checkup without one the risk rests on the
        # last earlier panel (where there is one), which the clinician should see rather than read
        # as a fresh result.
        carried = X[:, FEATURES.index(f"last_{PANEL_MARKER}")]
        no_panel = [
            o == "dyslipidemia" and records[i].get(PANEL_MARKER) is None and not math.isnan(carried[i]) for i in order
        ]
        risks.append(
            trend_chart(
                spec.short_ko if lang == "ko" else spec.short_en,
                dates,
                values,
                risk_text,
                empty,
                from_zero=True,
                hollow=no_panel,
                note=t("trend_no_panel", lang),
            )
        )
    return {"measures": measures, "risks": risks}


def _lang_part(words: str, lang: Lang) -> str:
    """ "한국어 / English" -> the part in `lang` (the whole where there is one form)."""
    parts = words.split(" / ")
    return parts[0] if lang == "ko" else parts[-1]


# -- the page ------------------------------------------------------------------------------------


def _group_words(sex: str, band: str, lang: Lang) -> str:
    band_words = t("band_top", lang, low=band[:-1]) if band.endswith("+") else t("band", lang, band=band)
    return f"{t(f'group_{sex}', lang)} {band_words}"


def _unchanged_label(outcomes: list[dict], thin: Mapping[str, Any], lang: Lang) -> str:
    """The heading of the one line of what-ifs that move no risk meaningfully, naming the rough
    outcomes it cannot speak for (all of them: it speaks for none)."""
    rough = [o["short"] for o in outcomes if o["key"] in thin]
    if not rough:
        return t("whatif_unchanged", lang)
    if len(rough) == len(outcomes):
        return t("whatif_unchanged_all_rough", lang)
    return t("whatif_unchanged_rough", lang, rough=", ".join(rough))


def _age_words(exam: dt.date, today: dt.date, lang: Lang) -> str:
    """How old a checkup is: days under a year; a year and its months under two ("1년 6개월": 18
    months had read "1 year", as 13 did); whole years after that, as the staleness warnings say."""
    years, days = exam_age(exam, today)
    if years < 1:
        return t("days", lang, n=days)
    if years > 1:
        return t("years", lang, n=years)
    # A month is complete on the same day of the month, or on the last day of a shorter month
    # (31 May to 30 June is a month).
    month_end = (today + dt.timedelta(days=1)).day == 1
    months = (today.year - exam.year) * 12 + today.month - exam.month - (today.day < exam.day and not month_end) - 12
    return t("one_year", lang) + (t("and_months" if months > 1 else "and_one_month", lang, n=months) if months else "")


def newest_with_history(records: list[dict]) -> tuple[int, list[int]]:
    """(index of the newest checkup, indices of the earlier ones oldest first), in the order the
    scorer reads one person's history. Every record must have its exam_date set."""
    order = person_order([r["person_id"] for r in records], [r["exam_date"] for r in records])
    return int(order[-1]), [int(i) for i in order[:-1]]


def build_context(
    scorer: Scorer,
    record: dict | list[dict],
    lang: Lang = "ko",
    today: dt.date | None = None,
    champion: str | None = None,
) -> dict:
    """Everything the template shows, as words and numbers, for one validated canonical record,
    or for the newest of one person's validated records (the others are its history).

    `champion`: the champion's version when the caller chose the model (`report --model`), "" when
    there is none; a report from another version says it is for comparison. None: not asked (the
    service reports with the model it serves)."""
    if lang not in ("ko", "en"):
        raise ValueError(f"lang must be ko or en, not {lang!r}")
    today = today or dt.date.today()
    records = [dict(r) for r in ([record] if isinstance(record, dict) else record)]
    if not records:
        raise ValueError("no checkup to report")
    if len({r["person_id"] for r in records}) > 1:
        raise ValueError("a report is about one person: the checkups have different person_id")
    for r in records:
        if isinstance(r.get("exam_date"), str):  # an ISO date from JSON kept as text
            r["exam_date"] = dt.date.fromisoformat(r["exam_date"])
    undated = [r.get("exam_date") is None for r in records]
    # Scoring them together gives each its history; it also dates undated records (today).
    results = scorer.score_records(records, explain=True, top_k=TOP_FACTORS, today=today)
    newest, earlier = newest_with_history(records)
    record, result = records[newest], results[newest]
    history = [records[i] for i in earlier]
    sex = record.get("sex")
    cols = Columns.from_records([record])
    band = str(age_band(cols)[0])
    if record.get("age") is not None:
        age_words = t("age", lang, age=int(record["age"]))
    else:
        age_words = t("age_band", lang, band=BY_NAME["age_group"].codes[int(record["age_group"])])

    now, changes = what_if(scorer, record, history)
    # The model rows of every checkup, each after its own earlier ones (input order, as scored):
    # the newest's row names the waterfall's values; all of them draw the trends.
    X = feature_matrix(Columns.from_records(records))
    # More than half of the key inputs missing: the risks say more of the model's defaults than of this
    # person (sex and age alone placed someone in the top 3% for CKD), so no standing among others.
    sparse = len(result["missing_inputs"]) > len(KEY_INPUTS) / 2
    outcomes, not_applicable = [], []
    earlier_rows = [dict(zip(FEATURES, X[i], strict=True)) for i in earlier]
    in_range = []
    for o in scorer.outcomes:
        spec = OUTCOME_SPECS[o]
        risk = result["risks"][o]
        name = spec.label_ko if lang == "ko" else spec.label_en
        if not risk["applicable"]:
            reason = reason_text(risk["reason_id"], lang, risk["reason_date"])
            # The API's reasons are plain ASCII; a printed page uses the signs the rest of it does.
            reason = reason.replace(">=", "≥").replace("<=", "≤").replace("1.73m2", "1.73m²")
            not_applicable.append({"name": name, "reason": reason})
            continue
        p = risk["probability"]
        percentile = None
        if sex in ("M", "F") and not sparse:
            standing = scorer.model.risk_percentile(o, sex, band, p)
            if standing is not None:
                pct, n = standing
                group = _group_words(sex, band, lang)
                percentile = (
                    t("percentile_lowest", lang, group=group, n=f"{n:,}")
                    if pct < 1
                    else t("percentile", lang, group=group, n=f"{n:,}", pct=int(round(pct)))
                )
        interval = risk.get("probability_interval")
        found = earlier_in_range(o, earlier_rows)
        if found is not None:
            short = spec.short_ko if lang == "ko" else spec.short_en
            day = records[earlier[found[0]]]["exam_date"]
            when = day.isoformat() if isinstance(day, dt.date) else "?"
            in_range.append(f"{short} — {FEATURE_LABELS[found[1]].name(lang)} ({when})")
        outcomes.append(
            {
                "key": o,
                "name": name,
                "short": spec.short_ko if lang == "ko" else spec.short_en,
                "risk": risk_text(p),
                "category": "rough" if o in scorer.thin else risk["category"],
                "category_words": t("cat_rough" if o in scorer.thin else f"cat_{risk['category']}", lang),
                # Not where the risk is mostly the model's defaults: an interval around them is
                # narrower than around a measured person's, the opposite of what a reader expects.
                "interval": (
                    t("interval", lang, low=risk_text(interval[0]), high=risk_text(interval[1]))
                    if interval is not None and not sparse
                    else None
                ),
                "interval_values": interval,
                "percentile": percentile,
                "thin": (
                    t("thin", lang, events=f"{scorer.thin[o][0]:,}", needed=f"{scorer.thin[o][1]:,}")
                    if o in scorer.thin
                    else None
                ),
                "waterfall": waterfall(risk, X[newest], sex, lang),
            }
        )

    whatifs: list[dict[str, Any]] = []
    unchanged: list[str] = []
    for w, after in changes:
        text = t(w.key, lang, **w.words)
        if after is None:
            assert w.beyond is not None  # what_if leaves out exactly the changes marked `beyond`
            whatifs.append(
                {"text": t("whatif_outside", lang, what=text, why=_lang_part(w.beyond, lang)), "cells": None}
            )
            continue
        cells = []
        for row in outcomes:
            delta, direction = risk_change_text(now[row["key"]], after[row["key"]], lang)
            moved = abs(after[row["key"]] - now[row["key"]]) > 1e-12  # a change the model does not read is none
            if direction == "same" and row["key"] in scorer.thin and moved:
                # A rough model (too few events) barely moves: "no change" would read as "no
                # benefit" of quitting smoking or lowering BP (a clinician's reading).
                delta, direction = t("whatif_thin", lang), "rough"
            defining = bool(DEFINING_FIELDS.get(row["key"], frozenset()) & set(w.changes))
            cells.append(
                {
                    "risk": risk_text(after[row["key"]]),
                    "delta": delta,
                    "direction": direction,
                    "defining": defining,
                    # A rise is shown as estimated, with the ‡ note: the model found no benefit here.
                    "raises": direction == "up",
                }
            )
        if all(c["direction"] in ("same", "rough") for c in cells):
            # A row of "no meaningful change" in every column says one thing: one line for all such
            # rows (which names the rough outcomes it cannot speak for).
            unchanged.append(text)
            continue
        whatifs.append({"text": text, "cells": cells})
    # The † note only where a shown cell carries one (rows said as "no meaningful change" carry none).
    defining_shown = any(c["defining"] for r in whatifs if r["cells"] for c in r["cells"])
    raises_shown = any(c["raises"] for r in whatifs if r["cells"] for c in r["cells"])
    # What the what-if section can honestly say besides its table: no outcome to estimate; which
    # inputs it could not assess; "all within target" only when every input was measured.
    unassessed, measured_any = what_if_unassessed(record)
    if not outcomes:
        whatif_status = [t("whatif_no_outcome", lang)]
    else:
        whatif_status = []
        # A lipid carried from the last panel is used as it was, not "not measured" (the factor
        # chart above shows it as that panel's): said so.
        carried = [f for f in unassessed if f == "ldl" and feature_value(X[newest], "last_ldl") is not None]
        unread = [f for f in unassessed if f not in carried]
        if unread:
            what = ", ".join(FEATURE_LABELS[f].name(lang) for f in unread)
            whatif_status.append(t("whatif_missing", lang, what=what))
        if carried:
            years = feature_value(X[newest], "years_since_lipids")
            whatif_status.append(t("whatif_carried", lang, years=_number(years, 1) if years is not None else "?"))
        if not (whatifs or unchanged):
            if not unassessed:
                # At 80 or older a pressure of 120-139/80-89 or a BMI of 23-24.9 is no what-if, but
                # not "normal" either.
                height, weight = record.get("height_cm"), record.get("weight_kg")
                above_normal = (
                    (record.get("sbp") or 0) > TARGET_SBP
                    or (record.get("dbp") or 0) > TARGET_DBP
                    or (height is not None and weight is not None and weight / (height / 100.0) ** 2 > TARGET_BMI)
                )
                whatif_status.append(t("whatif_none_old" if _old(record) and above_normal else "whatif_none", lang))
            elif measured_any:
                whatif_status.append(t("whatif_measured_within", lang))
    bounds = ", ".join(_lang_part(words, lang) for _, words in MAX_CHANGE.values())

    # Nothing to sharpen when no outcome applies.
    estimated = any(risk["applicable"] for risk in result["risks"].values())
    missing = [FEATURE_LABELS[k].name(lang) for k in result["missing_inputs"]] if estimated else []
    if estimated and record.get("age") is None:
        missing.append(t("age_band_only", lang))
    # An answer at an earlier checkup carries (a diagnosis lasts), so only questions no checkup answered.
    unanswered = [f for f in _QUESTIONS if all(r.get(f) is None for r in [*history, record])]
    if estimated and unanswered:
        what = (
            t("unanswered_all", lang)
            if len(unanswered) == len(_QUESTIONS)
            else ", ".join(_question_name(f, lang) for f in unanswered)
        )
        missing.append(t("unanswered", lang, what=what))
    exam = record["exam_date"]
    if history:
        dates = ", ".join(h["exam_date"].isoformat() for h in history)
        history_words = t("history_some", lang, n=len(history), dates=dates)
    else:
        history_words = t("history_none", lang)
    return {
        "lang": lang,
        "text": {k: v[lang] for k, v in TEXT.items()},
        "person": t(
            "person",
            lang,
            sex=t(f"sex_{sex}", lang),
            age=age_words,
            # A checkup sent without its date is scored as today's: said, not printed as if known.
            date=t("date_assumed", lang, date=exam.isoformat()) if undated[newest] else exam.isoformat(),
            pid=record["person_id"],
        ),
        "history": history_words,
        "history_checkups": result["history_checkups"],
        "stale": t("stale", lang, age=_age_words(exam, today, lang)) if result["stale"] else None,
        "past_window": (
            t("past_window", lang, age=_age_words(exam, today, lang))
            if not result["stale"] and (today - exam).days > 365
            else None
        ),
        "model_note": (
            None
            if champion is None or champion == scorer.version
            else t("not_champion", lang, version=scorer.version, champion=champion)
            if champion
            else t("no_champion", lang, version=scorer.version)
        ),
        # The synthetic-model banner in the report's language, else None.
        "provenance": synthetic_notice(scorer.training_data, lang) if scorer.synthetic else None,
        # A person of a sex or age band the training data hardly hold (a model of women only, a man).
        "unseen_note": provenance.unseen(scorer.training_data, sex, band, lang),
        "sparse_note": (
            t("sparse", lang, k=len(result["missing_inputs"]), n=len(KEY_INPUTS))
            if sparse and any(r["applicable"] for r in result["risks"].values())
            else None
        ),
        # Values that need evaluation now come first: a risk page for BP 270/150 had advised home readings.
        "critical": critical_findings(lambda f: feature_value(X[newest], f), lang),
        "outcomes": outcomes,
        "not_applicable": not_applicable,
        "whatif_header": [{"short": o["short"], "now": risk_text(now[o["key"]])} for o in outcomes],
        "whatifs": whatifs,
        "whatif_defining": t("defining", lang) if defining_shown else None,
        "whatif_raises": t("whatif_raises", lang) if raises_shown else None,
        "against": t("against", lang) if any(o["waterfall"]["against"] for o in outcomes) else None,
        "whatif_status": whatif_status,
        "no_outcome": None if outcomes else t("no_outcome", lang),
        "bmi_note": bmi_note(record, lang),
        "whatif_unchanged": unchanged,
        "whatif_unchanged_label": _unchanged_label(outcomes, scorer.thin, lang),
        "whatif_bounds": t(
            "whatif_bounds" if getattr(scorer.model, "feature_ranges_", None) is not None else "whatif_bounds_unranged",
            lang,
            bounds=bounds,
        ),
        "range_note": range_note(scorer, X[newest], lang),
        "ckd_note": t("ckd_note", lang) if KNOWN_CKD_WARNING in result["warnings"] else None,
        "earlier_note": t("earlier_range", lang, items="; ".join(in_range)) if in_range else None,
        "category_sources": [t(f"source_{o['key']}", lang) for o in outcomes if f"source_{o['key']}" in TEXT],
        "trends": trends(records, results, X, [*earlier, newest], scorer.outcomes, lang) if history else None,
        "missing": missing,
        "footer": t("footer", lang, version=scorer.version, date=today.isoformat()),
        "level_colours": {"disease": "#b3122e", "borderline": "#a26200"},
    }


_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
)


def render_html(
    scorer: Scorer,
    record: dict | list[dict],
    lang: Lang = "ko",
    today: dt.date | None = None,
    champion: str | None = None,
) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, nothing fetched): for one
    record, or for the newest of one person's records with the others as its history (`champion`:
    as `build_context`)."""
    return _ENV.get_template("report.html.j2").render(**build_context(scorer, record, lang, today, champion))


def render_pdf(html: str) -> bytes:
    """The same page as an A4 PDF (WeasyPrint; Korean needs the Noto CJK font, `make sysdeps`)."""
    from weasyprint import HTML

    return HTML(string=html).write_pdf()
