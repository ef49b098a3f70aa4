r"""Learning fast and slow (paper, Sec. 7): Eq. 3 for one example, and the one-shot Eq. 4.

Eq. 3: one example, one layer
-----------------------------
For one input :math:`x` of a fully connected ReLU layer, :math:`a_j = w_j \cdot x + b_j`,
:math:`y_j = \operatorname{relu}(a_j)`, gradient *ascent* on :math:`\log p` (the log
probability of the correct answer, Eq. 1) with rate :math:`\epsilon` changes the weight
vector :math:`w_j` of unit :math:`j` by (Eq. 3)

.. math:: \Delta w_j = 2 \epsilon \frac{\partial \log p}{\partial G}\, y_j\, x,

and the bias, a weight on a constant input 1, by
:math:`\Delta b_j = 2 \epsilon \frac{\partial \log p}{\partial G} y_j`
(:func:`eq3_update`).

Orientation invariance
----------------------
Feed the same :math:`x` again. With :math:`g = \partial \log p / \partial G` and
:math:`|x_{aug}|^2 = |x|^2 + 1` (the input with the bias's constant 1 appended),

.. math:: \Delta a_j = \Delta w_j \cdot x + \Delta b_j = 2 \epsilon g\, |x_{aug}|^2\, y_j,

so every active unit's pre-activation is multiplied by the *same* factor
:math:`k = 1 + 2 \epsilon g |x_{aug}|^2` and every inactive unit (:math:`y_j = 0`) is
unchanged. If :math:`k > 0` the activity vector is scaled by :math:`k`, and its
length-normalised version, all that the next layer sees, does not change: an update of an
early layer does not disturb the layers above it for that input. (If :math:`k \le 0`,
every active unit turns off.) :func:`eq3_orientation` shows it, and where it fails:

* unsquared goodness :math:`G = \sum_j y_j`: :math:`\partial G / \partial y_j = 1`, so
  :math:`\Delta a_j = \epsilon g |x_{aug}|^2` for every active unit: the same *constant*
  is added to every active unit instead of a common factor, which changes the ratios
  :math:`y_i / y_j` and so the orientation;
* masked layers (local receptive fields): unit :math:`j` sees only the inputs in its
  field :math:`R_j`, so its factor is :math:`1 + 2 \epsilon g |x_{aug}|_{R_j}^2`, a
  different number for every unit.

Eq. 4: one step to a target goodness
------------------------------------
The update :math:`\Delta w_j = c\, y_j\, u`, :math:`\Delta b_j = c\, y_j` of a layer with
input :math:`u` and goodness :math:`S_L` multiplies every active unit by
:math:`1 + c |u_{aug}|^2`. Choosing

.. math:: c = \frac{\sqrt{S^* / S_L} - 1}{|u_{aug}|^2}

makes that factor :math:`\sqrt{S^*/S_L}` and the new goodness exactly :math:`S^*`
(:func:`one_shot_coefficient`, :func:`one_shot_layer_update`). The paper's Eq. 4,
:math:`\epsilon = \sqrt{S^*/S_L} - 1`, is the case :math:`|u| = 1` with the biases frozen.
Because the factor is positive, the next layer's normalised input does not change, so
every layer of a network can be moved to its own target in one simultaneous step computed
from one forward pass (:func:`one_shot_network_step`, :func:`one_shot_model_step`).

The one-shot update is applied straight to the weights, never through an optimiser: it is
a plain step by construction, with no momentum, Adam moments, weight decay or
peer-normalisation term (each of those would break the exact scaling).

Conventions: ``W`` has shape (n_in, n_out), so column :math:`j` of ``W`` is the paper's
:math:`w_j`; a masked layer is a layer whose ``W`` is zero outside a fixed 0/1 ``mask`` of
the same shape (its gradient is the dense gradient times the mask). Goodness kinds are
those of :func:`ff_numpy.goodness.goodness`: ``"ssq"`` (sum of squares) and ``"sum"``
(unsquared). The derivations are in ``docs/derivations.md``, sections 7 to 11.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ff_numpy import blas
from ff_numpy import goodness as gd
from ff_numpy.layers import Dense
from ff_numpy.norm import SCALES, normalize

# Normalisations that divide by a length proportional to |y| (positively homogeneous of
# degree 1) with a guarded division and no epsilon: normalize(k y) == normalize(y), k > 0.
EXACT_NORMS = ("rms", "l2", "mean", "l1")


# ----------------------------------------------------------------------------- checks
def _check_one_shot_kind(kind: str) -> None:
    gd.check_kind(kind)
    if kind != "ssq":
        raise ValueError(
            f"the one-shot update needs the squared goodness 'ssq', got {kind!r}: with "
            "G = sum_j y_j the update adds a constant to every active unit instead of "
            "scaling them, so the next layer's normalised input changes"
        )


def _check_exact_norm(norm: str) -> str:
    if norm not in EXACT_NORMS or norm not in SCALES:
        exact = tuple(s for s in EXACT_NORMS if s in SCALES)
        raise ValueError(
            f"the one-shot update needs an exact length normalisation between layers "
            f"(one of {exact}: a division by a length proportional to |y|, with no added "
            f"epsilon), got {norm!r}"
        )
    return norm


def _check_vector(x, name: str, n: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or x.shape[0] != n:
        raise ValueError(f"{name} must be one example, a 1-D array of length {n}; got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_scalar(value, name: str, positive: bool = False, nonneg: bool = False) -> float:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_mask(mask, layer) -> np.ndarray | None:
    """``mask`` as a 0/1 array shaped like ``layer.W``, with ``W`` zero outside it."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != layer.W.shape:
        raise ValueError(f"mask must have the shape of W, {layer.W.shape}; got {mask.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must hold only 0 and 1")
    if np.any(layer.W[mask == 0] != 0):
        raise ValueError(
            "a masked layer's W must be zero outside its mask (its receptive fields); "
            "got non-zero weights where mask == 0"
        )
    return mask.astype(layer.W.dtype)


