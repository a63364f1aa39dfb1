"""The clinician explanation report: one A4 page per checkup, Korean by default, HTML or PDF.

It reports one checkup; given several checkups of one person, it reports the newest and uses the
earlier ones as its history (features and applicability, as /score does), and says how many. A
checkup older than the scorer's `stale_after_days` carries a notice that its one-year window has
passed. Absent history is never drawn as a factor (serving.scoring keeps it in "other factors").

For each outcome that applies: the one-year risk and its category, where it stands among people of
the same sex and age band in the training population (the bundle's reference percentiles), and a
SHAP waterfall of the strongest factors in clinical words with values, units and the official
judgement cut-offs. Then what the model estimates if modifiable factors reached their targets
(recomputed through the same feature pipeline), the missing inputs that would sharpen the
estimate, and why the other outcomes do not apply.

Feature names, units and cut-offs come from `features.labels`, outcome names from
`models.outcomes`, eligibility reasons from `features.eligibility`; every other word a reader
sees is in `TEXT`, once, in both languages. The template autoescapes everything.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from features.derive import Columns, age_band, feature_matrix
from features.eligibility import reason_text
from features.labels import FEATURE_LABELS, Lang, judgement
from features.schema import BY_NAME, KEY_INPUTS
from models.outcomes import OUTCOME_SPECS
from serving.scoring import Scorer, exam_age, person_order

TEMPLATES = Path(__file__).with_name("templates")
TOP_FACTORS = 5

# Targets of the what-if estimates (clinical.md 1.4: the 정상A side of each judgement).
TARGET_SBP = 120.0
TARGET_BMI = 23.0
TARGET_LDL = 100.0
TARGET_GLUCOSE = 99.0
TARGET_ACTIVITY_DAYS = 5

TEXT: dict[str, dict[str, str]] = {
    "title": {"ko": "국가건강검진 기반 1년 내 만성질환 위험 설명서",
              "en": "One-year chronic disease risk from the national health checkup"},
    "person": {"ko": "{sex} {age} · 검진일 {date} · ID {pid}", "en": "{sex}, {age} · exam {date} · ID {pid}"},
    "age": {"ko": "{age}세", "en": "{age} years"},
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
    "categories": {"ko": "위험 구분은 한국인 연간 발생률의 약 1배·2배·4배를 기준으로 합니다.",
                   "en": "Categories start at about 1x, 2x and 4x the Korean yearly rate."},
    "percentile": {"ko": "같은 성별·연령대({group}) 학습 인구 {n}명 중 약 {pct}%보다 높은 위험",
                   "en": "Higher than about {pct}% of {group} in the training population (n = {n})"},
    "percentile_lowest": {"ko": "같은 성별·연령대({group}) 학습 인구 {n}명 중 가장 낮은 1% 이내",
                          "en": "Among the lowest 1% of {group} in the training population (n = {n})"},
    # The SHAP base: the model's expected log-odds, read as the risk of a typical person.
    "base": {"ko": "기준 위험 {risk}", "en": "Baseline risk {risk}"},
    "others": {"ko": "기타 {n}개 요인", "en": "{n} other factors"},
    "final": {"ko": "이 분의 위험 {risk}", "en": "This person's risk {risk}"},
    "waterfall_note": {"ko": "막대: 각 요인이 위험을 높인(빨강) 또는 낮춘(파랑) 정도(로그 오즈), ×: 오즈 배수",
                       "en": "Bars: how far each factor raised (red) or lowered (blue) the risk (log-odds); "
                             "x: odds multiplier"},
    "not_applicable": {"ko": "해당하지 않는 질환", "en": "Outcomes that do not apply"},
    "whatif": {"ko": "조절 가능한 요인이 목표에 도달하면: 모델 추정 위험",
               "en": "If modifiable factors reach their targets: model estimates"},
    "whatif_note": {"ko": "다른 값은 그대로 두고 모델로 다시 계산한 추정치이며, 효과를 약속하지 않습니다.",
                    "en": "Recomputed by the model with everything else unchanged: estimates, not promises."},
    "whatif_none": {"ko": "조절 가능한 요인이 모두 목표 범위 안에 있습니다.",
                    "en": "Every modifiable factor is already within its target."},
    "whatif_now": {"ko": "현재", "en": "Now"},
    "whatif_change": {"ko": "변화", "en": "Change"},
    "quit_smoking": {"ko": "금연 (현재 흡연 → 과거 흡연)", "en": "Quit smoking (current → former)"},
    "sbp": {"ko": "수축기혈압 {before} → {after} mmHg", "en": "Systolic BP {before} → {after} mmHg"},
    "bmi": {"ko": "체중 {before} → {after} kg (BMI {bmi_before} → {bmi_after})",
            "en": "Weight {before} → {after} kg (BMI {bmi_before} → {bmi_after})"},
    "ldl": {"ko": "LDL 콜레스테롤 {before} → {after} mg/dL", "en": "LDL cholesterol {before} → {after} mg/dL"},
    "glucose": {"ko": "공복혈당 {before} → {after} mg/dL", "en": "Fasting glucose {before} → {after} mg/dL"},
    "stop_drinking": {"ko": "금주", "en": "Stop drinking"},
    "activity": {"ko": "주 {after}일 이상 30분 중강도 운동 (현재 {before}일)",
                 "en": "30 min moderate activity {after} days a week (now {before})"},
    "all": {"ko": "위 항목 모두", "en": "All of the above"},
    "pp": {"ko": "%p", "en": " pp"},
    "missing": {"ko": "추가하면 추정이 더 정확해지는 검사", "en": "Missing inputs that would sharpen the estimate"},
    "missing_none": {"ko": "주요 검사 항목이 모두 있습니다.", "en": "All key inputs are present."},
    "age_band_only": {"ko": "정확한 나이(5세 연령대의 중앙값을 사용함)",
                      "en": "exact age (the midpoint of the 5-year band was used)"},
    "history_none": {"ko": "이전 검진 기록 없음: 이번 검진만으로 추정했습니다.",
                     "en": "No earlier checkups given: estimated from this checkup alone."},
    "history_some": {"ko": "이력으로 사용한 이전 검진 {n}회 ({dates})",
                     "en": "Earlier checkups used as history: {n} ({dates})"},
    "stale": {"ko": "이 검진은 {age} 전 검진으로, 검진 후 1년의 위험 기간이 이미 지났습니다. 아래 위험은 그 검진 후 "
                    "1년에 대한 추정이며 현재의 위험이 아닙니다. 최근 검진 결과로 다시 평가하세요.",
              "en": "This checkup is {age} old: the one-year risk window after it has passed. The risks below are "
                    "for the year after that checkup, not for now; reassess with a recent checkup."},
    "years": {"ko": "{n}년", "en": "{n} years"},
    "one_year": {"ko": "1년", "en": "1 year"},
    "days": {"ko": "{n}일", "en": "{n} days"},
    "footer": {"ko": "모델 버전 {version} · 작성일 {date}", "en": "Model version {version} · report date {date}"},
    "caveat": {"ko": "진료를 돕기 위한 모델 추정치이며 진단이 아니고 임상적 판단을 대신하지 않습니다.",
               "en": "Model estimates to support clinical judgement, not a diagnosis and not a substitute for it."},
}


def t(key: str, lang: Lang, **kw: object) -> str:
    text = TEXT[key][lang]
    return text.format(**kw) if kw else text


def risk_text(p: float) -> str:
    """A probability as a percentage with the precision its size deserves (0.31%, 2.3%, 12.4%)."""
    a = 100.0 * p
    if a < 0.01:
        return "<0.01%"
    return f"{a:.2f}%" if a < 1 else f"{a:.1f}%"


def _delta(before: float, after: float, lang: Lang) -> tuple[str, str]:
    """The change in percentage points at the precision the risks are shown, and its direction
    (down / up / same) judged on that shown value, so a "±0.00" is never coloured as a rise."""
    digits = 2 if 100 * before < 1 else 1
    d = round(100.0 * (after - before), digits)
    sign, direction = ("−", "down") if d < 0 else ("+", "up") if d > 0 else ("±", "same")
    return f"{sign}{abs(d):.{digits}f}{t('pp', lang)}", direction


def _number(x: float, digits: int = 0) -> str:
    return f"{x:.{digits}f}"


# -- what-if ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """One change of modifiable inputs: its TEXT key, the record fields it sets, the words' values."""

    key: str
    changes: dict[str, float]
    words: dict[str, str]


