"""Saved models: a run's ``model.npz`` read back as the model that trained it.

The configuration stored in the checkpoint (``meta["config"]["model"]``, each model's
``config()``) says which model wrote it: a recurrent net's has ``"kind": "recurrent"``,
a backprop MLP's a ``"type"``, a feed-forward FF net's neither. Each loader refuses a
file written by another model, naming what it expected.
"""

from __future__ import annotations

from ff_numpy import checkpoint
from ff_numpy.backprop import MLP, MODEL_TYPE
from ff_numpy.model import FFNet
from ff_numpy.recurrent import RecurrentFFNet


def load_ffnet(path) -> FFNet:
    """The :class:`~ff_numpy.model.FFNet` saved in ``path`` (a run's ``model.npz``)."""
    return checkpoint.load_model(
        FFNet, path, "FFNet configuration", lambda cfg: not {"kind", "type"} & set(cfg)
    )


def load_recurrent_net(path) -> RecurrentFFNet:
    """The :class:`~ff_numpy.recurrent.RecurrentFFNet` saved in ``path``."""
    return checkpoint.load_model(
        RecurrentFFNet,
        path,
        "recurrent-net configuration",
        lambda cfg: cfg.get("kind") == "recurrent",
    )


def load_mlp(path) -> MLP:
    """The backprop :class:`~ff_numpy.backprop.MLP` saved in ``path``."""
    what = "MLP configuration (not a backprop run)"
    return checkpoint.load_model(MLP, path, what, lambda cfg: cfg.get("type") == MODEL_TYPE)
