"""``gradbench train``: optimise with each estimator's gradient, and measure along the way against the exact one.

A *run* is (task, estimator with its hyper-parameters and τ, seed) under shared :class:`TrainSettings`. Each step:

1. the trainee hands out a :class:`~gradbench.core.Problem` at the current parameters (toys: θ itself; model tasks:
   θ = the encoder's logits of a mini-batch of ``images`` training images, see :class:`ModelTrainee`);
2. the estimator draws ``batch_estimates`` = M estimates through the unchanged contract
   (``estimate(problem, rng)``, one block of M from a training stream seeded from the run's seed, block = step), and
   their mean ĝ (float64) is the gradient w.r.t. θ;
3. the optimizer (Adam or SGD) steps on the trained parameters (toys: θ; model tasks: ĝ back-propagated through the
   encoder, plus the rules of :class:`ModelTrainee` for the KL term and the decoder).

Every ``eval_every`` steps (and after the last step) one row is recorded: the exact objective (toys: E f at θ;
model tasks: exact −ELBO and −log p(x) on the held-out digits, by enumeration), and the estimator's gradient quality
at the current parameters against the exact gradient, measured by :func:`gradbench.runner.measure` and
:func:`gradbench.stats.compute_metrics` — the same code and the same metric columns as ``gradbench run`` — with
``eval_samples`` estimates from a stream of their own (a fresh estimator instance, so the evaluation never touches
the training state). Also: the step, f-evaluations spent on training so far (M × draws per estimate × steps), the
training and evaluation seconds, and the temperature in force.

Temperature: constant, or the exponential annealing of Jang, Gu & Poole (2017), "Categorical reparameterization
with Gumbel-Softmax", ICLR: τ_t = max(τ_min, τ₀ exp(−r t)) (they update it every 1,000 steps with r ∈ {1e-5, 1e-4},
τ_min = 0.5; here every step). The estimator is rebuilt with τ_t when it changes.

Divergence: a non-finite gradient, parameter or objective stops that run; its last row has status ``diverged`` and
the other runs continue. Files: a run's rows are appended in one write when it ends (a crash loses at most the runs
in flight); ``--resume`` runs only the runs not yet in the file; the finished file is rewritten in run order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gradbench.core import format_params
from gradbench.errors import GradbenchError
from gradbench.results import METRIC_COLUMNS, check_writable, format_rows, read_header, write_atomic

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "exponential")
TRAIN_STREAM = 1 << 61
"""Block-seed offset of the training draws' seed (evaluation and decoder streams use others)."""
EVAL_STREAM = 1 << 60
DECODER_STREAM = 1 << 59
BATCH_STREAM = 1 << 58

RUN_COLUMNS = (
    "task", "task_params", "estimator", "estimator_params", "tau", "seed",
    "optimizer", "lr", "batch_estimates", "steps", "eval_every", "schedule", "anneal_rate", "tau_min",
)  # fmt: skip
"""What identifies a training run (with ``n_samples`` and ``dtype``)."""
TRAIN_COLUMNS = (
    *RUN_COLUMNS,
    "step", "status", "tau_now", "f_evals", "train_seconds", "eval_seconds", "objective", "nll",
    "n_samples", "draws_per_estimate", "D", "K", "exact_value", *METRIC_COLUMNS,
    "dtype", "threads", "gradbench_version", "torch_version", "timestamp",
)  # fmt: skip
"""Columns of a ``gradbench train`` CSV, one row per evaluation (documented in docs/training.md)."""
KEY_COLUMNS = (*RUN_COLUMNS, "n_samples", "dtype")


