"""The backprop baseline with local receptive fields (paper Sec. 4, Table 1's BP rows).

:class:`ff_numpy.backprop.MLP` takes its hidden layers from the caller: dense, masked
(local fields as a 0/1 mask) or locally connected (:class:`ff_numpy.locally_connected.Local`,
storing only the existing weights, whose input gradient is the scatter-add of
:func:`ff_numpy.locally_connected.input_grad`). The whole net's gradients are checked
against autograd (float64, relative error below 1e-10) and against central finite
differences (a separate test that needs no autograd), on random map sizes, 1-3 units
per location and fields up to wider than the map; a net of ``Local`` layers equals the
same net of ``Masked`` layers to 1e-12 for the loss, the gradients and three optimiser
steps with momentum and weight decay.

The reference writes every layer as a dense matrix (a local layer's existing weights
scattered into their places, :meth:`Local.to_dense`), so it knows nothing of blocks,
ragged storage or scatter-adds.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, FD_TOL, assert_close, numerical_grad, sample_indices

from ff_numpy import masks
from ff_numpy.backprop import MLP
from ff_numpy.layers import Dense, Masked
from ff_numpy.locally_connected import Local
from ff_numpy.optim import SGD, Adam

SEEDS = range(6)
KINDS = ("local", "masked", "dense")


# ----------------------------------------------------------------------------- the nets
def _layer(kind, fields, rng):
    if kind == "local":
        return Local(fields, rng, np.float64)
    if kind == "masked":
        return Masked.from_fields(fields, rng, np.float64)
    return Dense(fields.n_in, fields.n_out, rng, np.float64)


def _case(seed, kinds=None):
    """A random float64 MLP of 1-3 hidden maps of one random size (fields of width 1 to
    wider than the map, 1-3 units per location), a batch and labels."""
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(2, 6, size=2))
    k = int(rng.choice([1, 3, 5, 2 * max(H, W) + 1]))  # the last is wider than the map
    channels = [int(rng.integers(1, 4))]  # the input map's channels
    n_hidden = 1 + seed % 3
    channels += [int(c) for c in rng.integers(1, 4, size=n_hidden)]
    if kinds is None:
        kinds = [KINDS[(seed + l) % 3] for l in range(n_hidden)]
    layers = [
        _layer(kind, masks.same_size_fields((H, W, c_in), c_out, k), rng)
        for kind, c_in, c_out in zip(kinds, channels[:-1], channels[1:])
    ]
    for layer in layers:  # non-zero biases, so every bias gradient is exercised
        layer.b[:] = rng.standard_normal(layer.b.shape) * 0.3
    C = int(rng.integers(2, 5))
    hidden = [layer.n_out for layer in layers]
    model = MLP(H * W * channels[0], hidden, C, rng, dtype=np.float64, layers=layers)
    model.b[-1][:] = rng.standard_normal(C) * 0.3
    B = int(rng.integers(1, 6))
    x = rng.standard_normal((B, model.n_in))
    labels = rng.integers(0, C, size=B)
    return rng, model, x, labels


def _dense(model) -> list[np.ndarray]:
    """Every weight matrix of ``model`` as a dense (n_in, n_out) array."""
    return [
        layer.to_dense() if isinstance(layer, Local) else W
        for W, layer in zip(model.W, model.layers)
    ]


def _to_layout(layer, dense_grad: np.ndarray) -> np.ndarray:
    """A dense gradient read at the existing weights, in ``layer``'s layout of ``W``."""
    if isinstance(layer, Local):
        f, C = layer.fields, layer.fields.channels
        units = f.pair_locations()[:, None] * C + np.arange(C)  # (n_pairs, C)
        return dense_grad[f.indices[:, None], units]
    if isinstance(layer, Masked):
        return dense_grad * layer.mask  # a weight outside the fields does not exist
    return dense_grad


def _loss_of_dense(np_, weights, biases, x, labels):
    """Mean softmax cross-entropy of the dense net, written with ``np_`` (NumPy or
    autograd's wrapper): the paper's equations and nothing of our layers."""
    h = x
    for l, (W, b) in enumerate(zip(weights, biases)):
        a = np_.dot(h, W) + b
        h = np_.maximum(a, 0.0) if l < len(weights) - 1 else a
    z_max = np_.max(h, axis=1, keepdims=True)
    log_norm = np_.log(np_.sum(np_.exp(h - z_max), axis=1, keepdims=True)) + z_max
    return -np_.mean((h - log_norm)[np.arange(x.shape[0]), labels])


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("seed", SEEDS)
def test_whole_net_gradients_match_autograd(seed):
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    _, model, x, labels = _case(seed)
    L, grads = model.loss_and_grads(x, labels)
    weights, biases = _dense(model), [np.array(b) for b in model.b]

    def ref(weights, biases):
        return _loss_of_dense(anp, weights, biases, x, labels)

    assert np.isclose(L, ref(weights, biases), rtol=1e-12, atol=0)
    dW, db = autograd.grad(ref, argnum=(0, 1))(weights, biases)
    for l, layer in enumerate(model.layers):
        kind = type(layer).__name__ if layer is not None else "output"
        what = f"layer{l} ({kind}, seed {seed})"
        assert grads[f"layer{l}.W"].shape == model.W[l].shape, what
        assert_close(grads[f"layer{l}.W"], _to_layout(layer, dW[l]), AUTOGRAD_TOL, f"W {what}")
        assert_close(grads[f"layer{l}.b"], db[l], AUTOGRAD_TOL, f"b {what}")


