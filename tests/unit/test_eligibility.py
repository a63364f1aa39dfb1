import numpy as np
import pandas as pd

from features.cutoffs import LDL_HIGH
from features.derive import build_features
from features.eligibility import (
    REASONS,
    History,
    applicability,
    eligibility,
    ineligibility_reasons,
    reason_id,
    reason_text,
)


def frame(**cols):
    n = max(len(v) for v in cols.values())
    base = {"sex": ["M"] * n, "age": [50] * n}
    base.update(cols)
    return pd.DataFrame(base)


def test_missing_values_never_exclude():
    e = eligibility(frame(person_id=["a"]))
    assert e.iloc[0].all()


def test_each_rule_excludes_with_its_reason():
    df = frame(
        history_stroke=[1, 0, 0, 0, 0, 0],
        on_diabetes_medication=[0, 1, 0, 0, 0, 0],
        fasting_glucose=[90, 90, 126, 125, 90, 90],
        sbp=[120, 120, 120, 140, 120, 120],
        hdl=[50, 50, 50, 50, 39, 50],
        urine_protein=[1, 1, 1, 1, 1, 3],
    )
    e = eligibility(df)
    r = ineligibility_reasons(df)
    assert e["cvd"].tolist() == [False, True, True, True, True, True]
    assert e["diabetes"].tolist() == [True, False, False, True, True, True]
    assert e["hypertension"].tolist() == [True, True, True, False, True, True]
    assert e["dyslipidemia"].tolist() == [True, True, True, True, False, True]
    assert e["ckd"].tolist() == [True, True, True, True, True, False]
    assert "stroke" in r.loc[0, "cvd"]
    assert "126" in r.loc[2, "diabetes"]
    assert pd.isna(r.loc[1, "cvd"])
    assert "protein" in r.loc[5, "ckd"]


def test_ckd_uses_egfr_from_creatinine():
    df = frame(serum_creatinine=[1.0, 2.0], age=[50, 70])
    assert eligibility(df)["ckd"].tolist() == [True, False]
    assert np.isnan(pd.to_numeric(df["serum_creatinine"])).sum() == 0


# --- history: a known condition is never predicted as a new one ------------------------------


def person(*rows: dict, pid: "str | None" = "p1") -> pd.DataFrame:
    """One person's checkups (dicts with exam_date and values), in the given order."""
    return pd.DataFrame([{"person_id": pid, "sex": "M", "age": 50, **r} for r in rows])


def test_earlier_history_flag_still_holds_with_its_date():
    df = person(
        {"exam_date": "2018-03-01", "history_diabetes": 1, "on_statin": 1},
        {"exam_date": "2020-03-01", "history_diabetes": 0, "on_statin": np.nan},
    )
    e, r = eligibility(df), ineligibility_reasons(df)
    assert e["diabetes"].tolist() == [False, False]
    assert e["dyslipidemia"].tolist() == [False, False]
    assert r.loc[0, "diabetes"] == REASONS["diabetes.history_diabetes"].en
    assert r.loc[1, "diabetes"] == "already diagnosed with diabetes (recorded at the checkup of 2018-03-01)"
    assert "2018-03-01" in r.loc[1, "dyslipidemia"] and "statin" in r.loc[1, "dyslipidemia"]
    assert e["hypertension"].all() and e["cvd"].all()
    # A medicine carried from an earlier checkup was recorded then, not taken now (it may have stopped).
    assert r.loc[1, "dyslipidemia"] == "on a statin at the checkup of 2018-03-01"
    assert REASONS["dyslipidemia.on_statin"].ko == "스타틴 복용 중"


