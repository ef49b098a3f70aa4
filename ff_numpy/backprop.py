r"""The backpropagation baseline: a ReLU MLP with a hand-derived backward pass.

This is the one module of the project with a backward pass. It is the yardstick of
the paper's Sec. 3.1 (a few fully connected hidden layers of ReLUs trained with
backpropagation reach about 1.4% test error on permutation-invariant MNIST in about 20
epochs), written with the same tools as the Forward-Forward code (:mod:`ff_numpy.blas`
for every product, :mod:`ff_numpy.optim` for the updates) so the two compare fairly.

With layers :math:`l = 0, \dots, L-1` (the last one is the linear output layer), inputs
:math:`h_0 = x` and one-hot targets :math:`T`:

.. code-block:: text

    forward                                 backward (beside the line it differentiates)
    h_0 = x
    a_l = h_l W_l + b_l                     dL_dW_l = h_l^T dL_da_l
      (B, n_l) @ (n_l, n_l+1)                 (n_l, B) @ (B, n_l+1) -> (n_l, n_l+1)
        -> (B, n_l+1)                       dL_db_l = sum_rows dL_da_l
                                            dL_dh_l = dL_da_l W_l^T
                                              (B, n_l+1) @ (n_l+1, n_l) -> (B, n_l)
    h_l+1 = relu(a_l)      (l < L-1)        dL_da_l = dL_dh_l+1 * [a_l > 0]
    z = a_L-1              (the logits)     dL_da_L-1 = dL_dz
    L = -mean_n log softmax(z)[n, t_n]      dL_dz = (softmax(z) - T) / B

The backward column runs from the bottom up: the loss's gradient first, then layer
``L-1`` down to layer 0.

The ReLU's derivative is taken as 0 at 0 (``[a > 0]``); since ``h = relu(a)`` is
positive exactly where ``a > 0``, the mask is read off the cached ``h``.

Local receptive fields
----------------------
The hidden layers may be any layer of the library's interface (``layers=``):
:class:`~ff_numpy.layers.Dense`, :class:`~ff_numpy.layers.Masked` (local fields as a 0/1
mask on a dense matrix) or :class:`ff_numpy.locally_connected.Local` (the same fields,
storing only the weights that exist), so the baseline of the paper's Sec. 4 (Table 1:
"BP uses the same local fields", without the top-down inputs of FF) is the same network
with other layers. Only three lines of the table above change; each layer computes them
in its own layout of ``W``:

.. code-block:: text

    a_l = layer.linear(h_l) + b_l           h_l W_l at the existing weights
    dL_dW_l = layer.weight_grad(h_l, dL_da_l)    h_l^T dL_da_l at the existing weights
    dL_dh_l = dL_da_l W_l^T                 Local: locally_connected.input_grad, a
                                            scatter-add of each block's W_b dL_da_b^T into
                                            the inputs of its fields; Dense and Masked:
                                            the dense product (a masked W is zero outside
                                            its fields)

The output layer stays a dense softmax layer on the last hidden layer. The input
gradient is the one thing a backpropagation net needs that a Forward-Forward layer never
computes; :func:`ff_numpy.locally_connected.input_grad` is kept outside the layer class
for that reason.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from ff_numpy import blas
from ff_numpy.blackbox import BlackBox
from ff_numpy.layers import check_layers
from ff_numpy.locally_connected import Local, input_grad
from ff_numpy.validate import check_labels, check_matrix, copy_state

MODEL_TYPE = "mlp"


def softmax_cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Mean cross-entropy of the softmax of ``z`` and its gradient with respect to ``z``.

    .. math::
        L = -\frac1B \sum_n \log \frac{e^{z_{n t_n}}}{\sum_k e^{z_{nk}}}, \qquad
        \frac{\partial L}{\partial z} = \frac1B \left(\operatorname{softmax}(z) - T\right)

    with :math:`T` the one-hot targets. The log-softmax is computed stably (the row
    maximum is subtracted before exponentiating), so no logit overflows.

    Parameters
    ----------
    z : ndarray, shape (B, C)
        Logits.
    labels : ndarray of int, shape (B,)
        Targets in ``0..C-1``.

    Returns
    -------
    L : float
    dL_dz : ndarray, shape (B, C), dtype of ``z``
    """
    B = z.shape[0]
    rows = np.arange(B)
    log_q = log_softmax(z, axis=1)
    # L = -mean_n log q[n, t_n]
    L = -float(np.mean(log_q[rows, labels], dtype=np.float64))
    # dL/dz = (q - T) / B
    dL_dz = np.exp(log_q).astype(z.dtype, copy=False)
    dL_dz[rows, labels] -= 1
    dL_dz /= B
    return L, dL_dz


