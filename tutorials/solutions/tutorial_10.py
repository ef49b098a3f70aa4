"""Solutions of the exercises of tutorial 10 (CIFAR-10 with local receptive fields)."""

import numpy as np


def fan_in_map(H, W, C, k):
    """Exercise 1: the number of inputs of the units of every location.

    A location in row ``r`` sees the rows ``max(r - k // 2, 0) .. min(r + k // 2, H - 1)``
    of the map below, and likewise the columns, with all ``C`` channels of each: the
    field is (rows seen) x (columns seen) x C.

    Parameters
    ----------
    H, W : int
        The map's rows and columns of locations.
    C : int
        Values per location of the map below.
    k : int
        Field side, odd; may exceed the map.

    Returns
    -------
    sizes : ndarray of int, shape (H, W)
    """
    h = k // 2
    rows = np.array([min(r + h, H - 1) - max(r - h, 0) + 1 for r in range(H)])
    cols = np.array([min(q + h, W - 1) - max(q - h, 0) + 1 for q in range(W)])
    return np.outer(rows, cols) * C


def location_weight_grad(x, dL_da, r, q, shape, k):
    """Exercise 2: the weight gradient of location ``(r, q)`` in ``Local``'s layout.

    The patch of every row, cut off at the edge and read row by row with the channel
    fastest (the order of the field's inputs), transposed times the derivatives of the
    location's units: ``(f, B) @ (B, C_out) -> (f, C_out)``.

    Parameters
    ----------
    x : ndarray, shape (B, H * W * C_in)
        The inputs, each row the map below in HWC order.
    dL_da : ndarray, shape (B, H * W * C_out)
        Derivatives with respect to the pre-activations, units location-major.
    r, q : int
        The location.
    shape : (int, int, int)
        ``(H, W, C_in)`` of the map below.
    k : int
        Field side, odd.

    Returns
    -------
    dL_dW : ndarray, shape (f, C_out)
    """
    H, W, C_in = shape
    B, h = len(x), k // 2
    C_out = dL_da.shape[1] // (H * W)
    r0, r1 = max(r - h, 0), min(r + h + 1, H)
    q0, q1 = max(q - h, 0), min(q + h + 1, W)
    patch = x.reshape(B, H, W, C_in)[:, r0:r1, q0:q1, :].reshape(B, -1)  # (B, f)
    loc = r * W + q
    units = dL_da[:, loc * C_out : (loc + 1) * C_out]  # (B, C_out)
    return patch.T @ units
