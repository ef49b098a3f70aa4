"""Option groups the experiments share, their defaults, and their checks.

An experiment's ``add_arguments`` builds its command line from these groups
(:func:`add_run_shape_arguments`, :func:`add_ff_arguments`, ...), changing defaults and
help texts where its recipe differs. Every option states its type and range once, as the
``type=`` of its declaration (the checks of :mod:`ff_numpy.validate`: finite numbers,
ranges, sizes that fit in memory), so a bad value is refused in one line naming the
option, the value and what is expected, from the command line and from Python alike
(:meth:`~ff_numpy.experiments.base.Experiment.run` checks the options of a namespace it
is given). What depends on several options is checked by the experiment's ``check_args``
(:func:`check_run_shape`, :func:`check_ranges`, :func:`check_net_memory`).
"""

from __future__ import annotations

import argparse

import numpy as np

from ff_numpy.loss import LOSSES
from ff_numpy.negatives import WRONG_LABELS
from ff_numpy.norm import SCALES
from ff_numpy.validate import (
    Integer,
    check_memory,
    fraction_0_1,
    memory_size,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

BOX_KEYS = ("black_box", "box_levels", "box_noise")  # the options of add_box_arguments

#: Bytes a hidden unit needs at least: its float32 weights from a 784-pixel image and
#: one optimiser slot of the same size (larger inputs only need more).
HIDDEN_UNIT_BYTES = 784 * 4 * 2

#: ``--hidden``'s type: positive layer sizes, each small enough to fit in memory.
HIDDEN_SIZE = memory_size(HIDDEN_UNIT_BYTES, "hidden unit", need="needs positive layer sizes")


def check_ranges(*checks: tuple) -> None:
    """Raise ``ValueError("{option} must be {need}, got {value}")`` for the first
    ``(option, value, ok, need)`` of ``checks`` whose ``ok`` is false."""
    for option, value, ok, need in checks:
        if not ok:
            raise ValueError(f"{option} must be {need}, got {value}")


def check_run_shape(args, n_in: int = 784) -> None:
    """Raise ``ValueError`` naming the first bad option of :func:`add_run_shape_arguments`:
    ``--hidden`` needs positive sizes whose weights fit in memory (:func:`check_net_memory`
    for ``n_in`` inputs), ``--epochs``, ``--batch-size`` and ``--train-size`` at least 1."""
    if not args.hidden or min(args.hidden) < 1:
        raise ValueError(f"--hidden needs positive layer sizes, got {args.hidden}")
    check_ranges(
        ("--epochs", args.epochs, args.epochs >= 1, ">= 1"),
        ("--batch-size", args.batch_size, args.batch_size >= 1, ">= 1"),
        ("--train-size", args.train_size, args.train_size >= 1, ">= 1"),
    )
    check_net_memory(args.hidden, n_in)


def check_net_memory(hidden, n_in: int = 784, n_classes: int = 10) -> None:
    """Raise ``ValueError`` naming ``--hidden`` when the net's float32 weights and one
    optimiser slot of each (a lower bound of what training needs) exceed the machine's
    memory, before anything is allocated.

    Parameters
    ----------
    hidden : sequence of int
        ``--hidden``.
    n_in, n_classes : int
        Inputs of the first layer and outputs of the readout.
    """
    sizes = [int(n_in), *(int(h) for h in hidden)]
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) + sizes[-1] * n_classes
    shown = " ".join(str(h) for h in hidden)
    check_memory(n_weights * 4 * 2, f"--hidden {shown}: the weights and optimiser state")


def _add_options(p, options, defaults: dict, helps: dict | None) -> None:
    """Add each ``(flag, help template, argparse keywords)`` of ``options``.

    An option's default is ``defaults[dest]``; its help is ``helps[dest]`` if given, else
    the template formatted with ``defaults``.
    """
    helps = dict(helps or {})
    dests = [flag[2:].replace("-", "_") for flag, _, _ in options]
    unknown = sorted(set(helps) - set(dests))
    if unknown:
        raise ValueError(f"help given for unknown options {unknown}: expected some of {dests}")
    for dest, (flag, template, kwargs) in zip(dests, options):
        text = helps.get(dest) or template.format(**defaults)
        p.add_argument(flag, default=defaults[dest], help=text, **kwargs)


