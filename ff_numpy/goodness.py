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

A goodness is a small class (:class:`SumOfSquares`, :class:`Unsquared`) with

* ``G(y, starts=None)``: the goodness of every row, or of every location of a row;
* ``dL_dy(y, dL_dG, starts=None)``: the chain rule through it, from the loss's
  :math:`\partial L / \partial G` to :math:`\partial L / \partial y`;
* ``norm``: the length normalisation that goes with it (:mod:`ff_numpy.norm`).

The loss of Eq. 1 lives in :mod:`ff_numpy.loss`; the chain rule from :math:`y` down to
the weights in :mod:`ff_numpy.layers`. The derivations are in ``docs/derivations.md``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ff_numpy import blas
from ff_numpy import loss as _loss

OBJECTIVES = ("max", "min")


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


class SumOfSquares:
    r"""The paper's goodness, the sum of squared activities (Eq. 1).

    .. math:: G_n = \sum_j y_{nj}^2, \qquad
              \frac{\partial G_n}{\partial y_{nj}} = 2\, y_{nj}

    It goes with the ``"rms"`` length normalisation (:mod:`ff_numpy.norm`), which hides
    it from the next layer, and with the threshold ``theta = n`` of a layer of ``n``
    units.
    """

    name = "ssq"
    norm = "rms"

    def G(self, y: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Goodness of each row, shape (B,), or with ``starts`` of each group of adjacent
        units (one per location of a local layer), shape (B, n_groups)."""
        if starts is not None:
            return np.add.reduceat(y * y, starts, axis=1)  # G_ng = sum_{j in g} y_nj^2
        # G_n = sum_j y_nj^2; einsum reads y once and makes no (B, n) temporary
        return np.einsum("bj,bj->b", y, y)

    def dL_dy(
        self, y: np.ndarray, dL_dG: np.ndarray, starts: np.ndarray | None = None
    ) -> np.ndarray:
        r"""Chain rule through the goodness: :math:`\partial L / \partial y_{nj} =
        \partial L / \partial G_n \cdot 2 y_{nj}`.

        Parameters
        ----------
        y : ndarray, shape (B, n)
        dL_dG : ndarray, shape (B,), or (B, n_groups) with ``starts``
        starts : ndarray of int, optional
            First unit of every group (as for :meth:`G`).

        Returns
        -------
        dL_dy : ndarray, shape (B, n), dtype of ``y``
        """
        if starts is not None:
            dL_dG = spread(dL_dG, starts, y.shape[1])  # (B, n_groups) -> (B, n)
        # G = sum_j y_j^2  =>  dL/dy_j = dL/dG * 2 y_j: (B, n) * (B, 1)
        return blas.scale_rows(y, 2 * dL_dG)


class Unsquared:
    r"""The unsquared goodness of Sec. 10, the sum of the activities.

    .. math:: G_n = \sum_j y_{nj}, \qquad
              \frac{\partial G_n}{\partial y_{nj}} = 1

    It goes with the ``"mean"`` normalisation, which hides the sum of the activities
    from the next layer as ``"rms"`` hides the sum of squares.
    """

    name = "sum"
    norm = "mean"

    def G(self, y: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Goodness of each row, shape (B,), or of each group, shape (B, n_groups)."""
        if starts is not None:
            return np.add.reduceat(y, starts, axis=1)  # G_ng = sum_{j in g} y_nj
        return y.sum(axis=1)  # G_n = sum_j y_nj

    def dL_dy(
        self, y: np.ndarray, dL_dG: np.ndarray, starts: np.ndarray | None = None
    ) -> np.ndarray:
        r"""Chain rule through the goodness: :math:`\partial L / \partial y_{nj} =
        \partial L / \partial G_n`, the same for every unit of the row (or group)."""
        if starts is not None:
            dL_dG = spread(dL_dG, starts, y.shape[1])
        # G = sum_j y_j  =>  dL/dy_j = dL/dG: (B, 1) broadcast over the n units
        dL_dG = blas.row_factor(dL_dG, y.dtype)
        return np.broadcast_to(dL_dG[:, None] if dL_dG.ndim == 1 else dL_dG, y.shape)


# Every goodness by its command-line name: a new goodness is one class and one line here.
GOODNESS = {"ssq": SumOfSquares, "sum": Unsquared}
KINDS = tuple(GOODNESS)


def make_goodness(kind: str = "ssq"):
    """The goodness called ``kind`` (:data:`GOODNESS`)."""
    return GOODNESS[check_kind(kind)]()


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
    The classes :class:`SumOfSquares` and :class:`Unsquared` define it (with its
    derivative); this function names them by ``kind``.
    """
    return make_goodness(kind).G(y)


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
    units with :func:`spread` and hand it to :meth:`SumOfSquares.dL_dy`.
    """
    return make_goodness(kind).G(y, np.asarray(starts))


def spread(dL_dG: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Each group's value repeated over its units: (B, n_groups) -> (B, n)."""
    sizes = np.diff(np.append(starts, n))
    return np.repeat(dL_dG, sizes, axis=1)


def location_groups(layer, name: str = "the layer"):
    """A layer's locations as goodness groups: ``(starts, share)``, or ``(None, None)``.

    ``starts`` (n_groups,) is the first unit of every location (``layer.location_starts()``,
    checked to tile the layer's ``n_out`` units), ``share`` (n_groups,) each location's
    share of the units, hence of the layer's threshold (a location's ``theta`` is
    ``theta * share``).  A layer without locations (dense) gives ``(None, None)``;
    ``name`` names the layer in the error.
    """
    starts = getattr(layer, "location_starts", lambda: None)()
    if starts is None:
        return None, None
    starts = np.asarray(starts)
    if starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= layer.n_out:
        raise ValueError(f"the locations of {name} do not tile its units")
    sizes = np.diff(np.append(starts, layer.n_out))
    return starts, sizes / layer.n_out


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


# Eq. 1's loss and its derivative, under the names this module has always given them; they
# are defined once, in :mod:`ff_numpy.loss`.
layer_loss = _loss.logistic_loss
dL_dG = _loss.logistic_dL_dG
