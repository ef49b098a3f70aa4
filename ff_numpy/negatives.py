r"""Labels written into the input, and the negative data of supervised FF (paper Sec. 3.3).

Supervised FF writes the label into the image as a one-of-N code over N input values
(for MNIST: the first 10 pixels, which are black in every digit). *Positive* data is an
image with its true label; *negative* data is the same image with a wrong label. The
network can only tell them apart by learning how the label goes with the image.

Wrong labels are drawn either

* uniformly from the N - 1 wrong labels (:func:`random_wrong_labels`), or
* *hard*: in proportion to the probabilities that the softmax readout of a
  neutral-label pass gives them, with the true label excluded
  (:func:`hard_wrong_labels`); the paper reports about a third as many epochs.

The *neutral* label is ``1/N`` in every label position (0.1 for MNIST).
"""

from __future__ import annotations

import numpy as np

from ff_numpy.validate import check_labels


class LabelCode:
    """Where and how a one-of-N label is written into a flattened input.

    Parameters
    ----------
    n_classes : int
        N, the number of labels (10 for MNIST; 2, 4 or 24 for later tasks).
    positions : array_like of int, shape (n_classes,), optional
        The input indices that carry the code; default the first N values.
    strength : float
        The value written for the chosen label (1, as in Hinton's code).

    Examples
    --------
    >>> code = LabelCode.first_pixels(10)
    >>> rgb = LabelCode.first_channel(10, image_shape=(32, 32, 3), channels_last=True)
    """

    def __init__(self, n_classes: int, positions=None, strength: float = 1.0):
        if n_classes < 2:
            raise ValueError(f"a label code needs at least 2 classes, got {n_classes}")
        if positions is None:
            positions = np.arange(n_classes)
        positions = np.asarray(positions, dtype=np.int64)
        if positions.shape != (n_classes,) or len(np.unique(positions)) != n_classes:
            raise ValueError(
                f"positions must be {n_classes} distinct indices, got shape {positions.shape}"
            )
        if positions.min() < 0:
            raise ValueError("positions must be non-negative indices")
        self.n_classes = int(n_classes)
        self.positions = positions
        self.strength = float(strength)

    @classmethod
    def first_pixels(cls, n_classes: int, strength: float = 1.0) -> LabelCode:
        """The code over the first ``n_classes`` values of the flattened input."""
        return cls(n_classes, np.arange(n_classes), strength)

    @classmethod
    def first_channel(
        cls, n_classes: int, image_shape, channels_last: bool = True, strength: float = 1.0
    ) -> LabelCode:
        """The code over the first ``n_classes`` pixels of the first colour channel.

        Parameters
        ----------
        image_shape : tuple
            ``(H, W, C)`` if ``channels_last`` else ``(C, H, W)``.
        """
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must have 3 entries, got {image_shape}")
        n_channels = image_shape[2] if channels_last else image_shape[0]
        pixels = np.arange(n_classes)
        positions = pixels * n_channels if channels_last else pixels
        return cls(n_classes, positions, strength)

    def embed(self, x: np.ndarray, labels: np.ndarray | None, out: np.ndarray | None = None):
        """Write the code of ``labels`` into a copy of ``x`` (``None``: the neutral label).

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        labels : ndarray of int, shape (B,), or None
        out : ndarray, shape (B, n_in), optional
            Where to write (may be ``x`` itself).

        Returns
        -------
        x_labelled : ndarray, shape (B, n_in)
        """
        if x.ndim != 2 or x.shape[1] <= self.positions.max():
            raise ValueError(
                f"inputs of shape {x.shape} cannot hold a label at index {self.positions.max()}"
            )
        if out is None:
            out = x.copy()
        elif out is not x:
            np.copyto(out, x)
        if labels is None:
            out[:, self.positions] = self.strength / self.n_classes
            return out
        labels = check_labels(labels, self.n_classes, n_rows=x.shape[0])
        out[:, self.positions] = 0
        out[np.arange(x.shape[0]), self.positions[labels]] = self.strength
        return out

    def all_labels(self, x: np.ndarray) -> np.ndarray:
        """Every label written into every image, shape (n_classes, B, n_in)."""
        B = x.shape[0]
        return np.stack([self.embed(x, np.full(B, k)) for k in range(self.n_classes)])


