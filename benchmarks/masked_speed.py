"""Speed of the locally connected layers (footnote 8): masked-dense vs local path.

Times one forward pass plus the weight gradient of the paper's layer 1 (784 -> 2048,
4 x 4 grid of 10 x 10 fields, 128 channels) and layer 2 (2048 -> 1980, 3 x 3 grid over
2 x 2 squares, 220 channels) at a batch of 200 rows (100 positive + 100 negative), float32:

* ``masked-dense``: ``relu(x @ W + b)`` and ``(x^T dL_da) * mask``
  (:meth:`ff_numpy.layers.Masked.forward_reference`, ``weight_grad_reference``);
* ``local``: per location, gather the field and multiply (:meth:`Masked.forward`,
  :meth:`Masked.weight_grad`, which scatters the blocks into the full ``(n_in, n_out)``
  gradient the optimiser updates);
* ``local, blocks``: the same without the scatter (:meth:`Masked.weight_grad_blocks`),
  what a layer storing its weights as per-location blocks would pay.

Prints rows per second (examples per second is half that: one example is a positive
and a negative row) and the matmul FLOPs each version computes,
``2 * 2 * rows * (field size) * n_out`` against ``2 * 2 * rows * n_in * n_out``.
Run with nothing else on the machine, e.g.::

    python benchmarks/masked_speed.py --threads 1

Takes about 15 seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ff_numpy import masks
from ff_numpy.layers import Masked


def best_seconds(fn, repeats: int) -> float:
    """The median of ``repeats`` timings of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_layer(fields: masks.LocalFields, rows: int, repeats: int, rng) -> list[tuple]:
    """``(name, seconds, FLOPs)`` of the three versions on one layer."""
    layer = Masked.from_fields(fields, rng)
    x = rng.standard_normal((rows, fields.n_in)).astype(np.float32)
    dL_da = rng.standard_normal((rows, fields.n_out)).astype(np.float32)
    needed, dense = fields.flops(rows)

    def masked_dense():
        layer.forward_reference(x)  # (rows, n_in) @ (n_in, n_out)
        layer.weight_grad_reference(x, dL_da)  # (n_in, rows) @ (rows, n_out), * mask

    def local():
        layer.forward(x)  # per location: (rows, f) @ (f, c)
        layer.weight_grad(x, dL_da)  # per location: (f, rows) @ (rows, c), scattered

    def local_blocks():
        layer.forward(x)
        layer.weight_grad_blocks(x, dL_da)

    return [
        ("masked-dense", best_seconds(masked_dense, repeats), dense),
        ("local", best_seconds(local, repeats), needed),
        ("local, blocks", best_seconds(local_blocks, repeats), needed),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="rows per batch (pos + neg)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    rng = np.random.default_rng(0)
    arch = masks.paper_local_architecture()
    print(f"batch of {args.rows} rows, float32, median of {args.repeats}")
    print(f"{'layer':<18}{'version':<15}{'ms':>8}{'rows/s':>10}{'GFLOP':>8}{'GFLOP/s':>9}")
    for name, fields in (("1: 784 -> 2048", arch[0]), ("2: 2048 -> 1980", arch[1])):
        results = bench_layer(fields, args.rows, args.repeats, rng)
        for version, sec, flops in results:
            print(
                f"{name:<18}{version:<15}{1e3 * sec:8.2f}{args.rows / sec:10.0f}"
                f"{flops / 1e9:8.3f}{flops / sec / 1e9:9.1f}"
            )
        needed, dense = fields.flops(args.rows)
        print(
            f"{'':<18}FLOPs needed / dense = {needed / dense:.3f}; "
            f"speed-up of local over masked-dense = {results[0][1] / results[1][1]:.2f}x"
        )


if __name__ == "__main__":
    main()
