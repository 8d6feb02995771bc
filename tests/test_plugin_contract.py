"""The plug-in contract is checked up front, and errors in user code are one line naming file, class and method
(issue 16's contract-validation class, issue 12 item 4). Table-driven: one broken plug-in per row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gradbench
from gradbench.contract import PluginError
from gradbench.registry import ESTIMATORS, TASKS
from gradbench.runner import CellSpec, prepare, run_cell
from tests.helpers import assert_one_line_error, registry_snapshot

PLUGINS = Path(__file__).parent / "plugins"
HERE = "tests/test_plugin_contract.py"


class GoodTask(gradbench.Task):
    """f(z) = number of ones over 3 binary variables; θ = 0."""

    name = "t-good"
    summary = "test"

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = 3, 2

    def initial_logits(self):
        return torch.zeros(3, 2, dtype=torch.float64)

    def f(self, z):
        return z[..., 1].sum(-1)


class NoLogits(GoodTask):
    name = "t-no-logits"
    initial_logits = gradbench.Task.initial_logits


class NoF(GoodTask):
    name = "t-no-f"
    f = gradbench.Task.f


class SumOverBatch(GoodTask):
    """The silent wrong answer of issue 16: one number per batch instead of one per row."""

    name = "t-sum-batch"

    def f(self, z):
        return z[..., 1].sum()


class KeepDim(GoodTask):
    name = "t-keepdim"

    def f(self, z):
        return z[..., 1].sum(-1, keepdim=True)  # ... x 1


class OneBatchDim(GoodTask):
    name = "t-one-batch-dim"

    def f(self, z):
        return z.reshape(z.shape[0], -1)[:, 1::2].sum(-1)  # breaks for two batch dimensions


class NumpyF(GoodTask):
    name = "t-numpy-f"

    def f(self, z):
        return z[..., 1].sum(-1).numpy()


class NanF(GoodTask):
    name = "t-nan-f"

    def f(self, z):
        return z[..., 1].sum(-1).log() * 0  # log 0 * 0 = nan on the all-zeros configuration


class WrongLogits(GoodTask):
    name = "t-wrong-logits"

    def initial_logits(self):
        return torch.zeros(2, 3, dtype=torch.float64)


class NumpyLogits(GoodTask):
    name = "t-numpy-logits"

    def initial_logits(self):
        return np.zeros((3, 2))


class NoD(GoodTask):
    name = "t-no-d"

    def __init__(self, **options):
        gradbench.Task.__init__(self, **options)
        self.K = 2


class BadFGrad(GoodTask):
    name = "t-bad-fgrad"

    def f_grad(self, z):
        return z[..., 1]  # ... x D, not shaped like z


class BadSeparable(GoodTask):
    name = "t-bad-separable"

    def separable_values(self):
        return torch.zeros(3, dtype=torch.float64)


class RaisesInF(GoodTask):
    name = "t-raises"

    def f(self, z):
        return self.helper(z)

    def helper(self, z):
        raise ValueError("no good")


TASK_CASES = [
    (NoLogits, "initial_logits() is not implemented"),
    (NoF, "f() is not implemented"),
    (SumOverBatch, "f() returned shape (), expected (3,)"),
    (KeepDim, "f() returned shape (3, 1), expected (3,)"),
    (OneBatchDim, "f() returned shape (2,), expected (2, 3)"),
    (NumpyF, "f() returned numpy.ndarray, expected a torch.Tensor"),
    (NanF, "f() returned non-finite values"),
    (WrongLogits, "initial_logits() returned shape (2, 3), expected (3, 2)"),
    (NumpyLogits, "initial_logits() returned numpy.ndarray"),
    (NoD, "__init__() must set self.D"),
    (BadFGrad, "f_grad() returned shape (3, 3), expected (3, 3, 2)"),
    (BadSeparable, "separable_values() returned shape (3,), expected (3, 2)"),
    (RaisesInF, "helper() raised ValueError: no good"),
]


@pytest.mark.parametrize(("cls", "message"), TASK_CASES, ids=[c.name for c, _ in TASK_CASES])
def test_a_broken_task_is_refused_up_front_naming_file_class_and_method(cls, message, monkeypatch):
    monkeypatch.setitem(TASKS, cls.name, cls)
    with pytest.raises(PluginError) as info:
        prepare(CellSpec(task=cls.name, estimator="reinforce", n_samples=10))
    text = str(info.value)
    assert text.startswith(f"plug-in task {cls.name!r} ({HERE}, class {cls.__name__}): "), text
    assert message in text, text
    assert "\n" not in text


class GoodEstimator(gradbench.Estimator):
    """g = 0."""

    name = "e-good"
    summary = family = "test"
    unbiased = False

    def estimate(self, problem, rng):
        return torch.zeros(rng.n, *problem.theta.shape, dtype=problem.theta.dtype)


class ReturnsNone(GoodEstimator):
    name = "e-none"

    def estimate(self, problem, rng):
        return None


class ReturnsNumpy(GoodEstimator):
    name = "e-numpy"

    def estimate(self, problem, rng):
        return np.zeros((rng.n, *problem.theta.shape))


class WrongShape(GoodEstimator):
    name = "e-wrong-shape"

    def estimate(self, problem, rng):
        return torch.zeros(rng.n, problem.theta.numel(), dtype=problem.theta.dtype)


class WrongDtype(GoodEstimator):
    name = "e-wrong-dtype"

    def estimate(self, problem, rng):
        return torch.zeros(rng.n, *problem.theta.shape, dtype=torch.float64)


class Raises(GoodEstimator):
    name = "e-raises"

    def estimate(self, problem, rng):
        raise RuntimeError("boom")


class NotImplementedEstimate(GoodEstimator):
    name = "e-not-implemented"
    estimate = gradbench.Estimator.estimate


class RaisesInSetup(GoodEstimator):
    name = "e-setup"

    def setup(self, problem, seed):
        raise KeyError("state")


class RaisesInInit(GoodEstimator):
    name = "e-init"

    def __init__(self, **hparams):
        raise TypeError("bad init")


ESTIMATOR_CASES = [
    (ReturnsNone, "estimate() returned NoneType, expected a torch.Tensor of shape (64, 3, 2)"),
    (ReturnsNumpy, "estimate() returned numpy.ndarray"),
    (WrongShape, "estimate() returned shape (64, 6), expected (64, 3, 2)"),
    (WrongDtype, "estimate() returned dtype torch.float64, expected torch.float32"),
    (Raises, "estimate() raised RuntimeError: boom"),
    (NotImplementedEstimate, "estimate() is not implemented"),
    (RaisesInSetup, "setup() raised KeyError: 'state'"),
    (RaisesInInit, "__init__() raised TypeError: bad init"),
]


@pytest.mark.parametrize(("cls", "message"), ESTIMATOR_CASES, ids=[c.name for c, _ in ESTIMATOR_CASES])
def test_a_broken_estimator_is_one_line_naming_file_class_and_method(cls, message, monkeypatch):
    monkeypatch.setitem(TASKS, GoodTask.name, GoodTask)
    monkeypatch.setitem(ESTIMATORS, cls.name, cls)
    with pytest.raises(PluginError) as info:
        run_cell(CellSpec(task=GoodTask.name, estimator=cls.name, n_samples=64))
    text = str(info.value)
    assert text.startswith(f"plug-in estimator {cls.name!r} ({HERE}, class {cls.__name__}): "), text
    assert message in text, text


def test_an_error_in_the_users_f_called_by_a_built_in_estimator_names_the_users_f(monkeypatch):
    class FailsLater(GoodTask):
        name = "t-fails-later"

        def f(self, z):
            if z.shape[0] > 100:  # passes the up-front probe, fails on a real chunk
                raise ArithmeticError("late")
            return super().f(z)

    monkeypatch.setitem(TASKS, FailsLater.name, FailsLater)
    with pytest.raises(PluginError, match=r"plug-in task 't-fails-later' .*class .*FailsLater\): f\(\) raised"):
        run_cell(CellSpec(task=FailsLater.name, estimator="reinforce", n_samples=1000))


def test_the_good_plug_ins_and_every_built_in_pass_the_up_front_checks(monkeypatch):
    monkeypatch.setitem(TASKS, GoodTask.name, GoodTask)
    monkeypatch.setitem(ESTIMATORS, GoodEstimator.name, GoodEstimator)
    assert run_cell(CellSpec(task=GoodTask.name, estimator=GoodEstimator.name, n_samples=64))["variance"] == 0
    for name in gradbench.registry.all_tasks():
        prepare(CellSpec(task=name, estimator="reinforce", n_samples=10))


@pytest.fixture(autouse=True)
def isolated_registry():
    with registry_snapshot():
        yield


def test_cli_prints_one_line_and_debug_shows_the_traceback(cli, tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "import gradbench\n\n@gradbench.register_task\nclass MyTask(gradbench.Task):\n    name = 'mytask'\n"
        "    summary = 'x'\n\n    def __init__(self, **o):\n        super().__init__(**o)\n"
        "        self.D, self.K = 2, 2\n"
    )
    out = tmp_path / "out.csv"
    args = ("run", "-e", "reinforce", "-t", "mytask", "--plugin", plugin, "-n", "10", "--out", out)
    result = cli(*args)
    assert_one_line_error(result, "plug-in task 'mytask'", "my_plugin.py, class MyTask", "initial_logits()")
    assert not out.exists()
    debug = cli(*args, "--debug")
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr and "NotImplementedError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("gradbench: error: plug-in task 'mytask'")


def test_a_chatty_plug_in_does_not_corrupt_json_on_stdout(cli, tmp_path):
    result = cli("run", "-e", "chatty", "--plugin", PLUGINS / "chatty.py", "-n", "100", "--format", "json",
                 "--out", tmp_path / "o.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["estimator"] == "chatty"
    assert "hello from a chatty plug-in" in result.stderr
