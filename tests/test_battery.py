"""The bad-input battery (issue 16): every hostile input to every command that shares its code path gets exactly one
line on stderr starting ``gradbench: error: ``, exit code 2, no traceback, and leaves every file as it was.

Cases are grouped by class (seeds, limits, output paths, input files, arguments), each class parametrised over the
commands that share the path. Commands run in-process (typer's CliRunner) inside a sandbox folder whose files are
snapshotted before and after; a few run as real subprocesses of the console script (empty stdin, FIFOs). No case
waits for a timeout: a case that would hang fails the subprocess timeout, which is a guard only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradbench.limits import CPU_FACTOR, cpus_available
from tests.helpers import assert_one_line_error

PLUGINS = Path(__file__).parent / "plugins"
BIG = str(2**63)
TOO_MANY = str(CPU_FACTOR * cpus_available() + 1)
LONG = "r" * 300 + ".csv"
DTYPES = ("float8", "FLOAT16", "half", "bf16", "float16x", "")
SMALL_SWEEP = ["sweep", "-e", "reinforce", "-t", "bernoulli", "--seeds", "1", "--samples", "100", "-w", "1"]


# --- the sandbox -------------------------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, and for regular files size and content hash (FIFOs are never opened)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = os.lstat(path)
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path))
            elif Path(path).is_file():
                out[str(path)] = ("file", st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                out[str(path)] = ("other", st.st_mode)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Input files shared by the cases: a results CSV, a baseline, and broken variants of both."""
    import torch

    from gradbench.baseline import current_environment, format_baseline
    from gradbench.results import format_rows
    from gradbench.runner import CellSpec, run_cell

    root = tmp_path_factory.mktemp("battery-files")
    rows, cells = [], []
    for seed in (0, 1):
        details: dict = {}
        row = run_cell(CellSpec("bernoulli", "reinforce", n_samples=200, seed=seed), details=details)
        rows.append(row)
        cells.append((row, details))
    good = format_rows(rows, header=True)
    (root / "good.csv").write_text(good)
    env = current_environment("float32", "cpu", torch.get_num_threads())
    (root / "baseline.csv").write_text(format_baseline(cells[:1], env, {}))
    header, line1, line2 = good.splitlines()
    variants = {
        "nul.csv": good.replace("bernoulli", "bern\0oulli", 1),
        "nul-header.csv": "\0" + good,
        "seed-nan.csv": "\n".join([header, line1.replace(",reinforce,,,0,", ",reinforce,,,nan,"), ""]),
        "seed-negative.csv": "\n".join([header, line1.replace(",reinforce,,,0,", ",reinforce,,,-3,"), ""]),
        "samples-fraction.csv": "\n".join([header, line1.replace(",200,", ",200.5,", 1), ""]),
        "empty-task.csv": "\n".join([header, line1.replace("bernoulli", " ", 1), ""]),
        "short-row.csv": "\n".join([header, line1.rsplit(",", 3)[0], ""]),
        "header-only.csv": header + "\n",
        "foreign.csv": "name,score\nx,1\n",
        "empty.csv": "",
        "binary.csv": "\xff\xfe garbage",
    }
    for name, text in variants.items():
        (root / name).write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text else b"\xff\xfe\x00")
    return {p.name: p for p in root.iterdir()}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder holding a FIFO, a symlink to a device, a file where a folder is expected, and a results
    file with NUL bytes; the test asserts that nothing in it changed."""
    os.mkfifo(tmp_path / "fifo.csv")
    os.symlink("/dev/full", tmp_path / "full-link.csv")  # never /dev/null: a regression run as root would replace it
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "nul.csv").write_bytes(b"task\0,estimator\n\0\0\n")
    (tmp_path / "foreign.csv").write_text("name,score\nx,1\n")
    (tmp_path / "a-folder").mkdir()
    from gradbench.bench.output import COLUMNS as BENCH_COLUMNS
    from gradbench.results import OLDER_FORMATS

    (tmp_path / "older.csv").write_text(",".join(OLDER_FORMATS[-1]) + "\n")  # an earlier gradbench's results file
    (tmp_path / "bench.csv").write_text(",".join(BENCH_COLUMNS) + "\n")  # a throughput CSV bench may replace
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    yield tmp_path
    assert _snapshot(tmp_path) == before, "a file was created, changed or removed on an error"


def _args(args: list[str], files: dict[str, Path]) -> list[str]:
    """Placeholders {name} in arguments stand for the module's input files."""
    return [str(files[a[1:-1]]) if a.startswith("{") and a.endswith("}") else a for a in args]


