"""The BLAS helpers of the training loop against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from ff_numpy import blas


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
