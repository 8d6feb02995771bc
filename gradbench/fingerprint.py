"""The fingerprint of the code that produced a result row (column ``code_fingerprint``; issue 16).

fingerprint = the first 16 hex digits of SHA-256 over the gradbench version and the source files of the
estimator's and the task's code, as benchopt keys its cache by a solver's file. "Their code" is every module of
their class hierarchies and, transitively, every module those modules import (at the top or inside a function):
an estimator that imports ``one_hot`` from ``estimators/reinforce.py`` changes its fingerprint when that file
changes. Left out are the shared machinery (:data:`MACHINERY`: the plug-in contract, the registry, the random
numbers), the standard library and installed third-party packages (torch, numpy); a change there is covered by
the ``gradbench_version``/``torch_version`` columns and by ``gradbench check``'s exact tier.

Only the files' bytes enter the digest, never module names or paths: a plug-in file has a different module name in
every process (and a worker may run a private copy of it), and must still get one fingerprint.

Two rows with the same identity and the same fingerprint were made by the same estimator and task code; when the
fingerprints differ, the code changed in between. What the commands do then (docs/hardening.md):

- ``sweep --resume`` re-runs such cells (and keeps only the new row);
- ``check`` compares them as usual (that is what a regression check is for) and names them in a note;
- ``plot`` and ``report`` warn when one line mixes rows of several fingerprints.

A row written before the column existed has an empty fingerprint (:data:`UNKNOWN`): the code is unknown.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import types
from functools import cache

import gradbench

UNKNOWN = ""
"""The fingerprint of a row written before the column existed."""
MACHINERY = frozenset(
    {
        "gradbench",
        "gradbench.core",
        "gradbench.registry",
        "gradbench.errors",
        "gradbench.rng",
        "gradbench.contract",
        "gradbench.results",
        "gradbench.limits",
        "gradbench.fingerprint",
    }
)
"""gradbench modules every cell shares (contract, registry, random numbers, file I/O): not in the fingerprint."""
LENGTH = 16


def _third_party_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(os.path.realpath(r) + os.sep for r in roots)


_ROOTS = _third_party_roots()


def _is_ours(module: types.ModuleType) -> bool:
    """A module whose source belongs to an estimator or task: gradbench's own (outside :data:`MACHINERY`) or a
    plug-in's (a file outside the standard library and site-packages)."""
    name = module.__name__
    if name in MACHINERY:
        return False
    if name.startswith("gradbench."):
        return True
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return False  # built-in or compiled: not source we could hash
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    return not (real.startswith(_ROOTS) or "site-packages" in parts or "dist-packages" in parts)


def _imported(package: str, source: bytes) -> list[types.ModuleType]:
    """Modules ``source`` imports anywhere (a function's lazy import too), as far as they are loaded or findable."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import submodule`
    out = []
    for name in dict.fromkeys(names):
        found = sys.modules.get(name)
        if found is None and name.startswith("gradbench.") and name not in MACHINERY:
            try:  # a lazy import not run yet in this process: import it (gradbench's own code only)
                if importlib.util.find_spec(name) is not None:
                    found = importlib.import_module(name)
            except Exception:  # not a module (an attribute of one), or one that fails to import: not ours to judge
                found = None
        if isinstance(found, types.ModuleType):
            out.append(found)
    return out


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _class_text(klass: type) -> bytes:
    """A class without a source file (made by ``exec`` or in an interactive session): its attributes and the
    byte code of its methods."""
    parts = [klass.__qualname__]
    for name, value in sorted(vars(klass).items()):
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        parts.append(f"{name}:{code.co_code.hex()}:{code.co_consts!r}" if code is not None else name)
    return "\n".join(parts).encode()


@cache
def class_sources(cls: type) -> tuple[bytes, ...]:
    """The sources that make up ``cls``'s code (see the module docstring), sorted and without repeats."""
    sources: set[bytes] = set()
    seen: set[str] = set()
    todo: list[tuple[str, str | None, str]] = []  # (module name, source file, package)
    for klass in cls.__mro__:
        if klass.__module__ in MACHINERY or klass.__module__ in ("builtins", "abc"):
            continue
        module = sys.modules.get(klass.__module__)
        if module is not None:
            path, package = getattr(module, "__file__", None), module.__package__ or ""
        else:  # imported without a sys.modules entry: the file that defined the class
            try:
                path, package = inspect.getsourcefile(klass), ""
            except (TypeError, OSError):
                path, package = None, ""
        if _read(path) is None:
            sources.add(_class_text(klass))
        else:
            todo.append((klass.__module__, path, package))
    while todo:
        name, path, package = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = _read(path)
        if source is None:
            continue
        sources.add(source)
        for m in _imported(package, source):
            if m.__name__ not in seen and _is_ours(m):
                todo.append((m.__name__, getattr(m, "__file__", None), m.__package__ or ""))
    return tuple(sorted(sources))


@cache
def class_fingerprint(estimator: type, task: type) -> str:
    """The fingerprint of rows made by this estimator class on this task class."""
    digest = hashlib.sha256(f"gradbench {gradbench.__version__}\n".encode())
    for kind, cls in (("estimator", estimator), ("task", task)):
        for source in class_sources(cls):
            digest.update(f"{kind} {len(source)}\n".encode())
            digest.update(source)
    return digest.hexdigest()[:LENGTH]


def code_fingerprint(estimator: str, task: str) -> str:
    """The fingerprint of the registered estimator and task of these names."""
    from gradbench.registry import get_estimator, get_task

    return class_fingerprint(get_estimator(estimator), get_task(task))
