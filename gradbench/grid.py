"""The grid of a sweep: parse its axes, expand tasks × estimators × temperatures × seeds into cells, in grid order.

Grid. The grid is tasks × estimators × temperatures × seeds, expanded in that order (the *grid order*):

- an estimator without a temperature gets one cell per (task, seed), not one per τ;
- a pair that cannot run (the estimator needs a relaxation the task lacks, binary-only on K > 2, a τ outside the
  estimator's declared range, a required hyper-parameter not given, a task too large to enumerate) is *skipped*
  with its reason, reported in the summary; it is not an error;
- ``--task-opt``/``--est-opt`` apply to every selected task/estimator that declares that option; other
  hyper-parameters take their defaults;
- ``--samples auto`` picks, per (task, estimator), the largest power of two n with n · D · K · c ≤
  :data:`AUTO_BUDGET` (c = ``Estimator.relative_cost``), clamped to [:data:`AUTO_MIN`, :data:`AUTO_MAX`]: a
  cell's cost stays about constant whatever the task's size, so the default grid's time is bounded by its number
  of cells.

Running a grid and writing its CSV is :mod:`gradbench.sweep`'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gradbench.core import Estimator, Task, format_params
from gradbench.errors import GradbenchError
from gradbench.limits import MAX_CELLS, MAX_SEEDS, MAX_TAUS, check_samples, check_seed

DEFAULT_TAUS = "0.05:5:11"
DEFAULT_SEEDS = "3"
AUTO_BUDGET = 1 << 18
"""``--samples auto``: gradient entries × relative cost per cell (n · D · K · Estimator.relative_cost)."""
AUTO_MIN, AUTO_MAX = 1 << 10, 1 << 16

CellKey = tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# Parsing the grid's axes
# ---------------------------------------------------------------------------------------------------------------


def _float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GradbenchError(f"{flag}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise GradbenchError(f"{flag}: every temperature must be a finite number > 0, got {text.strip()!r}")
    return value


def round_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits (temperatures of a log-spaced range read as typed)."""
    return float(f"{x:.{digits}g}")


def parse_taus(text: str) -> list[float]:
    """'0.1,0.5,1' (a list) or '0.05:5:11' (11 log-spaced values from 0.05 to 5, 3 significant digits).

    Returns the distinct temperatures in increasing order.
    """
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise GradbenchError(f"--taus {text!r}: a range is LOW:HIGH:COUNT, e.g. 0.05:5:11")
        low, high = _float(parts[0], "--taus"), _float(parts[1], "--taus")
        try:
            count = int(parts[2])
        except ValueError:
            raise GradbenchError(f"--taus {text!r}: COUNT must be an integer, got {parts[2]!r}") from None
        if count < 1 or (count == 1 and low != high):
            raise GradbenchError(f"--taus {text!r}: COUNT must be ≥ 2 (or 1 when LOW = HIGH)")
        if count > MAX_TAUS:
            raise GradbenchError(f"--taus {text!r}: at most {MAX_TAUS:,} temperatures; give a smaller COUNT")
        if low > high:
            raise GradbenchError(f"--taus {text!r}: LOW must not exceed HIGH")
        if count == 1:
            values = [low]
        else:
            step = (math.log(high) - math.log(low)) / (count - 1)
            values = [round_sig(math.exp(math.log(low) + i * step)) for i in range(count)]
            values[0], values[-1] = low, high
        if len(set(values)) != count:
            raise GradbenchError(f"--taus {text!r}: too many points for the range at 3 significant digits")
    else:
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise GradbenchError("--taus: give a comma list (0.1,0.5,1) or a range LOW:HIGH:COUNT (0.05:5:11)")
        if len(items) > MAX_TAUS:
            raise GradbenchError(f"--taus: {len(items):,} temperatures, at most {MAX_TAUS:,}")
        values = [_float(t, "--taus") for t in items]
    return sorted(set(values))


