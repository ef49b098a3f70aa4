"""The one training loop every experiment shares.

:func:`fit` runs epochs of mini-batches over a :class:`Task`, with the learning-rate
schedule, a progress bar, evaluation after every epoch, ``metrics.json``, an atomic
checkpoint after every epoch, and exact ``--resume``: the checkpoint holds the weights,
the optimiser slots, the random generator's state and the history, so a resumed run
produces the same numbers as an uninterrupted one.

What a stop leaves behind: after every epoch ``model.npz`` and then ``metrics.json`` are
replaced, each atomically, with SIGINT and SIGTERM held until both are written, so an
interrupt leaves them in agreement. Only ``kill -9`` between the two renames can leave
``metrics.json`` one epoch behind; a resumed run rewrites it from the checkpoint at its
start, and a start also removes the temporaries of a killed save. A run whose weights
become NaN or infinite stops with an error, keeping the last finite checkpoint.

One run at a time per folder: :func:`run_lock` holds an exclusive lock on the output
folder (``fcntl.flock`` on its ``.lock`` file) for as long as a run writes there, and a
second run into the same folder is refused (:class:`FolderBusy`). The operating system
releases the lock when the process ends, however it ends (``kill -9`` included), so a
lock is never stale; a clean end also removes the file.

A task is any object with the methods of :class:`Task`; experiments in
:mod:`ff_numpy.experiments` build them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from ff_numpy import __version__, checkpoint
from ff_numpy.optim import hold_then_linear, linear_warmup

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked
    fcntl = None

MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.json"
#: The checkpoint metadata entry listing the optimiser slots (a resume needs each).
SLOTS_KEY = "optimizer_slots"
#: The lock file of a run's output folder (:func:`run_lock`); not an output.
LOCK_FILE = ".lock"


class Task(Protocol):
    """What :func:`fit` needs from an experiment."""

    n_train: int

    def train_batch(self, idx: np.ndarray, rng: np.random.Generator, lr_scale: float) -> dict:
        """Train on the examples ``idx``; return losses by name."""

    def evaluate(self, epoch: int, n_epochs: int) -> dict:
        """Validation metrics after (0-based) ``epoch``."""

    def final_metrics(self) -> dict:
        """Test-set metrics at the end of training."""

    def state(self) -> dict[str, np.ndarray]:
        """Every array to checkpoint (model and optimisers)."""

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state`."""


