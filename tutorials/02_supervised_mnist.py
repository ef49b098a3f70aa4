r"""Tutorial 02: supervised Forward-Forward on MNIST, end to end (paper Sec. 3.3, Fig. 2).

What it teaches
    * How to run a paper experiment from Python: look the ``supervised`` experiment up
      with ``ff_numpy.experiments.get``, fill an ``argparse.Namespace`` with its defaults
      (its own ``add_arguments``), change a few, and call ``.run(args)``. The run writes
      ``metrics.json`` and ``model.npz`` to ``--out``; everything after it only reads
      those files (computing is kept apart from plotting).
    * Supervised FF: the label is written into the first 10 pixels; positive data has the
      true label, negative data a wrong one; every layer learns from its own goodness.
    * The two ways to classify: by goodness (write each of the 10 labels into the image
      and pick the one with the highest goodness summed over every layer but the first)
      and by a softmax readout of one pass with the neutral label (0.1 in each label
      pixel).
    * What the first layer learns: its receptive fields (paper, Fig. 2), including the
      weights on the 10 label pixels.

How long it takes (2 cores)
    ``--quick``: about 10-20 s (2 hidden layers of 500, 10,000 images, 3 epochs).
    Full: the paper's setting, 4 hidden layers of 2000 ReLUs for 60 epochs on 50,000
    images: about 70 s per epoch, 1-1.5 hours with the evaluations. A full run saves a
    checkpoint after every epoch; ``--resume`` continues an interrupted one.

What it should show
    * ``learning_curve.png``: validation error falling with the epochs, for the softmax
      readout every epoch and for goodness every 5 epochs and after the last one.
    * ``receptive_fields.png``: 100 first-layer units. After the full run they should
      resemble the paper's Fig. 2 (smooth digit-part features); after the quick run they are
      still mostly the random initial weights, though the weights on the label pixels
      (boxed, top row) have already grown (the run prints by how much).
    * The two test errors. The paper reports 1.36% after the full run (goodness); the
      quick run gives roughly 15-20% (goodness) and about 10% (softmax).

Run it::

    python tutorials/02_supervised_mnist.py --quick
    python tutorials/02_supervised_mnist.py --out runs/tutorial02 --data-dir ~/mnist

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ff_numpy import experiments, tutorial
from ff_numpy.model import FFNet
from ff_numpy.plots import plot_learning_curve, plot_receptive_fields

EXPERIMENT = "supervised"
# Options of the experiment that differ from its defaults (``ff-numpy train supervised
# --help`` lists them all). FULL is the paper's setting, QUICK a small version of it.
FULL = {"hidden": [2000, 2000, 2000, 2000], "epochs": 60, "train_size": 50_000}
QUICK = {"hidden": [500, 500], "epochs": 3, "train_size": 10_000}
SEED = 0
N_RECEPTIVE_FIELDS = 100  # first-layer units drawn, as in Fig. 2
N_LABEL_PIXELS = 10
PAPER_TEST_ERROR = 0.0136  # Hinton (2022), Sec. 3.3: 4 x 2000, 60 epochs, by goodness

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "02_supervised_mnist.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. The experiment's arguments
#
# `experiments.default_args` gives an experiment's options with their defaults (the
# namespace `ff-numpy train supervised` would build), with any we override.


# %% [markdown]
# ## 2. Train
#
# `run` loads MNIST, builds the network (`FFNet`), and trains it with the library's one
# training loop (`ff_numpy.train.fit`): per batch a neutral-label pass trains the softmax
# readout, wrong labels make the negative data, and every layer takes one local step.
# After every epoch it evaluates on the 10,000 validation images and saves a checkpoint;
# at the end it computes both test errors.


# %%
def train(args: argparse.Namespace) -> dict:
    """Run the experiment and return what it wrote to ``metrics.json``."""
    experiment = experiments.get(EXPERIMENT)
    print(
        f"training {EXPERIMENT}: hidden {args.hidden}, {args.epochs} epochs, "
        f"{args.train_size} training images, negatives {args.negatives!r} -> {args.out}"
    )
    metrics = experiment.run(args)
    tutorial.print_history(metrics)
    return metrics


# %% [markdown]
# ## 3. Figures, from the files the run wrote
#
# The learning curve reads `metrics.json` (`run` draws the same figure; here is the
# call). The receptive fields need the model: `FFNet.from_config` rebuilds it from the
# configuration stored in `model.npz`, and `load_state` restores its weights. Column `j`
# of the first layer's `W` (shape 784 x units) is unit `j`'s receptive field, a 28 x 28
# image whose first 10 pixels are the weights on the label.


# %%
def draw_figures(run_dir: Path) -> list[Path]:
    curve = plot_learning_curve(run_dir / "metrics.json", run_dir / "learning_curve.png")
    model = FFNet.load(run_dir / "model.npz")
    W = model.layers[0].W  # (784, n_units)
    fields = run_dir / "receptive_fields.png"
    plot_receptive_fields(W, fields, n=N_RECEPTIVE_FIELDS, n_label_pixels=N_LABEL_PIXELS)
    # The label pixels: the weights start as N(0, 1/784), whose mean |w| is
    # sqrt(2 / pi) / 28; learning how the label goes with the image makes them grow.
    label_w = np.abs(W[:N_LABEL_PIXELS]).mean()
    init_w = np.sqrt(2 / np.pi / W.shape[0])
    print(
        f"first layer: mean |weight| on the label pixels {label_w:.3f} "
        f"({label_w / init_w:.1f}x its value at initialisation, {init_w:.3f})"
    )
    return [curve, fields]


# %%
def build_parser() -> argparse.ArgumentParser:
    return tutorial.parser(__doc__, f"small run: {QUICK}", DEFAULT_OUT)


def main(argv=None) -> dict:
    opts = build_parser().parse_args(argv)
    args = experiments.default_args(
        EXPERIMENT,
        **(QUICK if opts.quick else FULL),
        seed=SEED,
        out=str(opts.out),
        data_dir=opts.data_dir,
        resume=opts.resume,
        progress=not opts.no_progress,
    )
    metrics = train(args)
    figures = draw_figures(Path(args.out))
    print(
        f"test error by goodness: {100 * metrics['test_error_goodness']:.2f}%  "
        f"(the paper, full run: {100 * PAPER_TEST_ERROR:.2f}%)"
    )
    print(f"test error by softmax:  {100 * metrics['test_error_softmax']:.2f}%")
    print(f"training took {metrics['total_train_seconds']:.0f} s; figures:")
    for f in figures:
        print(f"  {f}")
    return {
        "test_error_goodness": metrics["test_error_goodness"],
        "test_error_softmax": metrics["test_error_softmax"],
        "figures": figures,
    }


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
