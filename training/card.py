"""The model card (Mitchell et al. 2019 sections, TRIPOD+AI items) and the evaluation report.

The card is Markdown, built one section at a time (`model_card` lists them in order); the
evaluation report is self-contained HTML that renders the same tables as HTML tables
(`training.markdown`), with every value escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html

from features.derive import FEATURES
from features.rejects import MAX_REJECT_SHARE
from features.synth import ASCERTAINMENT
from models.outcomes import OUTCOME_SPECS
from models.provenance import BASIS_WORDS, is_synthetic
from training.evaluate import calibration_notes, calibration_warnings, discrimination_warnings
from training.markdown import to_html


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _metrics_table(metrics: dict) -> list[str]:
    lines = [
        "| outcome | n | events | AUROC (95% CI) | AUPRC | Brier | cal. intercept | cal. slope | ECE | LR AUROC "
        "| choice |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, m in metrics["outcomes"].items():
        ci = m.get("auroc_ci") or [None, None]
        lr = m["baselines"]["logistic_regression"]
        lines.append(
            f"| {o} | {m['n']:,} | {m['events']:,} | {_fmt(m['auroc'])} ({_fmt(ci[0])}-{_fmt(ci[1])}) | "
            f"{_fmt(m['auprc'])} | {_fmt(m['brier'], 5)} | {_fmt(m['calibration_intercept'])} | "
            f"{_fmt(m['calibration_slope'])} | {_fmt(m['ece'], 4)} | {_fmt(lr['auroc'])} | {m.get('model_choice')} |"
        )
    return lines


def monotone_table(outcomes: tuple[str, ...] = tuple(OUTCOME_SPECS)) -> list[str]:
    """The clinically certain directions each of these outcomes' models is constrained to (models.outcomes)."""
    lines = ["| outcome | input | direction | reason |", "|---|---|---|---|"]
    for o in outcomes:
        for d in OUTCOME_SPECS[o].directions:
            arrow = "+1: a rise never lowers risk" if d.direction > 0 else "-1: a rise never raises risk"
            lines.append(f"| {o} | `{d.feature}` | {arrow} | {d.reason} |")
    return lines


def _fitting_table(model_info: dict[str, dict]) -> list[str]:
    """Per outcome: how calibration was fitted, and the data against Riley et al.'s minimum size."""
    lines = [
        "| outcome | rows | events | minimum rows (Riley) | enough | fitting and calibration |",
        "|---|---|---|---|---|---|",
    ]
    for o, info in model_info.items():
        size = info.get("sample_size") or {}
        enough = size.get("enough")
        lines.append(
            f"| {o} | {info.get('rows', 0):,} | {info.get('events', 0):,} | {_fmt(size.get('required_n'))} | "
            f"{'n/a' if enough is None else 'yes' if enough else 'no'} | {info.get('mode', 'n/a')} |"
        )
    return lines


