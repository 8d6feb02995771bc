"""Ground truth: closed forms, enumeration and finite differences agree, and match DESIGN.md §5."""

from __future__ import annotations

import pytest
import torch

from gradbench.errors import GradbenchError
from gradbench.exact import ENUMERATION_LIMIT, enumerate_expectation, exact_gradient, separable_expectation
from gradbench.tasks.bernoulli import Bernoulli
from gradbench.tasks.sum_target import SumTarget
from tests.helpers import TASKS

# Small option sets so every task can be enumerated; a task without dim/categories uses its defaults.
SMALL = {"dim": 3, "categories": 3, "images": 1, "latents": 2}


def small_task(cls):
    opts = {p.name: SMALL[p.name] for p in cls.params if p.name in SMALL}
    if cls.name == "bernoulli":
        opts = {"dim": 3, "logit": 0.7, "target": 0.3}
    return cls(**opts)


def objective(task, theta: torch.Tensor) -> float:
    value, _ = enumerate_expectation(task, theta)
    return value


@pytest.mark.parametrize("task_name", [n for n, c in TASKS.items() if c.family == "categorical"])
def test_gradient_matches_central_finite_differences(task_name):
    task = small_task(TASKS[task_name])
    theta = task.initial_logits()
    _, grad = exact_gradient(task, theta)
    h = 1e-6
    fd = torch.zeros_like(theta)
    for idx in torch.cartesian_prod(*(torch.arange(s) for s in theta.shape)):
        d, k = idx.tolist()
        up, down = theta.clone(), theta.clone()
        up[d, k] += h
        down[d, k] -= h
        fd[d, k] = (objective(task, up) - objective(task, down)) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("task_name", [n for n, c in TASKS.items() if c().separable_values() is not None])
def test_closed_form_equals_enumeration(task_name):
    task = small_task(TASKS[task_name])
    theta = task.initial_logits()
    value_cf, grad_cf = separable_expectation(theta, task.separable_values())
    value_en, grad_en = enumerate_expectation(task, theta)
    assert value_cf == pytest.approx(value_en, rel=1e-12)
    torch.testing.assert_close(grad_cf, grad_en, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("target", [0.499, 0.45, 0.2])
def test_bernoulli_closed_form_from_design(target):
    # DESIGN.md §5: at θ = (0, 0), ∂E/∂θ_1 = ¼(1 − 2t) = −∂E/∂θ_0.
    _, grad = exact_gradient(Bernoulli(target=target))
    expected = 0.25 * (1 - 2 * target)
    torch.testing.assert_close(grad, torch.tensor([[-expected, expected]], dtype=torch.float64))


def test_single_categorical_formula():
    # ∂E/∂θ_j = p_j (f(e_j) − Σ_k p_k f(e_k)) for one categorical, checked on sum-target with D = 1.
    task = SumTarget(dim=1, categories=5, target=0.3)
    theta = task.initial_logits()
    p = theta.softmax(-1)[0]
    f = torch.stack([task.f(torch.eye(5, dtype=torch.float64)[j][None]) for j in range(5)])
    expected = p * (f - (p * f).sum())
    _, grad = exact_gradient(task, theta)
    torch.testing.assert_close(grad[0], expected)


def test_enumeration_limit_is_a_clear_error():
    task = SumTarget(dim=30, categories=4)
    with pytest.raises(GradbenchError, match=r"4\^30 = .* limited to 1,048,576"):
        exact_gradient(task)
    assert ENUMERATION_LIMIT == 1 << 20
