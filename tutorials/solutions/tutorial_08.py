"""Solutions of the exercises of tutorial 08 (jittered MNIST)."""

import numpy as np


def _shift(img, dr, dc):
    """``img`` (H, W) moved ``dr`` rows down and ``dc`` columns right, zeros shifted in."""
    H, W = img.shape
    out = np.zeros_like(img)
    out[max(dr, 0) : H + min(dr, 0), max(dc, 0) : W + min(dc, 0)] = img[
        max(-dr, 0) : H - max(dr, 0), max(-dc, 0) : W - max(dc, 0)
    ]
    return out


def shift_then_label(x, labels, dr, dc):
    """Exercise 1: shift every image by its own (dr, dc), then write its label.

    Parameters
    ----------
    x : ndarray, shape (B, 784)
        Images as rows (not changed).
    labels : ndarray of int, shape (B,)
    dr, dc : ndarray of int, shape (B,)
        Rows down and columns right (negative: up, left).

    Returns
    -------
    out : ndarray, shape (B, 784)
        The shifted images with a one-hot code of the labels in pixels 0..9, which the
        shift can never move: it is written afterwards.
    """
    out = np.stack([_shift(row.reshape(28, 28), r, c).ravel() for row, r, c in zip(x, dr, dc)])
    out[:, :10] = 0  # whatever the shift brought into the label pixels
    out[np.arange(len(out)), labels] = 1
    return out


def scores_over_shifts(net, x, max_shift):
    """Exercise 2: each label's goodness summed over every shift of up to ``max_shift``.

    Parameters
    ----------
    net : ff_numpy.model.FFNet
    x : ndarray, shape (B, 784)
    max_shift : int

    Returns
    -------
    scores : ndarray, shape (B, 10)
        Take ``argmax`` over the labels to classify.
    """
    scores = np.zeros((len(x), 10))
    for dr in range(-max_shift, max_shift + 1):
        for dc in range(-max_shift, max_shift + 1):
            xs = np.stack([_shift(row.reshape(28, 28), dr, dc).ravel() for row in x])
            scores += net.goodness_per_label(xs)  # the label is written after the shift
    return scores
