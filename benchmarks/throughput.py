"""Training throughput of the 4x2000 supervised FF net, and its efficiency.

Prints, for each batch size, training examples per second and the efficiency: the
matmul FLOPs of a training step (forward and weight-gradient products for the positive
and negative rows, ``8 * B * sum(n_in * n_out)``) per second, as a fraction of this
machine's float32 matmul rate on the same shapes, measured in the same run with the same
BLAS and thread count. The two are timed in ``--rounds`` alternating rounds (default 5),
each round's steps against the better of the bare-GEMM windows just before and after
them, and the median round is reported: a machine whose speed drifts by 10% within a
minute then moves both sides of the ratio alike (``--rounds 1``: one window of steps
between two of GEMMs). The readout's neutral-label pass (a forward pass of the B
positive images, 25% more matmul work) is part of every real training step but is not
counted as useful FLOPs; ``--no-readout`` times the FF part alone.

Run with nothing else on the machine::

    python benchmarks/throughput.py                 # batch 100 and 1000, both cores
    python benchmarks/throughput.py --threads 1     # one core
    python benchmarks/throughput.py --model recurrent --batch-sizes 100

``--model recurrent`` times the training step of the recurrent net of Fig. 3
(784-2000-2000-10, 8 iterations) the same way, counting every matrix product the
implementation performs (:func:`recurrent_products`) and comparing with bare GEMMs on
exactly those shapes.

``--model cifar10`` times the CIFAR-10 nets of Table 1 (paper Sec. 4; 32 x 32 x 3 maps,
11 x 11 fields, ``--hidden-layers`` of them): in the same run, the bare GEMM rate on the
dense shape of one connection, ``(2B, 3072) @ (3072, 3072)`` (the best BLAS does on these
sizes), the ``Local`` layer's forward product and weight gradient on ``2B`` rows, and the
training steps of FF (10 iterations) and BP. Rates count *useful* FLOPs (2 per existing
weight and row, :func:`ff_numpy.experiments.cifar10.flops_per_image`), so the ratio to
the bare GEMM rate is the price of computing only the 933,156 existing weights of a
connection instead of its 9,437,184 dense ones, in small blocks.

``--step-ms`` prints the step's own milliseconds instead, to time two checkouts of the
library against each other in alternating processes (``PYTHONPATH=<checkout>``).

Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ff_numpy import blas
from ff_numpy.model import FFNet
from ff_numpy.optim import SGD, make_optimizer

HIDDEN = [2000, 2000, 2000, 2000]
N_IN = 784


def step_flops(batch: int, sizes) -> float:
    """Matmul FLOPs of one FF step: forward and weight gradient, 2B rows, every layer."""
    pairs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2 * 2 * (2 * batch) * pairs  # 2 products x 2 FLOPs per multiply-add x 2B rows


def bare_gemms(batch: int, sizes, dtype=np.float32):
    """A function doing the bare GEMMs of one FF step: every layer's forward product and
    weight gradient on ``2 * batch`` rows (:func:`step_flops` FLOPs a call)."""
    rng = np.random.default_rng(0)
    mats = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        X = rng.standard_normal((2 * batch, a)).astype(dtype)
        W = rng.standard_normal((a, b)).astype(dtype)
        Y = np.empty((2 * batch, b), dtype)
        G = np.empty((a, b), dtype)
        mats.append((X, W, Y, G))

    def one():
        for X, W, Y, G in mats:
            blas.matmul(X, W, out=Y)  # forward: (2B, a) @ (a, b)
            blas.matmul_tn(X, Y, G)  # weight gradient: (a, 2B) @ (2B, b)

    return one


def _repeat(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n / dt


def train_step(batch: int, readout: bool, negatives: str, fuse: bool = True):
    """A function doing one training step of the 4x2000 net at ``batch`` (the net built
    once: each call trains it further)."""
    rng = np.random.default_rng(0)
    net = FFNet(N_IN, HIDDEN, rng, peer_strength=0.03)
    net.fuse_momentum = fuse
    opt = make_optimizer("sgd", 0.01, 0.001)
    ro_opt = make_optimizer("sgd", 0.1, 0.003)
    x = rng.random((batch, N_IN), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if not readout:  # time the FF part alone: skip the neutral pass and readout update
        net.features = lambda x: np.zeros((len(x), net.readout.V.shape[0]), net.dtype)
    return lambda: net.train_step(x, y, rng, opt, ro_opt, 1.0, negatives)


def interleaved_efficiencies(step, gemms, flops: float, seconds: float, rounds: int):
    """Each of ``rounds`` rounds' efficiency: the step's FLOP rate over the bare GEMMs'.

    The GEMMs and the step are timed alternately, ``G S G S ... S G`` (GEMM windows of
    ``seconds / (2 rounds)``, step windows of ``seconds / rounds``), and round ``r``
    compares its step with the better of the two GEMM windows around it: both see the
    machine in the same state. With ``rounds=1`` this is one step window between two
    GEMM windows.

    Returns
    -------
    list of dict
        Per round: ``"steps_per_s"``, ``"gemm_flops"`` (the better neighbour),
        ``"efficiency"``.
    """
    g_seconds, s_seconds = seconds / (2 * rounds), seconds / rounds
    before = flops * _repeat(gemms, g_seconds)
    out = []
    for _ in range(rounds):
        steps = _repeat(step, s_seconds)
        after = flops * _repeat(gemms, g_seconds)
        peak = max(before, after)
        out.append({"steps_per_s": steps, "gemm_flops": peak, "efficiency": steps * flops / peak})
        before = after
    return out


def step_milliseconds(step, windows: int = 5, steps: int = 10, warmup: int = 5) -> list[float]:
    """Milliseconds a call of ``step``, in each of ``windows`` windows of ``steps`` calls
    (after ``warmup`` calls): the step's own time, with no GEMMs to compare against, for
    timing two checkouts of the library against each other (``--step-ms``)."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out.append((time.perf_counter() - t0) / steps * 1e3)
    return out


