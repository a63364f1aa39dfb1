"""/score with a person's earlier checkups in the request (history), stale checkups, and the rule
that absent history is never listed as a factor. In-process over the real BentoML ASGI app."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from features.derive import FEATURES, LONGITUDINAL_FEATURES, Columns, feature_matrix
from features.schema import EXAMPLE_RECORD, OUTCOMES
from serving.schemas import Checkup

TODAY = dt.date.today()


def ago(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


def person(pid: str) -> list[dict]:
    """Three checkups of one person, oldest first: only the oldest has a lipid panel, and weight,
    blood pressure and glucose rise, so the newest's history features all differ from none."""
    base = {k: v for k, v in EXAMPLE_RECORD.items() if k not in ("total_cholesterol", "hdl", "ldl", "triglycerides")}
    return [
        dict(
            base,
            person_id=pid,
            exam_date=ago(800),
            age=52,
            weight_kg=70.0,
            sbp=118,
            dbp=76,
            fasting_glucose=92,
            total_cholesterol=205,
            hdl=48,
            ldl=128,
            triglycerides=150,
        ),
        dict(base, person_id=pid, exam_date=ago(420), age=53, weight_kg=74.0, sbp=126, dbp=80, fasting_glucose=101),
        dict(base, person_id=pid, exam_date=ago(30), age=54, weight_kg=79.0, sbp=134, dbp=86, fasting_glucose=112),
    ]


def post(client, checkups, detail=None, **kw):
    # detail="features": the per-feature view these history rules are stated in (default: groups).
    r = client.post("/score", json={"checkups": checkups, **kw}, params={"detail": detail} if detail else None)
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


def test_shuffled_history_matches_the_batch_path(client, service_home):
    from features.readers import records_to_frame
    from serving.batch import score_frame

    _, model, version = service_home
    oldest, middle, newest = person("h-1")
    results = post(client, [middle, newest, oldest], explain=False)
    # One result per record, in request order, each saying how much history it used.
    assert [r["exam_date"] for r in results] == [middle["exam_date"], newest["exam_date"], oldest["exam_date"]]
    assert [r["history_checkups"] for r in results] == [1, 2, 0]

    frame = records_to_frame([oldest, middle, newest]).frame  # the file path: sorted, one person
    batch = score_frame(model, frame, version)
    alone = post(client, [newest], explain=False)[0]
    assert alone["history_checkups"] == 0
    moved = False
    for o in OUTCOMES:
        got, want = results[1]["risks"][o]["probability"], batch[f"{o}_risk"].iloc[2]
        if got is None:
            assert pd.isna(want)
            continue
        assert got == pytest.approx(want, abs=1e-9), o
        assert results[2]["risks"][o]["probability"] == pytest.approx(batch[f"{o}_risk"].iloc[0], abs=1e-9)
        if alone["risks"][o]["probability"] is not None:
            moved |= abs(alone["risks"][o]["probability"] - got) > 1e-9
    assert moved, "the history changed no outcome's probability: it was not used"


def test_history_features_are_built_from_sorted_history(scorer):
    # The same rows in any order give each checkup the same features (features.derive sorts by
    # person, then date): the newest sees the middle one as its last checkup and the oldest's lipids.
    recs = [Checkup.model_validate(r).model_dump() for r in person("h-2")]
    X_sorted = feature_matrix(Columns.from_records(recs))
    shuffled = [recs[1], recs[2], recs[0]]
    X_shuffled = feature_matrix(Columns.from_records(shuffled))
    np.testing.assert_array_equal(X_shuffled, X_sorted[[1, 2, 0]])
    f = dict(zip(FEATURES, X_sorted[2], strict=True))
    assert f["years_since_last_exam"] == pytest.approx(390 / 365.25)
    assert f["delta_sbp"] == 8 and f["last_ldl"] == 128
    assert f["years_since_lipids"] == pytest.approx(770 / 365.25)
    assert math.isnan(dict(zip(FEATURES, X_sorted[0], strict=True))["years_since_last_exam"])


