"""colorize / overlay: palette lookup, blending, class selection, colour order, errors."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.classes import CAMVID11
from roadseg_ros.visualize import colorize, overlay

COLORS = [(255, 0, 0), (0, 255, 0), (10, 20, 30)]


def test_colorize_uses_the_palette():
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    out = colorize(mask, COLORS)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 255, 0]
    assert out[1, 0].tolist() == [10, 20, 30]
    assert out[1, 1].tolist() == [0, 0, 0]  # no colour (ignore label): black


def test_colorize_bgr_batch_and_int_masks():
    mask = np.array([[[0, 2]], [[1, 0]]], dtype=np.int64)  # NxHxW, non-uint8 ids
    out = colorize(mask, COLORS, color_order="bgr")
    assert out.shape == (2, 1, 2, 3)
    assert out[0, 0, 1].tolist() == [30, 20, 10]


def test_colorize_whole_camvid_palette():
    mask = np.arange(CAMVID11.num_classes, dtype=np.uint8)[None]
    np.testing.assert_array_equal(colorize(mask, CAMVID11.class_colors)[0], np.array(CAMVID11.class_colors))


def test_overlay_blends_with_alpha():
    image = np.full((4, 6, 3), 100, np.uint8)
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 1
    np.testing.assert_array_equal(overlay(image, mask, COLORS, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, mask, COLORS, alpha=1.0), colorize(mask, COLORS))
    half = overlay(image, mask, COLORS, alpha=0.5)
    assert half[0, 0].tolist() == [178, 50, 50] and half[0, 5].tolist() == [50, 178, 50]


def test_overlay_only_listed_classes_and_bgr():
    image = np.full((2, 3, 3), 40, np.uint8)
    mask = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    out = overlay(image, mask, COLORS, alpha=1.0, color_order="bgr", classes=[2])
    assert out[0, 2].tolist() == [30, 20, 10] and out[1, 0].tolist() == [30, 20, 10]
    assert (out[mask != 2] == 40).all()
    assert overlay(image, mask, COLORS, classes=[]).tolist() == image.tolist()


def test_overlay_leaves_unknown_ids_untinted():
    image = np.full((1, 2, 3), 77, np.uint8)
    out = overlay(image, np.array([[255, 0]], np.uint8), COLORS, alpha=1.0)
    assert out[0, 0].tolist() == [77, 77, 77] and out[0, 1].tolist() == [255, 0, 0]


@pytest.mark.parametrize("image, mask, message", [
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), "does not match"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "HxWx3 uint8"),
    (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), "HxWx3 uint8"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), "integer class ids"),
])
def test_overlay_errors(image, mask, message):
    with pytest.raises(ValueError, match=message):
        overlay(image, mask, COLORS)


def test_bad_alpha_and_palette():
    image, mask = np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, mask, COLORS, alpha=1.5)
    with pytest.raises(ValueError, match="0..255"):
        colorize(mask, [(300, 0, 0)])
    with pytest.raises(ValueError, match="color_order"):
        colorize(mask, COLORS, color_order="hsv")
