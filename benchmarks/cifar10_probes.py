"""The validation probes that chose the FF recipe of Table 1, and their figure.

CIFAR-10's 50,000 training images split 45,000 / 5,000; each probe trains the 2-layer
FF net (objective ``min``, ``--lr 0.003``) on all 45,000 for 3 epochs and records its
errors on 2,000 validation images after every epoch, changing the negatives and the
iterations that carry the loss (docs/RESULTS.md, "Why the goodness error trailed the
softmax")::

    python benchmarks/cifar10_probes.py --list                      # the four commands
    python benchmarks/cifar10_probes.py random_loss1_6              # run one (resumes)
    python benchmarks/cifar10_probes.py --figure probes.png         # from runs/cifar10_probe45k_*

Each takes 6-10 minutes of one core (one BLAS thread).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BASE = (
    "--procedure", "ff", "--hidden-layers", "2", "--objective", "min", "--lr", "0.003",
    "--train-size", "45000", "--epochs", "3", "--eval-every", "1", "--eval-size", "2000",
    "--train-eval-size", "1000", "--test-size", "1000",
)  # fmt: skip


def _opts(negatives: str, last: int) -> tuple:
    return ("--negatives", negatives, "--loss-iterations", "1", str(last))


PROBES = {  # name: (legend, options beside BASE)
    "hard": ("hard negatives, loss on 1-10", _opts("hard", 10)),
    "hard_loss1_6": ("hard negatives, loss on 1-6", _opts("hard", 6)),
    "random": ("random negatives, loss on 1-10", _opts("random", 10)),
    "random_loss1_6": ("random negatives, loss on 1-6 (chosen)", _opts("random", 6)),
}


def out_dir(name: str, runs: Path) -> Path:
    return Path(runs) / f"cifar10_probe45k_{name}"


def command(name: str, runs: Path) -> list[str]:
    """The ``ff-numpy train cifar10`` arguments of probe ``name`` (``--resume`` once it
    has a checkpoint)."""
    out = out_dir(name, runs)
    args = ["train", "cifar10", *BASE, *PROBES[name][1], "--out", str(out)]
    return args + (["--resume"] if (out / "model.npz").is_file() else [])


def plot(metrics: dict[str, dict], path) -> Path:
    """Two panels: validation error by epoch (goodness solid, softmax dashed), and the
    goodness error of every single iteration after the last epoch (on the run's test
    images: a diagnostic, chosen by nothing), the classification window shaded.

    Parameters
    ----------
    metrics : dict
        ``metrics.json`` contents by probe name (any subset of :data:`PROBES`).
    path : str or Path
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax_epoch, ax_iter = fig.subplots(1, 2)
    window = (4, 6)
    for i, (name, m) in enumerate(metrics.items()):
        legend, colour = PROBES[name][0], f"C{i}"
        hist = m["history"]
        for key, ls in (("val_error_goodness", "-"), ("val_error_softmax", "--")):
            pts = [(r["epoch"], 100 * r[key]) for r in hist if r.get(key) is not None]
            if pts:
                label = legend if key.endswith("goodness") else None
                ax_epoch.plot(*zip(*pts), ls=ls, color=colour, marker="o", label=label)
        by_iter = m.get("error_by_iteration")
        if by_iter:
            ax_iter.plot(
                np.arange(1, len(by_iter) + 1),
                100 * np.asarray(by_iter),
                color=colour,
                marker="o",
                label=legend,
            )
        window = m.get("config", {}).get("average_iterations") or window
    lo, hi = window
    ax_iter.axvspan(lo - 0.5, hi + 0.5, color="0.9", zorder=0, label=f"window {lo}-{hi}")
    ax_epoch.plot([], [], "k-", label="by goodness, every label")
    ax_epoch.plot([], [], "k--", label="one-pass softmax")
    ax_epoch.set(xlabel="epoch", ylabel="validation error (%)", title="2,000 validation images")
    ax_epoch.xaxis.get_major_locator().set_params(integer=True)
    ax_iter.set(
        xlabel="iteration",
        ylabel="goodness error (%)",
        title="one iteration's goodness, last epoch (test images)",
    )
    for ax in (ax_epoch, ax_iter):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        "CIFAR-10 FF, 2 layers, min ssq: negatives and loss iterations (3 epochs on 45,000 images)",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", choices=sorted(PROBES), help="run this probe")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the runs")
    p.add_argument("--list", action="store_true", help="print the commands")
    p.add_argument("--figure", type=Path, help="draw the figure from the finished probes")
    opts = p.parse_args(argv)
    if opts.list:
        for name in PROBES:
            print("ff-numpy " + " ".join(command(name, opts.runs)))
    if opts.figure:
        found = {
            n: json.loads((out_dir(n, opts.runs) / "metrics.json").read_text())
            for n in PROBES
            if (out_dir(n, opts.runs) / "metrics.json").is_file()
        }
        if not found:
            sys.exit(f"cifar10_probes: error: no probe has metrics.json under {opts.runs}")
        print(plot(found, opts.figure))
    if opts.name:
        sys.exit(
            subprocess.call([sys.executable, "-m", "ff_numpy", *command(opts.name, opts.runs)])
        )
    if not (opts.list or opts.figure or opts.name):
        p.print_help()


if __name__ == "__main__":
    main()
