r"""Linear softmax readout on normalised hidden activities (paper Sec. 3.3).

A linear classifier trained with its own closed-form cross-entropy gradient on the
normalised activities of some hidden layers (for supervised FF: every hidden layer but
the first, on a pass with the *neutral* label). Its gradient never reaches the hidden
layers: the features are inputs to it, not functions it differentiates.

.. code-block:: text

    z = h V + c                       # (B, n_feat) @ (n_feat, C) -> (B, C)
    q = softmax(z)
    L = -mean_n log q[n, label_n]
    dL_dz = (q - onehot(label)) / B
    dL_dV = h^T dL_dz                 # (n_feat, B) @ (B, C) -> (n_feat, C)
    dL_dc = sum_rows dL_dz
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax
from tqdm.auto import tqdm

from ff_numpy import blas
from ff_numpy.optim import hold_then_linear, make_optimizer


class SoftmaxReadout:
    """Linear softmax classifier with closed-form gradients.

    Parameters
    ----------
    n_features : int
    n_classes : int
    dtype : numpy dtype

    Attributes
    ----------
    V : ndarray, shape (n_features, n_classes)
        Weights, initialised to zero (as in Hinton's released code).
    c : ndarray, shape (n_classes,)
        Biases.
    """

    def __init__(self, n_features: int, n_classes: int, dtype=np.float32):
        if n_features < 1 or n_classes < 2:
            raise ValueError(
                f"SoftmaxReadout needs n_features >= 1 and n_classes >= 2, "
                f"got {n_features}, {n_classes}"
            )
        self.V = np.zeros((n_features, n_classes), dtype=dtype)
        self.c = np.zeros(n_classes, dtype=dtype)

    def params(self) -> dict[str, np.ndarray]:
        return {"V": self.V, "c": self.c}

    def logits(self, h: np.ndarray) -> np.ndarray:
        """``z = h V + c``, shape (B, n_classes)."""
        z = blas.matmul(h, self.V)  # (B, n_feat) @ (n_feat, C) -> (B, C)
        z += self.c
        return z

    def probs(self, h: np.ndarray) -> np.ndarray:
        """Class probabilities ``softmax(z)``, shape (B, n_classes)."""
        return softmax(self.logits(h), axis=1)

    def predict(self, h: np.ndarray) -> np.ndarray:
        """Most probable class of each row, shape (B,)."""
        return np.argmax(self.logits(h), axis=1)

    def loss_and_grads(
        self, h: np.ndarray, labels: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        r"""Mean cross-entropy and its closed-form gradient.

        .. math::
            L = -\frac1B \sum_n \log q_{n, t_n}, \qquad
            \frac{\partial L}{\partial z} = \frac1B (q - T), \qquad
            \frac{\partial L}{\partial V} = h^\top \frac{\partial L}{\partial z}

        Parameters
        ----------
        h : ndarray, shape (B, n_features)
        labels : ndarray of int, shape (B,)

        Returns
        -------
        L : float
        dL_dV : ndarray, shape (n_features, n_classes)
        dL_dc : ndarray, shape (n_classes,)
        q : ndarray, shape (B, n_classes)
            The probabilities before the update (used to draw hard negatives).
        """
        B = h.shape[0]
        z = self.logits(h)
        log_q = log_softmax(z, axis=1)
        L = -float(np.mean(log_q[np.arange(B), labels]))
        q = np.exp(log_q)
        # L = -mean log softmax(z)[label]  =>  dL/dz = (q - onehot) / B
        dL_dz = q.astype(h.dtype, copy=True)
        dL_dz[np.arange(B), labels] -= 1
        dL_dz /= B
        # z = h V + c  =>  dL/dV = h^T dL/dz,  dL/dc = sum over rows of dL/dz
        dL_dV = blas.matmul_tn(h, dL_dz, np.empty_like(self.V))  # (n_feat, B) @ (B, C)
        dL_dc = dL_dz.sum(axis=0)
        return L, dL_dV, dL_dc, q


def fit_readout(
    h: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 20,
    batch_size: int = 100,
    lr: float = 0.1,
    weight_decay: float = 0.003,
    momentum: float = 0.9,
    rng: np.random.Generator | None = None,
    progress: bool = False,
) -> SoftmaxReadout:
    """Train a :class:`SoftmaxReadout` on fixed features (a frozen net's activities).

    The readout that FF trains *during* training sees features that change as the hidden
    layers learn; this one is fitted after training, on the final features, with the
    same recipe (SGD with Hinton's momentum and dampening, weight decay on ``V``, the
    hold-then-linear schedule). Fitting several of them on different sets of layers is
    how to compare those sets (e.g. whether the first hidden layer helps, or which local
    layers to read) without retraining the net.

    Parameters
    ----------
    h : ndarray, shape (N, n_features)
        The features, e.g. ``FFNet.features(x)`` or normalised activities concatenated.
    labels : ndarray of int, shape (N,)
    n_classes : int
    epochs, batch_size, lr, weight_decay, momentum
        The recipe (defaults: the FF experiments' readout settings, 20 epochs).
    rng : numpy.random.Generator, optional
        Batch order (default: seed 0).
    progress : bool
        Show a progress bar over the epochs.

    Returns
    -------
    SoftmaxReadout
    """
    h = np.asarray(h)
    labels = np.asarray(labels)
    if h.ndim != 2 or labels.shape != (h.shape[0],):
        raise ValueError(
            f"fit_readout needs h of shape (N, n_features) and labels of shape (N,), "
            f"got {h.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    rng = np.random.default_rng(0) if rng is None else rng
    readout = SoftmaxReadout(h.shape[1], n_classes, dtype=h.dtype)
    opt = make_optimizer("sgd", lr, weight_decay, momentum)
    for epoch in tqdm(range(epochs), desc="readout", unit="epoch", disable=not progress):
        scale = hold_then_linear(epoch, epochs)
        order = rng.permutation(h.shape[0])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            _, dV, dc, _ = readout.loss_and_grads(h[idx], labels[idx])
            opt.step("V", readout.V, dV, scale)
            opt.step("c", readout.c, dc, scale, decay=False)
    return readout
