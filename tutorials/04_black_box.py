# %% [markdown]
# # Tutorial 04: learning through a black box (paper, Sec. 10)
#
# Backprop needs the derivative of every step between a weight and the loss. Section 10
# of the paper points out that Forward-Forward does not: each layer learns from its own
# input and its own goodness, whatever made that input, so the forward computation may
# contain a part whose details are unknown. This tutorial puts such a part, a *black
# box*, between two layers, and trains both methods through it.
#
# **You will learn**
#
# * what the library's black box does (`ff_numpy.blackbox.BlackBox`): a fixed random
#   permutation of the units, quantisation of each row to a few levels, and
#   multiplicative noise drawn afresh at every call; written out and applied to real
#   activities;
# * why backprop cannot go through it, measured by finite differences, and what the
#   usual workaround (the *straight-through* guess) does with an unknown permutation;
# * the FF step with the box between two layers, written out from the library's parts:
#   the box is one line of the forward sweep and nothing goes back through it; each
#   layer's gradient is asserted equal to the library's `FFNet.train_step`;
# * five runs with the same network, epochs and data through the library's experiments:
#   FF without and with the box; backprop without the box, with the box and the
#   straight-through guess, and with the box and learning only above it.
#
# **Time** (2 cores): the notebook runs the quick setting, about 30 s (five runs of
# 3 x 200 units for 3 epochs on 10,000 images). As a script,
# `python tutorials/04_black_box.py` runs the full setting, the five runs of the
# results page (3 x 500 units, 10 epochs on 50,000 images, about 5 minutes); `--quick`
# runs the small one, `--epochs N` changes the epochs of every run, `--resume`
# continues interrupted runs.
#
# **Exercises** at the end: the box's quantiser, the backward pass of a known
# permutation, why FF trains through a box that backprop cannot, and why the
# straight-through guess still learns.

# %%
import copy
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import experiments, goodness, tutorial
from ff_numpy.blackbox import BlackBox
from ff_numpy.data import load_mnist
from ff_numpy.layers import Dense
from ff_numpy.loss import Logistic
from ff_numpy.model import FFNet
from ff_numpy.negatives import LabelCode, RandomWrongLabels
from ff_numpy.norm import normalize
from ff_numpy.optim import make_optimizer

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`, `--epochs`; `--help` lists them); in a notebook this cell
# picks the quick setting and writes under `out/` beside the notebook. `SHARED` is what
# the five runs share (network, epochs, data); `FF` and `BP` are each method's own
# options, those of the results page's runs.

# %% tags=["script-only"]
NAME = "04_black_box"
QUICK = {"hidden": [200, 200, 200], "epochs": 3, "train_size": 10_000}
FULL = {"hidden": [500, 500, 500], "epochs": 10, "train_size": 50_000}
FF = {"negatives": "hard", "lr": 0.005}  # the supervised experiment's options
BP = {"lr": 0.03, "weight_decay": 0.0}  # the backprop experiment's options
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
parser = tutorial.parser(
    "Tutorial 04: learning through a black box (Sec. 10), FF against backprop.",
    f"small runs: {QUICK}",
    HERE / "out" / NAME,
    "folder for the figures and one subfolder per run",
    several_runs=True,
)
parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (override)")
options = tutorial.parse_options(parser)
SHARED = dict(QUICK if options.quick else FULL)
if options.epochs is not None:
    SHARED["epochs"] = options.epochs
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: {SHARED}\n  FF {FF}, backprop {BP}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. The box, written out
#
# The box sits after hidden layer 0 and transforms that layer's normalised output `h`
# (one row per image) before layer 1 sees it:
#
# ```
# z = h[:, perm]                      a fixed random permutation, unknown to the learner
# z = round(z / step) * step          step = max of the row / (levels - 1): 4 levels
# z = z * (1 + 0.2 u), u ~ U(-1, 1)   fresh noise at every call
# ```
#
# Its input here: the normalised activities of a first layer (untrained: the box does
# the same to any vector) for 200 test images with their labels written in.

# %%
SEED = 0
BOX_AFTER = 0  # the box sits between hidden layers 0 and 1
data = load_mnist(options.data_dir)
code = LabelCode.first_pixels(10)
hidden = SHARED["hidden"]
first = Dense(784, hidden[0], np.random.default_rng([SEED, 1]))
x_show, y_show = data.test.x[:200], data.test.y[:200]
h = normalize(first.forward(normalize(code.embed(x_show, y_show), "rms"))[0], "rms")
box = BlackBox(hidden[0], np.random.default_rng([SEED, 2]), levels=4, noise=0.2)