def what_if_changes(record: dict) -> list[WhatIf]:
    """The modifiable factors of this record that are off target, each with its target values.

    Only inputs change; every derived feature (BMI, TyG, pulse pressure, current smoker ...) is
    recomputed from them by the feature pipeline, so the model sees a consistent record.
    """
    out: list[WhatIf] = []
    get = record.get
    if get("smoking_status") == 3:
        out.append(WhatIf("quit_smoking", {"smoking_status": 2}, {}))
    sbp, dbp = get("sbp"), get("dbp")
    # Diastolic >= 120 cannot sit under a systolic of 120: no consistent record to estimate.
    if sbp is not None and sbp > TARGET_SBP and (dbp is None or dbp < TARGET_SBP):
        out.append(WhatIf("sbp", {"sbp": TARGET_SBP}, {"before": _number(sbp), "after": _number(TARGET_SBP)}))
    height, weight = get("height_cm"), get("weight_kg")
    if height is not None and weight is not None:
        bmi = weight / (height / 100.0) ** 2
        if bmi > TARGET_BMI:
            target = TARGET_BMI * (height / 100.0) ** 2
            out.append(WhatIf("bmi", {"weight_kg": round(target, 1)},
                              {"before": _number(weight, 1), "after": _number(target, 1),
                               "bmi_before": _number(bmi, 1), "bmi_after": _number(TARGET_BMI)}))
    ldl = get("ldl")
    if ldl is not None and ldl > TARGET_LDL:
        changes = {"ldl": TARGET_LDL}
        if get("total_cholesterol") is not None:
            # Total = LDL + HDL + VLDL: lowering LDL lowers the total by as much (non-HDL follows).
            changes["total_cholesterol"] = get("total_cholesterol") - (ldl - TARGET_LDL)
        out.append(WhatIf("ldl", changes, {"before": _number(ldl), "after": _number(TARGET_LDL)}))
    glucose = get("fasting_glucose")
    if glucose is not None and glucose > TARGET_GLUCOSE:
        out.append(WhatIf("glucose", {"fasting_glucose": TARGET_GLUCOSE},
                          {"before": _number(glucose), "after": _number(TARGET_GLUCOSE)}))
    if get("drinking") == 1:
        out.append(WhatIf("stop_drinking", {"drinking": 0}, {}))
    days = get("activity_days_per_week")
    if days is not None and days < TARGET_ACTIVITY_DAYS:
        out.append(WhatIf("activity", {"activity_days_per_week": TARGET_ACTIVITY_DAYS},
                          {"before": str(int(days)), "after": str(TARGET_ACTIVITY_DAYS)}))
    if len(out) > 1:
        combined: dict[str, float] = {}
        for w in out:
            combined.update(w.changes)
        out.append(WhatIf("all", combined, {}))
    return out


