"""The grid of a sweep: parse its axes, expand tasks × estimators × temperatures × seeds into cells, in grid order.

Grid. The grid is tasks × estimators × temperatures × seeds, expanded in that order (the *grid order*):

- an estimator without a temperature gets one cell per (task, seed), not one per τ;
- a pair that cannot run (the estimator needs a relaxation the task lacks, binary-only on K > 2, a τ outside the
  estimator's declared range, a required hyper-parameter not given, a task too large to enumerate) is *skipped*
  with its reason, reported in the summary; it is not an error;
- ``--task-opt``/``--est-opt`` apply to every selected task/estimator that declares that option (a list or range
  of values: one variant per value; ``--vary``: one numeric option over a range, see :func:`expand_grid`); other
  hyper-parameters take their defaults;
- ``--samples auto`` picks, per (task, estimator), the largest power of two n with n · D · K · c ≤
  :data:`AUTO_BUDGET` (c = ``Estimator.relative_cost``), clamped to [:data:`AUTO_MIN`, :data:`AUTO_MAX`]: a
  cell's cost stays about constant whatever the task's size, so the default grid's time is bounded by its number
  of cells.

Running a grid and writing its CSV is :mod:`gradbench.sweep`'s job.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def parse_values(text: str, flag: str) -> list[str]:
    """One option's values: '2' (one value), '2,4,8' (a list) or a range of numbers 'LOW:HIGH:COUNT' (linear) /
    'LOW:HIGH:COUNT:log' (log-spaced; LOW, HIGH > 0). Range points are rounded to 6 significant digits, and the
    ends are LOW and HIGH as typed; values stay text (the option's declaration converts and checks them)."""
    text = text.strip()
    if ":" not in text:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise GradbenchError(f"{flag}: no value given")
        if len(set(values)) != len(values):
            raise GradbenchError(f"{flag}: a value is repeated")
        return values
    parts = text.split(":")
    log = len(parts) == 4 and parts[3].strip() == "log"
    if len(parts) not in (3, 4) or (len(parts) == 4 and not log):
        raise GradbenchError(f"{flag}: a range is LOW:HIGH:COUNT (linear) or LOW:HIGH:COUNT:log, got {text!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise GradbenchError(f"{flag}: LOW and HIGH of {text!r} must be numbers") from None
    try:
        count = int(parts[2])
    except ValueError:
        raise GradbenchError(f"{flag}: COUNT must be an integer, got {parts[2]!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high or count < 2:
        raise GradbenchError(f"{flag}: a range needs finite LOW < HIGH and COUNT ≥ 2, got {text!r}")
    if log and low <= 0:
        raise GradbenchError(f"{flag}: a log range needs LOW > 0, got {text!r}")
    if log:
        step = (math.log(high) - math.log(low)) / (count - 1)
        points = [math.exp(math.log(low) + i * step) for i in range(count)]
    else:
        points = [low + (high - low) * i / (count - 1) for i in range(count)]
    values = [parts[0].strip()] + [f"{round_sig(x, 6):.6g}" for x in points[1:-1]] + [parts[1].strip()]
    if len(set(values)) != count:
        raise GradbenchError(f"{flag}: too many points for the range {text!r} at 6 significant digits")
    return values


def option_lists(options: Mapping[str, str | Sequence[str]] | None, flag: str) -> dict[str, list[str]]:
    """``{key: text or values}`` -> ``{key: values}``; a text is parsed by :func:`parse_values`."""
    return {
        k: parse_values(v, f"{flag} {k}") if isinstance(v, str) else [str(x) for x in v]
        for k, v in (options or {}).items()
    }


def route_vary(
    vary: Mapping[str, str], task_classes: Sequence[type], est_classes: Sequence[type]
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[float] | None]:
    """Send each ``--vary KEY=RANGE`` to the tasks or the estimators that declare KEY (``tau``: the temperatures).

    Returns (task option lists, estimator option lists, temperatures or None). KEY must be a numeric option of the
    selected tasks or of the selected estimators, not of both."""
    task_opts: dict[str, list[str]] = {}
    est_opts: dict[str, list[str]] = {}
    taus = None
    for key, text in vary.items():
        flag = f"--vary {key}"
        values = parse_values(text, flag)
        if key == "tau":
            taus = sorted({_float(v, flag) for v in values})
            continue
        in_tasks = [p for c in task_classes for p in c.params if p.name == key]
        in_ests = [p for c in est_classes for p in c.params if p.name == key]
        if in_tasks and in_ests:
            raise GradbenchError(f"{flag}: both a task and an estimator declare {key!r}; use --task-opt/--est-opt")
        declared = in_tasks or in_ests
        if not declared:
            names = sorted({p.name for c in (*task_classes, *est_classes) for p in c.params if p.kind in (int, float)})
            raise GradbenchError(f"{flag}: no selected task or estimator has this option (numeric: {', '.join(names)})")
        if any(p.kind not in (int, float) for p in declared):
            raise GradbenchError(f"{flag}: {key!r} is not a numeric option (give a list with --task-opt/--est-opt)")
        (task_opts if in_tasks else est_opts)[key] = values
    return task_opts, est_opts, taus


def _applicable(options: dict[str, list[str]], params: Sequence[Any]) -> list[dict[str, str]]:
    """Every combination (cartesian product, in the order given) of the options that ``params`` declares."""
    names = {p.name for p in params}
    keys = [k for k in options if k in names]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(options[k] for k in keys))]


def _check_options_apply(options: dict[str, list[str]], classes: Iterable[type], flag: str, what: str) -> None:
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
            for value in options.get(p.name, ()):
                p.convert(f"{what} {cls.name!r}", value)


def _varied(combo: dict[str, str], options: dict[str, list[str]]) -> str:
    """The options of ``combo`` that take several values in the sweep, as ' k=2 m=4' (for labels)."""
    return "".join(f" {k}={v}" for k, v in combo.items() if len(options[k]) > 1)


def expand_grid(
    tasks: Sequence[str],
    estimators: Sequence[str],
    taus: Sequence[float],
    seeds: Sequence[int],
    samples: int | None = None,
    task_opts: Mapping[str, str | Sequence[str]] | None = None,
    est_opts: Mapping[str, str | Sequence[str]] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    vary: Mapping[str, str] | None = None,
) -> Grid:
    """The cells of the sweep in grid order (task, task options, estimator, its options, τ, seed), and the skipped
    ones with their reasons.

    An option's value may be a list or a range (:func:`parse_values`): every combination of the values of the
    options a task (an estimator) declares gives one task (estimator) of the grid, e.g. ``est_opts={"m": "2,4,8"}``
    runs three RLOO variants. ``vary`` (``--vary KEY=LOW:HIGH:COUNT[:log]``) is the same for one numeric option,
    routed to whichever side declares it (``tau``: replaces ``taus``). Every cell is validated here (as
    :func:`gradbench.runner.prepare` does for ``gradbench run``), so no input error can appear after the sweep has
    started.
    """
    from gradbench.registry import get_estimator, get_task
    from gradbench.runner import cached_exact_gradient, construct_task

    task_lists, est_lists = option_lists(task_opts, "--task-opt"), option_lists(est_opts, "--est-opt")
    task_classes = [get_task(t) for t in tasks]
    est_classes = [get_estimator(e) for e in estimators]
    if vary:
        vary_tasks, vary_ests, vary_taus = route_vary(vary, task_classes, est_classes)
        for key in [*vary_tasks, *vary_ests]:
            if key in task_lists or key in est_lists:
                raise GradbenchError(f"--vary {key}: also given with --task-opt/--est-opt")
        task_lists, est_lists = {**task_lists, **vary_tasks}, {**est_lists, **vary_ests}
        taus = vary_taus if vary_taus is not None else taus
    n_est = sum((len(taus) if e.has_tau() else 1) * max(1, len(_applicable(est_lists, e.params))) for e in est_classes)
    n_task = sum(max(1, len(_applicable(task_lists, t.params))) for t in task_classes)
    size = n_task * n_est * len(seeds)
    if size > MAX_CELLS:
        raise GradbenchError(f"the grid would have {size:,} cells, at most {MAX_CELLS:,}; split the sweep")
    _check_options_apply(task_lists, task_classes, "--task-opt", "task")
    _check_options_apply(est_lists, est_classes, "--est-opt", "estimator")

    cells: list[GridCell] = []
    skips = _Skips()
    for task_cls in task_classes:
        variants = _applicable(task_lists, task_cls.params)
        for task_combo in variants:
            task = construct_task(task_cls, task_combo)
            try:
                cached_exact_gradient(task)
            except GradbenchError as exc:  # e.g. too many configurations to enumerate
                n_cells = sum(
                    (len(taus) if e.has_tau() else 1) * len(seeds) * len(_applicable(est_lists, e.params))
                    for e in est_classes
                )
                skips.add(task.describe(), "*", str(exc), None, n_cells)
                continue
            # one skip line per task, not per value of a varied task option
            where = (task.describe() if len(variants) == 1 else task.name, task.name + _varied(task_combo, task_lists))
            for est_cls in est_classes:
                for opts in _applicable(est_lists, est_cls.params):
                    pair = _Pair(task, where, est_cls, opts, _varied(opts, est_lists))
                    _expand_pair(pair, taus, seeds, samples, device, dtype, cells, skips)
    return Grid(cells, skips.entries(), list(taus), list(seeds))


@dataclass
class _Pair:
    task: Task
    where: tuple[str, str]  # (task text for skip lines, task text for cell labels)
    est_cls: type[Estimator]
    opts: dict[str, str]
    opts_label: str  # the estimator's varied options, ' m=4'


class _Skips:
    """Skipped cells, one entry per (task, estimator, reason); the τ concerned, or all of them."""

    def __init__(self) -> None:
        self._bad: dict[tuple[str, str, str], tuple[list[float | None], int]] = {}
        self._points: dict[tuple[str, str], int] = {}  # τ points (None: no τ) tried per (task, estimator)

    def tried(self, task: str, estimator: str) -> None:
        self._points[(task, estimator)] = self._points.get((task, estimator), 0) + 1

    def add(self, task: str, estimator: str, reason: str, tau: float | None | str, cells: int) -> None:
        """``tau``: the point concerned (None: an estimator without τ), or 'all' / None with cells for every one."""
        taus, n = self._bad.get((task, estimator, reason), ([], 0))
        self._bad[(task, estimator, reason)] = (taus + ([] if tau == "all" else [tau]), n + cells)

    def entries(self) -> list[Skip]:
        out = []
        for (task, estimator, reason), (taus, cells) in self._bad.items():
            concerned = tuple(dict.fromkeys(t for t in taus if t is not None and t != "all"))
            if len(taus) >= self._points.get((task, estimator), 0):
                concerned = ()  # all of them (or none apply)
            out.append(Skip(task, estimator, reason, concerned, cells))
        return out


def _expand_pair(pair: _Pair, taus, seeds, samples, device, dtype, cells: list[GridCell], skips: _Skips) -> None:
    """The cells of one (task, estimator with its options) pair, appended to ``cells``; what cannot run to ``skips``."""
    from gradbench.runner import CellSpec, prepare

    task, est_cls, opts = pair.task, pair.est_cls, pair.opts
    skip_text, label_text = pair.where
    missing = [p.name for p in est_cls.params if p.required and p.name != "tau" and p.name not in opts]
    points: list[float | None] = list(taus) if est_cls.has_tau() else [None]
    if missing:
        skips.add(
            skip_text, est_cls.name, f"needs --est-opt {missing[0]}=… (no default)", "all", len(points) * len(seeds)
        )
        return
    if est_cls.has_tau() and not taus:
        skips.add(skip_text, est_cls.name, "no temperatures given (--taus)", "all", 0)
        return
    task_params = dict(task.config)
    for tau in points:
        skips.tried(skip_text, est_cls.name)
        params: dict[str, Any] = dict(opts)
        if tau is not None:
            params["tau"] = tau
        try:
            estimator = est_cls(**params)
            reason = estimator.incompatibility(task)
        except GradbenchError as exc:  # e.g. a τ outside the estimator's declared range
            reason = str(exc)
        if reason:
            skips.add(skip_text, est_cls.name, _short_reason(reason, est_cls.name), tau, len(seeds))
            continue
        n = samples if samples is not None else auto_samples(task, estimator)
        label = f"{est_cls.name}{pair.opts_label}{'' if tau is None else f' τ={tau:g}'} on {label_text}"
        first = CellSpec(task.name, est_cls.name, task_params, params, seeds[0], n, device, dtype)
        device_text = str(prepare(first).problem.theta.device)
        unit = max(1.0, estimator.relative_cost, estimator.evals_on(task))
        cost = n * task.D * task.K * unit + 20_000  # + per-cell overhead
        for seed in seeds:
            spec = CellSpec(task.name, est_cls.name, task_params, params, seed, n, device, dtype)
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
