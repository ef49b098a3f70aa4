"""One run at a time in an output folder: a second one is refused in one line.

A run holds ``fcntl.flock`` on ``DIR/.lock`` from its start to its end
(:func:`ff_numpy.train.run_lock`); a second ``train`` into ``DIR`` (plain, ``--resume``
or ``--overwrite``) exits with status 2 naming the folder and the process writing to
it. The operating system drops the lock when the process dies, even by ``kill -9``, so
the file such a death leaves blocks nothing: ``--resume`` continues the run. The lock
file is not an output: a clean end removes it, and it is never taken for a temporary.
The held run is a real process stopped (SIGSTOP) in its second epoch, from inside
(``helpers.HOOK_DRIVER``); runs are tiny (a 20 x 20 net, 300 images, 3 epochs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import HOOK_DRIVER, needs_mnist, train_args

from ff_numpy import checkpoint, cli, experiments, train

ROOT = Path(__file__).resolve().parents[1]
RUN = (
    "train supervised --hidden 20 20 --train-size 300 --batch-size 50 --epochs 3 "
    "--eval-every 3 --seed 2 --no-progress"
).split()
BATCHES = 6  # an epoch
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
posix_locks = pytest.mark.skipif(
    train.fcntl is None or not hasattr(signal, "SIGSTOP"), reason="POSIX locks and signals"
)


def _busy(out, pid) -> str:
    return (
        f"ff-numpy: error: another run is writing to {out} (pid {pid}); wait for it or "
        "choose another --out\n"
    )


@pytest.fixture
def held(tmp_path):
    """A run stopped in its second batch of epoch 2 (epoch 1 saved), holding the lock of
    ``tmp_path / "run"``; killed with SIGKILL at the end if still there."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", HOOK_DRIVER, "batch", str(BATCHES + 2), "SIGSTOP"]
    proc = subprocess.Popen(
        [*cmd, *RUN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns once it has stopped itself
    assert os.WIFSTOPPED(status), proc.stderr.read()
    yield out, proc
    if proc.returncode is None:
        proc.kill()
        proc.wait()


@needs_mnist
@posix_locks
def test_a_second_run_into_a_busy_folder_is_refused_and_kill_9_leaves_no_stale_lock(
    held, capsys, monkeypatch
):
    out, proc = held
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # as the first run: an exact resume
    lock = out / train.LOCK_FILE
    assert lock.read_text() == f"{proc.pid}\n"
    saved = (out / "model.npz").read_bytes()
    second = subprocess.run(
        [sys.executable, "-m", "ff_numpy", *RUN, "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=120,
    )
    assert (second.returncode, second.stderr, second.stdout) == (2, _busy(out, proc.pid), "")
    for extra in (["--resume"], ["--overwrite"]):  # neither touches the folder
        assert cli.main([*RUN, "--out", str(out), *extra]) == 2
        assert capsys.readouterr().err == _busy(out, proc.pid)
    assert (out / "model.npz").read_bytes() == saved and lock.exists()
    with pytest.raises(train.FolderBusy, match=f"pid {proc.pid}"):  # from Python too
        experiments.get("supervised").run(train_args("supervised", out, *RUN[2:], "--resume"))

    proc.kill()  # SIGKILL: the lock file stays, the lock does not
    proc.wait()
    assert lock.read_text() == f"{proc.pid}\n"
    assert cli.main([*RUN, "--out", str(out), "--resume"]) == 0
    assert "nothing" not in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["epoch"] == 3
    assert not lock.exists()  # removed at the end


def test_the_lock_is_reentrant_removed_at_the_end_and_not_a_temporary(tmp_path):
    out = tmp_path / "new" / "run"
    with train.run_lock(out):
        lock = out / train.LOCK_FILE
        assert lock.read_text() == f"{os.getpid()}\n" or train.fcntl is None
        with train.run_lock(out), train.run_lock(str(out) + "/"):  # the same folder
            assert checkpoint.remove_stale_temporaries(out) == []
            (out / "model.npz").write_bytes(b"x")
        assert train.existing_run(out) == "a damaged model.npz"
    assert sorted(p.name for p in out.iterdir()) == ["model.npz"]
    with train.run_lock(tmp_path / "empty"):  # a folder it made and nothing was written to
        pass
    assert not (tmp_path / "empty").exists()


@needs_mnist
def test_a_lock_file_left_by_a_dead_process_blocks_nothing(tmp_path, capsys):
    """The file ``kill -9`` leaves (or any such file: a lock is held by a process, not
    by a file) neither refuses a run nor survives it."""
    out = tmp_path / "run"
    out.mkdir()
    (out / train.LOCK_FILE).write_text("999999999\n")
    assert cli.main([*RUN, "--epochs", "1", "--out", str(out)]) == 0
    (out / train.LOCK_FILE).write_text("999999999\n")
    assert cli.main([*RUN, "--epochs", "1", "--out", str(out)]) == 2  # a run, not a lock
    assert "already holds a finished run" in capsys.readouterr().err
    assert cli.main([*RUN, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    (out / train.LOCK_FILE).write_text("999999999\n")
    assert cli.main([*RUN, "--epochs", "1", "--out", str(out), "--resume"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "learning_curve.png",
        "metrics.json",
        "model.npz",
    ]