def test_dyslipidemia_carries_the_last_lipid_panel():
    df = person(
        {"exam_date": "2015-05-02", "ldl": 120, "total_cholesterol": 200, "hdl": 50, "triglycerides": 100},
        {"exam_date": "2019-05-02", "ldl": 170, "total_cholesterol": 230, "hdl": 50, "triglycerides": 100},
        {"exam_date": "2021-05-02"},
        {"exam_date": "2023-05-02", "ldl": 150, "total_cholesterol": 220, "hdl": 45, "triglycerides": 120},
        {"exam_date": "2024-05-02"},
    )
    e, r = eligibility(df), ineligibility_reasons(df)
    # The panel of 2019 was in range, the one of 2023 below every cut-off again.
    assert e["dyslipidemia"].tolist() == [True, False, False, True, True]
    assert r.loc[2, "dyslipidemia"] == (
        "LDL cholesterol >= 160 mg/dL at the last lipid panel (2019-05-02) is already in the disease range"
    )
    assert r.loc[1, "dyslipidemia"] == REASONS["dyslipidemia.ldl"].en


def test_a_panel_is_its_total_cholesterol_as_the_carried_lipids_judge_it():
    # Only HDL drawn this time: no panel, so the last panel (2019, total cholesterol 260) still says
    # the disease is known, as the model's carried last_total_cholesterol does; HDL 55 is judged too.
    df = person(
        {"exam_date": "2019-01-01", "total_cholesterol": 260, "hdl": 50, "ldl": 150, "triglycerides": 120},
        {"exam_date": "2020-01-01", "hdl": 55},
        {"exam_date": "2021-01-01", "total_cholesterol": 190, "hdl": 55, "ldl": 110, "triglycerides": 120},
        {"exam_date": "2022-01-01", "hdl": 35},
    )
    e, r = eligibility(df), ineligibility_reasons(df)
    assert e["dyslipidemia"].tolist() == [False, False, True, False]
    assert "(2019-01-01)" in r.loc[1, "dyslipidemia"]  # the earlier panel's reason, with its date
    assert r.loc[3, "dyslipidemia"] == REASONS["dyslipidemia.hdl"].en  # this checkup's own HDL
    X = build_features(df)
    assert X.loc[1, "last_total_cholesterol"] == 260 and X.loc[3, "last_total_cholesterol"] == 190
    # Lipids without total cholesterol are no panel on either side: a later checkup without a
    # panel is judged by the last one that had it.
    only_tg = person({"exam_date": "2019-01-01", "triglycerides": 250}, {"exam_date": "2020-01-01", "hdl": 55})
    assert eligibility(only_tg)["dyslipidemia"].tolist() == [False, True]


def test_other_measures_fall_back_to_the_last_recorded_value():
    df = person(
        {
            "exam_date": "2018-01-10",
            "fasting_glucose": 131,
            "sbp": 150,
            "dbp": 85,
            "serum_creatinine": 2.0,
            "urine_protein": 1,
        },
        {"exam_date": "2019-01-10", "urine_protein": 4},
        {"exam_date": "2020-01-10"},
    )
    e, r = eligibility(df), ineligibility_reasons(df)
    for o in ("diabetes", "hypertension", "ckd"):
        assert not e[o].any(), o
    # The 2019 checkup had no glucose: the last measurement is the one of 2018.
    assert r.loc[2, "diabetes"] == (
        "fasting glucose >= 126 mg/dL at the last measurement (2018-01-10) is already in the diabetes range "
        "(confirm with a repeat test or HbA1c)"
    )
    assert "2018-01-10" in r.loc[1, "hypertension"] and "140 / 90" in r.loc[1, "hypertension"]
    # eGFR from the 2018 creatinine comes first; the dipstick of 2019 is the last urine test.
    assert "2018-01-10" in r.loc[2, "ckd"] and "eGFR" in r.loc[2, "ckd"]
    egfr_free = person({"exam_date": "2018-01-10", "urine_protein": 4}, {"exam_date": "2019-01-10"})
    assert ineligibility_reasons(egfr_free).loc[1, "ckd"] == (
        "urine protein >= 1+ at the last urine test (2018-01-10) is already in the CKD range "
        "(confirm with a urine albumin- or protein-to-creatinine ratio and repeat in 3 months)"
    )


