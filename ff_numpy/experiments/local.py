"""Unsupervised FF with local receptive fields and peer normalisation (footnote 8).

``ff-numpy train local --out DIR``: the unsupervised experiment of Sec. 3.2
(:mod:`ff_numpy.experiments.unsupervised`: real images against hybrids, a linear softmax
on normalised activities) with the paper's locally connected layers
(:func:`ff_numpy.masks.paper_local_architecture`: a 4 x 4 grid of 10 x 10 fields with
stride 6 and 128 channels, then a 3 x 3 grid with 220 channels and a 2 x 2 grid with 512
channels, each unit seeing all channels of a 2 x 2 square of locations below), peer
normalisation 0.03 and 60 epochs.

Footnote 8 leaves two choices open, made here by validation error (``docs/RESULTS.md``):

* ``--goodness-per layer|location``: one goodness (and one Eq. 1 loss) per layer, summed
  over all its locations, or one per location, over that location's channels, with the
  threshold scaled to the location's share of the layer's units. Default ``layer``: over
  60 epochs it had the lower validation error (1.2-1.3% against 1.6% per location, at
  ``--lr 0.006 --hybrid-blur 4``, this experiment's defaults), reversing a 5-epoch
  probe (``docs/RESULTS.md``).
* ``--norm-per layer|location``: what the next layer sees is the layer's activity vector
  divided by its length, or every location's channels divided by their own length
  (:func:`ff_numpy.norm.normalize_grouped`), which hides each location's goodness from
  the next layer as the paper's normalisation hides the layer's.
* ``--score-layers``: which layers feed the softmax (default: all three). Compare sets
  on a trained net without retraining it with ``benchmarks/readout_layers.py``.
"""

from __future__ import annotations

import argparse

from ff_numpy.experiments import register
from ff_numpy.experiments.unsupervised import Unsupervised

PAPER_SIZES = [2048, 1980, 2048]


@register
class Local(Unsupervised):
    name = "local"
    help = "unsupervised FF, local receptive fields and peer normalisation (footnote 8)"
    default_hidden = tuple(PAPER_SIZES)
    default_epochs = 60
    # The setting of the two 60-epoch runs (seeds 0 and 1) that reached 1.13% and 1.18%
    # test error (docs/RESULTS.md). Validation chose 4 blur steps over 2, 8 and 16; with
    # goodness per location, lr 0.003, 0.006 and 0.012 were level on it, 0.001 worse.
    default_lr = 0.006
    default_blur = 4
    local = "paper"
    shape_helps = {"hidden": "layer sizes of the local architecture (fixed: 2048 1980 2048)"}
    config_keys = (*Unsupervised.config_keys, "goodness_per", "norm_per")

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        super().add_arguments(p)
        p.add_argument(
            "--goodness-per",
            choices=["layer", "location"],
            default="layer",
            help="one goodness per layer, or one per location of a layer (default: layer, "
            "chosen on validation error over 60 epochs, docs/RESULTS.md)",
        )
        p.add_argument(
            "--norm-per",
            choices=["layer", "location"],
            default="layer",
            help="divide each layer's activity vector by its length, or each location's "
            "channels by theirs, before the next layer and the readout (default: layer)",
        )

    @staticmethod
    def model_options(args) -> dict:
        return {"goodness_per": args.goodness_per, "norm_per": args.norm_per}

    @staticmethod
    def check_args(args) -> None:
        if list(args.hidden) != PAPER_SIZES:
            raise ValueError(f"--hidden is fixed by the local architecture: {PAPER_SIZES}")
        Unsupervised.check_args(args)
