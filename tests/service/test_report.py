"""The clinician report's content (HTML), its what-if estimates, and POST /report."""

import copy
import datetime as dt
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from features.derive import FEATURES, Columns, feature_matrix
from features.schema import EXAMPLE_RECORD, KEY_INPUTS
from models.outcomes import OUTCOME_SPECS
from serving.report import render_html, risk_text, what_if, what_if_changes
from serving.schemas import Checkup

REC = dict(EXAMPLE_RECORD)


def canonical(**changes) -> dict:
    """A record as the service hands it to the report: validated, in canonical form."""
    return Checkup.model_validate({**REC, **changes}).model_dump()


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


class _Text(HTMLParser):
    """What a reader sees: text of the page and of its SVG, without the style sheet."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "title")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    return re.sub(r"\s+", " ", " ".join(p.parts))


def hangul(text: str) -> bool:
    return any("가" <= ch <= "힣" for ch in text)


def test_korean_by_default(scorer):
    rec = canonical()
    html = render_html(scorer, rec)
    text = visible_text(html)
    assert '<html lang="ko">' in html
    assert "1년 내 발생 위험" in text and "모델 버전" in text
    risks = scorer.score_records([dict(rec)], explain=False)[0]["risks"]
    for o, spec in OUTCOME_SPECS.items():
        if risks[o]["applicable"]:
            assert spec.label_ko in text
            assert risk_text(risks[o]["probability"]) in text
    # Factors are measurements with their Korean class: 134/86 is KSH prehypertension.
    assert "혈압: 134/86 mmHg" in text and "고혈압 전단계 130–139/80–89" in text


def test_english_has_no_korean_left(scorer):
    html = render_html(scorer, canonical(), "en")
    text = visible_text(html)
    assert '<html lang="en">' in html and "One-year risk" in text and "Model version" in text
    assert OUTCOME_SPECS["cvd"].label_en in text
    assert not hangul(text), [w for w in text.split() if hangul(w)][:10]


def test_a_report_from_another_version_than_the_champion_says_it_is_for_comparison(scorer):
    """`report --model 3` printed a report a reader could not tell from the champion's."""
    v = scorer.version
    assert "for comparing models only" not in visible_text(render_html(scorer, canonical(), "en", champion=v))
    assert "for comparing models only" not in visible_text(render_html(scorer, canonical(), "en"))  # the service
    other = visible_text(render_html(scorer, canonical(), "en", champion="99"))
    assert f"This report uses model version {v}, not the model that serves care (version 99)" in other
    assert "버전 99)이 아닙니다: 모델 비교용입니다" in visible_text(
        render_html(scorer, canonical(), "ko", champion="99")
    )
    assert "no model has yet been approved to serve care" in visible_text(
        render_html(scorer, canonical(), "en", champion="")
    )


def test_no_feature_codes_are_shown(scorer):
    for lang in ("ko", "en"):
        rec = canonical(person_id="p-1", sbp=165, dbp=95, ldl=170, smoking_status=3)
        text = visible_text(render_html(scorer, rec, lang))
        shown = [f for f in FEATURES if "_" in f and f in text]
        shown += [
            w for w in ("sbp", "dbp", "hdl", "ldl", "ast", "alt", "ggt", "bmi", "egfr") if re.search(rf"\b{w}\b", text)
        ]
        assert not shown, (lang, shown)


def test_percentile_among_same_sex_and_age_band(scorer):
    rec = canonical()
    text = visible_text(render_html(scorer, rec, "en"))
    p = scorer.score_records([dict(rec)], explain=False)[0]["risks"]["cvd"]["probability"]
    pct, n = scorer.model.risk_percentile("cvd", "M", "50-59", p)
    assert 0 <= pct <= 99 and n >= 100
    if pct >= 1:
        # n counts checkups, and the words say so (not "population", which reads as persons).
        assert f"Higher than about {round(pct)}% of {n:,} training checkups of men aged 50-59" in text
    assert f"학습 데이터 검진 {n:,}건" in visible_text(render_html(scorer, rec, "ko"))


def test_bundle_without_percentiles_omits_the_line(scorer):
    old = copy.copy(scorer)
    old.model = copy.copy(scorer.model)
    old.model.reference_ = {}  # as a bundle saved before the tables existed loads
    text = visible_text(render_html(old, canonical(), "en"))
    assert "One-year risk" in text and "training checkups" not in text


