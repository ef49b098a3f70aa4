"""The backprop baseline: every gradient against autograd (float64, rel. error < 1e-7)
and central finite differences over random shapes (batch size 1 included) and seeds;
the training step against its formula; and, on real MNIST, learning, exact resume and
``ff-numpy evaluate``.

autograd's ``np.maximum(a, 0)`` gives derivative 0.5 at ``a = 0`` while ours uses
ReLU'(0) = 0; the inputs here are continuous random numbers, so no pre-activation is
exactly 0 and the two agree (the tie itself is tested separately).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, FD_TOL, assert_close, numerical_grad, sample_indices
from helpers import interrupted_after, needs_mnist, numbers, train_args

from ff_numpy import checkpoint, cli, experiments
from ff_numpy.backprop import MLP, softmax_cross_entropy
from ff_numpy.experiments.saved import load_mlp
from ff_numpy.optim import SGD, Adam

autograd = pytest.importorskip("autograd", reason="the test extra (pip install -e .[test])")
anp = pytest.importorskip("autograd.numpy")

SEEDS = [0, 1, 2, 3, 4, 5]
BATCHES = [1, 2, 7]


# ----------------------------------------------------------------------------- reference
def _ref_loss(params, x, labels):
    """The same network and loss, written for autograd; ``params`` = [W0, b0, W1, b1, ...]."""
    n_layers = len(params) // 2
    h = x
    for l in range(n_layers):
        a = anp.dot(h, params[2 * l]) + params[2 * l + 1]
        h = anp.maximum(a, 0.0) if l < n_layers - 1 else a
    z = h
    z_max = anp.max(z, axis=1, keepdims=True)
    log_norm = anp.log(anp.sum(anp.exp(z - z_max), axis=1, keepdims=True)) + z_max
    return -anp.mean((z - log_norm)[np.arange(x.shape[0]), labels])


def _case(seed):
    """A random float64 MLP (0 to 3 hidden layers), inputs and labels."""
    rng = np.random.default_rng(seed)
    B = BATCHES[seed % len(BATCHES)]
    n_in = int(rng.integers(2, 9))
    hidden = [int(h) for h in rng.integers(1, 9, size=seed % 4)]
    C = int(rng.integers(2, 6))
    model = MLP(n_in, hidden, C, rng, dtype=np.float64)
    for b in model.b:  # non-zero biases, so the bias gradients are exercised in general
        b[:] = rng.standard_normal(b.shape) * 0.3
    x = rng.standard_normal((B, n_in))
    labels = rng.integers(0, C, size=B)
    return rng, model, x, labels


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("seed", SEEDS)
def test_loss_and_grads_match_autograd_and_fd(seed):
    rng, model, x, labels = _case(seed)
    L, grads = model.loss_and_grads(x, labels)
    params = model.params()
    names = list(params)
    assert sorted(grads) == sorted(names)
    for k in names:
        assert grads[k].shape == params[k].shape and grads[k].dtype == np.float64, k

    arrays = [params[k] for k in names]
    assert np.isclose(L, _ref_loss(arrays, x, labels), rtol=1e-12, atol=0)
    ref = autograd.grad(_ref_loss)(arrays, x, labels)
    for k, r in zip(names, ref):
        assert_close(grads[k], r, AUTOGRAD_TOL, f"{k} vs autograd (seed {seed})")

    def loss():
        return model.loss_and_grads(x, labels)[0]

    for k in names:
        idx = sample_indices(params[k].shape, 30, rng)
        ours = grads[k][tuple(np.array(idx).T)]
        num = numerical_grad(loss, params[k], idx)
        assert_close(ours, num, FD_TOL, f"{k} vs finite differences (seed {seed})")


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_backward_is_a_vector_jacobian_product(seed):
    """``backward`` with any upstream ``dL_dz`` (not only the cross-entropy's)."""
    rng, model, x, _ = _case(seed)
    w = rng.standard_normal((x.shape[0], model.n_classes))  # L = sum(w * z)
    z, cache = model.forward(x)
    grads = model.backward(w, cache)
    names = list(model.params())

    def ref(params):
        h = x
        n = len(params) // 2
        for l in range(n):
            a = anp.dot(h, params[2 * l]) + params[2 * l + 1]
            h = anp.maximum(a, 0.0) if l < n - 1 else a
        return anp.sum(w * h)

    for k, r in zip(names, autograd.grad(ref)([model.params()[k] for k in names])):
        assert_close(grads[k], r, AUTOGRAD_TOL, f"{k}: vector-Jacobian product vs autograd")


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_softmax_cross_entropy_matches_autograd_and_never_overflows(seed):
    rng = np.random.default_rng(seed)
    B, C = BATCHES[seed % len(BATCHES)], int(rng.integers(2, 8))
    z = rng.standard_normal((B, C)) * 3
    labels = rng.integers(0, C, size=B)

    def ref(z):
        m = anp.max(z, axis=1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True)) + m
        return -anp.mean((z - lse)[np.arange(B), labels])

    L, dL_dz = softmax_cross_entropy(z, labels)
    assert np.isclose(L, ref(z), rtol=1e-12)
    assert_close(dL_dz, autograd.grad(ref)(z), AUTOGRAD_TOL, "dL/dz vs autograd")
    np.testing.assert_allclose(dL_dz.sum(axis=1), 0.0, atol=1e-15)

    huge = np.array([[1e4, -1e4, 0.0], [-1e30, 1e30, 5.0]], dtype=np.float32)
    L, dL_dz = softmax_cross_entropy(huge, np.array([1, 1]))
    assert np.isfinite(L) and np.isfinite(dL_dz).all() and dL_dz.dtype == np.float32
    assert np.isclose(L, 1e4, rtol=1e-6)  # row 0: log q = -2e4; row 1: log q = 0


