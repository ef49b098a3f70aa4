"""Tutorial 09 (the top-down recurrent network of Fig. 3, Sec. 3.4).

Tutorial 09 is a notebook that unfolds (``tests/test_notebooks.py`` runs it in a Jupyter
kernel); here it runs once as the script a student starts, ``python
tutorials/09_recurrent_top_down.py --quick --out DIR --no-progress``, in this process
(``runpy`` with that command line), and the tests read the numbers the script left in its
namespace: the figures, the time budget, and numbers that would be wrong if the tutorial
or the library were. The run needs the four MNIST files in ``$FF_NUMPY_DATA`` (CI sets
it) or in the download cache and is skipped otherwise. The full run's options are read
from the tutorial's source, without running it.
"""

from __future__ import annotations

import ast
import json

import pytest
from helpers import (
    BENCHMARKS,
    QUICK_BUDGET,
    SLACK,
    TUTORIALS,
    assert_png,
    load_tutorial,
    needs_mnist,
    options_that_differ,
)

from ff_numpy import cli, experiments

T09 = "09_recurrent_top_down"
FIGURES = ["damped_dynamics.png", "learning_curve.png", "goodness_by_iteration.png",
           "error_by_window.png"]  # fmt: skip
# The quick run (2 x 200, 10,000 images, 2 epochs) gave test errors of 9.9%, 10.4% and
# 10.3% by goodness and 9.9%, 10.3% and 10.1% by the softmax with seeds 0, 1 and 2 under
# the default "min" objective (the tutorial uses seed 0). 25% is about twice the worst of
# them, so only a broken tutorial or library fails it, and it is far below chance (90%).
MAX_QUICK_ERROR = 0.25
LOCAL_FD_TOL = 1e-6  # closed form vs central finite differences (float64, step 1e-6)
FF_AUTOGRAD_TOL = 1e-10  # the summed local gradients vs autograd with the states held constant
MIN_BPTT_DIFF = 1e-2  # ... vs autograd through time: must differ


def tutorial_constant(name: str):
    """The literal value assigned to ``name`` at the top level of the tutorial's source."""
    tree = ast.parse((TUTORIALS / f"{T09}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_full_run_is_the_recipe_that_reproduce_py_runs(tmp_path):
    """The tutorial's full run and ``benchmarks/reproduce.py recurrent`` train the same
    net (the recipe of docs/RESULTS.md that gave 1.22%), so a user of either gets it."""
    full = vars(experiments.default_args("recurrent", **tutorial_constant("FULL"), out="x"))
    entry = load_tutorial("reproduce", BENCHMARKS).REPRODUCTIONS["recurrent"]
    recipe = vars(cli.build_parser().parse_args(entry.argv(tmp_path)))
    assert options_that_differ(full, recipe).keys() == {"out"}
    assert full["train_size"] == 60_000 and full["warmup_batches"] == 200


@pytest.fixture(scope="module")
def t09_run(script_run):
    """``python tutorials/09_recurrent_top_down.py --quick --out DIR --no-progress``, run
    once in this process: (its namespace, wall seconds, out folder)."""
    return script_run(T09, "--no-progress")


@needs_mnist
def test_quick_script_writes_figures_in_time(t09_run):
    _, seconds, out = t09_run
    for name in FIGURES:
        assert_png(out / name)
    assert seconds < QUICK_BUDGET + SLACK, (
        f"{T09} --quick took {seconds:.1f} s, budget {QUICK_BUDGET:.0f} s (+{SLACK:.0f} s slack)"
    )


@needs_mnist
def test_dynamics_label_arrival_and_local_gradient(t09_run):
    ns, _, _ = t09_run
    assert ns["step_diff"] < 1e-14  # the written-out blend = damped_step
    assert ns["goodness_diff"] < 1e-12  # the written-out dynamics = goodness_trace
    expected = {
        "2 layers, synchronous": [2, 1],
        "4 layers, synchronous": [4, 3, 2, 1],
        "4 layers, alternating": [2, 2, 1, 1],
    }
    assert sorted(ns["arrival"]) == sorted(expected)
    for name, reached in expected.items():
        assert ns["arrival"][name]["predicted"] == reached, name
        assert ns["arrival"][name]["measured"] == reached, name  # arrives when predicted
    assert sorted(ns["fd_errors"]) == sorted(
        f"{c}{l}.{p}" for l in range(2) for c, p in (("up", "W"), ("up", "b"), ("down", "W"))
    )
    for key, err in ns["fd_errors"].items():
        assert err < LOCAL_FD_TOL, f"{key}: {err:.2e}"


@needs_mnist
def test_visible_step_equals_the_library_and_differs_from_bptt(t09_run):
    ns, _, _ = t09_run
    # the cell asserting equality with RecurrentFFNet.train_step ran, for three steps
    assert len(ns["grad_errors"]) == 3 and max(ns["grad_errors"]) < 1e-5
    bptt = ns["bptt"]
    if bptt is None:
        pytest.importorskip("autograd")  # skipped in the script only without autograd
    assert len(bptt) == 6
    for key, (held, through, cosine) in bptt.items():
        assert held < FF_AUTOGRAD_TOL, f"{key}: {held:.2e}"
        assert through > MIN_BPTT_DIFF, f"{key}: {through:.2e}"
        assert cosine < 0.99, f"{key}: through time points the same way ({cosine:.3f})"


@needs_mnist
def test_quick_run_learns(t09_run):
    ns, _, out = t09_run
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["experiment"] == "recurrent"
    assert config["hidden"] == [200, 200] and config["iterations"] == 8
    assert config["damping"] == 0.3 and config["schedule"] == "synchronous"
    assert config["average_iterations"] == [3, 5]
    for key in ("test_error_goodness", "test_error_softmax"):
        assert 0 <= ns[key] < MAX_QUICK_ERROR, f"{key} = {ns[key]}"
    errors = ns["error_by_window"]
    assert errors["3-5"] == ns["test_error_goodness"]
    # At iteration 1 only the top layer has seen the label: the worst single iteration.
    assert errors["1-1"] == max(v for k, v in errors.items() if k.split("-")[0] == k.split("-")[1])
    assert errors["3-5"] < errors["1-1"]
    stats = ns["stats"]
    assert len(stats["correct_mean"]) == 8
    # Once the label has reached every layer, the correct label's goodness is the better
    # one: higher under "max", lower under "min" (the experiment's default).
    sign = 1 if config["objective"] == "max" else -1
    for t in range(1, 8):
        gap = sign * (stats["correct_mean"][t] - stats["wrong_mean"][t])
        assert gap > 0, f"iteration {t + 1}: {config['objective']}"
