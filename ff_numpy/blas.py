r"""The one BLAS of the training loop: matrix products, in place where BLAS allows.

NumPy and SciPy wheels each bundle their own OpenBLAS with its own thread pool; calling
both in the hot loop makes the two pools' spinning threads fight over the cores (measured
on a 2-core machine: the GEMMs of an FF step ran 2.2x slower). Every product of the
training step therefore goes through this module, which uses SciPy's BLAS only.

SciPy's wrappers expect Fortran-ordered arrays. A C-ordered array ``a`` is the
Fortran-ordered array ``a.T``, so for C-ordered ``a``, ``b`` and ``c``,
``c = a @ b`` is computed as ``c.T = b.T @ a.T`` with no copies, and the result is
written straight into ``c``.

BLAS ``gemm`` computes :math:`C \leftarrow \alpha\, op(A)\, op(B) + \beta\, C`: with
:math:`\beta` the momentum, the velocity update of SGD rides in the weight-gradient
product itself (:meth:`ff_numpy.optim.SGD.step_outer`). A layer hands its weight
gradient over as an :class:`OuterSum`, the product not yet formed, so that the optimiser
can do this; anything else forms it with ``np.asarray``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas


def _c(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _funcs(dtype, *names):
    return _blas.get_blas_funcs(names, dtype=dtype)


def matmul(
    a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, beta: float = 0.0
) -> np.ndarray:
    """``a @ b`` for 2-D arrays, written into ``out`` if given; with ``beta``,
    ``out <- a @ b + beta * out`` (``beta=1`` adds the product to ``out``).

    Parameters
    ----------
    a : ndarray, shape (m, k)
    b : ndarray, shape (k, n)
    out : ndarray, shape (m, n), C-contiguous, optional
        Required when ``beta != 0``.
    beta : float

    Returns
    -------
    c : ndarray, shape (m, n)
    """
    a, b = _c(a), _c(b)
    if beta != 0.0 and (out is None or not out.flags.c_contiguous):
        raise ValueError("matmul with beta != 0 needs a C-contiguous out to add to")
    if (
        a.dtype != b.dtype
        or a.dtype not in (np.float32, np.float64)
        or (out is not None and out.dtype != a.dtype)
    ):
        if beta == 0.0:
            return np.matmul(a, b, out=out)
        out *= beta
        out += a @ b
        return out
    (gemm,) = _funcs(a.dtype, "gemm")
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    # (m, k) @ (k, n) -> (m, n), computed as c^T = b^T a^T on Fortran views
    gemm(1.0, b.T, a.T, beta=beta, c=out.T, overwrite_c=1)
    return out


def matmul_tn(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float = 1.0, beta: float = 0.0
) -> np.ndarray:
    r"""``c <- alpha * a.T @ b + beta * c``, in place.

    Parameters
    ----------
    a : ndarray, shape (B, m)
    b : ndarray, shape (B, n)
    c : ndarray, shape (m, n), C-contiguous, same dtype as ``a`` and ``b``

    Returns
    -------
    c : ndarray, shape (m, n)
        The same array, updated.
    """
    a, b = _c(a), _c(b)
    if not c.flags.c_contiguous or not a.dtype == b.dtype == c.dtype:
        raise ValueError("matmul_tn needs a C-contiguous c and one dtype for a, b and c")
    (gemm,) = _funcs(c.dtype, "gemm")
    # (m, B) @ (B, n) -> (m, n), computed as c^T = b^T (a^T)^T on Fortran views
    gemm(alpha, b.T, a.T, beta=beta, c=c.T, trans_b=1, overwrite_c=1)
    return c


class OuterSum:
    r"""The product :math:`a^T d` (shape (m, n)), a sum of B outer products, not yet formed.

    Every weight gradient of a layer has this form, :math:`\partial L / \partial W =
    x^T\, \partial L / \partial a`. Handed to an optimiser in place of the formed array,
    it lets :meth:`ff_numpy.optim.SGD.step_outer` form the product straight into the
    velocity (one GEMM with ``beta`` the momentum) instead of writing a weight-sized
    array and reading it back; ``np.asarray(g)`` (or ``g.formed()``) gives the array,
    for an optimiser or a test that needs it. The two give the same numbers
    (``tests/test_blas.py``; the gain is measured in ``docs/RESULTS.md``).

    Parameters
    ----------
    a : ndarray, shape (B, m)
        The layer's input ``x``.
    d : ndarray, shape (B, n)
        ``dL/da``.
    """

    ndim = 2

    def __init__(self, a: np.ndarray, d: np.ndarray):
        if a.ndim != 2 or d.ndim != 2 or a.shape[0] != d.shape[0]:
            raise ValueError(f"OuterSum needs a (B, m) and d (B, n), got {a.shape}, {d.shape}")
        self.a, self.d = a, d

    @property
    def shape(self) -> tuple[int, int]:
        return (self.a.shape[1], self.d.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(self.a, self.d)

    def formed(self) -> np.ndarray:
        """The product as a fresh array: (m, B) @ (B, n) -> (m, n)."""
        if self.a.dtype == self.d.dtype and self.a.dtype in (np.float32, np.float64):
            return matmul_tn(self.a, self.d, np.empty(self.shape, dtype=self.dtype))
        return self.a.T @ self.d

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.formed()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"OuterSum(a^T d, shape {self.shape}, not yet formed)"


def row_factor(f: np.ndarray, dtype) -> np.ndarray:
    r"""``f`` cast to ``dtype`` (a copy), with every entry smaller in magnitude than
    ``tiny * 2**24`` set to zero (``tiny``: the smallest normal number of ``dtype``).

    The factor :math:`\partial L_n / \partial G_n = -s\,\sigma(-s(G_n - \theta))` of
    a row whose goodness is far on the right side of the threshold underflows to a
    *subnormal* float32 (below about 1.2e-38), and so do the entries of the
    :math:`\partial L / \partial a` rows it scales. Intel cores handle subnormal operands
    in microcode: a weight-gradient GEMM with 5% of its rows subnormal ran 11x slower
    here, and with 25%, 49x slower (float32, (1600, 2000) x (1600, 2000), one thread).
    After two epochs of the recurrent net, 24% of the nonzero entries of
    :math:`\partial L / \partial a` were subnormal on average over its (iteration,
    layer) updates, and 52% in one of them (``benchmarks/subnormals.py``).
    Setting such factors to zero changes no weight: a row's contribution is then below
    ``tiny * 2**24 * |y|`` (about 2e-31 for float32), some 20 orders of magnitude under
    a float32 gradient entry's rounding error. Every kept factor times a value of at
    least ``2**-24`` stays normal.

    Parameters
    ----------
    f : ndarray
        Per-row (or per-entry) factors, of any float dtype.
    dtype : numpy dtype
        The dtype of the arrays the factor multiplies.

    Returns
    -------
    f : ndarray, same shape, ``dtype``
    """
    f = np.array(f, dtype=dtype)  # a copy: the caller's factors are left as they were
    f[np.abs(f) < np.finfo(f.dtype).tiny * 2.0**24] = 0.0
    return f


def scale_rows(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    r"""``y * f[:, None]`` (or ``y * f`` for ``f`` of the shape of ``y``), a new array of
    ``y``'s dtype, with the factors that would make subnormal products set to zero
    (:func:`row_factor`).

    Plain NumPy: ``y * f[:, None]``; the two agree except where a factor's magnitude is
    below ``tiny * 2**24`` (tested).

    Parameters
    ----------
    y : ndarray, shape (B, n)
    f : ndarray, shape (B,) or (B, n)

    Returns
    -------
    yf : ndarray, shape (B, n)
    """
    f = row_factor(f, y.dtype)
    return y * (f[:, None] if f.ndim == 1 else f)


def can_axpy(*arrays: np.ndarray) -> bool:
    """True if :func:`axpy` takes these arrays: C-contiguous, one float32/float64 dtype."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(
        a.flags.c_contiguous and a.dtype == dtype for a in arrays
    )


