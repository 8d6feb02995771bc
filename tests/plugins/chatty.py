"""A plug-in for the tests that prints while it is imported (its output must not reach stdout)."""

import gradbench

print("hello from a chatty plug-in")


@gradbench.register_estimator
class Chatty(gradbench.Estimator):
    """g = 0, and a greeting on import: a plug-in that would corrupt --format json if its print reached stdout."""

    name = "chatty"
    summary = "always zero, talks on import"
    family = "test"
    unbiased = False

    def estimate(self, problem, rng):
        import torch

        return torch.zeros(rng.n, *problem.theta.shape, dtype=problem.theta.dtype)