# --- the cases ---------------------------------------------------------------------------------------------------
# (args, fragments the one line must contain)

SEEDS = [
    *[(["run", "-e", "reinforce", "-n", "10", "--seed", s], ["--seed", "2^63"]) for s in ("-1", BIG, str(2**64))],
    (["run", "-e", "reinforce", "-n", "10", "--seed", str(2**64 - 1)], ["2^63"]),
    (["run", "-e", "reinforce", "-n", "10", "--seed", str(-(2**63))], ["2^63"]),
    (["run", "-e", "reinforce", "-n", "10", "--seed", "1" + "0" * 40], ["2^63"]),
    (["run", "-e", "reinforce", "-n", "10", "--seed", "1.5"], ["--seed"]),
    *[(SMALL_SWEEP[:5] + ["--seeds", s, "-n", "10"], ["--seeds"]) for s in (f"0,{2**64}", f"{BIG},1", "-1,2")],
    (SMALL_SWEEP[:5] + ["--seeds", "1000000000000", "-n", "10"], ["--seeds", "at most"]),
    (SMALL_SWEEP[:5] + ["--seeds", "1e12", "-n", "10"], ["--seeds", "count"]),
    (SMALL_SWEEP[:5] + ["--seeds", ",".join(map(str, range(100_001))), "-n", "10"], ["--seeds", "at most"]),
    (SMALL_SWEEP[:5] + ["--seeds", "0", "-n", "10"], ["--seeds", "at least 1"]),
    (SMALL_SWEEP[:5] + ["--seeds", "3,3", "-n", "10"], ["repeated"]),
    *[(["check", "-b", "{baseline.csv}", "--seed-base", s], ["--seed-base", "2^63"]) for s in ("-1", BIG, "-5")],
    (["check", "--update", "-b", "new.csv", "--seeds", "1000000000000"], ["--seeds"]),
    (["check", "--update", "-b", "new.csv", "--seeds", "0"], ["--seeds"]),
]

LIMITS = [
    # temperatures a dtype cannot hold
    (["run", "-e", "gumbel", "--tau", "1e-300", "-n", "10"], ["tau 1e-300", "float32", "float64"]),
    (["run", "-e", "st-gumbel", "--tau", "1e-40", "-n", "10"], ["too small for float32"]),
    (["run", "-e", "gumbel", "--tau", "1e-320", "--dtype", "float64", "-n", "10"], ["too small for float64"]),
    (["run", "-e", "rebar", "--tau", "1e-300", "-n", "10"], ["tau"]),
    (["run", "-e", "gumbel-rao", "--tau", "1e-300", "-n", "10"], ["tau"]),
    (["sweep", "-e", "gumbel", "-t", "bernoulli", "--taus", "1e-300", "--seeds", "1", "-n", "10"], ["tau", "float32"]),
    (["sweep", "-e", "gumbel", "--taus", "1e-300:1:3", "--seeds", "1", "-n", "10"], ["too small"]),
    (["check", "--update", "-b", "new.csv", "-e", "gumbel", "-t", "bernoulli", "--tau", "1e-300"], ["tau"]),
    # sizes that memory cannot hold
    (["run", "-e", "reinforce", "--task-opt", "dim=1000000000", "-n", "10"], ["memory", "GiB", "2,000,000,000"]),
    (["run", "-e", "gumbel", "--tau", "1", "-t", "quadratic", "--task-opt", "dim=100000000"], ["memory"]),
    (["run", "-e", "reinforce", "-n", str(10**12), "--chunk-size", str(10**12)], ["memory", "--chunk-size"]),
    (["sweep", "-e", "reinforce", "-t", "bernoulli", "--task-opt", "dim=1000000000", "-n", "10"], ["memory"]),
    (["run", "-e", "reinforce", "--chunk-size", "0"], ["chunk"]),
    (["run", "-e", "reinforce", "--chunk-size", "-5"], ["chunk"]),
    # threads and processes
    (["run", "-e", "reinforce", "-n", "10", "--threads", "1000"], ["--threads 1000", "at most"]),
    (["run", "-e", "reinforce", "-n", "10", "--threads", TOO_MANY], ["--threads", "per CPU"]),
    (["run", "-e", "reinforce", "-n", "10", "--threads", "-1"], ["--threads"]),
    (SMALL_SWEEP + ["--threads", "1000"], ["--threads 1000"]),
    (SMALL_SWEEP[:-2] + ["--workers", "1000"], ["--workers 1000"]),
    (SMALL_SWEEP[:-2] + ["--workers", "0"], ["--workers"]),
    (["check", "-b", "{baseline.csv}", "--threads", "1000"], ["--threads 1000"]),
    (["check", "-b", "{baseline.csv}", "--threads", "0"], ["--threads"]),
    (["check", "--update", "-b", "new.csv", "--threads", "1000"], ["--threads 1000"]),
    # samples: too many to count, or to finish
    (["run", "-e", "reinforce", "-n", str(2**63)], ["2^53"]),
    (["run", "-e", "reinforce", "-n", str(2**70)], ["2^53"]),
    (["run", "-e", "reinforce", "-n", str(10**15)], ["would take", "--force"]),
    (["run", "-e", "gumbel", "--tau", "0.5", "-t", "quadratic", "-n", str(10**13)], ["would take", "--force"]),
    (SMALL_SWEEP[:-4] + ["-n", str(10**15), "-w", "1"], ["would take", "--force"]),
    (SMALL_SWEEP[:-4] + ["-n", str(2**63), "-w", "1"], ["2^53"]),
    (["run", "-e", "reinforce", "-n", "1"], ["at least 2"]),
    (SMALL_SWEEP[:-4] + ["-n", "1", "-w", "1"], ["at least 2"]),
    (SMALL_SWEEP[:-4] + ["-n", "1e6", "-w", "1"], ["--samples"]),
    # grids too large
    (["sweep", "-e", "gumbel", "--taus", "0.1:1:100000000", "--seeds", "1"], ["at most 1,000"]),
    (["sweep", "-e", "all", "--taus", "0.01:100:300", "--seeds", "100000"], ["cells", "split"]),
    (["check", "--update", "-b", "new.csv", "--budget", "0"], ["--budget"]),
    (["check", "--update", "-b", "new.csv", "--budget", "nan"], ["--budget"]),
    (["check", "--update", "-b", "new.csv", "--budget", "inf"], ["--budget"]),
]

