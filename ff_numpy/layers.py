r"""Layers: the forward map and the closed-form *local* gradient of each layer.

A Forward-Forward layer learns from its own objective only. Its gradient is the chain
rule from the layer loss through the goodness and the ReLU to its own weights, and it
stops there: no method here returns a gradient with respect to a layer's input, so no
error signal can travel from one layer to another.

Every layer has one interface, so a model can stack any of them:

* ``forward(x) -> (y, cache)``: the activities and what the gradient needs;
* ``local_grads(cache, dL_dy) -> {"W": dL_dW, "b": dL_db}``: the closed-form gradient of
  the layer's own loss with respect to its own parameters (the keys of ``params()``);
* ``location_starts() -> ndarray or None``: the first unit of every location of a locally
  connected layer (None for a dense one), where a goodness or a normalisation per
  location is taken;
* ``config() -> dict``: what rebuilds the layer's shape and structure, never its weights
  (:func:`layer_from_config` rebuilds it, ``load_state`` restores the weights).

The derivative with respect to the activities, ``dL_dy``, comes from the goodness
(:mod:`ff_numpy.goodness`), whose own derivative comes from the loss
(:mod:`ff_numpy.loss`). For the :class:`Dense` layer and the paper's goodness the whole
chain reads

.. code-block:: text

    a = x W + b                  # (B, n_in) @ (n_in, n_out) -> (B, n_out)     forward
    y = relu(a)
    G = sum_j y_j^2              # goodness, shape (B,)                         goodness
    L = softplus(-s (G - theta)) # Eq. 1's loss, s = +1 / -1                    loss
    dL_dG = -s sigmoid(-s (G - theta))                                          loss
    dL_dy = 2 y * dL_dG          # dG/dy = 2 y                                  goodness
    dL_da = dL_dy * [a > 0]      # ReLU'(a) = 1 if a > 0 else 0 (ReLU'(0) = 0)  layer
    dL_dW = x^T dL_da            # (n_in, B) @ (B, n_out) -> (n_in, n_out)      layer
    dL_db = sum_rows dL_da                                                      layer

which is the batch form of the paper's Eq. 3. Three layers share the interface:
:class:`Dense`, :class:`Masked` (local receptive fields as a 0/1 mask on a dense matrix,
the reference) and :class:`ff_numpy.locally_connected.Local` (the same fields, storing
only the weights that exist).
"""

from __future__ import annotations

import numpy as np

from ff_numpy import blas


