"""Run the quick modes of tutorials 04 (black box) and 05 (FF vs backprop) on real MNIST.

As in ``test_tutorials.py``: each tutorial is imported from its path (``tutorials/`` is
not a package) and its ``main(["--quick", "--out", DIR, "--no-progress"])`` is called
once (the ``quick_run`` fixture of ``conftest.py``); the tests check the figures, the
time budget and a few numbers. They need the four MNIST files in
``$FF_NUMPY_DATA`` (CI sets it) or in the download cache; they are skipped otherwise.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import assert_png, assert_quick_run, load_tutorial, needs_mnist

QUICK_OPTIONS = ["--no-progress"]  # extra options of every quick run (conftest.quick_run)


@needs_mnist
@pytest.mark.parametrize(
    "stem, figures",
    [
        ("04_black_box", ["box_transform.png", "test_errors.png"]),
        ("05_ff_vs_backprop", ["ff_vs_backprop.png"]),
    ],
)
def test_quick_run_writes_figures_in_time(quick_run, stem, figures):
    assert_quick_run(quick_run(stem), stem, figures)


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
    assert result["ff"]["train_cpu_seconds"] > 0 and result["bp"]["train_cpu_seconds"] > 0
    # Runs made before train_cpu_seconds existed still draw (two panels instead of three).
    for tag in ("ff", "bp"):
        (tmp_path / tag).mkdir()
        m = json.loads((out / tag / "metrics.json").read_text())
        for r in m["history"]:
            del r["train_cpu_seconds"]
        (tmp_path / tag / "metrics.json").write_text(json.dumps(m))
    old = tutorial.main(
        ["--from-runs", str(tmp_path / "ff"), str(tmp_path / "bp"), "--out", str(tmp_path)]
    )
    assert "train_cpu_seconds" not in old["ff"]
    assert_png(tmp_path / "ff_vs_backprop.png")


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
