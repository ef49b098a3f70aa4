"""Locally connected layers (footnote 8): receptive-field masks and the ``Masked`` layer.

The local path (gather the field, multiply per location) must give the masked-dense
reference's numbers (float64, rel. error < 1e-12), its gradient must match autograd on
``relu((x) (W * mask) + b)`` (rel. error < 1e-7) and central finite differences, and the
weights outside the mask must stay exactly zero under the optimisers.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, FD_TOL, assert_close, numerical_grad, sample_indices

from ff_numpy import goodness as gd
from ff_numpy import masks
from ff_numpy.layers import Dense, Masked, layer_from_config
from ff_numpy.optim import SGD, Adam

SEEDS = [0, 1, 2, 3]
GRID_SEEDS = range(8)
BATCHES = [1, 2, 7]
EXACT_TOL = 1e-12  # local path vs masked-dense reference, float64


# ----------------------------------------------------------------------------- helpers
def _random_image_params(rng):
    """Random ``(image_shape, grid, stride, field, channels)`` whose fields fit."""
    H, W, C = int(rng.integers(4, 10)), int(rng.integers(4, 10)), int(rng.integers(1, 3))
    gh, gw = int(rng.integers(2, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    fh = int(rng.integers(1, H - (gh - 1) * sh + 1))
    fw = int(rng.integers(1, W - (gw - 1) * sw + 1))
    return (H, W, C), (gh, gw), (sh, sw), (fh, fw), int(rng.integers(1, 5))


def _random_image_fields(rng) -> masks.LocalFields:
    """A random small grid over a random small image (1 or 2 input channels)."""
    shape, grid, stride, field, channels = _random_image_params(rng)
    if shape[2] == 1:
        shape = shape[:2]
    return masks.image_fields(shape, grid, stride, field, channels)


def _random_layers(rng) -> list[masks.LocalFields]:
    """Two stacked random local layers: over an image, then over its grid."""
    l1 = _random_image_fields(rng)
    k = (int(rng.integers(1, l1.grid[0] + 1)), int(rng.integers(1, l1.grid[1] + 1)))
    grid = (l1.grid[0] - k[0] + 1, l1.grid[1] - k[1] + 1)
    l2 = masks.grid_fields(l1.grid, l1.channels, grid, k, int(rng.integers(1, 5)))
    return [l1, l2]


def _brute_image_mask(shape, grid, stride, field, channels):
    """The mask of ``image_fields`` written as loops over pixels, for comparison."""
    H, W, C = shape
    n_out = grid[0] * grid[1] * channels
    m = np.zeros((H * W * C, n_out))
    for gr in range(grid[0]):
        for gq in range(grid[1]):
            loc = gr * grid[1] + gq
            for r in range(gr * stride[0], gr * stride[0] + field[0]):
                for q in range(gq * stride[1], gq * stride[1] + field[1]):
                    for c in range(C):
                        m[(r * W + q) * C + c, loc * channels : (loc + 1) * channels] = 1
    return m


def _case(seed, fields_kind="grid"):
    """A float64 Masked layer with random biases, inputs, signs and row weights."""
    rng = np.random.default_rng(seed)
    if fields_kind == "grid":
        fields = _random_layers(rng)[seed % 2]
        mask = fields.mask(np.float64)
    else:  # an arbitrary mask: every unit its own random field
        n_in, n_out = int(rng.integers(3, 12)), int(rng.integers(2, 10))
        mask = (rng.random((n_in, n_out)) < 0.5).astype(float)
        mask[rng.integers(0, n_in, size=n_out), np.arange(n_out)] = 1
    layer = Masked(mask.shape[0], mask.shape[1], mask, rng, dtype=np.float64)
    layer.b[:] = rng.standard_normal(layer.n_out) * 0.3
    B = BATCHES[seed % len(BATCHES)]
    x = rng.standard_normal((B, layer.n_in))
    return rng, layer, x


# ----------------------------------------------------------------------------- masks
def test_paper_architecture_sizes():
    l1, l2, l3 = masks.paper_local_architecture()
    assert 3 * 6 + 10 == 28  # layer 1's fields exactly cover the image
    assert (l1.n_in, l1.n_out, l1.field_size, l1.grid) == (784, 2048, 100, (4, 4))
    assert (l2.n_in, l2.n_out, l2.field_size, l2.grid) == (2048, 1980, 4 * 128, (3, 3))
    assert (l3.n_in, l3.n_out, l3.field_size, l3.grid) == (1980, 2048, 4 * 220, (2, 2))
    for f in (l1, l2, l3):
        m = f.mask()
        assert m.shape == (f.n_in, f.n_out)
        assert m.sum() == f.field_size * f.n_out
        np.testing.assert_array_equal(m.sum(axis=0), f.field_size)
    # Every pixel and every unit below is seen by some unit above.
    assert l1.mask().sum(axis=1).min() >= 1
    assert l2.mask().sum(axis=1).min() >= 1 and l3.mask().sum(axis=1).min() >= 1


def test_paper_fields_by_hand():
    l1, l2, l3 = masks.paper_local_architecture()
    # Layer 1, location (1, 2) = 6: rows 6..15, columns 12..21 of the 28x28 image.
    rows, cols = np.meshgrid(np.arange(6, 16), np.arange(12, 22), indexing="ij")
    np.testing.assert_array_equal(l1.fields[6], np.sort((rows * 28 + cols).ravel()))
    # Layer 2, location (1, 1) = 4 sees all 128 channels of layer-1 locations 5, 6, 9, 10.
    expect = np.concatenate([np.arange(loc * 128, (loc + 1) * 128) for loc in (5, 6, 9, 10)])
    np.testing.assert_array_equal(l2.fields[4], expect)
    # Layer 3, location (0, 1) = 1 sees layer-2 locations 1, 2, 4, 5 (220 channels each).
    expect = np.concatenate([np.arange(loc * 220, (loc + 1) * 220) for loc in (1, 2, 4, 5)])
    np.testing.assert_array_equal(l3.fields[1], expect)
    # Units are location-major: unit = loc * channels + c.
    uf = l2.unit_fields()
    np.testing.assert_array_equal(uf[4 * 220 + 17], l2.fields[4])


@pytest.mark.parametrize("seed", SEEDS)
def test_image_mask_matches_loops(seed):
    rng = np.random.default_rng(seed)
    params = _random_image_params(rng)
    f = masks.image_fields(*params)
    m = f.mask(np.float64)
    np.testing.assert_array_equal(m, _brute_image_mask(*params))
    uf = f.unit_fields()  # (n_out, f), consistent with the mask
    for j in range(f.n_out):
        np.testing.assert_array_equal(np.flatnonzero(m[:, j]), uf[j])


def test_grid_mask_is_image_mask_of_the_grid():
    # Over a grid below, k x k squares with stride 1 are image fields with the
    # locations as pixels and their channels as colour channels.
    a = masks.grid_mask((4, 5), 3, (3, 3), 2, 7)
    np.testing.assert_array_equal(a, masks.image_grid_mask((4, 5, 3), (3, 3), 1, 2, 7))


def test_mask_errors():
    with pytest.raises(ValueError, match="span 29 but the input is only 28"):
        masks.image_fields((28, 28), 4, 6, 11, 8)
    with pytest.raises(ValueError, match="grid rows"):
        masks.grid_fields(3, 4, 3, 2, 5)
    with pytest.raises(ValueError, match="image_shape"):
        masks.image_fields((28,), 1, 1, 1, 1)
    with pytest.raises(ValueError, match="positive int"):
        masks.image_fields((8, 8), 0, 1, 1, 1)


# ----------------------------------------------------------------------------- the layer
def test_masked_init_is_zero_outside_and_scaled_by_fan_in():
    l1 = masks.paper_local_architecture()[0]
    layer = Masked.from_fields(l1, np.random.default_rng(0))
    assert layer.W.dtype == np.float32 and layer.mask.dtype == np.float32
    assert not layer.W[layer.mask == 0].any()
    assert np.all(layer.W[layer.mask == 1] != 0)
    var = (layer.W.astype(float) ** 2).sum(axis=0) / l1.field_size  # (n_out,)
    assert abs(var.mean() * l1.field_size - 1) < 0.02
    # The units group into the 16 locations of 128 channels, with the right fields.
    assert len(layer.groups) == 16
    for loc, (field, start, stop) in enumerate(layer.groups):
        assert (start, stop) == (loc * 128, (loc + 1) * 128)
        np.testing.assert_array_equal(field, l1.fields[loc])


def test_masked_rejects_bad_masks():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="mask must have shape"):
        Masked(3, 4, np.ones((4, 3)), rng)
    with pytest.raises(ValueError, match="only 0 and 1"):
        Masked(2, 2, np.full((2, 2), 0.5), rng)
    with pytest.raises(ValueError, match="unit 1 has none"):
        Masked(2, 2, np.array([[1, 0], [1, 0]]), rng)


def test_locations_and_config_of_the_layers():
    """``location_starts``: a location every ``channels`` units (from the fields), runs
    of equal fields (from a raw mask), none for ``Dense``; ``config`` rebuilds the mask,
    groups and options (no weights), and ``channels`` must be a positive int."""
    rng = np.random.default_rng(0)
    l1 = masks.paper_local_architecture()[0]
    layer = Masked.from_fields(l1, rng, fast=False)
    np.testing.assert_array_equal(layer.location_starts(), np.arange(0, 2048, 128))
    raw = Masked(3, 4, np.array([[1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]]), rng)
    np.testing.assert_array_equal(raw.location_starts(), [0, 2, 3])
    assert Dense(3, 4, rng).location_starts() is None
    for lay in (layer, raw, Dense(3, 4, rng)):
        cfg = lay.config()
        assert "W" not in cfg and "b" not in cfg
        again = layer_from_config(cfg, rng, np.float64)
        assert type(again) is type(lay) and again.config() == cfg
        assert again.W.shape == lay.W.shape and again.W.dtype == np.float64
        np.testing.assert_array_equal(getattr(again, "mask", 0), getattr(lay, "mask", 0))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        Masked(3, 4, np.ones((3, 4)), rng, channels=0)
    with pytest.raises(ValueError, match="unknown layer type None"):
        layer_from_config({"n_in": 3}, rng)


@pytest.mark.parametrize("fields_kind", ["grid", "arbitrary"])
@pytest.mark.parametrize("seed", GRID_SEEDS)
def test_local_path_equals_masked_dense(seed, fields_kind):
    rng, layer, x = _case(seed, fields_kind)
    y_fast, _ = layer.forward(x)
    y_ref, _ = layer.forward_reference(x)
    assert_close(y_fast, y_ref, EXACT_TOL, "forward: local vs masked-dense")
    dL_da = rng.standard_normal(y_ref.shape) * (y_ref > 0)
    g_fast = layer.weight_grad(x, dL_da)
    g_ref = layer.weight_grad_reference(x, dL_da)
    assert_close(g_fast, g_ref, EXACT_TOL, "dL/dW: local vs masked-dense")
    assert not g_fast[layer.mask == 0].any() and not g_ref[layer.mask == 0].any()
    layer.fast = False
    np.testing.assert_array_equal(layer.forward(x)[0], y_ref)


def test_local_path_float32_and_out_buffer():
    l1, l2, _ = masks.paper_local_architecture()
    rng = np.random.default_rng(1)
    layer = Masked.from_fields(l2, rng)
    x = rng.standard_normal((5, l2.n_in)).astype(np.float32)
    out = np.empty((5, l2.n_out), np.float32)
    y, _ = layer.forward(x, out=out)
    assert y is out and y.dtype == np.float32
    np.testing.assert_allclose(y, layer.forward_reference(x)[0], rtol=1e-4, atol=1e-5)


def _ref_masked_loss(W, b, mask, x, theta, s, w, kind):
    anp = pytest.importorskip("autograd.numpy")
    a = anp.dot(x, W * mask) + b
    y = anp.maximum(a, 0.0)
    G = anp.sum(y * y, axis=1) if kind == "ssq" else anp.sum(y, axis=1)
    return anp.sum(w * anp.logaddexp(0.0, -s * (G - theta)))


@pytest.mark.parametrize("kind", ["ssq", "sum"])
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", SEEDS)
def test_masked_local_grads_match_autograd_and_fd(seed, objective, kind):
    autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
    rng, layer, x = _case(seed)
    B = x.shape[0]
    theta = 0.5 * layer.n_out
    s = gd.sign(rng.random(B) < 0.5, objective)
    w = rng.uniform(0.5, 1.5, size=B)
    y, cache = layer.forward(x)
    good = gd.make_goodness(kind)
    grads = layer.local_grads(cache, good.dL_dy(y, w * gd.dL_dG(good.G(y), theta, s)))
    dW, db = grads["W"], grads["b"]

    args = (layer.W, layer.b, layer.mask, x, theta, s, w, kind)
    what = f"({objective}, {kind})"
    assert np.any(dW) and np.any(db), "no active unit: the check would be vacuous"
    assert_close(dW, autograd.grad(_ref_masked_loss, 0)(*args), AUTOGRAD_TOL, f"dW {what}")
    assert_close(db, autograd.grad(_ref_masked_loss, 1)(*args), AUTOGRAD_TOL, f"db {what}")

    def loss():  # through the local path, which never reads W outside the mask
        G = gd.goodness(layer.forward(x)[0], kind)
        return float(np.sum(w * gd.layer_loss(G, theta, s)))

    inside = [tuple(i) for i in np.argwhere(layer.mask == 1)]
    idx = [inside[k] for k in rng.choice(len(inside), min(20, len(inside)), replace=False)]
    idx += sample_indices(layer.W.shape, 10, rng)  # some outside the mask: derivative 0
    ours = dW[tuple(np.array(idx).T)]
    assert_close(ours, numerical_grad(loss, layer.W, idx), FD_TOL, f"dW vs FD {what}")
    assert_close(db, numerical_grad(loss, layer.b), FD_TOL, f"db vs FD {what}")


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: SGD(0.1, momentum=0.9, dampening=0.9, weight_decay=1e-3),
        lambda: Adam(0.01, weight_decay=1e-3),
    ],
    ids=["sgd", "adam"],
)
def test_update_keeps_zeros_and_equals_reference(make_opt):
    rng, layer, x = _case(5)
    ref = Masked(layer.n_in, layer.n_out, layer.mask, rng, np.float64, fast=False)
    ref.load_state(layer.state())
    opt_fast, opt_ref = make_opt(), make_opt()
    W0 = layer.W.copy()
    good = gd.SumOfSquares()
    for _ in range(4):
        for lay, opt in ((layer, opt_fast), (ref, opt_ref)):
            y, cache = lay.forward(x)
            dL_dy = good.dL_dy(y, gd.dL_dG(good.G(y), 1.0, np.ones(x.shape[0])))
            opt.update(lay.params(), lay.local_grads(cache, dL_dy), 0.5, prefix="layer0.")
    outside = layer.mask == 0
    assert not layer.W[outside].any(), "a weight outside the mask moved"
    assert not np.array_equal(layer.W, W0)
    assert_close(layer.W, ref.W, EXACT_TOL, "W after updates: local vs masked-dense")
    assert_close(layer.b, ref.b, EXACT_TOL, "b after updates: local vs masked-dense")
    assert set(opt_fast.slots) == set(opt_ref.slots)


def test_state_round_trip_and_load_checks_the_mask():
    rng, layer, _ = _case(2)
    state = {k: v.copy() for k, v in layer.state().items()}
    other = Masked(layer.n_in, layer.n_out, layer.mask, np.random.default_rng(9), np.float64)
    other.load_state(state)
    np.testing.assert_array_equal(other.W, layer.W)
    bad = state["W"].copy()
    bad[np.argwhere(layer.mask == 0)[0][0], np.argwhere(layer.mask == 0)[0][1]] = 1.0
    with pytest.raises(ValueError, match="outside the layer's mask"):
        other.load_state({"W": bad, "b": state["b"]})
    with pytest.raises(ValueError, match="checkpoint has"):
        other.load_state({"W": bad[:, :1], "b": state["b"]})


def test_one_shot_update_serves_a_masked_layer():
    """:mod:`ff_numpy.fast`'s per-unit one-shot step reaches the target goodness."""
    fast = pytest.importorskip("ff_numpy.fast")
    rng, layer, x = _case(0)
    u = x[0]
    if not layer.forward(u[None])[0].any():
        layer.b[:] = np.abs(layer.b) + 0.1  # make sure some unit is on
    up = fast.one_shot_layer_update(layer, u, 3.0, mask=layer.mask)
    assert not up.dW[layer.mask == 0].any()
    layer.W += up.dW
    layer.b += up.db
    np.testing.assert_allclose(gd.goodness(layer.forward(u[None])[0]), [3.0], rtol=1e-10)


