r"""The top-down recurrent Forward-Forward network of the paper's Fig. 3 (Sec. 3.4).

A static image is treated as a boring video: the bottom "layer" is the image, repeated
at every time step, the top "layer" is a one-of-N label, and between them sit hidden
layers of ReLUs that read both the layer below and the layer above. Numbering the layers
as in Fig. 3 (image = layer 0, hidden layers 1..L, label = layer L + 1), and writing
``norm`` for the length normalisation of :mod:`ff_numpy.norm`:

.. code-block:: text

    iteration 0 (no label):  y_k = relu(norm(y_{k-1}) W_up_k + b_k)          bottom-up
    iteration t = 1..T:      a_k = norm(y_{k-1}) W_up_k + norm(y_{k+1}) W_down_k + b_k
                             y_k <- d y_k + (1 - d) relu(a_k)                 damping d

with ``y_0`` the image and ``y_{L+1}`` the label vector. Every hidden layer reads the
states of the previous step (``"synchronous"``), or, with ``"alternating"``, the even
layers are updated from the odd ones and then the odd layers from the new even ones
(one even-then-odd sweep is one iteration).

Learning is Forward-Forward at every hidden layer and iteration: the goodness of the
damped state (the activity before normalisation), by default :math:`G = \sum_j y_j^2`,
enters the layer loss (by default Eq. 1's logistic loss), and its gradient is taken with
everything the update *read* held constant: the normalised states below and above, and
the layer's own previous state. So for one layer at one iteration (per example;
derivations Sec. 17)

.. code-block:: text

    a = h_below W_up + h_above W_down + b     # up.linear(h_below) + down.linear(h_above)
                                              #  (B, n_below) @ (n_below, n)
                                              #  + (B, n_above) @ (n_above, n)
    y = d y_prev + (1 - d) relu(a)
    G = goodness.G(y)                         # sum_j y_j^2 (Eq. 1), or sum_j y_j
    L = loss.L(G, s, theta)                   # softplus(-s (G - theta)) (Eq. 1), or SymBa
    dL_dG = loss.dL_dG(G, s, theta)
    dL_dy = goodness.dL_dy(y, dL_dG)          # 2 y dL_dG for the sum of squares
    dL_da = dL_dy (1 - d) [a > 0]
    dL_dW_up   = up.weight_grad(h_below, dL_da)      # h_below^T dL_da: (n_below, n)
    dL_dW_down = down.weight_grad(h_above, dL_da)    # h_above^T dL_da: (n_above, n)
    dL_db      = sum_rows dL_da

with ``s`` the sign of each row (:func:`ff_numpy.goodness.sign`): the max/min objective
lives only there. Each connection (``up[l]``, ``down[l]``, the label's connection
``down[L - 1]``) is any layer of the library's interface (:class:`~ff_numpy.layers.Dense`,
:class:`~ff_numpy.layers.Masked`, :class:`ff_numpy.locally_connected.Local`): the net
calls only its ``linear`` (``x W``, or ``out + x W``), ``weight_grad`` (``x^T dL_da`` in
the layer's own layout of ``W``), ``params``, ``n_in`` and ``n_out``, so a locally
connected layer that stores only its existing weights serves as well as a dense one
(the CIFAR-10 net of Sec. 4 and Table 1: local fields bottom-up and top-down).

No gradient with respect to any state is ever formed, so nothing flows back in time
(no backpropagation through time) and nothing flows between layers. The training loss
of a mini-batch is the sum over the loss iterations (default 1..8) of the mean over its
examples of every hidden layer's loss; its gradient is accumulated over the iterations
and applied once. Iteration 0 carries no loss: it has no label, so positive and negative
data are the same there.

Negative data are wrong labels drawn from the class probabilities of a softmax readout
of the label-free iteration 0 (trained on its own weights only, by cross-entropy). The
same readout gives the one-pass classification; the goodness classification runs the
net once per label and averages the goodness over iterations 3 to 5.
"""

from __future__ import annotations

import numpy as np

from ff_numpy import goodness as gd
from ff_numpy import loss as lossmod
from ff_numpy.layers import Dense, check_layers
from ff_numpy.negatives import hard_wrong_labels, random_wrong_labels
from ff_numpy.norm import PeerNorm, check_scale, normalize
from ff_numpy.readout import SoftmaxReadout
from ff_numpy.validate import (
    check_labels,
    check_matrix,
    copy_state,
    finite_float,
    non_negative_float,
)

SCHEDULES = ("synchronous", "alternating")
NEGATIVES = ("hard", "random")


