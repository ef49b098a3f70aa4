"""Speed of the locally connected layer on the paper's CIFAR-10 shapes (Sec. 4).

One connection between two 32 x 32 x 3 maps with 11 x 11 fields truncated at the edge
(933,156 existing weights of 9,437,184 dense ones), float32, one BLAS thread
(``threadpoolctl``), at the batch sizes the recurrent net of Table 1 uses: 100 (the image
term, the first layer's weight gradient), 200 (positive and negative rows of a batch of
100, every damped iteration), 1000 (evaluation: 100 images times 10 labels) and 2000 (the
weight gradient of a connection, its 10 loss iterations stacked). Four parts:

1. ``Local`` as it is (:class:`ff_numpy.locally_connected.Local`) against a bare GEMM on
   the dense shape, ``(B, 3072) @ (3072, 3072)`` and ``(3072, B) @ (B, 3072)``
   (:mod:`ff_numpy.blas`, the BLAS ``Local`` uses): milliseconds, the *useful* rate
   (``2 * 933,156 * B`` FLOPs per pass, the products over existing weights) and its
   share of the bare GEMM's rate.
2. Each speed trick of ``Local`` turned off alone (``Local.set_block``'s options and
   ``Local.keep_padded``), and all of them off (the plain way: one gather per block, the
   whole batch in one product per block, ``dL_da`` copied block by block, the padded
   weights rebuilt for every product): the time with the trick off over the time with
   all on.
3. Block shapes: the forward product and the weight gradient with every block shape of
   ``--blocks``.
4. The memory ``Local`` keeps besides ``W`` and ``b``.

Timing: in every round each variant runs ``max(1, 1000 // B)`` calls back to back and the
variants alternate (starting with a different one each round), so a change in load hits
them alike. Printed are the medians over ``--rounds`` rounds of the wall time per call and
of the thread's CPU time per call (less disturbed by other running processes), and the
medians of the ratios. The load average is printed before and after; run with nothing
else running if you can::

    python benchmarks/local_speed.py

Takes about 80 seconds (``--quick``: about 15 seconds).
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from ff_numpy import blas, masks
from ff_numpy.locally_connected import Local

BLOCKS = [(1, 1), (1, 2), (2, 1), (1, 3), (1, 4), (2, 2), (2, 3), (3, 2), (2, 4)]
TRICKS = {  # name: (set_block options, cache)
    "bands": ({"bands": False}, True),
    "small products": ({"max_mnk": None}, True),
    "strided dL_da copies": ({"strided": False}, True),
    "cached padded weights": ({}, False),
    "all tricks (plain way)": ({"bands": False, "max_mnk": None, "strided": False}, False),
}


def measure(variants: dict, rounds: int, repeats: int) -> dict:
    """``{name: (wall, cpu)}``: the medians over ``rounds`` of the seconds per call of
    each ``variants[name]()``, the variants alternating within every round (in an order
    that rotates from round to round); also the per-round times under ``"_rounds"``."""
    for fn in variants.values():  # warm-up
        fn()
    times = {name: ([], []) for name in variants}
    names = list(variants)
    for r in range(rounds):  # each round starts with the next variant: none always first
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = variants[name]
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(repeats):
                fn()
            times[name][0].append((time.perf_counter() - t0) / repeats)
            times[name][1].append((time.thread_time() - c0) / repeats)
    out = {name: (float(np.median(w)), float(np.median(c))) for name, (w, c) in times.items()}
    out["_rounds"] = times
    return out


def ratio(times: dict, name: str, base: str) -> tuple[float, float]:
    """Medians over rounds of ``time(name) / time(base)`` (wall, CPU)."""
    (w, c), (w0, c0) = times["_rounds"][name], times["_rounds"][base]
    return float(np.median(np.divide(w, w0))), float(np.median(np.divide(c, c0)))


def make_layer(fields, block=Local.BLOCK, cache=True, **opts):
    layer = Local(fields, np.random.default_rng(0))
    layer.set_block(block, **opts)
    layer.keep_padded = cache
    return layer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 200, 1000, 2000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--blocks", type=str, nargs="*", default=None, help="e.g. 2x2 2x3")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--quick", action="store_true", help="batches 100 200, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.rounds = [100, 200], 3
    blocks = BLOCKS if args.blocks is None else [tuple(map(int, b.split("x"))) for b in args.blocks]
    threadpool_limits(args.threads)  # after the imports: every BLAS is loaded
    rng = np.random.default_rng(0)
    fields = masks.paper_cifar_fields()
    n_in, n_out, n_w = fields.n_in, fields.n_out, fields.n_weights
    layer = make_layer(fields)
    print(
        f"32x32x3 -> 32x32x3, k = 11: {n_w:,} weights of {n_in * n_out:,}; float32, "
        f"{args.threads} BLAS thread(s); blocks {layer.block}; medians of {args.rounds} rounds"
    )
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    def reps(B):
        return max(1, 1000 // B)

    data = {}
    for B in args.batches:
        x = rng.standard_normal((B, n_in)).astype(np.float32)
        dL_da = rng.standard_normal((B, n_out)).astype(np.float32)
        data[B] = (x, dL_da)

    # ---- 1. Local against a bare GEMM
    print("\n1. Local against a bare GEMM on the dense shape (useful GFLOP/s: 2 * 933,156 * B)")
    print(
        f"{'B':>6} {'pass':<12}{'Local ms':>10}{'GEMM ms':>10}{'Local':>8}{'GEMM':>8}"
        f"{'share':>7}   (wall; CPU time in brackets)"
    )
    W_dense = np.asarray(layer.to_dense())
    G = np.empty_like(W_dense)
    out = None
    for B in args.batches:
        x, dL_da = data[B]
        out = np.empty((B, n_out), np.float32)
        t = measure(
            {
                "forward": partial(layer.linear, x, out=out),
                "forward GEMM": partial(blas.matmul, x, W_dense, out=out),
                "weight_grad": partial(layer.weight_grad, x, dL_da),
                "weight_grad GEMM": partial(blas.matmul_tn, x, dL_da, G),
            },
            args.rounds,
            reps(B),
        )
        useful, dense = 2e-9 * n_w * B, 2e-9 * n_in * n_out * B
        for what in ("forward", "weight_grad"):
            (lw, lc), (gw, gc) = t[what], t[what + " GEMM"]
            print(
                f"{B:>6} {what:<12}{1e3 * lw:10.2f}{1e3 * gw:10.2f}{useful / lw:8.1f}"
                f"{dense / gw:8.1f}{useful / lw / (dense / gw):7.0%}   "
                f"({1e3 * lc:.2f} / {1e3 * gc:.2f} ms, {useful / lc:.1f} / {dense / gc:.1f} "
                f"GFLOP/s, {useful / lc / (dense / gc):.0%})"
            )

    # ---- 2. each trick off
    print("\n2. Each trick off alone: time with it off / time with all on (wall, CPU)")
    variants = {"all on": make_layer(fields)}
    for name, (opts, cache) in TRICKS.items():
        variants[name] = make_layer(fields, cache=cache, **opts)
    for B in args.batches:
        x, dL_da = data[B]
        tf = measure({k: partial(v.linear, x) for k, v in variants.items()}, args.rounds, reps(B))
        tg = measure(
            {k: partial(v.weight_grad, x, dL_da) for k, v in variants.items()}, args.rounds, reps(B)
        )
        print(
            f"B = {B}: all on: forward {1e3 * tf['all on'][0]:.2f} ms "
            f"({1e3 * tf['all on'][1]:.2f} CPU), weight_grad {1e3 * tg['all on'][0]:.2f} ms "
            f"({1e3 * tg['all on'][1]:.2f} CPU)"
        )
        for name in variants:
            if name == "all on":
                continue
            rf, rg = ratio(tf, name, "all on"), ratio(tg, name, "all on")
            print(
                f"  {name:<28} forward x{rf[0]:.2f} (x{rf[1]:.2f})   "
                f"weight_grad x{rg[0]:.2f} (x{rg[1]:.2f})"
            )

    # ---- 3. block shapes
    print("\n3. Block shapes (padded FLOPs / existing): ms per call, wall (CPU)")
    shaped = {b: make_layer(fields, b) for b in blocks}
    for B in args.batches:
        x, dL_da = data[B]
        tf = measure({b: partial(v.linear, x) for b, v in shaped.items()}, args.rounds, 1)
        tg = measure(
            {b: partial(v.weight_grad, x, dL_da) for b, v in shaped.items()}, args.rounds, 1
        )
        for b, v in shaped.items():
            print(
                f"  B = {B:<5} {str(b):<7} x{v.padded_size() / n_w:.2f} rows {v._plan.rows:>4}:"
                f" forward {1e3 * tf[b][0]:7.2f} ({1e3 * tf[b][1]:6.2f})   weight_grad "
                f"{1e3 * tg[b][0]:7.2f} ({1e3 * tg[b][1]:6.2f})"
            )
        best_f = min(shaped, key=lambda b: tf[b][1])
        best_g = min(shaped, key=lambda b: tg[b][1])
        print(f"  B = {B}: fastest (CPU) forward {best_f}, weight_grad {best_g}")

    # ---- 4. memory
    mb = 1e-6
    pad = layer.padded_size()
    print(
        f"\n4. Memory besides W ({4 * n_w * mb:.1f} MB) and b: padded weights "
        f"{4 * pad * mb:.1f} MB (x{pad / n_w:.2f}), their snapshot {4 * n_w * mb:.1f} MB, "
        f"padded gradient {4 * pad * mb:.1f} MB, positions {layer._plan.pos.nbytes * mb:.1f} MB"
    )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
