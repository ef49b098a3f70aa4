"""The locally connected layer storing only existing weights (``Local``, Sec. 4, fn. 8).

``Local`` must give the numbers of the masked-dense reference ``layers.Masked`` built
from the same mask and weights (float64, rel. error < 1e-12) for the forward pass, the
weighted input, the weight gradient and three optimiser steps; its closed-form gradients
must match autograd (rel. error < 1e-10) and central finite differences; the truncated
same-size fields must have the paper's sizes (363 inputs, 108 at a corner, 933,156
weights) and top-down fields must be the transpose of bottom-up ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import FD_TOL, assert_close, numerical_grad, sample_indices
from scipy.special import expit

from ff_numpy import masks
from ff_numpy.layers import Masked
from ff_numpy.locally_connected import Local, input_grad

SEEDS = range(8)
EXACT_TOL = 1e-12  # Local vs the masked-dense reference, float64
AUTOGRAD_TOL = 1e-10  # closed form vs autograd, float64


# ----------------------------------------------------------------------------- helpers
def _random_fields(rng) -> masks.RaggedFields:
    """Random same-size fields: a map of 1-8 x 1-8 locations, 1-3 channels each side,
    an odd field width from 1 up to wider than the map."""
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    C_in, C_out = (int(v) for v in rng.integers(1, 4, size=2))
    k = (int(rng.integers(0, max(H, W) + 2)) * 2 + 1, int(rng.integers(0, max(H, W) + 2)) * 2 + 1)
    return masks.same_size_fields((H, W, C_in), C_out, k)


def _case(seed):
    """A float64 ``Local`` layer (random block shape, random biases), the ``Masked``
    layer with the same mask and weights, and an input batch."""
    rng = np.random.default_rng(seed)
    fields = _random_fields(rng)
    layer = Local(fields, rng, dtype=np.float64)
    layer.set_block((int(rng.integers(1, 4)), int(rng.integers(1, 4))))
    layer.b[:] = rng.standard_normal(layer.n_out) * 0.3
    ref = Masked(fields.n_in, fields.n_out, fields.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    ref.b[...] = layer.b
    x = rng.standard_normal((int(rng.integers(1, 8)), fields.n_in))
    return rng, layer, ref, x


def _dense(fields: masks.RaggedFields, A: np.ndarray) -> np.ndarray:
    """An array in ``Local.W``'s layout (n_pairs, C_out) as the (n_in, n_out) matrix,
    pair by pair (independent of ``Local.to_dense``)."""
    C = fields.channels
    out = np.zeros((fields.n_in, fields.n_out))
    for loc in range(fields.n_loc):
        for p in range(fields.indptr[loc], fields.indptr[loc + 1]):
            out[fields.indices[p], loc * C : (loc + 1) * C] = A[p]
    return out


def _brute_mask(H, W, C_in, C_out, k):
    """The mask of ``same_size_fields`` as loops over locations and inputs."""
    kh, kw = k
    m = np.zeros((H * W * C_in, H * W * C_out))
    for r in range(H):
        for q in range(W):
            for rr in range(H):
                for qq in range(W):
                    if abs(rr - r) <= kh // 2 and abs(qq - q) <= kw // 2:
                        i = (rr * W + qq) * C_in
                        j = (r * W + q) * C_out
                        m[i : i + C_in, j : j + C_out] = 1
    return m


def _goodness_loss(y, s, theta):
    """``L = sum_n softplus(-s_n (sum_j y_nj^2 - theta))`` and ``dL/dy``."""
    G = (y**2).sum(axis=1)  # (B,)
    L = np.logaddexp(0.0, -s * (G - theta)).sum()
    dL_dG = -s * expit(-s * (G - theta))  # (B,)
    return L, 2.0 * y * dL_dG[:, None]  # dG/dy = 2 y


def _signs_and_theta(y):
    """Rows alternately positive and negative; theta at the median goodness."""
    s = np.where(np.arange(y.shape[0]) % 2 == 0, 1.0, -1.0)
    return s, float(np.median((y**2).sum(axis=1))) + 0.1


# ----------------------------------------------------------------------------- fields
def test_paper_cifar_field_facts():
    f = masks.paper_cifar_fields()
    sizes = f.field_sizes().reshape(32, 32)
    assert (f.n_in, f.n_out, f.grid, f.n_loc) == (3072, 3072, (32, 32), 1024)
    assert sizes.max() == 11 * 11 * 3 == 363
    assert sizes[0, 0] == sizes[0, -1] == sizes[-1, 0] == sizes[-1, -1] == 6 * 6 * 3 == 108
    assert sizes.min() == 108
    assert sizes[0, 16] == 6 * 11 * 3 and sizes[3, 16] == 9 * 11 * 3
    assert np.all(sizes[5:27, 5:27] == 363) and np.all(sizes[[4, 27], 5:27] == 330)
    assert f.n_weights == 933_156 and f.n_in * f.n_out == 9_437_184
    m = f.mask(np.uint8)
    assert int(m.sum(dtype=np.int64)) == 933_156
    np.testing.assert_array_equal(m.sum(axis=0, dtype=np.int64), np.repeat(f.field_sizes(), 3))
    # unit (r, q, c) = (5, 7, 2) sees rows 0..10, columns 2..12, all channels
    r, q, c = np.meshgrid(np.arange(0, 11), np.arange(2, 13), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(
        np.flatnonzero(m[:, (5 * 32 + 7) * 3 + 2]), ((r * 32 + q) * 3 + c).ravel()
    )
    layer = Local.same_size(32, 32, 3, 3, 11, np.random.default_rng(0))
    assert layer.W.size == 933_156 and layer.W.ndim == 2 and layer.b.ndim == 1
    assert layer.n_params == 933_156 + 3072
    assert (layer.n_in, layer.n_out) == (3072, 3072)


@pytest.mark.parametrize("seed", SEEDS)
def test_same_size_fields_match_loops(seed):
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(1, 7, size=2))
    C_in, C_out = (int(v) for v in rng.integers(1, 4, size=2))
    k = (int(rng.integers(0, H + 2)) * 2 + 1, int(rng.integers(0, W + 2)) * 2 + 1)
    f = masks.same_size_fields((H, W, C_in), C_out, k)
    np.testing.assert_array_equal(f.mask(np.float64), _brute_mask(H, W, C_in, C_out, k))
    if k[0] >= 2 * H - 1 and k[1] >= 2 * W - 1:  # wider than the map: every input
        assert np.all(f.field_sizes() == f.n_in)


@pytest.mark.parametrize("seed", SEEDS)
def test_top_down_fields_are_bottom_up_transposed(seed):
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    C_low, C_up = (int(v) for v in rng.integers(1, 4, size=2))
    k = int(rng.integers(0, max(H, W) + 1)) * 2 + 1
    up = masks.same_size_fields((H, W, C_low), C_up, k)  # lower map -> upper map
    down = masks.same_size_fields((H, W, C_up), C_low, k)  # upper map -> lower map
    np.testing.assert_array_equal(down.mask(), up.mask().T)
    assert down.n_weights == up.n_weights


def test_ragged_fields_from_fixed_fields_and_errors():
    fixed = masks.paper_local_architecture()[0]
    ragged = masks.RaggedFields.from_fields(fixed)
    np.testing.assert_array_equal(ragged.mask(), fixed.mask())
    assert ragged.n_weights == fixed.field_size * fixed.n_out
    rng = np.random.default_rng(0)
    small = masks.image_fields((9, 8, 2), (2, 3), (3, 2), (4, 3), 3)
    layer = Local(small, rng, dtype=np.float64)  # LocalFields are accepted as they are
    ref = Masked(small.n_in, small.n_out, small.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    x = rng.standard_normal((4, small.n_in))
    assert_close(layer.forward(x)[0], ref.forward(x)[0], EXACT_TOL, "Local over LocalFields")
    with pytest.raises(ValueError, match="k must be odd"):
        masks.same_size_fields((4, 4, 3), 3, 4)
    with pytest.raises(ValueError, match="in_shape"):
        masks.same_size_fields((4,), 3, 3)
    with pytest.raises(ValueError, match="indptr has 3 entries"):
        masks.RaggedFields(np.array([0, 1, 2]), np.array([0, 1]), 1, 4, (1, 3))
    with pytest.raises(ValueError, match="at least one input"):
        masks.RaggedFields(np.array([0, 0, 2]), np.array([0, 1]), 1, 4, (1, 2))
    with pytest.raises(ValueError, match="increasing order"):
        masks.RaggedFields(np.array([0, 2, 3]), np.array([1, 0, 0]), 1, 4, (1, 2))
    with pytest.raises(ValueError, match="must lie in 0..3"):
        masks.RaggedFields(np.array([0, 1, 2]), np.array([0, 4]), 1, 4, (1, 2))


# ----------------------------------------------------------------------------- the layer
def test_init_storage_and_state():
    f = masks.paper_cifar_fields()
    layer = Local(f, np.random.default_rng(3))
    assert layer.W.dtype == np.float32 and layer.W.shape == (f.n_pairs, 3)
    assert not layer.b.any()
    fan_in = np.repeat(f.field_sizes(), f.field_sizes())[:, None]  # (n_pairs, 1)
    z = layer.W.astype(float) * np.sqrt(fan_in)  # N(0, 1) if W ~ N(0, 1 / fan_in)
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    corner = layer.W[: f.indptr[1]].astype(float)  # 108 x 3 weights of location 0
    assert abs(corner.std() * np.sqrt(108) - 1) < 0.2
    np.testing.assert_array_equal(Local(f, np.random.default_rng(3)).W, layer.W)  # same seed
    params = layer.params()
    assert params["W"] is layer.W and params["b"] is layer.b
    assert not hasattr(layer, "input_grad") and not hasattr(layer, "backward")

    other = Local(f, np.random.default_rng(4))
    other.load_state({k: v.copy() for k, v in layer.state().items()})
    np.testing.assert_array_equal(other.W, layer.W)
    with pytest.raises(ValueError, match=r"Local.W: checkpoint has shape \(5, 3\)"):
        other.load_state({"W": np.zeros((5, 3)), "b": layer.b})
    with pytest.raises(ValueError, match="Local.b"):
        other.load_state({"W": layer.W, "b": np.zeros(7)})
    with pytest.raises(ValueError, match="no 'b'"):
        other.load_state({"W": layer.W})
    np.testing.assert_array_equal(other.W, layer.W)  # a failed load changes nothing
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3072\)"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        Local(f, np.random.default_rng(0), dtype=np.int32)


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_and_linear_equal_masked(seed):
    rng, layer, ref, x = _case(seed)
    np.testing.assert_array_equal(layer.to_dense(), _dense(layer.fields, layer.W))
    y, (cx, cy) = layer.forward(x)
    y_ref, _ = ref.forward(x)
    assert cx is x and cy is y and y.shape == (x.shape[0], layer.n_out)
    assert_close(y, y_ref, EXACT_TOL, f"forward, block {layer.block}: Local vs Masked")
    xW = layer.linear(x)
    assert_close(xW, ref.linear(x), EXACT_TOL, "linear: Local vs Masked")
    out0 = rng.standard_normal(xW.shape)
    out, out_ref = out0.copy(), out0.copy()
    assert layer.linear(x, out=out, accumulate=True) is out
    ref.linear(x, out=out_ref, accumulate=True)
    assert_close(out, out_ref, EXACT_TOL, "linear(accumulate): Local vs Masked")
    with pytest.raises(ValueError, match="needs the array to add to"):
        layer.linear(x, accumulate=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_equal_masked(seed):
    rng, layer, ref, x = _case(seed)
    y, cache = layer.forward(x)
    _, cache_ref = ref.forward(x)
    dL_da = rng.standard_normal(y.shape)
    dW = layer.weight_grad(x, dL_da)
    assert dW.shape == layer.W.shape
    assert_close(_dense(layer.fields, dW), ref.weight_grad(x, dL_da), EXACT_TOL, "weight_grad")
    dL_dy, extra = rng.standard_normal(y.shape), rng.standard_normal(y.shape)
    for dL_da_extra in (None, extra):
        g = layer.local_grads(cache, dL_dy, dL_da_extra)
        g_ref = ref.local_grads(cache_ref, dL_dy, dL_da_extra)
        assert set(g) == {"W", "b"} and g["W"].shape == layer.W.shape
        assert_close(_dense(layer.fields, g["W"]), g_ref["W"], EXACT_TOL, "local_grads W")
        assert_close(g["b"], g_ref["b"], EXACT_TOL, "local_grads b")


@pytest.mark.parametrize("seed", SEEDS)
def test_blocks_give_the_same_numbers(seed):
    rng, layer, _, x = _case(seed)
    dL_da = rng.standard_normal((x.shape[0], layer.n_out))
    results = []
    for block in [(1, 1), (1, 4), (2, 3), (3, 2), (9, 9)]:
        layer.set_block(block)
        results.append((layer.linear(x), layer.weight_grad(x, dL_da), input_grad(layer, dL_da)))
    for r in results[1:]:
        for ours, first, what in zip(r, results[0], ("linear", "weight_grad", "input_grad")):
            assert_close(ours, first, EXACT_TOL, f"{what}: block {layer.block} vs (1, 1)")


def test_paper_shapes_equal_masked():
    rng = np.random.default_rng(7)
    layer = Local.same_size(32, 32, 3, 3, 11, rng, dtype=np.float64)
    layer.b[:] = rng.standard_normal(layer.n_out) * 0.1
    ref = Masked(3072, 3072, layer.fields.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    ref.b[...] = layer.b
    x = rng.standard_normal((3, 3072))
    y, cache = layer.forward(x)
    y_ref, cache_ref = ref.forward(x)
    assert_close(y, y_ref, EXACT_TOL, "forward on the paper's shapes")
    dL_dy = rng.standard_normal(y.shape)
    g, g_ref = layer.local_grads(cache, dL_dy), ref.local_grads(cache_ref, dL_dy)
    dW = Local(layer.fields, rng, dtype=np.float64)
    dW.W[...] = g["W"]  # the gradient in W's layout, as a matrix through to_dense
    assert_close(dW.to_dense(), g_ref["W"], EXACT_TOL, "dW on the paper's shapes")


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_steps_equal_masked(seed):
    """Three steps of SGD with momentum and weight decay, written out, on both layers:
    ``v = mu v + (1 - d)(g + lam W)``, ``W -= lr v`` (biases without decay)."""
    rng, layer, ref, _ = _case(seed)
    mu, d, lam, lr = 0.9, 0.1, 1e-3, 0.05
    v = {k: np.zeros_like(p) for k, p in layer.params().items()}
    v_ref = {k: np.zeros_like(p) for k, p in ref.params().items()}
    for _ in range(3):
        x = rng.standard_normal((5, layer.n_in))
        for lay, vel in ((layer, v), (ref, v_ref)):
            y, cache = lay.forward(x)
            s, theta = np.array([1.0, -1.0, 1.0, -1.0, 1.0]), 1.0
            _, dL_dy = _goodness_loss(y, s, theta)
            grads = lay.local_grads(cache, dL_dy)
            for k, p in lay.params().items():
                decay = lam * p if p.ndim >= 2 else 0.0
                vel[k] *= mu
                vel[k] += (1 - d) * (grads[k] + decay)
                p -= lr * vel[k]
        assert_close(layer.to_dense(), ref.W, EXACT_TOL, "W after a step: Local vs Masked")
        assert_close(layer.b, ref.b, EXACT_TOL, "b after a step: Local vs Masked")
        assert not ref.W[ref.mask == 0].any()


# ----------------------------------------------------------------------------- gradient checks
def _autograd_loss(anp, fields, x, s, theta, E=None):
    """The loss as a function of (W, b) and of x, built per location with autograd."""

    def a_of(W, b, x):
        parts = []
        for loc in range(fields.n_loc):
            lo, hi = fields.indptr[loc], fields.indptr[loc + 1]
            parts.append(anp.dot(x[:, fields.indices[lo:hi]], W[lo:hi]))  # (B, f) @ (f, C)
        return anp.concatenate(parts, axis=1) + b  # (B, n_out), unit = loc * C + c

    def loss(W, b, x):
        a = a_of(W, b, x)
        y = anp.maximum(a, 0.0)
        G = anp.sum(y**2, axis=1)
        L = anp.sum(anp.logaddexp(0.0, -s * (G - theta)))
        return L if E is None else L + anp.sum(E * a)  # E: a term after the ReLU

    return loss


@pytest.mark.parametrize("seed", SEEDS)
def test_local_grads_and_input_grad_match_autograd(seed):
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    anp = pytest.importorskip("autograd.numpy")
    rng, layer, _, x = _case(seed)
    y, cache = layer.forward(x)
    s, theta = _signs_and_theta(y)
    E = rng.standard_normal(y.shape) if seed % 2 else None
    loss = _autograd_loss(anp, layer.fields, x, s, theta, E)
    _, dL_dy = _goodness_loss(y, s, theta)
    g = layer.local_grads(cache, dL_dy, E)
    what = f"seed {seed}, block {layer.block}, grid {layer.fields.grid}"
    args = (layer.W, layer.b, x)
    assert_close(g["W"], autograd.grad(loss, 0)(*args), AUTOGRAD_TOL, f"dW vs autograd, {what}")
    assert_close(g["b"], autograd.grad(loss, 1)(*args), AUTOGRAD_TOL, f"db vs autograd, {what}")
    dL_da = dL_dy * (y > 0) + (0.0 if E is None else E)
    dx = input_grad(layer, dL_da)
    assert_close(dx, autograd.grad(loss, 2)(*args), AUTOGRAD_TOL, f"dx vs autograd, {what}")


@pytest.mark.parametrize("seed", SEEDS)
def test_local_grads_and_input_grad_match_finite_differences(seed):
    rng, layer, _, x = _case(seed)
    y, cache = layer.forward(x)
    s, theta = _signs_and_theta(y)

    def f():
        return _goodness_loss(layer.forward(x)[0], s, theta)[0]

    _, dL_dy = _goodness_loss(y, s, theta)
    g = layer.local_grads(cache, dL_dy)
    for name, arr in (("W", layer.W), ("b", layer.b), ("x", x)):
        idx = sample_indices(arr.shape, 25, rng)
        num = numerical_grad(f, arr, idx)
        if name == "x":
            full = input_grad(layer, dL_dy * (y > 0))
        else:
            full = g[name]
        ours = np.array([full[i] for i in idx])
        assert_close(ours, num, FD_TOL, f"d{name} vs finite differences, seed {seed}")


def test_float32_layer_close_to_float64():
    rng = np.random.default_rng(11)
    layer = Local.same_size(9, 7, 2, 3, 5, rng, dtype=np.float32)
    ref = Local(layer.fields, rng, dtype=np.float64)
    ref.W[...] = layer.W
    x = rng.standard_normal((4, layer.n_in))
    y32, _ = layer.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref.forward(x)[0], rtol=1e-5, atol=1e-5)
    dL_da = rng.standard_normal(y32.shape)
    g32 = layer.weight_grad(x.astype(np.float32), dL_da.astype(np.float32))
    np.testing.assert_allclose(g32, ref.weight_grad(x, dL_da), rtol=1e-4, atol=1e-5)
