"""Checkpoints: ``.npz`` files without pickle, written atomically, validated when read.

A checkpoint holds named arrays (weights, optimiser slots, running means) and one JSON
document (configuration, epoch, history, random-generator state, the names of the
arrays) stored as a string array, so :func:`numpy.load` reads it with
``allow_pickle=False``.

Writing (:func:`save`, :func:`write_json`): the file is written to a temporary file in
the same folder, named ``NAME.PID.XXXXXXXX.tmp`` after the writing process, then renamed
over ``NAME``, so a crash never leaves a half-written file; SIGINT and SIGTERM wait until
the rename is done (:func:`deferred_signals`). Only ``kill -9`` or a power cut can leave
a temporary behind, which :func:`remove_stale_temporaries` removes on the next start.
Every file gets the mode of an ordinary new file (0644 under the usual umask 022).
JSON files are strict JSON: a NaN or infinite number is written as ``null`` and listed in
the document's ``"notes"``.

Reading (:func:`load`): a file that is not a checkpoint, whose metadata is not a JSON
object, that lacks an array its metadata lists, holds a NaN or infinite number, or holds
a ``*.perm`` array that is not a permutation is refused with one line naming the file and
the problem; :func:`load_model` also refuses a model configuration that is malformed,
too large for the machine, or does not match the arrays' shapes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from ff_numpy.validate import check_memory, copy_state

META_KEY = "__meta__"
#: The metadata entry listing every array of the file (so a missing one is noticed).
NAMES_KEY = "array_names"
#: Our temporary files: ``NAME.PID.XXXXXXXX.tmp`` (``NAME.XXXXXXXX.tmp`` before the PID).
_TEMPORARY = re.compile(r"^(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")


# ----------------------------------------------------------------------------- writing
@contextlib.contextmanager
def deferred_signals():
    """Inside the block, SIGINT and SIGTERM wait: they take effect when it ends.

    Around a save, so that an interrupt lands before or after it, never inside: a save
    is finished and renamed, or not started. Each signal's handler is replaced by one
    that notes it, and the signal is raised again, to its own handler, at the end (the
    default one included: SIGTERM then ends the process, after the save). Outside the
    main thread, where handlers cannot be changed, the block runs unprotected: the
    rename still keeps the old file whole.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    held = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(s)
        if handler is not None and handler != signal.SIG_IGN:
            held[s] = handler
            signal.signal(s, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(noted):  # each once, in the order they came
            signal.raise_signal(s)


def file_mode() -> int:
    """The mode of an ordinary new file under the current umask (0644 under 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash or an exception leaves either the old file or none, never a partial one, and
    no temporary (but after ``kill -9``: see :func:`remove_stale_temporaries`). SIGINT and
    SIGTERM are delivered after the rename (:func:`deferred_signals`). The file gets
    :func:`file_mode`.

    Parameters
    ----------
    path : str or Path
    write : callable
        ``write(f)`` writes the contents to the open file ``f``.
    mode : {"wb", "w"}
        Binary or text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_signals():
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
            )
            if hasattr(os, "fchmod"):
                os.fchmod(fd, file_mode())
            with os.fdopen(fd, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


_atomic_write = atomic_write  # the former private name


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporary files our writes left in ``folder`` when killed.

    Only files named as :func:`atomic_write` names them, and only those whose writing
    process has ended (a running one's, such as another run's in the same folder, stay).

    Returns
    -------
    removed : list of Path
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        m = _TEMPORARY.match(p.name)
        if not m or not p.is_file() or (m["pid"] and _running(int(m["pid"]))):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (ours always does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's, or cannot tell: keep its files
    return True


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and the JSON-serialisable ``meta`` to ``path`` atomically.

    The names of the arrays are added to the stored metadata (``"array_names"``), so
    :func:`load` notices a file that lost one.

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
    payload[META_KEY] = np.array(json.dumps({**meta, NAMES_KEY: sorted(arrays)}))
    return atomic_write(path, lambda f: np.savez(f, **payload), "wb")


def strict_json(obj, path: str = "") -> tuple[object, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and where they were.

    Returns
    -------
    clean : object
        A copy of the dicts and lists, numbers replaced.
    replaced : list of str
        ``"history/2/train_loss/layer0 (nan)"`` for each replaced number.
    """
    if isinstance(obj, dict):
        out, replaced = {}, []
        for k, v in obj.items():
            out[k], r = strict_json(v, f"{path}{k}/")
            replaced += r
        return out, replaced
    if isinstance(obj, (list, tuple)):
        out, replaced = [], []
        for i, v in enumerate(obj):
            c, r = strict_json(v, f"{path}{i}/")
            out.append(c)
            replaced += r
        return out, replaced
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return None, [f"{path.rstrip('/')} ({float(obj)})"]
    if isinstance(obj, np.generic):
        return obj.item(), []
    return obj, []


def write_json(path, obj: dict) -> Path:
    """Write ``obj`` as strict JSON, atomically (temporary file, then rename).

    A NaN or infinite number (not JSON) is written as ``null``, and ``obj["notes"]`` (a
    list of strings) says which ones were.
    """
    clean, replaced = strict_json(obj)
    if replaced:
        shown = ", ".join(replaced[:10]) + (
            f" and {len(replaced) - 10} more" if replaced[10:] else ""
        )
        clean["notes"] = [
            *clean.get("notes", []),
            f"non-finite numbers are written as null: {shown}",
        ]

    def write(f):
        json.dump(clean, f, indent=2, allow_nan=False)
        f.write("\n")

    return atomic_write(path, write, "w")


# ----------------------------------------------------------------------------- reading
def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save`, and check it.

    Returns
    -------
    arrays : dict of str to ndarray
    meta : dict

    Raises
    ------
    ValueError
        Naming the file and the problem: it is missing, not an ``.npz`` archive, has no
        metadata or metadata that is not a JSON object, lacks an array its metadata
        lists, holds NaN or infinite numbers, or a ``*.perm`` array that is not a
        permutation.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint {path} is not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise ValueError(f"checkpoint {path} is not a readable .npz file: {err}") from None
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path} has no metadata: not written by ff_numpy")
    meta = _parse_meta(arrays.pop(META_KEY), path)
    problem = _arrays_problem(arrays, meta.pop(NAMES_KEY, None))
    if problem:
        raise ValueError(f"checkpoint {path} {problem}")
    return arrays, meta


def read_meta(path) -> dict:
    """Only the metadata of the checkpoint ``path`` (its arrays are not read or checked).

    Raises
    ------
    ValueError
        As :func:`load`, for the file and its metadata.
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint {path} does not exist or is not a readable .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if META_KEY not in z.files:
                raise ValueError(f"checkpoint {path} has no metadata: not written by ff_numpy")
            text = z[META_KEY]
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"checkpoint {path} is not a readable .npz file: {err}") from None
    meta = _parse_meta(text, path)
    meta.pop(NAMES_KEY, None)
    return meta


def _parse_meta(text: np.ndarray, path) -> dict:
    try:
        meta = json.loads(str(text))
    except ValueError as err:
        raise ValueError(f"checkpoint {path} has unreadable metadata (not JSON: {err})") from None
    if not isinstance(meta, dict):
        raise ValueError(
            f"checkpoint {path} has malformed metadata: a JSON {type(meta).__name__}, "
            "expected an object"
        )
    return meta


def _arrays_problem(arrays: dict[str, np.ndarray], names) -> str | None:
    """What is wrong with a checkpoint's arrays (the end of a sentence), or None."""
    if names is not None:
        missing = sorted(set(names) - set(arrays)) if isinstance(names, list) else ["?"]
        if missing:
            return f"lacks arrays its metadata lists: {', '.join(map(str, missing[:5]))}"
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            n = int(a.size - np.count_nonzero(np.isfinite(a)))
            return f"holds {n} NaN or infinite values in array {name!r}"
        if name.endswith("perm") and not _is_permutation(a):
            return f"holds an array {name!r} that is not a permutation of 0..{a.size - 1}"
    return None


def _is_permutation(a: np.ndarray) -> bool:
    return a.ndim == 1 and a.dtype.kind in "iu" and np.array_equal(np.sort(a), np.arange(a.size))


def check_model_config(cfg: dict, path) -> None:
    """Raise ``ValueError`` naming ``path`` when a stored model configuration's sizes are
    malformed or too large for the machine's memory (checked before anything is built)."""
    hidden, n_in = cfg.get("hidden"), cfg.get("n_in", 1)
    sizes = [n_in, *hidden] if isinstance(hidden, list) else None
    if not sizes or len(sizes) < 2 or not all(_positive_int(s) for s in sizes):
        raise ValueError(
            f"checkpoint {path} has a malformed model configuration: n_in and hidden must "
            f"be positive layer sizes, got n_in={n_in!r}, hidden={hidden!r}"
        )
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    check_memory(4 * n_weights, f"checkpoint {path}: the layers of its model configuration")


def _positive_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


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
        Naming the file: it is not a valid checkpoint (:func:`load`), holds no
        configuration that ``cls`` accepts, a malformed or too large one, or arrays whose
        names or shapes do not match it.
    """
    arrays, meta = load(path)
    cfg = meta.get("config")
    cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(cfg, dict) or (accepts is not None and not accepts(cfg)):
        raise ValueError(f"{path} holds no {what}")
    check_model_config(cfg, path)
    return build_model(cls.from_config, cfg, arrays, path)


def build_model(build, cfg: dict, arrays: dict[str, np.ndarray], path):
    """``build(cfg)``, then its ``load_state(arrays)``: a saved model rebuilt, the errors
    of a malformed configuration or of arrays that do not match it named after ``path``.

    Parameters
    ----------
    build : callable
        ``build(cfg) -> model`` (a class's ``from_config``, or one that also builds
        the model's layers); its ``KeyError``, ``ValueError``, ``TypeError``,
        ``IndexError`` and ``AttributeError`` are taken as a malformed configuration.
    cfg : dict
        The stored model configuration, already checked by :func:`check_model_config`.
    arrays : dict of str to ndarray
        From :func:`load`.
    path : str or Path
        The checkpoint, for the messages.

    Raises
    ------
    ValueError
        ``"checkpoint PATH has a malformed model configuration: ..."`` or ``"checkpoint
        PATH does not match its configuration: ..."``.
    """
    try:
        model = build(cfg)
    except KeyError as err:
        raise ValueError(f"checkpoint {path}: its model configuration has no {err}") from None
    except (ValueError, TypeError, IndexError, AttributeError) as err:
        raise ValueError(f"checkpoint {path} has a malformed model configuration: {err}") from None
    try:
        model.load_state(arrays)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {path} does not match its configuration: {err}") from None
    return model


def restore(targets: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    """Copy checkpointed arrays into a model's arrays, in place, by name
    (:func:`ff_numpy.validate.copy_state`: every name present, every shape the same)."""
    copy_state(targets, arrays)
