"""What the experiments' tasks share: :class:`LabelledTask`, the data splits, the
evaluated splits, the final test errors and the checkpointed arrays of a
:class:`ff_numpy.train.Task`.
"""

from __future__ import annotations

import numpy as np

from ff_numpy.experiments.evaluation import test_errors


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

    def slot_names(self) -> list[str]:
        """The names, in :meth:`state`, of every optimiser slot created so far
        (``"opt/layer0.W"``): :func:`ff_numpy.train.fit` records them in the checkpoint,
        so that a resume notices one that went missing."""
        return sorted(f"{name}/{k}" for name, opt in self._optimizers() for k in opt.state())

    def load_state(self, arrays):
        """Restore :meth:`state`; ``ValueError`` naming an array that is missing or whose
        shape does not fit (an optimiser slot must have its parameter's shape)."""
        self.model.load_state(arrays)
        params = self.model.state()
        for name, opt in self._optimizers():
            prefix = f"{name}/"
            slots = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            for key, slot in slots.items():
                param = params.get(key[:-2] if key.endswith((".m", ".s")) else key)
                if param is not None and slot.shape != param.shape:
                    raise ValueError(
                        f"optimiser slot {prefix}{key} has shape {slot.shape}, its parameter "
                        f"{param.shape}"
                    )
            opt.load_state(slots)

    def _optimizers(self):
        for name in self.optimizers:
            if getattr(self, name) is not None:
                yield name, getattr(self, name)
