"""Argument checks at the public boundary: clear errors naming what was given."""

from __future__ import annotations

import numpy as np


def check_matrix(x, name: str, n_cols: int | None = None) -> np.ndarray:
    """Return ``x`` as a 2-D floating array, or raise naming the problem.

    Parameters
    ----------
    x : array_like, shape (B, n)
    name : str
        What to call it in the error message.
    n_cols : int, optional
        The number of columns required.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (batch, features), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if n_cols is not None and x.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_labels(y, n_classes: int, name: str = "labels", n_rows: int | None = None) -> np.ndarray:
    """Return ``y`` as a 1-D int64 array of values in ``[0, n_classes)``, or raise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {y.dtype}")
    if n_rows is not None and y.shape[0] != n_rows:
        raise ValueError(f"{name} has {y.shape[0]} entries but the inputs have {n_rows} rows")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in 0..{n_classes - 1}, got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int64, copy=False)


def copy_state(targets: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    """Copy saved arrays into a model's own arrays, in place, by name.

    Parameters
    ----------
    targets : dict of str to ndarray
        The model's arrays (its ``state()``), overwritten in place.
    arrays : dict of str to ndarray
        The saved arrays; those not named in ``targets`` are ignored.

    Raises
    ------
    ValueError
        If an array of ``targets`` is missing from ``arrays`` or has another shape there.
    """
    for name, target in targets.items():
        if name not in arrays:
            raise ValueError(f"checkpoint has no array {name!r}")
        if arrays[name].shape != target.shape:
            raise ValueError(
                f"{name}: checkpoint has shape {arrays[name].shape}, model {target.shape}"
            )
        target[...] = arrays[name]
