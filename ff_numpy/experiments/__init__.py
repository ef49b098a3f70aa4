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


def _load_all() -> None:
    # Importing a module registers its experiments.
    from ff_numpy.experiments import supervised  # noqa: F401
