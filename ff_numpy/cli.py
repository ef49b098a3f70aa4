"""Command line: ``ff-numpy train EXPERIMENT ... --out DIR``, ``evaluate``, ``plot``.

``python -m ff_numpy`` is the same program. Errors in arguments, data or checkpoints
print one line and exit with status 2, not a traceback. SIGINT (Ctrl-C) and SIGTERM end
a run with one line saying what was saved (status 130 and 143); a save in progress is
finished first, so no temporary file is left behind.
"""

from __future__ import annotations

import signal
import sys

# Only ``signal`` and ``sys`` are imported before main() runs: its first act is to
# install the SIGINT and SIGTERM handlers, so that an interrupt while NumPy and the
# experiments load ends as cleanly as one in training. The rest is imported where used.

#: Set to show the traceback of an unexpected error (one line otherwise).
DEBUG_ENV = "FF_NUMPY_DEBUG"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_parser():
    """The parser of ``ff-numpy``: ``train EXPERIMENT``, ``evaluate``, ``plot``."""
    from ff_numpy import __version__, experiments
    from ff_numpy.validate import OptionParser, non_negative_int

    parser = OptionParser(prog="ff-numpy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ff_numpy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OptionParser)

    train = sub.add_parser("train", help="train an experiment")
    exp_sub = train.add_subparsers(dest="experiment", required=True, parser_class=OptionParser)
    for name in experiments.names():
        exp = experiments.get(name)
        p = exp_sub.add_parser(name, help=exp.help, description=exp.help)
        exp.add_arguments(p)
        experiments.add_run_arguments(p)

    ev = sub.add_parser("evaluate", help="recompute the test errors of a saved model")
    ev.add_argument("model", help="path to model.npz")
    ev.add_argument(
        "--shifts",
        type=non_negative_int(),
        default=0,
        metavar="S",
        help="also classify each test image from all (2S+1)^2 copies shifted by up to S "
        "pixels (S less than the image's side), goodness summed and probabilities "
        "averaged (test-time averaging, not in the paper; (2S+1)^2 times the cost; "
        "default: 0, off)",
    )
    experiments.add_run_arguments(ev, train=False)

    pl = sub.add_parser(
        "plot",
        help="redraw a run's figure from its metrics.json, or overlay several runs",
    )
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders holding metrics.json")
    pl.add_argument(
        "--out",
        default=None,
        help="figure to write (a folder: the run's figure name in it; no extension: .png); "
        "needed with several runs",
    )
    pl.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="with several runs: which per-epoch errors to overlay",
    )
    return parser


def main(argv=None) -> int:
    """Run ``ff-numpy ARGV``; return the exit status (0, 2 for a refused input, 1 for an
    unexpected error, 130 / 143 after SIGINT / SIGTERM)."""
    state = {"args": None, "handlers": {}}
    try:
        _catch_stop_signals(state["handlers"])  # first: from here on a stop is one line
        return _main(argv, state)
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM (_Stop)
        signum = getattr(stop, "signum", signal.SIGINT)
        try:  # the message must not fail the exit
            print(f"ff-numpy: {_interrupted(state['args'], signum)}", file=sys.stderr)
        except Exception:
            pass
        return 128 + int(signum)
    finally:
        _restore_signals(state["handlers"])


def _main(argv, state: dict) -> int:
    from ff_numpy.validate import OptionError

    try:
        args = state["args"] = build_parser().parse_args(argv)
        if args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "plot":
            _plot(args)
    except Exception as err:
        stop = _stop_inside(err)
        if stop is not None:  # an interrupt that Python wrapped: a stop, not an error
            raise stop from None
        if isinstance(err, (OptionError, ValueError, TypeError, OSError)):
            _error(err)
            return 2
        if isinstance(err, MemoryError):
            _error(f"not enough memory for this run ({err or 'MemoryError'}); use smaller sizes")
            return 2
        import os  # a bug: still one line, unless asked for the traceback

        if os.environ.get(DEBUG_ENV):
            raise
        _error(
            f"unexpected {type(err).__name__}: {err} (a bug; set {DEBUG_ENV}=1 to see "
            "the traceback)"
        )
        return 1
    return 0


