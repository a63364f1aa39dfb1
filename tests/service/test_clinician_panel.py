"""A panel of people, read as a clinician would: each report rendered, screenshotted in headless
Chromium (kept in the `artifacts` folder of tests/conftest.py, for a person to look at) and checked for
what it must say. Also /score's two views of the contributions: grouped (default) and per feature."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.derive import FEATURES
from features.labels import FEATURE_LABELS, GROUPS, risk_text
from features.schema import EXAMPLE_RECORD
from models.outcomes import OUTCOME_SPECS
from serving.report import TEXT, build_context, render_html
from serving.schemas import Checkup
from tests import chromium
from tests.service.test_report import hangul, visible_text

TODAY = dt.date(2025, 9, 1)
LIPIDS = {"total_cholesterol": None, "triglycerides": None, "hdl": None, "ldl": None}


def rec(**changes) -> dict:
    return Checkup.model_validate({**EXAMPLE_RECORD, "exam_date": "2025-06-02", **changes}).model_dump()


def five_checkups(pid: str) -> list[dict]:
    """A man followed for five yearly checkups while his weight, BP and glucose creep up."""
    out = []
    for k in range(5):
        out.append(
            rec(
                person_id=pid,
                exam_date=f"{2021 + k}-05-1{k}",
                age=52 + k,
                weight_kg=74.0 + 1.5 * k,
                sbp=124 + 4 * k,
                dbp=78 + 2 * k,
                fasting_glucose=96 + 4 * k,
                ldl=None if k == 2 else 120 + 5 * k,
                serum_creatinine=0.9 + 0.03 * k,
            )
        )
    return out


# name -> (checkups, lang, what the page must show, what it must not)
PANEL: dict[str, tuple[list[dict], str, list[str], list[str]]] = {
    "young_woman": (
        [
            rec(
                person_id="p01",
                sex="F",
                age=26,
                height_cm=162,
                weight_kg=52,
                waist_cm=68,
                sbp=108,
                dbp=66,
                fasting_glucose=84,
                ldl=92,
                total_cholesterol=170,
                smoking_status=1,
                drinking=0,
                activity_days_per_week=5,
            )
        ],
        "ko",
        ["이전 검진 기록 없음", "정상 18.5–22.9"],
        [TEXT["trends"]["ko"]],
    ),
    "old_man_hypertensive_smoker": (
        [rec(person_id="p02", age=78, sbp=166, dbp=96, smoking_status=3)],
        "ko",
        ["혈압: 166/96 mmHg", "장기 금연 시", "혈압 166/96 → 119/79 mmHg", "2기 고혈압 ≥160/≥100"],
        [],
    ),
    "missing_lipids": (
        [rec(person_id="p03", **LIPIDS)],
        "en",
        ["Missing inputs that would sharpen the estimate", "Total cholesterol · HDL cholesterol · Triglycerides"],
        ["All key inputs are present"],
    ),
    "known_diabetes": (
        [rec(person_id="p04", history_diabetes=1, on_diabetes_medication=1, fasting_glucose=142)],
        "ko",
        [TEXT["not_applicable"]["ko"]],
        [],
    ),
    "five_checkups": (
        five_checkups("p05"),
        "ko",
        [TEXT["trends"]["ko"], TEXT["trends_risk"]["ko"], "이력으로 사용한 이전 검진 4회"],
        [],
    ),
    "five_checkups_en": (
        five_checkups("p06"),
        "en",
        [
            "Trends over checkups",
            "Systolic BP (mmHg)",
            "Fasting glucose (mg/dL)",
            "BMI (kg/m²)",
            "LDL cholesterol",
            "eGFR",
        ],
        [],
    ),
    "stale_exam": ([rec(person_id="p07", exam_date="2021-03-02")], "ko", ["위험 기간이 이미 지났습니다"], []),
    "dbp_without_sbp": ([rec(person_id="p08", sbp=None, dbp=72)], "en", [], ["normal <120/<80"]),
    "severe_obesity": (
        [rec(person_id="p09", height_cm=165, weight_kg=112, waist_cm=118, sbp=184, dbp=102)],
        "ko",
        ["3단계 비만 ≥35", "체중 112.0 → 100.8 kg", "혈압 184/102 → 119/79 mmHg: 추정하지 않음", "복부비만"],
        [],
    ),
    "age_band_only_woman": (
        [
            rec(
                person_id="p10",
                sex="F",
                age=None,
                age_group=14,
                height_cm=155,
                weight_kg=61,
                waist_cm=86,
                fasting_glucose=118,
            )
        ],
        "en",
        ["exact age", "defining measure: read with care", "abdominal obesity"],
        [],
    ),
    "kidney_proteinuria": (
        [rec(person_id="p11", urine_protein=4, serum_creatinine=1.4, age=68)],
        "en",
        ["Outcomes that do not apply"],
        [],
    ),
}


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


@pytest.fixture(scope="module")
def panel_html(scorer):
    """Each panel member's report, rendered once for the content test and the screenshot."""
    pages: dict[str, str] = {}

    def html(name: str) -> str:
        if name not in pages:
            checkups, lang, _, _ = PANEL[name]
            pages[name] = render_html(scorer, [dict(r) for r in checkups], lang, today=TODAY)
        return pages[name]

    return html


