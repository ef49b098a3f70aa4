"""Every tutorial runs as a notebook in a real Jupyter kernel, the way a student runs it.

Each ``tutorials/NN_*.py`` is converted with jupytext and executed top to bottom ("Run
All") by nbclient in a fresh ``python3`` kernel started in a temporary folder, so the
tutorial runs its quick setting and writes there. Any error in any cell fails the test.
The notebook must also unfold: output under most code cells (not all at the end), figures
inline, nothing on stderr (progress bars, warnings), no module docstring echoed as a
cell's value, no ``main()``, and the whole run within the time budget.

The tutorials need MNIST, tutorial 10 CIFAR-10 (``$FF_NUMPY_DATA`` or the download
cache); without it these tests are skipped.
"""

from __future__ import annotations

import ast
import time

import pytest
from helpers import SLACK, TUTORIALS, needs_cifar10, needs_mnist

jupytext = pytest.importorskip("jupytext", reason="pip install -e .[test] (jupytext)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e .[test] (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e .[test] (ipykernel)")

NOTEBOOK_BUDGET = 40.0  # seconds per tutorial, kernel start included, on 2 cores
# Tutorials in the unfolding notebook form; the others are listed, expected to fail, and
# not run (each would cost up to a minute of the suite for a known result).
CONVERTED = {
    "01_goodness_and_one_layer",
    "02_supervised_mnist",
    "03_learning_fast",
    "04_black_box",
    "05_ff_vs_backprop",
    "06_unsupervised_hybrid_negatives",
    "07_local_receptive_fields",
    "08_jittered_mnist",
    "09_recurrent_top_down",
    "10_cifar10_local_fields",
}
NEEDS_CIFAR10 = {"10_cifar10_local_fields"}  # the others need MNIST
NOT_CONVERTED = "not yet converted to unfolding notebook form"


def _tutorials():
    for path in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")):
        marks = [needs_cifar10 if path.stem in NEEDS_CIFAR10 else needs_mnist]
        if path.stem not in CONVERTED:
            marks.append(pytest.mark.xfail(strict=False, run=False, reason=NOT_CONVERTED))
        yield pytest.param(path, id=path.stem, marks=marks)


def test_every_converted_tutorial_exists():
    stems = {p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py")}
    assert CONVERTED <= stems, f"listed as converted but missing: {CONVERTED - stems}"


def _outputs(cell) -> list:
    return cell.get("outputs", [])


def _first_statement_is_a_string(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics; not a docstring
        return False
    first = body[0] if body else None
    return isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)


@pytest.mark.parametrize("path", list(_tutorials()))
def test_tutorial_runs_as_a_notebook_that_unfolds(path, tmp_path):
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,  # per cell
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    seconds = time.perf_counter() - t0

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    with_output = [c for c in code if _outputs(c)]
    # unfolds: output under most cells (the first, the imports, has none)
    assert len(with_output) >= 0.6 * len(code), (
        f"{path.name}: only {len(with_output)} of {len(code)} code cells show output"
    )
    images = [o for c in code for o in _outputs(c) if "image/png" in o.get("data", {})]
    assert images, f"{path.name}: no figure is shown inline"
    stderr = [o["text"] for c in code for o in _outputs(c) if o.get("name") == "stderr"]
    assert not stderr, f"{path.name} wrote to stderr (progress bars, warnings):\n{stderr[0]}"
    for c in code:
        assert not _first_statement_is_a_string(c.source), (
            f"{path.name}: a code cell starts with a string, shown as the cell's value; "
            f"put narrative in markdown cells:\n{c.source[:200]}"
        )
        tree = ast.parse(c.source)
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert "main" not in defined, f"{path.name} defines main(): put its steps in cells"
    assert seconds < NOTEBOOK_BUDGET + SLACK, (
        f"{path.name} took {seconds:.1f} s as a notebook, budget {NOTEBOOK_BUDGET:.0f} s "
        f"(+{SLACK:.0f} s slack)"
    )
