"""The locally connected layer storing only existing weights (``Local``, Sec. 4, fn. 8).

``Local`` must give the numbers of the masked-dense reference ``layers.Masked`` built
from the same mask and weights (float64, rel. error < 1e-12) for the forward pass, the
weighted input, the weight gradient and three optimiser steps; its closed-form gradients
must match autograd (rel. error < 1e-10) and central finite differences; the truncated
same-size fields must have the paper's sizes (363 inputs, 108 at a corner, 933,156
weights) and top-down fields must be the transpose of bottom-up ones.

Each speed trick of ``Local`` (bands, small products in chunks of rows with strided copies
of ``dL_da``, the cached padded weights) is checked the same way, on and off, on same-size
fields and on random ragged ones (whose blocks' unions are not runs), and the cached
padded weights must follow every kind of write to ``W``.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from gradcheck import FD_TOL, assert_close, numerical_grad, sample_indices
from scipy.special import expit

from ff_numpy import masks
from ff_numpy.layers import Masked
from ff_numpy.locally_connected import SMALL_MNK, Local, _band_order, _Plan, input_grad

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


# ----------------------------------------------------------------------------- speed tricks
def _random_ragged_fields(rng) -> masks.RaggedFields:
    """Fields of random sizes and random inputs (sorted), so that the unions of a row of
    blocks are rarely runs in any order."""
    gh, gw = (int(v) for v in rng.integers(1, 6, size=2))
    n_in, C = int(rng.integers(1, 30)), int(rng.integers(1, 4))
    fields = [
        np.sort(rng.choice(n_in, int(rng.integers(1, n_in + 1)), replace=False))
        for _ in range(gh * gw)
    ]
    indptr = np.concatenate([[0], np.cumsum([f.size for f in fields])])
    return masks.RaggedFields(indptr, np.concatenate(fields), C, n_in, (gh, gw))


def _largest_block(layer: Local) -> int:
    return max(K * N for _, blocks in layer._plan.bands for *_, K, N in blocks)


TRICKS = [  # (bands, strided, max_mnk: "default" / None / rows per chunk, cache)
    (True, True, "default", True),
    (False, True, "default", True),
    (True, False, "default", True),
    (True, True, None, True),
    (True, True, 1, True),
    (True, True, 2, True),
    (True, True, 3, False),
    (False, False, None, False),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("trick", range(len(TRICKS)))
def test_tricks_on_and_off_equal_masked(seed, trick):
    """Every combination of tricks gives the reference's numbers: linear (written and
    accumulated), weight_grad and input_grad, with the batch cut into chunks of 1, 2 or
    3 rows (the last one shorter), on same-size and on random ragged fields."""
    rng = np.random.default_rng(100 + seed)
    ragged = seed % 2 == 1
    fields = _random_ragged_fields(rng) if ragged else _random_fields(rng)
    layer = Local(fields, rng, dtype=np.float64)
    bands, strided, mnk, cache = TRICKS[trick]
    block = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if mnk == "default":
        mnk = SMALL_MNK
    elif mnk is not None:  # chunks of `mnk` rows: m n k <= rows * largest
        layer.set_block(block)
        mnk = mnk * _largest_block(layer)
    layer.set_block(block, bands=bands, strided=strided, max_mnk=mnk)
    layer.keep_padded = cache
    ref = Masked(fields.n_in, fields.n_out, fields.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    B = int(rng.integers(4, 12))
    x = rng.standard_normal((B, fields.n_in))
    dL_da = rng.standard_normal((B, fields.n_out))
    what = f"seed {seed}, tricks {TRICKS[trick]}, block {block}, rows {layer._plan.rows}, "
    what += f"ragged {ragged}"
    assert_close(layer.linear(x), ref.linear(x), EXACT_TOL, f"linear, {what}")
    out0 = rng.standard_normal((B, fields.n_out))
    out, out_ref = out0.copy(), out0.copy()
    layer.linear(x, out=out, accumulate=True)
    ref.linear(x, out=out_ref, accumulate=True)
    assert_close(out, out_ref, EXACT_TOL, f"linear(accumulate), {what}")
    dW = layer.weight_grad(x, dL_da)
    assert_close(_dense(fields, dW), ref.weight_grad(x, dL_da), EXACT_TOL, f"dW, {what}")
    dx = input_grad(layer, dL_da)
    assert_close(dx, dL_da @ ref.W.T, EXACT_TOL, f"input_grad, {what}")


def test_bands_on_the_paper_shapes():
    """One band per row of blocks on the CIFAR-10 shapes, each block's union a run of
    it; the unions of random fields that are not runs get bands of their own."""
    f = masks.paper_cifar_fields()
    for block, n_bands, gathered, alone in (
        ((1, 2), 32, 30_912, 168_084),
        ((2, 2), 16, 16_704, 90_828),
        ((2, 3), 16, 16_704, 66_294),
    ):
        plan, plain = _Plan(f, block), _Plan(f, block, bands=False)
        assert len(plan.bands) == n_bands
        assert sum(idx.size for idx, _ in plan.bands) == gathered
        assert sum(idx.size for idx, _ in plain.bands) == alone
        for idx, _ in plan.bands:
            assert np.unique(idx).size == idx.size
    assert _Plan(f, (1, 2)).rows == SMALL_MNK // (11 * 12 * 3 * 6) == 420
    assert _Plan(f, (1, 2)).units is None  # rows of one block: computed in unit order
    unions = [np.array([0, 1]), np.array([1, 2]), np.array([0, 2]), np.array([4])]
    bands = _band_order(unions, 5)
    assert sorted(j for _, starts in bands for j, _ in starts) == [0, 1, 2, 3]
    assert len(bands) == 2  # {0, 1}, {1, 2} and {0, 2} cannot all be runs of one order
    for idx, starts in bands:
        for j, k0 in starts:
            np.testing.assert_array_equal(np.sort(idx[k0 : k0 + unions[j].size]), unions[j])


def test_paper_shapes_in_chunks_equal_masked():
    """The default blocks on the CIFAR-10 shapes with a batch of 550 rows (two chunks),
    float64."""
    rng = np.random.default_rng(17)
    layer = Local.same_size(32, 32, 3, 3, 11, rng, dtype=np.float64)
    assert layer.block == Local.BLOCK
    assert len(layer._plan.chunks(550)) == 2
    ref = Masked(3072, 3072, layer.fields.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    x, dL_da = rng.standard_normal((550, 3072)), rng.standard_normal((550, 3072))
    assert_close(layer.linear(x), ref.linear(x), EXACT_TOL, "linear, 550 rows")
    dW = _dense(layer.fields, layer.weight_grad(x, dL_da))
    assert_close(dW, ref.weight_grad(x, dL_da), EXACT_TOL, "weight_grad, 550 rows")
    assert_close(input_grad(layer, dL_da), dL_da @ ref.W.T, EXACT_TOL, "input_grad, 550 rows")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_padded_weights_follow_every_write(dtype):
    """The padded copy of W is rebuilt after any write to W: through params(), through a
    reference taken before, load_state, a new array bound to W, a change of one ulp."""
    rng = np.random.default_rng(5)
    layer = Local.same_size(6, 5, 2, 3, 3, rng, dtype=dtype)
    x = rng.standard_normal((7, layer.n_in)).astype(dtype)
    held = layer.W

    def check(what):
        fresh = Local(layer.fields, rng, dtype=dtype)
        fresh.set_block(layer.block)
        fresh.W[...] = layer.W
        np.testing.assert_array_equal(layer.linear(x), fresh.linear(x), err_msg=what)
        np.testing.assert_array_equal(
            layer._W_pad[layer._plan.pos], layer.W.reshape(-1), err_msg=what
        )

    check("first product")
    layer.params()["W"][...] *= 0.5
    check("params()['W'] *= 0.5")
    held[3, 1] += 1.0
    check("a reference taken before the products")
    layer.load_state({"W": rng.standard_normal(layer.W.shape), "b": layer.b})
    check("load_state")
    layer.W = rng.standard_normal(layer.W.shape).astype(dtype)
    check("a new array bound to W")
    layer.W[0, 0] = np.nextafter(layer.W[0, 0], np.inf)
    check("one weight moved by one ulp")
    layer.W[1, 2] = -0.0 if layer.W[1, 2] == 0 else 0.0
    layer.W[1, 2] = -layer.W[1, 2]  # 0.0 <-> -0.0: equal as numbers, not as bits
    check("the sign of a zero")
    layer.set_block((1, 2))
    check("new blocks")
    with pytest.raises(ValueError, match="Local.W must have shape"):
        layer.W = np.zeros((3, 3), dtype)
        layer.linear(x)


def test_copies_have_their_own_padded_weights():
    """A deep copy or an unpickled layer computes with its own weights (its padded
    copy is built anew, not a detached view), keeping the blocks and tricks."""
    rng = np.random.default_rng(9)
    layer = Local.same_size(5, 4, 2, 3, 3, rng, dtype=np.float64)
    layer.set_block((2, 1), bands=False, max_mnk=None)
    x = rng.standard_normal((6, layer.n_in))
    y = layer.linear(x)
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert (other.block, other._options) == (layer.block, layer._options)
        np.testing.assert_array_equal(other.linear(x), y)
        other.W *= 2.0
        assert_close(other.linear(x), 2.0 * y, EXACT_TOL, "a copy after its W changed")
        np.testing.assert_array_equal(layer.linear(x), y)


def test_inputs_of_any_layout_and_dtype():
    """x and dL_da in Fortran order, as strided views or float32 for a float64 layer, an
    out that is a strided view, and an empty batch."""
    rng = np.random.default_rng(8)
    layer = Local.same_size(5, 6, 3, 2, 3, rng, dtype=np.float64)
    ref = Masked(layer.n_in, layer.n_out, layer.fields.mask(np.float64), rng, dtype=np.float64)
    ref.W[...] = layer.to_dense()
    x = rng.standard_normal((9, layer.n_in))
    dL_da = rng.standard_normal((9, layer.n_out))
    wide = np.zeros((9, 2 * layer.n_out))
    for xs, ds in (
        (np.asfortranarray(x), np.asfortranarray(dL_da)),
        (np.repeat(x, 2, axis=1)[:, ::2], np.repeat(dL_da, 2, axis=0)[::2]),
    ):
        assert_close(layer.linear(xs), ref.linear(x), EXACT_TOL, "linear, strided x")
        out = wide[:, ::2]
        layer.linear(xs, out=out)
        assert_close(out, ref.linear(x), EXACT_TOL, "linear into a strided out")
        dW = _dense(layer.fields, layer.weight_grad(xs, ds))
        assert_close(dW, ref.weight_grad(x, dL_da), EXACT_TOL, "weight_grad, strided dL_da")
        assert_close(input_grad(layer, ds), dL_da @ ref.W.T, EXACT_TOL, "input_grad, strided")
    x32, d32 = x.astype(np.float32), dL_da.astype(np.float32)
    assert_close(layer.linear(x32), ref.linear(x32.astype(float)), EXACT_TOL, "float32 x")
    dW = _dense(layer.fields, layer.weight_grad(x32, d32))
    assert_close(dW, ref.weight_grad(x32.astype(float), d32.astype(float)), EXACT_TOL, "f32")
    assert layer.linear(x[:0]).shape == (0, layer.n_out)
    assert not layer.weight_grad(x[:0], dL_da[:0]).any()
    assert input_grad(layer, dL_da[:0]).shape == (0, layer.n_in)


# ----------------------------------------------------------------------------- in a net
def _stack_fields():
    """Three stacked fields over a 4 x 5 input (20 inputs, 10 of them the label): same-size
    3 x 3 fields (20 -> 60), fields wider than the map, so that all locations see the
    same inputs (60 -> 40), and fixed-width fields over a 2 x 2 grid (40 -> 16)."""
    f1 = masks.same_size_fields((4, 5, 1), 3, 3)
    f2 = masks.same_size_fields((4, 5, 3), 2, 9)
    f3 = masks.grid_fields((4, 5), 2, (2, 2), (2, 3), 4, stride=2)
    return [f1, f2, f3]


@pytest.mark.parametrize("seed", SEEDS)
def test_location_starts_are_the_locations_of_the_fields(seed):
    """A location is ``channels`` adjacent units seeing its field, in ``to_dense()`` and
    in the ``Masked`` layer of the same fields (even where neighbours see the same
    inputs)."""
    rng = np.random.default_rng(seed)
    fields = _random_fields(rng) if seed % 2 else _random_ragged_fields(rng)
    layer = Local(fields, rng, dtype=np.float64)
    starts = layer.location_starts()
    np.testing.assert_array_equal(starts, np.arange(fields.n_loc) * fields.channels)
    np.testing.assert_array_equal(Masked.from_fields(fields, rng).location_starts(), starts)
    sees = layer.to_dense() != 0  # (n_in, n_out); the random weights are never 0
    for loc, start in enumerate(starts):
        for unit in range(start, start + fields.channels):
            np.testing.assert_array_equal(np.flatnonzero(sees[:, unit]), fields.field(loc))


@pytest.mark.parametrize(
    "goodness_per, norm_per",
    [("location", "location"), ("location", "layer"), ("layer", "location")],
)
def test_net_of_local_layers_trains_as_the_masked_net(goodness_per, norm_per):
    """An ``FFNet`` of ``Local`` layers, goodness and normalisation per location, and the
    same net of ``Masked`` layers (same fields and weights): four steps of SGD with
    momentum give the same losses, weights and goodness (float64, rel. error < 1e-10)."""
    from ff_numpy.model import FFNet
    from ff_numpy.optim import SGD

    rng = np.random.default_rng(0)
    local = [Local(f, rng, dtype=np.float64) for f in _stack_fields()]
    masked = []
    for layer in local:
        layer.b[:] = np.abs(rng.standard_normal(layer.n_out)) * 0.3  # most units on
        ref = Masked.from_fields(layer.fields, rng, np.float64)
        ref.W[...], ref.b[...] = layer.to_dense(), layer.b
        masked.append(ref)
    options = {"goodness_per": goodness_per, "norm_per": norm_per, "peer_strength": 0.03}
    nets = [FFNet(layers=ls, dtype=np.float64, **options) for ls in (local, masked)]
    assert nets[0].local == nets[1].local == "custom"
    for a, b in zip(*(net.group_starts + net.norm_starts for net in nets)):
        np.testing.assert_array_equal(a, b)  # the same locations (or both None)
    data = np.random.default_rng(1)
    opts = [(SGD(0.05, momentum=0.9), SGD(0.1, momentum=0.9)) for _ in nets]
    for step in range(4):
        x, labels = data.random((6, 20)), data.integers(0, 10, size=6)
        out = [
            net.train_step(x, labels, np.random.default_rng(step), *opt)
            for net, opt in zip(nets, opts)
        ]
        for key in out[1]:
            assert_close(out[0][key], out[1][key], 1e-10, f"step {step}: loss {key}")
    for l, (a, b) in enumerate(zip(*(net.layers for net in nets))):
        assert_close(a.to_dense(), b.W, 1e-10, f"layer {l}: W after the steps")
        assert_close(a.b, b.b, 1e-10, f"layer {l}: b after the steps")
    assert_close(nets[0].readout.V, nets[1].readout.V, 1e-10, "readout V")
    x = data.random((5, 20))
    G = [net.goodness_per_label(x) for net in nets]
    assert_close(G[0], G[1], 1e-10, "goodness per label")
    assert np.ptp(G[0]) > 0  # the nets learned something that differs between labels


def test_config_stores_how_same_size_fields_were_built_and_rebuilds_them():
    """A CIFAR-10 connection's configuration is a few numbers, not its 311,052 indices;
    it rebuilds the same fields. Fields given index by index still store every index."""
    import json

    f = masks.paper_cifar_fields()
    layer = Local(f, np.random.default_rng(0))
    cfg = layer.config()
    assert len(json.dumps(cfg)) < 1000
    assert cfg["fields"] == {
        "same_size_fields": {"in_shape": [32, 32, 3], "channels": 3, "k": [11, 11]}
    }
    again = Local.from_config(json.loads(json.dumps(cfg)), np.random.default_rng(1))
    for name in ("indptr", "indices"):
        np.testing.assert_array_equal(getattr(again.fields, name), getattr(f, name))
    assert (again.fields.channels, again.fields.n_in, again.fields.grid) == (3, 3072, (32, 32))
    assert again.config() == cfg and again.block == layer.block

    rng = np.random.default_rng(5)
    by_hand = _random_ragged_fields(rng)
    cfg = Local(by_hand, rng, np.float64).config()
    assert cfg["fields"]["indices"] == by_hand.indices.tolist()
    rebuilt = Local.from_config(cfg, rng, np.float64).fields
    np.testing.assert_array_equal(rebuilt.indptr, by_hand.indptr)
    np.testing.assert_array_equal(rebuilt.indices, by_hand.indices)


@pytest.mark.parametrize(
    "recipe",
    [{"in_shape": [32, 32, 3], "channels": 3}, {"in_shape": [32], "channels": 3, "k": 11},
     {"in_shape": [4, 4, 1], "channels": 1, "k": 2}, "not a dict"],
)  # fmt: skip
def test_a_malformed_recipe_is_a_one_line_error(recipe):
    cfg = {"type": "Local", "fields": {"same_size_fields": recipe}, "block": [1, 1]}
    with pytest.raises(ValueError, match="malformed fields of a Local layer") as err:
        Local.from_config(cfg, np.random.default_rng(0))
    assert "\n" not in str(err.value)


def test_location_groups_tile_the_layer():
    """Both FF nets take a local layer's goodness groups from one helper."""
    from types import SimpleNamespace

    from ff_numpy.goodness import location_groups
    from ff_numpy.layers import Dense

    layer = Local(masks.paper_cifar_fields(), np.random.default_rng(3))
    starts, share = location_groups(layer)
    np.testing.assert_array_equal(starts, layer.location_starts())
    assert len(starts) == 32 * 32 and np.all(share == 3 / layer.n_out)  # 3 channels each
    assert location_groups(Dense(4, 3, np.random.default_rng(0))) == (None, None)
    gappy = SimpleNamespace(location_starts=lambda: [0, 2, 2], n_out=4)
    with pytest.raises(ValueError, match="the locations of hidden layer 1 do not tile"):
        location_groups(gappy, "hidden layer 1")
