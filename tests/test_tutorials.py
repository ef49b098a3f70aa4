"""Run every tutorial's quick setting as a script on real MNIST, within the time budget.

Tutorials 01, 02 and 03 are notebooks that unfold (``tests/test_notebooks.py`` runs them in a
Jupyter kernel); here each runs once as the script a student starts,
``python tutorials/NN_x.py --quick --out DIR``, in this process (``runpy`` with that
command line), and the test reads the numbers the script left in its namespace. The
MNIST tests need the four files in ``$FF_NUMPY_DATA`` (CI sets it) or in the download
cache; they are skipped otherwise.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from helpers import assert_in_time, assert_png, needs_mnist
from matplotlib.figure import Figure

from ff_numpy import tutorial


@needs_mnist
def test_tutorial_01_script_separates_positive_from_negative(script_run):
    ns, seconds, out = script_run("01_goodness_and_one_layer")
    assert_in_time(seconds, "01_goodness_and_one_layer")
    for name in ("positive_and_negative.png", "goodness_histograms.png"):
        assert_png(out / name)
    assert ns["p_correct_before"] == pytest.approx(0.5)  # every row starts below theta
    assert ns["p_correct_after"] > 0.7
    assert ns["digit_correct_after"] > 0.7


@needs_mnist
def test_tutorial_02_script_trains_from_the_parts_and_through_the_experiment(script_run):
    ns, seconds, out = script_run("02_supervised_mnist", "--no-progress")
    assert_in_time(seconds, "02_supervised_mnist")
    for name in ("our_receptive_fields.png", "learning_curve.png", "receptive_fields.png"):
        assert_png(out / name)
    assert (out / "metrics.json").is_file() and (out / "model.npz").is_file()
    # our lines: the cell asserting they equal FFNet.train_step ran (an AssertionError
    # would have stopped the script), and they learnt
    assert ns["pairs"] and ns["error_softmax"] < 0.3 and ns["error_goodness"] < 0.5
    # the library's experiment
    for key in ("test_error_goodness", "test_error_softmax"):
        assert 0 <= ns[key] < 0.5, f"{key} = {ns[key]}"


@needs_mnist
def test_tutorial_03_script_invariance_one_shot_and_online_runs(script_run):
    ns, seconds, out = script_run("03_learning_fast", "--no-progress")
    assert_in_time(seconds, "03_learning_fast")
    for name in ("eq3_orientation.png", "one_shot.png", "online_vs_minibatch.png"):
        assert_png(out / name)
    # the cells asserting Eq. 3 and Eq. 4 written out equal fast's ran (an AssertionError
    # would have stopped the script); what they showed:
    changes = ns["changes"]
    assert changes["dense, squared goodness"] < 1e-12  # Sec. 7: orientation unchanged
    assert changes["dense, unsquared goodness"] > 1e-3  # ... but not for these two
    assert changes["masked (local fields), squared"] > 1e-3
    assert max(ns["one_shot_errors"]) < 1e-9  # Eq. 4: every layer on its target
    for method, m in ns["online"].items():  # the online experiment, both methods
        assert m["config"]["method"] == method
        assert (out / method / "metrics.json").is_file()
        assert m["history"][-1]["examples_seen"] == ns["STREAM"]["train_size"]
        assert 0 <= m["test_error_softmax"] < 0.9, f"{method}: chance is 0.9"


def _fake_ipython(monkeypatch, shell_class_name: str) -> None:
    """Make ``IPython.get_ipython()`` return a shell of a class with that name."""
    shell = type(shell_class_name, (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_in_a_notebook_the_options_are_the_quick_setting_whatever_the_argv(monkeypatch):
    p = tutorial.parser("t", "q", Path("o"))
    _fake_ipython(monkeypatch, "ZMQInteractiveShell")
    assert tutorial.in_notebook()
    opts = tutorial.parse_options(p, ["-f", "/tmp/kernel-1.json"])  # the kernel's own argv
    assert opts.quick and opts.no_progress and opts.out == Path("o")
    opts = tutorial.parse_options(tutorial.parser("t", "q", Path("o"), trains=False))
    assert opts.quick and not hasattr(opts, "no_progress")


def test_in_a_script_or_ipython_terminal_the_command_line_decides(monkeypatch):
    p = tutorial.parser("t", "q", Path("o"))
    assert not tutorial.in_notebook()  # pytest
    assert not tutorial.parse_options(p, []).quick
    _fake_ipython(monkeypatch, "TerminalInteractiveShell")  # %run tutorials/NN_x.py
    assert not tutorial.in_notebook()
    assert tutorial.parse_options(p, ["--quick"]).quick
    with pytest.raises(SystemExit):
        tutorial.parse_options(p, ["-f", "/tmp/kernel-1.json"])


def test_show_saves_a_figure_and_prints_its_path_in_a_script(tmp_path, capsys):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    tutorial.show(fig, tmp_path / "a" / "f.png", caption="full run")
    assert_png(tmp_path / "a" / "f.png")
    assert capsys.readouterr().out.strip() == f"full run: {tmp_path / 'a' / 'f.png'}"
    with pytest.raises(ValueError, match="path"):
        tutorial.show(fig)
    tutorial.show_docs_figure("no_such_figure.png", "full run")
    assert "docs/figures/no_such_figure.png" in capsys.readouterr().out
