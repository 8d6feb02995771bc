"""Surrogate losses as training code writes them, registered as gradbench estimators.

    gradbench audit reinforce-sl --plugin docs/examples/surrogates.py
    gradbench run --plugin docs/examples/surrogates.py -e rebar-sl --est-opt tau=0.5 -t sum-target

The signature (see gradbench/surrogate.py): ``surrogate(logits, f, rng, **hyper_parameters) -> n losses``, with
``logits`` an n x D x K tensor that requires grad (row i: the private copy of θ for estimate i), ``f`` the task's
objective and ``rng`` the cell's random numbers. The estimate is the gradient of the loss with respect to the row.
"""

import torch

import gradbench
from gradbench.estimators.gumbel_rao import conditional_gumbel, exponentials


def reinforce(logits, f, rng):
    """REINFORCE as a surrogate loss (Williams 1992): L = f(z).detach() · log p_θ(z), z ~ p_θ."""
    p = logits[0].detach().softmax(-1)  # D x K (every row holds θ)
    z = torch.nn.functional.one_hot(rng.categorical(p), p.shape[-1]).to(logits)  # n x D x K
    log_p = (z * logits.log_softmax(-1)).sum((-1, -2))  # n
    return f(z).detach() * log_p  # n


def reinforce_forgot_detach(logits, f, rng):
    """A classic bug: the one-hot sample is made differentiable (straight-through: hard + soft − soft.detach()) and
    f(z) is not detached, so ∇f(z)·log p_θ(z) leaks into the gradient. Declared unbiased by its author."""
    D, K = logits.shape[-2:]
    soft = (logits + rng.gumbel(D, K, dtype=logits.dtype)).softmax(-1)  # n x D x K
    hard = torch.nn.functional.one_hot(soft.argmax(-1), K).to(logits)
    z = hard + soft - soft.detach()  # forward: the one-hot sample; backward: through the softmax
    log_p = (hard * logits.log_softmax(-1)).sum((-1, -2))  # n
    return f(z) * log_p  # bug: f(z).detach() was meant


def rebar(logits, f, rng, tau, eta):
    """REBAR (Tucker et al. 2017, eq. 5 with the conditional reparameterisation of their appendix), as a surrogate:
    x = θ + G, b = argmax x, x̃ ~ p(x | b), σ = softmax(·/τ),

        L = [f(b) − η f(σ(x̃))].detach() · log p_θ(b) + η f(σ(x)) − η f(σ(x̃)),

    whose gradient is [f(b) − η f(σ(x̃))] ∇ log p(b) + η ∇f(σ(x)) − η ∇f(σ(x̃)) (x and x̃ depend on θ)."""
    D, K = logits.shape[-2:]
    gumbel = rng.gumbel(D, K, dtype=logits.dtype)  # n x D x K
    index = (logits.detach() + gumbel).argmax(-1)  # n x D
    expo = exponentials(rng, D, K, dtype=logits.dtype)  # n x D x K
    b = torch.nn.functional.one_hot(index, K).to(logits)
    x = logits + gumbel
    x_tilde = conditional_gumbel(logits, index, expo)
    f_relaxed = f((x / tau).softmax(-1))
    f_cond = f((x_tilde / tau).softmax(-1))
    log_p = (b * logits.log_softmax(-1)).sum((-1, -2))
    return (f(b) - eta * f_cond).detach() * log_p + eta * f_relaxed - eta * f_cond


gradbench.register_surrogate("reinforce-sl", reinforce, unbiased=True)
gradbench.register_surrogate("reinforce-sl-nodetach", reinforce_forgot_detach, unbiased=True)
gradbench.register_surrogate(
    "rebar-sl",
    rebar,
    unbiased=True,
    needs_relaxation=True,
    draws_per_estimate=3,
    params=(gradbench.core.temperature_param(), gradbench.Param("eta", float, 1.0, "scale η of the control variate")),
)
