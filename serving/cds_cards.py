"""What a CDS card says: summary, detail and suggestions, in Korean and English.

Calm alerts: one card per call at most, `info` for low and moderate risk and `warning` for high and
very high, never `critical` (that is for what needs action now, which a one-year risk never is). The
summary names the next step in clinical words (`NEXT_STEPS`, one table of outcome x category), not
only a number.

Stale data: when the scorer marks the newest checkup stale (`result["stale"]`, older than its
configurable limit), CDS returns one `info` card that says so (Korean and English) with no number,
no RiskAssessment suggestion and no report link: a "one-year" risk measured years ago would read as
today's. `/fhir/risk-assessment` still returns the RiskAssessments the caller asked for, each with a
note, and the scorer's warnings say it (`serving.scoring.staleness`).

No checkup at all (no Observation, or none with a usable value): CDS returns one `info` card that
says there are no checkup results to assess (`no_checkup_card`, the same shape as the stale card:
no number, no suggestion, no link); `/fhir/risk-assessment` returns no RiskAssessment and an
OperationOutcome with the reason and the values not read (`serving.fhir_out.no_checkup_outcome`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from features.eligibility import reason_text
from features.fhir import Issue
from features.labels import CRITICAL_HEADING, FEATURE_LABELS, Lang, contribution_text, critical_text
from models.outcomes import CATEGORIES, OUTCOME_SPECS
from models.provenance import UNSEEN_LEAD, synthetic_notice
from serving.report import risk_text, t
from serving.scoring import critical_of, exam_age

# Never "critical": CDS Hooks reserves it for what needs action now, and a one-year risk does not.
INDICATOR = {"low": "info", "moderate": "info", "high": "warning", "very_high": "warning"}
_ROUTINE = ("정기 검진 유지", "continue routine checkups")
# What to do next, per outcome and category (Korean and English), from mainstream Korean guidance:
# out-of-office (home or ambulatory) BP to confirm hypertension (대한고혈압학회 2022); fasting glucose
# and HbA1c to screen for diabetes (대한당뇨병학회 2023); a repeat fasting lipid panel and the
# cardiovascular risk that sets the LDL target (한국지질·동맥경화학회 2022); eGFR with urine albumin
# (UACR) and nephrotoxic drugs for kidney disease (KDIGO as adopted by 대한신장학회). Short enough
# that every summary stays under 140 characters (tested).
NEXT_STEPS: dict[str, dict[str, tuple[str, str]]] = {
    "cvd": {
        "low": _ROUTINE,
        "moderate": ("혈압·지질·흡연 점검", "review BP, lipids, smoking"),
        "high": ("혈압·LDL 목표 관리·금연 상담", "BP/LDL to target, smoking advice"),
        "very_high": ("흉통·신경증상 확인, 위험요인 치료", "check chest pain/stroke signs, treat risk factors"),
    },
    "diabetes": {
        "low": _ROUTINE,
        "moderate": ("체중·식사·운동 상담", "weight, diet, exercise advice"),
        "high": ("당화혈색소 검사·생활습관 상담", "check HbA1c, lifestyle counselling"),
        "very_high": ("공복혈당·당화혈색소 재검", "recheck fasting glucose and HbA1c"),
    },
    "hypertension": {
        "low": _ROUTINE,
        "moderate": ("저염식·운동 상담", "salt reduction, exercise advice"),
        "high": ("가정혈압 측정·생활습관 상담", "home BP monitoring, lifestyle counselling"),
        "very_high": ("가정·활동혈압으로 확인", "confirm with home or ambulatory BP"),
    },
    "dyslipidemia": {
        "low": _ROUTINE,
        "moderate": ("식사·운동 상담", "diet and exercise advice"),
        "high": ("공복 지질검사 재검·식사 상담", "repeat fasting lipids, diet advice"),
        "very_high": ("지질검사 재검·심혈관 위험 평가", "repeat lipids, assess CV risk"),
    },
    "ckd": {
        "low": _ROUTINE,
        "moderate": ("혈압·혈당 관리·신독성 약물 주의", "control BP/glucose, avoid NSAIDs"),
        "high": ("eGFR·요알부민(UACR) 재검", "repeat eGFR and urine albumin (UACR)"),
        "very_high": ("eGFR·UACR 재검·신독성 약물 검토", "repeat eGFR/UACR, review nephrotoxic drugs"),
    },
}
_RANK = {c: i for i, c in enumerate(CATEGORIES)}
assert set(INDICATOR) == set(CATEGORIES)


# Why a clinician may dismiss a risk card (CDS Hooks `overrideReasons`). Feedback keeps only these
# codes: any other is stored as "other", since a free-form code can carry a name or a value.
OVERRIDE_SYSTEM = "urn:checkup-risk:override-reason"
OVERRIDE_REASONS: tuple[dict[str, str], ...] = tuple(
    {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
    for code, display in (
        ("already-known", "이미 알고 관리 중 · Already known and managed"),
        ("not-relevant", "이 환자에게 해당 없음 · Not relevant for this patient"),
        ("data-outdated", "검진 자료가 오래됨 · Checkup data out of date"),
        ("disagree", "추정에 동의하지 않음 · Disagree with the estimate"),
    )
)
OVERRIDE_CODES = frozenset(r["code"] for r in OVERRIDE_REASONS)


def factor_words(contribution: dict, lang: Lang = "ko") -> str:
    """'Blood pressure: Systolic BP 152 mmHg': a SHAP contribution (a measurement group, or a model
    feature in the per-feature view) in clinical words, as the report words it."""
    return contribution_text(contribution, lang)


def _category(cat: str, lang: Lang) -> str:
    return t(f"cat_{cat}", lang).lower() if lang == "en" else t(f"cat_{cat}", lang)


def _short_en(outcome: str) -> str:
    short = OUTCOME_SPECS[outcome].short_en
    return short if short.isupper() else short.lower()  # "CVD" stays, "Diabetes" reads "diabetes"


def summary_text(outcome: str, category: str, probability: float, rough: bool = False) -> str:
    """'고혈압 1년 위험 높음(18.0%): 가정혈압 측정·생활습관 상담 / High 1-yr hypertension risk (18.0%):
    home BP monitoring, lifestyle counselling': the risk and what to do next, Korean then English.
    `rough`: from a model fitted on too few events (the detail says how few), shown "≈18%"."""
    ko, en = NEXT_STEPS[outcome][category]
    risk = ("≈" if rough else "") + risk_text(probability)
    return (
        f"{OUTCOME_SPECS[outcome].short_ko} 1년 위험 {t(f'cat_{category}', 'ko')}({risk}): {ko} / "
        f"{t(f'cat_{category}', 'en')} 1-yr {_short_en(outcome)} risk ({risk}): {en}"
    )


def summary(result: dict, thin: Mapping[str, tuple[int, int]] | None = None) -> tuple[str, str] | None:
    """(summary under 140 characters, indicator) for the most important applicable risk; "≈" marks
    it rough where its outcome is in `thin` (fitted on too few events)."""
    applicable = [(o, r) for o, r in result["risks"].items() if r["applicable"]]
    if not applicable:
        return None
    # The highest category first; within it, the risk furthest above its outcome's usual rate.
    o, r = max(
        applicable, key=lambda x: (_RANK[x[1]["category"]], x[1]["probability"] / OUTCOME_SPECS[x[0]].category_cuts[0])
    )
    rough = thin is not None and o in thin
    return summary_text(o, r["category"], r["probability"], rough), INDICATOR[r["category"]]


SYNTHETIC_MARK = "[합성 모델·synthetic model]"


def mark_synthetic(card: dict, training_data: Mapping[str, Any]) -> dict:
    """The card of a synthetic model (allowed by the site) says so first in its summary and detail
    (Korean and English), and in its source label, which a collapsed card still shows."""
    card["detail"] = f"**⚠ {synthetic_notice(training_data)}**\n\n{card['detail']}"
    # The summary is all many EHRs show: it says so too, in place of the English next steps (the
    # detail keeps them), so that it stays under 140 characters.
    ko, _, en = card["summary"].partition(" / ")
    card["summary"] = f"{SYNTHETIC_MARK} {ko} / {en.split('): ', 1)[0]})" if en else f"{SYNTHETIC_MARK} {ko}"
    card["source"] = {**card["source"], "label": f"{card['source']['label']} · 합성 데이터 모델 · synthetic-data model"}
    return card


def detail(result: dict, version: str, missing: list[str], thin: Mapping[str, tuple[int, int]] | None = None) -> str:
    """GitHub-flavoured Markdown: each outcome's risk and top factors in clinical words (ko / en); a
    risk from a model fitted on too few events (`thin`: outcome -> (events, needed)) is marked rough."""
    lines = [
        f"**국가건강검진 기반 1년 위험 · One-year risk from the checkup** (검진일 exam {result['exam_date']})",
        "",
        "| 질환 · Outcome | 위험 · Risk | 등급 · Category | 위험을 높이는 요인 · Factors raising it |",
        "|---|---|---|---|",
    ]
    not_applicable = []
    for o, r in result["risks"].items():
        spec = OUTCOME_SPECS[o]
        if not r["applicable"]:
            ko = reason_text(r["reason_id"], "ko", r["reason_date"])
            not_applicable.append(f"- {spec.label_ko} · {spec.label_en}: {ko} · {r['reason']}")
            continue
        factors = [factor_words(c, "ko") for c in r["contributions"] if c["log_odds"] > 0][:3]
        cat = r["category"]
        rough = ""
        if thin and o in thin:
            events, needed = thin[o]
            rough = f" (대략적 추정 · rough: {events:,}/{needed:,} events)"
        lines.append(
            f"| {spec.label_ko} · {spec.label_en} | {risk_text(r['probability'])}{rough} | "
            f"{_category(cat, 'ko')} · {_category(cat, 'en')} | {'; '.join(factors) or '-'} |"
        )
    if not_applicable:
        lines += ["", "**해당 없음 · Not applicable**", *not_applicable]
    if missing:
        names = [f"{FEATURE_LABELS[m].name('ko')} · {FEATURE_LABELS[m].name('en')}" for m in missing]
        lines += [
            "",
            f"**누락된 검사 · Missing inputs** (있으면 추정이 더 정확해집니다 · would sharpen the estimate): "
            f"{', '.join(names)}",
        ]
    lines += [
        "",
        f"_모델 추정치이며 진단이 아닙니다 · A model estimate, not a diagnosis. checkup-risk model v{version}._",
    ]
    return "\n".join(lines)


def _source(version: str) -> dict:
    return {
        "label": f"checkup-risk (model v{version})",
        "topic": {
            "system": "https://github.com/checkup-risk/checkup-risk",
            "code": "chronic-disease-risk",
            "display": "Chronic disease risk",
        },
    }


def context_lines(result: dict, warnings: list[Issue]) -> list[str]:
    """Markdown lines on the history used and on the values that could not be read (ko / en)."""
    lines = []
    history = result.get("history_checkups")
    if history:
        lines += ["", f"이전 검진 {history}회를 이력으로 함께 사용 · {history} earlier checkup(s) used as history"]
    if warnings:
        # Not all of them are unread values (a mean of tied results, a Condition dated later): one
        # heading for what the service says about the data, with the rule for what it could not read.
        lines += [
            "",
            "**보낸 자료에 대한 참고 · Notes on the data sent** (읽지 못한 값은 누락으로 처리 · a value not read is "
            "treated as missing):",
        ]
        lines += [f"- `{w.location}`: {w.message}" if w.location else f"- {w.message}" for w in warnings]
    return lines


CRITICAL_SUMMARY = f"{CRITICAL_HEADING['ko']} · {CRITICAL_HEADING['en']}"


def card(
    result: dict,
    version: str,
    assessments: list[dict],
    report_url: str | None,
    missing: list[str],
    warnings: list[Issue] | None = None,
    thin: Mapping[str, tuple[int, int]] | None = None,
) -> dict | None:
    head = summary(result, thin)
    urgent = [critical_of(u) for u in result.get("critical", [])]
    if head is None and not urgent:
        return None
    body = detail(result, version, missing, thin) if head is not None else f"_checkup-risk model v{version}._"
    text, indicator = head if head is not None else (CRITICAL_SUMMARY, "warning")
    if urgent:
        # A value that needs evaluation now (BP 270/150) heads the card and is its summary, the one
        # line many EHRs show: never "low risk, routine checkups" beside it. The card is a warning,
        # and it is given where no outcome applies too (a known disease is no reason for silence).
        items = [f"- {critical_text(c, 'ko')} · {critical_text(c, 'en')}" for c in urgent]
        body = "\n".join([f"**{CRITICAL_SUMMARY}**", *items, "", body])
        text, indicator = CRITICAL_SUMMARY, "warning"
    extra = context_lines(result, warnings or [])
    # A person of a sex or age band the model hardly learned from: said on the card as on /score.
    extra += [f"- {w}" for w in result.get("warnings", []) if w.startswith(UNSEEN_LEAD)]
    if extra:
        # Before the closing "model estimate" line, which stays last.
        head_lines, last = body.rsplit("\n", 1)
        body = "\n".join([head_lines, *extra, "", last])
    out = {
        "uuid": str(uuid.uuid4()),
        "summary": text,
        "detail": body,
        "indicator": indicator,
        "source": _source(version),
        "overrideReasons": [dict(r) for r in OVERRIDE_REASONS],
    }
    if assessments:
        out["suggestions"] = [
            {
                "label": "위험도 평가 기록 · Record the risk assessment (FHIR RiskAssessment)",
                "uuid": str(uuid.uuid4()),
                "actions": [
                    {
                        "type": "create",
                        "description": f"Record the {a['prediction'][0]['outcome']['text']} risk assessment",
                        "resource": a,
                    }
                    for a in assessments
                ],
            }
        ]
        out["selectionBehavior"] = "at-most-one"
    if report_url:
        out["links"] = [{"label": "임상의 보고서 · Clinician report", "url": report_url, "type": "absolute"}]
    return out


def stale_card(result: dict, version: str, warnings: list[Issue] | None = None, today: dt.date | None = None) -> dict:
    """The one card for a stale newest checkup: says so, gives no risk number and no suggestion."""
    exam = str(result["exam_date"])[:10]
    # Whole years (days under one), as the scorer's staleness warning on the same card says it.
    years, days = exam_age(dt.date.fromisoformat(exam), today or dt.date.today())
    ago_ko, ago_en = (
        (f"{years}년", f"{years} year{'s' if years != 1 else ''}") if years else (f"{days}일", f"{days} days")
    )
    text = f"최근 검진 {exam}({ago_ko} 전): 오래되어 1년 위험 미표시 · Latest checkup {exam} too old for a 1-year risk"
    lines = [
        f"**최근 검진이 오래되었습니다 · The latest checkup is out of date** (검진일 exam {exam}, "
        f"{ago_ko} 전 · {ago_en} ago)",
        "",
        "가장 최근 검진이 허용 기간보다 오래되어 향후 1년 위험을 표시하지 않습니다. 그 검진으로 계산한 위험은 "
        "검진 다음 1년에 대한 것이지 지금부터 1년에 대한 것이 아닙니다. 새 검진 결과가 입력되면 다시 계산합니다.",
        "",
        "The newest checkup is older than the service's limit, so no one-year risk is shown: a risk computed "
        "from it describes the year after that checkup, not the coming year. A new checkup gives a current "
        "estimate.",
    ]
    notes = [w for w in result.get("warnings") or [] if "missing" not in w]
    if notes:
        lines += ["", *[f"- {w}" for w in notes]]
    lines += context_lines(result, warnings or [])
    lines += ["", f"_checkup-risk model v{version}._"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": text,
        "detail": "\n".join(lines),
        "indicator": "info",
        "source": _source(version),
    }


def no_checkup_card(version: str, reason: str, warnings: list[Issue] | None = None) -> dict:
    """The one card when no checkup measurement could be read (no Observation, or none usable):
    says so, gives no risk number, no suggestion and no report link, as the stale card does."""
    lines = [
        "**평가할 검진 결과가 없습니다 · No checkup results to assess**",
        "",
        "읽을 수 있는 검진 측정값(혈압, 혈당, 지질, 신체계측 등)이 없어 향후 1년 위험을 계산하지 않았습니다. "
        "검진 결과가 입력되면 다시 계산합니다.",
        "",
        "No checkup measurement (blood pressure, glucose, lipids, body measurements and so on) could be read, "
        "so no one-year risk is computed. Checkup results give an estimate.",
        "",
        f"- {reason}",
    ]
    lines += context_lines({}, warnings or [])
    lines += ["", f"_checkup-risk model v{version}._"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": "검진 결과 없음: 1년 위험 미표시 · No checkup results to assess",
        "detail": "\n".join(lines),
        "indicator": "info",
        "source": _source(version),
    }
