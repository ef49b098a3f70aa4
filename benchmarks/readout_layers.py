"""Which hidden layers should the linear softmax read? Readouts fitted on a frozen FF net.

Loads a trained run's ``model.npz``, computes the normalised activities of every hidden
layer once (neutral label for a supervised net, the plain image for an unsupervised one),
then fits one softmax readout (:func:`ff_numpy.readout.fit_readout`, the experiments'
readout recipe) per set of layers and reports its validation and test errors. The set
to use is the one with the lowest *validation* error; the test error is only reported.

Two questions of the paper it answers:

* Sec. 3.2: "Using the first hidden layer as well as the last three ... makes the test
  performance worse": compare ``1 2 3`` with ``0 1 2 3`` on the unsupervised 4 x 2000 net.
* Footnote 8 does not say which local layers feed the softmax: compare every non-empty
  subset on the locally connected net (the default for a net of three layers or fewer).

    python benchmarks/readout_layers.py runs/unsupervised_4x2000 --subsets "1 2 3" "0 1 2 3"
    python benchmarks/readout_layers.py runs/local                # every subset of 0 1 2

Writes ``readout_layers.json`` and ``readout_layers.png`` in the run folder (or ``--out``).
About 10-20 s per subset for 4 x 2000 on 50,000 images, 20 readout epochs, 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ff_numpy.data import load_mnist
from ff_numpy.experiments.building import splits
from ff_numpy.experiments.evaluation import error_rate
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.readout import fit_readout


def default_subsets(n_layers: int) -> list[tuple[int, ...]]:
    """Every non-empty subset for up to three layers; else the last 1..n layers."""
    if n_layers <= 3:
        return [
            s for k in range(1, n_layers + 1) for s in itertools.combinations(range(n_layers), k)
        ]
    return [tuple(range(n_layers - k, n_layers)) for k in range(1, n_layers + 1)]


def parse_subset(text: str, n_layers: int) -> tuple[int, ...]:
    """``"1 2 3"`` (or ``"1,2,3"``) -> ``(1, 2, 3)``, checked against the net's depth."""
    try:
        layers = tuple(sorted({int(t) for t in text.replace(",", " ").split()}))
    except ValueError:
        raise ValueError(f"a subset is a list of layer numbers, got {text!r}") from None
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ValueError(f"layers must lie in 0..{n_layers - 1}, got {text!r}")
    return layers


def compare(model, data, train_size, subsets, epochs, seed=0, log=print) -> list[dict]:
    """Fit one readout per subset; return ``[{layers, val_error, test_error, seconds}]``."""
    x_tr, y_tr, x_val, y_val, x_te, y_te = splits(data, train_size)
    t0 = time.perf_counter()
    acts = {
        name: model.normalized_activities(x)
        for name, x in (("train", x_tr), ("val", x_val), ("test", x_te))
    }
    log(f"activities of {len(model.layers)} layers: {time.perf_counter() - t0:.0f} s")
    rows = []
    for layers in subsets:
        t0 = time.perf_counter()
        feats = {k: np.concatenate([a[l] for l in layers], axis=1) for k, a in acts.items()}
        readout = fit_readout(
            feats["train"], y_tr, model.n_classes, epochs=epochs,
            rng=np.random.default_rng(seed),
        )  # fmt: skip
        row = {
            "layers": list(layers),
            "val_error": error_rate(readout.predict(feats["val"]), y_val),
            "test_error": error_rate(readout.predict(feats["test"]), y_te),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        log(
            f"layers {row['layers']}: val {100 * row['val_error']:.2f}%  "
            f"test {100 * row['test_error']:.2f}%  ({row['seconds']} s)"
        )
        rows.append(row)
    return rows


def plot(rows, path: Path, title: str) -> None:
    """Validation and test error of each subset, as grouped bars; the best by validation
    is marked."""
    fig = Figure(figsize=(max(5, 1.1 * len(rows) + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    val = [100 * r["val_error"] for r in rows]
    ax.bar(x - 0.2, val, 0.4, label="validation")
    ax.bar(x + 0.2, [100 * r["test_error"] for r in rows], 0.4, label="test")
    best = int(np.argmin(val))
    arrow = {"arrowstyle": "->"}
    ax.annotate("best by val.", (best - 0.2, val[best]), xytext=(0, 12),
                textcoords="offset points", ha="center", arrowprops=arrow)  # fmt: skip
    ax.set_xticks(x, [" ".join(map(str, r["layers"])) for r in rows])
    ax.set_xlabel("hidden layers read by the softmax (0 = first)")
    ax.set_ylabel("error (%)")
    lo = min(min(val), min(100 * r["test_error"] for r in rows))
    ax.set_ylim(0.8 * lo, None)
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder with model.npz and metrics.json")
    p.add_argument("--subsets", nargs="+", default=None, metavar="LAYERS",
                   help='layer sets, e.g. "1 2 3" "0 1 2 3" (default: see above)')  # fmt: skip
    p.add_argument("--epochs", type=int, default=20, help="readout epochs (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the run)")
    args = p.parse_args(argv)

    model = load_ffnet(args.run / "model.npz")
    config = json.loads((args.run / "metrics.json").read_text())["config"]
    n = len(model.layers)
    subsets = [parse_subset(s, n) for s in args.subsets] if args.subsets else default_subsets(n)
    data = load_mnist(args.data_dir)
    rows = compare(model, data, config["train_size"], subsets, args.epochs, args.seed)
    best = min(rows, key=lambda r: r["val_error"])
    print(
        f"best by validation: layers {best['layers']} "
        f"(val {100 * best['val_error']:.2f}%, test {100 * best['test_error']:.2f}%)"
    )
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    result = {"run": str(args.run), "readout_epochs": args.epochs, "rows": rows, "best": best}
    (out / "readout_layers.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, out / "readout_layers.png", f"{config['experiment']}: softmax on frozen layers")
    print(f"wrote {out / 'readout_layers.json'} and {out / 'readout_layers.png'}")


if __name__ == "__main__":
    main()
