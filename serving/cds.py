"""CDS Hooks 2.0 (patient-view) and FHIR routes.

`GET /cds-services` is discovery (public); `POST /cds-services/checkup-risk` and its feedback
endpoint check the client's signed JWT (serving.cds_auth) instead of the API token;
`POST /fhir/risk-assessment` (API token) turns a FHIR Bundle into RiskAssessments. FHIR errors come
back as OperationOutcome, never as a 500, and never echo submitted values.

Both read all of the person's checkups (features.fhir groups Observations into visits) and score them
together, so the newest is scored with the earlier ones as its history, as `/score` and batch do.
Values that cannot be read are left missing and listed: in the card's detail, and in the FHIR
response as an OperationOutcome entry of severity `warning` at the end of the returned Bundle.
An earlier checkup that fails validation is dropped from the history with a warning; only the
newest checkup's problems refuse the call (422, naming the resource).

Stale data: when the scorer marks the newest checkup stale (`result["stale"]`, older than its
configurable limit), CDS returns one `info` card that says so (Korean and English) with no number,
no RiskAssessment suggestion and no report link: a "one-year" risk measured years ago would read as
today's. `/fhir/risk-assessment` still returns the RiskAssessments the caller asked for, each with a
note, and says so in the warnings.

Calm alerts: one card per call at most, `info` for low and moderate risk and `warning` for high and
very high, never `critical` (that is for what needs action now, which a one-year risk never is). The
summary names the next step in clinical words (`NEXT_STEPS`, one table of outcome x category), not
only a number.

Synthetic models: a model trained on simulated people (`models.provenance`) gives no cards unless
the service was started with `CHECKUP_RISK_ALLOW_SYNTHETIC=1` (read once at start-up by
serving.service and kept on the service as `allow_synthetic`); then every card says so, in Korean
and English, and its RiskAssessment suggestions carry the same note.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

import datetime as dt

import bentoml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.fhir import LOINC, OBSERVATION_CODES, FhirCheckup, FhirInputError, Issue, bundle_entries, read_bundle, \
    read_patient
from features.schema import BY_NAME, KEY_INPUTS
from models.outcomes import OUTCOME_SPECS
from models.provenance import synthetic_notice
from features.eligibility import reason_text
from features.labels import FEATURE_LABELS, contribution_text
from serving.report import risk_text, t
from serving.cds_auth import CdsAuthError
from serving.fhir_out import FHIR_JSON, operation_outcome, result_bundle, risk_assessments, warnings_outcome
from serving.schemas import Checkup, errors_from

SERVICE_ID = "checkup-risk"
REQUIRED_PREFETCH = ("patient", "observations")
# CDS Hooks 2.0 prefetch templates allow only context and user tokens, no date arithmetic (today() is
# a Da Vinci CRD extension, not core), so the history cannot be limited to five years in the query:
# all Observations of our codes are asked for, newest first, in one large page, and features.fhir
# keeps the checkups of the five years before the newest one. The panel codes are listed too: a
# `code` search matches Observation.code only, so a blood-pressure panel is found by its own code.
OBSERVATION_COUNT = 1000
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code="
                    + ",".join(f"{LOINC}|{c}" for c in OBSERVATION_CODES)
                    + f"&_sort=-date&_count={OBSERVATION_COUNT}",
    # Optional: history and medication fields stay missing when these are absent. US-Core style
    # servers record treatment as MedicationRequest, others as MedicationStatement: both are read.
    "conditions": "Condition?patient={{context.patientId}}",
    "medications": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active",
    # Family history (positives, and "No family history of ..." negatives) for the family fields.
    "familyHistory": "FamilyMemberHistory?patient={{context.patientId}}",
}
OPTIONAL_PREFETCH = ("conditions", "medications", "medicationRequests", "familyHistory")
# Never "critical": CDS Hooks reserves it for what needs action now, and a one-year risk does not.
INDICATOR = {"low": "info", "moderate": "info", "high": "warning", "very_high": "warning"}
ALLOW_SYNTHETIC_ENV = "CHECKUP_RISK_ALLOW_SYNTHETIC"
_ROUTINE = ("정기 검진 유지", "continue routine checkups")
# What to do next, per outcome and category (Korean and English), from mainstream Korean guidance:
# out-of-office (home or ambulatory) BP to confirm hypertension (대한고혈압학회 2022); fasting glucose
# and HbA1c to screen for diabetes (대한당뇨병학회 2023); a repeat fasting lipid panel and the
# cardiovascular risk that sets the LDL target (한국지질·동맥경화학회 2022); eGFR with urine albumin
# (UACR) and nephrotoxic drugs for kidney disease (KDIGO as adopted by 대한신장학회). Short enough
# that every summary stays under 140 characters (tested).
NEXT_STEPS: dict[str, dict[str, tuple[str, str]]] = {
    "cvd": {"low": _ROUTINE,
            "moderate": ("혈압·지질·흡연 점검", "review BP, lipids, smoking"),
            "high": ("혈압·LDL 목표 관리·금연 상담", "BP/LDL to target, smoking advice"),
            "very_high": ("흉통·신경증상 확인, 위험요인 치료", "check chest pain/stroke signs, treat risk factors")},
    "diabetes": {"low": _ROUTINE,
                 "moderate": ("체중·식사·운동 상담", "weight, diet, exercise advice"),
                 "high": ("당화혈색소 검사·생활습관 상담", "check HbA1c, lifestyle counselling"),
                 "very_high": ("공복혈당·당화혈색소 재검", "recheck fasting glucose and HbA1c")},
    "hypertension": {"low": _ROUTINE,
                     "moderate": ("저염식·운동 상담", "salt reduction, exercise advice"),
                     "high": ("가정혈압 측정·생활습관 상담", "home BP monitoring, lifestyle counselling"),
                     "very_high": ("가정·활동혈압으로 확인", "confirm with home or ambulatory BP")},
    "dyslipidemia": {"low": _ROUTINE,
                     "moderate": ("식사·운동 상담", "diet and exercise advice"),
                     "high": ("공복 지질검사 재검·식사 상담", "repeat fasting lipids, diet advice"),
                     "very_high": ("지질검사 재검·심혈관 위험 평가", "repeat lipids, assess CV risk")},
    "ckd": {"low": _ROUTINE,
            "moderate": ("혈압·혈당 관리·신독성 약물 주의", "control BP/glucose, avoid NSAIDs"),
            "high": ("eGFR·요알부민(UACR) 재검", "repeat eGFR and urine albumin (UACR)"),
            "very_high": ("eGFR·UACR 재검·신독성 약물 검토", "repeat eGFR/UACR, review nephrotoxic drugs")},
}
_RANK = {"low": 0, "moderate": 1, "high": 2, "very_high": 3}
REPORT_TTL_S = 3600


def discovery() -> dict:
    return {"services": [{
        "hook": "patient-view",
        "id": SERVICE_ID,
        "title": "Chronic disease risk from the national health checkup (국가건강검진 만성질환 위험)",
        "description": "One-year risk of cardiovascular disease, type 2 diabetes, hypertension, dyslipidemia and "
                       "chronic kidney disease from the latest checkup results, with the factors that drive it.",
        "prefetch": PREFETCH,
        "usageRequirements": "Observations coded in LOINC; the JWT issuer must be allowlisted by the service.",
    }]}


class PatientViewContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    userId: str = Field(min_length=1)
    patientId: str = Field(min_length=1)
    encounterId: str | None = None


class CdsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    hook: Literal["patient-view"]
    # The spec asks for a UUID; any non-empty identifier is accepted, as some clients send others.
    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: uuid.UUID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: dict[str, Any] | None = None
    outcomeTimestamp: str


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


def factor_words(contribution: dict, lang: str = "ko") -> str:
    """'Blood pressure: Systolic BP 152 mmHg': a SHAP contribution (a measurement group, or a model
    feature in the per-feature view) in clinical words, as the report words it."""
    return contribution_text(contribution, lang)


def _category(cat: str, lang: str) -> str:
    return t(f"cat_{cat}", lang).lower() if lang == "en" else t(f"cat_{cat}", lang)


def allow_synthetic_from_env(environ: Mapping[str, str]) -> bool:
    """`CHECKUP_RISK_ALLOW_SYNTHETIC`: 1 (or true / yes) lets a synthetic model give CDS cards.

    Unset, empty, 0, false or no keep them off. Anything else stops start-up with a message naming
    the variable: a site that wrote something else meant something, and guessing "on" would put
    made-up numbers in front of clinicians."""
    raw = (environ.get(ALLOW_SYNTHETIC_ENV) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{ALLOW_SYNTHETIC_ENV} must be 1 or 0, not {raw!r}")


def _short_en(outcome: str) -> str:
    short = OUTCOME_SPECS[outcome].short_en
    return short if short.isupper() else short.lower()  # "CVD" stays, "Diabetes" reads "diabetes"


def summary_text(outcome: str, category: str, probability: float) -> str:
    """'고혈압 1년 위험 높음(18.0%): 가정혈압 측정·생활습관 상담 / High 1-yr hypertension risk (18.0%):
    home BP monitoring, lifestyle counselling': the risk and what to do next, Korean then English."""
    ko, en = NEXT_STEPS[outcome][category]
    risk = risk_text(probability)
    return (f"{OUTCOME_SPECS[outcome].short_ko} 1년 위험 {t(f'cat_{category}', 'ko')}({risk}): {ko} / "
            f"{t(f'cat_{category}', 'en')} 1-yr {_short_en(outcome)} risk ({risk}): {en}")


