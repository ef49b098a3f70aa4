r"""Receptive-field masks of locally connected layers (paper, footnote 8).

A locally connected layer has local receptive fields *without* weight sharing: its units
sit at the locations of a grid, every location has ``channels`` units, and all the units
of one location see the same set of inputs, its *field*. The layer is a dense layer whose
weight matrix is zero outside a fixed 0/1 mask,

.. math::
    W = W \odot M, \qquad M_{ij} = 1 \iff \text{input } i \text{ lies in the field of
    unit } j,

(:class:`ff_numpy.layers.Masked`). This module builds the fields and masks; it imports
NumPy only.

Orderings
---------
Inputs of a layer over an image of shape ``(H, W)`` or ``(H, W, C)``: the pixels in
row-major (C) order, channel fastest, ``i = (r * W + q) * C + c`` (for MNIST, the 784
pixels of ``image.reshape(-1)``).

Outputs of every layer, *location-major*: the locations of an ``(gh, gw)`` grid in
row-major order, ``loc = g_r * gw + g_q``, and ``unit = loc * channels + c``. A layer
over a grid of locations below (:func:`grid_fields`) expects its input in exactly this
order, so the layers stack.

The paper's architecture for 28x28 MNIST (:func:`paper_local_architecture`):

=====  ========  =========================================  ========  =====
layer  grid      field                                      channels  units
=====  ========  =========================================  ========  =====
1      4 x 4     10 x 10 pixels, stride 6 (3 * 6 + 10 = 28)  128       2048
2      3 x 3     all channels of a 2 x 2 square below        220       1980
3      2 x 2     all channels of a 2 x 2 square below        512       2048
=====  ========  =========================================  ========  =====
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def _pair(v, name: str) -> tuple[int, int]:
    """``v`` as a pair of positive ints (an int ``n`` means ``(n, n)``)."""
    t = (v, v) if np.ndim(v) == 0 else tuple(v)
    if len(t) != 2 or any(int(a) != a or a < 1 for a in t):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def _check_fit(size: int, grid: int, stride: int, field: int, what: str) -> None:
    """Raise unless ``grid`` fields of width ``field``, ``stride`` apart, fit in ``size``."""
    need = (grid - 1) * stride + field
    if need > size:
        raise ValueError(
            f"{what}: {grid} fields of width {field} with stride {stride} span {need} "
            f"but the input is only {size} wide"
        )


@dataclass(frozen=True)
class LocalFields:
    """Receptive fields of a locally connected layer, one per grid location.

    Parameters
    ----------
    fields : ndarray of int, shape (n_loc, f)
        ``fields[loc]``: the sorted input indices that every unit of location ``loc``
        sees.
    channels : int
        Units per location.
    n_in : int
        Size of the layer's input.
    grid : (int, int)
        Shape of the grid of locations (``n_loc = grid[0] * grid[1]``), row-major.

    Notes
    -----
    Output units are location-major: ``unit = loc * channels + c``.
    """

    fields: np.ndarray
    channels: int
    n_in: int
    grid: tuple[int, int]

    def __post_init__(self):
        f = np.asarray(self.fields)
        if f.ndim != 2 or f.shape[1] < 1 or not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"fields must be a 2-D int array (n_loc, f), got {f.shape} {f.dtype}")
        if f.shape[0] != self.grid[0] * self.grid[1]:
            raise ValueError(f"{f.shape[0]} fields do not fill a {self.grid} grid")
        if f.min() < 0 or f.max() >= self.n_in:
            raise ValueError(f"field indices must lie in 0..{self.n_in - 1}")
        if np.any(np.diff(f, axis=1) <= 0):
            raise ValueError("every field must list distinct input indices in increasing order")
        if self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")

    @property
    def n_loc(self) -> int:
        """Number of locations."""
        return self.fields.shape[0]

    @property
    def field_size(self) -> int:
        """Inputs seen by each unit (the fan-in ``f``)."""
        return self.fields.shape[1]

    @property
    def n_out(self) -> int:
        """Number of units, ``n_loc * channels``."""
        return self.n_loc * self.channels

    def unit_fields(self) -> np.ndarray:
        """The field of every unit, shape (n_out, f): row ``j`` lists unit ``j``'s inputs."""
        return np.repeat(self.fields, self.channels, axis=0)

    def mask(self, dtype=np.float32) -> np.ndarray:
        """The 0/1 mask, shape (n_in, n_out): ``mask[i, j] = 1`` iff unit ``j`` sees ``i``."""
        m = np.zeros((self.n_in, self.n_out), dtype=dtype)
        for loc, field in enumerate(self.fields):
            m[field, loc * self.channels : (loc + 1) * self.channels] = 1
        return m

    def flops(self, batch: int) -> tuple[int, int]:
        """Matmul FLOPs of forward plus weight gradient for ``batch`` rows.

        Returns
        -------
        needed, dense : int
            ``2 * 2 * batch * f * n_out`` (the products over the fields only) and
            ``2 * 2 * batch * n_in * n_out`` (the masked-dense products).
        """
        return 4 * batch * self.field_size * self.n_out, 4 * batch * self.n_in * self.n_out


