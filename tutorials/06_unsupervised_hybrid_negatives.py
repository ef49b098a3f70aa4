# %% [markdown]
# # Tutorial 06: unsupervised Forward-Forward with hybrid-image negatives
#
# Supervised FF (tutorial 02) makes negative data by writing a wrong label into an image.
# Without labels there is nothing to get wrong, so the paper (Sec. 3.2, Fig. 1) makes
# negative images instead: *hybrids* of two different digits, cut and pasted along a mask
# with large regions of ones and zeros. Every layer learns to give real images (positive
# data) high goodness and hybrids (negative data) low goodness. No label ever reaches a
# hidden layer; a linear softmax readout, trained on the normalised activities of the last
# three hidden layers, turns what the layers learnt into a digit classifier.
#
# **You will learn**
#
# * how the masks are made (random bits, blurred again and again, thresholded) and how
#   their regions grow with the number of blurs;
# * the hybrids of the paper's Fig. 1, made in three lines, and why they are good negative
#   data: locally they look like digits, globally they do not;
# * unsupervised FF in about 30 lines built from the library's parts (negatives, per-layer
#   forward, goodness, local gradient, update, normalise; the readout on the real images'
#   features), asserted equal to the library's own training step;
# * the full-scale run through the library's `unsupervised` experiment, and how to ask
#   which layers the softmax should read, on validation data, without retraining.
#
# **Time** (2 cores): the notebook runs the quick setting, about 15 s (4 hidden layers of
# 200 units, 3 epochs on 10,000 images). As a script, `python
# tutorials/06_unsupervised_hybrid_negatives.py` runs the paper's net, 4 x 2000 units for
# 100 epochs on 50,000 images (about 2.5 hours; `--resume` continues an interrupted run),
# and `--quick` the quick setting.
#
# **Exercises** at the end: the masks by blurring and thresholding, the hybrids, why
# hybrids and not noise, and whether the readout should read the first hidden layer.

# %%
import copy
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import experiments, goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.experiments.evaluation import error_rate
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.layers import Dense
from ff_numpy.loss import Logistic
from ff_numpy.model import FFNet
from ff_numpy.negatives import N_BLUR, hybrid_images, hybrid_masks
from ff_numpy.norm import normalize
from ff_numpy.optim import make_optimizer
from ff_numpy.plots import plot_hybrid_gallery
from ff_numpy.readout import SoftmaxReadout, fit_readout

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. `RUN` holds the options of
# the library's experiment that differ from its defaults (none in the full setting: the
# defaults are the paper's net). The quick net has four layers, like the paper's, so that
# "the last three" and "all four" differ.

# %% tags=["script-only"]
NAME = "06_unsupervised_hybrid_negatives"
QUICK = {"hidden": [200, 200, 200, 200], "epochs": 3, "train_size": 10_000}
FULL: dict = {}  # the defaults: 4 x 2000, 100 epochs on 50,000 images
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 06: unsupervised Forward-Forward with hybrid-image negatives.",
        f"small run: {QUICK}",
        HERE / "out" / NAME,
    )
)
RUN = QUICK if options.quick else FULL
N_READOUT = 10_000 if options.quick else 20_000  # training images of the frozen readouts
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: experiment options {RUN or 'defaults'}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. Masks with large regions
#
# A mask starts as random bits, one per pixel. It is then blurred `n_blur` times, each
# time with the filter `[1/4, 1/2, 1/4]` along the rows and then along the columns, and
# finally thresholded at 0.5:
#
# ```
# m = (uniform(0, 1) < 0.5)                     random bits, as numbers
# repeat n_blur times:
#     m = m convolved with [1/4, 1/2, 1/4] along every row, then along every column
# mask = m > 0.5
# ```
#
# Each pass averages a pixel with its neighbours, so nearby pixels become alike and the
# regions of the thresholded mask grow. The paper does not say how many passes; the
# library's `hybrid_masks` uses `N_BLUR = 8` by default (you write it yourself in
# exercise 1). The same random bits (same seed) blurred a different number of times show
# the growth; the size of the regions is measured by the mean length of the runs of equal
# values along a row.

# %%
SEED = 0
BLURS = (0, 1, 2, 4, N_BLUR, 20)
masks_by_blur = {  # the same 200 random bit images, blurred k times, thresholded
    k: hybrid_masks(200, np.random.default_rng([SEED, 1]), n_blur=k) for k in BLURS
}


def mean_run_length(masks):
    """Mean length of the runs of equal values along the rows of (n, H, W) masks."""
    H, W = masks.shape[1:]
    changes = (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=(1, 2))  # (n,)
    return float(np.mean(H * W / (changes + H)))  # every row starts a run