def summary(result: dict) -> tuple[str, str] | None:
    """(summary under 140 characters, indicator) for the most important applicable risk."""
    applicable = [(o, r) for o, r in result["risks"].items() if r["applicable"]]
    if not applicable:
        return None
    # The highest category first; within it, the risk furthest above its outcome's usual rate.
    o, r = max(applicable, key=lambda x: (_RANK[x[1]["category"]],
                                          x[1]["probability"] / OUTCOME_SPECS[x[0]].category_cuts[0]))
    return summary_text(o, r["category"], r["probability"]), INDICATOR[r["category"]]


def mark_synthetic(card: dict, training_data: Mapping[str, Any]) -> dict:
    """The card of a synthetic model (allowed by the site) says so first in its detail (Korean and English)."""
    card["detail"] = f"**⚠ {synthetic_notice(training_data)}**\n\n{card['detail']}"
    return card


def detail(result: dict, version: str, missing: list[str]) -> str:
    """GitHub-flavoured Markdown: each outcome's risk and top factors in clinical words (ko / en)."""
    lines = [f"**국가건강검진 기반 1년 위험 · One-year risk from the checkup** (검진일 exam {result['exam_date']})", "",
             "| 질환 · Outcome | 위험 · Risk | 등급 · Category | 위험을 높이는 요인 · Factors raising it |",
             "|---|---|---|---|"]
    not_applicable = []
    for o, r in result["risks"].items():
        spec = OUTCOME_SPECS[o]
        if not r["applicable"]:
            not_applicable.append(f"- {spec.label_ko} · {spec.label_en}: {reason_text(r['reason'], 'ko')} · "
                                  f"{r['reason']}")
            continue
        factors = [factor_words(c, "ko") for c in r["contributions"] if c["log_odds"] > 0][:3]
        cat = r["category"]
        lines.append(f"| {spec.label_ko} · {spec.label_en} | {risk_text(r['probability'])} | "
                     f"{_category(cat, 'ko')} · {_category(cat, 'en')} | {'; '.join(factors) or '-'} |")
    if not_applicable:
        lines += ["", "**해당 없음 · Not applicable**", *not_applicable]
    if missing:
        names = [f"{FEATURE_LABELS[m].name('ko')} · {FEATURE_LABELS[m].name('en')}" for m in missing]
        lines += ["", f"**누락된 검사 · Missing inputs** (있으면 추정이 더 정확해집니다 · would sharpen the estimate): "
                      f"{', '.join(names)}"]
    lines += ["", f"_모델 추정치이며 진단이 아닙니다 · A model estimate, not a diagnosis. "
                  f"checkup-risk model v{version}._"]
    return "\n".join(lines)


