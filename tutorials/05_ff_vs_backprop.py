r"""Tutorial 05: Forward-Forward against backprop, by epochs and by wall-clock seconds.

What it teaches
    * How to train both methods on the same architecture from Python and record the test
      error after every epoch: ``experiments.default_args(name, track_test=True, ...)``
      and ``experiments.get(name).run(args)`` for ``supervised`` (FF) and ``backprop``.
      With ``track_test`` the run's history (``metrics.json``) holds the test error
      after every epoch (``test_error_softmax`` every epoch and ``test_error_goodness``
      every ``eval_every`` epochs for FF, ``test_error`` for backprop) next to the epoch's
      ``train_seconds`` (training only, evaluation excluded). The test set is never used
      to choose anything here; the curves are only drawn.
    * How to read such a comparison: per epoch, and per second of training on the same
      machine. An FF epoch does no backward pass, but it runs positive and negative rows
      (twice the forward work) and a neutral-label pass for its softmax readout, so an FF
      epoch is not cheaper than a backprop epoch; the figure shows where each method
      stands after the same training time.
    * How to plot runs made elsewhere: ``--from-runs FF_DIR BP_DIR`` reads two run folders'
      ``metrics.json`` and only draws (computing is kept apart from plotting). Runs made
      without ``--track-test`` have no per-epoch test error; their validation error is
      drawn instead, and the axis says so.

How long it takes (2 cores)
    ``--quick``: about 10-20 s (3 hidden layers of 200, 10,000 images, 3 epochs each).
    Full: the experiments' defaults, which are the paper's comparison: 4 hidden layers
    of 2000 for both, FF for 60 epochs, backprop for 20, on 50,000 images. About 1-1.5
    hours on two free cores (FF about 45 s per epoch plus the per-epoch test and
    validation evaluations, about an hour; backprop 10-15 minutes), 2-3 hours on one
    BLAS thread or a shared machine. ``--resume`` continues an interrupted run.

What it should show
    * ``ff_vs_backprop.png``: test error (log scale) against epochs (left) and against
      cumulative training seconds (right), for FF (softmax readout every epoch, goodness
      every ``eval_every`` epochs) and backprop.
    * The final numbers, printed. The paper reports 1.36% for FF (60 epochs, by goodness)
      and about 1.4% for backprop (about 20 epochs); the full mode measures ours. Both
      curves go down with no backward pass in FF: every FF weight update is local. The
      quick run is tiny: it shows that everything runs, and its numbers say nothing
      about how the two methods compare at full size (FF needs many more epochs).
    * Wall-clock comparisons only mean something for runs made on the same machine with
      the same BLAS threads and load (``OPENBLAS_NUM_THREADS``); with ``--from-runs``
      that is the user's to check.

Run it::

    python tutorials/05_ff_vs_backprop.py --quick
    python tutorials/05_ff_vs_backprop.py --out runs/tutorial05 --data-dir ~/mnist
    python tutorials/05_ff_vs_backprop.py --from-runs runs/ff_4x2000 runs/bp_4x2000

It opens as a notebook (jupytext percent format: VS Code, or ``jupytext --to ipynb``).
"""

# %%
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # draws to a file, never to a window
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from ff_numpy import experiments, tutorial

SEED = 0
FF, BP = "supervised", "backprop"  # the two experiments
# Options shared by both runs, and each run's epochs. Full: the experiments' defaults,
# spelled out (the paper's comparison); everything else is each experiment's default.
FULL = {"hidden": [2000, 2000, 2000, 2000], "train_size": 50_000}
FULL_EPOCHS = {FF: 60, BP: 20}
QUICK = {"hidden": [200, 200, 200], "train_size": 10_000}
QUICK_EPOCHS = {FF: 3, BP: 3}
QUICK_FF_EVAL_EVERY = 1  # goodness test error after every epoch (cheap for a small net)
# The paper's test errors (Hinton, 2022, Sec. 3.3 and 3.1), drawn as dotted lines.
PAPER = {"FF 4x2000, 60 epochs, goodness: 1.36%": 0.0136, "backprop, ~20 epochs: 1.4%": 0.014}
FIGURE = "ff_vs_backprop.png"

