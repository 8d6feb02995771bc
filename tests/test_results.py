"""The CSV: fixed columns, exact round-trip, atomic creation, whole-line appends, header checks."""

from __future__ import annotations

import csv

import pytest

from gradbench.errors import GradbenchError
from gradbench.results import COLUMNS, append_rows, check_writable
from tests.helpers import run


def test_rows_round_trip_and_append(tmp_csv):
    a = run("bernoulli", "reinforce", n=1000)
    b = run("sum-target", "gumbel", n=1000)
    append_rows(tmp_csv, [a])
    append_rows(tmp_csv, [b])
    with tmp_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 2
    assert float(rows[0]["variance"]) == a["variance"]  # repr() floats round-trip exactly
    assert rows[1]["tau"] == "0.5" and rows[0]["tau"] == ""


def test_foreign_header_is_refused_and_left_untouched(tmp_csv):
    tmp_csv.write_text("a,b\n1,2\n")
    with pytest.raises(GradbenchError, match="different header"):
        append_rows(tmp_csv, [run("bernoulli", "reinforce", n=100)])
    assert tmp_csv.read_text() == "a,b\n1,2\n"


def test_partial_last_line_is_refused(tmp_csv):
    append_rows(tmp_csv, [run("bernoulli", "reinforce", n=100)])
    tmp_csv.write_text(tmp_csv.read_text()[:-10])
    before = tmp_csv.read_text()
    with pytest.raises(GradbenchError, match="partial line"):
        append_rows(tmp_csv, [run("bernoulli", "reinforce", n=100)])
    assert tmp_csv.read_text() == before


def test_unwritable_and_directory_targets(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        import os

        if os.access(folder, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(GradbenchError, match="not writable"):
            check_writable(folder / "x.csv")
    finally:
        folder.chmod(0o700)
    with pytest.raises(GradbenchError, match="directory"):
        check_writable(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(GradbenchError, match="not a folder|cannot create"):
        check_writable(a_file / "out.csv")
    with pytest.raises(GradbenchError, match="not a folder|cannot create"):
        check_writable(a_file / "sub" / "out.csv")


def test_no_temporary_files_left_behind(tmp_path):
    out = tmp_path / "r.csv"
    append_rows(out, [run("bernoulli", "reinforce", n=100)])
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_new_files_get_the_usual_permissions(tmp_path):
    import os

    out = tmp_path / "r.csv"
    append_rows(out, [run("bernoulli", "reinforce", n=100)])
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
