"""The baseline file of ``gradbench check``: format 1, read and written here.

A baseline is a CSV file with one JSON comment line in front::

    # gradbench-baseline {"format": 1, "created": "…", "environment": {…}, "grid": {…}, "sha256": "…"}
    task,task_params,…,timestamp,mean_dev,component_var        <- results.COLUMNS + two vector columns
    bernoulli,dim=1;logit=0.0;target=0.499,reinforce,,,0,…      <- one row per cell

- ``environment``: what the exact tier must match (:data:`MATCH_KEYS`: gradbench, torch and numpy versions,
  platform, dtype, device, threads) plus ``python`` and ``host`` for information;
- ``grid``: the settings ``--update`` sized the cells with (informational);
- ``sha256``: of everything after the first line, so a truncated, hand-edited or badly merged file is refused;
- ``mean_dev`` and ``component_var``: the per-component mean deviation ĝ_j − g*_j and variance s_j² of the
  cell's estimates (P = D·K numbers each, space-separated, 10 significant digits), which the statistical tier
  needs to test a change of the mean; the other columns are the ordinary result row, with full precision.

Anything that does not parse exactly so is refused with a :class:`GradbenchError` naming the file and the line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError
from gradbench.results import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, PROVENANCE_COLUMNS, check_regular, write_atomic

FORMAT = 1
MAGIC = "# gradbench-baseline "
VECTOR_COLUMNS = ("mean_dev", "component_var")
BASELINE_COLUMNS = COLUMNS + VECTOR_COLUMNS
PREVIOUS_COLUMNS = COLUMNS[: -len(PROVENANCE_COLUMNS)] + VECTOR_COLUMNS
"""The columns of a baseline written before ``code_fingerprint`` existed: read with an empty fingerprint."""
MATCH_KEYS = ("gradbench", "torch", "numpy", "platform", "dtype", "device", "threads")
"""Environment entries that must all be equal for the exact tier."""

CELL_KEY = ("task", "task_params", "estimator", "estimator_params", "tau", "seed")


def current_platform(device: str) -> str:
    """OS, machine, CPU model and the CPU kernels torch dispatches to (they decide the last bits of float
    results); the GPU's name on CUDA."""
    import torch

    text = f"{platform.system()} {platform.machine()} {cpu_model()} {torch.backends.cpu.get_cpu_capability()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f" {torch.cuda.get_device_name(torch.device(device))}"
    return text


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), or the machine type where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def current_environment(dtype: str, device: str, threads: int) -> dict[str, Any]:
    import numpy
    import torch

    import gradbench

    return {
        "gradbench": gradbench.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": current_platform(device),
        "dtype": dtype,
        "device": device,
        "threads": threads,
        "python": platform.python_version(),
        "host": platform.platform(),
    }


