# %% [markdown]
# # Tutorial 01: goodness, Eq. 1 and one Forward-Forward layer
#
# Forward-Forward (FF) trains a network without backpropagation: every layer has an
# objective of its own and learns from it alone. This tutorial builds one such layer from
# the library's parts and trains it on MNIST.
#
# **You will learn**
#
# * the *goodness* of a layer, `G = sum_j y_j^2`, and the paper's Eq. 1, the probability
#   that an input is positive (real) data, `p = sigmoid(G - theta)`;
# * the layer's *local* gradient, derived one factor at a time (loss, goodness,
#   activities, ReLU, weights), computed by the library and checked against finite
#   differences;
# * how supervised FF makes its data: *positive* rows are images with their true label
#   written into the first 10 pixels, *negative* rows the same images with a wrong label;
# * training one layer, first with the update written out (`W -= lr * dL_dW`), then with
#   the library's optimiser, and what the layer has learnt.
#
# **Time** (2 cores): the notebook runs the quick setting, about 10 s (500 units, 10,000
# images, 3 epochs per loop). As a script, `python tutorials/01_goodness_and_one_layer.py`
# runs the full setting (2000 units, 50,000 images, 10 epochs per loop: about 5 minutes)
# and `--quick` the quick one; figures go to `--out`.
#
# **Exercises** at the end: Eq. 1's loss without overflow, and the local gradient of the
# unsquared goodness; two questions with worked answers.

# %%
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.layers import Dense
from ff_numpy.loss import Logistic
from ff_numpy.negatives import LabelCode, RandomWrongLabels
from ff_numpy.norm import normalize
from ff_numpy.optim import hold_then_linear, make_optimizer

# %% [markdown]
# ## Settings
#
# The full and the quick setting differ only in size. Run as a script, the command line
# chooses (`--quick`, `--out`, `--data-dir`; `--help` lists them); in a notebook this cell
# picks the quick setting and writes the figures under `out/` beside the notebook.

# %% tags=["script-only"]
NAME = "01_goodness_and_one_layer"
FULL = {"hidden": 2000, "n_train": 50_000, "epochs": 10, "n_eval": 10_000}
QUICK = {"hidden": 500, "n_train": 10_000, "epochs": 3, "n_eval": 2_000}
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 01: goodness, Eq. 1 and one Forward-Forward layer on MNIST.",
        f"small run: {QUICK}",
        HERE / "out" / NAME,
        "folder for the figures",
        trains=False,
    )
)
SIZE = QUICK if options.quick else FULL
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting {SIZE}; figures in {OUT}")

# %% [markdown]
# ## 1. Goodness and Eq. 1
#
# A layer's goodness for one example is the sum of its squared ReLU activities,
# `G = sum_j y_j^2`. The probability that the example is positive data is (Eq. 1)
#
# $$p(\text{positive}) = \sigma(G - \theta),$$
#
# so an example counts as positive when its goodness is above the threshold `theta`. The
# layer is trained to make `log p` high on positive data and `log(1 - p)` high on negative
# data. With a sign `s = +1` for positive and `s = -1` for negative rows, both are the loss
#
# $$L = -\log \sigma\big(s\,(G - \theta)\big) = \operatorname{softplus}\big(-s\,(G -
# \theta)\big).$$
#
# The library has one small part for each: `make_goodness("ssq")` (the goodness and its
# derivative) and `Logistic()` (Eq. 1's loss and its derivative).

# %%
SEED = 0
rng = np.random.default_rng(SEED)
good = goodness.make_goodness("ssq")  # G(y) = sum_j y_j^2, and dL/dy from dL/dG
loss = Logistic()  # L(G, s, theta) = softplus(-s (G - theta)), and dL/dG

y = np.maximum(rng.standard_normal((4, 6)), 0)  # 4 examples, 6 ReLU units
G = good.G(y)  # (4,)
theta = 3.0
p = goodness.p_positive(G, theta)  # Eq. 1
ones = np.ones(4)
print(f"theta = {theta}")
print("    G   p(positive)   L if positive   L if negative")
for row in zip(G, p, loss.L(G, ones, theta), loss.L(G, -ones, theta)):
    print("{:5.2f}   {:11.3f}   {:13.3f}   {:13.3f}".format(*row))

