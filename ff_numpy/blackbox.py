r"""A black box between two layers: unknown, non-differentiable and stochastic (Sec. 10).

The paper points out that Forward-Forward can learn when the forward computation contains
a part whose details are unknown: each layer learns from its own input, whatever made it.
Backprop cannot, since it needs the derivative of every step between a weight and the
loss.

:class:`BlackBox` is such a step, applied to a layer's normalised output before the next
layer sees it:

.. code-block:: text

    h -> h[:, perm]                     a fixed random permutation (unknown to the learner)
      -> quantise to `levels` levels    piecewise constant: derivative 0 almost everywhere
      -> * (1 + noise * u), u ~ U(-1, 1) multiplicative noise, fresh at every call

The derivative of the quantiser is zero wherever it exists, so exact backprop through the
box passes no signal at all. The common workaround, the *straight-through* estimate,
pretends the box is the identity on the way back; with an unknown permutation that sends
each unit's error to the wrong unit. FF needs neither.
"""

from __future__ import annotations

import numpy as np


class BlackBox:
    """Permute, quantise and add multiplicative noise to each row.

    Parameters
    ----------
    n : int
        Width of the vectors it transforms.
    rng : numpy.random.Generator
        Draws the fixed permutation.
    levels : int
        Number of quantisation levels over ``[0, max of the row]`` (at least 2).
    noise : float
        Multiplicative noise amplitude in ``[0, 1)``: each value is multiplied by
        ``1 + noise * u`` with ``u`` uniform on ``(-1, 1)``.
    permute : bool
        Apply the fixed random permutation.
    """

    def __init__(
        self, n: int, rng: np.random.Generator, levels: int = 4, noise: float = 0.2,
        permute: bool = True,
    ):  # fmt: skip
        if n < 1 or levels < 2 or not 0 <= noise < 1:
            raise ValueError(
                f"BlackBox needs n >= 1, levels >= 2 and 0 <= noise < 1, "
                f"got n={n}, levels={levels}, noise={noise}"
            )
        self.n, self.levels, self.noise = int(n), int(levels), float(noise)
        self.perm = rng.permutation(n) if permute else np.arange(n)

    def config(self) -> dict:
        return {"n": self.n, "levels": self.levels, "noise": self.noise}

    def __call__(self, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Transform ``h``, shape (B, n), with fresh noise from ``rng``; returns a new array."""
        if h.ndim != 2 or h.shape[1] != self.n:
            raise ValueError(f"BlackBox of width {self.n} got an input of shape {h.shape}")
        z = h[:, self.perm]  # fixed permutation (a copy)
        top = np.abs(z).max(axis=1, keepdims=True)
        np.copyto(top, 1.0, where=top == 0)
        step = top / (self.levels - 1)
        z = np.round(z / step) * step  # quantise: flat between levels
        if self.noise:
            z *= (1.0 + self.noise * rng.uniform(-1.0, 1.0, size=z.shape)).astype(z.dtype)
        return z
