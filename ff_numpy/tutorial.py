"""What the tutorials share: their command line, notebook or script, figures, exercises.

Every tutorial under ``tutorials/`` is read as a notebook first (jupytext percent format)
and also runs as a script. This module holds what they all need, so that a tutorial's own
code is the part worth reading:

* the command line (:func:`parser`): ``--quick``, ``--out``, ``--data-dir`` and, where a
  tutorial trains, ``--resume`` and ``--no-progress``, with the same meanings everywhere;
  :func:`parse_options` reads it in a script and picks the quick setting in a notebook;
* figures (:func:`show`, :func:`docs_figure`): saved to ``--out`` and shown inline in a
  notebook (their paths printed in a script), and the full runs' figures of
  ``docs/figures/``;
* exercises: the self-checks a student runs on a filled-in function
  (:func:`self_check`, one ``check_*`` function per exercise, listed in
  :data:`EXERCISES`), with :func:`rel_error` and :func:`numerical_gradient`;
* the printout of a run's history (:func:`print_history`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from ff_numpy import goodness as gd
from ff_numpy.layers import Dense
from ff_numpy.loss import Logistic
from ff_numpy.negatives import LabelCode
from ff_numpy.norm import normalize

REPOSITORY = Path(__file__).resolve().parent.parent  # the checkout, for an editable install


# ----------------------------------------------------------------------- notebook or script
def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (a notebook, or an editor's interactive
    window) rather than as a script (``python tutorials/NN_x.py`` or IPython's ``%run``)."""
    ipython = sys.modules.get("IPython")  # never imported here: a script need not have it
    shell = ipython.get_ipython() if ipython is not None else None
    # a Jupyter kernel's shell, or a subclass of it (Colab's)
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def parse_options(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """A tutorial's options: from the command line in a script, the quick setting in a
    notebook.

    A notebook has no command line of its own (its kernel's arguments, ``-f kernel.json``,
    are not the tutorial's), so there the options are those of ``--quick``, with
    ``no_progress`` set where the parser has it: tqdm's bars need ipywidgets to render in a
    notebook, and a quick run is over in seconds.

    Parameters
    ----------
    p : argparse.ArgumentParser
        From :func:`parser`.
    argv : list of str, optional
        The arguments of a script (default ``sys.argv[1:]``); ignored in a notebook.

    Returns
    -------
    argparse.Namespace
    """
    if not in_notebook():
        return p.parse_args(argv)
    opts = p.parse_args(["--quick"])
    if hasattr(opts, "no_progress"):
        opts.no_progress = True
    return opts


if in_notebook():
    # The library's progress bars come from tqdm.auto, which warns on import in a notebook
    # without ipywidgets ("IProgress not found"), even when no bar is ever drawn (a
    # notebook runs with --no-progress: see parse_options). Import it once, quietly.
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


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
        The tutorial's title (its first line is the description in ``--help``).
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


# ----------------------------------------------------------------------- figures
def show(figure, path=None, caption: str | None = None) -> None:
    """Save a figure and show it: inline in a notebook, its path printed in a script.

    Parameters
    ----------
    figure : matplotlib.figure.Figure or path-like
        A figure (drawn with the object interface, so it never opens a window), or a PNG
        file already written (by the library's :mod:`ff_numpy.plots`, or a full run's
        figure from :func:`docs_figure`).
    path : path-like, optional
        Where to save ``figure`` (required for a Figure; its folder is created).
    caption : str, optional
        Printed above the figure (say where it comes from, e.g. "full run").

    Returns None, so that a notebook shows no value under the cell.
    """
    if hasattr(figure, "savefig"):
        if path is None:
            raise ValueError("show(figure) needs the path to save the figure to")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110, bbox_inches="tight")
    else:
        path = Path(figure)
    if in_notebook():
        from IPython.display import Image, display

        if caption:
            print(caption)
        display(Image(filename=str(path)))
    else:
        print(f"{caption}: {path}" if caption else f"figure: {path}")


def docs_figure(name: str) -> Path | None:
    """A full run's figure, ``docs/figures/<name>`` of the repository, or None when the
    package was installed without its repository."""
    path = REPOSITORY / "docs" / "figures" / name
    return path if path.is_file() else None


def show_docs_figure(name: str, caption: str) -> None:
    """:func:`show` the full run's figure ``docs/figures/<name>`` with ``caption``; without
    the repository, say where to find it."""
    path = docs_figure(name)
    if path is None:
        print(f"{caption}: docs/figures/{name} in the project's repository")
        return
    show(path, caption=caption)


# ----------------------------------------------------------------------- ours vs the library
def layer_pairs(ours, library) -> list[tuple]:
    """``(what, ours, the library's, scale)`` for the ``W`` and ``b`` of each pair of
    layers, ``scale`` the largest weight of the library's layer: the pairs that
    :func:`assert_same` compares after a tutorial's hand-written steps."""
    return [
        (f"layer {l} {k}", a.params()[k], b.params()[k], float(np.abs(b.W).max()))
        for l, (a, b) in enumerate(zip(ours, library))
        for k in ("W", "b")
    ]


def assert_same(pairs, rel_tol: float = 1e-6) -> None:
    """Assert that ours and the library's arrays agree: for each ``(what, ours, theirs,
    scale)``, ``max |ours - theirs| <= rel_tol * scale`` (``scale`` None: the largest entry
    of ``theirs``). float32 steps that sum in another order agree to a few units of
    rounding of the largest value, not to the last bit."""
    for what, mine, theirs, scale in pairs:
        scale = float(np.abs(theirs).max()) if scale is None else scale
        diff, tol = float(np.abs(mine - theirs).max()), rel_tol * scale
        assert diff <= tol, f"{what}: ours and the library differ by {diff:.2e} > {tol:.2e}"


# ----------------------------------------------------------------------- exercises
# Every exercise of a tutorial is a function the student fills in (its stub raises
# NotImplementedError) and a self-check, a function here that takes the student's function
# and raises AssertionError, saying what is wrong, unless it is right. Solutions live in
# tutorials/solutions/; tests/test_exercises.py checks that every solution passes its check
# and every unfilled stub fails it.


