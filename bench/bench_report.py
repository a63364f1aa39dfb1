"""Build time of the clinician report once the model is loaded: HTML and PDF, against plain scoring.

For ~50 different synthetic checkups (one record each, as a clinician opens one report at a time),
times per call after warm-up, interleaved so background load hits every method alike:

  (a) baseline: `Scorer.score_records([record], explain=True, top_k=5)`, what /score does per record
  (b) `render_html(scorer, record)`: scoring + what-if estimates + percentiles + template
  (c) `render_pdf(html)`: the same page laid out as A4 PDF by WeasyPrint (Korean font embedded)
  (d) `render_html(scorer, five_checkups)`: a person with 5 checkups (4 earlier ones as history):
      trends over the checkups and the risk at each one, scored through the same Scorer path
      (goal: under 1 s)

Trains a small bundle on a synthetic cohort unless `--bundle DIR` is given.

    .venv/bin/python bench/bench_report.py [--bundle DIR] [--people 6000] [--records 50] [--pdf-records 10]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _stats(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.median(a)), float(np.percentile(a, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a saved RiskModel bundle; trained here if absent")
    parser.add_argument("--people", type=int, default=6000, help="cohort size when training here")
    parser.add_argument("--records", type=int, default=50, help="different checkups timed for (a) and (b)")
    parser.add_argument("--pdf-records", type=int, default=10, help="of those, how many also as PDF (c)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from features.synth import generate_cohort
    from models.bundle import DEFAULT_GRID, RiskModel
    from serving.report import render_html, render_pdf
    from serving.schemas import Checkup
    from serving.scoring import Scorer

    load_before = os.getloadavg()
    if args.bundle:
        model = RiskModel.load(args.bundle)
        print(f"bundle {args.bundle}")
    else:
        start = time.perf_counter()
        model = RiskModel(grid=DEFAULT_GRID[:1], random_state=args.seed).fit(
            generate_cohort(people=args.people, seed=args.seed)
        )
        print(f"trained on a synthetic cohort of {args.people:,} people in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    scorer = Scorer(model, "bench")
    print(f"Scorer (compile the explainer): {time.perf_counter() - start:.1f} s")

    from features.schema import BY_NAME, COLUMNS

    cohort = generate_cohort(people=args.records * 3, seed=args.seed + 7)
    frame = cohort.groupby("person_id").head(1).head(args.records)

    def canonical(rows) -> list[dict]:
        out = []
        for row in rows[[c for c in COLUMNS if c in rows.columns]].to_dict("records"):
            clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            clean["exam_date"] = (
                clean["exam_date"].date() if hasattr(clean["exam_date"], "date") else clean["exam_date"]
            )
            # The cohort keeps exact ages and float codes; the API takes whole years and integer codes.
            clean = {
                k: (int(v) if isinstance(v, float) and (k == "age" or BY_NAME[k].kind == "code") else v)
                for k, v in clean.items()
            }
            out.append(Checkup.model_validate(clean).model_dump())
        return out

    records = canonical(frame)
    # People with at least five checkups: their first five, as one report request (d).
    sizes = cohort.groupby("person_id").size()
    long_ids = sizes[sizes >= 5].index[: args.records]
    histories = [canonical(cohort[cohort["person_id"] == pid].sort_values("exam_date").head(5)) for pid in long_ids]

    # Warm-up: template compile, numba, the first font load of WeasyPrint (seconds, paid once per process).
    start = time.perf_counter()
    render_pdf(render_html(scorer, records[0], "ko"))
    print(f"first report (template, fonts: once per process): {time.perf_counter() - start:.2f} s")

    base, html_t, pdf_t = [], [], []
    for i, rec in enumerate(records):
        lang = "ko" if i % 2 == 0 else "en"
        t0 = time.perf_counter()
        scorer.score_records([dict(rec)], explain=True, top_k=5)
        t1 = time.perf_counter()
        html = render_html(scorer, rec, lang)
        t2 = time.perf_counter()
        base.append(t1 - t0)
        html_t.append(t2 - t1)
        if i < args.pdf_records:
            render_pdf(html)
            pdf_t.append(time.perf_counter() - t2)

    hist_t = []
    for i, recs in enumerate(histories):
        t0 = time.perf_counter()
        render_html(scorer, [dict(r) for r in recs], "ko" if i % 2 == 0 else "en")
        hist_t.append(time.perf_counter() - t0)

    b50, b95 = _stats(base)
    rows = [
        ("(a) Scorer.score_records, 1 record (baseline)", len(base), *_stats(base)),
        ("(b) render_html (report page)", len(html_t), *_stats(html_t)),
        ("(c) render_pdf (A4 PDF of that page)", len(pdf_t), *_stats(pdf_t)),
    ]
    if hist_t:
        rows.append(("(d) render_html, 5 checkups with trends", len(hist_t), *_stats(hist_t)))
    print(f"\n{'method':<48} {'n':>4} {'p50 ms':>9} {'p95 ms':>9} {'x (a) p50':>10}")
    for name, n, p50, p95 in rows:
        print(f"{name:<48} {n:>4} {p50:>9.1f} {p95:>9.1f} {p50 / b50:>10.1f}")
    print(f"\nload average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