# %% [markdown]
# An example far above the threshold costs almost nothing as a positive and a lot as a
# negative; one near the threshold costs about `log 2 = 0.69` either way.
#
# ## 2. The local gradient, step by step
#
# One dense layer: `a = x W + b`, `y = relu(a)`, `G = sum_j y_j^2`, and the loss above.
# The chain rule, one factor at a time (example `n`, unit `j`, input `i`):
#
# 1. `dL/dG = -s sigmoid(-s (G - theta))`: the derivative of `softplus(-z)` is
#    `-sigmoid(-z)`, and `dz/dG = s`. For a positive row this is `-(1 - p)`: push G up
#    until p is near 1. For a negative row it is `+p`.
# 2. `dG/dy_j = 2 y_j`, so `dL/dy_j = dL/dG * 2 y_j`.
# 3. `dy_j/da_j = 1 if a_j > 0 else 0` (ReLU), so `dL/da_j = dL/dy_j [a_j > 0]`.
# 4. `a_j = sum_i x_i W_ij + b_j`, so `dL/dW_ij = x_i dL/da_j` and `dL/db_j = dL/da_j`.
#    Summed over the batch: `dL/dW = x^T dL/da` and `dL/db` is the sum of the rows of
#    `dL/da`. This is the batch form of the paper's Eq. 3.
#
# The chain stops at `W`: nothing goes back to the layer's input `x`. That is the point
# of FF: each layer learns from its own objective. Here are the four steps in NumPy, in
# float64, on a small layer and a batch of 8 random rows, half positive:

# %%
small = Dense(20, 15, rng, dtype=np.float64)  # W ~ N(0, 1/20), shape (20, 15)
small.b[:] = 0.1 * rng.standard_normal(15)
x = rng.standard_normal((8, 20))
s = goodness.sign(np.arange(8) < 4)  # +1 on the 4 positive rows, -1 on the 4 negative
theta = 7.5  # about the initial goodness, so that both kinds of rows matter

a = x @ small.W + small.b  # (8, 20) @ (20, 15) -> (8, 15)
y = np.maximum(a, 0)
G = np.sum(y**2, axis=1)  # (8,)
dL_dG = loss.dL_dG(G, s, theta)  # step 1: -s sigmoid(-s (G - theta)), (8,)
dL_dy = dL_dG[:, None] * 2 * y  # step 2: (8, 1) * (8, 15)
dL_da = dL_dy * (a > 0)  # step 3: the ReLU's derivative
dL_dW = x.T @ dL_da  # step 4: (20, 8) @ (8, 15) -> (20, 15)
dL_db = dL_da.sum(axis=0)  # (15,)
print(f"dL/dG {dL_dG.shape}, dL/dy {dL_dy.shape}, dL/dW {dL_dW.shape}, dL/db {dL_db.shape}")
print("dL/dG, positive rows:", np.round(dL_dG[:4], 3), " negative rows:", np.round(dL_dG[4:], 3))

# %% [markdown]
# The library's parts compute the same numbers, each in its own place: the layer's
# `forward` returns the activities and a cache, the goodness turns `dL/dG` into `dL/dy`,
# and the layer's `local_grads` applies the ReLU and forms `x^T dL/da`.

# %%
y_lib, cache = small.forward(x)  # y and the cache (x, y) that local_grads needs
G_lib = good.G(y_lib)
grads = small.local_grads(cache, good.dL_dy(y_lib, loss.dL_dG(G_lib, s, theta)))
for name, ours, by_hand in (("W", grads["W"], dL_dW), ("b", grads["b"], dL_db)):
    err = tutorial.rel_error(ours, by_hand)
    print(f"dL/d{name}: library vs the four steps, relative error {err:.1e}")
    assert err < 1e-12

# %% [markdown]
# Both could share a mistake. An independent check: the loss itself, nudged one weight at
# a time (central differences, `tutorial.numerical_gradient`), and, when the `autograd`
# package is installed, automatic differentiation. In float64 central differences agree
# to about 1e-10 (their own truncation and rounding error) and autograd to rounding error.


# %%
def total_loss(W, b, x, s, theta, xp=np):
    """sum_n L_n of a dense layer with weights W and biases b on the rows x with signs s;
    ``xp`` is the array module (NumPy, or autograd's wrapper of it)."""
    y = xp.maximum(xp.dot(x, W) + b, 0.0)
    G = xp.sum(y**2, axis=1)
    return xp.sum(xp.logaddexp(0.0, -s * (G - theta)))


