"""Online learning with one-shot jumps (``ff-numpy train online``, paper Sec. 7).

The jump itself is checked exactly on small float64 nets; the experiment is run end to
end on tiny synthetic data (metrics contract, figure, exact resume, same stream for both
methods) and on a short real-MNIST stream (it learns; both methods run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_error_rate, interrupted_after, needs_mnist, numbers, train_args

from ff_numpy import cli, experiments, fast
from ff_numpy.data import MNIST, Split
from ff_numpy.experiments import online
from ff_numpy.experiments.online import Online, plot_online_comparison
from ff_numpy.experiments.online_task import OnlineTask, jump_targets, one_shot_jump
from ff_numpy.model import FFNet
from ff_numpy.norm import normalize

EXACT = 1e-12  # float64 relative error of a jump that should land exactly


def _rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def _net(seed=0, hidden=(12, 9, 7), n_in=30):
    rng = np.random.default_rng(seed)
    model = FFNet(n_in, hidden, rng, dtype=np.float64)
    for layer in model.layers:
        layer.b[:] = 0.1 * rng.standard_normal(layer.n_out)
    return model, rng.random((1, n_in))


def _goodness_and_outputs(model, x, label):
    ys = model.activities(x, np.array([label]))
    return [float(y[0] @ y[0]) for y in ys], [normalize(y, model.norm)[0] for y in ys]


# ----------------------------------------------------------------------------- the jump
def test_targets():
    assert jump_targets(100.0, 0.5) == (150.0, 50.0)
    assert jump_targets(100.0, 0.25, "min") == (75.0, 125.0)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="--margin must lie in"):
            jump_targets(100.0, bad)


@pytest.mark.parametrize(
    "ratio, damping, k",
    [(4.0, 1.0, 2.0), (4.0, 0.5, 1.5), (0.25, 0.5, 0.75)],  # k = 1 + d (sqrt(ratio) - 1)
)
def test_damped_step_scales_the_active_units_by_k(ratio, damping, k):
    """The jump is the library's damped one-shot step: S* = ratio S_L multiplies every
    active unit by k; in place (rank-1 BLAS update) it changes the layer as the returned
    update would."""
    model, x = _net(4, hidden=(12,))
    layer = model.layers[0]
    u = model.labelled_input(x, np.array([2]))[0]
    y0 = np.maximum(u @ layer.W + layer.b, 0)
    S_L = float(y0 @ y0)
    W0, b0 = layer.W.copy(), layer.b.copy()
    update = fast.one_shot_layer_update(layer, u, ratio * S_L, damping=damping)
    np.testing.assert_array_equal(layer.W, W0)  # not applied
    done = fast.one_shot_layer_update(layer, u, ratio * S_L, damping=damping, in_place=True)
    assert done.dW is None and done.c == update.c and done.S_L == update.S_L
    np.testing.assert_allclose(layer.W, W0 + update.dW, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer.b, b0 + update.db, rtol=1e-14, atol=1e-15)
    y1 = np.maximum(u @ layer.W + layer.b, 0)
    np.testing.assert_allclose(y1, k * y0, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="damping must lie in"):
        fast.one_shot_layer_update(layer, u, S_L, damping=0.0)


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("damping", [1.0, 0.5, 0.1])
def test_jump_moves_every_layer_to_its_damped_target(damping, positive):
    model, x = _net()
    label = 3
    S0, out0 = _goodness_and_outputs(model, x, label)
    assert min(S0) > 0
    targets = [jump_targets(t, 0.5)[0 if positive else 1] for t in model.theta]
    u = model.labelled_input(x, np.array([label]))[0]
    info = one_shot_jump(model, u, positive, targets, damping, "always")
    S1, out1 = _goodness_and_outputs(model, x, label)
    for l in range(len(model.layers)):
        assert info[l]["jumped"] and not info[l]["dead"] and info[l]["S"] == S0[l]
        k = 1 + damping * (np.sqrt(targets[l] / S0[l]) - 1)  # a_j -> k a_j
        want = S0[l] * k**2
        assert _rel(S1[l], want) < EXACT, (l, S1[l], want)
        if damping == 1.0:  # Eq. 4: exactly on the target
            assert _rel(S1[l], targets[l]) < EXACT, (l, S1[l], targets[l])
        # Every active unit scaled by the same k > 0: the next layer sees the same input.
        np.testing.assert_array_equal(out1[l] > 0, out0[l] > 0)
        np.testing.assert_allclose(out1[l], out0[l], rtol=1e-12, atol=1e-12)


def test_undamped_jump_is_the_librarys_one_shot_step():
    model, x = _net(1)
    twin = FFNet.from_config(model.config())
    twin.load_state({k: v.copy() for k, v in model.state().items()})
    targets = [jump_targets(t, 0.5)[0] for t in model.theta]
    one_shot_jump(model, model.labelled_input(x, np.array([7]))[0], True, targets, 1.0)
    fast.one_shot_model_step(twin, x[0], targets, label=7)
    for a, b in zip(model.layers, twin.layers):
        np.testing.assert_allclose(a.W, b.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.b, b.b, rtol=1e-12, atol=1e-14)


def test_dead_layer_is_skipped_and_the_others_still_jump():
    model, x = _net(2, hidden=(12, 9))
    model.layers[1].b[:] = -1e3  # every unit of layer 1 off for any input
    W1, b1 = model.layers[1].W.copy(), model.layers[1].b.copy()
    targets = [jump_targets(t, 0.5)[0] for t in model.theta]
    u = model.labelled_input(x, np.array([0]))[0]
    info = one_shot_jump(model, u, True, targets, 1.0)
    assert info[1]["dead"] and not info[1]["jumped"] and info[1]["S"] == 0.0
    assert info[0]["jumped"] and not info[0]["dead"]
    np.testing.assert_array_equal(model.layers[1].W, W1)
    np.testing.assert_array_equal(model.layers[1].b, b1)
    S1, _ = _goodness_and_outputs(model, x, 0)
    assert _rel(S1[0], targets[0]) < EXACT


def test_black_boxes_are_refused():
    from ff_numpy.blackbox import BlackBox

    rng = np.random.default_rng(0)
    model = FFNet(30, (12, 9), rng, boxes={0: BlackBox(12, rng)})
    u = model.labelled_input(rng.random((1, 30)), np.array([0]))[0]
    with pytest.raises(ValueError, match="black boxes after layers \\[0\\]"):
        one_shot_jump(model, u, True, [1.0, 1.0])


def test_jump_if_rules():
    model, x = _net(3, hidden=(12,))
    u = model.labelled_input(x, np.array([1]))[0]
    (S,), _ = _goodness_and_outputs(model, x, 1)
    # A positive example already above its target and above theta.
    model.theta = [0.25 * S]
    below = [0.5 * S]
    W0 = model.layers[0].W.copy()
    for rule in ("short", "wrong"):  # short of target? no.  wrong side of theta? no.
        assert not one_shot_jump(model, u, True, below, 1.0, rule)[0]["jumped"]
        np.testing.assert_array_equal(model.layers[0].W, W0)
    assert one_shot_jump(model, u, True, below, 1.0, "always")[0]["jumped"]  # pulled down
    (S1,), _ = _goodness_and_outputs(model, x, 1)
    assert _rel(S1, 0.5 * S) < EXACT
    # A negative example above theta: short of its (lower) target and on the wrong side.
    for rule in ("short", "wrong"):
        assert one_shot_jump(model, u, False, [0.1 * S], 0.5, rule)[0]["jumped"]


# ----------------------------------------------------------------------------- synthetic runs
def _synthetic(seed=0, n_in=40, sizes=(300, 60, 60)):
    """Ten noisy prototypes in [0, 1]^n_in: an MNIST-shaped toy problem."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, n_in))

    def split(n):
        y = rng.integers(0, 10, n)
        x = np.clip(protos[y] + 0.15 * rng.standard_normal((n, n_in)), 0, 1)
        return Split(x.astype(np.float32), y.astype(np.int64))

    return MNIST(*(split(n) for n in sizes), source="synthetic")


