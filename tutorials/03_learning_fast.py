r"""Tutorial 03: learning fast (paper Sec. 7): Eq. 3, orientation invariance, Eq. 4.

What it teaches
    * Eq. 3, the update of one FF layer for one example, and the paper's remark that for
      a fully connected layer with squared goodness it changes *no* orientation: every
      active unit's pre-activation is multiplied by the same factor, so the normalised
      output, all that the next layer sees, stays exactly the same. An update of an early
      layer does not disturb the layers above it for that input.
    * Where that fails: the unsquared goodness (the update *adds* a constant to every
      active unit) and locally connected ("masked") layers (each unit sees a different
      part of the input, so each scales by a different factor).
    * Eq. 4 in its general form, ``c = (sqrt(S*/S_L) - 1) / |u_aug|^2``: one step takes a
      layer's goodness from ``S_L`` to any target ``S*``, and because the normalised
      outputs do not change, *every* layer of a network can be moved to its own target in
      one simultaneous step computed from a single forward pass.

How long it takes (2 cores)
    A few seconds, quick or full (random layers and one MNIST image). The online-learning
    comparison (one-shot jumps vs mini-batches) is ``ff-numpy train online``; see the
    README and ``docs/RESULTS.md``.

What it should show
    * ``eq3_orientation.png``: three panels of pre-activations after the update against
      before. Dense + squared goodness: the active units lie on one line through the
      origin (slope ``k``) and the normalised output is unchanged to rounding error.
      Unsquared: the points are shifted by a constant; masked: they fan out over many
      slopes; in both the normalised output changes (the printed numbers say by how much).
    * ``one_shot.png``: the goodness of every layer of a 4-layer net before and after one
      simultaneous Eq. 4 step, against its target; the printed relative errors are of
      order 1e-15 (float64).

Run it::

    python tutorials/03_learning_fast.py --quick
"""

# %%
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import fast, tutorial
from ff_numpy import goodness as gd
from ff_numpy.data import find_data_dir, load_mnist
from ff_numpy.layers import Dense
from ff_numpy.model import FFNet
from ff_numpy.negatives import LabelCode
from ff_numpy.norm import normalize

SEED = 0
N_UNITS = 500  # width of the layer of part 1
EPS = 5e-4  # Eq. 3 rate of part 1: with |x|^2 = 784 and g = -1/2, k = 1 - EPS * 785 ~ 0.6
HIDDEN = [400, 300, 300, 200]  # the network of part 2
TARGETS = [500.0, 150.0, 450.0, 100.0]  # one target goodness per layer (above / below)
FIELD = 14  # part 1, masked layer: each unit sees a random FIELD x FIELD square

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook
    _SCRIPT = Path.cwd() / "03_learning_fast.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 0. One input
#
# A real MNIST image with its label written into the first 10 pixels, normalised to
# root-mean-square 1 (squared length 784), exactly as the first layer of supervised FF
# sees it. Without data (no MNIST found) a random non-negative vector stands in.


# %%
def one_input(data_dir=None, rng=None) -> np.ndarray:
    """One labelled, normalised MNIST image, shape (784,), float64."""
    if find_data_dir(data_dir) is not None:
        data = load_mnist(data_dir, progress=False)
        x, label = data.test.x[:1].astype(np.float64), data.test.y[:1]
    else:
        x, label = rng.random((1, 784)) * (rng.random((1, 784)) < 0.2), np.array([3])
    x = LabelCode.first_pixels(10).embed(x, label)
    return normalize(x, "rms")[0]


# %% [markdown]
# ## 1. Eq. 3 and orientation invariance
#
# For one example, gradient ascent on log p(correct) changes unit j's weights by
# `dw_j = 2 eps (dlog p / dG) y_j x` and its bias by `2 eps (dlog p / dG) y_j`. Feeding
# the same x again, `da_j = 2 eps g |x_aug|^2 y_j`: proportional to `y_j`, so every
# active unit scales by `k = 1 + 2 eps g |x_aug|^2` and inactive units stay at zero.
# `fast.eq3_orientation` applies the update to a copy of the layer and returns the
# pre-activations and normalised outputs before and after.