z = h[:, box.perm]  # the permutation
step = z.max(axis=1, keepdims=True) / (box.levels - 1)  # h >= 0: the row's max sets it
z = np.round(z / step) * step  # quantise: flat between the levels
noise_rng = np.random.default_rng(7)
z = z * (1 + box.noise * noise_rng.uniform(-1, 1, size=z.shape)).astype(z.dtype)
z_lib = box(h, np.random.default_rng(7))  # the library's box, the same noise
print(f"h {h.shape} -> z {z.shape}; ours vs BlackBox: largest difference {np.abs(z - z_lib).max()}")
assert np.allclose(z, z_lib, rtol=1e-6, atol=0)

# %% [markdown]
# What it does to one activity vector, and every unit's transfer curve (the permutation
# undone, which the learner cannot do): a noisy staircase.

# %%
z1 = box(h, np.random.default_rng([SEED, 3]))  # two calls, same input
z2 = box(h, np.random.default_rng([SEED, 4]))
top = h.max(axis=1, keepdims=True)
z_back = np.empty_like(z1)
z_back[:, box.perm] = z1  # output unit k came from input unit perm[k]
N_SHOW = 40
fig = Figure(figsize=(12, 4.2), layout="constrained")
ax_bars, ax_stair = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
k = np.arange(N_SHOW)
ax_bars.bar(k - 0.2, h[0, :N_SHOW], width=0.4, label="h, into the box (unit order)")
ax_bars.bar(k + 0.2, z1[0, :N_SHOW], width=0.4, label="box(h), call 1")
ax_bars.plot(k + 0.2, z2[0, :N_SHOW], "k.", ms=4, label="box(h), call 2")
for level in range(box.levels):
    ax_bars.axhline(level * top[0, 0] / (box.levels - 1), color="gray", lw=0.6, ls="--")
ax_bars.set_xlabel(f"unit (first {N_SHOW} of {box.n}), one test image")
ax_bars.set_ylabel("activity")
ax_bars.set_title("one activity vector: permuted, quantised (dashed: levels), noisy")
ax_bars.legend(fontsize=8)
grid = np.linspace(0, 1, 401)
ax_stair.plot((h / top).ravel(), (z_back / top).ravel(), ".", ms=1.5, alpha=0.3, label="box")
ax_stair.plot(grid, np.round(grid * 3) / 3, "k-", lw=1, label="without the noise")
ax_stair.set_xlabel("unit's input / max of its row")
ax_stair.set_ylabel("unit's output / max of its row (permutation undone)")
ax_stair.set_title("transfer curve: flat steps, jumps, noise")
ax_stair.legend(fontsize=8, loc="upper left")
tutorial.show(fig, OUT / "box_transform.png")

# %% [markdown]
# ## 2. Why backprop cannot go through it
#
# Backprop would need `dz/dh`. Measure it by finite differences: nudge every input a
# little in a random direction and replay the same noise (the same generator state).
# Each row's largest input is left alone: the levels are fractions of it, so it moves
# them all.

# %%
FD_STEP = 1e-4  # the activities are about 1
v = np.random.default_rng([SEED, 5]).standard_normal(h.shape).astype(h.dtype)
v[np.arange(len(h)), np.argmax(h, axis=1)] = 0
a = box(h, np.random.default_rng(7))
b = box(h + FD_STEP * v, np.random.default_rng(7))
changed = b != a
jumps = (np.abs(b - a) / np.broadcast_to(top / (box.levels - 1), h.shape))[changed]
box_report = {
    "fd_changed_fraction": float(changed.mean()),
    "fd_mean_jump_steps": float(jumps.mean()) if jumps.size else 0.0,
    "noise_difference": float(np.abs(z1 - z2).mean() / np.abs(z1).mean()),
    "straight_through_right_unit": float(np.mean(box.perm == np.arange(box.n))),
}
print(
    f"a nudge of {FD_STEP:g} x N(0, 1) to every input (but each row's largest) changed "
    f"{changed.sum()} of {h.size} outputs ({100 * box_report['fd_changed_fraction']:.3f}%);\n"
    f"  the others are bit for bit the same, and those that changed jumped by "
    f"{box_report['fd_mean_jump_steps']:.2f} quantisation steps on average"
)
print(
    f"the same input twice: outputs differ by {100 * box_report['noise_difference']:.0f}% "
    "(mean |z1 - z2| / mean |z1|)"
)

