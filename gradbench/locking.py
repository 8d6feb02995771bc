"""Advisory locks on output files, so that two gradbench processes never interleave or lose rows.

The lock is ``fcntl.flock`` on a sidecar file ``.<name>.lock`` next to the output (the output itself is replaced
by atomic renames, so it cannot carry the lock). The holder writes ``<pid> <host> <command>`` into the sidecar so
a refused process can say who holds it; the sidecar is removed on release (a process that locked a removed
sidecar notices the swap and tries again, so removal is safe).

- ``gradbench run`` holds the lock only while it appends its row; two ``run``s on one file wait for each other
  (up to :data:`WAIT_SECONDS`) and both rows are kept whole.
- ``gradbench sweep`` holds it for the whole sweep; a second sweep (or a ``run``) on that file is refused at once
  with one line naming the other process. A holder that dies releases the lock (the kernel closes its files).

POSIX only (Linux, macOS); ``flock`` on network file systems is only as good as their lock support.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from gradbench.errors import GradbenchError

WAIT_SECONDS = 30.0
"""How long a short holder (a ``run`` appending its row) is waited for before giving up."""
LONG_HOLDERS = ("sweep",)
"""Commands that hold the lock for long: the others are refused at once instead of waiting."""


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _holder(sidecar: Path) -> tuple[str, str]:
    """(description, command) of the process holding ``sidecar`` ('another gradbench process', '' if unknown)."""
    try:
        pid, host, command = sidecar.read_text().strip().split(maxsplit=2)
    except (OSError, ValueError):
        return "another gradbench process", ""
    where = "" if host == socket.gethostname() else f" on {host}"
    return f"gradbench {command} (pid {pid}{where})", command


@contextmanager
def output_lock(path: Path, command: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the advisory lock of output ``path`` for ``command`` ('run', 'sweep') inside the ``with`` block."""
    sidecar = lock_path(path)
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(sidecar, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise GradbenchError(f"--out {path}: cannot create its lock file {sidecar}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            who, holder_command = _holder(sidecar)
            if holder_command in LONG_HOLDERS or command in LONG_HOLDERS or time.monotonic() > deadline:
                raise GradbenchError(
                    f"--out {path} is being written by {who}; wait for it to finish or choose another --out"
                ) from None
            time.sleep(0.02)
            continue
        try:  # the sidecar may have been removed (and maybe re-created) by the previous holder: lock the live one
            same = os.path.samestat(os.fstat(fd), os.stat(sidecar))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {command}\n".encode())
        yield
    finally:
        with suppress(OSError):
            os.unlink(sidecar)  # while still holding it (see the module docstring)
        os.close(fd)
