"""Solutions of the exercises of tutorial 04 (learning through a black box)."""

import numpy as np


def quantise(h, levels):
    """Exercise 1: the black box's quantiser.

    Each row is rounded to the nearest of ``levels`` values spaced evenly over
    ``[0, max of the row]``. Its derivative is 0 wherever it exists (between two levels
    the output does not move) and does not exist at the jumps halfway between levels:
    no gradient can pass through it.

    Parameters
    ----------
    h : ndarray, shape (B, n)
        Non-negative rows (normalised ReLU activities).
    levels : int
        At least 2.

    Returns
    -------
    z : ndarray, shape (B, n)
        A new array; an all-zero row stays all zero.
    """
    top = h.max(axis=1, keepdims=True)  # (B, 1): each row's range
    step = np.where(top > 0, top, 1.0) / (levels - 1)  # a zero row: any step, it stays 0
    return np.round(h / step) * step


def permutation_backward(dL_dz, perm):
    """Exercise 2: the backward pass of ``z = h[:, perm]``.

    Output unit ``k`` is input unit ``perm[k]`` (``z[:, k] = h[:, perm[k]]``), so the
    gradient with respect to output ``k`` belongs to input ``perm[k]``. (The
    straight-through guess returns ``dL_dz`` itself, as if ``perm`` were the identity.)

    Parameters
    ----------
    dL_dz : ndarray, shape (B, n)
    perm : ndarray of int, shape (n,)
        A permutation of ``0..n-1``.

    Returns
    -------
    dL_dh : ndarray, shape (B, n)
    """
    dL_dh = np.empty_like(dL_dz)
    dL_dh[:, perm] = dL_dz  # scatter: input perm[k] receives output k's gradient
    return dL_dh