# Output paths: the same checks for every command that writes a file.
BAD_OUTS = [
    ("fifo.csv", ["FIFO"]),
    ("/dev/full", ["character device"]),
    ("full-link.csv", ["character device"]),
    ("/proc/gradbench-x.csv", ["/proc"]),
    ("/proc/gradbench/x.csv", ["/proc"]),
    (LONG, ["304 bytes", "255"]),
    ("a-folder/" + LONG, ["304 bytes"]),
    ("a-file/out.csv", ["a-file"]),
    ("a-folder", ["directory"]),
    ("foreign.csv", ["different header"]),
    ("nul.csv", ["NUL"]),
    ("older.csv", ["earlier gradbench", "code_fingerprint"]),
]
WRITERS = {
    "run": ["run", "-e", "reinforce", "-n", "10", "--out"],
    "sweep": SMALL_SWEEP + ["--out"],
    "sweep --resume": SMALL_SWEEP + ["--resume", "--out"],
    "check --update": ["check", "--update", "-e", "reinforce", "-t", "bernoulli", "--budget", "0.1", "--baseline"],
}
NOT_FOR_BASELINE = {
    "foreign.csv",
    "nul.csv",
    "older.csv",
}  # a baseline path is checked for the baseline's magic line instead
OUTS = [
    ([*cmd, out], fragments)
    for label, cmd in WRITERS.items()
    for out, fragments in BAD_OUTS
    if not (label == "check --update" and out in NOT_FOR_BASELINE)
]
OUTS += [
    (["check", "--update", "-b", "foreign.csv", "-e", "reinforce", "-t", "bernoulli"], ["not a gradbench baseline"]),
    (["check", "--update", "-b", "nul.csv", "-e", "reinforce", "-t", "bernoulli"], ["not a gradbench baseline"]),
]
# bench validates its arguments and --out before it measures, and never replaces a file that is not its own CSV
BENCH = ["bench", "-e", "reinforce", "--no-memory"]
OUTS += [
    ([*BENCH, "--out", out], fragments)
    for out, fragments in (
        ("fifo.csv", ["not a regular file"]),
        ("/dev/full", ["not a regular file"]),
        ("full-link.csv", ["not a regular file"]),
        ("a-folder", ["directory"]),
        ("foreign.csv", ["not a gradbench throughput CSV", "refusing to overwrite"]),
        ("older.csv", ["not a gradbench throughput CSV"]),
        ("nul.csv", ["not a gradbench throughput CSV"]),
        ("a-file/out.csv", ["a-file"]),
        (LONG, ["too long"]),
        ("/proc/gradbench-x.csv", ["cannot write in /proc"]),  # refused before measuring, not after
        ("/proc/gradbench/x.csv", ["cannot write in /proc"]),
    )
]
OUTS += [  # a bad argument leaves an existing throughput CSV (and a new path) untouched
    ([*BENCH, *bad, "--out", out], fragments)
    for out in ("bench.csv", "new/bench.csv")
    for bad, fragments in (
        (["--samples", "1"], ["--samples"]),
        (["--samples", "20000"], ["--samples must exceed"]),
        (["--repeats", "0"], ["--repeats"]),
        (["--threads", "0"], ["--threads"]),
        (["--dtype", "float8"], ["unknown dtype 'float8'", "bfloat16"]),
        (["--tau", "0"], ["--tau"]),
        (["--tau", "nan"], ["--tau"]),
        (["--naive-seconds", "0"], ["--naive-seconds"]),
        (["--memory", "--memory-samples", "many"], ["--memory-samples"]),
        (["--all"], ["exclude each other"]),
        (["--device", "tpu"], ["device"]),
        (["--task-opt", "dim=0"], ["dim"]),
    )
]
# plot's --out is a folder
OUTS += [
    (["plot", "{good.csv}", "--out", out], fragments)
    for out, fragments in (
        ("fifo.csv", ["not a folder"]),
        ("a-file", ["not a folder"]),
        ("/dev/full", ["not a folder"]),
        ("/proc/gradbench-figures", ["/proc"]),
        ("r" * 300, ["File name too long"]),
        ("a-file/figures", ["a-file"]),
    )
]

