"""What the paper experiments share: the :class:`Experiment` base class, the base of
their tasks (:class:`LabelledTask`), option groups and their checks, the builders of an
FF net, its optimisers and the data splits, and the error rates.

An experiment is a subclass of :class:`Experiment`, registered by name
(:func:`ff_numpy.experiments.register`). It states its options (:meth:`~Experiment.add_arguments`,
mostly from the option groups below), which of them make up its configuration
(``config_keys``) and how to build its model and task (:meth:`~Experiment.build`); the base
class does the rest: check the options, load the data, run :func:`ff_numpy.train.fit`,
draw the figures, and recompute the test errors of a saved model. For example::

    @register
    class Supervised(Experiment):
        name = "supervised"
        help = "supervised FF on MNIST, label in the first 10 pixels (paper Sec. 3.3)"
        config_keys = ("hidden", "epochs", ...)

        @staticmethod
        def add_arguments(p):
            add_run_shape_arguments(p, hidden=[2000] * 4, epochs=60, track_test=True)
            add_ff_arguments(p, lr=0.003)

        @staticmethod
        def build(args, data):
            model = make_ffnet(args, 784)
            return model, SupervisedTask(model, *splits(data, args.train_size), ...)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ff_numpy import experiments, train
from ff_numpy.blackbox import BlackBox
from ff_numpy.data import load_mnist
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.model import NEGATIVES, FFNet
from ff_numpy.norm import SCALES
from ff_numpy.optim import hold_then_linear, make_optimizer

BOX_KEYS = ("black_box", "box_levels", "box_noise")


# ----------------------------------------------------------------------------- errors
def error_rate(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of wrong predictions (NaN for no labels)."""
    return float(np.mean(pred != labels)) if len(labels) else float("nan")


def test_errors(model: FFNet, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Both classifiers' error on the test set, as fractions."""
    return {
        "test_error_goodness": error_rate(model.predict_goodness(x_test), y_test),
        "test_error_softmax": error_rate(model.predict_softmax(x_test), y_test),
    }


def shift_averaged_errors(
    model: FFNet, x: np.ndarray, y: np.ndarray, shifts: int, progress: bool = False
) -> dict:
    """Test errors with test-time averaging over shifted copies (not in the paper).

    Each image is classified from the goodness summed (and the readout's class
    probabilities averaged) over its :math:`(2 s + 1)^2` copies moved by up to
    ``s = shifts`` pixels, the shifts a net trained with ``--jitter s`` has seen. The
    names end in ``_shifts{s}``: ``test_error_goodness_shifts2`` (supervised nets only)
    and ``test_error_softmax_shifts2``. Costs :math:`(2 s + 1)^2` plain evaluations.

    Parameters
    ----------
    model : FFNet
    x : ndarray, shape (N, 784)
    y : ndarray of int, shape (N,)
    shifts : int
        Largest shift ``s`` (0: no averaging).
    progress : bool
        A progress bar over chunks of 1,000 images.
    """
    if not isinstance(model, FFNet):
        raise ValueError(
            f"shift averaging needs a feed-forward FFNet, not a {type(model).__name__}"
        )
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}")
    good, soft = [], []
    chunks = range(0, len(x), 1000)
    desc = f"test, {(2 * shifts + 1) ** 2} shifts"
    for i in tqdm(chunks, desc=desc, unit="chunk", disable=not progress):
        xb = x[i : i + 1000]
        if model.supervised:
            good.append(model.predict_goodness(xb, shifts=shifts))
        soft.append(model.predict_softmax(xb, shifts=shifts))
    out = {f"test_error_softmax_shifts{shifts}": error_rate(np.concatenate(soft), y)}
    if model.supervised:
        out[f"test_error_goodness_shifts{shifts}"] = error_rate(np.concatenate(good), y)
    return out


def ff_errors(model: FFNet, split: str, x: np.ndarray, y: np.ndarray, n_goodness=None) -> dict:
    """Both classifiers' error on one split, named ``{split}_error_softmax`` and
    ``{split}_error_goodness``.

    Parameters
    ----------
    model : FFNet
    split : str
        Prefix of the names (``"val"``, ``"test"``).
    x : ndarray, shape (N, n_in)
    y : ndarray of int, shape (N,)
    n_goodness : int, optional
        The goodness error (one pass per label) uses only the first ``n_goodness``
        examples; 0 leaves it out, None uses all. The softmax error always uses all.

    Returns
    -------
    errors : dict of str to float
    """
    out = {f"{split}_error_softmax": error_rate(model.predict_softmax(x), y)}
    if n_goodness != 0:
        n = len(y) if n_goodness is None else n_goodness
        out[f"{split}_error_goodness"] = error_rate(model.predict_goodness(x[:n]), y[:n])
    return out