class MLP:
    r"""Fully connected ReLU network with a softmax output, trained by backpropagation.

    .. math::
        h_0 = x, \qquad a_l = h_l W_l + b_l, \qquad h_{l+1} = \max(a_l, 0), \qquad
        z = a_{L-1}

    Parameters
    ----------
    n_in : int
        Input size (784 for MNIST).
    hidden : sequence of int
        Hidden layer sizes, e.g. ``(2000, 2000, 2000, 2000)`` (the paper's FF net).
    n_classes : int
        Number of outputs (logits).
    rng : numpy.random.Generator
        Draws the initial weights.
    dtype : numpy dtype
        ``float32`` for training, ``float64`` for gradient checks.
    box : ff_numpy.blackbox.BlackBox, optional
        An unknown, non-differentiable transform applied to the output of hidden layer
        ``box_after`` before the next layer sees it.
    box_after : int, optional
        Index of the hidden layer the box follows.
    box_grad : {"straight", "none"}
        What the backward pass does at the box, whose true derivative is zero almost
        everywhere (the quantiser) and unknown (the permutation): ``"straight"`` passes
        the gradient through unchanged (the straight-through guess), ``"none"`` stops
        it, so only the layers after the box learn.
    layers : sequence of layers, optional
        The hidden layers, built by the caller: any layer of the library's interface
        (``n_in``, ``n_out``, ``linear``, ``weight_grad``, ``params``; ``W`` and ``b`` of
        ``dtype``), e.g. :class:`ff_numpy.locally_connected.Local` for local receptive
        fields (paper Sec. 4). Layer ``l`` must map ``(n_in, hidden[0])`` for ``l = 0``,
        ``(hidden[l - 1], hidden[l])`` after. Their weights are used as given (the
        caller chooses their initialisation); ``rng`` then draws only the output
        layer. Default: dense hidden layers drawn from ``rng`` as below.

    Notes
    -----
    Initialisation (He et al., 2015, "Delving deep into rectifiers", Eq. 10): weights
    feeding a ReLU are drawn :math:`W_{ij} \sim \mathcal N(0, 2 / n_{in})`, which keeps the
    second moment of the pre-activations the same from layer to layer (a ReLU passes on
    half of it, the factor 2 puts it back). The output layer has no ReLU after it and is
    drawn :math:`\mathcal N(0, 1 / n_{in})`. Biases start at zero. The weights are drawn in
    float64 and cast, so a float32 and a float64 model from the same seed agree.

    Attributes
    ----------
    W : list of ndarray, shapes (n_l, n_{l+1})
        For a given layer, its own ``W`` (the same array; a
        :class:`~ff_numpy.locally_connected.Local` layer's has shape (n_pairs, C_out)).
    b : list of ndarray, shapes (n_{l+1},)
    layers : list
        The given hidden layers, then None for the output layer; all None without
        ``layers`` (plain dense arrays, updated by the fused product of
        :meth:`~ff_numpy.optim.Optimizer.step_outer`).
    """

    def __init__(
        self,
        n_in: int,
        hidden,
        n_classes: int,
        rng: np.random.Generator,
        dtype=np.float32,
        box=None,
        box_after: int | None = None,
        box_grad: str = "straight",
        layers=None,
    ):
        hidden = [int(h) for h in hidden]
        if int(n_in) < 1 or any(h < 1 for h in hidden) or int(n_classes) < 2:
            raise ValueError(
                f"MLP needs n_in >= 1, positive hidden sizes and n_classes >= 2, "
                f"got n_in={n_in}, hidden={hidden}, n_classes={n_classes}"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"MLP dtype must be float32 or float64, got {self.dtype}")
        self.n_in, self.hidden, self.n_classes = int(n_in), hidden, int(n_classes)
        sizes = [self.n_in, *hidden, self.n_classes]
        n_layers = len(sizes) - 1
        self.layers = [None] * n_layers if layers is None else [*layers, None]
        if layers is not None:
            self._check_layers(list(layers), sizes)
        self.W, self.b = [], []
        for l, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            if self.layers[l] is not None:  # the caller's layer: its own arrays
                self.W.append(self.layers[l].W)
                self.b.append(self.layers[l].b)
                continue
            gain = 2.0 if l < n_layers - 1 else 1.0  # He for ReLU layers, 1 for the logits
            self.W.append((rng.standard_normal((m, n)) * np.sqrt(gain / m)).astype(dtype))
            self.b.append(np.zeros(n, dtype=dtype))
        if (box is None) != (box_after is None):
            raise ValueError("give both box and box_after, or neither")
        if box is not None and (not 0 <= box_after < len(hidden) or box.n != hidden[box_after]):
            raise ValueError(f"the box must follow a hidden layer of width {box.n}")
        if box_grad not in ("straight", "none"):
            raise ValueError(f"box_grad must be 'straight' or 'none', got {box_grad!r}")
        self.box, self.box_after, self.box_grad = box, box_after, box_grad

    def _check_layers(self, layers: list, sizes: list[int]) -> None:
        """Raise unless ``layers`` are the hidden layers of ``sizes``, in the model's dtype."""
        check_layers(layers, zip(sizes[:-2], sizes[1:-1]), self.dtype)

    @property
    def n_layers(self) -> int:
        """Number of weight layers (hidden layers + 1)."""
        return len(self.W)

    def layer_types(self) -> list[str] | None:
        """The class names of the given hidden layers, or None for plain dense arrays."""
        if self.layers[0] is None:
            return None
        return [type(layer).__name__ for layer in self.layers[:-1]]

    # ------------------------------------------------------------------ config / state
    def config(self) -> dict:
        """Everything needed to rebuild the architecture (JSON-serialisable).

        With given hidden layers, their class names are recorded (``"layers"``); such
        layers are built by the caller and passed to :meth:`from_config`.
        """
        cfg = {
            "type": MODEL_TYPE,
            "n_in": self.n_in,
            "hidden": self.hidden,
            "n_classes": self.n_classes,
            "dtype": self.dtype.name,
            "box": None if self.box is None else self.box.config(),
            "box_after": self.box_after,
            "box_grad": self.box_grad,
        }
        if self.layer_types() is not None:
            cfg["layers"] = self.layer_types()
        return cfg

    @classmethod
    def from_config(cls, cfg: dict, rng: np.random.Generator | None = None, layers=None) -> MLP:
        """Rebuild from :meth:`config` (weights are then loaded with :meth:`load_state`).

        Parameters
        ----------
        cfg : dict
        rng : numpy.random.Generator, optional
        layers : sequence of layers, optional
            The hidden layers, required when the configuration lists them
            (``cfg["layers"]``), built as for the saved model.
        """
        if not isinstance(cfg, dict) or cfg.get("type") != MODEL_TYPE:
            raise ValueError(f"not an MLP configuration: {cfg!r}")
        saved = cfg.get("layers")
        given = None if layers is None else [type(layer).__name__ for layer in layers]
        if saved != given:
            raise ValueError(
                f"the saved MLP's hidden layers are {saved or 'plain dense arrays'}; "
                f"given: {given or 'none'} (pass layers built as for that model)"
            )
        return cls(
            cfg["n_in"],
            cfg["hidden"],
            cfg["n_classes"],
            rng or np.random.default_rng(0),
            dtype=np.dtype(cfg["dtype"]),
            box=BlackBox(**cfg["box"], rng=np.random.default_rng(0)) if cfg.get("box") else None,
            box_after=cfg.get("box_after"),
            box_grad=cfg.get("box_grad", "straight"),
            layers=layers,
        )  # a box's permutation is restored by load_state

    def params(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name (``layer{l}.W``, ``layer{l}.b``), not copies."""
        out = {}
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            out[f"layer{l}.W"] = W
            out[f"layer{l}.b"] = b
        return out

    def state(self) -> dict[str, np.ndarray]:
        """All learned arrays, by name (:meth:`params`, and a box's permutation)."""
        out = self.params()
        if self.box is not None:
            out["box.perm"] = self.box.perm
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the arrays of :meth:`state` in place (:func:`ff_numpy.validate.copy_state`)."""
        copy_state(self.state(), arrays)

    # ------------------------------------------------------------------ forward
    def forward(
        self, x: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        r"""Logits of a batch, and what the backward pass needs.

        .. math::
            a_l = h_l W_l + b_l, \qquad h_{l+1} = \max(a_l, 0), \qquad z = a_{L-1}

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
            Inputs (cast to the model's dtype).
        rng : numpy.random.Generator, optional
            Noise of the black box, if any (default: a fixed generator, for evaluation).

        Returns
        -------
        z : ndarray, shape (B, n_classes)
            Logits.
        cache : list of ndarray, shapes (B, n_l)
            The input :math:`h_l` of every layer: ``cache[0]`` is ``x``, ``cache[l]`` the
            ReLU output of hidden layer ``l - 1`` (after the box, if one follows it). With
            a box, one more entry at the end: the ReLU output that went into the box.
        """
        x = check_matrix(x, "x", self.n_in).astype(self.dtype, copy=False)
        h = x
        cache = []
        for l, (W, b, layer) in enumerate(zip(self.W, self.b, self.layers)):
            cache.append(h)
            if layer is None:
                a = blas.matmul(h, W)  # (B, n_l) @ (n_l, n_l+1) -> (B, n_l+1)
            else:  # the same product at the layer's existing weights
                a = layer.linear(h)  # (B, n_l) -> (B, n_l+1)
            a += b
            if l < self.n_layers - 1:
                h = np.maximum(a, 0, out=a)  # h_l+1 = relu(a_l), in place
                if l == self.box_after:  # the black box: no derivative known
                    box_in = h
                    h = self.box(h, rng if rng is not None else np.random.default_rng(0))
        if self.box is not None:
            cache.append(box_in)
        return a, cache

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Most probable class of each row, shape (B,)."""
        x = check_matrix(x, "x", self.n_in)
        preds = [
            np.argmax(self.forward(x[i : i + batch_size])[0], axis=1)
            for i in range(0, x.shape[0], batch_size)
        ]
        return np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ backward
    def backward(
        self, dL_dz: np.ndarray, cache: list[np.ndarray], opt=None, lr_scale: float = 1.0
    ) -> dict[str, np.ndarray]:
        r"""Backpropagate ``dL_dz`` to every weight and bias.

        .. math::
            \frac{\partial L}{\partial W_l} = h_l^\top \frac{\partial L}{\partial a_l},
            \quad
            \frac{\partial L}{\partial b_l} = \mathbf 1^\top \frac{\partial L}{\partial a_l},
            \quad
            \frac{\partial L}{\partial a_{l-1}} =
            \left(\frac{\partial L}{\partial a_l} W_l^\top\right) \odot [a_{l-1} > 0]

        Parameters
        ----------
        dL_dz : ndarray, shape (B, n_classes)
            Gradient of the loss with respect to the logits (the upstream gradient).
        cache : list of ndarray
            From :meth:`forward`.
        opt : ff_numpy.optim.Optimizer, optional
            If given, each layer is updated in place as soon as its gradient is known,
            *after* that gradient has gone down through the layer's old weights. For a
            plain dense layer the weight gradient is folded into the optimiser's product
            (:meth:`~ff_numpy.optim.Optimizer.step_outer`) instead of being formed; a
            given layer forms it with its ``weight_grad`` (in its own layout) and the
            optimiser takes a plain :meth:`~ff_numpy.optim.Optimizer.step`. Weights are
            decayed, biases not.
        lr_scale : float
            The schedule's factor (with ``opt``).

        Returns
        -------
        grads : dict of str to ndarray
            ``layer{l}.W`` (shape (n_l, n_l+1)) and ``layer{l}.b`` (shape (n_l+1,));
            empty when ``opt`` is given.
        """
        B = cache[0].shape[0]
        if np.shape(dL_dz) != (B, self.n_classes):
            raise ValueError(
                f"dL_dz must have shape {(B, self.n_classes)} (batch, classes), "
                f"got {np.shape(dL_dz)}"
            )
        grads = {}
        dL_da = np.asarray(dL_dz, dtype=self.dtype)  # the output layer has no ReLU: z = a_L-1
        for l in reversed(range(self.n_layers)):
            W, b, h, layer = self.W[l], self.b[l], cache[l], self.layers[l]
            # forward:  a_l = h_l W_l + b_l
            if l > 0:
                dL_dh = self._input_grad(l, dL_da)  # dL/dh_l = dL/da_l W_l^T: (B, n_l)
            dL_db = dL_da.sum(axis=0)  # dL/db_l = sum over rows of dL/da_l
            if layer is not None:
                # dL/dW_l = h_l^T dL/da_l at the layer's existing weights, in its layout
                dL_dW = layer.weight_grad(h, dL_da)
                if opt is None:
                    grads[f"layer{l}.W"], grads[f"layer{l}.b"] = dL_dW, dL_db
                else:
                    opt.step(f"layer{l}.W", W, dL_dW, lr_scale, decay=True)
                    opt.step(f"layer{l}.b", b, dL_db, lr_scale, decay=False)
            elif opt is None:
                # dL/dW_l = h_l^T dL/da_l
                dL_dW = blas.matmul_tn(h, dL_da, np.empty_like(W))  # (n_l, B) @ (B, n_l+1)
                grads[f"layer{l}.W"], grads[f"layer{l}.b"] = dL_dW, dL_db
            else:
                # the same product h_l^T dL/da_l, inside the update: (n_l, B) @ (B, n_l+1)
                opt.step_outer(f"layer{l}.W", W, h, dL_da, lr_scale, decay=True)
                opt.step(f"layer{l}.b", b, dL_db, lr_scale, decay=False)
            if l > 0:
                if l - 1 == self.box_after:
                    # forward:  h_l = box(relu(a_l-1)): its derivative is unknown
                    if self.box_grad == "none":
                        break  # nothing reaches the layers below the box
                    h = cache[-1]  # straight-through: treat the box as the identity
                # forward:  h_l = relu(a_l-1)
                # dL/da_l-1 = dL/dh_l * [a_l-1 > 0]   (h_l > 0 exactly where a_l-1 > 0)
                dL_da = dL_dh * (h > 0)
        return grads

    def _input_grad(self, l: int, dL_da: np.ndarray) -> np.ndarray:
        r"""``dL/dh_l = dL/da_l W_l^T`` through layer ``l``, shape (B, n_l).

        Parameters
        ----------
        l : int
            Weight layer, ``1 <= l < n_layers`` (no gradient is needed for the input).
        dL_da : ndarray, shape (B, n_l+1)
        """
        layer = self.layers[l]
        if isinstance(layer, Local):
            # a scatter-add of every block's W_b dL_da_b^T into the inputs of its fields
            return input_grad(layer, dL_da)  # (B, n_l+1) -> (B, n_l)
        # Dense arrays, Dense and Masked layers (W zero outside the fields): computed as
        # (W_l dL/da_l^T)^T so that W_l is read in place, never copied into a transposed
        # layout: (n_l, n_l+1) @ (n_l+1, B) -> (n_l, B), transposed -> (B, n_l)
        return blas.matmul(self.W[l], dL_da.T).T

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
        r"""Mean softmax cross-entropy of a batch and its gradient for every parameter.

        .. math::
            L = -\frac1B \sum_n \log \operatorname{softmax}(z_n)_{t_n}

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        labels : ndarray of int, shape (B,)

        Returns
        -------
        L : float
        grads : dict of str to ndarray
            Same names and shapes as :meth:`params`.
        """
        x, labels = self._check_batch(x, labels)
        z, cache = self.forward(x)  # (B, n_classes)
        L, dL_dz = softmax_cross_entropy(z, labels)
        return L, self.backward(dL_dz, cache)

    def train_step(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        opt,
        lr_scale: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        """One backpropagation update of every layer.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        labels : ndarray of int, shape (B,)
        opt : ff_numpy.optim.Optimizer
            Updates the weights (with its weight decay) and the biases (without).
        lr_scale : float
            The schedule's factor.
        rng : numpy.random.Generator, optional
            Noise of the black box, if any.

        Returns
        -------
        losses : dict
            ``"cross_entropy"``: the batch's mean loss before the update.
        """
        x, labels = self._check_batch(x, labels)
        z, cache = self.forward(x, rng)  # (B, n_classes)
        L, dL_dz = softmax_cross_entropy(z, labels)
        self.backward(dL_dz, cache, opt, lr_scale)
        return {"cross_entropy": L}

    def _check_batch(self, x, labels) -> tuple[np.ndarray, np.ndarray]:
        """Validate a labelled batch before any work is done on it."""
        x = check_matrix(x, "x", self.n_in)
        return x, check_labels(labels, self.n_classes, n_rows=x.shape[0])