def environment_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The :data:`MATCH_KEYS` on which two environments differ: key -> (a's value, b's value)."""
    return {k: (a.get(k), b.get(k)) for k in MATCH_KEYS if a.get(k) != b.get(k)}


@dataclass
class BaselineCell:
    row: dict[str, Any]  # typed result row (results.COLUMNS)
    mean_dev: list[float]  # P
    component_var: list[float]  # P

    @property
    def key(self) -> tuple:
        return tuple(self.row[c] for c in CELL_KEY)

    def label(self) -> str:
        return cell_label(self.row)


def cell_label(row: dict[str, Any]) -> str:
    """``estimator τ=… (params) on task (params) seed s`` — short, unique within a baseline."""
    est = row["estimator"]
    if row["tau"] != "":
        est += f" τ={row['tau']:g}"
    if row["estimator_params"]:
        est += f" ({row['estimator_params']})"
    return f"{est} on {row['task']} ({row['task_params']}) seed {row['seed']}"


@dataclass
class Baseline:
    path: Path
    environment: dict[str, Any]
    cells: list[BaselineCell]
    created: str = ""
    grid: dict[str, Any] = field(default_factory=dict)


def _vector(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def format_baseline(
    cells: list[tuple[dict[str, Any], dict[str, Any]]], environment: dict[str, Any], grid: dict[str, Any]
) -> str:
    """The text of a baseline from (row, details) pairs (details as filled by ``run_cell(details=…)``)."""
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(BASELINE_COLUMNS)
    for row, details in cells:
        writer.writerow(
            [_cell_text(row[c]) for c in COLUMNS]
            + [_vector(details["mean_dev"].tolist()), _vector(details["component_var"].tolist())]
        )
    text = body.getvalue()
    header = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "grid": grid,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    return MAGIC + json.dumps(header, ensure_ascii=False, sort_keys=True) + "\n" + text


def write_baseline(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # mkstemp made it private; a baseline is meant to be shared
    except OSError as exc:
        raise GradbenchError(f"cannot write baseline {path}: {exc.strerror or exc}") from None


def read_baseline(path: Path) -> Baseline:
    """Parse and validate a baseline; any problem is a GradbenchError (exit 2) naming the file and line."""
    if not path.exists():
        raise GradbenchError(
            f"baseline {path} does not exist; create it with `gradbench check --update --baseline {path}`"
        )
    check_regular(path, "baseline")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise GradbenchError(f"baseline {path} is not a text file (corrupted?)") from None
    except OSError as exc:
        raise GradbenchError(f"cannot read baseline {path}: {exc.strerror}") from None
    if "\0" in raw:
        raise GradbenchError(f"baseline {path} is not a text file: it holds NUL bytes (corrupted?)")
    first, newline, body = raw.partition("\n")
    if not first.startswith(MAGIC):
        hint = " (it looks like a results CSV, not a baseline)" if first.startswith("task,") else ""
        raise GradbenchError(
            f"{path} is not a gradbench baseline{hint}: its first line must start with {MAGIC.strip()!r}; "
            "create one with `gradbench check --update`"
        )
    try:
        header = json.loads(first[len(MAGIC) :])
    except json.JSONDecodeError as exc:
        raise GradbenchError(f"baseline {path}, line 1: malformed header ({exc.msg})") from None
    if not isinstance(header, dict):
        raise GradbenchError(f"baseline {path}, line 1: malformed header (not a JSON object)")
    version = header.get("format")
    if version != FORMAT:
        raise GradbenchError(
            f"baseline {path} has format {version!r}; this gradbench reads format {FORMAT}: "
            "re-create it with `gradbench check --update`"
        )
    env = header.get("environment")
    if not isinstance(env, dict) or any(k not in env for k in MATCH_KEYS):
        raise GradbenchError(f"baseline {path}, line 1: the environment must record {', '.join(MATCH_KEYS)}")
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if header.get("sha256") != digest:
        raise GradbenchError(
            f"baseline {path} is corrupted: its content does not match the checksum in line 1 (truncated, edited "
            "or merged by hand?); re-create it with `gradbench check --update`"
        )
    reader = csv.reader(io.StringIO(body))
    columns = next(reader, None)
    previous = columns is not None and tuple(columns) == PREVIOUS_COLUMNS
    if columns is None or (tuple(columns) != BASELINE_COLUMNS and not previous):
        raise GradbenchError(f"baseline {path}, line 2: columns differ from baseline format {FORMAT}")
    width = len(COLUMNS) - len(PROVENANCE_COLUMNS)
    cells: list[BaselineCell] = []
    seen: set[tuple] = set()
    for line_no, fields in enumerate(reader, start=3):
        if previous and len(fields) == len(PREVIOUS_COLUMNS):  # no code_fingerprint: the code is unknown
            fields = fields[:width] + [""] * len(PROVENANCE_COLUMNS) + fields[width:]
        cell = _parse_row(path, line_no, fields, env)
        if cell.key in seen:
            raise GradbenchError(f"baseline {path}, line {line_no}: duplicate cell {cell.label()}")
        seen.add(cell.key)
        cells.append(cell)
    if not cells:
        raise GradbenchError(f"baseline {path} has no cells")
    return Baseline(path, env, cells, str(header.get("created", "")), header.get("grid") or {})


def _parse_row(path: Path, line_no: int, fields: list[str], env: dict[str, Any]) -> BaselineCell:
    where = f"baseline {path}, line {line_no}"
    if len(fields) != len(BASELINE_COLUMNS):
        raise GradbenchError(f"{where}: expected {len(BASELINE_COLUMNS)} fields, got {len(fields)}")
    row: dict[str, Any] = {}
    for name, text in zip(COLUMNS, fields, strict=False):
        try:
            if name in INT_COLUMNS:
                row[name] = int(text)
            elif name in FLOAT_COLUMNS and not (name == "tau" and text == ""):
                row[name] = float(text)
            else:
                row[name] = text
        except ValueError:
            raise GradbenchError(f"{where}, column {name}: {text!r} is not a number") from None
    if row["n_samples"] < 2 or row["D"] < 1 or row["K"] < 2:
        raise GradbenchError(f"{where}: impossible sizes (n_samples {row['n_samples']}, D {row['D']}, K {row['K']})")
    for name, expected in (("dtype", env["dtype"]), ("device", env["device"]), ("threads", env["threads"])):
        if row[name] != expected:
            raise GradbenchError(f"{where}: {name} {row[name]!r} differs from the environment's {expected!r}")
    vectors = []
    P = row["D"] * row["K"]
    for name, text in zip(VECTOR_COLUMNS, fields[len(COLUMNS) :], strict=True):
        try:
            values = [float(v) for v in text.split()]
        except ValueError:
            raise GradbenchError(f"{where}, column {name}: not a list of numbers") from None
        if len(values) != P:
            raise GradbenchError(f"{where}, column {name}: {len(values)} numbers, expected D·K = {P}")
        if not all(math.isfinite(v) for v in values):
            raise GradbenchError(f"{where}, column {name}: non-finite number")
        vectors.append(values)
    if any(v < 0 for v in vectors[1]) or not (row["variance"] >= 0):
        raise GradbenchError(f"{where}: negative or missing variance")
    return BaselineCell(row, vectors[0], vectors[1])