def rel_error(ours, ref) -> float:
    """``|ours - ref| / (|ours| + |ref|)`` in the Euclidean norm (0 when both are zero)."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    denom = np.linalg.norm(ours) + np.linalg.norm(ref)
    return float(np.linalg.norm(ours - ref) / denom) if denom else 0.0


def numerical_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    r"""The gradient of the scalar function ``f`` at ``x`` by central differences.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2 h}

    Parameters
    ----------
    f : callable
        ``f(x) -> float``. For the gradient of a vector-valued function ``g`` folded with
        an upstream gradient ``d`` (a vector-Jacobian product), pass
        ``lambda x: np.sum(d * g(x))``.
    x : ndarray, float64
        Changed in place one entry at a time, and restored.
    h : float

    Returns
    -------
    grad : ndarray, shape of ``x``, float64
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def self_check(check, fn) -> None:
    """Run an exercise's self-check on the student's function ``fn``, in a notebook cell.

    Prints that ``fn`` passed (and what was checked), or, while ``fn`` is still the stub,
    that it is not filled in yet; a wrong answer raises the check's AssertionError, which
    says what is wrong. Returns None, so that a notebook shows no value under the cell.
    """
    try:
        checked = check(fn)
    except NotImplementedError:
        print(f"{fn.__name__}: not filled in yet. Write its body, run its cell, then this one.")
        return
    print(f"{fn.__name__}: passed ({checked})")


def _close(what: str, ours, ref, tol: float) -> None:
    """Assert ``rel_error(ours, ref) < tol``, printing ours vs the reference otherwise."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape}, expected {ref.shape}"
    err = rel_error(ours, ref)
    assert err < tol, (
        f"{what}: relative error {err:.2e} (tolerance {tol:.0e})\n"
        f"  yours:    {np.ravel(ours)[:5]}\n  expected: {np.ravel(ref)[:5]}"
    )


# Tutorial 01 ---------------------------------------------------------------------------
def check_eq1_loss(fn) -> str:
    """Self-check of tutorial 01's ``eq1_loss(G, theta, s) -> (L, dL_dG)``.

    Against the library's :class:`ff_numpy.loss.Logistic` (values) and central differences
    (the derivative), in float64, over several batches; then at goodness 1e5 away from the
    threshold, where the loss must stay finite with no overflow.
    """
    for seed, B in enumerate((1, 5, 12)):
        _check_eq1_loss_batch(fn, np.random.default_rng(seed), B)
    G = np.array([0.0, 0.0, 2e5, 2e5])  # G - theta = -1e5 or 1e5, for either sign
    s = np.array([1.0, -1.0, 1.0, -1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            L, dL_dG = fn(G, 1e5, s)
        except FloatingPointError as e:
            raise AssertionError(
                f"eq1_loss overflows at |G - theta| = 1e5 ({e}): write softplus with "
                "np.logaddexp and the sigmoid with scipy.special.expit"
            ) from None
    ref = Logistic()
    _close("L far from the threshold", L, ref.L(G, s, 1e5), 1e-12)
    _close("dL_dG far from the threshold", dL_dG, ref.dL_dG(G, s, 1e5), 1e-12)
    return "values and derivative vs the library and central differences; no overflow"


def _check_eq1_loss_batch(fn, rng: np.random.Generator, B: int) -> None:
    ref = Logistic()
    theta = 10.0
    G = rng.uniform(0, 3 * theta, B)
    s = np.where(rng.random(B) < 0.5, 1.0, -1.0)
    L, dL_dG = fn(G, theta, s)
    _close("L", L, ref.L(G, s, theta), 1e-12)
    _close("dL_dG", dL_dG, ref.dL_dG(G, s, theta), 1e-10)
    num = numerical_gradient(lambda g: float(np.sum(fn(g, theta, s)[0])), G.copy())
    _close("dL_dG against central differences of L", dL_dG, num, 1e-7)


def check_local_grads_unsquared(fn) -> str:
    """Self-check of tutorial 01's ``local_grads_unsquared(x, W, b, theta, s)``.

    The local gradient of one dense ReLU layer whose goodness is the sum of its activities
    (Sec. 10): against the library's parts (:class:`ff_numpy.goodness.Unsquared` and
    :meth:`ff_numpy.layers.Dense.local_grads`) and central differences of the loss, in
    float64, for several batch sizes and both kinds of rows.
    """
    for seed, B in enumerate((1, 4, 9)):
        _check_unsquared_batch(fn, np.random.default_rng(seed), B)
    return "dL_dW and dL_db vs the library's parts and central differences, batches of 1, 4, 9"


def _check_unsquared_batch(fn, rng: np.random.Generator, B: int) -> None:
    good, loss = gd.make_goodness("sum"), Logistic()
    layer = Dense(6, 5, rng, dtype=np.float64)
    layer.b[:] = 0.3 * rng.standard_normal(5)
    x = rng.standard_normal((B, 6))  # continuous: no pre-activation is exactly 0
    s = np.where(np.arange(B) % 2 == 0, 1.0, -1.0)  # positive and negative rows
    theta = 2.0
    y, cache = layer.forward(x)
    ref = layer.local_grads(cache, good.dL_dy(y, loss.dL_dG(good.G(y), s, theta)))
    W, b = layer.W.copy(), layer.b.copy()
    dL_dW, dL_db = fn(x, W.copy(), b.copy(), theta, s)
    _close("dL_dW (vs the library)", dL_dW, ref["W"], 1e-10)
    _close("dL_db (vs the library)", dL_db, ref["b"], 1e-10)

    def total(W, b):
        y = np.maximum(x @ W + b, 0)
        return float(loss.L(y.sum(axis=1), s, theta).sum())

    num_W = numerical_gradient(lambda W_: total(W_, b), W.copy())
    num_b = numerical_gradient(lambda b_: total(W, b_), b.copy())
    _close("dL_dW (vs central differences)", dL_dW, num_W, 1e-6)
    _close("dL_db (vs central differences)", dL_db, num_b, 1e-6)


# Tutorial 02 ---------------------------------------------------------------------------
def check_embed_label(fn) -> str:
    """Self-check of tutorial 02's ``embed_label(x, labels, n_classes)``.

    Against :class:`ff_numpy.negatives.LabelCode` on images whose label pixels hold old
    values, for 10 and 4 classes; the input must be left unchanged.
    """
    for seed, n_classes in enumerate((10, 4)):
        rng = np.random.default_rng(seed)
        x = rng.random((7, 784), dtype=np.float32)  # non-zero label pixels: overwrite them
        labels = rng.integers(0, n_classes, 7)
        before = x.copy()
        out = fn(x, labels, n_classes)
        assert np.array_equal(x, before), "embed_label changed its input x: write into a copy"
        ref = LabelCode.first_pixels(n_classes).embed(x, labels)
        assert out.shape == ref.shape, f"shape {out.shape}, expected {ref.shape}"
        assert np.array_equal(out[:, n_classes:], ref[:, n_classes:]), (
            f"the pixels after the first {n_classes} must be the image's, unchanged"
        )
        assert np.array_equal(out[:, :n_classes], ref[:, :n_classes]), (
            f"the first {n_classes} pixels must be a one-hot code of the label; row 0: "
            f"yours {out[0, :n_classes]}, expected {ref[0, :n_classes]} (label {labels[0]})"
        )
    return "one-hot code in the first pixels vs LabelCode, the rest and the input unchanged"


def check_normalize_rms(fn) -> str:
    """Self-check of tutorial 02's ``normalize_rms(y)``: against
    :func:`ff_numpy.norm.normalize` (``"rms"``) in float64, mean square 1 on every row,
    blind to the row's scale, and an all-zero row stays zero (no NaN, no warning)."""
    rng = np.random.default_rng(0)
    y = np.maximum(rng.standard_normal((6, 50)), 0)
    y[3] = 0.0  # every unit off
    before = y.copy()
    with np.errstate(all="raise"):
        try:
            out = fn(y)
        except FloatingPointError as e:
            raise AssertionError(
                f"normalize_rms divides by zero on an all-zero row ({e}): leave such a row at zero"
            ) from None
    assert np.array_equal(y, before), "normalize_rms changed its input: return a new array"
    assert np.all(np.isfinite(out)), "normalize_rms returned NaN or inf"
    assert np.all(out[3] == 0), "an all-zero row must stay all zero"
    _close("normalize_rms(y) (vs ff_numpy.norm.normalize)", out, normalize(y, "rms"), 1e-12)
    rows = np.arange(6) != 3
    _close("mean of squares of each row", np.mean(out[rows] ** 2, axis=1), np.ones(5), 1e-12)
    _close("normalize_rms(7 y) vs normalize_rms(y)", fn(7.0 * y), out, 1e-12)
    return "vs ff_numpy.norm.normalize, mean square 1, scale-free, zero rows stay zero"


