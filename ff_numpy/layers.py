r"""Layers: the forward map and the closed-form *local* gradient of each layer.

A Forward-Forward layer learns from its own objective only. Its gradient is the chain
rule from the layer loss through the goodness and the ReLU to its own weights, and it
stops there: no method here returns a gradient with respect to a layer's input, so no
error signal can travel from one layer to another.

For a batch of inputs ``x`` (already length-normalised) and per-row derivatives
``dL_dG`` of the layer loss with respect to the goodness (from
:func:`ff_numpy.goodness.dL_dG`), the :class:`Dense` layer computes

.. code-block:: text

    a = x W + b                  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    y = relu(a)
    G = sum_j y_j^2              # goodness, shape (B,)
    dL_dy = 2 y * dL_dG          # dG/dy = 2 y
    dL_da = dL_dy * [a > 0]      # ReLU'(a) = 1 if a > 0 else 0 (ReLU'(0) = 0)
    dL_dW = x^T dL_da            # (n_in, B) @ (B, n_out) -> (n_in, n_out)
    dL_db = sum_rows dL_da

which is the batch form of the paper's Eq. 3. Because ``y = relu(a)`` is zero exactly
where ``a <= 0``, ``2 y * dL_dG`` already carries the ReLU's derivative, with
``ReLU'(0) = 0`` (autograd's ``np.maximum`` gives 0.5 at a tie; the tests avoid ties).
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

    def forward(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        r"""Activities :math:`y = \operatorname{relu}(x W + b)`.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
        out : ndarray, shape (B, n_out), optional
            Preallocated output (the training loop reuses one buffer per layer).

        Returns
        -------
        y : ndarray, shape (B, n_out)
        """
        a = blas.matmul(x, self.W, out=out)  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
        a += self.b
        return np.maximum(a, 0, out=a)  # y = relu(a), in place

    def dL_da(
        self,
        y: np.ndarray,
        dL_dG: np.ndarray,
        extra_dL_da: np.ndarray | None = None,
        kind: str = "ssq",
    ) -> np.ndarray:
        r"""Derivative of :math:`\sum_n L_n` with respect to the pre-activations.

        .. math::
            \frac{\partial L}{\partial a_{nj}} = \frac{\partial L_n}{\partial G_n}\,
            \frac{\partial G_n}{\partial y_{nj}}\, [a_{nj} > 0], \qquad
            \frac{\partial G_n}{\partial y_{nj}} = 2 y_{nj} \;(\texttt{"ssq"}) \text{ or }
            1 \;(\texttt{"sum"})

        Parameters
        ----------
        y : ndarray, shape (B, n_out)
            The layer's output from :meth:`forward`.
        dL_dG : ndarray, shape (B,)
            Derivative of each row's loss with respect to its goodness (scale it by
            ``1/B`` for a mean).
        extra_dL_da : ndarray, shape (B, n_out) or (n_out,), optional
            A derivative added *after* the ReLU's derivative is applied, so it reaches
            inactive units too (peer normalisation, footnote 9).
        kind : {"ssq", "sum"}
            The goodness (:func:`ff_numpy.goodness.goodness`).

        Returns
        -------
        dL_da : ndarray, shape (B, n_out)
        """
        if kind == "ssq":
            # G = sum_j y_j^2  =>  dL/dy = dL/dG * 2 y
            # y = relu(a)      =>  dL/da = dL/dy * [a > 0]; y is 0 where a <= 0, so
            #                      2 y * dL/dG already is dL/da (ReLU'(0) = 0).
            dL_da = y * (2 * dL_dG)[:, None].astype(y.dtype, copy=False)
        elif kind == "sum":
            # G = sum_j y_j    =>  dL/dy = dL/dG
            # y = relu(a)      =>  dL/da = dL/dG * [a > 0]  (y > 0 exactly where a > 0)
            dL_da = (y > 0) * dL_dG[:, None].astype(y.dtype, copy=False)
        else:
            raise ValueError(f"unknown goodness {kind!r}: expected 'ssq' or 'sum'")
        if extra_dL_da is not None:
            dL_da += extra_dL_da
        return dL_da

    def local_grads(
        self,
        x: np.ndarray,
        y: np.ndarray,
        dL_dG: np.ndarray,
        extra_dL_da: np.ndarray | None = None,
        kind: str = "ssq",
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Closed-form gradient of :math:`\sum_n L_n` with respect to ``W`` and ``b``.

        .. math::
            \frac{\partial L}{\partial W_{ij}} = \sum_n x_{ni}\,
            \frac{\partial L_n}{\partial G_n}\, 2\, y_{nj}\, [a_{nj} > 0],
            \qquad
            \frac{\partial L}{\partial b_j} = \sum_n \frac{\partial L_n}{\partial G_n}\,
            2\, y_{nj}\, [a_{nj} > 0]

        (the batch form of the paper's Eq. 3). The training step computes the same
        product inside the optimiser (:meth:`ff_numpy.optim.Optimizer.step_outer`) so
        that no weight-sized temporary is made; this method is the plain reference.

        Parameters
        ----------
        x : ndarray, shape (B, n_in)
            The layer's input, as passed to :meth:`forward`.
        y : ndarray, shape (B, n_out)
            The layer's output from :meth:`forward`.
        dL_dG : ndarray, shape (B,)
        extra_dL_da : ndarray, optional
            See :meth:`dL_da`.
        kind : {"ssq", "sum"}
            The goodness.

        Returns
        -------
        dL_dW : ndarray, shape (n_in, n_out)
        dL_db : ndarray, shape (n_out,)
        """
        dL_da = self.dL_da(y, dL_dG, extra_dL_da, kind)
        # a = x W + b  =>  dL/dW = x^T dL/da,  dL/db = sum over rows of dL/da
        dL_dW = blas.matmul_tn(x, dL_da, np.empty_like(self.W))  # (n_in, B) @ (B, n_out)
        dL_db = dL_da.sum(axis=0)
        return dL_dW, dL_db

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


def relu(a: np.ndarray) -> np.ndarray:
    """ReLU, ``max(a, 0)``, with derivative 0 at ``a = 0``."""
    return np.maximum(a, 0)
