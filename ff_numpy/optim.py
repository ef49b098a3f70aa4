r"""Optimisers (SGD with momentum, Adam), weight decay and the learning-rate schedule.

Every optimiser updates parameters *in place* from a gradient, keeping its state (the
velocity, Adam's moments and step count) in arrays keyed by the parameter's name, so a
checkpoint can store and restore it exactly.

SGD with momentum, dampening and weight decay (on weights only):

.. math::
    g' = g + \lambda W, \qquad v \leftarrow \mu v + (1 - \delta) g', \qquad
    W \leftarrow W - \eta\, v

With :math:`\mu = \delta = 0.9` this is the running average of gradients
(``delay = 0.9``) of Hinton's released code.

Adam (Kingma and Ba, 2015), with the same weight decay added to the gradient:

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1) g', \quad
    s \leftarrow \beta_2 s + (1-\beta_2) g'^2, \quad
    W \leftarrow W - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{s / (1-\beta_2^t)} + \epsilon}

The schedule :func:`hold_then_linear` holds the rate for the first half of training and
then decays it linearly towards zero, as Hinton's code does.
"""

from __future__ import annotations

import numpy as np

from ff_numpy import blas
from ff_numpy.validate import fraction_0_1, non_negative_float, positive_float


def hold_then_linear(epoch: int, n_epochs: int) -> float:
    r"""Learning-rate factor for (0-based) ``epoch`` out of ``n_epochs``.

    .. math::
        f(e) = \min\left(1, \frac{1 + 2 (E - (e + 1))}{E}\right)

    which is 1 during the first half and falls linearly to :math:`1/E` in the last epoch
    (Hinton's ``(1 + 2 (maxepoch - epoch)) / maxepoch`` with 1-based epochs).
    """
    if n_epochs < 1 or not 0 <= epoch < n_epochs:
        raise ValueError(f"epoch must lie in 0..{n_epochs - 1}, got {epoch} of {n_epochs}")
    return min(1.0, (1.0 + 2.0 * (n_epochs - (epoch + 1))) / n_epochs)


def linear_warmup(step: int, n_steps: int) -> float:
    """Learning-rate factor of the (0-based) mini-batch ``step``: a linear warm-up.

    ``(step + 1) / n_steps`` over the first ``n_steps`` mini-batches of a run, then 1
    (always 1 with ``n_steps = 0``). It multiplies the epoch's schedule factor. The
    recurrent net at lr 0.001 settles or diverges in its first few hundred mini-batches
    depending on their order alone (docs/RESULTS.md); 200 warm-up batches steady it.
    """
    if n_steps < 0 or step < 0:
        raise ValueError(f"step and n_steps must be >= 0, got {step}, {n_steps}")
    return min(1.0, (step + 1) / n_steps) if n_steps else 1.0


class Optimizer:
    """Base class: in-place updates with state kept per parameter name."""

    def __init__(self, lr: float, weight_decay: float = 0.0):
        # ValueError naming the argument: "lr must be a finite number >= 0, got nan"
        self.lr = float(non_negative_float().check(lr, "lr"))
        self.weight_decay = float(non_negative_float().check(weight_decay, "weight_decay"))
        self.slots: dict[str, np.ndarray] = {}

    def _slot(self, key: str, like: np.ndarray) -> np.ndarray:
        if key not in self.slots:
            self.slots[key] = np.zeros_like(like)
        return self.slots[key]

    def _decayed(self, param: np.ndarray, grad: np.ndarray, decay: bool) -> np.ndarray:
        # g' = g + lambda W (in place: the caller's gradient buffer is scratch)
        if decay and self.weight_decay:
            grad += self.weight_decay * param
        return grad

    def update(
        self,
        params: dict[str, np.ndarray],
        grads: dict[str, np.ndarray],
        lr_scale: float = 1.0,
        prefix: str = "",
    ) -> None:
        """Update every array of ``params`` in place from the gradient of the same name.

        This is the optimiser's whole interface to a model: it receives gradients and
        knows nothing of layers. Weight decay applies to the arrays with two or more
        dimensions (weight matrices), never to biases (one dimension).

        Parameters
        ----------
        params : dict of str to ndarray
            The arrays to update (e.g. a layer's ``params()``).
        grads : dict of str to ndarray or ff_numpy.blas.OuterSum
            Their gradients, same names and shapes (may be overwritten: scratch). A
            weight gradient may come as the product ``x^T dL/da`` not yet formed
            (:class:`ff_numpy.blas.OuterSum`): :meth:`step_outer` then updates from it,
            and SGD forms it inside its own velocity update.
        lr_scale : float
            The schedule's factor.
        prefix : str
            Prepended to every name to key the optimiser's state (``"layer0."`` gives the
            slots ``"layer0.W"`` and ``"layer0.b"``), so one optimiser serves many layers.
        """
        for name, param in params.items():
            grad, decay = grads[name], param.ndim >= 2
            if isinstance(grad, blas.OuterSum):  # x^T dL/da not yet formed: see step_outer
                self.step_outer(prefix + name, param, grad.a, grad.d, lr_scale, decay)
            else:
                self.step(prefix + name, param, grad, lr_scale, decay)

    def step(
        self, key: str, param: np.ndarray, grad: np.ndarray, lr_scale: float = 1.0, decay=True
    ) -> None:
        """Update ``param`` in place from ``grad`` (which may be overwritten).

        Parameters
        ----------
        key : str
            A name unique to this parameter (for example ``"layer0.W"``).
        param, grad : ndarray, same shape
        lr_scale : float
            The schedule's factor for this epoch.
        decay : bool
            Apply weight decay (True for weights, False for biases).
        """
        raise NotImplementedError

    def step_outer(
        self,
        key: str,
        param: np.ndarray,
        a: np.ndarray,
        d: np.ndarray,
        lr_scale: float = 1.0,
        decay: bool = True,
    ) -> None:
        """Update ``param`` from the gradient ``a.T @ d`` (a sum of outer products).

        A weight gradient always has this form (``a`` the layer's input, ``d`` the
        derivative with respect to its pre-activations); optimisers that can fold the
        product into their own update (:class:`SGD`) override this to avoid making the
        weight-sized gradient at all.

        Parameters
        ----------
        key : str
        param : ndarray, shape (m, n)
        a : ndarray, shape (B, m)
        d : ndarray, shape (B, n)
        lr_scale : float
        decay : bool
        """
        grad = np.empty_like(param)
        blas.matmul_tn(a, d, grad)  # (m, B) @ (B, n) -> (m, n)
        self.step(key, param, grad, lr_scale, decay)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint (slots by key)."""
        return dict(self.slots)

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`."""
        self.slots = {k: np.array(v) for k, v in arrays.items()}


