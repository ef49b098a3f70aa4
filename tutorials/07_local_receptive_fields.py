r"""Tutorial 07: local receptive fields and peer normalisation (paper Sec. 3.2, footnotes 8 and 9).

What it teaches
    * The locally connected architecture of footnote 8
      (``ff_numpy.masks.paper_local_architecture``): layer 1 is a 4 x 4 grid of
      locations, 6 pixels apart, each seeing a 10 x 10 patch of the image with 128
      units; layer 2 a 3 x 3 grid, each location seeing all channels of a 2 x 2 square of
      layer-1 locations, with 220 units; layer 3 a 2 x 2 grid over 2 x 2 squares of layer
      2, with 512 units. No weight sharing: every unit has its own weights. Such a layer
      is a dense layer whose weights are zero outside a fixed 0/1 mask
      (``LocalFields.mask``, ``ff_numpy.layers.Masked``). The tutorial draws where the
      fields sit on the image, which pixels a unit of layer 2 or 3 ends up seeing through
      the layers below (the product of the masks) and the masks themselves
      (``local_fields.png``).
    * Why ``Masked`` has two paths to the same numbers: the masked-dense reference
      (``forward_reference``: ``x @ W`` with ``W`` zero outside the mask, FLOPs spent on
      zeros) and the fast path (per location, gather the field and multiply by its
      weight block). The tutorial checks on real images that both give the same
      activities and weight gradients, and times them.
    * How to train the ``local`` experiment from Python (``experiments.get("local")``):
      unsupervised FF with hybrid negatives (tutorial 06) on this architecture, with
      peer normalisation (``--peer-strength``, 0.03) and one goodness per layer or per
      location (``--goodness-per``, an option of this tutorial too; footnote 8 does not
      say which; per layer, the default, had the lower validation error over 60 epochs).
    * What layer 1 learns: the weights of some units, drawn as 10 x 10 patches where
      their fields sit on the 28 x 28 image (``local_receptive_fields.png``).
    * What peer normalisation (footnote 9) does: every unit keeps a running mean of its
      activity, and a term pulling it towards the layer's mean is added to its
      derivative, active or not, so that no unit stays dead or dominates. The tutorial
      trains the same net with strength 0 and draws every unit's mean activity on
      validation images, sorted, for both runs, and counts the dead units
      (``peer_norm.png``).

How long it takes (2 cores)
    ``--quick``: about 15-25 s (the paper's layers, fixed by the architecture, trained
    for 1 epoch on 3,000 images, twice: with and without peer normalisation). Full: the
    experiment's defaults (60 epochs on 50,000 images), twice, about 1-1.5 hours per run
    on two free cores (checkpoint after every epoch; ``--resume`` continues).

What it should show
    * ``local_fields.png``: the 16 overlapping 10 x 10 fields of layer 1 on a digit; the
      16 x 16 pixels a layer-2 unit sees and the 22 x 22 a layer-3 unit sees (computed
      from the masks, not assumed); the three masks as matrices.
    * The fast path equals the reference to float32 rounding (relative difference
      1e-7 to 1e-6), and needs a fraction of the reference's multiply-adds (printed).
    * The test error of the softmax trained with the net; the paper reports 1.16% after
      60 epochs (its one architecture, peer normalisation on). The full run measures
      ours.
    * ``local_receptive_fields.png``: after the full run, smooth stroke-like patches;
      after the quick run they are still close to their random start.
    * ``peer_norm.png``: the sorted mean activities of both runs, with each layer's
      number of dead units and coefficient of variation. Peer normalisation is meant to
      keep units from dying or dominating, so with it the curves should be flatter
      (smaller coefficient of variation, fewer dead units); the full runs measure
      whether they are, and at what cost or gain in test error. The quick run is far too
      short for the running means to matter: its numbers show that everything runs and
      nothing more. Every number is computed when the script runs, none is written in
      it.

Run it::

    python tutorials/07_local_receptive_fields.py --quick
    python tutorials/07_local_receptive_fields.py --out runs/tutorial07 --data-dir ~/mnist

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws to a file, never to a window
from matplotlib.patches import Rectangle

from ff_numpy import experiments, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.layers import Masked
from ff_numpy.masks import paper_local_architecture
from ff_numpy.model import FFNet
from ff_numpy.norm import normalize

EXPERIMENT = "local"
SEED = 0
IMAGE_SHAPE = (28, 28)
# Options that differ from the experiment's defaults (``ff-numpy train local --help``;
# the layer sizes are fixed by the architecture). Full: none (60 epochs, 50,000 images,
# peer strength 0.03). Quick: one epoch on a few thousand images.
FULL: dict = {}
QUICK = {"epochs": 1, "train_size": 3_000}
PEER = {"local": 0.03, "local_no_peer": 0.0}  # run folder -> peer strength
N_CHECK = 200  # images for the fast-path check
N_ACTIVITY = {"quick": 2_000, "full": 10_000}  # validation images for the unit means
N_SHOWN = 2  # layer-1 units drawn per location (the most active ones)
HIGHLIGHT = 0  # the location drawn in red in local_fields.png (0: top left)
PAPER_TEST_ERROR = 0.0116  # Hinton (2022), Sec. 3.2: local fields, 60 epochs
FIG_FIELDS = "local_fields.png"
FIG_RF = "local_receptive_fields.png"
FIG_PEER = "peer_norm.png"

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "07_local_receptive_fields.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. The architecture of footnote 8, as masks
#
# `paper_local_architecture()` returns one `LocalFields` per layer: `fields[loc]` lists the
# inputs that every unit of location `loc` sees, `channels` units per location, units
# numbered location-major (`unit = loc * channels + c`). `mask()` is the (n_in, n_out)
# 0/1 matrix, with `mask[i, j] = 1` iff unit `j` sees input `i`.
#
# What a unit of layer 2 sees *in pixels* is not stored anywhere: it is the product of
# the masks. Pixel `i` reaches unit `j` of layer 2 iff some layer-1 unit `k` sees `i` and
# `j` sees `k`, i.e. iff `(M1 @ M2)[i, j] > 0`; for layer 3, `(M1 @ M2 @ M3)[i, j] > 0`.
# Only one unit per location is needed (all of a location's units see the same inputs).


# %%
def describe_architecture(x_image: np.ndarray, out: Path) -> dict:
    arch = paper_local_architecture(IMAGE_SHAPE)
    masks = [f.mask() for f in arch]
    binary = all(np.isin(m, (0, 1)).all() for m in masks)
    fan_in_ok = all(np.all(m.sum(axis=0) == f.field_size) for m, f in zip(masks, arch))
    # Pixels reaching one unit per location of each layer: (784, n_loc) booleans,
    # M1 @ ... @ M_l[:, units], multiplied from the right (a few columns, not a full
    # product of the masks).
    footprints = []
    for l, f in enumerate(arch):
        reach = masks[l][:, np.arange(f.n_loc) * f.channels]  # (n_in, n_loc): a unit each
        for m in reversed(masks[:l]):
            reach = m @ reach  # (n_in of the layer below, n_loc)
        footprints.append(reach > 0)  # (784, n_loc)
    sides, square = [], True
    for fp in footprints:
        layer_sides = set()
        for loc in range(fp.shape[1]):
            img = fp[:, loc].reshape(IMAGE_SHAPE)
            r, c = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
            h, w = r[-1] - r[0] + 1, c[-1] - c[0] + 1
            square &= bool(img.sum() == h * w)  # a full rectangle, no holes
            layer_sides.add((int(h), int(w)))
        sides.append(sorted(layer_sides))
    rows = []
    print("layer  grid   fan-in  channels  units  mask ones  pixels seen  MACs vs dense")
    for l, (f, m) in enumerate(zip(arch, masks)):
        needed, dense = f.flops(batch=1)
        rows.append({
            "layer": l, "grid": list(f.grid), "fan_in": f.field_size, "channels": f.channels,
            "units": f.n_out, "ones": float(m.mean()), "pixels_seen": sides[l],
            "flops_fraction": needed / dense,
        })  # fmt: skip
        side = " or ".join(f"{h}x{w}" for h, w in sides[l])
        print(
            f"{l:5d}  {f.grid[0]}x{f.grid[1]}  {f.field_size:6d}  {f.channels:8d}  "
            f"{f.n_out:5d}  {100 * m.mean():8.1f}%  {side:>11s}  {100 * needed / dense:12.1f}%"
        )
    print(f"masks hold only 0 and 1: {binary}; every unit's fan-in is its field size: "
          f"{fan_in_ok}; each unit sees a full square of pixels: {square}")  # fmt: skip

    fig = Figure(figsize=(13, 8.5), layout="constrained")
    axes = fig.subplots(2, 3, gridspec_kw={"height_ratios": [1, 1.1]})
    names = ("layer 1: fields", "layer 2: pixels seen", "layer 3: pixels seen")
    for l, (ax, fp) in enumerate(zip(axes[0], footprints)):
        ax.imshow(x_image.reshape(IMAGE_SHAPE), cmap="gray_r", vmin=0, vmax=1)
        n_loc = fp.shape[1]
        for loc in range(n_loc):
            img = fp[:, loc].reshape(IMAGE_SHAPE)
            r, c = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
            inset = 0.12 * (loc % 4)  # overlapping squares, slightly apart to tell them
            red = loc == HIGHLIGHT
            ax.add_patch(Rectangle(
                (c[0] - 0.5 + inset, r[0] - 0.5 + inset), c[-1] - c[0] + 1 - 2 * inset,
                r[-1] - r[0] + 1 - 2 * inset, fill=False, lw=2.2 if red else 0.9,
                ec="red" if red else f"C{loc % 10}",
            ))  # fmt: skip
        h, w = sides[l][0]
        ax.set_title(f"{names[l]}: {n_loc} locations x {h} x {w}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for l, (ax, f, m) in enumerate(zip(axes[1], arch, masks)):
        ax.imshow(m, cmap="Greys", aspect="auto", interpolation="nearest")
        ax.set_title(f"mask of layer {l + 1}: {f.n_in} inputs x {f.n_out} units, "
                     f"{100 * m.mean():.1f}% ones", fontsize=9)  # fmt: skip
        ax.set_xlabel(f"unit (location-major: {f.n_loc} blocks of {f.channels})")
        ax.set_ylabel("input (pixel)" if l == 0 else "input (unit of the layer below)")
    fig.suptitle(
        "locally connected layers of footnote 8, no weight sharing (top: what one "
        f"unit per location sees, in pixels; red: location {HIGHLIGHT})",
        fontsize=11,
    )
    path = out / FIG_FIELDS
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return {
        "arch": arch, "layers": rows, "masks_binary": bool(binary),
        "fan_in_equals_field": bool(fan_in_ok), "footprints_square": bool(square),
        "figure": path,
    }  # fmt: skip


# %% [markdown]
# ## 2. The fast path computes the reference's numbers
#
# `Masked.forward` loops over locations: `x[:, field] @ W[field, units]`, (B, f) @ (f, c),
# which skips every zero of the mask. `Masked.forward_reference` is the plain masked-dense
# product `x @ W`, (B, n_in) @ (n_in, n_out). Same for the weight gradients
# (`weight_grad` and `weight_grad_reference`, the latter `(x^T dL_da) * mask`). Below:
# real images through freshly initialised layers (each layer's input is the normalised
# output of the one below), a random `dL_da` where units are active, and the largest
# difference relative to the largest reference value.


# %%
def timed(f, *args, repeats: int = 3):
    """``f(*args)`` and its fastest wall time over ``repeats`` calls."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = f(*args)
        best = min(best, time.perf_counter() - t0)
    return result, best


