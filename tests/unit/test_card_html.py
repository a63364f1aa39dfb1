"""The evaluation report renders the card's Markdown as HTML (tables, lists, headings), escaped,
and fit progress turns into lines a person can follow."""

from __future__ import annotations

import re

from training.card import evaluation_report, model_card
from training.markdown import to_html
from training.progress import FitProgress, timed


def _metrics() -> dict:
    block = {
        "n": 1200,
        "events": 40,
        "auroc": 0.71,
        "auroc_ci": [0.65, 0.77],
        "auprc": 0.08,
        "brier": 0.031,
        "calibration_intercept": 0.02,
        "calibration_slope": 0.97,
        "ece": 0.004,
        "model_choice": "gradient boosting",
        "expected_auroc": 0.70,
        "oracle_expected_auroc": 0.74,
        "expected_auroc_ratio": 0.946,
        "baselines": {
            "logistic_regression": {"auroc": 0.69},
            "prevent_10y_cvd": {"auroc": None, "skipped": True, "note": "skipped: no <lipids> & co"},
        },
        "subgroups": [
            {
                "sex": "F",
                "age_band": "40-49",
                "n": 300,
                "events": 5,
                "auroc": None,
                "observed_to_expected": None,
                "too_small": True,
            }
        ],
    }
    return {"n_records": 1200, "outcomes": {"cvd": block}}


def _compact(html: str) -> str:
    return html.replace("\n", "")


def test_markdown_becomes_html():
    html = _compact(
        to_html("# Title\n\n- one **bold**\n  continued `code`\n- two\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\ntext")
    )
    assert "<h1>Title</h1>" in html
    assert "<ul><li>one <strong>bold</strong>continued <code>code</code></li><li>two</li></ul>" in html
    assert "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>&lt;x&gt;</td></tr>" in html
    assert "<p>text</p>" in html
    assert "<h2>Title</h2>" in to_html("# Title", shift=1)


def test_markup_in_values_is_escaped():
    html = to_html("| a |\n|---|\n| <script>alert(1)</script> |\n\n- **<b>x</b>** & `<i>`")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>&lt;b&gt;x&lt;/b&gt;</strong> &amp; <code>&lt;i&gt;</code>" in html


def test_evaluation_report_renders_tables_not_markdown():
    metrics = _metrics()
    card = model_card(
        "3",
        metrics,
        {
            "rows": 10,
            "persons": 4,
            "training_data": {
                "kind": "synthetic",
                "persons": 4,
                "checkups": 10,
                "first_exam": "2020-01-01",
                "last_exam": "2021-01-01",
            },
        },
    )
    report = evaluation_report("3", metrics, {}, card)
    assert "|---" not in report and "<pre>" not in report, "raw Markdown in the report"
    assert report.count("<table>") >= 6  # summary, baselines, subgroups, and the card's tables
    assert "<h2>Model card: checkup-risk version 3</h2>" in report
    assert "<h3>Intended use</h3>" in report
    assert "&lt;lipids&gt; &amp; co" in report and "<lipids>" not in report
    assert re.search(r"<td>cvd</td>\s*<td>1,200</td>\s*<td>40</td>\s*<td>0\.710 \(0\.650-0\.770\)</td>", report)
    assert "<strong>synthetic</strong>" in report and "not for clinical use" in report


def test_a_synthetic_model_says_so_first_and_its_intended_use_is_testing():
    metrics = _metrics()
    data = {"training_data": {"kind": "synthetic", "persons": 4, "checkups": 10}}
    card = model_card("3", metrics, data)
    lines = card.splitlines()
    # Right under the title, before "Model details" and "Intended use".
    assert lines[2].startswith("**Trained on synthetic (simulated) people: not for clinical use.")
    use = card[card.index("## Intended use") :]
    assert use.splitlines()[1].startswith("- **This version: demonstration and testing of the pipeline only.**")
    report = evaluation_report("3", metrics, {}, card, synthetic=True)
    assert report.index("not for clinical use") < report.index("<h2>Summary</h2>")
    # A real model: neither.
    real = model_card("3", metrics, {"training_data": {"kind": "real", "persons": 4, "checkups": 10}})
    assert "not for clinical use" not in real and "demonstration and testing" not in real
    assert "Trained on synthetic" not in evaluation_report("3", metrics, {}, real)


def test_the_card_defines_each_outcome_and_how_its_labels_were_ascertained():
    metrics = _metrics()
    synthetic = model_card("3", metrics, {"training_data": {"kind": "synthetic"}})
    assert "| `cvd` | Cardiovascular disease (MI or stroke)" in synthetic
    assert "SNOMED CT 49601007 (Disorder of cardiovascular system)" in synthetic
    assert "broader than the outcome" in synthetic
    assert "a first diagnosis within 365 days after the checkup's exam date" in synthetic
    assert "records it as diagnosed with a probability per outcome (cvd 90%)" in synthetic
    assert "not KDIGO's persistence" in synthetic
    real = model_card("3", metrics, {"training_data": {"kind": "real"}})
    assert "this project does not ascertain them" in real and "records it as diagnosed" not in real


