"""Speed of the locally connected layer on the paper's CIFAR-10 shapes (Sec. 4).

One connection between two 32 x 32 x 3 maps with 11 x 11 fields truncated at the edge
(933,156 existing weights of 9,437,184 dense ones), a batch of 100 rows, float32, with
the BLAS threads fixed. Times the forward pass (``forward``) and the weight gradient
(``weight_grad``) of

* ``Local``: :class:`ff_numpy.locally_connected.Local`, storing only the existing
  weights, computed by blocks of grid locations (first, the block shapes it can use);
* ``Masked, dense``: the masked-dense reference, ``relu(x @ W + b)`` and
  ``(x^T dL_da) * mask`` (:class:`ff_numpy.layers.Masked` with ``fast=False``);
* ``Masked, per location``: ``Masked``'s own local path (gather each location's field,
  one product per location, gradient scattered into the dense matrix);
* ``bare GEMM``: ``(B, 3072) @ (3072, 3072)`` and ``(3072, B) @ (B, 3072)`` alone
  (:mod:`ff_numpy.blas`, the BLAS every version here uses), the rate BLAS reaches on the
  dense shape.

Prints milliseconds, the *useful* rate (``2 * 933,156 * B`` FLOPs per pass, the products
over existing weights, for every row) and the *computed* rate (the FLOPs each version
actually multiplies: the dense shape for the dense rows, the padded blocks for
``Local``). Times are the minimum over ``--repeats`` calls (the median is printed too);
the load average is printed before and after, since other work on the machine slows
every row. Run with nothing else on the machine, e.g.::

    python benchmarks/local_speed.py --threads 1

Takes about 15 seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ff_numpy import blas, masks
from ff_numpy.layers import Masked
from ff_numpy.locally_connected import Local

BLOCKS = [(1, 1), (1, 2), (1, 3), (1, 4), (1, 8), (2, 2), (2, 3), (3, 2), (2, 4), (3, 3), (4, 4)]


def timings(fn, repeats: int) -> tuple[float, float]:
    """(minimum, median) seconds of ``repeats`` calls of ``fn()`` after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), float(np.median(times))


def row(name: str, t: tuple[float, float], useful: float, computed: float) -> str:
    best, median = t
    return (
        f"{name:<44}{1e3 * best:8.2f}{1e3 * median:8.2f}"
        f"{useful / best / 1e9:9.1f}{computed / best / 1e9:10.1f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args(argv)
    threadpool_limits(args.threads)  # after the imports: every BLAS is loaded
    rng = np.random.default_rng(0)
    B = args.batch
    fields = masks.paper_cifar_fields()
    n_in, n_out, n_w = fields.n_in, fields.n_out, fields.n_weights
    useful = 2.0 * n_w * B  # FLOPs of one pass over the existing weights
    dense = 2.0 * n_in * n_out * B
    x = rng.standard_normal((B, n_in)).astype(np.float32)
    dL_da = rng.standard_normal((B, n_out)).astype(np.float32)
    print(
        f"32x32x3 -> 32x32x3, k = 11: {n_w:,} weights of {n_in * n_out:,}; batch {B}, "
        f"float32, {args.threads} BLAS thread(s), min / median of {args.repeats}"
    )
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    header = f"{'':<44}{'min ms':>8}{'med ms':>8}{'useful':>9}{'computed':>10}  GFLOP/s"

    # ---- Local's block shape
    layer = Local(fields, rng)
    print(f"\nLocal, block shapes (padded FLOPs / existing; forward + weight_grad)\n{header}")
    tried = []
    for block in BLOCKS:
        layer.set_block(block)
        padded = 2.0 * layer.padded_size() * B
        tf = timings(lambda: layer.forward(x), args.repeats)
        tg = timings(lambda: layer.weight_grad(x, dL_da), args.repeats)
        tried.append((tf[0] + tg[0], block))
        ratio = layer.padded_size() / n_w
        print(row(f"{block} x{ratio:.2f}  forward", tf, useful, padded))
        print(row(f"{block} x{ratio:.2f}  weight_grad", tg, useful, padded))
    best = min(tried)[1]
    print(f"fastest block: {best} (default Local.BLOCK = {Local.BLOCK})")

    # ---- Local vs the references
    layer.set_block(best)
    padded = 2.0 * layer.padded_size() * B
    ref = Masked(n_in, n_out, fields.mask(np.float32), rng, fast=False)
    ref.W[...] = layer.to_dense()
    per_loc = Masked(n_in, n_out, ref.mask, rng, fast=True)
    per_loc.W[...] = ref.W
    W_dense = np.ascontiguousarray(ref.W)
    G = np.empty_like(W_dense)
    out = np.empty((B, n_out), np.float32)
    rows = [
        ("forward", f"Local {best}", lambda: layer.forward(x), padded),
        ("forward", "Masked, dense", lambda: ref.forward(x), dense),
        ("forward", "Masked, per location", lambda: per_loc.forward(x), useful),
        (
            "forward",
            "bare GEMM (B, 3072) @ (3072, 3072)",
            lambda: blas.matmul(x, W_dense, out=out),
            dense,
        ),
        ("weight_grad", f"Local {best}", lambda: layer.weight_grad(x, dL_da), padded),
        ("weight_grad", "Masked, dense", lambda: ref.weight_grad(x, dL_da), dense),
        ("weight_grad", "Masked, per location", lambda: per_loc.weight_grad(x, dL_da), useful),
        (
            "weight_grad",
            "bare GEMM (3072, B) @ (B, 3072)",
            lambda: blas.matmul_tn(x, dL_da, G),
            dense,
        ),
    ]
    print(f"\nLocal against the references\n{header}")
    results = {}
    for what, name, fn, computed in rows:
        t = timings(fn, args.repeats)
        results[(what, name)] = t[0]
        print(row(f"{what:<12}{name}", t, useful, computed))
    for what in ("forward", "weight_grad"):
        local = results[(what, f"Local {best}")]
        print(
            f"{what}: Local is {results[(what, 'Masked, dense')] / local:.1f}x faster than "
            f"Masked, dense, {results[(what, 'Masked, per location')] / local:.1f}x faster "
            f"than Masked, per location"
        )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
