# %% [markdown]
# # Tutorial 09: the top-down recurrent network of Fig. 3
#
# The paper's Sec. 3.4 treats a static image as a boring video. The image sits at the
# bottom, a one-of-N label on top, and every hidden layer between them reads both the
# layer below and the layer above. After a first bottom-up pass without the label, the
# net runs 8 *damped, synchronous* iterations: every hidden layer computes its new state
# from the states of the previous step, and keeps 30% of its old one. Every layer learns
# by FF at every iteration, with what it read held constant, so no derivative ever goes
# back in time or to another layer.
#
# **You will learn**
#
# * the dynamics, written out: iteration 0, the damped step, and at which iteration the
#   label reaches each layer (synchronously, or alternating between even and odd layers);
# * the local gradient of one layer at one iteration, derived factor by factor and
#   checked by central differences;
# * one training step in about 40 visible lines (a softmax on iteration 0, hard negative
#   labels from it, the damped iterations on positive and negative rows, every update's
#   local gradient summed over the iterations, one update), asserted equal to the
#   library's `RecurrentFFNet.train_step`;
# * how far this is from backpropagation through time, measured with autograd;
# * the full-scale run through the `recurrent` experiment, and classification by the
#   goodness averaged over iterations 3 to 5.
#
# **Time** (2 cores): the notebook runs the quick setting, about 30 s (2 hidden layers of
# 200 units, 2 epochs on 10,000 images). As a script, `python
# tutorials/09_recurrent_top_down.py` runs the recipe that reached 1.22% test error (the
# paper: 1.31%): 2 x 2000 units, 60 epochs on all 60,000 training images, weight decay
# 0.003, the learning rate warmed up over 200 batches; about 3 to 4 hours. Stop it when you
# like and continue with `--resume`, here or with the command line, which trains the same
# run:
#
# ```
# ff-numpy train recurrent --weight-decay 0.003 --warmup-batches 200 --train-size 60000 \
#     --track-test --eval-every 20 --out DIR --resume
# ```
#
# **Exercises** at the end: the alternating schedule, classification by goodness over a
# window of iterations, why the states are held constant, and why iteration 1 classifies
# worst.

# %%
import copy
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import experiments, goodness, tutorial
from ff_numpy.data import load_mnist
from ff_numpy.loss import Logistic
from ff_numpy.negatives import hard_wrong_labels
from ff_numpy.optim import make_optimizer
from ff_numpy.recurrent import RecurrentFFNet, damped_step

# %% [markdown]
# ## Settings
#
# Run as a script, the command line chooses (`--quick`, `--out`, `--data-dir`,
# `--resume`, `--no-progress`; `--help` lists them); in a notebook this cell picks the
# quick setting and writes under `out/` beside the notebook. `RUN` holds the options of
# the `recurrent` experiment that differ from its defaults (the paper's net: 2 x 2000, 8
# damped synchronous iterations with `d = 0.3`, 60 epochs). With all 60,000 training
# images the full run has no validation images left: it tracks the test error as
# progress only, and nothing is chosen on it.

# %% tags=["script-only"]
NAME = "09_recurrent_top_down"
QUICK = {"hidden": [200, 200], "epochs": 2, "train_size": 10_000, "eval_every": 1,
         "eval_size": 1000}  # fmt: skip
FULL = {"weight_decay": 0.003, "warmup_batches": 200, "train_size": 60_000,
        "track_test": True, "eval_every": 20}  # fmt: skip
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
options = tutorial.parse_options(
    tutorial.parser(
        "Tutorial 09: the top-down recurrent network of Fig. 3 (Sec. 3.4).",
        f"small run: {QUICK}",
        HERE / "out" / NAME,
    )
)
RUN = QUICK if options.quick else FULL
OUT = options.out
print(f"{'quick' if options.quick else 'full'} setting: experiment options {RUN}")
print(f"writing to {OUT}")

# %% [markdown]
# ## 1. The dynamics, written out
#
# Number the layers as in Fig. 3: the image is layer 0, the hidden layers are 1..L, the
# label is layer L + 1 (in the code the hidden layers are 0-based, `l = 0..L-1`). `norm`
# divides a row by its root-mean-square, as between the layers of tutorial 02: only the
# orientation of a state is passed on.
#
# ```
# iteration 0 (no label):  y_l = relu(norm(y_below) W_up_l + b_l)              bottom-up
# iteration t = 1..8:      a_l = norm(y_below) W_up_l + norm(y_above) W_down_l + b_l
#                          y_l <- d y_l + (1 - d) relu(a_l)                 damping d = 0.3
# ```
#
# *Synchronous*: every hidden layer reads the states of the previous step. `run` below
# writes this out and records every update of iterations 1..8: what it read (`h_below`,
# `h_above`, its own previous state) and what it made (`a` and the new state `y`). The
# connections are a dict of arrays named as the library names them (`up0.W`, `up0.b`,
# `down0.W`, ...). `xp` is the array module: NumPy, or autograd's wrapper of it in
# section 5.


