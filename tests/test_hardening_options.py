"""Every bad option value is refused in one line before anything is read or written.

Each option states its type and range once (the checks of :mod:`ff_numpy.validate`, the
``type=`` of its declaration). A refusal names the option, the value and what is expected
(``ff-numpy: error: --lr must be a finite number >= 0, got nan``), exits with status 2,
and leaves the output folder uncreated; the same checks refuse a value given from Python.
The cases are drawn from the experiments' own parsers, so a new option is covered too.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import numpy as np
import pytest

from ff_numpy import cli, experiments, train
from ff_numpy.validate import (
    FLOAT32_MAX,
    Integer,
    OptionError,
    OptionParser,
    Real,
    check_options,
    memory_bytes,
)

#: The experiments whose every option is declared with a check of ff_numpy.validate.
OWN = ("supervised", "unsupervised", "local", "online", "backprop", "recurrent", "cifar10")
#: Experiments to leave out of the float cases while their own options do not use the
#: checks yet (their shared ones, from add_run_shape_arguments and add_ff_arguments, do).
PENDING: set[str] = set()
#: Not finite for float32: NaN, both infinities, and values that overflow it.
NON_FINITE = ("nan", "inf", "-inf", "1e39", "1e308")
#: Options that are not numbers (or are checked elsewhere).
NOT_NUMBERS = {"--out", "--data-dir"}


def _actions(name: str):
    return [a for a in experiments.parser(name)._actions if a.option_strings]


def _float_options(name: str) -> list[str]:
    return [
        a.option_strings[-1] for a in _actions(name) if a.type is float or isinstance(a.type, Real)
    ]


def _int_checks(name: str) -> list[tuple[str, Integer]]:
    return [(a.option_strings[-1], a.type) for a in _actions(name) if isinstance(a.type, Integer)]


FLOAT_CASES = [
    (name, option, value)
    for name in sorted(set(experiments.names()) - PENDING)
    for option in _float_options(name)
    for value in NON_FINITE
]
INT_CASES = [
    (name, option, value)
    for name in OWN
    for option, check in _int_checks(name)
    for value in (
        "1.5",
        "x",
        *([str(check.lo - 1)] if check.lo is not None else []),
        *([str(check.hi + 1)] if check.hi is not None else []),
    )  # fmt: skip
]


@pytest.fixture(autouse=True)
def _no_data(monkeypatch):
    """A case that is not refused fails at once instead of training: reading data fails."""

    def load_data(args):
        raise AssertionError("the options were accepted: data is being read")

    for name in experiments.names():
        monkeypatch.setattr(experiments.get(name), "load_data", staticmethod(load_data))


def _refused(argv, capsys) -> str:
    """Run the command line in this process; it must refuse in one line (status 2)."""
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("ff-numpy") and "Traceback" not in err, err
    return err


def test_every_option_of_our_experiments_declares_its_check():
    """No option of these experiments is a bare ``int`` or ``float``: each has a check
    (finite, range, memory), so no value reaches the library unchecked."""
    for name in OWN:
        for action in _actions(name):
            assert action.type not in (int, float), (name, action.option_strings)


@pytest.mark.parametrize("name, option, value", FLOAT_CASES)
def test_non_finite_float_options_are_refused(name, option, value, tmp_path, capsys):
    out = tmp_path / "run"
    err = _refused(["train", name, option, value, "--out", str(out)], capsys)
    assert option in err, err
    assert value in err or repr(float(value)) in err, err
    assert not out.exists()  # refused before anything was read or written


@pytest.mark.parametrize("name, option, value", INT_CASES)
def test_bad_integer_options_are_refused(name, option, value, tmp_path, capsys):
    out = tmp_path / "run"
    (action,) = [a for a in _actions(name) if a.option_strings[-1] == option]
    rest = ["3"] * ((action.nargs or 1) - 1) if isinstance(action.nargs, int) else []
    err = _refused(["train", name, option, value, *rest, "--out", str(out)], capsys)
    assert option in err and value in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["supervised", "--lr", "nan"], "--lr must be a finite number >= 0, got nan"),
        (
            ["supervised", "--readout-lr=-inf"],
            "--readout-lr must be a finite number >= 0, got -inf",
        ),
        (["supervised", "--theta", "0"], "--theta must be > 0, got 0"),
        (["supervised", "--theta", "-1e308"], "--theta must be a finite number > 0, got -1e308"),
        (["supervised", "--momentum", "1"], "--momentum must be in [0, 1), got 1"),
        (["supervised", "--seed", "-1"], "--seed must be >= 0, got -1"),
        (["supervised", "--eval-every", "0"], "--eval-every must be >= 1, got 0"),
        (["supervised", "--eval-every", "-1"], "--eval-every must be >= 1, got -1"),
        (["recurrent", "--eval-every", "0"], "--eval-every must be >= 1, got 0"),
        (["supervised", "--jitter", "1000000"], "--jitter must be in 0..27"),
        (["supervised", "--dropout", "1"], "--dropout must lie in [0, 1), got 1"),
        (["supervised", "--hidden", "10", "0"], "--hidden needs positive layer sizes, got 0"),
        (["supervised", "--box-levels", "1"], "--box-levels must be >= 2, got 1"),
        (["unsupervised", "--hybrid-blur", "1000000000"], "--hybrid-blur must be in 0..1000"),
        (["unsupervised", "--score-layers", "5"], "--score-layers must index the hidden layers"),
        (["online", "--margin", "inf"], "--margin must lie in (0, 1), got inf"),
        (["online", "--chunk", "0"], "--chunk must be >= 1, got 0"),
        (["backprop", "--lr", "1e39"], "--lr must be a finite number > 0, got 1e39"),
        (["supervised", "--loss", "symba", "--alpha", "nan"], "--alpha must be finite and > 0"),
        (["supervised", "--data-dir", "/no/such/folder"], "--data-dir must be an existing folder"),
    ],
)
def test_refusals_name_the_option_the_value_and_what_is_expected(argv, message, tmp_path, capsys):
    err = _refused(["train", *argv, "--out", str(tmp_path / "run")], capsys)
    assert f"ff-numpy: error: {message}" in err, err


def test_sizes_that_cannot_fit_in_memory_are_refused_before_allocating(tmp_path, capsys):
    """A layer too large for the machine, alone or with its neighbours, is refused by
    arithmetic on the sizes: nothing is allocated (a MemoryError would be too late)."""
    out = str(tmp_path / "run")
    err = _refused(["train", "supervised", "--hidden", "1000000000000", "--out", out], capsys)
    assert "--hidden must be at most" in err and "of memory" in err and "1000000000000" in err
    side = int(math.sqrt(memory_bytes() / 8)) + 1  # a side x side layer pair cannot fit
    err = _refused(["train", "backprop", "--hidden", str(side), str(side), "--out", out], capsys)
    assert f"--hidden {side} {side}: the weights and optimiser state need at least" in err
    err = _refused(["evaluate", "m.npz", "--shifts", "-1"], capsys)
    assert "--shifts must be >= 0, got -1" in err


@pytest.mark.parametrize("name", OWN)
def test_the_same_checks_refuse_values_given_from_python(name):
    """``default_args(name, lr=nan)`` then ``run`` is refused as the command line is:
    a ValueError naming the option (Experiment.check, before any data is loaded)."""
    exp = experiments.get(name)
    option = _float_options(name)[0]
    dest = option[2:].replace("-", "_")
    args = experiments.default_args(name, out="unused", **{dest: float("nan")})
    with pytest.raises(ValueError, match=f"^{option} must .*, got nan$"):
        exp.check(args)
    with pytest.raises(ValueError, match="--epochs must be an integer >= 1, got 2.5"):
        exp.check(experiments.default_args(name, epochs=2.5))
    with pytest.raises(ValueError, match="--data-dir must be an existing folder"):
        exp.check(experiments.default_args(name, data_dir="/no/such/folder"))
    exp.check(experiments.default_args(name))  # the defaults pass


def test_library_constructors_name_the_bad_argument():
    from ff_numpy.experiments.online_task import check_method_options
    from ff_numpy.experiments.supervised import SupervisedTask

    x, y = np.zeros((4, 784), np.float32), np.zeros(4, np.int64)
    for kwargs, name in (({"eval_every": 0}, "eval_every"), ({"jitter": -1}, "jitter"),
                         ({"eval_size": -1}, "eval_size")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^{name} must be >= "):
            SupervisedTask(None, x, y, x, y, x, y, None, None, **kwargs)
    with pytest.raises(ValueError, match="--margin must lie in"):
        check_method_options("oneshot", "random", "always", float("nan"), 0.5)
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1"):
        train.fit(None, "unused", config={}, epochs=0, batch_size=1, seed=0)


def test_the_checks_themselves():
    """Float32 overflow counts as infinite; ints must be ints; the parser reads negative
    numbers in any notation as values; a Python value is checked as its text would be."""
    real = Real(0, 1, hi_open=True)
    assert real("0.5") == 0.5
    for text in ("nan", "inf", "-inf", "1e39", str(FLOAT32_MAX * 1.01), "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number in"):
            real(text)
    assert Real()(str(FLOAT32_MAX)) == FLOAT32_MAX  # the largest float32 itself is finite
    with pytest.raises(OptionError, match=r"^--p must be in \[0, 1\), got 1.0$"):
        real.check(1.0, "--p")
    assert Integer(1).problem(True) and Integer(1).problem(2.0) and not Integer(1).problem(2)
    p = OptionParser(prog="t")
    p.add_argument("--x", type=Real())
    for text in ("-inf", "-1e308", "-nan", "-Infinity"):
        with pytest.raises(OptionError, match=f"^--x must be a finite number, got {text}$"):
            p.parse_args(["--x", text])
    assert p.parse_args(["--x", "-1.5e3"]).x == -1500.0
    check_options(p, argparse.Namespace(x=None))  # None: the option was not given
    with pytest.raises(OptionError, match="--x"):
        check_options(p, argparse.Namespace(x=math.inf))


def test_one_line_from_a_real_process(tmp_path):
    """The exact line a user sees, from ``python -m ff_numpy``."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ff_numpy",
            "train",
            "supervised",
            "--hidden",
            "50",
            "--lr",
            "nan",
            "--out",
            str(tmp_path / "run"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == "ff-numpy: error: --lr must be a finite number >= 0, got nan\n"
    assert proc.stdout == "" and not (tmp_path / "run").exists()
