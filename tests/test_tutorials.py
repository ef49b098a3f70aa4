"""Run every tutorial's quick mode on real MNIST: figures written, within the time budget.

Each tutorial is imported from its path (``tutorials/`` is not a package) and its
``main(["--quick", "--out", DIR])`` is called. The tests need the four MNIST files in
``$FF_NUMPY_DATA`` (CI sets it) or in the download cache; they are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ff_numpy.data import find_data_dir

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUICK_BUDGET = 40.0  # seconds a quick run may take on 2 cores
SLACK = 20.0  # CI machines may be loaded

needs_mnist = pytest.mark.skipif(
    find_data_dir() is None,
    reason="MNIST not found: set FF_NUMPY_DATA to a folder holding the four IDX files "
    "(e.g. export FF_NUMPY_DATA=../shared/data)",
)


def load_tutorial(stem: str):
    """Import ``tutorials/<stem>.py`` as a module (its ``main`` is not run)."""
    path = TUTORIALS / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"tutorial_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG file"
    assert len(data) > 1000, f"{path} is only {len(data)} bytes"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``quick_run(stem)`` -> (result of main, wall seconds, out folder); each runs once."""
    runs = {}

    def run(stem):
        if stem not in runs:
            out = tmp_path_factory.mktemp(stem)
            tutorial = load_tutorial(stem)
            t0 = time.perf_counter()
            result = tutorial.main(["--quick", "--out", str(out)])
            runs[stem] = (result, time.perf_counter() - t0, out)
        return runs[stem]

    return run


@needs_mnist
@pytest.mark.parametrize(
    "stem, figures",
    [
        ("01_goodness_and_one_layer", ["goodness_histograms.png"]),
        ("02_supervised_mnist", ["learning_curve.png", "receptive_fields.png"]),
    ],
)
def test_quick_run_writes_figures_in_time(quick_run, stem, figures):
    result, seconds, out = quick_run(stem)
    for name in figures:
        assert_png(out / name)
    assert sorted(Path(f).name for f in result["figures"]) == sorted(figures)
    assert seconds < QUICK_BUDGET + SLACK, (
        f"{stem} --quick took {seconds:.1f} s, budget {QUICK_BUDGET:.0f} s (+{SLACK:.0f} s slack)"
    )


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
