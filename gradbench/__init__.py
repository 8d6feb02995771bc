"""gradbench: measure gradient estimators for discrete random variables against exact gradients.

The plug-in contract (``Task``, ``Estimator``, ``Param``) lives in :mod:`gradbench.core`; the registry
(``register_task``, ``register_estimator``) in :mod:`gradbench.registry`. Both are re-exported here so a plug-in
file needs only ``import gradbench``.
"""

__version__ = "0.1.0"

from gradbench.core import Estimator, Param, Problem, Task  # noqa: E402
from gradbench.errors import GradbenchError  # noqa: E402
from gradbench.registry import register_estimator, register_task  # noqa: E402

__all__ = [
    "Estimator",
    "GradbenchError",
    "Param",
    "Problem",
    "Task",
    "__version__",
    "register_estimator",
    "register_task",
]
