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
