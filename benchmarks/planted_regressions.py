"""Plant regressions into the built-in estimators and run `gradbench check` (statistical tier, fresh seeds) against
the committed baseline: which cells are caught, with which numbers.

The planted variants replace the real estimator under its own name for the duration of one check:
REINFORCE + 0.002 on every component; REINFORCE with its noise scaled by √1.5 around its (exact) mean; REINFORCE
with its sign flipped; Gumbel-Softmax + 0.001; Gumbel-Softmax with its sign flipped.

    .venv/bin/python benchmarks/planted_regressions.py [--baseline results/baseline.csv] [--seed-base 11]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.baseline import read_baseline  # noqa: E402
from gradbench.check import CheckOptions, run_check  # noqa: E402
from gradbench.registry import ESTIMATORS, all_estimators  # noqa: E402

all_estimators()
Reinforce, Gumbel = ESTIMATORS["reinforce"], ESTIMATORS["gumbel"]


class PlusConstant(Reinforce):
    def estimate(self, problem, rng):
        return super().estimate(problem, rng) + 0.002


class NoisierBy1_5(Reinforce):
    def estimate(self, problem, rng):
        exact = problem.exact_grad.to(problem.theta.dtype)
        return exact + math.sqrt(1.5) * (super().estimate(problem, rng) - exact)


class SignFlipped(Reinforce):
    def estimate(self, problem, rng):
        return -super().estimate(problem, rng)


class GumbelPlusConstant(Gumbel):
    def estimate(self, problem, rng):
        return super().estimate(problem, rng) + 0.001


class GumbelSignFlipped(Gumbel):
    def estimate(self, problem, rng):
        return -super().estimate(problem, rng)


PLANTED = [PlusConstant, NoisierBy1_5, SignFlipped, GumbelPlusConstant, GumbelSignFlipped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=Path("results/baseline.csv"))
    parser.add_argument("--seed-base", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    baseline = read_baseline(args.baseline)
    for planted in PLANTED:
        real = ESTIMATORS[planted.name]
        ESTIMATORS[planted.name] = planted
        try:
            result = run_check(baseline, CheckOptions(fresh_seeds=True, seed_base=args.seed_base))
        finally:
            ESTIMATORS[planted.name] = real
        mine = [c for c in result.cells if c.base["estimator"] == planted.name]
        caught = [c for c in mine if c.status == "worse"]
        others = [c for c in result.cells if c.status == "worse" and c not in mine]
        print(f"{planted.__name__} ({planted.name}): exit {result.exit_code}; caught {len(caught)}/{len(mine)} cells")
        for c in mine:
            why = "; ".join(c.reasons) or "not flagged: " + ", ".join(
                f"{t.metric} {t.effect:.3g} (detectable {t.detectable:.3g})" for t in c.tests
            )
            print(f"    {c.label}: {why}")
        if others:
            print(f"    other cells blamed: {[c.label for c in others]}")


if __name__ == "__main__":
    main()