W, b = small.W.copy(), small.b.copy()
checks = {
    "dL/dW, central differences": (
        grads["W"],
        tutorial.numerical_gradient(lambda W_: total_loss(W_, b, x, s, theta), W.copy()),
    ),
    "dL/db, central differences": (
        grads["b"],
        tutorial.numerical_gradient(lambda b_: total_loss(W, b_, x, s, theta), b.copy()),
    ),
}
try:
    import autograd
    import autograd.numpy as anp
except ImportError:
    print("(autograd is not installed: pip install autograd for the second check)")
else:
    grad_fn = autograd.grad(lambda W_, b_: total_loss(W_, b_, x, s, theta, anp), (0, 1))
    checks["dL/dW, autograd"] = (grads["W"], grad_fn(W, b)[0])
    checks["dL/db, autograd"] = (grads["b"], grad_fn(W, b)[1])
for what, (ours, reference) in checks.items():
    err = tutorial.rel_error(ours, reference)
    print(f"{what:28s}: relative error of the library's gradient {err:.1e}")
    assert err < (1e-6 if "differences" in what else 1e-10)

# %% [markdown]
# ## 3. Positive and negative data from MNIST
#
# Positive: the image with its true label as a one-hot code in its first 10 pixels (the
# top-left corner, black in every MNIST digit). Negative: the same image with a wrong
# label, drawn uniformly from the other nine. Both are divided by their root-mean-square
# length (so `|x|^2 = 784`, no mean subtracted) and go through the layer as one matrix of
# `2B` rows, the positive ones first.

# %%
data = load_mnist(options.data_dir)
x_train, y_train = data.train.x[: SIZE["n_train"]], data.train.y[: SIZE["n_train"]]
x_test, y_test = data.test.x[: SIZE["n_eval"]], data.test.y[: SIZE["n_eval"]]
code = LabelCode.first_pixels(10)  # one-hot label in pixels 0..9
negatives = RandomWrongLabels(10)  # make(x, labels, rng) -> (x, a wrong label for each)
print(f"training images {x_train.shape}, held-out images {x_test.shape}")


def positive_and_negative(x, labels, rng):
    """Rows ``[x with its label; x with a wrong label]``, normalised, and which are positive.

    Returns X, shape (2B, 784), and is_pos, bool shape (2B,).
    """
    x_neg, wrong = negatives.make(x, labels, rng)
    X = np.concatenate([code.embed(x, labels), code.embed(x_neg, wrong)])  # (2B, 784)
    X = normalize(X, "rms")  # each row divided by its RMS: |X_n|^2 = 784
    is_pos = np.arange(len(X)) < len(x)
    return X, is_pos