try:
    _SCRIPT = Path(__file__).resolve()
except NameError:  # run as a notebook: Jupyter starts in the notebook's folder
    _SCRIPT = Path.cwd() / "05_ff_vs_backprop.py"
DEFAULT_OUT = _SCRIPT.parent / "out" / _SCRIPT.stem


# %% [markdown]
# ## 1. Two runs, same architecture and data
#
# `track_test=True` makes each run evaluate the test set after every epoch, for the
# curves. The training loop (`ff_numpy.train.fit`) records each epoch's `train_seconds`
# (the batches only) and `seconds` (with the evaluations); the time axis uses
# `train_seconds`, so evaluating more often does not make a method look slower. It also
# records `train_cpu_seconds`, the process's CPU time over the same batches: with one
# BLAS thread (`OPENBLAS_NUM_THREADS=1`) that is the wall time the epoch would take on a
# core of its own, which stays fair when something else shares the machine. When both
# runs have it, the figure has a third panel against it.


# %%
def train_both(shared: dict, epochs: dict, out: Path, ff_extra: dict) -> tuple[Path, Path]:
    """Train FF and backprop into ``out/ff`` and ``out/bp``; return the two folders."""
    folders = {FF: out / "ff", BP: out / "bp"}
    for name, extra in ((FF, ff_extra), (BP, {})):
        args = experiments.default_args(
            name, **shared, **extra, epochs=epochs[name], track_test=True, out=str(folders[name])
        )
        print(f"\n--- {name}: hidden {args.hidden}, {args.epochs} epochs -> {args.out}")
        experiments.get(name).run(args)
    return folders[FF], folders[BP]


# %% [markdown]
# ## 2. The curves, from the files the runs wrote
#
# Everything below reads only `metrics.json`, so it works as well on two runs made
# elsewhere (`--from-runs`). For each curve: the epochs at which it was recorded, the
# cumulative training seconds at the end of those epochs, and the error.


# %%
def load_metrics(run_dir, expected: str) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{path} not found: expected the folder of a run made by ff-numpy")
    metrics = json.loads(path.read_text())
    found = metrics.get("config", {}).get("experiment")
    if found is not None and found != expected:
        raise ValueError(f"{path} is a {found!r} run, expected a {expected!r} run")
    return metrics


def curves(metrics: dict, kinds: dict) -> tuple[str, dict, dict]:
    """The per-epoch error curves of one run.

    Parameters
    ----------
    metrics : dict
        A run's ``metrics.json``.
    kinds : dict
        ``{label: key suffix}``, e.g. ``{"FF, softmax": "_softmax"}``.

    Returns
    -------
    split : {"test", "validation"}
        Test errors if the run tracked them, else validation errors.
    clocks : dict
        ``{"wall": key, "cpu": key}`` of the per-epoch times used: ``"train_seconds"``
        (or ``"seconds"`` for old runs) and ``"train_cpu_seconds"`` (absent if the run
        did not record it).
    curves : dict
        ``{label: (epochs, {clock: cumulative seconds}, errors)}``, arrays.
    """
    hist = metrics["history"]
    has_test = any(k.startswith("test_error") for r in hist for k in r)
    prefix, split = ("test_error", "test") if has_test else ("val_error", "validation")
    clocks = {"wall": "train_seconds" if all("train_seconds" in r for r in hist) else "seconds"}
    if all("train_cpu_seconds" in r for r in hist):
        clocks["cpu"] = "train_cpu_seconds"
    epochs = np.array([r["epoch"] for r in hist])
    seconds = {c: np.cumsum([r[key] for r in hist]) for c, key in clocks.items()}
    out = {}
    for label, suffix in kinds.items():
        rows = [i for i, r in enumerate(hist) if prefix + suffix in r]
        if rows:
            err = np.array([hist[i][prefix + suffix] for i in rows])
            out[label] = (epochs[rows], {c: t[rows] for c, t in seconds.items()}, err)
    return split, clocks, out


