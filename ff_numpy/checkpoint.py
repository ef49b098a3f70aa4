"""Checkpoints: ``.npz`` files without pickle, written atomically.

A checkpoint holds named arrays (weights, optimiser slots, running means) and one JSON
document (configuration, epoch, history, random-generator state) stored as a string
array, so :func:`numpy.load` reads it with ``allow_pickle=False``. It is written to a
temporary file in the same folder and renamed, so a crash never leaves a half-written
model behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ff_numpy.validate import copy_state

META_KEY = "__meta__"


def _atomic_write(path, write, mode: str) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash or an exception leaves either the old file or none, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and the JSON-serialisable ``meta`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Target file (``.npz``).
    arrays : dict of str to ndarray
    meta : dict
        Anything :func:`json.dumps` accepts.
    """
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    payload = dict(arrays)
    payload[META_KEY] = np.array(json.dumps(meta))
    return _atomic_write(path, lambda f: np.savez(f, **payload), "wb")


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`.

    Returns
    -------
    arrays : dict of str to ndarray
    meta : dict

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, or has no metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint {path} is not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"checkpoint {path} is not a readable .npz file: {err}") from None
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path} has no metadata: not written by ff_numpy")
    meta = json.loads(str(arrays.pop(META_KEY)))
    return arrays, meta


def load_model(cls, path, what: str, accepts=None):
    """The model saved in a run's ``model.npz``: ``cls.from_config`` of the configuration
    stored under ``meta["config"]["model"]``, then ``load_state`` of the arrays.

    Parameters
    ----------
    cls : type
        A model class with ``from_config(cfg)`` and ``load_state(arrays)``.
    path : str or Path
    what : str
        What the file must hold, for the error message (``"FFNet configuration"``).
    accepts : callable, optional
        ``accepts(cfg) -> bool``: whether the stored configuration is one of ``cls``.

    Raises
    ------
    ValueError
        If the file is not a checkpoint or holds no configuration that ``cls`` accepts.
    """
    arrays, meta = load(path)
    cfg = (meta.get("config") or {}).get("model") if isinstance(meta, dict) else None
    if not isinstance(cfg, dict) or (accepts is not None and not accepts(cfg)):
        raise ValueError(f"{path} holds no {what}")
    model = cls.from_config(cfg)
    model.load_state(arrays)
    return model


def restore(targets: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    """Copy checkpointed arrays into a model's arrays, in place, by name
    (:func:`ff_numpy.validate.copy_state`: every name present, every shape the same)."""
    copy_state(targets, arrays)


def write_json(path, obj: dict) -> Path:
    """Write a JSON file atomically (temporary file, then rename)."""

    def write(f):
        json.dump(obj, f, indent=2)
        f.write("\n")

    return _atomic_write(path, write, "w")
