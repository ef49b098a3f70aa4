"""Where a trained CIFAR-10 FF net's goodness at iteration 1 comes from.

The recurrent net starts from a label-free bottom-up pass (iteration 0) and then runs
damped iterations, ``y_t = d y_{t-1} + (1 - d) relu(a_t)``. Wherever a unit's
pre-activation ``a_t`` is off, its state is the previous state scaled by ``d`` and its
local gradient is zero: the FF loss at iteration ``t`` cannot move that part of the
goodness. At iteration 1 that part is ``d y_0``, the label-free pass, which no loss
trains directly. For each run (the folder of a ``ff-numpy train cifar10 --procedure
ff`` run) and the first ``--images`` training images with their correct labels, this
prints, per hidden layer:

- the goodness after iteration 0 and after iteration 1 (percentiles 10, 50, 90, 99),
  against the layer's threshold theta;
- the share of iteration 1's goodness on units whose pre-activation is off (carried
  over from iteration 0, out of reach of the local gradient);
- the mean goodness with the correct and with the wrong labels at every iteration, and
  the FF loss of a pair (correct row plus a wrong row, averaged over the wrong labels).

With ``--test-images N``, also the error of the one-pass softmax and of the every-label
goodness on the first N test images, by decile of the first layer's goodness after the
initial pass (the softmax reads that pass).

::

    FF_NUMPY_DATA=../shared/data python benchmarks/cifar10_first_iteration.py \\
        runs/cifar10_ff_min_2 runs/cifar10_ff_max_2 --images 300

Forward passes only: about a minute a run on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ff_numpy.experiments.cifar10 import load_cifar10_run, load_prepared
from ff_numpy.goodness import sign
from ff_numpy.recurrent import RecurrentFFNet

PERCENTILES = (10, 50, 90, 99)


def first_iteration(net: RecurrentFFNet, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per hidden layer: goodness percentiles at iterations 0 and 1, the share of
    iteration 1's goodness on units whose pre-activation is off, and the layer's theta.

    Parameters
    ----------
    net : RecurrentFFNet
    x : ndarray, shape (N, n_in)
    y : ndarray of int, shape (N,)
        The labels the net runs with (the correct ones).
    """
    L = len(net.hidden)
    g0, g1, off = [None] * L, [None] * L, [None] * L

    def record(t, l, state, r, h_below, h_above):
        G = net.goodness_fn.G(state).astype(np.float64)  # (N,): sum of squares per row
        if t == 0:
            g0[l] = G
        elif t == 1:
            g1[l] = G
            sq = state.astype(np.float64) ** 2
            off[l] = float(sq[r <= 0].sum() / sq.sum()) if sq.sum() > 0 else 0.0

    net.run(x, y, 1, record)
    return [
        {
            "layer": l,
            "theta": float(np.ravel(net.layer_theta(l))[0]),
            "iteration_0": [float(v) for v in np.percentile(g0[l], PERCENTILES)],
            "iteration_1": [float(v) for v in np.percentile(g1[l], PERCENTILES)],
            "share_off_at_1": off[l],
        }
        for l in range(L)
    ]


