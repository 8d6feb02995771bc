"""Cross-check gradbench's score-function and binary estimators against storchastic (PyPI ``storchastic``).

For each pair (ours, storchastic's) on the same task and θ, prints the mean estimate's bias p-value against the
exact gradient (per-component z-tests, Bonferroni, as gradbench's ``bias_pvalue``), the variance (trace of the
covariance of one estimate) and the largest |mean − g*| in standard errors. Run:

    .venv/bin/python benchmarks/peers/storchastic_check.py [--n 20000]

storchastic 0.3.7 declares dependencies on pyro-ppl and entmax (and torch); install it without letting pip touch
torch: ``pip install --no-deps storchastic entmax pyro-ppl pyro-api opt_einsum tqdm``. Exits with a message (and
status 0) when storchastic is not installed, so it can sit in the repository without being a test dependency.

storchastic's gradients are taken per row of a batch of R independent copies of θ (a plate named "R"): its cost
is averaged over the plate, so each row's gradient is multiplied by R to give one estimate. Its running-mean
baseline is different per call, so it is driven one estimate per call (a Python loop, fewer estimates); its
unordered set estimator allocates memory quadratic in R, so it runs 50 rows at a time.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys

import torch

from gradbench.rng import BlockRng
from gradbench.runner import CellSpec, prepare


def summary(est: torch.Tensor, exact: torch.Tensor) -> tuple[float, float, float, float]:
    """(bias p-value, variance trace, max |z|, ‖mean‖/‖g*‖) of estimates N x D x K against the exact gradient."""
    x = est.reshape(est.shape[0], -1).to(torch.float64)
    g = exact.reshape(-1).to(torch.float64)
    n = x.shape[0]
    se = x.std(0) / math.sqrt(n)
    z = ((x.mean(0) - g).abs() / se.clamp(min=1e-300)).where(se > 0, torch.zeros_like(se))
    p = min(1.0, x.shape[1] * float(torch.special.erfc(z.max() / math.sqrt(2))))
    return p, float(x.var(0).sum()), float(z.max()), float(x.mean(0).norm() / g.norm())


def ours(task: str, estimator: str, n: int, task_params=None, **hparams) -> tuple[torch.Tensor, torch.Tensor]:
    cell = prepare(CellSpec(task=task, estimator=estimator, task_params=task_params or {}, estimator_params=hparams))
    cell.estimator.setup(cell.problem, 0)
    return cell.estimator.estimate(cell.problem, BlockRng(0, 0, [n])), cell.problem.exact_grad


def storch_batched(task_obj, method, R: int, relaxed: bool = False) -> torch.Tensor:
    """R estimates from one storchastic backward pass over a plate of R copies of θ (D x K categoricals)."""
    import storch
    from torch.distributions import OneHotCategorical

    theta = task_obj.initial_logits().float().expand(R, task_obj.D, task_obj.K).clone().requires_grad_(True)
    z = method(OneHotCategorical(logits=storch.denote_independent(theta, 0, "R")))
    storch.add_cost(task_obj.f(z), "cost")
    storch.backward()
    return theta.grad * R


def storch_binary(task_obj, method, R: int) -> torch.Tensor:
    """R estimates for binary variables: storchastic samples Bernoulli(logits = θ₁ − θ₀)."""
    import storch
    from torch.distributions import Bernoulli

    theta = task_obj.initial_logits().float().expand(R, task_obj.D, 2).clone().requires_grad_(True)
    alpha = storch.denote_independent(theta, 0, "R")
    b = method(Bernoulli(logits=alpha[..., 1] - alpha[..., 0]))
    storch.add_cost(task_obj.f(stack_binary(b)), "cost")
    storch.backward()
    return theta.grad * R


def stack_binary(b):
    """b (0/1, a storchastic tensor) -> one-hot ... x D x 2 with z[..., 1] = b."""
    import storch

    return storch.deterministic(lambda t: torch.stack([1 - t.float(), t.float()], -1))(b)


def storch_unordered_set(task_obj, k: int, R: int) -> torch.Tensor:
    """R estimates of storchastic's UnorderedSetEstimator on the joint distribution over the K^D configurations
    (one categorical with logits log p_θ(s) = Σ_d log p_d(s_d), so gradients reach θ)."""
    import storch
    from torch.distributions import OneHotCategorical

    D, K = task_obj.D, task_obj.K
    configs = torch.tensor(list(itertools.product(range(K), repeat=D)))  # K^D x D
    onehots = torch.nn.functional.one_hot(configs, K).float()  # K^D x D x K
    theta = task_obj.initial_logits().float().expand(R, D, K).clone().requires_grad_(True)
    logp = theta.log_softmax(-1)  # R x D x K
    joint = logp[:, torch.arange(D), configs].sum(-1)  # R x K^D
    method = storch.method.UnorderedSetEstimator("z", k=k)
    z = method(OneHotCategorical(logits=storch.denote_independent(joint, 0, "R")))
    to_config = storch.deterministic(lambda t: torch.einsum("...c,cdk->...dk", t.float(), onehots))
    storch.add_cost(task_obj.f(to_config(z)), "cost")
    storch.backward()
    return theta.grad * R


def unordered_set_per_set(task_obj, problem, k: int, calls: int) -> None:
    """storchastic's unordered set estimate is a deterministic function of the sampled set S: group its estimates
    by S and compare each with gradbench's (whose set weights are checked against brute force over orderings)."""
    import collections

    import storch
    from torch.distributions import OneHotCategorical

    from gradbench.estimators.unordered_set import set_estimate

    D, K, R = task_obj.D, task_obj.K, 50
    configs = torch.tensor(list(itertools.product(range(K), repeat=D)))  # K^D x D
    onehots = torch.nn.functional.one_hot(configs, K).float()
    by_set = collections.defaultdict(list)
    for _ in range(calls):
        theta = task_obj.initial_logits().float().expand(R, D, K).clone().requires_grad_(True)
        joint = theta.log_softmax(-1)[:, torch.arange(D), configs].sum(-1)  # R x K^D
        z = storch.method.UnorderedSetEstimator("z", k=k)(
            OneHotCategorical(logits=storch.denote_independent(joint, 0, "R"))
        )
        members = z._tensor.detach().argmax(-1)  # R x k: the sampled configurations
        to_config = storch.deterministic(lambda t: torch.einsum("...c,cdk->...dk", t.float(), onehots))
        storch.add_cost(task_obj.f(to_config(z)), "cost")
        storch.backward()
        for row, grad in zip(members.tolist(), theta.grad * R, strict=True):
            by_set[tuple(sorted(row))].append(grad.double())
    print(f"unordered set k={k}, per sampled set (the 5 most frequent): storchastic vs gradbench, same set")
    for key, grads in sorted(by_set.items(), key=lambda kv: -len(kv[1]))[:5]:
        theirs = torch.stack(grads)
        mine = set_estimate(problem, configs[list(key)][None])[0]
        spread = float((theirs - theirs[0]).abs().max())
        rel = float((theirs.mean(0) - mine).norm() / mine.norm())
        print(
            f"  S = {key}: {len(grads)} draws, storchastic spread within S {spread:.1e}, "
            f"‖theirs − ours‖/‖ours‖ = {rel:.3f}"
        )