def test_two_persons_interleaved(client):
    a, b = person("pa"), [dict(r, person_id="pb", sex="F", age=r["age"] - 10) for r in person("pb")]
    request = [a[2], b[0], a[0], b[2], a[1], b[1]]
    results = post(client, request, top_k=3)
    assert [(r["person_id"], r["exam_date"]) for r in results] == [(r["person_id"], r["exam_date"]) for r in request]
    assert [r["history_checkups"] for r in results] == [2, 0, 0, 2, 1, 1]
    # Each person's newest gets exactly what it gets with only its own checkups.
    own_a = post(client, a, top_k=3)[2]
    own_b = post(client, b, top_k=3)[2]
    assert results[0]["risks"] == own_a["risks"] and results[3]["risks"] == own_b["risks"]


def test_undated_checkup_is_todays_and_newest(client):
    oldest, middle, _ = person("h-3")
    undated = {k: v for k, v in middle.items() if k != "exam_date"}
    results = post(client, [undated, oldest, middle], explain=False)
    assert results[0]["exam_date"] == TODAY.isoformat() and results[0]["history_checkups"] == 2
    assert [r["history_checkups"] for r in results[1:]] == [0, 1]


def test_stale_checkup_is_flagged_and_keeps_its_probability(client):
    old = dict(EXAMPLE_RECORD, person_id="s-1", exam_date="2015-06-01")
    recent = dict(EXAMPLE_RECORD, person_id="s-2", exam_date=ago(30))
    stale, fresh = post(client, [old, recent], explain=False)
    assert stale["stale"] is True and fresh["stale"] is False
    years = int((TODAY - dt.date(2015, 6, 1)).days // 365.25)
    assert any(f"is {years} years old" in w and "one-year risk window" in w for w in stale["warnings"]), stale[
        "warnings"
    ]
    assert not any("stale" in w for w in fresh["warnings"])
    applicable = [o for o in OUTCOMES if stale["risks"][o]["applicable"]]
    assert applicable and all(0 < stale["risks"][o]["probability"] < 1 for o in applicable)


def test_service_is_stale_after_two_years_by_default(client):
    edge, past = post(
        client,
        [
            dict(EXAMPLE_RECORD, person_id="e-1", exam_date=ago(730)),
            dict(EXAMPLE_RECORD, person_id="e-2", exam_date=ago(731)),
        ],
        explain=False,
    )
    assert edge["stale"] is False and past["stale"] is True
    assert any("2 years old" in w for w in past["warnings"])


def test_stale_after_days_is_configurable(service_home):
    from serving.scoring import Scorer
    from serving.settings import DEFAULT_STALE_AFTER_DAYS, Settings

    stale_env = "CHECKUP_RISK_STALE_AFTER_DAYS"
    _, model, version = service_home
    assert Settings.from_env({}).stale_after_days == DEFAULT_STALE_AFTER_DAYS == 730
    assert Settings.from_env({stale_env: " 365 "}).stale_after_days == 365
    for bad in ("two years", "0", "-5", "1.5"):
        with pytest.raises(ValueError, match=stale_env):
            Settings.from_env({stale_env: bad})
    with pytest.raises(ValueError):
        Scorer(model, version, stale_after_days=0)
    short = Scorer(model, version, stale_after_days=100)
    rec = Checkup.model_validate(dict(EXAMPLE_RECORD, exam_date=dt.date(2024, 1, 1))).model_dump()
    [r] = short.score_records([dict(rec)], explain=False, today=dt.date(2024, 4, 10))  # 100 days
    assert r["stale"] is False
    [r] = short.score_records([dict(rec)], explain=False, today=dt.date(2024, 4, 11))  # 101 days
    assert r["stale"] is True and any("101 days old" in w for w in r["warnings"])


def test_absent_history_is_never_listed_but_still_adds_up(client, scorer):
    hidden_total = {}
    alone = post(client, [EXAMPLE_RECORD], top_k=len(FEATURES), detail="features")[0]
    assert alone["history_checkups"] == 0
    # The contributions as the explainer gives them, to know what was left out.
    rec = Checkup.model_validate(EXAMPLE_RECORD).model_dump()
    X = feature_matrix(Columns.from_records([rec]))
    raw = scorer.model.score(X, explain=True)
    longitudinal = set(LONGITUDINAL_FEATURES)
    hidden = [j for j, f in enumerate(FEATURES) if f in longitudinal and np.isnan(X[0, j])]
    assert hidden  # a single checkup has no history at all
    for o, risk in alone["risks"].items():
        if not risk["applicable"]:
            continue
        listed = {c["feature"] for c in risk["contributions"]}
        assert not listed & longitudinal, (o, listed & longitudinal)
        assert len(listed) == len(FEATURES) - len(hidden)  # everything else is listed
        p = risk["probability"]
        total = risk["base_log_odds"] + sum(c["log_odds"] for c in risk["contributions"]) + risk["other_log_odds"]
        assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
        contribs = raw.contributions[o][0]
        assert risk["other_log_odds"] == pytest.approx(float(contribs[hidden].sum()), abs=1e-9)
        hidden_total[o] = float(contribs[hidden].sum())
    # The model does use "no history" (else hiding it would be untested): it went to other_log_odds.
    assert any(abs(v) > 1e-6 for v in hidden_total.values()), hidden_total


def test_present_history_can_be_listed(client):
    oldest, middle, newest = person("h-5")
    results = post(client, [oldest, middle, newest], top_k=len(FEATURES), detail="features")
    newest_listed = {c["feature"] for r in results[2]["risks"].values() for c in r["contributions"]}
    assert {"years_since_last_exam", "delta_sbp", "last_ldl"} <= newest_listed
    oldest_listed = {c["feature"] for r in results[0]["risks"].values() for c in r["contributions"]}
    assert not oldest_listed & set(LONGITUDINAL_FEATURES)
    for r in results:
        for risk in r["risks"].values():
            for c in risk["contributions"]:
                assert not (c["feature"] in LONGITUDINAL_FEATURES and c["value"] is None), c
            if risk["applicable"]:
                p = risk["probability"]
                total = (
                    risk["base_log_odds"] + sum(c["log_odds"] for c in risk["contributions"]) + risk["other_log_odds"]
                )
                assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)