def _oracle_table(metrics: dict) -> list[str]:
    """Expected AUROC of model and oracle, for data that carry the generator's true risks; else nothing."""
    rows = [
        f"| {o} | {_fmt(m.get('expected_auroc'))} | {_fmt(m.get('oracle_expected_auroc'))} | "
        f"{_fmt(m.get('expected_auroc_ratio'))} |"
        for o, m in metrics["outcomes"].items()
        if m.get("oracle_expected_auroc") is not None
    ]
    if not rows:
        return []
    return [
        "Where the data carry the generator's true risks (synthetic cohorts):",
        "",
        "| outcome | expected AUROC (model) | expected AUROC (oracle) | ratio |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def _provenance_lines(info: dict | None) -> list[str]:
    """What the model learned from (`models.provenance`), persons and checkups counted apart; a
    synthetic model is named as not for clinical use."""
    if not info:
        return []
    line = (
        f"- Provenance: **{info['kind']}** data; the model was fitted on {info.get('persons') or 0:,} persons and "
        f"{info.get('checkups') or 0:,} checkups, exams {info.get('first_exam')} to {info.get('last_exam')}."
    )
    sexes, bands = info.get("sexes"), info.get("age_bands")
    if sexes:
        line += f" Persons by sex: {sexes.get('F', 0):,} women, {sexes.get('M', 0):,} men."
    if bands:
        line += " Checkups by age band: " + ", ".join(f"{b} {n:,}" for b, n in bands.items()) + "."
    if info["kind"] == "synthetic":
        return [
            line,
            "- **Synthetic (simulated) people, not real patients: for demonstration and testing only, "
            "not for clinical use.** The service says so in every response, card and report."
            + (f" Recognised by: {BASIS_WORDS[info['basis']]}." if info.get("basis") in BASIS_WORDS else ""),
        ]
    return [line]


# --- card sections, in the order of Mitchell et al. ----------------------------------------------


SYNTHETIC_BANNER = (
    "**Trained on synthetic (simulated) people: not for clinical use. "
    "합성(가상) 데이터로 학습한 모델: 임상 사용 금지.**"
)


def _outcome_lines(outcomes: list[str], synthetic: bool) -> list[str]:
    """What each outcome is, how its labels were ascertained and its code (TRIPOD+AI 8a-8c)."""
    rows = [
        f"| `{o}` | {OUTCOME_SPECS[o].label_en} ({OUTCOME_SPECS[o].label_ko}) | "
        f"SNOMED CT {OUTCOME_SPECS[o].snomed} ({OUTCOME_SPECS[o].snomed_term}) |"
        for o in outcomes
    ]
    if synthetic:
        shares = ", ".join(f"{o} {ASCERTAINMENT[o]:.0%}" for o in outcomes if o in ASCERTAINMENT)
        ascertained = [
            "- Ascertainment (synthetic data): the generator draws each event from the person's true one-year",
            f"  risk and records it as diagnosed with a probability per outcome ({shares}), with rare",
            "  false-positive diagnoses; labels never depend on the model (blinded by construction).",
        ]
    else:
        ascertained = [
            "- Ascertainment: the labels come from the training file (claims diagnoses, medication starts or",
            "  follow-up measurements, as its provider built them); this project does not ascertain them, so",
            "  the provider's definition, assessors and blinding must be stated beside this card.",
        ]
    return [
        "### Outcomes (TRIPOD+AI 8)",
        "",
        "| outcome | meaning | code (preferred term) |",
        "|---|---|---|",
        *rows,
        "",
        "- Event: a first diagnosis within 365 days after the checkup's exam date, the `<outcome>_1y` label",
        "  (1 event, 0 none; empty: not eligible or not followed for the whole year, left out of fitting and",
        "  evaluation; there is no censoring model, so a person lost within the year must be left empty).",
        "- Eligibility: a checkup of a person who already has the disease (a diagnosis or treatment, or this",
        "  or the last checkup already in the disease range) is neither fitted nor judged (interface section 2).",
        *ascertained,
        "- CKD is eGFR < 60 or proteinuria >= 1+: a label from one measurement is not KDIGO's persistence",
        "  over three months, so it counts some transient changes.",
        "- CVD is myocardial infarction or stroke (whether a haemorrhagic stroke counts is the label's",
        "  definition; the synthetic cohort's rate is tuned to MI and ischaemic stroke). Its code is the",
        "  nearest single SNOMED CT concept that holds both, broader than the outcome.",
        "",
    ]


def _details_section(version: str, metrics: dict, outcomes: tuple[str, ...], synthetic: bool) -> list[str]:
    return [
        f"# Model card: checkup-risk version {version}",
        "",
        *([SYNTHETIC_BANNER, ""] if synthetic else []),
        "## Model details",
        f"- Developer: checkup-risk team. Date: {dt.date.today().isoformat()}. Version: {version} "
        "(MLflow registered model `checkup-risk`).",
        "- Type: per outcome, a gradient-boosted tree ensemble (XGBoost, binary log-loss, rounds chosen by",
        "  early stopping on persons it was not fit on, clinically certain monotone constraints), optionally",
        "  blended with an L2 logistic regression when that ranks better on validation data, then recalibrated",
        "  (logistic / Platt). With many events the setting, rounds and blend are chosen on a train /",
        "  validation / calibration split of persons and the calibration is fitted on the split model's",
        "  predictions for the validation and calibration persons. With few events they are chosen and",
        "  fitted on out-of-fold predictions of k-fold cross-validation by person (that calibration is",
        "  cross-validated). Either way the final model is then refit on all rows with what was chosen.",
        "  Class imbalance: no reweighting, so probabilities stay calibrated (TRIPOD+AI 13).",
        "- History: each training checkup with earlier checkups is also used once without them (history",
        "  dropout), so a checkup scored alone (no history sent) is calibrated too. A checkup without history",
        "  looks the same whether it is a person's first or a later one sent alone; its risk is calibrated to",
        "  that mixture. No feature counts earlier checkups (the count depends on the data window).",
        f"- Inputs: {len(FEATURES)} features from one national health checkup (국가건강검진) and the same person's",
        "  earlier checkups (contract section 1); missing values stay missing. A share of training checkups",
        "  is also used sent alone with optional measurements blanked (waist, liver panel, haemoglobin,",
        "  lipids, ...: input dropout), so a missing measurement moves a risk toward what the model expects",
        "  without it instead of down an arbitrary branch.",
        "- Output: the probability of a first diagnosis within 365 days, per outcome, with SHAP contributions",
        "  in log-odds; no threshold is built in (TRIPOD+AI 15).",
        "- Full specification: the bundle (XGBoost native UBJSON boosters + manifest.json) is the model "
        "(TRIPOD+AI 22).",
        "- License: Apache-2.0.",
        "",
        *_outcome_lines(list(metrics["outcomes"]), synthetic),
        "### Monotone constraints (clinically certain directions only)",
        "",
        *monotone_table(outcomes),
        "",
        "Every other input, and every input of an outcome not listed for it, is learned from the data.",
        "",
    ]


def _use_and_factors_sections(metrics: dict, synthetic: bool) -> list[str]:
    small = sum(1 for m in metrics["outcomes"].values() for s in m["subgroups"] if s["too_small"])
    use = (
        [
            "- **This version: demonstration and testing of the pipeline only.** It learned from synthetic",
            "  people; any clinical decision is out of scope. What follows is the use of a version trained on",
            "  real checkups and evaluated on the population it serves.",
        ]
        if synthetic
        else []
    )
    return [
        "## Intended use",
        *use,
        "- Primary use: decision support during a clinic visit in Korean hospitals and clinics, to show which",
        "  chronic diseases a person is at risk of in the coming year and what drives that risk.",
        "- Primary users: clinicians (through the HIS, CDS Hooks and the explanation report) and data scientists.",
        "- Out of scope: diagnosis; people under 20; people who already have the disease (the outcome is then",
        "  reported as not applicable); populations unlike Korean checkup examinees without recalibration.",
        "",
        "## Factors",
        "- Evaluated by sex and 10-year age band (TRIPOD+AI 14, 23a). Region (시도) is not in the record.",
        f"- {small} sex x age-band cells have too few rows or events to judge and are flagged as such.",
        "",
        "## Metrics",
        "- Discrimination: AUROC with 95% CI, AUPRC. Calibration: intercept (calibration-in-the-large),",
        "  slope, ECE, calibration plots. Clinical utility: decision-curve net benefit (TRIPOD+AI 12e).",
        "- Unit of analysis: n and events count checkups (a person has several); every 95% interval is a",
        "  bootstrap of persons, so a person's checkups go in or out together.",
        "- Published equations (PREVENT 10-year total CVD, Framingham 2008 general CVD) predict 10-year risk and",
        "  are compared on ranking only.",
        "",
    ]


def _event_rate_lines(model_info: dict[str, dict]) -> list[str]:
    """A warning per outcome whose training labels hold far more events than a one-year first diagnosis."""
    lines = []
    for o, info in model_info.items():
        r = info.get("event_rate") or {}
        if r.get("exceeds"):
            lines.append(
                f"- **Label check ({o}):** {r['rate']:.1%} of the labelled training rows are events, "
                f"{r['times']:.0f} times the yearly rate of about {r['reference']:.1%} the risk categories assume. "
                "A label of a longer horizon or of prevalent disease is not one-year incidence: its risks are not "
                "one-year risks, and nearly every one falls in the top category."
            )
    return lines + [""] if lines else []


def _data_sections(metrics: dict, data: dict, model_info: dict[str, dict] | None) -> list[str]:
    """Evaluation data, training data (with provenance and sample size) and the fitting table."""
    excluded = (
        f"; {metrics['excluded_training_rows']:,} checkups of {metrics['excluded_training_persons']:,} "
        "training persons left out."
        if metrics.get("excluded_training_rows")
        else "."
    )
    evaluated = data.get("evaluated")
    source = (
        [
            f"- Source file fingerprint: `{data['sha256']}`; {data.get('rows', 0):,} checkups of "
            f"{data.get('persons', 0):,} persons; rows rejected by validation: {data.get('rejected_rows', 0):,}.",
            "- Events per outcome: "
            + (", ".join(f"{o} {n:,}" for o, n in (data.get("events") or {}).items()) or "none recorded")
            + ".",
        ]
        if data.get("sha256")
        else ["- Source file: not recorded (the version's training run is not in this registry)."]
    )
    return [
        "## Evaluation data",
        *(
            [
                f"- File `{evaluated['file']}`, fingerprint `{evaluated['sha256']}`: {evaluated['rows']:,} rows of "
                f"{evaluated['persons']:,} persons; rows rejected by validation: {evaluated['rejected_rows']:,}."
            ]
            if evaluated
            else []
        ),
        f"- Held-out persons (never seen in fitting, validation or calibration): {metrics['n_records']:,} checkups"
        + excluded,
        "",
        "## Training data",
        *source,
        *_provenance_lines(data.get("training_data")),
        "- Split by person (never by row), TRIPOD+AI 12a: test persons held out of everything; within the rest,",
        "  per outcome, a train / validation / calibration split or 5-fold cross-validation by person (the",
        "  fitting table below says which).",
        f"- Sample size (TRIPOD+AI 10): per outcome, Riley et al. (BMJ 2020;368:m441) with {len(FEATURES)} candidate",
        "  parameters and an anticipated Cox-Snell R2 of 15% of its maximum; training warns when the data are smaller.",
        "",
        *(_fitting_table(model_info) + [""] + _event_rate_lines(model_info) if model_info else []),
    ]


def _quantitative_section(metrics: dict) -> list[str]:
    return ["## Quantitative analyses", *_metrics_table(metrics), "", *_oracle_table(metrics)]


def _caveat_sections(decision: str | None) -> list[str]:
    lines = [
        "## Ethical considerations",
        "- Pseudonymous person IDs only; no patient data in logs or in the logged input example (it is made up).",
        "- Risks that are not known differences (known health inequalities, TRIPOD+AI 3c): check subgroup",
        "  calibration before use in a new population.",
        "",
        "## Caveats and recommendations",
        "- Model estimates, not promises; one-year horizon only. Recalibrate before use on another population.",
        "- The clinician report places a person among the training population of the same sex and age band",
        "  (percentiles of predicted risk saved with the bundle), not among the population it is used on; its",
        "  what-if figures are the model's estimates with everything else unchanged, not treatment effects.",
        "- Inputs outside the plausible ranges are rejected; missing inputs lower precision and are reported",
        "  (TRIPOD+AI 27a): the key ones with each `/score`, FHIR and CDS prediction, and the absent columns",
        "  of a whole file by `score` and `validate`.",
    ]
    if decision:
        lines += ["", "## Promotion", f"- {decision}"]
    return lines


def model_card(
    version: str, metrics: dict, data: dict, decision: str | None = None, model_info: dict[str, dict] | None = None
) -> str:
    """Markdown model card for one registered version.

    `model_info`: per outcome, the fitted model's `info` (RiskModel.models_[o].info), for the
    fitting mode and sample-size rows; without it the card describes both modes in general."""
    synthetic = is_synthetic(data.get("training_data"))
    parts = [
        # The model's own outcomes (a cvd-only model lists no diabetes constraints); all without its info.
        *_details_section(version, metrics, tuple(model_info) if model_info else tuple(OUTCOME_SPECS), synthetic),
        *_use_and_factors_sections(metrics, synthetic),
        *_data_sections(metrics, data, model_info),
        *_quantitative_section(metrics),
        *_caveat_sections(decision),
    ]
    return "\n".join(parts) + "\n"


# --- the evaluation report (HTML) ----------------------------------------------------------------

_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}img{width:32%}"
    "table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #bbb;padding:3px 6px;"
    "text-align:left;vertical-align:top}th{background:#f0f0f0}code{font-size:90%}"
    ".warn{background:#fff3cd;border:1px solid #d39e00;padding:.5em}"
)