def screenshot(html: str, name: str, tmp: Path, height: int, artifacts: Path) -> Path:
    shot = chromium.screenshot(html, f"panel_{name}", tmp, 900, height)
    shutil.copy(shot, artifacts / shot.name)
    return shot


@pytest.mark.parametrize("name", list(PANEL))
def test_panel_report_reads_right(scorer, panel_html, name):
    checkups, lang, must, must_not = PANEL[name]
    html = panel_html(name)
    text = visible_text(html)
    for words in must:
        assert words in text, (name, words)
    for words in must_not:
        assert words not in text, (name, words)
    if lang == "en":
        assert not hangul(text), [w for w in text.split() if hangul(w)][:10]
    else:
        assert TEXT["title"]["ko"] in text
    ctx = build_context(scorer, [dict(r) for r in checkups], lang, today=TODAY)
    # The synthetic-model banner, where the report has one (the provenance key): a test model is synthetic.
    if ctx.get("provenance"):
        assert ctx["provenance"] in text
    # Ineligible outcomes say why, in the report's language.
    for n in ctx["not_applicable"]:
        assert n["reason"] and n["name"] in text and n["reason"] in text
    # Trends only with history: one checkup has none.
    assert (ctx["trends"] is None) == (len(checkups) == 1)


@pytest.mark.slow  # a headless Chromium per page
@pytest.mark.parametrize("name", list(PANEL))
def test_panel_report_screenshot(panel_html, name, tmp_path, artifacts):
    from PIL import Image

    height = 2600 if len(PANEL[name][0]) > 1 else 2000
    with Image.open(screenshot(panel_html(name), name, tmp_path, height, artifacts)) as img:
        gray = img.convert("L")
        assert gray.getextrema()[0] < 80  # there is text on the page, not a blank render
        ink = sum(n for n, v in gray.getcolors(1 << 16) if v < 250) / (img.width * img.height)
        assert 0.01 < ink < 0.6


def test_specific_findings(scorer):
    ctx = build_context(scorer, PANEL["old_man_hypertensive_smoker"][0], "en", today=TODAY)
    names = {n["name"] for n in ctx["not_applicable"]}
    assert "Hypertension" in names  # 166/96 is already hypertension
    lipid = build_context(scorer, PANEL["missing_lipids"][0], "en", today=TODAY)
    assert {FEATURE_LABELS[f].en for f in ("total_cholesterol", "hdl", "triglycerides")} <= set(lipid["missing"])
    # Where lipids are among the listed factors, they read "not measured", never a number.
    for o in lipid["outcomes"]:
        for row in o["waterfall"]["rows"]:
            if row.get("name", "").startswith("Lipids"):
                assert row["value"] == "not measured" and row["level"] == "none"
    stale = build_context(scorer, PANEL["stale_exam"][0], "ko", today=TODAY)
    assert stale["stale"] and "4년" in stale["stale"]
    dbp = visible_text(render_html(scorer, PANEL["dbp_without_sbp"][0], "en", today=TODAY))
    assert "BP stage unknown" in dbp or "Blood pressure" not in dbp  # listed: then never called normal
    ckd = build_context(scorer, PANEL["kidney_proteinuria"][0], "ko", today=TODAY)
    assert any(n["name"] == "만성콩팥병" for n in ckd["not_applicable"])