@dataclass(frozen=True)
class TrainSettings:
    """What every run of one ``gradbench train`` shares."""

    optimizer: str = "adam"
    lr: float = 0.01
    steps: int = 1000
    batch_estimates: int = 1
    eval_every: int = 100
    eval_samples: int = 1024
    schedule: str = "constant"
    anneal_rate: float = 1e-4
    tau_min: float = 0.5
    dtype: str = "float32"

    def validate(self) -> None:
        """Every bad value, as one line, before any work."""
        if self.optimizer not in OPTIMIZERS:
            raise GradbenchError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not (isinstance(self.lr, float | int) and math.isfinite(self.lr) and self.lr > 0):
            raise GradbenchError(f"--lr must be a finite number > 0, got {self.lr!r}")
        if self.steps < 1:
            raise GradbenchError(f"--steps must be at least 1, got {self.steps}")
        if self.eval_every < 1 or self.eval_every > self.steps:
            raise GradbenchError(f"--eval-every must be between 1 and --steps ({self.steps}), got {self.eval_every}")
        if self.batch_estimates < 1:
            raise GradbenchError(f"--batch-estimates must be at least 1, got {self.batch_estimates}")
        if self.eval_samples < 2:
            raise GradbenchError(f"--eval-samples must be at least 2 (variance needs two), got {self.eval_samples}")
        if self.schedule not in SCHEDULES:
            raise GradbenchError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not (math.isfinite(self.anneal_rate) and self.anneal_rate >= 0):
            raise GradbenchError(f"--anneal-rate must be a finite number ≥ 0, got {self.anneal_rate!r}")
        if not (math.isfinite(self.tau_min) and self.tau_min > 0):
            raise GradbenchError(f"--tau-min must be a finite number > 0, got {self.tau_min!r}")
        if self.dtype not in ("float32", "float64"):
            raise GradbenchError(f"unknown dtype {self.dtype!r} (use float32 or float64)")

    def tau_at(self, tau0: float, step: int) -> float:
        """The temperature in force at ``step``: constant, or max(τ_min, τ₀ exp(−r·step)) (Jang et al. 2017)."""
        if self.schedule == "constant":
            return tau0
        return max(self.tau_min, tau0 * math.exp(-self.anneal_rate * step))


@dataclass(frozen=True)
class RunSpec:
    """One training run (picklable: it travels to worker processes)."""

    task: str
    task_params: dict[str, Any]
    estimator: str
    estimator_params: dict[str, Any]  # τ included (the initial τ under a schedule)
    seed: int
    settings: TrainSettings
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainRun:
    index: int
    spec: RunSpec
    key: tuple[str, ...]
    label: str
    cost: float = 1.0  # steps, for the progress bar


@dataclass
class TrainOutcome:
    total: int
    already: int
    done: int = 0
    diverged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def run_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_text(row[c]) for c in KEY_COLUMNS)


# ---------------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------------


def plan_runs(
    task: str,
    estimators: Sequence[str],
    taus: Sequence[float],
    seeds: Sequence[int],
    settings: TrainSettings,
    task_opts: dict[str, str] | None = None,
    est_opts: dict[str, str] | None = None,
    strict: bool = True,
) -> list[TrainRun]:
    """The runs in order (estimator, τ, seed), every one validated (the grid of :func:`gradbench.sweep.expand_grid`,
    whose checks it reuses). With ``strict`` an estimator that cannot run on the task is an error, not a skip."""
    from gradbench.sweep import expand_grid

    settings.validate()
    grid = expand_grid(
        tasks=[task],
        estimators=estimators,
        taus=taus,
        seeds=seeds,
        samples=settings.eval_samples,
        task_opts=task_opts,
        est_opts=est_opts,
        dtype=settings.dtype,
    )
    if grid.skipped and (strict or not grid.cells):
        s = grid.skipped[0]
        who = "every estimator" if s.estimator == "*" else f"estimator {s.estimator!r}"
        raise GradbenchError(f"{who} cannot be trained on task {s.task}: {s.reason}")
    runs = []
    for cell in grid.cells:
        spec = RunSpec(
            task=cell.spec.task,
            task_params=dict(cell.spec.task_params),
            estimator=cell.spec.estimator,
            estimator_params=dict(cell.spec.estimator_params),
            seed=cell.spec.seed,
            settings=settings,
        )
        row = _context(spec, _resolved_estimator_config(spec))
        runs.append(TrainRun(len(runs), spec, run_key(row), cell.label, float(settings.steps)))
    return runs


