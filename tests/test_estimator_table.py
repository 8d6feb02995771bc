"""docs/estimators.md is the output of `gradbench list --format markdown`, and the opt-in flag is honoured."""

from __future__ import annotations

from pathlib import Path

from gradbench.core import Estimator
from gradbench.estimator_table import cost_text, estimators_markdown
from gradbench.registry import ESTIMATORS as REGISTRY
from gradbench.registry import all_estimators, default_sweep_estimators
from tests.helpers import assert_one_line_error

DOC = Path(__file__).parent.parent / "docs" / "estimators.md"


def builtins() -> dict:
    """The built-in estimators (other tests may have registered plug-ins in this process)."""
    return {n: c for n, c in all_estimators().items() if c.__module__.startswith("gradbench.estimators.")}


def test_committed_table_equals_the_commands_output(cli):
    result = cli("list", "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout == estimators_markdown(all_estimators())
    regenerate = "regenerate: gradbench list --format markdown > docs/estimators.md"
    assert estimators_markdown(builtins()) == DOC.read_text(encoding="utf-8"), regenerate


def test_table_has_one_row_per_estimator_with_its_cost():
    text = estimators_markdown(builtins())
    for name, cls in builtins().items():
        assert f"| `{name}` | {cls.family} |" in text
    assert cost_text(REGISTRY["indecater"]) == "D·K"
    assert cost_text(REGISTRY["rloo"]) == "m (m = 4 by default)"
    assert cost_text(REGISTRY["arm"]) == "2"


def test_bad_list_format_is_one_line(cli):
    assert_one_line_error(cli("list", "--format", "html"), "--format", "html")


class SlowOne(Estimator):
    """An opt-in estimator: registered, runnable by name, left out of --estimators all."""

    name = "slow-opt-in"
    summary = family = "test"
    unbiased = True
    default_sweep = False


def test_opt_in_estimators_leave_the_default_grid_and_are_listed_with_the_command(monkeypatch):
    monkeypatch.setitem(REGISTRY, SlowOne.name, SlowOne)
    assert SlowOne.name in all_estimators() and SlowOne.name not in default_sweep_estimators()
    text = estimators_markdown(builtins() | {SlowOne.name: SlowOne})
    opt_in = sorted([name for name, cls in builtins().items() if not cls.default_sweep] + [SlowOne.name])
    assert "indecater" in opt_in and "double-cv" in opt_in
    assert "## Opt-in estimators" in text and f"gradbench sweep --estimators {','.join(opt_in)} " in text
    assert "indecater" not in default_sweep_estimators()