# ----------------------------------------------------------------------------- one update
def damped_step(a: np.ndarray, y_prev: np.ndarray, damping: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The damped state update :math:`y = d\, y_{prev} + (1 - d) \operatorname{relu}(a)`.

    Parameters
    ----------
    a : ndarray, shape (B, n)
        Pre-activations; overwritten with :math:`(1 - d) \operatorname{relu}(a)`.
    y_prev : ndarray, shape (B, n)
        The previous state; overwritten with the new one.
    damping : float
        :math:`d` in [0, 1).

    Returns
    -------
    y : ndarray, shape (B, n)
        ``y_prev``, updated in place.
    r : ndarray, shape (B, n)
        ``a``, now :math:`(1 - d) \operatorname{relu}(a)`: positive exactly where
        :math:`a > 0`, which is what :func:`dL_da_damped` needs for the ReLU's derivative.
    """
    r = np.maximum(a, 0, out=a)  # relu(a), in place
    r *= 1.0 - damping
    y_prev *= damping
    y_prev += r  # y = d y_prev + (1 - d) relu(a)
    return y_prev, r


def dL_da_damped(
    y: np.ndarray,
    r: np.ndarray,
    dL_dG: np.ndarray,
    damping: float,
    out=None,
    goodness=None,
    starts=None,
) -> np.ndarray:
    r"""Derivative of the layer loss with respect to the pre-activations, with the
    previous state held constant (Sec. 3.4).

    .. math::
        y = d\, y_{prev} + (1 - d) \operatorname{relu}(a)
        \;\Rightarrow\;
        \frac{\partial L}{\partial a_{nj}} = \frac{\partial L}{\partial y_{nj}}\,
        (1 - d)\, [a_{nj} > 0]

    with :math:`\partial L / \partial y` from the goodness (``goodness.dL_dy``):
    :math:`\partial L_n / \partial G_n \cdot 2 y_{nj}` for the sum of squares.

    Parameters
    ----------
    y : ndarray, shape (B, n)
        The new (damped) state.
    r : ndarray, shape (B, n)
        From :func:`damped_step`: positive exactly where :math:`a > 0`.
    dL_dG : ndarray, shape (B,), or (B, n_groups) with ``starts``
        Derivative of the layer loss with respect to each row's goodness (or each
        location's).
    damping : float
    out : ndarray, shape (B, n), optional
    goodness : goodness part, optional
        :func:`ff_numpy.goodness.make_goodness` (default the sum of squares).
    starts : ndarray of int, optional
        First unit of every location, for a goodness per location.

    Returns
    -------
    dL_da : ndarray, shape (B, n)
        No subnormal entry: a row factor small enough to make one is zero
        (:func:`ff_numpy.blas.row_factor`, inside the goodness' ``dL_dy``).
    """
    goodness = _SUM_OF_SQUARES if goodness is None else goodness
    # y = d y_prev + (1 - d) relu(a)  =>  dL/da = dL/dy (1 - d) [a > 0]   (y_prev constant)
    # dL/dy is linear in dL/dG (row n scales by dL/dG_n), so the constant (1 - d) rides
    # in the row factor: one pass over (B, n) instead of two.
    dL_dy_1md = goodness.dL_dy(y, (1.0 - damping) * dL_dG, starts)  # (1 - d) dL/dy: (B, n)
    return np.multiply(dL_dy_1md, r > 0, out=out)  # ReLU'(a) = [a > 0]


_SUM_OF_SQUARES = gd.make_goodness("ssq")


def _wrong_labels(negatives, q, labels, n_classes, rng, floor):
    if negatives == "hard":
        return hard_wrong_labels(q, labels, rng, floor=floor)
    return random_wrong_labels(labels, n_classes, rng)


# ----------------------------------------------------------------------------- the network
class RecurrentFFNet:
    r"""The recurrent net of Fig. 3: image below, label on top, hidden layers between.

    Parameters
    ----------
    n_in : int
        Image size (784 for MNIST).
    hidden : sequence of int
        Hidden layer sizes, bottom to top, e.g. ``(2000, 2000)``.
    n_classes : int
        Size of the one-of-N label layer.
    rng : numpy.random.Generator
        Draws the initial weights.
    damping : float
        :math:`d` in [0, 1): the new state is ``d * previous + (1 - d) * computed``.
    iterations : int
        Damped iterations after the initial bottom-up pass (the paper: 8).
    schedule : {"synchronous", "alternating"}
        Every hidden layer reads the states of the previous step; or the even layers
        (Fig. 3 numbering, image = 0) are updated first from the odd ones, then the odd
        ones from the new even ones.
    loss_iterations : (int, int)
        First and last iteration (inclusive, 1-based) at which the FF objective is
        applied (default all, 1..8).
    loss_after_label : bool
        Apply the objective at a layer only from the first iteration at which label
        information can have reached it (:attr:`label_reached`).
    average_iterations : (int, int)
        The iterations whose goodness is averaged to classify (the paper: 3..5).
    skip_first : bool
        Leave the first hidden layer out of the goodness used to classify.
    objective : {"max", "min"}
        ``"max"``: positive data (the true label) should have high goodness, and the
        label with the *highest* goodness wins; ``"min"``: positive data should have low
        goodness, and the label with the *lowest* goodness wins (the paper expects the
        top-down input then to learn to cancel the bottom-up input).
    theta : float or sequence of float, optional
        Threshold of each hidden layer; default its number of units (for ``"rms"``).
        Not used by a loss without threshold (SymBa).
    goodness_per : {"layer", "location"}
        Apply the loss to the goodness of the whole layer (the default) or separately to
        every location of a locally connected layer (each location's goodness against
        its share of ``theta``, ``theta * units / n``); the layers' ``up`` connections
        give the locations (``location_starts()``). Classification sums the goodness
        over the layer either way.
    goodness : {"ssq", "sum"} or goodness part
        The goodness of a damped state (:func:`ff_numpy.goodness.make_goodness`): the sum
        of squared activities (Eq. 1, the default) or of the activities (Sec. 10).
    loss : loss part, optional
        The layer loss (:func:`ff_numpy.loss.make_loss`); default the logistic loss of
        Eq. 1, :class:`ff_numpy.loss.Logistic`.
    norm : {"rms", "l2", "mean", "l1"}, optional
        The length normalisation of the image, the label and every state before it is
        read; default the one that goes with the goodness (``"rms"`` for the sum of
        squares, as in Hinton's code; ``"mean"`` for the unsquared goodness).
    peer_strength : float
        Peer normalisation (:class:`ff_numpy.norm.PeerNorm`) on the positive rows of every
        loss iteration; 0 turns it off. The rule's term :math:`\lambda (m_j - \bar m) / B`
        is added to :math:`\partial L / \partial a` as in the feed-forward net, so with
        damping it is :math:`1 / (1 - d)` times the gradient of
        :meth:`~ff_numpy.norm.PeerNorm.penalty` through the damped state on active units
        (the two agree at ``d = 0``).
    hard_floor : float
        Share of uniform draws mixed into the hard negative labels
        (:func:`ff_numpy.negatives.hard_wrong_labels`).
    readout_layers : sequence of int, optional
        Hidden layers (0-based) whose normalised iteration-0 activities feed the softmax
        readout; default all.
    up, down : sequence of layers, optional
        The connections, one per hidden layer: ``up[l]`` maps the layer below (image or
        hidden) to hidden layer ``l`` and holds its bias; ``down[l]`` maps the layer
        above (hidden, or the label for the top layer) to it. Any layer of the library's
        interface (``n_in``, ``n_out``, ``linear``, ``weight_grad``, ``params``, ``W`` and
        ``b`` of ``dtype``): :class:`~ff_numpy.layers.Dense`,
        :class:`~ff_numpy.layers.Masked`, :class:`ff_numpy.locally_connected.Local`
        (whose ``W`` holds only the existing weights); default dense layers, drawn from
        ``rng``. The bias of a ``down`` layer is not used.
    dtype : numpy dtype

    Attributes
    ----------
    goodness_fn, loss
        The goodness and loss parts; :attr:`goodness` is the goodness' name.
    up, down : list of layers
    """

    def __init__(
        self,
        n_in: int,
        hidden,
        n_classes: int,
        rng: np.random.Generator,
        *,
        damping: float = 0.3,
        iterations: int = 8,
        schedule: str = "synchronous",
        loss_iterations=(1, 8),
        loss_after_label: bool = False,
        average_iterations=(3, 5),
        skip_first: bool = False,
        objective: str = "max",
        theta=None,
        goodness="ssq",
        loss=None,
        goodness_per: str = "layer",
        norm: str | None = None,
        peer_strength: float = 0.0,
        hard_floor: float = 0.0,
        readout_layers=None,
        up=None,
        down=None,
        dtype=np.float32,
    ):
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive layer size, got {hidden}")
        if n_in < 1 or n_classes < 2:
            raise ValueError(f"need n_in >= 1 and n_classes >= 2, got {n_in}, {n_classes}")
        if not 0.0 <= damping < 1.0:
            raise ValueError(f"damping must lie in [0, 1), got {damping}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}: expected one of {SCHEDULES}")
        first, last = (int(i) for i in loss_iterations)
        if not 1 <= first <= last <= iterations:
            raise ValueError(
                f"loss_iterations must satisfy 1 <= first <= last <= iterations "
                f"({iterations}), got {loss_iterations}"
            )
        lo, hi = (int(i) for i in average_iterations)
        if not 1 <= lo <= hi <= iterations:
            raise ValueError(
                f"average_iterations must satisfy 1 <= first <= last <= iterations "
                f"({iterations}), got {average_iterations}"
            )
        if skip_first and len(hidden) < 2:
            raise ValueError("skip_first needs at least two hidden layers")
        self.goodness_fn = gd.make_goodness(goodness) if isinstance(goodness, str) else goodness
        self.goodness = self.goodness_fn.name
        self.loss = lossmod.make_loss() if loss is None else loss  # L(G, s, theta), dL_dG
        self.n_in, self.hidden, self.n_classes = int(n_in), hidden, int(n_classes)
        self.damping = float(damping)
        self.iterations = int(iterations)
        self.schedule = schedule
        self.loss_iterations = (first, last)
        self.loss_after_label = bool(loss_after_label)
        self.average_iterations = (lo, hi)
        self.skip_first = bool(skip_first)
        self.objective = gd.check_objective(objective)
        self.norm = check_scale(norm or self.goodness_fn.norm)
        self.dtype = np.dtype(dtype)
        L = len(hidden)
        if theta is None:
            theta = [float(h) for h in hidden]
        elif np.isscalar(theta):
            theta = [float(theta)] * L
        self.theta = [float(finite_float().check(t, "theta")) for t in theta]
        if len(self.theta) != L:
            raise ValueError(f"theta needs one value per hidden layer ({L}), got {theta}")
        below = [self.n_in] + hidden[:-1]
        above = hidden[1:] + [self.n_classes]
        self.up = (
            list(up) if up is not None else [Dense(a, n, rng, dtype) for a, n in zip(below, hidden)]
        )
        if down is None:
            down = [Dense(a, n, rng, dtype) for a, n in zip(above, hidden)]
        self.down = list(down)
        for name, layers, sizes in (("up", self.up, below), ("down", self.down, above)):
            check_layers(layers, zip(sizes, hidden), self.dtype, f"{name} layers")
        self._set_goodness_groups(goodness_per)
        self.peer_strength = float(non_negative_float().check(peer_strength, "peer_strength"))
        self.peers = [PeerNorm(h, peer_strength) if peer_strength else None for h in hidden]
        if not 0.0 <= hard_floor <= 1.0:
            raise ValueError(f"hard_floor must lie in [0, 1], got {hard_floor}")
        self.hard_floor = float(hard_floor)
        if readout_layers is None:
            readout_layers = range(L)
        self.readout_layers = [int(i) for i in readout_layers]
        if not self.readout_layers or not all(0 <= i < L for i in self.readout_layers):
            raise ValueError(f"readout_layers must index 0..{L - 1}, got {readout_layers}")
        self.readout = SoftmaxReadout(sum(hidden[i] for i in self.readout_layers), n_classes, dtype)
        self.phases = self._phases()
        self.label_reached = self._label_reached()
        self.loss_ranges = [
            (max(first, self.label_reached[l]) if self.loss_after_label else first, last)
            for l in range(L)
        ]
        if any(f > e for f, e in self.loss_ranges):
            raise ValueError(
                f"with loss_after_label, the label reaches the layers at iterations "
                f"{self.label_reached}, after the last loss iteration {last}"
            )

    def _set_goodness_groups(self, goodness_per: str) -> None:
        """``group_starts[l]``: the first unit of every location of hidden layer ``l``
        (None: one goodness for the layer), ``group_share[l]``: each group's share of the
        layer's units, hence of its threshold (:meth:`layer_theta`)."""
        if goodness_per not in ("layer", "location"):
            raise ValueError(f"goodness_per must be 'layer' or 'location', got {goodness_per!r}")
        self.goodness_per = goodness_per
        self.group_starts = [None] * len(self.hidden)
        self.group_share = [None] * len(self.hidden)
        if goodness_per == "layer":
            return
        for l, layer in enumerate(self.up):
            starts, share = gd.location_groups(layer, f"hidden layer {l}")
            if starts is None:
                raise ValueError(
                    f"goodness_per='location' needs locally connected layers: hidden layer "
                    f"{l}'s connection from below ({type(layer).__name__}) has no locations"
                )
            self.group_starts[l] = starts
            self.group_share[l] = share  # (n_groups,)

    def layer_theta(self, l: int):
        """Hidden layer ``l``'s threshold: ``theta[l]``, or per location its share of it
        (an array, one per location, with ``goodness_per="location"``)."""
        share = self.group_share[l]
        return self.theta[l] if share is None else self.theta[l] * share

    # ------------------------------------------------------------------ schedule
    @property
    def score_layers(self) -> list[int]:
        """Hidden layers (0-based) whose goodness is summed to classify."""
        return list(range(1 if self.skip_first else 0, len(self.hidden)))

    def _phases(self) -> list[list[int]]:
        """The hidden layers (0-based) updated together, in order, within one iteration."""
        L = len(self.hidden)
        if self.schedule == "synchronous":
            return [list(range(L))]
        # Fig. 3 numbering: hidden layer l (0-based) is layer l + 1; even layers first.
        even = [l for l in range(L) if (l + 1) % 2 == 0]
        odd = [l for l in range(L) if (l + 1) % 2 == 1]
        return [p for p in (even, odd) if p]

    def _label_reached(self) -> list[int]:
        """First iteration (1-based) at which each hidden layer's update reads a state
        that depends on the label (the top layer: iteration 1)."""
        L = len(self.hidden)
        informed = [False] * L
        reached = [0] * L
        for t in range(1, L * 2 + 2):
            for phase in self.phases:
                seen = list(informed)  # the states this phase reads
                for l in phase:
                    reads = (l == L - 1) or seen[l + 1] or (l > 0 and seen[l - 1])
                    if reads and not informed[l]:
                        informed[l], reached[l] = True, t
            if all(informed):
                break
        return reached

    def _reads(self, phase: list[int]) -> list[int]:
        """Hidden layers whose states the layers of ``phase`` read."""
        L = len(self.hidden)
        return sorted({l - 1 for l in phase if l > 0} | {l + 1 for l in phase if l < L - 1})

    # ------------------------------------------------------------------ inputs
    def image_input(self, x: np.ndarray) -> np.ndarray:
        """The normalised image, shape (B, n_in), a new array of ``dtype``."""
        return normalize(np.array(x, dtype=self.dtype), self.norm)

    def label_input(self, labels: np.ndarray) -> np.ndarray:
        """The normalised one-of-N label vectors, shape (B, n_classes)."""
        onehot = np.zeros((len(labels), self.n_classes), dtype=self.dtype)
        onehot[np.arange(len(labels)), labels] = 1.0
        return normalize(onehot, self.norm, out=onehot)

    def initial_pass(self, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Iteration 0: one bottom-up pass with no label (and no top-down input).

        Parameters
        ----------
        X : ndarray, shape (B, n_in)
            The normalised image.

        Returns
        -------
        ys : list of ndarray, shapes (B, n_l)
            The initial states.
        image_term : ndarray, shape (B, n_0)
            ``X W_up_0`` (no bias): the first layer's bottom-up input, the same at every
            iteration, so it is computed once.
        """
        image_term = self.up[0].linear(X)  # (B, n_in) @ (n_in, n_0) -> (B, n_0)
        ys = []
        for l, up in enumerate(self.up):
            if l == 0:
                a = image_term + up.b
            else:  # (B, n_below) @ (n_below, n_l) -> (B, n_l)
                a = up.linear(normalize(ys[-1], self.norm))
                a += up.b
            ys.append(np.maximum(a, 0, out=a))
        return ys, image_term

    def _features(self, ys: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([normalize(ys[l], self.norm) for l in self.readout_layers], axis=1)

    # ------------------------------------------------------------------ the dynamics
    def _iterate(self, image_term, Y, lab_h, n_iter, h_buffer, on_update=None):
        """Run ``n_iter`` damped iterations on the states ``Y``, in place.

        Parameters
        ----------
        image_term : ndarray, shape (N_img, n_0)
            ``X W_up_0`` of the images; the rows of ``Y`` are ``m`` blocks of ``N_img``
            rows (``m = 2`` for positive and negative data, ``n_classes`` to classify),
            all blocks seeing the same images.
        Y : list of ndarray, shapes (m N_img, n_l)
            The states, updated in place.
        lab_h : ndarray, shape (m N_img, n_classes)
            The normalised label of every row.
        n_iter : int
        h_buffer : callable
            ``h_buffer(t, l)``: the array, shape (m N_img, n_l), that receives
            ``norm(Y[l])`` as read at iteration ``t``.
        on_update : callable, optional
            ``on_update(t, l, y, r, h_below, h_above)`` after layer ``l``'s update at
            iteration ``t`` (``h_below`` is None for the first layer: its input is the
            image).
        """
        L = len(self.hidden)
        A = [np.empty_like(y) for y in Y]  # pre-activation buffers, reused every iteration
        for t in range(1, n_iter + 1):
            for phase in self.phases:
                H = {k: normalize(Y[k], self.norm, out=h_buffer(t, k)) for k in self._reads(phase)}
                for l in phase:
                    h_below = H[l - 1] if l > 0 else None
                    h_above = H[l + 1] if l < L - 1 else lab_h
                    a = self.down[l].linear(h_above, out=A[l])  # (N, n_above) @ (n_above, n_l)
                    if l == 0:  # the image term, computed once per batch, for every block
                        a.reshape(-1, *image_term.shape)[...] += image_term
                    else:  # (N, n_below) @ (n_below, n_l), added in the GEMM
                        self.up[l].linear(h_below, out=a, accumulate=True)
                    a += self.up[l].b
                    y, r = damped_step(a, Y[l], self.damping)  # y = d y + (1 - d) relu(a)
                    if on_update is not None:
                        on_update(t, l, y, r, h_below, h_above)

    # ------------------------------------------------------------------ learning
    def unroll_grads(self, x, labels, wrong, trace=None) -> tuple[dict, dict]:
        """The accumulated local gradients of one mini-batch (no weight is changed; with
        peer normalisation on, the running means of the units are updated, as in training).

        Runs the initial pass and the damped iterations on ``B`` positive rows (image
        with its true label) and ``B`` negative rows (the same image with ``wrong``), and
        sums every hidden layer's closed-form local gradient over its loss iterations.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        labels, wrong : ndarray of int, shape (B,)
            The true labels and the negative ones.
        trace : list, optional
            If given, receives ``(t, l, h_below, h_above, y_prev)`` (copies) for every
            update that carries a loss: what it read (``h_below`` is the normalised
            image for the first layer). ``tests/test_recurrent.py`` rebuilds the sum of
            :meth:`layer_local_grads` from it.

        Returns
        -------
        grads : dict of str to ndarray
            ``"up{l}.W"``, ``"up{l}.b"``, ``"down{l}.W"``: gradients of the batch loss
            (sum over loss iterations of the mean over the ``B`` pairs).
        losses : dict of str to float
            ``"layer{l}"``: that layer's loss per pair, averaged over its loss iterations.
        """
        x = check_matrix(x, "x", self.n_in)
        B = x.shape[0]
        labels = check_labels(labels, self.n_classes, n_rows=B)
        wrong = check_labels(wrong, self.n_classes, "wrong", n_rows=B)
        X = self.image_input(x)
        ys, image_term = self.initial_pass(X)
        return self._unroll_grads(X, ys, image_term, labels, wrong, trace)

    def _unroll_grads(self, X, ys, image_term, labels, wrong, trace=None):
        B, L, d = X.shape[0], len(self.hidden), self.damping
        T = self.loss_iterations[1]  # no iteration after the last loss iteration matters
        Y = [np.concatenate([y, y]) for y in ys]  # (2B, n_l): positive rows, then negative
        lab_h = self.label_input(np.concatenate([labels, wrong]))  # (2B, C)
        s = gd.sign(np.arange(2 * B) < B, self.objective)  # +1 where G should exceed theta
        # H[l][t - 1]: norm(Y[l]) as read at iteration t; D[l][t - 1]: dL/da of layer l.
        H = [np.zeros((T, 2 * B, n), self.dtype) for n in self.hidden]
        D = [np.zeros((T, 2 * B, n), self.dtype) for n in self.hidden]
        loss_sums = [0.0] * L
        thetas = [self.layer_theta(l) for l in range(L)]  # read once a step

        def learn(t, l, y, r, h_below, h_above):
            first, last = self.loss_ranges[l]
            if not first <= t <= last:
                return
            starts, theta = self.group_starts[l], thetas[l]
            s_l = s if starts is None else s[:, None]  # one sign per row, or per location
            # (2B,) or (2B, n_groups): goodness of the damped state, before norm
            G = self.goodness_fn.G(y, starts)
            loss_sums[l] += float(self.loss.L(G, s_l, theta).sum() / B)
            dL_dG = self.loss.dL_dG(G, s_l, theta) / B  # mean over the B pairs
            # dL/da = dL/dy (1 - d) [a > 0], into this iteration's preallocated rows
            dL_da = dL_da_damped(
                y, r, dL_dG, d, out=D[l][t - 1], goodness=self.goodness_fn, starts=starts
            )
            if self.peers[l] is not None:  # footnote 9, on the positive rows
                self.peers[l].update(y[:B])
                dL_da[:B] += (self.peers[l].dL_da() / B).astype(self.dtype)

        on_update = learn
        if trace is not None:  # also record what every update with a loss read
            prev = [y.copy() for y in Y]

            def on_update(t, l, y, r, h_below, h_above):
                first, last = self.loss_ranges[l]
                if first <= t <= last:
                    below = np.concatenate([X, X]) if h_below is None else h_below.copy()
                    trace.append((t, l, below, h_above.copy(), prev[l]))
                prev[l] = y.copy()
                learn(t, l, y, r, h_below, h_above)

        self._iterate(image_term, Y, lab_h, T, lambda t, k: H[k][t - 1], on_update)

        grads = {}
        for l in range(L):
            first, last = self.loss_ranges[l]
            it = slice(first - 1, last)
            n = self.hidden[l]
            D_l = D[l][it].reshape(-1, n)  # (T_l 2B, n): every loss iteration's rows
            # a = h_below W_up + h_above W_down + b  =>  dL/db = sum of dL/da
            grads[f"up{l}.b"] = D_l.sum(axis=0)
            if l == 0:
                # The image is the same at every iteration and in both halves:
                # sum_t X2^T D_t = X^T (sum_t D_t[:B] + sum_t D_t[B:])
                D_sum = D[l][it].sum(axis=0)  # (2B, n)
                grads[f"up{l}.W"] = self.up[l].weight_grad(
                    X, D_sum[:B] + D_sum[B:]
                )  # (n_in, B) @ (B, n)
            else:  # (n_below, T_l 2B) @ (T_l 2B, n) -> (n_below, n)
                grads[f"up{l}.W"] = self.up[l].weight_grad(
                    H[l - 1][it].reshape(-1, self.hidden[l - 1]), D_l
                )
            if l == L - 1:  # the label vector is the same at every iteration
                grads[f"down{l}.W"] = self.down[l].weight_grad(
                    lab_h, D[l][it].sum(axis=0)
                )  # (C, 2B) @ (2B, n)
            else:  # (n_above, T_l 2B) @ (T_l 2B, n) -> (n_above, n)
                grads[f"down{l}.W"] = self.down[l].weight_grad(
                    H[l + 1][it].reshape(-1, self.hidden[l + 1]), D_l
                )
        losses = {
            f"layer{l}": loss_sums[l] / (self.loss_ranges[l][1] - self.loss_ranges[l][0] + 1)
            for l in range(L)
        }
        return grads, losses

    def layer_local_grads(self, l, h_below, h_above, y_prev, s) -> dict:
        """The closed-form local gradient of one layer at one iteration (the reference
        the tests compare with autograd; :meth:`unroll_grads` computes the same sums
        with one matrix product per connection).

        Parameters
        ----------
        l : int
            Hidden layer (0-based).
        h_below : ndarray, shape (B, n_below)
            What the update read from below (the normalised image for ``l = 0``).
        h_above : ndarray, shape (B, n_above)
            What it read from above (the normalised label for the top layer).
        y_prev : ndarray, shape (B, n_l)
            The layer's previous state.
        s : ndarray, shape (B,)
            :func:`ff_numpy.goodness.sign` of each row.

        Returns
        -------
        out : dict
            ``"loss"`` (sum over rows, or over pairs for a pairwise loss), ``"W_up"``,
            ``"W_down"`` (each in its layer's layout of ``W``), ``"b"``.
        """
        a = self.up[l].linear(h_below)  # (B, n_below) @ (n_below, n) -> (B, n)
        self.down[l].linear(h_above, out=a, accumulate=True)  # + (B, n_above) @ (n_above, n)
        a += self.up[l].b
        y, r = damped_step(a, np.array(y_prev, dtype=self.dtype), self.damping)
        starts, theta = self.group_starts[l], self.layer_theta(l)
        s_l = s if starts is None else np.asarray(s)[:, None]
        G = self.goodness_fn.G(y, starts)  # (B,), or (B, n_groups) per location
        dL_dG = self.loss.dL_dG(G, s_l, theta)
        dL_da = dL_da_damped(y, r, dL_dG, self.damping, goodness=self.goodness_fn, starts=starts)
        return {
            "loss": float(self.loss.L(G, s_l, theta).sum()),
            "W_up": self.up[l].weight_grad(h_below, dL_da),  # (n_below, B) @ (B, n)
            "W_down": self.down[l].weight_grad(h_above, dL_da),  # (n_above, B) @ (B, n)
            "b": dL_da.sum(axis=0),
        }

    def connections(self) -> dict[str, dict[str, np.ndarray]]:
        """The trainable arrays of every connection, by connection and parameter name.

        ``{"up0": {"W": ..., "b": ...}, "down0": {"W": ...}, ...}`` (bottom to top): the
        ``params()`` of each ``up`` layer, and the weights of each ``down`` layer (its
        bias is not used). ``"up0" + "." + "W"`` is the key of the gradient in
        :meth:`unroll_grads` and of the optimiser's state for that array.
        """
        out = {}
        for l in range(len(self.hidden)):
            out[f"up{l}"] = self.up[l].params()
            out[f"down{l}"] = {"W": self.down[l].W}
        return out

    def train_step(
        self,
        x,
        labels,
        rng,
        opt,
        readout_opt,
        lr_scale: float = 1.0,
        negatives: str = "hard",
        return_grads: bool = False,
    ) -> dict:
        """One update of the readout and of every connection from one mini-batch.

        1. Iteration 0 (no label) gives the readout's features: one cross-entropy step
           of the readout, and its class probabilities ``q``.
        2. A wrong label per image, drawn from ``q`` without the true label (``"hard"``,
           with :attr:`hard_floor` of uniform draws) or uniformly (``"random"``).
        3. The damped iterations on the positive and negative rows, with every layer's
           local gradient accumulated (:meth:`unroll_grads`), then one optimiser step
           per connection (``opt.update``, its state keyed ``"up{l}.W"``, ``"up{l}.b"``,
           ``"down{l}.W"``; weight decay on the weights only).

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        labels : ndarray of int, shape (B,)
        rng : numpy.random.Generator
            Draws the wrong labels.
        opt, readout_opt : ff_numpy.optim.Optimizer
            Optimisers of the connections and of the readout.
        lr_scale : float
            The schedule's factor.
        negatives : {"hard", "random"}
        return_grads : bool
            Also return every connection's gradient as applied, summed over the loss
            iterations (copies, taken before the optimiser's step, in each layer's layout
            of ``W``): ``losses["grads"]["up0"]["W"]``, keyed as :meth:`connections`.

        Returns
        -------
        losses : dict
            ``"softmax"`` and ``"layer{l}"`` (the layer's loss per pair, averaged over its
            loss iterations); ``"grads"`` with ``return_grads``.
        """
        if negatives not in NEGATIVES:
            raise ValueError(f"unknown negatives {negatives!r}: expected one of {NEGATIVES}")
        x = check_matrix(x, "x", self.n_in)
        labels = check_labels(labels, self.n_classes, n_rows=x.shape[0])
        X = self.image_input(x)
        ys, image_term = self.initial_pass(X)
        loss_sm, dL_dV, dL_dc, q = self.readout.loss_and_grads(self._features(ys), labels)
        readout_opt.update(self.readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
        wrong = _wrong_labels(negatives, q, labels, self.n_classes, rng, self.hard_floor)
        grads, losses = self._unroll_grads(X, ys, image_term, labels, wrong)
        applied = {}
        for name, params in self.connections().items():
            g = {k: grads[f"{name}.{k}"] for k in params}  # dL/dW, dL/db summed over t
            if return_grads:  # copies: the optimiser may use its gradients as scratch
                applied[name] = {k: v.copy() for k, v in g.items()}
            opt.update(params, g, lr_scale, prefix=f"{name}.")  # decay on W only
        out = {"softmax": loss_sm, **losses}
        if return_grads:
            out["grads"] = applied
        return out

    # ------------------------------------------------------------------ classification
    def goodness_trace(
        self, x, n_iter: int | None = None, batch_size: int = 100, per_layer: bool = False
    ) -> np.ndarray:
        """Goodness summed over the scored layers, for every label and iteration.

        Parameters
        ----------
        x : ndarray, shape (N, n_in)
        n_iter : int, optional
            Iterations to run (default :attr:`iterations`).
        batch_size : int
            Images per block of ``batch_size * n_classes`` rows.
        per_layer : bool
            Keep every hidden layer's goodness apart, scored or not (to choose which
            layers to score on validation data without rerunning the net).

        Returns
        -------
        G : ndarray, shape (N, n_classes, n_iter), or (N, n_classes, n_iter, L) per layer
            ``G[n, k, t - 1]``: image ``n`` with label ``k`` at iteration ``t``
            (``G[n, k, t - 1, l]``: of hidden layer ``l`` alone).
        """
        x = check_matrix(x, "x", self.n_in)
        n_iter = self.iterations if n_iter is None else int(n_iter)
        C, L = self.n_classes, len(self.hidden)
        out = np.empty((len(x), C, n_iter, L) if per_layer else (len(x), C, n_iter))
        scored = set(range(L) if per_layer else self.score_layers)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            nb = len(xb)
            ys, image_term = self.initial_pass(self.image_input(xb))
            Y = [np.tile(y, (C, 1)) for y in ys]  # block k: every image with label k
            lab_h = self.label_input(np.repeat(np.arange(C), nb))
            scratch = [np.empty_like(y) for y in Y]
            G = out[start : start + nb]
            G[...] = 0.0

            def record(t, l, y, r, h_below, h_above, G=G, nb=nb):
                if l in scored:  # (C nb,) -> (nb, C)
                    g = self.goodness_fn.G(y).reshape(C, nb).T
                    if per_layer:
                        G[:, :, t - 1, l] = g
                    else:
                        G[:, :, t - 1] += g

            self._iterate(image_term, Y, lab_h, n_iter, lambda t, k, s=scratch: s[k], record)
        return out

    def run(self, x, labels, n_iter: int | None = None, on_update=None) -> list[np.ndarray]:
        r"""Run the net on images ``x`` with ``labels``: the label-free initial pass, then
        ``n_iter`` damped iterations (default :attr:`iterations`), as in training and
        :meth:`goodness_trace`; to watch the states settle.

        Parameters
        ----------
        x : ndarray, shape (N, n_in)
        labels : ndarray of int, shape (N,)
        n_iter : int, optional
        on_update : callable, optional
            ``on_update(t, l, y, r, h_below, h_above)`` after layer ``l``'s update at
            iteration ``t`` (``t = 0``: the initial pass, ``r``, ``h_below`` and
            ``h_above`` None): ``y`` is the new state and ``r`` is
            :math:`(1 - d) \operatorname{relu}(a)`, zero exactly where the pre-activation
            ``a <= 0``, where the layer's local gradient is zero. The arrays are reused:
            copy what you keep.

        Returns
        -------
        ys : list of ndarray, shapes (N, n_l)
            The states after the last iteration.
        """
        x = check_matrix(x, "x", self.n_in)
        labels = check_labels(labels, self.n_classes, n_rows=x.shape[0])
        n_iter = self.iterations if n_iter is None else int(n_iter)
        ys, image_term = self.initial_pass(self.image_input(x))
        if on_update is not None:
            for l, y in enumerate(ys):
                on_update(0, l, y, None, None, None)
        scratch = [np.empty_like(y) for y in ys]
        self._iterate(
            image_term, ys, self.label_input(labels), n_iter, lambda t, k: scratch[k], on_update
        )
        return ys

    def predict_goodness(self, x, window=None, batch_size: int = 100) -> np.ndarray:
        """The label whose run has the best goodness averaged over ``window`` (default
        :attr:`average_iterations`): highest under ``"max"``, lowest under ``"min"``."""
        lo, hi = window or self.average_iterations
        G = self.goodness_trace(x, hi, batch_size)[:, :, lo - 1 : hi].mean(axis=2)
        return np.argmax(G, axis=1) if self.objective == "max" else np.argmin(G, axis=1)

    def predict_softmax(self, x, batch_size: int = 1000) -> np.ndarray:
        """One-pass classification: the readout on the label-free iteration 0."""
        x = check_matrix(x, "x", self.n_in)
        preds = [
            self.readout.predict(self._features(self.initial_pass(self.image_input(xb))[0]))
            for xb in (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        ]
        return np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ config / state
    def config(self) -> dict:
        """Everything needed to rebuild the net (JSON-serialisable).

        The connections' layer types are recorded (``"connections"``) when any is not
        :class:`~ff_numpy.layers.Dense`; such layers are built by the caller and passed
        to :meth:`from_config`. The loss is recorded when it is not Eq. 1's logistic.
        """
        cfg = {
            "kind": "recurrent",
            "n_in": self.n_in,
            "hidden": self.hidden,
            "n_classes": self.n_classes,
            "damping": self.damping,
            "iterations": self.iterations,
            "schedule": self.schedule,
            "loss_iterations": list(self.loss_iterations),
            "loss_after_label": self.loss_after_label,
            "average_iterations": list(self.average_iterations),
            "skip_first": self.skip_first,
            "objective": self.objective,
            "theta": self.theta,
            "goodness": self.goodness,
            "norm": self.norm,
            "peer_strength": self.peer_strength,
            "hard_floor": self.hard_floor,
            "readout_layers": self.readout_layers,
            "dtype": self.dtype.name,
        }
        if self.loss.name != "logistic":
            cfg["loss"] = self.loss.config()
        if self.goodness_per != "layer":
            cfg["goodness_per"] = self.goodness_per
        types = self._connection_types()
        if any(t != "Dense" for kind in types.values() for t in kind):
            cfg["connections"] = types
        return cfg

    def _connection_types(self) -> dict[str, list[str]]:
        return {
            "up": [type(layer).__name__ for layer in self.up],
            "down": [type(layer).__name__ for layer in self.down],
        }

    @classmethod
    def from_config(
        cls, cfg: dict, rng: np.random.Generator | None = None, up=None, down=None
    ) -> RecurrentFFNet:
        """Rebuild from :meth:`config` (then load the weights with :meth:`load_state`).

        Parameters
        ----------
        cfg : dict
            From :meth:`config` (a configuration without ``"goodness"`` or ``"loss"``
            means the sum of squares and the logistic loss).
        rng : numpy.random.Generator, optional
            Draws the dense connections that are not given.
        up, down : sequence of layers, optional
            The connections, required where the configuration lists a type other than
            ``Dense`` (``cfg["connections"]``), built as for the saved net.
        """
        kwargs = {
            k: v
            for k, v in cfg.items()
            if k not in ("kind", "n_in", "hidden", "n_classes", "dtype", "loss", "connections")
        }
        types = cfg.get("connections", {})
        for name, given in (("up", up), ("down", down)):
            needed = [t for t in types.get(name, []) if t != "Dense"]
            if needed and given is None:
                raise ValueError(
                    f"the saved net's {name} connections are {types[name]}: build them as "
                    f"for that net and pass them, from_config(cfg, {name}=[...])"
                )
        net = cls(
            cfg["n_in"],
            cfg["hidden"],
            cfg["n_classes"],
            rng or np.random.default_rng(0),
            dtype=np.dtype(cfg["dtype"]),
            loss=lossmod.make_loss(**cfg.get("loss", {"name": "logistic"})),
            up=up,
            down=down,
            **kwargs,
        )
        built = net._connection_types()
        for name in ("up", "down"):
            if name in types and types[name] != built[name]:
                raise ValueError(
                    f"the saved net's {name} connections are {types[name]}, the given ones "
                    f"{built[name]}"
                )
        return net

    def state(self) -> dict[str, np.ndarray]:
        """All learned arrays by name (the unused biases of the ``down`` layers left out):
        ``"up{l}.W"``, ``"up{l}.b"``, ``"down{l}.W"`` (:meth:`connections`), the peer
        normalisation's running means and the readout."""
        out = {}
        connections = self.connections()
        for l in range(len(self.hidden)):
            for name in (f"up{l}", f"down{l}"):
                out.update({f"{name}.{k}": v for k, v in connections[name].items()})
            if self.peers[l] is not None:
                out[f"layer{l}.peer_mean"] = self.peers[l].mean
        out["readout.V"] = self.readout.V
        out["readout.c"] = self.readout.c
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state` in place (:func:`ff_numpy.validate.copy_state`)."""
        copy_state(self.state(), arrays)