def storch_moving_average(task_obj, n: int, decay: float) -> torch.Tensor:
    """n estimates of storchastic's ScoreFunction with its moving-average baseline, one estimate per call."""
    import storch

    method = storch.method.ScoreFunction("z", n_samples=1, baseline_factory="moving_average", exponential_decay=decay)
    return torch.cat([storch_batched(task_obj, method, 1) for _ in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="estimates per cell")
    args = parser.parse_args()
    try:
        import storch
    except Exception as exc:  # not installed, or broken against this torch
        print(f"storchastic not importable ({type(exc).__name__}: {exc}); nothing to compare")
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = args.n
    set_n = min(n, 10_000)  # storchastic's unordered set estimator is slow (50 rows per call)
    loop_n = min(n, 4_000)
    from gradbench.registry import get_task

    print(
        f"n = {n} estimates per cell (unordered set: {set_n}; moving average: {loop_n}), "
        f"1 torch thread, torch {torch.__version__}"
    )
    print("bias p: p-value of E[g] = g*; max|z|: largest |mean − g*| in standard errors; ratio: ‖mean‖/‖g*‖")
    print(f"{'comparison':<50} {'task':<32} {'package':<12} {'bias p':>9} {'variance':>10} {'max|z|':>7} {'ratio':>6}")

    def compare(label, task, task_params, mine, peer):
        ours_est, exact = mine
        for who, est in (("gradbench", ours_est), ("storchastic", peer)):
            p, var, z, ratio = summary(est, exact)
            print(f"{label:<50} {task:<32} {who:<12} {p:>9.3g} {var:>10.4g} {z:>7.2f} {ratio:>6.3f}", flush=True)

    sum_target = get_task("sum-target")()
    small = get_task("sum-target")(dim=2, categories=3)
    toy = get_task("bernoulli")()
    toy3 = get_task("bernoulli")(dim=3, logit=0.7, target=0.3)

    compare(
        "rloo m=4 / ScoreFunction batch_average n=4",
        "sum-target",
        {},
        ours("sum-target", "rloo", n, m=4),
        storch_batched(sum_target, storch.method.ScoreFunction("z", n_samples=4, baseline_factory="batch_average"), n),
    )
    for label, task_obj, params in (("bernoulli", toy, {}), ("bernoulli dim=3 logit=0.7 t=0.3", toy3, toy3.config)):
        compare(
            "arm / ARM",
            label,
            params,
            ours("bernoulli", "arm", n, params),
            storch_binary(task_obj, storch.method.ARM("z"), n),
        )
        compare(
            "disarm / DisARM",
            label,
            params,
            ours("bernoulli", "disarm", n, params),
            storch_binary(task_obj, storch.method.DisARM("z"), n),
        )
    for label, task_obj, params in (("sum-target dim=2 K=3", small, small.config), ("sum-target", sum_target, {})):
        for k in (2, 4):
            compare(
                f"unordered-set m={k} / UnorderedSetEstimator k={k}",
                label,
                params,
                ours("sum-target", "unordered-set", set_n, params, m=k),
                torch.cat([storch_unordered_set(task_obj, k, 50) for _ in range(set_n // 50)]),
            )
    small_problem = prepare(
        CellSpec(task="sum-target", estimator="unordered-set", task_params=small.config, dtype="float64")
    ).problem
    unordered_set_per_set(small, small_problem, 4, 40)
    biased_toy = get_task("bernoulli")(target=0.2)
    compare(
        "reinforce-baseline / SF moving_average decay=0.5",
        "bernoulli t=0.2",
        {"target": 0.2},
        ours("bernoulli", "reinforce-baseline", loop_n, {"target": 0.2}),
        storch_moving_average(biased_toy, loop_n, 0.5),
    )


if __name__ == "__main__":
    sys.exit(main())
