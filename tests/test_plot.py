"""gradbench plot: the numbers behind every drawn line, deterministic files, the summary table, and bad CSVs."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradbench.aggregate import aggregate, load_results, t975
from gradbench.cli import app
from gradbench.errors import GradbenchError
from gradbench.plots import STYLES, build_figure, figure_lines, style_for
from gradbench.results import COLUMNS
from gradbench.summary import best_by_tau, summary_markdown
from tests.helpers import assert_one_line_error

GRID = ["--tasks", "bernoulli,sum-target", "--estimators", "exact,reinforce,gumbel,st-gumbel"]
GRID += ["--taus", "0.2,1,5", "--seeds", "3", "--samples", "400", "--workers", "1"]


@pytest.fixture(scope="module")
def sweep_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plot") / "sweep.csv"
    result = CliRunner().invoke(app, ["sweep", *GRID, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def raw(path: Path) -> pd.DataFrame:
    """The CSV read independently of gradbench.aggregate (plain pandas)."""
    return pd.read_csv(path, keep_default_na=False, dtype={"task_params": str, "estimator_params": str})


def figures(path: Path, metrics=("bias", "variance", "mse")):
    df = load_results(path)
    agg = aggregate(df)
    out = {}
    for task, rows in df.groupby("task"):
        key = {"task": task, "task_params": rows.task_params.iloc[0], "dtype": "float32", "device": "cpu"}
        out[task] = build_figure(key, agg[agg.task == task], rows, list(metrics))
    return out


def drawn_lines(fig) -> dict[str, tuple[list[float], list[float]]]:
    lines = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid():
                lines[line.get_gid()] = (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
    return lines


# --- the numbers ------------------------------------------------------------------------------------------------


def test_t_quantiles():
    assert t975(2) == pytest.approx(4.3027, abs=1e-4)
    for dof, value in ((31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (1000, 1.9623)):
        assert t975(dof) == pytest.approx(value, abs=2e-4)
    assert math.isnan(t975(0))


def test_aggregate_mean_and_band_by_hand(sweep_csv):
    df = load_results(sweep_csv)
    agg = aggregate(df)
    rows = df[(df.task == "sum-target") & (df.estimator == "gumbel") & (df.tau == 1.0)]
    values = sorted(rows["mse"])
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    got = agg[(agg.task == "sum-target") & (agg.estimator == "gumbel") & (agg.tau == 1.0) & (agg.metric == "mse")]
    (got,) = got.itertuples()
    assert got.mean == pytest.approx(mean, rel=1e-12) and got.n_seeds == 3 and got.seeds == (0, 1, 2)
    assert got.hi - got.mean == pytest.approx(4.3027 * sd / math.sqrt(3), rel=1e-4)
    assert got.mean - got.lo == pytest.approx(got.hi - got.mean, rel=1e-9)


def test_every_plotted_line_is_the_mean_over_seeds_of_the_csv(sweep_csv):
    data = raw(sweep_csv)
    data["noise"] = (data["variance"] / data["n_samples"]) ** 0.5
    for task, fig in figures(sweep_csv).items():
        lines = drawn_lines(fig)
        for (estimator, tau), rows in data[data.task == task].groupby(["estimator", "tau"]):
            assert len(rows) == 3
            for metric, column in (("bias", "bias"), ("variance", "variance"), ("mse", "mse"), ("noise", "noise")):
                gid = f"{metric}|{estimator}||{rows.n_samples.iloc[0]}"
                if estimator == "exact":
                    assert gid not in lines  # zero variance: not on log axes
                    continue
                xs, ys = lines[gid]
                mean = rows[column].mean()
                if tau == "":  # no temperature: a horizontal line over the whole τ range
                    assert ys == pytest.approx([mean] * len(ys), rel=1e-12) and xs[0] < 0.2 and xs[-1] > 5
                else:
                    assert ys[xs.index(pytest.approx(float(tau)))] == pytest.approx(mean, rel=1e-12)
                    assert len(xs) == 3
        gids = [g for g in lines if not g.startswith(("band", "noise", "zero-mse"))]
        assert len(gids) == 3 * 3  # reinforce, gumbel, st-gumbel in 3 panels; exact only in the legend


def test_bands_span_the_t_interval(sweep_csv):
    fig = figures(sweep_csv)["sum-target"]
    agg = aggregate(load_results(sweep_csv))
    mse_axis = fig.axes[2]
    (band,) = [c for c in mse_axis.collections if c.get_gid() == "band|mse|gumbel||400"]
    ys = band.get_paths()[0].vertices[:, 1]
    expected = agg[(agg.task == "sum-target") & (agg.estimator == "gumbel") & (agg.metric == "mse")]
    assert max(ys) == pytest.approx(expected["hi"].max(), rel=1e-9)


def test_exact_is_in_the_legend_not_on_log_axes_and_tau_free_lines_say_so(sweep_csv):
    fig = figures(sweep_csv)["bernoulli"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("exact") and "reference, not drawn" in t for t in labels)
    assert any(t.startswith("reinforce") and "no τ" in t for t in labels)
    assert any("noise floor" in t for t in labels) and any("95%" in t for t in labels)


def test_titles_and_labels_name_task_options_samples_and_seeds(sweep_csv):
    fig = figures(sweep_csv)["sum-target"]
    title = fig.get_suptitle()
    assert "sum-target" in title and "categories=4, dim=6, target=0.45" in title
    assert "n = 400" in title and "3 seeds (0, 1, 2)" in title
    assert [ax.get_xscale() for ax in fig.axes] == ["log"] * 3
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 3
    assert "τ" in fig.axes[0].get_xlabel() and "bias" in fig.axes[0].get_ylabel()


def test_legend_covers_no_panel(sweep_csv):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures(sweep_csv)["bernoulli"]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_tightbbox(renderer)), ax.get_title()


def test_same_estimator_same_look_in_every_figure(sweep_csv):
    looks = {}
    for fig in figures(sweep_csv).values():
        for ax in fig.axes:
            for line in ax.get_lines():
                if line.get_gid() and not line.get_gid().startswith(("noise", "zero-mse")):
                    name = line.get_gid().split("|")[1]
                    looks.setdefault(name, set()).add(line.get_color())
    assert all(len(colours) == 1 for colours in looks.values()) and len(looks) == 3
    assert looks["gumbel"] == {STYLES["gumbel"][0]}
    assert style_for("my-plugin") == style_for("my-plugin") and style_for("my-plugin") != style_for("other-plugin")
    assert len({c for c, _ in STYLES.values()}) == len(STYLES)  # the table's colours are all different


def test_the_palette_tells_20_plus_estimators_apart_within_each_family():
    from gradbench.plots import FAMILY_COLOURS, MARKERS, assign_styles

    fams = ["score-function", "binary", "relaxation", "control-variate", "other"]
    family_of = {f"{fam}-plugin-{i}": fam for fam in fams for i in range(12)}  # 60 new estimators ...
    family_of |= {n: f for f, names in FAMILY_BUILTINS.items() for n in names}  # ... next to the 15 built-ins
    looks = assign_styles(list(family_of), family_of)
    assert len(set(looks.values())) == len(looks) == 75  # no two estimators look alike
    assert all(looks[n][0] in FAMILY_COLOURS[fam] for n, fam in family_of.items())  # hues stay in their family
    assert all(looks[n][1] in MARKERS for n in family_of)
    assert assign_styles(list(family_of), family_of) == looks  # stable
    for builtins in FAMILY_BUILTINS.values():  # within a family the built-ins differ in colour and in marker
        assert len({STYLES[n][0] for n in builtins}) == len(builtins)
        assert len({STYLES[n][1] for n in builtins}) == len(builtins)


FAMILY_BUILTINS = {
    "score-function": ("reinforce", "reinforce-baseline", "reinforce-batch-baseline", "rloo", "unordered-set"),
    "binary": ("arm", "disarm"),
    "relaxation": ("gumbel", "st-gumbel", "st", "gumbel-rao", "reinmax", "gapped-st"),
    "control-variate": ("rebar", "relax"),
}


def test_mse_panel_has_the_zero_gradient_line_and_the_budget(sweep_csv):
    df = load_results(sweep_csv)
    from gradbench.cost import with_budgets

    agg = aggregate(with_budgets(df))
    key = {"task": "sum-target", "task_params": df[df.task == "sum-target"].task_params.iloc[0]}
    key |= {"dtype": "float32", "device": "cpu"}
    fig = build_figure(key, agg[agg.task == "sum-target"], df[df.task == "sum-target"], ["mse"], per="evals")
    (ref,) = [line for line in fig.axes[0].get_lines() if line.get_gid() == "zero-mse"]
    g = float(df[df.task == "sum-target"]["grad_norm"].iloc[0])
    assert ref.get_ydata()[0] == pytest.approx(g**2)
    assert "@ 12 evals" in fig.axes[0].get_title() and "12 evals" in fig.get_suptitle()
    drawn = drawn_lines(fig)
    rows = agg[(agg.task == "sum-target") & (agg.estimator == "gumbel") & (agg.metric == "mse_at_equal_evals")]
    assert drawn["mse_at_equal_evals|gumbel||400"][1] == pytest.approx(list(rows.sort_values("tau")["mean"]))


def test_bands_are_lighter_than_lines_and_absent_from_the_bias_panel(sweep_csv):
    fig = figures(sweep_csv)["sum-target"]
    bias_axis, _, mse_axis = fig.axes
    assert not [c for c in bias_axis.collections if (c.get_gid() or "").startswith("band")]
    bands = [c for c in mse_axis.collections if (c.get_gid() or "").startswith("band")]
    assert bands and all(b.get_alpha() <= 0.1 for b in bands)
    assert all((line.get_alpha() or 1.0) == 1.0 for line in mse_axis.get_lines() if line.get_gid())


def test_only_exclude_and_family_select_estimators(cli, sweep_csv, tmp_path):
    result = cli("plot", sweep_csv, "--only", "gumbel,reinforce", "--out", tmp_path / "a", "--per", "estimate")
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert "st-gumbel" not in summary and "gumbel" in summary
    result = cli("plot", sweep_csv, "--exclude", "gumbel", "--out", tmp_path / "b")
    assert result.exit_code == 0 and "| gumbel |" not in (tmp_path / "b" / "summary.md").read_text()
    result = cli("plot", sweep_csv, "--family", "score-function", "--out", tmp_path / "c")
    assert result.exit_code == 0 and "st-gumbel" not in (tmp_path / "c" / "summary.md").read_text()
    assert_one_line_error(cli("plot", sweep_csv, "--only", "nope"), "--only", "nope")
    assert_one_line_error(cli("plot", sweep_csv, "--family", "binary"), "--family", "binary")
    assert_one_line_error(cli("plot", sweep_csv, "--only", "exact"), "leaves no estimator")


def test_line_labels_carry_hyper_parameters():
    agg = pd.DataFrame(
        {
            "estimator": ["rloo", "rloo", "gumbel"],
            "estimator_params": ["m=4", "m=8", ""],
            "n_samples": [100, 100, 100],
            "tau": [math.nan, math.nan, 0.5],
            "metric": ["variance"] * 3,
            "mean": [1.0, 2.0, 3.0],
        }
    )
    lines = figure_lines(agg)
    assert [line.label for line in lines] == ["rloo (m=4) · no τ", "rloo (m=8) · no τ", "gumbel"]
    assert lines[0].colour == lines[1].colour


# --- files --------------------------------------------------------------------------------------------------------


def test_plot_writes_every_format_byte_identically_and_a_summary(cli, sweep_csv, tmp_path):
    one_task = tmp_path / "one.csv"
    one_task.write_text("".join(line for line in sweep_csv.open() if not line.startswith("bernoulli")))
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = cli("plot", one_task, "--out", out, "--format", "png,svg,pdf")
        assert result.exit_code == 0, result.output
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == ["sum-target.pdf", "sum-target.png", "sum-target.svg", "summary.md"]
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert "Lowest MSE per task and temperature" in result.stdout and "sum-target" in result.stdout


def test_default_out_folder_is_beside_the_csv(cli, sweep_csv, tmp_path):
    csv_copy = tmp_path / "mine.csv"
    shutil.copy(sweep_csv, csv_copy)
    result = cli("plot", csv_copy, "--metrics", "mse")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mine-figures" / "bernoulli.png").exists()
    assert (tmp_path / "mine-figures" / "summary.md").exists()


# --- the summary --------------------------------------------------------------------------------------------------


def test_best_by_tau_on_a_hand_made_aggregate():
    def row(estimator, tau, mean, lo, hi, metric="mse"):
        return ("t", "", "float32", "cpu", estimator, "", 100, tau, metric, mean, 0.1, 3, lo, hi, (0, 1, 2))

    columns = ["task", "task_params", "dtype", "device", "estimator", "estimator_params", "n_samples", "tau"]
    columns += ["metric", "mean", "sd", "n_seeds", "lo", "hi", "seeds"]
    rows = [
        row("gumbel", 0.5, 1.0, 0.9, 1.1),
        row("gumbel", 2.0, 3.0, 2.9, 3.1),
        row("reinforce", math.nan, 2.0, 1.05, 2.95),
        row("exact", math.nan, 1e-12, 0, 1e-11),
        row("gumbel", 0.5, 0.5, 0.4, 0.6, "variance"),
        row("gumbel", 2.0, 0.5, 0.4, 0.6, "variance"),
        row("reinforce", math.nan, 2.0, 1.9, 2.1, "variance"),
        row("exact", math.nan, 0.0, 0.0, 0.0, "variance"),
        row("exact", math.nan, 1.0, 1.0, 1.0, "bias_pvalue"),  # no bias detected: a reference, not a contender
    ]
    best = best_by_tau(pd.DataFrame(rows, columns=columns), per="estimate", declared={})
    assert list(best["tau"]) == [0.5, 2.0]
    assert list(best["best"]) == ["gumbel", "reinforce"]  # exact (zero variance) is not a contender
    assert list(best["runner_up"]) == ["reinforce", "gumbel"]
    assert list(best["margin"]) == pytest.approx([2.0, 1.5])
    assert list(best["clear"]) == [False, False]  # 1.1 ≥ 1.05, 2.95 ≥ 2.9: the bands overlap
    text = summary_markdown(best, "x.csv", per="estimate")
    assert "| 0.5 | gumbel | 1 | ≈×2.00 | reinforce |" in text


def test_a_biased_zero_variance_estimator_is_drawn_and_competes(sweep_csv, tmp_path):
    """Only references (zero variance and no bias: exact) leave the log axes and the summary."""
    lines = sweep_csv.read_text().splitlines(keepends=True)
    fake = [line.replace("exact,", "constant,", 1).replace(",1.0,", ",0.0,", 1) for line in lines if ",exact," in line]
    path = _write(tmp_path / "c.csv", "".join(lines) + "".join(fake))
    df = load_results(path)
    assert (df[df.estimator == "constant"]["bias_pvalue"] == 0).all()
    key = {"task": "sum-target", "task_params": df[df.task == "sum-target"].task_params.iloc[0]}
    key |= {"dtype": "float32", "device": "cpu"}
    agg = aggregate(df)
    fig = build_figure(key, agg[agg.task == "sum-target"], df[df.task == "sum-target"], ["bias", "variance"])
    drawn = drawn_lines(fig)
    assert "bias|constant||400" in drawn and "bias|exact||400" not in drawn
    assert all(math.isnan(v) for v in drawn["variance|constant||400"][1])  # log of 0: not on the line itself ...
    floor_x, floor_y = drawn["floor|variance|constant||400"]  # ... but on the panel's floor, with its marker
    assert len(floor_y) == 1 and floor_y[0] == pytest.approx(fig.axes[1].get_ylim()[0], rel=0.5)
    best = best_by_tau(agg)
    assert (best["best"] == "constant").all() and not (best["runner_up"] == "exact").any()


def test_an_unbiased_zero_variance_estimator_other_than_exact_competes_and_wins(sweep_csv, tmp_path):
    """DisARM on the one-variable toy is exact on every draw: kept off the log axes, but it wins the summary."""
    lines = sweep_csv.read_text().splitlines(keepends=True)
    twin = [line.replace("exact,", "exact-twin,", 1) for line in lines if ",exact," in line]
    agg = aggregate(load_results(_write(tmp_path / "t.csv", "".join(lines) + "".join(twin))))
    best = best_by_tau(agg)
    assert (best["best"] == "exact-twin").all() and not (best["runner_up"] == "exact").any()
    norms = agg[(agg.metric == "grad_norm") & (agg.task == "sum-target")]["mean"]
    zero = list(best[best.task == "sum-target"]["zero_mse"])
    assert zero and zero == pytest.approx([float(norms.iloc[0]) ** 2] * len(zero))
    text = summary_markdown(best, "t.csv")
    assert "‖g*‖² = " in text and "zero gradient)" not in text  # the old MSE ≥ 0.9‖g*‖² rule is gone
    assert "exact-twin (collapsed)" not in text  # an exact estimate carries all of g*


def test_summary_of_a_real_sweep_names_a_winner_at_every_tau(sweep_csv):
    best = best_by_tau(aggregate(load_results(sweep_csv)))
    assert len(best) == 2 * 3
    assert not (best["best"] == "exact").any()
    assert (best["margin"] >= 1).all()


# --- errors -------------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_plot_errors_are_one_line_and_exit_2(cli, sweep_csv, tmp_path):
    header = ",".join(COLUMNS)
    good = sweep_csv.read_text().splitlines()
    cases = [
        (tmp_path / "missing.csv", "does not exist"),
        (_write(tmp_path / "empty.csv", ""), "is empty"),
        (_write(tmp_path / "blank.csv", "\n\n"), "is empty"),
        (_write(tmp_path / "other.csv", "name,score\nx,1\n"), "not a gradbench results file"),
        (_write(tmp_path / "extra.csv", header + ",colour\n" + good[1] + ",red\n"), "unknown columns: colour"),
        (
            _write(tmp_path / "fewer.csv", ",".join(c for c in COLUMNS if c != "mse_at_equal_time") + "\n"),
            "lacks columns: mse_at_equal_time",
        ),
        (_write(tmp_path / "header.csv", header + "\n"), "holds no rows"),
        (_write(tmp_path / "short.csv", header + "\n" + good[1][:40] + "\n"), "line 2"),
        (_write(tmp_path / "nan.csv", header + "\n" + good[1].replace(",400,", ",lots,", 1) + "\n"), "not a number"),
        (tmp_path, "is a directory"),
    ]
    for path, fragment in cases:
        assert_one_line_error(cli("plot", path, "--out", tmp_path / "figs"), fragment)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00")
    assert_one_line_error(cli("plot", tmp_path / "binary.csv", "--out", tmp_path / "figs"), "not a text CSV")
    assert_one_line_error(cli("plot", sweep_csv, "--format", "gif"), "--format", "png, svg, pdf")
    assert_one_line_error(cli("plot", sweep_csv, "--metrics", "bias,speed"), "--metrics", "variance")
    blocker = _write(tmp_path / "blocker", "x")
    assert_one_line_error(cli("plot", sweep_csv, "--out", blocker), "not a folder")
    assert not (tmp_path / "figs").exists()


def test_load_results_is_strict_about_columns(tmp_path):
    path = _write(tmp_path / "r.csv", ",".join(reversed(COLUMNS)) + "\n")
    with pytest.raises(GradbenchError, match="another order"):
        load_results(path)
