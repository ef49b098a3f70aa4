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
tile of the grid (``block = (1, 2)``: 1 row by 2 columns of locations). Neighbouring
locations see nearly the same inputs, so a block takes the union of its fields and does
one matrix product with its weights zero-padded to that union:

.. code-block:: text

    P   = x^T[union]           # (K, B): the block's K inputs
    W_b = pad(W, block)        # (K, N): N = (locations in the block) * C_out
    a_b = W_b^T P              # (N, K) @ (K, B) -> (N, B)
    dW_b = P dL_da_b^T         # (K, B) @ (B, N) -> (K, N), its existing entries kept

On the paper's shapes a 1 x 2 block has a union of 11 x 12 x 3 = 396 inputs, and the
padded products cost 1.08 times the existing weights' FLOPs instead of 10 times.

Four speed tricks lay the products out; each can be turned off (:meth:`Local.set_block`,
:attr:`Local.keep_padded`), gives the same numbers as the masked-dense reference either way
(float64, ``tests/test_locally_connected.py``) and is measured in
``benchmarks/local_speed.py``:

* *Bands.* The blocks of one row of blocks form a band. The band's inputs are gathered
  once, in an order where every block's union is a run, so a block's ``P`` is a slice of
  the band: on the CIFAR-10 shapes 30,912 rows of ``x^T`` gathered per pass instead of
  168,084 (:func:`_band_order`).
* *Small products.* The batch is cut into chunks of at most ``rows`` rows (:class:`_Plan`)
  so that every block's product has ``m n k <= SMALL_MNK``: OpenBLAS multiplies such
  matrices without packing them first (its "small matrix" kernels); on these narrow
  shapes (``N = 6``) a pass over 1,000-2,000 rows ran 2-3 times as fast as with the
  whole batch in one product. Every product reads and writes contiguous arrays, so
  SciPy's wrappers copy nothing.
* *Strided copies.* The weight gradient's ``dL_da`` is put into per-block arrays by a
  few strided copies (:meth:`_Plan.block_rows`), not by one copy per block.
* *Cached padded weights.* The padded ``W_b`` of every block are built once and kept
  until ``W`` changes (:meth:`Local._padded_weights`; the rule is in the class
  docstring).

As every layer of the library, :class:`Local` returns no gradient with respect to its
input: a Forward-Forward layer learns from its own objective only. The module-level
:func:`input_grad` (the backward pass of a backpropagation baseline) is kept apart.

Products go through SciPy's BLAS only (as :mod:`ff_numpy.blas`), so the hot loop uses
one BLAS thread pool.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg import blas as _blas

from ff_numpy import masks
from ff_numpy.layers import Dense

_CHUNK = 1 << 15  # values per chunk of a transposing copy (128 KiB of float32)

#: Largest ``m * n * k`` of one block product. OpenBLAS (0.3.17 and later, x86-64 with
#: AVX-512) multiplies matrices up to this size with its "small matrix" kernels, which
#: skip the packing of the operands; larger products are cut into chunks of rows.
SMALL_MNK = 100**3


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


