"""A plug-in for the tests: a task with no relaxation, and an estimator that registers from a file."""

import torch

import gradbench


@gradbench.register_task
class ParityTask(gradbench.Task):
    """f(z) = parity of the number of ones among dim binary variables; D = dim, K = 2, θ = 0. Not relaxable."""

    name = "parity"
    summary = "parity of the ones (discrete only)"
    relaxable = False
    params = (gradbench.Param("dim", int, 3, "binary variables", low=1),)

    def __init__(self, **options):
        super().__init__(**options)
        self.D, self.K = self.config["dim"], 2

    def initial_logits(self):
        return torch.zeros(self.D, 2, dtype=torch.float64)

    def f(self, z):
        return z[..., 1].sum(-1).remainder(2)


@gradbench.register_estimator
class Zero(gradbench.Estimator):
    """g = 0: a plug-in estimator (biased whenever the gradient is not zero)."""

    name = "zero"
    summary = "always zero"
    family = "test"
    unbiased = False

    def estimate(self, problem, rng):
        return torch.zeros(rng.n, *problem.theta.shape, dtype=problem.theta.dtype)
