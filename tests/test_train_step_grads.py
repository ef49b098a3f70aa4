"""The whole training step, layer by layer, against autograd and finite differences.

``FFNet.train_step(..., return_grads=True)`` returns the gradient every layer applied.
Each layer's gradient must be the gradient of that layer's own loss with respect to its
own parameters, with the layer's input held at what the sweep gave it (the normalised
output of the layer below, computed before that layer's update). The reference here is
written from the paper's equations alone (forward, goodness, loss), in float64, and
differentiated by autograd (relative error below 1e-10) and by central finite
differences (which need no autograd). Then the step itself: with plain SGD every weight
moved by exactly ``-lr`` times the gradient returned.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import assert_close, numerical_grad, sample_indices

from ff_numpy import goodness as gd
from ff_numpy import loss as lossmod
from ff_numpy import masks
from ff_numpy.layers import Dense, Masked
from ff_numpy.locally_connected import Local
from ff_numpy.model import FFNet
from ff_numpy.negatives import random_wrong_labels
from ff_numpy.norm import normalize
from ff_numpy.optim import SGD

AUTOGRAD_TOL = 1e-10
FD_TOL = 1e-6
LR = 0.05
B = 3
N_IN = 20  # 10 label pixels + a 10-pixel "image" (a 2 x 5 grid for the masked layers)


def _layers(kind: str, rng):
    """Two layers of the given type, float64."""
    if kind == "dense":
        return [Dense(N_IN, 9, rng, np.float64), Dense(9, 7, rng, np.float64)]
    # masked, local: fields over a 4 x 5 input grid (the 20 inputs), then over its 2 x 2 grid
    f1 = masks.image_fields((4, 5), (2, 2), (2, 3), (2, 2), 3)  # 20 -> 12 units
    f2 = masks.grid_fields((2, 2), 3, (1, 2), (2, 1), 2)  # 12 -> 4 units
    if kind == "local":  # the same fields, only the existing weights stored
        return [Local(f, rng, np.float64) for f in (f1, f2)]
    return [Masked.from_fields(f, rng, np.float64) for f in (f1, f2)]


def _net(layer_kind, goodness, objective, loss, per="layer", norm_per="layer", seed=0):
    rng = np.random.default_rng(seed)
    layers = _layers(layer_kind, rng)
    for layer in layers:  # biases that keep most units on: no vacuous check
        layer.b[:] = np.abs(rng.standard_normal(layer.n_out)) * 0.3 + 0.1
    net = FFNet(
        layers=layers,
        goodness=goodness,
        objective=objective,
        loss=loss,
        goodness_per=per,
        norm_per=norm_per,
        theta=[0.6 * layer.n_out for layer in layers],
        dtype=np.float64,
    )
    return net


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(B, N_IN))
    labels = rng.integers(0, 10, size=B)
    return x, labels


def _linear(xp, W, X, layer):
    """``x W`` of ``layer`` with the weights ``W`` (in the layer's own layout)."""
    if isinstance(layer, Local):  # a_(l,c) = sum over the field F_l of x_i W_(l,i),c
        f = layer.fields
        member = f.pair_locations()[None, :] == np.arange(f.n_loc)[:, None]  # (n_loc, n_pairs)
        # (n_loc, n_pairs), (2B, n_pairs), (n_pairs, C) -> (2B, n_loc, C)
        a = xp.einsum("lp,np,pc->nlc", member.astype(float), X[:, f.indices], W)
        return xp.reshape(a, (X.shape[0], f.n_out))  # unit l * C + c
    if isinstance(layer, Masked):
        W = W * layer.mask
    return xp.dot(X, W)  # (2B, n_in) @ (n_in, n_out)


def _reference_loss(xp, W, b, X, net, l, s):
    """Layer ``l``'s loss from the paper's equations, in array module ``xp``."""
    a = _linear(xp, W, X, net.layers[l]) + b
    y = xp.maximum(a, 0.0)
    v = y * y if net.goodness == "ssq" else y
    starts = net.group_starts[l]
    if starts is None:
        G = xp.sum(v, axis=1)  # (2B,)
        s_l = s
    else:  # one goodness per location: v @ membership (n_out, n_groups)
        member = np.zeros((v.shape[1], len(starts)))
        for g, (lo, hi) in enumerate(zip(starts, list(starts[1:]) + [v.shape[1]])):
            member[lo:hi, g] = 1.0
        G = xp.dot(v, member)
        s_l = s[:, None]
    theta = net.group_theta[l]
    if net.loss.name == "symba":
        sG = s_l * G
        z = net.loss.alpha * (sG[:B] + sG[B:])
    else:
        z = s_l * (G - theta)
    return xp.sum(xp.logaddexp(0.0, -z)) / B


def _step_and_reference(net):
    """Run one training step; return the gradients it applied, the weights before it, and
    each layer's input as the sweep saw it."""
    x, labels = _inputs()
    old = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    out = net.train_step(x, labels, np.random.default_rng(5), SGD(LR), SGD(0.0), return_grads=True)
    wrong = random_wrong_labels(labels, 10, np.random.default_rng(5))  # the same draw
    X = np.concatenate([net.label_code.embed(x, labels), net.label_code.embed(x, wrong)])
    X = normalize(X, net.norm)
    inputs = []
    for l, (W, b) in enumerate(old):
        inputs.append(X)
        X = net.normalize_layer(l, np.maximum(_linear(np, W, X, net.layers[l]) + b, 0))
    return out["grads"], old, inputs


CASES = [
    ("dense", "ssq", "max", "logistic", "layer"),
    ("dense", "ssq", "min", "logistic", "layer"),
    ("dense", "sum", "max", "logistic", "layer"),
    ("dense", "sum", "min", "logistic", "layer"),
    ("dense", "ssq", "max", "symba", "layer"),
    ("dense", "ssq", "min", "symba", "layer"),
    ("dense", "sum", "max", "symba", "layer"),
    ("masked", "ssq", "max", "logistic", "layer"),
    ("masked", "ssq", "min", "logistic", "location"),
    ("masked", "ssq", "max", "symba", "location"),
    ("masked", "sum", "min", "logistic", "location"),
    ("local", "ssq", "max", "logistic", "layer"),
    ("local", "ssq", "min", "logistic", "location", "location"),
    ("local", "ssq", "max", "symba", "location", "location"),
    ("local", "sum", "min", "logistic", "location", "location"),
]
IDS = ["-".join(c) for c in CASES]


def _make(case):
    layer_kind, goodness, objective, loss, per, *norm_per = case  # norm_per: "layer"
    the_loss = lossmod.make_loss(loss, alpha=0.5)
    return _net(layer_kind, goodness, objective, the_loss, per, *norm_per)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_step_grads_match_autograd_layer_by_layer(case):
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    net = _make(case)
    grads, old, inputs = _step_and_reference(net)
    s = gd.sign(np.arange(2 * B) < B, net.objective)
    for l, ((W, b), X) in enumerate(zip(old, inputs)):

        def f(W, b, X=X, l=l):
            return _reference_loss(anp, W, b, X, net, l, s)

        ref_W, ref_b = autograd.grad(f, 0)(W, b), autograd.grad(f, 1)(W, b)
        assert np.any(ref_W), f"layer {l}: zero reference gradient, the check is vacuous"
        assert_close(grads[f"layer{l}"]["W"], ref_W, AUTOGRAD_TOL, f"{case} layer {l} dL/dW")
        assert_close(grads[f"layer{l}"]["b"], ref_b, AUTOGRAD_TOL, f"{case} layer {l} dL/db")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_step_grads_match_finite_differences(case):
    net = _make(case)
    grads, old, inputs = _step_and_reference(net)
    s = gd.sign(np.arange(2 * B) < B, net.objective)
    rng = np.random.default_rng(3)
    for l, ((W, b), X) in enumerate(zip(old, inputs)):
        W, b = W.copy(), b.copy()

        def f(W=W, b=b, X=X, l=l):
            return float(_reference_loss(np, W, b, X, net, l, s))

        idx = sample_indices(W.shape, 20, rng)
        num_W = numerical_grad(f, W, idx)
        ours = grads[f"layer{l}"]["W"][tuple(np.array(idx).T)]
        assert np.any(num_W), f"layer {l}: zero numerical gradient, the check is vacuous"
        assert_close(ours, num_W, FD_TOL, f"{case} layer {l} dL/dW vs FD")
        assert_close(grads[f"layer{l}"]["b"], numerical_grad(f, b), FD_TOL, f"{case} db vs FD")


@pytest.mark.parametrize(
    "case", CASES[:2] + CASES[7:8] + CASES[12:], ids=IDS[:2] + IDS[7:8] + IDS[12:]
)
def test_train_step_applies_exactly_the_gradients_it_returns(case):
    net = _make(case)
    grads, old, _ = _step_and_reference(net)
    for l, (W, b) in enumerate(old):
        np.testing.assert_allclose(net.layers[l].W, W - LR * grads[f"layer{l}"]["W"], rtol=1e-14)
        np.testing.assert_allclose(net.layers[l].b, b - LR * grads[f"layer{l}"]["b"], rtol=1e-14)


@pytest.mark.parametrize("objective", ["max", "min"])
def test_symba_loss_matches_autograd_and_fd(objective):
    rng = np.random.default_rng(0)
    G = rng.uniform(0, 10, size=8)
    s = gd.sign(np.arange(8) < 4, objective)
    loss = lossmod.SymBa(alpha=0.7)
    w = rng.uniform(0.5, 1.5, size=4)  # upstream weights: a vector-Jacobian product
    ours = loss.dL_dG(G, s) * np.concatenate([w, w])
    num = numerical_grad(lambda: float(np.sum(w * loss.L(G, s))), G)
    assert_close(ours, num, FD_TOL, f"SymBa dL/dG vs FD ({objective})")
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")

    def ref(G):
        sG = s * G
        return anp.sum(w * anp.logaddexp(0.0, -0.7 * (sG[:4] + sG[4:])))

    assert_close(ours, autograd.grad(ref)(G), AUTOGRAD_TOL, f"SymBa vs autograd ({objective})")


def test_symba_is_the_difference_of_goodness_and_needs_pairs():
    loss = lossmod.SymBa(alpha=2.0)
    G = np.array([5.0, 1.0, 3.0, 4.0])  # positives 5, 1; negatives 3, 4
    s = gd.sign(np.array([True, True, False, False]), "max")
    np.testing.assert_allclose(loss.L(G, s), np.log1p(np.exp(-2.0 * np.array([2.0, -3.0]))))
    with pytest.raises(ValueError, match="even number of rows"):
        loss.L(G[:3], s[:3])
    with pytest.raises(ValueError, match="alpha > 0"):
        lossmod.SymBa(alpha=float("nan"))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        lossmod.make_loss("hinge")


def test_composed_net_checks_that_layers_stack():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="do not stack"):
        FFNet(layers=[Dense(20, 9, rng), Dense(8, 7, rng)])
    net = FFNet(layers=[Dense(20, 9, rng), Dense(9, 7, rng)])
    assert net.hidden == [9, 7] and net.n_in == 20