def test_an_outcome_fitted_on_too_few_events_reads_as_a_rough_estimate(scorer):
    """A model fitted on 42 events barely tells people apart: its risk must not read as personal."""
    thin = {o for o, m in scorer.model.models_.items() if m.info["sample_size"]["enough"] is False}
    assert thin and thin != set(scorer.model.models_)  # the test model has both kinds
    rec = canonical(sbp=128.0, dbp=80.0)  # every outcome applicable
    for lang, words in (("en", "Rough: fitted on"), ("ko", "대략적 추정")):
        text = visible_text(render_html(scorer, rec, lang))
        assert text.count(words) == len(thin), (lang, thin)
    size = scorer.model.models_[sorted(thin)[0]].info["sample_size"]
    text = visible_text(render_html(scorer, rec, "en"))
    assert f"Rough: fitted on {size['events']:,} events (~{size['required_events']:,} needed)" in text
    # No coloured level for it (a clinician reads the badge, not the small print): "Not graded".
    page = render_html(scorer, rec, "en")
    assert page.count('class="badge cat-rough"') == len(thin)
    assert text.count("Not graded") == len(thin)


def test_the_interval_says_what_it_is_and_is_left_out_where_the_risk_is_mostly_defaults(scorer):
    text = visible_text(render_html(scorer, canonical(sbp=128.0, dbp=80.0), "en"))
    assert "model precision (95%)" in text and "uncertainty interval" not in text
    assert "the person's own risk varies more" in text
    assert "모델 추정 정밀도(95%)" in visible_text(render_html(scorer, canonical(sbp=128.0, dbp=80.0), "ko"))
    from tests.service.test_report_honesty import bare

    sparse = visible_text(render_html(scorer, bare(), "en"))
    assert "key inputs are missing" in sparse and "model precision" not in sparse


def test_what_if_sbp_119_never_raises_cvd_risk(scorer):
    """Lowering SBP alone never raises the CVD risk: SBP, pulse pressure and the BP stage are held
    monotone (models.outcomes.MONOTONE). The what-if lowers DBP with it (119 and min(DBP, 79)), and
    DBP is not held monotone for CVD (a J-shaped link), so that joint change may raise a risk; the
    report then says the model found no benefit rather than offering it as advice."""
    rng = np.random.default_rng(3)
    raised = 0
    for i in range(25):
        rec = canonical(
            person_id=f"w{i}",
            age=int(rng.integers(35, 80)),
            sbp=float(rng.integers(141, 200)),
            dbp=float(rng.integers(70, 110)),
            smoking_status=int(rng.integers(1, 4)),
        )
        now, changes = what_if(scorer, rec)
        by_key = {w.key: (w, after) for w, after in changes}
        w, after = by_key["bp"]
        # SBP and DBP move together to the normal side: 119 and min(DBP, 79).
        assert w.changes == {"sbp": 119.0, "dbp": min(rec["dbp"], 79.0)}
        if rec["sbp"] - 119 > 50:  # beyond what the model is held to: said, not estimated
            assert after is None and w.beyond
        elif w.beyond:  # a BP outside the training data's range: said, not estimated either
            assert after is None and "training data" in w.beyond
        elif after["cvd"] > now["cvd"]:
            raised += 1
            text = visible_text(render_html(scorer, rec, "en"))
            assert "The model found no benefit of this change for this person" in text
        X = np.vstack([feature_matrix(Columns.from_records([r])) for r in (rec, {**rec, "sbp": 119.0})])
        alone = scorer.probabilities(X)["cvd"]
        assert alone[1] <= alone[0] + 1e-12  # SBP alone, DBP as it was
        if rec["smoking_status"] == 3:
            assert by_key["quit_smoking"][1]["cvd"] <= now["cvd"] + 1e-12
    assert raised < 25
    text = visible_text(render_html(scorer, canonical(sbp=160, dbp=95), "en"))
    assert "Blood pressure 160/95 → 119/79 mmHg" in text and "estimates, not promises" in text
    assert "plausible clinical bounds" in text
    far = visible_text(render_html(scorer, canonical(sbp=200, dbp=100), "en"))
    assert "Blood pressure 200/100 → 119/79 mmHg: not estimated" in far


