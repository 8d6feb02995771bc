"""Checkpoints of the digits VAE: trained deterministically by gradbench and cached on disk.

Trainer (documented, fixed): weights from :func:`gradbench.models.vae.init_weights` with a ``torch.Generator``
seeded with :data:`SEED`; then ``steps`` Adam steps (learning rate :data:`LEARNING_RATE`, torch's default betas,
float64) on the relaxed −ELBO of mini-batches of :data:`BATCH` training images (indices drawn with replacement
from the same generator): one Gumbel-Softmax draw per image at temperature :data:`TAU` (Jang et al. 2017, the
usual trainer of categorical VAEs) for the reconstruction term, and KL(q ‖ uniform) in closed form. Checkpoint
c = the weights after c steps; c = 0 is the initial model. Why not the exact −ELBO gradient (the K^L codes
enumerated)? It costs about 30 ms a step at K^L = 4,096 on the development machine (a minute for checkpoint
2,000), against about 1 ms for this trainer; a checkpoint is only a realistic point along training, and every
estimator is then measured at it against the exact gradient.

Cache: one file per checkpoint in :func:`cache_dir` (``$GRADBENCH_CACHE_DIR`` when set, else the user cache
directory of platformdirs, e.g. ``~/.cache/gradbench`` on Linux), named by a hash of every option, the trainer's
settings, the data's binarisation and gradbench's version. The file holds that key and a SHA-256 of the weights; a
file that does not load, holds another key, or fails the checksum is rebuilt (never used), and files are written
atomically (temporary file + rename), so a crash leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

import gradbench
from gradbench.errors import GradbenchError
from gradbench.models import data
from gradbench.models.vae import Weights, encode, init_weights, kl_uniform, reconstruction_nll

CACHE_ENV = "GRADBENCH_CACHE_DIR"
SEED = 20170101
BATCH = 64
LEARNING_RATE = 3e-3
TAU = 1.0


def cache_dir() -> Path:
    """Where checkpoints are cached: ``$GRADBENCH_CACHE_DIR``, else platformdirs' user cache dir for gradbench."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("gradbench"))


def check_cache_dir() -> Path:
    """The cache directory, created if needed; a one-line error when it cannot be written."""
    folder = cache_dir()
    hint = f"set {CACHE_ENV} to a writable folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradbenchError(f"checkpoint cache {folder}: cannot create it ({exc.strerror}); {hint}") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise GradbenchError(f"checkpoint cache {folder} is not a writable folder; {hint}")
    return folder


def checkpoint_key(latents: int, categories: int, hidden: int, steps: int) -> dict:
    return {
        "model": "digits-vae",
        "latents": latents,
        "categories": categories,
        "hidden": hidden,
        "steps": steps,
        "trainer": {
            "seed": SEED,
            "batch": BATCH,
            "lr": LEARNING_RATE,
            "objective": "gumbel-softmax -ELBO",
            "tau": TAU,
            "optim": "adam",
        },
        "data": {"threshold": data.THRESHOLD, "train_size": data.TRAIN_SIZE},
        "gradbench": gradbench.__version__,
    }


def _digest(weights: Weights) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().to(torch.float64).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def train(latents: int, categories: int, hidden: int, steps: int) -> Weights:
    """The documented trainer (module docstring): float64, deterministic for a given machine and torch version."""
    generator = torch.Generator().manual_seed(SEED)
    weights = init_weights(latents, categories, hidden, generator)
    if steps == 0:
        return weights
    x_train = data.digits("train")  # N x 64
    params = [w.requires_grad_(True) for w in weights.values()]
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    info = torch.finfo(torch.float64)
    for _ in range(steps):
        idx = torch.randint(x_train.shape[0], (BATCH,), generator=generator)
        x = x_train[idx]  # B x 64
        u = torch.rand(BATCH, latents, categories, generator=generator, dtype=torch.float64)
        gumbel = -(-u.clamp(info.tiny, 1 - info.eps).log()).log()  # B x L x K
        with torch.enable_grad():
            theta = encode(weights, x, latents, categories)  # B x L x K
            z = ((theta + gumbel) / TAU).softmax(-1)  # B x L x K, relaxed sample
            loss = reconstruction_nll(weights, z.flatten(1), x) + kl_uniform(theta)  # B
            grads = torch.autograd.grad(loss.mean(), params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        optimizer.step()
    return {k: v.detach() for k, v in weights.items()}


def load_checkpoint(latents: int, categories: int, hidden: int, steps: int) -> Weights:
    """The weights at checkpoint ``steps``: from the cache when a valid entry exists, else trained and cached."""
    folder = check_cache_dir()
    key = checkpoint_key(latents, categories, hidden, steps)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = folder / f"digits-vae-{name}.pt"
    if path.exists():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            weights = entry["weights"]
            if entry["key"] == json.dumps(key, sort_keys=True) and entry["sha256"] == _digest(weights):
                return weights
        except Exception:  # unreadable, truncated or foreign: rebuilt below, never used
            pass
    weights = train(latents, categories, hidden, steps)
    buffer = io.BytesIO()
    torch.save({"key": json.dumps(key, sort_keys=True), "sha256": _digest(weights), "weights": weights}, buffer)
    from gradbench.results import write_atomic

    try:
        write_atomic(path, buffer.getvalue())
    except OSError as exc:
        raise GradbenchError(f"checkpoint cache {folder}: cannot write {path.name} ({exc.strerror})") from None
    return weights


def cache_path(latents: int, categories: int, hidden: int, steps: int) -> Path:
    """The file that holds (or will hold) a checkpoint."""
    key = checkpoint_key(latents, categories, hidden, steps)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"digits-vae-{name}.pt"
