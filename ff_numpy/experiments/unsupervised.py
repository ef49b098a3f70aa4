"""Unsupervised FF on MNIST with hybrid-image negatives, then a linear softmax (Sec. 3.2).

``ff-numpy train unsupervised --out DIR`` trains the paper's net (4 hidden layers of 2000
ReLUs, 100 epochs) to tell real images (positive data) from hybrids of two different
images (negative data; :func:`ff_numpy.negatives.hybrid_images`). No label touches the
hidden layers. A linear softmax readout, trained at the same time on the normalised
activities of the last three hidden layers (``--score-layers``), gives the test error
(``test_error_softmax``); its gradient never reaches the hidden layers either.
"""

from __future__ import annotations

import argparse

from ff_numpy.experiments import register
from ff_numpy.experiments.base import Experiment
from ff_numpy.experiments.building import make_ff_optimizers, make_ffnet, splits
from ff_numpy.experiments.evaluation import error_rate, softmax_errors
from ff_numpy.experiments.options import (
    add_ff_arguments,
    add_run_shape_arguments,
    loss_config,
)
from ff_numpy.experiments.task import LabelledTask
from ff_numpy.negatives import N_BLUR
from ff_numpy.norm import DEFAULT_SCALE
from ff_numpy.validate import int_in, non_negative_int

#: Largest --hybrid-blur: far more passes than any mask needs (20 already give regions of
#: 10 pixels on a 28-pixel image); refuses a value that would run for ever.
MAX_BLUR = 1000


class UnsupervisedTask(LabelledTask):
    """Train an unsupervised :class:`~ff_numpy.model.FFNet` (a :class:`train.Task`).

    Parameters
    ----------
    model : FFNet
        Built with ``supervised=False``.
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
        The data splits; the labels reach only the readout.
    opt, readout_opt : Optimizer
    track_test : bool
    """

    optimizers = ("opt", "readout_opt")
    test_errors = staticmethod(softmax_errors)

    def __init__(self, model, x_train, y_train, x_val, y_val, x_test, y_test, opt,
                 readout_opt, track_test=False):  # fmt: skip
        super().__init__(model, x_train, y_train, x_val, y_val, x_test, y_test, track_test)
        self.opt, self.readout_opt = opt, readout_opt

    def train_batch(self, idx, rng, lr_scale):
        return self.model.train_step_unsupervised(
            self.x_train[idx], self.y_train[idx], rng, self.opt, self.readout_opt, lr_scale
        )

    def evaluate(self, epoch, n_epochs):
        return {
            f"{name}_error_softmax": error_rate(self.model.predict_softmax(x), y)
            for name, x, y in self.eval_splits()
        }


@register
class Unsupervised(Experiment):
    name = "unsupervised"
    help = "unsupervised FF with hybrid-image negatives, then a linear softmax (Sec. 3.2)"
    config_keys = (
        *("hidden", "epochs", "batch_size", "lr", "readout_lr", "optimizer", "momentum"),
        *("weight_decay", "readout_weight_decay", "objective", "goodness", "norm", "theta"),
        *("peer_strength", "score_layers", "train_size", "track_test", "seed", "hybrid_blur"),
    )
    test_errors = staticmethod(softmax_errors)
    # What a variant (e.g. the locally connected net of footnote 8) changes:
    default_hidden = (2000, 2000, 2000, 2000)
    default_epochs = 100
    default_lr = 0.003
    default_blur = N_BLUR
    local = None  # FFNet(local=...): None for dense layers
    shape_helps = None  # help texts replacing those of add_run_shape_arguments

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        add_run_shape_arguments(
            p,
            hidden=list(cls.default_hidden),
            epochs=cls.default_epochs,
            track_test=True,
            helps=cls.shape_helps,
        )
        add_ff_arguments(p, lr=cls.default_lr, exclude=("negatives",), with_loss=True)
        p.add_argument(
            "--score-layers",
            type=non_negative_int(),
            nargs="+",
            default=None,
            metavar="L",
            help="hidden layers (0-based) whose normalised activities feed the softmax "
            "(default: the last three)",
        )
        p.add_argument(
            "--hybrid-blur",
            type=int_in(0, MAX_BLUR),
            default=cls.default_blur,
            metavar="N",
            help="blurring steps of the hybrid-image masks: fewer give smaller regions "
            f"(default: {cls.default_blur})",
        )

    @staticmethod
    def check_args(args) -> None:
        n = len(args.hidden)
        if any(not 0 <= l < n for l in args.score_layers or ()):
            raise ValueError(
                f"--score-layers must index the hidden layers 0..{n - 1}, got {args.score_layers}"
            )

    @staticmethod
    def model_options(args) -> dict:
        """Extra :class:`~ff_numpy.model.FFNet` keyword arguments of a variant."""
        return {}

    @staticmethod
    def resolved_options(args) -> dict:
        n = len(args.hidden)
        score = args.score_layers or list(range(max(0, n - 3), n))
        norm = args.norm or DEFAULT_SCALE[args.goodness]
        return {"norm": norm, "score_layers": score, **loss_config(args)}

    @classmethod
    def build(cls, args, data):
        """The model and task for ``args`` on ``data`` (an :class:`ff_numpy.data.MNIST`)."""
        score = cls.resolved_options(args)["score_layers"]
        model = make_ffnet(
            args, 784, supervised=False, score_layers=score, local=cls.local,
            hybrid_blur=args.hybrid_blur,
            **cls.model_options(args),
        )  # fmt: skip
        opt, readout_opt = make_ff_optimizers(args)
        task = UnsupervisedTask(
            model, *splits(data, args.train_size), opt, readout_opt, args.track_test
        )
        return model, task
