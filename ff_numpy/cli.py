"""Command line: ``ff-numpy train EXPERIMENT ... --out DIR``, ``evaluate``, ``plot``.

``python -m ff_numpy`` is the same program. Errors in arguments, data or checkpoints
print one line and exit with status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from ff_numpy import __version__, experiments
from ff_numpy.validate import OptionParser, non_negative_int

_Parser = OptionParser  # one line, not the usage block; a refused value names its option


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ff-numpy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ff_numpy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train an experiment")
    exp_sub = train.add_subparsers(dest="experiment", required=True, parser_class=_Parser)
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
        "pixels, goodness summed and probabilities averaged (test-time averaging, not in "
        "the paper; (2S+1)^2 times the cost; default: 0, off)",
    )
    experiments.add_run_arguments(ev, train=False)

    pl = sub.add_parser(
        "plot",
        help="redraw a run's figure from its metrics.json, or overlay several runs",
    )
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders holding metrics.json")
    pl.add_argument("--out", default=None, help="PNG to write (needed with several runs)")
    pl.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="with several runs: which per-epoch errors to overlay",
    )
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            if args.out is None:
                raise ValueError("train needs --out DIR, the folder for the model and metrics")
            metrics = experiments.get(args.experiment).run(args)
            final = {k: v for k, v in metrics.items() if k.startswith("test_")}
            print(json.dumps(final, indent=2))
        elif args.command == "evaluate":
            from ff_numpy import checkpoint

            _, meta = checkpoint.load(args.model)
            name = meta.get("config", {}).get("experiment")
            if name is None:
                raise ValueError(f"{args.model} does not say which experiment wrote it")
            print(json.dumps(experiments.get(name).evaluate(args.model, args), indent=2))
        elif args.command == "plot":
            from ff_numpy import plots

            runs = args.run_dirs
            if len(runs) == 1:
                print(plots.plot_run(runs[0], args.out))
            elif args.out is None:
                raise ValueError("plotting several runs needs --out PNG")
            else:
                metrics = [plots.load_metrics(r) for r in runs]
                online = all(m["config"].get("experiment") == "online" for m in metrics)
                draw = plots.plot_online_comparison if online else plots.plot_comparison
                print(draw(metrics, args.out, args.split))
    except (ValueError, TypeError, OSError) as err:
        print(f"ff-numpy: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "ff-numpy: interrupted (the last finished epoch is saved; use --resume)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
