"""A cifar10 checkpoint whose stored configuration is malformed is refused in one line.

``ff-numpy evaluate DIR/model.npz`` and ``train cifar10 --resume`` rebuild the net from
the run's configuration (``procedure``, ``layer``, ``hidden_layers``, ``test_size`` and
the model's own configuration); a missing key, a value of the wrong type or range, a
list for a dict, a model of the other procedure or one too large for the machine is
named with the file, exit status 2, before any data is read or any layer built
(:func:`ff_numpy.experiments.cifar10.check_saved_config`). The checkpoints are edited
copies of two tiny runs (FF and BP, one epoch on 100 random images).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import rewrite_checkpoint, train_args

from ff_numpy import cli
from ff_numpy.data import CIFAR10, Split
from ff_numpy.experiments import cifar10

SIZES = "--train-size 100 --test-size 50 --train-eval-size 50 --eval-size 50 --epochs 1"
OPTIONS = {
    "ff": f"--procedure ff {SIZES} --batch-size 50 --iterations 1 --average-iterations 1 1 "
    "--warmup-batches 0",
    "bp": f"--procedure bp {SIZES} --batch-size 50",
}


def _synthetic(n_train=100, n_test=50) -> CIFAR10:
    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.random((n, 3072), dtype=np.float32), rng.integers(0, 10, n))

    return CIFAR10(train=split(n_train), validation=split(0), test=split(n_test), source="random")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{procedure: folder}`` of two finished one-epoch runs."""
    out = {}
    for procedure, options in OPTIONS.items():
        folder = tmp_path_factory.mktemp("cifar10") / procedure
        cifar10.Cifar10.run_on(train_args("cifar10", folder, *options.split()), _synthetic())
        out[procedure] = folder
    return out


@pytest.fixture
def no_data(monkeypatch):
    """Reading CIFAR-10 fails the test: a refusal must come first."""

    def read(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(cifar10, "load_prepared", read)
    monkeypatch.setattr(cifar10.Cifar10, "load_data", staticmethod(read))


def _set(key, value, within=()):
    def damage(a, m):
        target = m["config"]
        for k in within:
            target = target[k]
        target[key] = value

    return damage


def _drop(key, within=()):
    def damage(a, m):
        target = m["config"]
        for k in within:
            target = target[k]
        del target[key]

    return damage


def _other_model(a, m):
    m["config"]["model"] = {"type": "mlp"} if "kind" in m["config"]["model"] else {"kind": "x"}


MALFORMED = {
    "no hidden_layers": (_drop("hidden_layers"), "it has no hidden_layers (a positive integer)"),
    "no procedure": (_drop("procedure"), "it has no procedure (one of ['ff', 'bp'])"),
    "no layer": (_drop("layer"), "it has no layer"),
    "no test_size": (_drop("test_size"), "it has no test_size"),
    "hidden_layers a string": (_set("hidden_layers", "2"), "hidden_layers must be a positive"),
    "hidden_layers 0": (_set("hidden_layers", 0), "hidden_layers must be a positive integer"),
    "hidden_layers huge": (_set("hidden_layers", 10**12), "hidden_layers=1000000000000 needs"),
    "hidden_layers not the model's": (_set("hidden_layers", 3), "its model has n_in=3072"),
    "procedure a list": (_set("procedure", ["ff"]), "procedure must be one of"),
    "layer unknown": (_set("layer", "conv"), "layer must be one of ['local', 'masked']"),
    "test_size a float": (_set("test_size", 50.0), "test_size must be an integer in 1..10000"),
    "model a list": (_set("model", [1, 2]), "got [1, 2]"),
    "no model": (_drop("model"), "it has no model"),
    "model of the other procedure": (_other_model, "model must be"),
    "model without hidden": (_drop("hidden", ["model"]), "malformed model configuration"),
    "model too large": (_set("hidden", [10**9] * 2, ["model"]), "more than this machine's"),
    "model without n_classes": (_drop("n_classes", ["model"]), "has no 'n_classes'"),
}
CASES = [(p, c) for p in OPTIONS for c in sorted(MALFORMED)]


def _damaged(runs, procedure, case, dest):
    run = shutil.copytree(runs[procedure], dest)
    damage, message = MALFORMED[case]
    rewrite_checkpoint(run / "model.npz", run / "model.npz", damage)
    return run, message


def _refused(argv, capsys, *needles) -> None:
    assert cli.main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, (needle, err)


@pytest.mark.parametrize("procedure, case", CASES)
def test_evaluate_refuses_a_malformed_configuration(
    procedure, case, runs, tmp_path, capsys, no_data
):
    run, message = _damaged(runs, procedure, case, tmp_path / "run")
    _refused(["evaluate", run / "model.npz"], capsys, f"checkpoint {run / 'model.npz'}", message)


@pytest.mark.parametrize("procedure", sorted(OPTIONS))
@pytest.mark.parametrize(
    "case", ["no hidden_layers", "no procedure", "model a list", "model without n_classes"]
)
def test_resume_refuses_a_malformed_configuration_before_reading_data(
    procedure, case, runs, tmp_path, capsys, no_data
):
    run, message = _damaged(runs, procedure, case, tmp_path / "run")
    before = (run / "model.npz").read_bytes()
    argv = ["train", "cifar10", *OPTIONS[procedure].split(), "--no-progress", "--resume"]
    _refused([*argv, "--out", run], capsys, f"checkpoint {run / 'model.npz'}", message)
    assert (run / "model.npz").read_bytes() == before


def test_a_configuration_that_is_not_a_cifar10_runs_is_refused(runs, tmp_path, capsys, no_data):
    run = shutil.copytree(runs["ff"], tmp_path / "run")
    rewrite_checkpoint(run / "model.npz", run / "model.npz", _set("experiment", "other"))
    with pytest.raises(ValueError, match="holds no cifar10 run"):
        cifar10.load_cifar10_model(run / "model.npz")


def test_the_undamaged_checkpoints_still_load_and_evaluate(runs, capsys, monkeypatch):
    monkeypatch.setattr(cifar10, "load_prepared", lambda *a, **k: _synthetic())
    for run in runs.values():
        assert cli.main(["evaluate", str(run / "model.npz"), "--no-progress"]) == 0
        assert "test_error" in capsys.readouterr().out
