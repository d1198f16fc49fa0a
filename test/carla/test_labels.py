"""CARLA label maps in all three schemes (no simulator, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.carla import labels as cu
from roadseg_ros.classes import CAMVID11, IGNORE_INDEX


def test_label_tables_match_the_installed_carla_client():
    """The post-0.9.14 table is the numbering of carla.CityObjectLabel (0.9.16 client)."""
    carla = pytest.importorskip("carla", reason="carla client not installed")
    ids = {name: int(v) for name, v in carla.CityObjectLabel.names.items()}
    names = [name for name, _ in cu.CARLA_LABELS_POST_0914]
    assert ids["Roads"] == names.index("road") == 1
    assert ids["RoadLines"] == names.index("road_line") == 24
    assert ids["Sidewalks"] == names.index("sidewalk")
    assert ids["Car"] == names.index("car")
    assert ids["Terrain"] == names.index("terrain")
    assert ids["GuardRail"] == names.index("guard_rail") == len(names) - 1


def test_drivable_ids_differ_between_numberings():
    assert cu.drivable_ids("pre_0914") == (6, 7)
    assert cu.drivable_ids("post_0914") == (1, 24)
    assert set(cu.drivable_colors()) == {(128, 64, 128), (157, 234, 50)}
    with pytest.raises(ValueError, match="pre_0914, post_0914"):
        cu.drivable_ids("0.9.10")


def test_ids_to_drivable_and_camvid_per_numbering():
    ids = np.array([[7, 6, 8, 10], [1, 24, 2, 14]], dtype=np.uint8)
    pre = cu.ids_to_drivable(ids, "pre_0914")
    post = cu.ids_to_drivable(ids, "post_0914")
    # Row 0 is road/road line/sidewalk/vehicle in the old numbering, row 1 in the new one.
    np.testing.assert_array_equal(pre, [[True, True, False, False], [False, False, False, False]])
    np.testing.assert_array_equal(post, [[False, False, False, False], [True, True, False, False]])
    road, pavement, car = (CAMVID11.index(n) for n in ("road", "pavement", "car"))
    np.testing.assert_array_equal(cu.ids_to_camvid11(ids[:1], "pre_0914"), [[road, road, pavement, car]])
    np.testing.assert_array_equal(cu.ids_to_camvid11(ids[1:], "post_0914"), [[road, road, pavement, car]])
    # terrain (22 old / 10 new) has no CamVid class; ids past the table are ignored too.
    assert cu.ids_to_camvid11(np.array([[22, 200]], np.uint8), "pre_0914").tolist() == [[IGNORE_INDEX] * 2]
    with pytest.raises(ValueError, match="0..255"):
        cu.ids_to_drivable(np.array([[300]]), "post_0914")


@pytest.mark.parametrize("scheme", ["pre_0914", "post_0914"])
def test_palette_round_trip_keeps_drivable_and_camvid(scheme):
    rng = np.random.default_rng(0)
    n = len(cu.CARLA_LABELS_PRE_0914 if scheme == "pre_0914" else cu.CARLA_LABELS_POST_0914)
    ids = rng.integers(0, n, size=(12, 17)).astype(np.uint8)
    rgb = cu.ids_to_palette(ids, scheme)
    np.testing.assert_array_equal(cu.palette_to_drivable(rgb), cu.ids_to_drivable(ids, scheme))
    np.testing.assert_array_equal(cu.palette_to_camvid11(rgb), cu.ids_to_camvid11(ids, scheme))
    # The same colours as the ROS bridge publishes them (bgra8) give the same answer.
    bgra = np.concatenate([rgb[..., ::-1], np.full((12, 17, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(cu.palette_to_drivable(bgra, "bgra"), cu.ids_to_drivable(ids, scheme))
    np.testing.assert_array_equal(cu.label_image_to_drivable(bgra, "palette", "bgra"),
                                  cu.ids_to_drivable(ids, scheme))


def test_unknown_palette_colours_are_not_drivable_and_ignored():
    rgb = np.array([[[128, 64, 128], [128, 64, 129], [1, 2, 3]]], dtype=np.uint8)
    assert cu.palette_to_drivable(rgb).tolist() == [[True, False, False]]
    assert cu.palette_to_camvid11(rgb).tolist() == [[CAMVID11.index("road"), IGNORE_INDEX, IGNORE_INDEX]]
    with pytest.raises(ValueError, match="bgra image must be HxWx4"):
        cu.palette_to_drivable(rgb, "bgra")
    with pytest.raises(ValueError, match="valid: rgb, rgba, bgr, bgra"):
        cu.palette_to_drivable(rgb, "hsv")


def test_raw_semantic_ids_in_red_channel():
    """CARLA's raw semantic camera (and the Lyft PNGs) keep the id in the red channel."""
    ids = np.array([[7, 1], [6, 24]], dtype=np.uint8)
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = ids
    bgra[..., 0] = 99      # other channels must not matter
    np.testing.assert_array_equal(cu.red_channel_ids(bgra, "bgra"), ids)
    np.testing.assert_array_equal(cu.label_image_to_drivable(bgra, "pre_0914", "bgra"),
                                  [[True, False], [True, False]])
    np.testing.assert_array_equal(cu.label_image_to_drivable(ids, "post_0914"),
                                  [[False, True], [False, True]])
    with pytest.raises(ValueError, match="palette"):
        cu.label_image_to_drivable(ids, "cityscapes")
