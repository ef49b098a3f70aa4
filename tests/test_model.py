"""The layer stack: its training step against autograd, locality, labels, negatives,
normalisation, argument checks and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import AUTOGRAD_TOL, assert_close

from ff_numpy import checkpoint, masks
from ff_numpy.layers import Dense, Masked
from ff_numpy.locally_connected import Local
from ff_numpy.model import FFNet
from ff_numpy.negatives import LabelCode, hard_wrong_labels, random_wrong_labels
from ff_numpy.norm import normalize, normalize_grouped
from ff_numpy.optim import SGD

N_IN = 20


def _net(seed, hidden=(7, 6, 5), **kw):
    return FFNet(N_IN, hidden, np.random.default_rng(seed), dtype=np.float64, **kw)


def _batch(seed, B=4):
    rng = np.random.default_rng(100 + seed)
    return rng.random((B, N_IN)), rng.integers(0, 10, size=B)


# ----------------------------------------------------------------------------- train_step
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_momentum_step_equals_the_step_with_formed_gradients(weight_decay):
    """The speed trick (dense weight gradients handed over as x^T dL/da not yet formed,
    SGD forming them into its velocity) trains to the same weights, float64 to 1e-12,
    over several steps of Hinton's running average; and it is what the step uses."""
    from ff_numpy.blas import OuterSum

    nets, opts = {}, {}
    for fused in (True, False):
        nets[fused] = net = _net(0)
        net.fuse_momentum = fused
        opts[fused] = SGD(0.05, 0.9, 0.9, weight_decay), SGD(0.01, 0.9, 0.9)
        for step in range(4):
            x, labels = _batch(step, B=5)
            net.train_step(x, labels, np.random.default_rng(step), *opts[fused])
    for l, (a, b) in enumerate(zip(nets[True].layers, nets[False].layers)):
        np.testing.assert_allclose(a.W, b.W, rtol=1e-12, atol=1e-12, err_msg=f"layer {l} W")
        np.testing.assert_allclose(a.b, b.b, rtol=1e-12, atol=1e-12, err_msg=f"layer {l} b")
    seen = []

    class Spy(SGD):
        def update(self, params, grads, lr_scale=1.0, prefix=""):
            seen.append(type(grads["W"]))
            super().update(params, grads, lr_scale, prefix)

    nets[True].train_step(*_batch(9), np.random.default_rng(9), Spy(0.05, 0.9, 0.9), SGD(0.0))
    assert seen == [OuterSum] * 3