def what_if(scorer: Scorer, record: dict, history: list[dict] | tuple[dict, ...] = ()
            ) -> tuple[dict[str, float], list[tuple[WhatIf, dict[str, float]]]]:
    """(risk now, [(change, risk after)]) per outcome, all from one model call.

    Each variant is featurised on its own after the same `history` (the person's earlier
    checkups, all dated no later than `record`), as a request with that history would be, so
    variants never read as earlier checkups of one another while changes since the last checkup
    follow the changed values; the "now" row comes from the same call, so a difference is the
    model's and not float rounding.
    """
    changes = what_if_changes(record)
    variants = [record] + [{**record, **w.changes} for w in changes]
    history = list(history)
    # The variant comes last in the request and is the newest (ties keep input order), so it is the
    # last row; feature_matrix returns rows in input order.
    X = np.vstack([feature_matrix(Columns.from_records(history + [v]))[-1:] for v in variants])
    probs = scorer.probabilities(X)
    now = {o: float(p[0]) for o, p in probs.items()}
    return now, [(w, {o: float(p[i + 1]) for o, p in probs.items()}) for i, w in enumerate(changes)]


# -- the waterfall --------------------------------------------------------------------------------

SVG_WIDTH = 524
LABEL_WIDTH = 326
NOTE_WIDTH = 36
ROW = 12


