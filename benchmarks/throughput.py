"""Training throughput of the 4x2000 supervised FF net, and its efficiency.

Prints, for each batch size, training examples per second and the efficiency: the
matmul FLOPs of a training step (forward and weight-gradient products for the positive
and negative rows, ``8 * B * sum(n_in * n_out)``) per second, as a fraction of this
machine's float32 matmul rate on the same shapes, measured in the same run with the same
BLAS and thread count (the better of two measurements, before and after the training
steps are timed). The readout's neutral-label pass (a forward pass of the B
positive images, 25% more matmul work) is part of every real training step but is not
counted as useful FLOPs; ``--no-readout`` times the FF part alone.

Run with nothing else on the machine::

    python benchmarks/throughput.py                 # batch 100 and 1000, both cores
    python benchmarks/throughput.py --threads 1     # one core

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
from ff_numpy.optim import make_optimizer

HIDDEN = [2000, 2000, 2000, 2000]
N_IN = 784


def step_flops(batch: int, sizes) -> float:
    """Matmul FLOPs of one FF step: forward and weight gradient, 2B rows, every layer."""
    pairs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2 * 2 * (2 * batch) * pairs  # 2 products x 2 FLOPs per multiply-add x 2B rows


def gemm_rate(batch: int, sizes, seconds: float, dtype=np.float32) -> float:
    """FLOP/s of bare GEMMs on the shapes of one FF step (same BLAS as training)."""
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

    return step_flops(batch, sizes) * _repeat(one, seconds)


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


def train_rate(batch: int, seconds: float, readout: bool, negatives: str) -> float:
    """Training steps per second of the 4x2000 net at ``batch``."""
    rng = np.random.default_rng(0)
    net = FFNet(N_IN, HIDDEN, rng, peer_strength=0.03)
    opt = make_optimizer("sgd", 0.01, 0.001)
    ro_opt = make_optimizer("sgd", 0.1, 0.003)
    x = rng.random((batch, N_IN), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if not readout:  # time the FF part alone: skip the neutral pass and readout update
        net.features = lambda x: np.zeros((len(x), net.readout.V.shape[0]), net.dtype)
    return _repeat(lambda: net.train_step(x, y, rng, opt, ro_opt, 1.0, negatives), seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    p.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    p.add_argument("--negatives", choices=["random", "hard"], default="random")
    p.add_argument("--no-readout", action="store_true", help="time the FF layers alone")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)

    sizes = [N_IN] + HIDDEN
    results = []
    with threadpool_limits(limits=args.threads):
        for B in args.batch_sizes:
            # The machine's best on these shapes: bare GEMMs timed before and after.
            before = gemm_rate(B, sizes, args.seconds / 2)
            steps = train_rate(B, args.seconds, not args.no_readout, args.negatives)
            peak = max(before, gemm_rate(B, sizes, args.seconds / 2))
            achieved = steps * step_flops(B, sizes)
            row = {
                "batch": B,
                "examples_per_s": steps * B,
                "epoch_seconds_50k": 50_000 / (steps * B),
                "step_gflops": achieved / 1e9,
                "bare_gemm_gflops": peak / 1e9,
                "efficiency": achieved / peak,
            }
            results.append(row)
            print(
                f"batch {B:5d}: {row['examples_per_s']:8.0f} examples/s "
                f"({row['epoch_seconds_50k']:.1f} s per 50k epoch), "
                f"{row['step_gflops']:.1f} GFLOP/s of {row['bare_gemm_gflops']:.1f} bare GEMM "
                f"-> efficiency {100 * row['efficiency']:.1f}%",
                flush=True,
            )
    info = {
        "net": f"{N_IN}-" + "-".join(map(str, HIDDEN)),
        "readout_included": not args.no_readout,
        "negatives": args.negatives,
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
