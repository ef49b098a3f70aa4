"""Figures, drawn from what a run wrote (``metrics.json``, ``model.npz``), never shown.

Computing and plotting are kept apart: a run writes JSON and arrays; these functions read
them and save PNG files. They use matplotlib's object interface (``Figure``), not pyplot, so
they never open a window and never change the caller's backend.

A figure is written like a checkpoint (:func:`ff_numpy.checkpoint.atomic_write`: a
temporary file renamed, the mode of an ordinary file). A ``metrics.json`` is checked when
read (:func:`load_metrics`): one that is not JSON or not shaped as a run writes it is
refused with one line naming the file; a ``null`` (a number that was not finite) is left
out of the curves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from ff_numpy.checkpoint import atomic_write

METRICS_FILE = "metrics.json"


def figure_path(path, default_name: str = "learning_curve.png") -> Path:
    """Where a figure asked for as ``path`` goes: inside it (as ``default_name``) if it is
    a folder, with ``.png`` added if it has no extension."""
    path = Path(path)
    if path.is_dir():
        return path / default_name
    return path if path.suffix else path.with_name(path.name + ".png")


def _save(fig, path) -> Path:
    """Write ``fig`` to ``path`` (:func:`figure_path`) atomically; return where it went."""
    path = figure_path(path)
    formats = fig.canvas.get_supported_filetypes()
    fmt = path.suffix[1:].lower() if path.suffix[1:].lower() in formats else "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120, bbox_inches="tight"))


def load_metrics(run) -> dict:
    """The contents of a run's ``metrics.json`` (given the dict, the file or its folder).

    A file is checked; a dict is returned as it is.

    Raises
    ------
    ValueError
        Naming the file: it is missing, not JSON, or not shaped as a run writes it
        (:func:`metrics_problem`).
    """
    if isinstance(run, dict):
        return run  # computed in memory, not read
    path = Path(run)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise ValueError(f"{run} has no {METRICS_FILE}")
    try:
        metrics = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    problem = metrics_problem(metrics)
    if problem:
        raise ValueError(f"{path} is not a run's {METRICS_FILE}: {problem}")
    return metrics


def metrics_problem(metrics) -> str | None:
    """What makes ``metrics`` unlike a run's ``metrics.json``, or None.

    Needed: a JSON object; ``config``, if present, an object; ``history`` a list of
    objects, each with an integer ``epoch`` (and ``examples_seen`` for online runs), its
    ``train_loss`` (if any) an object; numbers where errors are, ``null`` allowed.
    """
    if not isinstance(metrics, dict):
        return f"a JSON {_json_type(metrics)}, expected an object with config and history"
    cfg = metrics.get("config", {})
    if not isinstance(cfg, dict):
        return f"config is a JSON {_json_type(cfg)}, expected an object"
    hist = metrics.get("history")
    if not isinstance(hist, list):
        return f"history is {'missing' if hist is None else 'a JSON ' + _json_type(hist)}, " \
            "expected a list of epochs"  # fmt: skip
    online = cfg.get("experiment") == "online"
    for i, r in enumerate(hist):
        if not isinstance(r, dict):
            return f"history entry {i} is a JSON {_json_type(r)}, expected an object"
        for key in ("epoch", "examples_seen") if online else ("epoch",):
            if not _is_int(r.get(key)):
                return f"history entry {i} has no integer {key}"
        if not isinstance(r.get("train_loss", {}), dict):
            return f"history entry {i} has a train_loss that is not an object"
        for key, value in [*r.items(), *r.get("train_loss", {}).items()]:
            if ("error" in key or key.startswith("layer")) and not _is_number(value, True):
                return f"history entry {i} has a {key} that is not a number: {value!r}"
    for key, value in metrics.items():
        if key.startswith("test_error") and not _is_number(value, True):
            return f"{key} is not a number: {value!r}"
    return None


def _json_type(x) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(x), "number")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x, none_ok: bool = False) -> bool:
    return (x is None and none_ok) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _points(hist: list[dict], x_key: str, key: str) -> list[tuple[float, float]]:
    """``(x, 100 * value)`` of the entries that have a finite ``key`` (``null``: skipped)."""
    return [
        (r[x_key], 100 * r[key]) for r in hist if _is_number(r.get(key)) and math.isfinite(r[key])
    ]


def _final(metrics: dict, key: str) -> bool:
    """Whether ``metrics`` has a finite final ``key``."""
    return _is_number(metrics.get(key)) and math.isfinite(metrics[key])


def run_label(metrics: dict) -> str:
    """A short legend label for a run, from its configuration."""
    cfg = metrics.get("config", {})
    seed = f", seed {cfg['seed']}" if cfg.get("seed") else ""
    if cfg.get("method") == "oneshot":
        d, m, rule = cfg.get("damping"), cfg.get("margin"), cfg.get("jump_if")
        return f"oneshot (d={d}, m={m}, jump-if {rule}{seed})"
    if cfg.get("method") == "minibatch":
        return f"minibatch (B={cfg.get('batch_size')}, lr={cfg.get('lr')}{seed})"
    hidden = cfg.get("hidden")
    hidden = "x".join(str(h) for h in hidden) if isinstance(hidden, list) else str(hidden or "")
    parts = [str(cfg.get("experiment", "run")), hidden]
    parts += [f"{k} {cfg[k]}" for k in ("negatives", "objective", "goodness") if k in cfg]
    if cfg.get("black_box") is not None:
        parts.append(f"box after {cfg['black_box']}")
    if cfg.get("jitter"):
        parts.append(f"jitter {cfg['jitter']}")
    if cfg.get("dropout"):
        parts.append(f"dropout {cfg['dropout']}")
    if "epochs" in cfg:
        parts.append(f"{cfg['epochs']} epochs")
    return " ".join(p for p in parts if p) + seed


def _legend(ax, **kwargs) -> None:
    """A legend, if anything was drawn with a label (an empty one only warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _error_axes(ax, title: str) -> None:
    ax.set_xlabel("examples seen")
    ax.set_ylabel("error (%)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize=8)
    ax.set_title(title, fontsize=10)


def plot_online_curve(metrics, path) -> Path:
    """Validation and test errors (%) against examples seen, for one run.

    Parameters
    ----------
    metrics : dict, or path of ``metrics.json`` or of its folder
    path : str or Path
        Where to write the PNG.

    Returns
    -------
    path : Path
    """
    metrics = load_metrics(metrics)
    hist = metrics["history"]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for key, style in (
        ("test_error_softmax", "o-"),
        ("test_error_goodness", "s-"),
        ("val_error_softmax", "o:"),
        ("val_error_goodness", "s:"),
    ):
        pts = _points(hist, "examples_seen", key)
        if pts:
            n, e = zip(*pts)
            label = key.replace("_error_", ", ").replace("val", "validation")
            if key.endswith("goodness"):
                label += f" (first {metrics.get('config', {}).get('eval_size')})"
            ax.plot(n, e, style, ms=3, label=label)
    for key in ("test_error_goodness", "test_error_softmax"):
        if _final(metrics, key) and hist:
            kind = key.rsplit("_", 1)[1]
            ax.annotate(
                f"final test, {kind}: {100 * metrics[key]:.2f}%",
                (hist[-1]["examples_seen"], 100 * metrics[key]),
                fontsize=8,
                ha="right",
                va="bottom",
            )
    _error_axes(ax, run_label(metrics) + f"  hidden={metrics.get('config', {}).get('hidden')}")
    return _save(fig, path)


def plot_online_comparison(runs, path, split: str = "test") -> Path:
    """Overlay several runs' errors against examples seen (e.g. oneshot vs minibatch).

    Parameters
    ----------
    runs : sequence of (dict, or path of ``metrics.json`` or of its folder)
    path : str or Path
        Where to write the PNG.
    split : {"test", "val"}
        Which per-chunk errors to draw: softmax (solid) and goodness (dashed), one
        colour per run.

    Returns
    -------
    path : Path
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    runs = [load_metrics(r) for r in runs]
    if not runs:
        raise ValueError("plot_online_comparison needs at least one run")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, metrics in enumerate(runs):
        color = f"C{i}"
        label = run_label(metrics)
        for kind, style in (("softmax", "o-"), ("goodness", "s--")):
            key = f"{split}_error_{kind}"
            pts = _points(metrics["history"], "examples_seen", key)
            if pts:
                n, e = zip(*pts)
                ax.plot(n, e, style, color=color, ms=3, label=f"{label}, {kind}")
    name = "test" if split == "test" else "validation"
    _error_axes(ax, f"{name} error against examples seen (goodness on --eval-size images)")
    return _save(fig, path)


def plot_comparison(runs, path, split: str = "test", labels=None, kinds=None) -> Path:
    """Overlay several runs' per-epoch errors (e.g. hard vs random negatives, FF vs BP).

    Parameters
    ----------
    runs : sequence of (dict, or path of ``metrics.json`` or of its folder)
        Runs whose history has ``{split}_error_goodness`` / ``{split}_error_softmax``
        (FF) or ``{split}_error`` (backprop) entries; test errors per epoch need
        ``--track-test``.
    path : str or Path
    split : {"test", "val"}
    labels : sequence of str, optional
        One legend label per run (default :func:`run_label`, from each configuration).
    kinds : sequence of {"goodness", "softmax", "backprop"}, optional
        Which errors to draw (default every one a run has).

    Returns
    -------
    path : Path
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    runs = [load_metrics(r) for r in runs]
    if labels is None:
        labels = [run_label(m) for m in runs]
    elif len(labels) != len(runs):
        raise ValueError(f"labels needs one label per run ({len(runs)}), got {len(labels)}")
    styles = {
        "goodness": ("_goodness", "s-"),
        "softmax": ("_softmax", "o:"),
        "backprop": ("", "o-"),
    }
    unknown = sorted(set(kinds or ()) - set(styles))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}: expected some of {sorted(styles)}")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    drawn = 0
    for i, (metrics, label) in enumerate(zip(runs, labels)):
        for kind in kinds or styles:
            suffix, style = styles[kind]
            key = f"{split}_error{suffix}"
            pts = _points(metrics["history"], "epoch", key)
            if pts:
                e, v = zip(*pts)
                ax.plot(e, v, style, color=f"C{i}", ms=3, label=f"{label}, {kind}")
                drawn += 1
    if not drawn:
        raise ValueError(f"none of the runs has per-epoch {split} errors (use --track-test)")
    _error_axes(ax, f"{'test' if split == 'test' else 'validation'} error against epochs")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def plot_run(run, path=None) -> Path:
    """The right figure for one run folder: examples seen for online runs, else epochs.

    Parameters
    ----------
    run : str or Path
        The run's folder (or its ``metrics.json``).
    path : str or Path, optional
        Where to write it (:func:`figure_path`: a folder gets the run's figure name); by
        default into the run's folder.

    Returns
    -------
    path : Path
        The file written.
    """
    metrics = load_metrics(run)
    online = metrics.get("config", {}).get("experiment") == "online"
    name = "online_curve.png" if online else "learning_curve.png"
    if path is None:
        folder = Path(run) if Path(run).is_dir() else Path(run).parent
        path = folder / name
    return (plot_online_curve if online else plot_learning_curve)(metrics, figure_path(path, name))


def plot_learning_curve(metrics, path) -> Path:
    """Validation errors and training losses against epochs.

    Parameters
    ----------
    metrics : dict or path
        The contents of ``metrics.json`` (or its path).
    path : str or Path
        Where to write the PNG.
    """
    metrics = load_metrics(metrics)
    hist = metrics["history"]
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    curves = [
        (f"{split}_error{suffix}", f"{name}{kind}")
        for split, name in (("val", "validation"), ("test", "test"))
        for suffix, kind in (("_softmax", ", softmax"), ("_goodness", ", goodness"), ("", ""))
    ]
    for key, label in curves:
        pts = _points(hist, "epoch", key)
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
        if _final(metrics, key) and not (key == "test_error_softmax" and "test_error" in metrics):
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
    _legend(ax1)
    ax1.set_title("classification error")
    names = sorted({k for r in hist for k in r.get("train_loss", {})})
    for k in names:
        losses = [r.get("train_loss", {}).get(k) for r in hist]
        losses = [v if _is_number(v) else np.nan for v in losses]  # null: a gap
        ax2.plot([r["epoch"] for r in hist], losses, label=k)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mean training loss")
    ax2.set_yscale("log")
    ax2.grid(True, which="both", alpha=0.3)
    _legend(ax2, fontsize=8)
    cfg = metrics.get("config", {})
    if "negatives" in cfg:
        ax2.set_title("per-layer FF loss (positive + negative) and readout loss")
    else:
        ax2.set_title("training loss")
    fig.suptitle(config_title(cfg), fontsize=10)
    return _save(fig, path)


def config_title(cfg: dict) -> str:
    """The settings that tell one run's figure from another's, in one line.

    Jitter appears only when the run used it; the number of training images whenever
    the run recorded it (60,000 means the validation images were trained on too).
    """
    shown = ("hidden", "negatives", "objective", "optimizer", "lr", "epochs", "train_size")
    parts = [cfg.get("experiment", "")] + [f"{k}={cfg[k]}" for k in shown if k in cfg]
    if cfg.get("jitter"):
        parts.append(f"jitter={cfg['jitter']}")
    return "  ".join(p for p in parts if p)


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


def plot_hybrid_gallery(x, hybrids, masks, partner, path, n: int = 6, image_shape=(28, 28)):
    """Hybrid negatives as in the paper's Fig. 1: the two parents, the mask, the hybrid.

    Parameters
    ----------
    x : ndarray, shape (B, H * W)
        The real images.
    hybrids, masks, partner
        From :func:`ff_numpy.negatives.hybrid_images`.
    path : str or Path
    n : int
        How many hybrids (rows).
    """
    n = min(n, len(x))
    fig = Figure(figsize=(4 * 1.3, n * 1.3))
    axes = fig.subplots(n, 4, squeeze=False)
    titles = ("image a", "image b", "mask (white: a)", "hybrid")
    for i in range(n):
        panels = (x[i], x[partner[i]], masks[i].astype(float), hybrids[i])
        for j, (ax, img) in enumerate(zip(axes[i], panels)):
            ax.imshow(np.reshape(img, image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
    fig.suptitle("hybrid negative images (Sec. 3.2, Fig. 1)", fontsize=10)
    return _save(fig, path)


def plot_goodness_by_iteration(metrics, path) -> Path:
    """Goodness per iteration of the recurrent net, for the correct label and for the
    wrong ones: left, the mean and one standard deviation over test images (cut at 0, below
    which no goodness lies); right, how far apart the two means are, as a share of the
    correct label's mean (the separation that classification by goodness reads).

    Parameters
    ----------
    metrics : dict or path
        A recurrent run's ``metrics.json`` (with ``goodness_by_iteration``).
    path : str or Path
    """
    metrics = load_metrics(metrics)
    stats = metrics["goodness_by_iteration"]
    cfg = metrics.get("config", {})
    t = np.arange(1, len(stats["correct_mean"]) + 1)
    fig = Figure(figsize=(11, 4))
    ax, ax_gap = fig.subplots(1, 2)
    lo, hi = cfg.get("average_iterations", (3, 5))
    for key, label, color in (("correct", "correct label", "C0"), ("wrong", "wrong labels", "C3")):
        mean, std = np.array(stats[f"{key}_mean"]), np.array(stats[f"{key}_std"])
        ax.plot(t, mean, "o-", color=color, label=label)
        ax.fill_between(t, np.maximum(mean - std, 0.0), mean + std, color=color, alpha=0.2)
    correct, wrong = np.array(stats["correct_mean"]), np.array(stats["wrong_mean"])
    gap = 100 * (wrong - correct) / np.where(correct > 0, correct, np.nan)
    ax_gap.plot(t, gap, "o-", color="C2")
    ax_gap.axhline(0, color="k", lw=0.8)
    objective = cfg.get("objective", "max")
    wanted = "below 0: wrong labels lower" if objective == "max" else "above 0: wrong labels higher"
    ax_gap.set_ylabel("wrong minus correct, % of correct")
    ax_gap.set_title(f"separation of the means (objective {objective} wants {wanted})", fontsize=9)
    for a in (ax, ax_gap):
        a.axvspan(lo - 0.5, hi + 0.5, color="gray", alpha=0.12, label=f"averaged ({lo}-{hi})")
        a.set_xlabel("iteration")
        a.set_xticks(t)
        a.grid(True, alpha=0.3)
    ax.set_ylabel("goodness (sum over scored layers)")
    _legend(ax)
    ax.set_title(f"recurrent net, objective {objective}: test images")
    return _save(fig, path)


def plot_error_by_window(metrics, path) -> Path:
    """Test error of the recurrent net against the iterations whose goodness is
    averaged: each single iteration, and the windows 1-2, 3-5 and 6-8.

    Parameters
    ----------
    metrics : dict or path
        A recurrent run's ``metrics.json`` (with ``error_by_window``).
    path : str or Path
    """
    metrics = load_metrics(metrics)
    errors = metrics["error_by_window"]
    single = sorted(
        (int(k.split("-")[0]), v) for k, v in errors.items() if k.split("-")[0] == k.split("-")[1]
    )
    windows = [(k, v) for k, v in errors.items() if k.split("-")[0] != k.split("-")[1]]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot([t for t, _ in single], [100 * v for _, v in single], "o-", label="one iteration")
    for k, v in windows:
        lo, hi = (int(i) for i in k.split("-"))
        ax.hlines(100 * v, lo - 0.3, hi + 0.3, colors="C1", lw=3)
        ax.annotate(f"{k}: {100 * v:.2f}%", ((lo + hi) / 2, 100 * v), ha="center", va="bottom")
    ax.plot([], [], color="C1", lw=3, label="averaged window")
    ax.set_xlabel("iteration")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title("classification by goodness: which iterations to average")
    return _save(fig, path)