def _outcome_section(outcome: str, m: dict, figures_png: dict[str, bytes]) -> str:
    """One outcome: model against its baselines, subgroups, and its plots."""

    def ci(b: dict) -> str:
        low, high = b.get("auroc_ci") or (None, None)
        return "" if low is None or high is None else f" ({_fmt(low)}-{_fmt(high)})"

    def count(b: dict, key: str) -> str:
        return f"{b[key]:,}" if b.get(key) is not None else ""

    # A published equation needs inputs many rows lack (the lipid panel): it is scored on fewer
    # rows than the model, so the model's AUROC on its rows stands beside it.
    baselines = [["model", count(m, "n"), count(m, "events"), _fmt(m["auroc"]) + ci(m), "", "1-year"]] + [
        [
            name,
            count(b, "n"),
            count(b, "events"),
            _fmt(b.get("auroc")) + ci(b),
            _fmt(b.get("model_auroc_same_rows")) if "model_auroc_same_rows" in b else "(same rows)",
            b.get("note") or b.get("scale", "1-year"),
        ]
        for name, b in m["baselines"].items()
    ]
    subgroups = [
        [
            str(s["sex"]),
            str(s["age_band"]),
            f"{s['n']:,}",
            f"{s['events']:,}",
            _fmt(s["auroc"]),
            _fmt(s["observed_to_expected"], 2),
            "too small to judge" if s["too_small"] else "",
        ]
        for s in m["subgroups"]
    ]
    imgs = "".join(
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in figures_png.items()
        if name.endswith(f"_{outcome}.png")
    )
    return "\n".join(
        [
            f"<h2>{html.escape(outcome)}: {html.escape(OUTCOME_SPECS[outcome].label_en)}</h2>",
            _html_table(["baseline", "rows", "events", "AUROC (95% CI)", "model AUROC, same rows", "scale"], baselines),
            "<p>Published equations are scored as if untreated (their inputs carry no treatment), on the rows "
            "that have every input they need, whether or not within their validated ranges.</p>",
            "<h3>Subgroups (sex x age band)</h3>",
            _html_table(["sex", "age", "n", "events", "AUROC", "observed/expected", ""], subgroups),
            f"<div>{imgs}</div>",
        ]
    )


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table of plain-text cells, each escaped (no Markdown is read in them)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rejected_note(metrics: dict) -> list[str]:
    """The rows of the file left out of these figures (rejects.csv), as a warning when they are many."""
    rejected, rows_in = metrics.get("rejected_rows", 0), metrics.get("rows_in")
    if not rejected or not rows_in:
        return []
    share = rejected / rows_in
    text = f"{rejected:,} of {rows_in:,} rows ({share:.1%}) were rejected (rejects.csv, with the reasons)"
    if share > MAX_REJECT_SHARE:
        return [
            f"<p class='warn'><strong>WARNING: {html.escape(text)}, more than {MAX_REJECT_SHARE:.0%}.</strong> "
            "These figures describe the rest of the file, which may not be a random part of it.</p>"
        ]
    return [f"<p>{html.escape(text)}; the figures describe the rest.</p>"]