def _toy_args(out, **kw):
    opts = dict(hidden=[20, 20], chunk=50, epochs=4, batch_size=10, eval_size=30, train_size=300)
    opts.update(kw)
    return experiments.default_args("online", out=str(out), progress=False, **opts)


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    data = _synthetic()
    runs = {}
    for method in ("oneshot", "minibatch"):
        out = tmp_path_factory.mktemp(method)
        runs[method] = (out, Online.run_on(_toy_args(out, method=method), data))
    return data, runs


@pytest.mark.parametrize("method", ["oneshot", "minibatch"])
def test_run_writes_the_metrics_contract_and_a_figure(toy_runs, method):
    _, runs = toy_runs
    out, metrics = runs[method]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["experiment"] == "online" and saved["config"]["method"] == method
    assert [r["examples_seen"] for r in saved["history"]] == [50, 100, 150, 200]
    for key in ("test_error_goodness", "test_error_softmax"):  # 60 test images
        assert_error_rate(saved[key], 60, key)
        assert saved[key] == metrics[key]
    for r in saved["history"]:  # 60 validation and test images, or --eval-size 30 of them
        for key in ("val_error_softmax", "val_error_goodness", "test_error_softmax"):
            assert_error_rate(r[key], 60, key)
        assert set(r["train_loss"]) == {"layer0", "layer1", "softmax"}
    assert (out / "online_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model.npz").stat().st_size > 0
    if method == "oneshot":
        assert saved["config"]["peer_strength"] == 0.0
        r = saved["history"][0]
        assert sum(r["jumps"].values()) + sum(r["dead_skips"].values()) <= 2 * 2 * 50
        assert r["jumps"]["layer0"] > 0
    else:
        assert saved["config"]["peer_strength"] == 0.03  # the supervised recipe
        assert "jumps" not in saved["history"][0]


