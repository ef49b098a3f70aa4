# %% [markdown]
# # Tutorial 02: supervised Forward-Forward on MNIST
#
# Tutorial 01 trained one layer. Here a whole network learns to classify digits (paper,
# Sec. 3.3): the label is written into the image, every layer learns on its own to tell
# images with their true label (positive data) from images with a wrong one (negative
# data), and only the *orientation* of a layer's activity vector is passed to the next.
#
# **You will learn**
#
# * supervised FF in about 40 lines built from the library's parts: write the label into
#   the first 10 pixels, make negatives, and for each layer forward, goodness, local
#   gradient, update, normalise and pass on;
# * the two ways to classify: the label of highest goodness (summed over every layer but
#   the first), and a softmax readout of one pass with a neutral label;
# * that these lines give the same numbers as the library's own training step, which the
#   notebook asserts;
# * the full-scale run through the library's `supervised` experiment, and what it adds.
#
# **Time** (2 cores): the notebook runs the quick setting, about 25 s (3 layers of 500
# units for 2 epochs on 10,000 images, then the experiment with 2 layers of 500 for 3
# epochs). As a script, `python tutorials/02_supervised_mnist.py` runs the full setting:
# our lines on 3 x 1000 units for 6 epochs (about 5 minutes, about 3% error), then the
# paper's net, 4 x 2000 units for 60 epochs (about 1.5 hours, 1.36% test error). `--quick`
# runs the quick one; `--resume` continues an interrupted experiment.
#
# **Exercises** at the end: the label code, length normalisation (and why it subtracts no
# mean), hard negatives, and why classification skips the first layer.

# %%
import copy
from pathlib import Path

import numpy as np

from ff_numpy import experiments, goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.layers import Dense
from ff_numpy.loss import Logistic
from ff_numpy.model import FFNet
from ff_numpy.negatives import HardWrongLabels, LabelCode
from ff_numpy.norm import normalize
from ff_numpy.optim import hold_then_linear, make_optimizer
from ff_numpy.plots import plot_receptive_fields
from ff_numpy.readout import SoftmaxReadout

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. `OURS` sizes the network our
# own lines train (sections 1-5), `RUN` the library's experiment (section 6).

# %% tags=["script-only"]
NAME = "02_supervised_mnist"
QUICK = {
    "ours": {"hidden": [500, 500, 500], "n_train": 10_000, "epochs": 2, "n_eval": 2_000},
    "run": {"hidden": [500, 500], "epochs": 3, "train_size": 10_000, "negatives": "hard"},
}
FULL = {  # "run": the paper's net, the run of docs/figures/supervised_4x2000_hard.png
    "ours": {"hidden": [1000, 1000, 1000], "n_train": 50_000, "epochs": 6, "n_eval": 10_000},
    "run": {"hidden": [2000] * 4, "epochs": 60, "train_size": 50_000, "negatives": "hard"},
}
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 02: supervised Forward-Forward on MNIST, from the parts and at full scale.",
        f"small run: {QUICK}",
        HERE / "out" / NAME,
    )
)
SETTING = QUICK if options.quick else FULL
OURS, RUN = SETTING["ours"], SETTING["run"]
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: ours {OURS}\n  experiment {RUN}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. The data and the parts
#
# The training images, and held-out validation images to score on. Then one object for
# each part of FF: the label code, the negative data, the layers with their thresholds,
# the goodness and its loss, the optimisers, and the softmax readout.

# %%
SEED = 0
data = load_mnist(options.data_dir)
x_train, y_train = data.train.x[: OURS["n_train"]], data.train.y[: OURS["n_train"]]
x_val, y_val = data.validation.x[: OURS["n_eval"]], data.validation.y[: OURS["n_eval"]]
print(f"training {x_train.shape}, validation {x_val.shape}, pixels in [0, 1]")

