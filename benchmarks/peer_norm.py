"""Peer normalisation (footnote 9): per-unit mean activity with and without it.

Trains the same supervised FF net twice, with peer normalisation strength 0 and 0.03
(Hinton's released code), and draws every hidden unit's mean activity on positive
(real, correctly labelled) validation data, sorted, for both runs, with the number of
dead units (never active) printed for each layer.

    python benchmarks/peer_norm.py                      # 3 x 1000, 10 epochs: ~5 min
    python benchmarks/peer_norm.py --hidden 500 500 --epochs 3 --train-size 10000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy import experiments
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_ffnet


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[1000, 1000, 1000])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, default=50_000)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--out", type=Path, default=Path("runs/peer_norm"))
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    data = load_mnist(args.data_dir, progress=False)
    xv, yv = data.validation.x[:5000], data.validation.y[:5000]
    results = {}
    for strength in (0.0, 0.03):
        run = experiments.default_args(
            "supervised", hidden=args.hidden, epochs=args.epochs, train_size=args.train_size,
            lr=args.lr, negatives="hard", peer_strength=strength, eval_every=args.epochs,
            out=str(args.out / f"peer_{strength}"), data_dir=args.data_dir, progress=False,
        )  # fmt: skip
        metrics = experiments.get("supervised").run(run)
        model = load_ffnet(args.out / f"peer_{strength}" / "model.npz")
        means = model.unit_means(xv, yv)
        results[strength] = {
            "test_error_goodness": metrics["test_error_goodness"],
            "test_error_softmax": metrics["test_error_softmax"],
            "dead_units": [int((m == 0).sum()) for m in means],
            "mean_activity_cv": [float(m.std() / m.mean()) for m in means],
            "means": [m.tolist() for m in means],
        }
        r = results[strength]
        cv = [round(c, 2) for c in r["mean_activity_cv"]]
        print(
            f"peer strength {strength}: dead units per layer {r['dead_units']}, coefficient "
            f"of variation of unit means {cv}, test error "
            f"{100 * r['test_error_goodness']:.2f}% / {100 * r['test_error_softmax']:.2f}%"
        )
    fig = Figure(figsize=(4 * len(args.hidden), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(args.hidden)))
    for l, ax in enumerate(axes):
        for strength, style in ((0.0, "-"), (0.03, "-")):
            m = np.sort(results[strength]["means"][l])[::-1]
            dead = results[strength]["dead_units"][l]
            ax.plot(m, style, label=f"peer {strength} ({dead} dead)")
        ax.set_title(f"layer {l}", fontsize=10)
        ax.set_xlabel("unit (sorted)")
        ax.set_ylabel("mean activity on positive data")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.legend(fontsize=8)
    fig.suptitle(f"peer normalisation (footnote 9): {args.hidden}, {args.epochs} epochs")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "peer_norm.png", dpi=110)
    summary = {
        str(k): {kk: vv for kk, vv in v.items() if kk != "means"} for k, v in results.items()
    }
    (args.out / "peer_norm.json").write_text(json.dumps(summary, indent=2))
    print(args.out / "peer_norm.png")


if __name__ == "__main__":
    main()
