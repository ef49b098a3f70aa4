"""Figures, drawn from what a run wrote (``metrics.json``, ``model.npz``), never shown.

Computing and plotting are kept apart: a run writes JSON and arrays; these functions read
them and save PNG files. They use matplotlib's object interface (``Figure``), not pyplot, so
they never open a window and never change the caller's backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, MaxNLocator


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_learning_curve(metrics, path) -> Path:
    """Validation errors and training losses against epochs.

    Parameters
    ----------
    metrics : dict or path
        The contents of ``metrics.json`` (or its path).
    path : str or Path
        Where to write the PNG.
    """
    if not isinstance(metrics, dict):
        metrics = json.loads(Path(metrics).read_text())
    hist = metrics["history"]
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    curves = [
        (f"{split}_error{suffix}", f"{name}{kind}")
        for split, name in (("val", "validation"), ("test", "test"))
        for suffix, kind in (("_softmax", ", softmax"), ("_goodness", ", goodness"), ("", ""))
    ]
    for key, label in curves:
        pts = [(r["epoch"], 100 * r[key]) for r in hist if key in r]
        if pts:
            e, v = zip(*pts)
            style = ("o-" if len(pts) < 30 else "-") if key.startswith("val") else "x:"
            ax1.plot(e, v, style, ms=3, label=label)
    for key, label in (
        ("test_error_goodness", "test, goodness"),
        ("test_error_softmax", "test, softmax"),
        ("test_error", "test"),
    ):
        # backprop writes test_error and test_error_softmax (the same number): one line
        if key in metrics and not (key == "test_error_softmax" and "test_error" in metrics):
            ax1.axhline(100 * metrics[key], ls="--", lw=0.8, color="gray")
            ax1.annotate(
                f"{label} {100 * metrics[key]:.2f}%",
                (1, 100 * metrics[key]),
                fontsize=8,
                va="bottom",
            )
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("error (%)")
    ax1.set_yscale("log")
    for axis in (ax1.yaxis,):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FormatStrFormatter("%g"))
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    ax1.set_title("classification error")
    names = sorted({k for r in hist for k in r.get("train_loss", {})})
    for k in names:
        ax2.plot(
            [r["epoch"] for r in hist], [r["train_loss"].get(k, np.nan) for r in hist], label=k
        )
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mean training loss")
    ax2.set_yscale("log")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    cfg = metrics.get("config", {})
    if "negatives" in cfg:
        ax2.set_title("per-layer FF loss (positive + negative) and readout loss")
    else:
        ax2.set_title("training loss")
    shown = ("hidden", "negatives", "objective", "optimizer", "lr")
    fig.suptitle(
        "  ".join([cfg.get("experiment", "")] + [f"{k}={cfg[k]}" for k in shown if k in cfg]),
        fontsize=10,
    )
    return _save(fig, path)


def plot_receptive_fields(
    W: np.ndarray, path, n: int = 100, image_shape=(28, 28), n_label_pixels: int = 10,
    title: str = "receptive fields of first-layer units",
) -> Path:  # fmt: skip
    """The incoming weights of ``n`` first-layer units as images (paper, Fig. 2).

    Parameters
    ----------
    W : ndarray, shape (n_in, n_units)
        First-layer weights; column j is unit j's receptive field.
    path : str or Path
    n : int
        How many units (the first ``n``), drawn on a square grid.
    image_shape : tuple
        Shape of one input image.
    n_label_pixels : int
        The first pixels carry the label; they stay visible in the top row of each image.
    """
    n = min(n, W.shape[1])
    side = int(np.ceil(np.sqrt(n)))
    fig = Figure(figsize=(side * 0.9, side * 0.9 + 0.3))
    axes = fig.subplots(side, side)
    for j, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if j >= n:
            continue
        w = W[:, j].reshape(image_shape)
        lim = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="seismic", vmin=-lim, vmax=lim, interpolation="nearest")
        if n_label_pixels:
            ax.add_patch(Rectangle((-0.5, -0.5), n_label_pixels, 1, fill=False, lw=0.4, ec="k"))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.08, hspace=0.08)
    fig.suptitle(f"{title} (label pixels boxed, top left)", fontsize=10, y=0.99)
    return _save(fig, path)
