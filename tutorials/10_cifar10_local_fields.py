# %% [markdown]
# # Tutorial 10: CIFAR-10 with local receptive fields (Sec. 4, Table 1)
#
# The paper's last experiment takes Forward-Forward beyond MNIST, to CIFAR-10's 32 x 32
# colour images of ten kinds of objects on cluttered backgrounds. Its nets are made of
# *locally connected* layers: every hidden layer is a 32 x 32 map with 3 ReLUs per
# location, and every unit sees an 11 x 11 patch of the layer below (all 3 channels),
# cut off at the edge of the map, with no weight sharing. The FF net
# is the recurrent net of Sec. 3.4 (tutorial 09) with such fields both ways: bottom-up
# from the layer below and top-down from the layer above. Table 1 compares it with
# backpropagation on the same bottom-up fields.
#
# **You will learn**
#
# * the fields of one connection, built and counted: how many inputs each unit has at
#   the edge and in the middle, how many weights exist, and why the top-down fields are
#   the bottom-up ones turned around (a transposed mask);
# * how `ff_numpy.locally_connected.Local` stores only the weights that exist, one
#   location's forward written in plain NumPy against the library's, and `Local` checked
#   against the dense masked reference `Masked` on the paper's shapes (float64);
# * the cost arithmetic of Table 1: FLOPs per image of FF training and testing and of
#   backprop, and where FF's extra passes come from;
# * short runs of both procedures through the `cifar10` experiment, and what they draw:
#   the learned 11 x 11 colour fields, the label's top-down block as ten 32 x 32 x 3
#   maps, the goodness per iteration for correct and wrong labels, the error curves.
#
# **Time** (2 cores): the notebook runs the quick setting, about 25 s (backprop for 2
# epochs and FF for 1 epoch on 1,500 training images, FF with 3 iterations instead of
# 10, errors on a few hundred images). As a script, `python
# tutorials/10_cifar10_local_fields.py` trains two of Table 1's nets as
# `benchmarks/reproduce.py` does (backprop, one row of the table, and FF with the `min`
# objective, two rows: by goodness and by softmax; 2 hidden layers, 60 epochs on all
# 50,000 training images): backprop takes under an hour, FF several hours on one core.
# Stop it when you like and continue with `--resume`.
#
# **Exercises** at the end: the number of inputs of every location, one location's
# weight gradient, where FF's passes come from, why the top-down fields are the
# transposed bottom-up ones, and which wrong labels to train against.

# %%
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ff_numpy import experiments, goodness, masks, tutorial
from ff_numpy.data import CIFAR10_CLASSES, load_cifar10
from ff_numpy.experiments import cifar10
from ff_numpy.layers import Masked
from ff_numpy.locally_connected import Local
from ff_numpy.loss import Logistic

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. `RUN` holds, for each
# procedure, the options of the `cifar10` experiment that differ from its defaults (the
# experiment's module docstring explains every default). The data are CIFAR-10 in the
# official binary layout, found in `--data-dir`, `$FF_NUMPY_DATA` or the download cache
# (`data/README.md`).

# %% tags=["script-only"]
NAME = "10_cifar10_local_fields"
QUICK = {
    "bp": {"train_size": 1_500, "epochs": 2, "test_size": 200, "train_eval_size": 200,
           "eval_size": 100},
    "ff": {"train_size": 1_500, "epochs": 1, "iterations": 3, "average_iterations": [2, 3],
           "lr": 0.003, "warmup_batches": 0, "test_size": 200, "train_eval_size": 50,
           "eval_size": 50},
}  # fmt: skip
FULL = {  # two nets of Table 1, as benchmarks/reproduce.py trains them
    "bp": {"track_test": True},
    "ff": {"objective": "min", "lr": 0.003, "negatives": "random", "track_test": True,
           "eval_every": 10, "eval_size": 2_000},
}  # fmt: skip
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 10: CIFAR-10 with local receptive fields (Sec. 4, Table 1).",
        f"small runs: {QUICK}",
        HERE / "out" / NAME,
        "folder for the figures and the two runs (bp/, ff/)",
        several_runs=True,
    )
)
RUN = QUICK if options.quick else FULL
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: experiment options {RUN}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. The fields of one connection, built and counted
#
# Every map is 32 x 32 locations with 3 values per location, numbered row-major with the
# channel fastest: value `(r, q, c)` is index `(r * 32 + q) * 3 + c` (the layout in which
# `load_cifar10` returns the pixels, so the image is the first map). The unit `c` of
# location `(r, q)` sees every channel of the locations `(r', q')` below with
# `|r' - r| <= 5` and `|q' - q| <= 5` that lie on the map: an 11 x 11 x 3 patch in the
# middle, fewer near the edge.
#
# `masks.paper_cifar_fields()` builds them as a `RaggedFields`: the fields back to back
# (`indices`, with `indptr[loc]:indptr[loc + 1]` for location `loc`), since they do not
# all have the same size. Each (location, input) pair carries one weight per unit of
# the location, so the weights that exist are `n_pairs * 3`.

