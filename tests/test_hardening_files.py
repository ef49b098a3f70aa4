"""Files we read are checked, files we write are whole, strict and alike.

Damaged checkpoints (``evaluate`` and ``--resume``) and damaged ``metrics.json`` files
(``plot``) are refused in one line naming the file and the problem (exit status 2); a
folder holding a run is not overwritten without ``--overwrite``; ``metrics.json`` is
strict JSON; every output has the mode of an ordinary file; a start removes the
temporaries of a killed save; a diverging run stops in one line. The runs are tiny (a
20 x 20 net on 300 images, in this process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import needs_mnist, rewrite_checkpoint

from ff_numpy import checkpoint, cli, plots, train

TINY = "--hidden 20 20 --train-size 300 --epochs 2 --eval-every 2 --no-progress".split()
BOX = [*TINY, "--black-box", "0"]


def _refused(argv, capsys, *needles) -> str:
    """``ff-numpy ARGV`` in this process: status 2, one line holding every needle."""
    assert cli.main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def box_run(tmp_path_factory):
    """A finished 2-epoch supervised run with a black box (its permutation is saved)."""
    out = tmp_path_factory.mktemp("box")
    assert cli.main(["train", "supervised", *BOX, "--out", str(out)]) == 0
    return out


def _copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


# ----------------------------------------------------------------------------- checkpoints
def _nan_weight(a, m):
    a["layer0.W"][3, 4] = np.nan


def _inf_readout(a, m):
    a["readout.V"][0, 0] = np.inf


def _bad_perm(a, m):
    a["box0.perm"][:2] = 0  # a repeated index: not a permutation


def _meta_list(a, m):
    return [m]


def _no_hidden(a, m):
    del m["config"]["model"]["hidden"]


def _huge_hidden(a, m):
    m["config"]["model"]["hidden"] = [10**12, 20]


def _score_out_of_range(a, m):
    m["config"]["model"]["score_layers"] = [7]


def _other_shape(a, m):
    m["config"]["model"]["hidden"] = [20, 30]


def _model_not_dict(a, m):
    m["config"]["model"] = [1, 2]


def _drop_weight(a, m):
    del a["layer1.b"]


DAMAGED = {
    "nan weight": (_nan_weight, "holds 1 NaN or infinite values in array 'layer0.W'"),
    "inf readout": (_inf_readout, "NaN or infinite values in array 'readout.V'"),
    "perm not a permutation": (_bad_perm, "'box0.perm' that is not a permutation"),
    "metadata a JSON list": (_meta_list, "malformed metadata: a JSON list"),
    "no config.model.hidden": (_no_hidden, "malformed model configuration"),
    "hidden too large": (_huge_hidden, "more than this machine's"),
    "score layer out of range": (_score_out_of_range, "malformed model configuration"),
    "shapes not the configuration's": (_other_shape, "does not match its configuration"),
    "model config a list": (_model_not_dict, "holds no FFNet configuration"),
    "weight missing": (_drop_weight, "lacks arrays its metadata lists: layer1.b"),
}


@needs_mnist
@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_evaluate_refuses_a_damaged_checkpoint(case, box_run, tmp_path, capsys):
    damage, message = DAMAGED[case]
    path = rewrite_checkpoint(box_run / "model.npz", tmp_path / "model.npz", damage)
    _refused(["evaluate", path, "--no-progress"], capsys, path, message)


@needs_mnist
def test_evaluate_refuses_files_that_are_not_checkpoints(box_run, tmp_path, capsys):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    _refused(["evaluate", junk], capsys, junk, "not a readable .npz")
    half = tmp_path / "half.npz"  # a save cut short (what the rename prevents)
    half.write_bytes((box_run / "model.npz").read_bytes()[:5000])
    _refused(["evaluate", half], capsys, half)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    _refused(["evaluate", plain], capsys, plain, "has no metadata")
    text = rewrite_checkpoint(box_run / "model.npz", tmp_path / "text.npz", meta_text="{oops")
    _refused(["evaluate", text], capsys, text, "unreadable metadata")
    other = rewrite_checkpoint(box_run / "model.npz", tmp_path / "o.npz", _set_experiment)
    _refused(["evaluate", other], capsys, other, "unknown experiment 'nonsense'")
    listed = rewrite_checkpoint(box_run / "model.npz", tmp_path / "l.npz", _config_list)
    _refused(["evaluate", listed], capsys, listed, "does not say which experiment")
    _refused(["evaluate", box_run / "model.npz", "--shifts", "30"], capsys, "--shifts", "30")


def _set_experiment(a, m):
    m["config"]["experiment"] = "nonsense"


def _config_list(a, m):
    m["config"] = [m["config"]]


def _drop_slot(a, m):
    del a["opt/layer0.W"]


def _drop_slot_and_its_name(a, m):
    """A slot gone from the arrays and from array_names: only the slot record tells."""
    del a["opt/layer1.W"]
    m["array_names"].remove("opt/layer1.W")


def _slots_not_a_list(a, m):
    m["optimizer_slots"] = "opt/layer0.W"


def _slot_shape(a, m):
    a["opt/layer0.W"] = np.zeros((3, 3), np.float32)


def _history_short(a, m):
    m["history"] = m["history"][:1]


def _rng_damaged(a, m):
    m["rng_state"] = {"bit_generator": "PCG64", "state": "oops"}


def _no_rng(a, m):
    del m["rng_state"]


RESUME_DAMAGED = {
    "optimiser slot missing": (_drop_slot, "lacks arrays its metadata lists: opt/layer0.W"),
    "optimiser slot of another shape": (_slot_shape, "optimiser slot opt/layer0.W has shape"),
    "optimiser slot and its array name missing": (
        _drop_slot_and_its_name,
        "lacks the optimiser slot opt/layer1.W its metadata records",
    ),
    "slot record not a list": (_slots_not_a_list, "optimizer_slots is not a list of names"),
    "history shorter than the epochs": (_history_short, "history does not hold its 2 epochs"),
    "random state damaged": (_rng_damaged, "random generator state is damaged"),
    "random state missing": (_no_rng, "no random generator state"),
    "nan weight": (_nan_weight, "NaN or infinite"),
}


@needs_mnist
@pytest.mark.parametrize("case", sorted(RESUME_DAMAGED))
def test_resume_refuses_a_damaged_checkpoint(case, box_run, tmp_path, capsys):
    damage, message = RESUME_DAMAGED[case]
    run = _copy_run(box_run, tmp_path / "run")
    rewrite_checkpoint(run / "model.npz", run / "model.npz", damage)
    before = (run / "model.npz").read_bytes()
    argv = ["train", "supervised", *BOX, "--resume", "--out", run]
    _refused(argv, capsys, run / "model.npz", message)
    assert (run / "model.npz").read_bytes() == before  # left as it was


@needs_mnist
def test_a_checkpoint_records_its_optimiser_slots_and_an_old_one_resumes_without(
    box_run, tmp_path, capsys
):
    """New checkpoints list their optimiser slots; one written before that record (and
    before array_names) resumes as it always did, even with a slot gone, which for it
    cannot be told from a slot never created."""
    arrays, meta = checkpoint.load(box_run / "model.npz")
    slots = meta["optimizer_slots"]
    assert slots == sorted(k for k in arrays if k.startswith(("opt/", "readout_opt/")))
    assert "opt/layer0.W" in slots and "readout_opt/readout.V" in slots

    def old(a, m):  # and made to look one epoch earlier, so that the resume trains
        del m["optimizer_slots"], m["array_names"], a["opt/layer1.W"]
        m["epochs_done"], m["history"] = 1, m["history"][:1]

    run = _copy_run(box_run, tmp_path / "run")
    rewrite_checkpoint(run / "model.npz", run / "model.npz", old)
    argv = ["train", "supervised", *BOX, "--resume", "--out", run]
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    arrays, meta = checkpoint.load(run / "model.npz")
    assert meta["epochs_done"] == 2 and meta["optimizer_slots"] == slots


# ----------------------------------------------------------------------------- metrics.json
DAMAGED_METRICS = {
    "empty object": ("{}", "history is missing"),
    "a list": ("[]", "a JSON list, expected an object"),
    "a string": ('"text"', "a JSON string"),
    "not JSON": ("{", "is not valid JSON"),
    "empty file": ("", "is not valid JSON"),
    "string history": ('{"history": "abc"}', "history is a JSON string"),
    "entry without epoch": ('{"history": [{"val_error_softmax": 0.1}]}', "no integer epoch"),
    "list config": ('{"config": [1], "history": []}', "config is a JSON list"),
    "entry a number": ('{"history": [3]}', "history entry 0 is a JSON number"),
    "error a string": ('{"history": [{"epoch": 1, "val_error_softmax": "x"}]}', "not a number"),
    "loss a list": ('{"history": [{"epoch": 1, "train_loss": [1]}]}', "train_loss"),
    "online without examples": (
        '{"config": {"experiment": "online"}, "history": [{"epoch": 1}]}',
        "no integer examples_seen",
    ),
    "final error a string": ('{"history": [], "test_error_softmax": "low"}', "not a number"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_METRICS))
def test_plot_refuses_a_damaged_metrics_file(case, tmp_path, capsys):
    text, message = DAMAGED_METRICS[case]
    (tmp_path / "metrics.json").write_text(text)
    _refused(["plot", tmp_path], capsys, tmp_path / "metrics.json", message)
    good = tmp_path / "good"
    good.mkdir()
    (good / "metrics.json").write_text(json.dumps({"history": [{"epoch": 1}]}))
    argv = ["plot", good, tmp_path, "--out", tmp_path / "both.png"]
    _refused(argv, capsys, tmp_path / "metrics.json", message)  # names the bad one
    assert not list(tmp_path.glob("*.png"))


def test_binary_metrics_file_is_refused(tmp_path, capsys):
    (tmp_path / "metrics.json").write_bytes(b"\xff\xfe\x00garbage")
    _refused(["plot", tmp_path], capsys, tmp_path / "metrics.json", "is not valid JSON")


def test_plot_draws_nulls_as_gaps_and_prints_what_it_wrote(tmp_path, capsys):
    """A null (a number that was not finite) is left out; ``--out`` a folder writes the
    figure inside it, ``--out NAME`` without extension writes NAME.png: either way the
    printed path is the file written."""
    hist = [
        {"epoch": 1, "val_error_softmax": None, "train_loss": {"layer0": None}},
        {"epoch": 2, "val_error_softmax": 0.2, "train_loss": {"layer0": 0.5}},
    ]
    metrics = {"config": {"experiment": "supervised"}, "history": hist, "test_error": None}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    for out, written in (
        (None, tmp_path / "learning_curve.png"),
        (tmp_path / "figs", tmp_path / "figs" / "learning_curve.png"),
        (tmp_path / "curve", tmp_path / "curve.png"),
        (tmp_path / "curve.svg", tmp_path / "curve.svg"),
    ):
        if out == tmp_path / "figs":
            out.mkdir()
        argv = ["plot", tmp_path] + ([] if out is None else ["--out", out])
        assert cli.main([str(a) for a in argv]) == 0
        assert capsys.readouterr().out.strip() == str(written)
        assert written.stat().st_size > 1000
    assert not (tmp_path / "figs.png").exists()


# ----------------------------------------------------------------------------- writing
class _Task:
    """A :class:`ff_numpy.train.Task` with one weight; ``evaluate`` reports a NaN."""

    n_train = 4

    def __init__(self, w=1.0):
        self.w = np.full(2, w)

    def train_batch(self, idx, rng, lr_scale):
        return {"loss": float(rng.random())}

    def evaluate(self, epoch, n_epochs):
        return {"val_error": float("nan"), "val_margin": float("-inf")}

    def final_metrics(self):
        return {"test_error": float("inf")}

    def state(self):
        return {"w": self.w}

    def load_state(self, arrays):
        self.w = arrays["w"].copy()


def _fit(out, epochs=2, resume=False, task=None):
    kw = dict(config={"x": 1}, batch_size=2, seed=0, progress=False)
    return train.fit(task or _Task(), out, epochs=epochs, resume=resume, **kw)


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_json_is_strict_json_with_a_note(tmp_path):
    _fit(tmp_path)
    saved = _strict((tmp_path / "metrics.json").read_text())
    assert saved["history"][0]["val_error"] is None and saved["test_error"] is None
    (note,) = saved["notes"]
    assert "written as null" in note and "history/0/val_error (nan)" in note
    assert "test_error (inf)" in note and "history/1/val_margin (-inf)" in note
    clean = _strict(json.dumps(checkpoint.strict_json({"a": [1.0, np.float32(2)]})[0]))
    assert clean == {"a": [1.0, 2.0]}


def test_every_output_has_the_mode_of_an_ordinary_file(tmp_path):
    old = os.umask(0o022)
    try:
        _fit(tmp_path / "run")
        plots.plot_run(tmp_path / "run")
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    finally:
        os.umask(old)
    assert modes == {n: 0o644 for n in ("model.npz", "metrics.json", "learning_curve.png")}


def test_a_start_removes_the_temporaries_of_a_killed_save(tmp_path):
    """Temporaries named as our saves name them, whose process has ended, are removed
    at the start of a run; a running process's and other files stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = [f"model.npz.{dead}.abcd_123.tmp", "metrics.json.k2j4h5g6.tmp",
             f"learning_curve.png.{dead}.zzzzzzzz.tmp"]  # fmt: skip
    kept = [f"model.npz.{os.getpid()}.abcdefgh.tmp", "notes.tmp", "model.npz.tmp"]
    tmp_path.mkdir(exist_ok=True)
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
    _fit(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*kept, "metrics.json", "model.npz"])