def check_hard_wrong_labels(fn) -> str:
    """Self-check of tutorial 02's ``hard_wrong_labels(q, labels, rng)``.

    Many draws from a few rows of probabilities: never the true label, each wrong label as
    often as its share of the wrong labels' probability (within 5 standard deviations of
    a binomial count), uniform over the wrong labels where the model puts all its
    probability on the true one, and the same draws from the same seed.
    """
    q_rows = np.array(
        [
            [0.5, 0.3, 0.2, 0, 0, 0, 0, 0, 0, 0],  # true label 0: draw 1 (60%) or 2 (40%)
            [0.1] * 10,  # true label 3: the 9 others alike
            [0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0],  # all on the true label 7: uniform fallback
        ]
    )
    true = np.array([0, 3, 7])
    expected = q_rows.copy()
    expected[np.arange(3), true] = 0
    expected[2] = 1.0
    expected[2, 7] = 0
    expected /= expected.sum(axis=1, keepdims=True)
    n = 3000  # draws per row
    q = np.repeat(q_rows, n, axis=0)  # (3n, 10)
    labels = np.repeat(true, n)
    with np.errstate(divide="raise", invalid="raise"):
        try:
            wrong = np.asarray(fn(q, labels, np.random.default_rng(0)))
        except FloatingPointError as e:
            raise AssertionError(
                f"hard_wrong_labels divides by zero ({e}) on a row whose wrong labels all "
                "have probability 0: draw uniformly from the wrong labels there"
            ) from None
    assert wrong.shape == labels.shape, f"shape {wrong.shape}, expected {labels.shape}"
    assert np.issubdtype(wrong.dtype, np.integer), f"labels must be integers, got {wrong.dtype}"
    assert np.all((wrong >= 0) & (wrong < 10)), "labels must lie in 0..9"
    same = np.flatnonzero(wrong == labels)
    assert same.size == 0, f"{same.size} draws returned the true label (never allowed)"
    for r in range(3):
        counts = np.bincount(wrong[r * n : (r + 1) * n], minlength=10)
        sd = np.sqrt(n * expected[r] * (1 - expected[r]))
        off = np.abs(counts - n * expected[r]) > 5 * sd + 1e-9
        assert not off.any(), (
            f"row {r} (true label {true[r]}, q = {q_rows[r]}): counts of each label "
            f"{counts}, expected about {np.round(n * expected[r]).astype(int)}"
        )
    again = np.asarray(fn(q, labels, np.random.default_rng(0)))
    assert np.array_equal(again, wrong), "the same seed must give the same draws: use rng"
    return "never the true label, frequencies in proportion to q, uniform fallback, seeded"


# Tutorial 03 ---------------------------------------------------------------------------
def _one_shot_case(rng: np.random.Generator, n_in: int, n_out: int, mask=None):
    """A float64 ReLU layer ``(W, b)`` (zero outside ``mask``), an input ``u`` that is not
    normalised, and the layer's activities ``y`` for it, with some unit on."""
    while True:
        W = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        if mask is not None:
            W *= mask
        b = 0.3 * rng.standard_normal(n_out)
        u = 3.0 * rng.standard_normal(n_in)  # |u|^2 about 9 n_in, not n_in: no shortcut
        y = np.maximum(u @ W + b, 0)
        if np.count_nonzero(y) >= 2:
            return W, b, u, y


def _assert_lands_on_target(what: str, y, y_new, S_star: float) -> None:
    """The new goodness is ``S_star`` and the normalised output has not changed."""
    G_new = float(y_new @ y_new)
    assert abs(G_new - S_star) <= 1e-9 * S_star, (
        f"{what}: after the step the goodness is {G_new:.6g}, the target {S_star:.6g} "
        f"(it was {float(y @ y):.6g}). The step must multiply every active unit by "
        "sqrt(S*/S_L): each unit's pre-activation changes by c y_j |u_aug|^2, with "
        "|u_aug|^2 = |u|^2 + 1 (the bias is a weight on a constant input 1)"
    )
    _close(f"{what}: the normalised output after the step", normalize(y_new[None], "rms"),
           normalize(y[None], "rms"), 1e-10)  # fmt: skip