def test_a_value_recorded_now_is_not_overridden_by_an_earlier_one():
    df = person(
        {"exam_date": "2018-01-10", "fasting_glucose": 131, "sbp": 150, "dbp": 95},
        {"exam_date": "2020-01-10", "fasting_glucose": 110, "sbp": 128, "dbp": 80},
    )
    assert eligibility(df)["diabetes"].tolist() == [False, True]
    assert eligibility(df)["hypertension"].tolist() == [False, True]


def test_history_is_only_earlier_and_order_of_rows_does_not_matter():
    df = person(
        {"exam_date": "2022-01-01"}, {"exam_date": "2020-01-01", "fasting_glucose": 140}, {"exam_date": "2018-01-01"}
    )
    e = eligibility(df)
    # The 2018 row is before the high glucose: it stays eligible; 2022 inherits 2020's value.
    assert e["diabetes"].tolist() == [False, False, True]
    assert "2020-01-01" in ineligibility_reasons(df).loc[0, "diabetes"]
    shuffled = df.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(eligibility(shuffled).loc[df.index], e)


def test_same_day_rows_keep_input_order():
    df = person({"exam_date": "2020-01-01", "history_stroke": 1}, {"exam_date": "2020-01-01"})
    assert eligibility(df)["cvd"].tolist() == [False, False]
    flipped = person({"exam_date": "2020-01-01"}, {"exam_date": "2020-01-01", "history_stroke": 1})
    assert eligibility(flipped)["cvd"].tolist() == [True, False]


def test_rows_without_person_or_date_have_no_history():
    no_pid = person({"exam_date": "2018-01-01", "history_diabetes": 1}, {"exam_date": "2020-01-01"}, pid=None)
    assert eligibility(no_pid)["diabetes"].tolist() == [False, True]
    no_date = person({"exam_date": "2018-01-01", "history_diabetes": 1}, {"exam_date": None})
    assert eligibility(no_date)["diabetes"].tolist() == [False, True]
    no_cols = pd.DataFrame({"sex": ["M", "M"], "age": [50, 52], "history_diabetes": [1, 0]})
    assert eligibility(no_cols)["diabetes"].tolist() == [False, True]
    other = pd.concat(
        [person({"exam_date": "2018-01-01", "history_diabetes": 1}), person({"exam_date": "2020-01-01"}, pid="p2")],
        ignore_index=True,
    )
    assert eligibility(other)["diabetes"].tolist() == [False, True]


def test_one_record_and_columns_input():
    from features.derive import Columns

    one = person({"exam_date": "2020-01-01", "ldl": LDL_HIGH})
    both = applicability(one)
    assert both["dyslipidemia"][0].tolist() == [False]
    assert both["dyslipidemia"][1].tolist() == [REASONS["dyslipidemia.ldl"].en]
    assert both["dyslipidemia"].reason_id.tolist() == ["dyslipidemia.ldl"]
    assert both["dyslipidemia"].reason_date.tolist() == [None]
    cols = Columns.from_records(
        [
            {"person_id": "x", "exam_date": "2018-02-03", "sex": "F", "age": 60, "sbp": 145},
            {"person_id": "x", "exam_date": "2020-02-03", "sex": "F", "age": 62},
        ]
    )
    applies, reason, rid, date = applicability(cols, ("hypertension",))["hypertension"]
    assert applies.tolist() == [False, False] and "2018-02-03" in reason[1]
    assert rid.tolist() == ["hypertension.bp", "hypertension.bp.earlier"] and date.tolist() == [None, "2018-02-03"]


def test_dated_reasons_read_in_korean_with_their_date():
    dated = [r for r in REASONS.values() if r.id.endswith(".earlier")]
    assert len(dated) == len(REASONS) // 2
    for r in dated:
        en = reason_text(r.id, "en", "2019-05-02")
        ko = reason_text(r.id, "ko", "2019-05-02")
        assert en == r.en.replace("{date}", "2019-05-02") and "{" not in en
        assert ko != en and "2019-05-02" in ko and any("가" <= ch <= "힣" for ch in ko), en
    for r in REASONS.values():
        assert any("가" <= ch <= "힣" for ch in reason_text(r.id, "ko"))
        assert r.id == reason_id(*r.id.removesuffix(".earlier").split("."), earlier=r.id.endswith(".earlier"))