# ----------------------------------------------------------------------------- data and models
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
    :func:`add_ff_arguments`; ``options`` replace or add ``FFNet`` keyword arguments
    (e.g. ``boxes``). The initial weights are drawn from ``(seed, 1)``."""
    kwargs = {k: getattr(args, k) for k in ("objective", "goodness", "theta", "norm")}
    kwargs["peer_strength"] = args.peer_strength
    kwargs.update(options)
    rng = np.random.default_rng([args.seed, 1])  # initial weights; training draws use seed
    return FFNet(n_in, args.hidden, rng, **kwargs)


def make_ff_optimizers(args, readout_optimizer: str | None = None) -> tuple:
    """Optimisers of the hidden layers and of the readout, from :func:`add_ff_arguments`.

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


# ----------------------------------------------------------------------------- options
def check_ranges(*checks: tuple) -> None:
    """Raise ``ValueError("{option} must be {need}, got {value}")`` for the first
    ``(option, value, ok, need)`` of ``checks`` whose ``ok`` is false."""
    for option, value, ok, need in checks:
        if not ok:
            raise ValueError(f"{option} must be {need}, got {value}")


def check_run_shape(args) -> None:
    """Raise ``ValueError`` naming the first bad option of :func:`add_run_shape_arguments`:
    ``--hidden`` needs positive sizes, ``--epochs``, ``--batch-size`` and ``--train-size``
    at least 1."""
    if not args.hidden or min(args.hidden) < 1:
        raise ValueError(f"--hidden needs positive layer sizes, got {args.hidden}")
    check_ranges(
        ("--epochs", args.epochs, args.epochs >= 1, ">= 1"),
        ("--batch-size", args.batch_size, args.batch_size >= 1, ">= 1"),
        ("--train-size", args.train_size, args.train_size >= 1, ">= 1"),
    )


def _add_options(p, options, defaults: dict, helps: dict | None) -> None:
    """Add each ``(flag, help template, argparse keywords)`` of ``options``.

    An option's default is ``defaults[dest]``; its help is ``helps[dest]`` if given, else
    the template formatted with ``defaults``.
    """
    helps = dict(helps or {})
    dests = [flag[2:].replace("-", "_") for flag, _, _ in options]
    unknown = sorted(set(helps) - set(dests))
    if unknown:
        raise ValueError(f"help given for unknown options {unknown}: expected some of {dests}")
    for dest, (flag, template, kwargs) in zip(dests, options):
        text = helps.get(dest) or template.format(**defaults)
        p.add_argument(flag, default=defaults[dest], help=text, **kwargs)


def add_run_shape_arguments(
    p: argparse.ArgumentParser,
    *,
    hidden,
    epochs: int,
    batch_size: int = 100,
    track_test: bool = False,
    helps: dict | None = None,
) -> None:
    """``--hidden --epochs --batch-size --train-size --seed``, and ``--track-test``.

    Parameters
    ----------
    p : argparse.ArgumentParser
    hidden : sequence of int
        Default hidden layer sizes.
    epochs, batch_size : int
        Their defaults.
    track_test : bool
        Also add ``--track-test`` (record test errors in the history).
    helps : dict of str to str, optional
        Help texts replacing the standard ones, by option (``"epochs"``, ...).
    """
    defaults = {
        "hidden": list(hidden),
        "hidden_text": " ".join(map(str, hidden)),
        "epochs": epochs,
        "batch_size": batch_size,
        "train_size": 50_000,
        "seed": 0,
    }
    options = [
        (
            "--hidden",
            "hidden layer sizes (default: {hidden_text})",
            {"type": int, "nargs": "+", "metavar": "N"},
        ),
        ("--epochs", "epochs (default: {epochs})", {"type": int}),
        ("--batch-size", "batch size (default: {batch_size})", {"type": int}),
        (
            "--train-size",
            "train on the first N of the 50,000 training images; 50,001-60,000 also take "
            "validation images, 60000 all of them (default: {train_size})",
            {"type": int},
        ),
        ("--seed", "random seed (default: {seed})", {"type": int}),
    ]
    _add_options(p, options, defaults, helps)
    if track_test:
        p.add_argument(
            "--track-test",
            action="store_true",
            help="also record test errors in the history (learning curves; not for tuning)",
        )


