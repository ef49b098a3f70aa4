"""Tutorials 06 (unsupervised FF, hybrid negatives), 07 (local receptive fields, peer
normalisation) and 08 (jittered MNIST, Fig. 2).

Tutorials 06, 07 and 08 are notebooks that unfold (``tests/test_notebooks.py`` runs them
in a Jupyter kernel); here each runs once as the script a student starts, ``python
tutorials/NN_x.py --quick --out DIR --no-progress``, in this process (``runpy`` with that
command line), and the tests read the numbers the script left in its namespace. The
tests check the figures, the time budget and numbers that would be wrong if the tutorial
or the library were. They need the four MNIST files in ``$FF_NUMPY_DATA`` (CI sets it) or
in the download cache; they are skipped otherwise. What of tutorial 08 needs no data (its
shifts written out, its settings and their command-line checks) is also tested without
MNIST, by running those parts of the file alone.
"""

from __future__ import annotations

import ast
import json
import math
import shlex
import sys

import numpy as np
import pytest
from helpers import (
    BENCHMARKS,
    TUTORIALS,
    assert_in_time,
    assert_png,
    load_tutorial,
    needs_mnist,
    options_that_differ,
    run_tutorial,
)

from ff_numpy import cli, experiments
from ff_numpy.negatives import N_BLUR, all_shifts, jitter

QUICK_OPTIONS = ["--no-progress"]  # extra options of every quick run of a script
T06, T07, T08 = "06_unsupervised_hybrid_negatives", "07_local_receptive_fields", "08_jittered_mnist"


# ----------------------------------------------------------------------------- 06
T06_FIGURES = (
    "mask_blurring.png",
    "hybrid_gallery.png",
    "learning_curve.png",
    "readout_layers.png",
)


@needs_mnist
def test_tutorial_06_script_masks_hybrids_mechanism_and_run(script_run):
    ns, seconds, out = script_run(T06, *QUICK_OPTIONS)
    assert_in_time(seconds, T06)
    for name in T06_FIGURES:
        assert_png(out / name)
    # the masks: more blurring, larger regions; about half ones
    runs = [ns["run_lengths"][k] for k in sorted(ns["run_lengths"])]
    assert runs == sorted(runs), runs
    assert ns["run_lengths"][0] < 2.5  # random bits: runs of about 2
    assert 5 < ns["run_lengths"][N_BLUR] < 11  # a stroke to half a digit
    assert 0.4 < ns["masks_by_blur"][N_BLUR].mean() < 0.6
    # the hybrids: equal to the library's (asserted in the script), never self-paired
    assert not np.any(ns["partner"] == np.arange(len(ns["partner"])))
    # our lines: the cell asserting they equal FFNet.train_step ran (an AssertionError
    # would have stopped the script), on every layer and the readout
    assert len(ns["pairs"]) == 2 * len(ns["layers"]) + 2
    # the library's experiment
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["experiment"] == "unsupervised" and len(config["hidden"]) == 4
    assert config["score_layers"] == [1, 2, 3]  # the last three layers by default
    assert ns["test_error_softmax"] < 0.5  # chance is 0.9
    # the frozen-feature readouts
    errors = ns["readout_errors"]
    assert list(errors) == [(1, 2, 3), (0, 1, 2, 3)]
    for subset, err in errors.items():
        for split in ("validation", "test"):
            assert 0 <= err[split] < 0.5 and math.isfinite(err[split]), (subset, split)
    assert ns["best"] == min(errors, key=lambda k: errors[k]["validation"])


# ----------------------------------------------------------------------------- 07
T07_FIGURES = ("local_fields.png", "unit_means.png", "local_receptive_fields.png")