@pytest.mark.parametrize("kind", ["ssq", "sum"])
@pytest.mark.parametrize("objective", ["max", "min"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_step_is_local_gradient_descent(objective, seed, kind):
    """With plain SGD, each layer moves by -lr * d(mean pos+neg loss of that layer)/dW,
    computed by autograd through that layer only, from the inputs of the same sweep."""
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    net = _net(seed, objective=objective, goodness=kind)
    for layer in net.layers:
        layer.b[:] = np.random.default_rng(seed).standard_normal(layer.b.shape) * 0.1
    x, labels = _batch(seed, B=1 + seed)
    B = len(labels)
    wrong = random_wrong_labels(labels, 10, np.random.default_rng(7))
    before = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]

    lr = 0.05
    net.train_step(x, labels, np.random.default_rng(7), SGD(lr), SGD(0.0))

    X = np.concatenate([net.label_code.embed(x, labels), net.label_code.embed(x, wrong)])
    X = normalize(X, net.norm)
    s = np.where(np.arange(2 * B) < B, 1.0, -1.0) * (1 if objective == "max" else -1)
    for l, (W, b) in enumerate(before):
        theta = net.theta[l]

        def loss(W, b, X=X, theta=theta):
            y = anp.maximum(anp.dot(X, W) + b, 0.0)
            G = anp.sum(y * y, axis=1) if kind == "ssq" else anp.sum(y, axis=1)
            return anp.sum(anp.logaddexp(0.0, -s * (G - theta))) / B

        assert_close(
            net.layers[l].W - W,
            -lr * autograd.grad(loss, 0)(W, b),
            AUTOGRAD_TOL,
            f"layer {l} weight step",
        )
        assert_close(
            net.layers[l].b - b,
            -lr * autograd.grad(loss, 1)(W, b),
            AUTOGRAD_TOL,
            f"layer {l} bias step",
        )
        X = normalize(np.maximum(X @ W + b, 0), net.norm)  # next input, pre-update weights


@pytest.mark.parametrize("peer", [0.0, 0.03])
def test_no_gradient_crosses_layers(peer):
    """With the negative labels fixed, a layer's update ignores every layer above it."""
    x, labels = _batch(0, B=5)
    a, b = _net(0, peer_strength=peer), _net(0, peer_strength=peer)
    b.layers[2].W[:] = np.random.default_rng(9).standard_normal(b.layers[2].W.shape)
    for net in (a, b):
        net.train_step(
            x,
            labels,
            np.random.default_rng(3),
            SGD(0.1, 0.9, 0.9, 1e-3),
            SGD(0.1),
            negatives="random",
        )
    for l in (0, 1):
        np.testing.assert_array_equal(a.layers[l].W, b.layers[l].W)
        np.testing.assert_array_equal(a.layers[l].b, b.layers[l].b)
    assert not np.array_equal(a.layers[2].W, b.layers[2].W)


def test_training_reduces_layer_losses():
    rng = np.random.default_rng(0)
    x, labels = rng.random((64, N_IN)), rng.integers(0, 10, 64)
    net = _net(1, hidden=(30, 30))
    opt, ro = SGD(0.05, 0.9, 0.9), SGD(0.1)
    first = net.train_step(x, labels, rng, opt, ro)
    for _ in range(200):
        last = net.train_step(x, labels, rng, opt, ro)
    assert last["layer0"] < first["layer0"] and last["softmax"] < first["softmax"]


# ----------------------------------------------------------------------------- prediction
def test_goodness_prediction_uses_scored_layers_and_objective():
    net = _net(0)
    x, _ = _batch(0, B=6)
    G = net.goodness_per_label(x)
    assert G.shape == (6, 10)
    k = 3
    ys = net.activities(x, np.full(6, k))
    np.testing.assert_allclose(G[:, k], sum((ys[i] ** 2).sum(1) for i in (1, 2)))
    np.testing.assert_array_equal(net.predict_goodness(x), G.argmax(1))
    net.objective = "min"
    np.testing.assert_array_equal(net.predict_goodness(x), G.argmin(1))
    assert net.predict_softmax(x).shape == (6,)


def test_shift_averaged_prediction_sums_goodness_and_averages_probabilities():
    from ff_numpy.negatives import all_shifts

    net = FFNet(784, [9, 8], np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).random((5, 784))
    copies = [xs for _, _, xs in all_shifts(x, 1)]
    assert len(copies) == 9
    G = net.goodness_per_label(x, batch_size=2, shifts=1)
    np.testing.assert_allclose(G, sum(net.goodness_per_label(xs) for xs in copies), rtol=1e-12)
    np.testing.assert_array_equal(net.predict_goodness(x, batch_size=2, shifts=1), G.argmax(1))
    P = sum(net.readout.probs(net.features(xs)) for xs in copies) / 9
    np.testing.assert_array_equal(net.predict_softmax(x, batch_size=2, shifts=1), P.argmax(1))
    # shifts=0 is the plain prediction
    np.testing.assert_array_equal(net.goodness_per_label(x, shifts=0), net.goodness_per_label(x))
    with pytest.raises(ValueError, match="rows"):
        _net(0).goodness_per_label(_batch(0)[0], shifts=1)  # 20 inputs are not 28 x 28 images


# ----------------------------------------------------------------------------- labels
def test_label_code_first_pixels_and_neutral():
    code = LabelCode.first_pixels(10)
    x = np.full((3, 12), 0.5)
    out = code.embed(x, np.array([0, 9, 4]))
    assert np.all(x == 0.5)  # the input is not modified
    np.testing.assert_array_equal(out[1, :10], np.eye(10)[9])
    np.testing.assert_array_equal(out[:, 10:], 0.5)
    np.testing.assert_allclose(code.embed(x, None)[:, :10], 0.1)


def test_label_code_rgb_first_channel():
    hwc = LabelCode.first_channel(4, (8, 8, 3), channels_last=True)
    np.testing.assert_array_equal(hwc.positions, [0, 3, 6, 9])
    chw = LabelCode.first_channel(4, (3, 8, 8), channels_last=False)
    np.testing.assert_array_equal(chw.positions, [0, 1, 2, 3])
    out = hwc.embed(np.zeros((1, 192)), np.array([2]))
    assert out[0, 6] == 1 and out.sum() == 1


@pytest.mark.parametrize("n_classes", [2, 4, 10, 24])
def test_random_wrong_labels_never_true_and_cover_all(n_classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 5000)
    wrong = random_wrong_labels(labels, n_classes, rng)
    assert np.all(wrong != labels)
    assert set(np.unique(wrong)) == set(range(n_classes))


def test_hard_wrong_labels_follow_probabilities_without_true_label():
    rng = np.random.default_rng(0)
    probs = np.tile([0.5, 0.3, 0.15, 0.05], (20000, 1))
    labels = np.zeros(20000, dtype=int)
    wrong = hard_wrong_labels(probs, labels, rng)
    assert np.all(wrong != 0)
    freq = np.bincount(wrong, minlength=4) / len(wrong)
    np.testing.assert_allclose(freq[1:], [0.6, 0.3, 0.1], atol=0.015)
    # a row whose wrong labels all have probability 0 falls back to uniform
    w = hard_wrong_labels(np.array([[1.0, 0, 0, 0]] * 3000), np.zeros(3000, int), rng)
    assert np.all(w != 0) and len(np.unique(w)) == 3


# ----------------------------------------------------------------------------- norm
def test_normalize_scales_and_keeps_zero_rows():
    y = np.array([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    r = normalize(y, "rms")
    assert np.isclose((r[0] ** 2).sum(), 4) and np.all(r[1] == 0)
    np.testing.assert_allclose(normalize(y, "l2")[0], [0.6, 0.8, 0, 0])
    np.testing.assert_allclose(normalize(y, "mean")[0], [12 / 7, 16 / 7, 0, 0])
    np.testing.assert_allclose(normalize(y, "l1")[0], [3 / 7, 4 / 7, 0, 0])
    for scale in ("mean", "l1"):
        assert np.all(normalize(y, scale)[1] == 0)
    assert np.all(np.isfinite(normalize(np.zeros((2, 3)))))
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(y, "l1x")


@pytest.mark.parametrize("scale", ["rms", "l2", "mean", "l1"])
def test_normalize_grouped_is_normalize_per_group(scale):
    """Each group of adjacent units divided by its own length: by hand, equal to
    :func:`normalize` on every group, in place, and zero groups stay zero."""
    y = np.array([[3.0, 4.0, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    starts = np.array([0, 2, 4])
    r = normalize_grouped(y, starts, scale)
    for a, z in ((0, 2), (2, 4), (4, 5)):
        np.testing.assert_allclose(r[:, a:z], normalize(y[:, a:z], scale), rtol=1e-15)
    assert np.all(r[:, 2:4] == 0) and np.all(r[1, 1:] == 0)
    if scale == "rms":
        np.testing.assert_allclose(r[0], [3 / 12.5**0.5, 4 / 12.5**0.5, 0, 0, 1])
    one = normalize_grouped(y, np.array([0]), scale)
    np.testing.assert_allclose(one, normalize(y, scale), rtol=1e-15)  # one group: the layer
    rng = np.random.default_rng(0)
    z = rng.random((6, 12)).astype(np.float32)
    ref = normalize(z.reshape(6 * 3, 4), scale).reshape(6, 12)
    out = normalize_grouped(z, np.array([0, 4, 8]), scale, out=z)
    assert out is z and out.dtype == np.float32
    np.testing.assert_allclose(z, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_grouped(y, starts, "l3")


# ----------------------------------------------------------------------------- errors
def test_bad_arguments_raise_clear_errors():
    net = _net(0)
    x, labels = _batch(0)
    opt = SGD(0.1)
    with pytest.raises(ValueError, match="unknown objective"):
        _net(0, objective="mean")
    with pytest.raises(ValueError, match="unknown goodness"):
        _net(0, goodness="cube")
    assert _net(0, goodness="sum").norm == "mean" and _net(0).norm == "rms"
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        net.train_step(x, np.array([0, 1, 2, 10]), np.random.default_rng(0), opt, opt)
    with pytest.raises(ValueError, match="4 entries but the inputs have 3 rows"):
        net.train_step(x[:3], labels, np.random.default_rng(0), opt, opt)
    with pytest.raises(ValueError, match="unknown negatives"):
        net.train_step(x, labels, np.random.default_rng(0), opt, opt, negatives="easy")
    bad = x.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.predict_goodness(bad)
    with pytest.raises(ValueError, match="columns"):
        net.predict_softmax(x[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        net.predict_softmax(x[0])
    with pytest.raises(ValueError, match="hidden"):
        FFNet(N_IN, [], np.random.default_rng(0))
    with pytest.raises(ValueError, match="theta"):
        _net(0, theta=[1.0, 2.0])


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_restores_model_exactly(tmp_path):
    net = _net(0, peer_strength=0.03)
    x, labels = _batch(0)
    net.train_step(x, labels, np.random.default_rng(0), SGD(0.1), SGD(0.1))
    path = checkpoint.save(tmp_path / "m.npz", net.state(), {"config": net.config()})
    arrays, meta = checkpoint.load(path)
    other = FFNet.from_config(meta["config"])
    other.load_state(arrays)
    np.testing.assert_array_equal(other.goodness_per_label(x), net.goodness_per_label(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def _composed_net(kind: str) -> FFNet:
    """A net composed from parts: Dense, then Masked over fields and over a raw mask; or
    Local layers (one with its own block shape), goodness and norm per location."""
    rng = np.random.default_rng(0)
    if kind == "dense+masked":
        fields = masks.grid_fields((2, 2), 3, (1, 2), (2, 1), 2)  # 12 -> 4
        mask = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0], [0, 1, 1]])  # 4 -> 3
        layers = [Dense(N_IN, 12, rng), Masked.from_fields(fields, rng), Masked(4, 3, mask, rng)]
        return FFNet(layers=layers, score_layers=[1, 2], peer_strength=0.03)
    first = Local(masks.same_size_fields((4, 5, 1), 3, 3), rng)  # 20 -> 60
    second = Local(masks.same_size_fields((4, 5, 3), 2, 5), rng)  # 60 -> 40
    second.set_block((2, 1), bands=False)
    return FFNet(layers=[first, second], goodness_per="location", norm_per="location")


@pytest.mark.parametrize("kind", ["dense+masked", "local"])
def test_composed_net_saves_and_loads(tmp_path, kind):
    """A composed net's config records its layers; the loaded net is the same net: its
    layers, locations, goodness and predictions are the saved net's."""
    from ff_numpy.experiments.saved import load_ffnet

    net = _composed_net(kind)
    x, labels = _batch(0)
    for step in range(2):
        net.train_step(x, labels, np.random.default_rng(step), SGD(0.1), SGD(0.1))
    cfg = net.config()
    assert [c["type"] for c in cfg["layers"]] == [type(layer).__name__ for layer in net.layers]
    path = checkpoint.save(tmp_path / "model.npz", net.state(), {"config": {"model": cfg}})
    other = load_ffnet(path)
    assert [type(layer) for layer in other.layers] == [type(layer) for layer in net.layers]
    assert other.config() == cfg and other.local == net.local
    for a, b in zip(other.group_starts + other.norm_starts, net.group_starts + net.norm_starts):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(other.layers, net.layers):
        np.testing.assert_array_equal(a.W, b.W)
        assert getattr(a, "block", None) == getattr(b, "block", None)
    np.testing.assert_array_equal(other.goodness_per_label(x), net.goodness_per_label(x))
    np.testing.assert_array_equal(other.predict_softmax(x), net.predict_softmax(x))
    assert "layers" not in _net(0).config()  # a net built from its sizes: as before


def test_unknown_layer_type_in_a_config_is_named(tmp_path):
    net = _composed_net("dense+masked")
    cfg = net.config()
    cfg["layers"][1]["type"] = "Conv2D"
    with pytest.raises(ValueError, match="unknown layer type 'Conv2D'"):
        FFNet.from_config(cfg)
    path = checkpoint.save(tmp_path / "m.npz", net.state(), {"config": {"model": cfg}})
    with pytest.raises(ValueError, match="malformed model configuration: unknown layer type"):
        checkpoint.load_model(FFNet, path, "FFNet configuration")


def test_checkpoint_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        checkpoint.load(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        checkpoint.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="no metadata"):
        checkpoint.load(tmp_path / "plain.npz")
    net = _net(0)
    with pytest.raises(ValueError, match="shape"):
        net.load_state({**net.state(), "layer0.W": np.zeros((2, 2))})


def test_failed_save_leaves_old_checkpoint_and_no_temporary(tmp_path):
    path = checkpoint.save(tmp_path / "m.npz", {"a": np.ones(2)}, {"epoch": 1})
    with pytest.raises(TypeError):
        checkpoint.save(path, {"a": np.zeros(2)}, {"epoch": object()})  # not JSON
    arrays, meta = checkpoint.load(path)
    assert meta == {"epoch": 1} and arrays["a"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_peer_normalisation_adds_the_stated_term_to_every_unit():
    """With peer normalisation, each layer's step is the FF step plus
    lr * X_pos^T (lambda (m - mean(m))) / B, applied to active and inactive units alike,
    with m the running means updated on this batch's positive activities first."""
    x, labels = _batch(1, B=3)
    B = len(labels)
    plain, peer = _net(4), _net(4, peer_strength=0.5)
    lr = 0.05
    means_before = [p.mean.copy() for p in peer.peers]
    W_before = [layer.W.copy() for layer in peer.layers]
    for net in (plain, peer):
        net.train_step(x, labels, np.random.default_rng(7), SGD(lr), SGD(0.0))
    wrong = random_wrong_labels(labels, 10, np.random.default_rng(7))
    X = normalize(
        np.concatenate([peer.label_code.embed(x, labels), peer.label_code.embed(x, wrong)])
    )
    for l, W in enumerate(W_before):
        Y = np.maximum(X @ W + peer.layers[l].b * 0, 0)  # biases start at zero
        m = 0.9 * means_before[l] + 0.1 * Y[:B].mean(axis=0)
        np.testing.assert_allclose(peer.peers[l].mean, m)
        term = 0.5 * (m - m.mean())  # dL/da of every unit, on positive rows
        expected = plain.layers[l].W - lr * np.outer(X[:B].sum(axis=0), term) / B
        np.testing.assert_allclose(peer.layers[l].W, expected, rtol=1e-10, atol=1e-12)
        X = normalize(Y)


def test_normalized_activities_batches_equal_one_sweep():
    net = _net(3)
    x, labels = _batch(3, B=7)
    whole = net.sweep(x, labels)[1]
    for got, ref in zip(net.normalized_activities(x, labels, batch_size=3), whole):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    assert [h.shape for h in net.normalized_activities(x)] == [(7, n) for n in net.hidden]


def test_unit_means_batches_equal_the_mean_of_one_sweep():
    rng = np.random.default_rng(5)
    net = FFNet(20, [7, 5], rng, n_classes=4, dtype=np.float64)
    x = rng.random((23, 20))
    y = rng.integers(0, 4, 23)
    for labels in (None, y):
        means = net.unit_means(x, labels, batch_size=4)  # 6 batches, the last one short
        full = net.activities(x, labels)
        assert [m.shape for m in means] == [(7,), (5,)]
        for m, a in zip(means, full):
            assert_close(m, a.mean(axis=0), 1e-12, "unit_means vs one sweep")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308])
def test_constructors_refuse_non_finite_theta_and_peer_strength(bad):
    from ff_numpy.recurrent import RecurrentFFNet

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="^theta must be a finite number"):
        FFNet(20, [5], rng, theta=bad)
    with pytest.raises(ValueError, match="^peer_strength must be a finite number"):
        FFNet(20, [5], rng, peer_strength=bad)
    with pytest.raises(ValueError, match="^theta must be a finite number"):
        RecurrentFFNet(20, [5], 10, rng, theta=bad)
    with pytest.raises(ValueError, match="^peer_strength must be a finite number"):
        RecurrentFFNet(20, [5], 10, rng, peer_strength=bad)


def test_composed_layers_must_hold_the_nets_dtype():
    """A float64 layer in a float32 net would train in mixed precision: refused."""
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"layers must hold float32 arrays .* got \['float64'\]"):
        FFNet(layers=[Dense(784, 20, rng, np.float64)])
    net = FFNet(layers=[Dense(784, 20, rng, np.float64)], dtype=np.float64)
    assert net.dtype == np.float64
