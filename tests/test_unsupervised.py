"""Unsupervised FF (Sec. 3.2): real images against hybrids; labels reach only the readout."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, assert_close
from helpers import BENCHMARKS, assert_png, load_tutorial

from ff_numpy import checkpoint
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.model import FFNet
from ff_numpy.negatives import hybrid_images
from ff_numpy.norm import normalize
from ff_numpy.optim import SGD


def _net(seed=0, **kw):
    return FFNet(
        784, [20, 15, 12], np.random.default_rng(seed), dtype=np.float64, supervised=False, **kw
    )


def _batch(B=4):
    rng = np.random.default_rng(3)
    return rng.random((B, 784)) * (rng.random((B, 784)) < 0.3), rng.integers(0, 10, B)


def test_each_layer_steps_down_its_own_loss_on_images_vs_hybrids():
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    net = _net()
    x, labels = _batch()
    B = len(labels)
    before = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    lr = 0.05
    net.train_step_unsupervised(x, labels, np.random.default_rng(9), SGD(lr), SGD(0.1))
    hybrids, _, _ = hybrid_images(x, np.random.default_rng(9))
    X = normalize(np.concatenate([x, hybrids]))  # no label written anywhere
    s = np.where(np.arange(2 * B) < B, 1.0, -1.0)
    for l, (W, b) in enumerate(before):

        def loss(W, b, X=X, theta=net.theta[l]):
            y = anp.maximum(anp.dot(X, W) + b, 0.0)
            return anp.sum(anp.logaddexp(0.0, -s * (anp.sum(y * y, axis=1) - theta))) / B

        assert_close(
            net.layers[l].W - W, -lr * autograd.grad(loss, 0)(W, b), AUTOGRAD_TOL, f"layer {l}"
        )
        X = normalize(np.maximum(X @ W + b, 0))


def test_labels_reach_only_the_readout():
    x, labels = _batch()
    a, b = _net(), _net()
    for net, lab in ((a, labels), (b, (labels + 1) % 10)):
        net.train_step_unsupervised(x, lab, np.random.default_rng(1), SGD(0.1), SGD(0.1))
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.W, lb.W)
    assert not np.array_equal(a.readout.V, b.readout.V)


def test_unsupervised_net_has_no_label_input_and_no_goodness_classifier(tmp_path):
    net = _net()
    x, _ = _batch()
    np.testing.assert_allclose(net.labelled_input(x, np.arange(4)), normalize(x))
    with pytest.raises(ValueError, match="no label in its input"):
        net.predict_goodness(x)
    assert net.predict_softmax(x).shape == (4,)
    with pytest.raises(ValueError, match="supervised=False"):
        FFNet(784, [5], np.random.default_rng(0)).train_step_unsupervised(
            x, np.zeros(4, int), np.random.default_rng(0), SGD(0.1), SGD(0.1)
        )
    path = checkpoint.save(tmp_path / "m.npz", net.state(), {"config": {"model": net.config()}})
    again = load_ffnet(path)
    assert not again.supervised and again.image_shape == (28, 28)
    np.testing.assert_array_equal(again.predict_softmax(x), net.predict_softmax(x))


def test_unsupervised_experiment_end_to_end(tmp_path, capsys):
    from ff_numpy import cli
    from ff_numpy.data import find_data_dir

    if find_data_dir() is None:
        pytest.skip("MNIST not found: set FF_NUMPY_DATA")
    out = tmp_path / "run"
    argv = [
        "train",
        "unsupervised",
        "--hidden",
        "100",
        "100",
        "100",
        "--epochs",
        "2",
        "--train-size",
        "3000",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["score_layers"] == [0, 1, 2]
    assert "test_error_goodness" not in metrics
    assert metrics["test_error_softmax"] < 0.5  # well below chance (0.9) after 2 epochs
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "model.npz")]) == 0
    assert (
        json.loads(capsys.readouterr().out)["test_error_softmax"] == metrics["test_error_softmax"]
    )

    # Readouts on the frozen net, one per set of layers (benchmarks/readout_layers.py).
    bench = load_tutorial("readout_layers", BENCHMARKS)
    bench.main([str(out), "--subsets", "1 2", "0,1,2", "--epochs", "2"])
    result = json.loads((out / "readout_layers.json").read_text())
    assert [r["layers"] for r in result["rows"]] == [[1, 2], [0, 1, 2]]
    assert all(r["val_error"] < 0.5 and r["test_error"] < 0.5 for r in result["rows"])
    assert result["best"] == min(result["rows"], key=lambda r: r["val_error"])
    assert_png(out / "readout_layers.png")
    with pytest.raises(ValueError, match="0..2"):
        bench.main([str(out), "--subsets", "1 3"])
    assert bench.default_subsets(3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert bench.default_subsets(4) == [(3,), (2, 3), (1, 2, 3), (0, 1, 2, 3)]


def test_local_architecture_trains_and_keeps_weights_off_the_fields_zero():
    net = FFNet(
        784,
        [2048, 1980, 2048],
        np.random.default_rng(0),
        supervised=False,
        local="paper",
        peer_strength=0.03,
    )
    x, labels = _batch(8)
    for _ in range(2):
        net.train_step_unsupervised(
            x.astype(np.float32),
            labels,
            np.random.default_rng(1),
            SGD(0.01, 0.9, 0.9, 1e-3),
            SGD(0.1),
        )
    for layer in net.layers:
        assert np.all(layer.W[layer.mask == 0] == 0)
        assert np.any(layer.W[layer.mask == 1] != 0)
    with pytest.raises(ValueError, match="local architecture"):
        FFNet(784, [100], np.random.default_rng(0), supervised=False, local="paper")
    cfg = net.config()
    assert cfg["local"] == "paper" and FFNet.from_config(cfg).layers[1].mask.shape == (2048, 1980)


def test_fit_readout_learns_fixed_features_and_checks_its_input():
    from ff_numpy.readout import fit_readout

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 5)) * 3
    y = rng.integers(0, 3, size=600)
    h = centres[y] + rng.standard_normal((600, 5))
    readout = fit_readout(h[:500], y[:500], 3, epochs=5, rng=np.random.default_rng(1))
    assert np.mean(readout.predict(h[500:]) != y[500:]) < 0.05
    again = fit_readout(h[:500], y[:500], 3, epochs=5, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(readout.V, again.V)  # seeded: same batches, same readout
    with pytest.raises(ValueError, match="labels must lie"):
        fit_readout(h, y + 1, 3)
    with pytest.raises(ValueError, match="shape"):
        fit_readout(h, y[:10], 3)


@pytest.mark.parametrize("n_blur", [0, 3, 16])
def test_hybrid_blur_sets_the_masks_of_the_training_negatives(n_blur):
    """``FFNet(hybrid_blur=n)`` trains on the hybrids of ``hybrid_images(..., n_blur=n)``:
    the same first-layer step as a net fed those hybrids by hand, and another step than
    a net with another blur. The option survives ``config`` / ``from_config``."""
    x, labels = _batch()
    steps = {}
    for blur in (n_blur, 8):
        net = _net(hybrid_blur=blur)
        W0 = net.layers[0].W.copy()
        net.train_step_unsupervised(x, labels, np.random.default_rng(9), SGD(0.05), SGD(0.1))
        steps[blur] = net.layers[0].W - W0
    ref = _net()
    hybrids, _, _ = hybrid_images(x, np.random.default_rng(9), (28, 28), n_blur)
    X = normalize(np.concatenate([x, hybrids]))
    G = np.sum(np.maximum(X @ ref.layers[0].W + ref.layers[0].b, 0) ** 2, axis=1)
    s = np.where(np.arange(2 * len(x)) < len(x), 1.0, -1.0)
    dL_dG = -s / (1 + np.exp(s * (G - ref.theta[0]))) / len(x)  # Sec. 1, mean over pairs
    dL_da = 2 * np.maximum(X @ ref.layers[0].W + ref.layers[0].b, 0) * dL_dG[:, None]
    assert_close(steps[n_blur], -0.05 * X.T @ dL_da, 1e-10, f"first-layer step, blur {n_blur}")
    assert not np.allclose(steps[n_blur], steps[8])
    assert FFNet.from_config(_net(hybrid_blur=n_blur).config()).hybrid_blur == n_blur
    with pytest.raises(ValueError, match="hybrid_blur"):
        _net(hybrid_blur=-1)


@pytest.mark.parametrize("experiment", ["unsupervised", "local"])
def test_interrupted_then_resumed_equals_uninterrupted(experiment, tmp_path):
    """Hybrid masks, peer-normalisation means, readout and optimiser state all come back
    from the checkpoint: a resumed run repeats the uninterrupted one to the last digit."""
    from helpers import interrupted_after, numbers, train_args

    from ff_numpy import experiments
    from ff_numpy.data import find_data_dir
    from ff_numpy.experiments.unsupervised import UnsupervisedTask

    if find_data_dir() is None:
        pytest.skip("MNIST not found: set FF_NUMPY_DATA")
    small = ["--train-size", "1000", "--epochs", "2"]
    if experiment == "unsupervised":
        small += ["--hidden", "100", "100", "100"]
    run = experiments.get(experiment).run
    reference = run(train_args(experiment, tmp_path / "whole", *small))
    with interrupted_after(UnsupervisedTask, 10 + 3):  # 10 batches an epoch: in epoch 2
        run(train_args(experiment, tmp_path / "parts", *small))
    resumed = run(train_args(experiment, tmp_path / "parts", *small, "--resume"))
    assert numbers(resumed) == numbers(reference)
    assert len(resumed["history"]) == 2