def _preactivation(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:math:`a = x W + b` for one example, shape (n_out,)."""
    a = blas.matmul(x[None, :], W)[0]  # (1, n_in) @ (n_in, n_out) -> (n_out,)
    return a + b


# ----------------------------------------------------------------------------- Eq. 3
def dlogp_dG(G: float, theta: float, is_positive: bool, objective: str = "max") -> float:
    r"""Derivative of :math:`\log p(\text{correct})` with respect to the goodness.

    .. math::
        g = \frac{\partial \log p}{\partial G} = -\frac{\partial L}{\partial G}
          = s\, \sigma(-s (G - \theta))

    with :math:`s = +1` where ``G`` should exceed ``theta`` (:func:`ff_numpy.goodness.sign`).

    Parameters
    ----------
    G : float
        Goodness of the example.
    theta : float
        Threshold.
    is_positive : bool
        True for positive (real) data.
    objective : {"max", "min"}

    Returns
    -------
    g : float
        Positive where the goodness should rise, negative where it should fall.
    """
    s = gd.sign(np.array([bool(is_positive)]), objective)  # (1,)
    return float(-gd.dL_dG(np.array([float(G)]), float(theta), s)[0])


def field_sq_length(u: np.ndarray, mask: np.ndarray | None = None, bias: bool = True):
    r"""Squared length of the augmented input :math:`u_{aug} = (u, 1)` seen by each unit.

    .. math::
        q = |u_{aug}|^2 = |u|^2 + 1, \qquad
        q_j = |u_{aug}|_{R_j}^2 = \sum_i m_{ij} u_i^2 + 1 \quad (\text{masked})

    Every unit's bias is in its own receptive field. With ``bias=False`` (biases frozen,
    as in the paper's Eq. 4) the ``+ 1`` is left out.

    Parameters
    ----------
    u : ndarray, shape (n_in,)
    mask : ndarray, shape (n_in, n_out), optional
        0/1 receptive fields: ``mask[i, j] = 1`` where unit ``j`` sees input ``i``.
    bias : bool
        Whether the bias is updated (is part of the step).

    Returns
    -------
    q : float, or ndarray of shape (n_out,) when ``mask`` is given
    """
    if mask is None:
        return float(u @ u) + float(bias)
    return blas.matmul((u * u)[None, :], mask)[0] + float(bias)  # (1, n_in) @ (n_in, n_out)


def eq3_update(
    layer,
    x,
    theta: float,
    is_positive: bool,
    eps: float,
    *,
    objective: str = "max",
    goodness: str = "ssq",
    mask=None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The single-example update of Eq. 3, with the bias as a weight on a constant 1.

    .. math::
        \Delta w_j = 2 \epsilon\, g\, y_j\, x, \qquad \Delta b_j = 2 \epsilon\, g\, y_j,
        \qquad g = \frac{\partial \log p}{\partial G}

    for the squared goodness (paper, Eq. 3), and
    :math:`\Delta w_j = \epsilon g [a_j > 0] x`, :math:`\Delta b_j = \epsilon g [a_j > 0]`
    for the unsquared goodness :math:`G = \sum_j y_j`. Both are
    :math:`-\epsilon\, \partial L / \partial (W, b)` for this one example: gradient ascent
    on :math:`\log p`. For a masked layer the weight change is multiplied by the mask.

    Parameters
    ----------
    layer : Dense
        Any object with ``W``, shape (n_in, n_out), and ``b``, shape (n_out,). Not changed.
    x : ndarray, shape (n_in,)
        One input (normally length-normalised).
    theta : float
        Threshold of the layer.
    is_positive : bool
        True for positive data, False for negative data.
    eps : float
        Learning rate, >= 0.
    objective : {"max", "min"}
    goodness : {"ssq", "sum"}
        Sum of squared activities (the paper) or of the activities.
    mask : ndarray, shape (n_in, n_out), optional
        0/1 receptive fields of a masked layer (``W`` must be zero outside them).

    Returns
    -------
    dW : ndarray, shape (n_in, n_out)
    db : ndarray, shape (n_out,)
        Add them to ``layer.W`` and ``layer.b``.
    """
    gd.check_kind(goodness)
    x = _check_vector(x, "x", layer.W.shape[0])
    eps = _check_scalar(eps, "eps", nonneg=True)
    mask = _check_mask(mask, layer)

    # Eq. 3 is the batch gradient of the layer's loss for one row, L = -log p, so the
    # update is -eps times the layer's own local gradient (one definition: Dense.local_grads).
    y, cache = Dense.forward(layer, x[None, :])  # (1, n_in) @ (n_in, n_out) -> (1, n_out)
    good = gd.make_goodness(goodness)
    G = good.G(y)  # G = sum_j y_j^2  or  sum_j y_j, shape (1,)
    s = gd.sign(np.array([is_positive]), objective)
    dL_dy = good.dL_dy(y, gd.dL_dG(G, theta, s))  # dL/dy = dL/dG dG/dy: (1, n_out)
    grads = Dense.local_grads(layer, cache, dL_dy)  # outer(x, dL/da) and dL/da
    dW = -eps * grads["W"]
    if mask is not None:
        dW *= mask  # a masked weight does not exist: its gradient is zero
    db = -eps * grads["b"]
    return dW.astype(layer.W.dtype, copy=False), db.astype(layer.b.dtype, copy=False)


class Eq3Effect(NamedTuple):
    """What one Eq. 3 update does to the layer's output for the same input.

    Attributes
    ----------
    a_before, a_after : ndarray, shape (n_out,)
        Pre-activations before and after the update.
    da : ndarray, shape (n_out,)
        The closed-form change of the pre-activations (:func:`eq3_preactivation_change`).
    y_hat_before, y_hat_after : ndarray, shape (n_out,)
        The length-normalised activities, what the next layer sees.
    """

    a_before: np.ndarray
    a_after: np.ndarray
    da: np.ndarray
    y_hat_before: np.ndarray
    y_hat_after: np.ndarray


def eq3_preactivation_change(
    a: np.ndarray,
    x: np.ndarray,
    g: float,
    eps: float,
    goodness: str = "ssq",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""Closed-form change of the pre-activations for the same input after Eq. 3.

    .. math::
        \Delta a_j = 2 \epsilon g\, q_j\, y_j \quad (\texttt{"ssq"}), \qquad
        \Delta a_j = \epsilon g\, q_j\, [a_j > 0] \quad (\texttt{"sum"}),

    with :math:`q_j = |x_{aug}|^2` for a dense layer and
    :math:`q_j = |x_{aug}|_{R_j}^2` for a masked one (:func:`field_sq_length`). Squared
    goodness on a dense layer scales every active unit by the same factor
    :math:`1 + 2 \epsilon g |x_{aug}|^2`; the other two cases do not.

    Parameters
    ----------
    a : ndarray, shape (n_out,)
        Pre-activations before the update.
    x : ndarray, shape (n_in,)
    g : float
        :func:`dlogp_dG` of the example.
    eps : float
    goodness : {"ssq", "sum"}
    mask : ndarray, shape (n_in, n_out), optional

    Returns
    -------
    da : ndarray, shape (n_out,)
    """
    gd.check_kind(goodness)
    q = field_sq_length(x, mask)  # float, or (n_out,) when masked
    if goodness == "ssq":
        return 2 * eps * g * q * np.maximum(a, 0)
    return eps * g * q * (a > 0)


def eq3_orientation(
    layer,
    x,
    theta: float,
    is_positive: bool,
    eps: float,
    *,
    objective: str = "max",
    goodness: str = "ssq",
    norm: str = "rms",
    mask=None,
) -> Eq3Effect:
    r"""Apply Eq. 3 to a copy of the layer and compare what the next layer sees (Sec. 7).

    For squared goodness and a fully connected layer, every active unit's
    pre-activation is multiplied by the same factor

    .. math:: k = 1 + 2 \epsilon g\, |x_{aug}|^2, \qquad |x_{aug}|^2 = |x|^2 + 1,

    and inactive units are unchanged, so for :math:`k > 0` the normalised output
    ``y_hat_after`` equals ``y_hat_before``: the paper's claim that the update leaves
    what later layers see for that input unchanged.

    It fails in two cases, which this function shows rather than hides:

    * ``goodness="sum"`` (unsquared): :math:`\partial G / \partial y_j = 1`, so every
      active unit gets the same *added* constant :math:`\epsilon g |x_{aug}|^2`; the
      ratios between active units change, and so does the orientation.
    * ``mask`` given (local receptive fields): unit :math:`j` scales by
      :math:`1 + 2 \epsilon g |x_{aug}|_{R_j}^2`, which differs from unit to unit because
      each unit sees a different part of the input.

    Parameters
    ----------
    layer : Dense
        Not changed (the update is applied to copies of ``W`` and ``b``).
    x : ndarray, shape (n_in,)
    theta, is_positive, eps, objective, goodness, mask
        As for :func:`eq3_update`.
    norm : str
        The normalisation between layers (:func:`ff_numpy.norm.normalize`).

    Returns
    -------
    effect : Eq3Effect

    Raises
    ------
    ValueError
        For squared goodness, if an active unit's factor :math:`k_j \le 0`: the step is
        so large (with :math:`g < 0`, :math:`\epsilon \ge 1 / (2 |g| q_j)`) that it turns
        the unit off, and the scaling argument no longer holds.
    """
    dW, db = eq3_update(
        layer, x, theta, is_positive, eps, objective=objective, goodness=goodness, mask=mask
    )
    x = np.asarray(x)
    mask = _check_mask(mask, layer)

    a0 = _preactivation(layer.W, layer.b, x)  # (n_out,)
    y0 = np.maximum(a0, 0)
    g = dlogp_dG(float(gd.goodness(y0[None, :], goodness)[0]), theta, is_positive, objective)
    da = eq3_preactivation_change(a0, x, g, eps, goodness, mask)
    if goodness == "ssq":
        k = 1 + 2 * eps * g * field_sq_length(x, mask)  # a_j -> k_j a_j for active units
        if np.any((k <= 0) & (a0 > 0)):
            raise ValueError(
                f"the step multiplies active units by {np.min(k):.3g} <= 0 and turns them "
                f"off; orientation invariance needs 1 + 2 eps g |x_aug|^2 > 0 "
                f"(eps = {eps}, g = {g:.3g})"
            )

    a1 = _preactivation(layer.W + dW, layer.b + db, x)  # the updated layer, same input
    y_hat0 = normalize(y0[None, :], norm)[0]
    y_hat1 = normalize(np.maximum(a1, 0)[None, :], norm)[0]
    return Eq3Effect(a0, a1, da, y_hat0, y_hat1)


# ----------------------------------------------------------------------------- Eq. 4
def one_shot_coefficient(u, S_L: float, S_star: float, *, bias: bool = True, mask=None):
    r"""The multiplier :math:`c` that takes a layer's goodness from ``S_L`` to ``S_star``.

    .. math::
        c = \frac{\sqrt{S^* / S_L} - 1}{|u_{aug}|^2}, \qquad
        c_j = \frac{\sqrt{S^* / S_L} - 1}{|u_{aug}|_{R_j}^2} \quad (\text{masked})

    for the update :math:`\Delta w_j = c_j y_j u`, :math:`\Delta b_j = c_j y_j`. The
    paper's Eq. 4, :math:`\epsilon = \sqrt{S^*/S_L} - 1`, is the case :math:`|u| = 1` with
    the biases frozen (``bias=False``), where :math:`\epsilon` is the whole multiplier of
    :math:`y_j u`.

    The per-unit form (``mask`` given) is for layers with local receptive fields: unit
    :math:`j` sees only its field :math:`R_j` (and its bias), so its pre-activation
    changes by :math:`c_j y_j |u_{aug}|_{R_j}^2`, and dividing by that unit's own
    :math:`|u_{aug}|_{R_j}^2` gives every unit the same factor again. It is written for
    the masked-Dense stand-in (``W`` zero outside ``mask``) and serves a ``Masked`` layer
    with the same ``(n_in, n_out)`` mask.

    Parameters
    ----------
    u : ndarray, shape (n_in,)
        The layer's input (any length).
    S_L : float
        Current goodness :math:`\sum_j y_j^2`, > 0.
    S_star : float
        Target goodness, > 0.
    bias : bool
        Whether the biases take part in the step (``False``: frozen, as in Eq. 4).
    mask : ndarray, shape (n_in, n_out), optional
        0/1 receptive fields.

    Returns
    -------
    c : float, or ndarray of shape (n_out,) when ``mask`` is given

    Raises
    ------
    ValueError
        If ``S_L <= 0`` (every unit off: nothing to scale), ``S_star <= 0``, or some unit
        sees an all-zero augmented input (its pre-activation cannot change).
    """
    S_L = _check_scalar(S_L, "S_L (the current goodness)", positive=True)
    S_star = _check_scalar(S_star, "S_star (the target goodness)", positive=True)
    u = np.asarray(u)
    q = field_sq_length(u, mask, bias)  # |u_aug|^2, or per unit |u_aug|^2 on R_j
    if np.any(np.asarray(q) == 0):
        raise ValueError(
            "the augmented input seen by some unit is all zero (zero input on its "
            "receptive field and a frozen bias): its pre-activation cannot be changed"
        )
    return (np.sqrt(S_star / S_L) - 1) / q


class OneShot(NamedTuple):
    """The one-shot update of one layer, and what it was computed from.

    Attributes
    ----------
    dW : ndarray, shape (n_in, n_out), or None
        None when the update was added to the layer in place.
    db : ndarray, shape (n_out,)
    c : float or ndarray of shape (n_out,)
        :func:`one_shot_coefficient`.
    S_L : float
        The layer's goodness before the update.
    u : ndarray, shape (n_in,)
        The layer's input.
    y : ndarray, shape (n_out,)
        The layer's activities before the update.
    """

    dW: np.ndarray
    db: np.ndarray
    c: float | np.ndarray
    S_L: float
    u: np.ndarray
    y: np.ndarray


def one_shot_layer_update(
    layer,
    u,
    S_star: float,
    *,
    bias: bool = True,
    mask=None,
    goodness: str = "ssq",
    damping: float = 1.0,
    in_place: bool = False,
    y=None,
) -> OneShot:
    r"""The update that takes one layer's goodness for ``u`` to ``S_star`` in one step.

    .. math::
        \Delta w_j = c\, y_j\, u, \qquad \Delta b_j = c\, y_j, \qquad
        c = \frac{\sqrt{S^* / S_L} - 1}{|u_{aug}|^2}

    For the same input every active unit's pre-activation becomes
    :math:`a_j (1 + c |u_{aug}|^2) = a_j \sqrt{S^*/S_L}`, inactive units are unchanged,
    so the new goodness is :math:`S_L \cdot S^*/S_L = S^*` and the set of active units
    is the same. With ``mask`` the per-unit coefficient :math:`c_j` is used.

    A damped step (``damping`` :math:`d < 1`) goes part of the way: it multiplies every
    active unit by

    .. math:: k = 1 + d \left( \sqrt{S^* / S_L} - 1 \right) > 0

    instead of :math:`\sqrt{S^*/S_L}`, i.e. it is the step to the target
    :math:`S_L k^2`; :math:`d` scales the paper's one-shot rate
    :math:`\epsilon = \sqrt{S^*/S_L} - 1`.

    Parameters
    ----------
    layer : Dense
        Not changed, unless ``in_place``.
    u : ndarray, shape (n_in,)
        The layer's input.
    S_star : float
        Target goodness, > 0.
    bias : bool
        Whether to update the biases (``False`` freezes them, as in Eq. 4).
    mask : ndarray, shape (n_in, n_out), optional
        0/1 receptive fields of a masked layer.
    goodness : {"ssq"}
        Only the squared goodness scales; ``"sum"`` is refused.
    damping : float
        :math:`d \in (0, 1]`; 1 lands exactly on ``S_star``.
    in_place : bool
        Also add the update to ``layer.W`` and ``layer.b``; without a mask as a rank-1
        update (BLAS ``ger``), with no (n_in, n_out) temporary.
    y : ndarray, shape (n_out,), optional
        The layer's activities :math:`\operatorname{relu}(u W + b)` for ``u``, if the
        caller has them already (the forward pass is then skipped).

    Returns
    -------
    update : OneShot
        Add ``update.dW`` and ``update.db`` to the layer (:func:`apply_updates`); with
        ``in_place`` they have been added (``update.dW`` is None without a mask).

    Raises
    ------
    ValueError
        If ``goodness`` is not ``"ssq"``, if every unit is off (``S_L = 0``), if
        ``S_star <= 0``, or if ``damping`` is not in (0, 1].
    """
    _check_one_shot_kind(goodness)
    u = _check_vector(u, "u", layer.W.shape[0])
    mask = _check_mask(mask, layer)
    S_star = _check_scalar(S_star, "S_star (the target goodness)", positive=True)
    if not 0 < damping <= 1:
        raise ValueError(f"damping must lie in (0, 1], got {damping}")

    if y is None:
        y = np.maximum(_preactivation(layer.W, layer.b, u), 0)  # y = relu(u W + b), (n_out,)
    else:
        y = _check_vector(y, "y", layer.W.shape[1])
    S_L = float(y @ y)  # S_L = sum_j y_j^2
    if S_L <= 0:
        raise ValueError(
            "every unit of the layer is off for this input (S_L = 0): no step on the "
            "active units can change its goodness"
        )
    if damping != 1.0:  # part of the way: the target S_L k^2, k = 1 + d (sqrt(S*/S_L) - 1)
        k = 1.0 + damping * (float(np.sqrt(S_star / S_L)) - 1.0)
        S_star = S_L * k * k
    c = one_shot_coefficient(u, S_L, S_star, bias=bias, mask=mask)  # float or (n_out,)
    if in_place and mask is None:  # the same step, straight into the layer
        c = float(c)
        W = layer.W
        # W += c outer(u, y): a rank-1 update in place, (n_in,) x (n_out,) -> (n_in, n_out)
        blas.ger(u.astype(W.dtype, copy=False), y.astype(W.dtype, copy=False), W, c)
        db = c * y.astype(layer.b.dtype, copy=False) if bias else np.zeros_like(layer.b)
        layer.b += db  # b += c y  (the weight on the constant input 1)
        return OneShot(None, db, c, S_L, u, y)
    cy = c * y  # c_j y_j, (n_out,)
    # a = u W + b  =>  dW = outer(u, c y): (n_in, 1) @ (1, n_out) -> (n_in, n_out)
    dW = np.outer(u, cy)
    if mask is not None:
        dW *= mask
    #              =>  db = c y  (the weight on the constant input 1)
    db = cy if bias else np.zeros_like(cy)
    update = OneShot(
        dW.astype(layer.W.dtype, copy=False), db.astype(layer.b.dtype, copy=False), c, S_L, u, y
    )
    if in_place:
        apply_updates([layer], [update])
    return update


def _per_layer(S_star, n_layers: int) -> list[float]:
    if np.ndim(S_star) == 0:
        return [float(S_star)] * n_layers
    targets = [float(s) for s in np.ravel(S_star)]
    if len(targets) != n_layers:
        raise ValueError(
            f"S_star needs one target per layer ({n_layers}) or one shared target, "
            f"got {len(targets)}"
        )
    return targets


def one_shot_network_updates(
    layers,
    x,
    S_star,
    norm: str = "rms",
    *,
    bias: bool = True,
    masks=None,
    goodness: str = "ssq",
) -> list[OneShot]:
    r"""One forward pass, then every layer's one-shot update (not applied).

    Layer :math:`l` gets the update of :func:`one_shot_layer_update` for its own input
    :math:`u_l` (the normalised output of layer :math:`l - 1`, computed *before* any
    update) and its own target :math:`S^*_l`. Applied together, every layer's goodness
    for ``x`` equals its target exactly: layer :math:`l`'s active units are all scaled
    by :math:`\sqrt{S^*_l / S_l} > 0`, so

    .. math:: \hat y_l' = \frac{k\, y_l}{r(k\, y_l)} = \frac{y_l}{r(y_l)} = \hat y_l,

    and layer :math:`l + 1` receives the same input it was updated for.

    Parameters
    ----------
    layers : sequence of Dense
    x : ndarray, shape (n_in,)
        The first layer's input (already normalised, as the network feeds it).
    S_star : float or sequence of float
        One target for every layer, or one per layer; each > 0.
    norm : str
        The normalisation between layers; it must be exact (one of :data:`EXACT_NORMS`,
        no epsilon), or the next layer's input would move.
    bias : bool
        Whether to update the biases.
    masks : sequence of (ndarray of shape (n_in, n_out) or None), optional
        Receptive fields of masked layers (``None`` for dense ones).
    goodness : {"ssq"}

    Returns
    -------
    updates : list of OneShot
        One per layer, in order.

    Raises
    ------
    ValueError
        For a goodness other than ``"ssq"``, an inexact normalisation, a wrong number of
        targets or masks, a target <= 0, or a layer whose units are all off (naming it).
    """
    _check_one_shot_kind(goodness)
    _check_exact_norm(norm)
    layers = list(layers)
    targets = _per_layer(S_star, len(layers))
    masks = [None] * len(layers) if masks is None else list(masks)
    if len(masks) != len(layers):
        raise ValueError(f"masks needs one entry per layer ({len(layers)}), got {len(masks)}")

    updates = []
    u = x
    for l, (layer, target, mask) in enumerate(zip(layers, targets, masks)):
        try:
            update = one_shot_layer_update(layer, u, target, bias=bias, mask=mask)
        except ValueError as err:
            raise ValueError(f"layer {l}: {err}") from err
        updates.append(update)
        u = normalize(update.y[None, :], norm)[0]  # the next layer sees only the orientation
    return updates


def apply_updates(layers, updates) -> None:
    """Add each update's ``dW`` and ``db`` to its layer, in place (a plain step)."""
    for layer, update in zip(layers, updates):
        layer.W += update.dW
        layer.b += update.db


def one_shot_network_step(
    layers,
    x,
    S_star,
    norm: str = "rms",
    *,
    bias: bool = True,
    masks=None,
    goodness: str = "ssq",
) -> list[OneShot]:
    r"""Move every layer's goodness for ``x`` to its target, in one simultaneous step.

    :func:`one_shot_network_updates` followed by :func:`apply_updates`: all updates come
    from one forward pass and are applied together, and afterwards

    .. math:: \sum_j y_{l,j}(x)^2 = S^*_l \quad \text{for every layer } l,

    with every unit that was on still on and every unit that was off still off.

    Parameters
    ----------
    layers, x, S_star, norm, bias, masks, goodness
        As for :func:`one_shot_network_updates`.

    Returns
    -------
    updates : list of OneShot
        What was applied, with each layer's goodness before the step (``S_L``).
    """
    updates = one_shot_network_updates(
        layers, x, S_star, norm, bias=bias, masks=masks, goodness=goodness
    )
    apply_updates(layers, updates)
    return updates


def one_shot_model_step(model, x, S_star, label=None, *, bias: bool = True) -> list[OneShot]:
    r""":func:`one_shot_network_step` for an :class:`ff_numpy.model.FFNet`.

    The label is written into the image and the result normalised as the model does
    (``model.label_code``, ``model.norm``); then every hidden layer's goodness for that
    input is moved to its target in one step. The update goes straight into the weights,
    not through an optimiser: a plain step, so the model's momentum, weight decay and
    peer-normalisation state are neither used nor changed, and the readout is untouched.

    Parameters
    ----------
    model : FFNet
        Needs squared goodness (``model.goodness``, if present, must be ``"ssq"``) and
        an exact normalisation (``model.norm``).
    x : ndarray, shape (n_in,)
        One image.
    S_star : float or sequence of float
        One target for every hidden layer, or one per layer.
    label : int, optional
        The label written into the image; ``None`` for the neutral label.
    bias : bool
        Whether to update the biases.

    Returns
    -------
    updates : list of OneShot
    """
    _check_one_shot_kind(getattr(model, "goodness", "ssq"))
    norm = _check_exact_norm(model.norm)
    x = _check_vector(x, "x", model.n_in)
    labels = None if label is None else np.array([int(label)])
    u = model.label_code.embed(x[None, :].astype(model.dtype), labels)  # (1, n_in)
    u = normalize(u, norm)[0]
    masks = [getattr(layer, "mask", None) for layer in model.layers]
    return one_shot_network_step(model.layers, u, S_star, norm, bias=bias, masks=masks)
