"""gradbench: measure gradient estimators for discrete random variables against exact gradients.

The plug-in contract (``Task``, ``Estimator``, ``Param``) lives in :mod:`gradbench.core`; the registry
(``register_task``, ``register_estimator``) in :mod:`gradbench.registry`. Both are re-exported here so a plug-in
file needs only ``import gradbench``.

The public API (:mod:`gradbench.api`: ``run``, ``sweep``, ``audit``, ``load_results``, ``load_plugin``,
``register_surrogate``) is exported lazily: ``import gradbench`` imports neither torch nor pandas.
"""

__version__ = "0.2.0"

import types as _types  # noqa: E402

from gradbench.core import Estimator, Param, Problem, Task  # noqa: E402
from gradbench.errors import GradbenchError  # noqa: E402
from gradbench.registry import register_estimator, register_task  # noqa: E402

_API = ("run", "audit", "load_results", "load_plugin", "register_surrogate")


def __getattr__(name: str):
    if name in _API:
        from gradbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'gradbench' has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    """``gradbench.sweep`` is both the module (``gradbench.sweep.expand_grid``, used internally) and the API
    function ``gradbench.sweep(...)`` -> DataFrame (:func:`gradbench.api.sweep`): importing the submodule rebinds
    the package attribute, so the module itself is made callable."""

    def __call__(self, *args, **kwargs):
        from gradbench.api import sweep

        return sweep(*args, **kwargs)


from gradbench import sweep  # noqa: E402

sweep.__class__ = _CallableModule

__all__ = [
    "Estimator",
    "GradbenchError",
    "Param",
    "Problem",
    "Task",
    "__version__",
    "audit",
    "load_plugin",
    "load_results",
    "register_estimator",
    "register_surrogate",
    "register_task",
    "run",
    "sweep",
]