def fast_path_check(arch, x: np.ndarray) -> list[dict]:
    rng = np.random.default_rng([SEED, 7])
    h = normalize(np.array(x, dtype=np.float32), "rms")  # (N_CHECK, 784)
    rows = []
    print(f"\nfast path against masked-dense reference, {len(x)} images, float32:")
    print("layer  forward rel. diff  gradient rel. diff  fast s   reference s")
    for l, fields in enumerate(arch):
        layer = Masked.from_fields(fields, rng)
        (y_fast, _), t_fast = timed(layer.forward, h)  # forward returns (y, cache)
        (y_ref, _), t_ref = timed(layer.forward_reference, h)
        dL_da = (rng.standard_normal(y_fast.shape) * (y_fast > 0)).astype(np.float32)
        g_fast, tg_fast = timed(layer.weight_grad, h, dL_da)
        g_ref, tg_ref = timed(layer.weight_grad_reference, h, dL_da)
        row = {
            "layer": l,
            "forward_rel_diff": float(np.abs(y_fast - y_ref).max() / np.abs(y_ref).max()),
            "grad_rel_diff": float(np.abs(g_fast - g_ref).max() / np.abs(g_ref).max()),
            "grad_outside_mask": float(np.abs(g_fast[layer.mask == 0]).max()),
            "seconds_fast": t_fast + tg_fast,
            "seconds_reference": t_ref + tg_ref,
        }
        rows.append(row)
        print(
            f"{l:5d}  {row['forward_rel_diff']:17.1e}  {row['grad_rel_diff']:18.1e}  "
            f"{row['seconds_fast']:6.3f}  {row['seconds_reference']:12.3f}"
        )
        h = normalize(y_fast, "rms")
    return rows


