"""Paper experiments, registered by name.

Each experiment is a class with

* ``name`` and ``help``: its command-line name and one-line description;
* ``add_arguments(parser)``: its options and their defaults;
* ``run(args) -> dict``: train, write ``DIR/metrics.json``, ``DIR/model.npz`` and figures;
* ``evaluate(model_path, args) -> dict``: recompute the test errors of a saved model.

``ff-numpy train NAME`` looks the experiment up here; a new experiment is one new module
that calls :func:`register`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from ff_numpy.validate import OptionParser, existing_folder

REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an experiment available as ``ff-numpy train <cls.name>``."""
    if cls.name in REGISTRY:
        raise ValueError(f"experiment {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type:
    """The experiment called ``name``, or ``ValueError`` listing the known ones."""
    _load_all()
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}: expected one of {sorted(REGISTRY)}")
    return REGISTRY[name]


def names() -> list[str]:
    """Names of every registered experiment."""
    _load_all()
    return sorted(REGISTRY)


HELPER_MODULES = {  # modules of this package that register no experiment
    *("base", "building", "evaluation", "options", "saved", "task", "online_task"),
}


def _load_all() -> None:
    # Importing a module registers its experiments: a new experiment is one new file.
    for info in pkgutil.iter_modules(__path__):
        if info.name not in HELPER_MODULES:
            importlib.import_module(f"{__name__}.{info.name}")


def add_run_arguments(p: argparse.ArgumentParser, train: bool = True) -> None:
    """The options ``ff-numpy train`` gives every experiment (data, progress, output);
    with ``train=False`` only the data and progress options (``ff-numpy evaluate``)."""
    p.add_argument(
        "--data-dir",
        type=existing_folder(),
        default=None,
        help="folder with the dataset, which must exist (default: $FF_NUMPY_DATA, then "
        "the download cache)",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars or per-epoch lines",
    )
    if not train:
        return
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/model.npz (same options) if it exists",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in DIR (without it, a folder holding a run is refused)",
    )
    p.add_argument("--out", default=None, help="output folder (required)")


def parser(name: str) -> argparse.ArgumentParser:
    """The options of ``ff-numpy train NAME``: the experiment's own and the run options.

    For scripts that take an experiment's options from their own command line::

        args = parser("recurrent").parse_args(["--hidden", "500", "--out", "runs/x"])
        metrics = get("recurrent").run(args)
    """
    p = OptionParser(prog=f"ff-numpy train {name}")
    get(name).add_arguments(p)
    add_run_arguments(p)
    return p


def default_args(name: str, **overrides) -> argparse.Namespace:
    """The options of experiment ``name`` with their defaults, then ``overrides``.

    The same namespace ``ff-numpy train NAME`` would build, for use from Python::

        args = default_args("supervised", hidden=[500, 500], epochs=3, out="runs/x")
        metrics = get("supervised").run(args)
    """
    args = parser(name).parse_args([])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise ValueError(f"experiment {name!r} has no option {key!r}")
        setattr(args, key, value)
    return args
