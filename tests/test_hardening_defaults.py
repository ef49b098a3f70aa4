"""A default never makes a valid command fail, and the small refusals of the command line.

``train online --train-size 2000`` runs (``--chunk`` defaults to the stream when it is
shorter than 5,000, and the help says so); ``--eval-every`` must be at least 1; a
``--data-dir`` must exist (for ``evaluate`` too); ``evaluate --shifts`` must be less than
the image's side.
"""

from __future__ import annotations

import json

import pytest
from helpers import needs_mnist, train_args

from ff_numpy import cli, experiments
from ff_numpy.experiments.online import DEFAULT_CHUNK, Online, resolved_chunk


def _refused(argv, capsys, *needles):
    assert cli.main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("train_size", [1, 300, 2000, 4999, 5000, 50000, 60000])
def test_online_chunk_defaults_to_the_stream_when_it_is_shorter(train_size, tmp_path):
    args = train_args("online", tmp_path, "--train-size", str(train_size))
    assert args.chunk is None
    assert resolved_chunk(args) == min(DEFAULT_CHUNK, train_size)
    Online.check(args)  # no refusal for any valid --train-size
    assert Online.config(args)["chunk"] == min(DEFAULT_CHUNK, train_size)
    explicit = train_args("online", tmp_path, "--train-size", str(train_size), "--chunk", "7")
    assert Online.config(explicit)["chunk"] == 7


def test_online_help_says_how_the_chunk_is_chosen(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "online", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: 5000, or --train-size when that is smaller" in help_text


def test_old_online_runs_keep_their_chunk_in_the_configuration(tmp_path):
    """A run of the defaults records chunk 5000, as before the default was resolved."""
    assert Online.config(experiments.default_args("online"))["chunk"] == 5000


@needs_mnist
def test_train_online_with_2000_images_runs(tmp_path, capsys):
    argv = ["train", "online", "--train-size", "2000", "--hidden", "20", "--epochs", "1",
            "--eval-size", "100", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    assert cli.main(argv) == 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["chunk"] == 2000
    assert saved["history"][0]["examples_seen"] == 2000


def test_eval_every_must_be_at_least_1(tmp_path, capsys):
    for name in ("supervised", "recurrent"):
        for value in ("0", "-1"):
            argv = ["train", name, "--eval-every", value, "--out", tmp_path]
            _refused(argv, capsys, f"--eval-every must be >= 1, got {value}")


def test_data_dir_must_exist(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    _refused(["train", "supervised", "--data-dir", missing, "--out", tmp_path], capsys,
             f"--data-dir must be an existing folder, got {missing}")  # fmt: skip
    _refused(["evaluate", tmp_path / "m.npz", "--data-dir", missing], capsys, "--data-dir")


@needs_mnist
def test_evaluate_shifts_must_be_less_than_the_image(tmp_path, capsys):
    argv = ["train", "supervised", "--hidden", "10", "--train-size", "100", "--epochs", "1",
            "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()
    for shifts in ("28", "30", "1000"):
        needle = f"--shifts must be less than the image's side (28 pixels), got {shifts}"
        _refused(["evaluate", tmp_path / "model.npz", "--shifts", shifts], capsys, needle)
