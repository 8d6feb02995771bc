"""The flags of the summary and the verdict under ``run``: each rule fires on rows where it must, and only there."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from gradbench.cli import app
from gradbench.judge import along, flags, verdict


def row(*, rho=1.0, cosine=1.0, variance=1e-4, bias_sq=0.0, g=1.0, n=10_000, pvalue=0.5):
    """A row whose mean estimate has ⟨ĝ, g*⟩/‖g*‖² = rho at the given cosine."""
    mean = rho * g / cosine if cosine else 0.0  # ‖ĝ‖
    return {
        "bias": math.sqrt(max(bias_sq, 0) + variance / n),
        "bias_sq": bias_sq,
        "bias_pvalue": pvalue,
        "variance": variance,
        "cosine": cosine,
        "snr": mean / math.sqrt(variance) if variance else math.inf,
        "grad_norm": g,
        "n_samples": n,
    }


def test_along_is_the_share_of_g_star_along_g_star():
    r = row(rho=0.4, cosine=0.8)
    assert along(r["snr"], r["variance"], r["bias"], r["cosine"], r["grad_norm"]) == pytest.approx(0.4)
    # zero variance: from bias and cosine; a perfect estimate carries all of g*
    assert along(math.inf, 0.0, 0.0, 1.0, 2.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # collapsed: a mean 1000× shorter than g* (gapped-ST at small τ), pointing along g*
        (row(rho=1e-3, cosine=0.9), ["collapsed"]),
        # collapsed: pointing across or against g*, measurably
        (row(rho=0.0, cosine=0.0), ["collapsed"]),
        (row(rho=-0.3, cosine=-0.33), ["collapsed"]),
        # not collapsed: a good mean (Gumbel-Softmax on sum-target: cosine 0.94–0.98)
        (row(rho=0.95, cosine=0.96), []),
        # not collapsed: a shrunk mean that still carries 30% of g*
        (row(rho=0.3, cosine=0.9), []),
        # not judged: the noise floor √(variance/n) = 0.5‖g*‖ hides the mean (the Bernoulli needle)
        (row(rho=-0.3, cosine=-0.33, variance=2500.0, n=10_000), ["noise-dominated"]),
    ],
)
def test_collapsed(case, expected):
    assert [f for f in flags(case, averaged=1.0) if f == "collapsed"] == [f for f in expected if f == "collapsed"]


@pytest.mark.parametrize(
    ("variance", "bias_sq", "averaged", "expected"),
    [
        (3.0, 0.0, 1.0, True),  # one estimate's noise (3) > ‖g*‖² (1) and ≫ bias² (0)
        (3.0, 0.0, 12.0, False),  # averaged over 12: noise 0.25 < ‖g*‖²
        (3.0, 0.5, 1.0, False),  # noise 3 < 10 × bias² (5): the bias matters
        (30.0, 0.5, 1.0, True),  # noise 30 ≥ 10 × bias² and ≥ ‖g*‖²
        (0.5, 0.0, 1.0, False),  # noise below ‖g*‖²: the estimate is informative
    ],
)
def test_noise_dominated(variance, bias_sq, averaged, expected):
    case = row(variance=variance, bias_sq=bias_sq, n=10**9)
    assert ("noise-dominated" in flags(case, averaged)) is expected


def run_verdict(*args: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        result = CliRunner().invoke(app, ["run", *args, "--out", f"{folder}/r.csv"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.replace("\n", " ").split("verdict: ")[1:]]
    return " ".join(line.split()).split(" row appended")[0]


def test_the_first_demo_explains_why_no_bias_is_detected():
    text = run_verdict("-e", "gumbel", "--tau", "0.5", "-n", "20000")
    assert text.startswith("gradient below the noise at this n")
    assert "bias not measurable" in text and "use --samples ≥" in text
    needed = int(text.split("--samples ≥ ")[1].split()[0].replace(",", ""))
    assert 800_000 < needed < 1_000_000  # variance 0.0278 / (‖g*‖/4)² with ‖g*‖ = 7.07e-4


def test_verdicts_of_biased_unbiased_and_exact_cells():
    assert run_verdict("-e", "gumbel", "--tau", "0.5", "-t", "sum-target", "-n", "20000").startswith("biased:")
    collapsed = run_verdict("-e", "gapped-st", "--tau", "0.05", "-t", "sum-target", "-n", "20000")
    assert collapsed.startswith("biased:") and "collapsed" in collapsed
    assert run_verdict("-e", "reinforce", "-t", "sum-target", "-n", "20000").startswith("no bias detected")
    assert "zero variance" in run_verdict("-e", "disarm", "-n", "1000")


def test_verdict_rules_on_rows():
    assert verdict({**row(rho=1.0, variance=1e-4), "bias_pvalue": 0.5}).startswith("verdict: no bias detected")
    assert "below the noise" in verdict({**row(variance=1e4, n=100), "bias_pvalue": 0.5})
    biased = verdict({**row(rho=0.5, cosine=0.9, bias_sq=0.25), "bias_pvalue": 1e-9})
    assert biased.startswith("verdict: biased: ‖bias‖ ≈ 50% of ‖g*‖") and "collapsed" not in biased
