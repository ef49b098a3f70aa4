r"""Layer losses: what a layer's goodness is judged by (a part of its own, Eq. 1).

Every Forward-Forward layer turns the goodness :math:`G` of its positive and negative
rows into a loss. A loss is a small class with two methods,

* ``L(G, s, theta)``: the loss of every row (or of every positive/negative pair),
* ``dL_dG(G, s, theta)``: its derivative with respect to every row's goodness,

where :math:`s` is the *sign* of each row (:func:`ff_numpy.goodness.sign`): ``+1`` where
the goodness should be high, ``-1`` where it should be low. The max/min objective of
Table 1 lives only in that sign, so every loss serves both objectives.

Two losses:

* :class:`Logistic`: the paper's Eq. 1, :math:`p(\text{positive}) = \sigma(G - \theta)`,
  each row judged on its own against the threshold :math:`\theta`;
* :class:`SymBa`: the symmetric loss of Lee and Song (2023), one loss per pair of a
  positive and a negative row on the *difference* of their goodness; no threshold.

Adding a loss is one new class here (with its closed-form ``dL_dG`` under its forward
line) and one entry in :data:`LOSSES`. Both never overflow: softplus is computed with
:func:`numpy.logaddexp` and the sigmoid with :func:`scipy.special.expit`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def logistic_loss(G: np.ndarray, theta, s: np.ndarray) -> np.ndarray:
    r"""Per-row layer loss of Eq. 1, :math:`L = \operatorname{softplus}(-s (G - \theta))`.

    .. math::
        p(\text{correct}) = \sigma\big(s\,(G - \theta)\big), \qquad
        L = -\log p(\text{correct}) = \log\big(1 + e^{-s (G - \theta)}\big)

    Parameters
    ----------
    G : ndarray, shape (B,) or (B, n_groups)
        Goodness of each row (or of each location of each row).
    theta : float or ndarray broadcastable to ``G``
        The threshold.
    s : ndarray, broadcastable to ``G``
        The sign from :func:`ff_numpy.goodness.sign`: ``+1`` where ``G`` should exceed
        ``theta``.

    Returns
    -------
    L : ndarray, shape of ``G``
        Finite for any finite ``G``.
    """
    z = s * (G - theta)
    return np.logaddexp(0.0, -z)  # log(1 + e^{-z}) without overflow


def logistic_dL_dG(G: np.ndarray, theta, s: np.ndarray) -> np.ndarray:
    r"""Derivative of :func:`logistic_loss` with respect to the goodness.

    .. math:: \frac{\partial L}{\partial G} = -s\,\sigma(-s (G - \theta))

    Under ``"max"`` this is :math:`-(1 - p)` for positive rows and :math:`p` for negative
    rows, the two factors of Hinton's released code.

    Parameters
    ----------
    G, theta, s
        As for :func:`logistic_loss`.

    Returns
    -------
    dL_dG : ndarray, shape of ``G``
    """
    z = s * (G - theta)
    # L = softplus(-z)  =>  dL/dz = -sigmoid(-z),  dz/dG = s
    return -s * expit(-z)


class Logistic:
    r"""The paper's layer loss (Eq. 1): every row judged on its own against ``theta``.

    .. math:: L_n = \operatorname{softplus}\big(-s_n (G_n - \theta)\big)

    ``L`` returns one loss per row; the training step reports their sum over the
    ``2B`` rows divided by ``B`` (the loss per positive/negative pair).
    """

    name = "logistic"
    uses_theta = True

    def L(self, G: np.ndarray, s: np.ndarray, theta) -> np.ndarray:
        """Loss of every row, shape of ``G`` (:func:`logistic_loss`)."""
        return logistic_loss(G, theta, s)

    def dL_dG(self, G: np.ndarray, s: np.ndarray, theta) -> np.ndarray:
        """Derivative of every row's loss with respect to its goodness, shape of ``G``."""
        return logistic_dL_dG(G, theta, s)

    @classmethod
    def from_options(cls, options: dict) -> Logistic:
        """Build from command-line options (the logistic loss has none)."""
        return cls()

    def config(self) -> dict:
        return {"name": self.name}