# %%
def rms_norm(y, xp=np):
    """Each row divided by its root-mean-square; an all-zero row stays zero."""
    sq = xp.mean(y * y, axis=1, keepdims=True)
    return y / xp.sqrt(xp.where(sq == 0, 1.0, sq))


def run(p, X, lab, n_iter, d=0.3, xp=np):
    """Iteration 0 and n_iter damped synchronous iterations.

    p: the connections; X (N, n_in): normalised images; lab (N, C): normalised labels.
    Returns the states (t = 0..n_iter, a list over the layers each) and every update of
    iterations 1..n_iter as (t, l, h_below, h_above, y_prev, a, y).
    """
    L = len(p) // 3  # up{l}.W, up{l}.b, down{l}.W per hidden layer
    ys = []
    for l in range(L):  # iteration 0: bottom-up, no label
        below = X if l == 0 else rms_norm(ys[-1], xp)
        ys.append(xp.maximum(below @ p[f"up{l}.W"] + p[f"up{l}.b"], 0.0))
    states, updates = [ys], []
    for t in range(1, n_iter + 1):
        H = [rms_norm(y, xp) for y in ys]  # what every layer reads: the previous step
        new = []
        for l in range(L):
            h_below = X if l == 0 else H[l - 1]
            h_above = lab if l == L - 1 else H[l + 1]
            a = h_below @ p[f"up{l}.W"] + h_above @ p[f"down{l}.W"] + p[f"up{l}.b"]
            new.append(d * ys[l] + (1 - d) * xp.maximum(a, 0.0))  # the damped step
            updates.append((t, l, h_below, h_above, ys[l], a, new[l]))
        ys = new
        states.append(ys)
    return states, updates


def connections(net):
    """A RecurrentFFNet's weights by name: the arrays themselves, not copies."""
    p = {}
    for l in range(len(net.hidden)):
        p[f"up{l}.W"], p[f"up{l}.b"] = net.up[l].W, net.up[l].b
        p[f"down{l}.W"] = net.down[l].W
    return p


# %% [markdown]
# A tiny net in float64 (an "image" of 8 pixels, hidden layers of 4 and 3 units, 3
# labels; small random biases), run on one image with label 1. Each new state blends the
# old one with the computed `relu(a)`, and the library's `damped_step` makes the same
# blend.

# %%
SEED = 0
tiny_rng = np.random.default_rng([SEED, 4])
tiny = RecurrentFFNet(8, [4, 3], 3, tiny_rng, dtype=np.float64)
for up in tiny.up:
    up.b[...] = 0.3 * tiny_rng.standard_normal(up.b.shape)
x_tiny = np.random.default_rng([SEED, 2]).random((1, 8))
X_tiny = rms_norm(x_tiny)
label_1 = rms_norm(np.eye(3)[[1]])
states, updates = run(connections(tiny), X_tiny, label_1, 8)
with np.printoptions(precision=3, suppress=True):
    for t in range(3):
        print(
            f"iteration {t}: "
            + "   ".join(f"layer {l + 1}: {y[0]}" for l, y in enumerate(states[t]))
        )
    print("iteration 1, new = 0.3 old + 0.7 relu(a):")
    step_diff = 0.0
    for _, l, _, _, y_prev, a, y in updates[:2]:  # the updates of iteration 1
        print(f"  layer {l + 1}: old {y_prev[0]}  relu(a) {np.maximum(a, 0)[0]}  new {y[0]}")
        y_lib, _ = damped_step(a.copy(), y_prev.copy(), 0.3)  # works in place: copies
        step_diff = max(step_diff, float(np.abs(y_lib - y).max()))
print(f"ff_numpy.recurrent.damped_step makes the same states (largest difference {step_diff:.1e})")

# %% [markdown]
# The library computes the same dynamics (`goodness_trace`: the goodness, summed over
# the layers, of every image with every label at every iteration). Our states' goodness
# must match it, for every label:

