# %% [markdown]
# # Tutorial 03: learning fast (paper, Sec. 7)
#
# A Forward-Forward layer changes its weights from its own input and its own goodness.
# Section 7 of the paper points out a consequence that backprop has no counterpart for:
# for a fully connected ReLU layer with the squared goodness, the update of one example
# (Eq. 3) changes the layer's output for that example only by a common factor. The
# normalised output, all that the next layer sees, does not change. So a layer can learn
# from an example without disturbing the layers above it, and, with the right step size
# (Eq. 4), every layer of a network can reach a chosen goodness for that example in one
# step, all at once, from one forward pass.
#
# **You will learn**
#
# * Eq. 3 for one example written out in NumPy, and that it equals the library's
#   `fast.eq3_update`;
# * why it leaves the next layer's view unchanged: every active unit's pre-activation is
#   multiplied by the same factor `k = 1 + 2 eps g |x_aug|^2`;
# * where that fails: the unsquared goodness, and layers with local receptive fields;
# * Eq. 4: the step that takes a layer to any target goodness, written out and equal to
#   `fast.one_shot_layer_update`, then every layer of a network moved at once, equal to
#   `fast.one_shot_model_step`;
# * learning online, one example at a time with these jumps, at scale: the library's
#   `online` experiment against ordinary mini-batches on the same stream of examples.
#
# **Time** (2 cores): sections 1-4 take a few seconds (random layers and one MNIST
# image). The notebook runs the quick setting of section 5, about 15 s (2,000 examples
# of the stream for each method). As a script, `python tutorials/03_learning_fast.py`
# streams all 50,000 training images once per method (a few minutes: about 90 s of
# one-shot jumps and 10 s of mini-batches, plus an evaluation after each of the 10
# chunks); `--quick` runs the small one.
#
# **Exercises** at the end: the Eq. 4 step of one layer, its per-unit form that restores
# the invariance for local receptive fields, and two questions (the unsquared goodness;
# why all layers can move at once).

# %%
import copy
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.special import expit

from ff_numpy import experiments, fast, goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.layers import Dense
from ff_numpy.model import FFNet
from ff_numpy.negatives import LabelCode
from ff_numpy.norm import normalize
from ff_numpy.plots import plot_online_comparison

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. Only section 5 depends on
# it: `STREAM` sets the online experiment's stream of examples (`{}`: its defaults).

# %% tags=["script-only"]
NAME = "03_learning_fast"
QUICK = {"train_size": 2_000, "chunk": 500, "epochs": 4, "eval_size": 500}
FULL = {}  # the experiment's defaults: 50,000 examples in 10 chunks of 5,000
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 03: learning fast (Sec. 7): Eq. 3's invariance, Eq. 4's one-shot step.",
        f"online runs on a short stream: {QUICK}",
        HERE / "out" / NAME,
        "folder for the figures and the two online runs (oneshot/, minibatch/)",
        several_runs=True,
    )
)
STREAM = QUICK if options.quick else FULL
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: online stream {STREAM or 'defaults'}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. One input
#
# A real MNIST image with its label written into the first 10 pixels, normalised to a
# root-mean-square of 1 (squared length 784): exactly what the first layer of supervised
# FF sees (tutorial 02). Everything in sections 2-4 is in float64, so that the
# equalities below hold to about 1e-15, far below anything the updates change.

# %%
SEED = 0
data = load_mnist(options.data_dir)
image, label = data.test.x[0].astype(np.float64), int(data.test.y[0])
code = LabelCode.first_pixels(10)
x = normalize(code.embed(image[None, :], np.array([label])), "rms")[0]  # (784,)
print(f"test image 0, label {label}: x {x.shape}, |x|^2 = {x @ x:.1f}")

