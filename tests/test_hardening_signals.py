"""Every stop is clean: SIGINT, SIGTERM and ``kill -9``, at any moment, in real processes.

SIGINT and SIGTERM end the program with one line saying what was saved (status 130 and
143), finish a save in progress first, and leave no temporary file. ``kill -9`` in the
middle of a save leaves the previous checkpoint whole; between the checkpoint and
``metrics.json`` it leaves ``metrics.json`` one epoch behind. Either way the next start
removes the temporary, rewrites ``metrics.json`` from the checkpoint, and the resumed run
ends bit-identical to an uninterrupted one (metrics, weights, optimiser slots, random
state). The moments are exact: the process signals itself from inside the program
(``helpers.HOOK_DRIVER``). Runs are tiny: a 20 x 20 net, 300 images, 3 epochs of 6 batches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import HOOK_DRIVER, needs_mnist, numbers

from ff_numpy import checkpoint

pytestmark = [
    needs_mnist,
    pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signals"),
]

RUN = (
    "train supervised --hidden 20 20 --train-size 300 --batch-size 50 --epochs 3 "
    "--eval-every 3 --seed 2 --no-progress"
).split()
BATCHES = 6  # an epoch
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # the same rounding in every process


def _cli(out, *extra, hook=None, at=0, signals="SIGTERM"):
    """``ff-numpy train ... --out OUT EXTRA`` in a fresh process, signalled at the
    ``at``-th ``hook`` call if a hook is given."""
    argv = [*RUN, "--out", str(out), *extra]
    if hook:
        cmd = [sys.executable, "-c", HOOK_DRIVER, hook, str(at), signals, *argv]
    else:
        cmd = [sys.executable, "-m", "ff_numpy", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)


def _one_line(proc, status: int, text: str) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert proc.stderr == f"ff-numpy: {text}\n", proc.stderr


def _epochs(folder) -> tuple[int, list[int]]:
    """Epochs held by model.npz, and the epochs listed in metrics.json."""
    meta = checkpoint.load(folder / "model.npz")[1]  # loads and checks every array
    metrics = json.loads((folder / "metrics.json").read_text())
    return meta["epochs_done"], [r["epoch"] for r in metrics["history"]]


def _temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.tmp"))


def _assert_same_run(a, b) -> None:
    """Two finished runs with the same numbers: metrics (but times), every array of
    model.npz (weights, readout, optimiser slots) and the random generator's state."""
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert numbers(ma) == numbers(mb)
    (xa, meta_a), (xb, meta_b) = checkpoint.load(a / "model.npz"), checkpoint.load(b / "model.npz")
    assert sorted(xa) == sorted(xb) and any(k.startswith("opt/") for k in xa)
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    assert meta_a["rng_state"] == meta_b["rng_state"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    proc = _cli(out)
    assert proc.returncode == 0, proc.stderr
    return out


def _started(proc) -> None:
    """Wait until the program's own code runs: its SIGTERM handler is installed (the
    interpreter's start, a few tens of milliseconds, is Python's to handle)."""
    status = f"/proc/{proc.pid}/status"
    if not os.path.exists(status):
        time.sleep(0.5)
        return
    for _ in range(1000):
        caught = next(ln for ln in open(status) if ln.startswith("SigCgt:")).split()[1]
        if int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.005)


