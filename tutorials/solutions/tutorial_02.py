"""Solutions of the exercises of tutorial 02 (supervised FF on MNIST)."""

import numpy as np


def embed_label(x, labels, n_classes=10):
    """Exercise 1: write each row's label as a one-hot code into its first ``n_classes``
    pixels, in a copy of ``x``.

    Parameters
    ----------
    x : ndarray, shape (B, n_in)
    labels : ndarray of int, shape (B,)
    n_classes : int

    Returns
    -------
    x_labelled : ndarray, shape (B, n_in), dtype of ``x``
    """
    out = x.copy()  # never change the caller's images
    out[:, :n_classes] = 0  # whatever was there before
    out[np.arange(len(x)), labels] = 1
    return out


def normalize_rms(y):
    """Exercise 2: divide each row by its root-mean-square, with no mean subtraction; a
    row of zeros stays zero.

    Parameters
    ----------
    y : ndarray, shape (B, n)

    Returns
    -------
    y_hat : ndarray, shape (B, n), with ``mean(y_hat**2, axis=1) == 1`` on non-zero rows
    """
    r = np.sqrt(np.mean(y**2, axis=1, keepdims=True))  # (B, 1)
    return y / np.where(r > 0, r, 1.0)  # an all-zero row is divided by 1


def hard_wrong_labels(q, labels, rng):
    """Exercise 3: for each row, a wrong label drawn in proportion to the model's
    probabilities ``q`` (never the true label; uniform over the wrong labels where they
    all have probability 0).

    Parameters
    ----------
    q : ndarray, shape (B, 10)
        Class probabilities of the softmax readout.
    labels : ndarray of int, shape (B,)
        The true labels.
    rng : numpy.random.Generator

    Returns
    -------
    wrong : ndarray of int, shape (B,)
    """
    B, N = q.shape
    w = np.array(q, dtype=np.float64)
    w[np.arange(B), labels] = 0  # the true label can never be drawn
    sure = w.sum(axis=1) == 0  # the model is sure of the true label: any wrong label will do
    w[sure] = 1
    w[sure, labels[sure]] = 0
    p = w / w.sum(axis=1, keepdims=True)  # each row: a distribution over the wrong labels
    return np.array([rng.choice(N, p=row) for row in p])