# %%
G_lib = tiny.goodness_trace(x_tiny)[0]  # (3 labels, 8 iterations)
G_ours = np.array(
    [
        [sum(goodness.goodness(y)[0] for y in layers) for layers in run(
            connections(tiny), X_tiny, rms_norm(np.eye(3)[[k]]), 8)[0][1:]]
        for k in range(3)
    ]
)  # fmt: skip
goodness_diff = tutorial.rel_error(G_ours, G_lib)
print(f"our dynamics vs RecurrentFFNet.goodness_trace: relative difference {goodness_diff:.1e}")
assert goodness_diff < 1e-12

# %% [markdown]
# **When does the label arrive?** Synchronously, information moves one layer per
# iteration, so the label (on top) reaches hidden layer `l` (0-based, of `L`) at
# iteration `L - l`. With the *alternating* schedule (`schedule="alternating"`) the even
# layers of Fig. 3 are updated first, then the odd ones from the new even states, so
# information can move two layers per iteration. `net.label_reached` predicts it; we
# measure it by running the same image with labels 0 and 1 and finding, per layer, the
# first iteration at which the goodness differs (`goodness_trace(per_layer=True)`).


# %%
def label_arrival(net, x):
    """Per hidden layer, the first iteration at which labels 0 and 1 give another goodness."""
    G = net.goodness_trace(x, per_layer=True)[0]  # (labels, iterations, layers)
    differ = np.abs(G[0] - G[1]) > 1e-12 * np.abs(G).max()  # (iterations, layers)
    return [int(np.argmax(differ[:, l])) + 1 for l in range(differ.shape[1])], G


arrival = {}
for name, hidden, schedule in (
    ("2 layers, synchronous", [4, 3], "synchronous"),
    ("4 layers, synchronous", [4, 4, 4, 4], "synchronous"),
    ("4 layers, alternating", [4, 4, 4, 4], "alternating"),
):
    rng = np.random.default_rng([SEED, 4])
    net = RecurrentFFNet(8, hidden, 3, rng, schedule=schedule, dtype=np.float64)
    for up in net.up:
        up.b[...] = 0.3 * rng.standard_normal(up.b.shape)
    measured, G = label_arrival(net, x_tiny)
    arrival[name] = {"predicted": net.label_reached, "measured": measured, "G": G}
    print(f"{name}: the label reaches hidden layers 1..{len(hidden)} at iterations "
          f"{net.label_reached} (predicted), {measured} (measured)")  # fmt: skip
    assert measured == net.label_reached

# %%
fig = Figure(figsize=(13, 3.8), layout="constrained")
axes = fig.subplots(1, 3)
t = np.arange(9)
runs = [run(connections(tiny), X_tiny, rms_norm(np.eye(3)[[k]]), 8)[0] for k in (0, 1)]
for l, ax in enumerate(axes[:2]):
    for j in range(runs[0][0][l].shape[1]):
        ax.plot(t, [runs[0][s][l][0, j] for s in t], "o-", color=f"C{j}", ms=3)
        ax.plot(t, [runs[1][s][l][0, j] for s in t], "x--", color=f"C{j}", ms=4)
    ax.axvline(arrival["2 layers, synchronous"]["predicted"][l], color="k", lw=0.6, ls=":")
    ax.set_title(f"hidden layer {l + 1}: every unit, label 0 (o) vs label 1 (x)", fontsize=9)
    ax.set_xlabel("iteration (0: bottom-up, no label)")
    ax.set_xticks(t)
axes[0].set_ylabel("activity y")
for k, name in enumerate(("4 layers, synchronous", "4 layers, alternating")):
    G = arrival[name]["G"]
    for l in range(4):
        gap = np.abs(G[0, :, l] - G[1, :, l])
        gap[gap == 0] = np.nan  # exactly equal: the label has not arrived (log scale)
        axes[2].semilogy(t[1:] + 0.08 * k, gap, "o-" if k == 0 else "s--", color=f"C{l}",
                         ms=3, label=f"layer {l + 1}, {name.split(', ')[1]}")  # fmt: skip
axes[2].set_title("4 layers: |G(label 0) - G(label 1)| from the iteration the label "
                  "arrives", fontsize=9)  # fmt: skip
axes[2].set_xlabel("iteration")
axes[2].legend(fontsize=6, ncol=2)
fig.suptitle("damped dynamics, new = 0.3 old + 0.7 relu(a); dotted: the label arrives")
tutorial.show(fig, OUT / "damped_dynamics.png")

