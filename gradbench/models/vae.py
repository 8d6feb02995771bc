"""A small discrete-latent VAE, written functionally (weights are a dict of tensors), and its exact objectives.

Model, for an image x ∈ {0, 1}^64 and L latent variables with K categories each (z one-hot, L x K):

- encoder  q_ψ(z | x) = Π_l Categorical(softmax(θ_l)),  θ = W₂ tanh(W₁ x + b₁) + b₂   (L x K logits);
- decoder  p_φ(x | z) = Π_j Bernoulli(σ(a_j)),            a = V₂ tanh(V₁ vec(z) + c₁) + c₂   (64 logits);
- prior    p(z) uniform, K^{-L}.

−ELBO(x) = E_q[−log p_φ(x | z)] + KL(q ‖ uniform), KL = Σ_l Σ_k q_lk log q_lk + L log K (closed form);
log p(x) = logsumexp_c [log p_φ(x | c) − L log K] over the K^L codes c. Because the decoder sees only z, the K^L
codes are decoded once for a whole batch of images: with A (K^L x 64) the decoder logits of every code and
S_c = Σ_j softplus(A_cj), the reconstruction loss is F[i, c] = −log p_φ(x_i | c) = S_c − x_i · A_c, a matrix
product. This makes exact evaluation and exact gradients cheap whenever K^L is (4,096 codes by default).
"""

from __future__ import annotations

import math

import torch

from gradbench.models.data import PIXELS

Weights = dict[str, torch.Tensor]


def init_weights(latents: int, categories: int, hidden: int, generator: torch.Generator) -> Weights:
    """Uniform(±1/√fan_in) weights and biases (torch.nn.Linear's rule), float64, drawn in a fixed order."""

    def layer(fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return w, b

    w1, b1 = layer(PIXELS, hidden)
    w2, b2 = layer(hidden, latents * categories)
    v1, v2 = layer(latents * categories, hidden)
    v3, v4 = layer(hidden, PIXELS)
    return {"enc.w1": w1, "enc.b1": b1, "enc.w2": w2, "enc.b2": b2, "dec.w1": v1, "dec.b1": v2, "dec.w2": v3,
            "dec.b2": v4}  # fmt: skip


def encode(weights: Weights, x: torch.Tensor, latents: int, categories: int) -> torch.Tensor:
    """Encoder logits θ: x (B x 64) -> B x L x K."""
    h = torch.tanh(x @ weights["enc.w1"].T + weights["enc.b1"])  # B x H
    return (h @ weights["enc.w2"].T + weights["enc.b2"]).view(x.shape[0], latents, categories)


def decode(weights: Weights, z: torch.Tensor) -> torch.Tensor:
    """Decoder pixel logits: z (... x L·K, one-hot per latent or on the simplex) -> ... x 64."""
    h = torch.tanh(z @ weights["dec.w1"].T + weights["dec.b1"])  # ... x H
    return h @ weights["dec.w2"].T + weights["dec.b2"]  # ... x 64


def reconstruction_nll(weights: Weights, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p_φ(x | z) = Σ_j softplus(a_j) − x_j a_j: z (... x B x L·K), x (B x 64) -> ... x B."""
    a = decode(weights, z)  # ... x B x 64
    return (torch.nn.functional.softplus(a) - x * a).sum(-1)


def all_codes(latents: int, categories: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every code as one-hot rows: K^L x L x K, code c having digits c_l = (c // K^l) % K."""
    powers = categories ** torch.arange(latents, dtype=torch.int64)  # L
    ids = torch.arange(categories**latents, dtype=torch.int64)  # C
    digits = (ids[:, None] // powers) % categories  # C x L
    return torch.eye(categories, dtype=dtype)[digits]  # C x L x K


def code_losses(weights: Weights, codes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """F[i, c] = −log p_φ(x_i | code c) for every image and code: codes C x L x K, x B x 64 -> B x C."""
    a = decode(weights, codes.flatten(1))  # C x 64
    s = torch.nn.functional.softplus(a).sum(-1)  # C
    return s[None, :] - x @ a.T  # B x C


def code_log_q(theta: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """log q(c | x_i) for every image and code: θ B x L x K, codes C x L x K -> B x C."""
    log_p = theta.log_softmax(-1)  # B x L x K
    return torch.einsum("blk,clk->bc", log_p, codes)


def kl_uniform(theta: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ uniform) per image: θ B x L x K -> B, Σ_l Σ_k q log q + L log K."""
    log_q = theta.log_softmax(-1)
    L, K = theta.shape[-2:]
    return (log_q.exp() * log_q).sum((-1, -2)) + L * math.log(K)


def exact_objectives(
    weights: Weights, x: torch.Tensor, latents: int, categories: int, codes: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (−ELBO, −log p(x)) per image, by enumerating the K^L codes; images in chunks of ``chunk`` so memory
    stays at chunk x K^L. x B x 64 -> (B, B)."""
    L, K = latents, categories
    a = decode(weights, codes.flatten(1))  # C x 64
    s = torch.nn.functional.softplus(a).sum(-1)  # C
    neg_elbo, nll = [], []
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk]  # b x 64
        F = s[None, :] - xb @ a.T  # b x C
        theta = encode(weights, xb, L, K)  # b x L x K
        log_q = code_log_q(theta, codes)  # b x C
        neg_elbo.append((log_q.exp() * F).sum(-1) + kl_uniform(theta))
        nll.append(-torch.logsumexp(-F, -1) + L * math.log(K))
    return torch.cat(neg_elbo), torch.cat(nll)
