"""Which iterations and which hidden layers should the recurrent net's goodness score?

Loads a trained ``ff-numpy train recurrent`` run's ``model.npz``, runs the net once per
label on the validation and the test images, keeping every hidden layer's goodness at
every iteration apart (:meth:`~ff_numpy.recurrent.RecurrentFFNet.goodness_trace` with
``per_layer=True``), and then scores every window of iterations ``lo..hi`` with every
non-empty set of hidden layers, without rerunning the net. The choice is made on the
*validation* error, on the validation images the run did not train on: the split of
:func:`~ff_numpy.experiments.building.splits` with the run's own ``train_size`` (read from
its ``metrics.json``, which must exist; 50,000 leaves all 10,000 held-out images). A
run trained on all 60,000 images has no validation images left, and the benchmark
refuses it. The test error is only reported.

The paper averages iterations 3 to 5 over every hidden layer (Sec. 3.4) and says no more;
the issue asks to report what other windows do and offers to leave out the first layer
(``--skip-first`` of ``train recurrent``). This is where both are measured.

    python benchmarks/recurrent_windows.py runs/rec_2x2000_e60

Writes ``recurrent_windows.json`` and ``recurrent_windows.png`` (validation error of
every window, one panel per layer set) in the run folder (or ``--out``). About 4 minutes
for 784-2000-2000-10 on 20,000 images on 2 cores.
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
from ff_numpy.experiments.saved import load_recurrent_net
from ff_numpy.recurrent import RecurrentFFNet


def layer_sets(n_layers: int) -> list[tuple[int, ...]]:
    """Every non-empty set of hidden layers, smallest first."""
    return [s for k in range(1, n_layers + 1) for s in itertools.combinations(range(n_layers), k)]


def window_errors(P: np.ndarray, y: np.ndarray, objective: str, layers) -> np.ndarray:
    """Error of every window for one set of layers.

    Parameters
    ----------
    P : ndarray, shape (N, n_classes, T, L)
        Per-layer goodness trace.
    y : ndarray of int, shape (N,)
    objective : {"max", "min"}
        ``"max"``: the label with the highest mean goodness wins; ``"min"``: the lowest.
    layers : sequence of int

    Returns
    -------
    E : ndarray, shape (T, T)
        ``E[lo - 1, hi - 1]``: error when the goodness summed over ``layers`` is averaged
        over iterations ``lo..hi``; NaN below the diagonal (``hi < lo``).
    """
    G = P[..., list(layers)].sum(axis=3)  # (N, C, T)
    T = G.shape[2]
    pick = np.argmax if objective == "max" else np.argmin
    cums = np.concatenate([np.zeros_like(G[:, :, :1]), np.cumsum(G, axis=2)], axis=2)
    E = np.full((T, T), np.nan)
    for lo in range(1, T + 1):
        for hi in range(lo, T + 1):
            mean = (cums[:, :, hi] - cums[:, :, lo - 1]) / (hi - lo + 1)  # (N, C)
            E[lo - 1, hi - 1] = error_rate(pick(mean, axis=1), y)
    return E


def compare(model: RecurrentFFNet, x_val, y_val, x_test, y_test, log=print) -> dict:
    """Validation and test error of every (layer set, window); the best by validation."""
    traces = {}
    for name, x in (("val", x_val), ("test", x_test)):
        t0 = time.perf_counter()
        traces[name] = model.goodness_trace(x, per_layer=True)
        log(f"{name}: goodness trace of {len(x)} images in {time.perf_counter() - t0:.0f} s")
    rows = []
    for layers in layer_sets(len(model.hidden)):
        Ev = window_errors(traces["val"], y_val, model.objective, layers)
        Et = window_errors(traces["test"], y_test, model.objective, layers)
        for lo, hi in zip(*np.nonzero(~np.isnan(Ev)), strict=True):
            rows.append({
                "layers": list(layers), "window": [int(lo) + 1, int(hi) + 1],
                "val_error": float(Ev[lo, hi]), "test_error": float(Et[lo, hi]),
            })  # fmt: skip
    best = min(rows, key=lambda r: (r["val_error"], len(r["layers"]), r["window"]))
    lo, hi = model.average_iterations
    default = next(r for r in rows if r["layers"] == model.score_layers and r["window"] == [lo, hi])
    return {"rows": rows, "best_by_validation": best, "run_default": default}


def plot(result: dict, n_iter: int, path: Path) -> None:
    """Validation error of every window ``lo..hi``, one panel per layer set."""
    sets = sorted({tuple(r["layers"]) for r in result["rows"]}, key=lambda s: (len(s), s))
    fig = Figure(figsize=(3.4 * len(sets) + 1.2, 4.0), layout="constrained")
    axes = fig.subplots(1, len(sets), squeeze=False)[0]
    vals = [r["val_error"] for r in result["rows"]]
    vmin, vmax = 100 * min(vals), 100 * np.percentile(vals, 90)
    for ax, s in zip(axes, sets, strict=True):
        E = np.full((n_iter, n_iter), np.nan)
        for r in result["rows"]:
            if tuple(r["layers"]) == s:
                E[r["window"][0] - 1, r["window"][1] - 1] = 100 * r["val_error"]
        im = ax.imshow(E, cmap="viridis_r", vmin=vmin, vmax=vmax, origin="upper")
        for (i, j), v in np.ndenumerate(E):
            if not np.isnan(v):
                shade = "k" if v < (vmin + vmax) / 2 else "w"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=shade)
        ax.set_xticks(range(n_iter), range(1, n_iter + 1))
        ax.set_yticks(range(n_iter), range(1, n_iter + 1))
        ax.set_xlabel("last iteration averaged")
        if ax is axes[0]:
            ax.set_ylabel("first iteration averaged")
        ax.set_title(f"hidden layers {' + '.join(map(str, s))}", fontsize=9)
    fig.colorbar(im, ax=list(axes), label="validation error (%)", shrink=0.8)
    fig.suptitle(
        "validation error by the goodness window and the hidden layers scored "
        "(layer 0 is the first hidden layer)",
        fontsize=10,
    )
    fig.savefig(path, dpi=130)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="folder of a recurrent run (holds model.npz)")
    ap.add_argument("--out", type=Path, help="where to write (default: the run folder)")
    ap.add_argument("--data-dir", help="MNIST folder (default: FF_NUMPY_DATA or ./data)")
    ap.add_argument("--size", type=int, default=0, help="images of each split (0: all)")
    args = ap.parse_args(argv)
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    model = load_recurrent_net(args.run / "model.npz")
    metrics = args.run / "metrics.json"
    if not metrics.exists():
        raise SystemExit(
            f"{args.run} has no metrics.json: its train_size says which images are left "
            "for validation, so the window is never chosen on images the run trained on"
        )
    train_size = json.loads(metrics.read_text())["config"]["train_size"]
    _, _, x_val, y_val, x_te, y_te = splits(load_mnist(args.data_dir), train_size)
    if len(x_val) == 0:
        raise SystemExit(
            f"{args.run} was trained on {train_size} images, which leaves no validation "
            "images to choose a window on"
        )
    n = args.size or None
    x_val, y_val, x_te, y_te = x_val[:n], y_val[:n], x_te[:n], y_te[:n]
    result = compare(model, x_val, y_val, x_te, y_te)
    (out / "recurrent_windows.json").write_text(json.dumps(result, indent=1))
    plot(result, model.iterations, out / "recurrent_windows.png")
    for key in ("run_default", "best_by_validation"):
        r = result[key]
        print(
            f"{key:19s} layers {r['layers']} iterations {r['window'][0]}-{r['window'][1]}: "
            f"validation {100 * r['val_error']:.2f}%  test {100 * r['test_error']:.2f}%"
        )
    print(f"wrote {out / 'recurrent_windows.json'} and {out / 'recurrent_windows.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
