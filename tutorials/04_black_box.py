r"""Tutorial 04: learning through a black box, Forward-Forward against backprop (paper Sec. 10).

What it teaches
    * What a *black box* between two layers is: an unknown, non-differentiable, stochastic
      transform (``ff_numpy.blackbox.BlackBox``). Here: a fixed random permutation of the
      units, quantisation of each row to a few levels, and multiplicative noise drawn
      afresh at every call. The tutorial applies the very box the runs will use to one
      activity vector and draws it (``box_transform.png``).
    * Why backprop cannot go through it: the quantiser is flat between its levels (its
      derivative is 0 almost everywhere, undefined at the jumps), the permutation is
      unknown and the noise is never the same twice. The tutorial measures this by finite
      differences. The usual workaround, the *straight-through* guess, pretends the box
      is the identity on the way back, and with the permutation unknown it sends each
      unit's error to another unit.
    * Why Forward-Forward does not care: every layer learns from its own input and its
      own goodness, whatever made that input. The FF run with the box is the same
      experiment with one option added (``--black-box 0``): no change to how it learns.
    * Five runs with the same architecture, epochs and data: FF without and with the
      box; backprop without the box, with the box and the straight-through guess
      (``--box-grad straight``), and with the box and learning only in the layers after
      it (``--box-grad none``: the layers below keep their random initial weights). A
      table of test errors and a bar chart (``test_errors.png``).

How long it takes (2 cores)
    ``--quick``: about 15-25 s (3 hidden layers of 200, 10,000 images, 3 epochs, five
    runs). Full: the paper's net (4 hidden layers of 2000) for FF's 60 epochs in all five
    runs, about 3-4 hours on two free cores (each FF run about 1 hour, each backprop run
    about 25-30 minutes); ``--epochs N`` shortens it, ``--resume`` continues an
    interrupted one.

What it should show
    * ``box_transform.png``: an activity vector before and after the box (scrambled,
      stepped and noisy), and every unit's transfer curve, a noisy staircase: flat
      between levels, jumps between them.
    * The finite-difference check: a small nudge to the box's inputs leaves (almost) every
      output bit-for-bit unchanged, and the few that change jump by a whole step. The one
      exception is each row's largest input, which sets the spacing of the levels.
    * The test errors, printed as a table and drawn in ``test_errors.png``. The claim
      under test (paper, Sec. 10): FF learns through the box with no change to how it
      learns, and backprop has only a wrong guess (straight-through) or no signal at all
      (``none``) for the layers below the box. How much the box costs each method is
      what the full run measures. The straight-through guess is wrong but not empty: it
      is a fixed scrambling of the error, akin to the fixed random feedback of feedback
      alignment (Lillicrap et al., 2016), so the layers below may still learn something
      from it. The quick run is far too small to rank the five runs: its numbers show
      that everything runs and nothing more; every number is computed when the script
      runs, none is written in it.

Run it::

    python tutorials/04_black_box.py --quick
    python tutorials/04_black_box.py --out runs/tutorial04 --data-dir ~/mnist

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws to a file, never to a window

from ff_numpy import experiments, tutorial
from ff_numpy.data import load_mnist

SEED = 0
BOX_AFTER = 0  # the box sits between hidden layers 0 and 1 (``--black-box 0``)
BOX_LEVELS = 4  # quantisation levels over [0, max of the row]
BOX_NOISE = 0.2  # each value is multiplied by 1 + 0.2 u, u ~ U(-1, 1)
# The same sizes for every run, FF and backprop alike; everything else is each
# experiment's default (``ff-numpy train supervised --help``, ``... backprop --help``).
FULL = {"hidden": [2000, 2000, 2000, 2000], "epochs": 60, "train_size": 50_000}
QUICK = {"hidden": [200, 200, 200], "epochs": 3, "train_size": 10_000}

# The five runs: (folder, label, experiment, options on top of the shared ones).
BOX = {"black_box": BOX_AFTER, "box_levels": BOX_LEVELS, "box_noise": BOX_NOISE}
RUNS = [
    ("ff", "FF", "supervised", {}),
    ("ff_box", "FF + box", "supervised", BOX),
    ("bp", "BP", "backprop", {}),
    ("bp_box_straight", "BP + box, straight-through", "backprop", {**BOX, "box_grad": "straight"}),
    ("bp_box_none", "BP + box, layers after it only", "backprop", {**BOX, "box_grad": "none"}),
]

N_SHOW = 40  # units drawn in the before/after panel
N_ROWS = 200  # images whose activities go through the box for the staircase and the check
FD_STEP = 1e-4  # finite-difference nudge, relative to the activities (which are ~1)
FIG_BOX = "box_transform.png"
FIG_ERRORS = "test_errors.png"

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "04_black_box.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. The box, applied to real activities
#
# `experiments.get("supervised").build(args, data)` builds the FF net the boxed run will
# start from, box included (its permutation is drawn from the seed, so it is the very box
# of the run). `model.sweep` gives each layer's normalised output `h`; `h` of layer 0 is
# what enters the box. The weights are still the initial ones, which does not matter
# here: the box does the same to any vector.
#
# What the box does to a row `h` (`ff_numpy/blackbox.py`):
#
# ```
# z = h[perm]                                    unit j moves to an unknown place
# z = round(z / step) * step, step = max(z) / 3  4 levels: 0, max/3, 2 max/3, max
# z = z * (1 + 0.2 u),  u ~ U(-1, 1)             fresh noise at every call
# ```
#
# The FF net then normalises `z` again before layer 1 sees it; the backprop net applies
# the same kind of box to its ReLU output.


# %%
def box_demo(args: argparse.Namespace, out: Path) -> dict:
    """Pass real activities through the run's box; draw it; check its derivative."""
    data = load_mnist(args.data_dir, progress=args.progress)
    model, _ = experiments.get("supervised").build(args, data)
    box = model.boxes[BOX_AFTER]
    x = data.test.x[:N_ROWS]
    h = model.sweep(x)[1][BOX_AFTER]  # (N_ROWS, n): normalised output of layer 0
    rng = np.random.default_rng([SEED, 4])
    z1 = box(h, rng)  # two calls, same input: different noise
    z2 = box(h, rng)

    # Undo the permutation (which the learner does not know) to see each unit's transfer
    # curve: unit perm[k] of the input is unit k of the output.
    top = np.abs(h).max(axis=1, keepdims=True)  # the box's quantisation range per row
    z_back = np.empty_like(z1)
    z_back[:, box.perm] = z1

    # The derivative, by finite differences: nudge the inputs a little in a random
    # direction and replay the same noise (the same generator state). Each row's largest
    # input is left alone: the levels are fractions of it, so it moves them all.
    v = np.random.default_rng([SEED, 5]).standard_normal(h.shape).astype(h.dtype)
    v[np.arange(len(h)), np.argmax(h, axis=1)] = 0
    a = box(h, np.random.default_rng(7))
    b = box(h + FD_STEP * v, np.random.default_rng(7))
    changed = b != a
    step = top / (box.levels - 1)
    jump = np.abs(b - a)[changed] / np.broadcast_to(step, h.shape)[changed]
    zeroed = float(np.mean(np.round(h / step)[h > 0] == 0))  # of the nonzero inputs
    report = {
        "n_values": int(h.size),
        "fd_changed": int(changed.sum()),
        "fd_changed_fraction": float(changed.mean()),
        "fd_mean_jump_steps": float(jump.mean()) if jump.size else 0.0,
        "noise_difference": float(np.abs(z1 - z2).mean() / np.abs(z1).mean()),
        "zeroed_fraction": zeroed,
        "straight_through_right_unit": float(np.mean(box.perm == np.arange(box.n))),
    }
    print(
        f"the box: width {box.n}, {box.levels} levels, noise {box.noise}; of {h.size} "
        f"activities ({N_ROWS} test images):\n"
        f"  {100 * zeroed:.0f}% of the nonzero ones are rounded down to 0;\n"
        f"  the same input twice gives outputs that differ by "
        f"{100 * report['noise_difference']:.0f}% (mean |z1 - z2| / mean |z1|);\n"
        f"  a nudge of {FD_STEP:g} x N(0, 1) to every input but each row's largest, "
        f"with the same noise,\n  changed {report['fd_changed']} of {h.size} outputs "
        f"({100 * report['fd_changed_fraction']:.3f}%); the others are bit-for-bit the "
        f"same,\n  and those that changed jumped by "
        f"{report['fd_mean_jump_steps']:.2f} quantisation steps on average.\n"
        f"  So the derivative is 0 almost everywhere (and infinite at the jumps): exact\n"
        f"  backprop sends nothing below the box. The straight-through guess treats the\n"
        f"  box as the identity; with this permutation it sends a unit's error to the\n"
        f"  right unit for {100 * report['straight_through_right_unit']:.1f}% of units."
    )

    fig = Figure(figsize=(12, 4.2))
    ax_bars, ax_stair = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    row, k = 0, np.arange(N_SHOW)
    ax_bars.bar(k - 0.2, h[row, :N_SHOW], width=0.4, label="h, into the box (unit order)")
    ax_bars.bar(k + 0.2, z1[row, :N_SHOW], width=0.4, label="box(h), call 1")
    ax_bars.plot(k + 0.2, z2[row, :N_SHOW], "k.", ms=4, label="box(h), call 2")
    for level in range(box.levels):
        ax_bars.axhline(level * step[row, 0], color="gray", lw=0.6, ls="--")
    ax_bars.set_xlabel(f"unit (first {N_SHOW} of {box.n}), one test image")
    ax_bars.set_ylabel("activity")
    ax_bars.set_title("one activity vector: permuted, quantised (dashed: levels), noisy")
    ax_bars.legend(fontsize=8)
    s = np.linspace(0, 1, 401)
    ax_stair.plot(
        (h / top).ravel(), (z_back / top).ravel(), ".", ms=1.5, alpha=0.3, label="box output"
    )
    ax_stair.plot(s, np.round(s * (box.levels - 1)) / (box.levels - 1), "k-", lw=1,
                  label="without the noise")  # fmt: skip
    ax_stair.set_xlabel("unit's input / max of its row")
    ax_stair.set_ylabel("unit's output / max of its row (permutation undone)")
    ax_stair.set_title("transfer curve: flat steps, jumps, noise")
    ax_stair.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = out / FIG_BOX
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    report["figure"] = path
    return report