# %%
H, W, C, K_FIELD = 32, 32, 3, 11
fields = masks.paper_cifar_fields(C, C)
sizes = fields.field_sizes().reshape(H, W)  # inputs of every location
dense_weights = fields.n_in * fields.n_out
print(f"{fields.n_loc} locations x {fields.channels} units = {fields.n_out} units, "
      f"{fields.n_in} inputs")  # fmt: skip
print(f"inputs per unit: {sizes[16, 16]} in the middle, {sizes[0, 16]} at the middle of an "
      f"edge, {sizes[0, 0]} at a corner")  # fmt: skip
print(f"weights that exist: {fields.n_pairs} pairs x {fields.channels} = {fields.n_weights:,}; "
      f"a dense {fields.n_in} x {fields.n_out} layer: {dense_weights:,} "
      f"({dense_weights / fields.n_weights:.1f} times as many)")  # fmt: skip

# %% [markdown]
# The count follows from the geometry alone. Along one axis, a location in row `r` sees
# the rows `max(r - 5, 0) .. min(r + 5, 31)`; a location's field is that many rows times
# that many columns times 3 channels, and summing over the grid factorises into (the sum
# over the rows) times (the sum over the columns):

# %%
half = K_FIELD // 2
seen = np.array([min(r + half, H - 1) - max(r - half, 0) + 1 for r in range(H)])
print(f"rows seen by the locations of rows 0..31: {seen.tolist()}")
our_pairs = int(seen.sum() * seen.sum() * C)  # sum over (r, q) of seen[r] * seen[q] * 3
our_weights = our_pairs * C  # 3 units per location
print(f"pairs = {seen.sum()} x {seen.sum()} x {C} = {our_pairs:,}; weights = {our_weights:,}")
assert our_weights == fields.n_weights == cifar10.weights_per_connection()
assert np.array_equal(sizes, np.outer(seen, seen) * C)

# %% [markdown]
# **Top-down fields.** In the FF net a hidden layer also reads the layer *above*, through
# fields of the same shape: unit `(r, q, c)` of the lower map sees the 11 x 11 x 3 patch
# of the upper map around `(r, q)`. "Input `i` lies within 5 rows and 5 columns of unit
# `j`" is a symmetric relation, so the top-down mask (upper map's values x lower map's
# units) is the bottom-up mask (lower map's values x upper map's units) transposed. With
# 3 channels on both sides the two masks have the same shape and the mask is symmetric;
# with different channel counts (a small example: an 8 x 8 map with 2 channels under one
# with 5) the transpose is still exact.

# %%
mask = fields.mask(np.float32)  # (3072 inputs, 3072 units), 0/1
up_small = masks.same_size_fields((8, 8, 2), 5, 3).mask()  # 2 channels below, 5 above
down_small = masks.same_size_fields((8, 8, 5), 2, 3).mask()  # from the 5 above to the 2 below
transposed = bool(np.array_equal(mask, mask.T) and np.array_equal(down_small, up_small.T))
print(f"paper's mask: {mask.shape}, {int(mask.sum()):,} ones ({100 * mask.mean():.2f}% of it); "
      f"top-down = bottom-up transposed: {transposed}")  # fmt: skip
assert transposed

# %% [markdown]
# Three fields drawn on a test image (a corner, an edge, the middle) with their number
# of inputs, the number of inputs of every location, and the top-left corner of the
# mask. There every 96 x 96 block pairs a row of the image (96 values) with a row of the
# map of units: it holds a diagonal band (columns within 5 of each other) when the two
# rows are within 5 of each other, and nothing otherwise.

# %%
data = load_cifar10(options.data_dir, progress=False)
image = data.test.x[3].reshape(H, W, C)
spots = [(0, 0), (0, 16), (16, 16)]
fig = Figure(figsize=(13, 4.2), layout="constrained")
ax_img, ax_size, ax_mask = fig.subplots(1, 3)
ax_img.imshow(image, interpolation="nearest")
for (r, q), colour in zip(spots, ("red", "orange", "cyan")):
    r0, r1, q0, q1 = max(r - half, 0), min(r + half, H - 1), max(q - half, 0), min(q + half, W - 1)
    ax_img.add_patch(Rectangle((q0 - 0.5, r0 - 0.5), q1 - q0 + 1, r1 - r0 + 1, fill=False,
                               ec=colour, lw=2))  # fmt: skip
    ax_img.plot(q, r, "o", color=colour, ms=4)
    ax_img.text(q1 - 0.2, r1 - 0.2, f"{sizes[r, q]}", color=colour, fontsize=9, ha="right",
                va="bottom", fontweight="bold")  # fmt: skip
