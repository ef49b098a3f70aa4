"""Solutions of the exercises of tutorial 06 (unsupervised FF with hybrid negatives)."""

import numpy as np

from ff_numpy.negatives import hybrid_masks


def _blur_rows(m):
    """``[1/4, 1/2, 1/4]`` along the last axis; the missing neighbour at either end is the
    border pixel itself."""
    p = np.pad(m, [(0, 0)] * (m.ndim - 1) + [(1, 1)], mode="symmetric")
    return 0.25 * p[..., :-2] + 0.5 * p[..., 1:-1] + 0.25 * p[..., 2:]


def blur_mask(bits, n_blur):
    """Exercise 1: blur random bit images ``n_blur`` times with ``[1/4, 1/2, 1/4]`` along
    every row and then every column, and threshold at 0.5.

    Parameters
    ----------
    bits : ndarray, shape (n, H, W)
        Random bits (0 or 1), as numbers.
    n_blur : int

    Returns
    -------
    masks : ndarray of bool, shape (n, H, W)
    """
    m = np.asarray(bits, dtype=np.float64)  # the caller's bits are never written to
    for _ in range(n_blur):
        m = _blur_rows(m)  # along every row
        m = _blur_rows(m.swapaxes(1, 2)).swapaxes(1, 2)  # along every column
    return m > 0.5


def make_hybrids(x, rng):
    """Exercise 2: hybrid negative images of a batch (paper Sec. 3.2, Fig. 1).

    Parameters
    ----------
    x : ndarray, shape (B, 784)
        Real images, B >= 2.
    rng : numpy.random.Generator

    Returns
    -------
    hybrids : ndarray, shape (B, 784)
        Row ``i``: image ``i`` where ``masks[i]`` is true, image ``partner[i]`` elsewhere.
    masks : ndarray of bool, shape (B, 784)
    partner : ndarray of int, shape (B,)
        Never ``i`` itself.
    """
    B = len(x)
    # an offset of 1..B-1 modulo B can never land on the row itself
    partner = (np.arange(B) + rng.integers(1, B, size=B)) % B
    masks = hybrid_masks(B, rng).reshape(B, -1)  # large regions of ones and zeros
    hybrids = np.where(masks, x, x[partner])
    return hybrids, masks, partner
