"""The report as files and as a person sees it: PDF text and pages, a Chromium screenshot, the CLI.

Chromium and the Korean font are installed by `make sysdeps` (which `make test` runs), so their
absence is a broken set-up and fails here, never skips.
"""

import json
import shutil
from pathlib import Path

import pytest

from features.schema import EXAMPLE_RECORD
from models.outcomes import OUTCOME_SPECS
from serving.report import render_html, render_pdf, risk_text
from serving.schemas import Checkup
from tests import chromium


@pytest.fixture(scope="module")
def scorer(service_home):
    from serving.scoring import Scorer

    _, model, version = service_home
    return Scorer(model, version)


@pytest.fixture(scope="module")
def record() -> dict:
    return Checkup.model_validate(dict(EXAMPLE_RECORD, sbp=152, dbp=92)).model_dump()


def pdf_pages(data: bytes) -> list[str]:
    import io

    from pypdf import PdfReader

    return [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages]


def keep(path: Path, artifacts: Path) -> None:
    """A copy for a person to look at: see the `artifacts` fixture (tests/conftest.py)."""
    shutil.copy(path, artifacts / path.name)


def test_pdf_is_one_page_with_korean_english_and_numbers(scorer, record, tmp_path, artifacts):
    risks = scorer.score_records([dict(record)], explain=False)[0]["risks"]
    shown = [o for o, r in risks.items() if r["applicable"]]
    for lang in ("ko", "en"):
        data = render_pdf(render_html(scorer, record, lang))
        assert data.startswith(b"%PDF")
        (tmp_path / f"report_{lang}.pdf").write_bytes(data)
        keep(tmp_path / f"report_{lang}.pdf", artifacts)
        pages = pdf_pages(data)
        assert len(pages) == 1
        text = " ".join(pages[0].split())
        for o in shown:
            label = OUTCOME_SPECS[o].label_ko if lang == "ko" else OUTCOME_SPECS[o].label_en
            assert label.split("(")[0] in text, (lang, label)
            assert risk_text(risks[o]["probability"]) in text
        # Factors read as values with units next to their official cut-offs. Which factors are the
        # strongest is the model's business, so the expected words come from the report's context.
        from serving.report import build_context

        rows = [
            r
            for o in build_context(scorer, record, lang)["outcomes"]
            for r in o["waterfall"]["rows"]
            if r["kind"] == "bar" and r.get("cutoff")
        ]
        assert rows, "no factor with a judgement cut-off was shown"
        for r in rows:
            assert f"{r['value']} — {r['cutoff']}" in text, (lang, r["value"], r["cutoff"])
        # 152/92 is Korean Society of Hypertension stage 1, named as such next to the reading.
        if lang == "ko":
            assert "1년 내 발생 위험" in text and "152/92 mmHg — 1기 고혈압 140–159/90–99" in text
        else:
            assert "One-year risk" in text and "152/92 mmHg — hypertension stage 1 (140–159/90–99)" in text


@pytest.mark.slow  # a headless Chromium
def test_chromium_screenshot_is_a_real_page(scorer, record, tmp_path, artifacts):
    shot = chromium.screenshot(render_html(scorer, record, "ko"), "report_ko", tmp_path, 1240, 1754)
    keep(shot, artifacts)
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1240, 1754)
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text, badges and bars, not a blank page
        ink = sum(n for n, c in colours if c != (255, 255, 255)) / (1240 * 1754)
        assert 0.02 < ink < 0.6
        # The page is drawn top to bottom: ink in the top third (header, risks) and the bottom half.
        gray = rgb.convert("L")
        top = gray.crop((0, 0, 1240, 580)).getextrema()
        lower = gray.crop((0, 877, 1240, 1754)).getextrema()
        assert top[0] < 100 and lower[0] < 100


def test_cli_report_html_and_pdf_in_english(service_home, record, tmp_path, capsys):
    from checkup_risk_cli import main

    _, _, version = service_home
    source = tmp_path / "checkup.json"
    source.write_text(json.dumps(dict(EXAMPLE_RECORD, sbp=152, dbp=92)))
    assert main(["report", "--input", str(source), "--lang", "en", "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert '<html lang="en">' in html and f"Model version {version}" in html
    assert main(["report", "--input", str(source), "--lang", "en", "--out", str(tmp_path / "r.pdf")]) == 0
    pages = pdf_pages((tmp_path / "r.pdf").read_bytes())
    assert len(pages) == 1 and "One-year risk" in pages[0]
    assert "wrote the en report" in capsys.readouterr().out

    source.write_text(json.dumps({"checkup": dict(EXAMPLE_RECORD, hdl=1)}))
    assert main(["report", "--input", str(source), "--out", str(tmp_path / "bad.html")]) == 2
    err = capsys.readouterr().err
    assert "hdl" in err and not (tmp_path / "bad.html").exists()
    assert main(["report", "--input", str(source), "--out", str(tmp_path / "r.docx")]) == 2


def test_cli_report_of_one_persons_checkups_as_a_json_list(service_home, tmp_path, capsys):
    import datetime as dt

    from checkup_risk_cli import main

    today = dt.date.today()
    base = {k: v for k, v in EXAMPLE_RECORD.items() if k not in ("total_cholesterol", "hdl", "ldl", "triglycerides")}
    checkups = [
        dict(base, person_id="cli-h", exam_date=(today - dt.timedelta(days=d)).isoformat(), sbp=s)
        for d, s in ((40, 138), (800, 122), (420, 130))
    ]  # not in date order
    source = tmp_path / "checkups.json"
    source.write_text(json.dumps(checkups))
    assert main(["report", "--input", str(source), "--lang", "en", "--out", str(tmp_path / "h.html")]) == 0
    html = (tmp_path / "h.html").read_text()
    earlier = ", ".join(c["exam_date"] for c in sorted(checkups[1:], key=lambda c: c["exam_date"]))
    assert f"Earlier checkups used as history: 2 ({earlier})" in html
    assert f"exam {checkups[0]['exam_date']}" in html  # the newest is the one reported
    assert main(["report", "--input", str(source), "--out", str(tmp_path / "h.pdf")]) == 0
    pages = pdf_pages((tmp_path / "h.pdf").read_bytes())
    assert len(pages) == 1 and "이력으로 사용한 이전 검진 2회" in " ".join(pages[0].split())
    capsys.readouterr()

    source.write_text(json.dumps({"checkups": checkups[:2] + [dict(checkups[2], person_id="cli-other")]}))
    assert main(["report", "--input", str(source), "--out", str(tmp_path / "mixed.html")]) == 2
    err = capsys.readouterr().err
    assert "record 2, person_id" in err and "cli-other" not in err and not (tmp_path / "mixed.html").exists()
