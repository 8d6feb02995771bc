"""``sbn-digits``: a Bernoulli-latent VAE (one-layer sigmoid belief network decoder) on the binarised digits."""

from __future__ import annotations

from gradbench.models.task import DigitsTask, model_params
from gradbench.registry import register_task


@register_task
class SbnDigits(DigitsTask):
    """θ = encoder logits of the first ``images`` training digits at checkpoint ``checkpoint`` of a VAE with
    ``latents`` = L ≤ 12 binary latents (K = 2, bit b = z[..., 1], default L = 8: 256 codes per image) and the same
    MLPs and uniform prior as ``vae-digits``, so the binary-only estimators (ARM, DisARM, …) apply to a real model.

    D = images·L, K = 2; f(z) = Σ_i −log p_φ(x_i | z_i). Initial θ: the encoder's logits at the checkpoint. Exact
    gradient: each image's 2^L codes enumerated. The sigmoid-belief-network VAE of Mnih & Gregor (2014) and of the
    REBAR/RELAX/ARM/DisARM benchmarks, with one stochastic layer.
    """

    name = "sbn-digits"
    summary = "binary-latent VAE (L ≤ 12) on binarised 8x8 digits: θ = encoder logits at a checkpoint (model task)"
    params = model_params(latents_default=8, latents_high=12, categories=False)