def _source(version: str) -> dict:
    return {"label": f"checkup-risk (model v{version})",
            "topic": {"system": "https://github.com/checkup-risk/checkup-risk", "code": "chronic-disease-risk",
                      "display": "Chronic disease risk"}}


def context_lines(result: dict, warnings: list[Issue]) -> list[str]:
    """Markdown lines on the history used and on the values that could not be read (ko / en)."""
    lines = []
    history = result.get("history_checkups")
    if history:
        lines += ["", f"이전 검진 {history}회를 이력으로 함께 사용 · {history} earlier checkup(s) used as history"]
    if warnings:
        lines += ["", "**읽지 못한 값 · Values not read** (누락으로 처리 · treated as missing):"]
        lines += [f"- `{w.location}`: {w.message}" if w.location else f"- {w.message}" for w in warnings]
    return lines


def card(result: dict, version: str, assessments: list[dict], report_url: str | None,
         missing: list[str], warnings: list[Issue] | None = None) -> dict | None:
    head = summary(result)
    if head is None:
        return None
    text, indicator = head
    body = detail(result, version, missing)
    extra = context_lines(result, warnings or [])
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
    }
    if assessments:
        out["suggestions"] = [{
            "label": "위험도 평가 기록 · Record the risk assessment (FHIR RiskAssessment)",
            "uuid": str(uuid.uuid4()),
            "actions": [{"type": "create", "description": f"Record the {a['prediction'][0]['outcome']['text']} "
                                                          f"risk assessment", "resource": a}
                        for a in assessments],
        }]
        out["selectionBehavior"] = "at-most-one"
    if report_url:
        out["links"] = [{"label": "임상의 보고서 · Clinician report", "url": report_url, "type": "absolute"}]
    return out


