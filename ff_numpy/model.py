r"""The supervised Forward-Forward network: a stack of layers, each with its own objective.

One training step reads like the paper (Sec. 3.3):

.. code-block:: text

    batch (x, label)
    -> neutral-label pass: features -> softmax readout update, its probabilities q
    -> negative labels: uniform over the wrong ones, or hard (drawn from q)
    -> X = [x with true label ; x with wrong label], length-normalised   (2B rows)
    -> for each layer l:
           Y = relu(X W + b)                     forward, positive and negative rows at once
           G = sum_j Y_j^2                       goodness of every row
           dL_dG = -s sigmoid(-s (G - theta))    Eq. 1 and its loss, s = +1 / -1
           dW, db = local gradient               Eq. 3 in batch form; nothing leaves the layer
           update W, b
           X = normalise(Y)                      only the orientation goes up

The input to layer ``l + 1`` is the normalised output of layer ``l`` computed in the same
sweep, *before* layer ``l``'s update: every layer learns from one forward pass.

Classification (paper Sec. 3.3):

* by goodness: write each of the N labels into the image, run the net, add the goodness
  of the scored layers (every hidden layer but the first) and take the best label
  (highest under ``"max"``, lowest under ``"min"``);
* by softmax: one pass with the neutral label and the linear readout on the normalised
  activities of the scored layers.
"""

from __future__ import annotations

import numpy as np

from ff_numpy import goodness as gd
from ff_numpy import loss as lossmod
from ff_numpy.blackbox import BlackBox
from ff_numpy.layers import Dense, Masked, check_layers, dropout, layer_from_config
from ff_numpy.masks import paper_local_architecture
from ff_numpy.negatives import (
    N_BLUR,
    NEGATIVES,
    HybridImages,
    LabelCode,
    all_shifts,
)
from ff_numpy.norm import PeerNorm, check_scale, normalize, normalize_grouped
from ff_numpy.readout import SoftmaxReadout
from ff_numpy.validate import (
    check_labels,
    check_matrix,
    copy_state,
    finite_float,
    non_negative_float,
)