FF_KINDS = {"FF, softmax readout": "_softmax", "FF, goodness": "_goodness"}
BP_KINDS = {"backprop": ""}
STYLES = {
    "FF, softmax readout": dict(color="C0", marker="o", ls="-"),
    "FF, goodness": dict(color="C0", marker="s", ls="--", mfc="none"),
    "backprop": dict(color="C1", marker="^", ls="-"),
}


# %%
def draw(ff: dict, bp: dict, path: Path, title: str, paper_lines: bool) -> Path:
    ff_split, ff_clocks, ff_curves = curves(ff, FF_KINDS)
    bp_split, bp_clocks, bp_curves = curves(bp, BP_KINDS)
    clocks = [c for c in ("wall", "cpu") if c in ff_clocks and c in bp_clocks]
    fig = Figure(figsize=(6 + 5 * len(clocks), 4.5))
    ax_e, *ax_ts = fig.subplots(1, 1 + len(clocks), sharey=True)
    for label, (e, secs, err) in {**ff_curves, **bp_curves}.items():
        split = ff_split if label.startswith("FF") else bp_split
        name = label if split == "test" else f"{label} ({split})"
        ms = 4 if len(e) <= 30 else 2
        ax_e.plot(e, 100 * err, ms=ms, label=name, **STYLES[label])
        for ax, c in zip(ax_ts, clocks):
            ax.plot(secs[c], 100 * err, ms=ms, label=name, **STYLES[label])
    if paper_lines:  # the paper's final test errors, for reference
        for (label, e), colour in zip(PAPER.items(), ("C0", "C1")):
            ax_e.axhline(100 * e, color=colour, lw=0.8, ls=":", label=f"paper, {label}")
            for ax in ax_ts:
                ax.axhline(100 * e, color=colour, lw=0.8, ls=":")
    splits = {ff_split, bp_split}
    ylabel = "test error (%)" if splits == {"test"} else "error (%), test or validation"
    ax_e.set_ylabel(ylabel)
    ax_e.set_xlabel("epoch")
    ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))
    walls = {ff_clocks["wall"], bp_clocks["wall"]}
    what = "training only" if walls == {"train_seconds"} else "with evaluations"
    labels = {
        "wall": f"cumulative wall-clock seconds ({what})",
        "cpu": "cumulative CPU seconds of training (process time)",
    }
    titles = {"wall": "against training time", "cpu": "against CPU time"}
    for ax, c in zip(ax_ts, clocks):
        ax.set_xlabel(labels[c])
        ax.set_title(titles[c])
        ax.set_xlim(left=0)
    ax_e.set_yscale("log")
    for ax in (ax_e, *ax_ts):
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="both", labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    ax_e.legend(fontsize=8)
    ax_e.set_title("against epochs")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# %% [markdown]
# ## 3. The numbers
#
# The final test errors (on the full test set, at the end of each run), the training
# time per epoch, and their ratio: what one FF epoch costs against one backprop epoch on
# this machine.


# %%
def summary(ff: dict, bp: dict) -> dict:
    out = {}
    for tag, metrics, keys in (
        ("ff", ff, ("test_error_goodness", "test_error_softmax")),
        ("bp", bp, ("test_error",)),
    ):
        hist = metrics["history"]
        secs = [r.get("train_seconds", r["seconds"]) for r in hist]
        row = {
            "epochs": len(hist),
            "train_seconds": float(np.sum(secs)),
            "seconds_per_epoch": float(np.mean(secs)) if secs else float("nan"),
        }
        if hist and all("train_cpu_seconds" in r for r in hist):
            row["train_cpu_seconds"] = float(sum(r["train_cpu_seconds"] for r in hist))
        row.update({k: metrics[k] for k in keys if k in metrics})
        out[tag] = row
    cfg = ff.get("config", {})
    print(f"\nhidden {cfg.get('hidden')}, {cfg.get('train_size')} training images")
    print("method    epochs  training s  s/epoch  final test error")
    for tag, name in (("ff", "FF"), ("bp", "backprop")):
        r = out[tag]
        names = {"test_error_goodness": "goodness", "test_error_softmax": "softmax"}
        errs = [f"{names.get(k, 'output')} {100 * r[k]:.2f}%" for k in r if k.startswith("test_")]
        errs = "  ".join(errs) or "(run not finished: no final test error)"
        print(
            f"{name:9s} {r['epochs']:6d}  {r['train_seconds']:10.1f}  "
            f"{r['seconds_per_epoch']:7.2f}  {errs}"
        )
    ratio = out["ff"]["seconds_per_epoch"] / out["bp"]["seconds_per_epoch"]
    out["epoch_cost_ratio"] = ratio
    print(f"one FF epoch took {ratio:.2f}x the time of one backprop epoch")
    return out


