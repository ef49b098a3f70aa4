"""Solutions of the exercises of tutorial 01 (goodness, Eq. 1 and one FF layer)."""

import numpy as np
from scipy.special import expit


def eq1_loss(G, theta, s):
    """Exercise 1: the layer loss of Eq. 1 and its derivative with respect to the goodness.

    Parameters
    ----------
    G : ndarray, shape (B,)
        Goodness of each row.
    theta : float
        The threshold.
    s : ndarray, shape (B,)
        +1 for rows whose goodness should be above theta (positive data), -1 below.

    Returns
    -------
    L : ndarray, shape (B,)
        ``softplus(-s (G - theta))``, finite for any finite G.
    dL_dG : ndarray, shape (B,)
    """
    z = s * (G - theta)  # the log-odds of the right answer
    L = np.logaddexp(0.0, -z)  # log(1 + e^{-z}) without ever computing e^{1e5}
    dL_dG = -s * expit(-z)  # dL/dz = -sigmoid(-z), dz/dG = s
    return L, dL_dG


def local_grads_unsquared(x, W, b, theta, s):
    """Exercise 2: the local gradient of a dense ReLU layer with the unsquared goodness
    ``G = sum_j y_j`` (Sec. 10), of the loss summed over the batch.

    Parameters
    ----------
    x : ndarray, shape (B, n_in)
    W : ndarray, shape (n_in, n_out)
    b : ndarray, shape (n_out,)
    theta : float
    s : ndarray, shape (B,)

    Returns
    -------
    dL_dW : ndarray, shape (n_in, n_out)
    dL_db : ndarray, shape (n_out,)
    """
    a = x @ W + b  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    y = np.maximum(a, 0)
    G = y.sum(axis=1)  # (B,)
    dL_dG = -s * expit(-s * (G - theta))  # Eq. 1's loss, as before
    dL_dy = np.repeat(dL_dG[:, None], y.shape[1], axis=1)  # dG/dy_j = 1: (B, n_out)
    dL_da = dL_dy * (a > 0)  # the ReLU mask now matters: dL/dy is not zero where y is
    dL_dW = x.T @ dL_da  # (n_in, B) @ (B, n_out) -> (n_in, n_out)
    dL_db = dL_da.sum(axis=0)
    return dL_dW, dL_db
