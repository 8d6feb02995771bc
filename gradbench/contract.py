"""Checking the plug-in contract up front, and reporting errors in user code as one line.

Two jobs, both about code gradbench did not write:

1. **Validation before any work** (:func:`validate_task`, :func:`check_estimates`): a task's ``D``/``K``,
   ``initial_logits()``, ``f`` (one value per configuration, for one and for two batch dimensions, finite, on the
   vertices and — when relaxable — inside the simplex), ``f_grad`` (shaped like z) and ``separable_values``
   (D x K); an estimator's output (a tensor, n x D x K, θ's dtype and device). A wrong shape is never silently
   broadcast into a wrong exact gradient.
2. **One line per failure** (:func:`call`, :func:`blame`): an exception raised inside a task's or estimator's
   method becomes a :class:`PluginError` naming the file, the class and the method, e.g.
   ``plug-in task 'mytask' (my_plugin.py, class MyTask): initial_logits() is not implemented``. The original
   exception is kept as ``__cause__`` so ``gradbench --debug`` can print its traceback.

Only torch is needed, and only inside the functions.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gradbench.errors import GradbenchError

if TYPE_CHECKING:
    import torch

    from gradbench.core import Estimator, Task

R = TypeVar("R")

PROBE_ROWS = 3
"""Configurations f is probed with (rows 0 and 1: all first / all last category; row 2: a fixed mixed one)."""


class PluginError(GradbenchError):
    """An error in a task's or estimator's own code (one line; ``__cause__`` holds the original exception)."""


def _source_file(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None) or inspect.getsourcefile(cls) or "?"
    path = Path(file)
    try:
        return os.path.relpath(path) if path.is_absolute() and path.is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def is_plugin(cls: type) -> bool:
    """True for classes defined outside gradbench's own packages (plug-in files, entry points, tests)."""
    return not cls.__module__.startswith("gradbench.")


