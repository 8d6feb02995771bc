"""Issue 16's classes beyond one-line errors: what works at the edges (largest seed, symlinked --out), write errors
that leave files whole, not-comparable cells that fail `check` unless allowed by name."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os

import pytest

from gradbench.errors import GradbenchError
from gradbench.limits import MAX_SECONDS, SEED_LIMIT, check_eta, tau_floor
from gradbench.results import append_rows, format_rows, write_atomic
from gradbench.runner import CellSpec, run_cell
from tests.helpers import assert_one_line_error, without_timing


def test_largest_seed_runs_and_differs_from_seed_0(cli, tmp_csv):
    for seed in (SEED_LIMIT - 1, 0):
        assert (
            cli("run", "-e", "reinforce", "-t", "sum-target", "-n", "200", "--seed", seed, "--out", tmp_csv).exit_code
            == 0
        )
    big, zero = list(csv.DictReader(tmp_csv.open()))
    assert big["seed"] == str(SEED_LIMIT - 1) and big["bias"] != zero["bias"]


def test_symlinked_out_is_followed_and_stays_a_link(cli, tmp_path):
    target = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    for _ in range(2):  # first: a new target through the link; then: an append through it
        assert cli("run", "-e", "reinforce", "-n", "100", "--out", link).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(list(csv.DictReader(target.open()))) == 2


def _row() -> dict:
    return run_cell(CellSpec("bernoulli", "reinforce", n_samples=100))


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_append_that_fails_leaves_only_whole_rows(tmp_csv, monkeypatch, failing):
    row = _row()
    append_rows(tmp_csv, [row])
    before = tmp_csv.read_bytes()
    real_write = os.write

    def half_write(fd, data):  # a disk that fills up in the middle of the line
        real_write(fd, data[: len(data) // 2])
        if failing == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data) // 2

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(GradbenchError, match="No space left on device|short write"):
        append_rows(tmp_csv, [row])
    assert tmp_csv.read_bytes() == before


def test_atomic_write_that_fails_leaves_the_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.csv"
    path.write_text("old\n")

    def no_space(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(GradbenchError, match=r"Input/output error \(EIO\).*unchanged"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]


def test_long_name_gets_a_short_temporary(tmp_path):
    path = tmp_path / ("x" * 250 + ".csv")  # 254 bytes: legal; its temporary file must be legal too
    write_atomic(path, format_rows([], header=True))
    assert path.exists()


def test_eta_refuses_beyond_a_day_unless_forced():
    check_eta(MAX_SECONDS * 0.99, "x", force=False)
    check_eta(MAX_SECONDS * 100, "x", force=True)
    with pytest.raises(GradbenchError, match="--force"):
        check_eta(MAX_SECONDS * 1.01, "x", force=False)


def test_smallest_legal_tau_runs(cli, tmp_csv):
    tau = tau_floor(3.4028234663852886e38, 0.0) * 1.01
    result = cli("run", "-e", "gumbel", "--tau", f"{tau:.6g}", "-n", "100", "--out", tmp_csv)
    assert result.exit_code in (0, 2), result.output  # finite arithmetic, or NaN estimates reported in one line
    if result.exit_code == 2:
        assert_one_line_error(result, "NaN")


# --- check: not-comparable cells fail unless allowed by name -----------------------------------------------------


def _baseline_with_ghost(tmp_path):
    """A one-cell baseline plus a copy of the cell made by an estimator nobody registered (a plug-in not loaded)."""
    import torch

    from gradbench.baseline import MAGIC, current_environment, format_baseline

    details: dict = {}
    row = run_cell(CellSpec("bernoulli", "reinforce", n_samples=2000), details=details)
    env = current_environment("float32", "cpu", torch.get_num_threads())
    text = format_baseline([(row, details), ({**row, "estimator": "ghost"}, details)], env, {})
    path = tmp_path / "baseline.csv"
    path.write_text(text)
    first = json.loads(text.partition("\n")[0][len(MAGIC) :])
    assert first["sha256"] == hashlib.sha256(text.partition("\n")[2].encode()).hexdigest()
    return path


def test_not_comparable_cells_fail_unless_allowed_by_name(cli, tmp_path):
    path = _baseline_with_ghost(tmp_path)
    failing = cli("check", "--baseline", path, "--format", "json")
    assert failing.exit_code == 1, failing.output
    report = json.loads(failing.stdout)
    assert any("--allow-missing ghost" in w for w in report["warnings"]), report["warnings"]
    allowed = cli("check", "--baseline", path, "--allow-missing", "ghost")
    assert allowed.exit_code == 0, allowed.output
    assert "PASS" in allowed.stdout


def test_rows_do_not_depend_on_the_new_checks(tmp_csv):
    """The up-front checks draw nothing: a row is what it was (same seed, same numbers)."""
    a, b = _row(), _row()
    assert without_timing(a) == without_timing(b)