def test_reason_ids_render_the_reason_given():
    """The id and date `applicability` gives render exactly its English reason, and Korean from the id."""
    df = person(
        {
            "exam_date": "2018-01-10",
            "fasting_glucose": 131,
            "sbp": 150,
            "total_cholesterol": 230,
            "ldl": 170,
            "history_stroke": 1,
            "urine_protein": 4,
        },
        {"exam_date": "2020-01-10", "on_antihypertensive": 1},
    )
    judged = applicability(df)
    seen = 0
    for j in judged.values():
        for applies, reason, rid, date in zip(*j, strict=True):
            assert (rid is None) == applies == (reason is None) and (date is None or rid.endswith(".earlier"))
            if rid is not None:
                assert reason_text(rid, "en", date) == reason
                assert reason_text(rid, "ko", date) == REASONS[rid].ko.replace("{date}", date or "")
                seen += 1
    assert seen == 10  # every outcome, at both checkups
    assert judged["diabetes"].reason_date.tolist() == [None, "2018-01-10"]
    assert judged["hypertension"].reason_id.tolist() == ["hypertension.bp", "hypertension.on_antihypertensive"]


def test_history_state_matches_the_frame():
    """Advancing a History wave by wave (as the generator does) equals judging the whole frame."""
    waves = [
        pd.DataFrame(
            {
                "sex": ["M", "F", "M"],
                "age": [50, 60, 40],
                "total_cholesterol": [230, np.nan, 180],
                "ldl": [170, np.nan, 100],
                "history_diabetes": [0, 1, 0],
                "sbp": [120, 150, np.nan],
                "dbp": [80, 85, np.nan],
            }
        ),
        pd.DataFrame(
            {
                "sex": ["M", "F", "M"],
                "age": [52, 62, 42],
                "total_cholesterol": [np.nan, np.nan, np.nan],
                "ldl": [np.nan, np.nan, np.nan],
                "history_diabetes": [0, 0, np.nan],
                "sbp": [np.nan, np.nan, 125],
                "dbp": [np.nan, np.nan, 79],
            }
        ),
    ]
    dates = [
        np.array(["2018-01-01", "2018-02-01", "2018-03-01"], dtype="datetime64[D]"),
        np.array(["2020-01-01", "2020-02-01", "2020-03-01"], dtype="datetime64[D]"),
    ]
    hist = History.empty(3)
    by_wave = []
    for w, d in zip(waves, dates, strict=True):
        by_wave.append(ineligibility_reasons(w, history=hist))
        hist = hist.advance(w, d)
    frame = pd.concat(
        [w.assign(person_id=["a", "b", "c"], exam_date=d) for w, d in zip(waves, dates, strict=True)], ignore_index=True
    )
    whole = ineligibility_reasons(frame)
    pd.testing.assert_frame_equal(pd.concat(by_wave, ignore_index=True), whole)
    assert whole["dyslipidemia"].notna().tolist() == [True, False, False, True, False, False]
    assert whole["hypertension"].notna().tolist() == [False, True, False, False, True, False]


def test_history_inputs_are_enough_to_judge_later_checkups():
    df = person(
        {
            "exam_date": "2018-01-10",
            "fasting_glucose": 131,
            "history_stroke": 1,
            "urine_protein": 4,
            "serum_creatinine": 0.9,
            "total_cholesterol": 230,
            "ldl": 170,
            "hemoglobin": 14.0,
            "ast": 30,
        },
        {"exam_date": "2020-01-10"},
    )
    from features.eligibility import HISTORY_INPUTS

    past = df.iloc[:1][[c for c in df.columns if c in HISTORY_INPUTS]]
    trimmed = pd.concat([past, df.iloc[1:]], ignore_index=True)
    pd.testing.assert_frame_equal(ineligibility_reasons(trimmed), ineligibility_reasons(df))
    assert ineligibility_reasons(df).iloc[1].notna().sum() == 4  # cvd, diabetes, dyslipidemia, ckd


