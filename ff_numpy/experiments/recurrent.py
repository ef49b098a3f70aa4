"""The top-down recurrent FF network of Fig. 3 on MNIST (Sec. 3.4).

``ff-numpy train recurrent --out DIR`` trains :class:`~ff_numpy.recurrent.RecurrentFFNet`
(image below, label on top, hidden layers of 2000 ReLUs between, 8 damped synchronous
iterations) and writes ``DIR/model.npz``, ``DIR/metrics.json``, ``learning_curve.png``,
``goodness_by_iteration.png`` (goodness per iteration for the correct and the wrong
labels on the test set) and ``error_by_window.png`` (test error against the iterations
whose goodness is averaged).

``--goodness``, ``--norm``, ``--loss`` and ``--alpha`` choose the net's parts (the goodness
of a damped state, the length normalisation, the layer loss; default the paper's sum of
squares, ``rms`` and Eq. 1's logistic loss).

The goodness classification runs the net once per label, so it costs about 10 times a
training pass per image: the validation error by goodness is measured every
``--eval-every`` epochs on the first ``--eval-size`` validation images; the softmax
(one-pass) error after every epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ff_numpy.experiments import register
from ff_numpy.experiments.base import Experiment
from ff_numpy.experiments.building import make_ff_optimizers, splits
from ff_numpy.experiments.evaluation import error_rate
from ff_numpy.experiments.options import (
    add_eval_every_argument,
    add_ff_arguments,
    add_run_shape_arguments,
    check_ranges,
    loss_config,
)
from ff_numpy.experiments.saved import load_recurrent_net
from ff_numpy.experiments.supervised import SupervisedTask
from ff_numpy.goodness import make_goodness
from ff_numpy.loss import make_loss
from ff_numpy.recurrent import SCHEDULES, RecurrentFFNet
from ff_numpy.validate import (
    finite_float,
    fraction_0_1,
    int_in,
    non_negative_int,
    positive_int,
)

WINDOWS = ((1, 2), (3, 5), (6, 8))  # the table of the issue: early, the paper's, late


def iteration_report(G: np.ndarray, y: np.ndarray, objective: str) -> dict:
    """Errors by iteration window and goodness statistics from a goodness trace.

    Parameters
    ----------
    G : ndarray, shape (N, n_classes, T)
        :meth:`~ff_numpy.recurrent.RecurrentFFNet.goodness_trace` of N images.
    y : ndarray of int, shape (N,)
    objective : {"max", "min"}

    Returns
    -------
    report : dict
        ``"error_by_window"``: ``{"a-b": error}`` for every window of :data:`WINDOWS`
        that fits and every single iteration; ``"goodness_by_iteration"``: mean and
        standard deviation over images of the correct label's goodness and of the wrong
        labels' mean goodness, per iteration.
    """
    N, C, T = G.shape
    pick = np.argmax if objective == "max" else np.argmin
    windows = [w for w in WINDOWS if w[1] <= T] + [(t, t) for t in range(1, T + 1)]
    errors = {
        f"{lo}-{hi}": error_rate(pick(G[:, :, lo - 1 : hi].mean(axis=2), axis=1), y)
        for lo, hi in windows
    }
    correct = G[np.arange(N), y]  # (N, T)
    wrong = (G.sum(axis=1) - correct) / (C - 1)  # (N, T): mean over the wrong labels
    stats = {
        "correct_mean": correct.mean(axis=0).tolist(),
        "correct_std": correct.std(axis=0).tolist(),
        "wrong_mean": wrong.mean(axis=0).tolist(),
        "wrong_std": wrong.std(axis=0).tolist(),
    }
    return {"error_by_window": errors, "goodness_by_iteration": stats}


def recurrent_test_errors(model: RecurrentFFNet, x_test, y_test) -> dict:
    """Both classifiers' test error, and the :func:`iteration_report` of the test set
    (one goodness trace over all iterations, shared by every window)."""
    G = model.goodness_trace(x_test)
    lo, hi = model.average_iterations
    pick = np.argmax if model.objective == "max" else np.argmin
    return {
        "test_error_goodness": error_rate(pick(G[:, :, lo - 1 : hi].mean(axis=2), axis=1), y_test),
        "test_error_softmax": error_rate(model.predict_softmax(x_test), y_test),
        **iteration_report(G, y_test, model.objective),
    }


class RecurrentTask(SupervisedTask):
    """Train a :class:`~ff_numpy.recurrent.RecurrentFFNet` (a :class:`train.Task`).

    The supervised task's loop, evaluation and checkpoint (the recurrent net has the same
    ``train_step``, ``predict_softmax`` and ``predict_goodness``), with the recurrent
    net's final test report (:func:`recurrent_test_errors`).

    Parameters
    ----------
    model : RecurrentFFNet
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
    opt, readout_opt : Optimizer
    negatives : {"hard", "random"}
    eval_every : int
        Goodness-based errors every this many epochs (and after the last).
    eval_size : int
        Images of each split used for the per-epoch goodness error (0: all).
    track_test : bool
    """

    test_errors = staticmethod(recurrent_test_errors)

    def __init__(self, model, x_train, y_train, x_val, y_val, x_test, y_test, opt,
                 readout_opt, negatives="hard", eval_every=5, eval_size=0,
                 track_test=False):  # fmt: skip
        super().__init__(
            model, x_train, y_train, x_val, y_val, x_test, y_test, opt, readout_opt,
            negatives, eval_every, track_test, eval_size=eval_size,
        )  # fmt: skip


@register
class Recurrent(Experiment):
    name = "recurrent"
    help = "the top-down recurrent FF network of Fig. 3 on MNIST (Sec. 3.4)"
    config_keys = (
        *("hidden", "epochs", "batch_size", "lr", "readout_lr", "optimizer", "momentum"),
        *("weight_decay", "readout_weight_decay", "negatives", "hard_floor", "objective"),
        *("goodness", "norm"),
        *("theta", "peer_strength", "iterations", "damping", "schedule"),
        *("loss_iterations", "loss_after_label", "average_iterations", "skip_first"),
        *("train_size", "eval_every", "eval_size", "track_test", "seed", "warmup_batches"),
    )
    test_errors = staticmethod(recurrent_test_errors)

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        add_run_shape_arguments(p, hidden=[2000, 2000], epochs=60, track_test=True)
        add_ff_arguments(
            p,
            lr=0.001,
            with_loss=True,
            negatives="hard",
            objective="min",
            peer_strength=0.03,
            helps={
                "lr": "learning rate of the connections, for the gradient summed over the "
                "loss iterations (default: 0.001)",
                "negatives": "wrong labels: hard (from the label-free pass's softmax) or "
                "random (uniform; default: hard)",
                "peer_strength": "peer normalisation strength, on the positive rows of "
                "every loss iteration (default: 0.03)",
                "objective": "max: the true label's run should have high goodness; min: low "
                "(default: min, better on validation, docs/RESULTS.md)",
            },
        )
        p.add_argument(
            "--hard-floor",
            type=finite_float(0, 1),
            default=0.05,
            help="share of uniform draws mixed into the hard negative labels (default: 0.05)",
        )
        p.add_argument(
            "--iterations",
            type=int_in(1, 1000),
            default=8,
            help="damped iterations, 1 to 1000 (default: 8)",
        )
        p.add_argument(
            "--damping",
            type=fraction_0_1(),
            default=0.3,
            help="new state = d * previous + (1 - d) * computed (default: 0.3)",
        )
        p.add_argument(
            "--schedule",
            choices=SCHEDULES,
            default="synchronous",
            help="all layers from the previous step, or even layers then odd ones "
            "(default: synchronous)",
        )
        p.add_argument(
            "--loss-iterations",
            type=positive_int(),
            nargs=2,
            default=None,
            metavar=("FIRST", "LAST"),
            help="iterations at which the FF objective is applied (default: 1 to --iterations)",
        )
        p.add_argument(
            "--loss-after-label",
            action="store_true",
            help="apply the objective at a layer only once label information can have reached it",
        )
        p.add_argument(
            "--average-iterations",
            type=positive_int(),
            nargs=2,
            default=[3, 5],
            metavar=("FIRST", "LAST"),
            help="iterations whose goodness is averaged to classify (default: 3 5)",
        )
        p.add_argument(
            "--skip-first",
            action="store_true",
            help="leave the first hidden layer out of the goodness used to classify",
        )
        p.add_argument(
            "--warmup-batches",
            type=non_negative_int(),
            default=0,
            help="ramp the learning rate up linearly over the first N mini-batches; at lr "
            "0.001 some batch orders diverge without it, 200 steady them (docs/RESULTS.md; "
            "default: 0, none)",
        )
        add_eval_every_argument(p)
        p.add_argument(
            "--eval-size",
            type=non_negative_int(),
            default=0,
            help="validation images for the per-epoch goodness error (default: 0, all)",
        )

    @staticmethod
    def check_args(args) -> None:
        check_ranges(
            ("--iterations", args.iterations, args.iterations >= 1, ">= 1"),
            ("--damping", args.damping, 0 <= args.damping < 1, "in [0, 1)"),
            ("--hard-floor", args.hard_floor, 0 <= args.hard_floor <= 1, "in [0, 1]"),
            ("--eval-size", args.eval_size, args.eval_size >= 0, ">= 0"),
            ("--warmup-batches", args.warmup_batches, args.warmup_batches >= 0, ">= 0"),
        )
        T = args.iterations
        for option, window in (
            ("--loss-iterations", Recurrent.resolved_options(args)["loss_iterations"]),
            ("--average-iterations", args.average_iterations),
        ):
            lo, hi = window
            if not 1 <= lo <= hi <= T:
                raise ValueError(
                    f"{option} must be FIRST LAST with 1 <= FIRST <= LAST <= --iterations "
                    f"({T}), got {lo} {hi}"
                )

    @staticmethod
    def resolved_options(args) -> dict:
        return {
            "loss_iterations": list(args.loss_iterations or [1, args.iterations]),
            "norm": args.norm or make_goodness(args.goodness).norm,
            **loss_config(args),
        }

    @staticmethod
    def build(args, data):
        """The model and task for ``args`` on ``data`` (an :class:`ff_numpy.data.MNIST`)."""
        rng = np.random.default_rng([args.seed, 1])  # initial weights
        loss = None  # Eq. 1's logistic loss
        if getattr(args, "loss", "logistic") != "logistic":
            loss = make_loss(args.loss, alpha=args.alpha)
        model = RecurrentFFNet(
            784,
            args.hidden,
            10,
            rng,
            damping=args.damping,
            iterations=args.iterations,
            schedule=args.schedule,
            loss_iterations=Recurrent.resolved_options(args)["loss_iterations"],
            loss_after_label=args.loss_after_label,
            average_iterations=args.average_iterations,
            skip_first=args.skip_first,
            objective=args.objective,
            theta=args.theta,
            goodness=args.goodness,
            loss=loss,
            norm=args.norm,
            peer_strength=args.peer_strength,
            hard_floor=args.hard_floor,
        )
        opt, readout_opt = make_ff_optimizers(args)
        task = RecurrentTask(
            model, *splits(data, args.train_size), opt, readout_opt, args.negatives,
            args.eval_every, args.eval_size, args.track_test,
        )  # fmt: skip
        return model, task

    load_model = staticmethod(load_recurrent_net)

    @staticmethod
    def figures(metrics: dict, out_dir) -> None:
        from ff_numpy.plots import (
            plot_error_by_window,
            plot_goodness_by_iteration,
            plot_learning_curve,
        )

        out_dir = Path(out_dir)
        plot_learning_curve(metrics, out_dir / "learning_curve.png")
        if "goodness_by_iteration" in metrics:
            plot_goodness_by_iteration(metrics, out_dir / "goodness_by_iteration.png")
            plot_error_by_window(metrics, out_dir / "error_by_window.png")