def _resolved_estimator_config(spec: RunSpec) -> dict[str, Any]:
    from gradbench.runner import build_estimator

    return dict(build_estimator(spec.estimator, dict(spec.estimator_params)).config)


def _context(spec: RunSpec, est_config: dict[str, Any]) -> dict[str, Any]:
    from gradbench.runner import build_task

    s = spec.settings
    task = build_task(spec.task, spec.task_params)
    return {
        "task": spec.task,
        "task_params": format_params(task.config),
        "estimator": spec.estimator,
        "estimator_params": format_params({k: v for k, v in est_config.items() if k != "tau"}),
        "tau": est_config.get("tau", ""),
        "seed": spec.seed,
        "optimizer": s.optimizer,
        "lr": float(s.lr),
        "batch_estimates": s.batch_estimates,
        "steps": s.steps,
        "eval_every": s.eval_every,
        "schedule": s.schedule,
        "anneal_rate": float(s.anneal_rate) if s.schedule != "constant" else "",
        "tau_min": float(s.tau_min) if s.schedule != "constant" else "",
        "n_samples": s.eval_samples,
        "dtype": s.dtype,
    }


# ---------------------------------------------------------------------------------------------------------------
# Trainees: what is optimised
# ---------------------------------------------------------------------------------------------------------------


class ToyTrainee:
    """A toy task: the trained parameters are θ itself (float64, D x K)."""

    def __init__(self, task, seed: int, batch: int):
        import torch

        self.task = task
        self.theta = task.initial_logits().detach().to(torch.float64).clone().requires_grad_(True)  # D x K

    def parameters(self) -> list:
        return [self.theta]

    def step_problem(self, step: int, dtype, needs_exact: bool):
        """(problem at the current parameters, θ with its graph to the trained parameters, extra loss)."""
        return self.problem(dtype, needs_exact), self.theta, None

    def problem(self, dtype, needs_exact: bool = True):
        import torch

        from gradbench.core import Problem
        from gradbench.exact import exact_gradient

        theta = self.theta.detach()
        if needs_exact:
            value, grad = exact_gradient(self.task, theta)
        else:
            value, grad = math.nan, torch.full_like(theta, math.nan)
        return Problem(task=self.task, theta=theta.to(dtype), exact_grad=grad, exact_value=value)

    def evaluate(self, dtype) -> tuple[float, float, Any]:
        """(objective, nll, problem for the gradient-quality measurement)."""
        problem = self.problem(dtype)
        return problem.exact_value, math.nan, problem


