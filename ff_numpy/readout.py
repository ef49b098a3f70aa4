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

from ff_numpy import blas


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