@needs_mnist
def test_tutorial_07_script_fields_peer_term_mechanism_and_run(script_run):
    ns, seconds, out = script_run(T07, *QUICK_OPTIONS)
    assert_in_time(seconds, T07)
    for name in (*T07_FIGURES, "learning_curve.png"):
        assert_png(out / name)
    # the architecture: fan-in, units, and the pixels a unit sees (10, then 6 + 10 = 16,
    # then 2 * 6 + 10 = 22), computed from the masks
    assert [f.field_size for f in ns["arch"]] == [100, 2 * 2 * 128, 2 * 2 * 220]
    assert [f.n_out for f in ns["arch"]] == [2048, 1980, 2048]
    assert ns["pixels_seen"] == [[(10, 10)], [(16, 16)], [(22, 22)]]
    # the peer term reaches units that are off, and is the library's
    assert ns["err"] < 1e-6
    off = ns["off"]
    assert np.count_nonzero(ns["dL_da"][:100][off]) == 0
    assert np.count_nonzero(ns["dL_da_peer"][:100][off]) == off.sum()
    # our lines: the cell asserting they equal FFNet.train_step ran (an AssertionError
    # would have stopped the script): every layer, running means and readout
    assert len(ns["pairs"]) == 3 * 2 + 3 + 2
    for layer in ns["layers"]:
        assert np.all(layer.W[layer.mask == 0] == 0)
    # the library's experiment
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["experiment"] == "local" and config["peer_strength"] == 0.03
    assert ns["test_error_softmax"] < 0.5  # chance is 0.9
    model = ns["model"]
    for layer in model.layers:  # Masked keeps the weights outside the fields at zero
        assert np.all(layer.W[layer.mask == 0] == 0)
    assert all(0 <= d < n for d, n in zip(ns["dead"], [2048, 1980, 2048]))
    assert all(c > 0 and math.isfinite(c) for c in ns["cv"])


# ----------------------------------------------------------------------------- 08
def _tutorial_08_settings(*argv: str) -> dict:
    """Tutorial 08's first code cell (its imports) and its script-only settings cell, run
    on their own with the command line ``argv`` (no data is read, nothing is trained):
    the namespace, with the ``RUN`` options and the constants."""
    path = TUTORIALS / f"{T08}.py"
    cells = [c.split("\n", 1) for c in ("\n" + path.read_text()).split("\n# %%")[1:]]
    code = [(header, body) for header, body in cells if "[markdown]" not in header]
    chosen = [code[0][1]] + [body for header, body in code if "script-only" in header]
    assert len(chosen) == 2, "tutorial 08 has no script-only settings cell"
    namespace = {"__file__": str(path), "__name__": "tutorial_08_settings"}
    saved, sys.argv = sys.argv, [str(path), *argv]
    try:
        for body in chosen:
            exec(compile(body, str(path), "exec"), namespace)
    finally:
        sys.argv = saved
    return namespace


def test_tutorial_08_shifts_by_hand_equal_jitter_without_mnist():
    """The tutorial's shift and batch jitter, compiled on their own (no data): equal to
    the library's shifts and to ``negatives.jitter`` from the same generator."""
    path = TUTORIALS / f"{T08}.py"
    tree = ast.parse(path.read_text())
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    nodes = [n for n in nodes if n.name in ("shift", "jitter_by_hand")]
    ns = {"np": np, "MAX_SHIFT": 2}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), ns)
    rng = np.random.default_rng(0)
    x = (rng.random((300, 784)) * (rng.random((300, 784)) < 0.3)).astype(np.float32)
    ours = ns["jitter_by_hand"](x, np.random.default_rng(1))
    assert np.array_equal(ours, jitter(x, np.random.default_rng(1), 2))
    for dr, dc, moved in all_shifts(x[:5], 2):
        by_hand = np.stack([ns["shift"](img.reshape(28, 28), dr, dc).ravel() for img in x[:5]])
        assert np.array_equal(by_hand, moved), (dr, dc)


def check_jitter(report: dict) -> None:
    assert report["unmatched_copies"] == 0  # every copy is exactly one of the 25 shifts
    assert report["shifts_seen"] == 25
    assert report["min_count"] > 0
    assert report["label_read_right_after"] == 25  # label written after the shift
    assert report["label_read_right_before"] == 1  # before: only the zero shift reads right


def _recorded_command(heading: str) -> list[str]:
    """The first ``ff-numpy ...`` command of the docs/RESULTS.md section ``heading``."""
    text = (TUTORIALS.parent / "docs" / "RESULTS.md").read_text()
    section = text[text.index(heading) :]
    block = section[section.index("```bash\n") + 8 :]
    block = block[: block.index("```")]
    first = block.replace("\\\n", " ").splitlines()[0]
    argv = shlex.split(first)
    assert argv[0] == "ff-numpy"
    return argv[1:]