# %% [markdown]
# ## 2. Eq. 3 for one example, written out
#
# For one input `x`, unit `j` of a dense ReLU layer has pre-activation
# `a_j = w_j . x + b_j` and activity `y_j = relu(a_j)`; the goodness is
# `G = sum_j y_j^2` and the probability that the example is positive is
# `p = sigmoid(G - theta)` (Eq. 1). Gradient *ascent* on `log p(correct)` with rate `eps`
# is the paper's Eq. 3:
#
# ```
# dw_j = 2 eps g y_j x,      db_j = 2 eps g y_j,      g = d log p(correct) / dG
#                                                       = s sigmoid(-s (G - theta))
# ```
#
# with `s = +1` for a positive example (its goodness should rise) and `-1` for a negative
# one; the bias is a weight on a constant input 1. Column `j` of `W` (784 x 500) is `w_j`,
# so the whole update is an outer product. Here a negative example, with the threshold
# at its own goodness (`p = 1/2`, where the loss is steepest), so `g = -1/2`.

# %%
N_UNITS = 500
EPS = 5e-4  # with |x_aug|^2 = 785 and g = -1/2: k = 1 - 785 EPS, about 0.61
layer = Dense(784, N_UNITS, np.random.default_rng([SEED, 1]), dtype=np.float64)
a = x @ layer.W + layer.b  # (784,) @ (784, 500) -> (500,)
y = np.maximum(a, 0)
G = float(y @ y)
theta = G  # the threshold at this example's own goodness: p = 1/2
is_positive = False  # a negative example: its goodness should fall
s = 1.0 if is_positive else -1.0
g = s * expit(-s * (G - theta))  # d log p / dG = -0.5 here
dW = 2 * EPS * g * np.outer(x, y)  # Eq. 3: column j is dw_j = 2 eps g y_j x, (784, 500)
db = 2 * EPS * g * y  # (500,)

dW_lib, db_lib = fast.eq3_update(layer, x, theta, is_positive, EPS)
for what, ours, lib in (("dW", dW, dW_lib), ("db", db, db_lib)):
    err = tutorial.rel_error(ours, lib)
    print(f"{what}: ours vs fast.eq3_update, relative error {err:.1e}")
    assert err < 1e-12
print(f"G = {G:.1f}, g = {g:+.2f}, {np.sum(y > 0)} of {N_UNITS} units active")

# %% [markdown]
# Now feed the same `x` to the updated layer. The change of unit `j`'s pre-activation is
#
# ```
# da_j = dw_j . x + db_j = 2 eps g y_j (|x|^2 + 1) = 2 eps g |x_aug|^2 y_j
# ```
#
# proportional to `y_j`: every active unit (`y_j = a_j`) is multiplied by the *same*
# factor `k = 1 + 2 eps g |x_aug|^2`, and every inactive one (`y_j = 0`) is unchanged.
# If `k > 0` the activity vector is only rescaled, and dividing by its length undoes
# that: the next layer sees exactly what it saw before.

# %%
a_after = x @ (layer.W + dW) + (layer.b + db)
on = a > 0
k = 1 + 2 * EPS * g * (x @ x + 1)  # |x_aug|^2 = |x|^2 + 1: the bias's constant input
ratio = a_after[on] / a[on]
print(f"k = {k:.6f}; a_after / a over the active units: {ratio.min():.6f} .. {ratio.max():.6f}")
print(f"inactive units: largest change of a {np.abs(a_after[~on] - a[~on]).max():.1e}")
y_hat = normalize(y[None, :], "rms")[0]
y_hat_after = normalize(np.maximum(a_after, 0)[None, :], "rms")[0]
change = np.abs(y_hat_after - y_hat).max()
print(f"goodness {G:.1f} -> {np.sum(np.maximum(a_after, 0) ** 2):.1f} (k^2 G = {k * k * G:.1f})")
print(f"normalised output, what the next layer sees: largest change {change:.1e}")
assert np.allclose(a_after[on], k * a[on], rtol=1e-12, atol=0)
assert np.allclose(a_after[~on], a[~on], rtol=0, atol=1e-12)
assert change < 1e-12