def add_run_shape_arguments(
    p: argparse.ArgumentParser,
    *,
    hidden,
    epochs: int,
    batch_size: int = 100,
    track_test: bool = False,
    helps: dict | None = None,
) -> None:
    """``--hidden --epochs --batch-size --train-size --seed``, and ``--track-test``.

    Parameters
    ----------
    p : argparse.ArgumentParser
    hidden : sequence of int
        Default hidden layer sizes.
    epochs, batch_size : int
        Their defaults.
    track_test : bool
        Also add ``--track-test`` (record test errors in the history).
    helps : dict of str to str, optional
        Help texts replacing the standard ones, by option (``"epochs"``, ...).
    """
    defaults = {
        "hidden": list(hidden),
        "hidden_text": " ".join(map(str, hidden)),
        "epochs": epochs,
        "batch_size": batch_size,
        "train_size": 50_000,
        "seed": 0,
    }
    options = [
        (
            "--hidden",
            "hidden layer sizes (default: {hidden_text})",
            {"type": HIDDEN_SIZE, "nargs": "+", "metavar": "N"},
        ),
        ("--epochs", "epochs (default: {epochs})", {"type": positive_int()}),
        ("--batch-size", "batch size (default: {batch_size})", {"type": positive_int()}),
        (
            "--train-size",
            "train on the first N of the 50,000 training images; 50,001-60,000 also take "
            "validation images, 60000 all of them (default: {train_size})",
            {"type": positive_int()},
        ),
        ("--seed", "random seed (default: {seed})", {"type": non_negative_int()}),
    ]
    _add_options(p, options, defaults, helps)
    if track_test:
        p.add_argument(
            "--track-test",
            action="store_true",
            help="also record test errors in the history (learning curves; not for tuning)",
        )


def add_ff_arguments(
    p: argparse.ArgumentParser,
    *,
    lr: float,
    helps: dict | None = None,
    exclude=(),
    with_loss: bool = False,
    **defaults,
) -> None:
    """The options of a supervised Forward-Forward net and its training.

    ``--lr --optimizer --momentum --weight-decay --peer-strength --readout-lr
    --readout-weight-decay --negatives --objective --goodness --norm --theta --loss
    --alpha``, read by
    :func:`~ff_numpy.experiments.building.make_ffnet` and
    :func:`~ff_numpy.experiments.building.make_ff_optimizers`.

    Parameters
    ----------
    p : argparse.ArgumentParser
    lr : float
        Default learning rate of the hidden layers.
    helps : dict of str to str, optional
        Help texts replacing the standard ones, by option (``"lr"``, ``"peer_strength"``, ...).
    exclude : iterable of str
        Options this experiment does not have (e.g. ``"negatives"`` for unsupervised FF).
    with_loss : bool
        Also offer ``--loss`` and ``--alpha`` (the layer loss, :mod:`ff_numpy.loss`), for
        experiments whose nets take it (:func:`loss_config` records it).
    **defaults
        Other defaults that differ from the supervised recipe (Hinton's released code):
        ``optimizer="sgd", momentum=0.9, weight_decay=0.001, peer_strength=0.03,
        readout_lr=0.1, readout_weight_decay=0.003, negatives="random", objective="max",
        goodness="ssq", norm=None`` (rms for ssq goodness, mean for sum), ``theta=None``
        (the number of units of each layer), ``loss="logistic", alpha=4.0``.
    """
    d = {
        "lr": lr,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 0.001,
        "peer_strength": 0.03,
        "readout_lr": 0.1,
        "readout_weight_decay": 0.003,
        "negatives": "random",
        "objective": "max",
        "goodness": "ssq",
        "norm": None,
        "theta": None,
        "loss": "logistic",
        "alpha": 4.0,
    }
    unknown = sorted(set(defaults) - set(d))
    if unknown:
        raise TypeError(f"add_ff_arguments got unknown defaults {unknown}")
    d.update(defaults)
    d["norm_text"] = "rms for ssq goodness, mean for sum" if d["norm"] is None else d["norm"]
    options = [
        (
            "--lr",
            "learning rate of the hidden layers, for the exact gradient of the loss "
            "(Hinton's code drops the factor 2 of dG/dy: its 0.01 is 0.005 here; "
            "default: {lr})",
            {"type": non_negative_float()},
        ),
        (
            "--optimizer",
            "sgd: momentum with dampening (Hinton's delay); adam (default: {optimizer})",
            {"choices": ["sgd", "adam"]},
        ),
        (
            "--momentum",
            "SGD momentum = dampening (Hinton's delay; default: {momentum})",
            {"type": fraction_0_1()},
        ),
        (
            "--weight-decay",
            "weight decay of the hidden weights (default: {weight_decay})",
            {"type": non_negative_float()},
        ),
        (
            "--peer-strength",
            "peer normalisation strength, 0 to turn off (default: {peer_strength})",
            {"type": non_negative_float()},
        ),
        (
            "--readout-lr",
            "learning rate of the softmax readout (default: {readout_lr})",
            {"type": non_negative_float()},
        ),
        (
            "--readout-weight-decay",
            "weight decay of the readout (default: {readout_weight_decay})",
            {"type": non_negative_float()},
        ),
        (
            "--negatives",
            "wrong labels: random (uniform) or hard (from the softmax; default: {negatives})",
            {"choices": WRONG_LABELS},
        ),
        (
            "--objective",
            "max: positive data has high goodness; min: low (default: {objective})",
            {"choices": ["max", "min"]},
        ),
        (
            "--goodness",
            "sum of squared activities (the paper) or of activities (unsquared, Sec. 10; "
            "default: {goodness})",
            {"choices": ["ssq", "sum"]},
        ),
        ("--norm", "length normalisation (default: {norm_text})", {"choices": list(SCALES)}),
        (
            "--theta",
            "goodness threshold (default: number of units of each layer)",
            {"type": positive_float()},
        ),
        (
            "--loss",
            "layer loss: logistic (Eq. 1, against theta) or symba (softplus of the scaled "
            "goodness difference of each positive/negative pair, no theta; "
            "default: {loss})",
            {"choices": sorted(LOSSES)},
        ),
        (
            "--alpha",
            "scale of the goodness difference of --loss symba (default: {alpha})",
            {"type": positive_float(need="must be finite and > 0")},
        ),
    ]
    exclude = set(exclude) | (set() if with_loss else {"loss", "alpha"})
    options = [o for o in options if o[0][2:].replace("-", "_") not in exclude]
    _add_options(p, options, d, helps)