# %% [markdown]
# ## 3. Train the locally connected net
#
# `experiments.get("local")` is the unsupervised experiment of tutorial 06 (real images
# against hybrids, a softmax on the normalised activities, here of all three layers)
# with `FFNet(local="paper")`: `Masked` layers built from the fields above. Its options
# include `--goodness-per layer|location` (one Eq. 1 loss per layer, or one per location
# over its channels, with the threshold scaled to the location's share of units) and
# `--peer-strength`. Two runs, the same in everything but the peer strength; the first
# (0.03, the default) is the one whose fields are drawn.


# %%
def train(folder: str, opts, out: Path) -> dict:
    args = experiments.default_args(
        EXPERIMENT,
        **(QUICK if opts.quick else FULL),
        peer_strength=PEER[folder],
        goodness_per=opts.goodness_per,
        seed=SEED,
        out=str(out / folder),
        data_dir=opts.data_dir,
        resume=opts.resume,
        progress=not opts.no_progress,
    )
    print(
        f"\ntraining {EXPERIMENT}: {args.epochs} epoch(s), {args.train_size} images, goodness "
        f"per {args.goodness_per}, peer strength {args.peer_strength} -> {args.out}"
    )
    metrics = experiments.get(EXPERIMENT).run(args)
    for r in metrics["history"]:
        print(f"  epoch {r['epoch']:3d}  validation error {100 * r['val_error_softmax']:5.2f}%")
    print(f"  test error (softmax on layers {metrics['config']['score_layers']}): "
          f"{100 * metrics['test_error_softmax']:.2f}%")  # fmt: skip
    return metrics