# %% [markdown]
# ## 3. Where the invariance fails
#
# The argument used two facts: `dG/dy_j = 2 y_j` (the squared goodness), and every unit
# sees the whole input `x`. Drop either and it fails:
#
# * **unsquared goodness**, `G = sum_j y_j`: `dG/dy_j = 1`, so `da_j = eps g |x_aug|^2`
#   for every active unit: the same *constant* is added to each, which changes the
#   ratios `y_i / y_j` and so the orientation;
# * **local receptive fields** (a "masked" layer, tutorial 07): unit `j` sees only the
#   pixels `R_j` of its field, so its factor is `1 + 2 eps g |x_aug|_{R_j}^2`, a
#   different number for every unit.
#
# `fast.eq3_orientation` applies Eq. 3 to a copy of a layer and returns the
# pre-activations and normalised outputs before and after. For each case, the spread of
# the factor `a_after / a` over the active units, and the change of the normalised
# output (a masked layer: each unit sees one random 14 x 14 square of the image):

# %%
FIELD = 14
rng = np.random.default_rng([SEED, 2])
mask = np.zeros((28, 28, N_UNITS))
for j in range(N_UNITS):  # unit j sees one random FIELD x FIELD square
    top, left = rng.integers(0, 28 - FIELD + 1, size=2)
    mask[top : top + FIELD, left : left + FIELD, j] = 1
mask = mask.reshape(784, N_UNITS)
masked = Dense(784, N_UNITS, rng, dtype=np.float64)
masked.W *= mask  # zero outside each unit's field

cases = {
    "dense, squared goodness": (layer, {"goodness": "ssq"}),
    "dense, unsquared goodness": (layer, {"goodness": "sum"}),
    "masked (local fields), squared": (masked, {"goodness": "ssq", "mask": mask}),
}
effects, changes = {}, {}
print(f"{'':32s}  {'a_after / a, active units':27s}  largest change of the normalised output")
for name, (lay, kw) in cases.items():
    theta_case = float(goodness.goodness(lay.forward(x[None, :])[0], kw["goodness"])[0])
    eff = fast.eq3_orientation(lay, x, theta_case, False, EPS, norm="rms", **kw)
    active = eff.a_before > 0
    factor = eff.a_after[active] / eff.a_before[active]
    effects[name] = eff
    changes[name] = float(np.abs(eff.y_hat_after - eff.y_hat_before).max())
    spread = f"{factor.min():.4f} .. {factor.max():.4f}"
    print(f"{name:32s}  {spread:27s}  {changes[name]:.1e}")

# %%
fig = Figure(figsize=(13, 4), layout="constrained")
for ax, (name, eff) in zip(fig.subplots(1, 3), effects.items()):
    act = eff.a_before > 0
    ax.scatter(eff.a_before[act], eff.a_after[act], s=4, label="active units")
    ax.scatter(eff.a_before[~act], eff.a_after[~act], s=4, c="lightgray", label="inactive")
    lim = np.abs(eff.a_before).max()
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8, label="no change")
    ax.set_xlabel("pre-activation before the Eq. 3 step")
    ax.set_ylabel("after")
    ax.set_title(
        f"{name}\nlargest change of the normalised output: {changes[name]:.1e}", fontsize=9
    )
    ax.legend(fontsize=7)
tutorial.show(fig, OUT / "eq3_orientation.png")

# %% [markdown]
# Left: the active units lie on one line through the origin (slope `k`), so the
# orientation is unchanged to rounding error. Middle: a line of slope 1 shifted down by
# a constant: small units shrink proportionally more than large ones (some turn off).
# Right: a fan of slopes, one per unit, since each unit's field holds a different part
# of the ink.
#
# ## 4. Eq. 4: one step to a target goodness
#
# Eq. 3's step multiplies the active units by `k`; choose the step so that `k` is what
# we want. The update `dw_j = c y_j u`, `db_j = c y_j` of a layer with input `u` and
# goodness `S_L` multiplies every active unit by `1 + c |u_aug|^2`, and the goodness by
# its square. For a target goodness `S*`:
#
# ```
# c = (sqrt(S* / S_L) - 1) / |u_aug|^2      ->      new goodness S_L (S* / S_L) = S*
# ```
#
# (The paper's Eq. 4, `eps = sqrt(S*/S_L) - 1`, is this with `|u| = 1` and the biases
# frozen.) Here the layer of section 2, and a target 1.5 times its goodness:

# %%
S_L = float(y @ y)  # y = relu(x W + b) of the layer of section 2
S_star = 1.5 * S_L
c = (np.sqrt(S_star / S_L) - 1) / (x @ x + 1)  # Eq. 4, biases included: |x_aug|^2
dW = c * np.outer(x, y)  # dw_j = c y_j x, (784, 500)
db = c * y
y_new = np.maximum(x @ (layer.W + dW) + layer.b + db, 0)
print(f"goodness {S_L:.2f} -> {y_new @ y_new:.2f}, target {S_star:.2f}")

step = fast.one_shot_layer_update(layer, x, S_star)  # the library's (not applied)
for what, ours, lib in (("c", c, step.c), ("dW", dW, step.dW), ("db", db, step.db)):
    err = tutorial.rel_error(ours, lib)
    print(f"{what}: ours vs fast.one_shot_layer_update, relative error {err:.1e}")
    assert err < 1e-12
assert abs(y_new @ y_new - S_star) < 1e-10 * S_star

# %% [markdown]
# ### Every layer at once
#
# Because the step only rescales a layer's output (`sqrt(S*/S_L) > 0`), the next
# layer's normalised input is the same before and after it. So one forward pass gives
# every layer's input `u_l` and goodness `S_l`, every layer's step is computed from
# them, and all the steps are applied together: afterwards every layer's goodness is its
# own target. A network of four layers, two targets above the current goodness and two
# below:

# %%
HIDDEN = [400, 300, 300, 200]
TARGETS = [500.0, 150.0, 450.0, 100.0]
net = FFNet(784, HIDDEN, np.random.default_rng([SEED, 3]), dtype=np.float64)
net_lib = copy.deepcopy(net)  # the same weights, for the library's step

u = x  # the image with its label, normalised: the first layer's input
steps = []
for lay, target in zip(net.layers, TARGETS):  # one forward pass, before any update
    y_l = np.maximum(u @ lay.W + lay.b, 0)
    S_l = float(y_l @ y_l)
    c_l = (np.sqrt(target / S_l) - 1) / (u @ u + 1)
    steps.append((c_l * np.outer(u, y_l), c_l * y_l, S_l))
    u = normalize(y_l[None, :], "rms")[0]  # the next layer's input, from the old weights
for lay, (dW_l, db_l, _) in zip(net.layers, steps):  # then every update together
    lay.W += dW_l
    lay.b += db_l

before = [S_l for _, _, S_l in steps]
after = [float(np.sum(y_l**2)) for y_l in net.activities(image[None, :], np.array([label]))]
one_shot_errors = [abs(a_l - t) / t for a_l, t in zip(after, TARGETS)]
for l, (b_l, a_l, t) in enumerate(zip(before, after, TARGETS)):
    print(f"layer {l}: goodness {b_l:7.2f} -> {a_l:7.2f}  (target {t:5.1f})")

fast.one_shot_model_step(net_lib, image, TARGETS, label=label)  # the library's step
for l, (ours, lib) in enumerate(zip(net.layers, net_lib.layers)):
    err = max(tutorial.rel_error(ours.W, lib.W), tutorial.rel_error(ours.b, lib.b))
    print(f"layer {l}: weights after our step vs fast.one_shot_model_step, rel. error {err:.1e}")
    assert err < 1e-12
assert max(one_shot_errors) < 1e-9

