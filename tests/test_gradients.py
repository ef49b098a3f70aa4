"""Every closed-form gradient against autograd (float64, rel. error < 1e-7) and central
finite differences, over random shapes (batch size 1 included) and several seeds.

autograd's ``np.maximum(a, 0)`` gives derivative 0.5 at ``a = 0`` while ours uses
ReLU'(0) = 0; the inputs here are continuous random numbers, so no pre-activation is
exactly 0 and the two agree.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, FD_TOL, assert_close, numerical_grad, sample_indices

from ff_numpy import goodness as gd
from ff_numpy.layers import Dense, dropout
from ff_numpy.model import FFNet
from ff_numpy.norm import normalize, normalize_grouped
from ff_numpy.optim import SGD
from ff_numpy.readout import SoftmaxReadout

autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
anp = pytest.importorskip("autograd.numpy")

SEEDS = [0, 1, 2, 3]
BATCHES = [1, 2, 7]


def _ref_layer_loss(G, theta, s):
    return anp.logaddexp(0.0, -s * (G - theta))


# ----------------------------------------------------------------------------- goodness
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", SEEDS)
def test_dL_dG_matches_autograd_and_fd(objective, seed):
    rng = np.random.default_rng(seed)
    B = int(rng.integers(1, 9))
    theta = float(rng.uniform(0.5, 20))
    G = rng.uniform(0, 2 * theta, size=B)
    s = gd.sign(rng.random(B) < 0.5, objective)
    w = rng.standard_normal(B)  # upstream weights: check the vector-Jacobian product

    ours = w * gd.dL_dG(G, theta, s)
    ref = autograd.grad(lambda g: anp.sum(w * _ref_layer_loss(g, theta, s)))(G)
    assert_close(ours, ref, AUTOGRAD_TOL, "dL/dG vs autograd")
    num = numerical_grad(lambda: float(np.sum(w * gd.layer_loss(G, theta, s))), G)
    assert_close(ours, num, FD_TOL, "dL/dG vs finite differences")


def test_loss_is_minus_log_p_and_never_overflows():
    G = np.array([0.0, 5.0, 1e6, -1e6, 3.0])
    theta = 3.0
    for objective in ("max", "min"):
        for positive in (True, False):
            s = gd.sign(np.full(G.shape, positive), objective)
            p = gd.p_positive(G, theta, objective)
            p_correct = p if positive else 1 - p
            L = gd.layer_loss(G, theta, s)
            assert np.all(np.isfinite(L)) and np.all(np.isfinite(gd.dL_dG(G, theta, s)))
            ok = p_correct > 1e-300
            np.testing.assert_allclose(L[ok], -np.log(p_correct[ok]), rtol=1e-12, atol=1e-12)


def test_p_positive_is_eq1():
    G = np.linspace(0, 10, 11)
    np.testing.assert_allclose(gd.p_positive(G, 4.0, "max"), 1 / (1 + np.exp(-(G - 4.0))))
    np.testing.assert_allclose(gd.p_positive(G, 4.0, "min"), 1 / (1 + np.exp(G - 4.0)))


def test_sign_convention():
    pos = np.array([True, False])
    np.testing.assert_array_equal(gd.sign(pos, "max"), [1.0, -1.0])
    np.testing.assert_array_equal(gd.sign(pos, "min"), [-1.0, 1.0])
    with pytest.raises(ValueError, match="unknown objective 'mean'"):
        gd.sign(pos, "mean")


# ----------------------------------------------------------------------------- Dense
def _dense_case(seed, objective):
    rng = np.random.default_rng(seed)
    B = BATCHES[seed % len(BATCHES)]
    n_in, n_out = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    layer = Dense(n_in, n_out, rng, dtype=np.float64)
    layer.b[:] = rng.standard_normal(n_out) * 0.3
    x = rng.standard_normal((B, n_in))
    theta = float(n_out) * 0.5
    s = gd.sign(rng.random(B) < 0.5, objective)
    w = rng.uniform(0.5, 1.5, size=B)  # per-row weights, e.g. 1/B
    return rng, layer, x, theta, s, w


def _ref_dense_loss(W, b, x, theta, s, w, kind="ssq"):
    a = anp.dot(x, W) + b
    y = anp.maximum(a, 0.0)
    G = anp.sum(y * y, axis=1) if kind == "ssq" else anp.sum(y, axis=1)
    return anp.sum(w * _ref_layer_loss(G, theta, s))


@pytest.mark.parametrize("kind", ["ssq", "sum"])
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", SEEDS)
def test_dense_local_grads_match_autograd_and_fd(objective, seed, kind):
    rng, layer, x, theta, s, w = _dense_case(seed, objective)
    y, cache = layer.forward(x)
    good = gd.make_goodness(kind)  # G(y) and the chain rule through it
    grads = layer.local_grads(cache, good.dL_dy(y, w * gd.dL_dG(good.G(y), theta, s)))
    dW, db = grads["W"], grads["b"]

    ref_dW = autograd.grad(_ref_dense_loss, 0)(layer.W, layer.b, x, theta, s, w, kind)
    ref_db = autograd.grad(_ref_dense_loss, 1)(layer.W, layer.b, x, theta, s, w, kind)
    what = f"({objective}, {kind})"
    assert_close(dW, ref_dW, AUTOGRAD_TOL, f"dL/dW vs autograd {what}")
    assert_close(db, ref_db, AUTOGRAD_TOL, f"dL/db vs autograd {what}")

    def loss():
        G = gd.goodness(layer.forward(x)[0], kind)
        return float(np.sum(w * gd.layer_loss(G, theta, s)))

    idx = sample_indices(layer.W.shape, 25, rng)
    assert_close(
        dW[tuple(np.array(idx).T)],
        numerical_grad(loss, layer.W, idx),
        FD_TOL,
        "dL/dW vs finite differences",
    )
    assert_close(db, numerical_grad(loss, layer.b), FD_TOL, "dL/db vs finite differences")


def _keep_mask(shape, p, seed):
    """The keep mask ``m`` that :func:`dropout` draws from ``default_rng(seed)``."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32) >= p