def evaluation_report(
    version: str, metrics: dict, figures_png: dict[str, bytes], card_md: str, synthetic: bool = False
) -> str:
    """A self-contained HTML report: metrics table, subgroup tables, plots, model card; a model of
    synthetic people (`synthetic`) is named so above everything else."""
    sections = [
        f"<h1>checkup-risk evaluation, model version {html.escape(version)}</h1>",
        *([f"<p class='warn' role='alert'>{to_html(SYNTHETIC_BANNER).strip()}</p>"] if synthetic else []),
        "<h2>Summary</h2>",
        *_rejected_note(metrics),
        *(
            f"<p class='warn'><strong>WARNING: {html.escape(w)}.</strong></p>"
            for w in discrimination_warnings(metrics) + calibration_warnings(metrics)
        ),
        *(f"<p>Note: {html.escape(n)}.</p>" for n in calibration_notes(metrics)),
        to_html("\n".join(_metrics_table(metrics))),
    ]
    sections += [_outcome_section(o, m, figures_png) for o, m in metrics["outcomes"].items()]
    # The card's own "# Model card: ..." heading becomes an <h2> beside the outcomes' sections.
    sections.append(f"<section class='card'>{to_html(card_md, shift=1)}</section>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>checkup-risk evaluation</title>"
        f"<style>{_STYLE}</style></head><body>" + "\n".join(sections) + "</body></html>"
    )