def test_relu_derivative_is_zero_at_zero():
    model = MLP(3, [4, 5], 2, np.random.default_rng(0), dtype=np.float64)
    x = np.zeros((2, 3))  # first-layer pre-activations are exactly b0 = 0
    _, grads = model.loss_and_grads(x, np.array([0, 0]))
    for k in ("layer0.W", "layer0.b", "layer1.W", "layer1.b", "layer2.W"):
        assert not grads[k].any(), k
    assert grads["layer2.b"].any()  # only the output bias sees the loss


def test_forward_matches_definition_and_float32_agrees():
    rng = np.random.default_rng(7)
    m64 = MLP(6, [5, 4], 3, np.random.default_rng(1), dtype=np.float64)
    m32 = MLP(6, [5, 4], 3, np.random.default_rng(1))  # same draws, cast
    x = rng.standard_normal((9, 6))
    h = x
    for l, (W, b) in enumerate(zip(m64.W, m64.b)):
        h = h @ W + b
        h = np.maximum(h, 0) if l < 2 else h
    z, cache = m64.forward(x)
    np.testing.assert_allclose(z, h, rtol=1e-12)
    assert len(cache) == 3 and cache[0] is x
    z32, _ = m32.forward(x)  # float64 input, float32 model: cast at the boundary
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, z, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(m64.predict(x, batch_size=4), np.argmax(z, axis=1))


def test_he_initialisation():
    model = MLP(800, [400, 300], 10, np.random.default_rng(0))
    for W, n_in, gain in zip(model.W, (800, 400, 300), (2, 2, 1)):
        std = np.sqrt(gain / n_in)  # He: 2 / n_in into a ReLU, 1 / n_in into the logits
        assert abs(W.std() / std - 1) < 0.05 and abs(W.mean()) < 0.1 * std
    assert all(not b.any() for b in model.b)
    again = MLP(800, [400, 300], 10, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(model.W, again.W))


