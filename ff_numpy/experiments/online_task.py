r"""The online task: one pass of a fixed stream, chunk by chunk, learning by one-shot
jumps (batch size 1) or by mini-batches (``ff-numpy train online``; the experiment, its
options and defaults are in :mod:`ff_numpy.experiments.online`).

A jump moves every hidden layer's goodness for one labelled example towards a target
above (positive data) or below (negative data) the threshold, with the damped one-shot
step of Eq. 4 (:func:`ff_numpy.fast.one_shot_layer_update`); :func:`one_shot_jump`
decides which layers jump and applies it.
"""

from __future__ import annotations

import numpy as np

from ff_numpy import blas, fast
from ff_numpy import goodness as gd
from ff_numpy.experiments.evaluation import ff_errors
from ff_numpy.experiments.task import LabelledTask
from ff_numpy.model import FFNet
from ff_numpy.negatives import WRONG_LABELS, hard_wrong_labels, random_wrong_labels
from ff_numpy.norm import normalize

METHODS = ("oneshot", "minibatch")
JUMP_IF = ("always", "short", "wrong")


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


def one_shot_jump(
    model: FFNet,
    u: np.ndarray,
    is_positive: bool,
    targets: list[float],
    damping: float = 1.0,
    jump_if: str = "always",
) -> list[dict]:
    r"""One damped one-shot jump of every hidden layer for one labelled, normalised input.

    One forward pass gives every layer's input :math:`u_l` and goodness
    :math:`S_l = \sum_j y_{l,j}^2`; each layer whose rule (``jump_if``) says so then takes
    the damped one-shot step of Eq. 4 towards its target, in place
    (:func:`ff_numpy.fast.one_shot_layer_update` with ``damping``), which multiplies every
    active unit of layer :math:`l` by :math:`k = 1 + d (\sqrt{S^*_l / S_l} - 1) > 0` for
    this input. The next layer's normalised input is therefore unchanged, and all the
    layers' updates, computed from the one forward pass, hold together (Sec. 7). A layer
    with every unit off (:math:`S_l = 0`) cannot be scaled: its jump is skipped and
    reported.

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
            mask = getattr(layer, "mask", None)
            fast.one_shot_layer_update(
                layer, u, S_star, mask=mask, damping=damping, in_place=True, y=y
            )
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


# ----------------------------------------------------------------------------- settings
def check_method_options(method, negatives, jump_if, margin, damping, model=None) -> None:
    """Raise ``ValueError`` naming the first option that does not fit ``method``."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if negatives not in WRONG_LABELS:
        raise ValueError(f"--negatives must be one of {WRONG_LABELS}, got {negatives!r}")
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
