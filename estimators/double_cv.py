"""Double control variates: RLOO whose leave-one-out baseline carries a first-order Taylor control variate."""

from __future__ import annotations

import torch

from gradbench.core import Estimator, Param, Problem
from gradbench.estimators.rloo import draw_many, multi_draw_config, rloo_combine
from gradbench.estimators.score_function import PILOT_BLOCK, PILOT_STREAM
from gradbench.fast import grad_f
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng, block_seed


def covariance_product(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Cov[onehot(z)] v per variable, = E[⟨v, onehot(z) − p⟩ (onehot(z) − p)] = p ⊙ (v − ⟨p, v⟩):
    p D x K, v ... x D x K -> ... x D x K."""
    return p * (v - (p * v).sum(-1, keepdim=True))


def double_cv_parts(
    f: torch.Tensor, score: torch.Tensor, grads: torch.Tensor, p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of the double-CV estimate g = g₀ + α g₁ from m draws' values f (n x m), scores
    onehot(z_k) − p (n x m x D x K) and gradients ∇f(z_k) (n x m x D x K): g₀ is RLOO on f, g₁ = RLOO on the Taylor
    terms c_k minus their analytic mean Cov[onehot(z)] ḡ (the formula of :class:`DoubleCv`); each n x D x K."""
    m = f.shape[1]
    loo_grad = (grads.sum(1, keepdim=True) - grads) / (m - 1)  # n x m x D x K: ḡ_{−k}
    taylor = (loo_grad * score).sum((2, 3))  # n x m: c_k = ⟨ḡ_{−k}, onehot(z_k) − p⟩
    analytic = covariance_product(p, grads.mean(1))  # n x D x K: Cov[onehot(z)] ḡ
    return rloo_combine(f, score), rloo_combine(taylor, score).sub_(analytic)


def best_alpha(g0: torch.Tensor, g1: torch.Tensor) -> float:
    """The α that minimises the trace of the covariance of g₀ + α g₁ over the rows given (n x D x K each):
    α* = −Σ_j Cov(g₀_j, g₁_j) / Σ_j Var(g₁_j), 0 when g₁ does not vary."""
    a = g0.reshape(g0.shape[0], -1).to(torch.float64)
    b = g1.reshape(g1.shape[0], -1).to(torch.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    v1 = float(b.square().sum())
    return 0.0 if v1 == 0.0 else -float((a * b).sum()) / v1


@register_estimator
class DoubleCv(Estimator):
    """Double control variates on top of RLOO. With m independent draws z_1..z_m ~ p_θ, scores
    s_k = onehot(z_k) − p, gradients G_k = ∇f(z_k) of the relaxed f at the hard samples and their leave-one-out mean
    ḡ_{−k} = (1/(m − 1)) Σ_{j≠k} G_j, the second control variate is the first-order Taylor term
    c_k = ⟨ḡ_{−k}, s_k⟩, and

        h_k = f(z_k) + α c_k,
        g = (1/m) Σ_k (h_k − (1/(m − 1)) Σ_{j≠k} h_j) s_k − α Cov[onehot(z)] ḡ,   ḡ = (1/m) Σ_k G_k,

    Cov[onehot(z)] v = p ⊙ (v − ⟨p, v⟩) per variable: RLOO applied to h instead of f, the mean of the α c_k s_k
    terms subtracted analytically. Unbiased for every α fixed before the draws: ḡ_{−k} does not depend on z_k, so
    E[c_k s_k | z_{−k}] = Cov[onehot(z)] ḡ_{−k} and (1/m) Σ_k ḡ_{−k} = ḡ; each c_j (j ≠ k) in the baseline of draw k
    has mean zero given every draw but z_j, which is independent of s_k. α = 0 is RLOO; α = −1 makes h_k constant when
    f is linear in z (the baseline then predicts f(z_k) from the other draws' values and gradients), so the estimate
    is exact for linear f.

    α: the paper learns α alongside the model by minimising the variance. Here, so that the estimator is one fixed
    function of its hyper-parameters, ``setup`` fits α once from a pilot of ``pilot`` estimates drawn from their own
    stream (``pilot_seed``, not the cell's seed): g = g₀ + α g₁ is linear in α, so the variance-minimising α is
    −Σ_j Cov(g₀_j, g₁_j) / Σ_j Var(g₁_j); then α is frozen, and g stays unbiased. With ``pilot = 0`` the fixed
    ``alpha`` is used instead. Costs m evaluations of f per estimate, each with its gradient (the counting rule of
    ``evals_per_estimate``), plus the pilot once per cell (setup, not timed); needs f on the simplex for ∇f.
    Titsias & Shi (2022), "Double Control Variates for Gradient Estimation in Discrete Latent Variable Models",
    AISTATS, sec. 3 (the double control variate for RLOO from Taylor expansions); the sign convention of α and the
    analytic correction follow the authors' estimator for m draws.
    """

    name = "double-cv"
    summary = "RLOO whose baseline carries a Taylor control variate (∇f of the other draws), α fitted; unbiased"
    family = "control-variate"
    reference = "Titsias & Shi 2022"
    unbiased = True
    needs_relaxation = True
    params = (
        multi_draw_config(),
        Param("pilot", int, 4096, "pilot estimates that fit α in setup (0: use the fixed alpha)", low=0),
        Param("pilot_seed", int, 0, "seed of the pilot's draws (not the cell's seed)", low=0),
        Param("alpha", float, -1.0, "fixed α when pilot = 0 (0: RLOO; −1: exact for linear f)"),
    )
    cost_formula = "m + fit of α"
    default_sweep = False  # the default sweep must stay under a minute on 2 workers: opt-in, like indecater

    @property
    def draws_per_estimate(self) -> int:
        return self.config["m"]

    def setup(self, problem: Problem, seed: int) -> None:
        self.alpha = self.config["alpha"]
        n = self.config["pilot"]
        if n == 0:
            return
        sizes = [PILOT_BLOCK] * (n // PILOT_BLOCK) + ([n % PILOT_BLOCK] if n % PILOT_BLOCK else [])
        rng = BlockRng(block_seed(self.config["pilot_seed"], PILOT_STREAM), 0, sizes, problem.theta.device)
        self.alpha = best_alpha(*self.parts(problem, rng))

    def parts(self, problem: Problem, rng: BlockRng) -> tuple[torch.Tensor, torch.Tensor]:
        """g₀ and g₁ (n x D x K each) for rng.n fresh estimates."""
        m = self.config["m"]
        z, f, score = draw_many(problem, rng, m)  # z, score: n x m x D x K; f: n x m
        n, _, D, K = z.shape
        grads = grad_f(problem.task, z.view(n * m, D, K)).view(n, m, D, K)  # ∇f(z_k)
        return double_cv_parts(f, score, grads, problem.probs)

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        g0, g1 = self.parts(problem, rng)
        return g0.add_(g1, alpha=self.alpha)  # n x D x K