class SymBa:
    r"""The symmetric loss of SymBa (Lee and Song, 2023): one loss per pair of rows.

    Rows come in pairs: row ``n`` (positive) and row ``n + B`` (its negative), the order
    every training step of this library uses. With the signs :math:`s` of the two rows
    (:math:`s_{n+B} = -s_n`),

    .. math::
        z_n = \alpha\,(s_n G_n + s_{n+B} G_{n+B}), \qquad
        L_n = \operatorname{softplus}(-z_n)

    which under ``"max"`` is :math:`\operatorname{softplus}(-\alpha (G_{pos} - G_{neg}))`:
    the positive row should beat its negative by a margin, wherever both lie, so the
    gradients of positive and negative data are balanced and no threshold is needed.

    .. math::
        \frac{\partial L_n}{\partial G_n} = -\alpha\, s_n\, \sigma(-z_n), \qquad
        \frac{\partial L_n}{\partial G_{n+B}} = -\alpha\, s_{n+B}\, \sigma(-z_n)

    Parameters
    ----------
    alpha : float
        The scale of the goodness difference (SymBa's :math:`\alpha`; 4 in its paper).
        The goodness here is a sum over the layer's units, so with the ``"rms"``
        normalisation its differences are of the order of the layer's width: a
        smaller ``alpha`` keeps the sigmoid out of saturation.
    """

    name = "symba"
    uses_theta = False

    def __init__(self, alpha: float = 4.0):
        alpha = float(alpha)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"SymBa needs a finite alpha > 0, got alpha={alpha}")
        self.alpha = alpha

    @staticmethod
    def _halves(G: np.ndarray) -> int:
        if G.shape[0] % 2:
            raise ValueError(
                f"SymBa pairs row n with row n + B: needs an even number of rows, got {G.shape[0]}"
            )
        return G.shape[0] // 2

    def _z(self, G: np.ndarray, s: np.ndarray) -> np.ndarray:
        B = self._halves(G)
        sG = s * G  # (2B,) or (2B, n_groups)
        return self.alpha * (sG[:B] + sG[B:])  # (B, ...): one margin per pair

    def L(self, G: np.ndarray, s: np.ndarray, theta=None) -> np.ndarray:
        """Loss of every pair, shape (B,) or (B, n_groups); ``theta`` is not used."""
        z = self._z(G, s)
        return np.logaddexp(0.0, -z)  # softplus(-z) without overflow

    def dL_dG(self, G: np.ndarray, s: np.ndarray, theta=None) -> np.ndarray:
        """Derivative of every pair's loss with respect to each row's goodness, shape of
        ``G`` (row ``n`` and row ``n + B`` share pair ``n``'s sigmoid)."""
        s = np.broadcast_to(s, G.shape)
        z = self._z(G, s)
        # L = softplus(-z)  =>  dL/dz = -sigmoid(-z);  dz/dG_n = alpha s_n
        dL_dz = -expit(-z)  # (B, ...)
        return self.alpha * s * np.concatenate([dL_dz, dL_dz])

    @classmethod
    def from_options(cls, options: dict) -> SymBa:
        """Build from command-line options: ``alpha``."""
        return cls(options.get("alpha", 4.0))

    def config(self) -> dict:
        return {"name": self.name, "alpha": self.alpha}


# Every loss by its command-line name: a new loss is one class above and one line here.
LOSSES = {"logistic": Logistic, "symba": SymBa}


def make_loss(name: str = "logistic", **options):
    """The loss called ``name`` (:data:`LOSSES`), built from ``options`` (e.g. ``alpha``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: expected one of {sorted(LOSSES)}")
    return LOSSES[name].from_options(options)