class FFNet:
    """A supervised Forward-Forward network of :class:`~ff_numpy.layers.Dense` layers.

    A net is composed from parts, each with one interface: its ``layers`` (any layer of
    :mod:`ff_numpy.layers`), a ``goodness`` (:mod:`ff_numpy.goodness`), a ``loss``
    (:mod:`ff_numpy.loss`) and its ``negatives`` (:mod:`ff_numpy.negatives`). Either give
    the layers, ``FFNet(layers=[Dense(784, 500, rng), Dense(500, 500, rng)])``, or their
    sizes, ``FFNet(784, [500, 500], rng)``, and the net builds dense layers (or the
    paper's local ones, ``local="paper"``).

    Parameters
    ----------
    n_in : int
        Input size (784 for MNIST); taken from ``layers`` when they are given.
    hidden : sequence of int
        Hidden layer sizes, e.g. ``(2000, 2000, 2000, 2000)``; or ``layers``.
    rng : numpy.random.Generator
        Draws the initial weights (not needed with ``layers``).
    layers : list of layers, optional
        The hidden layers themselves (``forward``/``local_grads``; any mix of
        :class:`~ff_numpy.layers.Dense`, :class:`~ff_numpy.layers.Masked`,
        :class:`~ff_numpy.locally_connected.Local`); each layer's ``n_out`` must be the
        next one's ``n_in``. :meth:`config` records each layer's ``config()``.
    loss : loss part, optional
        ``L(G, s, theta)`` and ``dL_dG``; default :class:`ff_numpy.loss.Logistic` (Eq. 1).
    negatives : str or negative-data part, optional
        ``make(x, labels, rng, q)``; default ``"random"`` wrong labels (supervised) or
        ``"hybrid"`` images (unsupervised). :meth:`train_step` may override it per step.
    label_code : LabelCode, optional
        Where the label is written; default the first ``n_classes`` inputs.
    n_classes : int
        Number of labels (used when ``label_code`` is not given).
    supervised : bool
        False for unsupervised FF (Sec. 3.2): no label is written into the input, the
        negative data are hybrid images (:meth:`train_step_unsupervised`), and the
        labels reach only the softmax readout.
    image_shape : (int, int), optional
        Shape of one input image, for the hybrids' masks; default (28, 28) when
        ``n_in == 784``.
    local : {"paper"}, optional
        Locally connected layers (:class:`~ff_numpy.layers.Masked`) instead of dense
        ones: ``"paper"`` is the architecture of footnote 8
        (:func:`ff_numpy.masks.paper_local_architecture`); ``hidden`` must then list its
        sizes (2048, 1980, 2048). A net given ``layers`` of which any has locations
        (``layer.location_starts()`` not None) is local too, ``local = "custom"``.
    objective : {"max", "min"}
        Whether positive data should have high (``"max"``) or low goodness.
    goodness : {"ssq", "sum"} or goodness part
        Sum of squared activities (the paper) or of the activities (unsquared, Sec. 10).
    goodness_per : {"layer", "location"}
        Where the goodness is taken: over all of a layer's units (the paper's dense nets),
        or, for locally connected layers, separately at every location (each location's
        channels get their own Eq. 1 loss, with threshold ``theta * c / n`` for ``c`` of
        the layer's ``n`` units); footnote 8 does not say which. Classification by
        goodness sums the goodness over a layer either way.
    norm_per : {"layer", "location"}
        What is divided by its length before the next layer: a layer's whole activity
        vector (the paper's dense nets), or, for locally connected layers, each
        location's channels separately (:func:`ff_numpy.norm.normalize_grouped`), which
        hides each location's goodness from the next layer as the layer-wide
        normalisation hides the layer's; footnote 8 does not say which.
    theta : float or sequence of float, optional
        Threshold of each layer; default the layer's number of units, which goes with
        the ``"rms"`` normalisation (Hinton's released code) and with ``"mean"`` for the
        unsquared goodness.
    norm : {"rms", "l2", "mean", "l1"}, optional
        Length normalisation of the input and between layers; default ``"rms"`` for
        ``"ssq"`` goodness and ``"mean"`` (the sum, not the squares) for ``"sum"``.
    peer_strength : float
        Peer normalisation strength (0 turns it off; Hinton's code uses 0.03).
    dropout : float
        Probability of dropping each hidden activity in training
        (:func:`ff_numpy.layers.dropout`; not in the paper, 0 turns it off). The layer's
        goodness and the next layer's input are both taken from the dropped activities;
        the peer term is applied to every unit, dropped or not, as it is where the ReLU
        is off. Evaluation never drops.
    score_layers : sequence of int, optional
        Layers whose goodness is summed for classification and whose normalised
        activities feed the softmax; default every hidden layer but the first.
    hybrid_blur : int
        Blurring steps of the masks of the hybrid negatives of unsupervised FF
        (:func:`ff_numpy.negatives.hybrid_masks`; fewer steps, smaller regions).
    boxes : dict of int to BlackBox, optional
        ``{l: box}``: an unknown, non-differentiable transform applied to layer ``l``'s
        normalised output before layer ``l + 1`` sees it (:mod:`ff_numpy.blackbox`).
        Training does not change: every layer still learns from its own input.
    dtype : numpy dtype

    Attributes
    ----------
    fuse_momentum : bool
        A speed trick, on by default: the training step hands each dense layer's weight
        gradient to the optimiser as the product ``x^T dL/da`` not yet formed
        (``local_grads(..., formed=False)``, :class:`ff_numpy.blas.OuterSum`), and SGD
        forms it straight into its velocity (one GEMM with ``beta`` the momentum). Off,
        the gradient is formed first; the numbers are the same (to rounding) and the
        gain is measured in ``docs/RESULTS.md``.
    """

    fuse_momentum: bool = True

    def __init__(
        self,
        n_in: int | None = None,
        hidden=None,
        rng: np.random.Generator | None = None,
        *,
        layers=None,
        loss=None,
        negatives=None,
        label_code: LabelCode | None = None,
        n_classes: int = 10,
        supervised: bool = True,
        image_shape=None,
        local: str | None = None,
        objective: str = "max",
        goodness: str = "ssq",
        goodness_per: str = "layer",
        norm_per: str = "layer",
        theta=None,
        norm: str | None = None,
        peer_strength: float = 0.0,
        dropout: float = 0.0,
        score_layers=None,
        boxes=None,
        hybrid_blur: int = N_BLUR,
        dtype=np.float32,
    ):
        if layers is not None:  # composed from parts: any layer type, any sizes
            layers = list(layers)
            if not layers or (n_in is not None and layers[0].n_in != n_in):
                raise ValueError("layers must be a non-empty list whose first layer takes n_in")
            for below, above in zip(layers[:-1], layers[1:]):
                if below.n_out != above.n_in:
                    raise ValueError(
                        f"layers do not stack: a layer of {below.n_out} outputs feeds one of "
                        f"{above.n_in} inputs"
                    )
            n_in, hidden = layers[0].n_in, [layer.n_out for layer in layers]
        if n_in is None or hidden is None:
            raise ValueError("FFNet needs n_in and hidden (with rng), or layers=[...]")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must list at least one positive layer size, got {hidden}")
        self.objective = gd.check_objective(objective)
        # the goodness part: G(y) and dL_dy; given as a part or by name ("ssq", "sum")
        self.goodness_fn = goodness if hasattr(goodness, "G") else gd.make_goodness(goodness)
        self.goodness = self.goodness_fn.name  # saved in config(); from_config looks it up
        self.loss = lossmod.make_loss() if loss is None else loss  # L(G) and dL_dG
        self.norm = check_scale(norm or self.goodness_fn.norm)
        self.supervised = bool(supervised)
        if int(hybrid_blur) < 0:
            raise ValueError(f"hybrid_blur must be >= 0, got {hybrid_blur}")
        self.hybrid_blur = int(hybrid_blur)
        if image_shape is None and n_in == 784:
            image_shape = (28, 28)
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        if not self.supervised:
            self.label_code = None
            self.n_classes = int(n_classes)
        else:
            self.label_code = label_code or LabelCode.first_pixels(n_classes)
            self.n_classes = self.label_code.n_classes
            if self.label_code.positions.max() >= n_in:
                raise ValueError(f"label positions do not fit in an input of size {n_in}")
        sizes = [int(n_in)] + hidden
        self.local = local
        self.composed = layers is not None  # config() then records every layer's config
        if layers is not None:
            check_layers(layers, zip(sizes[:-1], sizes[1:]), dtype)  # the stack, in dtype
            self.layers = layers
            if local is None and any(layer.location_starts() is not None for layer in layers):
                self.local = "custom"
        elif local is None:
            self.layers = [Dense(a, b, rng, dtype) for a, b in zip(sizes[:-1], sizes[1:])]
        elif local == "paper":
            fields = paper_local_architecture(image_shape or (28, 28))
            if [f.n_out for f in fields] != hidden or fields[0].n_in != n_in:
                raise ValueError(
                    f"the paper's local architecture is {n_in} -> "
                    f"{[f.n_out for f in fields]}, got hidden={hidden}"
                )
            self.layers = [Masked.from_fields(f, rng, dtype) for f in fields]
        else:
            raise ValueError(f"unknown local architecture {local!r}: expected 'paper'")
        if theta is None:
            theta = [float(h) for h in hidden]
        elif np.isscalar(theta):
            theta = [float(theta)] * len(hidden)
        self.theta = [float(finite_float().check(t, "theta")) for t in theta]
        if len(self.theta) != len(hidden):
            raise ValueError(f"theta needs one value per layer ({len(hidden)}), got {theta}")
        self._set_goodness_groups(goodness_per, norm_per)
        self.peer_strength = float(non_negative_float().check(peer_strength, "peer_strength"))
        self.peers = [PeerNorm(h, peer_strength) if peer_strength else None for h in hidden]
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if negatives is None:  # the default part of each kind of FF
            negatives = "random" if self.supervised else "hybrid"
        self.negatives = self.make_negatives(negatives)
        if score_layers is None:
            score_layers = range(1, len(hidden)) if len(hidden) > 1 else [0]
        self.score_layers = [int(i) for i in score_layers]
        if not self.score_layers or not all(0 <= i < len(hidden) for i in self.score_layers):
            raise ValueError(f"score_layers must index 0..{len(hidden) - 1}, got {score_layers}")
        n_feat = sum(hidden[i] for i in self.score_layers)
        self.readout = SoftmaxReadout(n_feat, self.n_classes, dtype)
        self.dtype = np.dtype(dtype)
        self.n_in = int(n_in)
        self.hidden = hidden
        self.boxes = dict(boxes or {})
        for l, box in self.boxes.items():
            if not 0 <= l < len(hidden) - 1 or box.n != hidden[l]:
                raise ValueError(
                    f"a black box after layer {l} must sit between two layers and have "
                    f"width {hidden[l] if 0 <= l < len(hidden) else '?'}, got width {box.n}"
                )

    def _set_goodness_groups(self, goodness_per: str, norm_per: str = "layer") -> None:
        """``group_starts[l]``: first unit of every location of layer ``l`` (None for a
        goodness per layer), ``group_theta[l]``: the threshold of every group, and
        ``norm_starts[l]``: the groups normalised separately (None: the whole layer)."""
        for name, value in (("goodness_per", goodness_per), ("norm_per", norm_per)):
            if value not in ("layer", "location"):
                raise ValueError(f"{name} must be 'layer' or 'location', got {value!r}")
            if value == "location" and self.local is None:
                raise ValueError(f"{name}='location' needs locally connected layers (local=...)")
        self.goodness_per = goodness_per
        self.norm_per = norm_per
        self.group_starts = [None] * len(self.layers)
        self.norm_starts = [None] * len(self.layers)
        self.group_theta = list(self.theta)
        if self.local is None:
            return
        for l, layer in enumerate(self.layers):
            starts, share = gd.location_groups(layer, f"layer {l}")  # or None, None
            if starts is None:  # a dense layer among local ones
                if "location" in (goodness_per, norm_per):
                    raise ValueError(f"layer {l} has no locations ({goodness_per=}, {norm_per=})")
                continue
            if norm_per == "location":
                self.norm_starts[l] = starts
            if goodness_per == "location":
                self.group_starts[l] = starts
                self.group_theta[l] = self.theta[l] * share  # (n_groups,)

    def normalize_layer(self, l: int, y: np.ndarray, out: np.ndarray | None = None):
        """Layer ``l``'s activities ``y`` (B, n_l) divided by their length, over the whole
        layer or per location (``norm_per``): what the next layer and the readout see."""
        if self.norm_starts[l] is None:
            return normalize(y, self.norm, out=out)
        return normalize_grouped(y, self.norm_starts[l], self.norm, out=out)

    # ------------------------------------------------------------------ config / state
    def config(self) -> dict:
        """Everything needed to rebuild the architecture (JSON-serialisable). A net
        composed from ``layers`` also records each layer's ``config()`` under
        ``"layers"``."""
        cfg = {
            "n_in": self.n_in,
            "hidden": self.hidden,
            "n_classes": self.n_classes,
            "supervised": self.supervised,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "local": self.local,
            "label_positions": self.label_code.positions.tolist() if self.supervised else None,
            "label_strength": self.label_code.strength if self.supervised else None,
            "objective": self.objective,
            "goodness": self.goodness,
            "goodness_per": self.goodness_per,
            "norm_per": self.norm_per,
            "theta": self.theta,
            "norm": self.norm,
            "peer_strength": self.peer_strength,
            "dropout": self.dropout,
            "score_layers": self.score_layers,
            "dtype": self.dtype.name,
            "boxes": {str(l): box.config() for l, box in self.boxes.items()},
            "hybrid_blur": self.hybrid_blur,
        } | ({} if self.loss.name == "logistic" else {"loss": self.loss.config()})
        if self.composed:
            cfg["layers"] = [layer.config() for layer in self.layers]
        return cfg

    @classmethod
    def from_config(cls, cfg: dict, rng: np.random.Generator | None = None) -> FFNet:
        """Rebuild from :meth:`config` (weights are then loaded with :meth:`load_state`):
        from its sizes and ``"local"``, or, for a composed net, from ``"layers"``
        (:func:`ff_numpy.layers.layer_from_config`)."""
        rng = rng or np.random.default_rng(0)
        dtype = np.dtype(cfg["dtype"])
        layers = None
        if "layers" in cfg:  # composed from parts: every layer rebuilt from its own config
            layers = [layer_from_config(c, rng, dtype) for c in cfg["layers"]]
        supervised = cfg.get("supervised", True)
        code = (
            LabelCode(cfg["n_classes"], cfg["label_positions"], cfg["label_strength"])
            if supervised
            else None
        )
        return cls(
            cfg["n_in"],
            cfg["hidden"],  # a composed net takes its sizes from its layers
            rng,
            layers=layers,
            label_code=code,
            n_classes=cfg["n_classes"],
            supervised=supervised,
            image_shape=cfg.get("image_shape"),
            local=cfg.get("local"),
            objective=cfg["objective"],
            goodness=cfg.get("goodness", "ssq"),  # runs saved before the option existed
            goodness_per=cfg.get("goodness_per", "layer"),
            norm_per=cfg.get("norm_per", "layer"),  # runs saved before the option
            theta=cfg["theta"],
            norm=cfg["norm"],
            peer_strength=cfg["peer_strength"],
            dropout=cfg.get("dropout", 0.0),  # runs saved before the option
            score_layers=cfg["score_layers"],
            boxes={
                int(l): BlackBox(c["n"], np.random.default_rng(0), c["levels"], c["noise"])
                for l, c in cfg.get("boxes", {}).items()
            },  # permutations are restored by load_state
            hybrid_blur=cfg.get("hybrid_blur", N_BLUR),  # runs saved before the option
            loss=lossmod.make_loss(**cfg.get("loss", {"name": "logistic"})),
            dtype=dtype,
        )

    def state(self) -> dict[str, np.ndarray]:
        """All learned arrays, by name."""
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.W"] = layer.W
            out[f"layer{i}.b"] = layer.b
            if self.peers[i] is not None:
                out[f"layer{i}.peer_mean"] = self.peers[i].mean
        for l, box in self.boxes.items():
            out[f"box{l}.perm"] = box.perm
        out["readout.V"] = self.readout.V
        out["readout.c"] = self.readout.c
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the arrays of :meth:`state` in place (a saved run is read with
        :func:`ff_numpy.experiments.saved.load_ffnet`)."""
        copy_state(self.state(), arrays)

    # ------------------------------------------------------------------ forward passes
    def labelled_input(self, x: np.ndarray, labels) -> np.ndarray:
        """The first layer's input: the images with ``labels`` written in, normalised.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
            Images (not modified: the label is written into a copy).
        labels : ndarray of int, shape (B,), or None for the neutral label

        Returns
        -------
        u : ndarray, shape (B, n_in), ``self.dtype``
            A new array. An unsupervised net writes no label (``labels`` is ignored).
        """
        if not self.supervised:
            return normalize(np.array(x, dtype=self.dtype), self.norm)
        x = self.label_code.embed(x.astype(self.dtype, copy=False), labels)
        return normalize(x, self.norm, out=x)

    def sweep(self, x: np.ndarray, labels=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One forward pass: every layer's activities and their normalised versions.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
            Images (their label positions are overwritten in a copy).
        labels : ndarray of int, shape (B,), or None for the neutral label

        Returns
        -------
        ys : list of ndarray, shapes (B, n_l)
            Activities ``y`` before normalisation (what goodness is computed on).
        hs : list of ndarray, shapes (B, n_l)
            ``normalise(y)``: what the next layer (and the readout) sees.
        """
        h = self.labelled_input(x, labels)
        ys, hs = [], []
        box_rng = np.random.default_rng(0)  # evaluation: the same noise every call
        for l, layer in enumerate(self.layers):
            y, _ = layer.forward(h)  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
            h = self.normalize_layer(l, y)
            ys.append(y)
            hs.append(h)
            if l in self.boxes:
                h = normalize(self.boxes[l](h, box_rng), self.norm)
        return ys, hs

    def normalized_activities(
        self, x: np.ndarray, labels=None, batch_size: int = 1000
    ) -> list[np.ndarray]:
        """Normalised activities of every layer for many rows, computed ``batch_size``
        rows at a time: one array of shape (N, n_l) per layer, e.g. the features of
        readouts fitted on a frozen net (:func:`ff_numpy.readout.fit_readout`)."""
        x = check_matrix(x, "x", self.n_in)
        out = [np.empty((len(x), n), dtype=self.dtype) for n in self.hidden]
        for i in range(0, len(x), batch_size):
            lab = None if labels is None else np.asarray(labels)[i : i + batch_size]
            for o, h in zip(out, self.sweep(x[i : i + batch_size], lab)[1]):
                o[i : i + batch_size] = h
        return out

    def unit_means(self, x: np.ndarray, labels=None, batch_size: int = 1000) -> list[np.ndarray]:
        """Mean activity ``y`` of every unit of every layer over the rows of ``x`` (with
        ``labels`` written in, or the neutral label), computed ``batch_size`` rows at a
        time: one float64 array of shape (n_l,) per layer (a unit that is never active
        has mean 0; peer normalisation, footnote 9, keeps these means alike)."""
        x = check_matrix(x, "x", self.n_in)
        sums = [np.zeros(n) for n in self.hidden]
        for i in range(0, len(x), batch_size):
            lab = None if labels is None else np.asarray(labels)[i : i + batch_size]
            for total, y in zip(sums, self.activities(x[i : i + batch_size], lab)):
                total += y.sum(axis=0, dtype=np.float64)
        return [total / max(len(x), 1) for total in sums]

    def activities(self, x: np.ndarray, labels=None) -> list[np.ndarray]:
        """Activities ``y`` of every layer (before normalisation), shapes (B, n_l)."""
        return self.sweep(x, labels)[0]

    def features(self, x: np.ndarray) -> np.ndarray:
        """Normalised neutral-label activities of the scored layers, shape (B, n_feat)."""
        hs = self.sweep(x, None)[1]
        return np.concatenate([hs[i] for i in self.score_layers], axis=1)

    def goodness_per_label(
        self, x: np.ndarray, batch_size: int = 1000, shifts: int = 0
    ) -> np.ndarray:
        """Goodness summed over the scored layers, for every label, shape (B, n_classes).

        ``shifts = s > 0`` also sums it over the :math:`(2 s + 1)^2` copies of each image
        moved by up to ``s`` pixels (:func:`~ff_numpy.negatives.all_shifts`; test-time
        averaging over the shifts of jittered training, not in the paper). Costs
        :math:`(2 s + 1)^2` times as much; the label is written after the shift.
        """
        if not self.supervised:
            raise ValueError(
                "an unsupervised net has no label in its input: classify with the softmax "
                "readout (predict_softmax)"
            )
        x = check_matrix(x, "x", self.n_in)
        out = np.zeros((x.shape[0], self.n_classes))
        for start in range(0, x.shape[0], batch_size):
            for _, _, xb in all_shifts(x[start : start + batch_size], shifts):
                for k in range(self.n_classes):
                    ys = self.activities(xb, np.full(xb.shape[0], k))
                    out[start : start + len(xb), k] += sum(
                        self.goodness_fn.G(ys[i]) for i in self.score_layers
                    )
        return out

    def predict_goodness(
        self, x: np.ndarray, batch_size: int = 1000, shifts: int = 0
    ) -> np.ndarray:
        """Label with the best accumulated goodness (max, or min for ``"min"``), shape (B,);
        ``shifts`` as for :meth:`goodness_per_label`."""
        G = self.goodness_per_label(x, batch_size, shifts)
        return np.argmax(G, axis=1) if self.objective == "max" else np.argmin(G, axis=1)

    def predict_softmax(self, x: np.ndarray, batch_size: int = 1000, shifts: int = 0) -> np.ndarray:
        """Softmax readout of one neutral-label pass, shape (B,). ``shifts = s > 0``
        averages the class probabilities over the :math:`(2 s + 1)^2` shifted copies of
        each image (as for :meth:`goodness_per_label`)."""
        x = check_matrix(x, "x", self.n_in)
        preds = []
        for i in range(0, x.shape[0], batch_size):
            if not shifts:  # the logits' argmax: no softmax needed
                preds.append(self.readout.predict(self.features(x[i : i + batch_size])))
                continue
            copies = all_shifts(x[i : i + batch_size], shifts)
            P = sum(self.readout.probs(self.features(xs)) for _, _, xs in copies)
            preds.append(np.argmax(P, axis=1))
        return np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ training
    def make_negatives(self, negatives):
        """The negative-data part: ``negatives`` itself if it is one (any object with
        ``make(x, labels, rng, q)``), else the part of that name in
        :data:`ff_numpy.negatives.NEGATIVES` built for this net."""
        if hasattr(negatives, "make"):
            return negatives
        if negatives not in NEGATIVES:
            raise ValueError(
                f"unknown negatives {negatives!r}: expected one of {sorted(NEGATIVES)}"
            )
        if negatives == "hybrid":
            if self.supervised:
                raise ValueError("hybrid negatives are unsupervised FF's: use supervised=False")
            return HybridImages(self.image_shape, self.hybrid_blur)
        if not self.supervised:
            raise ValueError(f"{negatives!r} negatives are wrong labels: they need supervised=True")
        return NEGATIVES[negatives](self.n_classes)

    def train_step(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator,
        opt,
        readout_opt,
        lr_scale: float = 1.0,
        negatives=None,
        return_grads: bool = False,
    ) -> dict:
        """One Forward-Forward update of every layer and of the readout (Sec. 3.3).

        .. code-block:: text

            q = softmax readout of a neutral-label pass (trained on it)   supervised only
            x_neg, labels_neg = negatives.make(x, labels, rng, q)
            X = normalise([x with labels ; x_neg with labels_neg])        (2B, n_in)
            for each layer: forward, goodness, loss, local gradient, update, normalise

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
            Images (float; label positions are overwritten in a copy).
        labels : ndarray of int, shape (B,)
        rng : numpy.random.Generator
            Draws the negative data (and dropout masks, black-box noise).
        opt, readout_opt : ff_numpy.optim.Optimizer
            Optimisers of the hidden layers and of the readout.
        lr_scale : float
            The schedule's factor.
        negatives : str or negative-data part, optional
            Overrides the net's own part for this step (``"random"``, ``"hard"``,
            ``"hybrid"`` or an object with ``make``).
        return_grads : bool
            Also return every layer's gradient, as applied (copies, taken before the
            optimiser's step): ``losses["grads"]["layer0"]["W"]`` and so on.

        Returns
        -------
        losses : dict
            ``"layer{l}"``: mean FF loss of layer l per example pair (positive + negative);
            ``"softmax"``: the readout's cross-entropy; ``"grads"`` with ``return_grads``.
        """
        neg = self.negatives if negatives is None else self.make_negatives(negatives)
        B = x.shape[0]
        labels = check_labels(labels, self.n_classes, n_rows=B)
        grads = {} if return_grads else None
        if self.supervised:
            # 1. Neutral-label pass: train the readout; its probabilities give hard negatives.
            loss_sm, q = self._train_readout(self.features(x), labels, readout_opt, lr_scale)
            # 2. Negative data: here the same images with wrong labels, never the true one.
            x_neg, labels_neg = neg.make(x, labels, rng, q)
            # 3. Positive and negative rows go through each layer as one matrix.
            X = np.empty((2 * B, self.n_in), dtype=self.dtype)
            self.label_code.embed(x, labels, out=X[:B])
            self.label_code.embed(x_neg, labels_neg, out=X[B:])
            normalize(X, self.norm, out=X)
            losses = self.ff_sweep(X, B, rng, opt, lr_scale, grads=grads)
        else:
            # Unsupervised FF (Sec. 3.2): no label touches the hidden layers; the readout
            # learns afterwards from the positive rows' features of the same sweep.
            x_neg, _ = neg.make(x, labels, rng)
            X = np.concatenate([x, x_neg]).astype(self.dtype, copy=False)
            normalize(X, self.norm, out=X)
            feats = {}
            losses = self.ff_sweep(X, B, rng, opt, lr_scale, features=feats, grads=grads)
            h = np.concatenate([feats[i] for i in self.score_layers], axis=1)
            loss_sm, _ = self._train_readout(h, labels, readout_opt, lr_scale)
        out = {"softmax": loss_sm, **losses}
        if return_grads:
            out["grads"] = grads
        return out

    def train_step_unsupervised(self, x, labels, rng, opt, readout_opt, lr_scale=1.0) -> dict:
        """One unsupervised FF update (Sec. 3.2): real images against hybrid images
        (:meth:`train_step` of a net built with ``supervised=False``)."""
        if self.supervised:
            raise ValueError("train_step_unsupervised needs FFNet(..., supervised=False)")
        if self.image_shape is None:
            raise ValueError("hybrid negatives need the image shape: FFNet(image_shape=...)")
        return self.train_step(x, labels, rng, opt, readout_opt, lr_scale)

    def _train_readout(self, h, labels, readout_opt, lr_scale) -> tuple[float, np.ndarray]:
        """One step of the softmax readout on features ``h``; returns its loss and the
        class probabilities before the step. No gradient leaves the readout."""
        loss, dL_dV, dL_dc, q = self.readout.loss_and_grads(h, labels)
        readout_opt.update(self.readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
        return loss, q

    def ff_sweep(self, X, B, rng, opt, lr_scale, features=None, grads=None) -> dict[str, float]:
        """Update every layer from its own objective, in one forward sweep.

        Parameters
        ----------
        X : ndarray, shape (2B, n_in)
            The first layer's normalised input: ``B`` positive rows, then ``B`` negative.
        B : int
        rng : numpy.random.Generator
            Noise of a black box and the dropout masks, if any.
        opt : ff_numpy.optim.Optimizer
        lr_scale : float
        features : dict, optional
            If given, ``features[l]`` receives the normalised activities of the positive
            rows at every scored layer ``l`` (computed before that layer's update).
        grads : dict, optional
            If given, ``grads[f"layer{l}"]`` receives a copy of layer ``l``'s gradients.

        Returns
        -------
        losses : dict
            ``"layer{l}"``: mean FF loss of layer l per example pair.
        """
        is_pos = np.arange(2 * B) < B
        s = gd.sign(is_pos, self.objective)  # +1 where G should be high: the objective, once
        losses = {}
        for l in range(len(self.layers)):
            Y, losses[f"layer{l}"] = self.layer_step(l, X, s, rng, opt, lr_scale, grads)
            X = self.normalize_layer(l, Y, out=Y)  # the next layer sees only the orientation
            if features is not None and l in self.score_layers:
                features[l] = X[:B].copy()
            if l in self.boxes:  # FF needs no derivative of what happens in between
                X = normalize(self.boxes[l](X, rng), self.norm)
        return losses

    def layer_step(self, l, X, s, rng, opt, lr_scale, grads=None) -> tuple[np.ndarray, float]:
        """Layer ``l``'s own update from its input: forward, goodness, loss, Eq. 3, step.

        Parameters
        ----------
        l : int
        X : ndarray, shape (2B, n_in)
            The layer's normalised input: ``B`` positive rows, then ``B`` negative.
        s : ndarray, shape (2B,)
            :func:`ff_numpy.goodness.sign` of every row.
        rng, opt, lr_scale, grads
            As for :meth:`ff_sweep`.

        Returns
        -------
        Y : ndarray, shape (2B, n_out)
            The layer's activities (not yet normalised), computed before the update.
        loss : float
            Mean over the B pairs of (positive loss + negative loss).
        """
        B = len(s) // 2
        layer = self.layers[l]
        Y, cache = layer.forward(X)  # (2B, n_in) @ (n_in, n_out) -> (2B, n_out)
        if self.dropout:  # y^d = m y / (1 - p), in place: goodness and next layer see y^d
            Y = dropout(Y, self.dropout, rng, out=Y)
        starts, theta = self.group_starts[l], self.group_theta[l]
        s_l = s if starts is None else s[:, None]  # one sign per row, or per location
        G = self.goodness_fn.G(Y, starts)  # (2B,) or (2B, n_groups)
        loss = float(self.loss.L(G, s_l, theta).sum() / B)
        # Mean over the B examples of (positive loss + negative loss).
        dL_dG = self.loss.dL_dG(G, s_l, theta) / B  # Eq. 1's loss: -s sigmoid(-s (G - theta))
        if self.dropout:  # y^d = m y / (1 - p): the factor 1 / (1 - p) (m is in Y's zeros)
            dL_dG = dL_dG / (1.0 - self.dropout)
        dL_dy = self.goodness_fn.dL_dy(Y, dL_dG, starts)  # dG/dy = 2 y: (2B, n_out)
        extra = None
        if self.peers[l] is not None:  # peer normalisation (footnote 9): positive rows,
            self.peers[l].update(Y[:B])  # added after the ReLU's derivative: (B, n_out)
            extra = np.broadcast_to((self.peers[l].dL_da() / B).astype(Y.dtype), Y[:B].shape)
        # Eq. 3: {"W": X^T dL_da, "b": ...}; with fuse_momentum, "W" is that product
        # still to be formed, which SGD forms into its velocity (same numbers)
        g = layer.local_grads(cache, dL_dy, extra, formed=not self.fuse_momentum)
        if grads is not None:  # copies (formed): the optimiser may use g as scratch
            grads[f"layer{l}"] = {k: np.array(v) for k, v in g.items()}
        opt.update(layer.params(), g, lr_scale, prefix=f"layer{l}.")
        return Y, loss  # the step's weight-sized temporaries are freed here