X, is_pos = positive_and_negative(x_train[:4], y_train[:4], rng)
fig = Figure(figsize=(8, 4.4), layout="constrained")
for i, ax in enumerate(fig.subplots(2, 4).T.ravel()):
    row = X[i // 2 + 4 * (i % 2)]  # column: one image; top positive, bottom negative
    ax.imshow(row.reshape(28, 28), cmap="gray")
    ax.set_title(f"{'positive' if i % 2 == 0 else 'negative'}: label {row[:10].argmax()}")
    ax.axis("off")
fig.suptitle("the label is the bright dot among the first 10 pixels (top-left)")
tutorial.show(fig, OUT / "positive_and_negative.png")

# %% [markdown]
# ## 4. Training one layer, the update written out
#
# One step is the data flow of the paper: make the rows, forward, goodness, `dL/dG`, the
# local gradient, an update. The threshold is the number of units: with normalised inputs
# and `W ~ N(0, 1/784)` every pre-activation starts with unit variance, so the initial
# goodness is about `n / 2`, below `theta = n` for every row.
#
# The loss is averaged over the `B` pairs of a batch (so `dL/dG` is divided by `B`), and
# the update is plain gradient descent, `W -= lr * dL/dW`. Before training, we keep a fixed
# held-out set of rows to score the layer on.

# %%
n = SIZE["hidden"]
theta = float(n)
X_eval, is_pos_eval = positive_and_negative(x_test, y_test, np.random.default_rng([SEED, 1]))
layer = Dense(784, n, np.random.default_rng(SEED))  # float32
G_before = good.G(layer.forward(X_eval)[0])
print(f"{n} units, theta = {theta:g}; initial goodness: mean {G_before.mean():.0f}")

BATCH = 100  # images per batch: 2 x 100 rows
lr = 0.001  # plain gradient descent: at 0.005 the quick setting's layer diverges
for epoch in range(SIZE["epochs"]):
    order = rng.permutation(len(x_train))
    total = 0.0
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        X, is_pos = positive_and_negative(x_train[idx], y_train[idx], rng)
        s = goodness.sign(is_pos)  # +1 on positive rows, -1 on negative rows
        Y, cache = layer.forward(X)  # (2B, 784) @ (784, n) -> (2B, n)
        G = good.G(Y)  # (2B,)
        total += float(loss.L(G, s, theta).sum())
        dL_dG = loss.dL_dG(G, s, theta) / len(idx)  # mean over the B pairs
        grads = layer.local_grads(cache, good.dL_dy(Y, dL_dG))  # {"W": X^T dL/da, "b": ...}
        layer.W -= lr * grads["W"]
        layer.b -= lr * grads["b"]
    print(f"epoch {epoch + 1}: loss per pair {total / len(order):.2f}")
layer_sgd = layer

# %% [markdown]
# The loss falls, slowly. Plain gradient descent has one step size for every weight and
# every stage of training: at the start every positive row is about `n / 2` below the
# threshold and the gradient is large; later it is small. A larger rate diverges at the
# start, a smaller one barely moves later.
#
# ## 5. The same loop with the library's optimiser
#
# Only the update changes: the optimiser receives the gradients and updates the layer's
# parameters in place, `opt.update(layer.params(), grads, lr_scale)`. Adam scales each
# weight's step by the recent size of its gradient, and `hold_then_linear` holds the
# learning rate for the first half of training and then lowers it linearly (as Hinton's
# code does). The layer starts from the same initial weights.

# %%
layer = Dense(784, n, np.random.default_rng(SEED))  # the same initial weights as above
opt = make_optimizer("adam", 0.003)
for epoch in range(SIZE["epochs"]):
    lr_scale = hold_then_linear(epoch, SIZE["epochs"])
    order = rng.permutation(len(x_train))
    total = 0.0
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        X, is_pos = positive_and_negative(x_train[idx], y_train[idx], rng)
        s = goodness.sign(is_pos)
        Y, cache = layer.forward(X)
        G = good.G(Y)
        total += float(loss.L(G, s, theta).sum())
        dL_dG = loss.dL_dG(G, s, theta) / len(idx)
        grads = layer.local_grads(cache, good.dL_dy(Y, dL_dG))
        opt.update(layer.params(), grads, lr_scale)  # the only line that changed
    print(f"epoch {epoch + 1}: loss per pair {total / len(order):.2f}  (rate x {lr_scale:.2f})")
layer_adam = layer

# %% [markdown]
# ## 6. What the layer has learnt
#
# Two ways to score it on the held-out rows. As Eq. 1 intends: is `p(positive) > 0.5`
# exactly for the positive rows? And as a digit classifier (Sec. 3.3): write each of the
# 10 labels into an image and pick the label of highest goodness.


# %%
def goodness_per_label(layer, x):
    """Goodness of every image with every label written in, shape (B, 10)."""
    rows = [normalize(code.embed(x, np.full(len(x), k)), "rms") for k in range(10)]
    return np.stack([good.G(layer.forward(r)[0]) for r in rows], axis=1)


initial = Dense(784, n, np.random.default_rng(SEED))
scores = {}
for name, lay in (("before training", initial), ("plain SGD", layer_sgd), ("Adam", layer_adam)):
    G_eval = good.G(lay.forward(X_eval)[0])
    p_right = np.mean((goodness.p_positive(G_eval, theta) > 0.5) == is_pos_eval)
    digit_right = np.mean(goodness_per_label(lay, x_test).argmax(axis=1) == y_test)
    scores[name] = (G_eval, p_right, digit_right)
    print(
        f"{name:15s}: p(positive) > 0.5 right for {100 * p_right:5.1f}% of rows, "
        f"digits right {100 * digit_right:5.1f}%"
    )
p_correct_before, p_correct_after = scores["before training"][1], scores["Adam"][1]
digit_correct_after = scores["Adam"][2]

# %% [markdown]
# Before training every row is below the threshold, so exactly the negative half is
# "right". After training with Adam the positive and negative rows separate around the
# threshold, and the single layer already reads digits: roughly 85-90% right in the quick
# setting, about 97% in the full one.

# %%
fig = Figure(figsize=(11, 3.6), layout="constrained")
for ax, name in zip(fig.subplots(1, 3), scores):
    G_eval = scores[name][0]
    bins = np.linspace(0, np.percentile(G_eval, 99.5), 60)
    ax.hist(G_eval[is_pos_eval], bins, alpha=0.6, label="positive (true label)")
    ax.hist(G_eval[~is_pos_eval], bins, alpha=0.6, label="negative (wrong label)")
    ax.axvline(theta, color="k", ls="--", lw=1, label=r"threshold $\theta$")
    ax.set_title(name)
    ax.set_xlabel("goodness G")
axes = fig.axes
axes[0].set_ylabel("held-out rows")
axes[0].legend(fontsize=8)
fig.suptitle(f"one FF layer of {n} units on MNIST, theta = {theta:g}")
tutorial.show(fig, OUT / "goodness_histograms.png")

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_01.py` (`from solutions.tutorial_01 import eq1_loss` in a
# notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: Eq. 1's loss, without overflow
#
# Write `eq1_loss(G, theta, s)`, returning the loss `L = softplus(-s (G - theta))` of every
# row and its derivative `dL/dG` (step 1 of section 2). A goodness can be far from the
# threshold (thousands of units, early in training): `np.log(1 + np.exp(-z))` overflows
# for `z = -1e5`. Use `np.logaddexp` and `scipy.special.expit`.


# %%
def eq1_loss(G, theta, s):
    """L = softplus(-s (G - theta)) and dL/dG, both of shape (B,), finite for any G."""
    raise NotImplementedError("exercise 1: write the loss and its derivative")


tutorial.self_check(tutorial.check_eq1_loss, eq1_loss)

# %% [markdown]
# ### Exercise 2: the local gradient of the unsquared goodness
#
# The paper's Sec. 10 asks about other measures of goodness. Take the sum of the
# activities, `G = sum_j y_j` (`make_goodness("sum")`). Write the local gradient of one
# dense layer with this goodness, summed over the batch, as in section 2. Which step
# changes, and why does the ReLU's derivative now matter where it did not before (look at
# `dL/dy` where `y = 0`)?


# %%
def local_grads_unsquared(x, W, b, theta, s):
    """dL/dW (n_in, n_out) and dL/db (n_out,) of sum_n softplus(-s_n (G_n - theta)),
    G_n = sum_j relu(x W + b)_nj."""
    raise NotImplementedError("exercise 2: write the four steps for G = sum_j y_j")


tutorial.self_check(tutorial.check_local_grads_unsquared, local_grads_unsquared)

# %% [markdown]
# ### Question 3: why exactly half?
#
# Before training, `p(positive) > 0.5` is right for exactly 50.0% of the held-out rows,
# not roughly half. Why exactly?
#
# <details><summary>Worked answer</summary>
#
# At initialisation every pre-activation has about unit variance, so a layer of `n` units
# has goodness about `n / 2` (half the units are on, each contributing about 1), far below
# the threshold `theta = n`: the histogram "before training" lies entirely left of the
# dashed line. So `p(positive) < 0.5` for *every* row. Every negative row is then classified
# correctly and every positive row wrongly, and the held-out set has exactly as many of
# each (one negative per image). The score says nothing yet about what the layer knows; it
# only shows that all rows sit on one side of the threshold.
# </details>
#
# ### Question 4: what does a well-classified row teach the layer?
#
# A positive row whose goodness is already far above the threshold: what is its `dL/dG`,
# and how much does it change the weights? Why is this better than simply making the
# goodness of positive rows as large as possible?
#
# <details><summary>Worked answer</summary>
#
# For a positive row `dL/dG = -(1 - p)` with `p = sigmoid(G - theta)`. Far above the
# threshold `p` is 1 to within `exp(-(G - theta))`, so `dL/dG` is about zero and the row
# contributes almost nothing to `dL/dW = x^T dL/da`: the layer learns from the rows it still
# gets wrong or nearly wrong, like a logistic regression. Maximising the goodness itself
# would give every positive row a gradient `-2 y` that never shrinks: the weights would
# grow without bound and the rows already right would dominate the update. The threshold
# and the sigmoid make the objective saturate, so the layer stops pushing once a row is on
# the right side with a margin.
# </details>