class SGD(Optimizer):
    r"""SGD with momentum :math:`\mu`, dampening :math:`\delta` and weight decay.

    Parameters
    ----------
    lr : float
    momentum : float
        :math:`\mu` (0 for plain SGD).
    dampening : float
        :math:`\delta`; ``momentum = dampening = 0.9`` is Hinton's ``delay = 0.9``.
    weight_decay : float
        :math:`\lambda`, applied to weights only.
    """

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        fraction_0_1().check(momentum, "momentum")
        fraction_0_1().check(dampening, "dampening")
        self.momentum = float(momentum)
        self.dampening = float(dampening)

    def step(self, key, param, grad, lr_scale=1.0, decay=True):
        lr = self.lr * lr_scale
        lam = self.weight_decay if decay else 0.0
        keep = 1.0 - self.dampening
        if blas.can_axpy(param, grad):
            # The same three lines in one pass each, in place (BLAS axpy, no temporaries):
            # g' = g + lambda W;  v <- mu v + (1 - delta) g';  W <- W - lr v
            if lam:
                blas.axpy(param, grad, lam)
            if self.momentum == 0.0:
                blas.axpy(grad, param, -lr * keep)
                return
            v = self._slot(key, param)
            v *= self.momentum
            blas.axpy(grad, v, keep)
            blas.axpy(v, param, -lr)
            return
        g = grad + lam * param  # g' = g + lambda W
        if self.momentum == 0.0:
            param -= (lr * keep) * g  # W <- W - lr (1 - delta) g'
            return
        v = self._slot(key, param)
        v *= self.momentum  # v <- mu v + (1 - delta) g'
        v += keep * g
        param -= lr * v  # W <- W - lr v

    def step_outer(self, key, param, a, d, lr_scale=1.0, decay=True):
        """The same update as :meth:`step` with ``grad = a.T @ d``, fused into BLAS calls.

        .. code-block:: text

            v <- mu v + (1 - delta) a^T d      one GEMM with beta = mu: (m, B) @ (B, n)
            v <- v + (1 - delta) lambda W      axpy (weight decay)
            W <- W - lr v                      axpy

        Three passes over the weights instead of a dozen, and no temporaries.
        """
        if not (param.flags.c_contiguous and param.dtype == a.dtype == d.dtype):
            return super().step_outer(key, param, a, d, lr_scale, decay)
        v = self._slot(key, param)
        keep = 1.0 - self.dampening
        blas.matmul_tn(a, d, v, alpha=keep, beta=self.momentum)
        if decay and self.weight_decay:
            blas.axpy(param, v, keep * self.weight_decay)
        blas.axpy(v, param, -self.lr * lr_scale)


class Adam(Optimizer):
    r"""Adam with bias correction and weight decay added to the gradient.

    Parameters
    ----------
    lr : float
    betas : (float, float)
    eps : float
    weight_decay : float
    """

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        fraction_0_1().check(b1, "betas[0]")
        fraction_0_1().check(b2, "betas[1]")
        positive_float().check(eps, "eps")
        self.beta1, self.beta2, self.eps = float(b1), float(b2), float(eps)

    def step(self, key, param, grad, lr_scale=1.0, decay=True):
        g = self._decayed(param, grad, decay)
        m = self._slot(key + ".m", param)
        s = self._slot(key + ".s", param)
        t = self._slot(key + ".t", np.zeros(1))
        t += 1
        # m <- b1 m + (1 - b1) g';  s <- b2 s + (1 - b2) g'^2
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        s *= self.beta2
        s += (1.0 - self.beta2) * g * g
        # W <- W - lr * m_hat / (sqrt(s_hat) + eps)
        m_hat_scale = 1.0 / (1.0 - self.beta1 ** t[0])
        s_hat_scale = 1.0 / (1.0 - self.beta2 ** t[0])
        denom = np.sqrt(s * s_hat_scale) + self.eps
        param -= (self.lr * lr_scale * m_hat_scale) * m / denom


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """Build ``"sgd"`` (momentum = dampening = ``momentum``, Hinton's delay) or ``"adam"``."""
    if name == "sgd":
        return SGD(lr, momentum=momentum, dampening=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimiser {name!r}: expected 'sgd' or 'adam'")