def parse_seeds(text: str) -> list[int]:
    """'3' (a count: seeds 0, 1, 2) or '0,5,7' (a list; '7,' is seed 7 alone)."""
    text = text.strip()
    try:
        if "," in text:
            items = [s for s in text.split(",") if s.strip()]
            if len(items) > MAX_SEEDS:
                raise GradbenchError(f"--seeds: {len(items):,} seeds, at most {MAX_SEEDS:,}")
            seeds = [int(s) for s in items]
            if not seeds:
                raise ValueError
        else:
            count = int(text)
            if count < 1:
                raise GradbenchError(f"--seeds {text}: a count must be at least 1")
            if count > MAX_SEEDS:
                raise GradbenchError(f"--seeds {count}: at most {MAX_SEEDS:,} seeds per sweep; give a smaller count")
            seeds = list(range(count))
    except ValueError:
        raise GradbenchError(f"--seeds {text!r}: give a count (3) or a comma list of integers (0,5,7)") from None
    for seed in seeds:
        check_seed(seed, "--seeds")
    if len(set(seeds)) != len(seeds):
        raise GradbenchError(f"--seeds {text!r}: a seed is repeated")
    return seeds


def parse_names(text: str, kind: str, known: dict[str, Any], lookup: Callable[[str], Any]) -> list[str]:
    """'all' (every registered name, sorted) or a comma list of names (order kept, repeats dropped)."""
    text = text.strip()
    if text == "all":
        return list(known)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise GradbenchError(f"--{kind}s: give 'all' or a comma list of names")
    for name in names:
        lookup(name)  # unknown names: one line with a suggestion
    return names


def parse_samples(text: str) -> int | None:
    """'auto' (None: per-cell budget, see :func:`auto_samples`) or a number of estimates ≥ 2."""
    if text.strip() == "auto":
        return None
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        raise GradbenchError(f"--samples {text!r}: give a number of estimates or 'auto'") from None
    return check_samples(n)


