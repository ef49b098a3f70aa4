"""Optimiser steps against their formulas, and the learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest

from ff_numpy.optim import SGD, Adam, hold_then_linear, linear_warmup, make_optimizer


@pytest.mark.parametrize("order", ["C", "F"])  # C: the in-place BLAS kernel; F: plain NumPy
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "momentum,dampening,wd", [(0.0, 0.0, 0.0), (0.9, 0.9, 1e-3), (0.5, 0.0, 0.1)]
)
def test_sgd_matches_formula(seed, momentum, dampening, wd, order):
    """Both ways SGD computes its step (BLAS axpy in place for C-contiguous float arrays,
    plain NumPy otherwise) equal the formula in float64 to 1e-12."""
    rng = np.random.default_rng(seed)
    W = np.asarray(rng.standard_normal((3, 4)), order=order)
    opt = SGD(0.1, momentum=momentum, dampening=dampening, weight_decay=wd)
    ref_W, v = W.copy(), np.zeros_like(W)
    for step in range(4):
        g = rng.standard_normal(W.shape)
        scale = 1.0 / (step + 1)
        # g' = g + wd W;  v = mu v + (1 - delta) g';  W = W - lr * scale * v
        gp = g + wd * ref_W
        v = momentum * v + (1 - dampening) * gp
        ref_W = ref_W - 0.1 * scale * v
        opt.step("W", W, g.copy(), lr_scale=scale)
        np.testing.assert_allclose(W, ref_W, rtol=1e-12, atol=1e-14)


def test_update_decays_matrices_not_biases_and_keys_slots_by_prefix():
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    W0, b0 = params["W"].copy(), params["b"].copy()
    opt = SGD(0.1, momentum=0.9, dampening=0.9, weight_decay=0.5)
    opt.update(params, {"W": np.zeros((3, 4)), "b": np.zeros(4)}, 1.0, prefix="layer0.")
    np.testing.assert_allclose(params["W"], W0 - 0.1 * 0.1 * 0.5 * W0, rtol=1e-12)
    np.testing.assert_array_equal(params["b"], b0)  # zero gradient, no decay: unchanged
    assert set(opt.slots) == {"layer0.W", "layer0.b"}


def test_scale_rows_equals_plain_numpy_but_for_subnormal_factors():
    from ff_numpy import blas

    rng = np.random.default_rng(3)
    y = rng.standard_normal((5, 7))
    f = rng.standard_normal(5)
    np.testing.assert_allclose(blas.scale_rows(y, f), y * f[:, None], rtol=1e-15, atol=0)
    F = rng.standard_normal((5, 7))
    np.testing.assert_allclose(blas.scale_rows(y, F), y * F, rtol=1e-15, atol=0)
    y32 = y.astype(np.float32)
    f[1] = 1e-41  # subnormal in float32: that row's factor is set to zero
    out = blas.scale_rows(y32, f)
    assert out.dtype == np.float32 and not out[1].any()
    np.testing.assert_allclose(out[[0, 2, 3, 4]], (y32 * f[:, None])[[0, 2, 3, 4]], rtol=1e-6)


def test_sgd_no_decay_on_biases():
    b = np.ones(3)
    SGD(0.1, weight_decay=0.5).step("b", b, np.zeros(3), decay=False)
    np.testing.assert_array_equal(b, 1.0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_matches_formula(seed, wd):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(5)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    opt = Adam(lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    ref, m, s = W.copy(), np.zeros(5), np.zeros(5)
    for t in range(1, 6):
        g = rng.standard_normal(5)
        gp = g + wd * ref
        m = b1 * m + (1 - b1) * gp
        s = b2 * s + (1 - b2) * gp**2
        ref = ref - lr * (m / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps)
        opt.step("W", W, g.copy())
        np.testing.assert_allclose(W, ref, rtol=1e-12)


def test_optimizer_state_roundtrip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(6)]
    for make in (lambda: SGD(0.1, 0.9, 0.9, 1e-3), lambda: Adam(0.01)):
        a, W_a = make(), np.ones(4)
        for g in grads:
            a.step("W", W_a, g.copy())
        b, W_b = make(), np.ones(4)
        for g in grads[:3]:
            b.step("W", W_b, g.copy())
        c = make()
        c.load_state({k: v.copy() for k, v in b.state().items()})
        for g in grads[3:]:
            c.step("W", W_b, g.copy())
        np.testing.assert_array_equal(W_a, W_b)


def test_schedule_holds_then_decays_linearly():
    E = 60
    f = np.array([hold_then_linear(e, E) for e in range(E)])
    assert np.all(f[: E // 2] == 1.0)
    assert np.isclose(f[-1], 1 / E)
    second = f[E // 2 :]
    assert np.allclose(np.diff(second), -2 / E)  # linear
    with pytest.raises(ValueError):
        hold_then_linear(E, E)


def test_warmup_ramps_linearly_then_holds():
    f = [linear_warmup(step, 4) for step in range(7)]
    assert f == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert [linear_warmup(step, 0) for step in range(3)] == [1.0, 1.0, 1.0]  # no warm-up
    with pytest.raises(ValueError, match="n_steps"):
        linear_warmup(0, -1)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError):
        SGD(-1.0)
    with pytest.raises(ValueError):
        SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError):
        Adam(0.1, betas=(1.0, 0.9))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e308, -0.1])
@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: SGD(v), "lr"),
        (lambda v: SGD(0.1, weight_decay=v), "weight_decay"),
        (lambda v: SGD(0.1, momentum=v), "momentum"),
        (lambda v: Adam(v), "lr"),
        (lambda v: Adam(0.1, weight_decay=v), "weight_decay"),
        (lambda v: Adam(0.1, eps=v), "eps"),
    ],
)
def test_optimisers_refuse_non_finite_or_negative_arguments_by_name(make, name, bad):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [lambda: SGD(0.1, 0.9, 0.9, 1e-2), lambda: SGD(0.1), lambda: Adam(0.01, weight_decay=0.1)],
)
def test_step_outer_equals_step_on_the_product(make, dtype):
    """The fused update (gradient a^T d inside the GEMM) is the plain update of a^T d."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 5)).astype(dtype)
    W_ref = W.copy()
    fused, plain = make(), make()
    for step in range(4):
        a = rng.standard_normal((3, 6)).astype(dtype)
        d = rng.standard_normal((3, 5)).astype(dtype)
        fused.step_outer("W", W, a, d, lr_scale=0.5 + step)
        plain.step("W", W_ref, (a.T @ d).astype(dtype), lr_scale=0.5 + step)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(W, W_ref, rtol=tol, atol=tol)


def test_blas_helpers_match_numpy():
    from ff_numpy import blas

    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        a, b = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
        out = np.empty((4, 5), dtype)
        assert blas.matmul(a, b, out=out) is out
        np.testing.assert_allclose(out, a @ b, rtol=1e-5)
        c = rng.standard_normal((3, 5)).astype(dtype)
        d = rng.standard_normal((4, 5)).astype(dtype)
        ref = 0.5 * a.T @ d + 0.9 * c
        np.testing.assert_allclose(blas.matmul_tn(a, d, c, 0.5, 0.9), ref, rtol=1e-5)
        y = c.copy()
        np.testing.assert_allclose(blas.axpy(d[:3], y, 2.0), c + 2 * d[:3], rtol=1e-6)
    with pytest.raises(ValueError):
        blas.matmul_tn(a, d, np.empty((3, 5), np.float32))
