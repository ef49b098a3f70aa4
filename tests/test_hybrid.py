"""Hybrid-image negatives (paper Sec. 3.2, Fig. 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import label

from ff_numpy.negatives import hybrid_images, hybrid_masks


def test_masks_are_binary_balanced_and_have_large_regions():
    masks = hybrid_masks(100, np.random.default_rng(0))
    assert masks.dtype == bool and masks.shape == (100, 28, 28)
    assert 0.4 < masks.mean() < 0.6
    runs = [28 * 28 / ((m[:, 1:] != m[:, :-1]).sum() + 28) for m in masks]
    assert 5 < np.mean(runs) < 11  # a stroke to half a digit wide
    sizes = np.concatenate(
        [np.bincount(label(m == v)[0].ravel())[1:] for m in masks for v in (True, False)]
    )
    assert np.median(sizes) >= 20  # regions, not salt and pepper
    noise = hybrid_masks(100, np.random.default_rng(0), n_blur=0)
    assert np.mean([(m[:, 1:] != m[:, :-1]).mean() for m in noise]) > 0.4


def test_hybrid_takes_each_pixel_from_one_of_two_different_parents():
    rng = np.random.default_rng(1)
    x = rng.random((50, 784))
    h, masks, partner = hybrid_images(x, rng)
    assert np.all(partner != np.arange(50))
    np.testing.assert_array_equal(h[masks], x[masks])
    np.testing.assert_array_equal(h[~masks], x[partner][~masks])
    h2, _, _ = hybrid_images(x, np.random.default_rng(1))
    h3, _, _ = hybrid_images(x, np.random.default_rng(1))
    np.testing.assert_array_equal(h2, h3)  # seeded


def test_hybrid_bad_input():
    with pytest.raises(ValueError, match="at least 2 images"):
        hybrid_images(np.zeros((1, 784)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2 images"):
        hybrid_images(np.zeros((4, 100)), np.random.default_rng(0))


def test_gallery_figure(tmp_path):
    from ff_numpy.plots import plot_hybrid_gallery

    rng = np.random.default_rng(0)
    x = rng.random((4, 784))
    h, m, p = hybrid_images(x, rng)
    path = plot_hybrid_gallery(x, h, m, p, tmp_path / "g.png", n=3)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_jitter_draws_row_shifts_then_column_shifts_from_the_generator():
    from ff_numpy.negatives import all_shifts, jitter

    x = np.random.default_rng(0).random((40, 784)).astype(np.float32)
    out = jitter(x, np.random.default_rng(7), 2)
    rng = np.random.default_rng(7)  # the same draws, in the order jitter makes them
    dr, dc = rng.integers(-2, 3, size=40), rng.integers(-2, 3, size=40)
    copies = {(r, c): xs for r, c, xs in all_shifts(x, 2)}
    for b in range(40):
        np.testing.assert_array_equal(out[b], copies[dr[b], dc[b]][b])
    assert out.dtype == np.float32


def test_all_shifts_moves_every_image_by_each_offset_once():
    from ff_numpy.negatives import all_shifts

    x = np.zeros((3, 784))
    x[:, 14 * 28 + 14] = 1.0
    seen = []
    for dr, dc, xs in all_shifts(x, 2):
        assert xs.shape == x.shape
        assert np.all(np.argmax(xs, axis=1) == (14 + dr) * 28 + 14 + dc)
        seen.append((dr, dc))
    assert sorted(seen) == [(r, c) for r in range(-2, 3) for c in range(-2, 3)]
    (only,) = list(all_shifts(x, 0))
    assert only[:2] == (0, 0) and only[2] is x
    assert len(list(all_shifts(np.zeros((2, 100)), 0))) == 1  # no shift: any input will do
    edge = np.zeros((1, 784))
    edge[0, 27] = 1.0  # top-right pixel: moved right or up, it falls off
    fallen = {(dr, dc) for dr, dc, xs in all_shifts(edge, 1) if not xs.any()}
    assert fallen == {(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)}
    with pytest.raises(ValueError, match="rows"):
        list(all_shifts(np.zeros((2, 100)), 1))
    with pytest.raises(ValueError, match=">= 0"):
        list(all_shifts(x, -1))


def test_jitter_shifts_each_image_within_two_pixels_without_wrapping():
    from ff_numpy.negatives import jitter

    rng = np.random.default_rng(0)
    x = np.zeros((500, 784))
    x[:, 14 * 28 + 14] = 1.0  # one bright pixel in the middle of every image
    out = jitter(x, rng, 2)
    pos = np.argmax(out, axis=1)
    dr, dc = pos // 28 - 14, pos % 28 - 14
    assert np.all(np.abs(dr) <= 2) and np.all(np.abs(dc) <= 2)
    assert len(set(zip(dr, dc))) == 25  # all 25 shifts occur
    edge = np.zeros((1, 784))
    edge[0, 0] = 1.0  # top-left pixel: shifted up or left it falls off, never wraps
    seen = {tuple(np.nonzero(jitter(edge, np.random.default_rng(i), 2)[0])[0]) for i in range(60)}
    assert all(len(s) <= 1 for s in seen) and () in seen
    np.testing.assert_array_equal(jitter(x, rng, 0), x)
    with pytest.raises(ValueError, match="rows"):
        jitter(np.zeros((2, 100)), rng)