ax_img.set_title(f"{CIFAR10_CLASSES[data.test.y[3]]}: three 11 x 11 fields and their inputs",
                 fontsize=9)  # fmt: skip
im = ax_size.imshow(sizes, cmap="viridis")
fig.colorbar(im, ax=ax_size, shrink=0.8)
ax_size.set_title("inputs per unit at every location", fontsize=9)
rows_shown = 12 * W * C  # the first 12 rows of the image and of the map of units
ax_mask.imshow(mask[:rows_shown, :rows_shown], cmap="Greys", interpolation="antialiased")
ax_mask.set_xticks(np.arange(0, rows_shown + 1, 2 * W * C))
ax_mask.set_yticks(np.arange(0, rows_shown + 1, 2 * W * C))
ax_mask.set_title(f"mask[:{rows_shown}, :{rows_shown}]: inputs (down) x units (across)",
                  fontsize=9)  # fmt: skip
for ax in (ax_img, ax_size):
    ax.set_xticks([])
    ax.set_yticks([])
tutorial.show(fig, OUT / "cifar_fields.png")

# %% [markdown]
# ## 2. `Local`: only the weights that exist
#
# `Masked` (tutorial 07) keeps the full (3072, 3072) matrix with zeros outside the mask.
# `Local` keeps one row per pair instead: `W` has shape (n_pairs, 3), and row `p` holds
# the weights from input `fields.indices[p]` to the 3 units of its location. A location's
# rows are contiguous (`indptr[loc]:indptr[loc + 1]`), in the order of its field's
# inputs, which is the order of the 11 x 11 x 3 patch read row by row, channel fastest.
# So one location's pre-activations are the patch, flattened, times the location's block
# of `W`, plus the 3 biases:


# %%
def location_forward(x, layer, r, q):
    """The pre-activations (B, C_out) of the units of location (r, q), from the patch."""
    f, C_out = layer.fields, layer.fields.channels
    r0, r1 = max(r - half, 0), min(r + half + 1, H)  # the rows and columns seen,
    q0, q1 = max(q - half, 0), min(q + half + 1, W)  # cut off at the edge
    patch = x.reshape(-1, H, W, C)[:, r0:r1, q0:q1, :]  # (B, rows, columns, 3)
    loc = r * W + q
    block = layer.W[f.indptr[loc] : f.indptr[loc + 1]]  # (inputs of loc, C_out)
    units = slice(loc * C_out, (loc + 1) * C_out)
    return patch.reshape(len(x), -1) @ block + layer.b[units]  # (B, f) @ (f, C_out)


# %% [markdown]
# On 8 test images (standardised per channel and divided by their root-mean-square, the
# vector the FF net's first layer reads), through a float64 `Local` layer with random
# biases: the patch's indices are the location's field, and the four locations' outputs
# equal the library's `linear` (which computes tiles of locations at once, with the
# weights zero-padded to the union of their fields).

# %%
SEED = 0
rng = np.random.default_rng(SEED)
local = Local(fields, rng, dtype=np.float64)
local.b[:] = 0.1 * rng.standard_normal(local.b.shape)
x = cifar10.prepare(data.test.x[:8], "bp").astype(np.float64)  # standardised, then RMS 1
print(f"Local.W: {local.W.shape} ({local.W.nbytes / 1e6:.1f} MB in float64), "
      f"the dense matrix: {local.to_dense().shape} ({dense_weights * 8 / 1e6:.1f} MB)")  # fmt: skip
lib_linear = local.linear(x) + local.b  # (8, 3072): every unit's pre-activation
forward_errors = {}
for r, q in ((0, 0), (0, 16), (16, 16), (31, 30)):
    r0, r1, q0, q1 = max(r - half, 0), min(r + half + 1, H), max(q - half, 0), min(q + half + 1, W)
    patch_indices = np.arange(H * W * C).reshape(H, W, C)[r0:r1, q0:q1].ravel()
    assert np.array_equal(patch_indices, fields.field(r * W + q))  # the patch is the field
    loc = r * W + q
    ours = location_forward(x, local, r, q)
    forward_errors[(r, q)] = tutorial.rel_error(ours, lib_linear[:, loc * C : (loc + 1) * C])
    print(f"location ({r:2d}, {q:2d}): {patch_indices.size} inputs; ours vs Local.linear: "
          f"relative error {forward_errors[(r, q)]:.1e}")  # fmt: skip
assert max(forward_errors.values()) < 1e-12

# %% [markdown]
# ## 3. `Local` against the dense masked reference
#
# `Masked.from_fields` gives the same layer as a dense matrix; we copy `Local`'s weights
# into it (`Local.to_dense()` scatters row `p` of `W` to the rows `indices[p]` and the
# columns of its location's units). Then the forward pass and the local gradient of
# Eq. 1's loss (`Local.local_grads`, `Masked.local_grads`, and `Masked`'s masked-dense
# `forward_reference` and `weight_grad_reference`, which multiply the zeros too) on the
# same images, every number in float64. `Local`'s weight gradient comes in its own
# layout (n_pairs, 3); we read the dense gradients at the same positions, and check
# that the dense ones are zero everywhere else. The tolerance is 1e-12 relative:
# float64 rounding of sums in another order, far below any real mistake.