def test_goodness_per_location_is_checked_and_saved(tmp_path):
    from ff_numpy.model import FFNet

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="locally connected"):
        FFNet(784, [10, 10], rng, supervised=False, goodness_per="location")
    with pytest.raises(ValueError, match="'layer' or 'location'"):
        FFNet(784, [10, 10], rng, supervised=False, goodness_per="unit")
    net = FFNet(784, [2048, 1980, 2048], rng, supervised=False, local="paper",
                goodness_per="location")  # fmt: skip
    assert [len(s) for s in net.group_starts] == [16, 9, 4]  # 4x4, 3x3, 2x2 locations
    assert [float(t.sum()) for t in net.group_theta] == net.theta  # shares of theta
    again = FFNet.from_config(net.config())
    assert again.goodness_per == "location"
    assert all(np.array_equal(a, b) for a, b in zip(again.group_starts, net.group_starts))
    from ff_numpy import experiments

    local = experiments.default_args("local")
    assert local.goodness_per == "layer"  # chosen on val.
    assert (local.lr, local.hybrid_blur) == (0.006, 4)  # the setting of the 1.13% run
    dense = experiments.default_args("unsupervised")
    assert (dense.lr, dense.hybrid_blur) == (0.003, 8)
    assert again.norm_per == "layer" and all(s is None for s in again.norm_starts)
    assert "goodness_per" not in vars(experiments.default_args("unsupervised"))