# %%
def runs_title(ff: dict, bp: dict) -> str:
    """A title from two runs' configurations: the nets, epochs and training images."""

    def net(cfg):
        h = cfg.get("hidden") or []
        return f"{len(h)} x {h[0]}" if h and len(set(h)) == 1 else str(h)

    f, b = ff.get("config", {}), bp.get("config", {})
    same = net(f) == net(b) and f.get("train_size") == b.get("train_size")
    where = f"same net ({net(f)} hidden), " if same else f"FF {net(f)}, backprop {net(b)}, "
    return (
        f"{where}{f.get('train_size')} training images: FF {f.get('epochs')} epochs, "
        f"backprop {b.get('epochs')} epochs"
    )


# %%
def build_parser() -> argparse.ArgumentParser:
    p = tutorial.parser(
        __doc__,
        f"small runs: {QUICK}, {QUICK_EPOCHS}",
        DEFAULT_OUT,
        "folder for the figure and the two runs (ff/, bp/)",
        several_runs=True,
    )
    p.add_argument(
        "--from-runs",
        nargs=2,
        type=Path,
        metavar=("FF_DIR", "BP_DIR"),
        default=None,
        help="train nothing: draw the figure from these two run folders' metrics.json",
    )
    return p


def main(argv=None) -> dict:
    opts = build_parser().parse_args(argv)
    out = Path(opts.out)
    if opts.from_runs:
        ff_dir, bp_dir = opts.from_runs
        title = None  # from the runs' configurations, below
    else:
        shared = dict(QUICK if opts.quick else FULL)
        shared.update(
            seed=SEED, data_dir=opts.data_dir, resume=opts.resume, progress=not opts.no_progress
        )
        ff_extra = {"eval_every": QUICK_FF_EVAL_EVERY} if opts.quick else {}
        epochs = QUICK_EPOCHS if opts.quick else FULL_EPOCHS
        ff_dir, bp_dir = train_both(shared, epochs, out, ff_extra)
        h = shared["hidden"]
        title = (
            f"same net ({len(h)} x {h[0]} hidden, {shared['train_size']} training images): "
            f"FF {epochs[FF]} epochs, backprop {epochs[BP]} epochs"
        )
        if opts.quick:
            title += "  (quick run: too small for conclusions)"
    ff, bp = load_metrics(ff_dir, FF), load_metrics(bp_dir, BP)
    if title is None:
        title = runs_title(ff, bp)
    figure = draw(ff, bp, out / FIGURE, title, paper_lines=not opts.quick)
    numbers = summary(ff, bp)
    if opts.quick:
        print(
            f"\nThese numbers come from a tiny run ({QUICK['train_size']} images, layers of "
            f"{QUICK['hidden'][0]}, {QUICK_EPOCHS[FF]} epochs): they show that everything "
            "runs,\nnot how FF and backprop compare. Run without --quick for real "
            "conclusions."
        )
    print(f"figure: {figure}")
    return {**numbers, "figures": [figure]}


# %%
if __name__ == "__main__":
    # In a notebook there is no command line: run the quick version.
    main(["--quick"] if "ipykernel" in sys.modules else None)