def auto_samples(task: Task, estimator: Estimator) -> int:
    """Largest power of two n with n · D · K · relative cost ≤ AUTO_BUDGET, within [AUTO_MIN, AUTO_MAX]."""
    cost = max(1, round(task.D * task.K * max(1.0, estimator.relative_cost, estimator.evals_on(task))))
    n = 1 << max(0, (AUTO_BUDGET // cost).bit_length() - 1)
    return min(AUTO_MAX, max(AUTO_MIN, n))


# ---------------------------------------------------------------------------------------------------------------
# Grid expansion
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    index: int  # position in grid order
    spec: Any  # gradbench.runner.CellSpec
    key: CellKey  # identity, as the CSV writes it (IDENTITY_COLUMNS)
    label: str  # "gumbel τ=0.05 on bernoulli, seed 1"
    cost: float  # rough relative cost, for the progress bar's ETA


@dataclass(frozen=True)
class Skip:
    """Cells left out of the grid, and why (one entry per task, estimator and reason)."""

    task: str
    estimator: str
    reason: str
    taus: tuple[float, ...] = ()  # the temperatures concerned; empty: all of them (or none apply)
    cells: int = 0


@dataclass
class Grid:
    cells: list[GridCell]
    skipped: list[Skip]
    taus: list[float]
    seeds: list[int]


def _text(value: Any) -> str:
    """A value as :mod:`gradbench.results` writes it (floats by repr, which round-trips)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _short_reason(reason: str, estimator: str) -> str:
    """A skip reason without what the summary's columns already say (the estimator's name, the bad τ's value)."""
    for prefix in (f"estimator {estimator!r}: ", f"estimator {estimator!r} "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return re.sub(r", got [^,]*$", "", reason)


def _applicable(options: dict[str, str], params: Sequence[Any]) -> dict[str, str]:
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def _check_options_apply(options: dict[str, str], classes: Iterable[type], flag: str, what: str) -> None:
    classes = list(classes)
    declared = {p.name for cls in classes for p in cls.params}
    for key in options:
        if flag == "--est-opt" and key == "tau":
            raise GradbenchError("--est-opt tau: give temperatures with --taus")
        if key not in declared:
            accepted = ", ".join(sorted(declared - {"tau"})) or "none"
            raise GradbenchError(f"{flag} {key}: no selected {what} has this option (accepted: {accepted})")
    for cls in classes:  # bad values are errors, found before any work
        for p in cls.params:
            if p.name in options:
                p.convert(f"{what} {cls.name!r}", options[p.name])


def expand_grid(
    tasks: Sequence[str],
    estimators: Sequence[str],
    taus: Sequence[float],
    seeds: Sequence[int],
    samples: int | None = None,
    task_opts: dict[str, str] | None = None,
    est_opts: dict[str, str] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Grid:
    """The cells of the sweep in grid order (task, estimator, τ, seed), and the skipped ones with their reasons.

    Every cell is validated here (as :func:`gradbench.runner.prepare` does for ``gradbench run``), so no input error
    can appear after the sweep has started.
    """
    from gradbench.registry import get_estimator, get_task
    from gradbench.runner import CellSpec, cached_exact_gradient, construct_task, prepare

    task_opts, est_opts = task_opts or {}, est_opts or {}
    task_classes = [get_task(t) for t in tasks]
    est_classes = [get_estimator(e) for e in estimators]
    size = len(task_classes) * sum(len(taus) if e.has_tau() else 1 for e in est_classes) * len(seeds)
    if size > MAX_CELLS:
        raise GradbenchError(f"the grid would have {size:,} cells, at most {MAX_CELLS:,}; split the sweep")
    _check_options_apply(task_opts, task_classes, "--task-opt", "task")
    _check_options_apply(est_opts, est_classes, "--est-opt", "estimator")

    cells: list[GridCell] = []
    skipped: list[Skip] = []
    for task_cls in task_classes:
        task = construct_task(task_cls, _applicable(task_opts, task_cls.params))
        task_params = dict(task.config)
        try:
            cached_exact_gradient(task)
        except GradbenchError as exc:  # e.g. too many configurations to enumerate
            n_cells = sum((len(taus) if e.has_tau() else 1) * len(seeds) for e in est_classes)
            skipped.append(Skip(task.describe(), "*", str(exc), (), n_cells))
            continue
        for est_cls in est_classes:
            opts = _applicable(est_opts, est_cls.params)
            missing = [p.name for p in est_cls.params if p.required and p.name != "tau" and p.name not in opts]
            points: list[float | None] = list(taus) if est_cls.has_tau() else [None]
            if missing:
                reason = f"needs --est-opt {missing[0]}=… (no default)"
                skipped.append(Skip(task.describe(), est_cls.name, reason, (), len(points) * len(seeds)))
                continue
            if est_cls.has_tau() and not taus:
                skipped.append(Skip(task.describe(), est_cls.name, "no temperatures given (--taus)", (), 0))
                continue
            bad: dict[str, list[float]] = {}
            for tau in points:
                params: dict[str, Any] = dict(opts)
                if tau is not None:
                    params["tau"] = tau
                try:
                    estimator = est_cls(**params)
                    reason = estimator.incompatibility(task)
                except GradbenchError as exc:  # e.g. a τ outside the estimator's declared range
                    reason = str(exc)
                if reason:
                    bad.setdefault(_short_reason(reason, est_cls.name), []).append(tau)
                    continue
                n = samples if samples is not None else auto_samples(task, estimator)
                label = f"{est_cls.name}{'' if tau is None else f' τ={tau:g}'} on {task.name}"
                first = CellSpec(task_cls.name, est_cls.name, task_params, params, seeds[0], n, device, dtype)
                device_text = str(prepare(first).problem.theta.device)
                unit = max(1.0, estimator.relative_cost, estimator.evals_on(task))
                cost = n * task.D * task.K * unit + 20_000  # + per-cell overhead
                for seed in seeds:
                    spec = CellSpec(task_cls.name, est_cls.name, task_params, params, seed, n, device, dtype)
                    key = (
                        task.name,
                        format_params(task.config),
                        est_cls.name,
                        format_params({k: v for k, v in estimator.config.items() if k != "tau"}),
                        "" if tau is None else _text(estimator.config["tau"]),
                        str(seed),
                        str(n),
                        dtype,
                        device_text,
                    )
                    cells.append(GridCell(len(cells), spec, key, f"{label}, seed {seed}", float(cost)))
            for reason, bad_taus in bad.items():
                concerned = tuple(t for t in bad_taus if t is not None)
                if len(bad_taus) == len(points):
                    concerned = ()  # all of them
                skipped.append(Skip(task.describe(), est_cls.name, reason, concerned, len(bad_taus) * len(seeds)))
    return Grid(cells, skipped, list(taus), list(seeds))