def check_one_shot_step(fn) -> str:
    """Self-check of tutorial 03's ``one_shot_step(W, b, u, S_star) -> (dW, db)``.

    On float64 dense layers of several sizes, inputs that are not normalised and targets
    above and below the current goodness: the goodness for ``u`` after the step is
    ``S_star``, the normalised output is unchanged, the step equals
    :func:`ff_numpy.fast.one_shot_layer_update`'s, and the arguments are left unchanged.
    """
    from ff_numpy import fast

    for seed, (n_in, n_out) in enumerate(((6, 5), (9, 7), (20, 13))):
        rng = np.random.default_rng(seed)
        W, b, u, y = _one_shot_case(rng, n_in, n_out)
        for ratio in (2.5, 0.3):
            S_star = ratio * float(y @ y)
            args = (W.copy(), b.copy(), u.copy())
            dW, db = fn(*args, S_star)
            assert all(np.array_equal(a, c) for a, c in zip(args, (W, b, u))), (
                "one_shot_step changed W, b or u: return the update, leave them as they are"
            )
            dW, db = np.asarray(dW), np.asarray(db)
            assert dW.shape == W.shape, f"dW has shape {dW.shape}, expected {W.shape}"
            assert db.shape == b.shape, f"db has shape {db.shape}, expected {b.shape}"
            y_new = np.maximum(u @ (W + dW) + b + db, 0)
            _assert_lands_on_target(f"layer {n_in} -> {n_out}, S* = {ratio} S_L", y, y_new, S_star)
            layer = Dense(n_in, n_out, rng, dtype=np.float64)
            layer.W[...], layer.b[...] = W, b
            ref = fast.one_shot_layer_update(layer, u, S_star)
            _close("dW (vs fast.one_shot_layer_update)", dW, ref.dW, 1e-10)
            _close("db (vs fast.one_shot_layer_update)", db, ref.db, 1e-10)
    return "lands on the target, orientation unchanged, equal to fast.one_shot_layer_update"


def check_masked_coefficients(fn) -> str:
    """Self-check of tutorial 03's ``masked_coefficients(u, S_L, S_star, mask)``.

    On float64 masked layers (random 0/1 receptive fields, ``W`` zero outside them) and
    targets above and below the current goodness: the step ``dW = outer(u, c y) * mask``,
    ``db = c y`` lands on the target with the normalised output unchanged, and ``c``
    equals :func:`ff_numpy.fast.one_shot_coefficient` with the mask.
    """
    from ff_numpy import fast

    for seed, (n_in, n_out) in enumerate(((12, 6), (30, 11))):
        rng = np.random.default_rng(seed)
        mask = (rng.random((n_in, n_out)) < 0.4).astype(np.float64)
        mask[rng.integers(0, n_in, n_out), np.arange(n_out)] = 1  # every unit sees something
        W, b, u, y = _one_shot_case(rng, n_in, n_out, mask)
        S_L = float(y @ y)
        for ratio in (2.0, 0.4):
            S_star = ratio * S_L
            c = np.asarray(fn(u.copy(), S_L, S_star, mask.copy()), dtype=np.float64)
            assert c.shape == (n_out,), f"c has shape {c.shape}, expected ({n_out},): one per unit"
            dW, db = np.outer(u, c * y) * mask, c * y
            y_new = np.maximum(u @ (W + dW) + b + db, 0)
            what = f"masked layer {n_in} -> {n_out}, S* = {ratio} S_L"
            try:
                _assert_lands_on_target(what, y, y_new, S_star)
            except AssertionError as err:
                raise AssertionError(
                    f"{err}\n  On a masked layer unit j sees only the inputs of its field: "
                    "its own |u_aug|^2 is sum_i mask[i, j] u_i^2 + 1"
                ) from None
            ref = fast.one_shot_coefficient(u, S_L, S_star, mask=mask)
            _close("c (vs fast.one_shot_coefficient with the mask)", c, ref, 1e-10)
    return "every unit scaled alike, lands on the target, equal to fast.one_shot_coefficient"


# Tutorial 04 ---------------------------------------------------------------------------
def check_quantise(fn) -> str:
    """Self-check of tutorial 04's ``quantise(h, levels)``.

    Against :class:`ff_numpy.blackbox.BlackBox` without permutation or noise, in float64,
    for 2, 4 and 7 levels, on rows of ReLU activities, one of them all zero (which must
    stay zero, with no division by zero); the input must be left unchanged.
    """
    from ff_numpy.blackbox import BlackBox

    rng = np.random.default_rng(0)
    h = np.maximum(rng.standard_normal((6, 30)), 0)
    h[3] = 0.0  # every unit off
    before = h.copy()
    for levels in (2, 4, 7):
        with np.errstate(all="raise"):
            try:
                z = np.asarray(fn(h, levels))
            except FloatingPointError as e:
                raise AssertionError(
                    f"quantise divides by zero on an all-zero row ({e}): leave it at zero"
                ) from None
        assert np.array_equal(h, before), "quantise changed its input: return a new array"
        assert z.shape == h.shape, f"shape {z.shape}, expected {h.shape}"
        assert np.all(z[3] == 0), "an all-zero row must stay all zero"
        box = BlackBox(h.shape[1], rng, levels=levels, noise=0.0, permute=False)
        ref = box(h, rng)
        distinct = max(len(np.unique(row)) for row in z)
        assert distinct <= levels, f"a row of the output takes {distinct} values, > {levels}"
        _close(f"quantise(h, {levels}) (vs BlackBox without permutation or noise)", z, ref, 1e-12)
    return "vs BlackBox for 2, 4 and 7 levels; zero rows stay zero; input unchanged"


def check_permutation_backward(fn) -> str:
    """Self-check of tutorial 04's ``permutation_backward(dL_dz, perm)``: against central
    differences of ``sum(dL_dz * h[:, perm])`` with respect to ``h``, in float64, for
    permutations of 5 and 12 units."""
    for seed, n in enumerate((5, 12)):
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        dL_dz = rng.standard_normal((3, n))
        out = np.asarray(fn(dL_dz.copy(), perm.copy()))
        assert out.shape == dL_dz.shape, f"shape {out.shape}, expected {dL_dz.shape}"
        h = rng.standard_normal((3, n))
        num = numerical_gradient(lambda h_, d=dL_dz, p=perm: float(np.sum(d * h_[:, p])), h)
        _close(f"dL/dh for a permutation of {n} units (vs central differences)", out, num, 1e-8)
    return "dL/dh vs central differences, permutations of 5 and 12 units"


