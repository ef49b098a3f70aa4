"""Solutions of the exercises of tutorial 09 (the top-down recurrent network of Fig. 3)."""

import numpy as np

from ff_numpy.norm import normalize


def alternating_iteration(ys, X, lab, p, d):
    """Exercise 1: one iteration of the alternating schedule.

    The even layers of Fig. 3 (hidden layers 2, 4, ...: 0-based ``l = 1, 3, ...``) are
    updated first from the current states; then the odd ones (0-based ``l = 0, 2, ...``)
    from the new even states. Each update is the damped step
    ``y <- d y + (1 - d) relu(h_below W_up + h_above W_down + b)``.

    Parameters
    ----------
    ys : list of ndarray, shapes (N, n_l)
        The hidden layers' states, bottom to top (left unchanged).
    X : ndarray, shape (N, n_in)
        The normalised images (what the first hidden layer reads from below).
    lab : ndarray, shape (N, C)
        The normalised labels (what the top hidden layer reads from above).
    p : dict
        ``"up{l}.W"``, ``"up{l}.b"``, ``"down{l}.W"`` of every hidden layer ``l``.
    d : float
        The damping.

    Returns
    -------
    new : list of ndarray, shapes (N, n_l)
    """
    L = len(ys)
    new = list(ys)  # a new list; the arrays of the layers not yet updated are shared
    for phase in ([l for l in range(L) if l % 2 == 1], [l for l in range(L) if l % 2 == 0]):
        H = [normalize(y, "rms") for y in new]  # what this phase reads: the newest states
        for l in phase:
            h_below = X if l == 0 else H[l - 1]
            h_above = lab if l == L - 1 else H[l + 1]
            a = h_below @ p[f"up{l}.W"] + h_above @ p[f"down{l}.W"] + p[f"up{l}.b"]
            new[l] = d * new[l] + (1 - d) * np.maximum(a, 0)
    return new


def predict_by_goodness(G, window, objective):
    """Exercise 2: the best label of every image by its goodness averaged over a window
    of iterations.

    Parameters
    ----------
    G : ndarray, shape (N, C, T)
        Goodness of every image with every label at iterations 1..T.
    window : (int, int)
        First and last iteration, both included, counted from 1.
    objective : {"max", "min"}
        Whether the true label should have the highest or the lowest goodness.

    Returns
    -------
    labels : ndarray of int, shape (N,)
    """
    lo, hi = window
    mean = G[:, :, lo - 1 : hi].mean(axis=2)  # iteration t is index t - 1
    return np.argmax(mean, axis=1) if objective == "max" else np.argmin(mean, axis=1)
