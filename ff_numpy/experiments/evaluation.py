"""Error rates of the experiments' nets: per split, on the test set, and averaged over
shifted copies of each test image (``ff-numpy evaluate --shifts``).

Every rate is a fraction of wrong predictions; the names are those of ``metrics.json``
(``{split}_error_goodness``, ``{split}_error_softmax``).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ff_numpy.model import FFNet


def error_rate(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of wrong predictions (NaN for no labels)."""
    return float(np.mean(pred != labels)) if len(labels) else float("nan")


def test_errors(model: FFNet, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Both classifiers' error on the test set, as fractions."""
    return {
        "test_error_goodness": error_rate(model.predict_goodness(x_test), y_test),
        "test_error_softmax": error_rate(model.predict_softmax(x_test), y_test),
    }


def shift_averaged_errors(
    model: FFNet, x: np.ndarray, y: np.ndarray, shifts: int, progress: bool = False
) -> dict:
    """Test errors with test-time averaging over shifted copies (not in the paper).

    Each image is classified from the goodness summed (and the readout's class
    probabilities averaged) over its :math:`(2 s + 1)^2` copies moved by up to
    ``s = shifts`` pixels, the shifts a net trained with ``--jitter s`` has seen. The
    names end in ``_shifts{s}``: ``test_error_goodness_shifts2`` (supervised nets only)
    and ``test_error_softmax_shifts2``. Costs :math:`(2 s + 1)^2` plain evaluations.

    Parameters
    ----------
    model : FFNet
    x : ndarray, shape (N, 784)
    y : ndarray of int, shape (N,)
    shifts : int
        Largest shift ``s`` (0: no averaging).
    progress : bool
        A progress bar over chunks of 1,000 images.
    """
    if not isinstance(model, FFNet):
        raise ValueError(
            f"shift averaging needs a feed-forward FFNet, not a {type(model).__name__}"
        )
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}")
    good, soft = [], []
    chunks = range(0, len(x), 1000)
    desc = f"test, {(2 * shifts + 1) ** 2} shifts"
    for i in tqdm(chunks, desc=desc, unit="chunk", disable=not progress):
        xb = x[i : i + 1000]
        if model.supervised:
            good.append(model.predict_goodness(xb, shifts=shifts))
        soft.append(model.predict_softmax(xb, shifts=shifts))
    out = {f"test_error_softmax_shifts{shifts}": error_rate(np.concatenate(soft), y)}
    if model.supervised:
        out[f"test_error_goodness_shifts{shifts}"] = error_rate(np.concatenate(good), y)
    return out


def ff_errors(model: FFNet, split: str, x: np.ndarray, y: np.ndarray, n_goodness=None) -> dict:
    """Both classifiers' error on one split, named ``{split}_error_softmax`` and
    ``{split}_error_goodness``.

    Parameters
    ----------
    model : FFNet
    split : str
        Prefix of the names (``"val"``, ``"test"``).
    x : ndarray, shape (N, n_in)
    y : ndarray of int, shape (N,)
    n_goodness : int, optional
        The goodness error (one pass per label) uses only the first ``n_goodness``
        examples; 0 leaves it out, None uses all. The softmax error always uses all.

    Returns
    -------
    errors : dict of str to float
    """
    out = {f"{split}_error_softmax": error_rate(model.predict_softmax(x), y)}
    if n_goodness != 0:
        n = len(y) if n_goodness is None else n_goodness
        out[f"{split}_error_goodness"] = error_rate(model.predict_goodness(x[:n]), y[:n])
    return out


def softmax_errors(model, x_test, y_test) -> dict:
    """The readout's test error (an unsupervised net has no goodness classifier)."""
    return {"test_error_softmax": error_rate(model.predict_softmax(x_test), y_test)}