# ----------------------------------------------------------------------------- recurrent
REC_HIDDEN = [2000, 2000]
REC_ITERATIONS = 8


def recurrent_products(batch: int, sizes, n_classes: int, iterations: int) -> list[tuple]:
    """Every matrix product of one recurrent training step, as ``(kind, m, k, n)``:
    ``"nn"`` is (m, k) @ (k, n), ``"tn"`` is (k, m)^T @ (k, n) (a weight gradient).

    ``sizes`` is ``[n_in, n_1, ..., n_L]``. Counted as the implementation performs them
    (:meth:`ff_numpy.recurrent.RecurrentFFNet.train_step`): the label-free initial pass
    on the B images (which also gives the image term ``X W_up_1``, computed once), the
    readout's forward and gradient, at every iteration the top-down product of every
    layer and the bottom-up product of every layer above the first on the 2B rows, and
    one weight-gradient product per connection over the stacked iterations.
    """
    B, T, L = batch, iterations, len(sizes) - 1
    hidden = sizes[1:]
    above = hidden[1:] + [n_classes]
    n_feat = sum(hidden)
    prods = [("nn", B, a, b) for a, b in zip(sizes[:-1], sizes[1:])]  # initial pass
    prods += [("nn", B, n_feat, n_classes), ("tn", n_feat, B, n_classes)]  # readout
    for _ in range(T):
        for l in range(L):
            prods.append(("nn", 2 * B, above[l], hidden[l]))  # top-down
            if l > 0:
                prods.append(("nn", 2 * B, sizes[l], hidden[l]))  # bottom-up
    prods.append(("tn", sizes[0], B, hidden[0]))  # image weights: X^T sum_t dL/da
    for l in range(1, L):
        prods.append(("tn", sizes[l], T * 2 * B, hidden[l]))  # W_up over stacked rows
    for l in range(L - 1):
        prods.append(("tn", above[l], T * 2 * B, hidden[l]))  # W_down over stacked rows
    prods.append(("tn", n_classes, 2 * B, hidden[-1]))  # label weights
    return prods


