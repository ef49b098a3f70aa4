"""Building a run: the data splits, the FF net of the options, its optimisers and the
black box (the options are those of :mod:`ff_numpy.experiments.options`).
"""

from __future__ import annotations

import numpy as np

from ff_numpy.blackbox import BlackBox
from ff_numpy.loss import make_loss
from ff_numpy.model import FFNet
from ff_numpy.optim import make_optimizer


def splits(data, train_size: int) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_val, y_val, x_test, y_test`` of ``data``, training on its first
    ``train_size`` images.

    Up to ``len(data.train.x)`` (50,000 for MNIST) the validation set is untouched. A
    larger ``train_size`` also trains on the first ``train_size - len(data.train.x)``
    validation images, which leave the validation set: ``--train-size 60000`` trains on
    all 60,000 official training images and leaves no validation set (the usual last
    step once the settings have been chosen on validation; the per-epoch history then
    has validation errors only while some validation images remain).

    Parameters
    ----------
    data : ff_numpy.data.MNIST
        Or anything with ``train``, ``validation`` and ``test`` splits of ``x`` and ``y``.
    train_size : int

    Raises
    ------
    ValueError
        If ``train_size`` is not in ``1..len(data.train.x) + len(data.validation.x)``.
    """
    n, n_train = train_size, len(data.train.x)
    available = n_train + len(data.validation.x)
    if not 1 <= n <= available:
        raise ValueError(f"--train-size must lie in 1..{available}, got {n}")
    if n <= n_train:
        x_train, y_train = data.train.x[:n], data.train.y[:n]
        x_val, y_val = data.validation.x, data.validation.y
    else:
        k = n - n_train  # validation images moved into the training set
        x_train = np.concatenate([data.train.x, data.validation.x[:k]])
        y_train = np.concatenate([data.train.y, data.validation.y[:k]])
        x_val, y_val = data.validation.x[k:], data.validation.y[k:]
    return x_train, y_train, x_val, y_val, data.test.x, data.test.y


def make_ffnet(args, n_in: int, **options) -> FFNet:
    """The :class:`~ff_numpy.model.FFNet` of ``--hidden``, ``--seed`` and the options of
    :func:`~ff_numpy.experiments.options.add_ff_arguments`; ``options`` replace or add
    ``FFNet`` keyword arguments (e.g. ``boxes``). The initial weights are drawn from
    ``(seed, 1)``."""
    kwargs = {k: getattr(args, k) for k in ("objective", "goodness", "theta", "norm")}
    kwargs["peer_strength"] = args.peer_strength
    if getattr(args, "loss", "logistic") != "logistic":  # a run without the option: Eq. 1
        kwargs["loss"] = make_loss(args.loss, alpha=args.alpha)
    kwargs.update(options)
    rng = np.random.default_rng([args.seed, 1])  # initial weights; training draws use seed
    return FFNet(n_in, args.hidden, rng, **kwargs)


def make_ff_optimizers(args, readout_optimizer: str | None = None) -> tuple:
    """Optimisers of the hidden layers and of the readout, from
    :func:`~ff_numpy.experiments.options.add_ff_arguments`.

    Both use ``--momentum``; the readout uses ``--optimizer`` unless ``readout_optimizer``
    names another (:func:`ff_numpy.optim.make_optimizer`).

    Returns
    -------
    opt, readout_opt : Optimizer
    """
    opt = make_optimizer(args.optimizer, args.lr, args.weight_decay, args.momentum)
    readout_opt = make_optimizer(
        readout_optimizer or args.optimizer,
        args.readout_lr,
        args.readout_weight_decay,
        args.momentum,
    )
    return opt, readout_opt


def make_box(args, hidden) -> tuple[int | None, BlackBox | None]:
    """The black box the options ask for (its permutation drawn from the seed), or None."""
    L = args.black_box
    if L is None:
        return None, None
    if not 0 <= L < len(hidden) - 1:
        raise ValueError(
            f"--black-box must name a hidden layer with another hidden layer after it "
            f"(0..{len(hidden) - 2}), got {L}"
        )
    rng = np.random.default_rng([args.seed, 2])
    return L, BlackBox(hidden[L], rng, levels=args.box_levels, noise=args.box_noise)
