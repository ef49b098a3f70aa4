"""How much subnormal floats slow the training step, and what ``blas.row_factor`` saves.

The goodness factor ``dL/dG = -s sigmoid(-s (G - theta))`` of a row far on the right side
of the threshold underflows to a subnormal float32, and so does the ``dL/da`` row it
scales. Intel cores handle subnormal operands in microcode, so one weight-gradient GEMM
with a few such rows runs many times slower. The library sets those factors to zero
(:func:`ff_numpy.blas.row_factor`), which changes no weight. This script measures both
sides of that:

    python benchmarks/subnormals.py                      # GEMMs with subnormal rows
    python benchmarks/subnormals.py RUN --batches 5      # and on a trained recurrent net
    python benchmarks/subnormals.py --supervised --hidden 1000 1000 1000 --epochs 4 \\
        --train-size 10000 --negatives hard              # and on supervised FF, trained

1. One weight-gradient GEMM of the recurrent net's shape, ``(K, m)^T @ (K, n)`` with
   ``K = 1600`` (8 iterations x 2 x 100 rows) and ``m = n = 2000``, float32, with 0%, 1%,
   5% and 25% of the rows of its second operand subnormal: GFLOP/s of each.
2. With ``RUN`` (a ``train recurrent`` folder): on ``RUN/model.npz`` and the first
   ``--batches`` mini-batches of the training images, the share of the nonzero ``dL/da``
   entries that are subnormal with a plain cast (what the library did before
   ``row_factor``), the seconds of :meth:`RecurrentFFNet.unroll_grads` with and without
   the flush, and whether the two give the same gradients bit for bit.
3. With ``--supervised OPTIONS`` (last on the line): ``ff-numpy train supervised OPTIONS``
   trained twice, without and with the flush: the seconds of every epoch, and whether
   the two final models agree bit for bit.

Run it with nothing else on the machine; ``--threads`` sets the BLAS threads (default 1).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ff_numpy import blas
from ff_numpy import recurrent as rec
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_recurrent_net


def _subnormal_share(a: np.ndarray) -> float:
    nz = a[a != 0]
    return float(np.mean(np.abs(nz) < np.finfo(a.dtype).tiny)) if nz.size else 0.0


def gemm_rates(fractions=(0.0, 0.01, 0.05, 0.25), K=1600, m=2000, n=2000, repeats=5, seed=0):
    """GFLOP/s of ``c <- a^T b`` (``blas.matmul_tn``) with a share of ``b``'s rows
    subnormal, one entry per share."""
    rng = np.random.default_rng(seed)
    a = rng.random((K, m), dtype=np.float32)
    b0 = rng.random((K, n), dtype=np.float32) + np.float32(0.5)  # in [0.5, 1.5)
    c = np.zeros((m, n), np.float32)
    rows = []
    for frac in fractions:
        b = b0.copy()
        sub = rng.random(K) < frac
        b[sub] *= np.float32(2.0**-130)  # every entry of these rows is subnormal
        blas.matmul_tn(a, b, c)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            blas.matmul_tn(a, b, c)  # (m, K) @ (K, n) -> (m, n)
        dt = (time.perf_counter() - t0) / repeats
        rows.append(
            {
                "subnormal_rows": float(sub.mean()),
                "seconds": dt,
                "gflops": 2 * K * m * n / dt / 1e9,
            }
        )
    return rows


def _plain_cast(f, dtype):
    """The factor as it was before ``row_factor``: a plain cast, subnormals kept."""
    return np.asarray(f).astype(dtype, copy=False)


def on_checkpoint(run: Path, n_batches: int, data_dir=None, batch_size=100, seed=0) -> dict:
    """Subnormal share and ``unroll_grads`` seconds on a trained recurrent net, with and
    without the flush; ``same_gradients`` is True if the two agree bit for bit."""
    model = run / "model.npz"
    net = load_recurrent_net(model)
    train = load_mnist(data_dir, progress=False).train
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n_batches):
        x = train.x[i * batch_size : (i + 1) * batch_size]
        y = train.y[i * batch_size : (i + 1) * batch_size]
        wrong = (y + rng.integers(1, net.n_classes, size=y.size)) % net.n_classes
        batches.append((x, y, wrong))

    shares = []
    dL_da_damped = rec.dL_da_damped

    def spy(*args, **kwargs):  # records the share of subnormal entries of every dL/da
        out = dL_da_damped(*args, **kwargs)
        shares.append(_subnormal_share(out))
        return out

    row_factor = blas.row_factor
    results, grads = {}, {}
    for name, factor in (("plain cast", _plain_cast), ("row_factor", row_factor)):
        blas.row_factor = factor
        try:
            load_recurrent_net(model).unroll_grads(*batches[0])  # warm-up
            # a fresh copy: unroll_grads updates the running means of peer normalisation
            net = load_recurrent_net(model)
            seconds, grads[name], shares[:] = [], [], []
            for x, y, wrong in batches:
                t0 = time.perf_counter()
                g, _ = net.unroll_grads(x, y, wrong)
                seconds.append(time.perf_counter() - t0)
                grads[name].append({k: v.copy() for k, v in g.items()})  # buffers are reused
            rec.dL_da_damped = spy  # the shares, on a pass of its own (the spy is slow)
            net = load_recurrent_net(model)
            for x, y, wrong in batches:
                net.unroll_grads(x, y, wrong)
        finally:
            blas.row_factor, rec.dL_da_damped = row_factor, dL_da_damped
        results[name] = {
            "seconds_per_batch": float(np.median(seconds)),
            "subnormal_share_max": max(shares),
            "subnormal_share_mean": float(np.mean(shares)),
        }
    same = all(
        np.array_equal(a[k], b[k])
        for a, b in zip(grads["plain cast"], grads["row_factor"], strict=True)
        for k in a
    )
    return {"run": str(run), "batches": n_batches, **results, "same_gradients": same}


def supervised_comparison(train_args: list[str], out_dir: Path) -> dict:
    """Train ``ff-numpy train supervised TRAIN_ARGS`` twice from the same seed, with the
    plain cast and with ``row_factor``: each epoch's training seconds, the test errors,
    and whether the two final ``model.npz`` agree bit for bit in every array (the
    metadata, which holds wall times, left out)."""
    from ff_numpy import checkpoint, experiments

    row_factor, result = blas.row_factor, {}
    for name, factor in (("plain cast", _plain_cast), ("row_factor", row_factor)):
        run = out_dir / name.replace(" ", "_")
        blas.row_factor = factor
        try:
            argv = [*train_args, "--out", str(run), "--no-progress"]
            experiments.get("supervised").run(experiments.parser("supervised").parse_args(argv))
        finally:
            blas.row_factor = row_factor
        metrics = json.loads((run / "metrics.json").read_text())
        result[name] = {
            "epoch_seconds": [h["train_seconds"] for h in metrics["history"]],
            "test_error_goodness": metrics["test_error_goodness"],
            "test_error_softmax": metrics["test_error_softmax"],
        }
        result[name]["arrays"], _ = checkpoint.load(run / "model.npz")
    a, b = (result[k].pop("arrays") for k in ("plain cast", "row_factor"))
    result["same_model"] = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return {"train_args": train_args, **result}


def main(argv=None) -> dict:
    """Print and return both measurements (the second only with ``RUN``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path, help="a `train recurrent` output folder")
    ap.add_argument("--batches", type=int, default=5, help="mini-batches timed (default: 5)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default: 1)")
    ap.add_argument("--repeats", type=int, default=5, help="GEMM repeats (default: 5)")
    ap.add_argument("--no-gemm", action="store_true", help="skip the GEMM measurement")
    ap.add_argument("--data-dir", default=None, help="MNIST folder (default: FF_NUMPY_DATA)")
    ap.add_argument(
        "--supervised",
        nargs=argparse.REMAINDER,
        default=None,
        help="train `ff-numpy train supervised` with these options twice, without and with "
        "the flush, into --out (give it last)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/subnormals"), help="for --supervised")
    args = ap.parse_args(argv)
    if args.run is not None and not (args.run / "model.npz").is_file():
        raise SystemExit(f"{args.run}: no model.npz (give a `train recurrent` output folder)")
    if args.batches < 1:
        raise SystemExit("--batches must be at least 1")
    out = {"threads": args.threads}
    with threadpool_limits(limits=args.threads):
        out["gemm"] = [] if args.no_gemm else gemm_rates(repeats=args.repeats)
        for r in out["gemm"]:
            share, rate = 100 * r["subnormal_rows"], r["gflops"]
            print(f"GEMM, {share:5.1f}% subnormal rows: {rate:7.1f} GFLOP/s")
        if args.run is not None:
            out["checkpoint"] = c = on_checkpoint(args.run, args.batches, args.data_dir)
            for name in ("plain cast", "row_factor"):
                r = c[name]
                print(
                    f"{name:10s}: {r['seconds_per_batch']:.3f} s per batch, subnormal dL/da "
                    f"entries {100 * r['subnormal_share_mean']:.1f}% on average, "
                    f"{100 * r['subnormal_share_max']:.1f}% at most"
                )
            print(f"same gradients bit for bit: {c['same_gradients']}")
        if args.supervised is not None:
            out["supervised"] = c = supervised_comparison(args.supervised, args.out)
            for name in ("plain cast", "row_factor"):
                r = c[name]
                times = " ".join(f"{t:.1f}" for t in r["epoch_seconds"])
                print(f"supervised, {name:10s}: epochs {times} s; test {r['test_error_goodness']}")
            print(f"same model bit for bit: {c['same_model']}")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