def test_oneshot_learns_the_toy_problem(toy_runs):
    # 200 examples through 2 x 20 units: 57% error by goodness (chance 90%, and 60 test
    # examples); the mini-batch net, 20 steps in all, is still at chance here.
    _, runs = toy_runs
    metrics = runs["oneshot"][1]
    assert metrics["test_error_goodness"] < 0.75, metrics["test_error_goodness"]


def test_both_methods_see_the_same_stream(monkeypatch, tmp_path):
    data = _synthetic(1)
    seen = {}
    original = OnlineTask.positions

    def record(self, idx):
        rows = original(self, idx)
        seen.setdefault(self.method, []).extend(rows.tolist())
        return rows

    monkeypatch.setattr(OnlineTask, "positions", record)
    for method in ("oneshot", "minibatch"):
        Online.run_on(_toy_args(tmp_path / method, method=method, epochs=2), data)
    assert seen["oneshot"] == seen["minibatch"]
    assert len(seen["oneshot"]) == 100 and len(set(seen["oneshot"])) == 100


def test_stream_wraps_into_a_second_pass():
    data = _synthetic()
    _, task = Online.build(_toy_args("unused", chunk=200, train_size=300), data)
    first = task.positions(np.arange(200))
    task.chunk_index = 1  # chunk 1 covers stream positions 200..399 = 200..299, 0..99
    second = task.positions(np.arange(200))
    np.testing.assert_array_equal(second[100:], first[:100])
    assert sorted(np.concatenate([first, second[:100]])) == list(range(300))


@pytest.mark.parametrize("method", ["oneshot", "minibatch"])
def test_interrupted_then_resumed_equals_uninterrupted(toy_runs, tmp_path, method):
    data, runs = toy_runs
    reference = runs[method][1]
    with interrupted_after(OnlineTask, 2 * 5 + 3):  # 5 batches per chunk: in chunk 3
        Online.run_on(_toy_args(tmp_path, method=method), data)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["history"]) == 2
    resumed = Online.run_on(_toy_args(tmp_path, method=method, resume=True), data)
    assert numbers(resumed) == numbers(reference)


def test_resume_with_other_options_is_refused(toy_runs):
    data, runs = toy_runs
    out, _ = runs["oneshot"]
    with pytest.raises(ValueError, match="cannot resume .*damping"):
        Online.run_on(_toy_args(out, damping=0.9, resume=True), data)