def by_iteration(net: RecurrentFFNet, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per hidden layer and iteration: the mean goodness with the correct label and with
    the wrong labels (:meth:`RecurrentFFNet.goodness_trace`, per layer), and the FF loss
    of a pair, the correct row's loss plus a wrong row's averaged over the wrong labels
    (the training loss's expectation over random wrong labels)."""
    G = net.goodness_trace(x, per_layer=True)  # (N, C, T, L)
    N, C = G.shape[:2]
    correct = np.zeros((N, C), bool)
    correct[np.arange(N), y] = True
    s_pos, s_neg = (float(sign(np.array([p]), net.objective)[0]) for p in (True, False))
    out = []
    for l in range(G.shape[3]):
        theta = float(np.ravel(net.layer_theta(l))[0])
        pos, neg = G[..., l][correct], G[..., l][~correct]  # (N, T), (N (C - 1), T)
        pair = net.loss.L(pos, s_pos, theta).mean(axis=0) + net.loss.L(neg, s_neg, theta).mean(
            axis=0
        )
        out.append(
            {
                "layer": l,
                "correct": pos.mean(axis=0).tolist(),  # (T,)
                "wrong": neg.mean(axis=0).tolist(),
                "pair_loss": pair.tolist(),
            }
        )
    return out


def errors_by_initial_goodness(net: RecurrentFFNet, x: np.ndarray, y: np.ndarray, bins=10):
    """The one-pass softmax's and the every-label goodness's error on the images of each
    ``bins``-quantile of the first hidden layer's goodness after the initial pass.

    Returns
    -------
    dict
        ``"edges"``: the ``bins - 1`` inner quantiles; ``"count"``, ``"softmax"``,
        ``"goodness"``: per bin, the images and the two errors (lowest goodness first).
    """
    ys, _ = net.initial_pass(net.image_input(x))
    g0 = net.goodness_fn.G(ys[0]).astype(np.float64)
    edges = np.percentile(g0, np.linspace(0, 100, bins + 1)[1:-1])
    which = np.digitize(g0, edges)  # 0 .. bins - 1
    wrong_soft = net.predict_softmax(x) != y
    wrong_good = net.predict_goodness(x) != y
    return {
        "edges": edges.tolist(),
        "count": [int(np.sum(which == b)) for b in range(bins)],
        "softmax": [float(wrong_soft[which == b].mean()) for b in range(bins)],
        "goodness": [float(wrong_good[which == b].mean()) for b in range(bins)],
    }


def report(name: str, first: list[dict], means: list[dict]) -> str:
    """The printed table of one run."""
    pcs = " / ".join(f"p{p}" for p in PERCENTILES)
    out = [f"{name}: goodness of each hidden layer ({pcs})"]
    for f, m in zip(first, means):
        fmt = " / ".join
        out += [
            f"  layer {f['layer']} (theta {f['theta']:.0f})",
            f"    iteration 0 (no label, no top-down): {fmt(f'{v:.0f}' for v in f['iteration_0'])}",
            f"    iteration 1: {fmt(f'{v:.0f}' for v in f['iteration_1'])}; "
            f"{100 * f['share_off_at_1']:.0f}% of it on units whose pre-activation is off",
            "    mean by iteration, correct / wrong label: "
            + ", ".join(f"{c:.0f}/{w:.0f}" for c, w in zip(m["correct"], m["wrong"])),
            "    FF loss of a pair by iteration: " + ", ".join(f"{v:.1f}" for v in m["pair_loss"]),
        ]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="folders of cifar10 FF runs")
    p.add_argument("--images", type=int, default=300, help="first N training images")
    p.add_argument("--data-dir", default=None, help="default: FF_NUMPY_DATA, then data/")
    p.add_argument(
        "--test-images",
        type=int,
        default=0,
        help="also: both classifiers' error on the first N test images, by decile of the "
        "first layer's goodness after the initial pass (default: 0, not measured)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.images < 1:
        p.error(f"--images must be at least 1, got {args.images}")
    if args.test_images < 0 or 0 < args.test_images < 10:
        p.error(f"--test-images must be 0 or at least 10 (one a decile), got {args.test_images}")
    nets = []
    for run in args.runs:
        path = run / "model.npz"
        if not path.is_file():
            p.error(f"{run}: no model.npz (not a finished or stopped cifar10 run)")
        net, config = load_cifar10_run(path)
        if not isinstance(net, RecurrentFFNet):
            p.error(f"{run}: a {config['procedure']} run; this reads FF runs only")
        nets.append((run, net))
    data = load_prepared(args.data_dir, "ff", args.images, max(args.test_images, 1), progress=False)
    x, y = data.train.x[: args.images], data.train.y[: args.images]
    results = {}
    for run, net in nets:
        first, means = first_iteration(net, x, y), by_iteration(net, x, y)
        results[str(run)] = {"first_iteration": first, "by_iteration": means}
        print(report(run.name, first, means), flush=True)
        if args.test_images:
            n = args.test_images
            by = errors_by_initial_goodness(net, data.test.x[:n], data.test.y[:n])
            results[str(run)]["errors_by_initial_goodness"] = by
            print(
                f"  first {n} test images by decile of the first layer's initial-pass goodness "
                "(lowest first), error of the softmax / of goodness:\n    "
                + ", ".join(
                    f"{100 * s:.0f}/{100 * g:.0f}%" for s, g in zip(by["softmax"], by["goodness"])
                ),
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"images": args.images, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