def test_sigint_while_starting_saves_nothing(tmp_path):
    """Ctrl-C while the program imports and reads its data: one line, no traceback,
    nothing written."""
    for delay in (0.0, 0.7):
        out = tmp_path / f"run{delay}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ff_numpy", *RUN, "--epochs", "50", "--out", str(out)],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        _started(proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.startswith("ff-numpy: interrupted (SIGINT)") and err.count("\n") == 1, err
        assert err.endswith("nothing was saved\n"), err
        assert not (out / "model.npz").exists() and not _temporaries(tmp_path)


def test_sigint_in_the_first_epoch_says_nothing_was_saved(tmp_path):
    proc = _cli(tmp_path, hook="batch", at=2, signals="SIGINT")
    _one_line(proc, 130, "interrupted (SIGINT) before the first epoch finished: nothing was saved")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sigterm_in_training_names_the_saved_epoch_and_resumes_exactly(reference, tmp_path):
    """SIGTERM (and a Ctrl-C arriving with it) in epoch 2: one line naming epoch 1; the
    files agree; --resume ends as the uninterrupted run."""
    proc = _cli(tmp_path, hook="batch", at=BATCHES + 3, signals="SIGTERM+SIGINT")
    model = tmp_path / "model.npz"
    name = "SIGINT" if proc.returncode == 130 else "SIGTERM"  # whichever is handled first
    saved = f"{model} holds epoch 1 of 3; continue with --resume"
    _one_line(proc, 128 + getattr(signal, name), f"interrupted ({name}): {saved}")
    assert _epochs(tmp_path) == (1, [1]) and not _temporaries(tmp_path)
    assert _cli(tmp_path, "--resume").returncode == 0
    _assert_same_run(tmp_path, reference)


def test_sigterm_during_a_save_lets_the_save_finish(tmp_path):
    proc = _cli(tmp_path, hook="save", at=2, signals="SIGTERM")
    model = tmp_path / "model.npz"
    _one_line(
        proc, 143, f"interrupted (SIGTERM): {model} holds epoch 2 of 3; continue with --resume"
    )
    assert _epochs(tmp_path) == (2, [1, 2]) and not _temporaries(tmp_path)


def test_kill_9_during_a_save_keeps_the_last_checkpoint_and_resumes_exactly(reference, tmp_path):
    proc = _cli(tmp_path, hook="save", at=2, signals="SIGKILL")
    assert proc.returncode == -signal.SIGKILL
    assert _epochs(tmp_path) == (1, [1])  # the previous checkpoint, whole
    (left,) = _temporaries(tmp_path)  # the killed save's temporary
    assert left.startswith("model.npz.") and str(_pid(left)) != str(os.getpid())
    assert _cli(tmp_path, "--resume").returncode == 0
    assert not _temporaries(tmp_path)  # removed by the start
    _assert_same_run(tmp_path, reference)


def test_kill_9_between_model_and_metrics_is_repaired_by_resume(reference, tmp_path):
    proc = _cli(tmp_path, hook="metrics", at=2, signals="SIGKILL")
    assert proc.returncode == -signal.SIGKILL
    assert _epochs(tmp_path) == (2, [1])  # metrics.json one epoch behind
    again = _cli(tmp_path, "--resume", hook="batch", at=1, signals="SIGKILL")
    assert again.returncode == -signal.SIGKILL  # killed at its first batch, after the start
    assert _epochs(tmp_path) == (2, [1, 2])  # rewritten from the checkpoint at the start
    assert _cli(tmp_path, "--resume").returncode == 0
    _assert_same_run(tmp_path, reference)


def test_sigint_in_evaluate_is_one_line(reference, tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ff_numpy",
            "evaluate",
            str(reference / "model.npz"),
            "--shifts",
            "20",
            "--no-progress",
        ],  # fmt: skip
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    _started(proc)
    time.sleep(2.0)  # reading the data or evaluating (441 shifted copies of each image)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == "", (proc.returncode, err)
    assert err.startswith("ff-numpy: interrupted (SIGINT)") and err.count("\n") == 1, err


def _pid(name: str) -> int:
    return int(name.split(".")[2])


def test_the_command_line_imports_only_signal_and_sys_before_its_handlers():
    """What runs before main() installs the handlers is kept to the interpreter's own
    start: importing ``ff_numpy.cli`` (as ``python -m ff_numpy`` and ``ff-numpy`` do)
    loads no module beyond the package, ``signal`` and ``sys``."""
    code = (
        "import sys, signal; before = set(sys.modules); import ff_numpy.cli; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],  # -S: only what the program imports
        capture_output=True,
        text=True,
        env={**ENV, "PYTHONPATH": root},
        cwd=root,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) <= {"ff_numpy", "ff_numpy.cli", "__future__"}, proc.stdout


def test_an_interrupt_while_the_handlers_are_installed_is_one_line(monkeypatch, capsys):
    """A Ctrl-C that Python's own handler turns into KeyboardInterrupt at main()'s first
    statement, before ours are in place, still ends in one line."""
    from ff_numpy import cli

    def interrupted(held):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_catch_stop_signals", interrupted)
    assert cli.main(["train", "supervised", "--out", "x"]) == 130
    err = capsys.readouterr().err
    assert err == "ff-numpy: interrupted (SIGINT) while starting: nothing was saved\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("how", ["cause", "context"])
def test_an_interrupt_wrapped_by_python_is_a_stop_not_a_bug(monkeypatch, capsys, how, tmp_path):
    """Python wraps an exception raised while a class is created (during an import) in a
    RuntimeError (``Error calling __set_name__``); a Ctrl-C landing there is still a stop:
    one line, exit 130, not "unexpected RuntimeError"."""
    from ff_numpy import cli

    def wrapped(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            if how == "cause":
                raise RuntimeError("Error calling __set_name__ on '_axis_method_wrapper'") from stop
            raise RuntimeError("Error calling __set_name__ on '_axis_method_wrapper'")  # noqa: B904

    monkeypatch.setattr(cli, "_train", wrapped)
    assert cli.main(["train", "supervised", "--out", str(tmp_path / "x")]) == 130
    err = capsys.readouterr().err
    assert err.startswith("ff-numpy: interrupted (SIGINT)") and err.count("\n") == 1, err
    assert "unexpected" not in err


def test_a_plain_runtime_error_is_still_a_bug(monkeypatch, capsys, tmp_path):
    from ff_numpy import cli

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_train", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["train", "supervised", "--out", str(tmp_path / "x")]) == 1
    assert "unexpected RuntimeError: boom" in capsys.readouterr().err