def add_ff_arguments(
    p: argparse.ArgumentParser,
    *,
    lr: float,
    helps: dict | None = None,
    exclude=(),
    **defaults,
) -> None:
    """The options of a supervised Forward-Forward net and its training.

    ``--lr --optimizer --momentum --weight-decay --peer-strength --readout-lr
    --readout-weight-decay --negatives --objective --goodness --norm --theta``, read by
    :func:`make_ffnet` and :func:`make_ff_optimizers`.

    Parameters
    ----------
    p : argparse.ArgumentParser
    lr : float
        Default learning rate of the hidden layers.
    helps : dict of str to str, optional
        Help texts replacing the standard ones, by option (``"lr"``, ``"peer_strength"``, ...).
    exclude : iterable of str
        Options this experiment does not have (e.g. ``"negatives"`` for unsupervised FF).
    **defaults
        Other defaults that differ from the supervised recipe (Hinton's released code):
        ``optimizer="sgd", momentum=0.9, weight_decay=0.001, peer_strength=0.03,
        readout_lr=0.1, readout_weight_decay=0.003, negatives="random", objective="max",
        goodness="ssq", norm=None`` (rms for ssq goodness, mean for sum), ``theta=None``
        (the number of units of each layer).
    """
    d = {
        "lr": lr,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 0.001,
        "peer_strength": 0.03,
        "readout_lr": 0.1,
        "readout_weight_decay": 0.003,
        "negatives": "random",
        "objective": "max",
        "goodness": "ssq",
        "norm": None,
        "theta": None,
    }
    unknown = sorted(set(defaults) - set(d))
    if unknown:
        raise TypeError(f"add_ff_arguments got unknown defaults {unknown}")
    d.update(defaults)
    d["norm_text"] = "rms for ssq goodness, mean for sum" if d["norm"] is None else d["norm"]
    options = [
        (
            "--lr",
            "learning rate of the hidden layers, for the exact gradient of the loss "
            "(Hinton's code drops the factor 2 of dG/dy: its 0.01 is 0.005 here; "
            "default: {lr})",
            {"type": float},
        ),
        (
            "--optimizer",
            "sgd: momentum with dampening (Hinton's delay); adam (default: {optimizer})",
            {"choices": ["sgd", "adam"]},
        ),
        (
            "--momentum",
            "SGD momentum = dampening (Hinton's delay; default: {momentum})",
            {"type": float},
        ),
        (
            "--weight-decay",
            "weight decay of the hidden weights (default: {weight_decay})",
            {"type": float},
        ),
        (
            "--peer-strength",
            "peer normalisation strength, 0 to turn off (default: {peer_strength})",
            {"type": float},
        ),
        (
            "--readout-lr",
            "learning rate of the softmax readout (default: {readout_lr})",
            {"type": float},
        ),
        (
            "--readout-weight-decay",
            "weight decay of the readout (default: {readout_weight_decay})",
            {"type": float},
        ),
        (
            "--negatives",
            "wrong labels: random (uniform) or hard (from the softmax; default: {negatives})",
            {"choices": NEGATIVES},
        ),
        (
            "--objective",
            "max: positive data has high goodness; min: low (default: {objective})",
            {"choices": ["max", "min"]},
        ),
        (
            "--goodness",
            "sum of squared activities (the paper) or of activities (unsquared, Sec. 10; "
            "default: {goodness})",
            {"choices": ["ssq", "sum"]},
        ),
        ("--norm", "length normalisation (default: {norm_text})", {"choices": list(SCALES)}),
        (
            "--theta",
            "goodness threshold (default: number of units of each layer)",
            {"type": float},
        ),
    ]
    options = [o for o in options if o[0][2:].replace("-", "_") not in set(exclude)]
    _add_options(p, options, d, helps)


def add_eval_every_argument(p: argparse.ArgumentParser, default: int = 5) -> None:
    """``--eval-every K``: the goodness-based validation error (one pass per label, so
    costly) every K epochs and after the last."""
    p.add_argument(
        "--eval-every",
        type=int,
        default=default,
        help=f"goodness-based validation error every k epochs (default: {default})",
    )


