"""The command line program reproduces the numbers recorded in ``tests/goldens``.

Each golden ``tests/goldens/<name>.json`` holds the arguments of one short training run
(``python -m ff_numpy ARGV --out DIR``) and the numbers it gave when it was recorded: the
metrics, statistics of every array of ``model.npz`` and the numeric entries of the
checkpoint's metadata (see ``tests/goldens/make_goldens.py``, which records them and
holds the comparison). Each test re-runs one golden's command against this checkout,
in a subprocess with one BLAS thread, and fails with one ``key: golden ... vs now ...``
line per differing key: error rates, integers, names, shapes and dtypes must be equal,
other floats within a relative error of 1e-5 (absolute 1e-7 near zero; for an array's
sum and first values, near zero is relative to the array's magnitude).

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


def _n_diffs(golden_metrics=None, now_metrics=None, golden_arrays=None, now_arrays=None):
    """Number of keys :func:`make_goldens.compare` reports between two small summaries."""

    def summary(metrics, arrays):
        return {"metrics": metrics or {}, "arrays": arrays or {}, "meta": {}}

    return len(mg.compare(summary(golden_metrics, golden_arrays), summary(now_metrics, now_arrays)))


def test_compare_rules():
    """Error rates and integers compare exactly, other floats to 1e-5 relative."""
    assert _n_diffs({"loss": 2.0}, {"loss": 2.0 * (1 + 5e-6)}) == 0
    assert _n_diffs({"loss": 2.0}, {"loss": 2.0 * (1 + 2e-5)}) == 1
    assert _n_diffs({"loss": 0.0}, {"loss": 5e-8}) == 0
    assert _n_diffs({"val_error": 0.5}, {"val_error": 0.5 + 1e-9}) == 1
    assert _n_diffs({"jumps": 3}, {"jumps": 4}) == 1
    assert _n_diffs({"x": math.nan}, {"x": math.nan}) == 0
    lines = mg.compare(
        {"metrics": {"a": 1.0}, "arrays": {}, "meta": {}},
        {"metrics": {"b": 1.0}, "arrays": {}, "meta": {}},
    )
    assert lines == [
        "metrics/a: golden 1.0 vs now '<missing>'",
        "metrics/b: golden '<missing>' vs now 1.0",
    ]
    w = {"shape": [2], "dtype": "float32", "sum": 1.0, "sum_sq": 1.0, "first": [0.5, 0.5]}
    assert _n_diffs(golden_arrays={"W": w}, now_arrays={"W": {**w, "dtype": "float64"}}) == 1
    assert _n_diffs(golden_arrays={"W": w}, now_arrays={"W": {**w, "shape": [1, 2]}}) == 1
    assert _n_diffs(golden_arrays={"W": w}, now_arrays={}) == 7
    # A sum that cancels to near zero is compared at the scale of the array's terms.
    v = {**w, "sum": 1e-7, "sum_sq": 2.0}
    assert _n_diffs(golden_arrays={"V": v}, now_arrays={"V": {**v, "sum": 1e-6}}) == 0
    assert _n_diffs(golden_arrays={"V": v}, now_arrays={"V": {**v, "sum": 1e-4}}) == 1


@needs_mnist
@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_golden(path, tmp_path):
    """The golden's command, run now, gives the golden's numbers."""
    golden = mg.load_golden(path)
    env = mg.run_env()
    out = tmp_path / "out"
    try:
        mg.run_cli(golden["argv"], out, ROOT, env)
        failure = None
    except RuntimeError as exc:
        failure = f"{path.name}: the run failed: {exc}"
    if failure:
        pytest.fail(failure, pytrace=False)
    diffs = mg.compare(golden, mg.summarise(out))
    if diffs:
        pytest.fail(
            f"{path.name}: {len(diffs)} keys differ from the golden of `{golden['command']}` "
            "(golden vs now):\n" + "\n".join(diffs),
            pytrace=False,
        )
