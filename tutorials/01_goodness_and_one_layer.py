r"""Tutorial 01: goodness, Eq. 1, the local gradient, and one FF layer trained on MNIST.

What it teaches
    * The *goodness* of a layer, ``G = sum_j y_j^2``, and the paper's Eq. 1, the
      probability that an input is positive (real) data, ``p = sigmoid(G - theta)``.
    * The layer's *local* gradient, derived step by step (loss -> goodness -> activities
      -> ReLU -> weights), computed by ``ff_numpy.layers.Dense.local_grads`` and checked
      against automatic differentiation (the ``autograd`` package, float64; when it is
      not installed, against central finite differences).
    * How supervised FF builds its data: *positive* = an MNIST image with its true label
      written into the first 10 pixels (``LabelCode``), *negative* = the same image with
      a wrong label (``random_wrong_labels``). One layer, trained on its own objective,
      learns to tell them apart.

How long it takes (2 cores)
    ``--quick``: about 5-20 s (500 units, 10,000 images, 3 epochs).
    Full: about 2-3 minutes (2000 units, all 50,000 training images, 10 epochs).

What it should show
    * The closed-form gradient agrees with autograd to rounding error (relative error
      around 1e-16).
    * Before training, positive and negative goodness histograms lie on top of each
      other, below the threshold: p(positive) < 0.5 for every example, so exactly half of
      the held-out examples (the negatives) are classified correctly. After training the
      two histograms separate around the threshold: in quick mode roughly 85-90% of the
      held-out examples are on the right side of p = 0.5, in full mode about 97%.
    * Used as a digit classifier (write each label in, pick the one of highest
      goodness), the single layer gets roughly 85-90% (quick) or 97% (full) right.
    * The figure ``goodness_histograms.png`` (two panels, before / after) in ``--out``.

Run it::

    python tutorials/01_goodness_and_one_layer.py --quick
    python tutorials/01_goodness_and_one_layer.py --out /tmp/ff01 --data-dir ~/mnist

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws to a file, never to a window
from scipy.special import expit

from ff_numpy import goodness as gd
from ff_numpy import tutorial
from ff_numpy.data import load_mnist
from ff_numpy.layers import Dense
from ff_numpy.negatives import LabelCode, random_wrong_labels
from ff_numpy.norm import normalize
from ff_numpy.optim import hold_then_linear, make_optimizer

SEED = 0
N_CLASSES = 10  # MNIST digits; the label goes into the first 10 pixels
NORM = "rms"  # length normalisation of the input: |x|^2 = 784 after it (footnote 5)
BATCH_SIZE = 100
OPTIMIZER = "adam"  # one layer learns in a few epochs; tutorial 02 uses the paper's SGD
LR = 0.003

# The full run and the --quick run differ only in size.
FULL = {"hidden": 2000, "n_train": 50_000, "epochs": 10, "n_eval": 10_000}
QUICK = {"hidden": 500, "n_train": 10_000, "epochs": 3, "n_eval": 2_000}

# The gradient check: a small float64 layer on random inputs.
CHECK_BATCH, CHECK_IN, CHECK_OUT = 8, 20, 15
AUTOGRAD_TOL = 1e-10  # relative error, closed form vs autograd (both exact up to rounding)
FD_TOL = 1e-6  # relative error, closed form vs central finite differences
FD_STEP = 1e-6

FIGURE = "goodness_histograms.png"
try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "01_goodness_and_one_layer.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. Goodness and Eq. 1
#
# A layer's goodness for one example is the sum of its squared ReLU activities,
# `G = sum_j y_j^2`. The probability that the example is positive data is (Eq. 1)
#
#     p(positive) = sigmoid(G - theta),
#
# so an example is called positive when its goodness exceeds the threshold `theta`.
# The layer is trained to maximise `log p` on positive data and `log(1 - p)` on negative
# data. With a sign `s = +1` for positive and `s = -1` for negative data, both are
#
#     L = -log sigmoid(s (G - theta)) = softplus(-s (G - theta)).


# %%
def show_eq1(rng: np.random.Generator) -> None:
    """Goodness, p(positive) and the loss of a few random activity vectors."""
    y = np.maximum(rng.standard_normal((4, 6)), 0)  # 4 examples, 6 ReLU units
    G = gd.goodness(y)  # (4,)
    theta = 3.0
    p = gd.p_positive(G, theta)
    assert np.allclose(p, 1 / (1 + np.exp(-(G - theta))))  # Eq. 1, written out
    loss_if_pos = gd.layer_loss(G, theta, np.ones(4))  # -log p
    loss_if_neg = gd.layer_loss(G, theta, -np.ones(4))  # -log(1 - p)
    print(f"Eq. 1 with theta = {theta}:")
    print("     G    p(pos)   L if positive   L if negative")
    for row in zip(G, p, loss_if_pos, loss_if_neg):
        print("  {:5.2f}   {:5.3f}   {:13.3f}   {:13.3f}".format(*row))


# %% [markdown]
# ## 2. The local gradient, step by step
#
# One dense layer: `a = x W + b`, `y = relu(a)`, `G = sum_j y_j^2`, and the loss above.
# The chain rule, one factor at a time (per example n, unit j, input i):
#
# 1. `dL/dG = -s * sigmoid(-s (G - theta))`  (derivative of `softplus(-z)` is
#    `-sigmoid(-z)`, and `dz/dG = s`). For a positive example (s = +1) this is
#    `-(1 - p)`: push G up until p is near 1. For a negative one it is `+p`.
# 2. `dG/dy_j = 2 y_j`.
# 3. `dy_j/da_j = ReLU'(a_j) = 1 if a_j > 0 else 0`.
#    So `dL/da_j = dL/dG * 2 y_j * [a_j > 0]`.
# 4. `a_j = sum_i x_i W_ij + b_j`, so `dL/dW_ij = x_i dL/da_j` and `dL/db_j = dL/da_j`.
#    Summed over the batch: `dL/dW = x^T dL/da`, `dL/db = sum over rows of dL/da`.
#
# The chain stops at W: nothing is sent back to the layer's input `x`. That is the whole
# point of Forward-Forward: each layer learns from its own objective.


# %%
def grads_by_hand(x, W, b, theta, s):
    """The four steps above, written out in NumPy. Returns (dL_dW, dL_db) of sum_n L_n."""
    a = x @ W + b  # (B, n_in) @ (n_in, n_out) -> (B, n_out)
    y = np.maximum(a, 0)
    G = np.sum(y**2, axis=1)  # (B,)
    dL_dG = -s * expit(-s * (G - theta))  # step 1, (B,)
    dG_dy = 2 * y  # step 2, (B, n_out)
    dy_da = (a > 0).astype(a.dtype)  # step 3, ReLU'
    dL_da = dL_dG[:, None] * dG_dy * dy_da  # (B, n_out)
    dL_dW = x.T @ dL_da  # step 4: (n_in, B) @ (B, n_out) -> (n_in, n_out)
    dL_db = dL_da.sum(axis=0)
    return dL_dW, dL_db


def total_loss(x, W, b, theta, s, xp=np):
    """sum_n L_n written with the array module ``xp`` (NumPy, or autograd's wrapper)."""
    y = xp.maximum(xp.dot(x, W) + b, 0.0)
    G = xp.sum(y**2, axis=1)
    return xp.sum(xp.logaddexp(0.0, -s * (G - theta)))


def reference_grads(x, W, b, theta, s):
    """dL/dW and dL/db by autograd, or by central finite differences without it.

    Returns
    -------
    dL_dW, dL_db : ndarray
    method : str
        ``"autograd"`` or ``"finite differences"``.
    """
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        print(
            "note: the autograd package is not installed (pip install autograd); "
            "checking against central finite differences instead"
        )
    else:
        grad = autograd.grad(lambda W_, b_: total_loss(x, W_, b_, theta, s, anp), argnum=(0, 1))
        dL_dW, dL_db = grad(W, b)
        return dL_dW, dL_db, "autograd"

    def central_differences(param):
        out = np.empty_like(param)
        for i in np.ndindex(param.shape):
            old = param[i]
            param[i] = old + FD_STEP
            up = total_loss(x, W, b, theta, s)
            param[i] = old - FD_STEP
            down = total_loss(x, W, b, theta, s)
            param[i] = old
            out[i] = (up - down) / (2 * FD_STEP)
        return out

    return central_differences(W), central_differences(b), "finite differences"


def rel_error(ours, ref) -> float:
    """``|ours - ref| / (|ours| + |ref|)`` in the Euclidean norm."""
    denom = np.linalg.norm(ours) + np.linalg.norm(ref)
    return float(np.linalg.norm(ours - ref) / denom) if denom else 0.0


def gradient_check(rng: np.random.Generator) -> dict:
    """Library gradient vs the steps by hand vs autograd (or finite differences).

    Raises ``AssertionError`` if the library disagrees with either. Returns the errors.
    """
    layer = Dense(CHECK_IN, CHECK_OUT, rng, dtype=np.float64)
    layer.b[:] = 0.1 * rng.standard_normal(CHECK_OUT)
    x = rng.standard_normal((CHECK_BATCH, CHECK_IN))  # continuous: no pre-activation is 0
    s = np.where(rng.random(CHECK_BATCH) < 0.5, 1.0, -1.0)  # positive / negative examples
    theta = float(CHECK_OUT) / 2  # near the typical initial goodness, so both signs matter

    # The library: forward, goodness, dL/dG, then the layer's closed-form local gradient.
    y = layer.forward(x)
    G = gd.goodness(y)
    dW, db = layer.local_grads(x, y, gd.dL_dG(G, theta, s))

    dW_hand, db_hand = grads_by_hand(x, layer.W, layer.b, theta, s)
    dW_ref, db_ref, method = reference_grads(x, layer.W.copy(), layer.b.copy(), theta, s)
    tol = AUTOGRAD_TOL if method == "autograd" else FD_TOL
    errors = {
        "by hand, dL/dW": rel_error(dW, dW_hand),
        "by hand, dL/db": rel_error(db, db_hand),
        f"{method}, dL/dW": rel_error(dW, dW_ref),
        f"{method}, dL/db": rel_error(db, db_ref),
    }
    print(f"gradient check, float64, B={CHECK_BATCH}, {CHECK_IN} -> {CHECK_OUT} units:")
    for what, err in errors.items():
        print(f"  Dense.local_grads vs {what}: relative error {err:.1e}")
        assert err < tol, f"Dense.local_grads disagrees with {what}: {err:.2e} >= {tol:.0e}"
    return {"method": method, "errors": errors}


# %% [markdown]
# ## 3. Positive and negative data from MNIST
#
# Positive: the image with its true label as a one-hot code in the first 10 pixels
# (black in every MNIST digit). Negative: the same image with a wrong label. Both are
# length-normalised (RMS, no mean subtraction), and they go through the layer as one
# matrix of 2B rows: positive rows first.


# %%
def positive_and_negative(x, labels, code: LabelCode, rng: np.random.Generator):
    """Rows ``[x with true label; x with a wrong label]``, normalised, and which is which.

    Returns
    -------
    X : ndarray, shape (2B, 784)
    is_pos : ndarray of bool, shape (2B,)
    """
    wrong = random_wrong_labels(labels, N_CLASSES, rng)  # never the true label
    X = np.concatenate([code.embed(x, labels), code.embed(x, wrong)])  # (2B, 784)
    normalize(X, NORM, out=X)
    is_pos = np.arange(len(X)) < len(x)
    return X, is_pos


# %% [markdown]
# ## 4. Training one layer
#
# Every step is the data flow of the paper: forward, goodness, `dL/dG`, the local
# gradient, an update. The threshold is the number of units: with RMS-normalised
# inputs and `W ~ N(0, 1/784)`, each pre-activation starts with unit variance, so the
# initial goodness is about `n / 2`, below `theta = n` for every example.


# %%
def train_layer(layer: Dense, theta, x, labels, epochs, rng) -> list[float]:
    """Train ``layer`` on positive vs negative MNIST; return the mean loss of each epoch."""
    code = LabelCode.first_pixels(N_CLASSES)
    opt = make_optimizer(OPTIMIZER, LR)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        lr_scale = hold_then_linear(epoch, epochs)  # hold, then decay linearly
        perm = rng.permutation(len(x))
        loss_sum = 0.0
        for start in range(0, len(x), BATCH_SIZE):
            idx = perm[start : start + BATCH_SIZE]
            B = len(idx)
            X, is_pos = positive_and_negative(x[idx], labels[idx], code, rng)
            s = gd.sign(is_pos)  # +1 on positive rows, -1 on negative rows
            Y = layer.forward(X)  # (2B, 784) @ (784, n) -> (2B, n)
            G = gd.goodness(Y)  # (2B,)
            loss_sum += float(gd.layer_loss(G, theta, s).sum())
            dL_dG = gd.dL_dG(G, theta, s) / B  # mean over the B pairs
            # Steps 2-3 of the chain; then dL/dW = X^T dL/da (step 4), the product
            # Dense.local_grads forms. The optimiser forms it itself (step_outer), with
            # the same BLAS as the forward pass, as FFNet.train_step does.
            dL_da = layer.dL_da(Y, dL_dG)  # (2B, n)
            opt.step_outer("W", layer.W, X, dL_da, lr_scale)  # (784, 2B) @ (2B, n)
            opt.step("b", layer.b, dL_da.sum(axis=0), lr_scale, decay=False)
        history.append(loss_sum / len(x))
        print(
            f"  epoch {epoch + 1}/{epochs}: loss per pair {history[-1]:.4f}  "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    return history


def evaluate(layer: Dense, theta, X, is_pos, x_images, labels) -> dict:
    """Goodness of held-out rows, and two accuracies of the layer.

    ``p_correct``: fraction of rows with ``(p(positive) > 0.5) == is_pos``.
    ``digit_correct``: write each of the 10 labels into each image and pick the label of
    highest goodness (the layer used as a digit classifier, Sec. 3.3).
    """
    G = gd.goodness(layer.forward(X))
    p = gd.p_positive(G, theta)
    code = LabelCode.first_pixels(N_CLASSES)
    G_per_label = np.stack(
        [
            gd.goodness(layer.forward(normalize(code.embed(x_images, np.full(len(labels), k)))))
            for k in range(N_CLASSES)
        ],
        axis=1,
    )  # (B, 10)
    return {
        "G": G,
        "p_correct": float(np.mean((p > 0.5) == is_pos)),
        "digit_correct": float(np.mean(G_per_label.argmax(axis=1) == labels)),
    }


# %%
def plot_histograms(G_before, G_after, is_pos, theta, path) -> Path:
    """Two panels: positive vs negative goodness before and after training."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((axes[0], G_before, "before training"), (axes[1], G_after, "after training"))
    for ax, G, title in panels:
        bins = np.linspace(0, np.percentile(G, 99.5), 80)
        ax.hist(G[is_pos], bins, alpha=0.6, label="positive (true label)")
        ax.hist(G[~is_pos], bins, alpha=0.6, label="negative (wrong label)")
        ax.axvline(theta, color="k", ls="--", lw=1, label=r"threshold $\theta$")
        ax.set_xlabel("goodness G = sum of squared activities")
        ax.set_ylabel("held-out examples")
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"one FF layer on MNIST, threshold theta = {theta:g} (the number of units)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# %%
def build_parser() -> argparse.ArgumentParser:
    p = tutorial.parser(
        __doc__, f"small run: {QUICK}", DEFAULT_OUT, "folder for the figure", trains=False
    )
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    size = QUICK if args.quick else FULL
    rng = np.random.default_rng(SEED)

    show_eq1(rng)
    check = gradient_check(rng)

    data = load_mnist(args.data_dir)
    x, labels = data.train.x[: size["n_train"]], data.train.y[: size["n_train"]]
    x_eval, y_eval = data.test.x[: size["n_eval"]], data.test.y[: size["n_eval"]]
    # One fixed held-out set of positive and negative rows, scored before and after.
    X_eval, is_pos = positive_and_negative(
        x_eval, y_eval, LabelCode.first_pixels(N_CLASSES), np.random.default_rng([SEED, 1])
    )

    layer = Dense(784, size["hidden"], rng)  # float32
    theta = float(size["hidden"])
    before = evaluate(layer, theta, X_eval, is_pos, x_eval, y_eval)
    print(
        f"training one layer of {size['hidden']} units on {len(x)} images, "
        f"{size['epochs']} epochs (theta = {theta:g}):"
    )
    losses = train_layer(layer, theta, x, labels, size["epochs"], rng)
    after = evaluate(layer, theta, X_eval, is_pos, x_eval, y_eval)

    n = len(X_eval)
    print(f"held-out: {n // 2} test images, each once positive and once negative ({n} rows)")
    for name, r in (("before training", before), ("after training", after)):
        print(
            f"  {name:15s}: p(positive) > 0.5 right for {100 * r['p_correct']:.1f}% of rows; "
            f"mean G positive {r['G'][is_pos].mean():.0f}, negative {r['G'][~is_pos].mean():.0f}"
        )
    print(
        f"  as a digit classifier (label of highest goodness): {100 * before['digit_correct']:.1f}%"
        f" correct before, {100 * after['digit_correct']:.1f}% after"
    )
    fig = plot_histograms(before["G"], after["G"], is_pos, theta, args.out / FIGURE)
    print(f"figure: {fig}")
    return {
        "gradient_check": check,
        "losses": losses,
        "p_correct_before": before["p_correct"],
        "p_correct_after": after["p_correct"],
        "digit_correct_before": before["digit_correct"],
        "digit_correct_after": after["digit_correct"],
        "figures": [fig],
    }


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
