"""Helpers shared by the tests: the registry tables every generic test is parametrised over."""

from __future__ import annotations

import contextlib

import torch

from gradbench.registry import all_estimators, all_tasks, get_estimator
from gradbench.runner import CellSpec, run_cell

torch.set_num_threads(1)

ESTIMATORS = all_estimators()
TASKS = all_tasks()
TIMING_COLUMNS = {"seconds", "estimates_per_sec", "timestamp", "seconds_per_estimate", "mse_at_equal_time"}


def default_hparams(cls) -> dict:
    """Hyper-parameters for generic tests: a mid-range τ where one is required (τ = 0.5, or the estimator's lower
    bound on τ when that is higher, as for ReinMax's τ ≥ 1)."""
    if not cls.has_tau():
        return {}
    (tau,) = [p for p in cls.params if p.name == "tau"]
    return {"tau": max(0.5, tau.low or 0.0)}


def small_task_options(task: str) -> dict:
    """Small options for generic tests: a model task (one with an ``images`` option) runs on 2 images, so its
    estimates are as cheap as a toy's."""
    return {"images": 2} if any(p.name == "images" for p in TASKS[task].params) else {}


def compatible_pairs():
    """(estimator, task) names of every registered pair that can run together."""
    pairs = []
    for e_name, e_cls in ESTIMATORS.items():
        for t_name, t_cls in TASKS.items():
            if e_cls(**default_hparams(e_cls)).incompatibility(t_cls()) is None:
                pairs.append((e_name, t_name))
    return pairs


def run(task: str, estimator: str, n: int = 20_000, seed: int = 0, task_params=None, **kwargs) -> dict:
    params = kwargs.pop("estimator_params", None)
    if params is None:
        params = default_hparams(get_estimator(estimator))
    return run_cell(
        CellSpec(
            task=task,
            estimator=estimator,
            task_params={**small_task_options(task), **(task_params or {})} if task in TASKS else task_params or {},
            estimator_params=params,
            seed=seed,
            n_samples=n,
            **kwargs,
        )
    )


def without_timing(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING_COLUMNS}


def assert_one_line_error(result, *fragments: str) -> None:
    """A user error: exit 2, exactly one line on stderr naming every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradbench: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@contextlib.contextmanager
def registry_snapshot():
    """Plug-ins loaded inside the block (files, surrogates) are unregistered afterwards, so that tests running
    later (e.g. over "all" tasks) do not see them."""
    from gradbench import registry

    tables = (registry.ESTIMATORS, registry.TASKS, registry._loaded_plugins)
    saved = [dict(t) for t in tables]
    try:
        yield
    finally:
        for table, old in zip(tables, saved, strict=True):
            table.clear()
            table.update(old)


def as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT at its default, as in an interactive shell.

    A job started in the background by a non-interactive shell (``cmd &``, as CI runners and ``nohup`` do) starts
    with SIGINT ignored, and its children inherit that; Python then installs no KeyboardInterrupt handler, and the
    test's SIGINT would never arrive. Likewise a SIGINT blocked in the test process's mask is unblocked."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
