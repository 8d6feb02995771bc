"""ARSM: Augment-REINFORCE-Swap-Merge for categorical variables."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Problem, Task
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng


def swap_pairs(K: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct swaps: (c, j) with c < j, preceded by (0, 0) (no swap): S = K(K − 1)/2 + 1 pairs."""
    c, j = torch.triu_indices(K, K, 1, device=device)
    zero = torch.zeros(1, dtype=torch.int64, device=device)
    return torch.cat((zero, c)), torch.cat((zero, j))


def pseudo_actions(log_pi: torch.Tensor, theta: torch.Tensor, c: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """z^{c⇌j}_d = argmin_i (log π^{c⇌j}_di − θ_di) for every swap (c, j) and variable d, π^{c⇌j} being π with
    entries c and j exchanged: log_pi n x D x K, θ D x K, c, j S -> one-hot n x S x D x K."""
    n, D, K = log_pi.shape
    S = c.shape[0]
    perm = torch.arange(K, device=theta.device).repeat(S, 1)  # S x K
    rows = torch.arange(S, device=theta.device)
    perm[rows, c], perm[rows, j] = j, c  # perm_s = the transposition (c_s j_s)
    swapped = log_pi[:, :, perm]  # n x D x S x K: log π^{c⇌j}
    index = (swapped - theta[:, None, :]).argmin(-1).transpose(1, 2)  # n x S x D
    return (index[..., None] == torch.arange(K, device=theta.device)).to(theta.dtype)  # one-hot


@register_estimator
class Arsm(Estimator):
    """ARSM (Augment-REINFORCE-Swap-Merge). Per variable d draw π_d ~ Dirichlet(1_K); z_d = argmin_i (log π_di −
    θ_di) is then ~ Categorical(softmax θ_d). For every swap c⇌j let z^{c⇌j} be the configuration whose variable d is
    argmin_i (log π^{c⇌j}_di − θ_di), with entries c and j of every π_d exchanged (the same swap in all variables,
    the paper's multivariate form), so z^{c⇌c} = z and z^{c⇌j} = z^{j⇌c}. With F_cj = f(z^{c⇌j}):

        g_dc = Σ_j (F_cj − (1/K) Σ_m F_mj) (1/K − π_dj).

    Unbiased. f is evaluated at the K(K − 1)/2 + 1 distinct pseudo actions (``evals_on``: 2 for K = 2, where ARSM is
    ARM on the logit difference). Yin, Yue & Zhou (2019), "ARSM: Augment-REINFORCE-Swap-Merge Estimator for Gradient
    Backpropagation Through Categorical Variables", ICML, eqs. for the multivariate case.
    """

    name = "arsm"
    summary = "Augment-REINFORCE-Swap-Merge: Dirichlet noise, K(K−1)/2 + 1 swapped pseudo actions; unbiased"
    family = "antithetic"
    reference = "Yin, Yue & Zhou 2019"
    unbiased = True
    cost_formula = "K(K−1)/2 + 1"

    def evals_on(self, task: Task) -> int:
        return task.K * (task.K - 1) // 2 + 1

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        theta = problem.theta
        D, K = theta.shape
        e = rng.open_uniform(D, K, dtype=theta.dtype).log_().neg_()  # n x D x K, Exp(1)
        pi = e / e.sum(-1, keepdim=True)  # n x D x K, Dirichlet(1_K)
        return arsm_from_pi(problem, pi)


def arsm_from_pi(problem: Problem, pi: torch.Tensor) -> torch.Tensor:
    """The ARSM estimate for given Dirichlet draws π (n x D x K) -> n x D x K."""
    theta = problem.theta
    D, K = theta.shape
    c, j = swap_pairs(K, theta.device)
    values = problem.task.f(pseudo_actions(pi.log(), theta, c, j))  # n x S
    F = values.new_empty((values.shape[0], K, K))  # n x K x K, symmetric, F_cc = f(z)
    F[:, c, j] = values
    F[:, j, c] = values
    F[:, torch.arange(K), torch.arange(K)] = values[:, :1]
    centred = F - F.mean(1, keepdim=True)  # n x K x K: F_cj − (1/K) Σ_m F_mj
    return torch.einsum("ncj,ndj->ndc", centred, 1.0 / K - pi)  # n x D x K