@pytest.mark.parametrize("seed", SEEDS)
def test_whole_net_gradients_match_finite_differences(seed):
    """No autograd needed: central differences of the loss in every stored weight
    array (a local layer's existing weights themselves) and bias."""
    rng, model, x, labels = _case(seed)
    _, grads = model.loss_and_grads(x, labels)

    def loss():
        return model.loss_and_grads(x, labels)[0]

    for name, param in model.params().items():
        idx = sample_indices(param.shape, 25, rng)
        ours = grads[name][tuple(np.array(idx).T)]
        assert_close(ours, numerical_grad(loss, param, idx), FD_TOL, f"{name} (seed {seed})")


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_local_input_gradient_is_the_dense_product(seed):
    """The scatter-add through a local layer equals ``dL/da W^T`` with ``W`` dense."""
    rng, model, _, _ = _case(seed, kinds=["local", "local", "local"][: 1 + seed % 3])
    sizes = [*model.hidden, model.n_classes]
    for l in range(1, model.n_layers):
        dL_da = rng.standard_normal((4, sizes[l]))  # (B, n_l+1)
        dense = _dense(model)[l]  # (n_l, n_l+1)
        assert_close(model._input_grad(l, dL_da), dL_da @ dense.T, 1e-12, f"layer {l}")


# ----------------------------------------------------------------------------- Local = Masked
def _twins(seed):
    """The same float64 net twice: hidden layers Local, and Masked with the same weights."""
    rng, local, x, labels = _case(seed, kinds=["local"] * 3)
    masked_layers = []
    for layer in local.layers[:-1]:
        twin = Masked.from_fields(layer.fields, rng, np.float64)
        twin.W[...] = layer.to_dense()
        twin.b[...] = layer.b
        masked_layers.append(twin)
    masked = MLP(local.n_in, local.hidden, local.n_classes, rng, np.float64, layers=masked_layers)
    masked.W[-1][...] = local.W[-1]
    masked.b[-1][...] = local.b[-1]
    return local, masked, x, labels


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_local_net_equals_masked_net_in_loss_gradients_and_three_steps(seed):
    local, masked, x, labels = _twins(seed)
    L_local, g_local = local.loss_and_grads(x, labels)
    L_masked, g_masked = masked.loss_and_grads(x, labels)
    assert abs(L_local - L_masked) <= 1e-12 * abs(L_masked)
    for l, layer in enumerate(local.layers):
        W_masked = _to_layout(layer, g_masked[f"layer{l}.W"])
        assert_close(g_local[f"layer{l}.W"], W_masked, 1e-12, f"layer{l}.W")
        assert_close(g_local[f"layer{l}.b"], g_masked[f"layer{l}.b"], 1e-12, f"layer{l}.b")
    for make in (
        lambda: SGD(0.05, momentum=0.9, dampening=0.0, weight_decay=0.01),
        lambda: Adam(0.01, weight_decay=0.01),
    ):
        local, masked, x, labels = _twins(seed)
        opt_local, opt_masked = make(), make()
        for _ in range(3):
            local.train_step(x, labels, opt_local)
            masked.train_step(x, labels, opt_masked)
        for l, layer in enumerate(local.layers):
            W_masked = masked.W[l] if layer is None else _to_layout(layer, masked.W[l])
            assert_close(local.W[l], W_masked, 1e-12, f"{type(opt_local).__name__} W{l}")
            assert_close(local.b[l], masked.b[l], 1e-12, f"{type(opt_local).__name__} b{l}")
        for layer in masked.layers[:-1]:  # a weight outside the fields stays exactly zero
            assert not np.any(layer.W[layer.mask == 0])


# ----------------------------------------------------------------------------- the model
def test_config_records_the_layer_types_and_needs_them_back():
    _, model, x, _ = _case(4)  # 2 hidden layers: masked, dense
    cfg = model.config()
    assert cfg["layers"] == ["Masked", "Dense"] and cfg["hidden"] == model.hidden
    with pytest.raises(ValueError, match="hidden layers are"):
        MLP.from_config(cfg)
    rng = np.random.default_rng(9)
    first, second = model.layers[:2]
    layers = [
        Masked(first.n_in, first.n_out, first.mask, rng, np.float64),
        Dense(second.n_in, second.n_out, rng, np.float64),
    ]
    again = MLP.from_config(cfg, layers=layers)
    again.load_state(model.state())
    np.testing.assert_array_equal(again.forward(x)[0], model.forward(x)[0])
    plain = MLP(5, [4], 3, rng)  # dense arrays: the configuration old checkpoints hold
    assert "layers" not in plain.config() and plain.layers == [None, None]
    with pytest.raises(ValueError, match="hidden layers are plain dense"):
        MLP.from_config(plain.config(), layers=[Dense(5, 4, rng)])


def test_layers_of_the_wrong_size_or_dtype_are_refused():
    rng = np.random.default_rng(0)
    fields = masks.same_size_fields((3, 3, 1), 2, 3)  # 9 -> 18
    with pytest.raises(ValueError, match=r"must map \(n_in, n_out\)"):
        MLP(9, [18, 5], 3, rng, layers=[Local(fields, rng), Dense(18, 4, rng)])
    with pytest.raises(TypeError, match="float32"):
        MLP(9, [18], 3, rng, layers=[Local(fields, rng, np.float64)])
    model = MLP(9, [18], 3, rng, layers=[Local(fields, rng)])
    assert model.W[0] is model.layers[0].W and model.W[0].shape == (fields.n_pairs, 2)
