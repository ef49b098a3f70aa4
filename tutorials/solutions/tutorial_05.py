"""Solutions of the exercises of tutorial 05 (Forward-Forward against backprop)."""

import numpy as np
from scipy.special import log_softmax


def softmax_cross_entropy(z, labels):
    """Exercise 1: the mean softmax cross-entropy of a batch and its gradient.

    Parameters
    ----------
    z : ndarray, shape (B, C)
        Logits.
    labels : ndarray of int, shape (B,)

    Returns
    -------
    L : float
        ``-mean_n log softmax(z_n)[labels_n]``, finite for any finite logits.
    dL_dz : ndarray, shape (B, C)
        ``(softmax(z) - T) / B`` with ``T`` the one-hot targets.
    """
    B = len(z)
    rows = np.arange(B)
    log_q = log_softmax(z, axis=1)  # z - max - log sum exp(z - max): no overflow
    L = -float(np.mean(log_q[rows, labels]))
    dL_dz = np.exp(log_q)  # softmax(z)
    dL_dz[rows, labels] -= 1  # minus the one-hot targets
    return L, dL_dz / B  # the loss is a mean over the batch


def layer_backward(h, W, b, dL_dy):
    """Exercise 2: the backward pass of one hidden layer ``y = relu(h W + b)``.

    Parameters
    ----------
    h : ndarray, shape (B, n_in)
    W : ndarray, shape (n_in, n_out)
    b : ndarray, shape (n_out,)
    dL_dy : ndarray, shape (B, n_out)
        The gradient that came down from the layers above.

    Returns
    -------
    dL_dh : ndarray, shape (B, n_in)
        What goes down to the layer below (an FF layer never computes it).
    dL_dW : ndarray, shape (n_in, n_out)
    dL_db : ndarray, shape (n_out,)
    """
    a = h @ W + b  # the forward pass again: the ReLU's mask needs a
    dL_da = dL_dy * (a > 0)  # through the ReLU: (B, n_out)
    dL_dW = h.T @ dL_da  # (n_in, B) @ (B, n_out)
    dL_db = dL_da.sum(axis=0)
    dL_dh = dL_da @ W.T  # (B, n_out) @ (n_out, n_in)
    return dL_dh, dL_dW, dL_db
