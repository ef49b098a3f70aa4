"""Helpers shared by the end-to-end tests: the MNIST and CIFAR-10 skip markers, runs, tutorials."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ff_numpy import cli
from ff_numpy.data import find_cifar10, find_data_dir

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
BENCHMARKS = TUTORIALS.parent / "benchmarks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUICK_BUDGET = 40.0  # seconds a tutorial's quick run may take on 2 cores
SLACK = 20.0  # CI machines may be loaded
WALL_CLOCK = {
    *("seconds", "train_seconds", "total_train_seconds", "total_seconds", "peak_rss_mb"),
    *("train_cpu_seconds", "total_train_cpu_seconds"),
}

needs_mnist = pytest.mark.skipif(
    find_data_dir() is None,
    reason="MNIST not found: set FF_NUMPY_DATA to a folder holding the four IDX files "
    "(e.g. export FF_NUMPY_DATA=../shared/data)",
)

needs_cifar10 = pytest.mark.skipif(
    find_cifar10() is None,
    reason="CIFAR-10 not found: build the offline copy (see data/README) or set FF_NUMPY_DATA",
)


def numbers(metrics: dict) -> tuple[list[dict], dict]:
    """Everything in metrics.json that a rerun must reproduce: the history without its
    wall-clock times (:data:`WALL_CLOCK`), and the final ``test_*`` errors."""
    hist = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in metrics["history"]]
    return hist, {k: v for k, v in metrics.items() if k.startswith("test_")}


def train_args(experiment: str, out, *options: str):
    """Parse ``ff-numpy train EXPERIMENT *options --no-progress --out OUT`` exactly as the
    command line does."""
    argv = ["train", experiment, *options, "--no-progress", "--out", str(out)]
    return cli.build_parser().parse_args(argv)


@contextlib.contextmanager
def interrupted_after(task_class: type, n_batches: int):
    """Inside the block, ``task_class.train_batch`` raises ``KeyboardInterrupt`` (as Ctrl-C
    would) on its call ``n_batches + 1``; the block must end by that interrupt."""
    original = task_class.train_batch
    calls = 0

    def train_batch(self, idx, rng, lr_scale):
        nonlocal calls
        calls += 1
        if calls > n_batches:
            raise KeyboardInterrupt
        return original(self, idx, rng, lr_scale)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(task_class, "train_batch", train_batch)
        yield


#: ``python -c HOOK_DRIVER HOOK AT SIGNALS ARGV...`` runs ``ff-numpy ARGV`` in a fresh
#: process that sends itself ``SIGNALS`` (``SIGTERM``, ``SIGKILL``, or ``SIGTERM+SIGINT``:
#: both at once) at the ``AT``-th call of ``HOOK``: ``batch`` (a training batch),
#: ``save`` (inside a checkpoint save: after the first bytes of its temporary file for
#: SIGKILL) or ``metrics`` (before a metrics.json write: a kill between the two files).
HOOK_DRIVER = r"""
import os, signal, sys
hook, at, names, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
signals = [getattr(signal, n) for n in names.split("+")]
calls = [0]

def fire(f=None):
    calls[0] += 1
    if calls[0] != at:
        return
    if f is not None and signal.SIGKILL in signals:
        f.write(b"the first bytes of a checkpoint")
        f.flush()
    if len(signals) == 1:
        os.kill(os.getpid(), signals[0])
        return
    parent, child = os.getpid(), os.fork()  # several: sent back to back by a child
    if child == 0:
        for s in signals:
            os.kill(parent, s)
        os._exit(0)
    os.waitpid(child, 0)

import numpy as np
from ff_numpy import checkpoint, cli, train

if hook == "batch":
    warmup = train.linear_warmup  # called once per batch by train.fit
    train.linear_warmup = lambda *a: (fire(), warmup(*a))[1]
elif hook == "save":
    savez = np.savez
    np.savez = lambda f, **kw: (fire(f), savez(f, **kw))[1]
elif hook == "metrics":
    write_json = checkpoint.write_json
    checkpoint.write_json = lambda *a: (fire(), write_json(*a))[1]
sys.exit(cli.main(argv))
"""


def rewrite_checkpoint(src, dst, damage=None, meta_text: str | None = None) -> Path:
    """Copy the checkpoint ``src`` to ``dst`` (which may be ``src``), damaged.

    ``damage(arrays, meta)`` edits the arrays and the metadata in place, or returns
    metadata to store instead; ``meta_text`` replaces the metadata's JSON text. The file
    is written with :func:`numpy.savez` directly, as a damaged or edited file would be:
    its metadata still lists the arrays it had.
    """
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if damage is not None:
        meta = damage(arrays, meta) or meta
    arrays["__meta__"] = np.array(json.dumps(meta) if meta_text is None else meta_text)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return Path(dst)


def options_that_differ(ours: dict, theirs: dict) -> dict:
    """The options two parsed commands both have but set differently: ``{key: (ours,
    theirs)}``; e.g. a tutorial's run against the command recorded in docs/RESULTS.md."""
    return {k: (v, theirs[k]) for k, v in ours.items() if k in theirs and theirs[k] != v}


def tutorial_constant(stem: str, name: str):
    """The literal value assigned to ``name`` at the top level of ``tutorials/<stem>.py``,
    read from its source without running it."""
    tree = ast.parse((TUTORIALS / f"{stem}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(f"{stem}.py assigns no literal to {name}")


def load_tutorial(stem: str, folder: Path = TUTORIALS):
    """Import ``tutorials/<stem>.py`` (or ``folder/<stem>.py``) as a module (its ``main``
    is not run)."""
    path = folder / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"{folder.name}_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    """``path`` is a PNG file of more than 1000 bytes."""
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG file"
    assert len(data) > 1000, f"{path} is only {len(data)} bytes"


def assert_in_time(seconds: float, stem: str) -> None:
    """A tutorial's quick run finished within its budget (plus slack for loaded machines)."""
    assert seconds < QUICK_BUDGET + SLACK, (
        f"{stem} --quick took {seconds:.1f} s, budget {QUICK_BUDGET:.0f} s (+{SLACK:.0f} s slack)"
    )


def run_tutorial(stem: str, *argv: str) -> tuple[dict, float]:
    """Run ``python tutorials/<stem>.py *argv`` in this process (``runpy`` with that
    command line): the namespace the script left, and its wall seconds."""
    path = TUTORIALS / f"{stem}.py"
    saved, sys.argv = sys.argv, [str(path), *argv]
    try:
        t0 = time.perf_counter()
        namespace = runpy.run_path(str(path), run_name="__main__")
        return namespace, time.perf_counter() - t0
    finally:
        sys.argv = saved


def assert_error_rate(e: float, n: int, what: str = "") -> None:
    """``e`` is an error rate counted over ``n`` images (or a divisor of ``n``): ``k / n``
    for a whole ``k`` in ``0..n``. A loss, a mean of probabilities or a rate over another
    number of images fails."""
    k = e * n
    assert abs(k - round(k)) < 1e-6 and 0 <= round(k) <= n, (
        f"{what}: {e!r} is not a count of errors over {n} images"
    )