def test_resume_rewrites_a_metrics_file_that_lags_the_checkpoint(tmp_path):
    """After a kill between an epoch's two writes, metrics.json is one epoch behind
    model.npz; a resumed run rewrites it from the checkpoint before training on."""
    _fit(tmp_path, epochs=2)
    lagging = json.loads((tmp_path / "metrics.json").read_text())
    lagging["history"] = lagging["history"][:1]
    (tmp_path / "metrics.json").write_text(json.dumps(lagging))

    class Stop(_Task):
        def train_batch(self, idx, rng, lr_scale):
            raise KeyboardInterrupt  # stopped at once, as by a kill

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, epochs=3, resume=True, task=Stop())
    repaired = _strict((tmp_path / "metrics.json").read_text())
    assert [r["epoch"] for r in repaired["history"]] == [1, 2]


def test_a_diverging_run_stops_in_one_line_keeping_the_last_finite_epoch(tmp_path, capsys):
    class Diverging(_Task):
        def train_batch(self, idx, rng, lr_scale):
            if self.w[0] > 2:
                self.w[:] = np.nan
            self.w += 1
            return {"loss": float(self.w[0])}

    with pytest.raises(ValueError, match="training diverged in epoch 1: w holds NaN"):
        _fit(tmp_path / "a", epochs=2, task=Diverging(2.5))
    assert not (tmp_path / "a" / "model.npz").exists()
    with pytest.raises(ValueError, match="in epoch 2: .* keeps epoch 1"):
        _fit(tmp_path / "b", epochs=3, task=Diverging(0.0))
    assert checkpoint.read_meta(tmp_path / "b" / "model.npz")["epochs_done"] == 1