def test_fit_progress_lines():
    said: list[str] = []
    now = [0.0]
    progress = FitProgress(said.append, ("cvd", "ckd"), every=5.0, clock=lambda: now[0])
    progress("cvd", "boosting rounds", 0, 6000)
    for done in range(25, 1000, 25):
        now[0] += 0.5
        progress("cvd", "boosting rounds", done, 6000)
    progress("cvd", "boosting rounds", 6000, 6000)
    progress("cvd", "boosting rounds", 6000, 6000)  # the rounds early stopping left unused: said once
    progress("cvd", "interval members", 0, 6)
    progress("ckd", "boosting rounds", 0, 6000)
    assert said[0] == "fitting cvd (1 of 2)"
    assert said[1] == "  cvd: boosting rounds 0/6,000 (0%)"
    # Throttled: 39 updates over 19.5 s give a line every 5 s, not one per update.
    assert 3 <= sum("boosting rounds" in s and "cvd" in s for s in said) <= 7
    assert said.count("  cvd: boosting rounds 6,000/6,000 (100%)") == 1
    assert "  cvd: interval members 0/6 (0%)" in said
    assert "fitting ckd (2 of 2)" in said
    # The older one-argument form still says which outcome starts.
    old: list[str] = []
    FitProgress(old.append, ("cvd",))("cvd")
    assert old == ["fitting cvd (1 of 1)"]


def test_timed_lines_say_the_seconds():
    said: list[str] = []
    now = [10.0]
    say = timed(said.append, clock=lambda: now[0])
    now[0] = 52.4
    say("fitting cvd (1 of 5)")
    assert said == ["[   42 s] fitting cvd (1 of 5)"]


def test_gross_miscalibration_on_the_file_is_a_warning():
    """A model used on another population (a cross-cohort slope of 0.41) is said to be uncalibrated
    there, on screen (`calibration_warnings`) and atop the report; a small or calibrated one is not,
    and one outside the bounds only by chance (its interval reaches them) is a note, as the gate judges."""
    from training.evaluate import calibration_notes, calibration_warnings

    metrics = _metrics()
    assert calibration_warnings(metrics) == [] == calibration_notes(metrics)  # 40 events, slope 0.97
    block = metrics["outcomes"]["cvd"]
    block.update(events=120, calibration_slope=0.41, calibration_intercept=-2.58)
    block.update(calibration_slope_ci=[0.30, 0.52], calibration_intercept_ci=[-2.9, -2.2])
    (line,) = calibration_warnings(metrics)
    assert line.startswith(
        "cvd: calibration slope 0.41 (95% CI 0.30 to 0.52) and intercept -2.58 (95% CI -2.90 to -2.20) on this file, "
        "the slope outside the gate's 0.8-1.2 and the intercept outside its +/-0.2"
    )
    assert line.endswith(
        "beyond chance: its risks are not calibrated for these people; recalibrate before using them here"
    )
    assert calibration_notes(metrics) == []
    # `train` says the same of its held-out persons; an interval touching zero never reads "-0.00".
    (said,) = calibration_warnings(metrics, "on the held-out persons")
    assert "(95% CI -2.90 to -2.20) on the held-out persons, the slope outside" in said
    block.update(calibration_slope=0.09, calibration_slope_ci=[-0.001, 0.004], calibration_intercept=-0.001)
    assert "slope 0.09 (95% CI 0.00 to 0.00) and intercept +0.00" in calibration_warnings(metrics)[0]
    block.update(calibration_slope=0.41, calibration_slope_ci=[0.30, 0.52], calibration_intercept=-2.58)
    report = evaluation_report("3", metrics, {}, "# Model card")
    assert "<p class='warn'><strong>WARNING: cvd: calibration slope 0.41" in report
    # 86 events, slope 1.21 whose interval reaches 1.2: a note, not a warning (the default model on its own people).
    block.update(events=86, calibration_slope=1.21, calibration_intercept=-0.06)
    block.update(calibration_slope_ci=[0.95, 1.50], calibration_intercept_ci=[-0.25, 0.14])
    assert calibration_warnings(metrics) == []
    (note,) = calibration_notes(metrics)
    assert note.endswith("but its 86 events cannot tell it from calibrated (the interval reaches the bounds)")
    assert "<p>Note: cvd: calibration slope 1.21" in evaluation_report("3", metrics, {}, "# Model card")
    block.update(events=8)  # fewer than the gate judges calibration on
    assert calibration_warnings(metrics) == [] == calibration_notes(metrics)


def test_an_outcome_with_far_fewer_events_than_expected_is_a_warning():
    from training.evaluate import calibration_warnings

    metrics = _metrics()
    block = metrics["outcomes"]["cvd"]
    block.update(events=0, expected_events=117.0, calibration_slope=None, calibration_intercept=None)
    (line,) = calibration_warnings(metrics)
    assert line.startswith("cvd: 0 events on this file where the model expects about 117 (beyond chance)")
    block.update(events=4, expected_events=6.0)  # too few expected to say anything
    assert calibration_warnings(metrics) == []


def test_the_card_lists_events_per_outcome_in_words():
    data = {"sha256": "ab" * 32, "rows": 10, "persons": 4, "events": {"cvd": 1012, "ckd": 7}}
    card = model_card("3", _metrics(), data)
    assert "- Events per outcome: cvd 1,012, ckd 7." in card and "{" not in card.split("Events per outcome")[1][:40]