def image_fields(image_shape, grid, stride, field, channels: int) -> LocalFields:
    """Square fields on a grid over an image.

    Location ``(g_r, g_q)`` sees the ``field x field`` pixels (all input channels) whose
    top-left corner is ``(g_r * stride, g_q * stride)``.

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
        The input image; the layer's input is its pixels in row-major order, channel
        fastest (size ``H * W * C``).
    grid : int or (int, int)
        Locations per column and per row, ``(gh, gw)``.
    stride : int or (int, int)
        Pixels between neighbouring locations.
    field : int or (int, int)
        Field height and width in pixels.
    channels : int
        Units per location.

    Returns
    -------
    LocalFields
        ``n_in = H * W * C``, ``n_out = gh * gw * channels``, field size
        ``field_h * field_w * C``.

    Raises
    ------
    ValueError
        If the fields do not fit in the image.
    """
    if len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {image_shape!r}")
    H, W = _pair(image_shape[:2], "image_shape")
    C = int(image_shape[2]) if len(image_shape) == 3 else 1
    gh, gw = _pair(grid, "grid")
    sh, sw = _pair(stride, "stride")
    fh, fw = _pair(field, "field")
    _check_fit(H, gh, sh, fh, "rows")
    _check_fit(W, gw, sw, fw, "columns")
    r, q, c = np.meshgrid(np.arange(fh), np.arange(fw), np.arange(C), indexing="ij")
    offsets = ((r * W + q) * C + c).reshape(-1)  # (f,), increasing: row-major, channel fastest
    corners = [(i * sh * W + j * sw) * C for i in range(gh) for j in range(gw)]
    fields = np.asarray(corners)[:, None] + offsets[None, :]  # (n_loc, f)
    return LocalFields(fields, int(channels), H * W * C, (gh, gw))


