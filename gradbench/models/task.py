"""The digits model tasks: θ = encoder logits of a fixed set of training images at a checkpoint of the VAE.

For ``images`` = I images and L latents of K categories, the task has D = I·L variables (image i owns variables
i·L … i·L + L − 1) and

    f(z) = Σ_i −log p_φ(x_i | z_i),

the reconstruction part of the summed negative ELBO. The other part, KL(q_θ ‖ uniform), is a closed-form function
of θ with no expectation to estimate, so it is left out of f (training adds its exact gradient for every estimator
alike, see :mod:`gradbench.train`). f is defined on the simplex too (the decoder takes relaxed codes), so
relaxation estimators apply. Exact ground truth enumerates each image's K^L codes (not K^D): see
:meth:`DigitsTask.exact_expectation`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from gradbench.core import Param, Task
from gradbench.errors import GradbenchError
from gradbench.models import data, vae
from gradbench.models.checkpoints import check_cache_dir, load_checkpoint

CODE_LIMIT = 1 << 16
"""Largest number of codes K^L per image that a digits task enumerates (65,536)."""
_CHUNK_ENTRIES = 1 << 22  # images x codes per enumeration chunk (32 MiB of float64)


def model_params(latents_default: int, latents_high: int | None, categories: bool) -> tuple[Param, ...]:
    """Options shared by the digits tasks."""
    params = [Param("latents", int, latents_default, "latent variables L per image", low=1, high=latents_high)]
    if categories:
        params.append(Param("categories", int, 8, "categories K of each latent variable", low=2))
    params += [
        Param("hidden", int, 64, "hidden units of the encoder's and the decoder's MLP", low=1),
        Param("images", int, 32, "training images whose encoder logits are θ (the first ones)", low=1,
              high=data.TRAIN_SIZE),
        Param("checkpoint", int, 0, "training steps of the model done (0: the initial model)", low=0),
    ]  # fmt: skip
    return tuple(params)


class DigitsTask(Task):
    """Base of the digits model tasks (subclasses set ``name``, ``params`` and the number of categories)."""

    relaxable = True
    default_sweep = False  # seconds per cell (RELAX trains through the decoder): opt-in, run by name

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.L = self.config["latents"]
        self.K = self.config.get("categories", 2)
        self.images = self.config["images"]
        self.D = self.images * self.L
        codes = self.K**self.L
        if codes > CODE_LIMIT:
            raise GradbenchError(
                f"task {self.name!r}: {self.K}^{self.L} = {codes:,} codes per image; exact evaluation enumerates "
                f"them and is limited to {CODE_LIMIT:,}"
            )
        check_cache_dir()  # an unwritable cache is an input error, found before any work
        self._weights: vae.Weights | None = None
        self._x: torch.Tensor | None = None
        self._converted: dict[tuple[torch.dtype, torch.device], tuple[vae.Weights, torch.Tensor]] = {}

    # --- the model and data, loaded on first use ----------------------------------------------------------------

    @property
    def weights(self) -> vae.Weights:
        """The checkpoint's weights, float64 (loaded, or trained and cached, on first use)."""
        if self._weights is None:
            c = self.config
            self._weights = load_checkpoint(self.L, self.K, c["hidden"], c["checkpoint"])
        return self._weights

    @property
    def x(self) -> torch.Tensor:
        """The task's images, float64 I x 64."""
        if self._x is None:
            self._x = data.digits("train")[: self.images]
        return self._x

    def bound(self, weights: vae.Weights, x: torch.Tensor) -> DigitsTask:
        """The same task at other weights (detached) and images (I' x 64): what training hands the estimators."""
        other = copy.copy(self)
        other._weights = {k: v.detach() for k, v in weights.items()}
        other._x = x.detach()
        other.images = x.shape[0]
        other.D = other.images * self.L
        other._converted = {}
        return other

    def _model(self, dtype: torch.dtype, device: torch.device) -> tuple[vae.Weights, torch.Tensor]:
        key = (dtype, device)
        if key not in self._converted:
            w = {k: v.to(device=device, dtype=dtype) for k, v in self.weights.items()}
            self._converted[key] = (w, self.x.to(device=device, dtype=dtype))
        return self._converted[key]

    # --- the Task contract --------------------------------------------------------------------------------------

    def initial_logits(self) -> torch.Tensor:
        """θ = the encoder's logits of the task's images at the checkpoint, float64 (I·L) x K."""
        theta = vae.encode(self.weights, self.x, self.L, self.K)  # I x L x K
        return theta.reshape(self.D, self.K).detach()

    def f(self, z: torch.Tensor) -> torch.Tensor:
        """Σ_i −log p_φ(x_i | z_i): z ... x (I·L) x K (one-hot or relaxed) -> ..."""
        w, x = self._model(z.dtype, z.device)
        codes = z.reshape(*z.shape[:-2], self.images, self.L * self.K)  # ... x I x L·K
        return vae.reconstruction_nll(w, codes, x).sum(-1)  # ...

    def exact_expectation(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """E f = Σ_i Σ_c q_θ(c | i) F[i, c] over each image's K^L codes c, F[i, c] = −log p_φ(x_i | c), and its
        gradient by autograd through log q_θ; images in chunks (at most 2²² image-code pairs at a time)."""
        w, x = self._model(torch.float64, torch.device("cpu"))
        codes = vae.all_codes(self.L, self.K)  # C x L x K
        n_codes = codes.shape[0]
        theta = theta.detach().to(torch.float64).reshape(self.images, self.L, self.K)
        chunk = max(1, _CHUNK_ENTRIES // n_codes)
        total = 0.0
        grads = []
        for start in range(0, self.images, chunk):
            leaf = theta[start : start + chunk].clone().requires_grad_(True)  # b x L x K
            losses = vae.code_losses(w, codes, x[start : start + chunk])  # b x C
            with torch.enable_grad():
                value = (vae.code_log_q(leaf, codes).exp() * losses).sum()
                (grad,) = torch.autograd.grad(value, leaf)
            total += float(value.detach())
            grads.append(grad)
        return total, torch.cat(grads).reshape(self.D, self.K)
