# %% [markdown]
# # Tutorial 05: Forward-Forward against backprop
#
# The paper's yardstick (Sec. 3.1) is backpropagation: a few fully connected ReLU layers
# trained with backprop reach about 1.4% test error on MNIST in about 20 epochs. This
# tutorial writes backprop's step out next to FF's, and then trains both on the same
# network, recording the test error after every epoch, to compare them by epochs and by
# seconds of training.
#
# **You will learn**
#
# * backprop's step for the library's baseline (`ff_numpy.backprop.MLP`) written out:
#   the forward pass, the softmax cross-entropy and the backward pass layer by layer,
#   then the momentum update; asserted equal to the library's gradients and to its
#   training step;
# * what FF does not do (no backward pass, nothing kept for one), and what it does more
#   of: counting the matrix products of one step of each predicts how an FF epoch
#   compares with a backprop epoch in time;
# * training both methods from Python with the test error recorded after every epoch
#   (`track_test`), and reading the comparison per epoch and per second of training;
# * the full run's comparison, and how to draw the figure from two runs made elsewhere.
#
# **Time** (2 cores): the notebook runs the quick setting, about 20 s (3 x 200 units for
# 3 epochs on 10,000 images, each method). As a script,
# `python tutorials/05_ff_vs_backprop.py` runs the full setting, the paper's comparison:
# 4 x 2000 units, FF for 60 epochs and backprop for 20, on 50,000 images (about 1.5
# hours of FF and 20 minutes of backprop on one core each, more with the per-epoch test
# evaluations); `--quick` runs the small one, `--resume` continues interrupted runs, and
# `--from-runs FF_DIR BP_DIR` trains nothing and draws the comparison of two runs made
# elsewhere.
#
# **Exercises** at the end: the softmax cross-entropy and its gradient, one backprop
# layer's backward pass (checked by finite differences), and two questions on cost and
# memory.

# %%
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, MaxNLocator
from scipy.special import softmax

from ff_numpy import experiments, tutorial
from ff_numpy.backprop import MLP
from ff_numpy.data import load_mnist
from ff_numpy.optim import SGD

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`, `--from-runs`; `--help` lists them); in a notebook this
# cell picks the quick setting and writes under `out/` beside the notebook. `SHARED` is
# what both runs share, `EPOCHS` each method's epochs; FF uses hard negatives, as in the
# paper's best supervised run, and backprop the experiment's defaults (SGD with classic
# momentum 0.9 at rate 0.05, weight decay 5e-4).

# %% tags=["script-only"]
NAME = "05_ff_vs_backprop"
FF, BP = "supervised", "backprop"  # the two experiments
QUICK = {"hidden": [200, 200, 200], "train_size": 10_000}
QUICK_EPOCHS = {FF: 3, BP: 3}
FULL = {"hidden": [2000, 2000, 2000, 2000], "train_size": 50_000}
FULL_EPOCHS = {FF: 60, BP: 20}
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
parser = tutorial.parser(
    "Tutorial 05: Forward-Forward against backprop, by epochs and by seconds of training.",
    f"small runs: {QUICK}, epochs {QUICK_EPOCHS}",
    HERE / "out" / NAME,
    "folder for the figure and the two runs (ff/, bp/)",
    several_runs=True,
)
parser.add_argument(
    "--from-runs",
    nargs=2,
    type=Path,
    metavar=("FF_DIR", "BP_DIR"),
    default=None,
    help="train nothing: draw the comparison from these two run folders' metrics.json",
)
options = tutorial.parse_options(parser)
SHARED = QUICK if options.quick else FULL
EPOCHS = QUICK_EPOCHS if options.quick else FULL_EPOCHS
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: {SHARED}, epochs {EPOCHS}")
if options.from_runs:
    print("drawing from the runs in", *options.from_runs)
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. Backprop's step, written out
#
# The baseline is an MLP with the hidden layers of the setting and a linear output
# layer of 10 logits. With `h_0 = x`, layers `l = 0 .. L-1` (the last one the output):
#
# ```
# forward                               backward (from the bottom line up)
# a_l = h_l W_l + b_l                   dL/dW_l = h_l^T dL/da_l,  dL/db_l = sum_rows dL/da_l
#                                       dL/dh_l = dL/da_l W_l^T   (not needed for l = 0)
# h_l+1 = relu(a_l)      (l < L-1)      dL/da_l = dL/dh_l+1 * [a_l > 0]
# z = a_L-1              (the logits)
# L = -mean_n log softmax(z_n)[t_n]     dL/dz = (softmax(z) - T) / B,  T one-hot
# ```
#
# Every weight's gradient needs the error `dL/da` of its layer, which comes down from
# the loss through every layer above. Here it is in NumPy, in float64 so that the
# comparison with the library holds to rounding error (`1e-10`):

