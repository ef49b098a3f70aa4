"""The command line, the printout and the checks shared by the tutorials
(ff_numpy.tutorial)."""

from pathlib import Path

import numpy as np
import pytest

from ff_numpy import tutorial
from ff_numpy.layers import Dense


def test_parser_has_the_shared_options_with_their_defaults():
    p = tutorial.parser("Title line.\n\nMore.", "small run", Path("runs/x"))
    assert p.description == "Title line."
    opts = p.parse_args([])
    assert opts.out == Path("runs/x") and opts.data_dir is None
    assert not opts.quick and not opts.resume and not opts.no_progress
    opts = p.parse_args(["--quick", "--out", "o", "--data-dir", "d", "--resume", "--no-progress"])
    assert (opts.quick, opts.out, opts.data_dir, opts.resume, opts.no_progress) == (
        True,
        Path("o"),
        "d",
        True,
        True,
    )


def test_parser_without_training_has_no_resume():
    p = tutorial.parser(None, "small run", Path("o"), "folder for the figure", trains=False)
    assert p.description == ""
    with pytest.raises(SystemExit):
        p.parse_args(["--resume"])
    assert "folder for the figure" in p.format_help()


def test_resume_help_names_one_run_or_several():
    one = tutorial.parser("t", "q", Path("o")).format_help()
    several = tutorial.parser("t", "q", Path("o"), several_runs=True).format_help()
    assert "from OUT/model.npz" in " ".join(one.split())
    assert "from their model.npz" in " ".join(several.split())


def test_history_lines_show_goodness_only_where_measured():
    metrics = {
        "history": [
            {"epoch": 1, "val_error_softmax": 0.05},
            {"epoch": 2, "val_error_softmax": 0.0425, "val_error_goodness": 0.0312},
        ]
    }
    lines = tutorial.history_lines(metrics)
    assert lines[0] == "epoch  validation error (softmax, goodness)"
    assert lines[1] == "    1   5.00%    - "
    assert lines[2] == "    2   4.25%   3.12%"


def test_history_lines_without_any_goodness_have_one_column():
    metrics = {"history": [{"epoch": 3, "val_error_softmax": 0.1}]}
    assert tutorial.history_lines(metrics) == [
        "epoch  validation error (softmax)",
        "    3  10.00%",
    ]


def test_history_lines_of_a_run_without_validation_show_its_test_progress():
    metrics = {
        "history": [
            {"epoch": 1, "test_error_softmax": 0.05},
            {"epoch": 2, "test_error_softmax": 0.04, "test_error_goodness": 0.0122},
        ]
    }
    assert tutorial.history_lines(metrics) == [
        "epoch  test error, progress only (softmax, goodness)",
        "    1   5.00%    - ",
        "    2   4.00%   1.22%",
    ]
    bare = {"history": [{"epoch": 1}, {"epoch": 2}]}
    assert tutorial.history_lines(bare) == [
        "2 epochs; no validation images and no --track-test: no errors"
    ]


def test_progress_split_prefers_validation_then_test():
    assert tutorial.progress_split([{"epoch": 1, "val_error": 0.1, "test_error": 0.2}]) == "val"
    assert tutorial.progress_split([{"epoch": 1}, {"epoch": 2, "test_error_goodness": 0.1}]) == (
        "test"
    )
    assert tutorial.progress_split([{"epoch": 1, "train_loss": 0.3}]) is None


def test_history_lines_of_a_backprop_run_show_its_single_error():
    metrics = {"history": [{"epoch": 1, "val_error": 0.0312, "test_error": 0.03}]}
    assert tutorial.history_lines(metrics) == [
        "epoch  validation error (backprop)",
        "    1   3.12%",
    ]


def test_assert_same_scales_the_tolerance_by_the_layer_or_the_array():
    rng = np.random.default_rng(0)
    ours = [Dense(4, 3, rng, dtype=np.float64), Dense(3, 2, rng, dtype=np.float64)]
    lib = [Dense(4, 3, rng, dtype=np.float64), Dense(3, 2, rng, dtype=np.float64)]
    for a, b in zip(ours, lib):
        a.W[...], a.b[...] = b.W, b.b
    pairs = tutorial.layer_pairs(ours, lib)
    assert [p[0] for p in pairs] == ["layer 0 W", "layer 0 b", "layer 1 W", "layer 1 b"]
    assert pairs[1][3] == np.abs(lib[0].W).max()  # b is measured against its layer's W
    tutorial.assert_same(pairs)
    ours[1].b[0] += 2e-6 * np.abs(lib[1].W).max()  # above a millionth of the layer's W
    with pytest.raises(AssertionError, match="layer 1 b: ours and the library differ by"):
        tutorial.assert_same(tutorial.layer_pairs(ours, lib))
    tutorial.assert_same(tutorial.layer_pairs(ours, lib), rel_tol=1e-5)
    # scale None: a millionth of the array's own largest entry
    big, near = np.array([1000.0, 1.0]), np.array([1000.0, 1.0005])
    tutorial.assert_same([("x", near, big, None)])
    with pytest.raises(AssertionError, match="x: ours and the library"):
        tutorial.assert_same([("x", near, big, 1.0)])