def add_box_arguments(p: argparse.ArgumentParser) -> None:
    """``--black-box L`` and its settings (paper Sec. 10; :mod:`ff_numpy.blackbox`)."""
    p.add_argument(
        "--black-box",
        type=int,
        default=None,
        metavar="L",
        help="insert an unknown, non-differentiable, stochastic transform (permutation, "
        "quantisation, multiplicative noise) after hidden layer L (0-based)",
    )
    p.add_argument(
        "--box-levels", type=int, default=4, help="quantisation levels of the box (default: 4)"
    )
    p.add_argument(
        "--box-noise",
        type=float,
        default=0.2,
        help="multiplicative noise amplitude of the box (default: 0.2)",
    )


# ----------------------------------------------------------------------------- tasks
class LabelledTask:
    """What the experiments' tasks (:class:`ff_numpy.train.Task`) share.

    The data splits, the splits evaluated after every epoch, the final test errors, and
    the checkpoint: the model's arrays and the slots of every optimiser named in
    ``optimizers`` (an attribute of that name; None is skipped), stored as
    ``"{name}/{slot}"``. A subclass adds ``train_batch`` and ``evaluate``.

    Parameters
    ----------
    model : FFNet or MLP
        Anything with ``state()`` and ``load_state(arrays)``.
    x_train, y_train : ndarray, shapes (N, n_in) and (N,)
    x_val, y_val : ndarray
        Validation data for the per-epoch errors (may be empty).
    x_test, y_test : ndarray
        Test data for the final errors.
    track_test : bool
        Also evaluate the test set after every epoch (learning curves only).
    """

    optimizers: tuple[str, ...] = ("opt",)
    test_errors = staticmethod(test_errors)  # (model, x, y) -> final metrics

    def __init__(self, model, x_train, y_train, x_val, y_val, x_test, y_test, track_test=False):
        self.model = model
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.x_test, self.y_test = x_test, y_test
        self.track_test = bool(track_test)
        self.n_train = len(x_train)

    def eval_splits(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, x, y)`` of the non-empty splits to evaluate: validation, and test
        with ``track_test`` (for learning curves of test error; never for model choice)."""
        splits = [("val", self.x_val, self.y_val)]
        if self.track_test:
            splits.append(("test", self.x_test, self.y_test))
        return [(name, x, y) for name, x, y in splits if len(y)]

    def final_metrics(self):
        return self.test_errors(self.model, self.x_test, self.y_test)

    def state(self):
        arrays = dict(self.model.state())
        for name, opt in self._optimizers():
            arrays.update({f"{name}/{k}": v for k, v in opt.state().items()})
        return arrays

    def load_state(self, arrays):
        self.model.load_state(arrays)
        for name, opt in self._optimizers():
            prefix = f"{name}/"
            opt.load_state({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})

    def _optimizers(self):
        for name in self.optimizers:
            if getattr(self, name) is not None:
                yield name, getattr(self, name)


# ----------------------------------------------------------------------------- experiments
def softmax_errors(model, x_test, y_test) -> dict:
    """The readout's test error (an unsupervised net has no goodness classifier)."""
    return {"test_error_softmax": error_rate(model.predict_softmax(x_test), y_test)}


class UnsupervisedTask(LabelledTask):
    """Train an unsupervised :class:`~ff_numpy.model.FFNet` (a :class:`train.Task`).

    Parameters
    ----------
    model : FFNet
        Built with ``supervised=False``.
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
        The data splits; the labels reach only the readout.
    opt, readout_opt : Optimizer
    track_test : bool
    """

    optimizers = ("opt", "readout_opt")
    test_errors = staticmethod(softmax_errors)

    def __init__(self, model, x_train, y_train, x_val, y_val, x_test, y_test, opt,
                 readout_opt, track_test=False):  # fmt: skip
        super().__init__(model, x_train, y_train, x_val, y_val, x_test, y_test, track_test)
        self.opt, self.readout_opt = opt, readout_opt

    def train_batch(self, idx, rng, lr_scale):
        return self.model.train_step_unsupervised(
            self.x_train[idx], self.y_train[idx], rng, self.opt, self.readout_opt, lr_scale
        )

    def evaluate(self, epoch, n_epochs):
        return {
            f"{name}_error_softmax": error_rate(self.model.predict_softmax(x), y)
            for name, x, y in self.eval_splits()
        }