# %%
SEED = 0
data = load_mnist(options.data_dir)
hidden = SHARED["hidden"]


def forward_backward(W, b, x, labels):
    """The loss of a batch and the gradient of every weight and bias, by hand."""
    hs = [x]  # the input of every layer: kept for the backward pass
    for l in range(len(W)):
        a = hs[l] @ W[l] + b[l]  # (B, n_l) @ (n_l, n_l+1) -> (B, n_l+1)
        if l < len(W) - 1:
            hs.append(np.maximum(a, 0))
    B = len(x)
    q = softmax(a, axis=1)  # a: the logits z, (B, 10)
    L = -np.mean(np.log(q[np.arange(B), labels]))
    T = np.eye(10)[labels]  # one-hot targets
    dL_da = (q - T) / B  # the output layer has no ReLU: dL/da = dL/dz
    grads = {}
    for l in reversed(range(len(W))):
        grads[f"layer{l}.W"] = hs[l].T @ dL_da  # (n_l, B) @ (B, n_l+1)
        grads[f"layer{l}.b"] = dL_da.sum(axis=0)
        if l > 0:
            dL_dh = dL_da @ W[l].T  # the error goes down: (B, n_l+1) @ (n_l+1, n_l)
            dL_da = dL_dh * (hs[l] > 0)  # through the ReLU of the layer below
    return L, grads


mlp = MLP(784, hidden, 10, np.random.default_rng([SEED, 1]), dtype=np.float64)
x, labels = data.train.x[:100].astype(np.float64), data.train.y[:100]
L, grads = forward_backward(mlp.W, mlp.b, x, labels)
L_lib, grads_lib = mlp.loss_and_grads(x, labels)
print(f"loss: ours {L:.6f}, MLP.loss_and_grads {L_lib:.6f}")
for name in grads:
    err = tutorial.rel_error(grads[name], grads_lib[name])
    print(f"  d loss / d {name:9s} {str(grads[name].shape):12s} relative error {err:.1e}")
    assert err < 1e-10

# %% [markdown]
# The update is SGD with classic momentum, the backprop experiment's optimiser: with
# `g' = g + lambda W` (weight decay on the weights, not the biases),
# `v <- 0.9 v + g'` and `W <- W - lr v`. Three steps by hand from copies of the MLP's
# weights, and three of the library's `MLP.train_step` (which folds the weight gradient
# into the velocity's update instead of forming it), on the same batches:

# %%
W, b = [w.copy() for w in mlp.W], [c.copy() for c in mlp.b]
velocity = {name: np.zeros_like(g) for name, g in grads.items()}
LR, MOMENTUM, DECAY = 0.05, 0.9, 5e-4
opt = SGD(LR, momentum=MOMENTUM, dampening=0.0, weight_decay=DECAY)
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    xb, yb = data.train.x[batch].astype(np.float64), data.train.y[batch]
    _, g = forward_backward(W, b, xb, yb)
    for l in range(len(W)):
        for name, param, decay in ((f"layer{l}.W", W[l], DECAY), (f"layer{l}.b", b[l], 0.0)):
            velocity[name] = MOMENTUM * velocity[name] + g[name] + decay * param
            param -= LR * velocity[name]
    mlp.train_step(xb, yb, opt)
for l in range(len(W)):
    err = max(tutorial.rel_error(W[l], mlp.W[l]), tutorial.rel_error(b[l], mlp.b[l]))
    print(f"layer {l}: weights after 3 steps, ours vs MLP.train_step: relative error {err:.1e}")
    assert err < 1e-10

# %% [markdown]
# ## 2. What FF does not do, and what it does more of
#
# An FF layer's step (tutorials 01 and 02) needs only its own input and activities:
# forward, goodness, local gradient, update, and on to the next layer. There is no
# `dL/dh` line: no error comes down, and nothing has to be kept for a backward pass.
# Backprop keeps every layer's input `h_l` until the error reaches it.
#
# FF does more forward work instead. Count the matrix products of one training step per
# image, each of size `n_in x n_out` for a layer:
#
# * FF: the positive and the negative row forward (2), their weight gradient (2), and a
#   pass with the neutral label that trains the softmax readout and draws the hard
#   negatives (1): 5 per hidden layer;
# * backprop: forward (1), weight gradient (1), the error sent down (1, not for the
#   first layer): 3 per layer, 2 for the first, plus the output layer.

