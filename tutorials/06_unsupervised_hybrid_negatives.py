r"""Tutorial 06: unsupervised Forward-Forward with hybrid-image negatives (paper Sec. 3.2, Fig. 1).

What it teaches
    * How the paper makes negative data *without labels*: a *hybrid* of two different
      digits, cut and pasted along a mask with large regions of ones and zeros. The mask
      is a random bit image blurred repeatedly with the filter ``[1/4, 1/2, 1/4]``
      horizontally and vertically, then thresholded at 0.5
      (``ff_numpy.negatives.hybrid_masks``, ``hybrid_images``). The tutorial redoes the
      blurring step by step, checks that it gives the library's masks bit for bit, and
      measures how the regions grow with the number of blurs (``mask_blurring.png``),
      then draws hybrids as in the paper's Fig. 1 (``hybrid_gallery.png``).
    * Why hybrids: short-range structure (strokes) is that of real digits, long-range
      shape is not, so a net that tells real images from hybrids must learn long-range
      correlations: shapes.
    * How to train the unsupervised net from Python: ``experiments.default_args(
      "unsupervised", ...)`` and ``experiments.get("unsupervised").run(args)``. No label
      touches the hidden layers; a linear softmax readout, trained at the same time on the
      normalised activities of the last three hidden layers, turns the features into a
      digit classifier (its gradient never reaches the hidden layers either).
    * How to ask which layers the softmax should read, without retraining: fit readouts
      on the *frozen* net's features (``ff_numpy.readout.fit_readout``) for the layer sets
      ``1 2 3`` (the paper's) and ``0 1 2 3`` (adding the first hidden layer, which the
      paper says makes the test error worse), and choose by *validation* error; the test
      error is only reported (``readout_layers.png``).

How long it takes (2 cores)
    ``--quick``: about 10-20 s (4 hidden layers of 200, 10,000 images, 3 epochs; four
    layers so that "the last three" and "all four" differ). Full: the experiment's
    defaults, the paper's net (4 hidden layers of 2000) for 100 epochs on 50,000 images,
    about 1.5-2.5 hours on two free cores (checkpoint after every epoch; ``--resume``
    continues an interrupted run), plus about a minute per readout layer set (features
    of the first ``READOUT_TRAIN_FULL`` training images; ``--readout-epochs`` epochs).

What it should show
    * ``mask_blurring.png``: random bits, the same bits blurred 1, 2, 4 and 8 times, and
      the masks they threshold to: the regions grow from single pixels to blobs about a
      stroke to half a digit wide; the printout gives the mean run length along a row
      and the fraction of ones (about half) for each number of blurs.
    * ``hybrid_gallery.png``: two parents, the mask and the hybrid, row by row. Every
      pixel of a hybrid comes from exactly one of its two (different) parents: checked.
    * ``learning_curve.png``: the softmax readout's validation error falling over the
      epochs, and each layer's FF loss (real against hybrid).
    * The test error of the readout trained with the net. The paper reports 1.37% for
      its unsupervised 4 x 2000 net with a softmax on the last three layers; the full run
      measures ours.
    * ``readout_layers.png``: validation and test error of frozen-feature readouts on
      ``1 2 3`` and ``0 1 2 3``; the paper's claim is that adding layer 0 hurts. The quick
      run is far too small to test it: its numbers show that everything runs and nothing
      more. Every number is computed when the script runs, none is written in it.

Run it::

    python tutorials/06_unsupervised_hybrid_negatives.py --quick
    python tutorials/06_unsupervised_hybrid_negatives.py --out runs/tutorial06 --data-dir ~/mnist

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws to a file, never to a window
from scipy.ndimage import convolve1d

from ff_numpy import experiments, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.experiments.evaluation import error_rate
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.model import FFNet
from ff_numpy.negatives import BLUR_KERNEL, N_BLUR, hybrid_images, hybrid_masks
from ff_numpy.plots import plot_hybrid_gallery, plot_run
from ff_numpy.readout import fit_readout

EXPERIMENT = "unsupervised"
SEED = 0
# Options that differ from the experiment's defaults (``ff-numpy train unsupervised
# --help``). Full: none, the defaults are the paper's net (4 x 2000, 100 epochs, 50,000
# images). Quick: a small version with four layers, so that "the last three" differs
# from "all four".
FULL: dict = {}
QUICK = {"hidden": [200, 200, 200, 200], "epochs": 3, "train_size": 10_000}
IMAGE_SHAPE = (28, 28)
BLURS_SHOWN = (0, 1, 2, 4, N_BLUR)  # blurring passes drawn step by step
BLURS_MEASURED = (0, 1, 2, 4, N_BLUR, 20)  # and measured on N_MASKS masks
N_MASKS = 200
N_GALLERY = 6  # hybrids in the Fig. 1 gallery
# The readout comparison: layer sets (0-based hidden layers) and their readouts.
SUBSETS = [(1, 2, 3), (0, 1, 2, 3)]  # the paper's, and with the first hidden layer added
READOUT_EPOCHS = 20  # fit_readout's default recipe
READOUT_TRAIN_FULL = 20_000  # features of 4 x 2000 on 20,000 images: 640 MB of float32
PAPER_TEST_ERROR = 0.0137  # Hinton (2022), Sec. 3.2: 4 x 2000, 100 epochs, last three layers
FIG_BLUR = "mask_blurring.png"
FIG_GALLERY = "hybrid_gallery.png"
FIG_READOUT = "readout_layers.png"

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "06_unsupervised_hybrid_negatives.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. Masks with large regions, step by step
#
# `hybrid_masks(n, rng)` draws random bits, blurs them `N_BLUR` times and thresholds:
#
# ```
# m = (uniform(0, 1) < 0.5)                    (n, 28, 28) random bits, as floats
# repeat N_BLUR times:
#     m = m convolved with [1/4, 1/2, 1/4] along rows, then along columns
# mask = m > 0.5
# ```
#
# Each pass averages a pixel with its neighbours, so nearby pixels become alike and the
# thresholded regions grow. Below the same steps are written out with the same random
# draws (same seed), every intermediate kept for the figure, and the result compared
# with the library's masks. How big the regions are is measured by the mean run length
# along a row: 784 pixels divided by the number of runs (28 rows, plus one new run at
# every change of value).


# %%
def blur_steps(rng: np.random.Generator, n: int, n_blur: int) -> list[np.ndarray]:
    """The random bits and every blurred version, as ``hybrid_masks`` computes them."""
    m = (rng.random((n, *IMAGE_SHAPE)) < 0.5).astype(np.float32)
    steps = [m]
    for _ in range(n_blur):
        m = convolve1d(m, BLUR_KERNEL, axis=1, mode="reflect")  # along the columns of a row
        m = convolve1d(m, BLUR_KERNEL, axis=2, mode="reflect")
        steps.append(m)
    return steps


def mean_run_length(masks: np.ndarray) -> float:
    """Mean length of the runs of equal values along the rows of (n, H, W) masks."""
    H, W = masks.shape[1:]
    changes = (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=(1, 2))  # (n,)
    return float(np.mean(H * W / (changes + H)))


def mask_demo(out: Path) -> dict:
    steps = blur_steps(np.random.default_rng([SEED, 1]), N_MASKS, max(BLURS_MEASURED))
    library = hybrid_masks(N_MASKS, np.random.default_rng([SEED, 1]))  # N_BLUR passes
    same = bool(np.array_equal(steps[N_BLUR] > 0.5, library))
    stats = {
        k: {"run_length": mean_run_length(steps[k] > 0.5), "ones": float((steps[k] > 0.5).mean())}
        for k in BLURS_MEASURED
    }
    print(f"the masks, step by step, equal hybrid_masks' ({N_BLUR} blurs): {same}")
    print(f"blurs  mean run along a row (pixels)  fraction of ones   ({N_MASKS} masks)")
    for k, s in stats.items():
        mark = "  <- N_BLUR, the library's default" if k == N_BLUR else ""
        print(f"{k:5d}  {s['run_length']:30.1f}  {s['ones']:16.2f}{mark}")

    fig = Figure(figsize=(2 * len(BLURS_SHOWN), 4.8), layout="constrained")
    axes = fig.subplots(2, len(BLURS_SHOWN))
    for j, k in enumerate(BLURS_SHOWN):
        axes[0, j].imshow(steps[k][0], cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title("random bits" if k == 0 else f"blurred {k} x", fontsize=9)
        axes[1, j].imshow(steps[k][0] > 0.5, cmap="gray", vmin=0, vmax=1)
        axes[1, j].set_title(f"> 0.5: runs {stats[k]['run_length']:.1f} px", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("making a hybrid mask: blur with [1/4, 1/2, 1/4] along rows and columns, "
                 "then threshold", fontsize=10)  # fmt: skip
    path = out / FIG_BLUR
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return {"steps_equal_library": same, "blur_stats": stats, "figure": path}


# %% [markdown]
# ## 2. Hybrids (Fig. 1)
#
# `hybrid_images(x, rng)` pairs every image with another one (`partner`, never itself)
# and keeps image `a` where the mask is 1 and image `b` elsewhere:
# `h = m * x_a + (1 - m) * x_b`. The training step (`FFNet.train_step_unsupervised`)
# calls it on every batch: the batch's images are the positive rows, their hybrids
# the negative rows.


# %%
def hybrid_demo(x: np.ndarray, out: Path) -> dict:
    hybrids, masks, partner = hybrid_images(x, np.random.default_rng([SEED, 2]), IMAGE_SHAPE)
    from_a, from_b = hybrids == x, hybrids == x[partner]
    # Every pixel comes from the parent the mask names (where both parents agree, e.g.
    # the black background, either one will do).
    one_parent = np.where(masks, from_a, from_b)
    report = {
        "masks_binary": bool(masks.dtype == bool),
        "ones_fraction": float(masks.mean()),
        "pixels_from_named_parent": float(one_parent.mean()),
        "partner_is_self": int(np.sum(partner == np.arange(len(x)))),
        "differs_from_both_parents": float(np.mean(np.any(~from_a, 1) & np.any(~from_b, 1))),
    }
    print(
        f"{len(x)} hybrids: {100 * report['ones_fraction']:.0f}% of the pixels from image a; "
        f"{100 * report['pixels_from_named_parent']:.1f}% of the pixels equal the parent "
        f"the mask names;\n  {report['partner_is_self']} images paired with themselves; "
        f"{100 * report['differs_from_both_parents']:.0f}% of the hybrids differ from both "
        "of their parents."
    )
    report["figure"] = plot_hybrid_gallery(
        x, hybrids, masks, partner, out / FIG_GALLERY, n=N_GALLERY, image_shape=IMAGE_SHAPE
    )
    return report


# %% [markdown]
# ## 3. Train: real images against hybrids
#
# `run` loads MNIST, builds an `FFNet(supervised=False)` and trains it with the library's
# training loop. Per batch: hybrids of the batch are the negative rows, every layer takes
# one local step on the goodness of real (high) against hybrid (low) rows, and the
# softmax readout takes one step on the positive rows' normalised activities of the last
# three layers, with the labels. After every epoch it measures the readout's validation
# error; at the end its test error.


# %%
def train(args: argparse.Namespace) -> dict:
    print(
        f"\ntraining {EXPERIMENT}: hidden {args.hidden}, {args.epochs} epochs, "
        f"{args.train_size} training images -> {args.out}"
    )
    metrics = experiments.get(EXPERIMENT).run(args)
    print("epoch  validation error (softmax on the last three layers)")
    for r in metrics["history"]:
        print(f"  {r['epoch']:3d}  {100 * r['val_error_softmax']:5.2f}%")
    return metrics


# %% [markdown]
# ## 4. Which layers should the softmax read? Readouts on frozen features
#
# The readout trained *with* the net reads fixed layers. To compare layer sets without
# retraining the net, freeze it: compute the normalised activities `h` of every hidden
# layer once per image (`FFNet.sweep`), concatenate the chosen layers' and fit a fresh
# softmax on them (`fit_readout`: the experiments' readout recipe). The set to keep is
# the one with the lowest *validation* error; the test error is reported, never used to
# choose.


# %%
def frozen_features(model: FFNet, x: np.ndarray, layers, batch_size: int = 1000) -> np.ndarray:
    """Normalised activities of ``layers`` concatenated, shape (N, sum of their sizes)."""
    hs = model.normalized_activities(x, batch_size=batch_size)  # one array per layer
    return np.concatenate([hs[l] for l in layers], axis=1)


def compare_readouts(model: FFNet, data, n_train: int, epochs: int, progress: bool) -> list:
    x_tr, y_tr = data.train.x[:n_train], data.train.y[:n_train]
    rows = []
    for layers in SUBSETS:
        readout = fit_readout(
            frozen_features(model, x_tr, layers), y_tr, model.n_classes, epochs=epochs,
            rng=np.random.default_rng([SEED, 3]), progress=progress,
        )  # fmt: skip
        row = {"layers": list(layers)}
        for split, part in (("val", data.validation), ("test", data.test)):
            pred = readout.predict(frozen_features(model, part.x, layers))
            row[f"{split}_error"] = error_rate(pred, part.y)
        rows.append(row)
    best = min(range(len(rows)), key=lambda i: rows[i]["val_error"])
    print(f"\nsoftmax on frozen features ({n_train} training images, {epochs} epochs):")
    print("layers        validation  test")
    for i, r in enumerate(rows):
        mark = "  <- chosen (lowest validation error)" if i == best else ""
        print(
            f"{' '.join(map(str, r['layers'])):12s}  {100 * r['val_error']:9.2f}%  "
            f"{100 * r['test_error']:5.2f}%{mark}"
        )
    return rows


def plot_readouts(rows: list, path: Path, title: str) -> Path:
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    x = np.arange(len(rows))
    val = np.array([100 * r["val_error"] for r in rows])
    test = np.array([100 * r["test_error"] for r in rows])
    ax.bar(x - 0.2, val, 0.4, label="validation (chooses)")
    ax.bar(x + 0.2, test, 0.4, label="test (reported)")
    for xi, v, t in zip(x, val, test):
        ax.annotate(f"{v:.2f}", (xi - 0.2, v), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{t:.2f}", (xi + 0.2, t), ha="center", va="bottom", fontsize=8)
    best = int(np.argmin(val))
    names = [" ".join(map(str, r["layers"])) for r in rows]
    names[best] += "\n(chosen by validation)"
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_xlabel("hidden layers read by the softmax (0 = first)")
    ax.set_ylabel("error (%)")
    ax.set_ylim(0, 1.25 * max(val.max(), test.max()))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


# %%
def build_parser() -> argparse.ArgumentParser:
    p = tutorial.parser(__doc__, f"small run: {QUICK}", DEFAULT_OUT)
    p.add_argument(
        "--readout-epochs",
        type=int,
        default=READOUT_EPOCHS,
        help=f"epochs of each frozen-feature readout (default: {READOUT_EPOCHS})",
    )
    return p


def main(argv=None) -> dict:
    opts = build_parser().parse_args(argv)
    out = Path(opts.out)
    progress = not opts.no_progress
    masks = mask_demo(out)
    data = load_mnist(opts.data_dir, progress=progress)
    hybrids = hybrid_demo(data.train.x[: 10 * N_GALLERY], out)

    args = experiments.default_args(
        EXPERIMENT,
        **(QUICK if opts.quick else FULL),
        seed=SEED,
        out=str(out),
        data_dir=opts.data_dir,
        resume=opts.resume,
        progress=progress,
    )
    metrics = train(args)
    curve = plot_run(out)  # learning_curve.png, from metrics.json
    print(
        f"test error of the readout trained with the net (layers "
        f"{metrics['config']['score_layers']}): {100 * metrics['test_error_softmax']:.2f}%  "
        f"(the paper, full run: {100 * PAPER_TEST_ERROR:.2f}%)"
    )

    model = load_ffnet(out / "model.npz")
    if len(model.hidden) < max(max(s) for s in SUBSETS) + 1:
        raise ValueError(f"the readout comparison needs 4 hidden layers, got {model.hidden}")
    n_train = args.train_size if opts.quick else min(args.train_size, READOUT_TRAIN_FULL)
    rows = compare_readouts(model, data, n_train, opts.readout_epochs, progress)
    hidden = "x".join(map(str, model.hidden))
    title = f"unsupervised {hidden}, {args.epochs} epochs: softmax on frozen layers"
    if opts.quick:
        title += "\n(quick run: too small for conclusions)"
    readout_fig = plot_readouts(rows, out / FIG_READOUT, title)
    if opts.quick:
        print(
            f"\nThese numbers come from a tiny run ({QUICK['train_size']} images, "
            f"{args.epochs} epochs, layers of {QUICK['hidden'][0]}): they show that "
            "everything runs,\nnot what unsupervised FF achieves or which layers the "
            "softmax should read. Run without --quick for that."
        )
    figures = [masks["figure"], hybrids["figure"], curve, readout_fig]
    print("figures:")
    for f in figures:
        print(f"  {f}")
    return {
        "masks": {k: v for k, v in masks.items() if k != "figure"},
        "hybrids": {k: v for k, v in hybrids.items() if k != "figure"},
        "test_error_softmax": metrics["test_error_softmax"],
        "readout_rows": rows,
        "best_layers": min(rows, key=lambda r: r["val_error"])["layers"],
        "figures": figures,
    }


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