# %% [markdown]
# ## 4. Peer normalisation: every unit's mean activity
#
# For each run: the activities `y` (before normalisation) of every layer on validation
# images, averaged over the images per unit, sorted. A unit whose mean is 0 never fires
# (dead). The coefficient of variation (std / mean over the units) measures how unequal
# the units are; peer normalisation should make it smaller.


# %%
def peer_comparison(models: dict, metrics: dict, x: np.ndarray, out: Path, quick: bool) -> dict:
    report, means = {}, {}
    print(f"\nmean activity of every unit on {len(x)} validation images:")
    for folder, model in models.items():
        means[folder] = model.unit_means(x)
        report[folder] = {
            "peer_strength": PEER[folder],
            "dead_units": [int(np.sum(m == 0)) for m in means[folder]],
            "cv": [
                float(m.std() / m.mean()) if m.mean() > 0 else float("inf") for m in means[folder]
            ],  # fmt: skip
            "test_error_softmax": metrics[folder]["test_error_softmax"],
        }
        r = report[folder]
        print(
            f"  peer {r['peer_strength']:4}: dead units per layer {r['dead_units']}, "
            f"coefficient of variation {[round(c, 2) for c in r['cv']]}, "
            f"test error {100 * r['test_error_softmax']:.2f}%"
        )
    n_layers = len(next(iter(models.values())).hidden)
    fig = Figure(figsize=(4.2 * n_layers, 3.8), layout="constrained")
    axes = fig.subplots(1, n_layers)
    for l, ax in enumerate(axes):
        for folder in models:
            m = np.sort(means[folder][l])[::-1]
            r = report[folder]
            ax.plot(m, label=f"peer {r['peer_strength']}: {r['dead_units'][l]} dead, "
                    f"cv {r['cv'][l]:.2f}")  # fmt: skip
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_xlabel("unit (sorted by mean activity)")
        ax.set_ylabel("mean activity on validation images")
        ax.set_title(f"layer {l + 1} ({means[folder][l].size} units)", fontsize=10)
        ax.legend(fontsize=8)
    title = "peer normalisation (footnote 9): per-unit mean activity"
    if quick:
        title += " (quick run: too short for conclusions)"
    fig.suptitle(title, fontsize=11)
    fig.savefig(out / FIG_PEER, dpi=110)
    return {"runs": report, "means": means, "figure": out / FIG_PEER}


