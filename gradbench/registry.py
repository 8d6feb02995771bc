"""Decorator registries of tasks and estimators, filled by ``estimators/``, ``tasks/``, plug-in files and entry points.

- built-ins: every module of the ``gradbench.estimators`` and ``gradbench.tasks`` packages is imported;
- installed packages: entry points in the groups ``gradbench.estimators`` and ``gradbench.tasks`` (the entry point
  is imported, and its module registers with the decorators: this runs those packages' code in every gradbench
  process; ``GRADBENCH_NO_ENTRY_POINTS=1`` in the environment turns entry points off);
- files: ``load_plugin("my_plugin.py")`` (the CLI's ``--plugin``).

Registering a different object under a taken name is an error.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from pathlib import Path
from typing import TypeVar

from gradbench.core import Estimator, Task
from gradbench.errors import GradbenchError

NO_ENTRY_POINTS = "GRADBENCH_NO_ENTRY_POINTS"
"""Environment variable: set to 1 and installed packages' entry points are not loaded (child processes inherit it)."""
ESTIMATORS: dict[str, type[Estimator]] = {}
TASKS: dict[str, type[Task]] = {}
_loaded_plugins: dict[Path, object] = {}
_builtins_loaded = False

E = TypeVar("E", bound=type[Estimator])
T = TypeVar("T", bound=type[Task])


def _register(table: dict, kind: str, cls: type) -> None:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise GradbenchError(f"{kind} class {cls.__qualname__} has no name")
    old = table.get(name)
    if old is not None and old is not cls:
        raise GradbenchError(
            f"{kind} name {name!r} is taken by {old.__module__}.{old.__qualname__}; "
            f"cannot register {cls.__module__}.{cls.__qualname__}"
        )
    table[name] = cls


def register_estimator(cls: E) -> E:
    """Class decorator: make an :class:`Estimator` subclass available by its ``name``."""
    _register(ESTIMATORS, "estimator", cls)
    return cls


def register_task(cls: T) -> T:
    """Class decorator: make a :class:`Task` subclass available by its ``name``."""
    _register(TASKS, "task", cls)
    return cls


def load_builtins() -> None:
    """Import the built-in plug-in packages and installed entry points (once)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for package_name in ("gradbench.tasks", "gradbench.estimators"):
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{package_name}.{info.name}")
    if os.environ.get(NO_ENTRY_POINTS, "").strip() not in ("", "0"):
        return  # the user turned installed packages' plug-ins off
    from importlib.metadata import entry_points

    for group in ("gradbench.tasks", "gradbench.estimators"):
        for ep in entry_points(group=group):
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    ep.load()
            except Exception as exc:  # a broken third-party package must not take the CLI down silently
                raise GradbenchError(f"entry point {ep.name!r} ({ep.value}) failed to load: {_one_line(exc)}") from None


MODULE_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")
"""``pkg.mod`` or ``pkg.mod:obj``: a plug-in given as an importable module instead of a file."""


def load_plugin(path: str | Path) -> object:
    """Import a Python file (or an importable module ``pkg.mod``, or ``pkg.mod:Class``) that registers tasks or
    estimators. Loading the same file twice is a no-op. ``pkg.mod:Class`` registers that Task/Estimator subclass
    (the module's own decorators register the rest)."""
    file = Path(path).expanduser()
    if not file.is_file() and not str(path).endswith(".py") and MODULE_SPEC.match(str(path)):
        return load_module_plugin(str(path))
    if not file.is_file():
        raise GradbenchError(f"plug-in file {str(path)!r} does not exist")
    key = file.resolve()
    if key in _loaded_plugins:
        return _loaded_plugins[key]
    module_name = f"gradbench_plugin_{abs(hash(key))}"
    spec = importlib.util.spec_from_file_location(module_name, key)
    if spec is None or spec.loader is None:
        raise GradbenchError(f"plug-in file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a chatty plug-in must not corrupt --format json on stdout
            spec.loader.exec_module(module)
    except GradbenchError as exc:
        del sys.modules[module_name]
        raise GradbenchError(f"plug-in {str(path)!r}: {exc}") from None
    except BaseException as exc:  # SystemExit too: a plug-in must not end the process
        del sys.modules[module_name]
        raise GradbenchError(f"plug-in {str(path)!r} failed to import: {_one_line(exc)}") from None
    _loaded_plugins[key] = module
    return module


def resolve_object(spec: str, what: str = "plug-in") -> object:
    """The object named by ``pkg.mod:obj`` (or the module for ``pkg.mod``); import output goes to stderr."""
    module_name, _, attr = spec.partition(":")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            obj: object = importlib.import_module(module_name)
    except GradbenchError as exc:
        raise GradbenchError(f"{what} {spec!r}: {exc}") from None
    except BaseException as exc:  # SystemExit too
        if isinstance(exc, ModuleNotFoundError) and exc.name and module_name.startswith(exc.name):
            raise GradbenchError(f"{what} {spec!r}: no module named {exc.name!r} (nor a file of that name)") from None
        raise GradbenchError(f"{what} {spec!r} failed to import: {_one_line(exc)}") from None
    for part in attr.split(".") if attr else ():
        if not hasattr(obj, part):
            raise GradbenchError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_module_plugin(spec: str) -> object:
    """``pkg.mod`` (its decorators register) or ``pkg.mod:Class`` (a Task or Estimator subclass, registered)."""
    obj = resolve_object(spec)
    if ":" not in spec:
        return obj
    if isinstance(obj, type) and issubclass(obj, Task):
        register_task(obj)
    elif isinstance(obj, type) and issubclass(obj, Estimator):
        register_estimator(obj)
    else:
        raise GradbenchError(f"plug-in {spec!r} is not a gradbench.Task or gradbench.Estimator subclass")
    return obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _lookup(table: dict, kind: str, name: str):
    load_builtins()
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise GradbenchError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(table))})")


def get_estimator(name: str) -> type[Estimator]:
    return _lookup(ESTIMATORS, "estimator", name)


def get_task(name: str) -> type[Task]:
    return _lookup(TASKS, "task", name)


def all_estimators() -> dict[str, type[Estimator]]:
    load_builtins()
    return dict(sorted(ESTIMATORS.items()))


def all_tasks() -> dict[str, type[Task]]:
    load_builtins()
    return dict(sorted(TASKS.items()))


def default_sweep_tasks() -> dict[str, type[Task]]:
    """The tasks of ``gradbench sweep --tasks all``: every registered one not marked opt-in
    (``Task.default_sweep = False``: the model tasks, whose cells take seconds each)."""
    return {name: cls for name, cls in all_tasks().items() if cls.default_sweep}


def default_sweep_estimators() -> dict[str, type[Estimator]]:
    """The estimators of ``gradbench sweep --estimators all``: every registered one not marked opt-in
    (``Estimator.default_sweep = False``)."""
    return {name: cls for name, cls in all_estimators().items() if cls.default_sweep}
