"""The :class:`Experiment` base class: what every paper experiment does the same way.

An experiment is a subclass of :class:`Experiment`, registered by name
(:func:`ff_numpy.experiments.register`). It states its options
(:meth:`~Experiment.add_arguments`, mostly from the option groups of
:mod:`~ff_numpy.experiments.options`), which of them make up its configuration
(``config_keys``) and how to build its model and task (:meth:`~Experiment.build`); the
base class does the rest: check the options, load the data, run :func:`ff_numpy.train.fit`,
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

Its task (a :class:`ff_numpy.train.Task`) usually derives from
:class:`~ff_numpy.experiments.task.LabelledTask`; the builders are in
:mod:`~ff_numpy.experiments.building`, the error rates in
:mod:`~ff_numpy.experiments.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ff_numpy import experiments, train
from ff_numpy.data import load_mnist
from ff_numpy.experiments.evaluation import shift_averaged_errors, test_errors
from ff_numpy.experiments.options import check_loss_args, check_net_memory
from ff_numpy.experiments.saved import load_ffnet
from ff_numpy.model import FFNet
from ff_numpy.optim import hold_then_linear
from ff_numpy.validate import check_options


class Experiment:
    """Base class of the paper experiments (see the module docstring).

    A subclass sets ``name``, ``help`` and ``config_keys`` and defines
    :meth:`add_arguments` and :meth:`build`; it may override the hooks
    :meth:`check_args`, :meth:`resolved_options`, :meth:`load_data`, :meth:`figures`,
    :meth:`load_model`, :meth:`check_checkpoint`, :meth:`test_errors` and ``schedule``.

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
    n_in : int
        Inputs of the net (784 for MNIST), for the memory check of ``--hidden``.
    """

    name: str
    help: str
    config_keys: tuple[str, ...] = ()
    n_in: int = 784
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

    @staticmethod
    def check_checkpoint(path) -> None:
        """Hook: raise ``ValueError`` naming ``path`` when the checkpoint a run resumes
        from is unusable, before any data is read (default: nothing more than
        :func:`ff_numpy.train.fit` checks when it resumes)."""

    @classmethod
    def config(cls, args) -> dict:
        """The run's configuration: the experiment's name, then ``config_keys`` of ``args``
        with :meth:`resolved_options` applied."""
        config = {"experiment": cls.name, **{k: getattr(args, k) for k in cls.config_keys}}
        config.update(cls.resolved_options(args))
        return config

    @classmethod
    def check(cls, args) -> None:
        """Raise ``ValueError`` naming the first bad option of ``args``: each option's own
        type and range (as the command line checks them, for a namespace set from
        Python), the net's memory, then :meth:`check_args`. Nothing is loaded."""
        check_options(experiments.parser(cls.name), args)
        if getattr(args, "hidden", None):
            check_net_memory(args.hidden, cls.n_in)
        check_loss_args(args)
        cls.check_args(args)

    @classmethod
    def run(cls, args) -> dict:
        """Train; write ``DIR/metrics.json``, ``DIR/model.npz`` and the figures.

        Returns
        -------
        metrics : dict
            What ``metrics.json`` holds.

        Raises
        ------
        ff_numpy.train.FolderBusy
            Another process is writing to ``args.out`` (:func:`ff_numpy.train.run_lock`).
        """
        if not args.out:
            raise ValueError(f"the {cls.name} experiment needs an output folder (--out DIR)")
        cls.check(args)
        with train.run_lock(args.out):  # another run writing to the folder is refused
            saved = Path(args.out) / train.MODEL_FILE
            if getattr(args, "resume", False) and saved.exists():
                cls.check_checkpoint(saved)  # before the data is read
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
        if shifts and model.image_shape and shifts >= min(model.image_shape):
            side = min(model.image_shape)
            raise ValueError(
                f"--shifts must be less than the image's side ({side} pixels), got {shifts}"
            )
        data = cls.load_data(args)
        errors = cls.test_errors(model, data.test.x, data.test.y)
        if shifts:
            progress = getattr(args, "progress", False)
            errors |= shift_averaged_errors(model, data.test.x, data.test.y, shifts, progress)
        return errors
