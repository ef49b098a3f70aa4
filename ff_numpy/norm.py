r"""Length normalisation between layers (footnote 5) and peer normalisation (footnote 9).

Length normalisation
--------------------
Before a layer's activity vector is passed to the next layer it is divided by its
length, *without* subtracting the mean, so that only its orientation reaches the next
layer: the goodness used by the first layer cannot be read off by the second, which
must find new features of its own (paper, Sec. 2.1).

Four scales are offered, two for each kind of goodness:

* ``"rms"`` (default, as in Hinton's released code): divide by the root-mean-square,
  :math:`\hat y = y / \sqrt{\tfrac1n \sum_j y_j^2}`, so :math:`|\hat y|^2 = n`. With this
  scale the natural threshold of a layer of ``n`` units is ``theta = n``.
* ``"l2"``: divide by the Euclidean length, :math:`|\hat y| = 1` (the form in which the
  paper states Eq. 4).
* ``"mean"``: divide by the mean absolute value, so the activities sum to ``n``; the
  normalisation that goes with the *unsquared* goodness :math:`G = \sum_j y_j`, whose
  value it hides from the next layer as ``"rms"`` hides the sum of squares.
* ``"l1"``: divide by the sum of absolute values, :math:`\sum_j |\hat y_j| = 1`.

An all-zero vector (every ReLU off) stays all-zero: the division is guarded with
``where``, not by adding an epsilon, so a non-zero vector is normalised exactly.

Peer normalisation
------------------
See :class:`PeerNorm`.
"""

from __future__ import annotations

import numpy as np

