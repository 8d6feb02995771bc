"""The fingerprint of the code that produced a result row (column ``code_fingerprint``).

fingerprint = the first 16 hex digits of SHA-256 over the gradbench version and the source files of the
estimator's and the task's classes (every module in their class hierarchies, outside :mod:`gradbench.core`), as
benchopt keys its cache by a solver's file. Two rows with the same identity and the same fingerprint were made
by the same estimator and task code; when the fingerprint differs, the code changed in between:

- ``sweep --resume`` re-runs such cells (and keeps only the new row);
- ``check`` compares them as usual (that is what a regression check is for) and names them in a note;
- ``plot`` warns when one line mixes rows of several fingerprints.

Changes to the shared machinery (runner, statistics, random numbers) are not in the fingerprint; they are
covered by the version and by ``check``'s exact tier.
"""

from __future__ import annotations

import hashlib
import inspect
from functools import cache

import gradbench

EMPTY = ""
"""The fingerprint of a row written before the column existed: unknown code."""


def _sources(cls: type) -> list[tuple[str, bytes]]:
    out = []
    for klass in cls.__mro__:
        module = klass.__module__
        if module in ("builtins", "gradbench.core") or module.startswith("abc"):
            continue
        try:
            path = inspect.getsourcefile(klass)
        except TypeError:  # defined in a string or in the interpreter
            path = None
        if path is None:
            out.append((f"{module}.{klass.__qualname__}", repr(sorted(vars(klass))).encode()))
            continue
        try:
            with open(path, "rb") as fh:
                out.append((module, fh.read()))
        except OSError:
            out.append((module, b""))
    return sorted(set(out))


@cache
def class_fingerprint(estimator: type, task: type) -> str:
    digest = hashlib.sha256(f"gradbench {gradbench.__version__}\n".encode())
    for kind, cls in (("estimator", estimator), ("task", task)):
        for name, source in _sources(cls):
            digest.update(f"{kind} {name} {len(source)}\n".encode())
            digest.update(source)
    return digest.hexdigest()[:16]


def code_fingerprint(estimator: str, task: str) -> str:
    """The fingerprint of the registered estimator and task of these names."""
    from gradbench.registry import get_estimator, get_task

    return class_fingerprint(get_estimator(estimator), get_task(task))
