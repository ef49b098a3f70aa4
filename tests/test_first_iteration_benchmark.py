"""``benchmarks/cifar10_first_iteration.py``: the goodness of iterations 0 and 1 and the
share of iteration 1's goodness that the local gradient cannot reach, on small nets whose
answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BENCHMARKS, load_tutorial

from ff_numpy.recurrent import RecurrentFFNet


def _net(damping=0.3):
    rng = np.random.default_rng(0)
    net = RecurrentFFNet(6, [5, 4], 3, rng, damping=damping, iterations=3,
                         loss_iterations=(1, 3), average_iterations=(1, 3),
                         dtype=np.float64)  # fmt: skip
    net.up[0].b[:] = 5.0  # layer 0 on at iteration 0 for every image
    net.up[1].b[:] = 1.0  # layer 1 on: its normalised state is positive
    return net, rng.standard_normal((7, 6)), rng.integers(0, 3, 7)


def test_units_held_off_by_top_down_input_carry_d_y0_and_count_as_out_of_reach():
    fi = load_tutorial("cifar10_first_iteration", BENCHMARKS)
    net, x, y = _net()
    net.down[0].W[:] = -100.0  # top-down input from layer 1 turns every layer-0 unit off
    (l0, l1) = fi.first_iteration(net, x, y)
    ys, _ = net.initial_pass(net.image_input(x))
    G0 = (ys[0] ** 2).sum(axis=1)
    np.testing.assert_allclose(l0["iteration_0"], np.percentile(G0, fi.PERCENTILES), rtol=1e-12)
    # off everywhere: y1 = d y0, so G1 = d^2 G0, all of it out of reach
    np.testing.assert_allclose(l0["iteration_1"], 0.09 * np.array(l0["iteration_0"]), rtol=1e-12)
    assert l0["share_off_at_1"] == 1.0
    assert l0["theta"] == 5.0 and l1["theta"] == 4.0  # the default: the layer's width
    assert 0.0 <= l1["share_off_at_1"] < 1.0


def test_without_top_down_input_no_goodness_is_out_of_reach():
    fi = load_tutorial("cifar10_first_iteration", BENCHMARKS)
    net, x, y = _net()
    net.down[0].W[:] = 0.0  # a_1 = the image term + b > 0: the same as iteration 0
    (l0, _) = fi.first_iteration(net, x, y)
    assert l0["share_off_at_1"] == 0.0
    np.testing.assert_allclose(l0["iteration_1"], l0["iteration_0"], rtol=1e-12)


def test_by_iteration_splits_correct_from_wrong_labels():
    fi = load_tutorial("cifar10_first_iteration", BENCHMARKS)
    net, x, y = _net()
    means = fi.by_iteration(net, x, y)
    G = net.goodness_trace(x, per_layer=True)
    assert len(means) == 2 and len(means[0]["correct"]) == 3
    np.testing.assert_allclose(means[1]["correct"], G[np.arange(7), y, :, 1].mean(axis=0))
    wrong = [G[n, k, :, 1] for n in range(7) for k in range(3) if k != y[n]]
    np.testing.assert_allclose(means[1]["wrong"], np.mean(wrong, axis=0))
    # the pair loss: logistic loss of the correct row plus the wrong rows' mean (max: s = +1, -1)
    softplus = lambda z: np.logaddexp(0.0, z)  # noqa: E731
    G1, th = G[..., 1], 4.0
    expected = softplus(-(G1[np.arange(7), y] - th)).mean(0) + np.mean(
        [softplus(G[n, k, :, 1] - th) for n in range(7) for k in range(3) if k != y[n]], axis=0
    )
    np.testing.assert_allclose(means[1]["pair_loss"], expected, rtol=1e-12)
    text = fi.report("run", fi.first_iteration(net, x, y), means)
    assert "layer 1 (theta 4)" in text and "pre-activation is off" in text


def test_the_command_refuses_a_folder_without_a_model(tmp_path, capsys):
    fi = load_tutorial("cifar10_first_iteration", BENCHMARKS)
    with pytest.raises(SystemExit):
        fi.main([str(tmp_path)])
    assert "no model.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fi.main([str(tmp_path), "--images", "0"])
    assert "--images must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fi.main([str(tmp_path), "--test-images", "5"])
    assert "--test-images must be 0 or at least 10" in capsys.readouterr().err


def test_errors_by_decile_of_the_initial_pass_goodness():
    fi = load_tutorial("cifar10_first_iteration", BENCHMARKS)
    net, _, _ = _net()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    by = fi.errors_by_initial_goodness(net, x, y, bins=4)
    ys, _ = net.initial_pass(net.image_input(x))
    g0 = (ys[0] ** 2).sum(axis=1)
    assert by["count"] == [10, 10, 10, 10]
    low = g0 <= by["edges"][0]  # the lowest quarter
    assert low.sum() == 10
    assert by["softmax"][0] == np.mean(net.predict_softmax(x[low]) != y[low])
    assert by["goodness"][0] == np.mean(net.predict_goodness(x[low]) != y[low])