def _days_old(exam_date: str, today: dt.date | None = None) -> int:
    return ((today or dt.date.today()) - dt.date.fromisoformat(str(exam_date)[:10])).days


def stale_card(result: dict, version: str, warnings: list[Issue] | None = None,
               today: dt.date | None = None) -> dict:
    """The one card for a stale newest checkup: says so, gives no risk number and no suggestion."""
    exam = str(result["exam_date"])[:10]
    years = _days_old(exam, today) / 365.25
    text = (f"최근 검진 {exam}({years:.1f}년 전): 오래되어 1년 위험 미표시 · "
            f"Latest checkup {exam} too old for a 1-year risk")
    lines = [f"**최근 검진이 오래되었습니다 · The latest checkup is out of date** (검진일 exam {exam}, "
             f"{years:.1f}년 전 · {years:.1f} years ago)", "",
             "가장 최근 검진이 허용 기간보다 오래되어 향후 1년 위험을 표시하지 않습니다. 그 검진으로 계산한 위험은 "
             "검진 다음 1년에 대한 것이지 지금부터 1년에 대한 것이 아닙니다. 새 검진 결과가 입력되면 다시 계산합니다.",
             "",
             "The newest checkup is older than the service's limit, so no one-year risk is shown: a risk computed "
             "from it describes the year after that checkup, not the coming year. A new checkup gives a current "
             "estimate."]
    notes = [w for w in result.get("warnings") or [] if "missing" not in w]
    if notes:
        lines += ["", *[f"- {w}" for w in notes]]
    lines += context_lines(result, warnings or [])
    lines += ["", f"_checkup-risk model v{version}._"]
    return {"uuid": str(uuid.uuid4()), "summary": text, "detail": "\n".join(lines), "indicator": "info",
            "source": _source(version)}