# %%
def orientation_demo(x: np.ndarray, rng: np.random.Generator, out: Path) -> dict:
    layer = Dense(x.size, N_UNITS, rng, dtype=np.float64)
    # A negative example (g < 0): the step shrinks the active units.
    cases = {
        "dense, squared goodness": {"goodness": "ssq"},
        "dense, unsquared goodness": {"goodness": "sum"},
        "masked (local fields), squared": {"goodness": "ssq", "mask": square_fields(rng)},
    }
    fig = Figure(figsize=(13, 4))
    axes = fig.subplots(1, 3)
    changes = {}
    for ax, (name, kw) in zip(axes, cases.items()):
        lay = layer
        if "mask" in kw:  # a locally connected layer: zero outside each unit's field
            lay = Dense(x.size, N_UNITS, rng, dtype=np.float64)
            lay.W *= kw["mask"]
        # theta at the example's own goodness: p = 1/2, the steepest point of Eq. 1
        theta = float(gd.goodness(lay.forward(x[None, :])[0], kw["goodness"])[0])
        eff = fast.eq3_orientation(lay, x, theta, False, EPS, norm="rms", **kw)
        change = float(np.abs(eff.y_hat_after - eff.y_hat_before).max())
        changes[name] = change
        on = eff.a_before > 0
        ax.scatter(eff.a_before[on], eff.a_after[on], s=4, label="active units")
        ax.scatter(eff.a_before[~on], eff.a_after[~on], s=4, c="lightgray", label="inactive")
        lim = np.abs(eff.a_before).max()
        ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8, label="no change")
        ax.set_xlabel("pre-activation before the Eq. 3 step")
        ax.set_ylabel("after")
        ax.set_title(f"{name}\nmax change of normalised output: {change:.2e}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "eq3_orientation.png", dpi=110)
    for name, change in changes.items():
        print(f"  {name:34s} largest change of the normalised output: {change:.3e}")
    return changes


def square_fields(rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask (784, N_UNITS): each unit sees one random FIELD x FIELD square."""
    mask = np.zeros((28, 28, N_UNITS))
    for j in range(N_UNITS):
        r, c = rng.integers(0, 28 - FIELD + 1, size=2)
        mask[r : r + FIELD, c : c + FIELD, j] = 1
    return mask.reshape(784, N_UNITS)


# %% [markdown]
# ## 2. Eq. 4: every layer to its target in one step
#
# `fast.one_shot_model_step` runs one forward pass, computes for each layer
# `c_l = (sqrt(S*_l / S_l) - 1) / |u_l,aug|^2` from its own input `u_l`, and applies
# `dw_j = c_l y_j u_l`, `db_j = c_l y_j` to all layers at once. Each layer's active units
# scale by `sqrt(S*_l / S_l) > 0`, so the next layer's normalised input is unchanged and
# every target is hit exactly.


# %%
def one_shot_demo(x_image: np.ndarray, out: Path) -> list[float]:
    model = FFNet(784, HIDDEN, np.random.default_rng(SEED), dtype=np.float64)
    # one_shot_model_step writes the label and normalises, like the training step does
    raw = x_image[None, :].copy()
    before = [float(gd.goodness(y)[0]) for y in model.activities(raw, np.array([3]))]
    fast.one_shot_model_step(model, raw[0], TARGETS, label=3)
    after = [float(gd.goodness(y)[0]) for y in model.activities(raw, np.array([3]))]
    errors = [abs(a - t) / t for a, t in zip(after, TARGETS)]
    for l, (b, a, t, e) in enumerate(zip(before, after, TARGETS, errors)):
        print(f"  layer {l}: goodness {b:8.2f} -> {a:8.2f}  (target {t:6.1f}, rel. error {e:.1e})")
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    idx = np.arange(len(HIDDEN))
    ax.bar(idx - 0.2, before, 0.4, label="before")
    ax.bar(idx + 0.2, after, 0.4, label="after one step")
    ax.scatter(idx + 0.2, TARGETS, marker="_", s=400, c="k", label="target S*", zorder=3)
    ax.set_xticks(idx, [f"layer {l}" for l in idx])
    ax.set_ylabel("goodness for this input")
    ax.set_title("Eq. 4: every layer reaches its target in one simultaneous step", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "one_shot.png", dpi=110)
    return errors


# %%
def main(argv=None) -> dict:
    p = tutorial.parser(
        __doc__,
        "the same (it is fast already)",
        DEFAULT_OUT,
        "folder for the figures",
        trains=False,
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    print("1. Eq. 3 and orientation invariance")
    x = one_input(args.data_dir, rng)
    changes = orientation_demo(x, rng, args.out)
    print("2. Eq. 4: one simultaneous step to a target goodness in every layer")
    # the raw image again (one_shot_model_step writes the label and normalises itself)
    image = x * np.sqrt(np.mean(x**2))  # any positive scale: the net normalises its input
    errors = one_shot_demo(image, args.out)
    figures = [args.out / "eq3_orientation.png", args.out / "one_shot.png"]
    print("figures:", *figures, sep="\n  ")
    return {"orientation_changes": changes, "one_shot_errors": errors, "figures": figures}


if __name__ == "__main__":
    main()