def test_comparison_figure(toy_runs, tmp_path):
    _, runs = toy_runs
    dirs = [str(runs[m][0]) for m in ("oneshot", "minibatch")]
    png = plot_online_comparison(dirs, tmp_path / "cmp.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert online.main([*dirs, "--split", "val", "--out", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as err:
        online.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")])
    assert err.value.code == 2


# ----------------------------------------------------------------------------- bad options
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--damping", "0"], "--damping must lie in (0, 1]"),
        (["--damping", "1.5"], "--damping must lie in (0, 1]"),
        (["--margin", "1"], "--margin must lie in (0, 1)"),
        (["--goodness", "sum"], "needs --goodness ssq"),
        (["--peer-strength", "0.03"], "takes no --peer-strength"),
        (["--chunk", "0"], "--chunk must be >= 1"),
        (["--chunk", "2000", "--train-size", "1000"], "exceeds --train-size"),
        (["--eval-size", "-1"], "--eval-size must be >= 0"),
        (["--hidden", "0"], "--hidden needs positive"),
        (["--method", "minibatch", "--lr", "0"], "--lr must be > 0"),
    ],
)
def test_bad_options_give_one_clear_line(extra, message, tmp_path, capsys):
    argv = ["train", "online", *extra, "--no-progress", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model.npz").exists()


def test_bad_method_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as err:
        cli.main(["train", "online", "--method", "sgd", "--out", str(tmp_path)])
    assert err.value.code == 2
    with pytest.raises(ValueError, match="exceeds --train-size"):
        Online.build(_toy_args(tmp_path, chunk=400, train_size=300), _synthetic())
    model, _ = _net()
    x, y = np.zeros((5, 30)), np.zeros(5, dtype=np.int64)
    with pytest.raises(ValueError, match="--chunk must lie in 1..5"):
        OnlineTask(model, x, y, x, y, x, y, None, chunk=6)
    with pytest.raises(ValueError, match="needs an optimiser"):
        OnlineTask(model, x, y, x, y, x, y, None, method="minibatch", chunk=5)
    with pytest.raises(ValueError, match="--jump-if must be one of"):
        OnlineTask(model, x, y, x, y, x, y, None, chunk=5, jump_if="sometimes")
    model.dropout = 0.1  # a net built with FFNet(..., dropout=0.1)
    with pytest.raises(ValueError, match="oneshot drops no units"):
        OnlineTask(model, x, y, x, y, x, y, None, chunk=5)


# ----------------------------------------------------------------------------- real MNIST
SHORT = "--hidden 200 200 --chunk 1000 --epochs 2 --eval-size 1000".split()


@pytest.fixture(scope="module")
def mnist_runs(tmp_path_factory):
    runs = {}
    for method in ("oneshot", "minibatch"):
        out = tmp_path_factory.mktemp(f"mnist_{method}")
        args = train_args("online", out, *SHORT, "--method", method)
        runs[method] = (out, experiments.get("online").run(args))
    return runs


@needs_mnist
def test_short_oneshot_stream_beats_chance(mnist_runs):
    # 2 x 200 units, 2,000 examples seen once, one jump each: about 39% error by goodness
    # and 25% by softmax here (chance: 90%); the mini-batch net is still near 83% / 35%.
    one, mini = mnist_runs["oneshot"][1], mnist_runs["minibatch"][1]
    assert one["test_error_goodness"] < 0.6, one["test_error_goodness"]
    assert one["test_error_softmax"] < 0.5, one["test_error_softmax"]
    assert one["test_error_goodness"] < mini["test_error_goodness"] - 0.2
    assert [r["examples_seen"] for r in one["history"]] == [1000, 2000]


@needs_mnist
def test_short_minibatch_stream_runs(mnist_runs):
    out, metrics = mnist_runs["minibatch"]
    assert metrics["config"]["method"] == "minibatch"
    assert metrics["test_error_softmax"] < 0.9
    assert (out / "online_curve.png").stat().st_size > 0


@needs_mnist
def test_evaluate_recomputes_test_errors(mnist_runs, capsys):
    out, metrics = mnist_runs["oneshot"]
    assert cli.main(["evaluate", str(out / "model.npz")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["test_error_goodness"] == metrics["test_error_goodness"]
    assert shown["test_error_softmax"] == metrics["test_error_softmax"]


def test_run_label_names_what_tells_runs_apart():
    from ff_numpy.plots import run_label

    cfg = {"experiment": "supervised", "hidden": [1000, 1000], "negatives": "hard"}
    assert run_label({"config": cfg}) == "supervised 1000x1000 negatives hard"
    longer = {**cfg, "jitter": 2, "epochs": 300, "seed": 1}
    assert run_label({"config": longer}) == (
        "supervised 1000x1000 negatives hard jitter 2 300 epochs, seed 1"
    )
    assert "jitter" not in run_label({"config": {**cfg, "jitter": 0}})


def test_config_title_shows_jitter_epochs_and_training_images():
    from ff_numpy.plots import config_title

    cfg = {"experiment": "supervised", "hidden": [2000], "lr": 0.003, "epochs": 500}
    assert config_title(cfg) == "supervised  hidden=[2000]  lr=0.003  epochs=500"
    jittered = {**cfg, "train_size": 60000, "jitter": 2}
    assert config_title(jittered).endswith("epochs=500  train_size=60000  jitter=2")
    assert "jitter" not in config_title({**cfg, "jitter": 0})