# Input files: every reader refuses what is not its kind of file, before opening what would block.
BAD_INPUTS = [
    ("fifo.csv", ["FIFO"]),
    ("a-folder", ["directory"]),
    ("/dev/zero", ["character device"]),
    ("{nul.csv}", ["NUL"]),
    ("{nul-header.csv}", ["NUL"]),
    ("{binary.csv}", ["text"]),
    ("{empty.csv}", ["empty"]),
    ("{foreign.csv}", ["not a gradbench"]),
    ("missing.csv", ["does not exist"]),
]
READERS = {"plot": ["plot"], "check": ["check", "--baseline"]}
INPUTS = [([*cmd, path], fragments) for cmd in READERS.values() for path, fragments in BAD_INPUTS]
INPUTS += [
    (["plot", "{seed-nan.csv}"], ["seed"]),
    (["plot", "{seed-negative.csv}"], ["seed"]),
    (["plot", "{samples-fraction.csv}"], ["n_samples"]),
    (["plot", "{empty-task.csv}"], ["task"]),
    (["plot", "{short-row.csv}"], ["fields"]),
    (["plot", "{header-only.csv}"], ["no rows"]),
    (["check", "--baseline", "{good.csv}"], ["looks like a results CSV"]),
    (["check", "--baseline", "/proc/self/status"], ["not a gradbench baseline"]),
]

