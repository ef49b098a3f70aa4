"""The BLAS helpers of the training loop against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from ff_numpy import blas
from ff_numpy.optim import SGD, Adam


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ger_is_an_in_place_rank1_update(dtype, rtol, seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(1, 40, size=2)
    u, v = rng.standard_normal(m).astype(dtype), rng.standard_normal(n).astype(dtype)
    W = rng.standard_normal((m, n)).astype(dtype)
    alpha = float(rng.standard_normal())
    want = W.astype(np.float64) + alpha * np.outer(u, v)
    out = blas.ger(u, v, W, alpha)
    assert out is W  # in place, no copy
    np.testing.assert_allclose(W, want, rtol=rtol, atol=rtol, err_msg="ours vs reference")


def test_ger_takes_rows_and_refuses_what_it_cannot_update_in_place():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((3, 4))
    W = np.zeros((4, 5))
    v = rng.standard_normal(5)
    blas.ger(U[1], v, W, 2.0)  # a row of a C-ordered matrix
    np.testing.assert_allclose(W, 2.0 * np.outer(U[1], v), rtol=1e-13)
    with pytest.raises(ValueError, match="C-contiguous"):
        blas.ger(U[1], v, np.zeros((5, 4)).T, 1.0)
    with pytest.raises(ValueError, match="one dtype"):
        blas.ger(U[1].astype(np.float32), v, W, 1.0)
    with pytest.raises(ValueError, match=r"W \(m, n\)"):
        blas.ger(v, U[1], W, 1.0)


def _subnormal(a: np.ndarray) -> np.ndarray:
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_factor_zeroes_exactly_the_factors_that_would_make_subnormal_rows(dtype):
    tiny = np.finfo(dtype).tiny
    f = np.array([-0.3, 1e-3, tiny * 2.0**25, -tiny * 2.0**23, tiny / 4, 0.0], dtype=np.float64)
    kept = np.array([True, True, True, False, False, True])
    before = f.copy()
    out = blas.row_factor(f, dtype)
    assert out.dtype == dtype and out.shape == f.shape
    np.testing.assert_array_equal(f, before, err_msg="the caller's factors were changed")
    np.testing.assert_array_equal(out[kept], f[kept].astype(dtype))
    assert np.all(out[~kept] == 0.0)
    # every kept factor times a value of at least 2**-24 is a normal number
    y = np.array([2.0**-24, 1.0, 5.0], dtype=dtype)
    assert not _subnormal(np.outer(out, y)).any()


def test_row_factor_rounds_to_the_target_dtype_before_the_test():
    # a float64 factor that is normal in float64 but subnormal once cast to float32
    f = np.array([1e-40, -1e-39, 1e-20])
    out = blas.row_factor(f, np.float32)
    np.testing.assert_array_equal(out, np.array([0.0, 0.0, 1e-20], dtype=np.float32))


# ---------------------------------------------------------------- OuterSum: the fused update
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_outer_sum_forms_the_product_x_transpose_d(dtype):
    rng = np.random.default_rng(3)
    a, d = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((7, 4)).astype(dtype)
    g = blas.OuterSum(a, d)
    assert g.shape == (5, 4) and g.dtype == dtype and "not yet formed" in repr(g)
    want = a.astype(np.float64).T @ d.astype(np.float64)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.asarray(g), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(g.formed(), want, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match=r"a \(B, m\) and d \(B, n\)"):
        blas.OuterSum(a, d[:6])


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(0.1, 0.9, 0.9, 1e-2),
        lambda: SGD(0.1, weight_decay=1e-3),
        lambda: Adam(0.01, weight_decay=0.1),
    ],
    ids=["sgd-momentum", "sgd-plain", "adam"],
)
def test_update_from_an_outer_sum_equals_the_update_from_the_formed_gradient(make):
    """opt.update with the product not yet formed (SGD: formed inside its velocity's
    GEMM) is the plain update of the formed gradient, float64 to 1e-12, biases too."""
    rng = np.random.default_rng(4)
    W, b = rng.standard_normal((6, 5)), rng.standard_normal(5)
    W_ref, b_ref = W.copy(), b.copy()
    fused, plain = make(), make()
    for step in range(5):
        x, d = rng.standard_normal((3, 6)), rng.standard_normal((3, 5))
        fused.update({"W": W, "b": b}, {"W": blas.OuterSum(x, d), "b": d.sum(0)}, 0.5 + step)
        plain.update({"W": W_ref, "b": b_ref}, {"W": x.T @ d, "b": d.sum(0)}, 0.5 + step)
    np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-12)
    for key, state in plain.state().items():
        np.testing.assert_allclose(fused.state()[key], state, rtol=1e-12, atol=1e-12)