# %% [markdown]
# ## 2. Five runs, same architecture, epochs and data
#
# Each run is a paper experiment called from Python: `experiments.default_args(name,
# **options)` builds the namespace `ff-numpy train NAME` would, and
# `experiments.get(name).run(args)` trains and writes `metrics.json`, `model.npz` and
# `learning_curve.png` to the run's own subfolder of `--out`.
#
# The FF run with the box differs from the one without it in `black_box` alone. In
# `FFNet.train_step` the box is one line between layer `l`'s update and layer `l + 1`'s
# forward pass; nothing is sent back through it. In `MLP.backward` the box is where the
# chain rule breaks: `box_grad="straight"` uses the gradient with respect to the box's
# output as if it were the gradient with respect to its input; `"none"` stops there.


# %%
def train_all(shared: dict, out: Path) -> dict:
    """Run the five experiments; return each one's metrics by folder name."""
    results = {}
    for folder, label, name, options in RUNS:
        args = experiments.default_args(name, **shared, **options, out=str(out / folder))
        print(f"\n--- {label}: {name}, hidden {args.hidden}, {args.epochs} epochs -> {args.out}")
        results[folder] = experiments.get(name).run(args)
    return results


def errors_of(metrics: dict) -> dict:
    """A run's test errors by classifier: goodness and softmax for FF, one for backprop."""
    if "test_error_goodness" in metrics:
        return {
            "goodness": metrics["test_error_goodness"],
            "softmax": metrics["test_error_softmax"],
        }
    return {"backprop": metrics["test_error"]}