# %%
ref = Masked.from_fields(fields, rng, dtype=np.float64)
ref.W[...] = local.to_dense()
ref.b[...] = local.b
y_local, cache_local = local.forward(x)
y_masked, cache_masked = ref.forward(x)
y_dense, _ = ref.forward_reference(x)
good, loss = goodness.make_goodness("ssq"), Logistic()
G = good.G(y_local)  # the goodness of every image
s = goodness.sign(np.arange(len(x)) % 2 == 0)  # alternate rows positive and negative
theta = float(np.median(G))  # a threshold amid the goodnesses: dL/dG is not saturated
dL_dy = good.dL_dy(y_local, loss.dL_dG(G, s, theta))
g_local = local.local_grads(cache_local, dL_dy)
g_masked = ref.local_grads(cache_masked, dL_dy)
dW_dense = ref.weight_grad_reference(x, dL_dy * (y_dense > 0))  # (x^T dL/da) * mask

rows = fields.indices[:, None]  # (n_pairs, 1): the input of every pair,
cols = fields.pair_locations()[:, None] * C + np.arange(C)  # (n_pairs, 3): its units
local_vs_masked = {
    "Masked, forward": tutorial.rel_error(y_local, y_masked),
    "masked-dense reference, forward": tutorial.rel_error(y_local, y_dense),
    "Masked, dL/dW": tutorial.rel_error(g_local["W"], g_masked["W"][rows, cols]),
    "masked-dense reference, dL/dW": tutorial.rel_error(g_local["W"], dW_dense[rows, cols]),
    "Masked, dL/db": tutorial.rel_error(g_local["b"], g_masked["b"]),
}
outside = np.ones(mask.shape, dtype=bool)
outside[rows, cols] = False
largest_outside = max(np.abs(g_masked["W"][outside]).max(), np.abs(dW_dense[outside]).max())
for what, err in local_vs_masked.items():
    print(f"Local vs {what:33s} relative error {err:.1e}")
print(f"dense gradients outside the fields: largest |entry| {largest_outside}")
assert max(local_vs_masked.values()) < 1e-12 and largest_outside == 0

# %% [markdown]
# ## 4. The cost arithmetic of Table 1
#
# One *pass* over a connection (a forward product, or a weight gradient `x^T dL/da`)
# costs 2 FLOPs per existing weight and image. The FF net with `K` hidden layers, `T`
# iterations and the loss on `T_L` of them needs per training image
# (`cifar10.flops_per_image`; its docstring and the module's explain each term):
#
# * the label-free iteration 0: the image's connection (its input `x W_up` to the first
#   hidden layer, kept for every later iteration and both rows), then `K - 1` more;
# * at each of the `T` iterations, the `2K - 2` connections between hidden layers (up
#   and down) forward, on the positive row *and* the negative row (a wrong label);
# * at each loss iteration, their weight gradients, again on both rows;
# * the image connection's gradient: the image is the same at every iteration and on
#   both rows, so the gradients add up before the product, `x^T (sum of dL/da)`, once;
# * small dense parts: the label's 10 x 3072 block and the softmax readout.
#
# Backprop needs a forward pass, a weight gradient and (except for the first layer) an
# input gradient per connection, and its 3072 x 10 output layer.

# %%
P = 2.0 * fields.n_weights  # FLOPs of one pass per image
K, T, T_L = 2, 10, 10  # the paper's net: 2 hidden layers, 10 iterations, loss on all
between = 2 * K - 2
passes = {
    "label-free pass (iteration 0)": K,
    "forward between hidden layers, both rows": 2 * between * T,
    "weight gradients between hidden layers, both rows": 2 * between * T_L,
    "the image connection's gradient, once": 1,
}
n_passes = sum(passes.values())
for what, n in passes.items():
    print(f"  {what:52s} {n:3d} passes")
label_block, readout = 2.0 * 10 * 3072, 2.0 * K * 3072 * 10  # one pass of each, per image
ff_train = n_passes * P + (2 * T + 2) * label_block + 2 * readout
assert ff_train == cifar10.flops_per_image("ff", K)["train"]
print(f"FF training: {n_passes} passes x {P / 1e6:.2f} MFLOP + the dense parts = "
      f"{ff_train / 1e6:.1f} MFLOP per image (flops_per_image agrees)")  # fmt: skip