def test_what_if_changes_inputs_and_recomputes_derived_features():
    rec = canonical(
        height_cm=170.0,
        weight_kg=80.0,
        ldl=150,
        total_cholesterol=230,
        fasting_glucose=110,
        sbp=118,
        dbp=76,
        smoking_status=1,
        drinking=0,
        activity_days_per_week=6,
    )
    changes = {w.key: w for w in what_if_changes(rec)}
    assert set(changes) == {"bmi", "ldl", "glucose", "all"}  # only what is off target
    variant = {**rec, **changes["all"].changes}
    X = feature_matrix(Columns.from_records([variant]))[0]
    f = {name: X[j] for j, name in enumerate(FEATURES)}
    # BMI 27.7 -> 22.9 would take 17 % of body weight: the what-if asks the realistic 10 % (KSSO).
    assert variant["weight_kg"] == 72.0 and f["bmi"] == pytest.approx(72.0 / 1.7**2)
    near = {w.key: w for w in what_if_changes(canonical(height_cm=170.0, weight_kg=70.0))}["bmi"]
    assert near.changes == {"weight_kg": round(22.9 * 1.7**2, 1)}  # BMI 22.9 within 10 %: the target itself
    assert f["ldl"] == 100 and f["total_cholesterol"] == 180 and f["non_hdl"] == 180 - rec["hdl"]
    assert f["tyg_index"] == pytest.approx(np.log(rec["triglycerides"] * 99 / 2))
    assert (
        what_if_changes(
            canonical(
                sbp=118,
                dbp=70,
                ldl=90,
                fasting_glucose=90,
                smoking_status=1,
                drinking=0,
                activity_days_per_week=5,
                weight_kg=60.0,
            )
        )
        == []
    )


def test_inapplicable_outcome_says_why(scorer):
    rec = canonical(history_diabetes=1, sbp=150, dbp=95)
    ko = visible_text(render_html(scorer, rec, "ko"))
    en = visible_text(render_html(scorer, rec, "en"))
    assert "해당하지 않는 질환" in ko and "이미 당뇨병을 진단받음" in ko and "이미 고혈압 범위" in ko
    assert "Outcomes that do not apply" in en and "already diagnosed with diabetes" in en
    assert "already in the hypertension range" in en


def test_missing_inputs_are_listed(scorer):
    rec = Checkup.model_validate({"person_id": "m-1", "sex": "F", "age_group": 12}).model_dump()
    en = visible_text(render_html(scorer, rec, "en"))
    ko = visible_text(render_html(scorer, rec, "ko"))
    from features.labels import FEATURE_LABELS

    for k in KEY_INPUTS:
        assert FEATURE_LABELS[k].en in en and FEATURE_LABELS[k].ko in ko
    # Nothing modifiable was measured: the what-if section says so, never "within target" (M4).
    assert "exact age" in en and "Every modifiable factor is already in the normal range" not in en
    assert "not measured, so the effect of changing them cannot be assessed" in en
    full = visible_text(render_html(scorer, canonical(), "en"))
    assert "All key inputs are present" in full


def test_everything_is_escaped(scorer):
    html = render_html(scorer, canonical(person_id="<script>alert(1)</script>"), "en")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_waterfall_ends_at_the_headline_risk(scorer):
    rec = canonical()
    risks = scorer.score_records([dict(rec)], explain=True, top_k=5)[0]["risks"]
    text = visible_text(render_html(scorer, rec, "en"))
    for _o, r in risks.items():
        if r["applicable"]:
            assert f"This person's risk {risk_text(r['probability'])}" in text


# -- POST /report -----------------------------------------------------------------------------------


def test_report_route_returns_html(client, service_home):
    r = client.post("/report", json={"checkup": REC})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="ko">' in r.text and f"모델 버전 {service_home[2]}" in r.text
    r = client.post("/report", json={"checkup": REC, "lang": "en"})
    assert '<html lang="en">' in r.text
    bare = client.post("/report", json={**REC, "lang": "en"})  # the record at top level
    assert bare.status_code == 200 and '<html lang="en">' in bare.text


