"""``benchmarks/cifar10_probes.py``: the recorded probe commands parse as the experiment's
options, differ only where the probes differ, and the figure is drawn from their metrics."""

from __future__ import annotations

import json

import pytest
from helpers import BENCHMARKS, assert_png, load_tutorial

from ff_numpy import experiments
from ff_numpy.experiments import cifar10

probes = load_tutorial("cifar10_probes", BENCHMARKS)


def _args(name, runs):
    argv = probes.command(name, runs)
    assert argv[:2] == ["train", "cifar10"]
    return experiments.parser("cifar10").parse_args(argv[2:])


def test_probe_commands_are_valid_and_differ_only_in_negatives_and_loss_iterations(tmp_path):
    parsed = {name: _args(name, tmp_path) for name in probes.PROBES}
    for args in parsed.values():
        cifar10.check_args(args)  # valid for the experiment, windows included
        assert (args.train_size, args.epochs, args.eval_size) == (45_000, 3, 2_000)
        assert (args.procedure, args.hidden_layers, args.objective) == ("ff", 2, "min")
    seen = {(a.negatives, tuple(a.loss_iterations)) for a in parsed.values()}
    assert seen == {("hard", (1, 10)), ("hard", (1, 6)), ("random", (1, 10)), ("random", (1, 6))}
    chosen = parsed["random_loss1_6"]
    defaults = cifar10.resolved_options(experiments.default_args("cifar10"))
    assert (chosen.negatives, chosen.loss_iterations) == (
        defaults["negatives"],
        defaults["loss_iterations"],
    ), "the chosen probe is the experiment's default recipe"


def test_a_probe_with_a_checkpoint_resumes(tmp_path):
    assert "--resume" not in probes.command("hard", tmp_path)
    probes.out_dir("hard", tmp_path).mkdir()
    (probes.out_dir("hard", tmp_path) / "model.npz").write_bytes(b"")
    assert probes.command("hard", tmp_path)[-1] == "--resume"


def _metrics(negatives, last, shift):
    hist = [
        {
            "epoch": e,
            "val_error_goodness": 0.7 - 0.05 * e + shift,
            "val_error_softmax": 0.6 - 0.03 * e,
        }
        for e in (1, 2, 3)
    ]
    return {
        "config": {
            "negatives": negatives,
            "loss_iterations": [1, last],
            "average_iterations": [4, 6],
        },
        "history": hist,
        "error_by_iteration": [0.5 + 0.01 * abs(t - 5) + shift for t in range(1, 11)],
    }


def test_figure_is_drawn_from_the_probes_found(tmp_path, capsys):
    for name, (neg, last, shift) in {
        "hard": ("hard", 10, 0.1),
        "random_loss1_6": ("random", 6, 0.0),
    }.items():
        out = probes.out_dir(name, tmp_path)
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps(_metrics(neg, last, shift)))
    probes.main(["--runs", str(tmp_path), "--figure", str(tmp_path / "f.png")])
    assert_png(tmp_path / "f.png")
    assert "f.png" in capsys.readouterr().out


def test_figure_without_any_probe_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="no probe has metrics.json under"):
        probes.main(["--runs", str(tmp_path), "--figure", str(tmp_path / "f.png")])
