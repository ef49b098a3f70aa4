"""``--train-size``: the training split, and training on validation images too (up to all
60,000 official training images of MNIST)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_error_rate

from ff_numpy import experiments
from ff_numpy.data import MNIST, Split
from ff_numpy.experiments.building import splits


def _toy(sizes=(60, 20, 30), n_in=784, seed=0):
    """An MNIST-shaped dataset whose pixel 0 numbers the images: train 0.., then val, test."""
    rng = np.random.default_rng(seed)
    parts, start = [], 0
    for n in sizes:
        x = rng.random((n, n_in)).astype(np.float32)
        x[:, 0] = np.arange(start, start + n)
        parts.append(Split(x, rng.integers(0, 10, n).astype(np.int64)))
        start += n
    return MNIST(*parts, source="synthetic")


def _ids(x):
    return x[:, 0].astype(int).tolist()


def test_train_size_within_the_training_split_keeps_validation():
    data = _toy()
    x_tr, y_tr, x_val, y_val, x_te, y_te = splits(data, 45)
    assert _ids(x_tr) == list(range(45))
    np.testing.assert_array_equal(y_tr, data.train.y[:45])
    assert _ids(x_val) == list(range(60, 80))
    assert _ids(x_te) == list(range(80, 110))
    np.testing.assert_array_equal(y_te, data.test.y)


def test_train_size_beyond_the_training_split_takes_validation_images():
    data = _toy()
    x_tr, y_tr, x_val, y_val, *_ = splits(data, 70)
    assert _ids(x_tr) == list(range(70))  # all training images, then the first 10 of val
    np.testing.assert_array_equal(y_tr, np.concatenate([data.train.y, data.validation.y[:10]]))
    assert _ids(x_val) == list(range(70, 80))  # no image both trained on and validated on
    np.testing.assert_array_equal(y_val, data.validation.y[10:])
    x_tr, _, x_val, y_val, *_ = splits(data, 80)  # everything: no validation set left
    assert _ids(x_tr) == list(range(80))
    assert x_val.shape == (0, 784) and y_val.shape == (0,)


@pytest.mark.parametrize("n", [0, -1, 81])
def test_train_size_out_of_range_is_rejected(n):
    with pytest.raises(ValueError, match=r"--train-size must lie in 1\.\.80"):
        splits(_toy(), n)


def test_supervised_run_on_all_training_images_records_no_validation(tmp_path):
    """With no validation images left the run trains, evaluates the test set (with
    ``--track-test``) and writes its figure; no history entry holds a validation error."""
    args = experiments.default_args(
        "supervised", out=str(tmp_path), progress=False, hidden=[20, 20], epochs=2,
        batch_size=10, train_size=80, eval_every=1, track_test=True,
    )  # fmt: skip
    metrics = experiments.get("supervised").run_on(args, _toy())
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["train_size"] == 80
    assert len(saved["history"]) == 2
    for record in saved["history"]:
        assert not any(key.startswith("val_") for key in record), record
        assert_error_rate(record["test_error_goodness"], 30, "epoch test error")  # 30 images
    assert_error_rate(metrics["test_error_goodness"], 30, "test error")
    assert saved["test_error_goodness"] == metrics["test_error_goodness"]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