# %% [markdown]
# At iteration 1 the bottom layer of the 2-layer net already changes, but not yet with
# the label: it gets its first top-down input, from the label-free state of iteration 0,
# the same for every label (the o and x curves coincide until iteration 2).
#
# ## 2. The local gradient of one update
#
# One hidden layer at one iteration, for one row, with everything the update *read* held
# constant: the normalised states below and above, and the layer's own previous state
# (`docs/derivations.md`, Sec. 17). The goodness is that of the damped state, and the
# loss Eq. 1's, with `s = +1` where the goodness should be high:
#
# ```
# a = h_below W_up + h_above W_down + b        y = d y_prev + (1 - d) relu(a)
# G = sum_j y_j^2                              L = softplus(-s (G - theta))
#
# dL/dG      = -s sigmoid(-s (G - theta))
# dL/dy_j    = dL/dG * 2 y_j                   (the damped state, which still holds d y_prev)
# dL/da_j    = dL/dy_j * (1 - d) * [a_j > 0]   (y_prev held constant)
# dL/dW_up   = h_below^T dL/da                 (n_below, B) @ (B, n)
# dL/dW_down = h_above^T dL/da                 (n_above, B) @ (B, n)
# dL/db      = sum over rows of dL/da
# ```

# %%
good, loss = goodness.make_goodness("ssq"), Logistic()  # G = sum_j y_j^2; Eq. 1's loss


def local_grads(l, h_below, h_above, a, y, dL_dG, d=0.3):
    """Layer l's local gradient at one update, from dL/dG of every row, with what the
    update read held constant."""
    dL_da = good.dL_dy(y, dL_dG) * (1 - d) * (a > 0)  # 2 y dL/dG (1 - d) [a > 0]
    return {
        f"up{l}.W": h_below.T @ dL_da,
        f"up{l}.b": dL_da.sum(axis=0),
        f"down{l}.W": h_above.T @ dL_da,
    }


# %% [markdown]
# The check of CS231n: the loss of one update as a function of the weights, nudged one
# weight at a time (central differences), on a real update of a small float64 net (12
# pixels, hidden layers of 6 and 5, 4 labels, a batch of 5 rows with their true labels
# and 5 with wrong ones; thresholds near the random net's goodness, so that `dL/dG` is
# not saturated). In float64 the two agree to about 1e-10, the error of the differences
# themselves. The library's `layer_local_grads` (the reference its tests compare with
# autograd) must agree with ours to rounding.

# %%
check_rng = np.random.default_rng([SEED, 10])
small = RecurrentFFNet(12, [6, 5], 4, check_rng, dtype=np.float64)
for up in small.up:
    up.b[...] = 0.3 * check_rng.standard_normal(up.b.shape)
small.theta = [3.0, 2.5]
x_small = check_rng.random((5, 12))
y_small = check_rng.integers(0, 4, 5)
wrong_small = (y_small + check_rng.integers(1, 4, 5)) % 4
X2 = rms_norm(np.concatenate([x_small, x_small]))
lab2 = rms_norm(np.eye(4)[np.concatenate([y_small, wrong_small])])
s2 = goodness.sign(np.arange(10) < 5)  # positive rows first
p_small = connections(small)
_, small_updates = run(p_small, X2, lab2, 8)


def update_loss(p, l, h_below, h_above, y_prev, d=0.3):
    """The loss of layer l's update (summed over the rows), from what it read."""
    a = h_below @ p[f"up{l}.W"] + h_above @ p[f"down{l}.W"] + p[f"up{l}.b"]
    y = d * y_prev + (1 - d) * np.maximum(a, 0)
    return float(loss.L(good.G(y), s2, small.theta[l]).sum())


fd_errors = {}
for t, l, h_below, h_above, y_prev, a, y in small_updates:
    if t != 3:  # the updates of iteration 3
        continue
    ours = local_grads(l, h_below, h_above, a, y, loss.dL_dG(good.G(y), s2, small.theta[l]))
    lib = small.layer_local_grads(l, h_below, h_above, y_prev, s2)
    for key, lib_key in ((f"up{l}.W", "W_up"), (f"down{l}.W", "W_down"), (f"up{l}.b", "b")):
        param = p_small[key]  # nudged in place, one weight at a time, and restored

        def f(_, l=l, h_below=h_below, h_above=h_above, y_prev=y_prev):
            return update_loss(p_small, l, h_below, h_above, y_prev)

        numerical = tutorial.numerical_gradient(f, param)
        fd_errors[key] = tutorial.rel_error(ours[key], numerical)
        assert tutorial.rel_error(ours[key], lib[lib_key]) < 1e-12
