"""Unsupervised FF with local receptive fields and peer normalisation (footnote 8).

``ff-numpy train local --out DIR``: the unsupervised experiment of Sec. 3.2
(:mod:`ff_numpy.experiments.unsupervised`: real images against hybrids, a linear softmax
on normalised activities) with the paper's locally connected layers
(:func:`ff_numpy.masks.paper_local_architecture`: a 4 x 4 grid of 10 x 10 fields with
stride 6 and 128 channels, then a 3 x 3 grid with 220 channels and a 2 x 2 grid with 512
channels, each unit seeing all channels of a 2 x 2 square of locations below), peer
normalisation 0.03 and 60 epochs. Goodness is taken per layer (summed over all of a
layer's locations); which layers feed the softmax is ``--score-layers`` (default: all
three), to be chosen by validation error.
"""

from __future__ import annotations

import argparse

from ff_numpy.experiments import register
from ff_numpy.experiments.common import (
    UnsupervisedTask,
    add_ff_arguments,
    add_run_shape_arguments,
    make_ff_optimizers,
    make_ffnet,
    splits,
)
from ff_numpy.experiments.unsupervised import Unsupervised

PAPER_SIZES = [2048, 1980, 2048]


@register
class Local(Unsupervised):
    name = "local"
    help = "unsupervised FF, local receptive fields and peer normalisation (footnote 8)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        add_run_shape_arguments(
            p,
            hidden=PAPER_SIZES,
            epochs=60,
            track_test=True,
            helps={"hidden": "layer sizes of the local architecture (fixed: 2048 1980 2048)"},
        )
        add_ff_arguments(p, lr=0.003, exclude=("negatives",))
        p.add_argument(
            "--score-layers",
            type=int,
            nargs="+",
            default=None,
            metavar="L",
            help="hidden layers (0-based) whose normalised activities feed the softmax "
            "(default: all three)",
        )

    @staticmethod
    def check_args(args) -> None:
        if list(args.hidden) != PAPER_SIZES:
            raise ValueError(f"--hidden is fixed by the local architecture: {PAPER_SIZES}")

    @classmethod
    def build(cls, args, data):
        score = cls.resolved_options(args)["score_layers"]
        model = make_ffnet(args, 784, supervised=False, score_layers=score, local="paper")
        opt, readout_opt = make_ff_optimizers(args)
        task = UnsupervisedTask(
            model, *splits(data, args.train_size), opt, readout_opt, args.track_test
        )
        return model, task