# Tutorial 05 ---------------------------------------------------------------------------
def check_softmax_cross_entropy(fn) -> str:
    """Self-check of tutorial 05's ``softmax_cross_entropy(z, labels) -> (L, dL_dz)``.

    Against :func:`ff_numpy.backprop.softmax_cross_entropy` and central differences of
    ``L``, in float64, for several batch and class sizes; then at logits of +-1e4, where
    the loss must stay finite with no overflow.
    """
    from ff_numpy.backprop import softmax_cross_entropy

    for seed, (B, C) in enumerate(((1, 10), (5, 10), (7, 4))):
        rng = np.random.default_rng(seed)
        z = 3.0 * rng.standard_normal((B, C))
        labels = rng.integers(0, C, B)
        L, dL_dz = fn(z.copy(), labels)
        L_ref, dL_dz_ref = softmax_cross_entropy(z, labels)
        _close(f"L (B={B}, C={C}; vs ff_numpy.backprop)", float(L), L_ref, 1e-12)
        _close(f"dL_dz (B={B}, C={C}; vs ff_numpy.backprop)", dL_dz, dL_dz_ref, 1e-10)
        num = numerical_gradient(lambda z_, t=labels: float(fn(z_, t)[0]), z.copy())
        _close("dL_dz (vs central differences of L)", dL_dz, num, 1e-7)
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]])
    labels = np.array([2, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            L, dL_dz = fn(z, labels)
        except FloatingPointError as e:
            raise AssertionError(
                f"softmax_cross_entropy overflows at logits of 1e4 ({e}): subtract each row's "
                "maximum before exponentiating, or use scipy.special.log_softmax"
            ) from None
    L_ref, dL_dz_ref = softmax_cross_entropy(z, labels)
    _close("L at logits of +-1e4", float(L), L_ref, 1e-12)
    _close("dL_dz at logits of +-1e4", dL_dz, dL_dz_ref, 1e-12)
    return "L and dL_dz vs ff_numpy.backprop and central differences; no overflow"


def check_layer_backward(fn) -> str:
    """Self-check of tutorial 05's ``layer_backward(h, W, b, dL_dy) -> (dL_dh, dL_dW,
    dL_db)`` for ``y = relu(h W + b)``: all three against central differences of
    ``sum(dL_dy * y)``, in float64, for several batch and layer sizes (CS231n's gradient
    check)."""
    for seed, (B, n_in, n_out) in enumerate(((1, 4, 3), (4, 6, 5), (9, 7, 8))):
        rng = np.random.default_rng(seed)
        h = rng.standard_normal((B, n_in))  # continuous: no pre-activation is exactly 0
        W = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        b = 0.3 * rng.standard_normal(n_out)
        dL_dy = rng.standard_normal((B, n_out))
        out = fn(h.copy(), W.copy(), b.copy(), dL_dy.copy())
        assert len(out) == 3, "return three arrays: dL_dh, dL_dW, dL_db"
        dL_dh, dL_dW, dL_db = (np.asarray(a) for a in out)

        def f(h_, W_, b_, d=dL_dy):
            return float(np.sum(d * np.maximum(h_ @ W_ + b_, 0)))

        checks = (
            ("dL_dh", dL_dh, numerical_gradient(lambda v, W=W, b=b: f(v, W, b), h.copy())),
            ("dL_dW", dL_dW, numerical_gradient(lambda v, h=h, b=b: f(h, v, b), W.copy())),
            ("dL_db", dL_db, numerical_gradient(lambda v, h=h, W=W: f(h, W, v), b.copy())),
        )
        for what, ours, num in checks:
            _close(f"{what} (B={B}, {n_in} -> {n_out}; vs central differences)", ours, num, 1e-6)
    return "dL_dh, dL_dW and dL_db vs central differences, three layer sizes"


# Tutorial 08 ---------------------------------------------------------------------------
def check_shift_then_label(fn) -> str:
    """Self-check of tutorial 08's ``shift_then_label(x, labels, dr, dc)``.

    Against the library's shifts (:func:`ff_numpy.negatives.all_shifts`, those of
    :func:`~ff_numpy.negatives.jitter`) followed by :class:`~ff_numpy.negatives.LabelCode`,
    exactly, for every shift with ``|dr|, |dc| <= 3`` (some push ink across the border);
    the images' old label pixels are not zero, and the input must be left unchanged.
    """
    from ff_numpy.negatives import all_shifts

    rng = np.random.default_rng(0)
    shifts = [(r, c) for r in range(-3, 4) for c in range(-3, 4)]
    B = len(shifts)
    x = (rng.random((B, 784)) * (rng.random((B, 784)) < 0.5)).astype(np.float32)
    x[:, :28] = rng.random((B, 28))  # ink on the top row, the label's and the next ones
    labels = rng.integers(0, 10, B)
    dr, dc = np.array([s[0] for s in shifts]), np.array([s[1] for s in shifts])
    before = x.copy()
    out = np.asarray(fn(x, labels.copy(), dr.copy(), dc.copy()))
    assert np.array_equal(x, before), "shift_then_label changed its input x: write into a copy"
    assert out.shape == x.shape, f"shape {out.shape}, expected {x.shape}"
    moved = {(r, c): xs for r, c, xs in all_shifts(x, 3)}
    shifted = np.stack([moved[s][n] for n, s in enumerate(shifts)])
    ref = LabelCode.first_pixels(10).embed(shifted, labels)
    label_ok = np.array_equal(out[:, :10], ref[:, :10])
    assert label_ok, (
        "the first 10 pixels must hold the one-hot label and nothing else, whatever the shift "
        "brought there: write the label after the shift"
    )
    for n, (r, c) in enumerate(shifts):
        if not np.array_equal(out[n, 10:], ref[n, 10:]):
            rolled = np.roll(x[n].reshape(28, 28), (r, c), axis=(0, 1)).ravel()
            hint = (
                " (np.roll wraps round: what leaves one side must not come back on the other)"
                if np.array_equal(out[n, 10:], rolled[10:])
                else ""
            )
            raise AssertionError(
                f"image {n}, shift (dr, dc) = ({r:+d}, {c:+d}): the pixels after the label are "
                f"not the image moved {r:+d} rows down and {c:+d} columns right with zeros "
                f"shifted in{hint}"
            )
    return "every shift with |dr|, |dc| <= 3 vs the library's, the label written after it"


def check_scores_over_shifts(fn) -> str:
    """Self-check of tutorial 08's ``scores_over_shifts(net, x, max_shift)``: against
    :meth:`ff_numpy.model.FFNet.goodness_per_label` with ``shifts``, on a small random
    float64 net, for shifts of up to 1 and 2 pixels."""
    from ff_numpy.model import FFNet

    rng = np.random.default_rng(0)
    net = FFNet(784, [30, 20], rng, dtype=np.float64)
    x = rng.random((6, 784)) * (rng.random((6, 784)) < 0.3)
    for s in (1, 2):
        out = np.asarray(fn(net, x.copy(), s))
        ref = net.goodness_per_label(x, shifts=s)
        assert out.shape == ref.shape, f"shape {out.shape}, expected {ref.shape}"
        _close(f"scores summed over the {(2 * s + 1) ** 2} shifts of up to {s}", out, ref, 1e-10)
    return "vs FFNet.goodness_per_label(x, shifts=s) for s = 1 and 2"


# Tutorial 06 ---------------------------------------------------------------------------
def check_blur_mask(fn) -> str:
    """Self-check of tutorial 06's ``blur_mask(bits, n_blur)``.

    Fed the random bits that :func:`ff_numpy.negatives.hybrid_masks` draws from the same
    seed, for 0, 1, 2, 8 and 20 blurs and a non-square image: the masks must be those of
    ``hybrid_masks`` (at most 0.1% of the pixels may differ, for a value that lands on 0.5
    up to rounding), boolean, and the input left unchanged.
    """
    from ff_numpy.negatives import hybrid_masks

    for n_blur, shape in ((0, (28, 28)), (1, (28, 28)), (2, (28, 28)), (8, (28, 28)),
                          (20, (28, 28)), (3, (12, 20))):  # fmt: skip
        seed = [6, n_blur, shape[1]]
        bits = (np.random.default_rng(seed).random((20, *shape)) < 0.5).astype(np.float32)
        before = bits.copy()
        out = np.asarray(fn(bits, n_blur))
        assert np.array_equal(bits, before), "blur_mask changed its input: blur a copy"
        ref = hybrid_masks(20, np.random.default_rng(seed), shape, n_blur)
        assert out.shape == ref.shape, f"shape {out.shape}, expected {ref.shape}"
        assert out.dtype == bool, f"the masks must be booleans (m > 0.5), got {out.dtype}"
        differ = float(np.mean(out != ref))
        hint = (
            "the threshold is m > 0.5 of the bits themselves"
            if n_blur == 0
            else "blur along every row and then every column, [1/4, 1/2, 1/4] each time, "
            "with the border pixel as its own missing neighbour (np.pad mode='symmetric')"
        )
        assert differ <= 1e-3, (
            f"{n_blur} blurs of {shape} images: {100 * differ:.1f}% of the pixels differ from "
            f"hybrid_masks'; {hint}"
        )
    return "the masks of hybrid_masks from the same bits, 0 to 20 blurs, square or not"


def _run_length(masks: np.ndarray) -> float:
    """Mean length of the runs of equal values along the rows of (n, H, W) masks."""
    H, W = masks.shape[1:]
    changes = (masks[:, :, 1:] != masks[:, :, :-1]).sum(axis=(1, 2))
    return float(np.mean(H * W / (changes + H)))


def check_make_hybrids(fn) -> str:
    """Self-check of tutorial 06's ``make_hybrids(x, rng) -> (hybrids, masks, partner)``.

    On a batch of random images whose pixels all differ (so that every pixel tells its
    parent): every hybrid pixel from the parent its mask names, no image paired with
    itself, partners spread over the batch, masks with large regions (mean run along a
    row of 4 pixels or more, about half ones), the same hybrids from the same seed, and
    the images left unchanged.
    """
    rng = np.random.default_rng(0)
    B = 200
    x = rng.random((B, 784), dtype=np.float32)
    before = x.copy()
    hybrids, masks, partner = (np.asarray(a) for a in fn(x, np.random.default_rng(1)))
    assert np.array_equal(x, before), "make_hybrids changed the images: return new arrays"
    assert hybrids.shape == x.shape, f"hybrids: shape {hybrids.shape}, expected {x.shape}"
    assert masks.shape == x.shape, f"masks: shape {masks.shape}, expected {x.shape}"
    assert masks.dtype == bool, f"masks must be booleans, got {masks.dtype}"
    assert partner.shape == (B,), f"partner: shape {partner.shape}, expected ({B},)"
    assert np.issubdtype(partner.dtype, np.integer), f"partner must be ints, got {partner.dtype}"
    assert np.all((partner >= 0) & (partner < B)), "partner must index the batch"
    self_paired = int(np.sum(partner == np.arange(B)))
    for seed in range(40):  # small batches too, where a self-pairing would be frequent
        small = np.asarray(fn(x[:3], np.random.default_rng([1, seed]))[2])
        self_paired += int(np.sum(small == np.arange(3)))
    assert self_paired == 0, (
        f"{self_paired} images were paired with themselves: their hybrid is a real image"
    )
    assert len(np.unique(partner)) > B // 2, (
        f"only {len(np.unique(partner))} different partners among {B} images: draw each "
        "partner at random from the other images"
    )
    expected = np.where(masks, x, x[partner])
    assert np.array_equal(hybrids, expected), (
        "row i of hybrids must be image i where masks[i] is true and image partner[i] elsewhere"
    )
    runs = _run_length(masks.reshape(B, 28, 28))
    assert runs >= 4, (
        f"the masks' regions run only {runs:.1f} pixels along a row: blur the random bits "
        "before thresholding (hybrid_masks does), so that every patch stays a real patch"
    )
    assert 0.35 < masks.mean() < 0.65, f"{100 * masks.mean():.0f}% ones: expected about half"
    again = fn(x, np.random.default_rng(1))
    assert np.array_equal(np.asarray(again[0]), hybrids), (
        "the same seed must give the same hybrids: draw every random number from rng"
    )
    other = fn(x, np.random.default_rng(2))
    assert not np.array_equal(np.asarray(other[0]), hybrids), (
        "another seed gave the same hybrids: draw the partners and masks from rng"
    )
    return "each pixel from the named parent, never itself, large regions, seeded"


# Tutorial 07 ---------------------------------------------------------------------------
def check_grid_field(fn) -> str:
    """Self-check of tutorial 07's ``grid_field(loc, in_grid, in_channels, grid, k)``.

    Every location of the paper's layers 2 and 3 and of two other geometries (grids that
    are not square, ``k = 3``) against :func:`ff_numpy.masks.grid_fields`.
    """
    from ff_numpy.masks import grid_fields

    cases = [
        ((4, 4), 128, (3, 3), 2),  # the paper's layer 2
        ((3, 3), 220, (2, 2), 2),  # the paper's layer 3
        ((3, 5), 3, (2, 4), 2),  # grids that are not square
        ((4, 6), 2, (2, 4), 3),  # squares of 3 x 3 locations
    ]
    for in_grid, C, grid, k in cases:
        ref = grid_fields(in_grid, C, grid, k, channels=1)
        for loc in range(ref.n_loc):
            out = np.asarray(fn(loc, in_grid, C, grid, k))
            expected = ref.fields[loc]
            what = f"location {loc} of a {grid} grid over {in_grid} x {C} units, k = {k}"
            assert out.shape == expected.shape, (
                f"{what}: {out.size} inputs, expected {expected.size} (k * k * in_channels)"
            )
            assert np.array_equal(out, expected), (
                f"{what}:\n  yours:    {out[:6]} ... {out[-3:]}\n  expected: {expected[:6]} ... "
                f"{expected[-3:]}\n  (unit c of location (r, q) below is (r * Gw + q) * C + c; "
                "sorted)"
            )
    return "every location of the paper's layers 2 and 3 and of two other geometries"


def check_peer_term(fn) -> str:
    """Self-check of tutorial 07's ``peer_term(mean, y_pos, strength, rho)``.

    Against :class:`ff_numpy.norm.PeerNorm` (``update`` then ``dL_da / B`` on every row)
    for two settings, on activities with a dead unit and many zeros; ``mean`` must be left
    unchanged and the dead unit must get a negative term on every row.
    """
    from ff_numpy.norm import PeerNorm

    rng = np.random.default_rng(0)
    for strength, rho, B, n in ((0.03, 0.9, 8, 12), (0.5, 0.7, 3, 5)):
        mean = rng.uniform(0.1, 1.0, n)
        y_pos = np.maximum(rng.standard_normal((B, n)), 0)
        y_pos[:, 1] = 0  # a dead unit
        mean[1] = 0.05
        before = mean.copy()
        new_mean, term = (np.asarray(a, dtype=np.float64) for a in fn(mean, y_pos, strength, rho))
        assert np.array_equal(mean, before), "peer_term changed mean: return the new means"
        ref = PeerNorm(n, strength, rho)
        ref.mean[...] = before
        ref.update(y_pos)
        _close("the new running means", new_mean, ref.mean, 1e-12)
        assert term.shape == (B, n), f"term: shape {term.shape}, expected (B, n) = {(B, n)}"
        expected = np.tile(ref.dL_da() / B, (B, 1))
        _close("the term added to dL/da (strength (m_j - mean(m)) / B, new means)", term,
               expected, 1e-12)  # fmt: skip
        assert np.all(term[:, 1] < 0), (
            "the dead unit (off on every row) must get a negative term on every row: the "
            "term is added whether the unit is on or off"
        )
    return "running means and the term vs PeerNorm, a dead unit pulled up, mean unchanged"


# Tutorial 09 ---------------------------------------------------------------------------
def check_alternating_iteration(fn) -> str:
    """Self-check of tutorial 09's ``alternating_iteration(ys, X, lab, p, d)``.

    On float64 nets of 2, 3 and 4 hidden layers (small random biases), every label: from
    the bottom-up iteration 0, eight calls must give every layer the goodness that
    :meth:`ff_numpy.recurrent.RecurrentFFNet.goodness_trace` (``per_layer=True``) reports
    for the alternating schedule at every iteration; ``ys`` must be left unchanged.
    """
    from ff_numpy.recurrent import RecurrentFFNet

    for hidden in ([4, 3], [5, 4, 3], [4, 4, 4, 4]):
        rng = np.random.default_rng([9, len(hidden)])
        net = RecurrentFFNet(7, hidden, 3, rng, schedule="alternating", dtype=np.float64)
        for up in net.up:
            up.b[...] = 0.3 * rng.standard_normal(up.b.shape)
        x = rng.random((4, 7))
        G_ref = net.goodness_trace(x, per_layer=True)  # (N, labels, iterations, layers)
        p = {}
        for l in range(len(hidden)):
            p[f"up{l}.W"], p[f"up{l}.b"] = net.up[l].W, net.up[l].b
            p[f"down{l}.W"] = net.down[l].W
        X = normalize(x, "rms")
        for k in range(3):
            lab = normalize(np.eye(3)[np.full(4, k)], "rms")
            ys = []
            for l in range(len(hidden)):  # iteration 0: bottom-up, no label
                below = X if l == 0 else normalize(ys[-1], "rms")
                ys.append(np.maximum(below @ p[f"up{l}.W"] + p[f"up{l}.b"], 0))
            for t in range(1, 9):
                before = [y.copy() for y in ys]
                new = fn(ys, X, lab, {key: v.copy() for key, v in p.items()}, net.damping)
                assert all(np.array_equal(a, b) for a, b in zip(ys, before)), (
                    "alternating_iteration changed the states it was given: return new arrays"
                )
                assert len(new) == len(hidden), f"{len(new)} states for {len(hidden)} layers"
                for l, y in enumerate(new):
                    G = np.sum(np.asarray(y, dtype=np.float64) ** 2, axis=1)
                    ref = G_ref[:, k, t - 1, l]
                    err = rel_error(G, ref)
                    assert err < 1e-10, (
                        f"{len(hidden)} hidden layers, label {k}, iteration {t}: the goodness "
                        f"of hidden layer {l + 1} (Fig. 3 numbering) is {G[:3]}, expected "
                        f"{ref[:3]}.\n  Update the even layers (0-based l = 1, 3, ...) from "
                        "the current states first, then the odd ones (l = 0, 2, ...) from the "
                        "new states, each y <- d y + (1 - d) relu(a)"
                    )
                ys = [np.asarray(y) for y in new]
    return "every layer's goodness at 8 iterations vs RecurrentFFNet, 2 to 4 layers, all labels"


def check_predict_by_goodness(fn) -> str:
    """Self-check of tutorial 09's ``predict_by_goodness(G, window, objective)``.

    On random goodness traces: the labels equal the best of the window's mean for several
    windows and both objectives, and their errors equal those of
    :func:`ff_numpy.experiments.recurrent.iteration_report` for every window it measures;
    ``G`` is left unchanged.
    """
    from ff_numpy.experiments.recurrent import iteration_report

    rng = np.random.default_rng(0)
    G = rng.random((300, 10, 8))
    y = rng.integers(0, 10, 300)
    before = G.copy()
    for objective in ("min", "max"):
        pick = np.argmin if objective == "min" else np.argmax
        report = iteration_report(G, y, objective)["error_by_window"]
        for key, lib_error in report.items():
            lo, hi = (int(i) for i in key.split("-"))
            with np.errstate(all="raise"):
                try:
                    labels = np.asarray(fn(G, (lo, hi), objective))
                except FloatingPointError as e:
                    raise AssertionError(
                        f"window {key}: {e} (an empty window?). Iterations lo..hi are counted "
                        "from 1 and both included: G[:, :, lo - 1 : hi]"
                    ) from None
            assert np.array_equal(G, before), "predict_by_goodness changed G"
            assert labels.shape == y.shape, f"shape {labels.shape}, expected {y.shape}"
            expected = pick(G[:, :, lo - 1 : hi].mean(axis=2), axis=1)
            wrong = int(np.sum(labels != expected))
            assert wrong == 0, (
                f"objective {objective!r}, window {key}: {wrong} of {len(y)} labels differ from "
                f"the {'lowest' if objective == 'min' else 'highest'} mean goodness over "
                f"iterations {lo} to {hi} (counted from 1, both included)"
            )
            _close(f"error of window {key} vs iteration_report", np.mean(labels != y),
                   lib_error, 1e-12)  # fmt: skip
    return "every window of iteration_report, both objectives, G unchanged"


# Tutorial 10 ---------------------------------------------------------------------------
def check_fan_in_map(fn) -> str:
    """Self-check of tutorial 10's ``fan_in_map(H, W, C, k)``.

    Against the field sizes of :func:`ff_numpy.masks.same_size_fields` for the paper's
    CIFAR-10 maps and for maps that are not square, a single channel, ``k = 1`` and a
    field wider than the map.
    """
    from ff_numpy.masks import same_size_fields

    cases = [(32, 32, 3, 11), (5, 7, 2, 3), (6, 4, 1, 5), (3, 8, 4, 9), (4, 4, 3, 1)]
    for H, W, C, k in cases:
        ref = same_size_fields((H, W, C), 1, k).field_sizes().reshape(H, W)
        out = np.asarray(fn(H, W, C, k))
        what = f"a {H} x {W} x {C} map, {k} x {k} fields"
        assert out.shape == (H, W), f"{what}: shape {out.shape}, expected {(H, W)}"
        wrong = np.argwhere(out != ref)
        assert wrong.size == 0, (
            f"{what}: {len(wrong)} locations wrong, e.g. location {tuple(wrong[0])}: "
            f"{out[tuple(wrong[0])]}, expected {ref[tuple(wrong[0])]} (corner {ref[0, 0]}, "
            f"middle {ref[H // 2, W // 2]}).\n  A location in row r sees the rows "
            "max(r - k // 2, 0) .. min(r + k // 2, H - 1), every channel of each"
        )
    return "the paper's maps and four other geometries, every location"


def check_location_weight_grad(fn) -> str:
    """Self-check of tutorial 10's ``location_weight_grad(x, dL_da, r, q, shape, k)``.

    Against the rows of :meth:`ff_numpy.locally_connected.Local.weight_grad` (float64)
    that belong to each location: the corners, edges and middle of the paper's CIFAR-10
    shapes, and every location of three small geometries (channels that differ, a field
    wider than the map); ``x`` and ``dL_da`` must be left unchanged.
    """
    from ff_numpy.locally_connected import Local
    from ff_numpy.masks import same_size_fields

    cases = [  # (H, W, C_in), C_out, k, locations (None: all)
        ((32, 32, 3), 3, 11, [(0, 0), (0, 16), (16, 0), (16, 16), (31, 31), (5, 26)]),
        ((6, 7, 2), 3, 3, None),
        ((5, 5, 3), 2, 5, None),
        ((3, 4, 1), 4, 9, None),
    ]
    rng = np.random.default_rng(10)
    for shape, C_out, k, spots in cases:
        H, W, C_in = shape
        layer = Local(same_size_fields(shape, C_out, k), rng, dtype=np.float64)
        x = rng.standard_normal((5, H * W * C_in))
        dL_da = rng.standard_normal((5, H * W * C_out))
        x_before, d_before = x.copy(), dL_da.copy()
        ref = layer.weight_grad(x, dL_da)  # (n_pairs, C_out)
        f = layer.fields
        for r, q in spots or [(r, q) for r in range(H) for q in range(W)]:
            loc = r * W + q
            expected = ref[f.indptr[loc] : f.indptr[loc + 1]]
            out = np.asarray(fn(x, dL_da, r, q, shape, k))
            assert np.array_equal(x, x_before) and np.array_equal(dL_da, d_before), (
                "location_weight_grad changed x or dL_da"
            )
            what = f"location ({r}, {q}) of a {H} x {W} x {C_in} map, {k} x {k} fields"
            assert out.shape == expected.shape, (
                f"{what}: shape {out.shape}, expected {expected.shape} (inputs of the field, "
                "units of the location)"
            )
            _close(what, out, expected, 1e-12)
    return "the paper's shapes and three small geometries vs Local.weight_grad"


# Each tutorial's exercises: the function the student fills in, by name, and its check.
EXERCISES = {
    "01_goodness_and_one_layer": {
        "eq1_loss": check_eq1_loss,
        "local_grads_unsquared": check_local_grads_unsquared,
    },
    "02_supervised_mnist": {
        "embed_label": check_embed_label,
        "normalize_rms": check_normalize_rms,
        "hard_wrong_labels": check_hard_wrong_labels,
    },
    "06_unsupervised_hybrid_negatives": {
        "blur_mask": check_blur_mask,
        "make_hybrids": check_make_hybrids,
    },
    "07_local_receptive_fields": {
        "grid_field": check_grid_field,
        "peer_term": check_peer_term,
    },
    "09_recurrent_top_down": {
        "alternating_iteration": check_alternating_iteration,
        "predict_by_goodness": check_predict_by_goodness,
    },
    "03_learning_fast": {
        "one_shot_step": check_one_shot_step,
        "masked_coefficients": check_masked_coefficients,
    },
    "04_black_box": {
        "quantise": check_quantise,
        "permutation_backward": check_permutation_backward,
    },
    "05_ff_vs_backprop": {
        "softmax_cross_entropy": check_softmax_cross_entropy,
        "layer_backward": check_layer_backward,
    },
    "08_jittered_mnist": {
        "shift_then_label": check_shift_then_label,
        "scores_over_shifts": check_scores_over_shifts,
    },
    "10_cifar10_local_fields": {
        "fan_in_map": check_fan_in_map,
        "location_weight_grad": check_location_weight_grad,
    },
}
