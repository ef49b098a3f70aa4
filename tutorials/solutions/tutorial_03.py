"""Solutions of the exercises of tutorial 03 (learning fast: Eq. 3 and Eq. 4)."""

import numpy as np


def one_shot_step(W, b, u, S_star):
    """Exercise 1: the Eq. 4 step that takes one dense ReLU layer's goodness for the input
    ``u`` to ``S_star``, biases included.

    The step ``dw_j = c y_j u``, ``db_j = c y_j`` changes unit j's pre-activation for
    ``u`` by ``c y_j (|u|^2 + 1)``: every active unit is multiplied by
    ``1 + c |u_aug|^2`` and the goodness by its square. Setting that factor to
    ``sqrt(S*/S_L)`` gives ``c``.

    Parameters
    ----------
    W : ndarray, shape (n_in, n_out)
    b : ndarray, shape (n_out,)
    u : ndarray, shape (n_in,)
        The layer's input (any length).
    S_star : float
        Target goodness, > 0.

    Returns
    -------
    dW : ndarray, shape (n_in, n_out)
    db : ndarray, shape (n_out,)
    """
    y = np.maximum(u @ W + b, 0)  # (n_in,) @ (n_in, n_out) -> (n_out,)
    S_L = y @ y  # the current goodness
    c = (np.sqrt(S_star / S_L) - 1) / (u @ u + 1)  # |u_aug|^2 = |u|^2 + 1
    dW = c * np.outer(u, y)  # column j: c y_j u
    db = c * y
    return dW, db


def masked_coefficients(u, S_L, S_star, mask):
    """Exercise 2: the per-unit Eq. 4 coefficients of a layer with local receptive fields.

    Unit j sees only the inputs of its field ``R_j`` (``mask[:, j] == 1``) and its bias,
    so the step ``dw_j = c_j y_j u`` (masked), ``db_j = c_j y_j`` changes its
    pre-activation by ``c_j y_j |u_aug|_{R_j}^2``. Dividing by each unit's own squared
    length gives every active unit the same factor ``sqrt(S*/S_L)`` again.

    Parameters
    ----------
    u : ndarray, shape (n_in,)
    S_L : float
        Current goodness, > 0.
    S_star : float
        Target goodness, > 0.
    mask : ndarray, shape (n_in, n_out)
        0/1 receptive fields.

    Returns
    -------
    c : ndarray, shape (n_out,)
    """
    field_sq = (u * u) @ mask + 1  # |u_aug|^2 on each unit's field: (n_in,) @ (n_in, n_out)
    return (np.sqrt(S_star / S_L) - 1) / field_sq
