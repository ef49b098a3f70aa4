"""Supervised Forward-Forward on MNIST with the label in the first 10 pixels (Sec. 3.3).

``ff-numpy train supervised --out DIR`` trains the paper's net (4 hidden layers of 2000
ReLUs, 60 epochs) with the settings of Hinton's released code (RMS normalisation,
threshold = number of units, SGD with delay 0.9, weight decay 0.001, peer normalisation
0.03, rate held for half the run and then decayed linearly) and writes ``DIR/model.npz``,
``DIR/metrics.json`` and ``DIR/learning_curve.png``.
"""

from __future__ import annotations

import argparse

from ff_numpy.experiments import register
from ff_numpy.experiments.base import Experiment
from ff_numpy.experiments.building import make_box, make_ff_optimizers, make_ffnet, splits
from ff_numpy.experiments.evaluation import ff_errors
from ff_numpy.experiments.options import (
    BOX_KEYS,
    add_box_arguments,
    add_eval_every_argument,
    add_ff_arguments,
    add_run_shape_arguments,
    loss_config,
)
from ff_numpy.experiments.task import LabelledTask
from ff_numpy.negatives import jitter as jitter_images
from ff_numpy.norm import DEFAULT_SCALE
from ff_numpy.validate import fraction_0_1, int_in

#: Largest --jitter: a shift smaller than the 28-pixel image.
MAX_JITTER = 27


class SupervisedTask(LabelledTask):
    """Train an :class:`~ff_numpy.model.FFNet` on labelled images (a :class:`train.Task`).

    Parameters
    ----------
    model : FFNet
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
        The data splits, as for :class:`~ff_numpy.experiments.task.LabelledTask`.
    opt, readout_opt : Optimizer
    negatives : {"random", "hard"}
    eval_every : int
        Goodness-based validation error every this many epochs (and after the last);
        it costs one pass per label.
    track_test : bool
        Also record the test errors after every epoch (learning curves only).
    jitter : int
        Shift each training image by up to this many pixels (0: none), drawn on the fly.
    eval_size : int
        Images of each split used for the per-epoch goodness error (0: all); the final
        test errors always use the whole test set.
    """

    optimizers = ("opt", "readout_opt")

    def __init__(
        self,
        model,
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        opt,
        readout_opt,
        negatives="random",
        eval_every=5,
        track_test=False,
        jitter=0,
        eval_size=0,
    ):
        super().__init__(model, x_train, y_train, x_val, y_val, x_test, y_test, track_test)
        for name, value, lo in (("eval_every", eval_every, 1), ("jitter", jitter, 0),
                                ("eval_size", eval_size, 0)):  # fmt: skip
            if not value >= lo:
                raise ValueError(f"{name} must be >= {lo}, got {value}")
        self.opt, self.readout_opt = opt, readout_opt
        self.negatives = negatives
        self.eval_every = int(eval_every)
        self.jitter = int(jitter)
        self.eval_size = int(eval_size)

    def train_batch(self, idx, rng, lr_scale):
        x = self.x_train[idx]
        if self.jitter:  # shift first; train_step writes the label afterwards
            x = jitter_images(x, rng, self.jitter)
        return self.model.train_step(
            x, self.y_train[idx], rng, self.opt, self.readout_opt, lr_scale, self.negatives
        )

    def evaluate(self, epoch, n_epochs):
        goodness_now = (epoch + 1) % self.eval_every == 0 or epoch + 1 == n_epochs
        out = {}
        for name, x, y in self.eval_splits():
            n_goodness = (self.eval_size or None) if goodness_now else 0
            out.update(ff_errors(self.model, name, x, y, n_goodness))
        return out


@register
class Supervised(Experiment):
    name = "supervised"
    help = "supervised FF on MNIST, label in the first 10 pixels (paper Sec. 3.3)"
    config_keys = (
        *("hidden", "epochs", "batch_size", "lr", "readout_lr", "optimizer", "momentum"),
        *("weight_decay", "readout_weight_decay", "negatives", "objective", "goodness"),
        *("norm", "theta", "peer_strength", "train_size", "eval_every", "track_test"),
        *("seed", *BOX_KEYS, "jitter", "dropout"),
    )

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        add_run_shape_arguments(p, hidden=[2000, 2000, 2000, 2000], epochs=60, track_test=True)
        add_ff_arguments(p, lr=0.003, with_loss=True)
        add_eval_every_argument(p)
        p.add_argument(
            "--jitter",
            type=int_in(0, MAX_JITTER, need=f"must be in 0..{MAX_JITTER} (within the image)"),
            default=0,
            metavar="S",
            help="shift each training image by up to S pixels in each direction, drawn "
            "on the fly (Sec. 3.3 uses 2; default: 0)",
        )
        p.add_argument(
            "--dropout",
            type=fraction_0_1(need="must lie in [0, 1)"),
            default=0.0,
            metavar="P",
            help="in training, drop each hidden activity with probability P (inverted "
            "dropout, before the goodness and the next layer; not in the paper; default: 0)",
        )
        add_box_arguments(p)

    @staticmethod
    def check_args(args) -> None:
        if not 0.0 <= args.dropout < 1.0:
            raise ValueError(f"--dropout must lie in [0, 1), got {args.dropout}")

    @staticmethod
    def build(args, data):
        """The model and task for ``args`` on ``data`` (an :class:`ff_numpy.data.MNIST`)."""
        boxes = dict([make_box(args, args.hidden)]) if args.black_box is not None else None
        model = make_ffnet(args, 784, boxes=boxes, dropout=args.dropout)
        opt, readout_opt = make_ff_optimizers(args)
        task = SupervisedTask(
            model,
            *splits(data, args.train_size),
            opt,
            readout_opt,
            args.negatives,
            args.eval_every,
            args.track_test,
            args.jitter,
        )
        return model, task

    @staticmethod
    def resolved_options(args) -> dict:
        return {"norm": args.norm or DEFAULT_SCALE[args.goodness], **loss_config(args)}
