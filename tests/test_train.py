"""``gradbench train``: trajectories against hand-computed optimizers, divergence, files, resume, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.core import Estimator
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.train import TRAIN_COLUMNS, TrainSettings, plan_runs, read_train_rows, train_run
from tests.helpers import assert_one_line_error

T, LOGIT = 0.3, 0.4  # a Bernoulli toy with a visible gradient


def exact_bernoulli(theta: torch.Tensor, t: float = T) -> tuple[float, torch.Tensor]:
    """E f and ∇_θ E f for f = (b − t)², D = 1, by hand: p = softmax(θ), h = (t², (1 − t)²)."""
    p = theta.softmax(-1)
    h = torch.tensor([t**2, (1 - t) ** 2], dtype=torch.float64)
    value = (p * h).sum()
    return float(value), p * (h - value)


def hand_trajectory(optimizer: str, lr: float, steps: int) -> list[float]:
    """E f after each step of SGD or Adam (β = 0.9, 0.999, ε = 1e-8, bias-corrected) on the exact gradient."""
    theta = torch.tensor([[0.0, LOGIT]], dtype=torch.float64)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    values = [exact_bernoulli(theta)[0]]
    for step in range(1, steps + 1):
        _, g = exact_bernoulli(theta)
        if optimizer == "sgd":
            theta = theta - lr * g
        else:
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
            theta = theta - lr * m_hat / (v_hat.sqrt() + 1e-8)
        values.append(exact_bernoulli(theta)[0])
    return values


def trained(estimators, steps=30, seeds=(0,), task="bernoulli", task_opts=None, taus=(0.5,), **settings):
    s = TrainSettings(steps=steps, **{"eval_every": 1, "eval_samples": 64, **settings})
    opts = {"target": str(T), "logit": str(LOGIT)} if task == "bernoulli" else {}
    runs = plan_runs(task, estimators, list(taus), list(seeds), s, task_opts={**opts, **(task_opts or {})})
    return [train_run(r.spec) for r in runs]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_exact_estimator_follows_the_hand_computed_optimizer_trajectory(optimizer):
    (rows,) = trained(["exact"], steps=40, optimizer=optimizer, lr=0.5, dtype="float64")
    expected = hand_trajectory(optimizer, 0.5, 40)
    assert [r["step"] for r in rows] == list(range(41))
    got = [r["objective"] for r in rows]
    assert got == pytest.approx(expected, rel=1e-12, abs=0)
    assert expected[-1] < expected[0] - 0.01  # the trajectory really moved
    assert all(r["variance"] == 0.0 and r["status"] == "ok" for r in rows)


def test_columns_bookkeeping_and_the_same_metrics_as_run():
    from gradbench.runner import CellSpec, run_cell

    (rows,) = trained(["rloo"], steps=6, eval_every=3, batch_estimates=4, eval_samples=256)
    assert [r["step"] for r in rows] == [0, 3, 6]
    c = rows[0]["draws_per_estimate"]
    assert c > 1 and [r["f_evals"] for r in rows] == [0, 3 * 4 * c, 6 * 4 * c]  # M × draws per estimate × steps
    assert all(set(TRAIN_COLUMNS) <= set(r) for r in rows)
    # At step 0 θ is the task's initial θ: the gradient quality equals `gradbench run`'s metric computation on
    # the same problem with the evaluation's stream (a check that train reuses runner/stats, not a copy).
    first = rows[0]
    spec = CellSpec("bernoulli", "rloo", {"target": T, "logit": LOGIT}, {}, seed=0, n_samples=256)
    from gradbench.rng import block_seed
    from gradbench.train import EVAL_STREAM

    row = run_cell(spec.__class__(**{**vars(spec), "seed": block_seed(0, EVAL_STREAM)}))
    for col in ("bias", "variance", "mse", "cosine", "exact_value"):
        assert first[col] == row[col], col


def test_training_moves_downhill_and_the_unbiased_estimator_measures_unbiased_along_the_way():
    rows_g, rows_r = (
        trained([e], steps=60, eval_every=20, eval_samples=2048, lr=0.1)[0] for e in ("gumbel", "reinforce")
    )
    assert rows_g[-1]["objective"] < rows_g[0]["objective"]
    assert rows_r[-1]["objective"] < rows_r[0]["objective"]
    assert min(r["bias_pvalue"] for r in rows_r) > 1e-3
    assert [r["f_evals"] for r in rows_r] == [0, 20, 40, 60]


def test_exponential_schedule_is_recorded():
    (rows,) = trained(["gumbel"], steps=20, eval_every=10, schedule="exponential", anneal_rate=0.05, tau_min=0.3,
                      taus=(1.0,))  # fmt: skip
    assert [r["tau_now"] for r in rows] == pytest.approx([1.0, math.exp(-0.05 * 9), max(0.3, math.exp(-0.05 * 19))])
    assert all(r["tau"] == 1.0 and r["schedule"] == "exponential" for r in rows)


class NanAfterThree(Estimator):
    """Broken on purpose: REINFORCE for three steps, then NaN."""

    name = "test-nan-after-three"
    summary = family = "test"
    unbiased = False

    def estimate(self, problem, rng):
        g = REGISTRY["reinforce"]().estimate(problem, rng)
        return g * math.nan if rng.first_block >= 3 and rng.n == 1 else g


def test_divergence_stops_that_run_and_is_recorded(monkeypatch, tmp_path, cli):
    monkeypatch.setitem(REGISTRY, NanAfterThree.name, NanAfterThree)
    out = tmp_path / "t.csv"
    result = cli("train", "-e", f"{NanAfterThree.name},reinforce", "--steps", 10, "--eval-every", 2,
                 "--eval-samples", 32, "--seeds", 2, "--workers", 1, "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "diverged" in result.stdout
    rows = read_train_rows(out)
    for seed in ("0", "1"):
        bad = [r for r in rows if r["estimator"] == NanAfterThree.name and r["seed"] == seed]
        assert [r["step"] for r in bad] == ["0", "2", "4"] and bad[-1]["status"] == "diverged"
        good = [r for r in rows if r["estimator"] == "reinforce" and r["seed"] == seed]
        assert good[-1]["step"] == "10" and {r["status"] for r in good} == {"ok"}


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("train_seconds", "eval_seconds", "timestamp")} for r in rows]


def test_resume_and_workers_give_the_rows_of_one_fresh_run(tmp_path, cli):
    args = ["train", "-e", "reinforce,gumbel", "--steps", 8, "--eval-every", 4, "--eval-samples", 32]
    fresh, part = tmp_path / "fresh.csv", tmp_path / "part.csv"
    assert cli(*args, "--seeds", 2, "--workers", 1, "-o", fresh).exit_code == 0
    assert cli(*args, "--seeds", "1,", "--workers", 1, "-o", part).exit_code == 0
    result = cli(*args, "--seeds", 2, "--workers", 2, "--resume", "-o", part)
    assert result.exit_code == 0, result.output
    assert "2 runs written" in result.stdout and "(2 were already there)" in result.stdout
    assert _strip(read_train_rows(part)) == _strip(read_train_rows(fresh))
    again = cli(*args, "--seeds", 2, "-o", fresh)
    assert_one_line_error(again, "--resume")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--lr", "0"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--eval-every", "20", "--steps", "10"], "--eval-every"),
        (["--batch-estimates", "0"], "--batch-estimates"),
        (["--schedule", "cosine"], "--schedule"),
        (["-e", "arm", "--task", "vae-digits"], "binary"),
        (["--task", "vae-digits", "--task-opt", "latents=6"], "262,144"),
        (["-e", "nope"], "unknown estimator"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, fragment, tmp_path, cli):
    out = tmp_path / "t.csv"
    base = ["train", "--steps", "10", "--eval-every", "5", "-o", out]
    if "-e" not in args:
        base += ["-e", "reinforce"]
    result = cli(*base, *args)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_unwritable_cache_dir_is_one_line(tmp_path, cli, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("GRADBENCH_CACHE_DIR", str(blocker / "cache"))
    out = tmp_path / "t.csv"
    result = cli("train", "-e", "reinforce", "--task", "vae-digits", "--steps", 2, "--eval-every", 1, "-o", out)
    assert_one_line_error(result, "GRADBENCH_CACHE_DIR")
    assert not out.exists()


def test_missing_scikit_learn_is_one_line(tmp_path, cli, monkeypatch):
    import sys

    from gradbench.models import data

    data._binarised.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setenv("GRADBENCH_CACHE_DIR", str(tmp_path / "cache"))  # an empty cache: the data must be read
    out = tmp_path / "t.csv"
    result = cli("train", "-e", "reinforce", "--task", "sbn-digits", "--steps", 2, "--eval-every", 1, "-o", out)
    data._binarised.cache_clear()
    assert_one_line_error(result, "pip install scikit-learn")
    assert not out.exists()


def test_model_training_lowers_the_held_out_negative_elbo():
    (rows,) = trained(["exact"], steps=30, eval_every=30, task="sbn-digits", task_opts={"images": "8"},
                      batch_estimates=2, lr=0.01)  # fmt: skip
    first, last = rows
    assert last["objective"] < first["objective"] - 1.0  # nats per held-out image
    assert first["nll"] <= first["objective"] and last["nll"] <= last["objective"]  # −log p(x) ≤ −ELBO
    assert last["variance"] == 0.0 and last["D"] == 8 * 8


def test_plot_recognises_a_train_csv_and_draws_curves_and_quality(tmp_path, cli):
    from gradbench.plots_train import band

    out = tmp_path / "t.csv"
    assert cli("train", "-e", "reinforce,gumbel", "--steps", 6, "--eval-every", 3, "--eval-samples", 32, "--seeds", 2,
               "--workers", 1, "-o", out).exit_code == 0  # fmt: skip
    result = cli("plot", out, "-o", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["bernoulli-curves.png", "bernoulli-quality.png"]
    # The band: mean over seeds ± t(0.975, n − 1)·sd/√n (two seeds: t = 12.71).
    import pandas as pd

    df = pd.DataFrame({"step": [0, 0, 1, 1], "objective": [1.0, 3.0, 2.0, 2.0], "seed": [0, 1, 0, 1]})
    b = band(df, "step", "objective")
    assert list(b["mean"]) == [2.0, 2.0]
    assert b["half"].iloc[0] == pytest.approx(12.71 * math.sqrt(2) / math.sqrt(2)) and b["half"].iloc[1] == 0.0