# %%
sizes = [784, *hidden]
macs = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]  # per image
readout = sum(hidden[1:]) * 10  # FF's softmax reads every hidden layer but the first
ff_macs = 5 * sum(macs) + 2 * readout  # its forward and gradient
bp_macs = 3 * sum(macs) - macs[0] + 3 * hidden[-1] * 10  # the output layer: 3 products
predicted_ratio = ff_macs / bp_macs
print(f"multiply-adds per training image: FF {ff_macs / 1e6:.2f} M, backprop {bp_macs / 1e6:.2f} M")
print(f"predicted cost of an FF epoch: {predicted_ratio:.2f} x a backprop epoch")
stored = sum(sizes[:-1]) + sum(hidden)  # backprop keeps h_l (and a mask) per layer
print(f"values backprop keeps per image for its backward pass: {stored}; FF: none between layers")

# %% [markdown]
# ## 3. Two runs, same network and data
#
# Both through the library's experiments, with `track_test=True`: the test error is
# measured after every epoch, for the curves only (the test set chooses nothing here).
# Each epoch's `train_seconds` counts the training batches only, so evaluating more
# often does not make a method look slower; `train_cpu_seconds` is the process's CPU
# time over the same batches, fair even when other work runs at the same time. FF's
# goodness error (ten passes per image) is measured every 5 epochs and after the last.

# %%
if options.from_runs:
    ff_dir, bp_dir = options.from_runs
else:
    ff_dir, bp_dir = OUT / "ff", OUT / "bp"
    for name, folder, extra in (
        (FF, ff_dir, {"negatives": "hard", "eval_every": 5}),
        (BP, bp_dir, {}),
    ):
        args = experiments.default_args(
            name,
            **SHARED,
            **extra,
            epochs=EPOCHS[name],
            track_test=True,
            seed=SEED,
            out=str(folder),
            data_dir=options.data_dir,
            resume=options.resume,
            progress=not options.no_progress,
        )
        experiments.get(name).run(args)
        print(f"{name}: {args.epochs} epochs -> {folder}")


# %% [markdown]
# Everything from here on reads only the runs' `metrics.json`, so it draws runs made
# elsewhere as well (`--from-runs`). A run made without `--track-test` has no per-epoch
# test error: its validation error is drawn instead, and the axis says so.