def axpy(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """``y <- y + alpha * x`` in place (one pass over memory, no temporary)."""
    if not (x.flags.c_contiguous and y.flags.c_contiguous) or x.dtype != y.dtype:
        raise ValueError("axpy needs C-contiguous arrays of one dtype")
    (f,) = _funcs(y.dtype, "axpy")
    f(x.reshape(-1), y.reshape(-1), a=alpha)
    return y


def ger(u: np.ndarray, v: np.ndarray, W: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    r"""Rank-1 update :math:`W \leftarrow W + \alpha\, u v^T`, in place (BLAS ``ger``).

    For C-ordered ``W`` the Fortran-ordered matrix BLAS sees is ``W.T``, so the update
    is computed as :math:`W^T \leftarrow W^T + \alpha\, v u^T`: no temporary of W's size.

    Parameters
    ----------
    u : ndarray, shape (m,)
    v : ndarray, shape (n,)
    W : ndarray, shape (m, n), C-contiguous, float32 or float64, same dtype as ``u``, ``v``
    alpha : float

    Returns
    -------
    W : ndarray, shape (m, n)
        The same array, updated.
    """
    if not W.flags.c_contiguous or W.dtype not in (np.float32, np.float64):
        raise ValueError(f"ger needs a C-contiguous float32 or float64 W, got {W.dtype}")
    if not u.dtype == v.dtype == W.dtype:
        raise ValueError(f"ger needs one dtype for u, v, W; got {u.dtype}, {v.dtype}, {W.dtype}")
    if u.ndim != 1 or v.ndim != 1 or W.shape != (u.size, v.size):
        raise ValueError(f"ger needs u (m,), v (n,), W (m, n); got {u.shape}, {v.shape}, {W.shape}")
    (f,) = _funcs(W.dtype, "ger")
    f(alpha, v, u, a=W.T, overwrite_a=1)  # (n,) x (m,) -> (n, m) = W^T, in place
    return W