@needs_mnist
def test_cli_diverging_run_is_one_line_without_warnings(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "ff_numpy",
            "train",
            "supervised",
            *TINY,
            "--lr",
            "1e30",
            "--out",
            str(tmp_path / "run"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ff-numpy: error: training diverged in epoch 1"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "nothing was saved" in proc.stderr


# ----------------------------------------------------------------------------- overwrite
@needs_mnist
def test_a_finished_run_is_not_overwritten_without_overwrite(box_run, tmp_path, capsys):
    run = _copy_run(box_run, tmp_path / "run")
    before = (run / "model.npz").read_bytes()
    argv = ["train", "supervised", *BOX, "--out", run]
    _refused(argv, capsys, run, "holds a finished run (2 of 2 epochs)", "--resume", "--overwrite")
    _refused([*argv, "--resume", "--overwrite"], capsys, "not both")
    assert (run / "model.npz").read_bytes() == before
    _refused(["train", "supervised", *TINY, "--out", run], capsys, "finished run")
    # an unfinished one: refused the same way, and kept
    rewrite_checkpoint(run / "model.npz", run / "model.npz", _one_epoch)
    _refused(argv, capsys, "holds an unfinished run (epoch 1 of 2 saved)")
    # --overwrite replaces it by a run with other options
    other = ["train", "supervised", *TINY, "--seed", "1", "--out", run, "--overwrite"]
    assert cli.main([str(a) for a in other]) == 0
    assert json.loads((run / "metrics.json").read_text())["config"]["seed"] == 1
    assert checkpoint.read_meta(run / "model.npz")["epochs_done"] == 2


def _one_epoch(a, m):
    m["epochs_done"] = 1
    m["history"] = m["history"][:1]


# ----------------------------------------------------------------------------- no traceback
@pytest.mark.parametrize(
    "error, status, message",
    [
        (KeyError("hidden"), 1, "unexpected KeyError: 'hidden' (a bug; set FF_NUMPY_DEBUG=1"),
        (MemoryError("Unable to allocate 3 TiB"), 2, "not enough memory for this run"),
        (ValueError("two\nlines"), 2, "ff-numpy: error: two lines"),
    ],
)
def test_no_traceback_reaches_the_user(error, status, message, tmp_path, capsys, monkeypatch):
    """Whatever goes wrong inside, the user sees one line; FF_NUMPY_DEBUG=1 shows the
    traceback of an unexpected error."""
    from ff_numpy.experiments.supervised import Supervised

    def run(args):
        raise error

    monkeypatch.setattr(Supervised, "run", staticmethod(run))
    argv = ["train", "supervised", *TINY, "--out", str(tmp_path / "run")]
    assert cli.main(argv) == status
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    if status == 1:
        monkeypatch.setenv("FF_NUMPY_DEBUG", "1")
        with pytest.raises(KeyError):
            cli.main(argv)


@needs_mnist
def test_a_backprop_checkpoint_is_checked_the_same_way(tmp_path, capsys):
    """The checks of checkpoint.load hold for every model: here a backprop net's box."""
    run = tmp_path / "bp"
    argv = ["train", "backprop", "--hidden", "20", "20", "--train-size", "300", "--epochs", "1",
            "--black-box", "0", "--no-progress", "--out", str(run)]  # fmt: skip
    assert cli.main(argv) == 0
    capsys.readouterr()

    def bad_perm(a, m):
        a["box.perm"] = a["box.perm"][::-1].copy() + 1  # n is out of range

    def nan_slot(a, m):
        a["opt/layer1.W"][0, 0] = np.nan

    cases = [(bad_perm, "'box.perm' that is not a permutation"),
             (nan_slot, "NaN or infinite values in array 'opt/layer1.W'")]  # fmt: skip
    for damage, message in cases:
        path = rewrite_checkpoint(run / "model.npz", tmp_path / "m.npz", damage)
        _refused(["evaluate", path], capsys, path, message)
