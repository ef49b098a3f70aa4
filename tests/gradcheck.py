"""Helpers shared by the gradient tests: relative error, finite differences, reporting."""

from __future__ import annotations

import numpy as np

AUTOGRAD_TOL = 1e-10  # closed form vs autograd, float64
FD_TOL = 1e-6  # closed form vs central finite differences, float64


def rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """``|ours - ref| / (|ours| + |ref|)`` in the Euclidean norm (0 when both are zero)."""
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    denom = np.linalg.norm(ours) + np.linalg.norm(ref)
    return float(np.linalg.norm(ours - ref) / denom) if denom > 0 else 0.0


def assert_close(ours, ref, tol: float, what: str) -> None:
    """Assert ``rel_error(ours, ref) < tol``, printing both on failure."""
    err = rel_error(ours, ref)
    assert err < tol, (
        f"{what}: relative error {err:.3e} >= {tol:.0e}\n"
        f"ours      {np.ravel(ours)[:6]}\nreference {np.ravel(ref)[:6]}"
    )


def numerical_grad(f, x: np.ndarray, idx=None, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to entries ``idx`` of ``x``.

    ``x`` is perturbed in place and restored. ``idx`` is a list of index tuples (default:
    every entry). Returns the derivatives in the order of ``idx``.
    """
    if idx is None:
        idx = list(np.ndindex(x.shape))
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        out[k] = (fp - fm) / (2 * h)
    return out


def sample_indices(shape, n: int, rng: np.random.Generator) -> list[tuple]:
    """Up to ``n`` distinct random index tuples into an array of ``shape``."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(n, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]