print("iteration 3, our local gradient vs central differences (relative error):")
for key, err in fd_errors.items():
    print(f"  {key:8s} {err:.1e}")
assert max(fd_errors.values()) < 1e-6

# %% [markdown]
# ## 3. One training step in visible code
#
# The step of the library, in the order it runs:
#
# 1. Iteration 0 (no label) on the batch's images; a softmax readout on the normalised
#    states of every hidden layer takes one cross-entropy step, and its probabilities
#    `q` give a *hard* wrong label for each image (drawn in proportion to `q` without the
#    true label, with 5% uniform draws mixed in).
# 2. The positive rows (true label) and negative rows (wrong label) run the 8 damped
#    iterations together.
# 3. Every update's local gradient, with the mean over the `B` pairs, is summed over the
#    iterations and layers; then one optimiser step per array.
#
# The objective is `"min"`, the experiment's default: the *true* label should give
# *low* goodness (the paper expects the top-down input then to learn to cancel the
# bottom-up one), so `s = -1` on the positive rows.


# %%
def ff_grads(p, X, labels, wrong, theta, objective="min", n_iter=8, d=0.3):
    """The summed local gradients of a batch and each layer's loss per pair (mean over
    its iterations)."""
    B, L = len(X), len(theta)
    n_classes = p[f"down{L - 1}.W"].shape[0]
    X2 = np.concatenate([X, X])  # positive rows, then negative rows
    lab = rms_norm(np.eye(n_classes, dtype=X.dtype)[np.concatenate([labels, wrong])])
    s = goodness.sign(np.arange(2 * B) < B, objective)
    _, updates = run(p, X2, lab, n_iter, d)
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    losses = np.zeros(L)
    for _, l, h_below, h_above, _, a, y in updates:
        G = good.G(y)  # goodness of the damped state
        losses[l] += loss.L(G, s, theta[l]).sum() / B / n_iter
        dL_dG = loss.dL_dG(G, s, theta[l]) / B  # mean over the B pairs
        for key, g in local_grads(l, h_below, h_above, a, y, dL_dG, d).items():
            grads[key] += g  # summed over the iterations
    return grads, losses


def train_step(net, x, labels, rng, opt, readout_opt, lr_scale=1.0):
    """One step of the recurrent net; returns the gradients it applied and the losses."""
    p = connections(net)
    X = rms_norm(x)
    # 1. the readout on iteration 0, and hard negative labels from its probabilities
    ys0 = run(p, X, None, 0)[0][0]
    features = np.concatenate([rms_norm(y) for y in ys0], axis=1)
    loss_sm, dL_dV, dL_dc, q = net.readout.loss_and_grads(features, labels)
    readout_opt.update(net.readout.params(), {"V": dL_dV, "c": dL_dc}, lr_scale, "readout.")
    wrong = hard_wrong_labels(q, labels, rng, floor=0.05)
    # 2. and 3. the damped iterations, the summed local gradients, one update
    grads, losses = ff_grads(p, X, labels, wrong, net.theta, net.objective)
    applied = {key: g.copy() for key, g in grads.items()}  # the optimiser may reuse grads
    opt.update(p, grads, lr_scale)  # weight decay on the weights (2-D arrays) only
    return applied, loss_sm, losses


# %% [markdown]
# ## 4. The same numbers as the library
#
# `RecurrentFFNet.train_step(..., return_grads=True)` returns the gradients it applied.
# Two copies of a net of the quick setting's size (2 x 200), with the experiment's
# objective and hard negatives but no peer normalisation (our lines leave it out;
# tutorial 07 shows the term, which the recurrent net adds to the positive rows'
# `dL/da` at every iteration), take three steps each from the same seed.
#
# The tolerance: the library computes the same sums in another order, in float32 (it
# adds the image's bottom-up input computed once per batch, and sums the iterations'
# gradients in one matrix product per connection), so the two differ by a few float32
# roundings, about 3e-7 relative. We allow a relative difference of 1e-5 for every
# gradient (about a hundred roundings), and after the three steps a difference of `1e-6`
# times the largest weight of the net in any array; a mistake such as a missing `(1 - d)`
# or `1/B`, or a state that is not held constant, changes the gradient by far more than
# 1e-2.