def test_report_route_needs_the_token(client):
    r = client.post("/report", json={"checkup": REC}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "html" not in r.text


@pytest.mark.parametrize(
    "body, field",
    [
        ({"checkup": {**REC, "sbp": 400}}, "sbp"),
        ({**REC, "sbp": 400}, "sbp"),
        ({"checkup": {**REC, "dbp": 150}}, "dbp"),
        ({"checkup": {**REC, "unknown_field": 1}}, "unknown_field"),
        ({"checkup": {k: v for k, v in REC.items() if k != "sex"}}, "sex"),
        ({"checkup": REC, "lang": "fr"}, "lang"),
    ],
)
def test_report_route_rejects_bad_records_naming_the_field(client, body, field):
    r = client.post("/report", json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()
    assert "400" not in r.text  # the submitted value is not echoed


# -- one person's checkups: history, stale ------------------------------------------------------------

TODAY = dt.date.today()


def checkups_of(pid: str = "hist-1") -> list[dict]:
    """Three checkups of one person, oldest first (the oldest alone has a lipid panel)."""
    lipids = ("total_cholesterol", "hdl", "ldl", "triglycerides")
    base = {k: v for k, v in REC.items() if k not in lipids}
    days = (800, 420, 30)
    return [
        dict(
            base,
            person_id=pid,
            exam_date=(TODAY - dt.timedelta(days=d)).isoformat(),
            age=52 + i,
            weight_kg=70.0 + 4 * i,
            sbp=118 + 8 * i,
            **(dict(zip(lipids, (205, 48, 128, 150), strict=True)) if i == 0 else {}),
        )
        for i, d in enumerate(days)
    ]


def test_single_checkup_report_says_no_history_and_shows_no_history_factor(scorer):
    from features.derive import LONGITUDINAL_FEATURES
    from features.labels import FEATURE_LABELS
    from serving.report import build_context

    for lang, none, absent in (
        ("en", "No earlier checkups given", "no earlier record"),
        ("ko", "이전 검진 기록 없음", "이전 기록 없음"),
    ):
        text = visible_text(render_html(scorer, canonical(), lang))
        assert none in text
        assert absent not in text  # no factor reads "no earlier record"
        ctx = build_context(scorer, canonical(), lang)
        names = {r["name"].rstrip(":") for o in ctx["outcomes"] for r in o["waterfall"]["rows"] if r["kind"] == "bar"}
        assert not names & {FEATURE_LABELS[f].name(lang) for f in LONGITUDINAL_FEATURES}
        assert ctx["history_checkups"] == 0 and ctx["stale"] is None


def test_report_of_a_list_reports_the_newest_with_its_history(scorer):
    from serving.report import build_context

    recs = [Checkup.model_validate(r).model_dump() for r in checkups_of()]
    shuffled = [recs[2], recs[0], recs[1]]
    scored = scorer.score_records([dict(r) for r in shuffled], explain=True, top_k=5)
    newest = scored[0]
    assert newest["history_checkups"] == 2
    en = visible_text(render_html(scorer, shuffled, "en"))
    ko = visible_text(render_html(scorer, shuffled, "ko"))
    dates = f"{recs[0]['exam_date'].isoformat()}, {recs[1]['exam_date'].isoformat()}"
    assert f"Earlier checkups used as history: 2 ({dates})" in en
    assert f"이력으로 사용한 이전 검진 2회 ({dates})" in ko
    assert f"exam {recs[2]['exam_date'].isoformat()}" in en
    for _o, r in newest["risks"].items():
        if r["applicable"]:
            assert f"This person's risk {risk_text(r['probability'])}" in en
    # The same checkup alone is a different estimate: the history was used, not dropped.
    alone = scorer.score_records([dict(recs[2])], explain=False)[0]["risks"]
    assert any(
        r["applicable"] and abs(r["probability"] - alone[o]["probability"]) > 1e-9 for o, r in newest["risks"].items()
    )
    ctx = build_context(scorer, shuffled, "en")
    assert ctx["history_checkups"] == 2 and ctx["stale"] is None


def test_what_if_with_history_starts_from_the_scored_risk(scorer):
    recs = [Checkup.model_validate(r).model_dump() for r in checkups_of("hist-2")]
    recs[2].update(sbp=150.0, dbp=85.0)  # off target, still without hypertension range for dbp
    now, changes = what_if(scorer, recs[2], recs[:2])
    scored = scorer.score_records([dict(r) for r in recs], explain=False)[2]["risks"]
    probs = scorer.probabilities(feature_matrix(Columns.from_records([dict(r) for r in recs])))
    for o in now:
        assert now[o] == pytest.approx(float(probs[o][2]), abs=1e-12)
        if scored[o]["applicable"]:
            assert now[o] == pytest.approx(scored[o]["probability"], abs=1e-9)
    # The sbp variant's change since the last checkup follows the new value, as a request would.
    sbp_after = {w.key: after for w, after in changes}["bp"]
    direct = scorer.probabilities(
        feature_matrix(Columns.from_records([*map(dict, recs[:2]), {**recs[2], "sbp": 120.0, "dbp": 80.0}]))
    )
    assert sbp_after["cvd"] == pytest.approx(float(direct["cvd"][2]), abs=1e-12)


def test_stale_checkup_report_says_the_window_has_passed(scorer):
    rec = canonical(exam_date="2015-06-01")
    years = int((TODAY - dt.date(2015, 6, 1)).days // 365.25)
    en = visible_text(render_html(scorer, rec, "en"))
    ko = visible_text(render_html(scorer, rec, "ko"))
    assert f"This checkup is {years} years old: the one-year risk window after it has passed" in en
    assert f"이 검진은 {years}년 전 검진으로, 검진 후 1년의 위험 기간이 이미 지났습니다" in ko
    assert "One-year risk" in en  # the risks are still shown, with the notice
    assert "risk window" not in visible_text(render_html(scorer, canonical(exam_date=TODAY.isoformat()), "en"))


def test_report_route_takes_a_list_of_one_persons_checkups(client):
    recs = checkups_of("hist-3")
    newest = client.post("/score", json={"checkups": recs, "explain": False}).json()["results"][2]
    for body in ({"checkups": [recs[1], recs[2], recs[0]], "lang": "en"}, [recs[2], recs[0], recs[1]]):
        r = client.post("/report", json=body, params=None if isinstance(body, dict) else {"lang": "en"})
        assert r.status_code == 200, r.text
        text = visible_text(r.text)
        assert '<html lang="en">' in r.text and "Earlier checkups used as history: 2" in text
        for _o, risk in newest["risks"].items():
            if risk["applicable"]:
                assert f"This person's risk {risk_text(risk['probability'])}" in text
    # A bare list without ?lang= is Korean; a "lang" in the body wins over ?lang=.
    assert '<html lang="ko">' in client.post("/report", json=recs).text
    assert (
        '<html lang="ko">' in client.post("/report", json={"checkups": recs, "lang": "ko"}, params={"lang": "en"}).text
    )


@pytest.mark.parametrize("shape", ["object", "bare"])
def test_report_route_refuses_a_list_mixing_persons(client, shape):
    recs = checkups_of("hist-4")
    recs[2] = dict(recs[2], person_id="someone-else")
    r = client.post("/report", json={"checkups": recs} if shape == "object" else recs)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {"index": 2, "field": "person_id"} in [{k: e[k] for k in ("index", "field")} for e in errors], errors
    assert "someone-else" not in r.text and "hist-4" not in r.text


def test_report_route_refuses_ambiguous_and_bad_lists(client):
    recs = checkups_of("hist-5")
    r = client.post("/report", json={"checkup": recs[0], "checkups": recs})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "checkups"
    assert client.post("/report", json={"checkups": []}).status_code == 422
    r = client.post("/report", json=[recs[0], dict(recs[1], sbp=400)])
    assert r.status_code == 422
    assert {"index": 1, "field": "sbp"} in [{k: e[k] for k in ("index", "field")} for e in r.json()["errors"]]


def test_what_if_words_smoking_long_term_and_defining_measures(scorer):
    rec = canonical(smoking_status=3, fasting_glucose=118, sbp=128, dbp=78, ldl=150, total_cholesterol=230)
    from serving.report import build_context

    ctx = build_context(scorer, rec, "en")
    text = visible_text(render_html(scorer, rec, "en"))
    assert "After long-term cessation (current → former smoker)" in text
    assert "장기 금연 시" in visible_text(render_html(scorer, rec, "ko"))
    keys = [o["key"] for o in ctx["outcomes"]]
    rows = {r["text"]: r for r in ctx["whatifs"]}
    shown = 0
    for label, defines in (
        ("Fasting glucose 118 → 99 mg/dL", "diabetes"),
        ("LDL cholesterol 150 → 100 mg/dL", "dyslipidemia"),
        ("After long-term cessation (current → former smoker)", None),
    ):
        if label not in rows:  # no meaningful change anywhere: said once, without cells
            assert label in ctx["whatif_unchanged"]
            continue
        for o, cell in zip(keys, rows[label]["cells"], strict=True):
            assert cell["defining"] == (o == defines)  # glucose defines diabetes, LDL dyslipidemia, smoking nothing
            shown += cell["defining"]
    assert ("defining measure: read with care" in text) == bool(
        shown or any(c["defining"] for r in ctx["whatifs"] for c in r["cells"] or [])
    )
    # Every outcome shown says where its category cut-offs come from.
    assert "Korean Diabetes Risk Score" in text and "Hong et al., PLoS One 2020" in text
    if "dyslipidemia" in keys:
        assert "Dyslipidemia: no published Korean yearly rate; about 5% a year" in text


def test_small_what_if_changes_read_as_no_meaningful_change(scorer):
    from features.labels import risk_change_text
    from serving.report import build_context, t

    rec = canonical(activity_days_per_week=4, drinking=1)
    ctx = build_context(scorer, rec, "en")
    now, changes = what_if(scorer, rec)
    rows = {r["text"]: r for r in ctx["whatifs"]}
    text = visible_text(render_html(scorer, rec, "en"))
    assert changes
    for w, after in changes:
        words = {o["key"]: risk_change_text(now[o["key"]], after[o["key"]], "en") for o in ctx["outcomes"]}
        for o in ctx["outcomes"]:
            if abs(after[o["key"]] - now[o["key"]]) < 0.001:
                assert words[o["key"]] == ("no meaningful change", "same")
        label = t(w.key, "en", **w.words)
        # A rough outcome's "no meaningful change" says it cannot estimate instead (serving.report).
        # (A change the model does not read at all is none: "no meaningful change" even then.)
        shown = {
            k: ("not estimable", "rough") if k in scorer.thin and d == "same" and after[k] != now[k] else (x, d)
            for k, (x, d) in words.items()
        }
        if all(d == "same" for _, d in words.values()):
            # Rows with no meaningful change anywhere are said once, on one line.
            assert label in ctx["whatif_unchanged"] and label not in rows
            said = "No meaningful change in the other risks (" if scorer.thin else "No meaningful change in any risk"
            assert said in text
        else:
            cells = rows[label]["cells"]
            assert [(c["delta"], c["direction"]) for c in cells] == [shown[o["key"]] for o in ctx["outcomes"]]


def test_unanswered_history_and_medication_questions_are_said(scorer):
    """No history or medication answers: the outcomes are judged applicable as for an untreated person,
    and the page says so instead of staying silent; an answer at an earlier checkup still counts."""
    questions = [k for k in REC if k.startswith(("history_", "on_"))]
    none = canonical(**{k: None for k in questions})
    en = visible_text(render_html(scorer, none, "en"))
    assert (
        "questions not answered (all history and medication questions): for a disease already diagnosed or "
        "treated, its estimate does not apply"
    ) in en
    assert "문진 미응답(과거력·복용약 문진 전체)" in visible_text(render_html(scorer, none, "ko"))
    one = canonical(on_statin=None)
    assert "questions not answered (on a statin)" in visible_text(render_html(scorer, one, "en"))
    assert "questions not answered" not in visible_text(render_html(scorer, canonical(), "en"))
    # Answered at the earlier checkup, blank at the newest: answered.
    earlier = canonical(person_id="q", exam_date="2023-06-02", age=52.0)
    newest = canonical(person_id="q", exam_date="2025-06-02", age=54.0, **{k: None for k in questions})
    assert "questions not answered" not in visible_text(render_html(scorer, [earlier, newest], "en"))


def test_an_earlier_value_in_a_disease_range_is_said_when_the_outcome_is_scored_as_new(scorer):
    # Glucose 131 two years ago, 98 now: diabetes is scored as new (the contract judges this
    # checkup), and the clinician is told to check whether it was diagnosed.
    earlier = canonical(exam_date="2022-03-10", fasting_glucose=131.0)
    newer = canonical(exam_date="2024-03-12", fasting_glucose=98.0)
    text = visible_text(render_html(scorer, [earlier, newer], "en"))
    assert "Earlier checkups had a value in a disease range: Diabetes — Fasting glucose (2022-03-10)" in text
    plain = visible_text(render_html(scorer, [canonical(exam_date="2022-03-10", fasting_glucose=99.0), newer], "en"))
    assert "disease range:" not in plain