class ModelTrainee:
    """A digits model task: the trained parameters are the encoder's and the decoder's weights (float64).

    Each step draws ``images`` training images (uniformly, with replacement, from a stream seeded by the run's
    seed); θ = encoder logits of those images. The loss is the mean −ELBO per image, and its gradient is assembled
    from three parts, the first one being the only one that differs between estimators:

    - E_q[f] w.r.t. θ: the estimator's ĝ, back-propagated through the encoder (surrogate Σ θ·ĝ);
    - KL(q_θ ‖ uniform) w.r.t. θ: exact (closed form), for every estimator alike;
    - E_q[f] w.r.t. the decoder φ: ∇_φ of the mean of f_φ(z_m) over M = ``batch_estimates`` draws z_m ~ q_θ from a
      stream of their own, for every estimator alike. Papers differ here (most reuse the estimator's own draws, which
      ties the decoder's noise to the estimator's sampling scheme, and relaxation estimators then train the decoder
      on relaxed codes it never sees at test time); independent hard draws keep the decoder's gradient unbiased and
      identical in law for all estimators, so training curves differ only through the encoder gradient.

    Evaluation: exact mean −ELBO and −log p(x) (nats per image) on the 297 held-out digits by enumeration; the
    gradient quality is measured on the task's fixed ``images`` (the first training images) at the current weights.
    """

    def __init__(self, task, seed: int, batch: int):
        import torch

        from gradbench.models import data, vae
        from gradbench.rng import block_seed

        self.task, self.vae = task, vae
        self.weights = {k: v.detach().clone().requires_grad_(True) for k, v in task.weights.items()}
        self.x_train = data.digits("train")
        self.x_held = data.digits("held-out")
        self.codes = vae.all_codes(task.L, task.K)
        self.generator = torch.Generator().manual_seed(block_seed(seed, BATCH_STREAM))
        self.decoder_seed = block_seed(seed, DECODER_STREAM)
        self.batch = batch  # draws z ~ q for the decoder's gradient (= batch_estimates)

    def parameters(self) -> list:
        return list(self.weights.values())

    def _problem(self, task, theta, dtype, needs_exact: bool):
        import torch

        from gradbench.core import Problem
        from gradbench.exact import exact_gradient

        flat = theta.detach().reshape(task.D, task.K)
        if needs_exact:
            value, grad = exact_gradient(task, flat)
        else:
            value, grad = math.nan, torch.full_like(flat, math.nan)
        return Problem(task=task, theta=flat.to(dtype), exact_grad=grad, exact_value=value)

    def step_problem(self, step: int, dtype, needs_exact: bool):
        import torch

        from gradbench.estimators.reinforce import one_hot
        from gradbench.rng import BlockRng

        task, vae = self.task, self.vae
        idx = torch.randint(self.x_train.shape[0], (task.images,), generator=self.generator)
        x = self.x_train[idx]  # I x 64
        with torch.enable_grad():
            theta = vae.encode(self.weights, x, task.L, task.K)  # I x L x K
        bound = task.bound(self.weights, x)
        problem = self._problem(bound, theta, dtype, needs_exact)
        probs = theta.detach().reshape(task.D, task.K).softmax(-1)  # D x K
        m = self.batch
        z = one_hot(BlockRng(self.decoder_seed, step, [m]).categorical(probs), task.K, torch.float64)  # M x D x K
        with torch.enable_grad():
            codes = z.reshape(m, task.images, task.L * task.K)  # M x I x L·K
            decoder = vae.reconstruction_nll(self.weights, codes, x).sum(-1).mean()  # mean over the M draws
            extra = vae.kl_uniform(theta).sum() + decoder
        return problem, theta.reshape(task.D, task.K), extra

    def evaluate(self, dtype) -> tuple[float, float, Any]:
        import torch

        task, vae = self.task, self.vae
        weights = {k: v.detach() for k, v in self.weights.items()}
        with torch.no_grad():
            neg_elbo, nll = vae.exact_objectives(weights, self.x_held, task.L, task.K, self.codes)
        bound = task.bound(weights, task.x)
        theta = vae.encode(weights, task.x, task.L, task.K)
        return float(neg_elbo.mean()), float(nll.mean()), self._problem(bound, theta, dtype, True)


def make_trainee(task, seed: int, batch: int):
    from gradbench.models.task import DigitsTask

    if isinstance(task, DigitsTask):
        return ModelTrainee(task, seed, batch)
    return ToyTrainee(task, seed, batch)


# ---------------------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------------------


def _finite(*tensors) -> bool:
    import torch

    return all(bool(torch.isfinite(t).all()) for t in tensors)