def stale_warning(result: dict) -> str | None:
    """The FHIR warning for a stale result, unless the scorer's own warnings already say it."""
    if not result.get("stale"):
        return None
    exam = str(result["exam_date"])[:10]
    if any("stale" in w.lower() or exam in w for w in result.get("warnings") or []):
        return None
    return (f"The newest checkup ({exam}) is older than the staleness limit: its one-year risk describes the year "
            f"after that checkup, not the coming year.")


class RecentRecords:
    """Validated records behind a card's report link, kept for an hour (SQLite, shared by workers).

    The link carries a random id, not patient data; the report route still needs the API token.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._purged = 0.0
        self._db().execute("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, expires REAL, record TEXT)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def put(self, record: dict | list[dict]) -> str:
        """Keep one record, or one person's checkups oldest first (the last is the one reported)."""
        key = uuid.uuid4().hex
        now = time.time()
        db = self._db()
        if now - self._purged > 60:
            db.execute("DELETE FROM records WHERE expires < ?", (now,))
            self._purged = now
        db.execute("INSERT INTO records VALUES (?, ?, ?)", (key, now + REPORT_TTL_S, json.dumps(record, default=str)))
        return key

    def get_all(self, key: str) -> list[dict] | None:
        """The kept checkups, oldest first (a single kept record comes back as a list of one)."""
        row = self._db().execute("SELECT record FROM records WHERE id = ? AND expires >= ?",
                                 (key, time.time())).fetchone()
        if not row:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, list) else [value]

    def get(self, key: str) -> dict | None:
        """The reported (newest) record; its history is in `get_all`."""
        records = self.get_all(key)
        return records[-1] if records else None


def _fhir_error(issues: list[Issue], status: int, code: str = "invalid") -> JSONResponse:
    return JSONResponse(operation_outcome(issues, code=code), status_code=status, media_type=FHIR_JSON)


def _validation_issues(exc: ValidationError, where: str = "") -> list[Issue]:
    issues = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        issues.append(Issue(f"{where}{loc}" if loc else where or "body", str(e.get("msg", "invalid"))))
    return issues


def _record_issues(exc: ValidationError, sources: dict[str, str], patient: str) -> list[Issue]:
    issues = []
    for e in errors_from(exc, prefix=()):
        source = sources.get(e["field"] or "", patient)
        issues.append(Issue(source, f"{e['field']}: {e['message']}" if e["field"] else e["message"]))
    return issues


def validate_records(checkup: FhirCheckup) -> tuple[list[dict], list[Issue]]:
    """The FHIR-derived records through the same validator as /score, oldest first, and warnings.

    The newest record must be valid (errors name the resource: FhirInputError, 422). An earlier one
    that is not (an implausible old value, an age under 20) is left out of the history with a
    warning: history sharpens the estimate, and a bad old value must not block today's.
    `checkup.basis` is narrowed to the resources of the records kept.
    """
    *earlier, newest = list(zip(checkup.records, checkup.record_sources))
    try:
        last = Checkup.model_validate(newest[0]).model_dump()
    except ValidationError as exc:
        raise FhirInputError(_record_issues(exc, newest[1], checkup.patient)) from exc
    kept, kept_sources, warnings = [], [], []
    for record, sources in earlier:
        try:
            kept.append(Checkup.model_validate(record).model_dump())
            kept_sources.append(sources)
        except ValidationError as exc:
            for issue in _record_issues(exc, sources, checkup.patient):
                warnings.append(Issue(issue.location, f"earlier checkup of {record['exam_date']} not used as history: "
                                                      f"{issue.message}"))
    kept_sources.append(newest[1])
    checkup.basis = list(dict.fromkeys(ref for sources in kept_sources for ref in sources.values()
                                       if ref != checkup.patient))
    return [*kept, last], warnings


def validate_record(checkup: FhirCheckup) -> dict:
    """The newest record, validated (kept for callers that score one record)."""
    return validate_records(checkup)[0][-1]


