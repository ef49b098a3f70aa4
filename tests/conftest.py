"""Fixtures shared by the test modules (plain helpers are in ``helpers.py``)."""

from __future__ import annotations

import time

import pytest
from helpers import load_tutorial


@pytest.fixture(scope="module")
def quick_run(request, tmp_path_factory):
    """``quick_run(stem)`` -> (result of main, wall seconds, out folder); each runs once
    per test module.

    The tutorial's ``main(["--quick", "--out", DIR, *QUICK_OPTIONS])`` is called, with
    ``QUICK_OPTIONS`` the calling module's extra options (none if it has no such name).
    """
    options = list(getattr(request.module, "QUICK_OPTIONS", ()))
    runs = {}

    def run(stem):
        if stem not in runs:
            out = tmp_path_factory.mktemp(stem)
            tutorial = load_tutorial(stem)
            t0 = time.perf_counter()
            result = tutorial.main(["--quick", "--out", str(out), *options])
            runs[stem] = (result, time.perf_counter() - t0, out)
        return runs[stem]

    return run