# Arguments: unknown names, bad numbers, options in the wrong place, for every command.
ARGUMENTS = [
    (["frobnicate"], ["frobnicate"]),
    (["run"], ["--estimator"]),
    (["run", "-e", "gumbell", "--tau", "1"], ["did you mean 'gumbel'"]),
    (["run", "-e", "reinforce", "--out"], ["--out"]),
    (["run", "-e", "reinforce", "--device", "tpu"], ["unknown device"]),
    (["run", "-e", "reinforce", "--dtype", "int8"], ["unknown dtype"]),
    # low precision (issue 15) takes float16 and bfloat16 only, by these names
    *[(["run", "-e", "reinforce", "-n", "10", "--dtype", d], ["unknown dtype", "float16, bfloat16"]) for d in DTYPES],
    (SMALL_SWEEP + ["--dtype", "float8"], ["unknown dtype 'float8'"]),
    (["check", "-b", "{baseline.csv}", "--dtype", "float8"], ["--dtype float8", "bfloat16"]),
    (["check", "--update", "-b", "new.csv", "-e", "reinforce", "-t", "bernoulli", "--dtype", "float8"], ["float8"]),
    (["run", "-e", "gumbel", "--tau", "0.5", "--est-opt", "tau=1"], ["give the temperature once"]),
    (["run", "-e", "reinforce", "--task-opt", "dim=1", "--task-opt", "dim=2"], ["given twice"]),
    (["run", "-e", "reinforce", "--task-opt", "=3"], ["KEY=VALUE"]),
    (["run", "-e", "reinforce", "--task-opt", "target=nan"], ["finite"]),
    (["run", "-e", "reinforce", "--task-opt", "target=inf"], ["finite"]),
    (["run", "-e", "reinforce", "--task-opt", "dim=1.5"], ["dim must be int"]),
    (["run", "-e", "rloo", "--est-opt", "m=1"], ["m must be"]),
    (["run", "-e", "rloo", "--est-opt", "m=" + "9" * 5000], ["m must be int"]),
    (["run", "-e", "arm", "-t", "quadratic"], ["binary"]),
    (["run", "-e", "reinforce", "--plugin", "a-folder"], ["a-folder"]),
    (["run", "-e", "reinforce", "--plugin", "fifo.csv"], ["fifo"]),
    (["run", "-e", "reinforce", "--plugin", str(PLUGINS / "broken_import.py")], ["failed to import"]),
    (SMALL_SWEEP[:2] + ["gumbell"], ["did you mean"]),
    (["sweep", "-t", "bernouli"], ["did you mean"]),
    (["sweep", "-e", ","], ["comma list"]),
    (["sweep", "--taus", "0"], ["> 0"]),
    (["sweep", "--taus", "nan"], ["finite"]),
    (["sweep", "--taus", "1:0.1:3"], ["LOW must not exceed HIGH"]),
    (["sweep", "--taus", "0.1:1"], ["LOW:HIGH:COUNT"]),
    (["sweep", "--taus", "0.1:1:x"], ["COUNT"]),
    (["sweep", "--taus", ","], ["comma list"]),
    (["sweep", "--samples", "many"], ["--samples"]),
    (["sweep", "--task-opt", "colour=red"], ["colour"]),
    (["sweep", "--est-opt", "tau=1"], ["--taus"]),
    (["sweep", "--resume", "--overwrite"], ["exclude"]),
    (["sweep", "--device", "tpu", "-e", "reinforce", "-t", "bernoulli"], ["device"]),
    (["sweep", "--plugin", "missing.py"], ["missing"]),
    (["plot", "{good.csv}", "--format", "gif"], ["--format"]),
    (["plot", "{good.csv}", "--metrics", "speed"], ["--metrics"]),
    (["plot", "{good.csv}", "--metrics", ","], ["--metrics"]),
    (["plot"], ["CSV"]),
    (["check", "-b", "{baseline.csv}", "--alpha", "2"], ["--alpha"]),
    (["check", "-b", "{baseline.csv}", "--alpha", "nan"], ["--alpha"]),
    (["check", "-b", "{baseline.csv}", "--alpha", "abc"], ["--alpha"]),
    (["check", "-b", "{baseline.csv}", "--power", "1"], ["--power"]),
    (["check", "-b", "{baseline.csv}", "--variance-ratio", "1"], ["--variance-ratio"]),
    (["check", "-b", "{baseline.csv}", "--variance-ratio", "inf"], ["--variance-ratio"]),
    (["check", "-b", "{baseline.csv}", "--bias-threshold", "-1"], ["--bias-threshold"]),
    (["check", "-b", "{baseline.csv}", "--fail-on-speed", "0.5"], ["--fail-on-speed"]),
    (["check", "-b", "{baseline.csv}", "--format", "xml"], ["--format"]),
    (["check", "-b", "{baseline.csv}", "--tau", "0.5"], ["only applies with --update"]),
    (["check", "-b", "{baseline.csv}", "--seeds", "2"], ["only applies with --update"]),
    (["check", "-b", "{baseline.csv}", "--allow-missing", "nosuch"], ["--allow-missing nosuch"]),
    (["check", "-b", "{baseline.csv}", "--device", "tpu"], ["device"]),
    (["check", "-b", "{baseline.csv}", "--dtype", "int8"], ["dtype"]),
    (["check", "--update", "-b", "new.csv", "--strict"], ["does not apply to --update"]),
    (["check", "--update", "-b", "new.csv", "--allow-missing", "x"], ["does not apply to --update"]),
    (["check", "--update", "-b", "new.csv", "-e", "nosuch"], ["unknown estimator"]),
    (["check", "--update", "-b", "new.csv", "--tau", "0"], ["--tau"]),
    (["list", "--plugin", "missing.py"], ["missing"]),
    (["list", "--plugin", str(PLUGINS / "broken_import.py")], ["failed to import"]),
    (["list", "--nonsense"], ["--nonsense"]),
    (["--nonsense"], ["--nonsense"]),
]