# %% [markdown]
# So the derivative is 0 almost everywhere and infinite at the jumps: exact backprop
# sends nothing below the box. The library's backprop net (`ff_numpy.backprop.MLP`) has
# two ways round it (`box_grad`):
#
# * `"none"`: stop at the box. Only the layers above it learn; the ones below keep their
#   random initial weights.
# * `"straight"`: the *straight-through* guess, treat the box as the identity on the way
#   back: the gradient with respect to output unit `k` is used as the gradient with
#   respect to input unit `k`. But output unit `k` came from input unit `perm[k]`:

# %%
right = box_report["straight_through_right_unit"]
print(
    f"the straight-through guess sends a unit's error to the right unit for {100 * right:.1f}% "
    f"of the {box.n} units (chance: {100 / box.n:.1f}%)"
)

# %% [markdown]
# ## 3. FF's step with the box between two layers
#
# The FF step of tutorial 02, with random wrong labels as negatives, for a network of
# the setting's size: make the rows, then for each layer forward, goodness, local
# gradient, update, normalise and pass on. The box is one more line in the forward
# sweep: after layer 0 has learnt from its own input, its normalised output goes through
# the box (and is normalised again) to become layer 1's input. Nothing is sent back
# through it, so nothing about it needs to be known.

# %%
sizes = [784, *hidden]
init = np.random.default_rng([SEED, 6])
layers = [Dense(n_in, n_out, init) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
theta = [float(n) for n in hidden]  # each layer's threshold: its number of units
good, loss = goodness.make_goodness("ssq"), Logistic()
negatives = RandomWrongLabels(10)
opt = make_optimizer("sgd", 0.01, weight_decay=0.001)  # momentum = dampening = 0.9


def ff_step_with_box(x, labels, rng):
    """One FF step of every layer, the box after layer BOX_AFTER; returns each layer's
    gradients as applied."""
    B = len(x)
    x_neg, wrong = negatives.make(x, labels, rng)  # the same images, wrong labels
    X = normalize(np.concatenate([code.embed(x, labels), code.embed(x_neg, wrong)]), "rms")
    s = goodness.sign(np.arange(2 * B) < B)  # +1 on the B positive rows, -1 on the others
    applied = []
    for l, layer in enumerate(layers):
        Y, cache = layer.forward(X)  # (2B, n_in) @ (n_in, n_out) -> (2B, n_out)
        dL_dG = loss.dL_dG(good.G(Y), s, theta[l]) / B  # Eq. 1's loss, mean over pairs
        grads = layer.local_grads(cache, good.dL_dy(Y, dL_dG))  # from its own input only
        applied.append({k: g.copy() for k, g in grads.items()})
        opt.update(layer.params(), grads, 1.0, prefix=f"layer{l}.")
        X = normalize(Y, "rms")
        if l == BOX_AFTER:
            X = normalize(box(X, rng), "rms")  # the box: forward only, never differentiated
    return applied


# %% [markdown]
# The library's `FFNet` takes the box as `boxes={0: box}` and runs the same sweep
# (`FFNet.ff_sweep`). Build one from copies of our initial layers and our box, take
# three steps with each from the same seed, and compare every layer's gradient
# (`return_grads=True`) and the weights after the steps. Both compute in float32, so we
# allow a relative difference of `1e-5` in the gradients and `1e-6` of the largest
# weight in the weights (a few float32 roundings); the steps move the weights by about
# `1e-2`.

# %%
net = FFNet(
    layers=[copy.deepcopy(layer) for layer in layers],
    negatives=RandomWrongLabels(10),
    boxes={BOX_AFTER: copy.deepcopy(box)},
)
net_opt = make_optimizer("sgd", 0.01, weight_decay=0.001)
readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)  # FFNet also trains a readout
start = [layer.W.copy() for layer in layers]
rng_ours, rng_lib = np.random.default_rng(SEED), np.random.default_rng(SEED)
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    ours = ff_step_with_box(data.train.x[batch], data.train.y[batch], rng_ours)
    lib = net.train_step(
        data.train.x[batch], data.train.y[batch], rng_lib, net_opt, readout_opt,
        return_grads=True,
    )  # fmt: skip
    errs = [
        max(tutorial.rel_error(ours[l][k], lib["grads"][f"layer{l}"][k]) for k in ("W", "b"))
        for l in range(len(layers))
    ]
    print(f"step {step + 1}: each layer's gradient, ours vs FFNet: relative error "
          + ", ".join(f"{e:.1e}" for e in errs))  # fmt: skip
    assert max(errs) < 1e-5