@pytest.mark.parametrize("kind", ["ssq", "sum"])
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", SEEDS)
def test_dense_local_grads_with_dropout_match_autograd_and_fd(objective, seed, kind):
    """Goodness of the dropped activities ``y^d = m relu(x W + b) / (1 - p)``: the closed
    form (the factor ``1/(1 - p)`` on dL/dG, the mask in the zeros of ``y^d``, which the
    cache holds) equals autograd and finite differences with the same mask."""
    rng, layer, x, theta, s, w = _dense_case(seed, objective)
    p = 0.3
    y, (x, _) = layer.forward(x)
    y_d = dropout(y, p, np.random.default_rng(seed + 10))
    m = _keep_mask(y_d.shape, p, seed + 10)
    np.testing.assert_allclose(y_d, m * layer.forward(x)[0] / (1 - p))  # the definition
    dL_dG = w * gd.dL_dG(gd.goodness(y_d, kind), theta, s) / (1 - p)
    grads = layer.local_grads((x, y_d), gd.make_goodness(kind).dL_dy(y_d, dL_dG))
    dW, db = grads["W"], grads["b"]

    def ref(W, b):
        y = anp.maximum(anp.dot(x, W) + b, 0.0) * m / (1 - p)  # (B, n_in) @ (n_in, n_out)
        G = anp.sum(y * y, axis=1) if kind == "ssq" else anp.sum(y, axis=1)
        return anp.sum(w * _ref_layer_loss(G, theta, s))

    what = f"({objective}, {kind}, dropout {p})"
    assert_close(dW, autograd.grad(ref, 0)(layer.W, layer.b), AUTOGRAD_TOL, f"dL/dW {what}")
    assert_close(db, autograd.grad(ref, 1)(layer.W, layer.b), AUTOGRAD_TOL, f"dL/db {what}")
    idx = sample_indices(layer.W.shape, 25, rng)
    num = numerical_grad(lambda: float(ref(layer.W, layer.b)), layer.W, idx)
    assert_close(dW[tuple(np.array(idx).T)], num, FD_TOL, "dL/dW vs finite differences")
    assert_close(db, numerical_grad(lambda: float(ref(layer.W, layer.b)), layer.b), FD_TOL, "db")


