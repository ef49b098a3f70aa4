"""Supervised Forward-Forward on MNIST with the label in the first 10 pixels (Sec. 3.3).

``ff-numpy train supervised --out DIR`` trains the paper's net (4 hidden layers of 2000
ReLUs, 60 epochs) with the settings of Hinton's released code (RMS normalisation,
threshold = number of units, SGD with delay 0.9, weight decay 0.001, peer normalisation
0.03, rate held for half the run and then decayed linearly) and writes ``DIR/model.npz``,
``DIR/metrics.json`` and ``DIR/learning_curve.png``.
"""

from __future__ import annotations

import argparse

import numpy as np

from ff_numpy import experiments, train
from ff_numpy.data import load_mnist
from ff_numpy.experiments import register
from ff_numpy.experiments.common import BOX_KEYS, add_box_arguments, make_box
from ff_numpy.model import NEGATIVES, FFNet
from ff_numpy.norm import DEFAULT_SCALE, SCALES
from ff_numpy.optim import make_optimizer


def error_rate(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of wrong predictions."""
    return float(np.mean(pred != labels)) if len(labels) else float("nan")


class SupervisedTask:
    """Train an :class:`~ff_numpy.model.FFNet` on labelled images (a :class:`train.Task`).

    Parameters
    ----------
    model : FFNet
    x_train, y_train : ndarray, shapes (N, n_in) and (N,)
    x_val, y_val : ndarray
        Validation data for the per-epoch errors (may be empty).
    x_test, y_test : ndarray
        Test data for the final errors.
    opt, readout_opt : Optimizer
    negatives : {"random", "hard"}
    eval_every : int
        Goodness-based validation error every this many epochs (and after the last);
        it costs one pass per label.
    """

    def __init__(
        self,
        model,
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        opt,
        readout_opt,
        negatives="random",
        eval_every=5,
        track_test=False,
    ):
        self.model = model
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.x_test, self.y_test = x_test, y_test
        self.opt, self.readout_opt = opt, readout_opt
        self.negatives = negatives
        self.eval_every = max(1, int(eval_every))
        self.track_test = bool(track_test)
        self.n_train = len(x_train)

    def train_batch(self, idx, rng, lr_scale):
        return self.model.train_step(
            self.x_train[idx],
            self.y_train[idx],
            rng,
            self.opt,
            self.readout_opt,
            lr_scale,
            self.negatives,
        )

    def evaluate(self, epoch, n_epochs):
        splits = [("val", self.x_val, self.y_val)]
        if self.track_test:  # for learning curves of test error; never for model choice
            splits.append(("test", self.x_test, self.y_test))
        goodness_now = (epoch + 1) % self.eval_every == 0 or epoch + 1 == n_epochs
        out = {}
        for name, x, y in splits:
            if not len(y):
                continue
            out[f"{name}_error_softmax"] = error_rate(self.model.predict_softmax(x), y)
            if goodness_now:
                out[f"{name}_error_goodness"] = error_rate(self.model.predict_goodness(x), y)
        return out

    def final_metrics(self):
        return test_errors(self.model, self.x_test, self.y_test)

    def state(self):
        arrays = dict(self.model.state())
        arrays.update({f"opt/{k}": v for k, v in self.opt.state().items()})
        arrays.update({f"readout_opt/{k}": v for k, v in self.readout_opt.state().items()})
        return arrays

    def load_state(self, arrays):
        self.model.load_state(arrays)
        for prefix, opt in (("opt/", self.opt), ("readout_opt/", self.readout_opt)):
            opt.load_state({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})


def test_errors(model: FFNet, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Both classifiers' error on the test set, as fractions."""
    return {
        "test_error_goodness": error_rate(model.predict_goodness(x_test), y_test),
        "test_error_softmax": error_rate(model.predict_softmax(x_test), y_test),
    }


@register
class Supervised:
    name = "supervised"
    help = "supervised FF on MNIST, label in the first 10 pixels (paper Sec. 3.3)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--hidden",
            type=int,
            nargs="+",
            default=[2000, 2000, 2000, 2000],
            metavar="N",
            help="hidden layer sizes (default: 2000 2000 2000 2000)",
        )
        p.add_argument("--epochs", type=int, default=60, help="epochs (default: 60)")
        p.add_argument("--batch-size", type=int, default=100, help="batch size (default: 100)")
        p.add_argument(
            "--lr",
            type=float,
            default=0.003,
            help="learning rate of the hidden layers, for the exact gradient of the loss "
            "(Hinton's code drops the factor 2 of dG/dy: its 0.01 is 0.005 here; "
            "default: 0.003)",
        )
        p.add_argument(
            "--readout-lr",
            type=float,
            default=0.1,
            help="learning rate of the softmax readout (default: 0.1)",
        )
        p.add_argument(
            "--optimizer",
            choices=["sgd", "adam"],
            default="sgd",
            help="sgd: momentum with dampening (Hinton's delay); adam",
        )
        p.add_argument(
            "--momentum",
            type=float,
            default=0.9,
            help="SGD momentum = dampening (Hinton's delay, default 0.9)",
        )
        p.add_argument(
            "--weight-decay",
            type=float,
            default=0.001,
            help="weight decay of hidden weights (default: 0.001)",
        )
        p.add_argument(
            "--readout-weight-decay",
            type=float,
            default=0.003,
            help="weight decay of the readout (default: 0.003)",
        )
        p.add_argument(
            "--negatives",
            choices=NEGATIVES,
            default="random",
            help="wrong labels: random (uniform) or hard (from the softmax)",
        )
        p.add_argument(
            "--objective",
            choices=["max", "min"],
            default="max",
            help="max: positive data has high goodness; min: low",
        )
        p.add_argument(
            "--goodness",
            choices=["ssq", "sum"],
            default="ssq",
            help="sum of squared activities (the paper) or of activities (unsquared, Sec. 10)",
        )
        p.add_argument(
            "--norm",
            choices=list(SCALES),
            default=None,
            help="length normalisation (default: rms for ssq goodness, mean for sum)",
        )
        p.add_argument(
            "--theta",
            type=float,
            default=None,
            help="goodness threshold (default: number of units of each layer)",
        )
        p.add_argument(
            "--peer-strength",
            type=float,
            default=0.03,
            help="peer normalisation strength, 0 to turn off (default: 0.03)",
        )
        p.add_argument(
            "--train-size",
            type=int,
            default=50_000,
            help="use the first N of the 50,000 training images",
        )
        p.add_argument(
            "--eval-every",
            type=int,
            default=5,
            help="goodness-based validation error every k epochs (default: 5)",
        )
        p.add_argument(
            "--track-test",
            action="store_true",
            help="also record test errors in the history (learning curves; not for tuning)",
        )
        add_box_arguments(p)
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    @staticmethod
    def build(args, data):
        """The model, optimisers and task for ``args``."""
        rng = np.random.default_rng([args.seed, 1])  # initial weights; training draws use seed
        model = FFNet(
            784,
            args.hidden,
            rng,
            objective=args.objective,
            goodness=args.goodness,
            theta=args.theta,
            norm=args.norm,
            peer_strength=args.peer_strength,
            boxes=dict([make_box(args, args.hidden)]) if args.black_box is not None else None,
        )
        opt = make_optimizer(args.optimizer, args.lr, args.weight_decay, args.momentum)
        readout_opt = make_optimizer(
            args.optimizer, args.readout_lr, args.readout_weight_decay, args.momentum
        )
        n = args.train_size
        if not 1 <= n <= len(data.train.x):
            raise ValueError(f"--train-size must lie in 1..{len(data.train.x)}, got {n}")
        task = SupervisedTask(
            model,
            data.train.x[:n],
            data.train.y[:n],
            data.validation.x,
            data.validation.y,
            data.test.x,
            data.test.y,
            opt,
            readout_opt,
            args.negatives,
            args.eval_every,
            args.track_test,
        )
        return model, task

    @classmethod
    def config(cls, args) -> dict:
        keys = [
            "hidden",
            "epochs",
            "batch_size",
            "lr",
            "readout_lr",
            "optimizer",
            "momentum",
            "weight_decay",
            "readout_weight_decay",
            "negatives",
            "objective",
            "goodness",
            "norm",
            "theta",
            "peer_strength",
            "train_size",
            "eval_every",
            "track_test",
            "seed",
            *BOX_KEYS,
        ]
        config = {"experiment": cls.name, **{k: getattr(args, k) for k in keys}}
        config["norm"] = args.norm or DEFAULT_SCALE[args.goodness]  # resolved default
        return config

    @classmethod
    def run(cls, args) -> dict:
        from ff_numpy.plots import plot_learning_curve

        if not args.out:
            raise ValueError("the supervised experiment needs an output folder (--out DIR)")
        data = load_mnist(args.data_dir, progress=args.progress)
        model, task = cls.build(args, data)
        config = cls.config(args)
        config["model"] = model.config()
        metrics = train.fit(
            task,
            args.out,
            config=config,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            resume=args.resume,
            progress=args.progress,
            config_defaults=cls.config(experiments.default_args(cls.name)),
        )
        plot_learning_curve(metrics, f"{args.out}/learning_curve.png")
        return metrics

    @staticmethod
    def evaluate(model_path, args) -> dict:
        model = FFNet.load(model_path)
        data = load_mnist(args.data_dir, progress=args.progress)
        return test_errors(model, data.test.x, data.test.y)