# %%
data = load_mnist(options.data_dir)
x_train, y_train = data.train.x, data.train.y
net = RecurrentFFNet(
    784, [200, 200], 10, np.random.default_rng([SEED, 1]), objective="min", hard_floor=0.05
)
lib_net = copy.deepcopy(net)
opt, readout_opt = make_optimizer("sgd", 0.001, 0.001), make_optimizer("sgd", 0.1, 0.003)
lib_opt, lib_readout_opt = make_optimizer("sgd", 0.001, 0.001), make_optimizer("sgd", 0.1, 0.003)
start = {key: value.copy() for key, value in connections(net).items()}
rng_ours, rng_lib = np.random.default_rng(SEED), np.random.default_rng(SEED)
grad_errors = []
for step in range(3):
    batch = slice(100 * step, 100 * (step + 1))
    ours, loss_sm, losses = train_step(net, x_train[batch], y_train[batch], rng_ours, opt,
                                       readout_opt)  # fmt: skip
    lib = lib_net.train_step(x_train[batch], y_train[batch], rng_lib, lib_opt, lib_readout_opt,
                             return_grads=True)  # fmt: skip
    # the library's gradients are keyed by connection: {"up0": {"W": ..., "b": ...}, ...}
    lib_grads = {f"{c}.{k}": g for c, arrays in lib["grads"].items() for k, g in arrays.items()}
    errors = {key: tutorial.rel_error(g, lib_grads[key]) for key, g in ours.items()}
    grad_errors.append(max(errors.values()))
    print(f"step {step + 1}: layer losses ours {np.round(losses, 3)}, library "
          f"{np.round([lib['layer0'], lib['layer1']], 3)}; largest gradient difference "
          f"{grad_errors[-1]:.1e}")  # fmt: skip
    assert grad_errors[-1] < 1e-5, errors
lib_params = connections(lib_net)
scale = max(np.abs(value).max() for value in lib_params.values())  # the largest weight
for key, value in connections(net).items():
    moved = np.abs(value - start[key]).max()
    diff = np.abs(value - lib_params[key]).max()
    print(f"{key:8s}: 3 steps moved it by up to {moved:.1e}; ours - library: {diff:.1e}")
    assert diff <= 1e-6 * scale, f"{key}: ours and the library differ by {diff:.2e}"
diff = np.abs(net.readout.V - lib_net.readout.V).max()
assert diff <= 1e-6 * np.abs(lib_net.readout.V).max(), f"readout: they differ by {diff:.2e}"
print("the same gradients and weights after 3 steps, to float32 rounding")

# %% [markdown]
# ## 5. What is left out: backpropagation through time
#
# The states an update reads depend on the weights too, through all the earlier
# iterations. The full gradient of the same objective (the sum over iterations and layers
# of every layer's loss) would go back through time and down through the layers: it
# needs every past state stored and a backward sweep over them. FF takes none of that:
# each update needs only what it reads *now*, so a system could learn while it runs.
#
# autograd differentiates the same `run` (with `xp = autograd.numpy`) two ways, on the
# small float64 net of section 2: with the states computed from weights held constant
# (this must be FF's gradient, `ff_grads`), and through all iterations (BPTT).


# %%
def batch_objective(p_loss, p_states, X, labels, wrong, theta, xp, d=0.3):
    """The objective of ff_grads, with the states evolved by p_states and every update's
    loss computed from what it read with the weights p_loss."""
    B, L = len(X), len(theta)
    n_classes = p_states[f"down{L - 1}.W"].shape[0]
    lab = rms_norm(np.eye(n_classes)[np.concatenate([labels, wrong])])
    s = goodness.sign(np.arange(2 * B) < B, "min")
    _, updates = run(p_states, xp.concatenate([X, X]), lab, 8, d, xp)
    total = 0.0
    for _, l, h_below, h_above, y_prev, _, _ in updates:
        a = h_below @ p_loss[f"up{l}.W"] + h_above @ p_loss[f"down{l}.W"] + p_loss[f"up{l}.b"]
        y = d * y_prev + (1 - d) * xp.maximum(a, 0.0)
        total = total + xp.sum(xp.logaddexp(0.0, -s * (xp.sum(y * y, axis=1) - theta[l]))) / B
    return total


X_small = rms_norm(x_small)
ours_small, _ = ff_grads(p_small, X_small, y_small, wrong_small, small.theta)
try:
    import autograd
    import autograd.numpy as anp
except ImportError:
    bptt = None
    print("(autograd is not installed: pip install autograd for this comparison)")
