# %% [markdown]
# # Tutorial 07: local receptive fields and peer normalisation
#
# The paper's best unsupervised MNIST result (Sec. 3.2, footnote 8: 1.16% test error)
# uses the unsupervised FF of tutorial 06 on a net of *locally connected* layers: every
# unit sees a small patch of the layer below, and no weights are shared (unlike a
# convolution, each unit has weights of its own). It also uses *peer normalisation*
# (footnote 9), which keeps every unit of a layer about as active as the others. This
# tutorial builds both from the library's parts.
#
# **You will learn**
#
# * the architecture of footnote 8 as three 0/1 masks, and which pixels a unit of each
#   layer ends up seeing (the product of the masks);
# * a locally connected layer's forward pass and local gradient written location by
#   location, equal to the library's `Masked` layer and to a dense layer whose weights
#   are zero outside the mask;
# * peer normalisation: a running mean of every unit's activity, and a term added to
#   `dL/da` *after* the ReLU's derivative, so that it also reaches units that are off;
# * the whole unsupervised step on the local net with peer normalisation, in visible
#   code, asserted equal to the library's training step; then the `local` experiment.
#
# **Time** (2 cores): the notebook runs the quick setting, about 25 s (the paper's
# layers, fixed by the architecture, trained for 1 epoch on 3,000 images). As a script,
# `python tutorials/07_local_receptive_fields.py` runs the full setting, the experiment's
# defaults (60 epochs on 50,000 images, 40 minutes to an hour; `--resume` continues an
# interrupted run), and `--quick` the quick one.
#
# **Exercises** at the end: the field of a location of a higher layer, the peer
# normalisation term, why that term goes after the ReLU's derivative, and why masked
# weights stay zero.

# %%
import copy
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ff_numpy import experiments, goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.layers import Masked
from ff_numpy.loss import Logistic
from ff_numpy.masks import paper_local_architecture
from ff_numpy.model import FFNet
from ff_numpy.negatives import hybrid_masks
from ff_numpy.norm import PeerNorm, normalize
from ff_numpy.optim import make_optimizer
from ff_numpy.readout import SoftmaxReadout

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. `RUN` holds the options of
# the `local` experiment that differ from its defaults (none in the full setting); the
# layer sizes are fixed by the architecture.

# %% tags=["script-only"]
NAME = "07_local_receptive_fields"
QUICK = {"epochs": 1, "train_size": 3_000}
FULL: dict = {}  # the defaults: 60 epochs on 50,000 images, peer strength 0.03
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 07: local receptive fields and peer normalisation.",
        f"small run: {QUICK}",
        HERE / "out" / NAME,
    )
)
RUN = QUICK if options.quick else FULL
N_ACTIVITY = 2_000 if options.quick else 10_000  # validation images for the unit means
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: experiment options {RUN or 'defaults'}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. The architecture of footnote 8, as masks
#
# Layer 1 is a 4 x 4 grid of locations, 6 pixels apart, each seeing a 10 x 10 patch of
# the image, with 128 units per location. Layer 2 is a 3 x 3 grid; each location sees
# all the units of a 2 x 2 square of layer-1 locations, with 220 units. Layer 3 is a
# 2 x 2 grid over 2 x 2 squares of layer 2, with 512 units.
#
# `paper_local_architecture()` returns one `LocalFields` per layer: `fields[loc]` lists
# the inputs that every unit of location `loc` sees, and the units are numbered
# location-major (`unit = loc * channels + c`). `mask()` is the (n_in, n_out) 0/1 matrix
# with `mask[i, j] = 1` iff unit `j` sees input `i`: a locally connected layer is a dense
# layer whose weights are zero outside this mask.

# %%
arch = paper_local_architecture()
masks = [f.mask() for f in arch]
print("layer  grid  field of a location     units   mask ones")
for l, (f, m) in enumerate(zip(arch, masks)):
    below = "pixels" if l == 0 else f"units of layer {l}"
    print(f"{l + 1:5d}  {f.grid[0]}x{f.grid[1]}  {f.field_size:4d} {below:15s}  "
          f"{f.n_out:5d}  {100 * m.mean():8.1f}%")  # fmt: skip

