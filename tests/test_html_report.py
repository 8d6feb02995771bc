"""gradbench report: one self-contained HTML page, opened in a real headless browser (Chromium) and screenshotted."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradbench.browser import find_chromium, screenshot
from gradbench.cli import app
from tests.helpers import assert_one_line_error
from tests.test_equal_cost import write_grid

ON_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("report")
    grid = write_grid(tmp_path / "grid.csv")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(grid), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_page_is_self_contained_and_holds_tables_figures_environment_and_commands(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # nothing to fetch: no scripts, no style sheets or images by reference, no network address
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"""(?:src|href)=["'](?!data:|#)""", text)
    assert not re.search(r"https?://", text)
    assert text.count('src="data:image/png;base64,') == 1  # one task, one figure
    # the summary at equal cost (winner, per-estimate winner, crossover), then per estimate
    assert "at equal cost: 12 f evaluations" in text
    assert "<td>gumbel</td>" in text and "90 evals (reinforce over gumbel)" in text
    assert "Lowest MSE per estimate" in text and "20 estimates (rloo (m=4) over gumbel)" in text
    assert "Environment" in text and "torch" in text and "float32" in text
    assert "gradbench sweep --tasks t --estimators gumbel,reinforce,rloo,st-gumbel --taus 0.5 --seeds 0" in text
    assert "gradbench report" in text


def test_the_same_csv_gives_the_same_bytes(page, tmp_path):
    again = tmp_path / "again.html"
    assert CliRunner().invoke(app, ["report", str(page.parent / "grid.csv"), "--out", str(again)]).exit_code == 0
    assert again.read_text().replace(str(again), "X") == page.read_text().replace(str(page), "X")


def test_bad_report_arguments_are_one_line_errors(tmp_path):
    grid = write_grid(tmp_path / "grid.csv")
    runner = CliRunner()
    assert_one_line_error(runner.invoke(app, ["report", str(grid), "--out", str(tmp_path)]), "is a directory")
    missing = tmp_path / "no" / "r.html"
    assert_one_line_error(runner.invoke(app, ["report", str(grid), "--out", str(missing)]), "does not exist")
    assert_one_line_error(runner.invoke(app, ["report", str(tmp_path / "x.csv")]), "does not exist")
    assert_one_line_error(runner.invoke(app, ["report", str(grid), "--only", "nope"]), "--only", "nope")
    assert not missing.parent.exists()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(find_chromium() is None and not ON_CI, reason="needs chromium (Debian: apt-get install chromium)")
def test_the_page_opens_in_headless_chromium(page, tmp_path):
    """A real browser renders it: the screenshot has the window's size and is not blank (text and a figure)."""
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    screenshot(page, shot, width=1000, height=1400)
    assert png_size(shot) == (1000, 1400)
    pixels = imread(shot)[..., :3]  # H x W x 3 in [0, 1]
    ink = (pixels.min(axis=-1) < 0.6).mean()  # dark pixels: text, table rules, plot lines
    assert ink > 0.01, f"the screenshot is (almost) blank: {ink:.4f} dark"
    colours = len({tuple(p) for p in (pixels[::7, ::7] * 255).astype(int).reshape(-1, 3)})
    assert colours > 50, "no figure drawn (too few distinct colours)"


def test_a_blank_page_fails_the_screenshot_checks(tmp_path):
    """The checks above can fail: an empty page gives a screenshot with no ink."""
    if find_chromium() is None and not ON_CI:
        pytest.skip("needs chromium")
    from matplotlib.image import imread

    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    shot = tmp_path / "blank.png"
    screenshot(blank, shot, width=400, height=300)
    assert (imread(shot)[..., :3].min(axis=-1) < 0.6).mean() == 0
