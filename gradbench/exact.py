"""Ground truth: E_{z~p_θ}[f(z)] and its gradient w.r.t. θ, exactly, in float64.

A task's own :meth:`~gradbench.core.Task.exact_expectation` comes first (closed forms, per-block enumeration,
Gaussian tasks' closed forms or Gauss–Hermite quadrature); then, for categorical tasks:
Separable tasks (f(z) = Σ_d Σ_k h[d, k] z[d, k] on one-hot z) use the closed form
    E = Σ_d Σ_k p_dk h_dk,     ∂E/∂θ_dj = p_dj (h_dj − Σ_k p_dk h_dk)            (DESIGN.md §5)
Others are enumerated: all K^D configurations, in chunks, with autograd through log p_θ(z).
"""

from __future__ import annotations

import torch

from gradbench.core import Task
from gradbench.errors import GradbenchError

ENUMERATION_LIMIT = 1 << 20
"""Largest number of configurations K^D that is enumerated (1,048,576)."""

_ENUMERATION_CHUNK = 1 << 14


def separable_expectation(theta: torch.Tensor, h: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Closed form for separable f: theta, h D x K (float64) -> (E f, gradient D x K)."""
    p = theta.softmax(-1)  # D x K
    per_var = (p * h).sum(-1, keepdim=True)  # D x 1
    return float(per_var.sum()), p * (h - per_var)


def enumerate_expectation(task: Task, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
    """E f and its gradient by summing p_θ(z) f(z) over all K^D one-hot configurations (float64)."""
    D, K = task.D, task.K
    size = task.n_configurations
    if size > ENUMERATION_LIMIT:
        raise GradbenchError(
            f"task {task.describe()} has {K}^{D} = {size:,} configurations and no closed-form gradient; "
            f"exact enumeration is limited to {ENUMERATION_LIMIT:,}"
        )
    theta = theta.detach().to(torch.float64).requires_grad_(True)
    powers = K ** torch.arange(D, dtype=torch.int64)  # D
    eye = torch.eye(K, dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    with torch.enable_grad():
        log_p = theta.log_softmax(-1)  # D x K
        for start in range(0, size, _ENUMERATION_CHUNK):
            ids = torch.arange(start, min(start + _ENUMERATION_CHUNK, size), dtype=torch.int64)  # M
            digits = (ids[:, None] // powers) % K  # M x D
            z = eye[digits]  # M x D x K
            log_pz = (z * log_p).sum((-1, -2))  # M
            f = task.f(z).to(torch.float64)  # M
            total = total + (log_pz.exp() * f).sum()
        (grad,) = torch.autograd.grad(total, theta)
    return float(total.detach()), grad


def exact_gradient(task: Task, theta: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """(E f, ∇_θ E f) at ``theta`` (default: the task's initial logits), float64 on the CPU."""
    theta = task.initial_logits() if theta is None else theta
    theta = theta.detach().to("cpu", torch.float64)
    own = task.exact_expectation(theta)
    if own is not None:
        value, grad = own
        return float(value), grad.to(torch.float64)
    h = task.separable_values()
    if h is not None:
        return separable_expectation(theta, h.to(torch.float64))
    return enumerate_expectation(task, theta)
