"""The symmetric loss (SymBa) from the command line: trained, saved, reloaded, refused."""

from __future__ import annotations

import pytest
from helpers import needs_mnist, train_args

from ff_numpy import cli, experiments
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.loss import Logistic, SymBa

TINY = (
    "--hidden 100 100 --train-size 5000 --epochs 3 --eval-every 3 --lr 0.01 --no-progress".split()
)


@needs_mnist
def test_symba_trains_saves_and_reloads(tmp_path):
    run = experiments.get("supervised").run
    out = run(
        train_args("supervised", tmp_path / "symba", *TINY, "--loss", "symba", "--alpha", "4")
    )
    plain = run(train_args("supervised", tmp_path / "plain", *TINY))
    assert out["config"]["loss"] == "symba" and out["config"]["alpha"] == 4.0
    assert out["config"]["model"]["loss"] == {"name": "symba", "alpha": 4.0}
    assert "loss" not in plain["config"]["model"]  # a logistic run's model config is as before
    # it learns: 3 epochs on 5,000 images (measured: 38% by goodness, 18% by the softmax;
    # the logistic loss: 45% and 16%), far below chance (90%)
    assert out["test_error_goodness"] < 0.6 and out["test_error_softmax"] < 0.3, out
    assert out["test_error_goodness"] != plain["test_error_goodness"]
    model = load_ffnet(tmp_path / "symba" / "model.npz")
    assert isinstance(model.loss, SymBa) and model.loss.alpha == 4.0
    assert isinstance(load_ffnet(tmp_path / "plain" / "model.npz").loss, Logistic)


@pytest.mark.parametrize("alpha", ["nan", "inf", "0", "-1"])
def test_cli_refuses_a_bad_alpha_in_one_line(tmp_path, capsys, alpha):
    argv = ["train", "supervised", *TINY, "--loss", "symba", "--alpha", alpha]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--alpha must be finite and > 0" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
