"""``--executor dask``: cells run on Dask distributed workers; the client (this process) alone writes files.

- ``--address tcp://HOST:PORT``: connect to a running scheduler (``dask scheduler`` + ``dask worker``, or
  dask-jobqueue); no answer within ``--connect-timeout`` seconds (default 10), or no worker within the same time,
  is one line and exit 2;
- otherwise a ``LocalCluster`` of ``--workers`` worker processes, one Dask thread each, started with a safe import
  path (:func:`gradbench.isolation.isolated_children`) and closed with the sweep.

Each task carries a :class:`~gradbench.executors.worker.WorkerSetup` (torch threads, the ``--plugin`` files as
source, the client's gradbench and torch versions), so a worker that joins or restarts mid-sweep is prepared like
the others. Cells travel in batches, one Dask task each, sized by guided self-scheduling (Polychronopoulos & Kuck
1987): a batch takes 1/(4·threads) of the cells not yet submitted, at most :data:`MAX_BATCH`, so the round trip
client → scheduler → worker → client (milliseconds, longer than many toy cells) is paid once per batch, and the
last batches are single cells that even out the workers' finishing times. At most twice as many batches as the
cluster has worker threads are submitted ahead (results stream back; a huge grid is never held by the scheduler
at once). A cell that raises is reported alone (the batch's other cells are kept). A worker that dies mid-batch:
the scheduler runs the batch again on another worker (up to ``distributed.scheduler.allowed-failures`` = 3
deaths, then its cells are reported failed); the client receives one result per cell, so no row is duplicated.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from gradbench.errors import GradbenchError
from gradbench.executors import Done, Executor, ExecutorOptions, one_line
from gradbench.executors.worker import WorkerSetup, _versions, call_batch

MAX_BATCH = 64
"""Most cells in one Dask task."""


def batch_size(remaining: int, threads: int) -> int:
    """Guided self-scheduling: ⌈remaining / (4 · threads)⌉ cells, between 1 and :data:`MAX_BATCH`."""
    return max(1, min(MAX_BATCH, -(-remaining // (4 * max(1, threads)))))


def _import_dask():
    try:
        import distributed
    except ImportError:
        raise GradbenchError(
            "--executor dask needs Dask distributed: pip install 'gradbench[dask]' (or 'dask[distributed]')"
        ) from None
    return distributed


def worker_versions() -> tuple[str, str]:
    """Run on every worker before the sweep: fails there when gradbench cannot be imported."""
    return _versions()


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, options: ExecutorOptions, setup: WorkerSetup):
        distributed = _import_dask()
        self.options, self.setup = options, setup
        self._stack = ExitStack()
        self._pending: dict[Any, Any] = {}
        self.cluster = None
        try:
            self._stack.enter_context(_quiet_dask_logs())  # no chatter between the progress bar's lines
            if options.address is None:
                import dask

                from gradbench.isolation import isolated_children

                self._stack.enter_context(isolated_children())  # for the cluster's life (it restarts workers)
                # SIGINT ignored: inherited by the worker processes, Ctrl-C is the client's to handle. Worker
                # profiling off: its stack sampling every 10 ms costs CPU that the cells need on a small machine.
                with _sigint_ignored(), dask.config.set({"distributed.worker.profile.enabled": False}):
                    self.cluster = distributed.LocalCluster(
                        n_workers=options.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        # no dashboard; the scheduler's HTTP server (health, metrics) on a free local port: it
                        # defaults to 8787 and warns when another cluster holds that port
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.ERROR,
                    )
                self._stack.callback(self.cluster.close, timeout=10)
                self.client = distributed.Client(self.cluster, set_as_default=False)
            else:
                self.client = self._connect(distributed, options.address, options.connect_timeout)
            self._stack.callback(self.client.close, timeout=10)
            self._check_workers()
        except BaseException:
            self._stack.close()
            raise
        self._capacity_at = 0.0
        self._capacity = 2

    @staticmethod
    def _connect(distributed, address: str, timeout: float):
        started = time.monotonic()
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            why = "" if "timed out" in str(exc).lower() else f" ({one_line(exc)[:200]})"
            raise GradbenchError(f"--address {address}: no Dask scheduler answered within {timeout:g} s{why}") from None
        try:
            left = max(0.1, timeout - (time.monotonic() - started))
            client.wait_for_workers(1, timeout=left)
        except (OSError, TimeoutError):
            client.close()
            raise GradbenchError(
                f"--address {address}: the scheduler has no worker (waited {timeout:g} s); start one with "
                f"`dask worker {address}`"
            ) from None
        return client

    def _check_workers(self) -> None:
        try:
            versions = self.client.run(worker_versions)
        except Exception as exc:
            raise GradbenchError(f"a Dask worker cannot run gradbench: {one_line(exc)[:300]}") from None
        for worker, version in versions.items():
            if tuple(version) != self.setup.versions:
                raise GradbenchError(
                    f"Dask worker {worker} runs gradbench {version[0]} with torch {version[1]}, this client "
                    f"gradbench {self.setup.versions[0]} with torch {self.setup.versions[1]}: install the same "
                    "versions everywhere"
                )

    @property
    def in_flight(self) -> int:  # twice the cluster's worker threads, re-read at most once a second
        now = time.monotonic()
        if now - self._capacity_at > 1.0:
            self._capacity_at = now
            self._capacity = max(2, 2 * sum(self.client.nthreads().values()))
        return self._capacity

    def describe(self) -> str:
        threads = self.options.threads
        torch_threads = f"{threads} torch thread{'s' if threads != 1 else ''}"
        workers = len(self.client.scheduler_info().get("workers", {}))
        where = "a Dask LocalCluster" if self.cluster is not None else f"the Dask scheduler {self.options.address}"
        return f"{workers} worker{'s' if workers != 1 else ''} of {where} × {torch_threads}"

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Iterable[Any], started: Callable[[Any], None] | None = None
    ) -> Iterator[Done]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        todo = list(items)
        todo.reverse()  # popped from the end: submitted in the given order
        pending = self._pending
        completed = as_completed(loop=self.client.loop)

        def fill() -> None:
            while len(pending) < self.in_flight and todo:
                size = batch_size(len(todo), self.in_flight // 2)
                batch = [todo.pop() for _ in range(min(size, len(todo)))]
                future = self.client.submit(call_batch, self.setup, fn, batch, pure=False)
                pending[future] = batch
                completed.add(future)
                if started:
                    for item in batch:
                        started(item)

        fill()
        for future in completed:
            batch = pending.pop(future)
            if future.status == "finished":
                done = [Done(item, value, error) for item, (value, error) in zip(batch, future.result(), strict=True)]
            else:
                try:
                    exc = future.exception()
                except BaseException as lost:  # e.g. cancelled by the scheduler
                    exc = lost
                if isinstance(exc, KilledWorker):
                    why = f"the Dask workers running it died ({_allowed_failures()} times); given up"
                else:
                    why = one_line(exc)
                done = [Done(item, None, why) for item in batch]
            future.release()
            yield from done
            fill()

    def close(self) -> None:
        pending, self._pending = list(self._pending), {}
        try:
            if pending:
                self.client.cancel(pending)
        except Exception:  # the connection may be gone already; closing must not fail
            pass
        finally:
            self._stack.close()


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Dask's client-side loggers at ERROR while the executor is open (e.g. its 'Couldn't gather 1 keys,
    rescheduling' warning after a worker died: the sweep already handles that); levels restored on exit."""
    names = [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]
    saved = {n: logging.getLogger(n).level for n in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes start (a process started with SIGINT ignored keeps ignoring it, so a
    terminal's Ctrl-C, sent to the whole process group, reaches only the client). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))


EXECUTOR = DaskExecutor