code = LabelCode.first_pixels(10)  # label k: pixel k is 1, pixels 0..9 otherwise 0
negatives = HardWrongLabels(10)  # a wrong label drawn from the readout's probabilities
sizes = [784, *OURS["hidden"]]
init = np.random.default_rng([SEED, 1])
layers = [Dense(n_in, n_out, init) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
theta = [float(n) for n in OURS["hidden"]]  # each layer's threshold: its number of units
good, loss = goodness.make_goodness("ssq"), Logistic()  # G = sum_j y_j^2; Eq. 1's loss
SCORE = list(range(1, len(layers)))  # layers read for classification: all but the first
readout = SoftmaxReadout(sum(OURS["hidden"][l] for l in SCORE), 10)  # V, c start at zero
opt = make_optimizer("sgd", 0.01, weight_decay=0.001)  # momentum = dampening = 0.9
readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
for l, layer in enumerate(layers):
    print(f"layer {l}: W {layer.W.shape}, theta {theta[l]:g}")

# %% [markdown]
# ## 2. Supervised FF in visible code
#
# A forward pass writes a label into the images (the *neutral* label, 0.1 in each of the
# 10 pixels, when there is none), normalises, and runs the layers, each seeing the
# normalised output of the one below. The softmax readout reads the normalised activities
# of the scored layers on a neutral-label pass.


# %%
def sweep(x, labels):
    """Every layer's activities ``y`` and their normalised version ``h``, for images with
    ``labels`` written in (None: the neutral label)."""
    h = normalize(code.embed(x, labels), "rms")  # (B, 784), |h|^2 = 784
    ys, hs = [], []
    for layer in layers:
        y, _ = layer.forward(h)  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
        h = normalize(y, "rms")  # only the orientation goes up
        ys.append(y)
        hs.append(h)
    return ys, hs


def features(x):
    """The readout's input: normalised neutral-label activities of the scored layers."""
    hs = sweep(x, None)[1]
    return np.concatenate([hs[l] for l in SCORE], axis=1)


ys, hs = sweep(x_train[:5], y_train[:5])
print("activities y:", [y.shape for y in ys])
print("squared length of each row of h, layer 0:", np.round(np.sum(hs[0] ** 2, axis=1)))
print("readout features:", features(x_train[:5]).shape)


# %% [markdown]
# One training step, in the order of the paper. First the readout learns from a
# neutral-label pass; its class probabilities `q` say which wrong labels the network
# currently finds plausible, and the negative labels are drawn from them (*hard*
# negatives). Then the positive rows (true labels) and negative rows (wrong labels) go
# through the layers as one matrix, and each layer takes one step on its own loss before
# its normalised output is passed on. Nothing flows back down.


# %%
def train_step(x, labels, rng, lr_scale=1.0):
    """One FF step on a batch: the readout, then every layer on its own objective.
    Returns the readout's loss and each layer's loss per positive/negative pair."""
    B = len(x)
    # the softmax readout on a neutral-label pass; no gradient reaches the layers
    loss_sm, dL_dV, dL_dc, q = readout.loss_and_grads(features(x), labels)
    readout_opt.update(readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
    # negative data: the same images with a wrong label, drawn from q
    x_neg, wrong = negatives.make(x, labels, rng, q)
    # write the labels in; positive rows first, then negative rows: (2B, 784)
    X = normalize(np.concatenate([code.embed(x, labels), code.embed(x_neg, wrong)]), "rms")
    s = goodness.sign(np.arange(2 * B) < B)  # +1: goodness should be high, -1: low
    layer_losses = []
    for l, layer in enumerate(layers):
        Y, cache = layer.forward(X)  # forward: (2B, n_in) @ (n_in, n_out)
        G = good.G(Y)  # goodness of every row, (2B,)
        layer_losses.append(float(loss.L(G, s, theta[l]).sum() / B))
        dL_dG = loss.dL_dG(G, s, theta[l]) / B  # Eq. 1's loss, mean over the B pairs
        grads = layer.local_grads(cache, good.dL_dy(Y, dL_dG))  # local gradient (Eq. 3)
        opt.update(layer.params(), grads, lr_scale, prefix=f"layer{l}.")  # update
        X = normalize(Y, "rms")  # normalise and pass on
    return loss_sm, layer_losses


# %% [markdown]
# Classification, both ways. By goodness: run the network once per label and add up the
# goodness of the scored layers; the best label wins (ten passes). By softmax: one
# neutral-label pass and the readout.


# %%
def goodness_per_label(x):
    """Goodness of every image with every label written in, per layer: (n_layers, B, 10)."""
    G = np.zeros((len(layers), len(x), 10))
    for k in range(10):
        ys, _ = sweep(x, np.full(len(x), k))
        for l, y in enumerate(ys):
            G[l, :, k] = good.G(y)
    return G


def predict_goodness(x, score=SCORE):
    return goodness_per_label(x)[score].sum(axis=0).argmax(axis=1)


def predict_softmax(x):
    return readout.predict(features(x))


G_0 = goodness_per_label(x_val[:1])[SCORE].sum(axis=0)[0]  # image 0, scored layers
print("untrained, image 0, goodness by label:", np.round(G_0))
print("untrained, label by goodness:", predict_goodness(x_val[:8]))
print("untrained, label by softmax: ", predict_softmax(x_val[:8]), "(the readout starts at 0)")
print("true labels:                 ", y_val[:8])


# %% [markdown]
# ## 3. The same numbers as the library
#
# The library's `FFNet.train_step` is the same step, written for speed (positive and
# negative rows in preallocated buffers, normalisation in place). Build an `FFNet` from
# copies of our initial layers, with the same negatives, scored layers and optimiser
# settings, and take three steps with each from the same seed. (Our lines leave out peer
# normalisation, footnote 9: the `FFNet` built here has it off, as it is by default.)
#
# The tolerance: both call the same functions on the same numbers, with one difference in
# the order of the float32 operations. Our lines form the weight gradient `x^T dL/da` and
# hand it to the optimiser; the library hands it over as that product still to be formed,
# and SGD forms it straight into its velocity, `v <- 0.9 v + 0.1 x^T dL/da` in one matrix
# product (`FFNet.fuse_momentum`, a speed trick). So the two round differently, and we
# allow any parameter to differ by `1e-6` times the largest weight of its layer, about
# eight float32 roundings (`eps = 1.2e-7`). The cell also prints how far the three steps
# moved the weights, about 1e-2, some ten thousand times the tolerance: a real difference
# (a missing `1/B`, a skipped normalisation, the wrong sign) would show.

# %%
net = FFNet(
    layers=[copy.deepcopy(layer) for layer in layers], negatives=negatives, score_layers=SCORE
)
net_opt = make_optimizer("sgd", 0.01, weight_decay=0.001)
net_readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
start = [layer.W.copy() for layer in layers]
rng_ours, rng_lib = np.random.default_rng(SEED), np.random.default_rng(SEED)
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    ours = train_step(x_train[batch], y_train[batch], rng_ours)
    lib = net.train_step(x_train[batch], y_train[batch], rng_lib, net_opt, net_readout_opt)
    lib_losses = [lib[f"layer{l}"] for l in range(len(layers))]
    print(f"step {step + 1}, layer losses: ours    {np.round(ours[1], 3)}")
    print(f"                     library {np.round(lib_losses, 3)}")
# Every W and b, to a millionth of the largest weight of its layer (readout: of V)
pairs = tutorial.layer_pairs(layers, net.layers)  # (what, ours, the library's, scale)
V_max = np.abs(net.readout.V).max()
pairs += [
    ("readout V", readout.V, net.readout.V, V_max),
    ("readout c", readout.c, net.readout.c, V_max),
]
tutorial.assert_same(pairs, rel_tol=1e-6)
for l, layer in enumerate(layers):
    moved = np.abs(layer.W - start[l]).max()
    diff = np.abs(layer.W - net.layers[l].W).max()
    print(f"layer {l}: 3 steps moved W by up to {moved:.1e}; ours - library: {diff:.1e}")
print("the same weights after 3 steps, to float32 rounding")

# %% [markdown]
# ## 4. Training with our lines
#
# Epochs of shuffled batches of 100 images, the learning rate held for the first half and
# then lowered linearly (`hold_then_linear`), and after every epoch the validation error of
# the softmax readout (one pass per image, so cheap enough to watch).

# %%
rng = np.random.default_rng(SEED)
for epoch in range(OURS["epochs"]):
    lr_scale = hold_then_linear(epoch, OURS["epochs"])
    order = rng.permutation(len(x_train))
    totals = np.zeros(len(layers) + 1)
    for begin in range(0, len(order), 100):
        idx = order[begin : begin + 100]
        loss_sm, layer_losses = train_step(x_train[idx], y_train[idx], rng, lr_scale)
        totals += [loss_sm, *layer_losses]
    totals /= len(order) / 100
    val_error = np.mean(predict_softmax(x_val) != y_val)
    print(
        f"epoch {epoch + 1}: layer losses {np.round(totals[1:], 2)}, readout {totals[0]:.3f}; "
        f"validation error (softmax) {100 * val_error:.2f}%"
    )

# %% [markdown]
# ## 5. Classify
#
# The goodness of every validation image with every label, kept per layer, scores every
# choice of layers at once: the paper's (all but the first), each layer alone, and all of
# them. The softmax readout needs one pass.

# %%
G_val = goodness_per_label(x_val)  # (n_layers, B, 10)
choices = {"all but the first (the paper)": SCORE}
choices.update({f"layer {l} alone": [l] for l in range(len(layers))})
choices["all layers"] = list(range(len(layers)))
errors = {}
for what, score in choices.items():
    errors[what] = np.mean(G_val[score].sum(axis=0).argmax(axis=1) != y_val)
    print(f"by goodness, {what:30s}: {100 * errors[what]:5.2f}% validation error")
error_goodness = errors["all but the first (the paper)"]
error_softmax = np.mean(predict_softmax(x_val) != y_val)
print(f"by softmax (one neutral-label pass)        : {100 * error_softmax:5.2f}%")

# %% [markdown]
# That is supervised FF: each layer trained by its own goodness, the label in the input,
# no gradient between layers. In the quick setting the network has seen 10,000 images
# twice; in the full setting (3 x 1000, 6 epochs on 50,000 images) the same lines reach
# about 3% validation error (2.8% by goodness, 3.2% by softmax).
#
# What has the first layer learnt? Each column of `W` is one unit's receptive field, a
# 28 x 28 image whose first 10 pixels (boxed) are its weights on the label.

# %%
fields = plot_receptive_fields(
    layers[0].W, OUT / "our_receptive_fields.png", n=100, n_label_pixels=10
)
tutorial.show(fields, caption=f"first-layer receptive fields after {OURS['epochs']} epochs")

# %% [markdown]
# After a quick run the fields are still mostly the random initial weights. After a long
# run they look like the paper's Fig. 2, which is the first layer of a network trained on
# *jittered* images (tutorial 08; 3 x 1000, 1,200 epochs):

# %%
tutorial.show_docs_figure(
    "jitter_3x1000_e1200_n60k_receptive_fields.png",
    "full run: the jittered network of tutorial 08 (3 x 1000, 1,200 epochs on 60,000 "
    "images), as in the paper's Fig. 2",
)

# %% [markdown]
# ## 6. At full scale: the library's experiment
#
# The experiment runs the same step, `FFNet.train_step`, asserted equal to ours above, and
# adds what a real run needs: peer normalisation (footnote 9, which keeps every unit
# about equally active), the data split, an evaluation after every epoch, a checkpoint
# after every epoch (`--resume`), progress bars, `metrics.json` and its figures.
#
# `experiments.default_args` gives the experiment's options with their defaults (the
# ones `ff-numpy train supervised --help` lists), changed by ours; `run` trains and
# returns what it wrote to `metrics.json`.

# %%
args = experiments.default_args(
    "supervised",
    **RUN,
    seed=SEED,
    out=str(OUT),
    data_dir=options.data_dir,
    resume=options.resume,
    progress=not options.no_progress,
)
metrics = experiments.get("supervised").run(args)
tutorial.print_history(metrics)
test_error_goodness = metrics["test_error_goodness"]
test_error_softmax = metrics["test_error_softmax"]
print(f"test error by goodness {100 * test_error_goodness:.2f}% (the paper: 1.36%)")
print(f"test error by softmax  {100 * test_error_softmax:.2f}%")

# %% [markdown]
# The run drew its learning curve (validation error by epoch, left; each layer's loss,
# right):

# %%
tutorial.show(OUT / "learning_curve.png", caption=f"this run: {RUN}")

# %% [markdown]
# A few epochs on 10,000 images show the start of the curve only. The full setting is
# the paper's network, 4 x 2000 units for 60 epochs on 50,000 images with hard
# negatives; it reached 1.36% test error by goodness and 1.39% by softmax (the paper:
# 1.36%):

# %%
tutorial.show_docs_figure(
    "supervised_4x2000_hard.png",
    "full run (4 x 2000, 60 epochs, hard negatives), docs/RESULTS.md",
)

# %% [markdown]
# The experiment's trained network is in `model.npz`: `load_ffnet` rebuilds it, here to
# draw its first layer's receptive fields.

# %%
run_net = load_ffnet(OUT / "model.npz")
fields = plot_receptive_fields(
    run_net.layers[0].W, OUT / "receptive_fields.png", n=100, n_label_pixels=10
)
tutorial.show(fields, caption="the experiment's first layer")

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_02.py` (`from solutions.tutorial_02 import embed_label`
# in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the label code
#
# Write `embed_label(x, labels, n_classes)`: a copy of the images `x` (B, 784) with each
# row's label written as a one-hot code into its first `n_classes` pixels (whatever was
# there before is replaced). The input must not change: `train_step` writes the true and
# the wrong labels into the same images.


# %%
def embed_label(x, labels, n_classes=10):
    """A copy of x (B, n_in) with a one-hot code of labels (B,) in its first n_classes
    pixels."""
    raise NotImplementedError("exercise 1: write the label code")


tutorial.self_check(tutorial.check_embed_label, embed_label)

# %% [markdown]
# ### Exercise 2: length normalisation
#
# Write `normalize_rms(y)`: each row divided by its root-mean-square
# `sqrt(mean_j y_j^2)`, so that `mean_j y_hat_j^2 = 1` (that is, `|y_hat|^2 = n`). A row
# of zeros (every unit off) must stay zeros, with no division by zero. Then answer: why
# does FF normalise the length of a layer's output before the next layer, and why *not*
# subtract the mean first, as layer normalisation does?


# %%
def normalize_rms(y):
    """Each row of y (B, n) divided by its root-mean-square; all-zero rows stay zero."""
    raise NotImplementedError("exercise 2: write the normalisation")


tutorial.self_check(tutorial.check_normalize_rms, normalize_rms)

# %% [markdown]
# <details><summary>Worked answer: why normalise, and why no mean subtraction?</summary>
#
# The length of a layer's output *is* its goodness: `|y|^2 = G`. If the next layer saw the
# length, it could tell positive from negative data by copying it (high length, positive)
# and would learn nothing new. Dividing by the length hides it, so the next layer sees
# only the orientation, the *pattern* of activity, and must find its own features (paper,
# Sec. 2.1).
#
# Division alone hides the length exactly (`normalize_rms(k y) = normalize_rms(y)` for any
# `k > 0`, which the self-check tests). Subtracting the mean would not hide it any better,
# and it would remove more: the component along `(1, 1, ..., 1)`, which for non-negative
# ReLU activities measures how *spread* the activity is (a few strong units or many weak
# ones), a legitimate feature of the pattern. It would also turn the non-negative
# activities into signed ones and change which units look "active" to the next layer.
# The paper normalises the length only (footnote 5), and so does this library
# (`ff_numpy.norm.normalize`).
# </details>
#
# ### Exercise 3: hard negatives
#
# `HardWrongLabels` draws each row's wrong label in proportion to the probabilities `q`
# (B, 10) that the softmax readout gives the wrong labels: the mistakes the network is
# closest to making. Write `hard_wrong_labels(q, labels, rng)`: never the true label, each
# wrong label with probability proportional to its `q`, uniform over the wrong labels for
# a row where they all have probability 0 (the model is sure), and every random number
# drawn from `rng`.


# %%
def hard_wrong_labels(q, labels, rng):
    """A wrong label for each row, drawn in proportion to q (B, 10); ints of shape (B,)."""
    raise NotImplementedError("exercise 3: draw the hard negatives")


tutorial.self_check(tutorial.check_hard_wrong_labels, hard_wrong_labels)

# %% [markdown]
# ### Question 4: why skip the first layer when classifying?
#
# The paper adds the goodness of every layer *but the first*, and its softmax reads the
# same layers. Look at the table of section 5 (each layer alone, all but the first, all).
# What does the first layer see that the others do not, and why might its goodness be a
# poorer guide to the label?
#
# <details><summary>Worked answer</summary>
#
# The first layer is the only one that sees the label directly, as 10 of its 784 inputs:
# writing label `k` adds row `k` of `W` to every unit's input, so the label can only shift
# each unit's threshold. Its goodness for label `k` is a sum of template matches of the
# raw image with label-dependent offsets: a single linear layer's judgement of whether the
# label fits. Every later layer sees the normalised *pattern* of the layer below, in which
# image and label are already combined nonlinearly, so its goodness can measure agreement
# between them in terms of features rather than pixels.
#
# The paper gives the rule without measurements, so measure (the table of section 5
# does). Early in training the first layer can be as good a classifier as the others, or
# better: it learns fastest, since its input does not change under it as the later
# layers' inputs do, and adding it may help. With more training the later layers overtake
# it. A 3 x 1000 network trained by the experiment for 6 epochs with hard negatives (the
# README's quick job) gives 3.5% test error with the first layer alone, 2.4% with the
# second, 3.1% with the third, and 2.21% both with all three and with all but the first.
# Our own lines in the full setting give 3.2% validation error with the first layer alone,
# 2.7% with the second, and 2.6% or 2.8% with or without the first layer, a difference
# within the noise of 10,000 images (about 0.16 points). So leaving the first layer out
# costs little, and it keeps the score to layers that judge features rather than pixels.
# For unsupervised FF the paper reports that adding the first layer to the softmax
# readout makes the result worse (Sec. 3.2).
# </details>
