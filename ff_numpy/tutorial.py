"""What the tutorial scripts share: their command line and their training printout.

Every tutorial under ``tutorials/`` takes ``--quick``, ``--out``, ``--data-dir`` and,
where it trains, ``--resume`` and ``--no-progress``, with the same meanings; they are
built here once so that a tutorial's own code is the part worth reading. A tutorial adds
its own options to the parser this returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parser(
    doc: str | None,
    quick: str,
    default_out: Path,
    out: str = "folder for metrics.json, model.npz and the figures",
    *,
    trains: bool = True,
    several_runs: bool = False,
) -> argparse.ArgumentParser:
    """The command line every tutorial starts from.

    Parameters
    ----------
    doc : str or None
        The tutorial's module docstring; its first line is the description.
    quick : str
        What ``--quick`` runs (shown in ``--help``).
    default_out : Path
        Default of ``--out``.
    out : str
        Help text of ``--out``: what the tutorial writes there.
    trains : bool
        Add ``--resume`` and ``--no-progress`` (tutorials that train a model).
    several_runs : bool
        The tutorial trains several runs, one subfolder of ``--out`` each
        (changes only the help text of ``--resume``).

    Returns
    -------
    argparse.ArgumentParser
    """
    p = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--out", type=Path, default=default_out, help=out)
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $FF_NUMPY_DATA)")
    if trains:
        what = "interrupted runs from their " if several_runs else "an interrupted run from OUT/"
        p.add_argument(
            "--resume",
            action="store_true",
            help=f"continue {what}model.npz (same options)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def progress_split(history: list[dict]) -> str | None:
    """Which split shows a run's progress: ``"val"``, ``"test"`` or ``None``.

    Validation errors if the run recorded any (``val_error*``); else test errors, which a
    run on all 60,000 training images records only with ``--track-test`` and which are
    progress only, never used to choose; ``None`` for a run with neither.
    """
    for split in ("val", "test"):
        if any(k.startswith(f"{split}_error") for r in history for k in r):
            return split
    return None


def history_lines(metrics: dict) -> list[str]:
    """The validation errors of a run, one line per epoch.

    The softmax errors (a backprop run's single error), and a goodness column when the
    run recorded it (``--eval-every``); ``-`` marks the epochs at which it was not
    measured. A run on all 60,000 training images
    has no validation set: its test errors (``--track-test``) are shown instead, as
    progress only, and a run with neither gets one line that says so.
    """
    history = metrics["history"]
    split = progress_split(history)
    if split is None:
        return [f"{len(history)} epochs; no validation images and no --track-test: no errors"]
    # FF runs record softmax (and goodness every --eval-every epochs); backprop one error
    main, goodness = f"{split}_error_softmax", f"{split}_error_goodness"
    kind = "softmax"
    if not any(main in r for r in history):
        main, kind = f"{split}_error", "backprop"
    title = "validation error" if split == "val" else "test error, progress only"
    has_goodness = any(goodness in r for r in history)
    lines = [f"epoch  {title} ({kind}" + (", goodness)" if has_goodness else ")")]
    for r in history:
        if main not in r:
            continue
        line = f"  {r['epoch']:3d}  {100 * r[main]:5.2f}%"
        if has_goodness:
            good = r.get(goodness)
            line += f"  {100 * good:5.2f}%" if good is not None else "    - "
        lines.append(line)
    return lines


def print_history(metrics: dict) -> None:
    """Print :func:`history_lines`."""
    print("\n".join(history_lines(metrics)))