else:
    p0 = {key: value.copy() for key, value in p_small.items()}
    args = (X_small, y_small, wrong_small, small.theta, anp)
    held = autograd.grad(lambda p: batch_objective(p, p0, *args))(p0)
    through = autograd.grad(lambda p: batch_objective(p, p, *args))(p0)
    bptt = {}
    print("ff_grads vs autograd (relative difference), and the cosine with BPTT:")
    print("  array     states held constant   through time (BPTT)   cosine")
    for key, g in ours_small.items():
        cos = np.sum(g * through[key]) / (np.linalg.norm(g) * np.linalg.norm(through[key]))
        bptt[key] = (tutorial.rel_error(g, held[key]), tutorial.rel_error(g, through[key]), cos)
        print(f"  {key:8s}  {bptt[key][0]:20.1e}  {bptt[key][1]:20.2f}  {cos:7.2f}")
        assert bptt[key][0] < 1e-10

# %% [markdown]
# With the states held constant autograd gives FF's gradient to rounding. Through time
# the gradient differs in every array, by a lot, and most for the bottom layer, whose
# states feed every later update of both layers: there the two gradients point in quite
# different directions (a cosine far below 1). FF does not approximate BPTT; it descends
# each update's own loss.
#
# ## 6. At full scale: the `recurrent` experiment
#
# The experiment trains `RecurrentFFNet` with this step and adds peer normalisation, the
# data split, the softmax's validation error after every epoch and the goodness
# classification's every `eval_every` epochs (ten runs per image, one per label, so it
# is costly), a checkpoint after every epoch (`--resume`), and at the end the goodness of
# every test image with every label at every iteration (`goodness_trace`), from which it
# measures the test error of every window of iterations. `experiments.default_args`
# gives its options with their defaults (`ff-numpy train recurrent --help`).

# %%
args = experiments.default_args(
    "recurrent",
    **RUN,
    seed=SEED,
    out=str(OUT),
    data_dir=options.data_dir,
    resume=options.resume,
    progress=not options.no_progress,
)
metrics = experiments.get("recurrent").run(args)
tutorial.print_history(metrics)
test_error_goodness = metrics["test_error_goodness"]
test_error_softmax = metrics["test_error_softmax"]
print(f"test error by goodness (iterations 3-5) {100 * test_error_goodness:.2f}%, by the "
      f"one-pass softmax {100 * test_error_softmax:.2f}% (the paper: 1.31%)")  # fmt: skip

# %%
tutorial.show(OUT / "learning_curve.png", caption=f"this run: {RUN}")

# %% [markdown]
# **Classifying by goodness.** Run the net once per label and keep the label whose
# goodness, averaged over iterations 3 to 5, is best: the *lowest* under the `"min"`
# objective. The run stored the mean goodness of the correct label and of the wrong ones
# at every iteration, and the test error of every window:

# %%
stats = metrics["goodness_by_iteration"]
print("iteration  goodness: correct label  wrong labels   test error of that iteration")
for t, (c, w) in enumerate(zip(stats["correct_mean"], stats["wrong_mean"]), start=1):
    print(f"{t:9d}  {c:22.1f}  {w:12.1f}   {100 * metrics['error_by_window'][f'{t}-{t}']:8.2f}%")
for window in ("1-2", "3-5", "6-8"):
    print(f"averaged over iterations {window}: {100 * metrics['error_by_window'][window]:.2f}%")
error_by_window = metrics["error_by_window"]

# %%
tutorial.show(OUT / "goodness_by_iteration.png", caption="this run")
tutorial.show(OUT / "error_by_window.png", caption="this run")

# %% [markdown]
# The correct label's goodness falls below the wrong labels' within the first iterations
# and stays there; iteration 1, when only the top layer has seen the label, classifies
# worst. The full run (2 x 2000, 60 epochs on 60,000 images) reached 1.22% test error by
# goodness over iterations 3-5 (the paper: 1.31%):

# %%
for name in ("learning_curve", "goodness_by_iteration", "error_by_window"):
    tutorial.show_docs_figure(
        f"recurrent_2x2000_e60_wd3e-3_wu200_n60k_{name}.png",
        f"full run (2 x 2000, 60 epochs, 60,000 images): {name.replace('_', ' ')}",
    )

