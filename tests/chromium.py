"""A headless Chromium screenshot of an HTML page: how the report tests look at it as a person does."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def screenshot(html: str, name: str, tmp: Path, width: int, height: int) -> Path:
    """Write `html` to `tmp/<name>.html` and return the PNG Chromium made of it at width x height."""
    assert Path(CHROMIUM).exists(), "chromium is missing: `make sysdeps` installs it"
    page = tmp / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp / f"{name}.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--screenshot={shot}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), proc.stderr[-2000:]
    return shot