# %%
fig = Figure(figsize=(6, 3.5), layout="constrained")
ax = fig.subplots()
idx = np.arange(len(HIDDEN))
ax.bar(idx - 0.2, before, 0.4, label="before")
ax.bar(idx + 0.2, after, 0.4, label="after one step")
ax.scatter(idx + 0.2, TARGETS, marker="_", s=400, c="k", label="target S*", zorder=3)
ax.set_xticks(idx, [f"layer {l}" for l in idx])
ax.set_ylabel("goodness for this input")
ax.set_title("Eq. 4: every layer reaches its target in one simultaneous step", fontsize=9)
ax.legend(fontsize=8)
tutorial.show(fig, OUT / "one_shot.png")

# %% [markdown]
# ## 5. At scale: learning online with one-shot jumps
#
# The paper does not exploit this ("we still use mini-batches"). The library's `online`
# experiment does: batch size 1, and each example of the stream makes two jumps of every
# layer from one forward pass each, the image with its true label to a goodness
# `theta (1 + m)`, then with a wrong label to `theta (1 - m)` (`m = 0.5`), each jump
# damped to go half of the way (active units multiplied by `1 + d (sqrt(S*/S_L) - 1)`,
# `d = 0.5`). The comparison is the ordinary mini-batch FF step (batch 100) on the same
# stream of examples in the same order. The errors are recorded after every chunk of the
# stream: error against examples seen.
#
# `experiments.default_args("online", ...)` gives the experiment's options (those of
# `ff-numpy train online --help`) changed by ours; `run` trains and returns what it
# wrote to `metrics.json`.

# %%
online = {}
for method in ("oneshot", "minibatch"):
    args = experiments.default_args(
        "online",
        method=method,
        **STREAM,
        seed=SEED,
        out=str(OUT / method),
        data_dir=options.data_dir,
        resume=options.resume,
        progress=not options.no_progress,
    )
    online[method] = experiments.get("online").run(args)
    m = online[method]
    print(
        f"{method:9s}: {m['history'][-1]['examples_seen']:6d} examples, test error "
        f"goodness {100 * m['test_error_goodness']:5.2f}%, softmax "
        f"{100 * m['test_error_softmax']:5.2f}%, training "
        f"{sum(r['train_seconds'] for r in m['history']):.1f} s"
    )

# %%
curve = plot_online_comparison(
    [OUT / "oneshot", OUT / "minibatch"], OUT / "online_vs_minibatch.png"
)
n_seen = online["oneshot"]["history"][-1]["examples_seen"]
tutorial.show(curve, caption=f"this run: {n_seen} examples of the stream")

# %% [markdown]
# On a short stream the one-shot jumps are far ahead: each example moves every layer
# half of the way to the goodness it should have, where a mini-batch step moves it a
# little. The full run streams all 50,000 training images once (two seeds
# each). After 5,000 examples the goodness error was 15-17% with jumps against 44-65%
# with mini-batches; after the whole pass the two are within a point of each other
# (7.7% and 9.0% against 9.4% and 8.6% by goodness, two seeds), and the jumps cost
# 11-14 times the time, since a rank-1 update per example cannot use matrix products:

# %%
tutorial.show_docs_figure(
    "online_vs_minibatch.png",
    "full run: one pass over 50,000 images, two seeds per method, docs/RESULTS.md",
)

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_03.py` (`from solutions.tutorial_03 import one_shot_step`
# in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the Eq. 4 step of one layer
#
# Write `one_shot_step(W, b, u, S_star)`: the update `(dW, db)` that takes the goodness
# of the dense ReLU layer `(W, b)` for the input `u` to `S_star`, biases included. `u`
# need not be normalised. Leave `W`, `b` and `u` unchanged.


# %%
def one_shot_step(W, b, u, S_star):
    """dW (n_in, n_out) and db (n_out,) taking sum_j relu(u W + b)_j^2 to S_star."""
    raise NotImplementedError("exercise 1: write the Eq. 4 step")


tutorial.self_check(tutorial.check_one_shot_step, one_shot_step)

# %% [markdown]
# ### Exercise 2: restoring the invariance for local receptive fields
#
# Section 3 showed that on a masked layer the same step scales each unit by a different
# factor. Eq. 4 can be repaired: give every unit `j` its own coefficient `c_j`, so that
# the step `dw_j = c_j y_j u` (only where the mask is 1), `db_j = c_j y_j` multiplies
# every active unit by the same `sqrt(S*/S_L)` again. Write
# `masked_coefficients(u, S_L, S_star, mask)`, returning `c` of shape `(n_out,)`; `mask`
# has the shape of `W` (`mask[i, j] = 1` where unit `j` sees input `i`).


# %%
def masked_coefficients(u, S_L, S_star, mask):
    """Per-unit Eq. 4 coefficients c (n_out,) of a masked layer, biases included."""
    raise NotImplementedError("exercise 2: write the per-unit coefficients")


tutorial.self_check(tutorial.check_masked_coefficients, masked_coefficients)

# %% [markdown]
# ### Question 3: what happens to Eq. 3's invariance with unsquared goodness?
#
# With `G = sum_j y_j`, what does Eq. 3 do to the active units' pre-activations for the
# same input, and to the orientation? Is there a step size that keeps the orientation?
# And is there an Eq. 4 for this goodness?
#
# <details><summary>Worked answer</summary>
#
# `dG/dy_j = 1`, so the update is `dw_j = eps g [a_j > 0] x`, `db_j = eps g [a_j > 0]`,
# and for the same input `da_j = eps g |x_aug|^2` for *every* active unit: a constant
# `delta` added to each, not a common factor. The ratio of two active units becomes
# `(a_i + delta) / (a_j + delta)`, which differs from `a_i / a_j` unless the two are
# equal; with `g < 0` (a negative example) the smallest units are pushed through zero
# and turn off. So the normalised output changes (the middle panel of section 3), and no
# step size `eps > 0` avoids it: only `eps = 0`.
#
# For the same reason there is no one-shot step that moves a layer to a target without
# moving the next layer's input; `fast.one_shot_layer_update` refuses `goodness="sum"`
# with that explanation. The layers' updates then interact: after a step of layer `l`,
# layer `l + 1` sees a different input from the one its own step was computed for. The
# squared goodness is what makes the layers' steps for one example independent.
# </details>
#
# ### Question 4: why can every layer move at once?
#
# In section 4 every layer's step was computed from one forward pass through the *old*
# weights, then all were applied together, and every layer landed exactly on its
# target. Why is that right? What would break it: a normalisation `y / (|y| + 1e-8)`,
# or a target so far below `S_L` that a step overshoots?
#
# <details><summary>Worked answer</summary>
#
# Layer `l`'s step multiplies its active units by `k_l = sqrt(S*_l / S_l) > 0` and
# leaves the inactive ones at 0, so its new output is `k_l y_l` and its normalised output
# `k_l y_l / r(k_l y_l) = y_l / r(y_l)` is unchanged for any normalisation that is
# positively homogeneous (`r(k y) = k r(y)`, as the root mean square is). So layer
# `l + 1` receives after all the updates exactly the input its step was computed from,
# and by induction every layer does.
#
# With `y / (|y| + 1e-8)` the normalised output changes slightly with the scale (the
# `1e-8` does not scale), so each layer above sees a slightly different input and
# misses its target by a correspondingly small amount; `fast` accepts only the exact
# normalisations for this reason. An overshoot cannot happen with Eq. 4: `k` is a
# square root, always positive, so a unit never changes sign. A plain Eq. 3 step with a
# large rate can: `k = 1 + 2 eps g |x_aug|^2 <= 0` when `g < 0` and
# `eps >= 1 / (2 |g| |x_aug|^2)`; then every active unit turns off (`fast.eq3_orientation`
# refuses such a step) and the argument fails.
# </details>