# The Table 1 runs put the loss on iterations 1-6 only (the end of the classification
# window; docs/RESULTS.md has the probe that chose it), and training stops at the last
# loss iteration: T = T_L = 6.
T6 = 6
ff_train_6 = (K + 4 * between * T6 + 1) * P + (2 * T6 + 2) * label_block + 2 * readout
assert ff_train_6 == cifar10.flops_per_image("ff", K, loss_iterations=(1, T6))["train"]
print(
    f"with the loss on iterations 1-{T6}: {K + 4 * between * T6 + 1} passes, "
    f"{ff_train_6 / 1e6:.1f} MFLOP per image ({ff_train_6 / ff_train:.0%} of the above)"
)

# %%
depths = (2, 3)
ff_cost = {k: cifar10.flops_per_image("ff", k) for k in depths}  # 10 iterations, window 4-6
bp_cost = {k: cifar10.flops_per_image("bp", k) for k in depths}
print("MFLOP per image             K=2      K=3")
for what, cost, key in (
    ("FF training", ff_cost, "train"),
    ("FF test, every label to 6", ff_cost, "test_goodness"),
    ("FF test, one-pass softmax", ff_cost, "test_softmax"),
    ("BP training", bp_cost, "train"),
    ("BP test", bp_cost, "test"),
):
    print(f"  {what:25s} " + " ".join(f"{cost[k][key] / 1e6:8.1f}" for k in depths))
ff_over_bp = {k: ff_cost[k]["train"] / bp_cost[k]["train"] for k in depths}
print("FF training / BP training: " + ", ".join(f"K={k}: {v:.1f}x" for k, v in ff_over_bp.items()))
print(f"the same products on the dense masked matrices: {dense_weights / fields.n_weights:.1f}x "
      "the FLOPs of each pass")  # fmt: skip

# %% [markdown]
# An FF training image costs many times a backprop image, for two reasons: the net runs
# `T` iterations instead of one pass, and every iteration runs twice (a positive and a
# negative row). What it buys is in tutorial 09: no pass ever goes backwards, in time or
# between layers.
#
# ## 5. Training: backprop, then FF, through the `cifar10` experiment
#
# `experiments.get("cifar10")` builds either net of Table 1 with `Local` connections:
# for `--procedure bp` the bottom-up fields and a dense softmax layer, trained by
# backpropagation (`ff_numpy.backprop.MLP`); for `--procedure ff` the recurrent net of
# tutorial 09 (`RecurrentFFNet`) with local fields up and down, the label feeding the top
# hidden layer through a dense 10 x 3072 block. It standardises each channel, splits off
# validation images, evaluates after every epoch, checkpoints (`--resume`), and at the end
# writes `metrics.json` (with `flops_per_image` and the achieved GFLOP/s) and the figures.
# The paper's Table 1 for 2 hidden layers (training / test error): backprop 0% / 37%;
# FF with the `min` objective 20% / 41% classifying by goodness over every label, 31% /
# 45% by the one-pass softmax.

# %%
metrics = {}
for procedure in ("bp", "ff"):
    args = experiments.default_args(
        "cifar10",
        procedure=procedure,
        **RUN[procedure],
        seed=SEED,
        out=str(OUT / procedure),
        data_dir=options.data_dir,
        resume=options.resume,
        progress=not options.no_progress,
    )
    t0 = time.perf_counter()
    metrics[procedure] = experiments.get("cifar10").run(args)
    print(f"{procedure}: {time.perf_counter() - t0:.1f} s")
    tutorial.print_history(metrics[procedure])
bp, ff = metrics["bp"], metrics["ff"]
test_error_bp = bp["test_error"]
test_error_goodness, test_error_softmax = ff["test_error_goodness"], ff["test_error_softmax"]
print(f"test errors on {bp['config']['test_size']} images: backprop {100 * test_error_bp:.1f}%; "
      f"FF by goodness {100 * test_error_goodness:.1f}%, by the one-pass softmax "
      f"{100 * test_error_softmax:.1f}% (chance: 90%)")  # fmt: skip

# %% [markdown]
# The cost measured: `achieved_gflops` is the run's training FLOPs (the arithmetic of
# section 4 for its own settings) over its training seconds. At that rate, 60 epochs of
# 50,000 images of the paper's nets would take:

# %%
for procedure, m in metrics.items():
    rate = m["achieved_gflops"]
    paper = cifar10.flops_per_image(procedure, m["config"]["hidden_layers"])["train"]
    hours = paper * 50_000 * 60 / (rate * 1e9) / 3600
    print(f"{procedure}: {m['flops_per_image']['train'] / 1e6:7.1f} MFLOP per training image "
          f"in this run, {rate:5.1f} GFLOP/s achieved; the paper's net, 60 epochs: "
          f"{hours:5.1f} hours")  # fmt: skip

# %% [markdown]
# ## 6. What the runs drew
#
# **The first layer's fields.** The experiment draws the 11 x 11 x 3 weights of the
# units of 16 interior locations (`cifar10.first_layer_fields`, drawn by
# `cifar10.plot_fields`: each unit's field as a colour patch, grey for zero, scaled by
# its largest weight). After a short run they still look like their random start:

# %%
for procedure in ("ff", "bp"):
    tutorial.show(OUT / procedure / "fields.png", caption=f"this run ({procedure})")

# %% [markdown]
# What training has *added* is hidden under the random start. The experiment draws its
# initial weights from the seed (`cifar10.make_ff_net`, `cifar10.make_bp_net`), so we can
# rebuild the net as it started and draw the change of every field with the same
# functions. A weight's gradient is `x^T dL/da`, a sum of image patches weighted by the
# unit's `dL/da`, so the change is made of image patches: smooth colour blobs and edges,
# unlike the random start.

# %%
for procedure in ("ff", "bp"):
    args = experiments.default_args(
        "cifar10", procedure=procedure, **RUN[procedure], seed=SEED, out=str(OUT / procedure)
    )
    start = cifar10.make_ff_net(args) if procedure == "ff" else cifar10.make_bp_net(args)
    trained = cifar10.load_cifar10_model(OUT / procedure / "model.npz")
    fields_start, units = cifar10.first_layer_fields(start)
    fields_trained, _ = cifar10.first_layer_fields(trained)
    change = fields_trained - fields_start
    print(f"{procedure}: largest weight {np.abs(fields_trained).max():.3f}, largest change "
          f"{np.abs(change).max():.4f}")  # fmt: skip
    path = OUT / f"fields_change_{procedure}.png"
    title = f"{cifar10.run_name(metrics[procedure])}: change of the first-layer fields"
    tutorial.show(cifar10.plot_fields(change, units, path, title))

# %% [markdown]
# **The label block.** The label reaches the FF net only through the top-down weights
# from the 10 label units to the last hidden layer, a dense (10, 3072) block: row `k`,
# reshaped to 32 x 32 x 3, is what label `k` adds to every unit of that layer.

# %%
model = cifar10.load_cifar10_model(OUT / "ff" / "model.npz")
connections = ff["config"]["model"]["connections"]
print(f"FF net: up {connections['up']}, down {connections['down']}; label block "
      f"{model.down[-1].W.shape}")  # fmt: skip
tutorial.show(OUT / "ff" / "label_block.png", caption="this run")

# %% [markdown]
# **Goodness per iteration.** Classifying by goodness runs the net once per label and
# keeps the label whose goodness, summed over the hidden layers and averaged over a
# window of iterations, is best: the *lowest* under the `min` objective (the paper's
# window is iterations 4 to 6 of 10; the quick run has 3 iterations and averages 2 and
# 3). The run stored the mean goodness of the correct label and of the wrong ones at
# every iteration on the test images, and the error of every window:

# %%
stats = ff["goodness_by_iteration"]
print("iteration  goodness: correct label  wrong labels   test error of that iteration")
for t, (c, w) in enumerate(zip(stats["correct_mean"], stats["wrong_mean"]), start=1):
    print(f"{t:9d}  {c:22.1f}  {w:12.1f}   {100 * ff['error_by_window'][f'{t}-{t}']:8.1f}%")
lo, hi = ff["config"]["average_iterations"]
print(f"averaged over iterations {lo}-{hi}: {100 * ff['error_by_window'][f'{lo}-{hi}']:.1f}%")

# %%
tutorial.show(OUT / "ff" / "goodness_by_iteration.png", caption="this run")
tutorial.show(OUT / "ff" / "error_by_window.png", caption="this run")

# %% [markdown]
# Under the `min` objective the correct label should leave the net with the *lower*
# goodness. After a short run the gap between the two means is small next to their
# spread over the images (the shaded bands, one standard deviation), which is why the
# goodness classifier is still far from Table 1's numbers; at iteration 1 only the top
# hidden layer has seen the label (tutorial 09), so it separates the labels least.
#
# **Which wrong labels.** The FF run trains against one wrong label per image, drawn
# uniformly (`--negatives random`, the experiment's default). Sec. 3.4's hard negatives,
# drawn from the readout's own confusions (the MNIST experiments' default), left the
# goodness error 8 points higher on CIFAR-10 validation images (docs/RESULTS.md, "Why the
# goodness error trailed the softmax"). Trained only against the labels its readout
# confuses, the net never learns to reject the others, and the test tries every label.

# %% [markdown]
# **What the local gradient cannot see.** Every update is damped,
# `y_t = 0.3 y_{t-1} + 0.7 relu(a_t)`. Where a unit's pre-activation `a_t` is off, its
# new state is 0.3 of the old one and the layer's local gradient there is zero (the
# ReLU's derivative): the loss at iteration `t` cannot move that part of the goodness. At
# iteration 1 the old state is the label-free initial pass, which no loss trains
# directly. `RecurrentFFNet.run` runs the net as training and testing do and, after each
# layer's update, hands over the new state `y` and `r = 0.7 relu(a)`, zero exactly where
# `a <= 0`; here it measures that share on 200 training images with their labels:

# %%
data = cifar10.load_prepared(options.data_dir, "ff", 200, 1, progress=False)
x_few, y_few = data.train.x[:200], data.train.y[:200]
share_off = {}


def watch(t, l, y, r, h_below, h_above):
    if t == 1:  # iteration 1; t = 0 is the initial pass (r is None there)
        squares = y.astype(np.float64) ** 2  # the goodness, unit by unit
        share_off[l] = squares[r <= 0].sum() / squares.sum()


model.run(x_few, y_few, n_iter=1, on_update=watch)
for l, share in share_off.items():
    print(f"hidden layer {l + 1}: {100 * share:.1f}% of iteration 1's goodness sits on "
          "units whose pre-activation is off, out of reach of its local gradient")  # fmt: skip

# %% [markdown]
# After a short run the top-down weights are still small: a unit that the initial pass
# turned on stays on at iteration 1, and the share is near zero. In the full `min` run
# of Table 1 (2 layers, 60 epochs) the share in the first layer grew to 82% (49% in the
# `max` run, where the initial pass stayed tame): for a tenth of the images the
# label-free pass gave that layer a goodness about 100 times the threshold, the top-down
# input switched those units off at iteration 1, and the damping carried 0.3 of them
# on. That one term made 95% of the layer's training loss, which rose twelve-fold over
# the last 34 epochs while the errors by goodness kept falling (docs/RESULTS.md, "What
# goes wrong in the `min` net's first layer"; `benchmarks/cifar10_first_iteration.py`
# measures it on any run). Question 6 below asks what to do about it.

# %% [markdown]
# **Error curves.** Each run draws its own (`error_curves.png`); `plot_error_curves`
# overlays several runs, by epoch and by training hours, as `benchmarks/reproduce.py
# --curves` does for the six nets of Table 1.