def _stop_inside(err: BaseException) -> KeyboardInterrupt | None:
    """The interrupt (SIGINT, or SIGTERM's :class:`_Stop`) that ``err`` wraps, if any.

    Python turns an exception raised while a class is being created into a
    ``RuntimeError`` whose cause it is (``Error calling __set_name__``): a Ctrl-C landing
    while a library is imported can arrive so. Follows ``__cause__`` and ``__context__``.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _error(err) -> None:
    text = " ".join(str(err).split()) or type(err).__name__  # one line
    print(f"ff-numpy: error: {text}", file=sys.stderr)


def _train(args) -> None:
    import json

    from ff_numpy import experiments, train

    if args.out is None:
        raise ValueError("train needs --out DIR, the folder for the model and metrics")
    if args.resume and args.overwrite:
        raise ValueError("give --resume (continue the run in --out) or --overwrite, not both")
    exp = experiments.get(args.experiment)
    exp.check(args)  # options first: a bad one is named before the folder is looked at
    with train.run_lock(args.out):  # one run at a time in a folder, from here to the end
        held = train.existing_run(args.out)
        if held and not (args.resume or args.overwrite):
            raise ValueError(
                f"{args.out} already holds {held}: add --resume to continue it, --overwrite "
                "to replace it, or choose a new --out"
            )
        if args.overwrite:
            train.clear_run(args.out)
        metrics = exp.run(args)
    final = {k: v for k, v in metrics.items() if k.startswith("test_")}
    print(json.dumps(final, indent=2))


def _evaluate(args) -> None:
    import json

    from ff_numpy import checkpoint, experiments

    meta = checkpoint.read_meta(args.model)
    config = meta.get("config")
    name = config.get("experiment") if isinstance(config, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"{args.model} does not say which experiment wrote it")
    if name not in experiments.names():
        raise ValueError(f"{args.model} was written by an unknown experiment {name!r}")
    print(json.dumps(experiments.get(name).evaluate(args.model, args), indent=2))


def _plot(args) -> None:
    from ff_numpy import plots

    runs = args.run_dirs
    if len(runs) == 1:
        print(plots.plot_run(runs[0], args.out))
    elif args.out is None:
        raise ValueError("plotting several runs needs --out PNG")
    else:
        metrics = [plots.load_metrics(r) for r in runs]
        online = all(m.get("config", {}).get("experiment") == "online" for m in metrics)
        draw = plots.plot_online_comparison if online else plots.plot_comparison
        print(draw(metrics, plots.figure_path(args.out, "comparison.png"), args.split))


# ----------------------------------------------------------------------------- signals
class _Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program was (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    for s in STOP_SIGNALS:  # a second signal must not cut the clean stop short
        signal.signal(s, _ignore)
    raise _Stop(signum)


def _ignore(signum, frame):
    """Drop a signal (a Python handler: SIG_IGN would make a signal already on its way
    print a warning)."""


def _catch_stop_signals(held: dict) -> None:
    """From now on SIGINT and SIGTERM raise :class:`_Stop` (once; later ones are ignored
    while the program stops); the handlers replaced are noted in ``held``. Saves hold
    the signals until done (:func:`ff_numpy.checkpoint.deferred_signals`). Outside the
    main thread, where handlers cannot be set, nothing changes."""
    for s in STOP_SIGNALS:
        old = signal.getsignal(s)
        try:
            signal.signal(s, _on_signal)
        except ValueError:  # not the main thread
            return
        held[s] = old


def _restore_signals(held: dict) -> None:
    """Put back the handlers :func:`_catch_stop_signals` replaced."""
    for s, handler in held.items():
        signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _interrupted(args, signum: int) -> str:
    """One line: which signal stopped the program, and what was saved."""
    name = signal.Signals(signum).name
    if args is None:  # still starting: nothing read, nothing written
        return f"interrupted ({name}) while starting: nothing was saved"
    if getattr(args, "command", None) != "train" or not args.out:
        return f"interrupted ({name}): nothing was written"
    from pathlib import Path

    from ff_numpy import checkpoint, train

    model = Path(args.out) / train.MODEL_FILE
    if not model.exists():
        return f"interrupted ({name}) before the first epoch finished: nothing was saved"
    try:
        meta = checkpoint.read_meta(model)
        config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        done, total = meta.get("epochs_done"), config.get("epochs")
    except ValueError:
        return f"interrupted ({name}): {model} is the last checkpoint; continue with --resume"
    if done == total:
        return (
            f"interrupted ({name}) after the last epoch: {model} holds all {total}; "
            "--resume writes the final metrics and figures"
        )
    return f"interrupted ({name}): {model} holds epoch {done} of {total}; continue with --resume"


if __name__ == "__main__":
    sys.exit(main())
