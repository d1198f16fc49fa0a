"""Synthetic road scenes: deterministic in the seed, valid CAMVID11 labels, plausible layout."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.classes import CAMVID11, IGNORE_INDEX
from roadseg_ros.data import build_dataset
from roadseg_ros.data.datasets import SyntheticScenes
from roadseg_ros.data.synthetic import DEFAULT_OPTIONS, render_scene, render_scene_with_info

W, H = 128, 72
SKY, ROAD = CAMVID11.index("sky"), CAMVID11.index("road")


def test_same_seed_same_arrays_and_different_seeds_differ() -> None:
    a_img, a_lab = render_scene(5, W, H)
    b_img, b_lab = render_scene(5, W, H)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, c_lab = render_scene(6, W, H)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_labels_are_camvid11_and_layout_is_a_road_scene(seed: int) -> None:
    image, label = render_scene(seed, W, H)
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert label.dtype == np.uint8 and label.shape == (H, W)
    assert set(np.unique(label)) <= set(range(CAMVID11.num_classes)), "synthetic labels are exact: no ignore"
    bottom, top = label[-4:], label[:4]
    assert (bottom == ROAD).mean() > 0.5, "the camera drives on the road"
    assert (top == SKY).any(), "the sky is above the horizon"
    assert not (label[H // 2 + 8 :] == SKY).any(), "no sky well below the horizon"
    assert (label == ROAD).mean() > 0.1


def test_options_fix_what_the_seed_would_choose() -> None:
    _, _, info = render_scene_with_info(
        3, W, H, horizon=0.45, num_lanes=3, curvature=0.0, environment="rural"
    )
    assert (info.width, info.height) == (W, H)
    assert info.horizon_row == pytest.approx(0.45 * H)
    assert info.num_lanes == 3
    empty = render_scene(3, W, H, car_density=0.0, shadows=False)[1]
    assert empty.shape == (H, W)
    # A scene animated by distance stays the same road but moves.
    first = render_scene(4, W, H, distance=0.0)[1]
    later = render_scene(4, W, H, distance=15.0)[1]
    assert not np.array_equal(first, later)
    assert (later[-4:] == ROAD).mean() > 0.5


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['fog'\]"):
        render_scene(0, W, H, fog=0.3)
    with pytest.raises(ValueError, match="environment 'desert' not one of urban, suburban, rural"):
        render_scene(0, W, H, environment="desert")
    with pytest.raises(ValueError, match="too small"):
        render_scene(0, 8, 8)
    assert "distance" in DEFAULT_OPTIONS


def test_dataset_splits_use_disjoint_seeds_and_road_binary_mapping() -> None:
    train = build_dataset("synthetic", None, "train", num_scenes=3, size=(96, 64), seed=10)
    val = build_dataset("synthetic", None, "val", num_scenes=2, size=(96, 64), seed=10)
    assert isinstance(train, SyntheticScenes)
    assert len(train) == 3 and len(val) == 2
    assert set(train.names).isdisjoint(val.names)
    img, lab = train[1]
    ref_img, ref_lab = render_scene(train.seed_of(1), 96, 64)
    np.testing.assert_array_equal(img, ref_img)
    np.testing.assert_array_equal(lab, ref_lab)
    binary = build_dataset(
        "synthetic", None, "train", taxonomy="road_binary", num_scenes=3, size=(96, 64), seed=10
    )
    assert binary.taxonomy.name == "road_binary"
    np.testing.assert_array_equal(binary[1][1], (ref_lab == ROAD).astype(np.uint8))
    assert IGNORE_INDEX not in np.unique(binary[1][1])
    with pytest.raises(ValueError, match="split 'dev' not one of train, val, test"):
        SyntheticScenes(2, split="dev")
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_dataset("synthetic", None, "train", carla_labels="palette")
