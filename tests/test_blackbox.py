"""A black box between layers: FF trains through it unchanged; backprop must guess."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, assert_close

from ff_numpy import experiments
from ff_numpy.backprop import MLP, softmax_cross_entropy
from ff_numpy.blackbox import BlackBox
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.model import FFNet
from ff_numpy.negatives import random_wrong_labels
from ff_numpy.norm import normalize
from ff_numpy.optim import SGD


def test_box_permutes_quantises_and_adds_noise():
    rng = np.random.default_rng(0)
    h = rng.random((5, 8))
    quiet = BlackBox(8, np.random.default_rng(1), levels=3, noise=0.0)
    out = quiet(h, rng)
    for row, src in zip(out, h[:, quiet.perm]):
        step = np.abs(src).max() / 2
        np.testing.assert_allclose(row / step, np.round(row / step))  # on the 3 levels
        assert np.all(np.abs(row - src) <= step / 2 + 1e-12)  # nearest level
    noisy = BlackBox(8, np.random.default_rng(1), levels=3, noise=0.5)
    a, b = noisy(h, np.random.default_rng(2)), noisy(h, np.random.default_rng(3))
    assert not np.array_equal(a, b)  # stochastic
    assert np.all(np.abs(a / np.where(out == 0, 1, out) - 1)[out != 0] <= 0.5 + 1e-12)
    assert not np.array_equal(quiet.perm, np.arange(8))
    with pytest.raises(ValueError, match="levels >= 2"):
        BlackBox(8, rng, levels=1)
    with pytest.raises(ValueError, match="width 8"):
        quiet(h[:, :4], rng)


def _ff(box_after=None):
    rng = np.random.default_rng(0)
    boxes = (
        {box_after: BlackBox(6, np.random.default_rng(5), 3, 0.3)}
        if box_after is not None
        else None
    )
    return FFNet(12, [6, 5], rng, dtype=np.float64, boxes=boxes)


def test_ff_layer_after_the_box_learns_its_own_local_gradient():
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    x = np.random.default_rng(1).random((4, 12))
    labels = np.array([0, 1, 2, 3])
    plain, boxed = _ff(), _ff(box_after=0)
    W1, b1 = boxed.layers[1].W.copy(), boxed.layers[1].b.copy()
    lr = 0.1
    for net in (plain, boxed):
        net.train_step(x, labels, np.random.default_rng(7), SGD(lr), SGD(0.0))
    # The layer below the box does not know the box is there.
    np.testing.assert_array_equal(plain.layers[0].W, boxed.layers[0].W)
    # The layer above learns from the box's output, with the noise the step drew.
    rng = np.random.default_rng(7)
    wrong = random_wrong_labels(labels, 10, rng)
    X = normalize(
        np.concatenate([boxed.label_code.embed(x, labels), boxed.label_code.embed(x, wrong)])
    )
    W0 = _ff(box_after=0).layers[0].W
    X1 = normalize(boxed.boxes[0](normalize(np.maximum(X @ W0, 0)), rng))
    s = np.where(np.arange(8) < 4, 1.0, -1.0)

    def loss(W, b):
        y = anp.maximum(anp.dot(X1, W) + b, 0.0)
        return anp.sum(anp.logaddexp(0.0, -s * (anp.sum(y * y, axis=1) - 5.0))) / 4

    assert_close(
        boxed.layers[1].W - W1,
        -lr * autograd.grad(loss, 0)(W1, b1),
        AUTOGRAD_TOL,
        "layer after the box",
    )


def test_ff_box_survives_checkpoint(tmp_path):
    from ff_numpy import checkpoint

    net = _ff(box_after=0)
    path = checkpoint.save(tmp_path / "m.npz", net.state(), {"config": {"model": net.config()}})
    other = load_ffnet(path)
    np.testing.assert_array_equal(other.boxes[0].perm, net.boxes[0].perm)
    x = np.random.default_rng(0).random((3, 12))
    np.testing.assert_array_equal(other.goodness_per_label(x), net.goodness_per_label(x))


def _mlp(box_grad):
    box = BlackBox(7, np.random.default_rng(3), levels=4, noise=0.2)
    return MLP(
        5,
        [7, 6],
        3,
        np.random.default_rng(0),
        dtype=np.float64,
        box=box,
        box_after=0,
        box_grad=box_grad,
    )


def test_backprop_without_a_derivative_trains_only_layers_after_the_box():
    m = _mlp("none")
    before = [W.copy() for W in m.W]
    x, y = np.random.default_rng(1).random((4, 5)), np.array([0, 1, 2, 0])
    m.train_step(x, y, SGD(0.1), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(m.W[0], before[0])
    assert not np.array_equal(m.W[1], before[1]) and not np.array_equal(m.W[2], before[2])


def test_backprop_straight_through_is_the_identity_guess():
    """Below the box, the gradient is that of a net whose box is replaced by a constant
    offset (box(h) - h, frozen): the straight-through estimate."""
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    m = _mlp("straight")
    x, y = np.random.default_rng(1).random((4, 5)), np.array([0, 1, 2, 0])
    z, cache = m.forward(x, np.random.default_rng(0))
    _, dL_dz = softmax_cross_entropy(z, y)
    grads = m.backward(dL_dz, cache)
    h = np.maximum(x @ m.W[0] + m.b[0], 0)
    offset = m.box(h, np.random.default_rng(0)) - h  # what the box did, held fixed

    def loss(W0):
        h1 = anp.maximum(anp.dot(x, W0) + m.b[0], 0.0) + offset
        h2 = anp.maximum(anp.dot(h1, m.W[1]) + m.b[1], 0.0)
        z = anp.dot(h2, m.W[2]) + m.b[2]
        zmax = anp.max(z, axis=1, keepdims=True)
        logq = z - zmax - anp.log(anp.sum(anp.exp(z - zmax), axis=1, keepdims=True))
        return -anp.mean(logq[np.arange(4), y])

    assert_close(
        grads["layer0.W"],
        autograd.grad(loss)(m.W[0]),
        AUTOGRAD_TOL,
        "straight-through gradient below the box",
    )


def test_box_options_are_checked(tmp_path):
    sup = experiments.get("supervised")
    args = experiments.default_args("supervised", hidden=[10, 10], black_box=1, out=str(tmp_path))
    with pytest.raises(ValueError, match="--black-box must name a hidden layer"):
        sup.build(args, None)
    with pytest.raises(ValueError, match="both box and box_after"):
        MLP(5, [7], 3, np.random.default_rng(0), box_after=0)