def grid_fields(in_grid, in_channels: int, grid, k, channels: int, stride=1) -> LocalFields:
    """Fields over a grid of locations below: each sees all channels of a k x k square.

    Location ``(g_r, g_q)`` sees every channel of the locations ``(g_r * stride + d_r,
    g_q * stride + d_q)`` below, ``0 <= d_r, d_q < k``. With ``stride = 1`` and ``k = 2``
    these are the 2 x 2 squares of adjacent grid points of the paper.

    Parameters
    ----------
    in_grid : int or (int, int)
        The grid of the layer below, ``(Gh, Gw)``.
    in_channels : int
        Units per location below; the input is location-major,
        ``i = (G_r * Gw + G_q) * in_channels + c`` (the ordering every layer here outputs).
    grid : int or (int, int)
        This layer's grid, ``(gh, gw)``.
    k : int or (int, int)
        Side of the square of locations below.
    channels : int
        Units per location.
    stride : int or (int, int)
        Grid points below between neighbouring locations.

    Returns
    -------
    LocalFields
        ``n_in = Gh * Gw * in_channels``, field size ``k_h * k_w * in_channels``.
    """
    (Gh, Gw), (gh, gw) = _pair(in_grid, "in_grid"), _pair(grid, "grid")
    (kh, kw), (sh, sw) = _pair(k, "k"), _pair(stride, "stride")
    _check_fit(Gh, gh, sh, kh, "grid rows")
    _check_fit(Gw, gw, sw, kw, "grid columns")
    in_channels = int(in_channels)
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    dr, dq, c = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(in_channels), indexing="ij")
    offsets = ((dr * Gw + dq) * in_channels + c).reshape(-1)  # (f,), increasing
    corners = [(i * sh * Gw + j * sw) * in_channels for i in range(gh) for j in range(gw)]
    fields = np.asarray(corners)[:, None] + offsets[None, :]  # (n_loc, f)
    return LocalFields(fields, int(channels), Gh * Gw * in_channels, (gh, gw))


def image_grid_mask(image_shape, grid, stride, field, channels: int, dtype=np.float32):
    """The 0/1 mask (n_in, n_out) of :func:`image_fields` (same arguments)."""
    return image_fields(image_shape, grid, stride, field, channels).mask(dtype)


def grid_mask(in_grid, in_channels: int, grid, k, channels: int, stride=1, dtype=np.float32):
    """The 0/1 mask (n_in, n_out) of :func:`grid_fields` (same arguments)."""
    return grid_fields(in_grid, in_channels, grid, k, channels, stride).mask(dtype)


def paper_local_architecture(image_shape=(28, 28)) -> list[LocalFields]:
    """The three locally connected layers of the paper's footnote 8, for 28x28 MNIST.

    Layer 1: a 4 x 4 grid, stride 6, 10 x 10 fields, 128 channels (784 -> 2048).
    Layer 2: a 3 x 3 grid over 2 x 2 squares of layer 1's grid, 220 channels
    (2048 -> 1980). Layer 3: a 2 x 2 grid over 2 x 2 squares of layer 2's grid,
    512 channels (1980 -> 2048).

    Returns
    -------
    list of LocalFields
        One per layer; ``layers[l].mask()`` is layer ``l``'s (n_in, n_out) mask.
    """
    l1 = image_fields(image_shape, grid=4, stride=6, field=10, channels=128)
    l2 = grid_fields(l1.grid, l1.channels, grid=3, k=2, channels=220)
    l3 = grid_fields(l2.grid, l2.channels, grid=2, k=2, channels=512)
    return [l1, l2, l3]