def test_labels_on_checkups_an_outcome_does_not_apply_to_are_counted_and_said():
    from features.eligibility import labels_not_applicable, labels_not_applicable_lines

    df = person(
        {"exam_date": "2019-01-01", "history_stroke": 1, "cvd_1y": 1, "diabetes_1y": 0, "fasting_glucose": 90},
        {"exam_date": "2020-01-01", "cvd_1y": 1, "diabetes_1y": 1, "fasting_glucose": 130},  # stroke still known
        {"exam_date": "2021-01-01", "cvd_1y": np.nan, "diabetes_1y": 0, "fasting_glucose": 95},
    )
    other = person({"exam_date": "2020-01-01", "cvd_1y": 1, "diabetes_1y": 1, "fasting_glucose": 100}, pid="p2")
    counts = labels_not_applicable(pd.concat([df, other], ignore_index=True))
    # cvd: both of p1's labelled rows (a known stroke), 2 of 3 events; diabetes: the glucose-130 row
    # and the next (glucose 130 is carried only where none is measured: 95 is, so it applies).
    assert counts == {"cvd": (2, 2, 3), "diabetes": (1, 1, 2)}
    lines = labels_not_applicable_lines(counts)
    assert lines[0].startswith("WARNING: cvd: 2 labelled rows (2 of the 3 events) left out")
    assert lines[1].startswith("WARNING: diabetes: 1 labelled row (1 of the 2 events)")
    few = labels_not_applicable_lines({"cvd": (1, 1, 10), "ckd": (0, 0, 4)})
    assert len(few) == 1 and few[0].startswith("note: cvd:")
    assert labels_not_applicable(df.drop(columns=["cvd_1y", "diabetes_1y"])) == {}


def test_labels_judge_low_values_and_known_diseases_apart():
    from features.labels import bp_stage_text, glucose_text

    assert glucose_text(35, "en", True, True) == ("hypoglycemia range <70", "disease")
    # Not "hypoglycemia" in a person without diabetes: below the reference range.
    assert glucose_text(65, "en", False, False) == ("below the reference range <70", "borderline")
    assert glucose_text(95, "en", False, False) is None  # the judgement table's words apply
    assert glucose_text(162, "ko", True, True) == ("당뇨병 치료 중, 공복 목표(80–130) 초과", "disease")
    assert glucose_text(75, "en", False, True) == (
        "diagnosed diabetes, below the fasting target 80–130",
        "borderline",
    )
    assert bp_stage_text(70, 40, "en") == ("hypotension range <90/60", "borderline")
    assert bp_stage_text(85, None, "en") == ("hypotension range <90/60", "borderline")
    assert bp_stage_text(110, 55, "en") == ("hypotension range <90/60", "borderline")
    # A low diastolic beside a high systolic (a wide pulse pressure) is hypertension, treated or not.
    assert bp_stage_text(160, 58, "en") == ("hypertension stage 2 (≥160/≥100)", "disease")
    assert bp_stage_text(150, 55, "en", treated=True)[0].startswith("on treatment, not below")
    assert bp_stage_text(120, 58, "en")[0].startswith("elevated")
    assert bp_stage_text(128, 82, "en") == ("prehypertension 130–139/80–89", "borderline")
    assert bp_stage_text(128, 82, "en", diagnosed=True)[0] == ("diagnosed hypertension, below the usual 140/90 target")
    assert bp_stage_text(150, 82, "ko", diagnosed=True) == (
        "고혈압 진단, 목표(<140/90) 미도달",
        "disease",
    )
    assert bp_stage_text(150, 82, "en", treated=True, diagnosed=True)[0].startswith("on treatment, not below")