CASES = [
    *[("seeds", a, f) for a, f in SEEDS],
    *[("limits", a, f) for a, f in LIMITS],
    *[("outputs", a, f) for a, f in OUTS],
    *[("inputs", a, f) for a, f in INPUTS],
    *[("arguments", a, f) for a, f in ARGUMENTS],
]


def _id(case) -> str:
    kind, args, _ = case
    text = " ".join(a if len(a) < 40 else a[:12] + f"…({len(a)})" for a in args)
    return f"{kind}: {text}"


@pytest.mark.parametrize(("kind", "args", "fragments"), CASES, ids=[_id(c) for c in CASES])
def test_bad_input_one_line_exit_2_nothing_touched(cli, sandbox, files, kind, args, fragments):
    result = cli(*_args(args, files))
    assert_one_line_error(result, *fragments)


def test_the_battery_has_at_least_150_cases():
    assert len(CASES) >= 150, len(CASES)


# --- real processes of the console script ------------------------------------------------------------------------

SCRIPT = str(Path(sys.executable).with_name("gradbench"))


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [SCRIPT] if Path(SCRIPT).exists() else [sys.executable, "-m", "gradbench.cli"]
    return subprocess.run(
        [*command, *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


SUBPROCESS_CASES = [
    ([], ["no command given"]),
    (["run", "-e", "reinforce", "-n", "10", "--out", "fifo.csv"], ["FIFO"]),
    (["plot", "fifo.csv"], ["FIFO"]),
]


@pytest.mark.parametrize(
    ("args", "fragments"), SUBPROCESS_CASES, ids=[" ".join(a) or "(none)" for a, _ in SUBPROCESS_CASES]
)
def test_console_script_one_line(sandbox, args, fragments):
    done = _script(*args, cwd=sandbox)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradbench: error: "), done.stderr
    assert lines[0] != "gradbench: error:"
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout


# --- a plug-in estimator that returns NaN: counted in the row, never a crash (issues 15 and 16) ---------------------

NAN_PLUGIN = '''
import torch

import gradbench
from gradbench.estimators.reinforce import Reinforce


@gradbench.register_estimator
class NanEveryOther(Reinforce):
    """REINFORCE whose estimates of even index within each call are NaN (half of them)."""

    name = "nan-every-other"
    summary = "REINFORCE, half NaN"

    def estimate(self, problem, rng):
        g = super().estimate(problem, rng)  # n x D x K
        g[0::2] = torch.nan
        return g
'''
NAN_COMMANDS = {
    "run": ["run", "-e", "{e}", "-t", "bernoulli", "-n", "1000", "--out", "{out}"],
    "sweep": ["sweep", "-e", "{e}", "-t", "bernoulli", "--seeds", "2", "-n", "1000", "-w", "1", "--out", "{out}"],
    "nan-cold sweep": ["sweep", "-e", "nan-cold", "-t", "bernoulli", "--taus", "0.5,2", "--seeds", "1", "-n", "100",
                       "-w", "1", "--out", "{out}"],
}  # fmt: skip


@pytest.mark.parametrize("label", NAN_COMMANDS)
def test_nan_estimates_of_a_plugin_are_a_row_not_a_crash(cli, tmp_path, label):
    from gradbench.aggregate import load_results
    from tests.helpers import registry_snapshot

    plugin = tmp_path / "nan_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    out = tmp_path / "out.csv"
    args = [a.format(e="nan-every-other", out=out) for a in NAN_COMMANDS[label]]
    with registry_snapshot():
        result = cli(*args, "--plugin", plugin, "--plugin", PLUGINS / "sweep_extras.py")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    df = load_results(out)
    if label == "nan-cold sweep":  # every estimate NaN below τ = 1, none above
        assert sorted(zip(df["tau"], df["nonfinite_fraction"], strict=True)) == [(0.5, 1.0), (2.0, 0.0)]
    else:
        assert len(df) == (2 if label == "sweep" else 1)
        assert (df["nonfinite_fraction"] == 0.5).all() and df["variance"].notna().all()