def fit(
    task: Task,
    out_dir,
    *,
    config: dict,
    epochs: int,
    batch_size: int,
    seed: int,
    resume: bool = False,
    progress: bool = True,
    schedule=hold_then_linear,
    warmup_batches: int = 0,
    config_defaults: dict | None = None,
) -> dict:
    """Train ``task`` for ``epochs`` epochs and write ``model.npz`` and ``metrics.json``.

    Parameters
    ----------
    task : Task
    out_dir : str or Path
        Where ``model.npz`` (checkpoint after every epoch) and ``metrics.json`` go.
    config : dict
        The run's configuration (JSON-serialisable); stored in both files. A resumed
        run must have the same configuration.
    epochs, batch_size, seed : int
    resume : bool
        Continue from ``out_dir/model.npz`` if it exists.
    progress : bool
        Show progress bars.
    schedule : callable
        ``schedule(epoch, epochs) -> lr factor``.
    warmup_batches : int
        The factor also ramps up linearly over the run's first ``warmup_batches``
        mini-batches (:func:`ff_numpy.optim.linear_warmup`; 0: no warm-up). It depends
        only on the batch's place in the run, so a resumed run repeats it exactly.
    config_defaults : dict, optional
        The configuration of a run with every option at its default. On resume, an
        option that the saved run did not have yet (it was added to the library later)
        counts as having this default, so old runs can be resumed by newer code.

    Returns
    -------
    metrics : dict
        ``{"config", "history", "final", ...}`` as written to ``metrics.json``.

    Raises
    ------
    FolderBusy
        Another process is writing to ``out_dir`` (:func:`run_lock`).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    if warmup_batches < 0:
        raise ValueError(f"warmup_batches must be >= 0, got {warmup_batches}")
    out_dir = Path(out_dir)
    with run_lock(out_dir):  # creates the folder
        checkpoint.remove_stale_temporaries(out_dir)  # left by a killed save
        model_path = out_dir / MODEL_FILE
        rng = np.random.default_rng(seed)
        history: list[dict] = []
        start_epoch = 0
        if resume and model_path.exists():
            history = _resume(task, rng, model_path, config, config_defaults or {})
            start_epoch = len(history)
            if progress:
                print(f"resuming {model_path} after epoch {start_epoch} of {epochs}")
            now = _where_it_ran()["blas_threads"]
            was = history[-1].get("blas_threads", now) if history else now
            if was != now:
                warnings.warn(
                    f"{model_path} last trained with {was} BLAS threads, now "
                    f"{now} (OPENBLAS_NUM_THREADS): float32 rounding differs, so the resumed "
                    "run will not repeat an uninterrupted one number for number",
                    stacklevel=2,
                )
            code, was_code = code_commit(), history[-1].get("code_commit") if history else None
            if was_code is not None and was_code != code:  # runs before b27775e recorded none
                warnings.warn(
                    f"{model_path} last trained on code {was_code}, now {code}: unless the "
                    "two compute the same numbers, the resumed run is not the uninterrupted "
                    "one (each epoch's code_commit in metrics.json says which ran)",
                    stacklevel=2,
                )

        n = task.n_train
        n_batches = -(-n // batch_size)
        for epoch in range(start_epoch, epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            lr_scale = schedule(epoch, epochs)
            perm = rng.permutation(n)
            sums: dict[str, float] = {}
            bar = tqdm(
                range(n_batches),
                desc=f"epoch {epoch + 1}/{epochs}",
                disable=not progress,
                leave=False,
                unit="batch",
            )
            with _diverging_quietly():
                for i in bar:
                    idx = perm[i * batch_size : (i + 1) * batch_size]
                    scale = lr_scale * linear_warmup(epoch * n_batches + i, warmup_batches)
                    losses = task.train_batch(idx, rng, scale)
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                    if not all(math.isfinite(v) for v in losses.values()):
                        _check_finite(task.state(), epoch, model_path)  # diverged: stop now
            train_seconds = time.perf_counter() - t0
            record = {
                "epoch": epoch + 1,
                "lr_scale": lr_scale,
                "train_seconds": train_seconds,
                # CPU time of this process (all its threads) over the same batches: with one
                # BLAS thread, the wall time the epoch would take on a core of its own, even
                # when other work shared the machine.
                "train_cpu_seconds": time.process_time() - c0,
                "train_loss": {k: v / n for k, v in sums.items()},
                **_where_it_ran(),
            }
            record.update(task.evaluate(epoch, epochs))
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            if progress:
                shown = {k: v for k, v in record.items() if k.startswith("val_")}
                print(f"epoch {epoch + 1}/{epochs}  {record['seconds']:.1f}s  " + _fmt(shown))
            meta = {
                "config": config,
                "epochs_done": epoch + 1,
                "history": history,
                "rng_state": rng.bit_generator.state,
            }
            if hasattr(task, "slot_names"):  # checked on resume (_resume)
                meta[SLOTS_KEY] = task.slot_names()
            state = task.state()
            _check_finite(state, epoch, model_path)
            with checkpoint.deferred_signals():  # both files, or neither
                checkpoint.save(model_path, state, meta)
                metrics = {"config": config, "history": history}
                checkpoint.write_json(out_dir / METRICS_FILE, metrics)

        final = task.final_metrics()
        metrics = {
            "config": config,
            "history": history,
            "total_train_seconds": sum(r["train_seconds"] for r in history),  # training only
            "total_train_cpu_seconds": sum(r.get("train_cpu_seconds", 0.0) for r in history),
            "total_seconds": sum(r["seconds"] for r in history),  # with evaluation
            "peak_rss_mb": _peak_rss_mb(),
            **final,
        }
        checkpoint.write_json(out_dir / METRICS_FILE, metrics)
        return metrics


def _resume(task, rng, model_path: Path, config: dict, defaults: dict) -> list[dict]:
    """Restore ``task`` and ``rng`` from the checkpoint ``model_path``; return its history.

    The checkpoint must be whole (:func:`ff_numpy.checkpoint.load`), its metadata complete,
    every optimiser slot it records (:data:`SLOTS_KEY`) present and its configuration
    the run's; ``metrics.json`` is rewritten from it if it lags.

    Raises
    ------
    ValueError
        ``"cannot resume PATH: ..."`` naming the problem.
    """
    arrays, meta = checkpoint.load(model_path)
    problem = _meta_problem(meta) or _slots_problem(meta.get(SLOTS_KEY, []), arrays)
    if problem:
        raise ValueError(f"cannot resume {model_path}: {problem}")
    changed = _config_changes(meta["config"], config, defaults)
    if changed:
        raise ValueError(
            f"cannot resume {model_path}: its configuration differs in {changed}; "
            "use the same options or a new --out"
        )
    try:
        task.load_state(arrays)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot resume {model_path}: {err}") from None
    try:
        rng.bit_generator.state = meta["rng_state"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"cannot resume {model_path}: its random generator state is damaged ({err})"
        ) from None
    history = meta["history"]
    _repair_metrics(model_path.parent / METRICS_FILE, config, history)
    return history


def _meta_problem(meta: dict) -> str | None:
    """What a checkpoint's metadata lacks for a resume, or None."""
    done, history = meta.get("epochs_done"), meta.get("history")
    if not isinstance(meta.get("config"), dict):
        return "its metadata has no configuration (config)"
    if not isinstance(done, int) or isinstance(done, bool) or done < 0:
        return f"its metadata has no valid epochs_done, got {done!r}"
    if not isinstance(history, list) or len(history) != done:
        return f"its history does not hold its {done} epochs"
    if any(not isinstance(r, dict) or r.get("epoch") != i + 1 for i, r in enumerate(history)):
        return "its history is malformed (entries must be epochs 1, 2, ...)"
    if not isinstance(meta.get("rng_state"), dict):
        return "its metadata has no random generator state (rng_state)"
    return None


