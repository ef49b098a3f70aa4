"""``ff-numpy train cifar10``: Table 1's nets (paper Sec. 4) on real CIFAR-10, small.

Tiny runs of each procedure on the offline copy (a few hundred images, 2 iterations),
their error bounds, determinism, exact ``--resume`` after an interruption, the figures,
``ff-numpy evaluate``, option errors, and the cost arithmetic of the nets. The runs are
shared by module-scoped fixtures, so the whole file stays under a minute on two cores.

Error bounds: a classifier at chance has error 0.9 on CIFAR-10's ten balanced classes;
on 500 test images its error has a standard error of
:math:`\\sqrt{0.9 \\cdot 0.1 / 500} = 1.34` points, so an error below 0.85 lies 3.7
standard errors below chance (probability about 1e-4 for a classifier that learned
nothing). BP reaches about 0.70 in two epochs of 500 images, FF's one-pass softmax about
0.69 after 10 mini-batches of 2 iterations. FF's goodness needs more than a few batches
to beat chance (about 0.87 in that run), so for it the tests check what can be checked that
early: the numbers are error rates, the goodness traces have one value per iteration,
and (in the resume test) every layer's FF loss falls from the first epoch to the
second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import (
    BENCHMARKS,
    assert_error_rate,
    assert_png,
    interrupted_after,
    load_tutorial,
    numbers,
    train_args,
)

from ff_numpy import checkpoint, cli, experiments
from ff_numpy.backprop import MLP
from ff_numpy.data import find_cifar10
from ff_numpy.experiments import cifar10
from ff_numpy.locally_connected import Local
from ff_numpy.recurrent import RecurrentFFNet

needs_cifar10 = pytest.mark.skipif(
    find_cifar10() is None,
    reason="CIFAR-10 not found: build the offline copy (see data/README) or set FF_NUMPY_DATA",
)

TINY_FF = (
    "--procedure ff --train-size 1000 --test-size 500 --train-eval-size 100 --eval-size 100 "
    "--epochs 1 --iterations 2 --average-iterations 1 2 --warmup-batches 0 --seed 3"
).split()
TINY_BP = (
    "--procedure bp --train-size 500 --test-size 500 --train-eval-size 500 --eval-size 100 "
    "--epochs 2 --seed 3"
).split()
FF_FIGURES = (
    "fields.png",
    "label_block.png",
    "goodness_by_iteration.png",
    "error_by_window.png",
    "error_curves.png",
)
BP_FIGURES = ("fields.png", "error_curves.png")
CHANCE_BOUND = 0.85  # 3.7 standard errors below chance (0.9) on 500 test images


def _run(out, options):
    return experiments.get("cifar10").run(train_args("cifar10", out, *options))


@pytest.fixture(scope="module")
def ff_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar10") / "ff"
    return out, _run(out, TINY_FF)


@pytest.fixture(scope="module")
def bp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar10") / "bp"
    return out, _run(out, TINY_BP)


# ----------------------------------------------------------------------------- real runs
@needs_cifar10
def test_tiny_ff_run_has_every_key_and_its_softmax_beats_chance(ff_run):
    out, m = ff_run
    assert m["test_error_softmax"] < CHANCE_BOUND
    assert_error_rate(m["test_error_goodness"], 500, "test_error_goodness")  # --test-size
    for key in ("train_error_goodness", "train_error_softmax"):  # --train-eval-size 100
        assert_error_rate(m[key], 100, key)
    assert len(m["error_by_iteration"]) == 2 and set(m["error_by_window"]) >= {"1-2", "1-1"}
    assert len(m["goodness_by_iteration"]["correct_mean"]) == 2
    assert m["flops_per_image"]["train"] == cifar10.flops_per_image("ff", 2, 2, (1, 2), 2)["train"]
    assert m["achieved_gflops"] > 0
    (record,) = m["history"]
    assert {"train_error_softmax", "train_error_goodness", "val_error_softmax"} <= set(record)
    assert all(np.isfinite(v) for v in record["train_loss"].values())
    cfg = m["config"]
    assert cfg["lr"] == 0.001 and cfg["loss_iterations"] == [1, 2] and cfg["objective"] == "min"
    assert cfg["model"]["connections"] == {"up": ["Local", "Local"], "down": ["Local", "Dense"]}
    for name in FF_FIGURES:
        assert_png(out / name)
    assert json.loads((out / "metrics.json").read_text())["achieved_gflops"] == m["achieved_gflops"]


@needs_cifar10
def test_tiny_bp_run_beats_chance_and_records_training_error(bp_run):
    out, m = bp_run
    assert m["test_error"] < CHANCE_BOUND and m["train_error"] < m["test_error"]
    assert [set(r) >= {"train_error", "val_error"} for r in m["history"]] == [True, True]
    cfg = m["config"]
    assert cfg["lr"] == 0.02 and cfg["weight_decay"] == 5e-4 and cfg["objective"] is None
    assert cfg["warmup_batches"] == 0
    assert cfg["model"]["layers"] == ["Local", "Local"]
    assert m["flops_per_image"] == cifar10.flops_per_image("bp", 2)
    for name in BP_FIGURES:
        assert_png(out / name)


@pytest.fixture
def no_figures(monkeypatch):
    """Runs that check numbers only skip the figures (drawn and checked above)."""
    monkeypatch.setattr(cifar10.Cifar10, "figures", staticmethod(lambda metrics, out: None))


@needs_cifar10
@pytest.mark.parametrize("procedure", ["ff", "bp"])
def test_same_seed_same_numbers_and_exact_resume(procedure, tmp_path, no_figures):
    """Two runs with one seed give the same numbers (another seed others: BP); a run
    stopped after 3 mini-batches (epoch 1 saved, one batch of epoch 2) and resumed gives
    the numbers and arrays of the uninterrupted run, warm-up included."""
    options = (
        "--train-size 200 --test-size 100 --train-eval-size 50 --eval-size 50 --epochs 2 "
        f"--warmup-batches 3 --procedure {procedure}"
    ).split()
    if procedure == "ff":
        options += "--iterations 2 --average-iterations 1 2 --eval-every 1".split()
    whole = _run(tmp_path / "whole", options)
    assert numbers(_run(tmp_path / "again", options)) == numbers(whole)
    if procedure == "bp":
        assert numbers(_run(tmp_path / "seed1", [*options, "--seed", "1"])) != numbers(whole)
    else:  # every layer's FF loss falls from the first epoch to the second
        losses = [r["train_loss"] for r in whole["history"]]
        assert all(losses[1][f"layer{l}"] < losses[0][f"layer{l}"] for l in (0, 1)), losses
    task = cifar10.Cifar10FFTask if procedure == "ff" else cifar10.Cifar10BPTask
    with interrupted_after(task, 3):  # 2 batches an epoch
        _run(tmp_path / "cut", options)
    assert len(checkpoint.load(tmp_path / "cut" / "model.npz")[1]["history"]) == 1
    resumed = _run(tmp_path / "cut", [*options, "--resume"])
    assert numbers(resumed) == numbers(whole)
    a = checkpoint.load(tmp_path / "whole" / "model.npz")[0]
    b = checkpoint.load(tmp_path / "cut" / "model.npz")[0]
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


@needs_cifar10
def test_saved_net_reloads_and_evaluate_recomputes_the_test_errors(ff_run, bp_run, capsys):
    for out, m in (ff_run, bp_run):
        model = cifar10.load_cifar10_model(out / "model.npz")
        assert isinstance(model, RecurrentFFNet if m["config"]["procedure"] == "ff" else MLP)
        assert cli.main(["evaluate", str(out / "model.npz"), "--no-progress"]) == 0
        again = json.loads(capsys.readouterr().out)
        final = {k: v for k, v in m.items() if k.startswith("test_error")}
        assert {k: again[k] for k in final} == final


@needs_cifar10
def test_first_layer_fields_are_the_stored_weights_of_each_location(ff_run):
    """Read back from the ragged storage directly: location g's pairs are
    ``indptr[g]:indptr[g + 1]``, its 11 x 11 x 3 inputs in increasing (row-major) order."""
    model = cifar10.load_cifar10_model(ff_run[0] / "model.npz")
    fields, units = cifar10.first_layer_fields(model, n_locations=2)
    layer = model.up[0]
    assert isinstance(layer, Local) and fields.shape == (2 * 2 * 3, 11, 11, 3)
    for f, (row, col, c) in zip(fields, units):
        g = row * 32 + col
        pairs = slice(layer.fields.indptr[g], layer.fields.indptr[g + 1])
        np.testing.assert_array_equal(f, layer.W[pairs, c].reshape(11, 11, 3))
    assert cifar10.label_maps(model).shape == (10, 32, 32, 3)


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("--procedure bp --objective max", "--objective is an option of --procedure ff"),
        ("--procedure bp --iterations 4", "--iterations is an option of --procedure ff"),
        ("--average-iterations 5 12", "--average-iterations must be FIRST LAST"),
        ("--iterations 4", "--average-iterations must be FIRST LAST"),
        ("--loss-iterations 0 3", "--loss-iterations must be >= 1, got 0"),
        ("--loss-iterations 3 2", "--loss-iterations must be FIRST LAST"),
        ("--lr nan", "--lr must be a finite number > 0, got nan"),
        ("--test-size 0", "--test-size must be in 1..10000"),
        ("--train-size 50001", "--train-size must be in 1..50000"),
        ("--hidden-layers 0", "--hidden-layers must be >= 1"),
        ("--lr -1", "--lr must be > 0"),
        ("--procedure bp --weight-decay -1", "--weight-decay must be >= 0"),
        ("--damping 1", "--damping must be in [0, 1)"),
        ("--hard-floor 2", "--hard-floor must be in [0, 1]"),
        ("--layer dense", "--layer: invalid choice"),
        ("--procedure sgd", "--procedure: invalid choice"),
    ],
)
def test_bad_options_are_one_line_errors(options, needle, tmp_path, capsys):
    """Refused before any data is loaded: one line naming the option, exit status 2."""
    argv = ["train", "cifar10", *options.split(), "--no-progress", "--out", str(tmp_path)]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors (choices) exit from the parser
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "model.npz").exists()


def test_defaults_are_resolved_per_procedure():
    ff = cifar10.resolved_options(experiments.default_args("cifar10"))
    assert (ff["lr"], ff["weight_decay"], ff["warmup_batches"]) == (0.001, 0.001, 200)
    assert ff["average_iterations"] == [4, 6] and ff["loss_iterations"] == [1, 6]
    assert ff["iterations"] == 10 and ff["readout_lr"] == 0.01 and ff["objective"] == "min"
    assert ff["negatives"] == "random" and ff["goodness_per"] == "layer"
    # the loss runs to the end of the classification window, wherever it is moved
    moved = experiments.default_args("cifar10", average_iterations=[2, 8])
    assert cifar10.resolved_options(moved)["loss_iterations"] == [1, 8]
    bp = cifar10.resolved_options(experiments.default_args("cifar10", procedure="bp"))
    assert (bp["lr"], bp["weight_decay"], bp["warmup_batches"]) == (0.02, 5e-4, 0)
    assert all(bp[k] is None for k in cifar10.FF_DEFAULTS)
    args = experiments.default_args("cifar10")
    assert (args.train_size, args.test_size, args.train_eval_size) == (50_000, 10_000, 10_000)
    assert (args.epochs, args.batch_size, args.hidden_layers, args.layer) == (60, 100, 2, "local")


def test_standardise_is_per_channel_in_hwc_order_and_bp_reads_what_ff_reads():
    x = np.tile(cifar10.CHANNEL_MEAN + cifar10.CHANNEL_STD, 1024)[None]  # (1, 3072) HWC
    np.testing.assert_allclose(cifar10.standardise(x), 1.0, rtol=1e-6)
    rng = np.random.default_rng(0)
    x = rng.random((4, 3072), dtype=np.float32)
    bp = cifar10.prepare(x, "bp")
    np.testing.assert_allclose(np.mean(bp**2, axis=1), 1.0, rtol=1e-5)  # rms 1
    net = RecurrentFFNet(3072, [4], 10, rng)  # its image_input: the FF net's first step
    np.testing.assert_allclose(net.image_input(cifar10.prepare(x, "ff")), bp, rtol=1e-6)


# ----------------------------------------------------------------------------- cost
def test_cost_arithmetic_of_table1_nets():
    """Passes per image over a local connection (2 x 933,156 FLOPs each): 83 / 164 to
    train FF with 2 / 3 hidden layers at 10 iterations, 122 / 243 to test every label to
    iteration 6 (202 / 403 to 10), 3K - 1 to train BP; plus the small dense terms."""
    P = 2 * 933_156
    for K, train_passes, test6, test10 in ((2, 83, 122, 202), (3, 164, 243, 403)):
        f = cifar10.flops_per_image("ff", K)
        small = (2 * 10 + 2) * 2 * 10 * 3072 + 2 * 2 * K * 3072 * 10  # label block, readout
        assert f["train"] == train_passes * P + small
        assert cifar10.flops_per_image("ff", K, window_last=6)["test_goodness"] == (
            test6 * P + 10 * 6 * 2 * 10 * 3072
        )
        assert cifar10.flops_per_image("ff", K, window_last=10)["test_goodness"] == (
            test10 * P + 10 * 10 * 2 * 10 * 3072
        )
        assert cifar10.flops_per_image("bp", K)["train"] == (3 * K - 1) * P + 3 * 2 * 3072 * 10
    six = cifar10.flops_per_image("ff", 2, loss_iterations=(1, 6), window_last=6)["train"]
    assert six == (2 + 4 * 6 * 2 + 1) * P + (2 * 6 + 2) * 2 * 10 * 3072 + 2 * 2 * 2 * 3072 * 10
    dense = cifar10.flops_per_image("ff", 3, pass_flops=2 * 3072**2)["train"]
    assert round(dense / 1e9, 2) == 3.10  # 164 dense passes of 18.9 MFLOP
    table = cifar10.cost_table()  # 156.5 MFLOP: 83 local passes (154.9) and the dense terms
    assert "156.5 MFLOP     78 s/epoch" in table and "307.8 MFLOP    154 s/epoch" in table


# ----------------------------------------------------------------------------- reproduce
rep = load_tutorial("reproduce", BENCHMARKS)


def test_table1_has_ten_rows_from_six_nets_each_a_valid_command(tmp_path):
    rows = [row for net in rep.TABLE1.values() for row in net.rows]
    assert len(rep.TABLE1) == 6 and len(rows) == 10
    assert sorted(r.paper_test for r in rows) == sorted(
        [0.37, 0.39, 0.41, 0.41, 0.45, 0.44, 0.44, 0.44, 0.46, 0.46]
    )
    for name, net in rep.TABLE1.items():
        args = cli.build_parser().parse_args(net.argv(tmp_path / name, resume=True))
        assert args.experiment == "cifar10" and args.resume and net.hours > 0
        cifar10.check_args(args)
        for row in net.rows:
            assert row.test_metric.startswith("test_error") and row.train_metric
    text = rep.cost_text()
    assert "FF train, local" in text and "six nets" in text


def test_table1_status_lines(tmp_path):
    (line,) = rep.table1_status("cifar10_bp_2", tmp_path)
    assert "not started" in line
    run = tmp_path / "cifar10_ff_min_2"
    run.mkdir()
    metrics = {
        "config": {"epochs": 60},
        "history": [{"epoch": 60}] * 60,
        "train_error_goodness": 0.2,
        "test_error_goodness": 0.425,
        "train_error_softmax": 0.3,
        "test_error_softmax": 0.48,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    good, soft = rep.table1_status("cifar10_ff_min_2", tmp_path)
    assert "train 20.0% (paper 20%)" in good and good.endswith("within 2 points")
    assert soft.endswith("missed by 3.0 points")
    history = [
        {"epoch": e, "train_seconds": 60.0, "train_error_softmax": 0.5 / e, "test_error": 0.4}
        for e in (1, 2)
    ]
    metrics["history"] = history
    (run / "metrics.json").write_text(json.dumps(metrics))
    png = tmp_path / "curves.png"
    assert rep.main(["--runs", str(tmp_path), "--curves", str(png)]) == 0
    assert_png(png)


def test_layer_losses_by_epoch_and_their_figure(tmp_path):
    rep = load_tutorial("reproduce", BENCHMARKS)
    history = [
        {
            "epoch": e,
            "lr_scale": s,
            "train_loss": {"softmax": 1.0, "layer0": 9.0 * e, "layer1": 5.0},
        }
        for e, s in ((1, 1.0), (2, 1.0), (3, 0.5))
    ]
    ff = {"config": {"procedure": "ff", "hidden_layers": 2, "objective": "min"}, "history": history}
    assert cifar10.layer_losses(ff) == {
        0: ([1, 2, 3], [9.0, 18.0, 27.0]),
        1: ([1, 2, 3], [5.0] * 3),
    }
    bp = {"config": {"procedure": "bp"}, "history": [{"epoch": 1, "train_loss": 2.0}]}
    assert cifar10.layer_losses(bp) == {}
    assert [cifar10._minor_label(v) for v in (20.0, 300.0, 400.0, 5.0, 0.7)] == [
        "20",
        "300",
        "",
        "5",
        "",
    ]
    with pytest.raises(ValueError, match="FF runs only"):
        cifar10.plot_layer_losses([bp], tmp_path / "x.png")
    assert_png(cifar10.plot_layer_losses([ff, bp], tmp_path / "losses.png"))
    for name, metrics in (("cifar10_ff_min_2", ff), ("cifar10_bp_2", bp)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    png = tmp_path / "reproduce_losses.png"
    assert rep.main(["--runs", str(tmp_path), "--losses", str(png)]) == 0
    assert_png(png)
    (tmp_path / "cifar10_ff_min_2" / "metrics.json").unlink()
    with pytest.raises(SystemExit):
        rep.main(["--runs", str(tmp_path), "--losses", str(png)])


def test_error_curves_count_cpu_seconds_when_every_epoch_has_them():
    """A paused or crowded run's wall time is not its cost: the curves use the CPU
    seconds when every epoch recorded them, and the wall time otherwise."""
    from ff_numpy.experiments.cifar10 import error_curves, training_clock

    hist = [
        {"epoch": 1, "train_seconds": 100.0, "train_cpu_seconds": 20.0, "test_error": 0.5},
        {"epoch": 2, "train_seconds": 900.0, "train_cpu_seconds": 21.0, "test_error": 0.4},
    ]
    assert training_clock({"history": hist}) == "train_cpu_seconds"
    assert error_curves({"history": hist})["test_error"] == ([1, 2], [20.0, 41.0], [0.5, 0.4])
    del hist[1]["train_cpu_seconds"]  # a run saved before the key existed
    assert training_clock({"history": hist}) == "train_seconds"
    assert error_curves({"history": hist})["test_error"][1] == [100.0, 1000.0]


def test_table1_markdown_shows_finished_rows_only(tmp_path, capsys):
    """The Markdown table: a finished net's rows beside the paper's with the verdict and
    its time, an unfinished net's progress without any error, a missing one as such."""
    run = tmp_path / "cifar10_ff_min_2"
    run.mkdir()
    hist = [{"epoch": e, "train_cpu_seconds": 1800.0, "train_seconds": 3600.0} for e in (1, 2)]
    hist[0]["code_commit"], hist[1]["code_commit"] = "0.1.0+aaaaaaa", "0.1.0+bbbbbbb.dirty"
    metrics = {"config": {"epochs": 2}, "history": hist, "train_error_goodness": 0.2,
               "test_error_goodness": 0.425, "train_error_softmax": 0.3,
               "test_error_softmax": 0.48}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    unfinished = tmp_path / "cifar10_bp_2"
    unfinished.mkdir()
    (unfinished / "metrics.json").write_text(
        json.dumps({"config": {"epochs": 60}, "history": [{"epoch": 1, "test_error": 0.5}]})
    )
    assert rep.main(["--table1", "--markdown", "--runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 10 and all(line.count("|") == 10 for line in lines)
    rows = {(c[1], c[2], c[3]): c for c in (line.split(" | ") for line in lines[2:])}
    good = rows[("goodness, every label", "2", "20 / 41%")]
    assert good[4] == "20.00 / **42.50%**" and good[5] == "within 2 points (+1.5)"
    assert good[6:] == ["2 of 2", "1.00 / 2.00", "0.1.0+aaaaaaa, 0.1.0+bbbbbbb.dirty |"]
    soft = rows[("one-pass softmax", "2", "31 / 45%")]
    assert soft[5] == "**missed by 3.0 points**"
    bp2 = rows[("-", "2", "0 / 37%")]
    assert bp2[4] == "" and bp2[5] == "not finished" and "50" not in bp2[4]
    assert rows[("-", "3", "2 / 39%")][5] == "not started"


def test_table1_verdict_tells_better_from_within():
    """A test error more than 2 points below the paper's is met, and said to be better,
    not "within 2 points"."""
    assert rep.row_verdict(0.015) == "within 2 points"
    assert rep.row_verdict(-0.015, markdown=True) == "within 2 points (-1.5)"
    assert rep.row_verdict(-0.042) == "met: 4.2 points better"
    assert rep.row_verdict(0.027, markdown=True) == "**missed by 2.7 points**"