def train_run(spec: RunSpec, on_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Train one run; return its rows (one per evaluation; the last one says ``diverged`` when it did)."""
    import torch

    import gradbench
    from gradbench.rng import BlockRng, block_seed, block_size_for
    from gradbench.runner import CHUNK_ELEMENTS, DTYPES, PreparedCell, build_estimator, build_task, measure
    from gradbench.stats import compute_metrics

    s = spec.settings
    dtype = DTYPES[s.dtype]
    task = build_task(spec.task, spec.task_params)
    est_params = dict(spec.estimator_params)
    tau0 = est_params.get("tau")
    estimator = build_estimator(spec.estimator, est_params)
    context = _context(spec, estimator.config)
    trainee = make_trainee(task, spec.seed, s.batch_estimates)
    params = trainee.parameters()
    optimizer = (torch.optim.Adam if s.optimizer == "adam" else torch.optim.SGD)(params, lr=s.lr)
    train_seed = block_seed(spec.seed, TRAIN_STREAM)
    needs_exact = estimator.uses_exact_gradient
    rows: list[dict[str, Any]] = []
    train_seconds = eval_seconds = 0.0
    f_evals = 0
    tau_now = tau0
    setup_done = False

    def record(step: int, status: str) -> bool:
        """Evaluate at the current parameters; False when the objective is not finite (then status diverged)."""
        nonlocal eval_seconds
        t0 = time.perf_counter()
        objective, nll, problem = trainee.evaluate(dtype)
        metrics: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, math.nan)
        ok = math.isfinite(objective) and status == "ok"
        if ok:
            evaluator = build_estimator(spec.estimator, {**est_params, **({"tau": tau_now} if tau0 else {})})
            P = problem.theta.numel()
            block = block_size_for(P)
            cell = PreparedCell(None, problem.task, evaluator, problem, block, max(1, CHUNK_ELEMENTS // (P * block)))
            moments, _ = measure(cell, block_seed(spec.seed, EVAL_STREAM + step), s.eval_samples)
            exact_flat = problem.exact_grad.reshape(-1)
            eps = torch.finfo(dtype).eps
            metrics = {
                **vars(compute_metrics(moments, exact_flat, eps, abs(problem.exact_value))),
                "nonfinite_fraction": moments.nonfinite / s.eval_samples,  # left out of the metrics (as in run)
            }
        eval_seconds += time.perf_counter() - t0
        rows.append(
            {
                **context,
                "step": step,
                "status": status if ok or status != "ok" else "diverged",
                "tau_now": "" if tau_now is None else float(tau_now),
                "f_evals": f_evals,
                "train_seconds": train_seconds,
                "eval_seconds": eval_seconds,
                "objective": objective,
                "nll": nll,
                "draws_per_estimate": estimator.evals_on(task),
                "D": problem.theta.shape[0],
                "K": problem.theta.shape[1],
                "exact_value": problem.exact_value,
                **metrics,
                "threads": torch.get_num_threads(),
                "gradbench_version": gradbench.__version__,
                "torch_version": torch.__version__,
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        return rows[-1]["status"] == "ok"

    for step in range(s.steps):
        if step % s.eval_every == 0 and not record(step, "ok"):
            return rows
        t0 = time.perf_counter()
        if tau0 is not None:
            tau_t = s.tau_at(float(tau0), step)
            if tau_t != tau_now:
                tau_now = tau_t
                estimator = build_estimator(spec.estimator, {**est_params, "tau": tau_now})
                setup_done = False
        problem, theta, extra = trainee.step_problem(step, dtype, needs_exact)
        if not setup_done:  # once per estimator instance (RELAX trains its control variate here, then freezes it)
            estimator.setup(problem, spec.seed)
            setup_done = True
        estimates = estimator.estimate(problem, BlockRng(train_seed, step, [s.batch_estimates]))  # M x D x K
        g = estimates.to(torch.float64).mean(0)  # D x K
        f_evals += s.batch_estimates * estimator.evals_on(task)
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            surrogate = (theta * g).sum()
            if extra is not None:
                surrogate = surrogate + extra
            scale = 1.0 / getattr(task, "images", 1)
            (surrogate * scale).backward()
        diverged = not _finite(g) or not all(_finite(p.grad) for p in params if p.grad is not None)
        if not diverged:
            optimizer.step()
            diverged = not _finite(*[p.detach() for p in params])
        train_seconds += time.perf_counter() - t0
        if on_step is not None:
            on_step(1)
        if diverged:
            record(step + 1, "diverged")
            return rows
    record(s.steps, "ok")
    return rows


def _run_one(spec: RunSpec) -> tuple[list[dict[str, Any]] | None, str | None]:
    """A run in a worker process: (rows, None) or (None, why it failed)."""
    from gradbench.sweep import _one_line

    try:
        return train_run(spec), None
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return None, _one_line(exc)


def _run_one_of(run: TrainRun) -> tuple[list[dict[str, Any]] | None, str | None]:
    """:func:`_run_one` for an executor's worker (see :mod:`gradbench.executors`)."""
    return _run_one(run.spec)


# ---------------------------------------------------------------------------------------------------------------
# Many runs, one file
# ---------------------------------------------------------------------------------------------------------------


class TrainListener:
    """Progress callbacks of :func:`run_training` (the CLI's rich display implements them)."""

    def start(self, todo: list[TrainRun]) -> None: ...

    def cell_started(self, run: TrainRun) -> None: ...

    def advance(self, steps: int) -> None: ...

    def cell_finished(self, run: TrainRun, error: str | None) -> None: ...


def read_train_rows(path: Path) -> list[dict[str, str]]:
    from gradbench.sweep import read_rows

    return read_rows(path, TRAIN_COLUMNS)


def prepare_output(path: Path, runs: list[TrainRun], resume: bool, overwrite: bool) -> tuple[list[TrainRun], int]:
    """Check ``path``; return (runs still to do, runs already complete in the file). Creates the file (header)."""
    check_writable(path, TRAIN_COLUMNS)
    rows = read_train_rows(path) if path.exists() else []
    if rows and not resume:
        if not overwrite:
            raise GradbenchError(
                f"--out {path} already holds {len(rows)} rows: add --resume to run only the missing runs, "
                "--overwrite to replace it, or choose another --out"
            )
        rows = []
    if not path.exists() or read_header(path) is None or overwrite:
        write_atomic(path, format_rows([], header=True, columns=TRAIN_COLUMNS))
    present = {run_key(r) for r in rows}
    todo = [r for r in runs if r.key not in present]
    return todo, len(runs) - len(todo)


def run_training(
    runs: list[TrainRun],
    out: Path,
    todo: list[TrainRun],
    workers: int = 1,
    threads: int = 1,
    plugins: Sequence[str] = (),
    listener: TrainListener | None = None,
) -> TrainOutcome:
    """Run ``todo`` and append each run's rows to ``out`` when it ends; at the end, rewrite ``out`` in run order."""
    import signal

    from gradbench import sweep as sw
    from gradbench.results import append_rows

    listener = listener or TrainListener()
    outcome = TrainOutcome(total=len(runs), already=len(runs) - len(todo))
    t0 = time.perf_counter()
    in_main = sw._is_main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if in_main:
        signal.signal(signal.SIGTERM, sw._raise_interrupt)

    def finish(run: TrainRun, rows: list[dict[str, Any]] | None, error: str | None) -> None:
        if rows is not None:
            append_rows(out, rows, TRAIN_COLUMNS)
            outcome.done += 1
            if rows and rows[-1]["status"] == "diverged":
                outcome.diverged.append(f"{run.label} at step {rows[-1]['step']}")
        else:
            outcome.failed.append((run.label, error or "failed"))
        if workers > 1:
            listener.advance(int(run.cost))
        listener.cell_finished(run, error)

    listener.start(todo)
    try:
        if workers <= 1:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for run in todo:
                    listener.cell_started(run)
                    try:
                        rows, error = train_run(run.spec, on_step=listener.advance), None
                    except GradbenchError as exc:
                        rows, error = None, sw._one_line(exc)
                    finish(run, rows, error)
            finally:
                torch.set_num_threads(before)
        else:
            from gradbench.executors import ExecutorOptions, open_executor

            with open_executor(ExecutorOptions("local", workers, threads), plugins) as executor:
                for done in executor.map_unordered(_run_one_of, todo, started=listener.cell_started):
                    rows, error = done.value if done.error is None else (None, done.error)
                    finish(done.item, rows, error)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        outcome.seconds = time.perf_counter() - t0
    if not outcome.interrupted:
        _sort_file(out, runs)
    return outcome


def _sort_file(path: Path, runs: list[TrainRun]) -> None:
    rows = read_train_rows(path)
    position = {r.key: r.index for r in runs}
    ordered = sorted(enumerate(rows), key=lambda ir: (position.get(run_key(ir[1]), -1), ir[0]))
    if [i for i, _ in ordered] != list(range(len(rows))):
        write_atomic(path, format_rows([r for _, r in ordered], header=True, columns=TRAIN_COLUMNS))