class _MeanSquare:
    """A goodness defined in a test, to show that a new goodness is one class:
    G = mean_j y_j^2, dG/dy = 2 y / n."""

    name = "mean_square"
    norm = "rms"

    def G(self, y, starts=None):
        return np.einsum("bj,bj->b", y, y) / y.shape[1]

    def dL_dy(self, y, dL_dG, starts=None):
        return y * (2.0 * dL_dG / y.shape[1])[:, None]


def test_a_new_goodness_is_one_class():
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    rng = np.random.default_rng(0)
    layers = [Dense(N_IN, 9, rng, np.float64), Dense(9, 7, rng, np.float64)]
    net = FFNet(layers=layers, goodness=_MeanSquare(), theta=0.3, dtype=np.float64)
    grads, old, inputs = _step_and_reference(net)
    s = gd.sign(np.arange(2 * B) < B, "max")
    for l, ((W, b), X) in enumerate(zip(old, inputs)):

        def f(W, b, X=X):
            y = anp.maximum(anp.dot(X, W) + b, 0.0)
            G = anp.mean(y * y, axis=1)
            return anp.sum(anp.logaddexp(0.0, -s * (G - 0.3))) / B

        assert_close(grads[f"layer{l}"]["W"], autograd.grad(f, 0)(W, b), AUTOGRAD_TOL, "W")
        assert_close(grads[f"layer{l}"]["b"], autograd.grad(f, 1)(W, b), AUTOGRAD_TOL, "b")