# %% [markdown]
# What a unit of layer 2 sees *in pixels* is not stored anywhere: pixel `i` reaches unit
# `j` of layer 2 iff some layer-1 unit `k` sees `i` and `j` sees `k`, that is iff
# `(M1 @ M2)[i, j] > 0`; for layer 3, `(M1 @ M2 @ M3)[i, j] > 0`. One unit per location
# is enough, as all the units of a location see the same inputs.

# %%
footprints = []  # per layer: (784, n_loc) booleans, the pixels one unit per location sees
for l, f in enumerate(arch):
    reach = masks[l][:, np.arange(f.n_loc) * f.channels]  # (n_in, n_loc): a unit each
    for m in reversed(masks[:l]):
        reach = m @ reach  # (n_in of the layer below, n_loc)
    footprints.append(reach > 0)


def bounding_box(pixels):
    """Rows and columns ``(r0, r1, c0, c1)`` (inclusive) of a (784,) boolean image."""
    img = pixels.reshape(28, 28)
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


pixels_seen = []
for l, fp in enumerate(footprints):
    sides = set()
    for loc in range(fp.shape[1]):
        r0, r1, c0, c1 = bounding_box(fp[:, loc])
        assert fp[:, loc].sum() == (r1 - r0 + 1) * (c1 - c0 + 1)  # a full square, no holes
        sides.add((int(r1 - r0 + 1), int(c1 - c0 + 1)))
    pixels_seen.append(sorted(sides))
    print(f"a unit of layer {l + 1} sees a square of {' or '.join(f'{h} x {w}' for h, w in sides)}"
          " pixels")  # fmt: skip

