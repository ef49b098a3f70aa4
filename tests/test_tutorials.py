"""Run every tutorial's quick mode on real MNIST: figures written, within the time budget.

Each tutorial is imported from its path (``tutorials/`` is not a package) and its
``main(["--quick", "--out", DIR])`` is called once (the ``quick_run`` fixture of
``conftest.py``). The tests need the four MNIST files in
``$FF_NUMPY_DATA`` (CI sets it) or in the download cache; they are skipped otherwise.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import (
    QUICK_BUDGET,
    SLACK,
    assert_png,
    assert_quick_run,
    load_tutorial,
    needs_mnist,
)


@needs_mnist
@pytest.mark.parametrize(
    "stem, figures",
    [
        ("01_goodness_and_one_layer", ["goodness_histograms.png"]),
        ("02_supervised_mnist", ["learning_curve.png", "receptive_fields.png"]),
    ],
)
def test_quick_run_writes_figures_in_time(quick_run, stem, figures):
    assert_quick_run(quick_run(stem), stem, figures)


@needs_mnist
def test_tutorial_01_layer_separates_positive_from_negative(quick_run):
    result, _, _ = quick_run("01_goodness_and_one_layer")
    assert result["p_correct_before"] == pytest.approx(0.5)  # every row starts below theta
    assert result["p_correct_after"] > 0.7


@needs_mnist
def test_tutorial_02_beats_chance(quick_run):
    result, _, _ = quick_run("02_supervised_mnist")
    for key in ("test_error_goodness", "test_error_softmax"):
        assert 0 <= result[key] < 0.5, f"{key} = {result[key]}"


def test_tutorial_01_gradient_check_without_autograd(monkeypatch, capsys):
    """Without autograd the gradient check falls back to finite differences."""
    tutorial = load_tutorial("01_goodness_and_one_layer")
    monkeypatch.setitem(sys.modules, "autograd", None)  # makes `import autograd` fail
    monkeypatch.setitem(sys.modules, "autograd.numpy", None)
    check = tutorial.gradient_check(np.random.default_rng(0))
    assert check["method"] == "finite differences"
    assert "not installed" in capsys.readouterr().out


def test_tutorial_01_gradient_check_with_autograd():
    """With autograd the library's local gradient matches it to rounding error."""
    pytest.importorskip("autograd")

    check = load_tutorial("01_goodness_and_one_layer").gradient_check(np.random.default_rng(1))
    assert check["method"] == "autograd"


def test_tutorial_03_orientation_invariance_and_one_shot(quick_run):
    """Runs without MNIST too (a random input stands in), so no skip."""
    result, seconds, out = quick_run("03_learning_fast")
    assert seconds < QUICK_BUDGET + SLACK
    for fig in result["figures"]:
        assert_png(fig)
    changes = result["orientation_changes"]
    assert changes["dense, squared goodness"] < 1e-12  # Sec. 7: orientation unchanged
    assert changes["dense, unsquared goodness"] > 1e-3  # ... but not for these two
    assert changes["masked (local fields), squared"] > 1e-3
    assert max(result["one_shot_errors"]) < 1e-9  # Eq. 4: every layer on target