# ----------------------------------------------------------------------------- updates
@pytest.mark.parametrize("seed", SEEDS[:4])
def test_train_step_plain_sgd_is_W_minus_lr_grad(seed):
    _, model, x, labels = _case(seed)
    before = copy.deepcopy(model)
    L, grads = before.loss_and_grads(x, labels)
    lr, lr_scale, wd = 0.1, 0.5, 0.01
    losses = model.train_step(x, labels, SGD(lr, weight_decay=wd), lr_scale)
    assert losses == {"cross_entropy": L}
    for k, p in model.params().items():
        old = before.params()[k]
        decay = wd * old if k.endswith(".W") else 0.0  # weights decayed, biases not
        np.testing.assert_allclose(p, old - lr * lr_scale * (grads[k] + decay), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_train_step_momentum_and_adam_equal_their_formulas(dtype):
    """Several steps of the fused SGD step and of Adam against updates from the grads."""
    rng = np.random.default_rng(3)
    model = MLP(6, [5, 4], 3, rng, dtype=dtype)
    ref = copy.deepcopy(model)
    for opt_cls in (lambda: SGD(0.1, momentum=0.9, weight_decay=0.01), lambda: Adam(0.01)):
        opt, ref_opt = opt_cls(), opt_cls()
        for _ in range(3):
            x = rng.standard_normal((8, 6)).astype(dtype)
            y = rng.integers(0, 3, size=8)
            _, grads = ref.loss_and_grads(x, y)
            for k, p in ref.params().items():
                ref_opt.step(k, p, grads[k], 0.7, decay=k.endswith(".W"))
            model.train_step(x, y, opt, 0.7)
        rtol = 1e-12 if dtype == np.float64 else 1e-4
        for k, p in model.params().items():
            np.testing.assert_allclose(p, ref.params()[k], rtol=rtol, atol=rtol, err_msg=k)


def test_state_config_and_load_round_trip(tmp_path):
    model = MLP(6, [5, 4], 3, np.random.default_rng(0))
    for b in model.b:
        b += 0.1
    meta = {"config": {"experiment": "backprop", "model": model.config()}}
    checkpoint.save(tmp_path / "m.npz", model.state(), meta)
    loaded = load_mlp(tmp_path / "m.npz")
    assert loaded.config() == model.config() and loaded.dtype == np.float32
    for k, v in model.state().items():
        np.testing.assert_array_equal(loaded.state()[k], v)
    assert json.loads(json.dumps(model.config())) == model.config()


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors(tmp_path):
    model = MLP(4, [3], 3, np.random.default_rng(0))
    x, y = np.ones((2, 4), np.float32), np.array([0, 2])
    with pytest.raises(ValueError, match="4 columns"):
        model.forward(np.ones((2, 5)))
    with pytest.raises(ValueError, match="2-D"):
        model.predict(np.ones(4))
    with pytest.raises(TypeError, match="floating"):
        model.forward(np.ones((2, 4), dtype=int))
    with pytest.raises(ValueError, match="NaN"):
        model.loss_and_grads(np.full((2, 4), np.nan), y)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        model.loss_and_grads(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="3 entries"):
        model.train_step(x, np.array([0, 1, 2]), SGD(0.1))
    with pytest.raises(TypeError, match="integers"):
        model.train_step(x, np.array([0.0, 1.0]), SGD(0.1))
    z, cache = model.forward(x)
    with pytest.raises(ValueError, match=r"dL_dz must have shape \(2, 3\)"):
        model.backward(np.ones((2, 4)), cache)
    with pytest.raises(ValueError, match="positive hidden sizes"):
        MLP(4, [3, 0], 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        MLP(4, [3], 1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="float32 or float64"):
        MLP(4, [3], 3, np.random.default_rng(0), dtype=np.int32)
    with pytest.raises(ValueError, match="shape"):
        model.load_state({**model.state(), "layer0.W": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="no array 'layer1.b'"):
        model.load_state({k: v for k, v in model.state().items() if k != "layer1.b"})
    checkpoint.save(tmp_path / "ff.npz", {"a": np.zeros(1)}, {"config": {"model": {}}})
    with pytest.raises(ValueError, match="no MLP configuration"):
        load_mlp(tmp_path / "ff.npz")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--lr", "-1"], "--lr must be > 0"),
        (["--momentum", "1"], "--momentum must be in [0, 1)"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--hidden", "10", "0"], "--hidden"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--train-size", "0"], "--train-size"),
    ],
)
def test_bad_options_are_one_line_errors(argv, needle, tmp_path, capsys):
    assert cli.main(["train", "backprop", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_default_args_and_resolved_learning_rate():
    from ff_numpy.experiments.backprop import Backprop

    args = experiments.default_args("backprop")
    assert args.hidden == [2000, 2000, 2000, 2000] and args.epochs == 20
    assert args.batch_size == 100 and args.optimizer == "sgd" and args.weight_decay == 5e-4
    assert Backprop.config(args)["lr"] == 0.05
    adam = experiments.default_args("backprop", optimizer="adam")
    assert Backprop.config(adam)["lr"] == 0.001
    assert Backprop.config(experiments.default_args("backprop", lr=0.5))["lr"] == 0.5


# ----------------------------------------------------------------------------- real MNIST
SMALL = "--hidden 100 --train-size 10000 --epochs 3 --track-test".split()


def _args(out, extra=()):
    """Parse ``ff-numpy train backprop`` options exactly as the command line does."""
    return train_args("backprop", out, *SMALL, *extra)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("backprop_small")
    return out, experiments.get("backprop").run(_args(out))


@needs_mnist
def test_small_mlp_learns_mnist(small_run):
    out, metrics = small_run
    assert metrics["test_error"] < 0.10, metrics["test_error"]
    assert metrics["test_error_softmax"] == metrics["test_error"]
    for name in ("model.npz", "metrics.json", "learning_curve.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["experiment"] == "backprop" and saved["config"]["lr"] == 0.05
    assert saved["config"]["model"]["type"] == "mlp"
    assert saved["config"]["model"]["hidden"] == [100]
    hist = saved["history"]
    assert len(hist) == 3 and [r["lr_scale"] for r in hist] == [1.0, 1.0, 1 / 3]
    assert all({"val_error", "test_error", "seconds"} <= set(r) for r in hist)
    losses = [r["train_loss"]["cross_entropy"] for r in hist]
    assert losses[0] > losses[1] > losses[2]
    assert hist[-1]["test_error"] == saved["test_error"]


@needs_mnist
def test_evaluate_recomputes_test_error(small_run, capsys):
    out, metrics = small_run
    assert cli.main(["evaluate", str(out / "model.npz")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "test_error": metrics["test_error"],
        "test_error_softmax": metrics["test_error"],
    }


@needs_mnist
def test_interrupted_then_resumed_equals_uninterrupted(small_run, tmp_path):
    from ff_numpy.experiments.backprop import BackpropTask

    _, reference = small_run
    with interrupted_after(BackpropTask, 100 + 37):  # 100 batches per epoch: in epoch 2
        experiments.get("backprop").run(_args(tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["history"]) == 1  # epoch 1 was checkpointed, epoch 2 was lost
    resumed = experiments.get("backprop").run(_args(tmp_path, ["--resume"]))
    assert numbers(resumed) == numbers(reference)


@needs_mnist
def test_resume_with_other_options_is_refused(small_run, capsys):
    out, _ = small_run
    argv = ["train", "backprop", *SMALL, "--lr", "0.5", "--resume", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr" in err and "Traceback" not in err


@needs_mnist
def test_same_seed_same_numbers_other_seed_differs_and_adam_learns(tmp_path):
    tiny = ["--train-size", "2000", "--epochs", "1", "--hidden", "50", "50"]
    run = experiments.get("backprop").run
    a = run(_args(tmp_path / "a", tiny))
    b = run(_args(tmp_path / "b", tiny))
    c = run(_args(tmp_path / "c", [*tiny, "--seed", "1"]))
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(c)
    adam = run(_args(tmp_path / "adam", ["--epochs", "1", "--optimizer", "adam"]))
    assert adam["config"]["lr"] == 0.001 and adam["test_error"] < 0.15, adam["test_error"]


@needs_mnist
def test_train_size_beyond_all_training_images_is_refused(tmp_path, capsys):
    argv = ["train", "backprop", "--train-size", "60001", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "--train-size must lie in 1..60000" in capsys.readouterr().err