# %%
data = load_mnist(options.data_dir)
x_image = data.validation.x[0]
fig = Figure(figsize=(13, 8.5), layout="constrained")
axes = fig.subplots(2, 3, gridspec_kw={"height_ratios": [1, 1.1]})
for l, (ax, fp) in enumerate(zip(axes[0], footprints)):
    ax.imshow(x_image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    for loc in range(fp.shape[1]):
        r0, r1, c0, c1 = bounding_box(fp[:, loc])
        inset = 0.12 * (loc % 4)  # overlapping squares, drawn slightly apart
        ax.add_patch(Rectangle((c0 - 0.5 + inset, r0 - 0.5 + inset), c1 - c0 + 1 - 2 * inset,
                               r1 - r0 + 1 - 2 * inset, fill=False, lw=2.2 if loc == 0 else 0.9,
                               ec="red" if loc == 0 else f"C{loc % 10}"))  # fmt: skip
    h, w = pixels_seen[l][0]
    ax.set_title(f"layer {l + 1}: {fp.shape[1]} locations, each seeing {h} x {w} pixels")
    ax.set_xticks([])
    ax.set_yticks([])
for l, (ax, f, m) in enumerate(zip(axes[1], arch, masks)):
    ax.imshow(m, cmap="Greys", aspect="auto", interpolation="nearest")
    ax.set_title(f"mask of layer {l + 1}: {f.n_in} inputs x {f.n_out} units, "
                 f"{100 * m.mean():.1f}% ones", fontsize=9)  # fmt: skip
    ax.set_xlabel(f"unit (location-major: {f.n_loc} blocks of {f.channels})")
    ax.set_ylabel("input (pixel)" if l == 0 else f"input (unit of layer {l})")
fig.suptitle("locally connected layers of footnote 8 (top: what one unit per location "
             "sees, in pixels; red: the first location)")  # fmt: skip
tutorial.show(fig, OUT / "local_fields.png")

# %% [markdown]
# ## 2. A local layer, location by location
#
# `Masked` stores the full (n_in, n_out) matrix `W`, zero outside the mask (one copy of
# the weights for checkpoints, figures and the optimiser), but never multiplies the
# zeros: for each location it gathers the field of the input, `x[:, field]` (B, f), and
# the location's weight block, `W[field, units]` (f, C), and multiplies them. The local
# gradient is the dense layer's, `dL/dW = x^T dL/da`, computed block by block in the
# same way, and zero outside the fields: a weight that does not exist has no gradient.


# %%
def local_forward(layer, fields, x):
    """relu(x W + b), location by location: each location's units read only their field."""
    C = fields.channels
    a = np.empty((len(x), fields.n_out), dtype=layer.W.dtype)
    for loc, field in enumerate(fields.fields):
        units = slice(loc * C, (loc + 1) * C)
        a[:, units] = x[:, field] @ layer.W[field, units]  # (B, f) @ (f, C) -> (B, C)
    return np.maximum(a + layer.b, 0)


def local_weight_grad(layer, fields, x, dL_da):
    """x^T dL/da, location by location; zero outside the fields."""
    C = fields.channels
    dL_dW = np.zeros_like(layer.W)
    for loc, field in enumerate(fields.fields):
        units = slice(loc * C, (loc + 1) * C)
        dL_dW[field, units] = x[:, field].T @ dL_da[:, units]  # (f, B) @ (B, C) -> (f, C)
    return dL_dW


# %% [markdown]
# On 200 real images, through freshly initialised layers (each layer's input is the
# normalised output of the one below), with a `dL/dy` from Eq. 1's loss: our lines
# against the library's `Masked` layer (`forward`, `local_grads`) and against the
# masked-dense reference (`forward_reference`: the full product `x @ W`, zeros
# included). The relative differences are float32 rounding; the time shows what skipping
# the zeros saves.

# %%
SEED = 0
good, loss = goodness.make_goodness("ssq"), Logistic()
x_check = data.train.x[:200]
init = np.random.default_rng([SEED, 1])
check_layers = [Masked.from_fields(f, init) for f in arch]  # W ~ N(0, 1/fan-in) in the fields
s_check = goodness.sign(np.arange(200) < 100)  # half positive, half negative
h = normalize(x_check, "rms")
print("layer  forward: vs Masked   vs dense ref.   dL/dW: vs Masked   ours s   dense ref. s")
for l, (layer, f) in enumerate(zip(check_layers, arch)):
    t0 = time.perf_counter()
    y = local_forward(layer, f, h)
    t_ours = time.perf_counter() - t0
    y_lib, cache = layer.forward(h)  # the library's local path
    t0 = time.perf_counter()
    y_ref, _ = layer.forward_reference(h)  # x @ W with the zeros
    t_ref = time.perf_counter() - t0
    dL_dy = good.dL_dy(y, loss.dL_dG(good.G(y), s_check, float(f.n_out)) / 100)
    dW = local_weight_grad(layer, f, h, dL_dy * (y > 0))  # the ReLU's derivative first
    dW_lib = layer.local_grads(cache, dL_dy)["W"]
    print(f"{l + 1:5d}  {tutorial.rel_error(y, y_lib):17.1e}  {tutorial.rel_error(y, y_ref):14.1e}"
          f"  {tutorial.rel_error(dW, dW_lib):17.1e}  {t_ours:7.3f}  {t_ref:12.3f}")  # fmt: skip
    assert tutorial.rel_error(y, y_ref) < 1e-5 and tutorial.rel_error(dW, dW_lib) < 1e-5
    assert np.all(dW[layer.mask == 0] == 0)
    h = normalize(y, "rms")

# %% [markdown]
# ## 3. Peer normalisation (footnote 9)
#
# Without help, some units of a layer can stop firing for good (a ReLU that is off on
# every input gets no gradient, so it never turns on again) while a few others carry
# most of the activity. Peer normalisation keeps a running mean of every unit's activity
# on positive data,
#
# $$m_j \leftarrow \rho\, m_j + (1 - \rho)\, \langle y_j \rangle_{\text{batch}}, \qquad
# \rho = 0.9, \quad m_j = 0.5 \text{ at the start},$$
#
# and adds `lambda (m_j - mean_k m_k)` (`lambda = 0.03`) to the derivative of the loss
# with respect to unit `j`'s *input* `a_j`, on the positive rows (divided by `B` for the
# batch mean), **after** the ReLU's derivative: the term reaches a unit whether or not
# its ReLU is on. A unit less active than its peers gets a negative term, so gradient
# descent raises its input until it fires again; an over-active one is pulled down. The
# library's `PeerNorm` keeps the means (`update`) and gives the term (`dL_da`); exercise
# 2 writes them.
#
# On the first layer of section 2, for its first batch: how much of `dL/da` is zero
# because the ReLU is off, and what the peer term changes.

# %%
layer, f = check_layers[0], arch[0]
h = normalize(x_check, "rms")
y = local_forward(layer, f, h)
dL_dy = good.dL_dy(y, loss.dL_dG(good.G(y), s_check, float(f.n_out)) / 100)
dL_da = dL_dy * (y > 0)  # the ReLU's derivative: zero where the unit is off
peer = PeerNorm(f.n_out, strength=0.03)  # running means start at 0.5
peer.update(y[:100])  # the positive rows' activities
extra = np.zeros_like(y)
extra[:100] = peer.dL_da() / 100  # lambda (m_j - mean(m)) / B, on the positive rows
dL_da_peer = dL_da + extra  # added after the ReLU's derivative
off = y[:100] == 0
print(f"positive rows: {100 * off.mean():.0f}% of the (row, unit) entries are off")
print(f"  without the peer term, non-zero dL/da where off: {np.count_nonzero(dL_da[:100][off])}")
print(
    f"  with it:                                         {np.count_nonzero(dL_da_peer[:100][off])}"
)
quiet = peer.mean < peer.mean.mean()
print(f"units below the layer's mean activity: {quiet.sum()}; their peer term is negative "
      f"(raises their input): {np.all(peer.dL_da()[quiet] < 0)}")  # fmt: skip
grads = layer.local_grads((h, y), dL_dy, extra)  # the library adds the term the same way
err = tutorial.rel_error(local_weight_grad(layer, f, h, dL_da_peer), grads["W"])
print(f"dL/dW with the peer term, ours vs Masked.local_grads: relative error {err:.1e}")

# %% [markdown]
# ## 4. The whole step in visible code
#
# The `local` experiment is tutorial 06's unsupervised FF on these layers, with peer
# normalisation: real images against hybrids (here with 4 blurs, the experiment's
# setting), one goodness per layer, and a softmax readout on the normalised activities
# of all three layers. The parts:

# %%
hidden = [f.n_out for f in arch]
init = np.random.default_rng([SEED, 2])
layers = [Masked.from_fields(f, init) for f in arch]
theta = [float(n) for n in hidden]
peers = [PeerNorm(n, strength=0.03) for n in hidden]
SCORE = [0, 1, 2]
readout = SoftmaxReadout(sum(hidden), 10)
opt = make_optimizer("sgd", 0.006, weight_decay=0.001)  # the experiment's rates
readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
N_BLUR = 4  # the local experiment's hybrid masks
for l, layer in enumerate(layers):
    print(f"layer {l + 1}: W {layer.W.shape} ({100 * layer.mask.mean():.1f}% of it exists), "
          f"theta {theta[l]:g}, running means start at {peers[l].mean[0]}")  # fmt: skip

# %% [markdown]
# One training step: tutorial 06's, with three changes. The layers compute on their
# fields (`local_forward`, `local_weight_grad`), the peer term is added to `dL/da` of the
# real rows after the ReLU's derivative, and the readout reads all three layers.


# %%
def train_step(x, labels, rng, lr_scale=1.0):
    """One unsupervised FF step of the local net; returns the readout's loss and each
    layer's loss per pair of a real image and a hybrid."""
    B = len(x)
    partner = (np.arange(B) + rng.integers(1, B, size=B)) % B  # hybrids, as in tutorial 06
    x_neg = np.where(hybrid_masks(B, rng, n_blur=N_BLUR).reshape(B, -1), x, x[partner])
    X = normalize(np.concatenate([x, x_neg]), "rms")  # (2B, 784): real rows first
    s = goodness.sign(np.arange(2 * B) < B)
    features, layer_losses = [], []
    for l, (layer, f) in enumerate(zip(layers, arch)):
        Y = local_forward(layer, f, X)  # forward on the fields
        G = good.G(Y)  # goodness over the whole layer
        layer_losses.append(float(loss.L(G, s, theta[l]).sum() / B))
        dL_dG = loss.dL_dG(G, s, theta[l]) / B
        dL_da = good.dL_dy(Y, dL_dG) * (Y > 0)  # the ReLU's derivative
        peers[l].update(Y[:B])  # peer normalisation, on the real rows,
        dL_da[:B] += peers[l].dL_da() / B  # after the ReLU's derivative
        grads = {"W": local_weight_grad(layer, f, X, dL_da), "b": dL_da.sum(axis=0)}
        opt.update(layer.params(), grads, lr_scale, prefix=f"layer{l}.")
        X = normalize(Y, "rms")
        if l in SCORE:
            features.append(X[:B])
    loss_sm, dL_dV, dL_dc, _ = readout.loss_and_grads(np.concatenate(features, axis=1), labels)
    readout_opt.update(readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
    return loss_sm, layer_losses


# %% [markdown]
# ## 5. The same numbers as the library
#
# `FFNet(layers=[...Masked...], supervised=False, peer_strength=0.03)` runs the same step
# with the library's local path and `PeerNorm`. Three steps of each from copies of our
# initial layers and the same seed. The tolerance is tutorial 02's: any weight may
# differ by `1e-6` times the largest weight (about eight float32 roundings), far below
# the 1e-2 that three steps move them. Our per-location products are the same float32
# matrix products the library computes; the last bits differ only because the peer term,
# kept in float64, is rounded to float32 at a different point (here when it is added,
# there before). The running means of the peer normalisation are compared too.

# %%
net = FFNet(
    layers=[copy.deepcopy(layer) for layer in layers],
    supervised=False,
    score_layers=SCORE,
    peer_strength=0.03,
    hybrid_blur=N_BLUR,
)
net_opt = make_optimizer("sgd", 0.006, weight_decay=0.001)
net_readout_opt = make_optimizer("sgd", 0.1, weight_decay=0.003)
x_train, y_train = data.train.x, data.train.y
start = [layer.W.copy() for layer in layers]
rng_ours, rng_lib = np.random.default_rng(SEED), np.random.default_rng(SEED)
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    ours = train_step(x_train[batch], y_train[batch], rng_ours)
    lib = net.train_step(x_train[batch], y_train[batch], rng_lib, net_opt, net_readout_opt)
    lib_losses = [lib[f"layer{l}"] for l in range(len(layers))]
    print(f"step {step + 1}, layer losses: ours    {np.round(ours[1], 1)}, readout {ours[0]:.4f}")
    print(f"                     library {np.round(lib_losses, 1)}, readout {lib['softmax']:.4f}")
# Each array to a millionth of its own largest entry (scale None)
pairs = [
    (f"layer {l} {k}", a.params()[k], b.params()[k], None)
    for l, (a, b) in enumerate(zip(layers, net.layers))
    for k in ("W", "b")
]
pairs += [
    (f"layer {l} running means", p.mean, q.mean, None)
    for l, (p, q) in enumerate(zip(peers, net.peers))
]
pairs += [
    ("readout V", readout.V, net.readout.V, None),
    ("readout c", readout.c, net.readout.c, None),
]
tutorial.assert_same(pairs, rel_tol=1e-6)
for l, layer in enumerate(layers):
    moved = np.abs(layer.W - start[l]).max()
    diff = np.abs(layer.W - net.layers[l].W).max()
    outside = np.abs(layer.W[layer.mask == 0]).max()
    print(f"layer {l + 1}: 3 steps moved W by up to {moved:.1e}; ours - library: {diff:.1e}; "
          f"largest weight outside the fields: {outside}")  # fmt: skip
print("the same weights, running means and readout after 3 steps, to float32 rounding")

# %% [markdown]
# ## 6. At full scale: the `local` experiment
#
# The experiment builds `FFNet(local="paper", supervised=False)` (the same `Masked`
# layers), trains it with this step and adds the data split, the readout's validation
# error after every epoch, a checkpoint after every epoch (`--resume`), `metrics.json`
# and the learning curve. Its options (`ff-numpy train local --help`) include
# `--goodness-per layer|location` (one Eq. 1 loss per layer, as here, or one per
# location; footnote 8 does not say which, and per layer had the lower validation error
# over 60 epochs) and `--peer-strength`.

# %%
args = experiments.default_args(
    "local",
    **RUN,
    seed=SEED,
    out=str(OUT),
    data_dir=options.data_dir,
    resume=options.resume,
    progress=not options.no_progress,
)
metrics = experiments.get("local").run(args)
tutorial.print_history(metrics)
test_error_softmax = metrics["test_error_softmax"]
print(f"test error, softmax on layers {metrics['config']['score_layers']}: "
      f"{100 * test_error_softmax:.2f}% (the paper, 60 epochs: 1.16%)")  # fmt: skip

# %% [markdown]
# One epoch on 3,000 images is the beginning of a learning curve. The full setting, 60
# epochs on 50,000 images, reached 1.13% test error (1.18% with a second seed; the
# paper: 1.16%):

# %%
tutorial.show_docs_figure(
    "local_b4_lr006_layer_learning_curve.png",
    "full run (the local experiment's defaults, 60 epochs), docs/RESULTS.md",
)

# %% [markdown]
# ## 7. What peer normalisation does to the units
#
# The mean activity of every unit on validation images (`FFNet.unit_means`), sorted: a
# unit whose mean is 0 never fires (dead), and the coefficient of variation (standard
# deviation over mean, across the units) measures how unequal the units are.

# %%
model = load_ffnet(OUT / "model.npz")  # the experiment's trained net
unit_means = model.unit_means(data.validation.x[:N_ACTIVITY])
dead = [int(np.sum(m == 0)) for m in unit_means]
cv = [float(m.std() / m.mean()) for m in unit_means]
print(f"mean activity on {N_ACTIVITY} validation images: dead units per layer {dead}, "
      f"coefficient of variation {np.round(cv, 2).tolist()}")  # fmt: skip
fig = Figure(figsize=(12, 3.4), layout="constrained")
for l, ax in enumerate(fig.subplots(1, len(unit_means))):
    ax.plot(np.sort(unit_means[l])[::-1])
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_title(f"layer {l + 1}: {dead[l]} of {unit_means[l].size} dead, cv {cv[l]:.2f}")
    ax.set_xlabel("unit (sorted)")
fig.axes[0].set_ylabel("mean activity")
fig.suptitle(f"this run ({RUN or 'the defaults'}): every unit's mean activity")
tutorial.show(fig, OUT / "unit_means.png")

# %% [markdown]
# A short run cannot show what the running means do over many epochs. A full comparison
# on a supervised 3 x 1000 net trained for 10 epochs with and without peer normalisation
# (`python benchmarks/peer_norm.py`): without it, 223 units of layer 1 and 356 of layer
# 2 (of 1000) never fire and a few units carry most of the activity; with it, no unit
# dies and every unit's mean is within about 10% of its layer's:

# %%
tutorial.show_docs_figure(
    "peer_norm.png",
    "full runs (supervised 3 x 1000, 10 epochs, peer strength 0 and 0.03), docs/RESULTS.md",
)

# %% [markdown]
# ## 8. What layer 1 learnt
#
# Column `j` of layer 1's `W` (784 x 2048) is unit `j`'s receptive field, zero outside
# its 10 x 10 field. Each panel puts one unit's weights where its field sits on the image
# (grey elsewhere), following the 4 x 4 grid of locations, with the most active unit of
# each location (from section 7's means).

# %%
W1, f1 = model.layers[0].W, arch[0]
print(f"largest |weight| of layer 1 outside the fields after training: "
      f"{np.abs(W1[model.layers[0].mask == 0]).max()}")  # fmt: skip
fig = Figure(figsize=(6.4, 6.8), layout="constrained")
for loc, ax in enumerate(fig.subplots(*f1.grid).ravel()):
    units = np.arange(loc * f1.channels, (loc + 1) * f1.channels)
    j = units[np.argmax(unit_means[0][units])]  # the most active unit here
    canvas = np.full(784, np.nan)
    canvas[f1.fields[loc]] = W1[f1.fields[loc], j]
    lim = np.abs(W1[f1.fields[loc], j]).max() or 1.0
    ax.set_facecolor("0.85")  # outside the field: no weights
    ax.imshow(canvas.reshape(28, 28), cmap="seismic", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_title(f"unit {j}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("layer 1: the most active unit per location (red +, blue -)", fontsize=10)
tutorial.show(fig, OUT / "local_receptive_fields.png")

# %% [markdown]
# After one short epoch the weights are still close to their random start. After the
# full 60 epochs (the two most active units per location of a trained net), many of the
# most active units have negative weights over the middle of their field: they fire
# when their patch is blank. Weights on pixels that are 0 in every MNIST image (the
# border) never get a gradient and keep their random start, shrunk only by weight decay:

# %%
tutorial.show_docs_figure(
    "local_receptive_fields.png",
    "full run (60 epochs, goodness per location), docs/RESULTS.md",
)

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_07.py` (`from solutions.tutorial_07 import grid_field`
# in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the field of a location of a higher layer
#
# Layer 2's input is layer 1's output, numbered location-major: unit `c` of location
# `(r, q)` of a grid with `Gw` columns and `C` units per location is input
# `(r * Gw + q) * C + c`. Write `grid_field(loc, in_grid, in_channels, grid, k)`: the
# sorted input indices that location `loc` (row-major on its own grid `grid`) sees, which
# are all the units of the `k x k` square of locations below whose top-left corner has the
# same grid coordinates as `loc` (neighbouring locations one step apart, as in the paper).


# %%
def grid_field(loc, in_grid, in_channels, grid, k):
    """Sorted input indices (int array) seen by location loc of a layer on the grid
    (gh, gw), over a layer below on in_grid (Gh, Gw) with in_channels units per
    location."""
    raise NotImplementedError("exercise 1: the indices of a k x k square of locations")


tutorial.self_check(tutorial.check_grid_field, grid_field)

# %% [markdown]
# ### Exercise 2: the peer normalisation term
#
# Write `peer_term(mean, y_pos, strength, rho)`: the running means after a batch of
# positive rows `y_pos` (B, n), `rho * mean + (1 - rho) * (the batch's mean of each
# unit)`, and the term added to `dL/da` of every positive row, shape (B, n): `strength *
# (m_j - mean_k m_k) / B` with the *new* means, for every unit, on or off. Return
# `(new_mean, term)` without changing `mean`.


# %%
def peer_term(mean, y_pos, strength, rho):
    """The running means (n,) after the batch y_pos (B, n), and the term (B, n) added to
    dL/da of its rows."""
    raise NotImplementedError("exercise 2: update the means, then the term")


tutorial.self_check(tutorial.check_peer_term, peer_term)

# %% [markdown]
# ### Question 3: why does the peer term go after the ReLU's derivative?
#
# In section 4 the term is added to `dL/da` *after* multiplying by the ReLU's derivative
# `[a > 0]`. What would change if it were added to `dL/dy` before (so that the ReLU's
# derivative multiplied it too)? Is the term the gradient of any loss?
#
# <details><summary>Worked answer</summary>
#
# Multiplied by `[a > 0]`, the term would vanish exactly where it is needed most. A dead
# unit is off on every row (`a_j <= 0`), so every entry of its `dL/da` column would be
# zero, its weights would get no gradient, and it would stay dead for ever: the running
# mean would keep telling us it is too quiet, and nothing would act on it. Added after
# the ReLU's derivative, the term `lambda (m_j - mean(m)) / B` is negative for a unit
# quieter than its peers on every positive row, so `dL/dW_ij = sum_n x_ni dL/da_nj` moves
# its weights along the positive rows' inputs and `dL/db_j` raises its bias, until its
# input becomes positive on some rows and it fires again.
#
# On active units the term is the gradient of a real loss, the penalty
# `lambda / (2 (1 - rho)) sum_j (m_j - mean(m))^2` of the running means after the batch
# (`PeerNorm.penalty`; `tests/test_gradients.py` checks it with autograd). Where a unit
# is off no function of `a` has that gradient, since the unit's activity does not depend
# on `a` there: the paper "pretends" the derivative exists (footnote 9), which is what
# revives dead units.
# </details>
#
# ### Question 4: why do the weights outside the fields stay exactly zero?
#
# Sections 5 and 8 printed the largest weight outside the fields after training: 0.0,
# not merely small. Why, for SGD with momentum and weight decay? Would Adam keep them at
# zero? What kind of optimiser or regulariser would not?
#
# <details><summary>Worked answer</summary>
#
# Such a weight starts at zero (`Masked` multiplies its initial draw by the mask) and its
# gradient is zero (`local_weight_grad` never writes outside the fields). SGD's update is
# `g' = g + lambda W = 0`, `v <- mu v + (1 - delta) g' = 0` (the velocity starts at zero),
# `W <- W - lr v = 0`: nothing ever moves it. Adam's moment estimates `m` and `s` also
# start at zero and stay zero, so its step `m_hat / (sqrt(s_hat) + eps)` is `0 / eps = 0`.
# Any update that is zero when the weight and its gradient are zero keeps the mask for
# free. One that is not would break it: noise added to every weight (Langevin-style
# training), or a decoupled update that pulls every weight towards some non-zero value;
# then the layer would have to re-apply the mask after every step. Storing only the
# existing weights (`ff_numpy.locally_connected.Local`) avoids the question, and the
# memory.
# </details>
