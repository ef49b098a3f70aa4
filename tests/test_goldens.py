"""The command line program reproduces the numbers recorded in ``tests/goldens``.

Each golden ``tests/goldens/<name>.json`` holds the arguments of one short training run
(``python -m ff_numpy ARGV --out DIR``) and the numbers it gave when it was recorded: the
metrics, statistics of every array of ``model.npz`` and the numeric entries of the
checkpoint's metadata (see ``tests/goldens/make_goldens.py``, which records them and
holds the comparison). Each test re-runs one golden's command against this checkout,
in a subprocess with one BLAS thread, and fails with one ``key: golden ... vs now ...``
line per differing key: error rates, integers, names, shapes and dtypes must be equal,
other floats within a relative error of 1e-5 (absolute 1e-7 near zero).

After a change that is meant to change numbers, record the goldens again with
``python tests/goldens/make_goldens.py`` and commit them with the change.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from ff_numpy.data import find_data_dir

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "goldens"
GOLDENS = sorted(GOLDEN_DIR.glob("*.json"))


def _load_make_goldens():
    """Import ``tests/goldens/make_goldens.py`` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("make_goldens", GOLDEN_DIR / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mg = _load_make_goldens()

needs_mnist = pytest.mark.skipif(
    find_data_dir() is None,
    reason="MNIST not found: set FF_NUMPY_DATA to a folder holding the four MNIST files "
    "(directly or in its mnist/ subfolder)",
)


def test_one_golden_per_run():
    """Every run of ``make_goldens.RUNS`` has its golden, with the same arguments."""
    assert sorted(p.stem for p in GOLDENS) == sorted(mg.RUNS)
    for path in GOLDENS:
        assert mg.load_golden(path)["argv"] == mg.golden_argv(path.stem), path.name


def test_compare_rules():
    """Error rates and integers compare exactly, other floats to 1e-5 relative."""

    def summary(metrics=None, arrays=None):
        return {"metrics": metrics or {}, "arrays": arrays or {}, "meta": {}}

    assert mg.compare(summary({"loss": 2.0}), summary({"loss": 2.0 * (1 + 5e-6)})) == []
    assert mg.compare(summary({"loss": 0.0}), summary({"loss": 5e-8})) == []
    assert len(mg.compare(summary({"loss": 2.0}), summary({"loss": 2.0 * (1 + 2e-5)}))) == 1
    assert len(mg.compare(summary({"val_error": 0.5}), summary({"val_error": 0.5 + 1e-9}))) == 1
    assert len(mg.compare(summary({"jumps": 3}), summary({"jumps": 4}))) == 1
    assert mg.compare(summary({"x": math.nan}), summary({"x": math.nan})) == []
    lines = mg.compare(summary({"a": 1.0}), summary({"b": 1.0}))
    assert lines == [
        "metrics/a: golden 1.0 vs now '<missing>'",
        "metrics/b: golden '<missing>' vs now 1.0",
    ]
    w = {"shape": [2], "dtype": "float32", "sum": 1.0, "sum_sq": 1.0, "first": [0.5, 0.5]}
    assert (
        len(mg.compare(summary(arrays={"W": w}), summary(arrays={"W": {**w, "dtype": "float64"}})))
        == 1
    )
    assert (
        len(mg.compare(summary(arrays={"W": w}), summary(arrays={"W": {**w, "shape": [1, 2]}})))
        == 1
    )


@needs_mnist
@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_golden(path, tmp_path):
    """The golden's command, run now, gives the golden's numbers."""
    golden = mg.load_golden(path)
    env = mg.run_env()
    out = tmp_path / "out"
    mg.run_cli(golden["argv"], out, ROOT, env)
    diffs = mg.compare(golden, mg.summarise(out))
    if diffs:
        pytest.fail(
            f"{path.name}: {len(diffs)} keys differ from the golden of `{golden['command']}` "
            "(golden vs now):\n" + "\n".join(diffs),
            pytrace=False,
        )