def test_norm_per_location_reaches_the_next_layer_and_the_readout():
    """``norm_per="location"``: every location's channels of every layer are divided by
    their own root-mean-square in the forward pass, the training sweep and the readout's
    features; the option is checked, saved, and an option of ``train local``."""
    from ff_numpy import experiments
    from ff_numpy.model import FFNet
    from ff_numpy.norm import normalize, normalize_grouped
    from ff_numpy.optim import SGD

    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="norm_per='location' needs locally connected"):
        FFNet(784, [10, 10], rng, supervised=False, norm_per="location")
    with pytest.raises(ValueError, match="norm_per must be 'layer' or 'location'"):
        FFNet(784, [2048, 1980, 2048], rng, supervised=False, local="paper", norm_per="unit")
    net = FFNet(784, [2048, 1980, 2048], rng, supervised=False, local="paper",
                norm_per="location", score_layers=[0, 1, 2], dtype=np.float64)  # fmt: skip
    assert net.goodness_per == "layer" and net.group_starts == [None] * 3  # independent
    x = rng.random((5, 784))  # float64: batches of 5 and 10 rows round alike
    ys, hs = net.sweep(x)
    for y, h, starts in zip(ys, hs, net.norm_starts):
        assert len(starts) in (16, 9, 4)
        np.testing.assert_allclose(h, normalize_grouped(y, starts), rtol=1e-12)
        sq = np.add.reduceat(h**2, starts, axis=1)  # (5, n_groups)
        sizes = np.diff(np.append(starts, h.shape[1]))
        on = np.add.reduceat(y, starts, axis=1) > 0
        np.testing.assert_allclose(sq[on], np.broadcast_to(sizes, sq.shape)[on], rtol=1e-12)
    np.testing.assert_allclose(net.features(x), np.concatenate(hs, axis=1))
    # the training sweep hands the next layer (and the readout) the same vectors
    feats = {}
    X = normalize(np.concatenate([x, x]))  # positive = negative rows: any data will do
    before = [layer.W.copy() for layer in net.layers]
    net.ff_sweep(X, 5, rng, SGD(0.0), 1.0, features=feats)
    assert all(np.array_equal(a, layer.W) for a, layer in zip(before, net.layers))  # lr 0
    for l in range(3):
        np.testing.assert_allclose(feats[l], hs[l], rtol=1e-10, atol=1e-12)
    again = FFNet.from_config(net.config())
    assert again.norm_per == "location"
    assert all(np.array_equal(a, b) for a, b in zip(again.norm_starts, net.norm_starts))
    args = experiments.default_args("local")
    assert args.norm_per == "layer"
    assert experiments.get("local").model_options(args)["norm_per"] == "layer"