def _factor_text(feature: str, value: float | None, sex: str | None, lang: Lang) -> dict:
    label = FEATURE_LABELS[feature]
    j = judgement(feature, sex)
    words = value is None or bool(label.codes)  # "Smoking: current", but "SBP 152 mmHg"
    return {
        "name": label.name(lang) + (":" if words else ""),
        "value": label.value_text(value, lang),
        "cutoff": j.text(lang, label) if j is not None else "",
        "level": (j.level(value) if j is not None else None) or "none",
    }


def waterfall(risk: dict, sex: str | None, lang: Lang) -> dict:
    """Geometry and words of one outcome's SHAP waterfall: base -> each top factor -> the rest -> risk.

    The axis is log-odds, where SHAP contributions add up exactly; the ends are labelled as risks.
    """
    base = risk["base_log_odds"]
    steps = [(c["feature"], c["value"], c["log_odds"]) for c in risk["contributions"]]
    n_other = len(FEATURE_LABELS) - len(steps)
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

    base_risk = 1.0 / (1.0 + math.exp(-base))
    rows = [{"kind": "end", "y": 0, "x": x(base), "text": t("base", lang, risk=risk_text(base_risk))}]
    for i, (feature, value, lo) in enumerate(steps):
        a, b = x(cum[i]), x(cum[i + 1])
        row = {"kind": "bar", "y": (i + 1) * ROW, "x": min(a, b), "w": max(abs(b - a), 1.0),
               "up": lo > 0, "link": b, "note": f"×{math.exp(lo):.2f}"}
        if feature is None:
            row.update(name=t("others", lang, n=n_other), value="", cutoff="", level="none")
        else:
            row.update(_factor_text(feature, value, sex, lang))
        rows.append(row)
    final = 1.0 / (1.0 + math.exp(-cum[-1]))
    rows.append({"kind": "end", "y": (len(steps) + 1) * ROW, "x": x(cum[-1]),
                 "text": t("final", lang, risk=risk_text(final))})
    return {"width": SVG_WIDTH, "height": (len(steps) + 2) * ROW + 2, "rows": rows, "row": ROW,
            "label_width": LABEL_WIDTH, "note_x": SVG_WIDTH - NOTE_WIDTH + 4}


# -- the page ------------------------------------------------------------------------------------


def _group_words(sex: str, band: str, lang: Lang) -> str:
    band_words = t("band_top", lang, low=band[:-1]) if band.endswith("+") else t("band", lang, band=band)
    return f"{t(f'group_{sex}', lang)} {band_words}"


def _age_words(exam: dt.date, today: dt.date, lang: Lang) -> str:
    years, days = exam_age(exam, today)
    if years >= 1:
        return t("one_year", lang) if years == 1 else t("years", lang, n=years)
    return t("days", lang, n=days)


