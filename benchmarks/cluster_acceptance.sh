#!/usr/bin/env bash
# Issue 11's acceptance run, on one machine: a separately started `dask scheduler` + `dask worker`, a sweep through
# --address with a --plugin estimator, the worker SIGKILLed mid-sweep (nanny and worker process), another worker
# started; then: no finished cell lost, no row duplicated, and the CSV equals a local 1-worker sweep's.
#
#   benchmarks/cluster_acceptance.sh [PORT]        (run from the repository root; uses .venv)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
GB=$ROOT/.venv/bin/gradbench
PORT=${1:-8799}
DIR=$(mktemp -d)
mkdir "$DIR/work" && cd "$DIR/work"   # the workers start in an empty folder
cat > "$DIR/sleepy.py" <<'PLUGIN'
"""REINFORCE sleeping 0.5 s per cell: cells slow enough to kill a worker in the middle of one."""
import time

import gradbench
from gradbench.estimators.reinforce import Reinforce


@gradbench.register_estimator
class Sleepy(Reinforce):
    name = "sleepy"
    summary = "REINFORCE, 0.5 s per cell"

    def setup(self, problem, seed):
        time.sleep(0.5)
PLUGIN
ARGS="--plugin $DIR/sleepy.py -t bernoulli,sum-target -e sleepy,reinforce --seeds 6 -n 2000"
setsid "$PY" -m dask scheduler --port "$PORT" --no-dashboard > "$DIR/scheduler.log" 2>&1 &
SCHED=$!
setsid "$PY" -m dask worker "tcp://127.0.0.1:$PORT" --nworkers 1 --nthreads 1 --no-dashboard > "$DIR/worker1.log" 2>&1 &
W1=$!
date -u +"%T sweep starts"
"$GB" sweep $ARGS --executor dask --address "tcp://127.0.0.1:$PORT" --connect-timeout 60 --out "$DIR/dask.csv" \
    > "$DIR/sweep.out" 2> "$DIR/sweep.err" &
SWEEP=$!
while [ ! -f "$DIR/dask.csv" ] || [ "$(wc -l < "$DIR/dask.csv")" -lt 6 ]; do sleep 0.1; done
BEFORE=$(tail -n +2 "$DIR/dask.csv" | cut -d, -f1-7 | sort)
date -u +"%T SIGKILL to the worker (nanny + worker process) after $(echo "$BEFORE" | wc -l) saved rows"
kill -9 -- -"$W1"
sleep 3
setsid "$PY" -m dask worker "tcp://127.0.0.1:$PORT" --nworkers 1 --nthreads 1 --no-dashboard > "$DIR/worker2.log" 2>&1 &
W2=$!
date -u +"%T second worker started"
wait "$SWEEP"
date -u +"%T sweep exit code $?"
AFTER=$(tail -n +2 "$DIR/dask.csv" | cut -d, -f1-7 | sort)
echo "rows at the end: $(echo "$AFTER" | wc -l), distinct cells: $(echo "$AFTER" | uniq | wc -l)"
echo "rows saved before the kill and missing at the end: $(comm -23 <(echo "$BEFORE") <(echo "$AFTER") | wc -l)"
"$GB" sweep $ARGS --workers 1 --out "$DIR/local.csv" > /dev/null 2>&1
"$PY" - "$DIR" <<'CHECK'
import csv, sys
from gradbench.results import TIMING_COLUMNS as T  # wall-clock columns (the cost columns' time parts too)
rows = lambda p: [{k: v for k, v in r.items() if k not in T} for r in csv.DictReader(open(p))]
a, b = rows(f"{sys.argv[1]}/dask.csv"), rows(f"{sys.argv[1]}/local.csv")
print(f"the Dask CSV (worker killed) equals a local 1-worker sweep's, timing aside: {a == b} ({len(a)} rows)")
CHECK
tail -n 2 "$DIR/sweep.out"
kill -- -"$W2" -"$SCHED" 2>/dev/null
echo "files in $DIR"
