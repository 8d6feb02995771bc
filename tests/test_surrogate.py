"""Surrogate-loss estimators (gradbench.surrogate): training-code REINFORCE and REBAR written as surrogate losses
agree with the built-ins estimate by estimate; a surrogate that forgets to detach f is caught as biased; rows that
share information are detected and run one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gradbench
from gradbench import battery
from gradbench.errors import GradbenchError
from gradbench.registry import ESTIMATORS
from gradbench.surrogate import RowMixingWarning, surrogate_estimator
from tests.helpers import registry_snapshot

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples" / "surrogates.py"


@pytest.fixture(scope="module", autouse=True)
def surrogates():
    with registry_snapshot():
        gradbench.load_plugin(EXAMPLES)
        yield


@pytest.mark.parametrize(
    ("surrogate", "builtin", "params", "task"),
    [
        ("reinforce-sl", "reinforce", {}, "sum-target"),
        ("reinforce-sl", "reinforce", {}, "quadratic"),
        ("rebar-sl", "rebar", {"tau": 0.5, "eta": 1.0}, "sum-target"),
        ("rebar-sl", "rebar", {"tau": 2.0, "eta": 0.5}, "bernoulli"),
    ],
)
def test_surrogate_forms_agree_with_the_builtins_estimate_by_estimate(surrogate, builtin, params, task):
    ours, _ = battery.draw_estimates(task, builtin, params, 2048, seed=5, dtype="float64")
    theirs, _ = battery.draw_estimates(task, surrogate, params, 2048, seed=5, dtype="float64")
    torch.testing.assert_close(theirs, ours, rtol=1e-9, atol=1e-12)


def test_surrogate_rebar_has_the_builtins_moments():
    rows = [gradbench.run(e, "sum-target", tau=0.5, samples=20_000, seed=2) for e in ("rebar", "rebar-sl")]
    assert rows[1]["variance"] == pytest.approx(rows[0]["variance"], rel=1e-4)
    assert rows[1]["bias"] == pytest.approx(rows[0]["bias"], rel=1e-3, abs=1e-7)


def test_a_surrogate_that_forgets_to_detach_f_is_caught_as_biased():
    verdict = gradbench.audit("reinforce-sl-nodetach", tasks=["sum-target"], samples=20_000, processes=False)
    assert verdict.verdict("unbiased").status == battery.FAIL
    sound = gradbench.audit("reinforce-sl", tasks=["sum-target"], samples=20_000, processes=False)
    assert sound.passed, [(v.property, v.evidence) for v in sound.verdicts]


def batch_baseline(logits, f, rng):
    """REINFORCE with the batch mean of f as baseline: row i depends on the other rows."""
    p = logits[0].detach().softmax(-1)
    z = torch.nn.functional.one_hot(rng.categorical(p), p.shape[-1]).to(logits)
    fz = f(z).detach()
    return (fz - fz.mean()) * (z * logits.log_softmax(-1)).sum((-1, -2))


def test_rows_that_share_information_fall_back_to_one_call_per_estimate(monkeypatch):
    cls = surrogate_estimator("batch-baseline-sl", batch_baseline, unbiased=False)
    monkeypatch.setitem(ESTIMATORS, cls.name, cls)
    with pytest.warns(RowMixingWarning, match="not independent"):
        a = gradbench.run(cls.name, "sum-target", samples=300, seed=1, chunk_size=1)
    with pytest.warns(RowMixingWarning):
        b = gradbench.run(cls.name, "sum-target", samples=300, seed=1)
    assert a["variance"] == b["variance"] == 0.0  # one row per call: f − mean f = 0, whatever the chunking


def test_independent_rows_are_vectorised_without_a_warning(recwarn):
    gradbench.run("reinforce-sl", "sum-target", samples=1000)
    assert not [w for w in recwarn if issubclass(w.category, RowMixingWarning)]


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda logits, f, rng: None, "returned NoneType"),
        (lambda logits, f, rng: logits.sum(-1), "returned shape"),
        (lambda logits, f, rng: logits.detach().sum((-1, -2)), "do not depend on the logits"),
    ],
)
def test_a_broken_surrogate_is_one_line(fn, message, monkeypatch):
    cls = surrogate_estimator("broken-sl", fn, unbiased=True)
    monkeypatch.setitem(ESTIMATORS, cls.name, cls)
    with pytest.raises(GradbenchError, match=message):
        gradbench.run(cls.name, "sum-target", samples=10)


def test_cli_surrogate_from_a_file(cli, tmp_path):
    result = cli("run", "--surrogate", f"{EXAMPLES}:reinforce=reinforce-cli", "-t", "sum-target", "-n", "2000",
                 "--format", "json", "--out", tmp_path / "r.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"estimator": "reinforce-cli"' in result.stdout
