"""The recurrent net's FF losses over its first mini-batches: is a setting stable?

A 20-epoch run of the paper's recurrent net takes close to two hours; a learning rate
or schedule that diverges shows it in the first few dozen mini-batches. This trains
``ff-numpy train recurrent``'s model (the same options, the same initial weights for
the same ``--seed``) on the first ``--batches`` mini-batches of the training images and
prints every ``--every``-th batch's losses: the readout's cross-entropy and each hidden
layer's FF loss summed over the loss iterations and the positive and negative rows.

    python benchmarks/recurrent_first_batches.py --weight-decay 0.003
    python benchmarks/recurrent_first_batches.py --weight-decay 0.003 --schedule alternating
    python benchmarks/recurrent_first_batches.py --weight-decay 0.003 --schedule alternating \\
        --lr 0.0003

With ``--shuffle`` the batches are those of the run's first epoch instead: the same
permutation and the same draws of wrong labels as ``ff-numpy train recurrent`` with the
same ``--seed`` and ``--train-size`` (so its losses repeat the run's first batches).

    python benchmarks/recurrent_first_batches.py --shuffle --weight-decay 0.003 \\
        --train-size 60000

Every option after the script's own (``--batches``, ``--every``, ``--shuffle``) is an option of
``ff-numpy train recurrent``. About 1.4 s per batch of 784-2000-2000-10 on one BLAS
thread sharing its core with a training run (2 x 250 batches took 11.5 minutes).
"""

from __future__ import annotations

import argparse

import numpy as np

from ff_numpy import experiments
from ff_numpy.data import load_mnist
from ff_numpy.experiments.recurrent import Recurrent
from ff_numpy.optim import linear_warmup


def main(argv=None) -> list[dict[str, float]]:
    """Train on the first batches and print their losses; returns every batch's losses."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40, help="mini-batches (default: 40)")
    ap.add_argument("--every", type=int, default=4, help="print every N-th (default: 4)")
    ap.add_argument("--shuffle", action="store_true", help="the batches of the run's first epoch")
    own, rest = ap.parse_known_args(argv)
    args = experiments.parser("recurrent").parse_args(rest)  # ff-numpy train recurrent
    data = load_mnist(args.data_dir)
    _, task = Recurrent.build(args, data)  # the model, optimisers and batch step of training
    if own.batches * args.batch_size > task.n_train:
        raise SystemExit(f"--batches {own.batches} needs more than {task.n_train} images")
    B = args.batch_size
    if own.shuffle:  # as ff_numpy.train.fit: one generator, the permutation drawn first
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(task.n_train)
    else:
        rng = np.random.default_rng([args.seed, 2])  # wrong labels
        order = np.arange(task.n_train)
    warm = args.warmup_batches  # the run's warm-up, as ff_numpy.train.fit applies it
    print(
        f"schedule {args.schedule}, lr {args.lr}, weight decay {args.weight_decay}, "
        f"warm-up {warm} batches"
    )
    history = []
    for i in range(own.batches):
        losses = task.train_batch(order[i * B : (i + 1) * B], rng, linear_warmup(i, warm))
        history.append(losses)
        if (i + 1) % own.every == 0:
            print(f"batch {i + 1:4d}  " + "  ".join(f"{k} {v:9.2f}" for k, v in losses.items()))
    return history


if __name__ == "__main__":
    main()
