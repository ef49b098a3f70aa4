"""Sec. 7, learning fast: Eq. 3 for one example against autograd, orientation invariance
(and where it fails), and the one-shot update of Eq. 4 for a layer, a network, masked
layers and an FFNet (float64, random shapes, several seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, assert_close

from ff_numpy import fast
from ff_numpy.layers import Dense
from ff_numpy.model import FFNet
from ff_numpy.norm import SCALES, normalize

SEEDS = [0, 1, 2]
EXACT = 1e-9  # relative error of the goodness after a one-shot step
NORMS = [s for s in SCALES if s in fast.EXACT_NORMS]


# ----------------------------------------------------------------------------- helpers
def _layer(rng, n_in, n_out, mask=None):
    """A float64 Dense with random biases; with ``mask``, zero weights outside it."""
    layer = Dense(n_in, n_out, rng, dtype=np.float64)
    layer.b[:] = 0.3 * rng.standard_normal(n_out)
    if mask is not None:
        layer.W *= mask
    return layer


def _mask(rng, n_in, n_out, p=0.5):
    """Random 0/1 receptive fields, each unit seeing at least one input."""
    mask = (rng.random((n_in, n_out)) < p).astype(np.float64)
    mask[rng.integers(0, n_in, size=n_out), np.arange(n_out)] = 1.0
    return mask


def _case(seed, masked=False):
    """A layer and an input of random length with at least 2 units on and 1 off."""
    rng = np.random.default_rng(seed)
    while True:
        n_in, n_out = int(rng.integers(3, 12)), int(rng.integers(4, 12))
        mask = _mask(rng, n_in, n_out) if masked else None
        layer = _layer(rng, n_in, n_out, mask)
        x = rng.standard_normal(n_in) * rng.uniform(0.3, 3.0)
        a = x @ layer.W + layer.b
        if (a > 0).sum() >= 2 and (a <= 0).sum() >= 1:
            return rng, layer, x, mask


def _rel(a, b):
    return abs(a - b) / abs(b)


def _theta_near(rng, layer, x, goodness="ssq"):
    """A threshold within 1 of the goodness, so that |d log p / dG| is not saturated."""
    y = np.maximum(x @ layer.W + layer.b, 0)
    G = y @ y if goodness == "ssq" else y.sum()
    return float(G + rng.uniform(-1, 1))


# ----------------------------------------------------------------------------- Eq. 3
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("goodness", ["ssq", "sum"])
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_eq3_is_gradient_ascent_on_log_p(seed, positive, objective, goodness, masked):
    """Eq. 3 (bias = weight on a constant 1) is exactly -eps dL/d(W, b) for one example."""
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    rng, layer, x, mask = _case(seed, masked)
    theta = float(rng.uniform(0.5, 5))
    eps = float(rng.uniform(0.01, 0.5))
    s = 1.0 if positive == (objective == "max") else -1.0
    m = np.ones_like(layer.W) if mask is None else mask

    def loss(W, b):
        y = anp.maximum(anp.dot(x, W * m) + b, 0.0)
        G = anp.sum(y * y) if goodness == "ssq" else anp.sum(y)
        return anp.logaddexp(0.0, -s * (G - theta))  # -log p(correct)

    dW, db = fast.eq3_update(
        layer, x, theta, positive, eps, objective=objective, goodness=goodness, mask=mask
    )
    assert_close(dW, -eps * autograd.grad(loss, 0)(layer.W, layer.b), AUTOGRAD_TOL, "dW")
    assert_close(db, -eps * autograd.grad(loss, 1)(layer.W, layer.b), AUTOGRAD_TOL, "db")


def test_eq3_is_the_papers_formula():
    """Column j of dW is 2 eps (d log p / dG) y_j x; db_j is 2 eps (d log p / dG) y_j."""
    rng, layer, x, _ = _case(7)
    y = np.maximum(x @ layer.W + layer.b, 0)
    g = fast.dlogp_dG(y @ y, 2.0, True, "max")
    assert g > 0  # positive data under "max": the goodness should rise
    dW, db = fast.eq3_update(layer, x, 2.0, True, 0.1)
    for j in range(layer.n_out):
        np.testing.assert_allclose(dW[:, j], 2 * 0.1 * g * y[j] * x, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(db, 2 * 0.1 * g * y, rtol=1e-14, atol=1e-15)
    assert fast.dlogp_dG(y @ y, 2.0, False, "max") < 0
    assert fast.dlogp_dG(y @ y, 2.0, True, "min") < 0


# ----------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_eq3_leaves_the_normalised_output_unchanged(seed, positive, objective, norm):
    """Squared goodness, dense layer: every active unit scales by 1 + 2 eps g |x_aug|^2."""
    rng, layer, x, _ = _case(seed)
    theta = _theta_near(rng, layer, x)
    eps = float(rng.uniform(0.2, 0.6)) / (x @ x + 1)  # keeps the factor > 0 when g < 0
    effect = fast.eq3_orientation(layer, x, theta, positive, eps, objective=objective, norm=norm)

    on = effect.a_before > 0
    y0 = np.maximum(effect.a_before, 0)
    g = fast.dlogp_dG(y0 @ y0, theta, positive, objective)
    k = 1 + 2 * eps * g * (x @ x + 1)
    assert 0 < k and abs(k - 1) > 0.01  # a real change of scale, not a no-op
    np.testing.assert_allclose(effect.a_after[on], k * effect.a_before[on], rtol=1e-12)
    np.testing.assert_array_equal(effect.a_after[~on], effect.a_before[~on])  # off: untouched
    np.testing.assert_allclose(effect.a_after - effect.a_before, effect.da, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(effect.y_hat_after, effect.y_hat_before, rtol=1e-12, atol=1e-14)


def test_eq3_orientation_refuses_a_step_that_turns_units_off():
    rng, layer, x, _ = _case(3)
    y = np.maximum(x @ layer.W + layer.b, 0)
    g = fast.dlogp_dG(y @ y, 0.1, False, "max")  # negative data above theta: g < 0
    eps = 2.0 / (2 * abs(g) * (x @ x + 1))  # factor 1 + 2 eps g |x_aug|^2 = -1
    with pytest.raises(ValueError, match="turns them off"):
        fast.eq3_orientation(layer, x, 0.1, False, eps)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_unsquared_goodness_adds_a_constant_and_changes_the_orientation(seed, norm):
    """G = sum_j y_j: every active unit gets + eps g |x_aug|^2, so y_hat moves."""
    rng, layer, x, _ = _case(seed)
    eps, theta = 0.2 / (x @ x + 1), _theta_near(rng, layer, x, "sum")
    effect = fast.eq3_orientation(layer, x, theta, True, eps, goodness="sum", norm=norm)

    on = effect.a_before > 0
    y0 = np.maximum(effect.a_before, 0)
    g = fast.dlogp_dG(y0.sum(), theta, True, "max")
    shift = eps * g * (x @ x + 1)
    np.testing.assert_allclose(effect.a_after[on], effect.a_before[on] + shift, rtol=1e-12)
    np.testing.assert_array_equal(effect.a_after[~on], effect.a_before[~on])
    predicted = normalize((y0 + shift * on)[None, :], norm)[0]
    np.testing.assert_allclose(effect.y_hat_after, predicted, rtol=1e-12, atol=1e-14)
    change = np.linalg.norm(effect.y_hat_after - effect.y_hat_before)
    predicted_change = np.linalg.norm(predicted - effect.y_hat_before)
    assert change > 1e-3 * np.linalg.norm(effect.y_hat_before)  # it really moves
    assert _rel(change, predicted_change) < 1e-9


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_masked_layer_scales_each_unit_differently(seed, norm):
    """Unit j scales by 1 + 2 eps g |x_aug restricted to its field|^2: y_hat moves."""
    rng, layer, x, mask = _case(seed, masked=True)
    eps, theta = 0.2 / (x @ x + 1), _theta_near(rng, layer, x)
    effect = fast.eq3_orientation(layer, x, theta, True, eps, norm=norm, mask=mask)

    on = effect.a_before > 0
    y0 = np.maximum(effect.a_before, 0)
    g = fast.dlogp_dG(y0 @ y0, theta, True, "max")
    k = 1 + 2 * eps * g * ((x * x) @ mask + 1)  # one factor per unit
    np.testing.assert_allclose(effect.a_after[on], k[on] * effect.a_before[on], rtol=1e-12)
    np.testing.assert_array_equal(effect.a_after[~on], effect.a_before[~on])
    predicted = normalize((k * y0)[None, :], norm)[0]
    np.testing.assert_allclose(effect.y_hat_after, predicted, rtol=1e-12, atol=1e-14)
    assert np.ptp(k[on]) > 1e-3  # the active units' fields differ...
    change = np.linalg.norm(effect.y_hat_after - effect.y_hat_before)
    assert change > 1e-4 * np.linalg.norm(effect.y_hat_before)  # ...so the orientation moves


# ----------------------------------------------------------------------------- Eq. 4, one layer
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize("seed", SEEDS)
def test_one_shot_layer_hits_the_target(seed, direction, bias):
    rng, layer, u, _ = _case(seed)
    u = u * 10.0 ** rng.uniform(-1, 1)  # any input length
    on = (u @ layer.W + layer.b) > 0
    S_L = float(np.sum(np.maximum(u @ layer.W + layer.b, 0) ** 2))
    S_star = S_L * (rng.uniform(1.5, 50) if direction == "up" else rng.uniform(0.02, 0.7))

    update = fast.one_shot_layer_update(layer, u, S_star, bias=bias)
    assert update.S_L == pytest.approx(S_L, rel=1e-14)
    assert update.c == pytest.approx(
        (np.sqrt(S_star / S_L) - 1) / (u @ u + bias), rel=1e-14
    )  # c = (sqrt(S*/S_L) - 1) / |u_aug|^2
    fast.apply_updates([layer], [update])
    y = layer.forward(u[None, :])[0][0]
    assert _rel(y @ y, S_star) < EXACT
    np.testing.assert_array_equal(y > 0, on)  # on stays on, off stays off
    if not bias:
        assert not update.db.any()


@pytest.mark.parametrize("seed", SEEDS)
def test_eq4_is_the_unit_length_frozen_bias_case(seed):
    """|u| = 1 and frozen biases: the multiplier of y_j u is eps = sqrt(S*/S_L) - 1."""
    rng, layer, u, _ = _case(seed)
    u = normalize(u[None, :], "l2")[0]
    b = layer.b.copy()
    S_L = float(np.sum(np.maximum(u @ layer.W + layer.b, 0) ** 2))
    S_star = float(rng.uniform(0.1, 10))
    update = fast.one_shot_layer_update(layer, u, S_star, bias=False)
    eps = np.sqrt(S_star / S_L) - 1  # Eq. 4
    assert update.c == pytest.approx(eps, rel=1e-14)
    np.testing.assert_allclose(update.dW, eps * np.outer(u, update.y), rtol=1e-14)
    fast.apply_updates([layer], [update])
    np.testing.assert_array_equal(layer.b, b)
    y = layer.forward(u[None, :])[0][0]
    assert _rel(y @ y, S_star) < EXACT


def test_one_shot_is_eq3_with_a_chosen_rate():
    """The one-shot step is the Eq. 3 step whose rate makes 2 eps g equal to c."""
    _, layer, u, _ = _case(4)
    S_star, theta = 3.0, 1.0
    update = fast.one_shot_layer_update(layer, u, S_star)
    y = update.y
    up = update.c > 0  # positive data under "max" (g > 0) raises the goodness
    g = fast.dlogp_dG(y @ y, theta, up, "max")
    dW, db = fast.eq3_update(layer, u, theta, up, update.c / (2 * g))
    np.testing.assert_allclose(dW, update.dW, rtol=1e-12)
    np.testing.assert_allclose(db, update.db, rtol=1e-12)


# ----------------------------------------------------------------------------- network
def _net(seed, depth, masked=False):
    """A random float64 net whose every layer has a unit on and a unit off for ``x``."""
    rng = np.random.default_rng(1000 + seed)
    while True:
        sizes = [int(n) for n in rng.integers(3, 10, size=depth + 1)]
        masks = [_mask(rng, a, b) if masked else None for a, b in zip(sizes[:-1], sizes[1:])]
        layers = [_layer(rng, a, b, m) for a, b, m in zip(sizes[:-1], sizes[1:], masks)]
        x = rng.standard_normal(sizes[0]) * 10.0 ** rng.uniform(-1, 1)
        per_norm = [_forward(layers, x, norm) for norm in NORMS]
        if all(y.any() and not y.all() for ys in per_norm for y in ys):
            return rng, layers, x, masks


def _forward(layers, x, norm):
    """Every layer's activities for one input ``x``, normalised between layers."""
    ys, h = [], x
    for layer in layers:
        ys.append(layer.forward(h[None, :])[0][0])
        h = normalize(ys[-1][None, :], norm)[0]
    return ys


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("targets", ["shared", "per_layer_up", "per_layer_down", "mixed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_one_shot_network_hits_every_target_at_once(seed, targets, norm):
    depth = 2 + seed  # 2, 3, 4 layers
    rng, layers, x, _ = _net(seed, depth)
    before = _forward(layers, x, norm)
    S_L = np.array([y @ y for y in before])
    if targets == "shared":
        S_star = float(rng.uniform(0.5, 20))
    else:
        lo, hi = {"per_layer_up": (1.5, 30), "per_layer_down": (0.02, 0.7)}.get(targets, (0.05, 20))
        S_star = S_L * rng.uniform(lo, hi, size=depth)

    updates = fast.one_shot_network_step(layers, x, S_star, norm)
    np.testing.assert_allclose([u.S_L for u in updates], S_L, rtol=1e-14)
    after = _forward(layers, x, norm)
    for l, (y0, y1, target) in enumerate(zip(before, after, np.broadcast_to(S_star, S_L.shape))):
        assert _rel(y1 @ y1, target) < EXACT, f"layer {l}: {y1 @ y1} vs target {target}"
        np.testing.assert_array_equal(y1 > 0, y0 > 0, err_msg=f"layer {l}: units switched")
        np.testing.assert_allclose(  # what each layer sees is unchanged
            normalize(y1[None, :], norm)[0], normalize(y0[None, :], norm)[0], rtol=1e-12
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_per_unit_coefficient_restores_exactness(seed):
    """With c_j = (sqrt(S*/S_L) - 1) / |u_aug on unit j's field|^2 every target is hit;
    the dense c, masked, misses."""
    depth = 2 + seed % 2
    rng, layers, x, masks = _net(seed, depth, masked=True)
    before = _forward(layers, x, "rms")
    S_star = np.array([y @ y for y in before]) * rng.uniform(0.1, 10, size=depth)

    # The dense coefficient with the masked gradient: each unit scales differently.
    update = fast.one_shot_layer_update(layers[0], x, S_star[0])
    W = layers[0].W + update.dW * masks[0]
    y = np.maximum(x @ W + layers[0].b + update.db, 0)
    assert _rel(y @ y, S_star[0]) > 1e-4

    fast.one_shot_network_step(layers, x, S_star, "rms", masks=masks)
    after = _forward(layers, x, "rms")
    for l in range(depth):
        assert _rel(after[l] @ after[l], S_star[l]) < EXACT, f"layer {l}"
        np.testing.assert_array_equal(after[l] > 0, before[l] > 0)
        assert not layers[l].W[masks[l] == 0].any()  # still a masked layer


def test_masked_coefficient_matches_formula():
    rng = np.random.default_rng(0)
    u, mask = rng.standard_normal(6), _mask(rng, 6, 4)
    c = fast.one_shot_coefficient(u, 2.0, 5.0, mask=mask)
    for j in range(4):
        field = u[mask[:, j] == 1]
        assert c[j] == pytest.approx((np.sqrt(5.0 / 2.0) - 1) / (field @ field + 1), rel=1e-14)


@pytest.mark.parametrize("norm", NORMS)
def test_one_shot_ffnet(norm):
    rng = np.random.default_rng(0)
    model = FFNet(20, (8, 7, 6), rng, dtype=np.float64, norm=norm)
    for layer in model.layers:
        layer.b[:] = 0.2 * rng.standard_normal(layer.n_out)
    x = rng.random(20)
    S_star = [3.0, 0.5, 12.0]
    before = model.activities(x[None, :], np.array([4]))
    fast.one_shot_model_step(model, x, S_star, label=4)
    after = model.activities(x[None, :], np.array([4]))
    for l in range(3):
        assert _rel(float(after[l][0] @ after[l][0]), S_star[l]) < EXACT
        np.testing.assert_array_equal(after[l] > 0, before[l] > 0)


def test_one_shot_ffnet_refuses_unsquared_goodness():
    model = FFNet(20, (8, 7), np.random.default_rng(0), dtype=np.float64, goodness="sum")
    with pytest.raises(ValueError, match="squared goodness 'ssq', got 'sum'"):
        fast.one_shot_model_step(model, np.random.default_rng(1).random(20), 1.0, label=2)


# ----------------------------------------------------------------------------- conditions
def test_one_shot_refusals():
    _, layers, x, _ = _net(0, 2)
    with pytest.raises(ValueError, match="squared goodness 'ssq'"):
        fast.one_shot_network_step(layers, x, 1.0, goodness="sum")
    with pytest.raises(ValueError, match="exact length normalisation"):
        fast.one_shot_network_step(layers, x, 1.0, "rms_eps")
    with pytest.raises(ValueError, match="S_star .* must be > 0"):
        fast.one_shot_network_step(layers, x, [1.0, 0.0])
    with pytest.raises(ValueError, match="one target per layer"):
        fast.one_shot_network_step(layers, x, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="masks needs one entry per layer"):
        fast.one_shot_network_step(layers, x, 1.0, masks=[None])
    with pytest.raises(ValueError, match="1-D array of length"):
        fast.one_shot_network_step(layers, x[:-1], 1.0)
    with pytest.raises(ValueError, match="S_L .* must be > 0"):
        fast.one_shot_coefficient(x, 0.0, 1.0)


def test_one_shot_refuses_a_dead_layer():
    _, layers, x, _ = _net(1, 2)
    layers[1].b[:] = -1e3  # layer 1 has every unit off
    W0 = layers[0].W.copy()
    with pytest.raises(ValueError, match="layer 1: every unit of the layer is off"):
        fast.one_shot_network_step(layers, x, 1.0)
    np.testing.assert_array_equal(layers[0].W, W0)  # nothing applied


def test_mask_checks():
    rng = np.random.default_rng(0)
    layer = _layer(rng, 4, 3)
    x = rng.standard_normal(4)
    with pytest.raises(ValueError, match="shape of W"):
        fast.eq3_update(layer, x, 1.0, True, 0.1, mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="zero outside its mask"):
        fast.eq3_update(layer, x, 1.0, True, 0.1, mask=np.eye(4, 3))
    with pytest.raises(ValueError, match="unknown goodness"):
        fast.eq3_update(layer, x, 1.0, True, 0.1, goodness="cube")
    with pytest.raises(ValueError, match="all zero"):
        fast.one_shot_coefficient(np.zeros(4), 1.0, 2.0, bias=False)
