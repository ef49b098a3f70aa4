"""The tutorials' exercises: every solution passes its self-check, every unfilled stub fails.

The exercises of each tutorial are listed in :data:`ff_numpy.tutorial.EXERCISES` (the
function the student fills in, by name, and its self-check). The stubs are read from the
tutorial file itself: its top-level functions whose body only raises
``NotImplementedError``, compiled without running the tutorial. The solutions are
``tutorials/solutions/tutorial_NN.py``. Also checked: every stub has a check and a
solution of the same signature, the tutorial runs the check in the cell after the stub,
and the checks catch common mistakes.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect

import numpy as np
import pytest
from helpers import TUTORIALS
from scipy.special import expit

from ff_numpy import tutorial

SOLUTIONS = TUTORIALS / "solutions"
CASES = [(stem, name) for stem, exercises in tutorial.EXERCISES.items() for name in exercises]


def _is_stub(node: ast.stmt) -> bool:
    """A function whose body is an optional docstring and ``raise NotImplementedError``."""
    if not isinstance(node, ast.FunctionDef):
        return False
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    exc = body[0].exc
    target = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"


def stubs(stem: str) -> dict:
    """The exercise stubs of ``tutorials/<stem>.py``, by name, compiled on their own."""
    path = TUTORIALS / f"{stem}.py"
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if _is_stub(node):
            namespace = {"np": np}
            code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
            exec(code, namespace)
            found[node.name] = namespace[node.name]
    return found


def solutions(stem: str):
    """The module ``tutorials/solutions/tutorial_NN.py`` of ``tutorials/<stem>.py``."""
    path = SOLUTIONS / f"tutorial_{stem[:2]}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_tutorial_{stem[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def self_check_calls(stem: str) -> dict:
    """``{function name: check name}`` of every ``tutorial.self_check(tutorial.check_x, f)``
    in the tutorial."""
    calls = {}
    for node in ast.walk(ast.parse((TUTORIALS / f"{stem}.py").read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "self_check"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Attribute)
            and isinstance(node.args[1], ast.Name)
        ):
            calls[node.args[1].id] = node.args[0].attr
    return calls


@pytest.mark.parametrize("stem", sorted(tutorial.EXERCISES))
def test_every_stub_has_a_check_a_solution_and_a_self_check_cell(stem):
    found = stubs(stem)
    listed = tutorial.EXERCISES[stem]
    assert set(found) == set(listed), f"stubs {sorted(found)}, listed {sorted(listed)}"
    assert 2 <= len(found) <= 4, f"{stem} has {len(found)} fill-in exercises"
    module = solutions(stem)
    calls = self_check_calls(stem)
    for name, check in listed.items():
        solution = getattr(module, name)
        assert inspect.signature(solution) == inspect.signature(found[name]), name
        assert calls.get(name) == check.__name__, (
            f"{stem}: no cell runs tutorial.self_check(tutorial.{check.__name__}, {name})"
        )


@pytest.mark.parametrize("stem, name", CASES)
def test_solution_passes_its_self_check(stem, name, capsys):
    check = tutorial.EXERCISES[stem][name]
    solution = getattr(solutions(stem), name)
    assert isinstance(check(solution), str)
    tutorial.self_check(check, solution)
    assert f"{name}: passed" in capsys.readouterr().out


@pytest.mark.parametrize("stem, name", CASES)
def test_unfilled_stub_fails_its_self_check(stem, name, capsys):
    check = tutorial.EXERCISES[stem][name]
    stub = stubs(stem)[name]
    with pytest.raises(NotImplementedError):
        check(stub)
    tutorial.self_check(check, stub)  # in the notebook: a message, not an error
    assert "not filled in yet" in capsys.readouterr().out


# ------------------------------------------------------------------- mistakes are caught
def _eq1_naive(G, theta, s):  # overflows far from the threshold
    z = s * (G - theta)
    return np.log(1 + np.exp(-z)), -s / (1 + np.exp(z))


def _eq1_sign(G, theta, s):  # the derivative's sign flipped
    z = s * (G - theta)
    return np.logaddexp(0.0, -z), s * expit(-z)


def _unsquared(mask: bool, two_y: bool):
    def local_grads_unsquared(x, W, b, theta, s):
        a = x @ W + b
        y = np.maximum(a, 0)
        G = y.sum(axis=1)
        dL_dG = -s * expit(-s * (G - theta))
        dL_da = dL_dG[:, None] * (2 * y if two_y else np.ones_like(y))
        if mask:
            dL_da = dL_da * (a > 0)
        return x.T @ dL_da, dL_da.sum(axis=0)

    return local_grads_unsquared


def _embed_in_place(x, labels, n_classes=10):
    x[:, :n_classes] = 0
    x[np.arange(len(x)), labels] = 1
    return x


def _embed_keeps_old_pixels(x, labels, n_classes=10):
    out = x.copy()
    out[np.arange(len(x)), labels] = 1
    return out


def _normalize_centred(y):
    c = y - y.mean(axis=1, keepdims=True)
    r = np.sqrt(np.mean(c**2, axis=1, keepdims=True))
    return c / np.where(r > 0, r, 1)


def _normalize_l2(y):
    r = np.linalg.norm(y, axis=1, keepdims=True)
    return y / np.where(r > 0, r, 1)


def _normalize_unguarded(y):
    return y / np.sqrt(np.mean(y**2, axis=1, keepdims=True))


def _hard_uniform(q, labels, rng):  # ignores q
    return (labels + rng.integers(1, 10, len(labels))) % 10


def _hard_may_be_true(q, labels, rng):  # draws from q without removing the true label
    return np.array([rng.choice(10, p=row / row.sum()) for row in q])


def _hard_unseeded(q, labels, rng):  # right distribution, but not from rng
    w = np.array(q, dtype=np.float64)
    w[np.arange(len(q)), labels] = 0
    sure = w.sum(axis=1) == 0
    w[sure] = 1
    w[sure, labels[sure]] = 0
    p = w / w.sum(axis=1, keepdims=True)
    other = np.random.default_rng()
    return np.array([other.choice(10, p=row) for row in p])


def _one_shot(bias: bool, root: bool):
    def one_shot_step(W, b, u, S_star):
        y = np.maximum(u @ W + b, 0)
        ratio = S_star / (y @ y)
        c = ((np.sqrt(ratio) if root else ratio) - 1) / (u @ u + (1 if bias else 0))
        return c * np.outer(u, y), c * y

    return one_shot_step


def _masked(use_mask: bool, bias: bool):
    def masked_coefficients(u, S_L, S_star, mask):
        sq = (u * u) @ mask if use_mask else np.full(mask.shape[1], u @ u)
        return (np.sqrt(S_star / S_L) - 1) / (sq + (1 if bias else 0))

    return masked_coefficients


def _quantise(spacing: int, guard: bool = True, rounding=np.round):
    def quantise(h, levels):
        top = h.max(axis=1, keepdims=True)
        step = (np.where(top > 0, top, 1.0) if guard else top) / (levels - spacing)
        return rounding(h / step) * step

    return quantise


def _permutation_backward(kind: str):
    def permutation_backward(dL_dz, perm):
        return dL_dz[:, perm] if kind == "gather" else dL_dz.copy()

    return permutation_backward


def _xent(stable: bool = True, mean: bool = True):
    def softmax_cross_entropy(z, labels):
        e = np.exp(z - z.max(axis=1, keepdims=True) if stable else z)
        q = e / e.sum(axis=1, keepdims=True)
        rows = np.arange(len(z))
        d = q.copy()
        d[rows, labels] -= 1
        B = len(z) if mean else 1
        return -float(np.sum(np.log(q[rows, labels]))) / B, d / B

    return softmax_cross_entropy


def _layer_backward(where: str):
    def layer_backward(h, W, b, dL_dy):
        mask = (h @ W + b) > 0
        dL_da = dL_dy if where == "none" else dL_dy * mask
        dL_dh = dL_da @ W.T
        if where == "input":  # the mask of the layer below, not this one's
            dL_da, dL_dh = dL_dy, (dL_dy @ W.T) * (h > 0)
        return dL_dh, h.T @ dL_da, dL_da.sum(axis=0)

    return layer_backward


def _shift_label(order: str):
    def shift_then_label(x, labels, dr, dc):
        from ff_numpy.negatives import all_shifts

        out = x.copy()
        if order == "label first":
            out[:, :10] = 0
            out[np.arange(len(x)), labels] = 1
            moved = {(r, c): xs for r, c, xs in all_shifts(out, 3)}  # zeros shifted in
            return np.stack([moved[(r, c)][n] for n, (r, c) in enumerate(zip(dr, dc))])
        out = np.stack([np.roll(r.reshape(28, 28), (a, b), axis=(0, 1)).ravel()
                        for r, a, b in zip(out, dr, dc)])  # fmt: skip
        out[:, :10] = 0
        out[np.arange(len(x)), labels] = 1
        return out

    return shift_then_label


def _over_shifts(which: str):
    def scores_over_shifts(net, x, max_shift):
        from ff_numpy.negatives import all_shifts

        copies = list(all_shifts(x, max_shift))
        if which == "axes only":
            copies = [c for c in copies if c[0] == 0 or c[1] == 0]
        total = sum(net.goodness_per_label(xs) for _, _, xs in copies)
        return total / len(copies) if which == "mean" else total

    return scores_over_shifts


def _blur(mode: str, columns: bool = True, at_least: bool = False):
    def blur_mask(bits, n_blur):
        from scipy.ndimage import convolve1d

        m = np.asarray(bits, dtype=np.float64)
        for _ in range(n_blur):
            m = convolve1d(m, [0.25, 0.5, 0.25], axis=2, mode=mode)
            if columns:
                m = convolve1d(m, [0.25, 0.5, 0.25], axis=1, mode=mode)
        return m >= 0.5 if at_least else m > 0.5

    return blur_mask


def _hybrids(self_pairs: bool = False, blur: bool = True, swap: bool = False, seeded=True):
    def make_hybrids(x, rng):
        from ff_numpy.negatives import hybrid_masks

        B = len(x)
        draw = rng if seeded else np.random.default_rng()
        low = 0 if self_pairs else 1
        partner = (np.arange(B) + draw.integers(low, B, size=B)) % B
        n_blur = 8 if blur else 0
        masks = hybrid_masks(B, draw, n_blur=n_blur).reshape(B, -1)
        a, b = (x[partner], x) if swap else (x, x[partner])
        return np.where(masks, a, b), masks, partner

    return make_hybrids


def _grid_field(order: str):
    def grid_field(loc, in_grid, in_channels, grid, k):
        Gh, Gw = in_grid
        r0, q0 = divmod(loc, grid[1])
        square = [(r, q) for r in range(r0, r0 + k) for q in range(q0, q0 + k)]
        if order == "channel-major":
            idx = [c * Gh * Gw + r * Gw + q for r, q in square for c in range(in_channels)]
        elif order == "locations only":
            idx = [r * Gw + q for r, q in square]
        else:  # rows and columns swapped
            idx = [(q * Gh + r) * in_channels + c for r, q in square for c in range(in_channels)]
        return np.sort(idx)

    return grid_field


def _peer(old_means: bool = False, relu: bool = False, per_batch: bool = True):
    def peer_term(mean, y_pos, strength, rho):
        B = len(y_pos)
        new = rho * mean + (1 - rho) * y_pos.mean(axis=0)
        m = mean if old_means else new
        term = np.tile(strength * (m - m.mean()) / (B if per_batch else 1), (B, 1))
        return new, term * (y_pos > 0) if relu else term

    return peer_term


def _alternating(order: str = "even first", damped: bool = True):
    def alternating_iteration(ys, X, lab, p, d):
        from ff_numpy.norm import normalize

        L = len(ys)
        even, odd = [l for l in range(L) if l % 2 == 1], [l for l in range(L) if l % 2 == 0]
        phases = {"even first": (even, odd), "odd first": (odd, even)}.get(order)
        phases = phases or (list(range(L)),)  # "synchronous": one phase
        new = list(ys)
        for phase in phases:
            H = [normalize(y, "rms") for y in new]
            for l in phase:
                h_below = X if l == 0 else H[l - 1]
                h_above = lab if l == L - 1 else H[l + 1]
                a = h_below @ p[f"up{l}.W"] + h_above @ p[f"down{l}.W"] + p[f"up{l}.b"]
                new[l] = d * new[l] + (1 - d) * np.maximum(a, 0) if damped else np.maximum(a, 0)
        return new

    return alternating_iteration


def _predict(always_max: bool = False, zero_based: bool = False):
    def predict_by_goodness(G, window, objective):
        lo, hi = window
        mean = G[:, :, lo:hi].mean(axis=2) if zero_based else G[:, :, lo - 1 : hi].mean(axis=2)
        return np.argmax(mean, axis=1) if always_max or objective == "max" else mean.argmin(1)

    return predict_by_goodness


def _fan_in(kind: str):
    def fan_in_map(H, W, C, k):
        h = k if kind == "radius k" else k // 2
        if kind == "not truncated":
            return np.full((H, W), k * k * C)
        rows = np.array([min(r + h, H - 1) - max(r - h, 0) + 1 for r in range(H)])
        cols = np.array([min(q + h, W - 1) - max(q - h, 0) + 1 for q in range(W)])
        return np.outer(rows, cols) * (1 if kind == "no channels" else C)

    return fan_in_map


def _location_grad(kind: str):
    def location_weight_grad(x, dL_da, r, q, shape, k):
        H, W, C_in = shape
        B, h = len(x), k // 2
        C_out = dL_da.shape[1] // (H * W)
        r0, r1, q0, q1 = max(r - h, 0), min(r + h + 1, H), max(q - h, 0), min(q + h + 1, W)
        if kind == "channel first":  # the planes of the official files, not HWC
            patch = x.reshape(B, C_in, H, W)[:, :, r0:r1, q0:q1].transpose(0, 2, 3, 1)
        else:
            patch = x.reshape(B, H, W, C_in)[:, r0:r1, q0:q1, :]
        loc = r * W + q
        if kind == "channel-major units":
            units = dL_da[:, [c * H * W + loc for c in range(C_out)]]
        else:
            units = dL_da[:, loc * C_out : (loc + 1) * C_out]
        g = patch.reshape(B, -1).T @ units
        return g.T if kind == "transposed" else g

    return location_weight_grad


MISTAKES = [
    ("eq1_loss", "log(1 + exp(-z)) overflows", _eq1_naive),
    ("eq1_loss", "derivative of the wrong sign", _eq1_sign),
    ("local_grads_unsquared", "no ReLU mask", _unsquared(mask=False, two_y=False)),
    ("local_grads_unsquared", "dG/dy = 2y (the squared goodness)", _unsquared(True, True)),
    ("embed_label", "writes into its input", _embed_in_place),
    ("embed_label", "keeps the old label pixels", _embed_keeps_old_pixels),
    ("normalize_rms", "subtracts the mean", _normalize_centred),
    ("normalize_rms", "divides by the Euclidean length", _normalize_l2),
    ("normalize_rms", "divides zero rows by zero", _normalize_unguarded),
    ("hard_wrong_labels", "uniform, ignoring q", _hard_uniform),
    ("hard_wrong_labels", "may return the true label", _hard_may_be_true),
    ("hard_wrong_labels", "draws from another generator", _hard_unseeded),
    ("one_shot_step", "no bias input in |u_aug|^2", _one_shot(bias=False, root=True)),
    ("one_shot_step", "S*/S_L without the square root", _one_shot(bias=True, root=False)),
    ("masked_coefficients", "the dense coefficient", _masked(use_mask=False, bias=True)),
    ("masked_coefficients", "no bias input", _masked(use_mask=True, bias=False)),
    ("quantise", "levels + 1 values", _quantise(spacing=0)),
    ("quantise", "floor instead of round", _quantise(spacing=1, rounding=np.floor)),
    ("quantise", "divides zero rows by zero", _quantise(spacing=1, guard=False)),
    ("permutation_backward", "the inverse permutation", _permutation_backward("gather")),
    ("permutation_backward", "straight-through: identity", _permutation_backward("identity")),
    ("softmax_cross_entropy", "exp of the raw logits overflows", _xent(stable=False)),
    ("softmax_cross_entropy", "a sum, not a mean over the batch", _xent(mean=False)),
    ("layer_backward", "no ReLU mask", _layer_backward("none")),
    ("layer_backward", "the mask of the layer below", _layer_backward("input")),
    ("shift_then_label", "np.roll wraps round", _shift_label("roll")),
    ("shift_then_label", "label written before the shift", _shift_label("label first")),
    ("scores_over_shifts", "the shifts along the axes only", _over_shifts("axes only")),
    ("scores_over_shifts", "the mean, not the sum", _over_shifts("mean")),
    ("blur_mask", "zeros beyond the border", _blur("constant")),
    ("blur_mask", "blurs along the rows only", _blur("reflect", columns=False)),
    ("blur_mask", "thresholds with >= 0.5", _blur("reflect", at_least=True)),
    ("make_hybrids", "may pair an image with itself", _hybrids(self_pairs=True)),
    ("make_hybrids", "unblurred masks", _hybrids(blur=False)),
    ("make_hybrids", "parents swapped", _hybrids(swap=True)),
    ("make_hybrids", "masks from another generator", _hybrids(seeded=False)),
    ("grid_field", "channel-major numbering", _grid_field("channel-major")),
    ("grid_field", "locations without their units", _grid_field("locations only")),
    ("grid_field", "rows and columns swapped", _grid_field("swapped")),
    ("peer_term", "the means before the batch", _peer(old_means=True)),
    ("peer_term", "times the ReLU's derivative", _peer(relu=True)),
    ("peer_term", "not divided by B", _peer(per_batch=False)),
    ("alternating_iteration", "synchronous", _alternating("synchronous")),
    ("alternating_iteration", "odd layers first", _alternating("odd first")),
    ("alternating_iteration", "no damping", _alternating(damped=False)),
    ("predict_by_goodness", "highest goodness under min", _predict(always_max=True)),
    ("predict_by_goodness", "iterations counted from 0", _predict(zero_based=True)),
    ("fan_in_map", "not cut off at the edge", _fan_in("not truncated")),
    ("fan_in_map", "half-width k instead of k // 2", _fan_in("radius k")),
    ("fan_in_map", "channels left out", _fan_in("no channels")),
    ("location_weight_grad", "patch read channel-first", _location_grad("channel first")),
    ("location_weight_grad", "channel-major units", _location_grad("channel-major units")),
    ("location_weight_grad", "(C_out, f), transposed", _location_grad("transposed")),
]
CHECKS = {
    name: check for exercises in tutorial.EXERCISES.values() for name, check in exercises.items()
}


@pytest.mark.parametrize("name, mistake, fn", MISTAKES, ids=[m for _, m, _ in MISTAKES])
def test_self_check_catches_a_common_mistake(name, mistake, fn):
    fn.__name__ = name
    with np.errstate(all="ignore"), pytest.raises(AssertionError):
        CHECKS[name](fn)


def test_every_exercise_has_a_mistake_it_catches():
    assert {name for name, _, _ in MISTAKES} == set(CHECKS)