def check_loss_args(args) -> None:
    """Raise ``ValueError`` naming ``--alpha`` unless it is finite and positive (when the
    run has a ``--loss`` other than the logistic one)."""
    if getattr(args, "loss", "logistic") != "logistic":
        ok = bool(np.isfinite(args.alpha) and args.alpha > 0)
        check_ranges(("--alpha", args.alpha, ok, "finite and > 0"))


def loss_config(args) -> dict:
    """``--loss`` and ``--alpha`` for the run's configuration, only when the loss is not
    Eq. 1's logistic one (a run without them, old or new, is a logistic run)."""
    loss = getattr(args, "loss", "logistic")
    return {} if loss == "logistic" else {"loss": loss, "alpha": args.alpha}


def add_eval_every_argument(p: argparse.ArgumentParser, default: int = 5) -> None:
    """``--eval-every K``: the goodness-based validation error (one pass per label, so
    costly) every K epochs and after the last."""
    p.add_argument(
        "--eval-every",
        type=positive_int(),
        default=default,
        help=f"goodness-based validation error every k epochs (default: {default})",
    )


def add_box_arguments(p: argparse.ArgumentParser) -> None:
    """``--black-box L`` and its settings (paper Sec. 10; :mod:`ff_numpy.blackbox`)."""
    p.add_argument(
        "--black-box",
        type=non_negative_int(),
        default=None,
        metavar="L",
        help="insert an unknown, non-differentiable, stochastic transform (permutation, "
        "quantisation, multiplicative noise) after hidden layer L (0-based)",
    )
    p.add_argument(
        "--box-levels",
        type=Integer(2),
        default=4,
        help="quantisation levels of the box (default: 4)",
    )
    p.add_argument(
        "--box-noise",
        type=fraction_0_1(),
        default=0.2,
        help="multiplicative noise amplitude of the box (default: 0.2)",
    )