SCALES = ("rms", "l2", "mean", "l1")
DEFAULT_SCALE = {"ssq": "rms", "sum": "mean"}  # the normalisation each goodness goes with


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is a known normalisation scale, else raise ``ValueError``."""
    if scale not in SCALES:
        raise ValueError(f"unknown normalisation {scale!r}: expected one of {SCALES}")
    return scale


def length(y: np.ndarray, scale: str = "rms", starts: np.ndarray | None = None) -> np.ndarray:
    r"""The length each row (or each group of a row) is divided by.

    Parameters
    ----------
    y : ndarray, shape (B, n)
    scale : {"rms", "l2", "mean", "l1"}
    starts : ndarray of int, shape (n_groups,), optional
        First unit of each group of adjacent units (as in
        :func:`ff_numpy.goodness.grouped_goodness`): one length per group, with ``n`` the
        group's size. None: one length per row.

    Returns
    -------
    r : ndarray, shape (B, 1), or (B, n_groups) with ``starts``
        :math:`\sqrt{\tfrac1n\sum_j y_j^2}` for ``"rms"``, :math:`\sqrt{\sum_j y_j^2}` for
        ``"l2"``, :math:`\tfrac1n\sum_j |y_j|` for ``"mean"``, :math:`\sum_j |y_j|` for
        ``"l1"``.
    """
    check_scale(scale)
    if starts is not None:
        v = np.abs(y) if scale in ("mean", "l1") else y * y
        r = np.add.reduceat(v, starts, axis=1)  # (B, n_groups)
        if scale in ("rms", "mean"):
            r /= np.diff(np.append(starts, y.shape[1]))  # each group's size
        return np.sqrt(r, out=r) if scale in ("rms", "l2") else r
    if scale in ("mean", "l1"):
        r = np.abs(y).sum(axis=1, keepdims=True)
        return r / y.shape[1] if scale == "mean" else r
    sq = np.einsum("bj,bj->b", y, y)[:, None]
    if scale == "rms":
        sq /= y.shape[1]
    return np.sqrt(sq)


def normalize(y: np.ndarray, scale: str = "rms", out: np.ndarray | None = None) -> np.ndarray:
    r"""Divide each row by its length, with no mean subtraction (footnote 5).

    .. math:: \hat y = y / r(y), \qquad \hat y = 0 \text{ where } y = 0

    Parameters
    ----------
    y : ndarray, shape (B, n)
    scale : {"rms", "l2", "mean", "l1"}
        ``"rms"`` gives :math:`|\hat y|^2 = n`, ``"l2"`` gives :math:`|\hat y| = 1`,
        ``"mean"`` gives :math:`\sum_j |\hat y_j| = n`, ``"l1"`` gives
        :math:`\sum_j |\hat y_j| = 1`.
    out : ndarray, shape (B, n), optional
        Where to write the result (may be ``y`` itself).

    Returns
    -------
    y_hat : ndarray, shape (B, n)
    """
    r = length(y, scale)
    # A row of zeros has r = 0; dividing by 1 keeps it zero instead of NaN.
    np.copyto(r, 1.0, where=r == 0)
    return np.divide(y, r, out=out)


def normalize_grouped(
    y: np.ndarray, starts: np.ndarray, scale: str = "rms", out: np.ndarray | None = None
) -> np.ndarray:
    r"""Divide each *group* of adjacent units (a location of a local layer) by its own
    length, with no mean subtraction.

    .. math:: \hat y_{g} = y_{g} / r(y_{g}) \quad \text{for every group } g,
              \qquad \hat y_g = 0 \text{ where } y_g = 0

    With goodness taken per location (footnote 8 leaves this open), a layer-wide
    normalisation still shows the next layer how the goodness is shared among the
    locations; this one hides every location's goodness, as :func:`normalize` hides the
    layer's (Sec. 2.1), so the next layer sees only each location's orientation. With
    ``"rms"`` every group of ``c`` units gets squared length ``c``, so the whole row still
    has squared length ``n``, as after :func:`normalize`.

    Parameters
    ----------
    y : ndarray, shape (B, n)
    starts : ndarray of int, shape (n_groups,)
        First unit of each group, increasing from 0 (as in
        :func:`ff_numpy.goodness.grouped_goodness`).
    scale : {"rms", "l2", "mean", "l1"}
    out : ndarray, shape (B, n), optional
        Where to write the result (may be ``y`` itself).

    Returns
    -------
    y_hat : ndarray, shape (B, n)
    """
    starts = np.asarray(starts)
    r = length(y, scale, starts)  # (B, n_groups)
    np.copyto(r, 1.0, where=r == 0)  # an all-zero group stays zero
    sizes = np.diff(np.append(starts, y.shape[1]))
    return np.divide(y, np.repeat(r, sizes, axis=1), out=out)  # (B, n) / (B, n)


class PeerNorm:
    r"""Peer normalisation: keep every unit of a layer about equally active (footnote 9).

    Each unit keeps a running mean of its activity on positive data,

    .. math:: m_j \leftarrow \rho\, m_j + (1 - \rho)\, \langle y_j \rangle_{\text{batch}},

    and the layer's target is the mean of those running means,
    :math:`\bar m = \tfrac1n \sum_j m_j`. The penalty
    :math:`\tfrac{\lambda}{2} \sum_j (m_j - \bar m)^2` would, if :math:`m_j` were the
    current activity, add :math:`\lambda (m_j - \bar m)` to the derivative of the loss with
    respect to unit :math:`j`'s activity. The paper applies that extra derivative to the
    unit's *input* (pre-activation) whether or not its ReLU is on: it "pretends" the
    derivative exists where it does not, so that dead units are pulled back to life.

    Parameters
    ----------
    n : int
        Number of units.
    strength : float
        :math:`\lambda` (Hinton's released code: 0.03).
    rho : float
        Decay of the running mean (0.9).
    init : float
        Initial running mean (0.5).
    """

    def __init__(self, n: int, strength: float = 0.03, rho: float = 0.9, init: float = 0.5):
        if strength < 0 or not 0 <= rho < 1:
            raise ValueError(
                f"PeerNorm needs strength >= 0 and 0 <= rho < 1, got {strength}, {rho}"
            )
        self.strength = float(strength)
        self.rho = float(rho)
        self.mean = np.full(n, init, dtype=np.float64)

    def penalty(self, mean: np.ndarray, xp=np) -> float:
        r"""The peer penalty whose gradient the extra derivative is, on active units.

        .. math::
            P = \frac{\lambda}{2 (1 - \rho)} \sum_j (m_j - \bar m)^2,
            \qquad m_j = \rho\, m_j^{\text{old}} + \frac{1 - \rho}{B} \sum_b y_{bj}

        with ``mean`` the running means *after* this batch's update (a function of the
        batch's positive activities :math:`y_{bj}`). Through the update,
        :math:`\partial m_j / \partial y_{bj} = (1 - \rho) / B`, and the
        :math:`\bar m` term drops out because :math:`\sum_j (m_j - \bar m) = 0`, so

        .. math:: \frac{\partial P}{\partial a_{bj}}
                  = \frac{\lambda}{B} (m_j - \bar m)\, [a_{bj} > 0],

        the :meth:`dL_da` term per example of a batch-mean loss, where the ReLU is on.
        The paper's rule adds the same term where the ReLU is *off* as well, which no
        function's gradient does; ``tests/test_gradients.py`` checks the active units
        against autograd of this penalty and the inactive ones against the rule.
        ``xp`` is the array module (``autograd.numpy`` in the tests).
        """
        d = mean - xp.mean(mean)
        return self.strength / (2.0 * (1.0 - self.rho)) * xp.sum(d * d)

    def update(self, y_pos: np.ndarray) -> None:
        """Fold a batch of positive-data activities ``y_pos``, shape (B, n), into the means."""
        self.mean *= self.rho
        self.mean += (1.0 - self.rho) * y_pos.mean(axis=0)

    def dL_da(self) -> np.ndarray:
        r"""The extra derivative for every unit's pre-activation, shape (n,).

        .. math:: \frac{\partial L_{\text{peer}}}{\partial a_j} = \lambda (m_j - \bar m)

        Added on positive-data rows, for active and inactive units alike.
        """
        return self.strength * (self.mean - self.mean.mean())