def test_a_persons_checkups_that_disagree_are_scored_with_a_warning(client):
    consistent = post(client, person("h-9"), explain=False)
    assert not any("history: check" in w for r in consistent for w in r["warnings"])
    older, _, newest = person("h-10")
    older = dict(older, exam_date=ago(3650), age=54)  # ten years earlier, the same age
    newest = dict(newest, sex="F")
    results = post(client, [newest, older], explain=False)
    assert results[1]["warnings"] == [w for w in results[1]["warnings"] if "history: check" not in w]
    said = " | ".join(results[0]["warnings"])
    assert "sex differs from this person's checkup of" in said
    assert "age does not match the 9.9 years since this person's checkup of" in said


def test_an_implausible_bmi_is_scored_with_a_warning(client):
    record = dict(person("h-11")[2], height_cm=121.0, weight_kg=249.0)
    [result] = post(client, [record], explain=False)
    assert any("BMI outside the plausible 12-70 kg/m2" in w for w in result["warnings"]), result["warnings"]
    [fine] = post(client, [person("h-12")[2]], explain=False)
    assert not any("BMI outside" in w for w in fine["warnings"])


def test_two_checkups_of_one_person_on_one_date_are_refused_naming_both(client):
    older, _, newest = person("h-13")
    r = client.post("/score", json={"checkups": [older, newest, dict(newest, sbp=150)]})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["index"] == 2 and error["field"] == "exam_date"
    assert "same person_id and exam_date as record 1" in error["message"]
    undated = {k: v for k, v in newest.items() if k != "exam_date"}
    r = client.post("/score", json={"checkups": [undated, dict(undated, person_id="h-14"), undated]})
    assert r.status_code == 422 and r.json()["errors"][0]["index"] == 2  # no date is today's, for both