for l, (mine, theirs) in enumerate(zip(layers, net.layers)):
    moved = np.abs(mine.W - start[l]).max()
    diff = np.abs(mine.W - theirs.W).max()
    print(f"layer {l}: 3 steps moved W by up to {moved:.1e}; ours - FFNet: {diff:.1e}")
    assert diff <= 1e-6 * np.abs(theirs.W).max()

# %% [markdown]
# ## 4. Five runs, same network, epochs and data
#
# Each run is one of the library's experiments called from Python:
# `experiments.default_args(name, **options)` builds the options `ff-numpy train NAME`
# would, and `experiments.get(name).run(args)` trains and writes `metrics.json`,
# `model.npz` and `learning_curve.png` into the run's own subfolder. The FF run with the
# box differs from the one without it in `black_box=0` alone: the box of section 3, in
# `FFNet.ff_sweep`.

# %%
BOX = {"black_box": BOX_AFTER, "box_levels": 4, "box_noise": 0.2}
RUNS = [  # (folder, label, experiment, options)
    ("ff", "FF", "supervised", FF),
    ("ff_box", "FF + box", "supervised", {**FF, **BOX}),
    ("bp", "BP", "backprop", BP),
    ("bp_box_straight", "BP + box, straight-through", "backprop",
     {**BP, **BOX, "box_grad": "straight"}),
    ("bp_box_none", "BP + box, layers above it only", "backprop",
     {**BP, **BOX, "box_grad": "none"}),
]  # fmt: skip
results = {}
for folder, label, name, run_options in RUNS:
    args = experiments.default_args(
        name,
        **SHARED,
        **run_options,
        seed=SEED,
        out=str(OUT / folder),
        data_dir=options.data_dir,
        resume=options.resume,
        progress=not options.no_progress,
    )
    results[folder] = experiments.get(name).run(args)
    print(f"{label:32s} done: {sum(r['train_seconds'] for r in results[folder]['history']):.1f} s")

# %% [markdown]
# FF classifies in two ways (tutorial 02), by goodness and by a softmax readout;
# backprop's network has one output.

# %%
errors = {}
for folder, *_ in RUNS:
    m = results[folder]
    if "test_error_goodness" in m:
        errors[folder] = {"goodness": m["test_error_goodness"], "softmax": m["test_error_softmax"]}
    else:
        errors[folder] = {"backprop": m["test_error"]}
print("run                              classifier  test error")
for folder, label, *_ in RUNS:
    for kind, e in errors[folder].items():
        print(f"{label:32s} {kind:10s}  {100 * e:9.2f}%")

# %%
fig = Figure(figsize=(9, 4.2), layout="constrained")
ax = fig.subplots()
colours = {"goodness": "C0", "softmax": "C9", "backprop": "C1"}
for i, (folder, *_) in enumerate(RUNS):
    width = 0.8 / len(errors[folder])
    for j, (kind, e) in enumerate(errors[folder].items()):
        xi = i - 0.4 + width * (j + 0.5)
        ax.bar(xi, 100 * e, width=width * 0.95, color=colours[kind],
               label=kind if i in (0, 2) else None)  # fmt: skip
        ax.annotate(f"{100 * e:.1f}", (xi, 100 * e), ha="center", va="bottom", fontsize=8)
ax.set_xticks(range(len(RUNS)), [label.replace(", ", ",\n") for _, label, *_ in RUNS], fontsize=8)
ax.set_ylabel("test error (%)")
title = f"{len(hidden)} x {hidden[0]} hidden, {SHARED['epochs']} epochs, box after layer 0"
ax.set_title(title + ("\n(quick run: too small for conclusions)" if options.quick else ""))
ax.legend(title="classifier", fontsize=8)
tutorial.show(fig, OUT / "test_errors.png")