class _ShuffledPixels:
    """A negative-data part defined in a test, to show that a pretext transform is one
    class: each negative is its image with the pixels in a random order (real pixel
    statistics, no real shape), as a self-supervised pretext task would make them."""

    def make(self, x, labels, rng, q=None):
        order = np.argsort(rng.random(x.shape), axis=1)  # one permutation per image
        return np.take_along_axis(x, order, axis=1), labels


def test_a_new_negative_part_is_one_class():
    """Unsupervised FF with the test's own negatives: the step's gradients are those of
    Eq. 1 on [x; the part's negatives] through every layer (autograd, float64)."""
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    rng = np.random.default_rng(0)
    layers = [Dense(N_IN, 9, rng, np.float64), Dense(9, 7, rng, np.float64)]
    net = FFNet(
        layers=layers, supervised=False, negatives=_ShuffledPixels(), theta=0.3, dtype=np.float64
    )
    x, labels = _inputs()
    old = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    out = net.train_step(x, labels, np.random.default_rng(5), SGD(LR), SGD(0.0), return_grads=True)
    x_neg, _ = _ShuffledPixels().make(x, labels, np.random.default_rng(5))  # the same draw
    assert not np.allclose(x_neg, x) and np.allclose(np.sort(x_neg, 1), np.sort(x, 1))
    X = normalize(np.concatenate([x, x_neg]), net.norm)
    s = gd.sign(np.arange(2 * B) < B, "max")
    for l, (W, b) in enumerate(old):

        def f(W, b, X=X):
            y = anp.maximum(anp.dot(X, W) + b, 0.0)
            return anp.sum(anp.logaddexp(0.0, -s * (anp.sum(y * y, axis=1) - 0.3))) / B

        g = out["grads"][f"layer{l}"]
        assert_close(g["W"], autograd.grad(f, 0)(W, b), AUTOGRAD_TOL, f"layer {l} W")
        assert_close(g["b"], autograd.grad(f, 1)(W, b), AUTOGRAD_TOL, f"layer {l} b")
        X = normalize(np.maximum(X @ W + b, 0.0), net.norm)