async def _service():
    return bentoml.get_current_service()


def _audience(request: Request) -> str:
    public = os.environ.get("CHECKUP_RISK_PUBLIC_URL")
    if public:
        return public.rstrip("/") + request.url.path
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}"


def _base(request: Request) -> str:
    public = os.environ.get("CHECKUP_RISK_PUBLIC_URL")
    return public.rstrip("/") if public else f"{request.url.scheme}://{request.url.netloc}"


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise FhirInputError([Issue("body", "is not valid JSON")], status=400) from None


router = APIRouter()


@router.get("/cds-services", summary="CDS Hooks discovery (public)", tags=["CDS Hooks"])
def cds_discovery() -> dict:
    return discovery()


def _authorize(request: Request, svc) -> JSONResponse | None:
    try:
        svc.cds_verifier.verify(request.headers.get("authorization"), _audience(request))
    except CdsAuthError as e:
        response = _fhir_error([Issue("Authorization", str(e))], 401, code="security")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return None


def _prefetched_resources(prefetch: dict, key: str) -> list[tuple[dict, str | None]]:
    value = prefetch.get(key)
    if value is None:
        return []
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        return bundle_entries(value, where=f"prefetch.{key}")
    if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
        return []
    raise FhirInputError([Issue(f"prefetch.{key}", "must be a Bundle")])


@router.post("/cds-services/checkup-risk", summary="CDS Hooks patient-view service (client JWT)",
             tags=["CDS Hooks"])
async def cds_patient_view(request: Request, svc=Depends(_service)) -> JSONResponse:
    refused = _authorize(request, svc)
    if refused is not None:
        return refused
    try:
        body = await _json_body(request)
        try:
            call = CdsRequest.model_validate(body)
        except ValidationError as exc:
            return _fhir_error(_validation_issues(exc), 400)
        prefetch = call.prefetch or {}
        missing = [k for k in REQUIRED_PREFETCH if prefetch.get(k) is None]
        if missing:
            return _fhir_error([Issue(f"prefetch.{k}", "required prefetch data is missing or null") for k in missing],
                               412, code="required")
        patient = prefetch["patient"]
        if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
            return _fhir_error([Issue("prefetch.patient", "must be a Patient resource")], 412, code="required")
        for key in ("patient", "observations", *OPTIONAL_PREFETCH):
            if prefetch.get(key) is not None:
                _validate_fhir(prefetch[key], where=f"prefetch.{key}")
        if patient.get("id") != call.context.patientId:
            return _fhir_error([Issue("prefetch.patient", "is not the patient in context.patientId")], 422)
        resources = [e for k in ("observations", *OPTIONAL_PREFETCH) for e in _prefetched_resources(prefetch, k)]
        checkup = read_patient(patient, resources, visit_window_days=svc.fhir_visit_days)
        age = checkup.record.get("age")
        low, high = BY_NAME["age"].low, BY_NAME["age"].high
        if age is None or not low <= age <= high:
            return JSONResponse({"cards": []})  # outside the population the models describe
        records, dropped = validate_records(checkup)
    except FhirInputError as e:
        return _fhir_error(e.issues, e.status)
    synthetic = svc.scorer.synthetic
    if synthetic and not svc.allow_synthetic:
        # A model of made-up people: no card, unless the site asked for it (a demo, a test system).
        # The request was still checked above, so a client learns of its own errors either way.
        return JSONResponse({"cards": []})
    warnings = [*checkup.warnings, *dropped]
    # All checkups together: the newest is scored with the earlier ones as its history.
    result = svc.scorer.score_records(records, explain=True, top_k=5)[-1]
    if result.get("stale"):
        one = stale_card(result, svc.version, warnings)
    else:
        record = records[-1]
        assessments = risk_assessments(checkup, result, svc.version, lambda c: factor_words(c, "en"),
                                       synthetic=synthetic)
        report_url = f"{_base(request)}/reports/{svc.recent_records.put(records)}" if assessments else None
        missing = [k for k in KEY_INPUTS if record.get(k) is None]
        one = card(result, svc.version, assessments, report_url, missing, warnings)
    if one is not None and synthetic:
        one = mark_synthetic(one, svc.scorer.training_data)
    # Exactly one card when there is something to say, never several: one calm message per chart view.
    return JSONResponse({"cards": [one] if one else []})


