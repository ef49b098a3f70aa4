"""Options shared by several experiments."""

from __future__ import annotations

import argparse

import numpy as np

from ff_numpy.blackbox import BlackBox

BOX_KEYS = ("black_box", "box_levels", "box_noise")


def add_box_arguments(p: argparse.ArgumentParser) -> None:
    """``--black-box L`` and its settings (paper Sec. 10; :mod:`ff_numpy.blackbox`)."""
    p.add_argument(
        "--black-box",
        type=int,
        default=None,
        metavar="L",
        help="insert an unknown, non-differentiable, stochastic transform (permutation, "
        "quantisation, multiplicative noise) after hidden layer L (0-based)",
    )
    p.add_argument(
        "--box-levels", type=int, default=4, help="quantisation levels of the box (default: 4)"
    )
    p.add_argument(
        "--box-noise",
        type=float,
        default=0.2,
        help="multiplicative noise amplitude of the box (default: 0.2)",
    )


def make_box(args, hidden) -> tuple[int | None, BlackBox | None]:
    """The black box the options ask for (its permutation drawn from the seed), or None."""
    L = args.black_box
    if L is None:
        return None, None
    if not 0 <= L < len(hidden) - 1:
        raise ValueError(
            f"--black-box must name a hidden layer with another hidden layer after it "
            f"(0..{len(hidden) - 2}), got {L}"
        )
    rng = np.random.default_rng([args.seed, 2])
    return L, BlackBox(hidden[L], rng, levels=args.box_levels, noise=args.box_noise)