# %% [markdown]
# ## Exercises
#
# Each fill-in exercise is a function whose body you write; the cell after it runs its
# self-check, which says what is wrong until it is right. Worked solutions are in
# `tutorials/solutions/tutorial_09.py` (`from solutions.tutorial_09 import
# alternating_iteration` in a notebook opened in `tutorials/`); try first.
#
# ### Exercise 1: the alternating schedule
#
# Write `alternating_iteration(ys, X, lab, p, d)`: one iteration of the alternating
# schedule. `ys` is the list of the hidden layers' states (N, n_l), `X` the normalised
# images, `lab` the normalised labels, `p` the connections named as in `run`. First
# update the *even* layers of Fig. 3 (hidden layers 2, 4, ...: 0-based `l = 1, 3, ...`)
# from the current states, then the *odd* ones (0-based `l = 0, 2, ...`) from the new
# even states, each with the damped step. Return the new list; leave `ys` unchanged. The
# self-check runs it 8 times on small nets and compares every layer's goodness at every
# iteration with `RecurrentFFNet(schedule="alternating")`.


# %%
def alternating_iteration(ys, X, lab, p, d):
    """The hidden layers' new states after one alternating iteration (a new list)."""
    raise NotImplementedError("exercise 1: even layers first, then the odd ones")


tutorial.self_check(tutorial.check_alternating_iteration, alternating_iteration)

# %% [markdown]
# ### Exercise 2: classification by goodness over a window
#
# Write `predict_by_goodness(G, window, objective)`: `G` (N, C, T) holds the goodness of
# every image with every label at iterations 1..T (`goodness_trace`); `window = (lo,
# hi)` names iterations `lo` to `hi`, both included, counted from 1. Average each label's
# goodness over the window and return the best label of every image: the highest under
# `"max"`, the lowest under `"min"`.


# %%
def predict_by_goodness(G, window, objective):
    """The best label (N,) by the goodness averaged over iterations window[0]..window[1]."""
    raise NotImplementedError("exercise 2: average over the window, then the best label")


tutorial.self_check(tutorial.check_predict_by_goodness, predict_by_goodness)

# %% [markdown]
# ### Question 3: why hold the states constant?
#
# Section 5 showed that FF's gradient is not the gradient of its own objective through
# time. What would a learner need to follow the full gradient, and what does holding the
# states constant buy?
#
# <details><summary>Worked answer</summary>
#
# The objective is a sum over iterations of every layer's loss, and each state depends on
# the weights through every earlier iteration and, through the top-down and bottom-up
# connections, through every other layer. Its full gradient is backpropagation through
# time: store every state of every iteration, then run a backward sweep from the last
# iteration to the first, passing derivatives down and up through the layers. That
# needs memory growing with the number of iterations, a second pass in the opposite
# direction of time, and exact knowledge of every connection's derivative.
#
# Holding what an update read constant turns each update into a one-layer problem like
# tutorial 01's: its gradient needs only the inputs it just read, its pre-activation and
# its new state, all available at that moment. So the net can learn *while* it runs (a
# video need not be stored or replayed), each layer's learning is local, and the cost of
# a training step is one forward run plus a matrix product per update. The price is that
# the step does not descend the full objective: the layers below and above are not
# adjusted to help a layer's goodness, they only learn from their own losses. The paper
# argues this is how a cortex could learn; section 5 measures how different the two
# gradients are.
# </details>
#
# ### Question 4: why does iteration 1 classify worst?
#
# In the run's table and `error_by_window.png`, the error of iteration 1 alone is much
# higher than that of any later iteration. Why? Would it be as bad with the alternating
# schedule? And why average iterations 3-5 rather than take the last one?
#
# <details><summary>Worked answer</summary>
#
# With the synchronous schedule the label reaches hidden layer `l` at iteration `L - l`
# (section 1): at iteration 1 only the top layer has read the label, and the bottom layer
# is still the label-free state of iteration 0 (plus a top-down input that is the same
# for every label). The goodness summed over the layers then carries the label's effect
# on one layer only, a much weaker signal. From iteration 2 both layers of the 2-layer
# net see it. With the alternating schedule (2 layers: the even layer 2, the top one, is
# updated first and the odd layer 1 then reads its new state) the label reaches both
# layers within iteration 1, so iteration 1 would be far less handicapped.
#
# Averaging several iterations averages out the fluctuation of a single one, and 3-5 is
# where the dynamics have settled on the label without the late iterations' drift (the
# states keep moving slowly, and the loss has trained every iteration, not the last one
# in particular). The paper chose 3-5; the run's table shows how little it matters once
# the label has arrived everywhere.
# </details>
