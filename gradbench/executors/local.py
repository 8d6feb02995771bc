"""``--executor local``: cells run in this process (``workers = 1``) or in a pool of spawned worker processes.

The pool uses the ``spawn`` start method (no fork of a process with threads: rich's refresh, torch), one cell in
flight per worker so the display shows what really runs, workers that ignore Ctrl-C (the client handles it) and
exit when the client dies, and a safe import path (:func:`gradbench.isolation.isolated_children`). A worker
that dies (e.g. killed by the out-of-memory killer) stops the sweep with one line naming its cell: the rows saved
so far stay, ``--resume`` finishes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from gradbench.errors import GradbenchError
from gradbench.executors import Done, Executor, ExecutorOptions, one_line
from gradbench.executors.worker import WorkerSetup, call, prepare_worker


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, options: ExecutorOptions, setup: WorkerSetup):
        self.options, self.setup = options, setup
        self.in_flight = 2 * options.workers  # one queued behind each running cell: no idle round trip
        self._pool = None
        self._stack = ExitStack()

    def describe(self) -> str:
        threads = _plural(self.options.threads, "torch thread")
        if self.options.workers == 1:
            return f"1 worker (this process) × {threads}"
        return f"{_plural(self.options.workers, 'worker')} × {threads}"

    # --- in this process ---------------------------------------------------------------------------------------

    def _serial(self, fn, items, started) -> Iterator[Done]:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.options.threads)
        try:
            for item in items:
                if started:
                    started(item)
                try:
                    value = fn(item)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    yield Done(item, None, one_line(exc))
                    continue
                yield Done(item, value, None)
        finally:
            torch.set_num_threads(previous)

    # --- in a pool of processes --------------------------------------------------------------------------------

    def _start_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from gradbench.isolation import isolated_children

        self._stack.enter_context(isolated_children())  # for the pool's whole life
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=self.options.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.setup, os.getpid()),
        )
        return self._pool

    def _parallel(self, fn, items, started) -> Iterator[Done]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool or self._start_pool()
        pending: dict[Any, Any] = {}
        queue = iter(items)

        def submit(item) -> None:
            with _sigint_blocked():  # a worker spawned here starts with Ctrl-C blocked, until its initializer runs
                pending[pool.submit(call, self.setup, fn, item)] = item
            if started:
                started(item)

        for item in queue:
            submit(item)
            if len(pending) >= self.in_flight:
                break
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: getattr(pending[f], "index", 0)):
                item = pending.pop(future)
                exc = future.exception()
                if isinstance(exc, BrokenProcessPool):
                    raise GradbenchError(f"a worker process died while running {_label(item)} (out of memory?)")
                yield Done(item, None, one_line(exc)) if exc is not None else Done(item, future.result(), None)
                nxt = next(queue, None)
                if nxt is not None:
                    submit(nxt)

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Iterable[Any], started: Callable[[Any], None] | None = None
    ) -> Iterator[Done]:
        if self.options.workers <= 1:
            return self._serial(fn, items, started)
        return self._parallel(fn, items, started)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()  # our own workers: stop them now (a cell may run for minutes)
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._stack.close()


def _label(item: Any) -> str:
    return getattr(item, "label", None) or repr(item)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL, OOM) stops at once instead of lingering as an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="gradbench-parent-watch").start()


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread while workers are spawned: a child inherits the mask across exec, so a Ctrl-C
    that reaches the whole process group while a worker is still importing torch stays pending there (and is then
    discarded by :func:`_init_worker`) instead of printing a KeyboardInterrupt traceback. Here it is delivered as soon
    as the block ends, so the client still stops at once."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _init_worker(setup: WorkerSetup, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle (a pending one is discarded)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn, see _sigint_blocked
    _exit_with_parent(parent)
    prepare_worker(setup)


EXECUTOR = LocalExecutor
