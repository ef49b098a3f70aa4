"""The recurrent net's whole training step against autograd and finite differences.

``RecurrentFFNet.train_step(..., return_grads=True)`` returns the gradient every
connection applied, summed over the loss iterations (paper Sec. 3.4, Fig. 3). That
gradient is defined as :meth:`RecurrentFFNet.unroll_grads` and
:meth:`RecurrentFFNet.layer_local_grads` define it: the batch loss is

.. code-block:: text

    sum over loss iterations t and hidden layers l of  (1/B) sum_pairs L(G(y_l^t))
    y_l^t = d y_l^{t-1} + (1 - d) relu(h_below W_up_l + h_above W_down_l + b_l)

where what the update *read* (``h_below``, ``h_above``: the normalised states of the
neighbours or the image and the label; ``y_l^{t-1}``: the layer's previous state) is
held constant. Those states depend on the weights through the earlier iterations, but no
gradient flows through them (no backpropagation through time).

The reference here is written from the paper's equations alone, in float64, with every
connection as a dense matrix (a masked layer's ``W`` times its mask, a locally connected
layer's existing weights scattered into their places): a plain NumPy run of the initial
bottom-up pass and the damped synchronous iterations records what every update with a
loss read, and the loss of those updates is a function of the weights alone. Its
gradient comes from autograd (relative error below 1e-10; skipped without autograd) and
from central finite differences (a separate test that needs no autograd). The cases:
dense, masked and locally connected connections, bottom-up and top-down (the label's
connection is dense: the label is not a map), both objectives, the logistic loss of
Eq. 1 and SymBa, the sum-of-squares goodness and the unsquared one.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, FD_TOL, assert_close, numerical_grad

from ff_numpy import loss as lossmod
from ff_numpy import masks
from ff_numpy.layers import Dense, Masked
from ff_numpy.negatives import random_wrong_labels
from ff_numpy.optim import SGD
from ff_numpy.recurrent import RecurrentFFNet

try:
    from ff_numpy.locally_connected import Local
except ImportError:  # the layer that stores only its existing weights is optional here
    Local = None

GRID = (3, 4)  # every map: 3 x 4 locations
C_IMAGE, C_HIDDEN = 2, (2, 1)  # channels of the image and of the two hidden maps
K = 3  # 3 x 3 fields, cut at the edge of the map
N_CLASSES = 4
B = 3
DAMPING = 0.3
ITERATIONS = 3
LR = 0.05
ALPHA = 0.5  # SymBa's scale
THETA = [24.0, 9.0]  # near each layer's median goodness: the sigmoids are not saturated


# ----------------------------------------------------------------------------- the nets
def _sizes():
    cells = GRID[0] * GRID[1]
    return cells * C_IMAGE, [cells * c for c in C_HIDDEN]


def _local_layer(kind, c_in, c_out, rng):
    """A same-size local connection from a (3, 4, c_in) map to a (3, 4, c_out) map."""
    fields = masks.same_size_fields((*GRID, c_in), c_out, K)
    if kind == "masked":
        return Masked.from_fields(fields, rng, np.float64)
    return Local(fields, rng, np.float64)


def _connections(kind, rng):
    """``up`` and ``down`` of a 2-hidden-layer net: image -> h0 -> h1, label -> h1."""
    n_in, hidden = _sizes()
    if kind == "dense":
        up = [Dense(n_in, hidden[0], rng, np.float64), Dense(hidden[0], hidden[1], rng, np.float64)]
        down = [Dense(hidden[1], hidden[0], rng, np.float64)]
    else:
        if kind == "local" and Local is None:
            pytest.skip("ff_numpy.locally_connected.Local is not available in this checkout")
        up = [
            _local_layer(kind, C_IMAGE, C_HIDDEN[0], rng),  # image -> h0, bottom-up
            _local_layer(kind, C_HIDDEN[0], C_HIDDEN[1], rng),  # h0 -> h1, bottom-up
        ]
        down = [_local_layer(kind, C_HIDDEN[1], C_HIDDEN[0], rng)]  # h1 -> h0, top-down
    down.append(Dense(N_CLASSES, hidden[1], rng, np.float64))  # the label -> h1
    return up, down


def _net(kind, goodness, objective, loss, seed=0, goodness_per="layer"):
    rng = np.random.default_rng(seed)
    up, down = _connections(kind, rng)
    for layer in up:  # biases that keep most units on, so that no check is vacuous
        layer.b[:] = rng.uniform(0.05, 0.4, layer.n_out)
    for layer in down:
        layer.b[:] = 10 * rng.standard_normal(layer.n_out)  # unused: must change nothing
    _, hidden = _sizes()
    return RecurrentFFNet(
        up[0].n_in, hidden, N_CLASSES, rng,
        damping=DAMPING, iterations=ITERATIONS, loss_iterations=(1, ITERATIONS),
        average_iterations=(1, ITERATIONS), objective=objective,
        theta=THETA, goodness=goodness, goodness_per=goodness_per,
        loss=lossmod.make_loss(loss, alpha=ALPHA), up=up, down=down, dtype=np.float64,
    )  # fmt: skip


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    n_in, _ = _sizes()
    return rng.random((B, n_in)), rng.integers(0, N_CLASSES, B)


# ----------------------------------------------------------------------------- dense forms
def _mask(layer) -> np.ndarray:
    """Where the layer has weights, as a (n_in, n_out) 0/1 matrix."""
    if Local is not None and isinstance(layer, Local):
        return _dense(layer, np.ones_like(layer.W))
    if isinstance(layer, Masked):
        return np.asarray(layer.mask, dtype=np.float64)
    return np.ones((layer.n_in, layer.n_out))


def _dense(layer, w) -> np.ndarray:
    """``w`` (weights or their gradient, in the layer's layout of ``W``) as a dense
    (n_in, n_out) matrix.

    A locally connected layer's row ``p`` holds the weights from input
    ``fields.indices[p]`` to the ``channels`` units of the location pair ``p`` belongs to
    (units ``loc * channels .. loc * channels + channels - 1``).
    """
    if Local is None or not isinstance(layer, Local):
        return np.array(w, dtype=np.float64)
    f = layer.fields
    dense = np.zeros((layer.n_in, layer.n_out))
    units = f.pair_locations()[:, None] * f.channels + np.arange(f.channels)  # (n_pairs, C)
    dense[f.indices[:, None], units] = w
    return dense


def _weights(net):
    """The net's connections as dense float64 matrices, keyed ``"up0.W"``, ...; and
    their masks."""
    params, mask = {}, {}
    for l in range(len(net.hidden)):
        for name, layer in ((f"up{l}", net.up[l]), (f"down{l}", net.down[l])):
            params[f"{name}.W"] = _dense(layer, layer.W)
            mask[f"{name}.W"] = _mask(layer)
        params[f"up{l}.b"] = net.up[l].b.copy()
    return params, mask


# ----------------------------------------------------------------------------- reference
def _norm(v, scale):
    """Each row divided by its length, no mean subtracted (footnote 5)."""
    if scale == "rms":
        return v / np.sqrt(np.mean(v * v, axis=1, keepdims=True))
    assert scale == "mean", scale
    return v / np.mean(np.abs(v), axis=1, keepdims=True)


def _sign(objective):
    """+1 where the goodness should be high: the positive rows (true label) under
    ``"max"``, the negative ones under ``"min"``."""
    return np.where((np.arange(2 * B) < B) == (objective == "max"), 1.0, -1.0)


def _ref_reads(params, x, labels, wrong, spec):
    """Plain NumPy run of the dynamics (paper Sec. 3.4): what every update with a loss
    read, ``[(l, h_below, h_above, y_prev), ...]``.

    Iteration 0: bottom-up, no label, no damping. Iterations 1..T: every hidden layer
    reads the states of the previous iteration (synchronous), the image below the first
    and the label above the last, and ``y <- d y + (1 - d) relu(a)``.
    """
    L, scale, d = spec["L"], spec["norm"], spec["damping"]
    X = _norm(np.concatenate([x, x]), scale)  # positive rows, then negative: same images
    lab = _norm(np.eye(N_CLASSES)[np.concatenate([labels, wrong])], scale)
    ys, h = [], X
    for l in range(L):
        ys.append(np.maximum(h @ params[f"up{l}.W"] + params[f"up{l}.b"], 0.0))
        h = _norm(ys[-1], scale)
    reads = []
    for _ in range(ITERATIONS):
        hs = [_norm(y, scale) for y in ys]
        new = []
        for l in range(L):
            h_below = X if l == 0 else hs[l - 1]
            h_above = lab if l == L - 1 else hs[l + 1]
            a = h_below @ params[f"up{l}.W"] + h_above @ params[f"down{l}.W"]
            a = a + params[f"up{l}.b"]
            assert np.abs(a).min() > 1e-4, "a pre-activation at the ReLU's kink: redraw the case"
            new.append(d * ys[l] + (1 - d) * np.maximum(a, 0.0))
            reads.append((l, h_below, h_above, ys[l]))
        ys = new
    assert all(np.isfinite(r[1]).all() and np.isfinite(r[2]).all() for r in reads)
    return reads


def _ref_losses(xp, params, mask, reads, spec):
    """Every layer's loss summed over its updates, the reads held constant, in array
    module ``xp`` (``numpy`` or ``autograd.numpy``); a weight outside a mask does not
    exist (``W * mask``)."""
    d, s = spec["damping"], _sign(spec["objective"])
    per_layer = [0.0] * spec["L"]
    for l, h_below, h_above, y_prev in reads:
        W_up = params[f"up{l}.W"] * mask[f"up{l}.W"]
        W_down = params[f"down{l}.W"] * mask[f"down{l}.W"]
        a = xp.dot(h_below, W_up) + xp.dot(h_above, W_down) + params[f"up{l}.b"]
        y = d * y_prev + (1 - d) * xp.maximum(a, 0.0)
        g = y * y if spec["goodness"] == "ssq" else y
        if spec["per"] == "location":  # units are location-major: unit = loc * C + c
            G = xp.sum(xp.reshape(g, (2 * B, -1, C_HIDDEN[l])), axis=2)  # (2B, n_loc)
            s_l, theta = s[:, None], spec["theta"][l] * C_HIDDEN[l] / y.shape[1]
        else:
            G, s_l, theta = xp.sum(g, axis=1), s, spec["theta"][l]  # (2B,)
        if spec["loss"] == "symba":  # one loss per pair: softplus(-alpha (s G+ + s G-))
            z = ALPHA * (s_l[:B] * G[:B] + s_l[B:] * G[B:])
        else:  # Eq. 1: softplus(-s (G - theta)) per row, or per row and location
            z = s_l * (G - theta)
        per_layer[l] = per_layer[l] + xp.sum(xp.logaddexp(0.0, -z)) / B  # mean over pairs
    return per_layer


def _ref_total(xp, params, mask, reads, spec):
    return sum(_ref_losses(xp, params, mask, reads, spec))


# ----------------------------------------------------------------------------- the step
CASES = [
    (kind, goodness, objective, loss, "layer")
    for kind in ("dense", "masked", "local")
    for goodness, loss in (("ssq", "logistic"), ("ssq", "symba"), ("sum", "logistic"))
    for objective in ("max", "min")
] + [  # the loss on every location's goodness (goodness_per="location")
    (kind, goodness, objective, loss, "location")
    for kind in ("masked", "local")
    for goodness, loss in (("ssq", "logistic"), ("sum", "logistic"))
    for objective in ("max", "min")
]
IDS = ["-".join(c) for c in CASES]


def _step(case, weight_decay=0.0):
    """One training step of the case's net with plain SGD and random wrong labels.

    Returns
    -------
    out : dict
        What ``train_step(..., return_grads=True)`` returned.
    net : RecurrentFFNet
        After the step.
    before : dict
        The dense weights before the step (``"up0.W"``, ...), and ``mask``.
    reads, spec
        The reference's recorded reads and options.
    """
    kind, goodness, objective, loss, per = case
    net = _net(kind, goodness, objective, loss, goodness_per=per)
    x, labels = _batch()
    params, mask = _weights(net)
    wrong = random_wrong_labels(labels, N_CLASSES, np.random.default_rng(5))  # the step's
    assert not np.any(wrong == labels)
    spec = dict(L=len(net.hidden), norm=net.norm, damping=DAMPING, objective=objective,
                goodness=goodness, loss=loss, theta=net.theta, per=per)  # fmt: skip
    assert net.norm == {"ssq": "rms", "sum": "mean"}[goodness]
    reads = _ref_reads(params, x, labels, wrong, spec)
    out = net.train_step(x, labels, np.random.default_rng(5), SGD(LR, weight_decay=weight_decay),
                         SGD(0.1), negatives="random", return_grads=True)  # fmt: skip
    return out, net, (params, mask), reads, spec


def _ours_dense(net, grads):
    """The returned gradients as dense matrices keyed as :func:`_weights` keys them."""
    out = {}
    for l in range(len(net.hidden)):
        out[f"up{l}.W"] = _dense(net.up[l], grads[f"up{l}"]["W"])
        out[f"down{l}.W"] = _dense(net.down[l], grads[f"down{l}"]["W"])
        out[f"up{l}.b"] = grads[f"up{l}"]["b"]
    return out


def _check_shape_of_returned(net, grads):
    assert set(grads) == set(net.connections())
    for name, params in net.connections().items():
        assert set(grads[name]) == set(params), name
        for k, p in params.items():  # each in its layer's own layout of W (Local: pairs)
            assert grads[name][k].shape == p.shape and grads[name][k].dtype == p.dtype


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_step_grads_match_autograd(case):
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    out, net, (params, mask), reads, spec = _step(case)
    grads = out["grads"]
    _check_shape_of_returned(net, grads)
    ours = _ours_dense(net, grads)

    per_layer = _ref_losses(np, params, mask, reads, spec)
    for l, ref in enumerate(per_layer):  # reported: per pair, averaged over iterations
        assert np.isclose(out[f"layer{l}"], ref / ITERATIONS, rtol=1e-12, atol=0), l

    ref = autograd.grad(lambda p: _ref_total(anp, p, mask, reads, spec))(params)
    for key in ref:
        assert np.linalg.norm(ref[key]) > 1e-6 * np.linalg.norm(params[key]), (
            f"{case} {key}: the reference gradient is about zero, the check is vacuous"
        )
        assert_close(ours[key], ref[key], AUTOGRAD_TOL, f"{case} {key}: train_step vs autograd")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_step_grads_match_finite_differences(case):
    """The same gradients against central differences of the reference loss (no
    autograd): 12 existing weights of every matrix, every bias; a weight outside a mask
    gets exactly zero."""
    out, net, (params, mask), reads, spec = _step(case)
    ours = _ours_dense(net, out["grads"])
    rng = np.random.default_rng(3)

    def f():
        return float(_ref_total(np, params, mask, reads, spec))

    for key, p in params.items():
        if key.endswith(".b"):
            idx = None
        else:
            exist = np.argwhere(mask[key] != 0)
            idx = [tuple(i) for i in exist[rng.choice(len(exist), 12, replace=False)]]
            np.testing.assert_array_equal(ours[key][mask[key] == 0], 0.0, f"{key} off the mask")
        num = numerical_grad(f, p, idx)
        ours_at = ours[key] if idx is None else ours[key][tuple(np.array(idx).T)]
        assert np.any(num), f"{case} {key}: zero numerical gradient, the check is vacuous"
        assert_close(ours_at, num, FD_TOL, f"{case} {key}: train_step vs finite differences")


@pytest.mark.parametrize("case", [CASES[0], CASES[7], CASES[13]], ids=[IDS[0], IDS[7], IDS[13]])
def test_train_step_applies_exactly_the_gradients_it_returns(case):
    """Plain SGD with weight decay: every array moved by ``-lr (g + lambda W)`` (no decay
    on biases), with ``g`` the returned gradient, which is the loss's gradient alone
    (copied before the optimiser used it as scratch)."""
    lam = 0.1
    out, net, (params, mask), _, _ = _step(case, weight_decay=lam)
    ours = _ours_dense(net, out["grads"])
    after, _ = _weights(net)
    for key, old in params.items():
        decay = 0.0 if key.endswith(".b") else lam * old * mask[key]
        expected = old - LR * (ours[key] + decay)
        scale = np.abs(old).max()
        np.testing.assert_allclose(after[key], expected, rtol=1e-13, atol=1e-15 * scale,
                                   err_msg=key)  # fmt: skip


@pytest.mark.parametrize("per", ["layer", "location"])
def test_threshold_set_after_construction_is_the_one_used(per):
    """``net.theta`` is read at every update (a tutorial sets it after building the net);
    per location, the thresholds are the layer's shared out by units and add up to it."""
    net = _net("masked", "ssq", "max", "logistic", goodness_per=per)
    x, labels = _batch()
    reads = _ref_reads(*_weights(net)[:1], x, labels, (labels + 1) % N_CLASSES,
                       dict(L=2, norm=net.norm, damping=DAMPING))  # fmt: skip
    l, h_below, h_above, y_prev = reads[-1]
    s = np.where(np.arange(2 * B) < B, 1.0, -1.0)
    before = net.layer_local_grads(l, h_below, h_above, y_prev, s)["loss"]
    assert np.isclose(np.sum(net.layer_theta(l)), net.theta[l], rtol=1e-12)
    net.theta[l] += 5.0
    assert np.isclose(np.sum(net.layer_theta(l)), net.theta[l], rtol=1e-12)
    after = net.layer_local_grads(l, h_below, h_above, y_prev, s)["loss"]
    assert after != before