# %% [markdown]
# ## 3. Test errors
#
# FF classifies in two ways (tutorial 02): by goodness (every label written in, the best
# summed goodness of the layers after the first) and by a softmax readout of the
# neutral-label activities of those layers. Backprop's network has one output.


# %%
def report_errors(results: dict, out: Path, quick: bool) -> Path:
    print("\nrun                              classifier  test error  training s")
    for folder, label, _, _ in RUNS:
        m = results[folder]
        seconds = sum(r["train_seconds"] for r in m["history"])  # batches only
        for kind, e in errors_of(m).items():
            print(f"{label:32s} {kind:10s}  {100 * e:9.2f}%  {seconds:10.1f}")

    fig = Figure(figsize=(9, 4.2))
    ax = fig.subplots()
    colours = {"goodness": "C0", "softmax": "C9", "backprop": "C1"}
    x = np.arange(len(RUNS))
    for i, (folder, _, _, _) in enumerate(RUNS):
        errs = errors_of(results[folder])
        width = 0.8 / len(errs)
        for j, (kind, e) in enumerate(errs.items()):
            xi = x[i] - 0.4 + width * (j + 0.5)
            bar = ax.bar(xi, 100 * e, width=width * 0.95, color=colours[kind])
            bar.set_label(kind if i in (0, 2) else None)
            ax.annotate(f"{100 * e:.1f}", (xi, 100 * e), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([label.replace(", ", ",\n") for _, label, _, _ in RUNS], fontsize=8)
    ax.set_ylabel("test error (%)")
    hidden = results["ff"]["config"]["hidden"]
    epochs = results["ff"]["config"]["epochs"]
    title = f"{len(hidden)} x {hidden[0]} hidden, {epochs} epochs, box after layer {BOX_AFTER}"
    if quick:
        title += "\n(quick run: too small for conclusions)"
    ax.set_title(title, fontsize=10)
    ax.legend(title="classifier", fontsize=8)
    fig.tight_layout()
    path = out / FIG_ERRORS
    fig.savefig(path, dpi=120)
    return path


# %%
def build_parser() -> argparse.ArgumentParser:
    p = tutorial.parser(
        __doc__,
        f"small runs: {QUICK}",
        DEFAULT_OUT,
        "folder for the figures and one subfolder per run",
        several_runs=True,
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run (override)")
    return p


def main(argv=None) -> dict:
    opts = build_parser().parse_args(argv)
    shared = dict(QUICK if opts.quick else FULL)
    if opts.epochs is not None:
        shared["epochs"] = opts.epochs
    shared.update(
        seed=SEED, data_dir=opts.data_dir, resume=opts.resume, progress=not opts.no_progress
    )
    out = Path(opts.out)
    demo_args = experiments.default_args("supervised", **shared, **BOX)
    box = box_demo(demo_args, out)
    results = train_all(shared, out)
    errors_fig = report_errors(results, out, opts.quick)
    if opts.quick:
        print(
            f"\nThese numbers come from a tiny run ({QUICK['train_size']} images, "
            f"{shared['epochs']} epochs, layers of {QUICK['hidden'][0]}): they show that "
            "everything runs,\nnot how the methods compare. Run without --quick for real "
            "conclusions."
        )
    figures = [box["figure"], errors_fig]
    print("figures:")
    for f in figures:
        print(f"  {f}")
    return {
        "box": {k: v for k, v in box.items() if k != "figure"},
        "errors": {folder: errors_of(results[folder]) for folder, *_ in RUNS},
        "figures": figures,
    }


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