# ------------------------------------------------------------------ truncated fields
@dataclass(frozen=True, eq=False)
class RaggedFields:
    """Receptive fields whose size differs between locations, one per grid location.

    Fields centred on their location and cut off at the edge of the map (the CIFAR-10
    layers of the paper's Sec. 4) hold fewer inputs near the edge, so they do not fit
    the fixed-width :class:`LocalFields`. Here the fields are stored back to back
    (compressed sparse rows): location ``loc`` sees the inputs
    ``indices[indptr[loc]:indptr[loc + 1]]``. Every (location, input) pair is a *pair*;
    pair ``p`` connects input ``indices[p]`` to all ``channels`` units of its location.

    Parameters
    ----------
    indptr : ndarray of int, shape (n_loc + 1,)
        ``indptr[0] = 0``; ``indptr[loc + 1] - indptr[loc]`` is the field size of ``loc``.
    indices : ndarray of int, shape (n_pairs,)
        The fields, each sorted in increasing order, locations in order.
    channels : int
        Units per location.
    n_in : int
        Size of the layer's input.
    grid : (int, int)
        Shape of the grid of locations (``n_loc = grid[0] * grid[1]``), row-major.
    recipe : dict, optional
        How the fields were built, when a function of this module built them
        (``{"same_size_fields": {"in_shape": ..., "channels": ..., "k": ...}}``): a
        layer's configuration then stores these few numbers instead of every index.

    Notes
    -----
    Output units are location-major, ``unit = loc * channels + c``, as for
    :class:`LocalFields`; a layer over these fields has ``n_pairs * channels`` weights.
    """

    indptr: np.ndarray
    indices: np.ndarray
    channels: int
    n_in: int
    grid: tuple[int, int]
    recipe: dict | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        ptr, idx = np.asarray(self.indptr), np.asarray(self.indices)
        for name, a in (("indptr", ptr), ("indices", idx)):
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be a 1-D int array, got {a.shape} {a.dtype}")
        n_loc = self.grid[0] * self.grid[1]
        if ptr.size != n_loc + 1:
            raise ValueError(f"indptr has {ptr.size} entries; a {self.grid} grid needs {n_loc + 1}")
        if ptr[0] != 0 or ptr[-1] != idx.size or np.any(np.diff(ptr) < 1):
            raise ValueError(
                "indptr must start at 0, end at len(indices) and give every field "
                "at least one input"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_in):
            raise ValueError(f"field indices must lie in 0..{self.n_in - 1}")
        step = np.diff(idx)
        step[ptr[1:-1] - 1] = 1  # a field may start below the end of the one before
        if np.any(step <= 0):
            raise ValueError("every field must list distinct input indices in increasing order")
        if self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")

    @classmethod
    def from_fields(cls, fields: LocalFields) -> RaggedFields:
        """The same fields as the fixed-width ``fields`` (:class:`LocalFields`)."""
        n_loc, f = fields.fields.shape
        indptr = np.arange(n_loc + 1, dtype=np.int64) * f
        return cls(
            indptr,
            fields.fields.reshape(-1).astype(np.int64),
            fields.channels,
            fields.n_in,
            fields.grid,
        )

    @property
    def n_loc(self) -> int:
        """Number of locations."""
        return self.indptr.size - 1

    @property
    def n_pairs(self) -> int:
        """Number of (location, input) pairs, the sum of the field sizes."""
        return int(self.indices.size)

    @property
    def n_out(self) -> int:
        """Number of units, ``n_loc * channels``."""
        return self.n_loc * self.channels

    @property
    def n_weights(self) -> int:
        """Number of existing weights, ``n_pairs * channels``."""
        return self.n_pairs * self.channels

    def field_sizes(self) -> np.ndarray:
        """The fan-in of every location, shape (n_loc,)."""
        return np.diff(self.indptr)

    def field(self, loc: int) -> np.ndarray:
        """The sorted inputs that location ``loc`` sees, shape (f_loc,)."""
        return self.indices[self.indptr[loc] : self.indptr[loc + 1]]

    def pair_locations(self) -> np.ndarray:
        """The location of every pair, shape (n_pairs,)."""
        return np.repeat(np.arange(self.n_loc), self.field_sizes())

    def mask(self, dtype=np.float32) -> np.ndarray:
        """The 0/1 mask, shape (n_in, n_out): ``mask[i, j] = 1`` iff unit ``j`` sees ``i``."""
        m = np.zeros((self.n_in, self.n_out), dtype=dtype)
        first = self.pair_locations() * self.channels  # (n_pairs,) first unit of each pair
        for c in range(self.channels):
            m[self.indices, first + c] = 1
        return m

    def flops(self, batch: int) -> tuple[int, int]:
        """Matmul FLOPs of forward plus weight gradient for ``batch`` rows.

        Returns
        -------
        needed, dense : int
            ``2 * 2 * batch * n_weights`` (the existing weights only) and
            ``2 * 2 * batch * n_in * n_out`` (the masked-dense products).
        """
        return 4 * batch * self.n_weights, 4 * batch * self.n_in * self.n_out