def test_an_outcome_that_does_not_apply_has_a_null_interval(client):
    [result] = post(client, [dict(person("h-15")[2], sbp=170, dbp=100)], explain=False)
    risk = result["risks"]["hypertension"]
    assert risk["applicable"] is False and risk["probability"] is None
    assert "probability_interval" in risk and risk["probability_interval"] is None  # documented as null


def test_a_lasting_answer_said_no_later_is_kept_with_a_warning(client):
    older, _, newest = person("h-16")
    older = dict(older, history_diabetes=1)
    newest = dict(newest, history_diabetes=0)
    results = post(client, [older, newest], explain=False)
    said = " | ".join(results[1]["warnings"])
    assert "history_diabetes is 0 here but 1 at an earlier checkup" in said
    assert results[1]["risks"]["diabetes"]["applicable"] is False  # the earlier diagnosis holds
    assert not any("is 0 here" in w for w in results[0]["warnings"])


def test_a_checkup_without_lipids_sent_alone_says_dyslipidemia_needs_its_history(client):
    """Its last panel may have been in the disease range (then dyslipidemia does not apply): said when
    neither this checkup nor the history sent holds a panel, and not once a panel is there."""
    from serving.scoring import NO_PANEL_ALONE_WARNING

    checkups = person("lipids-alone")
    (alone,) = post(client, checkups[-1:])
    assert alone["risks"]["dyslipidemia"]["applicable"] and NO_PANEL_ALONE_WARNING in alone["warnings"]
    with_history = post(client, checkups)[-1]
    assert with_history["history_checkups"] == 2 and NO_PANEL_ALONE_WARNING not in with_history["warnings"]
    (with_panel,) = post(client, checkups[:1])
    assert NO_PANEL_ALONE_WARNING not in with_panel["warnings"]
    # History that holds no panel either: still said.
    without_panel = post(client, checkups[1:])[-1]
    assert without_panel["history_checkups"] == 1 and NO_PANEL_ALONE_WARNING in without_panel["warnings"]


def test_an_outcome_fitted_on_too_few_events_is_said_to_be_rough(client, scorer):
    """The service's test model is fitted on 3,000 people: some outcomes have fewer events than the
    sample-size criteria ask for, and every response that gives their risk says so."""
    assert scorer.thin and set(scorer.thin) != set(scorer.outcomes)
    (result,) = post(client, [dict(EXAMPLE_RECORD, sbp=128, dbp=80)])
    for o in scorer.outcomes:
        said = [w for w in result["warnings"] if w.startswith(f"{o}: a rough estimate, fitted on ")]
        assert len(said) == (o in scorer.thin and result["risks"][o]["applicable"]), (o, said)


def test_a_person_id_that_only_looks_the_same_is_said(client):
    import unicodedata

    older, _, newer = person("x")
    composed = "홍길동"
    decomposed = unicodedata.normalize("NFD", composed)  # the same name as separate jamo
    sent = [dict(older, person_id=decomposed), dict(newer, person_id=composed), dict(newer, person_id="a\u200bb")]
    results = post(client, [*sent, dict(older, person_id="ab")], explain=False)
    assert [r["history_checkups"] for r in results] == [0, 0, 0, 0]  # history is matched by the exact id
    said = [[w for w in r["warnings"] if "looks the same" in w] for r in results]
    assert said[0] and "record(s) 1 " in said[0][0] and said[1] and "record(s) 0 " in said[1][0]
    assert "record(s) 3 " in said[2][0] and "record(s) 2 " in said[3][0]
    assert composed not in str(said) and decomposed not in str(said)  # ids are not echoed in warnings
    plain = post(client, [dict(older, person_id="p"), dict(newer, person_id="p")], explain=False)
    assert not [w for r in plain for w in r["warnings"] if "looks the same" in w]
