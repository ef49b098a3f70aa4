r"""Locally connected layer storing only the weights that exist (paper Sec. 4, footnote 8).

A locally connected layer has local receptive fields without weight sharing: the units
sit on a grid of locations, ``channels`` units per location, and every unit of a location
sees the same inputs, its *field*. :class:`ff_numpy.layers.Masked` writes such a layer as a
dense matrix that is zero outside a 0/1 mask; that is the reference. For the CIFAR-10
layers of the paper's Sec. 4 (32 x 32 maps, 3 units per location, 11 x 11 fields
truncated at the edge, :func:`ff_numpy.masks.same_size_fields`) one connection has
933,156 existing weights against 9,437,184 dense ones, and the dense products spend 90%
of their FLOPs on zeros. :class:`Local` stores the existing weights only and computes
with them:

.. code-block:: text

    W : (n_pairs, C_out)   one row per (location, input in its field) pair, locations
                           in order, each field's inputs in increasing order: row p
                           holds the weights from input indices[p] to the C_out units
                           of its location
    b : (n_out,)

The layer is :math:`y = \operatorname{relu}(x W + b)` with :math:`W` the masked matrix
(:meth:`Local.to_dense`). It is computed *by blocks of locations*: a block is a small
tile of the grid (``block = (2, 3)``: 2 rows by 3 columns of locations). Neighbouring
locations see nearly the same inputs, so a block gathers the union of its fields once,
a patch of the input that stays in cache, and does one matrix product with its weights
zero-padded to that union (padding for compute, never stored):

.. code-block:: text

    P   = x^T[union]           # (K, B): the block's K inputs, gathered
    W_b = pad(W, block)        # (K, N): N = (locations in the block) * C_out
    a_b = W_b^T P              # (N, K) @ (K, B) -> (N, B)
    dW_b = P dL_da_b^T         # (K, B) @ (B, N) -> (K, N), its existing entries kept

On the paper's shapes a 2 x 3 block has a union of 12 x 13 x 3 = 468 inputs, and the
padded products cost about 1.26 times the existing weights' FLOPs instead of 10 times
(``benchmarks/local_speed.py`` measures the block sizes).

As every layer of the library, :class:`Local` returns no gradient with respect to its
input: a Forward-Forward layer learns from its own objective only. The module-level
:func:`input_grad` (the backward pass of a backpropagation baseline) is kept apart.

Products go through SciPy's BLAS only (as :mod:`ff_numpy.blas`), so the hot loop uses
one BLAS thread pool.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas

from ff_numpy import masks

_CHUNK = 1 << 15  # values per chunk of a transposing copy (128 KiB of float32)


def _transpose(a: np.ndarray, out: np.ndarray, add: bool = False) -> np.ndarray:
    """``out <- a.T`` (or ``out += a.T``), a few rows of ``a`` at a time.

    A plain ``a.T`` copy of a wide (B, n) array reads ``n`` values apart for every value
    it writes and ran 4-5x slower here than copying ~32 K values at a time.

    Parameters
    ----------
    a : ndarray, shape (m, n)
    out : ndarray, shape (n, m)
    add : bool

    Returns
    -------
    out : ndarray, shape (n, m)
    """
    step = max(1, _CHUNK // max(1, a.shape[1]))
    for i in range(0, a.shape[0], step):
        if add:
            out[:, i : i + step] += a[i : i + step].T
        else:
            out[:, i : i + step] = a[i : i + step].T
    return out


class Local:
    r"""Locally connected ReLU layer storing only its existing weights (Sec. 4, fn. 8).

    .. math::
        y = \operatorname{relu}(x W + b), \qquad
        a_{n,(l,c)} = \sum_{i \in F_l} x_{ni} W_{(l,i),c} + b_{(l,c)}

    where :math:`F_l` is the field of location :math:`l` and unit :math:`(l, c)` is unit
    ``l * C_out + c``. The same layer as :class:`ff_numpy.layers.Masked` with the mask
    ``fields.mask()`` (:meth:`to_dense` gives its matrix).

    Parameters
    ----------
    fields : ff_numpy.masks.RaggedFields or ff_numpy.masks.LocalFields
        The fields of the locations (:func:`ff_numpy.masks.same_size_fields` for the
        paper's CIFAR-10 maps).
    rng : numpy.random.Generator
        Draws :math:`W_{(l,i),c} \sim \mathcal N(0, 1/|F_l|)` (the fan-in of the unit, as
        :class:`~ff_numpy.layers.Masked` does), in the order of ``W``; biases start at
        zero.
    dtype : {numpy.float32, numpy.float64}

    Attributes
    ----------
    W : ndarray, shape (n_pairs, C_out)
        Row ``p`` holds the weights from input ``fields.indices[p]`` to the ``C_out``
        units of the location that pair ``p`` belongs to.
    b : ndarray, shape (n_out,)
    fields : ff_numpy.masks.RaggedFields
    block : (int, int)
        Rows and columns of grid locations computed together (:meth:`set_block`).

    Notes
    -----
    Besides ``W`` and ``b`` the layer keeps compute scratch that is not part of its state:
    the padded block weights (:meth:`padded_size` values, 1.26 times the weights for the
    CIFAR-10 shapes with 2 x 3 blocks), which the weight gradient reuses for its padded
    blocks, and the position there of every weight (``n_pairs * C_out`` int64).
    """

    BLOCK = (2, 3)  # the fastest measured on the paper's CIFAR-10 shapes (local_speed.py)

    def __init__(self, fields, rng: np.random.Generator, dtype=np.float32):
        if isinstance(fields, masks.LocalFields):
            fields = masks.RaggedFields.from_fields(fields)
        if not isinstance(fields, masks.RaggedFields):
            raise TypeError(
                f"fields must be a masks.RaggedFields or masks.LocalFields, got {type(fields)}"
            )
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.fields = fields
        sizes = fields.field_sizes()  # (n_loc,)
        fan_in = np.repeat(sizes, sizes)  # (n_pairs,): the field size of each pair's location
        z = rng.standard_normal((fields.n_pairs, fields.channels))
        self.W = (z / np.sqrt(fan_in)[:, None]).astype(dtype)  # N(0, 1/fan_in)
        self.b = np.zeros(fields.n_out, dtype=dtype)
        (self._gemm,) = _blas.get_blas_funcs(("gemm",), dtype=dtype)
        self.set_block(self.BLOCK)

    @classmethod
    def same_size(
        cls, H: int, W: int, C_in: int, C_out: int, k, rng: np.random.Generator, dtype=np.float32
    ) -> Local:
        """The layer from an ``(H, W, C_in)`` map to an ``(H, W, C_out)`` map with centred
        ``k x k`` fields truncated at the edge (:func:`ff_numpy.masks.same_size_fields`)."""
        return cls(masks.same_size_fields((H, W, C_in), C_out, k), rng, dtype)

    # ---------------------------------------------------------------- sizes
    @property
    def n_in(self) -> int:
        return self.fields.n_in

    @property
    def n_out(self) -> int:
        return self.fields.n_out

    @property
    def n_params(self) -> int:
        """Existing weights plus biases."""
        return self.W.size + self.b.size

    def params(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name (the optimiser updates them in place)."""
        return {"W": self.W, "b": self.b}

    # ---------------------------------------------------------------- blocks
    def set_block(self, block) -> None:
        """Compute ``block = (rows, columns)`` grid locations together.

        Builds, once, what every product needs: for each block the union of its fields
        (a slice when the union is a run of inputs), its place in the padded weights, and
        the flat position there of every stored weight.

        Parameters
        ----------
        block : int or (int, int)
            ``(1, 1)`` is one product per location over its own field (no padding).
        """
        mr, mq = masks._pair(block, "block")
        fields, C = self.fields, self.fields.channels
        gh, gw = fields.grid
        blocks = []  # (rows of x^T to gather, first output row, last + 1, offset, K, N)
        order = []  # locations in the order they are computed
        pos = np.empty(fields.n_pairs * C, dtype=np.int64)  # W.flat[k] -> work.flat[pos[k]]
        pos2 = pos.reshape(fields.n_pairs, C)
        offset = row = 0
        for r0 in range(0, gh, mr):
            for q0 in range(0, gw, mq):
                rs, qs = np.arange(r0, min(r0 + mr, gh)), np.arange(q0, min(q0 + mq, gw))
                locs = (rs[:, None] * gw + qs[None, :]).reshape(-1)  # row-major in the tile
                pairs = np.concatenate(
                    [np.arange(fields.indptr[g], fields.indptr[g + 1]) for g in locs]
                )
                union = np.unique(fields.indices[pairs])  # (K,) sorted
                K, N = union.size, locs.size * C
                k = np.searchsorted(union, fields.indices[pairs])  # row in the padded block
                j = np.repeat(np.arange(locs.size), fields.field_sizes()[locs])
                # weight (pair, c) sits at row k, column j * C + c of the (K, N) block
                pos2[pairs] = offset + (k * N + j * C)[:, None] + np.arange(C)
                rows = union
                if union[-1] - union[0] + 1 == K:  # a run of inputs: a view, no gather
                    rows = slice(int(union[0]), int(union[-1]) + 1)
                blocks.append((rows, row, row + N, offset, K, N))
                order.append(locs)
                offset += K * N
                row += N
        order = np.concatenate(order)
        units = (order[:, None] * C + np.arange(C)).reshape(-1)  # computed row -> unit
        identity = bool(np.all(units == np.arange(units.size)))
        self.block = (mr, mq)
        self._work = np.empty(offset, dtype=self.W.dtype)  # the padded block weights
        # (rows, r0, r1, units, W_b): the block's inputs, its rows of a^T (computed order),
        # its units (a slice when they are a run), its (K, N) part of work
        self._blocks = []
        for rows, r0, r1, o, K, N in blocks:
            u = units[r0:r1]
            u = slice(int(u[0]), int(u[-1]) + 1) if np.all(np.diff(u) == 1) else u
            self._blocks.append((rows, r0, r1, u, self._work[o : o + K * N].reshape(K, N)))
        self._pos = pos
        self._units = None if identity else units  # unit of each computed row
        self._rows_of_unit = None if identity else np.argsort(units)  # unit -> computed row

    def padded_size(self) -> int:
        """Entries of the padded block weights (``sum K N`` over the blocks)."""
        return self._work.size

    def _padded_weights(self) -> np.ndarray:
        """The weights of every block zero-padded to the union of its fields: a flat
        scratch array holding each block's (K, N) matrix (not part of the state)."""
        self._work.fill(0)
        self._work[self._pos] = self.W.reshape(-1)
        return self._work

    def _x_transposed(self, x: np.ndarray) -> np.ndarray:
        """``x^T`` (n_in, B) in the layer's dtype, checking the shape of ``x``."""
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"x must have shape (B, {self.n_in}), got {x.shape}")
        return _transpose(x, np.empty((self.n_in, x.shape[0]), dtype=self.W.dtype))

    def _grad_transposed(self, dL_da: np.ndarray, B: int) -> np.ndarray:
        """``dL_da^T`` (n_out, B), rows in the order the blocks compute them."""
        if dL_da.shape != (B, self.n_out):
            raise ValueError(f"dL_da must have shape {(B, self.n_out)}, got {dL_da.shape}")
        daT = _transpose(dL_da, np.empty((self.n_out, B), dtype=self.W.dtype))
        return daT if self._units is None else daT[self._units]

    # ---------------------------------------------------------------- forward
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        r"""Activities :math:`y = \operatorname{relu}(x W + b)` and the cache of
        :meth:`local_grads`.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)

        Returns
        -------
        y : ndarray, shape (B, n_out)
        cache : (x, y)
        """
        a = self.linear(x)  # a = x W: per block (N, K) @ (K, B) -> (N, B), then (B, n_out)
        a += self.b  # a = x W + b
        y = np.maximum(a, 0, out=a)  # y = relu(a), in place
        return y, (x, y)

    def linear(
        self, x: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False
    ) -> np.ndarray:
        r"""The weighted input :math:`x W` without bias or ReLU, or with ``accumulate``
        :math:`out \leftarrow out + x W` (a unit summing several connections, as in the
        recurrent net of the paper's Sec. 4 with its bottom-up and top-down fields).

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        out : ndarray, shape (B, n_out), optional
            Where to write (or, with ``accumulate``, add) the result; required with
            ``accumulate``.
        accumulate : bool

        Returns
        -------
        xW : ndarray, shape (B, n_out)
        """
        if accumulate and out is None:
            raise ValueError("linear(accumulate=True) needs the array to add to (out=...)")
        if out is not None and out.shape != (x.shape[0], self.n_out):
            raise ValueError(f"out must have shape {(x.shape[0], self.n_out)}, got {out.shape}")
        xT = self._x_transposed(x)  # (n_in, B)
        self._padded_weights()  # every block's W_b (K, N), zero where no weight exists
        aT = np.empty((self.n_out, x.shape[0]), dtype=self.W.dtype)  # (n_out, B)
        for rows, r0, r1, _, W_b in self._blocks:
            P = xT[rows]  # (K, B): the union of the block's fields
            # a_b^T = W_b^T P: (N, K) @ (K, B) -> (N, B), written into aT[r0:r1] by BLAS
            # (as Fortran arrays: (B, K) @ (K, N) -> (B, N))
            self._gemm(1.0, P.T, W_b.T, trans_b=1, c=aT[r0:r1].T, overwrite_c=1)
        if self._rows_of_unit is not None:
            aT = aT[self._rows_of_unit]  # computed order -> unit order
        if out is None:
            out = np.empty((x.shape[0], self.n_out), dtype=self.W.dtype)
        return _transpose(aT, out, add=accumulate)  # (n_out, B) -> (B, n_out)

    # ---------------------------------------------------------------- gradients
    def weight_grad(self, x: np.ndarray, dL_da: np.ndarray) -> np.ndarray:
        r"""``dL/dW = x^T dL/da`` at the existing weights only, in ``W``'s layout.

        .. math::
            \frac{\partial L}{\partial W_{(l,i),c}} = \sum_n x_{ni}\,
            \frac{\partial L}{\partial a_{n,(l,c)}}

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        dL_da : ndarray, shape (B, n_out)

        Returns
        -------
        dL_dW : ndarray, shape (n_pairs, C_out)
        """
        xT = self._x_transposed(x)  # (n_in, B)
        if dL_da.shape != (x.shape[0], self.n_out):
            raise ValueError(f"dL_da must have shape {(x.shape[0], self.n_out)}, got {dL_da.shape}")
        for rows, _, _, units, G_b in self._blocks:  # padded gradients go where W_b was
            P = xT[rows]  # (K, B)
            dA_b = np.ascontiguousarray(dL_da[:, units], dtype=self.W.dtype)  # (B, N)
            # dW_b = P dL_da_b: (K, B) @ (B, N) -> (K, N), padding entries included
            # (as Fortran arrays: (N, B) @ (B, K) -> (N, K))
            self._gemm(1.0, dA_b.T, P.T, c=G_b.T, overwrite_c=1)
        return self._work[self._pos].reshape(self.W.shape)  # the existing entries only

    def local_grads(
        self,
        cache: tuple[np.ndarray, np.ndarray],
        dL_dy: np.ndarray,
        dL_da_extra: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        r"""Closed-form gradient of the layer's own loss with respect to ``W`` and ``b``
        (the batch form of the paper's Eq. 3, at the existing weights). Nothing is
        returned for ``x``: no error signal leaves the layer.

        .. math::
            \frac{\partial L}{\partial a_{nj}} = \frac{\partial L}{\partial y_{nj}}
            [a_{nj} > 0], \qquad
            \frac{\partial L}{\partial W_{(l,i),c}} = \sum_n x_{ni}
            \frac{\partial L}{\partial a_{n,(l,c)}}, \qquad
            \frac{\partial L}{\partial b_j} = \sum_n \frac{\partial L}{\partial a_{nj}}

        Parameters
        ----------
        cache : (x, y)
            From :meth:`forward`: x (B, n_in), y (B, n_out).
        dL_dy : ndarray, shape (B, n_out)
            Derivative of the layer's loss with respect to its activities.
        dL_da_extra : ndarray, shape (B, n_out), optional
            A term added after the ReLU's derivative (peer normalisation, whose gradient
            also reaches units that are off).

        Returns
        -------
        grads : dict
            ``{"W": dL_dW (n_pairs, C_out), "b": dL_db (n_out,)}``, the keys of
            :meth:`params`.
        """
        x, y = cache
        # y = relu(a)      =>  dL/da = dL/dy * [a > 0]; y > 0 exactly where a > 0
        dL_da = dL_dy * (y > 0)  # (B, n_out)
        if dL_da_extra is not None:
            dL_da += dL_da_extra
        # a = x W + b      =>  dL/dW = x^T dL/da at the existing weights: per block
        #                      (K, B) @ (B, N) -> (K, N), kept entries -> (n_pairs, C_out)
        #                      dL/db = sum over rows of dL/da: (B, n_out) -> (n_out,)
        return {"W": self.weight_grad(x, dL_da), "b": dL_da.sum(axis=0)}

    # ---------------------------------------------------------------- views and state
    def to_dense(self) -> np.ndarray:
        """The masked weight matrix, shape (n_in, n_out), zero outside ``fields.mask()``:
        the ``W`` of the equivalent :class:`ff_numpy.layers.Masked` layer."""
        f, C = self.fields, self.fields.channels
        dense = np.zeros((self.n_in, self.n_out), dtype=self.W.dtype)
        units = f.pair_locations()[:, None] * C + np.arange(C)  # (n_pairs, C)
        dense[f.indices[:, None], units] = self.W
        return dense

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint."""
        return {"W": self.W, "b": self.b}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`, in place, checking names and shapes."""
        for name in ("W", "b"):
            if name not in arrays:
                raise ValueError(f"Local: the checkpoint has no {name!r} (has {sorted(arrays)})")
            target, src = getattr(self, name), np.asarray(arrays[name])
            if src.shape != target.shape:
                raise ValueError(
                    f"Local.{name}: checkpoint has shape {src.shape}, layer has {target.shape} "
                    f"({self.fields.n_pairs} pairs x {self.fields.channels} channels)"
                )
        for name in ("W", "b"):
            getattr(self, name)[...] = arrays[name]


def input_grad(layer: Local, dL_da: np.ndarray) -> np.ndarray:
    r"""Gradient with respect to the layer's input, for the backpropagation baseline only.

    .. math::
        \frac{\partial L}{\partial x_{ni}} = \sum_{(l,c):\, i \in F_l}
        \frac{\partial L}{\partial a_{n,(l,c)}} W_{(l,i),c}
        \quad (\partial L/\partial x = \partial L/\partial a \, W^T)

    a scatter-add of every block's product into the inputs of its fields. Forward-Forward
    never calls it: its layers learn from their own objectives, and no error signal
    travels from a layer to the one below.

    Parameters
    ----------
    layer : Local
    dL_da : ndarray, shape (B, n_out)
        Derivative with respect to the pre-activations ``a = x W + b``.

    Returns
    -------
    dL_dx : ndarray, shape (B, n_in)
    """
    B = dL_da.shape[0]
    daT = layer._grad_transposed(dL_da, B)  # (n_out, B), computed order
    layer._padded_weights()  # every block's W_b (K, N)
    dxT = np.zeros((layer.n_in, B), dtype=layer.W.dtype)  # (n_in, B)
    for rows, r0, r1, _, W_b in layer._blocks:
        # dx_b^T = W_b dL_da_b^T: (K, N) @ (N, B) -> (K, B), added to the block's inputs
        if isinstance(rows, slice):
            layer._gemm(1.0, daT[r0:r1].T, W_b.T, beta=1.0, c=dxT[rows].T, overwrite_c=1)
        else:  # the rows of one block are distinct, so a fancy += adds each once
            dxT[rows] += layer._gemm(1.0, daT[r0:r1].T, W_b.T).T
    return _transpose(dxT, np.empty((B, layer.n_in), dtype=layer.W.dtype))
