"""Tutorials 04 (black box) and 05 (FF against backprop) run as scripts on real MNIST.

Each runs once per module as the script a student starts,
``python tutorials/NN_x.py --quick --out DIR --no-progress`` (``runpy`` in this process,
:func:`helpers.run_tutorial`); the tests check the figures, the time budget and the
numbers the script left in its namespace. The cells that assert the written-out
mechanism equal to the library's (04: the FF step through the box against
``FFNet.train_step``; 05: backprop's step against ``MLP``) raise on any difference, so
a finished run means they held. ``tests/test_notebooks.py`` runs the same files in a
Jupyter kernel. The tests need the four MNIST files in ``$FF_NUMPY_DATA`` (CI sets it)
or in the download cache; they are skipped otherwise.
"""

from __future__ import annotations

import json

import pytest
from helpers import QUICK_BUDGET, SLACK, assert_png, needs_mnist, run_tutorial

pytestmark = needs_mnist
T04, T05 = "04_black_box", "05_ff_vs_backprop"


@pytest.fixture(scope="module")
def quick(script_run):
    """``quick(stem)`` -> (namespace, wall seconds, out folder) of the quick run."""
    return lambda stem: script_run(stem, "--no-progress")


@pytest.mark.parametrize(
    "stem, figures",
    [(T04, ["box_transform.png", "test_errors.png"]), (T05, ["ff_vs_backprop.png"])],
)
def test_quick_run_writes_figures_in_time(quick, stem, figures):
    _, seconds, out = quick(stem)
    for name in figures:
        assert_png(out / name)
    assert seconds < QUICK_BUDGET + SLACK, (
        f"{stem} --quick took {seconds:.1f} s, budget {QUICK_BUDGET:.0f} s (+{SLACK:.0f} s slack)"
    )


# ----------------------------------------------------------------------------- 04
def test_tutorial_04_box_written_out_and_its_derivative(quick):
    ns, _, _ = quick(T04)
    assert (ns["z"] == ns["z_lib"]).all()  # the box written out = BlackBox, same noise
    box = ns["box_report"]
    assert box["fd_changed_fraction"] < 0.01  # a nudge leaves almost every output unchanged
    assert box["noise_difference"] > 0  # the same input twice: different outputs
    assert box["straight_through_right_unit"] < 0.1  # the permutation scrambles the units


def test_tutorial_04_ff_step_through_the_box_equals_ffnet(quick):
    ns, _, _ = quick(T04)
    assert max(ns["errs"]) < 1e-5  # the last step's gradients; the cell asserted all three
    assert ns["net"].boxes  # the library's net had the box


def test_tutorial_04_five_runs_each_in_its_own_folder(quick):
    ns, _, out = quick(T04)
    errors = ns["errors"]
    assert sorted(errors) == sorted(folder for folder, *_ in ns["RUNS"])
    for folder, errs in errors.items():
        config = json.loads((out / folder / "metrics.json").read_text())["config"]
        assert (config["black_box"] is None) == (folder in ("ff", "bp")), folder
        saved = json.loads((out / folder / "metrics.json").read_text())
        for kind, e in errs.items():  # the tutorial shows the run's own test errors
            key = "test_error" if kind == "backprop" else f"test_error_{kind}"
            assert e == saved[key], f"{folder} {kind}: {e} shown, {saved[key]} saved"
    # Both methods learn something with the box in place (chance is 90% error).
    assert errors["ff_box"]["softmax"] < 0.5
    assert errors["bp_box_straight"]["backprop"] < 0.5


# ----------------------------------------------------------------------------- 05
def test_tutorial_05_records_curves_of_both_runs(quick):
    ns, _, out = quick(T05)
    summary = ns["summary"]
    for tag, keys in (
        ("ff", ("test_error_goodness", "test_error_softmax")),
        ("bp", ("test_error",)),
    ):
        for key in keys:
            assert 0 <= summary[tag][key] < 0.5, f"{tag} {key} = {summary[tag][key]}"
        hist = json.loads((out / tag / "metrics.json").read_text())["history"]
        assert all("train_seconds" in r for r in hist)
        assert any(k.startswith("test_error") for k in hist[-1])  # track_test was on
    assert ns["epoch_cost_ratio"] > 0
    assert ns["predicted_ratio"] > 1  # FF does more products per image
    assert ns["clocks"] == ["wall", "cpu"]  # both runs recorded their CPU time


def test_tutorial_05_from_runs_draws_without_training(quick, tmp_path):
    ns, _, out = quick(T05)
    again, _ = run_tutorial(
        T05, "--from-runs", str(out / "ff"), str(out / "bp"), "--out", str(tmp_path)
    )
    assert_png(tmp_path / "ff_vs_backprop.png")
    assert not (tmp_path / "ff").exists()  # nothing trained
    assert again["summary"] == ns["summary"]
    # Runs made before train_cpu_seconds was recorded still draw, without the CPU panel.
    for tag in ("ff", "bp"):
        (tmp_path / "old" / tag).mkdir(parents=True)
        m = json.loads((out / tag / "metrics.json").read_text())
        for r in m["history"]:
            del r["train_cpu_seconds"]
        (tmp_path / "old" / tag / "metrics.json").write_text(json.dumps(m))
    old, _ = run_tutorial(
        T05, "--from-runs", *(str(tmp_path / "old" / t) for t in ("ff", "bp")),
        "--out", str(tmp_path / "old"),
    )  # fmt: skip
    assert old["clocks"] == ["wall"]
    assert_png(tmp_path / "old" / "ff_vs_backprop.png")


def test_tutorial_05_from_runs_rejects_swapped_folders(tmp_path):
    """A backprop run given where the FF run is expected is refused, naming the file."""
    for name, experiment in (("a", "backprop"), ("b", "supervised")):
        (tmp_path / name).mkdir()
        metrics = {"config": {"experiment": experiment}, "history": []}
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="expected a 'supervised' run"):
        run_tutorial(
            T05, "--from-runs", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path)
        )