def newest_with_history(records: list[dict]) -> tuple[int, list[int]]:
    """(index of the newest checkup, indices of the earlier ones oldest first), in the order the
    scorer reads one person's history. Every record must have its exam_date set."""
    order = person_order([r["person_id"] for r in records], [r["exam_date"] for r in records])
    return int(order[-1]), [int(i) for i in order[:-1]]


def build_context(scorer: Scorer, record: dict | list[dict], lang: Lang = "ko", today: dt.date | None = None) -> dict:
    """Everything the template shows, as words and numbers, for one validated canonical record,
    or for the newest of one person's validated records (the others are its history)."""
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
    outcomes, not_applicable = [], []
    for o in scorer.outcomes:
        spec = OUTCOME_SPECS[o]
        risk = result["risks"][o]
        name = spec.label_ko if lang == "ko" else spec.label_en
        if not risk["applicable"]:
            not_applicable.append({"name": name, "reason": reason_text(risk["reason"], lang)})
            continue
        p = risk["probability"]
        standing = scorer.model.risk_percentile(o, sex, band, p) if sex in ("M", "F") else None
        percentile = None
        if standing is not None:
            pct, n = standing
            group = _group_words(sex, band, lang)
            percentile = (t("percentile_lowest", lang, group=group, n=f"{n:,}") if pct < 1 else
                          t("percentile", lang, group=group, n=f"{n:,}", pct=int(round(pct))))
        outcomes.append({
            "key": o, "name": name, "short": spec.short_ko if lang == "ko" else spec.short_en,
            "risk": risk_text(p), "category": risk["category"], "category_words": t(f"cat_{risk['category']}", lang),
            "percentile": percentile, "waterfall": waterfall(risk, sex, lang),
        })

    applicable = [o["key"] for o in outcomes]
    whatifs = []
    for w, after in changes:
        cells = []
        for o in applicable:
            delta, direction = _delta(now[o], after[o], lang)
            cells.append({"risk": risk_text(after[o]), "delta": delta, "direction": direction})
        whatifs.append({"text": t(w.key, lang, **w.words), "cells": cells})

    missing = [FEATURE_LABELS[k].name(lang) for k in KEY_INPUTS if record.get(k) is None]
    if record.get("age") is None:
        missing.append(t("age_band_only", lang))
    exam = record["exam_date"]
    if history:
        dates = ", ".join(h["exam_date"].isoformat() for h in history)
        history_words = t("history_some", lang, n=len(history), dates=dates)
    else:
        history_words = t("history_none", lang)
    return {
        "lang": lang,
        "text": {k: v[lang] for k, v in TEXT.items()},
        "person": t("person", lang, sex=t(f"sex_{sex}", lang), age=age_words,
                    date=exam.isoformat(), pid=record["person_id"]),
        "history": history_words,
        "history_checkups": result["history_checkups"],
        "stale": t("stale", lang, age=_age_words(exam, today, lang)) if result["stale"] else None,
        "outcomes": outcomes,
        "not_applicable": not_applicable,
        "whatif_header": [{"short": o["short"], "now": risk_text(now[o["key"]])} for o in outcomes],
        "whatifs": whatifs,
        "missing": missing,
        "footer": t("footer", lang, version=scorer.version, date=today.isoformat()),
        "level_colours": {"disease": "#b3122e", "borderline": "#a26200"},
    }


_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)


def render_html(scorer: Scorer, record: dict | list[dict], lang: Lang = "ko", today: dt.date | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, nothing fetched): for one
    record, or for the newest of one person's records with the others as its history."""
    return _ENV.get_template("report.html.j2").render(**build_context(scorer, record, lang, today))


def render_pdf(html: str) -> bytes:
    """The same page as an A4 PDF (WeasyPrint; Korean needs the Noto CJK font, `make sysdeps`)."""
    from weasyprint import HTML

    return HTML(string=html).write_pdf()
