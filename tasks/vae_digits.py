"""``vae-digits``: a categorical VAE on scikit-learn's binarised digits (model code in :mod:`gradbench.models`)."""

from __future__ import annotations

from gradbench.models.task import DigitsTask, model_params
from gradbench.registry import register_task


@register_task
class VaeDigits(DigitsTask):
    """θ = encoder logits of the first ``images`` training digits (8 x 8, binarised at grey level ≥ 8 of 16) at
    checkpoint ``checkpoint`` of a VAE with ``latents`` = L categorical latents of ``categories`` = K classes each
    (default L = 4, K = 8: 4,096 codes per image), one-hidden-layer tanh MLPs of ``hidden`` units, uniform prior.

    D = images·L, K = categories; f(z) = Σ_i −log p_φ(x_i | z_i) (the reconstruction part of the negative ELBO;
    KL(q ‖ uniform) has a closed form). Initial θ: the encoder's logits at the checkpoint. Exact gradient: each
    image's K^L codes enumerated. Checkpoints are trained by gradbench (:mod:`gradbench.models.checkpoints`) and
    cached. Kingma & Welling (2014) for the VAE; Jang, Gu & Poole (2017) for categorical latents on MNIST-like data.
    """

    name = "vae-digits"
    summary = "categorical VAE on binarised 8x8 digits: θ = encoder logits at a checkpoint (model task)"
    params = model_params(latents_default=4, latents_high=None, categories=True)