@pytest.mark.parametrize("objective", ["max", "min"])
def test_ff_sweep_with_dropout_matches_autograd_and_fd(objective):
    """A net's training sweep with dropout: each layer's step is autograd of its own loss
    on the dropped activities, and the next layer's input is the dropped output,
    normalised (the masks replayed from the same generator, layer 0 first)."""
    rng = np.random.default_rng(7)
    net = FFNet(12, [9, 8], rng, dropout=0.25, dtype=np.float64)
    for layer in net.layers:
        layer.b[:] = rng.standard_normal(layer.n_out) * 0.3
    B = 3
    X = normalize(rng.standard_normal((2 * B, 12)), net.norm)
    s = gd.sign(np.arange(2 * B) < B, objective)
    net.objective = objective
    old = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    net.ff_sweep(X.copy(), B, np.random.default_rng(99), SGD(1.0), 1.0)
    replay = np.random.default_rng(99)
    masks = [replay.random((2 * B, n), dtype=np.float32) >= 0.25 for n in (9, 8)]

    def loss(W, b, x, l):
        Y = anp.maximum(anp.dot(x, W) + b, 0.0) * masks[l] / 0.75  # (2B, n_in) @ (n_in, n_out)
        return anp.sum(anp.logaddexp(0.0, -s * (anp.sum(Y * Y, axis=1) - net.theta[l]))) / B

    x = X
    for l, (layer, (W, b)) in enumerate(zip(net.layers, old)):
        assert_close(W - layer.W, autograd.grad(loss, 0)(W, b, x, l), AUTOGRAD_TOL, f"W{l}")
        assert_close(b - layer.b, autograd.grad(loss, 1)(W, b, x, l), AUTOGRAD_TOL, f"b{l}")
        W_fd = W.copy()
        f = functools.partial(loss, W_fd, b, x, l)
        idx = sample_indices(W.shape, 12, rng)
        num = numerical_grad(lambda f=f: float(f()), W_fd, idx)
        assert_close((W - layer.W)[tuple(np.array(idx).T)], num, FD_TOL, f"W{l} vs FD")
        x = normalize(np.maximum(x @ W + b, 0) * masks[l] / 0.75, net.norm)


def test_dropout_drops_about_p_keeps_the_mean_and_checks_p():
    rng = np.random.default_rng(0)
    y = rng.random((400, 500)).astype(np.float32) + 0.5
    y_d = dropout(y, 0.2, np.random.default_rng(1))
    assert y_d.dtype == np.float32
    assert abs(np.mean(y_d == 0) - 0.2) < 0.005  # 200,000 draws
    assert abs(y_d.mean() / y.mean() - 1) < 0.01  # inverted: E[y^d] = y
    kept = y_d != 0
    np.testing.assert_allclose(y_d[kept], y[kept] / 0.8, rtol=1e-6)
    np.testing.assert_array_equal(dropout(y, 0.0, rng), y)
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout"):
            dropout(y, p, rng)
    with pytest.raises(ValueError, match="dropout"):
        FFNet(784, [10], rng, dropout=1.0)


def test_dense_relu_derivative_is_zero_at_zero():
    rng = np.random.default_rng(0)
    layer = Dense(3, 4, rng, dtype=np.float64)
    x = np.zeros((2, 3))  # every pre-activation is exactly b = 0
    _, cache = layer.forward(x)
    grads = layer.local_grads(cache, np.ones((2, 4)))  # dL/dy = 1 everywhere
    assert not grads["W"].any() and not grads["b"].any()


@pytest.mark.parametrize("kind", ["ssq", "sum"])
def test_dense_dL_da_has_no_subnormal_entries(kind):
    """Rows whose goodness factor underflows to a subnormal float32 get an exactly zero
    dL/da row (``blas.row_factor``: subnormal GEMM operands are many times slower); the
    other rows keep the plain formula."""
    rng = np.random.default_rng(4)
    layer = Dense(6, 30, rng)  # float32
    y, _ = layer.forward(rng.standard_normal((4, 6)).astype(np.float32))
    dL_dG = np.array([-0.2, -1e-41, 3e-40, 0.7])  # float64, two subnormal in float32
    ours = gd.make_goodness(kind).dL_dy(y, dL_dG) * (y > 0)  # dL/da
    assert ours.dtype == np.float32
    assert not ((ours != 0) & (np.abs(ours) < np.finfo(np.float32).tiny)).any()
    np.testing.assert_array_equal(ours[1:3], 0.0)
    dG_dy = 2 * y if kind == "ssq" else (y > 0)
    plain = dL_dG[[0, 3], None] * dG_dy[[0, 3]]
    np.testing.assert_allclose(ours[[0, 3]], plain, rtol=1e-6)


def test_dense_forward_matches_definition():
    rng = np.random.default_rng(5)
    layer = Dense(6, 4, rng, dtype=np.float64)
    layer.b[:] = rng.standard_normal(4)
    x = rng.standard_normal((3, 6))
    np.testing.assert_allclose(layer.forward(x)[0], np.maximum(x @ layer.W + layer.b, 0))


