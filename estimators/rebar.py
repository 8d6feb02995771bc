"""REBAR: REINFORCE with the Gumbel-Softmax relaxation as a control variate, made unbiased by conditioning."""

from __future__ import annotations

from collections.abc import Callable

import torch

from gradbench.core import Estimator, Param, Problem, temperature_param
from gradbench.estimators.gumbel_rao import conditional_gumbel, exponentials
from gradbench.estimators.reinforce import one_hot
from gradbench.registry import register_estimator
from gradbench.rng import BlockRng

ControlVariate = Callable[[torch.Tensor], torch.Tensor]
"""c(x): perturbed logits n x D x K -> n values, differentiable in x (row i depending on row i only)."""


def draw(theta: torch.Tensor, rng: BlockRng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The randomness of one REBAR/RELAX estimate: Gumbel noise G (n x D x K) for x = θ + G, the hard sample
    b = argmax x (n x D), and Exp(1) noise E (n x D x K) for the conditional draw x̃ ~ p(x | b)."""
    D, K = theta.shape
    gumbel = rng.gumbel(D, K, dtype=theta.dtype)  # n x D x K
    index = (theta + gumbel).argmax(-1)  # n x D
    return gumbel, index, exponentials(rng, D, K, dtype=theta.dtype)


def control_variate_estimate(
    problem: Problem,
    gumbel: torch.Tensor,
    index: torch.Tensor,
    expo: torch.Tensor,
    c: ControlVariate,
    create_graph: bool = False,
) -> torch.Tensor:
    """g = [f(b) − c(x̃)] ∇_θ log p(b) + ∇_θ c(x) − ∇_θ c(x̃), x = θ + G, x̃ = conditional_gumbel(θ, b, E): n x D x K.

    ∇_θ log p(b) = onehot(b) − p. Both gradients go through θ's n x D x K leaf in one autograd call (x̃ depends on
    θ through the conditional reparameterisation). ``create_graph`` keeps the graph for training c (RELAX).
    """
    theta = problem.theta  # D x K
    n, (D, K) = gumbel.shape[0], theta.shape
    b = one_hot(index, K, theta.dtype)  # n x D x K
    f_b = problem.task.f(b)  # n
    leaf = theta.detach().expand(n, D, K).clone().requires_grad_(True)  # n x D x K
    with torch.enable_grad():
        c_x = c(leaf + gumbel)  # n
        c_tilde = c(conditional_gumbel(leaf, index, expo))  # n
        (grad,) = torch.autograd.grad((c_x - c_tilde).sum(), leaf, create_graph=create_graph)
    weight = f_b - (c_tilde if create_graph else c_tilde.detach())  # n
    return weight[:, None, None] * (b - problem.probs) + grad  # n x D x K


@register_estimator
class Rebar(Estimator):
    """REBAR for categorical variables, with fixed η and τ: with x = θ + G (G Gumbel), b = argmax x ~ p_θ, and
    x̃ ~ p(x | b) drawn afresh by the conditional (top-down) Gumbel construction, σ_τ(x) = softmax(x/τ),

        g = [f(b) − η f(σ_τ(x̃))] ∇_θ log p(b) + η ∇_θ f(σ_τ(x)) − η ∇_θ f(σ_τ(x̃)).

    Unbiased for every η and τ: E[η f(σ_τ(x̃)) ∇ log p(b) + η ∇ f(σ_τ(x̃))] = ∇ E[η f(σ_τ(x))], which the middle term
    estimates. η = 0 is REINFORCE. Costs three evaluations of f (at b, σ_τ(x), σ_τ(x̃)). Tucker, Mnih, Maddison,
    Lawson & Sohl-Dickstein (2017), "REBAR: Low-variance, unbiased gradient estimates for discrete latent variable
    models", NeurIPS (categorical case: their appendix).
    """

    name = "rebar"
    summary = "REBAR: REINFORCE + conditional Gumbel-Softmax control variate; unbiased, fixed η and τ"
    family = "control-variate"
    reference = "Tucker et al. 2017"
    unbiased = True
    needs_relaxation = True
    params = (
        temperature_param(),
        Param("eta", float, 1.0, "scale η of the control variate"),
    )

    @property
    def draws_per_estimate(self) -> int:
        return 3

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        tau, eta = self.config["tau"], self.config["eta"]
        gumbel, index, expo = draw(problem.theta, rng)

        def c(x: torch.Tensor) -> torch.Tensor:
            return eta * problem.task.f((x / tau).softmax(-1))

        return control_variate_estimate(problem, gumbel, index, expo, c)
