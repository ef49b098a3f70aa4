"""Argument checks at the public boundary: clear errors naming what was given."""

from __future__ import annotations

import argparse
import os
import re

import numpy as np


def check_matrix(x, name: str, n_cols: int | None = None) -> np.ndarray:
    """Return ``x`` as a 2-D floating array, or raise naming the problem.

    Parameters
    ----------
    x : array_like, shape (B, n)
    name : str
        What to call it in the error message.
    n_cols : int, optional
        The number of columns required.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (batch, features), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    if n_cols is not None and x.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_labels(y, n_classes: int, name: str = "labels", n_rows: int | None = None) -> np.ndarray:
    """Return ``y`` as a 1-D int64 array of values in ``[0, n_classes)``, or raise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {y.dtype}")
    if n_rows is not None and y.shape[0] != n_rows:
        raise ValueError(f"{name} has {y.shape[0]} entries but the inputs have {n_rows} rows")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in 0..{n_classes - 1}, got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int64, copy=False)


def copy_state(targets: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    """Copy saved arrays into a model's own arrays, in place, by name.

    Parameters
    ----------
    targets : dict of str to ndarray
        The model's arrays (its ``state()``), overwritten in place.
    arrays : dict of str to ndarray
        The saved arrays; those not named in ``targets`` are ignored.

    Raises
    ------
    ValueError
        If an array of ``targets`` is missing from ``arrays`` or has another shape there.
    """
    for name, target in targets.items():
        if name not in arrays:
            raise ValueError(f"checkpoint has no array {name!r}")
        if arrays[name].shape != target.shape:
            raise ValueError(
                f"{name}: checkpoint has shape {arrays[name].shape}, model {target.shape}"
            )
        target[...] = arrays[name]


# ----------------------------------------------------------------------------- options
# Each command-line option states its type and range once, as the ``type=`` of its
# argparse declaration: one of the checks below. The same check refuses a bad value given
# from Python (:func:`check_options`), so both paths give the same one-line message
# ``"{option} {what is expected}, got {value}"``.

#: The largest float32: a larger value overflows to infinity in training, so counts as one.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class OptionError(ValueError):
    """A refused option value: ``"--lr must be a finite number >= 0, got nan"``."""


class Check:
    """An option's type and range: an argparse ``type=`` callable and a value check.

    Calling it on a command-line string returns the parsed value, or raises
    :class:`argparse.ArgumentTypeError` saying what is expected (argparse adds the
    option's name; :class:`OptionParser` makes it one line). :meth:`check` refuses a value
    given from Python with the same words.

    Parameters
    ----------
    need : str, optional
        What is expected, as a predicate (``"must be finite and > 0"``); replaces the
        subclass's own wording.
    """

    kind = "value"

    def __init__(self, need: str | None = None):
        self.need = need
        self.__name__ = self.kind  # argparse's name for the type

    def parse(self, text: str):
        """The value of a command-line string (no range check); ValueError if none."""
        raise NotImplementedError

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` (a predicate such as ``"must be >= 0"``), or None."""
        raise NotImplementedError

    def wrong_type(self) -> str:
        return self.need or f"must be {self.kind}"

    def __call__(self, text: str):
        try:
            value = self.parse(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{self.wrong_type()}, got {text!r}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    def check(self, value, option: str):
        """Return ``value``, or raise :class:`OptionError` naming ``option``."""
        problem = self.problem(value)
        if problem:
            raise OptionError(f"{option} {problem}, got {value!r}")
        return value


def _range_text(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    """``">= 0"``, ``"> 0"``, ``"<= 1"``, ``"in [0, 1)"``; for ints ``"in 0..27"``."""
    if isinstance(lo, int) and isinstance(hi, int):
        return f"in {lo}..{hi}"
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


class Real(Check):
    """A finite number in a range; above :data:`FLOAT32_MAX` in size counts as infinite.

    Parameters
    ----------
    lo, hi : float, optional
        Bounds (None: unbounded).
    lo_open, hi_open : bool
        Exclude the bound.
    need : str, optional
        What is expected, replacing ``"must be a finite number >= 0"`` (for a value that is
        not a finite number) and ``"must be >= 0"`` (for one out of range).
    """

    kind = "finite number"

    def __init__(self, lo=None, hi=None, *, lo_open=False, hi_open=False, need=None):
        super().__init__(need)
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.range = _range_text(
            None if lo is None else float(lo), None if hi is None else float(hi), lo_open, hi_open
        )

    def wrong_type(self) -> str:
        return self.need or f"must be a finite number {self.range}".rstrip()

    def parse(self, text: str) -> float:
        return float(text)

    def problem(self, value) -> str | None:
        try:
            x = None if isinstance(value, (bool, str)) else float(value)
        except (TypeError, ValueError):
            x = None
        if x is None or not abs(x) <= FLOAT32_MAX:  # NaN, infinite, or overflows float32
            return self.wrong_type()
        too_low = self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo)
        too_high = self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi)
        if too_low or too_high:
            return self.need or f"must be {self.range}"
        return None


class Integer(Check):
    """An integer in a range; with ``unit_bytes``, one whose memory fits in the machine.

    Parameters
    ----------
    lo, hi : int, optional
        Bounds, both included (None: unbounded).
    need : str, optional
        What is expected, replacing ``"must be an integer >= 1"`` and ``"must be >= 1"``.
    unit_bytes : int
        Bytes each unit of the value needs at least (a hidden unit's weights, say): a
        value whose total exceeds the machine's memory (:func:`memory_bytes`) is refused
        before anything is allocated. 0: no memory check.
    unit : str
        What a unit is, for that message (``"hidden unit"``).
    """

    kind = "integer"

    def __init__(self, lo=None, hi=None, *, need=None, unit_bytes: int = 0, unit="unit"):
        super().__init__(need)
        self.lo, self.hi = lo, hi
        self.range = _range_text(lo, hi)
        self.unit_bytes, self.unit = int(unit_bytes), unit

    def wrong_type(self) -> str:
        return self.need or f"must be an integer {self.range}".rstrip()

    def parse(self, text: str) -> int:
        return int(text)

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return self.wrong_type()
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            return self.need or f"must be {self.range}"
        if self.unit_bytes:
            return memory_problem(int(value), self.unit_bytes, self.unit)
        return None


class Folder(Check):
    """An existing folder."""

    kind = "folder"

    def parse(self, text: str) -> str:
        return text

    def problem(self, value) -> str | None:
        try:
            exists = os.path.isdir(value)
        except (TypeError, ValueError):
            exists = False
        return None if exists else "must be an existing folder"


def finite_float(lo=None, hi=None, *, lo_open=False, hi_open=False, need=None) -> Real:
    """A finite number, optionally in a range (:class:`Real`)."""
    return Real(lo, hi, lo_open=lo_open, hi_open=hi_open, need=need)


def non_negative_float(need=None) -> Real:
    """A finite number >= 0 (rates, weight decays, strengths)."""
    return Real(0, need=need)


def positive_float(need=None) -> Real:
    """A finite number > 0."""
    return Real(0, lo_open=True, need=need)


def fraction_0_1(need=None) -> Real:
    """A number in [0, 1) (momentum, dropout, noise)."""
    return Real(0, 1, hi_open=True, need=need)


def positive_int(need=None) -> Integer:
    """An integer >= 1."""
    return Integer(1, need=need)


def non_negative_int(need=None) -> Integer:
    """An integer >= 0."""
    return Integer(0, need=need)


def int_in(lo: int, hi: int, need=None) -> Integer:
    """An integer in ``lo..hi`` (both included)."""
    return Integer(int(lo), int(hi), need=need)


def memory_size(unit_bytes: int, unit: str = "unit", need=None) -> Integer:
    """A positive integer whose ``unit_bytes`` per unit fit in the machine's memory."""
    return Integer(1, need=need, unit_bytes=unit_bytes, unit=unit)


def existing_folder() -> Folder:
    """A folder that exists."""
    return Folder()


# ----------------------------------------------------------------------------- memory
def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def human_bytes(n: float) -> str:
    """``"23.4 GiB"``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def memory_problem(n_units: int, unit_bytes: int, unit: str = "unit") -> str | None:
    """``"must be at most N to fit in this machine's 23.4 GiB of memory (...)"`` when
    ``n_units * unit_bytes`` exceeds the machine's memory, else None."""
    total = memory_bytes()
    if total is None or n_units * unit_bytes <= total:
        return None
    return (
        f"must be at most {total // unit_bytes:,} to fit in this machine's "
        f"{human_bytes(total)} of memory ({human_bytes(unit_bytes)} per {unit})"
    )


def check_memory(n_bytes: int, what: str) -> None:
    """Raise ``ValueError`` when ``n_bytes`` (what ``what`` needs at least) exceed the
    machine's memory, before anything is allocated."""
    total = memory_bytes()
    if total is not None and n_bytes > total:
        raise ValueError(
            f"{what} need at least {human_bytes(n_bytes)}, more than this machine's "
            f"{human_bytes(total)} of memory"
        )


# ----------------------------------------------------------------------------- parser
# argparse reads "-inf", "-1e308" and "-nan" as option names ("expected one argument");
# as values they reach the option's check instead.
_NEGATIVE_NUMBER = re.compile(
    r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^-(?:inf|infinity|nan)$", re.IGNORECASE
)
_REFUSAL = re.compile(r"^argument (?P<names>.+?): (?P<problem>(?:must|needs) .*)$", re.DOTALL)


class OptionParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusals are one line.

    A value refused by an option's :class:`Check` raises :class:`OptionError` (a
    ``ValueError``) ``"--lr must be a finite number >= 0, got nan"``, which the command
    line prints as one line (exit status 2) and a Python caller can catch; any other
    parsing error prints ``"PROG: error: MESSAGE"`` and exits with status 2.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message):
        m = _REFUSAL.match(message)
        if m:
            raise OptionError(f"{m['names'].split('/')[-1]} {m['problem']}")
        self.exit(2, f"{self.prog}: error: {message}\n")


def check_options(parser: argparse.ArgumentParser, args) -> None:
    """Apply each option's :class:`Check` to its value in ``args`` (set from Python, for
    instance), raising :class:`OptionError` naming the first bad one; None is skipped."""
    for action in parser._actions:
        if not isinstance(action.type, Check) or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            action.type.check(v, action.option_strings[-1])
