"""The estimator table of docs/estimators.md, generated from the registry (``gradbench list --format markdown``)."""

from __future__ import annotations

import re

from gradbench.core import REQUIRED, Estimator, Param


def describe_param(p: Param) -> str:
    """``name`` (default …, range)."""
    default = "required" if p.default is REQUIRED else f"default {p.default}"
    rng = p.describe_range()
    return f"`{p.name}` ({default}{', ' + rng if rng else ''})"


HEADER = (
    "# Estimators\n\n"
    "Generated from the registry by `gradbench list --format markdown > docs/estimators.md` "
    "(a test checks that this file equals the command's output). Cost: evaluations of f per estimate, with the "
    "hyper-parameters' defaults; D·K and K(K−1)/2 + 1 depend on the task (D variables, K categories), and "
    "`draws_per_estimate` in the results holds the number for the cell's task. The formula, paper and known-answer "
    "tests of each estimator are in its module's docstring (`estimators/<name>.py`).\n"
)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def default_instance(cls: type[Estimator]) -> Estimator:
    """The estimator at its defaults, a required τ set to max(1, its lower bound)."""
    given = {p.name: max(1.0, p.low or 0.0) for p in cls.params if p.default is REQUIRED and p.name == "tau"}
    return cls(**given)


def cost_text(cls: type[Estimator]) -> str:
    """f evaluations per estimate: the declared formula (with the defaults of the hyper-parameters it names), or the
    constant ``draws_per_estimate``."""
    if cls.cost_formula is None:
        if any(p.required and p.name != "tau" for p in cls.params):
            return "depends on the required hyper-parameters"
        return str(default_instance(cls).draws_per_estimate)
    named = [p for p in cls.params if re.search(rf"\b{re.escape(p.name)}\b", cls.cost_formula)]
    defaults = ", ".join(f"{p.name} = {p.default}" for p in named)
    return cls.cost_formula + (f" ({defaults} by default)" if defaults else "")


def estimators_markdown(estimators: dict[str, type[Estimator]]) -> str:
    """docs/estimators.md: one row per registered estimator, then the opt-in ones with the command to run them."""
    lines = [
        HEADER,
        "| estimator | family | unbiased | f evaluations per estimate | needs relaxation | binary only "
        "| default sweep | hyper-parameters | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cls in sorted(estimators.items()):
        cells = [
            f"`{name}`",
            cls.family,
            _yes(cls.unbiased),
            cost_text(cls),
            _yes(cls.needs_relaxation),
            _yes(cls.binary_only),
            _yes(cls.default_sweep),
            "; ".join(describe_param(p) for p in cls.params) or "—",
            cls.reference or "—",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    opt_in = sorted(name for name, cls in estimators.items() if not cls.default_sweep)
    if opt_in:
        lines += [
            "",
            "## Opt-in estimators",
            "",
            "Left out of `gradbench sweep --estimators all` (the default grid must finish in under a minute with 2 "
            "workers); run them by name, e.g.",
            "",
            "```",
            f"gradbench sweep --estimators {','.join(opt_in)} --out results/opt_in.csv",
            "```",
        ]
    return "\n".join(lines) + "\n"