def _band_order(
    unions: list[np.ndarray], n_in: int, shared: bool = True
) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Order the inputs of a row of blocks so that every block's union is a run.

    Inputs are sorted by the first and the last block that sees them (then by index):
    where the blocks' unions slide along the row, as with same-size fields, each union is
    then a run. A block whose union is not a run gets a band of its own.

    Parameters
    ----------
    unions : list of ndarray
        The sorted union of each block's fields, blocks in order.
    n_in : int
    shared : bool
        False gives every block a band of its own (the plain gather, one per block).

    Returns
    -------
    bands : list of (idx, starts)
        ``idx`` the band's distinct inputs in order; ``starts``: ``(j, k0)`` for each
        block ``j`` of the band, whose union is ``idx[k0 : k0 + len(unions[j])]``. Every
        block is in exactly one band.
    """
    if not shared:
        return [(union, [(j, 0)]) for j, union in enumerate(unions)]
    nb = len(unions)
    first, last = np.full(n_in, nb), np.full(n_in, -1)
    for j, union in enumerate(unions):
        first[union] = np.minimum(first[union], j)
        last[union] = np.maximum(last[union], j)
    seen = np.flatnonzero(last >= 0)
    order = seen[np.lexsort((seen, last[seen], first[seen]))]
    where = np.empty(n_in, dtype=np.int64)
    where[order] = np.arange(order.size)
    runs, alone = [], []
    for j, union in enumerate(unions):
        p = where[union]  # distinct positions: a run iff max - min + 1 == size
        if p.max() - p.min() + 1 == union.size:
            runs.append((j, int(p.min())))
        else:
            alone.append(j)
    bands = [(order, runs)] if runs else []
    return bands + [(unions[j], [(j, 0)]) for j in alone]


class _Plan:
    """How one kind of product walks the grid: blocks, bands, padded layout, chunks.

    Blocks are tiles of the grid, taken row of blocks by row of blocks, left to right;
    the *computed order* of the units is tile by tile, row-major inside a tile.

    Parameters
    ----------
    fields : ff_numpy.masks.RaggedFields
    block : (int, int)
        Rows and columns of grid locations per block.
    bands : bool
        Gather the inputs once per row of blocks (:func:`_band_order`); False gathers
        every block's union on its own.
    strided : bool
        Put ``dL_da`` into per-block arrays with a few strided copies
        (:meth:`block_rows`); False copies block by block.
    max_mnk : int or None
        Largest ``m n k`` of a block product (:data:`SMALL_MNK`); None puts the whole
        batch in one product per block.

    Attributes
    ----------
    bands : list of (idx, blocks)
        ``idx`` the band's inputs, in order; ``blocks``: ``(k0, k1, u0, u1, offset, K,
        N)`` per block: its inputs ``idx[k0:k1]``, its rows ``u0:u1`` in computed order,
        its (K, N) padded matrix at ``padded[offset : offset + K N]``.
    size : int
        Entries of the padded matrices (``sum K N``).
    pos : ndarray of int64, shape (n_pairs * C_out,)
        ``W.flat[i]`` sits at ``padded[pos[i]]``.
    units : ndarray of int64, shape (n_out,), or None
        The unit of each computed row (None when that is the unit order).
    rows_of_unit : ndarray of int64, shape (n_out,), or None
        The computed row of each unit.
    rows : int
        Most batch rows per product.
    """

    def __init__(
        self,
        fields: masks.RaggedFields,
        block: tuple[int, int],
        bands: bool = True,
        strided: bool = True,
        max_mnk: int | None = SMALL_MNK,
    ):
        mr, mq = block
        f, C = fields, fields.channels
        gh, gw = f.grid
        sizes = f.field_sizes()
        self.block = (mr, mq)
        self.pos = np.empty(f.n_pairs * C, dtype=np.int64)
        pos2 = self.pos.reshape(f.n_pairs, C)
        self.bands, self.block_units = [], []
        order, offset, u, largest = [], 0, 0, 1
        for r0 in range(0, gh, mr):
            tiles = []  # (locations, pairs, union, u0, offset) of each block of the row
            for q0 in range(0, gw, mq):
                rs, qs = np.arange(r0, min(r0 + mr, gh)), np.arange(q0, min(q0 + mq, gw))
                locs = (rs[:, None] * gw + qs[None, :]).reshape(-1)  # row-major in the tile
                pairs = np.concatenate([np.arange(f.indptr[g], f.indptr[g + 1]) for g in locs])
                union = np.unique(f.indices[pairs])
                tiles.append((locs, pairs, union, u, offset))
                K, N = union.size, locs.size * C
                order.append(locs)
                self.block_units.append((u, u + N, (locs[:, None] * C + np.arange(C)).ravel()))
                u, offset, largest = u + N, offset + K * N, max(largest, K * N)
            for idx, starts in _band_order([t[2] for t in tiles], f.n_in, bands):
                where = np.empty(f.n_in, dtype=np.int64)
                where[idx] = np.arange(idx.size)
                blocks = []
                for j, k0 in starts:
                    locs, pairs, union, u0, o = tiles[j]
                    K, N = union.size, locs.size * C
                    k = where[f.indices[pairs]] - k0  # row of each pair's input in W_b
                    col = np.repeat(np.arange(locs.size), sizes[locs]) * C
                    # weight (pair, c) sits at row k, column col + c of the (K, N) block
                    pos2[pairs] = o + (k * N + col)[:, None] + np.arange(C)
                    blocks.append((k0, k0 + K, u0, u0 + N, o, K, N))
                self.bands.append((idx, blocks))
        self.size = offset
        self.band_max = max(idx.size for idx, _ in self.bands)
        order = np.concatenate(order)
        units = (order[:, None] * C + np.arange(C)).reshape(-1)  # computed row -> unit
        identity = bool(np.all(units == np.arange(units.size)))
        self.units = None if identity else units
        self.rows_of_unit = None if identity else np.argsort(units)
        self.rows = max(1, max_mnk // largest) if max_mnk is not None else np.iinfo(np.int64).max
        self.row_units = gw * C  # units per row of the grid
        self.groups = self._groups(gh, gw, C) if strided else None
        check = np.arange(f.n_out, dtype=np.float64)[None, :]
        if not np.array_equal(self.block_rows(check, np.empty(f.n_out)), units):
            raise AssertionError("Local: the block copies do not follow the computed order")

    def _groups(self, gh: int, gw: int, C: int) -> list[tuple]:
        """The strided copies of :meth:`block_rows`: one per kind of tile (full, cut at
        the last row of blocks, cut at the last column, both).

        Computed row of (band i, block j, row r, column q, channel c) with ``R`` rows in
        band i: ``i mr gw C + j R mq C + (r Q + q) C + c`` (``Q`` the block's columns);
        its unit ``((i mr + r) gw + j mq + q) C + c``.
        """
        mr, mq = self.block
        nbr, rr, nbq, rq = gh // mr, gh % mr, gw // mq, gw % mq
        groups = []
        for i0, ni, R in ((0, nbr, mr), (nbr, 1 if rr else 0, rr)):
            for j0, nj, Q in ((0, nbq, mq), (nbq, 1 if rq else 0, rq)):
                if ni and nj:
                    dst0 = i0 * mr * gw * C + j0 * R * mq * C  # computed row of the first
                    src0 = (i0 * mr * gw + j0 * mq) * C  # its unit
                    groups.append((ni, nj, R, Q * C, dst0, src0, mr * gw * C, R * mq * C, mq * C))
        return groups

    def block_rows(self, d: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Put ``d`` (B, n_out), units in order, into per-block arrays: block ``b``'s
        (B, N) array, C-ordered, at ``out[B u0 : B u1]`` (a few strided copies, or with
        ``strided=False`` one copy per block).

        Parameters
        ----------
        d : ndarray, shape (B, n_out), last axis contiguous
        out : ndarray, shape (>= B n_out,), contiguous

        Returns
        -------
        out : ndarray
        """
        B, it, its, gw_C = d.shape[0], out.itemsize, d.itemsize, self.row_units
        if self.groups is None:
            for u0, u1, units in self.block_units:
                out[B * u0 : B * u1].reshape(B, u1 - u0)[...] = d[:, units]
            return out
        for ni, nj, R, QC, dst0, src0, band, blk, src_blk in self.groups:
            shape = (ni, nj, B, R, QC)
            dst = as_strided(
                out[B * dst0 :], shape, (B * band * it, B * blk * it, R * QC * it, QC * it, it)
            )
            src = as_strided(
                d[:, src0:], shape, (band * its, src_blk * its, d.strides[0], gw_C * its, its)
            )
            np.copyto(dst, src)
        return out

    def chunks(self, B: int) -> list[tuple[int, int]]:
        """Row ranges of at most :attr:`rows` rows, as equal as possible."""
        if B == 0:
            return []
        n = -(-B // self.rows)
        step = -(-B // n)
        return [(b0, min(B, b0 + step)) for b0 in range(0, B, step)]

    def block_views(self, padded: np.ndarray) -> list[list[tuple]]:
        """Per band, ``(k0, k1, u0, u1, M_b)`` per block, ``M_b`` its (K, N) matrix in
        ``padded`` as the Fortran array (N, K) the products take."""
        return [
            [
                (k0, k1, u0, u1, padded[o : o + K * N].reshape(K, N).T)
                for k0, k1, u0, u1, o, K, N in b
            ]
            for _, b in self.bands
        ]

    def gather(self, xT: np.ndarray):
        """Yield, band by band, the band's inputs ``P = xT[idx]``, shape (n, B). The
        bands share one buffer: use ``P`` before taking the next."""
        B = xT.shape[1]
        buf = np.empty(self.band_max * B, dtype=xT.dtype)
        for idx, _ in self.bands:
            P = buf[: idx.size * B].reshape(idx.size, B)
            yield np.take(xT, idx, axis=0, out=P, mode="clip")


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
    keep_padded : bool
        Keep the padded weights between products (the default); False rebuilds them for
        every product (the plain way, for tests and measurements).

    Notes
    -----
    ``W`` and ``b`` are the state; they are plain arrays that anyone may write in place
    (the optimiser through :meth:`params`, :meth:`load_state`, a model holding ``W``).

    *The padded weights are a cache, and it cannot be stale.* The forward product reads
    every block's ``W_b`` from a padded copy of ``W`` that is built once and then kept.
    Before every product (:meth:`linear`, :meth:`forward`, :func:`input_grad`) the layer
    compares ``W`` bit for bit with a snapshot taken when the copy was built (about
    0.1 ms for 933,156 float32 weights, against about 1 ms to rebuild) and rebuilds the
    copy if any bit differs. No write to ``W``, however it is made, can be missed, so
    there is no rule for callers to follow; the cost is one comparison per product.

    Memory besides ``W`` and ``b`` (``n_w`` = number of weights; CIFAR-10 shapes,
    float32, ``n_w`` = 933,156, 3.7 MB, 1 x 2 blocks): the padded weights (1.08 ``n_w``
    values, 4.0 MB) and their snapshot (``n_w`` values, 3.7 MB); the padded gradient,
    rewritten by every :meth:`weight_grad` (4.0 MB); the position of every weight in the
    padded layout (int64, 7.5 MB). Each call also allocates, for one chunk of rows, ``x``
    transposed, a band and the block outputs (at most 12 MB, for chunks of 420 rows).

    A layer is not meant to be used from two threads at once.
    """

    BLOCK = (1, 2)  # the fastest measured where training spends its time (local_speed.py)

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
        self.dtype = dtype
        (self._gemm,) = _blas.get_blas_funcs(("gemm",), dtype=dtype)
        self._seen = np.empty(self.W.shape, dtype=dtype)  # W when the padded copy was built
        self.keep_padded = True  # False: rebuild the padded weights for every product
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

    def location_starts(self) -> np.ndarray:
        """The first unit of every location, shape (n_loc,): the units are location-major
        (``unit = loc * C_out + c``), so location ``loc`` starts at ``loc * C_out``."""
        return np.arange(0, self.n_out, self.fields.channels)

    # ---------------------------------------------------------------- config
    def config(self) -> dict:
        """What rebuilds the layer (JSON-serialisable; no weights): its fields, and its
        :meth:`set_block`. Fields built by :func:`ff_numpy.masks.same_size_fields` are
        stored as its arguments (a few numbers); others as the arguments of
        :class:`ff_numpy.masks.RaggedFields` (every index: about 7 MB of JSON for one
        CIFAR-10 connection)."""
        f = self.fields
        if f.recipe is not None:
            fields = dict(f.recipe)
        else:
            fields = {
                "indptr": f.indptr.tolist(),
                "indices": f.indices.tolist(),
                "channels": int(f.channels),
                "n_in": int(f.n_in),
                "grid": [int(g) for g in f.grid],
            }
        return {"type": "Local", "fields": fields, "block": list(self.block), **self._options}

    @classmethod
    def from_config(cls, cfg: dict, rng: np.random.Generator, dtype=np.float32) -> Local:
        """The layer of :meth:`config`, its initial weights drawn from ``rng``."""
        f = cfg["fields"]
        if "same_size_fields" in f:
            args = f["same_size_fields"]
            try:
                fields = masks.same_size_fields(args["in_shape"], args["channels"], args["k"])
            except (KeyError, TypeError, ValueError) as e:
                shown = repr(args) if len(repr(args)) <= 80 else repr(args)[:77] + "..."
                raise ValueError(
                    f"malformed fields of a Local layer: same_size_fields needs in_shape, "
                    f"channels and k, got {shown} ({type(e).__name__}: {e})"
                ) from None
        else:
            fields = masks.RaggedFields(
                np.asarray(f["indptr"], dtype=np.int64),
                np.asarray(f["indices"], dtype=np.int64),
                int(f["channels"]),
                int(f["n_in"]),
                tuple(int(g) for g in f["grid"]),
            )
        layer = cls(fields, rng, dtype)
        options = {k: cfg[k] for k in ("bands", "strided", "max_mnk") if k in cfg}
        layer.set_block(cfg.get("block", cls.BLOCK), **options)
        return layer

    # ---------------------------------------------------------------- blocks
    def set_block(
        self,
        block,
        *,
        bands: bool = True,
        strided: bool = True,
        max_mnk: int | None = SMALL_MNK,
    ) -> None:
        """Compute ``block = (rows, columns)`` grid locations together.

        Builds, once, what every product needs (:class:`_Plan`): for each row of blocks
        the band of inputs to gather, each block's place in it and in the padded
        matrices, and the flat position there of every stored weight.

        Parameters
        ----------
        block : int or (int, int)
            ``(1, 1)`` is one product per location over its own field (no padding).
        bands, strided, max_mnk
            The speed tricks of :class:`_Plan`, all on by default; each off gives the
            same numbers the plain way (``tests/test_locally_connected.py``,
            ``benchmarks/local_speed.py``).
        """
        self.block = masks._pair(block, "block")
        self._options = {"bands": bands, "strided": strided, "max_mnk": max_mnk}
        self._plan = _Plan(self.fields, self.block, **self._options)
        self._W_pad = np.zeros(self._plan.size, dtype=self.dtype)  # zeros stay zero
        self._G_pad = np.empty(self._plan.size, dtype=self.dtype)
        self._W_blocks = self._plan.block_views(self._W_pad)
        self._G_blocks = self._plan.block_views(self._G_pad)
        self._fresh = False  # the padded weights are built on the next product

    def __getstate__(self) -> dict:
        """The layer without what is derived from it (the BLAS function, the blocks, the
        padded copies and their views), which :meth:`__setstate__` builds again: a copy
        (``copy.deepcopy``, pickle) gets its own padded arrays, not detached views."""
        keep = ("fields", "W", "b", "dtype", "keep_padded", "block", "_options")
        return {k: v for k, v in self.__dict__.items() if k in keep}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        (self._gemm,) = _blas.get_blas_funcs(("gemm",), dtype=self.dtype)
        self._seen = np.empty(self.W.shape, dtype=self.dtype)
        self.set_block(self.block, **self._options)

    def padded_size(self) -> int:
        """Entries of the padded block matrices (``sum K N`` over the blocks)."""
        return self._plan.size

    def _padded_weights(self) -> None:
        """Make the padded copy of ``W`` current: rebuild it if ``W`` differs from the
        snapshot taken when it was built in any bit (the class's Notes)."""
        W, seen = self.W, self._seen
        if W.shape != seen.shape:
            raise ValueError(f"Local.W must have shape {seen.shape}, got {W.shape}")
        bits = np.uint32 if self.dtype == np.float32 else np.uint64
        if not (
            self.keep_padded
            and self._fresh
            and W.dtype == seen.dtype
            and np.array_equal(np.ascontiguousarray(W).view(bits), seen.view(bits))
        ):
            self._W_pad[self._plan.pos] = W.reshape(-1)  # the padding stays zero
            np.copyto(seen, W)
            self._fresh = True

    def _check(self, x: np.ndarray, name: str, n: int) -> None:
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"{name} must have shape (B, {n}), got {x.shape}")

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
        # Dense's forward lines (a = x W + b, y = relu(a)); this layer's linear forms x W
        # per block of locations: (N, K) @ (K, B) -> (N, B), then (B, n_out).
        return Dense.forward(self, x)

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
        self._check(x, "x", self.n_in)
        B = x.shape[0]
        if out is not None and out.shape != (B, self.n_out):
            raise ValueError(f"out must have shape {(B, self.n_out)}, got {out.shape}")
        if out is None:
            out = np.empty((B, self.n_out), dtype=self.dtype)
        self._padded_weights()
        plan, gemm, n_in, n_out, dt = self._plan, self._gemm, self.n_in, self.n_out, self.dtype
        for b0, b1 in plan.chunks(B):
            n = b1 - b0
            xT = _transpose(x[b0:b1], np.empty((n_in, n), dtype=dt))  # (n_in, n)
            aT = np.empty((n_out, n), dtype=dt)  # (n_out, n), computed order
            for P, blocks in zip(plan.gather(xT), self._W_blocks):
                for k0, k1, u0, u1, W_bT in blocks:
                    # a_b^T = W_b^T P: (N, K) @ (K, n) -> (N, n), written by BLAS into the
                    # block's rows of aT (as Fortran arrays: (n, K) @ (K, N) -> (n, N))
                    gemm(1.0, P[k0:k1].T, W_bT, trans_b=1, c=aT[u0:u1].T, overwrite_c=1)
            if plan.rows_of_unit is not None:  # computed order -> unit order
                aT = np.take(aT, plan.rows_of_unit, axis=0, mode="clip")
            _transpose(aT, out[b0:b1], add=accumulate)  # (n_out, n) -> (n, n_out)
        return out

    # ---------------------------------------------------------------- gradients
    def weight_grad(self, x: np.ndarray, dL_da: np.ndarray, formed: bool = True) -> np.ndarray:
        r"""``dL/dW = x^T dL/da`` at the existing weights only, in ``W``'s layout
        (always formed: ``formed`` is ignored).

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
        self._check(x, "x", self.n_in)
        B = x.shape[0]
        if dL_da.shape != (B, self.n_out):
            raise ValueError(f"dL_da must have shape {(B, self.n_out)}, got {dL_da.shape}")
        plan, gemm = self._plan, self._gemm
        if B == 0:
            return np.zeros(self.W.shape, dtype=self.dtype)
        dL_da, dt = np.ascontiguousarray(dL_da), self.dtype
        for c, (b0, b1) in enumerate(plan.chunks(B)):
            n, beta = b1 - b0, 0.0 if c == 0 else 1.0  # later chunks add to the first
            xT = _transpose(x[b0:b1], np.empty((self.n_in, n), dtype=dt))  # (n_in, n)
            # block b's dL_da (n, N), C-ordered, at dA[n u0 : n u1]
            dA = plan.block_rows(dL_da[b0:b1], np.empty(n * self.n_out, dtype=dt))
            for P, blocks in zip(plan.gather(xT), self._G_blocks):
                for k0, k1, u0, u1, G_bT in blocks:
                    # dW_b = P dL_da_b: (K, n) @ (n, N) -> (K, N), padding entries included
                    # (as Fortran arrays: (N, n) @ (n, K) -> (N, K))
                    dA_b = dA[n * u0 : n * u1].reshape(n, u1 - u0)
                    gemm(1.0, dA_b.T, P[k0:k1].T, beta=beta, c=G_bT, overwrite_c=1)
        dW = np.take(self._G_pad, plan.pos)  # the existing entries only
        return dW.reshape(self.W.shape)

    def local_grads(
        self,
        cache: tuple[np.ndarray, np.ndarray],
        dL_dy: np.ndarray,
        dL_da_extra: np.ndarray | None = None,
        formed: bool = True,
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
        dL_da_extra : ndarray, shape (B', n_out) with B' <= B, optional
            A term added after the ReLU's derivative to the first B' rows (peer
            normalisation on the positive rows, whose gradient also reaches units that
            are off).
        formed : bool
            Ignored (:meth:`weight_grad` always forms its product).

        Returns
        -------
        grads : dict
            ``{"W": dL_dW (n_pairs, C_out), "b": dL_db (n_out,)}``, the keys of
            :meth:`params`.
        """
        # The chain rule is Dense's (one definition of Eq. 3): dL/da = dL/dy * [a > 0],
        # dL/dW = x^T dL/da, dL/db = sum of dL/da; this layer's weight_grad forms x^T dL/da
        # at the existing weights only, per block: (K, B) @ (B, N) -> (n_pairs, C_out).
        return Dense.local_grads(self, cache, dL_dy, dL_da_extra, formed)

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

    every block's product added into its band of inputs, each band then added into the
    inputs. Forward-Forward never calls it: its layers learn from their own objectives,
    and no error signal travels from a layer to the one below.

    Parameters
    ----------
    layer : Local
    dL_da : ndarray, shape (B, n_out)
        Derivative with respect to the pre-activations ``a = x W + b``.

    Returns
    -------
    dL_dx : ndarray, shape (B, n_in)
    """
    layer._check(dL_da, "dL_da", layer.n_out)
    B, n_in, n_out, dtype = dL_da.shape[0], layer.n_in, layer.n_out, layer.dtype
    layer._padded_weights()
    plan, gemm = layer._plan, layer._gemm
    dx = np.empty((B, n_in), dtype=dtype)
    for b0, b1 in plan.chunks(B):
        n = b1 - b0
        daT = _transpose(dL_da[b0:b1], np.empty((n_out, n), dtype=dtype))  # (n_out, n)
        if plan.units is not None:
            daT = np.take(daT, plan.units, axis=0, mode="clip")  # unit -> computed order
        dxT = np.zeros((n_in, n), dtype=dtype)  # (n_in, n)
        for (idx, _), blocks in zip(plan.bands, layer._W_blocks):
            D = np.zeros((idx.size, n), dtype=dtype)  # the band's inputs
            for k0, k1, u0, u1, W_bT in blocks:
                # dx_b^T = W_b dL_da_b^T: (K, N) @ (N, n) -> (K, n), added to the band
                # (as Fortran arrays: (n, N) @ (N, K) -> (n, K))
                gemm(1.0, daT[u0:u1].T, W_bT, beta=1.0, c=D[k0:k1].T, overwrite_c=1)
            dxT[idx] += D  # a band's inputs are distinct, so a fancy += adds each once
        _transpose(dxT, dx[b0:b1])  # (n_in, n) -> (n, n_in)
    return dx