# %%
def load_metrics(run_dir, expected):
    """A run's metrics.json, refusing a run of another experiment than ``expected``."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{path} not found: expected the folder of a run made by ff-numpy")
    metrics = json.loads(path.read_text())
    found = metrics.get("config", {}).get("experiment")
    if found is not None and found != expected:
        raise ValueError(f"{path} is a {found!r} run, expected a {expected!r} run")
    return metrics


def curves(metrics, kinds):
    """A run's error curves: ``{label: (epochs, {clock: cumulative seconds}, errors)}``,
    the split drawn ("test" or "validation") and the clocks found (wall, cpu)."""
    hist = metrics["history"]
    has_test = any(k.startswith("test_error") for r in hist for k in r)
    prefix, split = ("test_error", "test") if has_test else ("val_error", "validation")
    clocks = {"wall": "train_seconds" if all("train_seconds" in r for r in hist) else "seconds"}
    if all("train_cpu_seconds" in r for r in hist):
        clocks["cpu"] = "train_cpu_seconds"
    epochs = np.array([r["epoch"] for r in hist])
    seconds = {c: np.cumsum([r[key] for r in hist]) for c, key in clocks.items()}
    out = {}
    for label, suffix in kinds.items():
        rows = [i for i, r in enumerate(hist) if prefix + suffix in r]
        if rows:
            err = np.array([hist[i][prefix + suffix] for i in rows])
            out[label] = (epochs[rows], {c: t[rows] for c, t in seconds.items()}, err)
    return out, split, clocks


ff, bp = load_metrics(ff_dir, FF), load_metrics(bp_dir, BP)
ff_curves, ff_split, ff_clocks = curves(
    ff, {"FF, softmax": "_softmax", "FF, goodness": "_goodness"}
)
bp_curves, bp_split, bp_clocks = curves(bp, {"backprop": ""})
for label, (_, _, err) in {**ff_curves, **bp_curves}.items():
    split = bp_split if label == "backprop" else ff_split
    print(f"{label:12s} {split} error by epoch: " + " ".join(f"{100 * v:.2f}" for v in err))

# %%
STYLES = {
    "FF, softmax": dict(color="C0", marker="o", ls="-"),
    "FF, goodness": dict(color="C0", marker="s", ls="--", mfc="none"),
    "backprop": dict(color="C1", marker="^", ls="-"),
}
clocks = [c for c in ("wall", "cpu") if c in ff_clocks and c in bp_clocks]
fig = Figure(figsize=(6 + 5 * len(clocks), 4.5), layout="constrained")
ax_e, *ax_ts = fig.subplots(1, 1 + len(clocks), sharey=True)
for label, (e, secs, err) in {**ff_curves, **bp_curves}.items():
    split = bp_split if label == "backprop" else ff_split
    name = label if split == "test" else f"{label} ({split})"
    ms = 4 if len(e) <= 30 else 2
    ax_e.plot(e, 100 * err, ms=ms, label=name, **STYLES[label])
    for ax, c in zip(ax_ts, clocks):
        ax.plot(secs[c], 100 * err, ms=ms, label=name, **STYLES[label])
ax_e.set_ylabel("test error (%)" if {ff_split, bp_split} == {"test"} else "error (%)")
ax_e.set_xlabel("epoch")
ax_e.set_title("against epochs")
ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))
ax_e.set_yscale("log")
what = "training only" if {ff_clocks["wall"], bp_clocks["wall"]} == {"train_seconds"} else "all"
xlabels = {"wall": f"cumulative seconds ({what})", "cpu": "cumulative CPU seconds of training"}
for ax, c in zip(ax_ts, clocks):
    ax.set_xlabel(xlabels[c])
    ax.set_title({"wall": "against training time", "cpu": "against CPU time"}[c])
    ax.set_xlim(left=0)
for ax in (ax_e, *ax_ts):
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="both", labelsize=7)
    ax.grid(True, which="both", alpha=0.3)
ax_e.legend(fontsize=8)
h_ff, h_bp = ff["config"].get("hidden"), bp["config"].get("hidden")
fig.suptitle(
    f"FF {h_ff} for {ff['config'].get('epochs')} epochs, backprop {h_bp} for "
    f"{bp['config'].get('epochs')}, {ff['config'].get('train_size')} training images"
    + ("  (quick run: too small for conclusions)" if options.quick else ""),
    fontsize=10,
)
tutorial.show(fig, OUT / "ff_vs_backprop.png")

# %% [markdown]
# The final test errors (the whole test set, at the end of each run) and what an epoch
# cost, against the prediction of section 2:

# %%
FINAL = {"ff": ("test_error_goodness", "test_error_softmax"), "bp": ("test_error",)}
NAMES = {"test_error_goodness": "by goodness", "test_error_softmax": "by softmax"}
NAMES["test_error"] = "of its output"
summary = {}
for tag, m in (("ff", ff), ("bp", bp)):
    secs = [r.get("train_seconds", r["seconds"]) for r in m["history"]]
    final = {k: m[k] for k in FINAL[tag] if k in m}  # absent if the run has not finished
    summary[tag] = {
        "epochs": len(secs),
        "train_seconds": float(np.sum(secs)),
        "seconds_per_epoch": float(np.mean(secs)),
        **final,
    }
    errs = ", ".join(f"{NAMES[k]} {100 * v:.2f}%" for k, v in final.items())
    print(f"{tag}: {len(secs)} epochs, {np.sum(secs):.1f} s of training; test error {errs}")
epoch_cost_ratio = summary["ff"]["seconds_per_epoch"] / summary["bp"]["seconds_per_epoch"]
print(
    f"one FF epoch took {epoch_cost_ratio:.2f} x a backprop epoch (counted: {predicted_ratio:.2f})"
)

# %% [markdown]
# In the quick setting both methods have barely started, and small layers leave the
# timings to overheads that the products do not count. The full setting is the paper's
# comparison: 4 x 2000 units, FF (hard negatives) for 60 epochs, backprop for 20, each
# on one core of its own. It gave (`docs/RESULTS.md`, "FF against backprop, same net"):
# FF 1.38% (goodness) / 1.39% (softmax), backprop 1.43%; an FF epoch cost 1.55 times a
# backprop epoch (the count predicts 1.73); backprop is ahead at every one of its
# epochs, and FF first reaches backprop's final error at epoch 41, after 3.2 times
# backprop's whole training time:

# %%
tutorial.show_docs_figure(
    "ff_vs_backprop.png",
    "full run: 4 x 2000, FF 60 epochs, backprop 20, one core each, docs/RESULTS.md",
)

# %% [markdown]
# So FF, with no backward pass, ends level with this backprop baseline, but needs three
# times the epochs and about four times the training time to get there.
#
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_05.py` (`from solutions.tutorial_05 import layer_backward`
# in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the softmax cross-entropy
#
# Write `softmax_cross_entropy(z, labels)`: the mean over the batch of
# `-log softmax(z_n)[t_n]` and its gradient `dL/dz` (B, 10). Logits can be large
# (thousands, early in a diverging run): compute the log-softmax without overflow
# (subtract each row's maximum first, or use `scipy.special.log_softmax`).


# %%
def softmax_cross_entropy(z, labels):
    """L = -mean_n log softmax(z_n)[labels_n] (a float) and dL/dz (B, C)."""
    raise NotImplementedError("exercise 1: write the loss and its gradient")


tutorial.self_check(tutorial.check_softmax_cross_entropy, softmax_cross_entropy)

# %% [markdown]
# ### Exercise 2: one layer's backward pass
#
# For one hidden layer `y = relu(h W + b)`, given the gradient `dL/dy` that came down
# from above, write `layer_backward(h, W, b, dL_dy)` returning `dL/dh` (what goes down
# to the layer below), `dL/dW` and `dL/db`. The self-check compares all three with
# central differences (CS231n's gradient check). Which of the three does an FF layer
# never compute?


# %%
def layer_backward(h, W, b, dL_dy):
    """dL/dh (B, n_in), dL/dW (n_in, n_out), dL/db (n_out,) for y = relu(h W + b)."""
    raise NotImplementedError("exercise 2: write the layer's backward pass")


tutorial.self_check(tutorial.check_layer_backward, layer_backward)

# %% [markdown]
# <details><summary>Worked answer: which one does FF never compute?</summary>
#
# `dL/dh`, the error sent to the layer below. An FF layer computes `dL/dW` and `dL/db`
# of its *own* loss (the same two lines, with `dL/dy = 2 y dL/dG` from its goodness),
# and stops: `ff_numpy.layers` has no method that returns a gradient with respect to a
# layer's input, so no error signal can travel between layers.
# </details>
#
# ### Question 3: why is an FF epoch not cheaper?
#
# FF has no backward pass, yet its epoch took longer than backprop's. Why? What would
# make FF's epoch cheaper than backprop's?
#
# <details><summary>Worked answer</summary>
#
# Count the products of section 2. Backprop's backward pass costs two products per layer
# (the weight gradient and the error sent down), its forward one: 3. FF does no backward
# pass, but it runs *two* rows per image (positive and negative) forward and forms the
# weight gradient of both (4), plus a neutral-label pass for the softmax readout and the
# hard negatives (1): 5. So an FF epoch costs about 5/3 of a backprop epoch, and the
# full run measured 1.55 (the count predicts 1.73; the products are not all that an
# epoch does).
#
# Cheaper variants: random negatives need no neutral-label pass if the softmax is not
# trained (or trained every few batches), which gives 4/3; classifying only by goodness
# drops the readout. FF's real advantages lie elsewhere (question 4): no storage of
# activations for a backward pass, and layers that can learn as soon as their input
# arrives.
# </details>
#
# ### Question 4: what does backprop need that FF does not?
#
# <details><summary>Worked answer</summary>
#
# * **The forward pass's activations, kept.** Backprop stores every layer's input
#   `h_l` (and the ReLU masks) until the error comes back down (section 2 counts them);
#   for long sequences or deep networks that memory dominates. An FF layer can discard
#   its input as soon as it has updated.
# * **A backward pass that waits.** No weight of layer 0 can change until the error has
#   gone through every layer above; FF's layers learn in the same sweep that computes
#   them, so a layer could learn while the next image's activity is already flowing
#   (pipelining), or learn from a stream in real time.
# * **A known, differentiable forward pass.** The backward pass multiplies by every
#   step's derivative (tutorial 04's black box has none); FF never differentiates
#   anything but a layer's own goodness.
# * **Symmetric weights on the way back.** `dL/dh = dL/da W^T` uses the forward weights
#   transposed: the "weight transport" problem that makes backprop implausible in a
#   brain. FF sends nothing back.
# </details>