# %% [markdown]
# ## 5. What layer 1 learned
#
# Column `j` of layer 1's `W` (784 x 2048) is unit `j`'s receptive field; it is zero
# outside the unit's 10 x 10 field (`Masked` keeps it so: a masked weight does not exist,
# its gradient is zero). Each panel below puts one unit's 100 weights where its field
# sits on the 28 x 28 image, grey elsewhere. The panels follow the 4 x 4 grid of
# locations; at each location the `N_SHOWN` units with the highest mean activity.


# %%
def plot_local_fields(model: FFNet, arch, means_l0: np.ndarray, path: Path, quick: bool) -> dict:
    layer, f = model.layers[0], arch[0]
    W = layer.W  # (784, 2048)
    outside = float(np.abs(W[layer.mask == 0]).max())
    gh, gw = f.grid
    fig = Figure(figsize=(1.6 * gw * N_SHOWN + 0.5, 1.6 * gh + 0.8), layout="constrained")
    subfigs = fig.subfigures(1, N_SHOWN)
    for k, sub in enumerate(np.atleast_1d(subfigs)):
        axes = sub.subplots(gh, gw)
        for loc, ax in enumerate(axes.ravel()):
            units = np.arange(loc * f.channels, (loc + 1) * f.channels)
            j = units[np.argsort(means_l0[units])[::-1][k]]  # k-th most active here
            canvas = np.full(IMAGE_SHAPE[0] * IMAGE_SHAPE[1], np.nan)
            canvas[f.fields[loc]] = W[f.fields[loc], j]
            lim = np.abs(W[f.fields[loc], j]).max() or 1.0
            ax.set_facecolor("0.85")  # outside the field: no weights
            ax.imshow(canvas.reshape(IMAGE_SHAPE), cmap="seismic", vmin=-lim, vmax=lim,
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"unit {j}", fontsize=7)
        sub.suptitle(f"{'most' if k == 0 else f'#{k + 1} most'} active unit per location",
                     fontsize=9)  # fmt: skip
    title = "layer-1 receptive fields, placed on the image (red +, blue -)"
    if quick:
        title += "; quick run: still near their random start"
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    print(f"largest |weight| of layer 1 outside the fields after training: {outside}")
    return {"weights_outside_fields": outside, "figure": path}


# %%
def build_parser() -> argparse.ArgumentParser:
    p = tutorial.parser(
        __doc__,
        f"small runs: {QUICK}",
        DEFAULT_OUT,
        "folder for the figures and one subfolder per run",
        several_runs=True,
    )
    p.add_argument(
        "--goodness-per",
        choices=["layer", "location"],
        default="layer",
        help="one goodness per layer or per location, in both runs (default: layer)",
    )
    return p


def main(argv=None) -> dict:
    opts = build_parser().parse_args(argv)
    out = Path(opts.out)
    data = load_mnist(opts.data_dir, progress=not opts.no_progress)
    arch = describe_architecture(data.validation.x[0], out)
    fast = fast_path_check(arch["arch"], data.validation.x[:N_CHECK])

    metrics = {folder: train(folder, opts, out) for folder in PEER}
    models = {folder: load_ffnet(out / folder / "model.npz") for folder in PEER}
    x_act = data.validation.x[: N_ACTIVITY["quick" if opts.quick else "full"]]
    peer = peer_comparison(models, metrics, x_act, out, opts.quick)
    main_run = next(iter(PEER))  # peer strength 0.03, the experiment's default
    fields = plot_local_fields(
        models[main_run], arch["arch"], peer["means"][main_run][0], out / FIG_RF, opts.quick
    )
    print(
        f"\ntest error, local net with peer normalisation: "
        f"{100 * metrics[main_run]['test_error_softmax']:.2f}%  "
        f"(the paper, 60 epochs: {100 * PAPER_TEST_ERROR:.2f}%)"
    )
    if opts.quick:
        print(
            f"These numbers come from a tiny run ({QUICK['train_size']} images, "
            f"{QUICK['epochs']} epoch(s)): they show that everything runs, not what local "
            "fields or\npeer normalisation achieve. Run without --quick for that."
        )
    figures = [arch["figure"], fields["figure"], peer["figure"]]
    print("figures:")
    for f in figures:
        print(f"  {f}")
    return {
        "layers": arch["layers"],
        "masks_binary": arch["masks_binary"],
        "fan_in_equals_field": arch["fan_in_equals_field"],
        "footprints_square": arch["footprints_square"],
        "fast_path": fast,
        "weights_outside_fields": fields["weights_outside_fields"],
        "test_error_softmax": metrics[main_run]["test_error_softmax"],
        "peer": peer["runs"],
        "figures": figures,
    }


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
