"""roadseg_ros.geometry: drivable-area analysis and ground-plane projection on known shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadseg_ros.geometry import (
    GRID_FREE,
    GRID_OCCUPIED,
    GRID_UNKNOWN,
    NO_BOUNDARY,
    GridSpec,
    GroundCamera,
    analyze_drivable,
    drivable_from_mask,
    drivable_grid,
    intrinsics_from_fov,
    main_region,
    sample_rows,
)


def _trapezoid(h: int = 60, w: int = 80) -> np.ndarray:
    """A road: rows from h/2 down, widening from 20 px at the top to the full width at the bottom."""
    m = np.zeros((h, w), bool)
    for y in range(h // 2, h):
        half = int(10 + (w / 2 - 10) * (y - h // 2) / (h - 1 - h // 2))
        m[y, w // 2 - half: w // 2 + half] = True
    return m


def test_drivable_from_mask_uses_the_classes() -> None:
    mask = np.array([[3, 4, 3], [0, 1, 3]], np.uint8)
    np.testing.assert_array_equal(drivable_from_mask(mask, [3]), mask == 3)
    np.testing.assert_array_equal(drivable_from_mask(mask, [3, 4]), (mask == 3) | (mask == 4))
    assert not drivable_from_mask(mask, []).any()


def test_sample_rows_cover_the_lower_half_and_end_at_the_bottom() -> None:
    rows = sample_rows(100, 6)
    assert rows.dtype == np.uint32 and len(rows) == 6
    assert rows[-1] == 99 and 48 <= rows[0] <= 51
    assert np.all(np.diff(rows.astype(int)) > 0)
    assert len(sample_rows(3, 10)) <= 3
    assert len(sample_rows(100, 0)) == 0


def test_main_region_is_the_bottom_touching_component() -> None:
    m = np.zeros((40, 40), bool)
    m[30:, 5:15] = True          # small, touches the bottom
    m[25:, 20:38] = True         # larger, touches the bottom
    m[2:10, 2:38] = True         # largest, floating (a car park across the street)
    region = main_region(m)
    assert region[35, 30] and not region[35, 10] and not region[5, 5]
    assert not main_region(np.zeros((5, 5), bool)).any()
    floating = np.zeros((10, 10), bool)
    floating[2:5, 2:5] = True
    assert not main_region(floating).any()


def test_analysis_of_a_trapezoid_road() -> None:
    m = _trapezoid()
    conf = np.where(m, 0.8, 0.3).astype(np.float32)
    a = analyze_drivable(m, conf, boundary_count=5)
    assert a.drivable_ratio == pytest.approx(m.mean())
    assert a.main_region_ratio == pytest.approx(m.mean())
    assert a.mean_confidence == pytest.approx(0.8)
    assert list(a.boundary_rows) == list(sample_rows(60, 5))
    for y, left, right in zip(a.boundary_rows, a.left_boundary, a.right_boundary):
        xs = np.flatnonzero(m[y])
        if xs.size:
            assert (left, right) == (xs[0], xs[-1])
        else:
            assert left == right == NO_BOUNDARY
    assert a.left_boundary[-1] == 0 and a.right_boundary[-1] == 79
    # The simplified outline is a handful of vertices close to the trapezoid's 4 corners.
    assert 4 <= len(a.polygon) <= 8
    assert a.polygon[:, 1].min() == pytest.approx(30, abs=1)
    assert a.polygon[:, 1].max() == pytest.approx(59, abs=1)


def test_analysis_with_nothing_drivable() -> None:
    a = analyze_drivable(np.zeros((20, 30), bool), np.ones((20, 30), np.float32), boundary_count=4)
    assert a.drivable_ratio == 0 and a.main_region_ratio == 0
    assert math.isnan(a.mean_confidence)
    assert (a.left_boundary == NO_BOUNDARY).all() and (a.right_boundary == NO_BOUNDARY).all()
    assert a.polygon.shape == (0, 2)


def test_boundaries_follow_the_main_region_only() -> None:
    m = np.zeros((20, 30), bool)
    m[10:, 10:20] = True     # main
    m[10:15, 25:29] = True   # floating, same rows
    a = analyze_drivable(m, None, boundary_rows=np.array([12, 19]))
    assert list(a.left_boundary) == [10, 10] and list(a.right_boundary) == [19, 19]
    assert math.isnan(a.mean_confidence)
    assert a.drivable_ratio > a.main_region_ratio


def _camera(pitch_deg: float = 5.0) -> GroundCamera:
    return GroundCamera.from_camera_info([400, 0, 319.5, 0, 400, 179.5, 0, 0, 1], 640, 360, 640, 360,
                                         height_m=1.6, pitch_deg=pitch_deg)


def test_pixel_ground_round_trip_and_known_points() -> None:
    cam = _camera(0.0)
    # Level camera: the row f*h/d below the principal point sees the ground d metres ahead.
    x, y = cam.pixel_to_ground(319.5, 179.5 + 400 * 1.6 / 8.0)
    assert x == pytest.approx(8.0) and y == pytest.approx(0.0, abs=1e-9)
    x, _ = cam.pixel_to_ground(319.5, 100.0)       # above the horizon
    assert math.isnan(x)
    cam = _camera(7.0)
    xs = np.array([3.0, 10.0, 25.0])
    ys = np.array([-2.0, 0.5, 4.0])
    u, v, vis = cam.ground_to_pixel(xs, ys)
    assert vis.all()
    bx, by = cam.pixel_to_ground(u, v)
    np.testing.assert_allclose(bx, xs, rtol=1e-9)
    np.testing.assert_allclose(by, ys, atol=1e-9)
    assert u[0] > 319.5 > u[2]          # right of the camera (negative Y) appears right in the image


def test_camera_info_rescaling() -> None:
    k = [400, 0, 319.5, 0, 400, 179.5, 0, 0, 1]
    half = GroundCamera.from_camera_info(k, 640, 360, 320, 180, 1.6, 5.0)
    assert half.fx == pytest.approx(200)
    assert (half.cx, half.cy) == pytest.approx((159.5, 89.5))


def test_invalid_camera_is_rejected() -> None:
    with pytest.raises(ValueError, match="focal"):
        GroundCamera.from_camera_info([0] * 9, 640, 360, 640, 360, 1.6, 5.0)
    with pytest.raises(ValueError, match="height"):
        GroundCamera.from_camera_info([400, 0, 320, 0, 400, 180, 0, 0, 1], 640, 360, 640, 360, 0.0, 5.0)


def test_free_distance_ahead() -> None:
    cam = _camera(0.0)
    region = np.zeros((360, 640), bool)
    region[260:, 200:440] = True          # drivable from row 260 down
    assert cam.free_distance_ahead(region) == pytest.approx(400 * 1.6 / (260 - 179.5))
    assert cam.free_distance_ahead(np.zeros_like(region)) == 0.0
    region[:] = True                      # free up to the horizon
    assert cam.free_distance_ahead(region) == math.inf


def test_grid_of_a_projected_road_strip() -> None:
    """Paint the image pixels of a ground strip |Y| < 2 m; the grid must show that strip as free."""
    cam = _camera(6.0)
    spec = GridSpec(resolution_m=0.5, forward_m=30.0, side_m=6.0)
    vv, uu = np.mgrid[0:360, 0:640]
    gx, gy = cam.pixel_to_ground(uu, vv)
    drivable = np.nan_to_num(np.abs(gy), nan=99) < 2.0
    grid = drivable_grid(drivable, cam, spec)
    assert grid.shape == spec.shape == (24, 60) and grid.dtype == np.int8
    x, y = spec.cell_centres()
    u, v, visible = cam.ground_to_pixel(x, y)
    assert (grid[~visible] == GRID_UNKNOWN).all()
    assert visible.sum() > 0.3 * visible.size
    inner = visible & (np.abs(y) < 1.5)
    outer = visible & (np.abs(y) > 2.5)
    assert inner.any() and outer.any()
    assert (grid[inner] == GRID_FREE).all()
    assert (grid[outer] == GRID_OCCUPIED).all()
    # Cells right below / behind the image's bottom edge are not visible.
    assert (grid[:, 0] == GRID_UNKNOWN).all()


def test_grid_rejects_a_mask_of_another_size() -> None:
    with pytest.raises(ValueError, match="camera model is 640x360"):
        drivable_grid(np.zeros((10, 10), bool), _camera(), GridSpec(0.5, 10, 5))


def test_grid_pose_maps_cells_onto_the_ground() -> None:
    """The published origin pose puts each cell where the camera sees it."""
    cam = _camera(8.0)
    spec = GridSpec(0.25, 20.0, 4.0)
    (ox, oy, oz), (qx, qy, qz, qw) = cam.grid_pose(spec)
    assert qx * qx + qy * qy + qz * qz + qw * qw == pytest.approx(1.0)
    rot = np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])
    gx, gy = 12.0, 3.0            # grid coordinates of a ground point X=12, Y=-1
    p = np.array([ox, oy, oz]) + rot @ np.array([gx, gy, 0.0])
    u, v, _ = cam.ground_to_pixel(np.array(12.0), np.array(-1.0))
    assert cam.fx * p[0] / p[2] + cam.cx == pytest.approx(float(u))
    assert cam.fy * p[1] / p[2] + cam.cy == pytest.approx(float(v))


def test_intrinsics_from_fov():
    K = intrinsics_from_fov(800, 600, 90.0)
    assert K[0, 0] == pytest.approx(400.0) and K[1, 1] == pytest.approx(400.0)
    assert (K[0, 2], K[1, 2]) == (400.0, 300.0)
    # A point at the image's right edge lies at half the FOV off the optical axis.
    K2 = intrinsics_from_fov(640, 360, 70.0)
    assert math.degrees(math.atan((640 - K2[0, 2]) / K2[0, 0])) == pytest.approx(35.0)
    with pytest.raises(ValueError, match=r"\(0, 180\)"):
        intrinsics_from_fov(640, 360, 180.0)