class Experiment:
    """Base class of the paper experiments (see the module docstring).

    A subclass sets ``name``, ``help`` and ``config_keys`` and defines
    :meth:`add_arguments` and :meth:`build`; it may override the hooks
    :meth:`check_args`, :meth:`resolved_options`, :meth:`load_data`, :meth:`figures`,
    :meth:`load_model`, :meth:`test_errors` and ``schedule``.

    Attributes
    ----------
    name : str
        Command-line name (``ff-numpy train NAME``).
    help : str
        One-line description.
    config_keys : tuple of str
        The options recorded in the configuration, in order. A resumed run must have
        the same values (:func:`ff_numpy.train.fit`).
    schedule : callable
        ``schedule(epoch, epochs) -> lr factor``; default hold, then decay linearly.
    """

    name: str
    help: str
    config_keys: tuple[str, ...] = ()
    schedule = staticmethod(hold_then_linear)
    test_errors = staticmethod(test_errors)  # hook: (model, x_test, y_test) -> dict

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """Add the experiment's options and their defaults to ``p``."""
        raise NotImplementedError

    @staticmethod
    def build(args, data) -> tuple:
        """The model and the :class:`ff_numpy.train.Task` for ``args`` on ``data``."""
        raise NotImplementedError

    @staticmethod
    def check_args(args) -> None:
        """Hook: raise ``ValueError`` naming a bad option, before any data is loaded."""

    @staticmethod
    def resolved_options(args) -> dict:
        """Hook: options whose default depends on others, resolved. They replace the
        given values in the configuration (or are added after ``config_keys``)."""
        return {}

    @staticmethod
    def load_data(args):
        """Hook: the dataset (default MNIST from ``--data-dir``)."""
        return load_mnist(args.data_dir, progress=args.progress)

    @staticmethod
    def figures(metrics: dict, out_dir) -> None:
        """Hook: draw the run's figures into ``out_dir`` (default ``learning_curve.png``)."""
        from ff_numpy.plots import plot_learning_curve

        plot_learning_curve(metrics, Path(out_dir) / "learning_curve.png")

    @staticmethod
    def load_model(path):
        """Hook: the trained model saved in ``path`` (default an FFNet)."""
        return load_ffnet(path)

    @classmethod
    def config(cls, args) -> dict:
        """The run's configuration: the experiment's name, then ``config_keys`` of ``args``
        with :meth:`resolved_options` applied."""
        config = {"experiment": cls.name, **{k: getattr(args, k) for k in cls.config_keys}}
        config.update(cls.resolved_options(args))
        return config

    @classmethod
    def run(cls, args) -> dict:
        """Train; write ``DIR/metrics.json``, ``DIR/model.npz`` and the figures.

        Returns
        -------
        metrics : dict
            What ``metrics.json`` holds.
        """
        if not args.out:
            raise ValueError(f"the {cls.name} experiment needs an output folder (--out DIR)")
        cls.check_args(args)
        return cls.run_on(args, cls.load_data(args))

    @classmethod
    def run_on(cls, args, data) -> dict:
        """:meth:`run` on given data (any :class:`ff_numpy.data.MNIST`-like splits)."""
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
            schedule=cls.schedule,
            warmup_batches=getattr(args, "warmup_batches", 0),  # an option of some only
            config_defaults=cls.config(experiments.default_args(cls.name)),
        )
        cls.figures(metrics, args.out)
        return metrics

    @classmethod
    def evaluate(cls, model_path, args) -> dict:
        """Recompute the test errors of the model saved in ``model_path``; with
        ``args.shifts > 0`` also the shift-averaged ones (:func:`shift_averaged_errors`)."""
        model = cls.load_model(model_path)
        shifts = getattr(args, "shifts", 0)
        if shifts and not isinstance(model, FFNet):
            raise ValueError(f"--shifts needs a feed-forward FF net; {cls.name} nets are not")
        data = cls.load_data(args)
        errors = cls.test_errors(model, data.test.x, data.test.y)
        if shifts:
            progress = getattr(args, "progress", False)
            errors |= shift_averaged_errors(model, data.test.x, data.test.y, shifts, progress)
        return errors