def same_size_fields(in_shape, channels: int, k) -> RaggedFields:
    r"""Centred ``k x k`` fields over a map, truncated at its edge, stride 1 (Sec. 4).

    The layer's map has the size of the map below: location ``(r, q)`` sees every
    channel of the locations ``(r', q')`` below with :math:`|r' - r| \le (k_h - 1)/2` and
    :math:`|q' - q| \le (k_w - 1)/2` that lie on the map. For CIFAR-10 (the paper's
    Sec. 4: 32 x 32 maps, 3 units per location, 11 x 11 fields) an interior unit has
    :math:`11 \cdot 11 \cdot 3 = 363` inputs and a corner unit :math:`6 \cdot 6 \cdot 3 =
    108`. The relation is symmetric, so the top-down fields of a map from the map above
    (same size, same ``k``) are the bottom-up ones turned around: the mask of
    ``same_size_fields((H, W, C_up), C_low, k)`` is the transpose of that of
    ``same_size_fields((H, W, C_low), C_up, k)``.

    Parameters
    ----------
    in_shape : (H, W) or (H, W, C_in)
        The map below; the layer's input is its values in row-major order, channel
        fastest, ``i = (r * W + q) * C_in + c`` (size ``H * W * C_in``).
    channels : int
        Units per location, ``C_out``; the output map is ``(H, W, C_out)`` in the same
        ordering.
    k : int or (int, int)
        Field height and width, odd; may exceed the map (every field is then cut to it).

    Returns
    -------
    RaggedFields
        ``n_in = H * W * C_in``, ``n_out = H * W * C_out``, ``grid = (H, W)``.
    """
    if len(in_shape) not in (2, 3):
        raise ValueError(f"in_shape must be (H, W) or (H, W, C_in), got {in_shape!r}")
    H, W = _pair(in_shape[:2], "in_shape")
    C = int(in_shape[2]) if len(in_shape) == 3 else 1
    if C < 1:
        raise ValueError(f"in_shape must have a positive channel count, got {in_shape!r}")
    kh, kw = _pair(k, "k")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"k must be odd (a centred field), got {k!r}")
    near_r = np.abs(np.arange(H)[:, None] - np.arange(H)[None, :]) <= kh // 2  # (H, H)
    near_q = np.abs(np.arange(W)[:, None] - np.arange(W)[None, :]) <= kw // 2  # (W, W)
    sees = np.kron(near_r, near_q)  # (n_loc, H * W): location (r, q) sees pixel (r', q')
    sees = np.repeat(sees, C, axis=1)  # (n_loc, n_in), channel fastest
    loc, indices = np.nonzero(sees)  # row-major: locations in order, fields sorted
    indptr = np.zeros(H * W + 1, dtype=np.int64)
    np.cumsum(np.bincount(loc, minlength=H * W), out=indptr[1:])
    recipe = {"same_size_fields": {"in_shape": [H, W, C], "channels": int(channels), "k": [kh, kw]}}
    return RaggedFields(
        indptr, indices.astype(np.int64), int(channels), H * W * C, (H, W), recipe=recipe
    )


def same_size_mask(in_shape, channels: int, k, dtype=np.float32) -> np.ndarray:
    """The 0/1 mask (n_in, n_out) of :func:`same_size_fields` (same arguments)."""
    return same_size_fields(in_shape, channels, k).mask(dtype)


def paper_cifar_fields(in_channels: int = 3, channels: int = 3) -> RaggedFields:
    """One connection between the paper's CIFAR-10 maps (Sec. 4): 32 x 32 x ``in_channels``
    -> 32 x 32 x ``channels``, 11 x 11 fields truncated at the edge.

    With 3 channels on both sides: 363 inputs per interior unit, 108 at a corner,
    933,156 weights (a dense 3072 x 3072 layer would have 9,437,184).
    """
    return same_size_fields((32, 32, in_channels), channels, 11)