def random_wrong_labels(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A label drawn uniformly from the ``n_classes - 1`` wrong ones, for each example.

    Adding an offset in ``1..N-1`` modulo ``N`` can never return the true label.
    """
    labels = check_labels(labels, n_classes)
    offset = rng.integers(1, n_classes, size=labels.shape[0])
    return (labels + offset) % n_classes


def hard_wrong_labels(
    probs: np.ndarray, labels: np.ndarray, rng: np.random.Generator, floor: float = 0.0
) -> np.ndarray:
    r"""A wrong label drawn in proportion to the model's probabilities (hard negatives).

    .. math:: P(k) = (1 - f)\,\frac{q_k [k \ne t]}{\sum_{j \ne t} q_j}
              + f\,\frac{[k \ne t]}{N - 1}

    Parameters
    ----------
    probs : ndarray, shape (B, N)
        Class probabilities, e.g. the softmax readout of a neutral-label pass.
    labels : ndarray of int, shape (B,)
        True labels; never returned.
    rng : numpy.random.Generator
    floor : float
        :math:`f` in [0, 1]: the share of uniform draws mixed in, so that every wrong
        label keeps probability at least :math:`f / (N - 1)` however confident the
        model is (0: pure hard negatives).

    Returns
    -------
    wrong : ndarray of int64, shape (B,)

    Notes
    -----
    Where every wrong label has probability 0 (or the row is not finite), the draw falls
    back to the uniform distribution over the wrong labels.
    """
    B, N = probs.shape
    labels = check_labels(labels, N, n_rows=B)
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must lie in [0, 1], got {floor}")
    w = np.array(probs, dtype=np.float64)
    w[~np.isfinite(w)] = 0.0
    np.maximum(w, 0.0, out=w)
    w[np.arange(B), labels] = 0.0
    total = w.sum(axis=1)
    flat = total <= 0
    if flat.any():
        w[flat] = 1.0
        w[flat, labels[flat]] = 0.0
        total[flat] = N - 1
    if floor > 0:  # renormalise over the wrong labels, then mix in the uniform draw
        w *= (1.0 - floor) / total[:, None]
        w += floor / (N - 1)
        w[np.arange(B), labels] = 0.0
        total = w.sum(axis=1)
    cdf = np.cumsum(w, axis=1)
    u = rng.random(B) * total
    wrong = (cdf <= u[:, None]).sum(axis=1)  # first index with cdf > u
    wrong = np.minimum(wrong, N - 1)
    # Rounding can only land on a zero-weight class at the very end of a row: step back
    # to the last class with weight.
    bad = w[np.arange(B), wrong] == 0
    if bad.any():
        last = N - 1 - np.argmax(w[bad][:, ::-1] > 0, axis=1)
        wrong[bad] = last
    return wrong.astype(np.int64)


# ----------------------------------------------------------------------------- hybrids
BLUR_KERNEL = np.array([0.25, 0.5, 0.25])
N_BLUR = 8  # see hybrid_masks: regions from a stroke to half a digit wide


def hybrid_masks(
    n: int, rng: np.random.Generator, image_shape=(28, 28), n_blur: int = N_BLUR
) -> np.ndarray:
    r"""Masks with large regions of ones and zeros (paper Sec. 3.2, Fig. 1).

    A random bit image is blurred ``n_blur`` times with the filter
    :math:`[\tfrac14, \tfrac12, \tfrac14]` horizontally and then vertically, and
    thresholded at 0.5.

    The paper does not say how many times. With ``n_blur = 8`` (the default) the regions
    of 28 x 28 masks run on average 7.4 pixels along a row (from about a stroke's width
    to half a digit), the median connected region has 35 pixels, and half the pixels are
    ones; 2 blurs give runs of 4.3 pixels, 20 blurs 10.4 (measured on 200 masks, seed 0).

    Parameters
    ----------
    n : int
        Number of masks.
    rng : numpy.random.Generator
    image_shape : (int, int)
    n_blur : int
        Blurring passes (each horizontal then vertical).

    Returns
    -------
    masks : ndarray of bool, shape (n, H, W)
    """
    from scipy.ndimage import convolve1d

    if n_blur < 0:
        raise ValueError(f"n_blur must be >= 0, got {n_blur}")
    m = (rng.random((n, *image_shape)) < 0.5).astype(np.float32)
    for _ in range(n_blur):
        m = convolve1d(m, BLUR_KERNEL, axis=1, mode="reflect")
        m = convolve1d(m, BLUR_KERNEL, axis=2, mode="reflect")
    return m > 0.5


def hybrid_images(
    x: np.ndarray, rng: np.random.Generator, image_shape=(28, 28), n_blur: int = N_BLUR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Negative data for unsupervised FF: two different digits cut and pasted (Fig. 1).

    .. math:: h = m \odot x_a + (1 - m) \odot x_b

    with :math:`m` from :func:`hybrid_masks`: short-range structure is that of real
    digits, long-range shape is not, so the net must learn long-range correlations to
    tell hybrids from real images.

    Parameters
    ----------
    x : ndarray, shape (B, H * W)
        Real images (B >= 2).
    rng : numpy.random.Generator
    image_shape : (int, int)
    n_blur : int

    Returns
    -------
    hybrids : ndarray, shape (B, H * W)
        Row ``i`` mixes image ``i`` (where the mask is 1) with image ``partner[i]``.
    masks : ndarray of bool, shape (B, H * W)
    partner : ndarray of int, shape (B,)
        The second parent of each hybrid, never the row itself.
    """
    B = x.shape[0]
    if x.ndim != 2 or B < 2 or x.shape[1] != int(np.prod(image_shape)):
        raise ValueError(
            f"hybrid_images needs at least 2 images of {image_shape}, got shape {x.shape}"
        )
    partner = (np.arange(B) + rng.integers(1, B, size=B)) % B  # never the row itself
    masks = hybrid_masks(B, rng, image_shape, n_blur).reshape(B, -1)
    hybrids = np.where(masks, x, x[partner])
    return hybrids, masks, partner


# ----------------------------------------------------------------------------- jitter
def _check_images(x: np.ndarray, image_shape, who: str) -> None:
    if x.ndim != 2 or x.shape[1] != int(np.prod(image_shape)):
        raise ValueError(f"{who} needs images of {image_shape} as rows, got shape {x.shape}")


def _shift(x: np.ndarray, dr: np.ndarray, dc: np.ndarray, image_shape) -> np.ndarray:
    """Image ``b`` moved ``dr[b]`` rows down and ``dc[b]`` columns right, zeros shifted in."""
    H, W = image_shape
    B, s = x.shape[0], int(max(np.abs(dr).max(initial=0), np.abs(dc).max(initial=0)))
    padded = np.zeros((B, H + 2 * s, W + 2 * s), dtype=x.dtype)
    padded[:, s : s + H, s : s + W] = x.reshape(B, H, W)
    # output pixel (i, j) of image b is input pixel (i - dr_b, j - dc_b)
    rows = np.arange(H)[None, :] + (s - dr)[:, None]  # (B, H)
    cols = np.arange(W)[None, :] + (s - dc)[:, None]  # (B, W)
    out = padded[np.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(B, H * W)


def jitter(
    x: np.ndarray, rng: np.random.Generator, max_shift: int = 2, image_shape=(28, 28)
) -> np.ndarray:
    r"""Shift every image by up to ``max_shift`` pixels in each direction (Sec. 3.3).

    Each image gets its own shift :math:`(d_r, d_c)`, drawn uniformly from the
    :math:`(2 s + 1)^2` possibilities (25 for :math:`s = 2`), with zeros shifted in at
    the borders (no wrap-around). Shift the image first and write the label afterwards,
    so that the label pixels never move.

    Parameters
    ----------
    x : ndarray, shape (B, H * W)
    rng : numpy.random.Generator
    max_shift : int
    image_shape : (int, int)

    Returns
    -------
    shifted : ndarray, shape (B, H * W), same dtype as ``x``
    """
    _check_images(x, image_shape, "jitter")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return x.copy()
    B, s = x.shape[0], int(max_shift)
    return _shift(x, rng.integers(-s, s + 1, size=B), rng.integers(-s, s + 1, size=B), image_shape)


def all_shifts(x: np.ndarray, max_shift: int, image_shape=(28, 28)):
    r"""Every image moved by each of the :math:`(2 s + 1)^2` shifts of :func:`jitter`.

    For test-time averaging over the training shifts (not in the paper): yields
    ``(d_r, d_c, shifted)`` for :math:`d_r, d_c = -s, \dots, s`, where ``shifted`` has
    the shape and dtype of ``x``. ``max_shift = 0`` yields ``x`` itself once, whatever
    its shape (any input, not only images).
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        yield 0, 0, x
        return
    _check_images(x, image_shape, "all_shifts")
    s, B = int(max_shift), x.shape[0]
    for dr in range(-s, s + 1):
        for dc in range(-s, s + 1):
            if dr == dc == 0:
                yield 0, 0, x
            else:
                yield dr, dc, _shift(x, np.full(B, dr), np.full(B, dc), image_shape)


# --------------------------------------------------------------------------- parts
# Negative data as parts of one interface, so that a model takes any of them:
#
#     make(x, labels, rng, q=None) -> (x_neg, labels_neg)
#
# ``x_neg`` (B, n_in) are the negative inputs (before any label is written) and
# ``labels_neg`` (B,) the labels to write into them (None: no label, as in unsupervised
# FF). ``q`` (B, N) are the class probabilities of the model's neutral-label pass, for
# generators that use them. A new kind of negative data (generated sequences, pretext
# transforms) is one new class with this method and one line in NEGATIVES.


class RandomWrongLabels:
    """Supervised FF's negatives: the same images with a label drawn uniformly from the
    wrong ones (:func:`random_wrong_labels`)."""

    name = "random"
    needs_probs = False

    def __init__(self, n_classes: int = 10):
        self.n_classes = int(n_classes)

    def make(self, x, labels, rng, q=None):
        return x, random_wrong_labels(labels, self.n_classes, rng)


class HardWrongLabels:
    """Supervised FF's hard negatives: the same images with a wrong label drawn in
    proportion to the model's own probabilities ``q`` (:func:`hard_wrong_labels`)."""

    name = "hard"
    needs_probs = True

    def __init__(self, n_classes: int = 10, floor: float = 0.0):
        self.n_classes = int(n_classes)
        self.floor = float(floor)

    def make(self, x, labels, rng, q=None):
        if q is None:
            raise ValueError("hard negatives need the model's probabilities q (B, n_classes)")
        return x, hard_wrong_labels(q, labels, rng, self.floor)


class HybridImages:
    """Unsupervised FF's negatives (Sec. 3.2, Fig. 1): hybrids of two different images
    (:func:`hybrid_images`); no label is written."""

    name = "hybrid"
    needs_probs = False

    def __init__(self, image_shape=(28, 28), n_blur: int = N_BLUR):
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.n_blur = int(n_blur)

    def make(self, x, labels, rng, q=None):
        if self.image_shape is None:
            raise ValueError("hybrid negatives need the image shape: FFNet(image_shape=...)")
        hybrids, _, _ = hybrid_images(x, rng, self.image_shape, self.n_blur)
        return hybrids, None


# Every kind of negative data by its command-line name.
NEGATIVES = {"random": RandomWrongLabels, "hard": HardWrongLabels, "hybrid": HybridImages}
WRONG_LABELS = ("random", "hard")  # the kinds of supervised FF (``--negatives``)
