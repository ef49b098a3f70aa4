"""Run the quick modes of tutorials 04 (black box) and 05 (FF vs backprop) on real MNIST.

As in ``test_tutorials.py``: each tutorial is imported from its path (``tutorials/`` is
not a package) and its ``main(["--quick", "--out", DIR])`` is called once; the tests check
the figures, the time budget and a few numbers. They need the four MNIST files in
``$FF_NUMPY_DATA`` (CI sets it) or in the download cache; they are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

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
            result = tutorial.main(["--quick", "--out", str(out), "--no-progress"])
            runs[stem] = (result, time.perf_counter() - t0, out)
        return runs[stem]

    return run


@needs_mnist
@pytest.mark.parametrize(
    "stem, figures",
    [
        ("04_black_box", ["box_transform.png", "test_errors.png"]),
        ("05_ff_vs_backprop", ["ff_vs_backprop.png"]),
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
def test_tutorial_04_box_has_no_useful_derivative(quick_run):
    result, _, _ = quick_run("04_black_box")
    box = result["box"]
    assert box["fd_changed_fraction"] < 0.01  # a nudge leaves almost every output unchanged
    assert box["noise_difference"] > 0  # the same input twice: different outputs
    assert box["straight_through_right_unit"] < 0.1  # the permutation scrambles the units


@needs_mnist
def test_tutorial_04_five_runs_each_in_its_own_folder(quick_run):
    result, _, out = quick_run("04_black_box")
    tutorial = load_tutorial("04_black_box")
    assert sorted(result["errors"]) == sorted(folder for folder, *_ in tutorial.RUNS)
    for folder, errors in result["errors"].items():
        config = json.loads((out / folder / "metrics.json").read_text())["config"]
        assert (config["black_box"] is None) == (folder in ("ff", "bp")), folder
        for kind, e in errors.items():
            assert 0 <= e <= 1 and math.isfinite(e), f"{folder} {kind}: {e}"
    # Both methods learn something with the box in place (chance is 90% error).
    assert result["errors"]["ff_box"]["softmax"] < 0.5
    assert result["errors"]["bp_box_straight"]["backprop"] < 0.5


@needs_mnist
def test_tutorial_05_records_curves_and_redraws_from_runs(quick_run, tmp_path):
    result, _, out = quick_run("05_ff_vs_backprop")
    for tag, keys in (
        ("ff", ("test_error_goodness", "test_error_softmax")),
        ("bp", ("test_error",)),
    ):
        for key in keys:
            assert 0 <= result[tag][key] < 0.5, f"{tag} {key} = {result[tag][key]}"
        hist = json.loads((out / tag / "metrics.json").read_text())["history"]
        assert all("train_seconds" in r for r in hist)
        assert any(k.startswith("test_error") for k in hist[-1])  # track_test was on
    assert result["epoch_cost_ratio"] > 0
    # --from-runs trains nothing and only draws.
    tutorial = load_tutorial("05_ff_vs_backprop")
    again = tutorial.main(["--from-runs", str(out / "ff"), str(out / "bp"), "--out", str(tmp_path)])
    assert_png(tmp_path / "ff_vs_backprop.png")
    assert again["ff"]["test_error_softmax"] == result["ff"]["test_error_softmax"]


def test_tutorial_05_from_runs_rejects_swapped_folders(tmp_path):
    """A backprop run given where the FF run is expected is refused, naming the file."""
    tutorial = load_tutorial("05_ff_vs_backprop")
    for name, experiment in (("a", "backprop"), ("b", "supervised")):
        (tmp_path / name).mkdir()
        metrics = {"config": {"experiment": experiment}, "history": []}
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="expected a 'supervised' run"):
        tutorial.main(
            ["--from-runs", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path)]
        )
