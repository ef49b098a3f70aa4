"""End to end on real MNIST: accuracy, determinism, exact resume, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from helpers import interrupted_after, needs_mnist, numbers, train_args

from ff_numpy import checkpoint, cli, experiments, train
from ff_numpy.data import find_data_dir
from ff_numpy.experiments.saved import load_ffnet

SMALL = (
    "--hidden 500 500 --train-size 10000 --epochs 5 --eval-every 5 --negatives hard --lr 0.01"
).split()


def _args(out, extra=()):
    """Parse ``ff-numpy train supervised`` options exactly as the command line does."""
    return train_args("supervised", out, *SMALL, *extra)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    t0 = time.perf_counter()
    metrics = experiments.get("supervised").run(_args(out))
    return out, metrics, time.perf_counter() - t0


@needs_mnist
def test_small_net_learns_mnist_within_a_minute(small_run):
    out, metrics, seconds = small_run
    assert metrics["test_error_goodness"] < 0.10, metrics["test_error_goodness"]
    assert metrics["test_error_softmax"] < 0.10, metrics["test_error_softmax"]
    assert seconds < 60, f"2x500 on 10,000 images for 5 epochs took {seconds:.1f} s"
    for name in ("model.npz", "metrics.json", "learning_curve.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["hidden"] == [500, 500]
    assert len(saved["history"]) == 5
    assert "val_error_softmax" in saved["history"][0]
    assert "val_error_goodness" in saved["history"][4]
    for r in saved["history"]:  # CPU time of the batches: positive, at most threads x wall
        assert 0 < r["train_cpu_seconds"] <= 8 * r["train_seconds"] + 0.1
        assert r["cores"] >= 1 and "blas_threads" in r  # which epochs ran how
        assert r["code_commit"] == train.code_commit()  # ... and on which code
    assert metrics["total_train_cpu_seconds"] == sum(
        r["train_cpu_seconds"] for r in saved["history"]
    )


@needs_mnist
def test_evaluate_recomputes_test_errors(small_run, capsys):
    out, metrics, _ = small_run
    assert cli.main(["evaluate", str(out / "model.npz")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["test_error_goodness"] == metrics["test_error_goodness"]
    assert shown["test_error_softmax"] == metrics["test_error_softmax"]


@needs_mnist
def test_evaluate_with_shifts_adds_the_shift_averaged_errors(small_run, capsys):
    out, metrics, _ = small_run
    assert cli.main(["evaluate", str(out / "model.npz"), "--shifts", "1", "--no-progress"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["test_error_goodness"] == metrics["test_error_goodness"]
    for key in ("test_error_goodness_shifts1", "test_error_softmax_shifts1"):
        # this net never saw a shifted image, yet its 9 one-pixel shifts still classify
        assert shown[key] < 0.10, (key, shown[key])
    # refused by the option's check, in one line
    assert cli.main(["evaluate", str(out / "model.npz"), "--shifts", "-1"]) == 2
    assert "--shifts must be >= 0, got -1" in capsys.readouterr().err


@needs_mnist
def test_interrupted_then_resumed_equals_uninterrupted(small_run, tmp_path):
    from ff_numpy.experiments.supervised import SupervisedTask

    _, reference, _ = small_run
    with interrupted_after(SupervisedTask, 2 * 100 + 37):  # 100 batches an epoch: in epoch 3
        experiments.get("supervised").run(_args(tmp_path))
    resumed = experiments.get("supervised").run(_args(tmp_path, ["--resume"]))
    assert numbers(resumed) == numbers(reference)


@needs_mnist
def test_dropout_and_jitter_resume_exactly_and_change_the_run(tmp_path):
    """``--dropout`` draws its masks from the run's generator, so an interrupted and
    resumed run with dropout (and jitter) repeats the uninterrupted one; the option is
    recorded, changes the numbers, and leaves evaluation without dropout."""
    from ff_numpy.experiments.supervised import SupervisedTask

    tiny = [*"--train-size 5000 --epochs 3 --hidden 200 200 --jitter 1".split(), "--no-progress"]
    run = experiments.get("supervised").run
    plain = run(_args(tmp_path / "plain", tiny))
    ref = run(_args(tmp_path / "ref", [*tiny, "--dropout", "0.2"]))
    with interrupted_after(SupervisedTask, 50 + 17):  # 50 batches an epoch: in epoch 2
        run(_args(tmp_path / "cut", [*tiny, "--dropout", "0.2"]))
    resumed = run(_args(tmp_path / "cut", [*tiny, "--dropout", "0.2", "--resume"]))
    assert numbers(resumed) == numbers(ref)
    assert numbers(ref) != numbers(plain)
    assert ref["config"]["dropout"] == 0.2 and ref["config"]["model"]["dropout"] == 0.2
    # it learns about as fast as without dropout (softmax about 0.17 and 0.15 here)
    assert ref["test_error_softmax"] < 0.25 and plain["test_error_softmax"] < 0.25
    shown = experiments.get("supervised").evaluate(tmp_path / "ref" / "model.npz", _evaluate_args())
    assert shown["test_error_goodness"] == ref["test_error_goodness"]  # no dropout in tests


def _evaluate_args():
    """What ``ff-numpy evaluate`` passes: data from the environment, no shifts."""
    import argparse

    return argparse.Namespace(data_dir=None, progress=False, shifts=0)


def test_cli_refuses_a_dropout_outside_0_to_1(tmp_path, capsys):
    for p in ("1", "-0.5"):
        argv = ["train", "supervised", "--dropout", p, "--out", str(tmp_path)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "--dropout must lie in [0, 1)" in err and "Traceback" not in err


@needs_mnist
def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    tiny = ["--train-size", "2000", "--epochs", "2", "--hidden", "100", "100"]
    run = experiments.get("supervised").run
    a = run(_args(tmp_path / "a", tiny))
    b = run(_args(tmp_path / "b", tiny))
    c = run(_args(tmp_path / "c", [*tiny, "--seed", "1"]))
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(c)


@needs_mnist
def test_resume_with_other_options_is_refused(small_run, capsys):
    out, _, _ = small_run
    argv = ["train", "supervised", *SMALL, "--lr", "0.5", "--resume", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr" in err and "Traceback" not in err


def test_cli_errors_are_one_line(tmp_path):
    for argv in (
        ["train", "nonsense", "--out", str(tmp_path)],
        ["train", "supervised", "--objective", "mean", "--out", str(tmp_path)],
        ["train", "supervised", "--bogus-option", "--out", str(tmp_path)],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "ff_numpy", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_reports_bad_model_and_bad_train_size(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    if find_data_dir() is not None:
        argv = ["train", "supervised", "--train-size", "0", "--out", str(tmp_path)]
        assert cli.main(argv) == 2
        assert "--train-size" in capsys.readouterr().err


def test_help_lists_experiments():
    proc = subprocess.run(
        [sys.executable, "-m", "ff_numpy", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "supervised" in proc.stdout


def test_plot_command_redraws_curve(tmp_path):
    metrics = {
        "config": {"experiment": "supervised"},
        "history": [
            {"epoch": 1, "val_error_softmax": 0.1, "train_loss": {"layer0": 1.0}},
            {
                "epoch": 2,
                "val_error_softmax": 0.05,
                "val_error_goodness": 0.06,
                "train_loss": {"layer0": 0.5},
            },
        ],
        "test_error_goodness": 0.05,
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert np.isfinite(metrics["test_error_goodness"])


def test_default_args_and_model_loading_errors(tmp_path):
    args = experiments.default_args("supervised", hidden=[10], epochs=2)
    assert args.hidden == [10] and args.epochs == 2 and args.lr == 0.003 and args.out is None
    with pytest.raises(ValueError, match="no option 'hiden'"):
        experiments.default_args("supervised", hiden=[10])
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.default_args("nonsense")
    from ff_numpy import checkpoint

    checkpoint.save(tmp_path / "m.npz", {"a": np.zeros(1)}, {"config": {}})
    with pytest.raises(ValueError, match="no FFNet configuration"):
        load_ffnet(tmp_path / "m.npz")
    assert cli.main(["train", "supervised"]) == 2  # no --out


def test_plot_overlays_several_runs(tmp_path, capsys):
    def run(folder, neg, errs):
        hist = [
            {"epoch": e + 1, "test_error_softmax": v, "test_error_goodness": v + 0.01}
            for e, v in enumerate(errs)
        ]
        cfg = {"experiment": "supervised", "hidden": [10], "negatives": neg, "seed": 0}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "metrics.json").write_text(
            json.dumps({"config": cfg, "history": hist})
        )
        return str(tmp_path / folder)

    a, b = run("hard", "hard", [0.1, 0.05]), run("random", "random", [0.2, 0.1])
    out = tmp_path / "both.png"
    assert cli.main(["plot", a, b, "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["plot", a, b]) == 2
    assert "needs --out" in capsys.readouterr().err
    from ff_numpy.plots import plot_comparison, run_label

    named = plot_comparison([a, b], tmp_path / "named.png", labels=["A", "B"], kinds=["goodness"])
    assert named.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="one label per run"):
        plot_comparison([a, b], tmp_path / "x.png", labels=["A"])
    with pytest.raises(ValueError, match="unknown kinds"):
        plot_comparison([a, b], tmp_path / "x.png", kinds=["goodnes"])
    with pytest.raises(ValueError, match="none of the runs"):  # no backprop errors here
        plot_comparison([a, b], tmp_path / "x.png", kinds=["backprop"])
    assert "dropout 0.1" in run_label({"config": {"experiment": "supervised", "dropout": 0.1}})


@needs_mnist
def test_jittered_training_runs_and_is_recorded(tmp_path):
    args = _args(
        tmp_path, ["--jitter", "2", "--train-size", "2000", "--epochs", "1", "--hidden", "50", "50"]
    )
    metrics = experiments.get("supervised").run(args)
    assert metrics["config"]["jitter"] == 2
    assert metrics["test_error_softmax"] < 0.9


@pytest.mark.parametrize(
    "env, threads",
    [({"OPENBLAS_NUM_THREADS": "1"}, 1), ({"OMP_NUM_THREADS": "2"}, 2), ({}, None)],
)
def test_each_epoch_records_the_blas_threads_and_cores(monkeypatch, env, threads):
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    where = train._where_it_ran()
    assert where["blas_threads"] == threads
    assert 1 <= where["cores"] <= (os.cpu_count() or 1)


class _CountingTask:
    """The smallest :class:`ff_numpy.train.Task`: one weight that counts the batches."""

    n_train = 6

    def __init__(self):
        self.w = np.zeros(1)

    def train_batch(self, idx, rng, lr_scale):
        self.w += 1
        return {"loss": float(rng.random())}

    def evaluate(self, epoch, n_epochs):
        return {}

    def final_metrics(self):
        return {"test_error": 0.0}

    def state(self):
        return {"w": self.w}

    def load_state(self, arrays):
        self.w = arrays["w"].copy()


def test_resume_with_another_blas_thread_count_warns(tmp_path, monkeypatch):
    """Resuming with the same thread setting is silent and continues the count; another
    setting still resumes but warns that the numbers will not repeat an uninterrupted run."""
    kw = dict(config={"x": 1}, batch_size=2, seed=0, progress=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    train.fit(_CountingTask(), tmp_path, epochs=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning with the same setting
        same = train.fit(_CountingTask(), tmp_path, epochs=2, resume=True, **kw)
    assert [r["blas_threads"] for r in same["history"]] == [1, 1]
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with pytest.warns(UserWarning, match="last trained with 1 BLAS threads, now 2"):
        other = train.fit(_CountingTask(), tmp_path, epochs=3, resume=True, **kw)
    assert [r["blas_threads"] for r in other["history"]] == [1, 1, 2]
    arrays, _ = checkpoint.load(tmp_path / "model.npz")
    assert arrays["w"][0] == 9  # 3 batches an epoch, 3 epochs, none repeated


def test_code_commit_names_the_version_and_the_commit_of_a_checkout(monkeypatch):
    """Every epoch's record says which code trained it: the version, and in a git
    checkout the commit (``.dirty`` with changed tracked files); without git (or outside
    a repository) the version alone."""
    import re
    import shutil
    from pathlib import Path

    import ff_numpy

    train.code_commit.cache_clear()
    got = train.code_commit()
    assert got.startswith(ff_numpy.__version__)
    root = Path(train.__file__).resolve().parent.parent
    if (root / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(re.escape(ff_numpy.__version__) + r"\+[0-9a-f]{7}(\.dirty)?", got), got
    train.code_commit.cache_clear()

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(train.subprocess, "run", no_git)
    assert train.code_commit() == ff_numpy.__version__
    train.code_commit.cache_clear()


def test_resume_on_other_code_warns(tmp_path, monkeypatch):
    """A run resumed on other code (another commit, or changed files) still resumes but
    says so; the same code is silent, and each epoch records the code it ran on."""
    kw = dict(config={"x": 1}, batch_size=2, seed=0, progress=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setattr(train, "code_commit", lambda: "0.1.0+aaaaaaa")
    train.fit(_CountingTask(), tmp_path, epochs=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on the same code
        train.fit(_CountingTask(), tmp_path, epochs=2, resume=True, **kw)
    monkeypatch.setattr(train, "code_commit", lambda: "0.1.0+bbbbbbb.dirty")
    with pytest.warns(
        UserWarning, match=r"last trained on code 0\.1\.0\+aaaaaaa, now 0\.1\.0\+bbb"
    ):
        other = train.fit(_CountingTask(), tmp_path, epochs=3, resume=True, **kw)
    codes = [r["code_commit"] for r in other["history"]]
    assert codes == ["0.1.0+aaaaaaa", "0.1.0+aaaaaaa", "0.1.0+bbbbbbb.dirty"]
