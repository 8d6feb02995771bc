"""The worker side of every executor: prepare a process once (built-ins, plug-ins, threads), then run a cell.

Plug-in files are shipped with the work as their source (:class:`PluginFile`), so a worker on another machine gets
exactly the files the user named on the client. A worker loads a plug-in from its original path when that file
exists there with the same content (same machine), otherwise from a private copy under the temporary folder,
named by its SHA-256. Nothing is imported through ``sys.path`` on the user's behalf.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradbench.errors import GradbenchError


@dataclass(frozen=True)
class PluginFile:
    path: str  # as the user named it on the client (resolved)
    sha256: str
    source: bytes


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs besides the cell: torch threads, plug-in sources, the client's versions."""

    threads: int
    plugins: tuple[PluginFile, ...] = ()
    versions: tuple[str, str] = ("", "")  # (gradbench, torch) of the client; empty: not checked

    @classmethod
    def for_client(cls, threads: int, plugins: list[str]) -> WorkerSetup:
        files = []
        for name in plugins:
            path = Path(name).expanduser().resolve()
            try:
                source = path.read_bytes()
            except OSError as exc:
                raise GradbenchError(f"plug-in file {name!r} cannot be read: {exc.strerror}") from None
            files.append(PluginFile(str(path), hashlib.sha256(source).hexdigest(), source))
        return cls(threads, tuple(files), _versions())

    @property
    def key(self) -> tuple:
        return (self.threads, tuple(p.sha256 for p in self.plugins), self.versions)


def _versions() -> tuple[str, str]:
    import torch

    import gradbench

    return gradbench.__version__, torch.__version__


_lock = threading.Lock()
_ready: set[tuple] = set()


def _local_copy(plugin: PluginFile) -> Path:
    """The plug-in's original file when it is here with the same content, else a private copy (by SHA-256)."""
    original = Path(plugin.path)
    try:
        if original.is_file() and hashlib.sha256(original.read_bytes()).hexdigest() == plugin.sha256:
            return original
    except OSError:
        pass
    folder = Path(tempfile.gettempdir()) / f"gradbench-plugins-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder.mkdir(mode=0o700, exist_ok=True)
    copy = folder / f"{plugin.sha256[:16]}-{original.name}"
    if not copy.is_file():
        tmp = copy.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(plugin.source)
        os.replace(tmp, copy)
    return copy


def prepare_worker(setup: WorkerSetup) -> None:
    """Once per process and setup (thread-safe): check versions, load built-ins and the plug-ins."""
    if setup.key in _ready:
        return
    with _lock:
        if setup.key in _ready:
            return
        here = _versions()
        if setup.versions != ("", "") and here != setup.versions:
            raise GradbenchError(
                f"this worker runs gradbench {here[0]} with torch {here[1]}, the client gradbench "
                f"{setup.versions[0]} with torch {setup.versions[1]}: install the same versions everywhere"
            )
        from gradbench.allocator import tune_allocator
        from gradbench.registry import load_builtins, load_plugin

        tune_allocator()  # as the CLI does in its own process (Dask's nanny even lowers glibc's trim threshold)
        load_builtins()
        for plugin in setup.plugins:
            load_plugin(_local_copy(plugin))
        _ready.add(setup.key)


def call_batch(setup: WorkerSetup, fn: Callable[[Any], Any], items: list[Any]) -> list[tuple[Any, str | None]]:
    """``fn`` on each item in a prepared worker: [(value, None) or (None, why)] in order; a cell that raises is
    reported alone, the others still run (as they would one task each)."""
    from gradbench.executors import one_line

    out: list[tuple[Any, str | None]] = []
    for item in items:
        try:
            out.append((call(setup, fn, item), None))
        except Exception as exc:
            out.append((None, one_line(exc)))
    return out


def call(setup: WorkerSetup, fn: Callable[[Any], Any], item: Any) -> Any:
    """Run ``fn(item)`` in a prepared worker with ``setup.threads`` torch threads (set for the calling thread)."""
    import torch

    prepare_worker(setup)
    if torch.get_num_threads() != setup.threads:
        torch.set_num_threads(setup.threads)
    return fn(item)
