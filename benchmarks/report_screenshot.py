"""Make the HTML report of docs/sweep/sweep.csv (as `gradbench report docs/sweep/sweep.csv --out report.html`) in a
temporary folder and screenshot it in headless Chromium into docs/report.png (README, "Share the results").
Needs chromium (Debian: apt-get install chromium).

    python benchmarks/report_screenshot.py [--width 1280] [--height 2400]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from gradbench.aggregate import load_results
from gradbench.browser import screenshot
from gradbench.html_report import build_report, write_report

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    csv = "docs/sweep/sweep.csv"  # as `gradbench report` run in the repository root
    html = build_report(load_results(ROOT / csv), csv, "evals", 12.0, argv=["report", csv, "--out", "report.html"])
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        write_report(page, html)
        screenshot(page, ROOT / "docs" / "report.png", args.width, args.height)
    print(f"wrote docs/report.png ({args.width} x {args.height})")


if __name__ == "__main__":
    main()
