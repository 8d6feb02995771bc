"""Import-path hygiene: the processes gradbench starts import only gradbench, its dependencies and named plug-ins.

Python puts an *implicit* entry first on ``sys.path``: the current directory for ``python -m …``, ``python -c …``
and interactive sessions, the script's folder for ``python script.py`` and console scripts (a venv's ``bin/``).
A file there named like a module (``multiprocessing.py``, ``torch.py``) shadows the real one, so a process started
in someone else's checkout or a shared folder would run that folder's code. gradbench therefore

- drops the implicit entry from its own process when it starts as a program (:func:`strip_implicit_entry`, called
  by ``gradbench`` and ``python -m gradbench``; a library user's own process is left alone);
- starts every child process with ``PYTHONSAFEPATH=1`` (Python ≥ 3.11: no implicit entry in the child's
  bootstrap, e.g. multiprocessing's ``python -c 'from multiprocessing.spawn import …'``) and with the parent's
  ``sys.path`` minus the implicit entries (:func:`safe_sys_path`), for as long as a pool or cluster may start
  processes (:func:`isolated_children`);
- runs its own ``python -c`` children through :func:`python_command`, which sets ``sys.path`` before any import.

Plug-in files named with ``--plugin`` are imported by path (never through ``sys.path``); entry points of installed
packages are imported unless ``GRADBENCH_NO_ENTRY_POINTS=1`` (see :mod:`gradbench.registry`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SAFE_ENV = {"PYTHONSAFEPATH": "1"}
"""Environment given to every child process (``-P`` behaviour: no implicit ``sys.path`` entry)."""


def _same_place(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a or ".", b or ".")
    except OSError:
        return False


def implicit_entries() -> list[str]:
    """The folders Python may have put on ``sys.path`` implicitly: '' (the current directory), the current
    directory, and the folder of the ``__main__`` script (when there is one)."""
    places = ["", os.getcwd()]
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        places.append(os.path.dirname(os.path.abspath(main_file)))
    return places


def _package_root() -> str:
    import gradbench

    return str(Path(gradbench.__file__).resolve().parent.parent)


def safe_sys_path(path: list[str] | None = None) -> list[str]:
    """``path`` (default ``sys.path``) without its implicit entries (see :func:`implicit_entries`).

    When gradbench itself was importable only through such an entry (``python -m gradbench`` in an uninstalled
    checkout), its folder goes back at the *end*, after the standard library and site-packages, so it cannot
    shadow them.
    """
    path = list(sys.path if path is None else path)
    implicit = implicit_entries()
    kept = [p for p in path if not any(p == i or _same_place(p, i) for i in implicit)]
    root = _package_root()
    if any(_same_place(p, root) for p in path) and not any(_same_place(p, root) for p in kept):
        kept.append(root)
    return kept


def strip_implicit_entry() -> None:
    """Called when gradbench runs as a program: remove the entry Python put first on ``sys.path`` (the current
    directory for ``python -m gradbench``, the script's folder for the console script), unless ``-P``/``-I`` or
    ``PYTHONSAFEPATH`` already kept it off. Modules imported before this point were not affected by it (the
    ``gradbench`` package itself, which imports only the standard library)."""
    if sys.flags.safe_path or sys.flags.isolated or not sys.path:
        return
    first = sys.path[0]
    if first in ("", ".") or any(_same_place(first, i) for i in implicit_entries()):
        sys.path[:] = safe_sys_path()


@contextmanager
def isolated_children() -> Iterator[None]:
    """While open, processes started by multiprocessing (a process pool, Dask's ``LocalCluster``) inherit a safe
    import path: ``sys.path`` is :func:`safe_sys_path` (multiprocessing's spawn copies it into the child) and the
    environment has ``PYTHONSAFEPATH=1`` (the child's bootstrap imports nothing from its folder). Both are restored
    on exit. Keep it open for the pool's or cluster's whole life: they may start replacement processes."""
    saved_path = sys.path
    saved_env = {k: os.environ.get(k) for k in SAFE_ENV}
    sys.path = safe_sys_path()
    os.environ.update(SAFE_ENV)
    try:
        yield
    finally:
        sys.path = saved_path
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def python_command(code: str) -> list[str]:
    """``[python, -c, code]`` whose first act is to set ``sys.path`` to :func:`safe_sys_path`, so nothing is imported
    from the child's current directory (``-c`` puts it first); run it with :func:`child_env`."""
    prologue = f"import sys; sys.path[:] = {safe_sys_path()!r}\n"
    return [sys.executable, "-c", prologue + code]


def child_env() -> dict[str, str]:
    """``os.environ`` plus :data:`SAFE_ENV`, for ``subprocess`` children."""
    return {**os.environ, **SAFE_ENV}