def owner(obj: Any) -> str:
    """'plug-in task 'mytask' (my_plugin.py, class MyTask)' for a task/estimator instance or class."""
    from gradbench.core import Estimator, Task

    cls = obj if isinstance(obj, type) else type(obj)
    kind = "task" if issubclass(cls, Task) else "estimator" if issubclass(cls, Estimator) else "object"
    prefix = "plug-in " if is_plugin(cls) else ""
    name = getattr(cls, "name", cls.__qualname__)
    return f"{prefix}{kind} {name!r} ({_source_file(cls)}, class {cls.__qualname__})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def blame(exc: BaseException, suspects: tuple[Any, ...], obj: Any, method: str) -> PluginError:
    """The one-line error for ``exc`` raised while calling ``obj.method``.

    The traceback is searched for the innermost frame running a method of one of ``suspects`` (the task and the
    estimator); plug-in objects are preferred over built-ins, so an error in a user's ``f`` called from a built-in
    estimator names the user's ``f``. Without such a frame the called method is named.
    """
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        self = tb.tb_frame.f_locals.get("self")
        if any(self is s for s in suspects):
            frames.append((self, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    plugin_frames = [f for f in frames if is_plugin(type(f[0]))]
    if plugin_frames or frames:
        obj, method = (plugin_frames or frames)[-1]
    if isinstance(exc, NotImplementedError) and not str(exc):
        what = f"{method}() is not implemented"
    else:
        what = f"{method}() raised {_one_line(exc)}"
    return PluginError(f"{owner(obj)}: {what}")


def call(obj: Any, method: str, *args: Any, suspects: tuple[Any, ...] = (), **kwargs: Any) -> Any:
    """``getattr(obj, method)(*args, **kwargs)``, with any exception but ours turned into one :class:`PluginError`."""
    try:
        return getattr(obj, method)(*args, **kwargs)
    except GradbenchError:
        raise
    except Exception as exc:
        raise blame(exc, suspects or (obj,), obj, method) from exc


def guarded(suspects: tuple[Any, ...], obj: Any, method: str, work: Callable[[], R]) -> R:
    """Run ``work()`` (which calls user code, e.g. enumeration calling ``task.f``) with :func:`blame` on failure."""
    try:
        return work()
    except GradbenchError:
        raise
    except Exception as exc:
        raise blame(exc, suspects, obj, method) from exc


def _describe(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")


def _expect_tensor(task: Any, method: str, value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    import torch

    where = f"{owner(task)}: {method}"
    if not isinstance(value, torch.Tensor):
        raise PluginError(f"{where} returned {_describe(value)}, expected a torch.Tensor of shape {shape} ({what})")
    if tuple(value.shape) != shape:
        raise PluginError(f"{where} returned shape {tuple(value.shape)}, expected {shape} ({what})")
    if value.dtype == torch.bool or value.is_complex():
        raise PluginError(f"{where} returned dtype {value.dtype}, expected real numbers")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise PluginError(f"{where} returned non-finite values (nan or inf) ({what})")
    return value


def probe_configurations(D: int, K: int, rows: int = PROBE_ROWS) -> torch.Tensor:
    """rows one-hot configurations (float64, rows x D x K): all category 0, all category K − 1, then fixed mixes."""
    import torch

    gen = torch.Generator().manual_seed(12345)
    index = torch.randint(0, K, (rows, D), generator=gen)  # rows x D
    index[0], index[1] = 0, K - 1
    return torch.nn.functional.one_hot(index, K).to(torch.float64)


def probe_simplex(D: int, K: int, rows: int = PROBE_ROWS) -> torch.Tensor:
    """rows points strictly inside the simplex (float64, rows x D x K), fixed."""
    import torch

    gen = torch.Generator().manual_seed(54321)
    return torch.randn(rows, D, K, generator=gen, dtype=torch.float64).softmax(-1)


def validate_task(task: Task) -> None:
    """Check a task's contract on a few fixed configurations; raise one :class:`PluginError` naming what is wrong.

    ``f`` must return one value per configuration (shape ``...`` for z of shape ``... x D x K``) for one and two
    batch dimensions, finite; ``f_grad`` None or shaped like z; ``separable_values`` None or D x K.
    """
    for attr in ("D", "K"):
        value = getattr(task, attr, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PluginError(f"{owner(task)}: __init__() must set self.{attr} to a positive int, got {value!r}")
    D, K = task.D, task.K
    if getattr(task, "family", "categorical") != "categorical":
        return _validate_real_task(task)
    if K < 2:
        raise PluginError(f"{owner(task)}: K must be at least 2 (categories per variable), got {K}")
    theta = call(task, "initial_logits")
    _expect_tensor(task, "initial_logits()", theta, (D, K), "the logits θ, D x K")
    if not theta.is_floating_point():
        raise PluginError(f"{owner(task)}: initial_logits() returned dtype {theta.dtype}, expected a float dtype")
    points = [("one-hot", probe_configurations(D, K))]
    if task.relaxable:
        points.append(("simplex", probe_simplex(D, K)))
    for kind, z in points:
        for batch in (z, z[None].expand(2, *z.shape)):  # ... x D x K with one and with two batch dimensions
            shape = tuple(batch.shape[:-2])
            value = call(task, "f", batch.clone())
            _expect_tensor(
                task, "f()", value, shape, f"one value per {kind} configuration, for z of shape {tuple(batch.shape)}"
            )
        grad = call(task, "f_grad", z.clone())
        if grad is not None:
            _expect_tensor(task, "f_grad()", grad, tuple(z.shape), f"∂f/∂z shaped like z, on {kind} z")
    h = call(task, "separable_values")
    if h is not None:
        _expect_tensor(task, "separable_values()", h, (D, K), "h[d, k] = h_d(e_k), D x K")


def _validate_real_task(task: Task) -> None:
    """A task with real latents (Gaussian family): θ D x P (P = K ≥ 1); f maps x of shape ... x D to shape ...,
    checked on fixed real points with one and two batch dimensions; ``f_grad`` None or shaped like x."""
    import torch

    D, K = task.D, task.K
    theta = call(task, "initial_logits")
    _expect_tensor(task, "initial_logits()", theta, (D, K), "the parameters θ, D x P")
    x = torch.randn(PROBE_ROWS, D, generator=torch.Generator().manual_seed(2468), dtype=torch.float64)
    for batch in (x, x[None].expand(2, *x.shape)):
        value = call(task, "f", batch.clone())
        _expect_tensor(
            task, "f()", value, tuple(batch.shape[:-1]), f"one value per point x of shape {tuple(batch.shape)}"
        )
    grad = call(task, "f_grad", x.clone())
    if grad is not None:
        _expect_tensor(task, "f_grad()", grad, tuple(x.shape), "∂f/∂x shaped like x")


def check_estimates(estimator: Estimator, value: Any, n: int, theta: torch.Tensor) -> torch.Tensor:
    """The output of ``estimate()``: a tensor of shape n x D x K in θ's dtype, on θ's device."""
    import torch

    expected = (n, *theta.shape)
    where = f"{owner(estimator)}: estimate()"
    if not isinstance(value, torch.Tensor):
        raise PluginError(
            f"{where} returned {_describe(value)}, expected a torch.Tensor of shape {expected} (n x D x K)"
        )
    if tuple(value.shape) != expected:
        raise PluginError(f"{where} returned shape {tuple(value.shape)}, expected {expected} (n x D x K)")
    if value.dtype != theta.dtype:
        raise PluginError(f"{where} returned dtype {value.dtype}, expected {theta.dtype} (problem.theta's dtype)")
    if value.device != theta.device:
        raise PluginError(f"{where} returned a tensor on {value.device}, expected {theta.device} (problem.theta's)")
    return value
