"""Distribution families of the latents: how to draw them and their score ∇_θ log p_θ, written once per family.

An estimator that is the same mathematics on every family (REINFORCE: f(x) ∇_θ log p_θ(x)) asks the problem's
family object (``problem.family``) and contains no case for either family:

    x = family.sample(problem, rng)      # categorical: one-hot n x D x K;  gaussian: real n x D
    s = family.score(problem, x)         # n x D x P, ∇_θ log p_θ(x) per variable (may reuse x's memory)

Categorical (DESIGN.md §3): θ are logits, p = softmax(θ), score onehot(z) − p.

Gaussian: x_d ~ N(μ_d, σ_d²) independently. The task's ``wrt`` option says which parameters θ holds (its P
columns, in this order); the others stay fixed at the task's ``mu``/``sigma``:

    wrt            θ columns        gradient columns reported (CSV K = P)
    mu-sigma       (μ, σ)           (∂/∂μ, ∂/∂σ)           the default, as Mohamed et al. (2020) plot them
    mu-logsigma    (μ, log σ)       (∂/∂μ, ∂/∂log σ = σ ∂/∂σ)
    mu, sigma, logsigma             one column

Score of N(μ, σ²) at x = μ + σε: ∂/∂μ log p = (x − μ)/σ² = ε/σ, ∂/∂σ log p = ((x − μ)²/σ² − 1)/σ = (ε² − 1)/σ.
Estimators that work in (μ, σ) — pathwise, measure-valued — compute both partial derivatives and hand them to
:meth:`GaussianFamily.project`, which selects the ``wrt`` columns and applies the chain rule for log σ.
Mohamed, Rosca, Figurnov & Mnih (2020), "Monte Carlo Gradient Estimation in Machine Learning", JMLR 21, §4–§6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gradbench.core import Problem
    from gradbench.rng import BlockRng

WRT: dict[str, tuple[str, ...]] = {
    "mu-sigma": ("mu", "sigma"),
    "mu-logsigma": ("mu", "logsigma"),
    "mu": ("mu",),
    "sigma": ("sigma",),
    "logsigma": ("logsigma",),
}
"""The Gaussian ``wrt`` choices and the θ columns each gives."""


class CategoricalFamily:
    """D categorical variables, θ logits D x K, p = softmax(θ); samples are one-hot n x D x K."""

    name = "categorical"

    def sample(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        from gradbench.fast import categorical_one_hot

        return categorical_one_hot(problem.probs, rng)  # n x D x K

    def score(self, problem: Problem, z: torch.Tensor) -> torch.Tensor:
        """∇_θ log p_θ(z) = onehot(z) − p, computed in z's memory (z is one-hot n x D x K, overwritten)."""
        return z.sub_(problem.probs)  # n x D x K


CATEGORICAL = CategoricalFamily()


@dataclass(frozen=True)
class GaussianFamily:
    """D independent N(μ, σ²); θ holds the ``wrt`` columns, the other parameter is fixed at ``mu``/``sigma``."""

    mu: float
    sigma: float
    wrt: str = "mu-sigma"
    name = "gaussian"

    @property
    def columns(self) -> tuple[str, ...]:
        return WRT[self.wrt]

    def initial(self, D: int) -> torch.Tensor:
        """θ (float64 D x P) for μ = ``mu`` and σ = ``sigma`` on every variable."""
        value = {"mu": self.mu, "sigma": self.sigma, "logsigma": math.log(self.sigma)}
        return torch.tensor([[value[c] for c in self.columns]] * D, dtype=torch.float64)

    def mu_sigma(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ), each of shape D, from θ (D x P; differentiable through θ's columns)."""
        D = theta.shape[0]
        mu = theta.new_full((D,), self.mu)
        sigma = theta.new_full((D,), self.sigma)
        for j, column in enumerate(self.columns):
            if column == "mu":
                mu = theta[:, j]
            elif column == "sigma":
                sigma = theta[:, j]
            else:
                sigma = theta[:, j].exp()
        return mu, sigma

    def project(self, g_mu: torch.Tensor, g_sigma: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(∂/∂μ, ∂/∂σ), each ... x D, -> the ``wrt`` columns ... x D x P (∂/∂log σ = σ ∂/∂σ)."""
        parts = {"mu": lambda: g_mu, "sigma": lambda: g_sigma, "logsigma": lambda: g_sigma * sigma}
        return torch.stack([parts[c]() for c in self.columns], -1)

    def draw(self, problem: Problem, rng: BlockRng) -> tuple[torch.Tensor, torch.Tensor]:
        """x = μ + σε with ε ~ N(0, 1) from ``rng``: (x, ε), each n x D, in θ's dtype."""
        mu, sigma = self.mu_sigma(problem.theta)  # D, D
        eps = rng.normal(problem.theta.shape[0], dtype=problem.theta.dtype)  # n x D
        return torch.addcmul(mu, sigma, eps), eps

    def sample(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        return self.draw(problem, rng)[0]  # n x D

    def score(self, problem: Problem, x: torch.Tensor) -> torch.Tensor:
        """∇_θ log N(x | μ, σ²): ∂/∂μ = (x − μ)/σ², ∂/∂σ = ((x − μ)²/σ² − 1)/σ, projected on θ: n x D x P."""
        mu, sigma = self.mu_sigma(problem.theta)  # D, D
        eps = (x - mu) / sigma  # n x D
        return self.project(eps / sigma, (eps.square() - 1) / sigma, sigma)