# %%
tutorial.show(cifar10.plot_error_curves([bp, ff], OUT / "error_curves_bp_ff.png"))

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_10.py` (`from solutions.tutorial_10 import fan_in_map`
# in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the number of inputs of every location
#
# Write `fan_in_map(H, W, C, k)`: for a map of `H x W` locations with `C` values each,
# and centred `k x k` fields (`k` odd) cut off at the edge, the number of inputs of the
# units of every location, an int array of shape (H, W). A field may be wider than the
# map.


# %%
def fan_in_map(H, W, C, k):
    """The number of inputs (H, W) of every location's units: centred k x k fields over
    an H x W x C map, cut off at its edge."""
    raise NotImplementedError("exercise 1: rows seen times columns seen times channels")


tutorial.self_check(tutorial.check_fan_in_map, fan_in_map)

# %% [markdown]
# ### Exercise 2: one location's weight gradient
#
# Write `location_weight_grad(x, dL_da, r, q, shape, k)`: the gradient of the weights of
# location `(r, q)`, `x_patch^T dL/da_units`, in `Local`'s layout: shape (f, C_out), row
# `i` for the `i`-th input of the field (the patch read row by row, channel fastest),
# column `c` for unit `c` of the location. `x` (B, H W C_in) are the inputs, `dL_da`
# (B, H W C_out) the derivatives with respect to the pre-activations, `shape` is
# `(H, W, C_in)`. The self-check compares it with the rows `indptr[loc]:indptr[loc + 1]`
# of `Local.weight_grad`.


# %%
def location_weight_grad(x, dL_da, r, q, shape, k):
    """dL/dW of location (r, q), shape (f, C_out): the patches (B, f) transposed times
    the location's dL/da (B, C_out)."""
    raise NotImplementedError("exercise 2: gather the patches, then one product")


tutorial.self_check(tutorial.check_location_weight_grad, location_weight_grad)

# %% [markdown]
# ### Question 3: where do FF's passes come from?
#
# Section 4 counted the passes of FF training. Why does the image's connection cost 2
# passes per training image while each connection between hidden layers costs `4T`?
# Why does FF training cost many times backprop's per image, and would dense layers
# change that ratio?
#
# <details><summary>Worked answer</summary>
#
# The image does not change between iterations and is the same on the positive and the
# negative row (only the label differs), so its contribution `x W_up` to the first
# hidden layer is computed once per image and reused at every iteration, and the
# gradients of all the iterations and both rows add up before the product: `sum_t
# sum_rows x^T dL/da_t = x^T (sum_t sum_rows dL/da_t)`, one pass. A connection between
# hidden layers reads a state that changes at every iteration and differs between the
# two rows, so it needs a forward pass per iteration and row (`2T`) and a gradient per
# loss iteration and row (`2T_L`): with `T = T_L`, `4T`.
#
# With `K = 2` that is `2 + 4 T + 4 T_L + 1` passes (83 for `T = T_L = 10`) against
# backprop's `3K - 1 = 5`, hence the ratio section 4 printed. Both counts are in passes
# over the same connections, so dense layers would multiply both by the same factor and
# leave the ratio as it is (only the small dense parts, label block, readout and output
# layer, would weigh less). FF pays with iterations and the second row for what it does
# not need: a backward pass through the layers and through time.
# </details>
#
# ### Question 4: why are the top-down fields the transposed bottom-up ones?
#
# Section 1 asserted that the top-down mask is the bottom-up mask transposed. What
# property of the fields makes this so? Give a kind of field for which it would fail.
# And the top-down *weights* are drawn separately, not the transposed bottom-up weights:
# would tying them change the masks, and what would it change?
#
# <details><summary>Worked answer</summary>
#
# A unit at `(r, q)` of the upper map sees a lower value at `(r', q')` iff `|r' - r| <= 5`
# and `|q' - q| <= 5`, and a unit at `(r', q')` of the lower map sees the upper value at
# `(r, q)` under exactly the same condition: the relation "within 5 rows and 5 columns"
# is symmetric, and both maps have the same grid. Fields that are not centred (a unit
# seeing the patch to its lower right, say), or maps of different sizes with a stride
# (the MNIST layers of tutorial 07, where a 4 x 4 grid sees a 28 x 28 image), break the
# symmetry: "j sees i" no longer implies "i sees j", and a top-down connection would need
# its own fields.
#
# Tying the weights would not change the masks (the transposed mask is the same
# pattern), only the number of parameters and what learning does. Untied, as in the
# `cifar10` experiment, each direction learns from the loss of the layer it feeds: the
# top-down weights into layer `l` learn whatever helps layer `l`'s goodness tell the
# correct label from a wrong one, the bottom-up weights into layer `l + 1` whatever
# helps layer `l + 1`'s. Tied, one set of numbers would have to serve both losses, and
# its gradient would be the sum of the two.
# </details>
#
# ### Question 5: which wrong labels?
#
# The test by goodness tries every label and keeps the best; training shows the net one
# wrong label per image. Sec. 3.4 draws it from the readout's probabilities (hard
# negatives); the `cifar10` experiment draws it uniformly. Why can hard negatives make
# the every-label test *worse* on CIFAR-10, when the MNIST experiments train with them?
# How would you decide between the two, and on which images?
#
# <details><summary>Worked answer</summary>
#
# An image is classified correctly only if its true label beats all nine wrong ones.
# Hard negatives spend the training on the labels the readout confuses with the true one
# (a cat for a dog). On CIFAR-10 the readout is wrong about half the time and its
# probability sits on two or three classes, so the other wrong labels are seldom shown
# (5% uniform draws are mixed in) and the net never learns to give them a bad goodness;
# at test one of them often wins. On MNIST the easy wrong labels are easy: the net
# rejects them early, while the readout is still poor and its draws nearly uniform, and
# the hard ones are what is left to learn.
#
# Decide on images neither training nor the final test uses: train both ways on 45,000
# training images and compare the goodness error on the 5,000 held out (a second seed
# shows how large a difference the noise alone makes). docs/RESULTS.md did this: after
# 3 epochs, 59.9% with hard and 52.0% with random wrong labels on 2,000 validation
# images.
# </details>
#
# ### Question 6: a loss the gradient cannot follow
#
# The FF loss is applied at iterations 1 to 6. At iteration 1 the label has not yet
# reached the first hidden layer (it enters at the top and climbs one layer an
# iteration), so there that layer's goodness is the same for the correct and the wrong
# label. What does the logistic loss of a pair ask of a goodness `G` that both rows
# share, and why could the `min` net's first layer still end up with `G` far above the
# threshold at iteration 1? Name two ways to change the training so that it cannot.
#
# <details><summary>Worked answer</summary>
#
# With both rows at `G`, the pair costs `softplus(G - theta) + softplus(theta - G)`
# under `min` (the correct row should lie below theta, the wrong one above): smallest at
# `G = theta`, and for `G` far above theta it grows like `G - theta`, a pull downwards
# on every unit that is on. But the gradient reaches the goodness only through
# `relu(a_1)`: the part `0.3 y_0` carried over from the initial pass has no gradient at
# iteration 1, and where the top-down input has switched a unit off (`a_1 <= 0`) none
# at all. The initial pass itself carries no loss, so on the units the top-down input
# switches off nothing in the loss holds `y_0` down; in the full run they grew, and
# their carried-over share of iteration 1's goodness with them.
#
# Two ways out: put the loss only on iterations where the label has reached the layer
# (2 to 6 for the first of two hidden layers: `--loss-iterations 2 6`), so no loss asks
# for what the gradient cannot do; or give the initial pass a loss of its own (or start
# the damping at iteration 1 from zero, not from the initial pass), so the gradient does
# reach `y_0`. docs/RESULTS.md reports the first as a probe beside Table 1's row.
# </details>