# ----------------------------------------------------------------------------- readout
def _ref_softmax_loss(V, c, h, labels):
    z = anp.dot(h, V) + c
    logq = z - anp.reshape(
        anp.log(anp.sum(anp.exp(z - anp.max(z, axis=1, keepdims=True)), axis=1))
        + anp.max(z, axis=1),
        (-1, 1),
    )
    return -anp.mean(logq[np.arange(h.shape[0]), labels])


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_readout_grads_match_autograd_and_fd(seed):
    rng = np.random.default_rng(seed)
    B = BATCHES[seed % len(BATCHES)]
    n_feat, C = int(rng.integers(2, 10)), int(rng.integers(2, 6))
    ro = SoftmaxReadout(n_feat, C, dtype=np.float64)
    ro.V[:] = rng.standard_normal(ro.V.shape)
    ro.c[:] = rng.standard_normal(C)
    h = rng.standard_normal((B, n_feat))
    labels = rng.integers(0, C, size=B)

    L, dV, dc, q = ro.loss_and_grads(h, labels)
    assert np.isclose(L, _ref_softmax_loss(ro.V, ro.c, h, labels), rtol=1e-12)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert_close(
        dV,
        autograd.grad(_ref_softmax_loss, 0)(ro.V, ro.c, h, labels),
        AUTOGRAD_TOL,
        "dL/dV vs autograd",
    )
    assert_close(
        dc,
        autograd.grad(_ref_softmax_loss, 1)(ro.V, ro.c, h, labels),
        AUTOGRAD_TOL,
        "dL/dc vs autograd",
    )

    def loss():
        return ro.loss_and_grads(h, labels)[0]

    assert_close(dV.ravel(), numerical_grad(loss, ro.V), FD_TOL, "dL/dV vs finite differences")
    assert_close(dc, numerical_grad(loss, ro.c), FD_TOL, "dL/dc vs finite differences")


