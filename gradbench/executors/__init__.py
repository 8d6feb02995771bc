"""Executors: where independent cells run. Sweep (and check) hand cells to one, and only the client writes files.

The seam is :class:`Executor`: ``map_unordered(fn, items)`` runs ``fn(item)`` for every item somewhere and yields
:class:`Done` ``(item, value, error)`` in completion order, at most :attr:`Executor.in_flight` items submitted and
not yet yielded at any time (``started`` is called as each is submitted). ``fn`` must be a module-level function
(it is pickled by reference) and ``error`` is a one-line reason when ``fn`` raised or the process running it was
lost. Executors are context managers; leaving the ``with`` block (normally, by Ctrl-C, by an error) cancels what
is still pending and stops every process the executor started.

Engines (``--executor``), one small module each:

- ``local`` (:mod:`gradbench.executors.local`): this process (``workers = 1``) or a pool of spawned processes;
- ``dask`` (:mod:`gradbench.executors.dask`): a Dask ``LocalCluster`` or a running scheduler (``--address``).

A third engine (Ray, a SLURM array through submitit, …) is one more module with a class like those, named in
:data:`ENGINES`. Worker processes are set up by :func:`gradbench.executors.worker.call`: built-ins, the user's
plug-ins (shipped as source), torch threads, version check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from gradbench.errors import GradbenchError

ENGINES = {"local": "gradbench.executors.local", "dask": "gradbench.executors.dask"}
"""Engine name -> module defining ``EXECUTOR`` (a class taking :class:`ExecutorOptions` and a worker setup)."""

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a Dask scheduler (``--address``) to answer, and for it to have a worker."""


class Done(NamedTuple):
    item: Any
    value: Any  # fn(item), or None when it failed
    error: str | None  # one-line reason when it failed


@dataclass(frozen=True)
class ExecutorOptions:
    """What the user chose: ``--executor``, ``--workers``, ``--threads``, ``--address``, ``--connect-timeout``."""

    engine: str = "local"
    workers: int = 1  # local: processes (1 = this process); dask: LocalCluster worker processes
    threads: int = 1  # torch threads per worker
    address: str | None = None  # dask: a running scheduler instead of a LocalCluster
    connect_timeout: float = CONNECT_TIMEOUT

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise GradbenchError(f"--executor {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.workers < 1:
            raise GradbenchError(f"--workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise GradbenchError(f"--threads must be at least 1, got {self.threads}")
        if self.address is not None and self.engine != "dask":
            raise GradbenchError("--address needs --executor dask")
        if not self.connect_timeout > 0:
            raise GradbenchError(f"--connect-timeout must be > 0 seconds, got {self.connect_timeout}")


class Executor:
    """Base of the engines: see the module docstring for the contract."""

    name = "?"
    in_flight = 1  # items submitted and not yet yielded, at most

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel pending work and stop the processes this executor started (idempotent)."""

    def describe(self) -> str:
        """What runs the cells, for the sweep's plan line ('2 worker processes × 1 torch thread')."""
        raise NotImplementedError

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Iterable[Any], started: Callable[[Any], None] | None = None
    ) -> Iterator[Done]:
        raise NotImplementedError


def open_executor(options: ExecutorOptions, plugins: Iterable[str] = ()) -> Executor:
    """Start the engine ``options.engine`` (its processes, or the connection to its scheduler). Errors (a missing
    optional dependency, an unreachable scheduler) are one-line :class:`GradbenchError`s, raised before any work."""
    from gradbench.executors.worker import WorkerSetup

    options.validate()
    setup = WorkerSetup.for_client(options.threads, [str(p) for p in plugins])
    module = importlib.import_module(ENGINES[options.engine])
    return module.EXECUTOR(options, setup)


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message for a GradbenchError, 'Type: message' otherwise."""
    text = " ".join(str(exc).split())
    if isinstance(exc, GradbenchError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
