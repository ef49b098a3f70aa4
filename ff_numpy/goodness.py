r"""Goodness, the probability that an input is positive (Eq. 1), and the layer loss.

Forward-Forward gives every layer its own objective. A layer's *goodness* for one
example is the sum of its squared ReLU activities,

.. math:: G = \sum_j y_j^2,

and the probability that the example is positive (real) data is (paper, Eq. 1)

.. math:: p(\text{positive}) = \sigma(G - \theta).

Two objectives (paper Sec. 2 and Table 1):

* ``"max"``: positive data should have *high* goodness (``G > theta``), negative data low.
* ``"min"``: positive data should have *low* goodness, negative data high; the paper
  found it slightly better ("min ssq"). Then :math:`p(\text{positive}) = \sigma(\theta - G)`.

Write :math:`z = s\,(G - \theta)` with a sign :math:`s` that is ``+1`` for positive and
``-1`` for negative data under ``"max"``, and the other way round under ``"min"``. The
per-example loss is the negative log-probability of the correct answer,

.. math:: L = -\log \sigma(z) = \operatorname{softplus}(-z) = \log(1 + e^{-z}),

computed with :func:`numpy.logaddexp` so that it never overflows, and its derivative is

.. math:: \frac{\partial L}{\partial G} = -s\,\sigma(-z).

The paper's Sec. 10 asks about other measures of goodness. ``kind="sum"`` is the
*unsquared* goodness :math:`G = \sum_j y_j` (the sum of the activities, with
:math:`\partial G / \partial y_j = 1`); it goes with a normalisation of the sum of the
activities rather than of their squares (:mod:`ff_numpy.norm`, ``"mean"``).

Everything here is elementwise NumPy; the chain rule down to the weights lives in
:mod:`ff_numpy.layers`. The derivations are in ``docs/derivations.md``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

OBJECTIVES = ("max", "min")
KINDS = ("ssq", "sum")


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is ``"ssq"`` or ``"sum"``, else raise ``ValueError``."""
    if kind not in KINDS:
        raise ValueError(f"unknown goodness {kind!r}: expected one of {KINDS}")
    return kind


def check_objective(objective: str) -> str:
    """Return ``objective`` if it is ``"max"`` or ``"min"``, else raise ``ValueError``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: expected one of {OBJECTIVES}")
    return objective


def goodness(y: np.ndarray, kind: str = "ssq") -> np.ndarray:
    r"""Goodness of each row: the sum of squared activities, or of the activities.

    .. math:: G_n = \sum_j y_{nj}^2 \quad (\texttt{"ssq"}), \qquad
              G_n = \sum_j y_{nj} \quad (\texttt{"sum"}, unsquared)

    Parameters
    ----------
    y : ndarray, shape (B, n)
        Post-ReLU activities (before normalisation).
    kind : {"ssq", "sum"}

    Returns
    -------
    G : ndarray, shape (B,)

    Notes
    -----
    Its derivative, :math:`\partial G / \partial y = 2 y` or :math:`1`, is applied in
    :meth:`ff_numpy.layers.Dense.dL_da`.
    """
    if kind == "ssq":
        # einsum reads y once and makes no (B, n) temporary of squares.
        return np.einsum("bj,bj->b", y, y)
    check_kind(kind)
    return y.sum(axis=1)


def grouped_goodness(y: np.ndarray, starts: np.ndarray, kind: str = "ssq") -> np.ndarray:
    r"""Goodness of each *group* of adjacent units: one per location of a local layer.

    .. math:: G_{ng} = \sum_{j \in g} y_{nj}^2 \quad (\texttt{"ssq"}), \qquad
              G_{ng} = \sum_{j \in g} y_{nj} \quad (\texttt{"sum"})

    Parameters
    ----------
    y : ndarray, shape (B, n)
    starts : ndarray of int, shape (n_groups,)
        First unit of each group, increasing from 0; group ``g`` is units
        ``starts[g]:starts[g + 1]`` (the last runs to ``n``).
    kind : {"ssq", "sum"}

    Returns
    -------
    G : ndarray, shape (B, n_groups)

    Notes
    -----
    Each group's loss depends only on its own units, so
    :math:`\partial L / \partial y_{nj} = \partial L_{n g(j)} / \partial G_{n g(j)}
    \cdot \partial G / \partial y_{nj}`: spread the (B, n_groups) derivative over the
    units with :func:`spread` and hand it to :meth:`ff_numpy.layers.Dense.dL_da`.
    """
    check_kind(kind)
    v = y * y if kind == "ssq" else y
    return np.add.reduceat(v, starts, axis=1)


def spread(dL_dG: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Each group's value repeated over its units: (B, n_groups) -> (B, n)."""
    sizes = np.diff(np.append(starts, n))
    return np.repeat(dL_dG, sizes, axis=1)


def sign(is_positive: np.ndarray, objective: str = "max") -> np.ndarray:
    r"""The sign :math:`s` of the layer loss: +1 where ``G`` should exceed ``theta``.

    Parameters
    ----------
    is_positive : ndarray of bool, shape (B,)
        True for positive (real) data, False for negative data.
    objective : {"max", "min"}

    Returns
    -------
    s : ndarray of float, shape (B,)
        ``+1`` where the example should have goodness above ``theta``, ``-1`` elsewhere.
    """
    check_objective(objective)
    is_positive = np.asarray(is_positive, dtype=bool)
    high = is_positive if objective == "max" else ~is_positive
    return np.where(high, 1.0, -1.0)


def p_positive(G: np.ndarray, theta: float, objective: str = "max") -> np.ndarray:
    r"""Probability that each example is positive data (paper, Eq. 1).

    .. math:: p = \sigma(G - \theta) \quad (\texttt{"max"}), \qquad
              p = \sigma(\theta - G) \quad (\texttt{"min"})

    Parameters
    ----------
    G : ndarray, shape (B,)
        Goodness of each example.
    theta : float
        The threshold.
    objective : {"max", "min"}

    Returns
    -------
    p : ndarray, shape (B,)
    """
    check_objective(objective)
    z = G - theta if objective == "max" else theta - G
    return expit(z)


def layer_loss(G: np.ndarray, theta: float, s: np.ndarray) -> np.ndarray:
    r"""Per-example layer loss :math:`L = \operatorname{softplus}(-s (G - \theta))`.

    Parameters
    ----------
    G : ndarray, shape (B,)
        Goodness of each example.
    theta : float
        The threshold.
    s : ndarray, shape (B,)
        The sign from :func:`sign`: ``+1`` where ``G`` should exceed ``theta``.

    Returns
    -------
    L : ndarray, shape (B,)
        :math:`-\log p(\text{correct})`, finite for any finite ``G``.
    """
    z = s * (G - theta)
    return np.logaddexp(0.0, -z)  # log(1 + e^{-z}) without overflow


def dL_dG(G: np.ndarray, theta: float, s: np.ndarray) -> np.ndarray:
    r"""Derivative of :func:`layer_loss` with respect to the goodness.

    .. math:: \frac{\partial L}{\partial G} = -s\,\sigma(-s (G - \theta))

    Under ``"max"`` this is :math:`-(1 - p)` for positive data and :math:`p` for negative
    data, the two factors of Hinton's released code.

    Parameters
    ----------
    G : ndarray, shape (B,)
    theta : float
    s : ndarray, shape (B,)

    Returns
    -------
    dL_dG : ndarray, shape (B,)
    """
    z = s * (G - theta)
    # L = softplus(-z)  =>  dL/dz = -sigmoid(-z),  dz/dG = s
    return -s * expit(-z)