class Dense:
    r"""Fully connected ReLU layer, :math:`y = \operatorname{relu}(x W + b)`.

    Parameters
    ----------
    n_in, n_out : int
        Input and output sizes.
    rng : numpy.random.Generator
        Draws the initial weights, :math:`W_{ij} \sim \mathcal N(0, 1/n_{in})` (as in
        Hinton's released code); biases start at zero.
    dtype : numpy dtype
        ``float32`` for training, ``float64`` for gradient checks.

    Attributes
    ----------
    W : ndarray, shape (n_in, n_out)
    b : ndarray, shape (n_out,)
    """

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32):
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Dense needs positive sizes, got n_in={n_in}, n_out={n_out}")
        self.W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
        self.b = np.zeros(n_out, dtype=dtype)

    @property
    def n_in(self) -> int:
        return self.W.shape[0]

    @property
    def n_out(self) -> int:
        return self.W.shape[1]

    def params(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name (the optimiser updates them in place)."""
        return {"W": self.W, "b": self.b}

    def location_starts(self) -> np.ndarray | None:
        """None: a dense layer has no locations (its goodness and normalisation are
        taken over all its units)."""
        return None

    def config(self) -> dict:
        """What rebuilds the layer (JSON-serialisable; the weights are not in it)."""
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out}

    @classmethod
    def from_config(cls, cfg: dict, rng: np.random.Generator, dtype=np.float32) -> Dense:
        """The layer of :meth:`config`, its initial weights drawn from ``rng``."""
        return cls(cfg["n_in"], cfg["n_out"], rng, dtype)

    def forward(
        self, x: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        r"""Activities :math:`y = \operatorname{relu}(x W + b)` and the cache of
        :meth:`local_grads`.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        out : ndarray, shape (B, n_out), optional
            Where to write ``y``.

        Returns
        -------
        y : ndarray, shape (B, n_out)
        cache : (x, y)
            What :meth:`local_grads` needs: the input and the output, the arrays
            themselves (no copies): change neither before :meth:`local_grads` is called
            (the training step normalises ``y`` in place only after the update).
        """
        a = self.linear(x, out=out)  # a = x W: (B, n_in) @ (n_in, n_out) -> (B, n_out)
        a += self.b  # a = x W + b
        y = np.maximum(a, 0, out=a)  # y = relu(a), in place
        return y, (x, y)

    def linear(
        self, x: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False
    ) -> np.ndarray:
        r"""The weighted input :math:`x W` without bias or ReLU, or with ``accumulate``
        :math:`out \leftarrow out + x W` (a unit fed by several layers, as in
        :mod:`ff_numpy.recurrent`).

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        out : ndarray, shape (B, n_out), optional
            Required with ``accumulate``.
        accumulate : bool

        Returns
        -------
        xW : ndarray, shape (B, n_out)
        """
        # (B, n_in) @ (n_in, n_out) -> (B, n_out), added to out in the GEMM itself
        return blas.matmul(x, self.W, out=out, beta=1.0 if accumulate else 0.0)

    def local_grads(
        self,
        cache: tuple[np.ndarray, np.ndarray],
        dL_dy: np.ndarray,
        dL_da_extra: np.ndarray | None = None,
        formed: bool = True,
    ) -> dict[str, np.ndarray]:
        r"""Closed-form gradient of the layer's own loss with respect to ``W`` and ``b``:
        the batch form of the paper's Eq. 3. Nothing is returned for ``x``: no error
        signal leaves the layer.

        .. math::
            \frac{\partial L}{\partial a_{nj}} = \frac{\partial L}{\partial y_{nj}}
            [a_{nj} > 0], \qquad
            \frac{\partial L}{\partial W} = x^T \frac{\partial L}{\partial a}, \qquad
            \frac{\partial L}{\partial b_j} = \sum_n \frac{\partial L}{\partial a_{nj}}

        With the sum-of-squares goodness, :math:`\partial L / \partial y_{nj} =
        \partial L / \partial G_n \cdot 2 y_{nj}`
        (:meth:`ff_numpy.goodness.SumOfSquares.dL_dy`), and this is Eq. 3 summed over
        the batch.

        Parameters
        ----------
        cache : (x, y)
            From :meth:`forward`: x (B, n_in), y (B, n_out).
        dL_dy : ndarray, shape (B, n_out)
            Derivative of the layer's loss with respect to its activities (from the
            goodness, :meth:`ff_numpy.goodness.SumOfSquares.dL_dy`).
        dL_da_extra : ndarray, shape (B', n_out) with B' <= B, optional
            A term added after the ReLU's derivative to the first B' rows (peer
            normalisation, footnote 9, on the positive rows: its gradient also reaches
            units that are off).
        formed : bool
            False hands ``dL_dW`` over as the product not yet formed (a speed trick of
            :meth:`weight_grad`, the same numbers).

        Returns
        -------
        grads : dict
            ``{"W": dL_dW (n_in, n_out), "b": dL_db (n_out,)}``, the keys of
            :meth:`params`.
        """
        x, y = cache
        # y = relu(a)   =>  dL/da = dL/dy * [a > 0]; y > 0 exactly where a > 0 (ReLU'(0) = 0)
        dL_da = dL_dy * (y > 0)  # (B, n_out)
        if dL_da_extra is not None:
            dL_da[: len(dL_da_extra)] += dL_da_extra
        # a = x W + b   =>  dL/dW = x^T dL/da: (n_in, B) @ (B, n_out) -> (n_in, n_out)
        #                   dL/db = sum over rows of dL/da
        return {"W": self.weight_grad(x, dL_da, formed), "b": dL_da.sum(axis=0)}

    def weight_grad(self, x: np.ndarray, dL_da: np.ndarray, formed: bool = True) -> np.ndarray:
        """``dL/dW = x^T dL/da``: (n_in, B) @ (B, n_out) -> (n_in, n_out).

        With ``formed=False`` the product is returned not yet formed
        (:class:`ff_numpy.blas.OuterSum`): an optimiser receiving it can form it into its
        own state (SGD: into the velocity, in the same GEMM), which saves passes over a
        weight-sized array at small batches; ``np.asarray`` forms it. The numbers are
        the same either way.
        """
        if not formed:
            return blas.OuterSum(x, dL_da)
        return blas.matmul_tn(x, dL_da, np.empty_like(self.W))

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint."""
        return {"W": self.W, "b": self.b}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`, in place, checking shapes."""
        for name in ("W", "b"):
            target = getattr(self, name)
            src = arrays[name]
            if src.shape != target.shape:
                raise ValueError(
                    f"Dense.{name}: checkpoint has {src.shape}, layer has {target.shape}"
                )
            target[...] = src


def dropout(y: np.ndarray, p: float, rng: np.random.Generator, out=None) -> np.ndarray:
    r"""Inverted dropout of a layer's activities, for training only (not in the paper).

    .. math::
        y^d_{nj} = \frac{m_{nj}}{1 - p}\, y_{nj}, \qquad m_{nj} \sim
        \operatorname{Bernoulli}(1 - p)

    so that :math:`E[y^d] = y` and a trained net is used without it. In a Forward-Forward
    net both the goodness of the layer and the input of the next layer are computed from
    :math:`y^d`; :meth:`Dense.dL_da` with ``dropout=p`` gives its local gradient. The
    public Rust port of Hinton's code uses it as its regulariser
    (``../shared/REFERENCE.md``).

    Parameters
    ----------
    y : ndarray, shape (B, n)
    p : float
        Probability of dropping each unit, ``0 <= p < 1``.
    rng : numpy.random.Generator
        Draws the keep mask :math:`m`, ``B * n`` float32 uniforms in row-major order.
    out : ndarray, shape (B, n), optional
        Where to write :math:`y^d` (may be ``y``).

    Returns
    -------
    y_d : ndarray, shape (B, n)
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
    keep = rng.random(y.shape, dtype=np.float32) >= p  # m, shape (B, n)
    y_d = np.multiply(y, keep, out=out)  # m y
    y_d *= y.dtype.type(1.0 / (1.0 - p))  # m y / (1 - p)
    return y_d


class Masked(Dense):
    r"""Locally connected ReLU layer: a :class:`Dense` layer whose ``W`` is zero outside
    a fixed 0/1 mask (local receptive fields without weight sharing, footnote 8).

    .. math::
        y = \operatorname{relu}(x W + b), \qquad W = W \odot M, \qquad
        \frac{\partial L}{\partial W} = (x^T \frac{\partial L}{\partial a}) \odot M

    A masked weight does not exist, so its gradient is zero (:meth:`weight_grad`) and it
    stays exactly zero under any optimiser whose update of a weight is zero when that
    weight and its gradient are zero (SGD with momentum and weight decay, Adam).

    Two ways to compute the same numbers (``fast`` chooses, both stay available):

    * the masked-dense reference (:meth:`forward_reference`,
      :meth:`weight_grad_reference`): ``x @ W`` and ``(x^T dL_da) * mask``, spending
      FLOPs on the zeros;
    * the local path: the units are grouped into *locations*, runs of adjacent units
      with identical fields (the location-major ordering of :mod:`ff_numpy.masks`
      makes each location one run of ``channels`` units). Per location, gather the
      field ``x[:, field]`` (B, f) and the weight block ``W[field, units]`` (f, c), and
      multiply: ``f * n_out`` multiply-adds per row instead of ``n_in * n_out``.

    ``W`` is stored in full, shape (n_in, n_out), zero outside the mask: it is the one
    copy of the weights that checkpoints, figures, the optimiser and
    :mod:`ff_numpy.fast` (which reads ``mask``) see. The local path gathers the blocks
    it needs on every call (``f * n_out`` values, a small fraction of the
    ``2 B f n_out`` FLOPs of the product).

    Parameters
    ----------
    n_in, n_out : int
    mask : ndarray, shape (n_in, n_out)
        0/1 receptive fields: ``mask[i, j] = 1`` iff unit ``j`` sees input ``i``
        (:meth:`ff_numpy.masks.LocalFields.mask`). Every unit must see at least one
        input.
    rng : numpy.random.Generator
        Draws :math:`W_{ij} \sim \mathcal N(0, 1/f_j)\, M_{ij}` with :math:`f_j` unit
        ``j``'s field size (its fan-in); biases start at zero.
    dtype : numpy dtype
    fast : bool
        Use the local path in :meth:`forward` and :meth:`weight_grad`.
    channels : int, optional
        Units per location (:meth:`from_fields` gives it): a new location starts every
        ``channels`` units (:meth:`location_starts`), even where two neighbours see the
        same inputs. Without it, a location is a run of adjacent units with the same
        field.

    Attributes
    ----------
    W : ndarray, shape (n_in, n_out)
        Exactly zero where ``mask == 0``.
    b : ndarray, shape (n_out,)
    mask : ndarray, shape (n_in, n_out), ``dtype``
    groups : list of (ndarray of int, int, int)
        ``(field, start, stop)``: units ``start:stop`` all see the inputs ``field``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        mask: np.ndarray,
        rng: np.random.Generator,
        dtype=np.float32,
        fast: bool = True,
        channels: int | None = None,
    ):
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Masked needs positive sizes, got n_in={n_in}, n_out={n_out}")
        mask = np.asarray(mask)
        if mask.shape != (n_in, n_out):
            raise ValueError(
                f"mask must have shape (n_in, n_out) = {(n_in, n_out)}, got {mask.shape}"
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("mask must hold only 0 and 1")
        fan_in = mask.sum(axis=0)  # (n_out,) field size of every unit
        if np.any(fan_in == 0):
            raise ValueError(
                f"every unit needs a non-empty field; unit {np.argmin(fan_in)} has none"
            )
        self.mask = mask.astype(dtype)
        z = rng.standard_normal((n_in, n_out)) / np.sqrt(fan_in)  # N(0, 1/f_j) per column
        self.W = (z * self.mask).astype(dtype)
        self.b = np.zeros(n_out, dtype=dtype)
        self.fast = bool(fast)
        if channels is not None and (int(channels) != channels or channels < 1):
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = None if channels is None else int(channels)
        self.groups = _location_groups(mask != 0)

    @classmethod
    def from_fields(cls, fields, rng: np.random.Generator, dtype=np.float32, fast: bool = True):
        """The layer of :class:`ff_numpy.masks.LocalFields` (or ``RaggedFields``) ``fields``:
        its mask, and a location every ``fields.channels`` units."""
        return cls(fields.n_in, fields.n_out, fields.mask(dtype), rng, dtype, fast, fields.channels)

    def location_starts(self) -> np.ndarray:
        """The first unit of every location, shape (n_loc,): of every group, and of
        every ``channels`` units if given (neighbours seeing the same inputs are one
        group for the products but two locations)."""
        starts = np.array([start for _, start, _ in self.groups])
        if self.channels is not None:
            starts = np.union1d(starts, np.arange(0, self.n_out, self.channels))
        return starts

    def config(self) -> dict:
        """What rebuilds the layer: its sizes and its groups ``[start, stop, field]``
        (the mask), ``channels`` and ``fast`` (JSON-serialisable; no weights)."""
        return {
            "type": "Masked",
            "n_in": self.n_in,
            "n_out": self.n_out,
            "groups": [[start, stop, field.tolist()] for field, start, stop in self.groups],
            "channels": self.channels,
            "fast": self.fast,
        }

    @classmethod
    def from_config(cls, cfg: dict, rng: np.random.Generator, dtype=np.float32) -> Masked:
        """The layer of :meth:`config`, its initial weights drawn from ``rng``."""
        mask = np.zeros((cfg["n_in"], cfg["n_out"]), dtype=dtype)
        for start, stop, field in cfg["groups"]:
            mask[field, start:stop] = 1  # units start:stop see the inputs in field
        fast, channels = cfg.get("fast", True), cfg.get("channels")
        return cls(cfg["n_in"], cfg["n_out"], mask, rng, dtype, fast, channels)

    # ---------------------------------------------------------------- forward
    def forward(self, x: np.ndarray, out: np.ndarray | None = None):
        r"""Activities :math:`y = \operatorname{relu}(x W + b)` and the cache ``(x, y)``
        of :meth:`local_grads`, on the local path when ``fast``.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        out : ndarray, shape (B, n_out), optional

        Returns
        -------
        y : ndarray, shape (B, n_out)
        cache : (x, y)
        """
        if not self.fast:
            return self.forward_reference(x, out)
        return Dense.forward(self, x, out)  # self.linear takes the local path

    def linear(
        self, x: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False
    ) -> np.ndarray:
        """``x W`` (or ``out + x W`` with ``accumulate``), on the local path when
        ``fast``: per location, (B, f) @ (f, c) -> (B, c)."""
        if not self.fast:
            return Dense.linear(self, x, out, accumulate)
        if accumulate and out is None:
            raise ValueError("linear(accumulate=True) needs the array to add to (out=...)")
        a = out if out is not None else np.empty((x.shape[0], self.n_out), self.W.dtype)
        for field, start, stop in self.groups:
            x_f = np.take(x, field, axis=1)  # (B, f): the field of this location
            W_f = self.W[field, start:stop]  # (f, c): its weights, zeros left out
            prod = blas.matmul(x_f, W_f)  # (B, f) @ (f, c) -> (B, c)
            if accumulate:
                a[:, start:stop] += prod
            else:
                a[:, start:stop] = prod
        return a

    def forward_reference(self, x: np.ndarray, out: np.ndarray | None = None):
        """The masked-dense forward, ``relu(x @ W + b)`` with ``W`` zero outside the mask:
        (B, n_in) @ (n_in, n_out) -> (B, n_out). Returns ``(y, (x, y))`` as
        :meth:`forward` does."""
        a = Dense.linear(self, x, out=out)  # the full product, zeros included
        a += self.b
        y = np.maximum(a, 0, out=a)
        return y, (x, y)

    # ---------------------------------------------------------------- gradients
    def weight_grad_blocks(self, x: np.ndarray, dL_da: np.ndarray) -> list[np.ndarray]:
        r"""The weight gradient of every location, :math:`x_F^T\, \partial L/\partial a_J`.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        dL_da : ndarray, shape (B, n_out)

        Returns
        -------
        blocks : list of ndarray, shapes (f_g, c_g)
            ``blocks[g]`` is the gradient of ``W[field, start:stop]`` of ``groups[g]``.
        """
        blocks = []
        for field, start, stop in self.groups:
            x_f = np.take(x, field, axis=1)  # (B, f)
            g = np.empty((field.size, stop - start), dtype=self.W.dtype)
            blas.matmul_tn(x_f, dL_da[:, start:stop], g)  # (f, B) @ (B, c) -> (f, c)
            blocks.append(g)
        return blocks

    def weight_grad(self, x: np.ndarray, dL_da: np.ndarray, formed: bool = True) -> np.ndarray:
        r"""Masked weight gradient :math:`(x^T \partial L/\partial a) \odot M`
        (always formed: the mask applies to the product).

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        dL_da : ndarray, shape (B, n_out)
        formed : bool
            Ignored: the result is always an array.

        Returns
        -------
        dL_dW : ndarray, shape (n_in, n_out)
            Exactly zero where ``mask == 0``.
        """
        if not self.fast:
            return self.weight_grad_reference(x, dL_da)
        dL_dW = np.zeros_like(self.W)
        for (field, start, stop), g in zip(self.groups, self.weight_grad_blocks(x, dL_da)):
            dL_dW[field, start:stop] = g  # scatter (f, c) into the field's rows
        return dL_dW

    def weight_grad_reference(self, x: np.ndarray, dL_da: np.ndarray) -> np.ndarray:
        """The masked-dense weight gradient ``(x^T dL_da) * mask``:
        (n_in, B) @ (B, n_out) -> (n_in, n_out)."""
        dL_dW = super().weight_grad(x, dL_da)  # (n_in, B) @ (B, n_out)
        dL_dW *= self.mask  # a masked weight does not exist: its gradient is zero
        return dL_dW

    # ---------------------------------------------------------------- state
    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`, checking shapes and zeros outside the mask."""
        W = np.asarray(arrays["W"])
        if W.shape == self.W.shape and np.any(W[self.mask == 0] != 0):
            raise ValueError(
                "Masked.W: the checkpoint has non-zero weights outside the layer's mask "
                "(its receptive fields do not match)"
            )
        super().load_state(arrays)


def _location_groups(mask: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """Runs of adjacent columns of the boolean ``mask`` (n_in, n_out) with equal fields.

    Returns ``[(field, start, stop), ...]``: units ``start:stop`` all see the inputs
    ``field`` (sorted indices, shape (f,)), covering ``0:n_out`` in order.
    """
    n_out = mask.shape[1]
    cols = mask.T  # (n_out, n_in)
    new = np.ones(n_out, dtype=bool)
    new[1:] = np.any(cols[1:] != cols[:-1], axis=1)  # unit j starts a new location
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], n_out)
    return [(np.flatnonzero(cols[s]), int(s), int(e)) for s, e in zip(starts, stops)]


def check_layers(layers, expected, dtype, what: str = "layers") -> None:
    """Raise unless ``layers`` map the ``expected`` ``(n_in, n_out)`` pairs, in order, and
    hold ``dtype`` arrays (the model's dtype).

    ``(n_in, n_out)``, not ``W.shape``: a local layer stores only its existing weights.
    ``what`` names the layers in the error (``"up layers"``).

    Raises
    ------
    ValueError
        If a layer maps other sizes.
    TypeError
        If a layer holds arrays of another dtype.
    """
    expected = [tuple(pair) for pair in expected]
    got = [(layer.n_in, layer.n_out) for layer in layers]
    if got != expected:
        raise ValueError(f"{what} must map (n_in, n_out) = {expected}, got {got}")
    dtype = np.dtype(dtype)
    dtypes = {np.dtype(a.dtype) for layer in layers for a in layer.params().values()}
    if dtypes != {dtype}:
        raise TypeError(
            f"{what} must hold {dtype} arrays (the model's dtype), got "
            f"{sorted(str(d) for d in dtypes)}"
        )


def layer_types() -> dict[str, type]:
    """The layer parts by the ``"type"`` their ``config()`` records."""
    from ff_numpy.locally_connected import Local  # that module builds on this one

    return {"Dense": Dense, "Masked": Masked, "Local": Local}


def layer_from_config(cfg: dict, rng: np.random.Generator, dtype=np.float32):
    """The layer that ``cfg`` (a layer's ``config()``) describes, its initial weights
    drawn from ``rng`` (``load_state`` then restores saved ones).

    Raises
    ------
    ValueError
        If ``cfg`` names no known layer type.
    """
    types = layer_types()
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if kind not in types:
        raise ValueError(f"unknown layer type {kind!r}: expected one of {sorted(types)}")
    return types[kind].from_config(cfg, rng, dtype)