def _tutorial_08_args(*argv: str) -> dict:
    """The options of tutorial 08's training run for its command line ``argv``, as
    ``ff-numpy train supervised`` would parse them (``--out x``)."""
    run = _tutorial_08_settings(*argv, "--out", "x")["RUN"]
    return vars(experiments.default_args("supervised", **run, out="x"))


def test_tutorial_08_setting_result_is_the_run_that_met_the_target():
    """``--setting result`` trains what docs/RESULTS.md records for the 0.635% result
    (its seed-0 run), option for option; the default stays the paper's net."""
    recorded = vars(
        cli.build_parser().parse_args(
            _recorded_command("### Jittered MNIST, the 3 x 1000 net on all 60,000 images, 1,200")
        )
    )
    result = _tutorial_08_args("--setting", "result")
    differ = options_that_differ(result, recorded)
    assert differ.keys() == {"out"}, differ
    assert result["hidden"] == [1000, 1000, 1000] and result["epochs"] == 1200
    assert result["train_size"] == 60_000 and result["track_test"]
    paper = _tutorial_08_args()
    assert paper == _tutorial_08_args("--setting", "paper")
    assert paper["hidden"] == [2000] * 4 and paper["epochs"] == 500 and paper["jitter"] == 2
    assert _tutorial_08_args("--setting", "result", "--epochs", "7")["epochs"] == 7


def test_tutorial_08_setting_result_is_what_reproduce_py_runs(tmp_path):
    """``--setting result`` and ``benchmarks/reproduce.py jitter_3x1000`` train the same
    net, so a user of either gets the recipe that met the target."""
    entry = load_tutorial("reproduce", BENCHMARKS).REPRODUCTIONS["jitter_3x1000"]
    recipe = vars(cli.build_parser().parse_args(entry.argv(tmp_path)))
    result = _tutorial_08_args("--setting", "result")
    differ = options_that_differ(result, recipe)
    assert differ.keys() == {"out"}, differ
    assert entry.paper == _tutorial_08_settings("--out", "x")["PAPER_TEST_ERROR"]


def test_tutorial_08_quick_refuses_a_setting_before_any_work(tmp_path, capsys):
    out = tmp_path / "t08"
    with pytest.raises(SystemExit) as exc:  # from the command line: a usage error
        run_tutorial(T08, "--quick", "--setting", "result", "--out", str(out))
    assert exc.value.code == 2 and "drop --setting result" in capsys.readouterr().err
    assert not out.exists()  # failed before loading data or drawing anything


@needs_mnist
def test_tutorial_08_script_jitter_mechanism_and_run(script_run):
    ns, seconds, out = script_run(T08, *QUICK_OPTIONS)
    assert_in_time(seconds, T08)
    for name in ("jitter_gallery.png", "learning_curve.png", "receptive_fields.png"):
        assert_png(out / name)
    # the cells asserting our jitter = negatives.jitter and our shift-then-step = the
    # experiment's task step ran (an AssertionError would have stopped the script)
    assert np.array_equal(ns["ours"], ns["lib"]) and ns["same"]
    check_jitter(ns["jitter_report"])
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["experiment"] == "supervised" and config["jitter"] == 2
    assert ns["test_error_softmax"] < 0.5
    assert ns["test_error_goodness"] < 0.9  # below chance
    assert 0 < ns["field_roughness"] < 1.5
    assert ns["label_weight_growth"] > 0


@needs_mnist
def test_tutorial_08_resume_of_a_finished_run_trains_nothing(script_run):
    ns, _, out = script_run(T08, *QUICK_OPTIONS)
    before = json.loads((out / "metrics.json").read_text())["history"]
    again, _ = run_tutorial(T08, "--quick", "--out", str(out), "--no-progress", "--resume")
    assert json.loads((out / "metrics.json").read_text())["history"] == before
    for key in ("test_error_goodness", "test_error_softmax"):
        assert again[key] == ns[key]