# ----------------------------------------------------------------------------- peer norm
def _peer_case(seed, objective):
    """A one-layer float64 FFNet with peer normalisation, random running means, some
    units dead on every positive row, and a batch of B positive then B negative rows."""
    rng = np.random.default_rng(seed)
    n_in, n_out, B = int(rng.integers(3, 7)), int(rng.integers(4, 9)), int(rng.integers(1, 5))
    net = FFNet(n_in, [n_out], rng, supervised=False, objective=objective, theta=[float(n_out)],
                peer_strength=float(rng.uniform(0.1, 1.0)), dtype=np.float64)  # fmt: skip
    layer, peer = net.layers[0], net.peers[0]
    layer.b[:] = rng.uniform(-0.5, 0.5, n_out)
    layer.b[: n_out // 2] = -50.0  # dead units: the ones peer normalisation must revive
    peer.mean[:] = rng.uniform(0.0, 1.0, n_out)
    X = np.abs(rng.standard_normal((2 * B, n_in)))
    return rng, net, X, B


def _ref_peer_loss(W, b, X, B, theta, s, mean_old, peer, xp):
    """Batch-mean FF loss plus the peer penalty of the updated running means."""
    Y = xp.maximum(xp.dot(X, W) + b, 0.0)  # (2B, n_in) @ (n_in, n_out) -> (2B, n_out)
    G = xp.sum(Y * Y, axis=1)
    ff = xp.sum(xp.logaddexp(0.0, -s * (G - theta))) / B
    m = peer.rho * mean_old + (1.0 - peer.rho) * xp.mean(Y[:B], axis=0)
    return ff + peer.penalty(m, xp)


@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", SEEDS)
def test_peer_normalisation_matches_autograd_on_active_units_and_the_rule_elsewhere(
    objective, seed
):
    """Footnote 9. The weight step of :meth:`FFNet.ff_sweep` with peer normalisation is
    autograd of (FF loss + :meth:`PeerNorm.penalty`) plus, on the units whose ReLU is
    off, the paper's "pretend" term ``lambda (m_j - mean(m)) / B`` that no gradient has."""
    rng, net, X, B = _peer_case(seed, objective)
    layer, peer = net.layers[0], net.peers[0]
    W0, b0, mean_old = layer.W.copy(), layer.b.copy(), peer.mean.copy()
    s = gd.sign(np.arange(2 * B) < B, objective)
    theta = net.theta[0]

    net.ff_sweep(X.copy(), B, rng, SGD(1.0), 1.0)  # plain step, lr 1: W0 - W = dL/dW
    ours_dW = W0 - layer.W

    args = (b0, X, B, theta, s, mean_old, peer, anp)
    ref_dW = autograd.grad(_ref_peer_loss, 0)(W0, *args)
    # The stated rule on inactive units, from its definition, with the updated means.
    A = X[:B] @ W0 + b0  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    m = peer.rho * mean_old + (1 - peer.rho) * np.maximum(A, 0).mean(axis=0)
    np.testing.assert_allclose(peer.mean, m, rtol=1e-12)
    rule = (A <= 0) * (peer.strength * (m - m.mean()) / B)  # (B, n_out), off units only
    pretend_dW = X[:B].T @ rule  # (n_in, B) @ (B, n_out) -> (n_in, n_out)
    assert np.abs(pretend_dW[:, : layer.W.shape[1] // 2]).min() > 0  # dead units get pulled

    assert_close(ours_dW - pretend_dW, ref_dW, AUTOGRAD_TOL, "peer step vs autograd")

    def loss():
        return float(_ref_peer_loss(W0, *args[:-1], np))

    idx = sample_indices(W0.shape, 20, rng)
    assert_close(
        (ours_dW - pretend_dW)[tuple(np.array(idx).T)],
        numerical_grad(loss, W0, idx),
        FD_TOL,
        "peer step vs finite differences",
    )


def test_peer_normalisation_revives_a_dead_unit():
    """A unit that is off on every positive row still moves: its running mean is below
    the layer's, so the pretended derivative raises its pre-activation."""
    rng, net, X, B = _peer_case(0, "max")
    layer, peer = net.layers[0], net.peers[0]
    dead = 0  # bias -50: off everywhere
    peer.mean[dead] = 0.0  # below the others' mean
    before = X[:B] @ layer.W[:, dead] + layer.b[dead]
    net.ff_sweep(X.copy(), B, rng, SGD(0.1), 1.0)
    after = X[:B] @ layer.W[:, dead] + layer.b[dead]
    assert np.all(after > before)


# ----------------------------------------------------------------------------- per location
@pytest.mark.parametrize(
    "objective, kind, norm_per",
    [("max", "ssq", "layer"), ("min", "ssq", "layer"), ("max", "sum", "layer"),
     ("min", "sum", "layer"), ("max", "ssq", "location"), ("min", "sum", "location")],
)  # fmt: skip
def test_goodness_per_location_step_matches_autograd_and_fd(objective, kind, norm_per):
    """Footnote 8's locally connected net with one Eq. 1 loss per location: the masked
    weight step of the first two layers equals autograd (and finite differences) of
    ``sum_locations softplus(-s (G_loc - theta_loc)) / B``, times the mask; the second
    layer's input is the first layer's output normalised over the layer or per location."""
    rng = np.random.default_rng(3)
    net = FFNet(784, [2048, 1980, 2048], rng, supervised=False, local="paper",
                goodness_per="location", norm_per=norm_per, objective=objective,
                goodness=kind, dtype=np.float64)  # fmt: skip
    B = 2
    X = normalize(np.abs(rng.standard_normal((2 * B, 784))), net.norm)
    s = gd.sign(np.arange(2 * B) < B, objective)
    old = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    net.ff_sweep(X.copy(), B, rng, SGD(1.0), 1.0)

    def loss(W, b, x, l):
        Y = anp.maximum(anp.dot(x, W) + b, 0.0)  # (2B, n_in) @ (n_in, n_out) -> (2B, n_out)
        v = Y * Y if kind == "ssq" else Y
        bounds = [*net.group_starts[l], W.shape[1]]
        G = anp.stack([anp.sum(v[:, a:z], axis=1) for a, z in zip(bounds[:-1], bounds[1:])], 1)
        return anp.sum(anp.logaddexp(0.0, -s[:, None] * (G - net.group_theta[l]))) / B

    x = X
    for l in (0, 1):
        layer, (W, b) = net.layers[l], old[l]
        ours = W - layer.W
        ref = autograd.grad(loss, 0)(W, b, x, l) * layer.mask
        assert_close(ours, ref, AUTOGRAD_TOL, f"layer {l} per-location step vs autograd")
        assert_close(b - layer.b, autograd.grad(loss, 1)(W, b, x, l), AUTOGRAD_TOL, "bias")
        inside = np.argwhere(layer.mask > 0)
        idx = [tuple(inside[i]) for i in rng.choice(len(inside), 12, replace=False)]
        W_fd = W.copy()
        f = functools.partial(loss, W_fd, b, x, l)  # binds this layer's arrays
        num = numerical_grad(lambda f=f: float(f()), W_fd, idx)
        assert_close(ours[tuple(np.array(idx).T)], num, FD_TOL, "vs finite differences")
        assert np.all(layer.W[layer.mask == 0] == 0)
        y = np.maximum(x @ W + b, 0)  # what layer l + 1 saw, normalised
        if norm_per == "layer":
            x = normalize(y, net.norm)
        else:
            x = normalize_grouped(y, net.group_starts[l], net.norm)
