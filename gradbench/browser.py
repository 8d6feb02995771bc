"""A headless Chromium screenshot of a local HTML file: how the HTML report is checked to open in a real browser
(tests/test_html_report.py) and how docs/report.png is made (benchmarks/report_screenshot.py).

Chromium runs with networking, sync, component updates and first-run tasks off, in a fresh profile folder, as
``--no-sandbox`` (CI containers run as root, where Chromium's sandbox refuses to start).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from gradbench.errors import GradbenchError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400, timeout: float = 120.0) -> None:
    """Render ``html`` in headless Chromium at ``width`` × ``height`` CSS pixels and save a PNG to ``png``."""
    exe = find_chromium()
    if exe is None:
        raise GradbenchError("no chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="gradbench-chromium-") as profile:
        command = [
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={Path(png).resolve()}",
            Path(html).resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not Path(png).exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise GradbenchError(f"chromium failed (exit {done.returncode}): {tail[0]}")