def test_trends_score_each_checkup_with_its_own_history(scorer):
    checkups = five_checkups("p12")
    ctx = build_context(scorer, [dict(r) for r in checkups], "en", today=TODAY)
    trends = ctx["trends"]
    assert [c["title"] for c in trends["measures"]] == [
        TEXT[f"trend_{m}"]["en"] for m in ("sbp", "fasting_glucose", "bmi", "ldl", "egfr")
    ]
    sbp = trends["measures"][0]
    assert [p["label"] for p in sbp["points"]] == ["124", "128", "132", "136", "140"]
    assert sbp["first"] == "2021-05" and sbp["last"] == "2025-05"
    ys = [p["y"] for p in sbp["points"]]
    assert ys == sorted(ys, reverse=True)  # rising BP draws upwards
    ldl = trends["measures"][3]
    assert len(ldl["points"]) == 4 and len(ldl["lines"]) == 2  # the missing panel is a gap, not a zero
    # Risk at each checkup = /score of that checkup with only its earlier ones.
    for chart in trends["risks"]:
        outcome = next(o for o, spec in OUTCOME_SPECS.items() if spec.short_en == chart["title"])
        expected = []
        for k in range(5):
            r = scorer.score_records([dict(c) for c in checkups[: k + 1]], explain=False, today=TODAY)[-1]
            p = r["risks"][outcome]["probability"]
            if p is not None:
                expected.append(risk_text(p))
        assert [pt["label"] for pt in chart["points"]] == expected, outcome
    html = render_html(scorer, [dict(r) for r in checkups], "en", today=TODAY)
    assert (
        html.count("<polyline") >= 6
        and "<script" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_dyslipidemia_risk_at_a_checkup_without_a_panel_is_a_ring(scorer):
    # Without a panel the dyslipidemia risk rests on the last earlier one: the chart says so.
    checkups = five_checkups("p14")
    checkups[3].update(LIPIDS)
    for lang in ("en", "ko"):
        ctx = build_context(scorer, [dict(r) for r in checkups], lang, today=TODAY)
        dys = next(
            c for c in ctx["trends"]["risks"] if c["title"] == getattr(OUTCOME_SPECS["dyslipidemia"], f"short_{lang}")
        )
        assert [p["hollow"] for p in dys["points"]] == [False, False, False, True, False]
        assert dys["note"] == TEXT["trend_no_panel"][lang]
        assert all(c["note"] is None for c in ctx["trends"]["measures"] + ctx["trends"]["risks"] if c is not dys)
    html = render_html(scorer, [dict(r) for r in checkups], "en", today=TODAY)
    assert html.count('stroke-width=".8"/>') == 1 and TEXT["trend_no_panel"]["en"] in visible_text(html)


def test_score_groups_by_default_and_features_on_request(client):
    body = {"checkups": [dict(EXAMPLE_RECORD)], "top_k": 5}
    headers = {"Authorization": "Bearer test-token"}
    grouped = client.post("/score", json=body, headers=headers)
    raw = client.post("/score", json=body, headers=headers, params={"detail": "features"})
    assert grouped.status_code == raw.status_code == 200, (grouped.text, raw.text)
    g_risks, f_risks = grouped.json()["results"][0]["risks"], raw.json()["results"][0]["risks"]
    for o, risk in g_risks.items():
        if not risk["applicable"]:
            continue
        p = risk["probability"]
        assert f_risks[o]["probability"] == p
        for view in (risk, f_risks[o]):
            total = view["base_log_odds"] + sum(c["log_odds"] for c in view["contributions"]) + view["other_log_odds"]
            assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
        for c in risk["contributions"]:
            assert c["feature"] in GROUPS and set(c) == {"feature", "value", "log_odds", "features"}
            assert c["features"] and set(c["features"]) <= set(GROUPS[c["feature"]].features)
        bp = [c for c in risk["contributions"] if c["feature"] == "blood_pressure"]
        assert not bp or bp[0]["value"] == EXAMPLE_RECORD["sbp"]
        for c in f_risks[o]["contributions"]:
            assert c["feature"] in FEATURES and set(c) == {"feature", "value", "log_odds"}
    bad = client.post("/score", json=body, headers=headers, params={"detail": "everything"})
    assert bad.status_code == 422


def test_lipids_carried_from_the_last_panel_are_shown_as_such():
    # The panel is drawn every few years: a checkup without one is scored with the last panel, and
    # the report names that panel's LDL and age instead of calling the lipids "not measured".
    from features.derive import build_features
    from serving.report import _group_text

    earlier = rec(person_id="p13", exam_date="2023-05-02", age=55, ldl=172)
    newest = rec(person_id="p13", exam_date="2025-05-02", age=57, **LIPIDS)
    x = build_features(pd.DataFrame([earlier, newest])).to_numpy(dtype=float)[-1]
    en, ko = _group_text("lipids", x, "M", "en"), _group_text("lipids", x, "M", "ko")
    assert en["value"] == "LDL 172 mg/dL (not drawn this time: the panel of 2.0 y ago)"
    assert ko["value"].startswith("LDL 172 mg/dL (") and "2.0년 전" in ko["value"]
    assert en["level"] not in ("none", "normal")
    alone = build_features(pd.DataFrame([newest]).drop(columns=["person_id"])).to_numpy(dtype=float)[-1]
    assert _group_text("lipids", alone, "M", "en")["value"] == "not measured"
    # A panel drawn this time without an LDL (triglycerides of 400 or more) is this panel's: its
    # most abnormal lipid stands for it (changed by design: it read "not measured" though drawn).
    drawn = dict(newest, total_cholesterol=300, triglycerides=500, hdl=40)
    x = build_features(pd.DataFrame([earlier, drawn])).to_numpy(dtype=float)[-1]
    shown = _group_text("lipids", x, "M", "en")
    assert shown["value"] == "TG 500 mg/dL" and shown["level"] == "disease"