# %% [markdown]
# The quick runs are far too small to rank the five: they show that everything runs.
# The full setting is the comparison of the results page (`docs/RESULTS.md`, "A black
# box between layers"): 3 x 500 units, 10 epochs on 50,000 images, one seed. It gave:
#
# | full run | test error |
# |---|---|
# | FF, no box | 2.32% (goodness) / 2.14% (softmax) |
# | FF, box after layer 0, learning unchanged | 3.14% / 2.70% |
# | backprop, no box | 1.74% |
# | backprop, box, straight-through guess | 2.03% |
# | backprop, box, only the layers above it learn | 2.94% |
#
# FF trains through a box it knows nothing about with no change at all; the box costs
# it 0.8 points (goodness): it throws information away (four levels, noise). Backprop
# with no gradient through the box leaves its first layer at its random initial weights
# (2.94%). The straight-through guess hands each unit the error meant for another, yet
# it works well here (2.03%, better than FF with the box): question 4 says why.
#
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_04.py` (`from solutions.tutorial_04 import quantise` in a
# notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the box's quantiser
#
# Write `quantise(h, levels)`: each row of `h` (B, n), non-negative, rounded to the
# nearest of `levels` equally spaced values from 0 to the row's maximum (both included).
# A row of zeros stays zeros. Then think about its derivative: where does it exist, and
# what is it?


# %%
def quantise(h, levels):
    """Each row of h (B, n) rounded to `levels` levels spaced evenly over [0, its max]."""
    raise NotImplementedError("exercise 1: write the quantiser")


tutorial.self_check(tutorial.check_quantise, quantise)

# %% [markdown]
# ### Exercise 2: the backward pass of a known permutation
#
# If the learner *knew* the permutation, backprop could undo it on the way back. For the
# forward step `z = h[:, perm]`, write `permutation_backward(dL_dz, perm)` returning
# `dL/dh` (B, n). The self-check compares it with central differences.


# %%
def permutation_backward(dL_dz, perm):
    """dL/dh (B, n) for z = h[:, perm], given dL/dz (B, n)."""
    raise NotImplementedError("exercise 2: send each output's gradient to its input")


tutorial.self_check(tutorial.check_permutation_backward, permutation_backward)

# %% [markdown]
# ### Question 3: why can FF train through a box backprop cannot?
#
# <details><summary>Worked answer</summary>
#
# A backprop weight below the box changes the loss only *through* the box, so its
# gradient is a product that contains the box's Jacobian `dz/dh`. Here that Jacobian is
# zero almost everywhere (the quantiser is flat between its levels), undefined at the
# jumps, and different at every call (the noise): the exact gradient below the box is
# zero, and any other number is a guess.
#
# An FF layer's objective is its own goodness of its own activities. Its gradient,
# `x^T dL/da` (section 3), contains only its own input `x` and its own activities, which
# it has. Layer 1 learns from `box(h)` as its input; it never asks how `box(h)` depends
# on `h`. Layer 0 learns from its own goodness, computed before the box. Neither needs
# the box's derivative, or even the box's definition: the same code trains through any
# function, differentiable or not, known or not. What the box does cost FF (0.8 points
# in the full run) is information: four levels and noise make layer 1's input poorer.
# </details>
#
# ### Question 4: why does the straight-through guess still learn?
#
# It sends almost every unit's error to a wrong unit (all but about one in `n`), yet
# backprop with it beats backprop with no gradient below the box (2.03% against 2.94% in
# the full run). Why? What kind
# of box would defeat it?
#
# <details><summary>Worked answer</summary>
#
# The permutation is *fixed*. Sending the error of output unit `k` to input unit `k`
# instead of `perm^-1(k)` is multiplying the true error vector by a fixed permutation
# matrix `P`: the layers below receive `P` times the error, every step the same `P`. That
# is a fixed random feedback matrix, and *feedback alignment* (Lillicrap et al., 2016)
# shows that networks learn with such matrices: the layers above adapt their forward
# weights until the fixed feedback becomes useful (the forward weights come to "align"
# with the feedback). The quantisation and the noise only add noise to a signal that is
# still consistent from step to step.
#
# A box whose scrambling changed at every call (a fresh permutation each time) would
# remove that consistency: the guessed error would then be uncorrelated with the right
# one and average to nothing, while FF, which never sends anything back, would not
# notice the difference in how it learns. A longer chain of boxes would also compound
# the misdirection. The results page notes that neither has been run.
# </details>