def products_flops(prods) -> float:
    """FLOPs of ``prods`` (2 per multiply-add)."""
    return float(sum(2 * m * k * n for _, m, k, n in prods))


def products_rate(prods, seconds: float, dtype=np.float32) -> float:
    """FLOP/s of bare GEMMs on exactly ``prods`` (same BLAS as training)."""
    rng = np.random.default_rng(0)
    mats = []
    for kind, m, k, n in prods:
        if kind == "nn":
            mats.append(
                (
                    kind,
                    rng.random((m, k), dtype),
                    rng.random((k, n), dtype),
                    np.empty((m, n), dtype),
                )
            )
        else:
            mats.append(
                (
                    kind,
                    rng.random((k, m), dtype),
                    rng.random((k, n), dtype),
                    np.empty((m, n), dtype),
                )
            )

    def one():
        for kind, a, b, c in mats:
            if kind == "nn":
                blas.matmul(a, b, out=c)
            else:
                blas.matmul_tn(a, b, c)

    return products_flops(prods) * _repeat(one, seconds)


def recurrent_rate(batch: int, seconds: float) -> float:
    """Training steps per second of the 784-2000-2000 recurrent net (8 iterations)."""
    from ff_numpy.recurrent import RecurrentFFNet

    rng = np.random.default_rng(0)
    net = RecurrentFFNet(N_IN, REC_HIDDEN, 10, rng, iterations=REC_ITERATIONS,
                         loss_iterations=(1, REC_ITERATIONS))  # fmt: skip
    opt = make_optimizer("sgd", 0.001, 0.001)
    ro_opt = make_optimizer("sgd", 0.1, 0.003)
    x = rng.random((batch, N_IN), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return _repeat(lambda: net.train_step(x, y, rng, opt, ro_opt, 1.0, "hard"), seconds)


def main_recurrent(args) -> dict:
    """The recurrent training step's throughput and efficiency (``--model recurrent``)."""
    sizes = [N_IN] + REC_HIDDEN
    results = []
    with threadpool_limits(limits=args.threads):
        for B in args.batch_sizes:
            prods = recurrent_products(B, sizes, 10, REC_ITERATIONS)
            before = products_rate(prods, args.seconds / 2)
            steps = recurrent_rate(B, args.seconds)
            peak = max(before, products_rate(prods, args.seconds / 2))
            achieved = steps * products_flops(prods)
            row = {
                "batch": B,
                "images_per_s": steps * B,
                "epoch_seconds_50k": 50_000 / (steps * B),
                "step_gflop": products_flops(prods) / 1e9,
                "step_gflops": achieved / 1e9,
                "bare_gemm_gflops": peak / 1e9,
                "efficiency": achieved / peak,
            }
            results.append(row)
            print(
                f"recurrent batch {B:5d}: {row['images_per_s']:7.1f} images/s "
                f"({row['epoch_seconds_50k']:.0f} s per 50k epoch), "
                f"{row['step_gflops']:.1f} GFLOP/s of {row['bare_gemm_gflops']:.1f} bare GEMM "
                f"-> efficiency {100 * row['efficiency']:.1f}%",
                flush=True,
            )
    return {
        "net": f"{N_IN}-" + "-".join(map(str, REC_HIDDEN)) + "-10 recurrent",
        "iterations": REC_ITERATIONS,
        "results": results,
    }


# ----------------------------------------------------------------------------- cifar10
def cifar10_rates(batch: int, n_layers: int, seconds: float) -> dict:
    """Achieved GFLOP/s on the CIFAR-10 shapes at ``batch``: bare GEMM, the local layer's
    two products, and the FF and BP training steps (useful FLOPs)."""
    from ff_numpy import experiments
    from ff_numpy.experiments import cifar10

    rng = np.random.default_rng(0)
    rows = 2 * batch  # FF's products run on the positive and negative rows together
    n = cifar10.N_UNITS
    w = cifar10.weights_per_connection()
    x = rng.standard_normal((rows, n)).astype(np.float32)
    W = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((rows, n), np.float32)

    def bare():
        return blas.matmul(x, W, out=out)  # (2B, 3072) @ (3072, 3072)

    layer = cifar10.make_layer("local", rng)
    dL_da = rng.standard_normal((rows, n)).astype(np.float32)
    args = experiments.default_args("cifar10", hidden_layers=n_layers)
    ff = cifar10.make_ff_net(args)
    bp_args = experiments.default_args("cifar10", procedure="bp", hidden_layers=n_layers)
    bp = cifar10.make_bp_net(bp_args)
    r = cifar10.resolved_options(args)
    opt = make_optimizer("sgd", r["lr"], r["weight_decay"])
    ro_opt = make_optimizer("sgd", r["readout_lr"], r["readout_weight_decay"])
    bp_opt = SGD(0.01, momentum=0.9, weight_decay=5e-4)
    xb = cifar10.prepare(rng.random((batch, n), dtype=np.float32), "ff")
    y = rng.integers(0, 10, batch)
    before = 2.0 * n * n * rows * _repeat(bare, seconds / 4)
    pass_flops = 2.0 * w * rows
    forward = pass_flops * _repeat(lambda: layer.linear(x), seconds / 4)
    grad = pass_flops * _repeat(lambda: layer.weight_grad(x, dL_da), seconds / 4)
    ff_steps = _repeat(lambda: ff.train_step(xb, y, rng, opt, ro_opt, 1.0, "hard"), seconds)
    bp_steps = _repeat(lambda: bp.train_step(xb, y, bp_opt), seconds / 2)
    peak = max(before, 2.0 * n * n * rows * _repeat(bare, seconds / 4))
    f_ff = cifar10.flops_per_image("ff", n_layers)["train"]
    f_bp = cifar10.flops_per_image("bp", n_layers)["train"]
    return {
        "batch": batch,
        "bare_gemm_gflops": peak / 1e9,
        "local_forward_gflops": forward / 1e9,
        "local_weight_grad_gflops": grad / 1e9,
        "ff_images_per_s": ff_steps * batch,
        "ff_epoch_seconds_50k": 50_000 / (ff_steps * batch),
        "ff_step_gflops": f_ff * ff_steps * batch / 1e9,
        "bp_images_per_s": bp_steps * batch,
        "bp_epoch_seconds_50k": 50_000 / (bp_steps * batch),
        "bp_step_gflops": f_bp * bp_steps * batch / 1e9,
    }


def main_cifar10(args) -> dict:
    """The CIFAR-10 nets' throughput (``--model cifar10``)."""
    results = []
    with threadpool_limits(limits=args.threads):
        for B in args.batch_sizes:
            row = cifar10_rates(B, args.hidden_layers, args.seconds)
            results.append(row)
            peak = row["bare_gemm_gflops"]
            print(
                f"cifar10 batch {B}: bare GEMM {peak:.1f} GFLOP/s; Local forward "
                f"{row['local_forward_gflops']:.1f}, weight gradient "
                f"{row['local_weight_grad_gflops']:.1f} (useful); FF step "
                f"{row['ff_step_gflops']:.1f} GFLOP/s = {row['ff_epoch_seconds_50k']:.0f} s per "
                f"50k epoch; BP step {row['bp_step_gflops']:.1f} GFLOP/s = "
                f"{row['bp_epoch_seconds_50k']:.0f} s per 50k epoch",
                flush=True,
            )
    net = f"cifar10, {args.hidden_layers} hidden 32x32x3 maps, 11x11 fields"
    return {"net": net, "results": results}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    p.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="supervised: alternate the bare GEMMs and the step this many times and give "
        "the median round's efficiency (1: one step window between two GEMM windows)",
    )
    p.add_argument("--negatives", choices=["random", "hard"], default="random")
    p.add_argument("--no-readout", action="store_true", help="time the FF layers alone")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument(
        "--no-fuse",
        action="store_true",
        help="form each weight gradient before the optimiser's update (the fused momentum "
        "GEMM off, to measure its gain)",
    )
    p.add_argument(
        "--model",
        choices=["supervised", "recurrent", "cifar10"],
        default="supervised",
        help="the 4x2000 supervised net, the 2x2000 recurrent net of Fig. 3, or the "
        "CIFAR-10 nets of Table 1",
    )
    p.add_argument("--hidden-layers", type=int, default=2, help="cifar10: hidden maps (default: 2)")
    p.add_argument(
        "--step-ms",
        action="store_true",
        help="supervised: print only the step's milliseconds (median of five windows of ten "
        "steps) at each batch size; run it alternately from two checkouts to compare them",
    )
    args = p.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        p.error(
            f"--rounds must be at least 1 and --seconds positive, got {args.rounds}, {args.seconds}"
        )
    if args.model in ("recurrent", "cifar10"):
        info = (main_recurrent if args.model == "recurrent" else main_cifar10)(args)
        info.update(threads=args.threads or "all", machine=platform.machine())
        info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(info, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(info, f, indent=2)
        return

    sizes = [N_IN] + HIDDEN
    if args.step_ms:
        with threadpool_limits(limits=args.threads):
            for B in args.batch_sizes:
                step = train_step(B, not args.no_readout, args.negatives, not args.no_fuse)
                ms = step_milliseconds(step)
                print(
                    f"batch {B:5d}: {sorted(ms)[len(ms) // 2]:.2f} ms a step (windows: "
                    + ", ".join(f"{m:.2f}" for m in ms)
                    + ")",
                    flush=True,
                )
        return
    results = []
    with threadpool_limits(limits=args.threads):
        for B in args.batch_sizes:
            # The machine's best on these shapes: bare GEMMs timed around every round.
            step = train_step(B, not args.no_readout, args.negatives, not args.no_fuse)
            flops = step_flops(B, sizes)
            runs = interleaved_efficiencies(
                step, bare_gemms(B, sizes), flops, args.seconds, args.rounds
            )
            mid = sorted(runs, key=lambda r: r["efficiency"])[(len(runs) - 1) // 2]
            steps, peak = mid["steps_per_s"], mid["gemm_flops"]
            row = {
                "batch": B,
                "examples_per_s": steps * B,
                "epoch_seconds_50k": 50_000 / (steps * B),
                "step_gflops": steps * flops / 1e9,
                "bare_gemm_gflops": peak / 1e9,
                "efficiency": mid["efficiency"],  # the median round (lower median)
                "round_efficiencies": [r["efficiency"] for r in runs],
            }
            results.append(row)
            rounds = ", ".join(f"{100 * e:.1f}%" for e in row["round_efficiencies"])
            print(
                f"batch {B:5d}: {row['examples_per_s']:8.0f} examples/s "
                f"({row['epoch_seconds_50k']:.1f} s per 50k epoch), "
                f"{row['step_gflops']:.1f} GFLOP/s of {row['bare_gemm_gflops']:.1f} bare GEMM "
                f"-> efficiency {100 * row['efficiency']:.1f}% (median of rounds {rounds})",
                flush=True,
            )
    info = {
        "net": f"{N_IN}-" + "-".join(map(str, HIDDEN)),
        "readout_included": not args.no_readout,
        "negatives": args.negatives,
        "fused_momentum": not args.no_fuse,
        "threads": args.threads or "all",
        "machine": platform.machine(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
    }
    print(json.dumps(info, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
