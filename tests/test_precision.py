"""Low precision (float16, bfloat16) and non-finite estimates: counted, left out of the statistics, flagged.

The Gumbel noise must stay finite at every dtype (DESIGN.md §3) even where rounding maps a uniform to 0 or 1; every
estimator must run on every task at both low dtypes without an exception; a NaN or ±inf estimate is counted in
``nonfinite_fraction`` and the metrics are those of the finite estimates.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradbench.core import Estimator, Problem
from gradbench.registry import ESTIMATORS
from gradbench.rng import LOW_PRECISION, BlockRng
from gradbench.runner import CellSpec, prepare, run_cell
from gradbench.stats import GroupedMoments
from tests.helpers import compatible_pairs, default_hparams

LOW = ("float16", "bfloat16")


class _Crafted(BlockRng):
    """float32 uniforms chosen to round to 0 and to 1 at low precision (and the float32 extremes themselves)."""

    VALUES = (0.0, 2.0**-24, 1e-30, 3e-5, 0.5, 1.0 - 2.0**-24, 1.0 - 2.0**-12, 0.99999, 0.9996)

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if dtype in LOW_PRECISION:
            return super().uniform(*shape, dtype=dtype)
        values = torch.tensor(self.VALUES, dtype=torch.float32).to(dtype)
        return values.repeat(math.ceil(self.n * math.prod(shape) / len(values)))[: self.n * math.prod(shape)].view(
            self.n, *shape
        )


@pytest.mark.parametrize("dtype", LOW_PRECISION + (torch.float32, torch.float64))
def test_gumbel_noise_is_finite_where_uniforms_round_to_0_or_1(dtype):
    rng = _Crafted(0, 0, [len(_Crafted.VALUES)])
    u = rng.uniform(1, dtype=dtype)
    if dtype in LOW_PRECISION:
        assert bool((u < 1).all()), "uniform() must stay below 1 after rounding"
        assert bool((u.float() == 0).any()), "the crafted draws should include one that rounds to 0"
    info = torch.finfo(dtype)
    opened = rng.open_uniform(1, dtype=dtype)
    assert float(opened.min()) >= info.tiny and float(opened.max()) <= 1 - info.eps
    g = rng.gumbel(1, dtype=dtype)
    assert g.dtype == dtype and bool(torch.isfinite(g).all()), g.flatten()


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_uniforms_are_the_float32_draws_rounded(dtype):
    sizes = [1024, 1024, 300]
    u32 = BlockRng(5, 3, sizes).uniform(20, 10)
    low = BlockRng(5, 3, sizes).uniform(20, 10, dtype=dtype)
    below_one = 1 - torch.finfo(dtype).eps / 2
    assert torch.equal(low, u32.to(dtype).clamp(max=below_one))
    g = BlockRng(5, 3, sizes).gumbel(20, 10, dtype=dtype)
    assert bool(torch.isfinite(g).all())


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize(("estimator", "task"), compatible_pairs())
def test_every_estimator_runs_on_every_task_at_low_precision(estimator, task, dtype):
    params = default_hparams(ESTIMATORS[estimator])
    if estimator == "relax":
        params["steps"] = 3  # its training runs in the cell's dtype; a few steps exercise the same path cheaply
    n = 64
    row = run_cell(CellSpec(task=task, estimator=estimator, estimator_params=params, n_samples=n, dtype=dtype))
    fraction = row["nonfinite_fraction"]
    assert row["dtype"] == dtype and 0.0 <= fraction <= 1.0
    assert fraction * n == int(fraction * n)  # a count of estimates
    finite = n - round(fraction * n)
    assert math.isnan(row["variance"]) == (finite < 2)
    if finite >= 2:
        assert math.isfinite(row["bias"]) and row["variance"] >= 0


def test_low_precision_estimates_but_float64_truth():
    cell = prepare(CellSpec(task="quadratic", estimator="gumbel", estimator_params={"tau": 0.5}, dtype="bfloat16"))
    assert cell.problem.theta.dtype == torch.bfloat16 and cell.problem.exact_grad.dtype == torch.float64
    rng = BlockRng(0, 0, [32])
    assert cell.estimator.estimate(cell.problem, rng).dtype == torch.bfloat16


class _Poisoned(Estimator):
    """REINFORCE-like rows where every 7th estimate (by position in the cell) is NaN and every 11th is +inf."""

    name = "poisoned"
    summary = "test estimator with planted non-finite rows"
    family = "test"
    unbiased = False

    def estimate(self, problem: Problem, rng: BlockRng) -> torch.Tensor:
        D, K = problem.theta.shape
        out = rng.uniform(D, K, dtype=problem.theta.dtype)  # n x D x K
        index = torch.empty(rng.n, dtype=torch.int64)  # n, the position of each estimate in the cell
        row = 0
        for b, size in enumerate(rng.sizes):
            index[row : row + size] = torch.arange(size) + (rng.first_block + b) * self.block
            row += size
        out[index % 7 == 3, 0, 0] = math.nan
        out[index % 11 == 5, 1, 1] = math.inf
        return out

    def setup(self, problem: Problem, seed: int) -> None:
        from gradbench.rng import block_size_for

        self.block = block_size_for(problem.theta.numel())


def test_nonfinite_estimates_are_counted_and_left_out(monkeypatch):
    monkeypatch.setitem(ESTIMATORS, "poisoned", _Poisoned)
    n = 4800  # a multiple of the 16 replicate groups: no leftover rows, so only the block check can catch a NaN
    spec = CellSpec(task="sum-target", estimator="poisoned", n_samples=n, seed=4)
    row = run_cell(spec)
    index = torch.arange(n)
    bad = (index % 7 == 3) | (index % 11 == 5)
    assert row["nonfinite_fraction"] == int(bad.sum()) / n
    # The metrics are those of the finite rows: recompute them from the same draws in float64.
    cell = prepare(spec)
    cell.estimator.setup(cell.problem, 4)
    block, rows = cell.block_size, []
    for first in range(math.ceil(n / block)):
        size = min(block, n - first * block)
        rows.append(cell.estimator.estimate(cell.problem, BlockRng(4, first, [size])))
    x = torch.cat(rows).reshape(n, -1).double()[~bad]  # finite rows only
    exact = cell.problem.exact_grad.reshape(-1)
    assert row["variance"] == pytest.approx(float(x.var(0).sum()), rel=1e-10)
    assert row["bias"] == pytest.approx(float((x.mean(0) - exact).norm()), rel=1e-10)
    # Chunking does not change the count or the metrics.
    other = run_cell(CellSpec(**{**spec.__dict__, "chunk_size": 100}))
    assert {k: other[k] for k in ("nonfinite_fraction", "variance", "bias")} == {
        k: row[k] for k in ("nonfinite_fraction", "variance", "bias")
    }


def test_grouped_moments_skip_nonfinite_rows_and_report_them():
    torch.manual_seed(0)
    x = torch.randn(100, 6, dtype=torch.float32)
    x[[3, 40, 41]] = torch.tensor([math.nan, 1, 2, 3, 4, 5])
    x[77, 2] = -math.inf
    m = GroupedMoments(6)
    dropped = m.update(x[:64], 0) + m.update(x[64:], 64)  # a full block and a short one with a bad leftover row
    assert dropped == 4
    n, mean, m2 = m.pooled()
    keep = torch.isfinite(x).all(1)
    ref = x[keep].double()
    assert n == 96
    assert torch.allclose(mean, ref.mean(0), rtol=1e-12, atol=1e-14)
    assert torch.allclose(m2 / (n - 1), ref.var(0), rtol=1e-10)


def test_an_all_nonfinite_cell_is_a_row_not_a_crash(monkeypatch):
    class AllNan(_Poisoned):
        name = "all-nan"

        def estimate(self, problem, rng):
            return torch.full((rng.n, *problem.theta.shape), math.nan, dtype=problem.theta.dtype)

    monkeypatch.setitem(ESTIMATORS, "all-nan", AllNan)
    row = run_cell(CellSpec(task="bernoulli", estimator="all-nan", n_samples=96))
    assert row["nonfinite_fraction"] == 1.0 and math.isnan(row["bias"]) and math.isnan(row["mse"])


def test_flag_in_the_run_table_and_the_summary():
    import io

    import pandas as pd
    from rich.console import Console

    from gradbench.nonfinite import THRESHOLD, flagged_lines
    from gradbench.report import metrics_table
    from gradbench.results import COLUMNS

    row = run_cell(CellSpec(task="bernoulli", estimator="gumbel", estimator_params={"tau": 0.5}, n_samples=100))

    def render(fraction: float) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=200).print(metrics_table({**row, "nonfinite_fraction": fraction}))
        return buffer.getvalue()

    assert "non-finite" not in render(0.0)
    assert "non-finite" in render(THRESHOLD / 2) and "flagged" not in render(THRESHOLD / 2)
    assert "flagged" in render(THRESHOLD * 2) and "metrics over the finite ones" in render(THRESHOLD * 2)
    assert "every estimate is non-finite" in render(1.0)

    df = pd.DataFrame([{**row, "nonfinite_fraction": f, "seed": s} for s, f in enumerate((0.0, 0.0005, 0.25))])
    assert list(df.columns) == list(COLUMNS)
    lines = flagged_lines(df.to_dict("records"))
    assert len(lines) == 1 and "seed 2" in lines[0] and "0.25" in lines[0] and "τ=0.5" in lines[0]

    from gradbench.summary import summary_markdown

    empty = pd.DataFrame(columns=["task", "task_params", "dtype", "device", "tau"])
    assert "Non-finite" in summary_markdown(empty, "x.csv", flagged=lines)
    assert "Non-finite" not in summary_markdown(empty, "x.csv", flagged=[])


def test_files_written_before_the_column_existed_still_load(tmp_path):
    from gradbench.aggregate import load_results
    from gradbench.results import COLUMNS, format_rows

    row = run_cell(CellSpec(task="bernoulli", estimator="reinforce", n_samples=100))
    text = format_rows([row], header=True).splitlines()
    position = COLUMNS.index("nonfinite_fraction")  # the columns after it came later still
    old = [",".join(line.split(",")[:position]) for line in text]
    path = tmp_path / "old.csv"
    path.write_text("\n".join(old) + "\n")
    df = load_results(path)
    assert list(df.columns) == list(COLUMNS) and df["nonfinite_fraction"].tolist() == [0.0]


@pytest.mark.parametrize("dtype", LOW)
def test_cli_run_at_low_precision(dtype, tmp_path, cli):
    out = tmp_path / "r.csv"
    result = cli("run", "-e", "st-gumbel", "--tau", "0.5", "--task", "quadratic", "-n", "512", "--dtype", dtype,
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f",{dtype}," in out.read_text()


def test_cli_unknown_dtype_names_the_choices(tmp_path, cli):
    from tests.helpers import assert_one_line_error

    result = cli("run", "-e", "reinforce", "--dtype", "float8", "--out", tmp_path / "r.csv")
    assert_one_line_error(result, "unknown dtype 'float8'", "bfloat16")
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_runs_on_cuda(dtype):
    # The device paths are the same code; on a GPU the draws differ (CUDA generators), so only the contract is checked.
    for estimator in ("gumbel", "st-gumbel", "reinforce"):
        params = {"tau": 0.5} if estimator != "reinforce" else {}
        row = run_cell(CellSpec(task="quadratic", estimator=estimator, estimator_params=params, n_samples=4096,
                                device="cuda", dtype=dtype))  # fmt: skip
        assert row["device"].startswith("cuda") and row["dtype"] == dtype and 0 <= row["nonfinite_fraction"] <= 1
