"""Solutions of the exercises of tutorial 07 (local receptive fields, peer normalisation)."""

import numpy as np


def grid_field(loc, in_grid, in_channels, grid, k):
    """Exercise 1: the inputs seen by location ``loc`` of a locally connected layer whose
    locations each see all the units of a ``k x k`` square of locations below.

    Parameters
    ----------
    loc : int
        The location, row-major on this layer's ``grid``.
    in_grid : (int, int)
        The grid of the layer below, ``(Gh, Gw)``.
    in_channels : int
        Units per location below; its units are numbered location-major,
        ``(r * Gw + q) * in_channels + c``.
    grid : (int, int)
        This layer's grid, ``(gh, gw)``.
    k : int
        Side of the square of locations below; neighbouring locations are one step apart.

    Returns
    -------
    field : ndarray of int, shape (k * k * in_channels,), sorted
    """
    Gw = in_grid[1]
    r0, q0 = divmod(loc, grid[1])  # this location's row and column = the square's corner
    field = [
        (r * Gw + q) * in_channels + c
        for r in range(r0, r0 + k)  # the rows of the square, top to bottom
        for q in range(q0, q0 + k)  # its columns, left to right
        for c in range(in_channels)  # every unit of that location below
    ]
    return np.array(field)  # increasing: row-major locations, channel fastest


def peer_term(mean, y_pos, strength, rho):
    """Exercise 2: peer normalisation (footnote 9) for one batch of positive rows.

    Parameters
    ----------
    mean : ndarray, shape (n,)
        Every unit's running mean activity before the batch (left unchanged).
    y_pos : ndarray, shape (B, n)
        The batch's activities on positive data.
    strength : float
        lambda (0.03 in Hinton's code).
    rho : float
        Decay of the running means (0.9).

    Returns
    -------
    new_mean : ndarray, shape (n,)
    term : ndarray, shape (B, n)
        ``strength * (m_j - mean(m)) / B`` with the new means, added to ``dL/da`` of every
        positive row and every unit, on or off.
    """
    B = len(y_pos)
    new_mean = rho * mean + (1 - rho) * y_pos.mean(axis=0)
    per_unit = strength * (new_mean - new_mean.mean()) / B  # (n,)
    return new_mean, np.tile(per_unit, (B, 1))
