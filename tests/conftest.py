"""Fixtures shared by the test modules (plain helpers are in ``helpers.py``)."""

from __future__ import annotations

import pytest
from helpers import run_tutorial


@pytest.fixture(scope="module")
def script_run(tmp_path_factory):
    """``script_run(stem, *options)`` -> (the script's namespace, wall seconds, out
    folder): ``python tutorials/<stem>.py --quick --out DIR *options`` run in this
    process (:func:`helpers.run_tutorial`), once per test module and tutorial."""
    runs = {}

    def run(stem: str, *options: str):
        if stem not in runs:
            out = tmp_path_factory.mktemp(stem)
            namespace, seconds = run_tutorial(stem, "--quick", "--out", str(out), *options)
            runs[stem] = (namespace, seconds, out)
        return runs[stem]

    return run
