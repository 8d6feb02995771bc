"""Fault injection for gradbench's files (issue 16): not a test (it takes minutes and some parts need root).

Prints one figure per fault:

1. ``kill -9`` of ``gradbench sweep`` at random moments: after each kill the CSV must parse and hold only whole
   rows; ``--resume`` must then finish it, equal (timing columns aside) to an uninterrupted sweep.
2. ``kill -9`` of ``gradbench check --update`` at random moments: the baseline is either the old one, byte for
   byte, or a complete new one that reads back.
3. Two writers on one file: two processes appending rows with ``gradbench run --out`` to the same CSV at once;
   rows lost or torn are counted.
4. A full disk (root only: a small tmpfs): ``gradbench run`` until the disk is full; the error must be one line and
   the file must keep only whole rows.
5. ``ulimit -v``: a task too large for the address space left must be one line, not a traceback.

Usage: python benchmarks/fault_injection.py [--kills 10] [--writers-rows 20]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRADBENCH = [sys.executable, "-m", "gradbench.cli"]
SWEEP = ["sweep", "-e", "reinforce,gumbel,rloo", "-t", "bernoulli,sum-target", "--taus", "0.5,1", "--seeds", "3"]
SWEEP += ["-n", "20000", "-w", "2"]


def gradbench(*args: str, cwd: Path, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([*GRADBENCH, *args], cwd=cwd, capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise SystemExit(f"gradbench {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def whole(path: Path) -> bool:
    """The CSV parses, ends with a newline, and every row has the header's number of fields."""
    if not path.exists():
        return True
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return False
    records = list(csv.reader(data.decode().splitlines()))
    return all(len(r) == len(records[0]) for r in records)


def untimed(rows):
    from gradbench.results import TIMING_COLUMNS  # the columns allowed to differ between two runs of a cell

    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def kill_at(args: list[str], cwd: Path, delay: float) -> None:
    proc = subprocess.Popen([*GRADBENCH, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    time.sleep(delay)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, at once
    proc.wait()


def sweep_kills(work: Path, kills: int, rng: random.Random) -> None:
    t0 = time.perf_counter()
    gradbench(*SWEEP, "--out", "whole.csv", cwd=work, check=True)
    duration = time.perf_counter() - t0
    reference = untimed(rows_of(work / "whole.csv"))
    intact = equal = 0
    for i in range(kills):
        out = f"killed-{i}.csv"
        kill_at([*SWEEP, "--out", out], work, rng.uniform(0.2, duration))
        intact += whole(work / out)
        if (work / out).exists():
            gradbench(*SWEEP, "--out", out, "--resume", cwd=work, check=True)
        else:
            gradbench(*SWEEP, "--out", out, cwd=work, check=True)
        equal += untimed(rows_of(work / out)) == reference
    print(f"sweep kill -9: {kills} kills (uninterrupted sweep {duration:.1f} s), {intact} files intact, "
          f"{equal} resumes equal to the uninterrupted sweep")  # fmt: skip


def update_kills(work: Path, kills: int, rng: random.Random) -> None:
    args = ["check", "--update", "-e", "reinforce", "-e", "gumbel", "-t", "bernoulli", "--budget", "1", "--baseline"]
    t0 = time.perf_counter()
    gradbench(*args, "base.csv", cwd=work, check=True)
    duration = time.perf_counter() - t0
    old = (work / "base.csv").read_bytes()
    intact = 0
    for _ in range(kills):
        kill_at([*args, "base.csv"], work, rng.uniform(0.2, duration * 1.2))
        now = (work / "base.csv").read_bytes()
        readable = gradbench("check", "--baseline", "base.csv", "--format", "json", cwd=work).returncode in (0, 1)
        intact += now == old or readable
        old = now
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".base.csv.")]
    print(f"check --update kill -9: {kills} kills (uninterrupted {duration:.1f} s), {intact} baselines intact "
          f"(old bytes or a complete new file), {len(leftovers)} temporary files left behind")  # fmt: skip


def two_writers(work: Path, rows: int) -> None:
    script = f"for i in $(seq {rows}); do {' '.join(GRADBENCH)} run -e reinforce -n 100 --seed $i --out two.csv " \
             f">/dev/null 2>>errors.txt; done"  # fmt: skip
    procs = [subprocess.Popen(["bash", "-c", script], cwd=work) for _ in range(2)]
    for p in procs:
        p.wait()
    got = rows_of(work / "two.csv") if (work / "two.csv").exists() else []
    errors = (work / "errors.txt").read_text().strip().splitlines() if (work / "errors.txt").exists() else []
    print(f"two writers: {2 * rows} rows appended by two concurrent processes, {len(got)} in the file "
          f"({2 * rows - len(got)} lost), file intact: {whole(work / 'two.csv')}, errors: {len(errors)} "
          f"{errors[:1]}")  # fmt: skip


def full_disk(work: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        print("full disk: skipped (needs root to mount a tmpfs)")
        return
    mount = Path(tempfile.mkdtemp(prefix="gradbench-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        print(f"full disk: skipped (mount failed: {done.stderr.decode().strip()})")
        return
    try:
        runs, last = 0, None
        for seed in range(400):
            last = gradbench("run", "-e", "reinforce", "-n", "100", "--seed", str(seed), "--out",
                             str(mount / "full.csv"), cwd=work)  # fmt: skip
            if last.returncode:
                break
            runs += 1
        lines = last.stderr.strip().splitlines() if last else []
        size = (mount / "full.csv").stat().st_size if (mount / "full.csv").exists() else 0
        print(
            f"full disk (tmpfs of 48 KiB): {runs} rows written, then exit {last.returncode}: {lines}; "
            f"file intact: {whole(mount / 'full.csv')} ({size} bytes, {len(rows_of(mount / 'full.csv'))} rows)"
        )
        swept = gradbench(*SWEEP[:-2], "-w", "1", "--out", str(mount / "sweep.csv"), cwd=work)
        print(f"full disk, sweep: exit {swept.returncode}, stderr's last line: "
              f"{swept.stderr.strip().splitlines()[-1:]}, file intact: {whole(mount / 'sweep.csv')}")  # fmt: skip
    finally:
        subprocess.run(["umount", str(mount)])
        mount.rmdir()


def address_space(work: Path) -> None:
    command = f"ulimit -v 3000000; {' '.join(GRADBENCH)} run -e gumbel --tau 1 -t quadratic " \
              f"--task-opt dim=2000000 -n 100 --out ulimit.csv"  # fmt: skip
    done = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    print(
        f"ulimit -v 3 GB, quadratic dim=2,000,000: exit {done.returncode}, {len(lines)} stderr line(s): "
        f"{lines[-1][:200] if lines else ''}; file created: {(work / 'ulimit.csv').exists()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--writers-rows", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gradbench-faults-") as folder:
        work = Path(folder)
        print(f"load average at start: {os.getloadavg()[0]:.1f}")
        sweep_kills(work, args.kills, rng)
        update_kills(work, args.kills, rng)
        two_writers(work, args.writers_rows)
        full_disk(work)
        address_space(work)


if __name__ == "__main__":
    main()