def _slots_problem(slots, arrays: dict) -> str | None:
    """Which optimiser slot recorded in the metadata (:data:`SLOTS_KEY`) the checkpoint
    lacks, or None. Checkpoints written before the record existed have none to check."""
    if not isinstance(slots, list) or not all(isinstance(s, str) for s in slots):
        return f"its metadata's {SLOTS_KEY} is not a list of names, got {slots!r:.60}"
    missing = [s for s in slots if s not in arrays]
    if missing:
        more = f" (and {len(missing) - 1} more)" if missing[1:] else ""
        return f"it lacks the optimiser slot {missing[0]}{more} its metadata records"
    return None


def _repair_metrics(path: Path, config: dict, history: list[dict]) -> None:
    """Rewrite ``metrics.json`` from the checkpoint's history unless it has the same
    epochs (after a kill between the two writes of an epoch it lags one behind)."""
    try:
        saved = json.loads(path.read_text())
        epochs = [r.get("epoch") for r in saved["history"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        epochs = None
    if epochs != [r["epoch"] for r in history]:
        checkpoint.write_json(path, {"config": config, "history": history})


def _diverging_quietly():
    """NumPy's overflow and invalid-value warnings off (where they only warn): a run
    that diverges is stopped by :func:`_check_finite` with one line instead."""
    quiet = {k: "ignore" for k in ("over", "invalid", "divide") if np.geterr()[k] == "warn"}
    return np.errstate(**quiet)


def _check_finite(state: dict[str, np.ndarray], epoch: int, model_path: Path) -> None:
    """Raise ``ValueError`` when training has made an array NaN or infinite: nothing is
    saved over the last finite checkpoint."""
    for name, a in state.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            kept = (
                f"{model_path} keeps epoch {epoch}" if epoch and model_path.exists()
                else "nothing was saved"
            )  # fmt: skip
            raise ValueError(
                f"training diverged in epoch {epoch + 1}: {name} holds NaN or infinite "
                f"values; {kept} (a smaller learning rate may help)"
            )


def existing_run(out_dir) -> str | None:
    """What run ``out_dir`` holds, in words (``"a finished run (5 of 5 epochs)"``), or
    None if it holds no ``model.npz`` or ``metrics.json``."""
    out_dir = Path(out_dir)
    model_path, metrics_path = out_dir / MODEL_FILE, out_dir / METRICS_FILE
    if not model_path.exists():
        return f"a run's {METRICS_FILE}" if metrics_path.exists() else None
    try:
        meta = checkpoint.read_meta(model_path)
    except ValueError:
        return f"a damaged {MODEL_FILE}"
    cfg = meta.get("config")
    done, total = meta.get("epochs_done"), cfg.get("epochs") if isinstance(cfg, dict) else None
    if isinstance(total, int) and done == total:
        return f"a finished run ({done} of {total} epochs)"
    if isinstance(total, int):
        return f"an unfinished run (epoch {done} of {total} saved)"
    return f"a run (epoch {done} saved)"


def clear_run(out_dir) -> None:
    """Remove the ``model.npz`` and ``metrics.json`` of ``out_dir`` (``--overwrite``)."""
    for name in (MODEL_FILE, METRICS_FILE):
        (Path(out_dir) / name).unlink(missing_ok=True)


class FolderBusy(ValueError):
    """Another run is writing to the output folder (:func:`run_lock`)."""


_held_locks: dict[str, int] = {}  # folder -> depth of the blocks holding it in this process


@contextlib.contextmanager
def run_lock(out_dir):
    """Hold an exclusive lock on the output folder ``out_dir`` inside the block.

    The lock is ``fcntl.flock`` on ``out_dir/.lock`` (:data:`LOCK_FILE`), taken without
    waiting; the file holds the process's id. The folder is created if needed (and
    removed again if it is still empty at the end). The lock is re-entrant within a
    process (a run's command line, :meth:`Experiment.run` and :func:`fit` each hold it).
    The file is removed when the block ends, and the operating system drops the lock
    when the process dies, even by ``kill -9``: the file such a death leaves locks
    nothing. Without ``fcntl`` (Windows), or on a file system without locks, nothing is
    locked.

    Raises
    ------
    FolderBusy
        ``"another run is writing to DIR (pid N); ..."`` when another process holds it.
    """
    out_dir = Path(out_dir)
    key = os.path.realpath(out_dir)
    if key in _held_locks:
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    fd = _lock(path, out_dir) if fcntl is not None else None
    _held_locks[key] = 1
    try:
        yield
    finally:
        del _held_locks[key]
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: see _lock
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: a run that wrote nothing


def _lock(path: Path, out_dir: Path) -> int | None:
    """Open and lock ``path``; its file descriptor, or None where locks are unsupported."""
    while True:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)  # again, if its creator removed it
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            continue
        except OSError:
            return None  # a read-only folder: writing will fail with its own error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            pid = _read_pid(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None  # ENOLCK, EOPNOTSUPP: a file system without locks
            raise FolderBusy(
                f"another run is writing to {out_dir} (pid {pid or 'unknown'}); wait for "
                "it or choose another --out"
            ) from None
        # The run that held the lock removes the file before it lets go: the lock is
        # ours only if the name still points at the file we locked.
        with contextlib.suppress(OSError):
            st, now = os.fstat(fd), os.stat(path)
            if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _config_changes(saved: dict, new: dict, defaults: dict) -> list[str]:
    """Options whose values differ between a saved run and a new one.

    An option missing from the saved run takes its value from ``defaults``; the model's
    own description (key ``"model"``) is derived from the options and not compared.
    """
    saved = {**defaults, **saved}
    keys = (set(saved) | set(new)) - {"model"}
    return sorted(k for k in keys if saved.get(k) != new.get(k))


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (None where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@functools.cache
def code_commit() -> str:
    """Which code is running: the library's version and, when it runs from a git checkout,
    the commit (``0.1.0+6588bd1``), with ``.dirty`` when tracked files under ``ff_numpy/``
    differ from it. Every epoch's record carries it, so a run resumed on other code, or
    started from the wrong copy, shows in its history."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # an installed copy: the version is all there is
        return __version__

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(root), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        head = git("rev-parse", "--short=7", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "ff_numpy").strip()
    except (OSError, subprocess.SubprocessError):  # no git, or not a repository after all
        return __version__
    return f"{__version__}+{head}{'.dirty' if dirty else ''}"


def _where_it_ran() -> dict:
    """The BLAS thread setting and the cores this process may use, and the code
    (:func:`code_commit`), for each epoch's record.

    float32 results depend on the BLAS thread count (OpenBLAS splits a product
    differently), so a run resumed with another count continues on different rounding;
    the record says which epochs ran how. ``blas_threads`` is the ``OPENBLAS_NUM_THREADS``
    (else ``OMP_NUM_THREADS``) setting, None when unset (OpenBLAS then uses every core).
    """
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count()
    return {
        "blas_threads": int(threads) if threads and threads.isdigit() else None,
        "cores": cores,
        "code_commit": code_commit(),
    }


def _fmt(d: dict) -> str:
    return "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())