@router.post("/cds-services/checkup-risk/feedback", summary="CDS Hooks feedback (client JWT)", tags=["CDS Hooks"])
async def cds_feedback(request: Request, svc=Depends(_service)) -> JSONResponse:
    refused = _authorize(request, svc)
    if refused is not None:
        return refused
    try:
        body = FeedbackRequest.model_validate(await _json_body(request))
    except FhirInputError as e:
        return _fhir_error(e.issues, e.status)
    except ValidationError as exc:
        return _fhir_error(_validation_issues(exc), 400)
    svc.feedback.record(body.feedback)
    return JSONResponse({})


class FeedbackLog:
    """Card outcomes (accepted / overridden and the override code), no patient data."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS feedback (card TEXT, outcome TEXT, reason TEXT, at TEXT)")

    def record(self, items: list[FeedbackItem]) -> None:
        rows = [(str(i.card), i.outcome, ((i.overrideReason or {}).get("reason") or {}).get("code"), i.outcomeTimestamp)
                for i in items]
        with sqlite3.connect(self.path, timeout=5.0) as db:
            db.executemany("INSERT INTO feedback VALUES (?, ?, ?, ?)", rows)

    def counts(self) -> dict[str, int]:
        with sqlite3.connect(self.path) as db:
            return dict(db.execute("SELECT outcome, COUNT(*) FROM feedback GROUP BY outcome").fetchall())


@router.post("/fhir/risk-assessment", summary="FHIR Bundle in, Bundle of RiskAssessment out", tags=["FHIR"])
async def fhir_risk_assessment(request: Request, svc=Depends(_service)) -> JSONResponse:
    try:
        bundle = await _json_body(request)
        if not isinstance(bundle, dict):
            raise FhirInputError([Issue("body", "must be a FHIR Bundle")])
        _validate_fhir(bundle, where="Bundle")
        checkup = read_bundle(bundle, visit_window_days=svc.fhir_visit_days)
        records, dropped = validate_records(checkup)
    except FhirInputError as e:
        return _fhir_error(e.issues, e.status)
    result = svc.scorer.score_records(records, explain=True, top_k=5)[-1]
    notes = list(result.get("warnings") or [])
    stale = stale_warning(result)
    if stale:
        notes.append(stale)
    assessments = risk_assessments(checkup, result, svc.version, lambda c: factor_words(c, "en"),
                                   history_checkups=result.get("history_checkups", len(records) - 1),
                                   stale=bool(result.get("stale")), synthetic=svc.scorer.synthetic)
    outcome = warnings_outcome([*checkup.warnings, *dropped], notes)
    return JSONResponse(result_bundle(assessments, outcome), media_type=FHIR_JSON)


def _validate_fhir(resource: Any, where: str) -> None:
    """Structure and types by the R4B models (unknown elements, wrong types, missing required), so
    that reading the record afterwards meets only well-formed resources."""
    from fhir.resources.R4B import get_fhir_model_class

    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    try:
        model = get_fhir_model_class(kind) if isinstance(kind, str) else None
    except (KeyError, ValueError, ImportError, AttributeError):
        model = None
    if model is None:
        raise FhirInputError([Issue(where, "must be a FHIR R4 resource with a known resourceType")])
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        raise FhirInputError(_validation_issues(exc, where=f"{where}.")) from None
    except (TypeError, ValueError, KeyError) as exc:  # fhir.resources raises these for some malformed input
        raise FhirInputError([Issue(where, f"is not a valid FHIR R4 {kind} ({type(exc).__name__})")]) from None