run_lengths = {k: mean_run_length(m) for k, m in masks_by_blur.items()}
print("blurs   mean run along a row   fraction of ones")
for k, m in masks_by_blur.items():
    mark = "   <- the library's default" if k == N_BLUR else ""
    print(f"{k:5d}   {run_lengths[k]:12.1f} pixels   {m.mean():16.2f}{mark}")

# %%
fig = Figure(figsize=(2 * len(BLURS), 2.8), layout="constrained")
for ax, k in zip(fig.subplots(1, len(BLURS)), BLURS):
    ax.imshow(masks_by_blur[k][0], cmap="gray", vmin=0, vmax=1)
    ax.set_title("random bits" if k == 0 else f"blurred {k} x", fontsize=9)
    ax.set_xlabel(f"runs of {run_lengths[k]:.1f} px", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("one mask from the same random bits: the regions grow with blurring", fontsize=10)
tutorial.show(fig, OUT / "mask_blurring.png")

# %% [markdown]
# Unblurred bits change value every second pixel; after 8 blurs the regions run about 7
# pixels along a row, from a stroke's width to half a digit, and half the pixels are
# still ones.
#
# ## 2. Hybrids (Fig. 1)
#
# A hybrid keeps image `a` where the mask is 1 and a *different* image `b` elsewhere,
# `h = m a + (1 - m) b`. In a batch, every image is paired with another one drawn at
# random (adding an offset of 1 to B - 1 modulo B can never give the image itself), so the
# batch's real images are the positive rows and their hybrids the negative rows.

# %%
data = load_mnist(options.data_dir)
x = data.train.x[:60]  # (60, 784), pixels in [0, 1]
B = len(x)
rng = np.random.default_rng([SEED, 2])
partner = (np.arange(B) + rng.integers(1, B, size=B)) % B  # image b of each row, never a
masks = hybrid_masks(B, rng).reshape(B, -1)  # (B, 784) booleans
hybrids = np.where(masks, x, x[partner])  # image a where the mask is 1, image b elsewhere

# the library's negatives, from the same seed, are these three lines
lib_hybrids, lib_masks, lib_partner = hybrid_images(x, np.random.default_rng([SEED, 2]))
assert np.array_equal(hybrids, lib_hybrids) and np.array_equal(partner, lib_partner)
print(f"{B} hybrids, the same as ff_numpy.negatives.hybrid_images from the same seed")
print(f"images paired with themselves: {np.sum(partner == np.arange(B))}")
print(f"pixels taken from image a: {100 * masks.mean():.0f}%")

# %%
gallery = plot_hybrid_gallery(x, hybrids, masks, partner, OUT / "hybrid_gallery.png", n=6)
tutorial.show(gallery)

# %% [markdown]
# Every small patch of a hybrid is a patch of a real digit (strokes of the right width,
# smooth ink), except where the mask's border cuts a stroke; only the shape as a whole
# is wrong. A layer that tells real images from hybrids must therefore look at how
# distant parts of an image go together: at shapes.
#
# ## 3. Unsupervised FF in visible code
#
# The parts: layers with their thresholds (the number of units, as in tutorial 02), the
# goodness and Eq. 1's loss, the optimisers of the experiment (SGD with Hinton's momentum
# and dampening of 0.9, weight decay on the weights) and a softmax readout on the
# normalised activities of the last three layers (`SCORE`). The net is small here, the
# quick setting's 4 x 200, so that the cells run in a moment.

# %%
hidden = [200, 200, 200, 200]
sizes = [784, *hidden]
init = np.random.default_rng([SEED, 3])
layers = [Dense(n_in, n_out, init) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
theta = [float(n) for n in hidden]
good, loss = goodness.make_goodness("ssq"), Logistic()  # G = sum_j y_j^2; Eq. 1's loss
SCORE = [1, 2, 3]  # the layers the readout reads: the last three
readout = SoftmaxReadout(sum(hidden[l] for l in SCORE), 10)
opt = make_optimizer("sgd", 0.003, weight_decay=0.001)
readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
for l, layer in enumerate(layers):
    print(f"layer {l}: W {layer.W.shape}, theta {theta[l]:g}")
print(f"readout: V {readout.V.shape}, on the normalised activities of layers {SCORE}")

# %% [markdown]
# One training step. The negative rows are hybrids of the batch; positive and negative
# rows go through the layers as one matrix of `2B` rows, real images first; each layer
# takes one step on its own loss and passes on the *normalised* activities (only their
# orientation). The readout learns last, from the normalised activities of the *real*
# images at the scored layers, the only place where the labels are used; its gradient
# stays in the readout.


# %%
def train_step(x, labels, rng, lr_scale=1.0):
    """One unsupervised FF step; returns the readout's loss and each layer's loss per
    pair of a real image and a hybrid."""
    B = len(x)
    # negative data: hybrids of two different images of the batch (no label anywhere)
    partner = (np.arange(B) + rng.integers(1, B, size=B)) % B
    masks = hybrid_masks(B, rng).reshape(B, -1)
    x_neg = np.where(masks, x, x[partner])
    X = normalize(np.concatenate([x, x_neg]), "rms")  # (2B, 784): real rows first
    s = goodness.sign(np.arange(2 * B) < B)  # +1: goodness should be high, -1: low
    features, layer_losses = [], []
    for l, layer in enumerate(layers):
        Y, cache = layer.forward(X)  # forward: (2B, n_in) @ (n_in, n_out)
        G = good.G(Y)  # goodness of every row, (2B,)
        layer_losses.append(float(loss.L(G, s, theta[l]).sum() / B))
        dL_dG = loss.dL_dG(G, s, theta[l]) / B  # mean over the B pairs
        grads = layer.local_grads(cache, good.dL_dy(Y, dL_dG))  # local gradient (Eq. 3)
        opt.update(layer.params(), grads, lr_scale, prefix=f"layer{l}.")  # update
        X = normalize(Y, "rms")  # normalise and pass on
        if l in SCORE:
            features.append(X[:B])  # the real images' rows
    # the softmax readout, on the real images' features, with their labels
    loss_sm, dL_dV, dL_dc, _ = readout.loss_and_grads(np.concatenate(features, axis=1), labels)
    readout_opt.update(readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
    return loss_sm, layer_losses


# %% [markdown]
# ## 4. The same numbers as the library
#
# `FFNet(..., supervised=False)` runs the same step (`train_step`, which for an
# unsupervised net makes hybrids with `HybridImages`, writes no label and trains the
# readout after the sweep). Build one from copies of our initial layers, with the same
# scored layers and optimiser settings, and take three steps with each from the same
# seed. Peer normalisation (footnote 9) is left out of our lines, so the `FFNet` has it
# off, as it is by default (tutorial 07 adds it; the experiment uses it).
#
# The tolerance, as in tutorial 02: the library forms each weight gradient inside SGD's
# velocity update (`FFNet.fuse_momentum`), our lines form it first, so the two round
# differently; we allow any parameter to differ by `1e-6` times the largest weight of its
# layer (about eight float32 roundings), while the three steps move the weights by about
# 1e-2.

# %%
net = FFNet(layers=[copy.deepcopy(layer) for layer in layers], supervised=False, score_layers=SCORE)
net_opt = make_optimizer("sgd", 0.003, weight_decay=0.001)
net_readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
start = [layer.W.copy() for layer in layers]
x_train, y_train = data.train.x, data.train.y
rng_ours, rng_lib = np.random.default_rng(SEED), np.random.default_rng(SEED)
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    ours = train_step(x_train[batch], y_train[batch], rng_ours)
    lib = net.train_step(x_train[batch], y_train[batch], rng_lib, net_opt, net_readout_opt)
    lib_losses = [lib[f"layer{l}"] for l in range(len(layers))]
    print(f"step {step + 1}, layer losses: ours    {np.round(ours[1], 2)}, readout {ours[0]:.4f}")
    print(f"                     library {np.round(lib_losses, 2)}, readout {lib['softmax']:.4f}")
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
print("the same weights and readout after 3 steps, to float32 rounding")

# %% [markdown]
# ## 5. At full scale: the library's experiment
#
# The `unsupervised` experiment trains `FFNet(supervised=False)` with this step and adds
# peer normalisation (strength 0.03), the data split (50,000 training and 10,000
# validation images), the validation error of the readout after every epoch, a
# checkpoint after every epoch (`--resume`), `metrics.json` and the learning curve.
# `experiments.default_args` gives its options with their defaults (`ff-numpy train
# unsupervised --help` lists them), changed by ours.

# %%
args = experiments.default_args(
    "unsupervised",
    **RUN,
    seed=SEED,
    out=str(OUT),
    data_dir=options.data_dir,
    resume=options.resume,
    progress=not options.no_progress,
)
metrics = experiments.get("unsupervised").run(args)
tutorial.print_history(metrics)
test_error_softmax = metrics["test_error_softmax"]
print(f"test error, softmax on layers {metrics['config']['score_layers']}: "
      f"{100 * test_error_softmax:.2f}% (the paper, 4 x 2000 for 100 epochs: 1.37%)")  # fmt: skip

# %%
tutorial.show(OUT / "learning_curve.png", caption=f"this run: {RUN or 'the defaults'}")

# %% [markdown]
# A few epochs of a small net show the start of the curve. The full setting, the paper's
# 4 x 2000 for 100 epochs, reached 1.39% test error with the readout trained alongside
# the net, and 1.37% with a readout refitted on the trained net's last three layers (the
# paper: 1.37%):

# %%
tutorial.show_docs_figure(
    "unsup_4x2000_learning_curve.png",
    "full run (4 x 2000, 100 epochs), docs/RESULTS.md",
)

# %% [markdown]
# ## 6. Which layers should the softmax read?
#
# The paper reads the last three hidden layers and says that adding the first one makes
# the test error worse. To compare sets of layers without retraining the net, freeze it:
# compute the normalised activities of every layer once per image
# (`FFNet.normalized_activities`), and fit a fresh softmax on the chosen layers
# (`fit_readout`: the experiments' readout recipe, 20 epochs). The set to keep is the one
# with the lowest *validation* error; the test error is reported, never used to choose.

# %%
model = load_ffnet(OUT / "model.npz")  # the experiment's trained net
SUBSETS = [(1, 2, 3), (0, 1, 2, 3)]  # the paper's, and with the first hidden layer
splits = {
    "train": (data.train.x[:N_READOUT], data.train.y[:N_READOUT]),
    "validation": (data.validation.x, data.validation.y),
    "test": (data.test.x, data.test.y),
}


def frozen_features(images, subset):
    """The frozen net's normalised activities of the layers in ``subset``, side by side."""
    hs = model.normalized_activities(images)  # one (N, n_l) array per layer
    return np.concatenate([hs[l] for l in subset], axis=1)


readout_errors = {}
for subset in SUBSETS:
    x_fit, y_fit = splits["train"]
    fitted = fit_readout(frozen_features(x_fit, subset), y_fit, 10,
                         rng=np.random.default_rng([SEED, 4]))  # fmt: skip
    readout_errors[subset] = {
        name: error_rate(fitted.predict(frozen_features(xs, subset)), ys)
        for name, (xs, ys) in splits.items()
        if name != "train"
    }
best = min(readout_errors, key=lambda k: readout_errors[k]["validation"])
print(f"softmax on the frozen net's layers ({N_READOUT} training images, 20 epochs):")
print("layers     validation   test")
for subset, err in readout_errors.items():
    mark = "   <- lowest validation error" if subset == best else ""
    print(f"{' '.join(map(str, subset)):9s}  {100 * err['validation']:9.2f}%  "
          f"{100 * err['test']:5.2f}%{mark}")  # fmt: skip

# %%
fig = Figure(figsize=(5.5, 3.6), layout="constrained")
ax = fig.subplots()
where = np.arange(len(SUBSETS))
for shift, split in ((-0.2, "validation"), (0.2, "test")):
    values = [100 * readout_errors[s][split] for s in SUBSETS]
    ax.bar(where + shift, values, 0.4, label=split + (" (chooses)" if shift < 0 else ""))
    for xi, v in zip(where + shift, values):
        ax.annotate(f"{v:.2f}", (xi, v), ha="center", va="bottom", fontsize=8)
ax.set_xticks(where)
ax.set_xticklabels([" ".join(map(str, s)) for s in SUBSETS])
ax.set_xlabel("hidden layers read by the softmax (0 = first)")
ax.set_ylabel("error (%)")
ax.legend(fontsize=8, loc="lower right")
ax.set_title(f"softmax on the frozen net, {'x'.join(map(str, model.hidden))}", fontsize=10)
tutorial.show(fig, OUT / "readout_layers.png")

# %% [markdown]
# The quick net is far too small to settle the question; whichever set wins here, the
# margin says little. On the full run (4 x 2000, 100 epochs) the difference was below the
# noise of 10,000 test images (about 0.12 points): 1.37% test error without the first
# layer and 1.38% with it (1.62% and 1.60% on validation), while reading fewer of the last
# layers clearly hurt (1.52% with the last two, 1.65% with the last alone):

# %%
tutorial.show_docs_figure(
    "unsup_readout_layers.png",
    "full run (4 x 2000, 100 epochs): softmax refitted on frozen layer sets",
)

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_06.py` (`from solutions.tutorial_06 import blur_mask` in
# a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: masks by blurring and thresholding
#
# Write `blur_mask(bits, n_blur)`: blur the random bit images `bits` (n, H, W) `n_blur`
# times, each time with `[1/4, 1/2, 1/4]` along every row and then along every column,
# and threshold at 0.5 (`> 0.5`). At the border, the missing neighbour is the border
# pixel itself (`np.pad(..., mode="symmetric")`, or `scipy.ndimage.convolve1d(...,
# mode="reflect")`). The self-check feeds your function the same random bits as
# `hybrid_masks` draws and compares the masks.


# %%
def blur_mask(bits, n_blur):
    """Masks (n, H, W) of bool: the bit images (n, H, W) blurred n_blur times along rows
    and columns with [1/4, 1/2, 1/4], then thresholded at 0.5."""
    raise NotImplementedError("exercise 1: blur and threshold")


tutorial.self_check(tutorial.check_blur_mask, blur_mask)

# %% [markdown]
# ### Exercise 2: hybrids
#
# Write `make_hybrids(x, rng)` for a batch of images `x` (B, 784): pair every image with
# another one of the batch, drawn at random (never itself), draw one mask per image with
# the library's `hybrid_masks(B, rng)` (or your `blur_mask`), and return `(hybrids,
# masks, partner)` where row `i` of `hybrids` is image `i` where `masks[i]` is true and
# image `partner[i]` elsewhere. Draw every random number from `rng`.


# %%
def make_hybrids(x, rng):
    """Hybrids (B, 784), their masks (B, 784) of bool and each row's partner (B,) of int."""
    raise NotImplementedError("exercise 2: pair, mask and paste")


tutorial.self_check(tutorial.check_make_hybrids, make_hybrids)

# %% [markdown]
# ### Question 3: why hybrids and not noise?
#
# Random pixel noise, or real images with some pixels switched off, would also be
# "not a digit". Why does the paper go to the trouble of masks with large regions? What
# would a net learn to tell real images from noise, and what if the masks had tiny
# regions (`n_blur = 0`)?
#
# <details><summary>Worked answer</summary>
#
# A layer learns whatever separates positive from negative data most easily. Noise
# differs from digits in every small patch (no strokes, speckled instead of smooth ink, a
# different histogram of pixel values), so a few units with tiny receptive fields can
# reject it, and the net stops learning once it does so: it learns local texture, nothing
# about shape. The paper asks for negative data with very similar *short-range*
# correlations and very different *long-range* correlations (Sec. 3.2). A hybrid is made
# of real digits, so almost every small patch is a real patch; only combining
# information over distances comparable to a digit reveals that the two halves do not
# belong together. That forces the layers to learn shapes, the features a classifier
# needs.
#
# The size of the regions is the knob. With `n_blur = 0` the mask changes every second
# pixel, so the hybrid is a speckled overlay of two digits: every patch is visibly wrong
# and the task is local again. With very many blurs the mask is almost a straight cut in
# two halves, so most of the image is one real digit and the only tell-tale sign is one
# seam. In between (the library's default of 8 blurs gives runs of about 7 pixels) the
# seams are long and curved but the patches real. It is a setting to choose on validation
# data: for the locally connected net of tutorial 07, 4 blurs beat 2, 8 and 16.
# </details>
#
# ### Question 4: should the readout read the first hidden layer?
#
# The paper reports that adding the first hidden layer's activities to the softmax's
# input makes the test error worse. Section 6 compared the two sets on the quick net, and
# its last figure on the full net. Why could the first layer hurt, and what do the full
# run's numbers say?
#
# <details><summary>Worked answer</summary>
#
# The first layer sees pixels: its units are detectors of local strokes, and its
# activities vary with every small shift or thickening of a digit. The later layers see
# only the *orientation* of the layer below (its length is normalised away) and learn
# from their own objective to tell real shapes from hybrids, so their features are more
# about shape and less about exact pixels. A linear readout given 2000 more inputs of the
# first kind has more to fit, and what it fits is partly noise of the training images:
# more capacity without much new information, as the later layers are computed from the
# first one anyway. That is a reason it *could* hurt.
#
# Whether it does is a measurement, and the right one is on validation data: the full
# run gave 1.62% validation error without the first layer and 1.60% with it (1.37% and
# 1.38% test). The standard error of an error rate near 1.4% on 10,000 images is about
# 0.12 points, so these differ by far less than the noise: at this precision the claim is
# neither confirmed nor refuted. Reading fewer of the *last* layers, by contrast, clearly
# hurts (1.52% test with the last two, 1.65% with the last alone).
# </details>
