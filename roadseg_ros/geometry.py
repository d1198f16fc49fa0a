"""Drivable-area analysis of a segmentation mask and ground-plane geometry, without ROS.

Two parts, both used by the segmentation node to fill ``DrivableArea`` and the
bird's-eye ``OccupancyGrid`` (see ``msg/DrivableArea.msg`` for the field semantics):

* :func:`analyze_drivable` summarises a boolean drivable mask: ratio, mean confidence,
  the *main region* (the connected drivable component touching the bottom image row,
  the largest if several do; that is the road the vehicle stands on, not a car park
  seen across the street), its left/right boundary on a fixed set of rows and its
  simplified outline polygon.
* :class:`GroundCamera` models a pinhole camera (intrinsics from ``camera_info``'s K) at
  a known height above a flat ground, pitched down by a known angle. It maps pixels to
  ground points and back, measures the free distance straight ahead and rasterises the
  mask into a bird's-eye grid by *inverse* mapping: every grid cell centre is projected
  into the image once (cached per camera and grid parameters), so each frame costs a
  single gather instead of a per-pixel scatter with holes.

Frames: the ground frame has its origin at the camera's foot point (on the ground,
straight below the optical centre), X forward (horizontal, along the optical axis'
heading), Y to the left, Z up. The camera frame is the ROS optical frame (x right,
y down, z forward).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Value for a row without drivable pixels (same as DrivableArea.NO_BOUNDARY).
NO_BOUNDARY = -1

#: OccupancyGrid cell values.
GRID_FREE = 0
GRID_OCCUPIED = 100
GRID_UNKNOWN = -1


def drivable_from_mask(mask: np.ndarray, drivable_classes: Sequence[int]) -> np.ndarray:
    """Boolean ``HxW`` array: which pixels of a class-id mask belong to a drivable class."""
    lut = np.zeros(256, dtype=bool)
    lut[[int(c) for c in drivable_classes if 0 <= int(c) < 256]] = True
    return lut[mask]


def sample_rows(height: int, count: int, lower_fraction: float = 0.5) -> np.ndarray:
    """``count`` image rows evenly spaced over the lower ``lower_fraction`` of the image.

    The last row is always the bottom one (where the vehicle is); rows are ascending and
    unique, so fewer than ``count`` come back for very short images.
    """
    if count <= 0 or height <= 0:
        return np.zeros(0, dtype=np.uint32)
    top = height - 1 - lower_fraction * (height - 1)
    rows = np.rint(np.linspace(top, height - 1, count)).astype(np.int64)
    return np.unique(np.clip(rows, 0, height - 1)).astype(np.uint32)


@dataclass
class DrivableAnalysis:
    """Summary of one drivable mask, in input-image pixels (see DrivableArea.msg)."""

    drivable_ratio: float
    mean_confidence: float            # NaN when nothing is drivable or no confidence given
    boundary_rows: np.ndarray         # uint32
    left_boundary: np.ndarray         # int32, NO_BOUNDARY where the row has no main-region pixel
    right_boundary: np.ndarray        # int32
    polygon: np.ndarray               # Nx2 float32 (x, y), closed implicitly; empty: (0, 2)
    main_region_ratio: float
    main_region: np.ndarray           # HxW bool


def main_region(drivable: np.ndarray) -> np.ndarray:
    """The connected (8-neighbour) drivable component touching the bottom row, largest if several."""
    if not drivable.any():
        return np.zeros_like(drivable, dtype=bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(drivable.view(np.uint8), connectivity=8)
    bottom = np.unique(labels[-1])
    bottom = bottom[bottom != 0]
    if bottom.size == 0:
        return np.zeros_like(drivable, dtype=bool)
    best = bottom[np.argmax(stats[bottom, cv2.CC_STAT_AREA])]
    return labels == best


def region_outline(region: np.ndarray, epsilon_px: float = 2.0) -> np.ndarray:
    """Simplified outer outline (Douglas-Peucker, tolerance ``epsilon_px``) of a boolean region."""
    if not region.any():
        return np.zeros((0, 2), dtype=np.float32)
    contours, _ = cv2.findContours(region.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    approx = cv2.approxPolyDP(contour, float(epsilon_px), True)
    return approx.reshape(-1, 2).astype(np.float32)


def analyze_drivable(drivable: np.ndarray, confidence: np.ndarray | None = None, *,
                     boundary_rows: np.ndarray | None = None, boundary_count: int = 16,
                     polygon_epsilon_px: float = 2.0) -> DrivableAnalysis:
    """Compute every image-space field of DrivableArea from a boolean ``HxW`` drivable mask.

    ``confidence`` (``HxW`` float, max softmax probability) gives ``mean_confidence``;
    ``boundary_rows`` defaults to :func:`sample_rows` ``(H, boundary_count)``.
    """
    drivable = np.ascontiguousarray(drivable, dtype=bool)
    if drivable.ndim != 2:
        raise ValueError(f"drivable mask must be HxW, got shape {drivable.shape}")
    height, width = drivable.shape
    total = drivable.size
    n_drivable = int(np.count_nonzero(drivable))
    if confidence is not None and n_drivable:
        mean_conf = float(confidence[drivable].mean(dtype=np.float64))
    else:
        mean_conf = math.nan
    region = main_region(drivable)
    rows = sample_rows(height, boundary_count) if boundary_rows is None else \
        np.asarray(boundary_rows, dtype=np.uint32)
    sampled = region[rows.astype(np.intp)]
    has = sampled.any(axis=1)
    left = np.where(has, sampled.argmax(axis=1), NO_BOUNDARY).astype(np.int32)
    right = np.where(has, width - 1 - sampled[:, ::-1].argmax(axis=1), NO_BOUNDARY).astype(np.int32)
    return DrivableAnalysis(
        drivable_ratio=n_drivable / total,
        mean_confidence=mean_conf,
        boundary_rows=rows,
        left_boundary=left,
        right_boundary=right,
        polygon=region_outline(region, polygon_epsilon_px),
        main_region_ratio=float(np.count_nonzero(region)) / total,
        main_region=region,
    )


@dataclass(frozen=True)
class GridSpec:
    """Bird's-eye grid on the ground: X in [0, forward_m], Y in [-side_m, side_m]."""

    resolution_m: float
    forward_m: float
    side_m: float

    def __post_init__(self) -> None:
        if not (self.resolution_m > 0 and self.forward_m > 0 and self.side_m > 0):
            raise ValueError(f"grid resolution and extents must be positive, got {self}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``: rows along Y (from -side_m up), columns along X (forward)."""
        return (max(1, math.ceil(2 * self.side_m / self.resolution_m - 1e-9)),
                max(1, math.ceil(self.forward_m / self.resolution_m - 1e-9)))

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground ``(X, Y)`` of every cell centre, each of :attr:`shape`."""
        rows, cols = self.shape
        x = (np.arange(cols) + 0.5) * self.resolution_m
        y = -self.side_m + (np.arange(rows) + 0.5) * self.resolution_m
        return np.broadcast_to(x[None, :], (rows, cols)), np.broadcast_to(y[:, None], (rows, cols))


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """3x3 pinhole camera matrix K of an ideal camera: square pixels, principal point at the image
    centre, horizontal field of view ``fov_deg``. That is how CARLA describes its cameras (and how
    its official ROS bridge builds K), and what the camera source publishes without calibration."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {fov_deg}")
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


@dataclass(frozen=True)
class GroundCamera:
    """A pinhole camera ``height_m`` above flat ground, pitched down by ``pitch_rad``.

    Intrinsics are for an image of ``width`` x ``height`` pixels (the image the mask
    has; :meth:`from_camera_info` rescales K when camera_info was calibrated at another
    resolution). Positive pitch looks down; roll and yaw are zero.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    height_m: float
    pitch_rad: float

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive (uncalibrated camera_info?), got fx={self.fx} "
                             f"fy={self.fy}")
        if not self.height_m > 0:
            raise ValueError(f"camera height above ground must be positive, got {self.height_m} m")
        if not -math.pi / 2 < self.pitch_rad < math.pi / 2:
            raise ValueError("camera pitch must be within (-90, 90) degrees, got "
                             f"{math.degrees(self.pitch_rad)}")

    @classmethod
    def from_camera_info(cls, k: Sequence[float], info_width: int, info_height: int, image_width: int,
                         image_height: int, height_m: float, pitch_deg: float) -> GroundCamera:
        """Build from camera_info's row-major 3x3 ``K`` and size, for an image of the given size."""
        k = [float(v) for v in k]
        if len(k) != 9:
            raise ValueError(f"K must have 9 entries, got {len(k)}")
        sx = image_width / info_width if info_width > 0 else 1.0
        sy = image_height / info_height if info_height > 0 else 1.0
        return cls(fx=k[0] * sx, fy=k[4] * sy, cx=(k[2] + 0.5) * sx - 0.5, cy=(k[5] + 0.5) * sy - 0.5,
                   width=int(image_width), height=int(image_height), height_m=float(height_m),
                   pitch_rad=math.radians(float(pitch_deg)))

    def pixel_to_ground(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Ground ``(X forward, Y left)`` in metres of pixel centres; NaN where the ray misses the ground."""
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        xc = (u - self.cx) / self.fx
        yc = (v - self.cy) / self.fy
        c, s = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        forward = c - yc * s           # ray (xc, yc, 1) rotated into the level frame
        down = s + yc * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(down > 1e-9, self.height_m / down, np.nan)
        return t * forward, -t * xc

    def ground_to_pixel(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel ``(u, v)`` of ground points, and whether each lands in the image in front of the camera."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        c, s = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        zc = x * c + self.height_m * s
        yc = -x * s + self.height_m * c
        xc = -y
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * xc / zc + self.cx
            v = self.fy * yc / zc + self.cy
        visible = (zc > 1e-6) & (u > -0.5) & (u < self.width - 0.5) & (v > -0.5) & (v < self.height - 0.5)
        return u, v, visible

    def free_distance_ahead(self, region: np.ndarray) -> float:
        """Free distance straight ahead (DrivableArea.free_distance_ahead) through ``region``.

        Walks up the principal point's column from the bottom row while the pixels stay
        in ``region`` (the main drivable region) and returns the ground distance of the
        last one: 0 when the bottom pixel of that column is not drivable, ``inf`` when
        the free run reaches the horizon (the ray never meets the ground).
        """
        h, w = region.shape
        col = int(min(max(round(self.cx), 0), w - 1))
        column = region[:, col]
        if not column[-1]:
            return 0.0
        blocked = np.flatnonzero(~column)
        top = int(blocked[-1]) + 1 if blocked.size else 0
        x, _ = self.pixel_to_ground(float(col), float(top))
        return float(x) if np.isfinite(x) else math.inf

    def grid_pose(self, spec: GridSpec) -> tuple[tuple[float, float, float],
                                                 tuple[float, float, float, float]]:
        """Pose of grid cell (0, 0)'s corner in the camera optical frame: ``(xyz, quaternion xyzw)``.

        Lets the node publish the grid in the image's own frame_id, so it shows up in the
        right place with only the camera's TF.
        """
        c, s = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        x0, y0 = 0.0, -spec.side_m
        origin = (-y0, -x0 * s + self.height_m * c, x0 * c + self.height_m * s)
        # Columns: grid x (forward), grid y (left), grid z (up) in optical coordinates.
        rot = np.array([[0.0, -1.0, 0.0], [-s, 0.0, -c], [c, 0.0, -s]])
        return origin, _quaternion_from_matrix(rot)


def _quaternion_from_matrix(m: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` of a proper rotation matrix."""
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        q = tuple(q)
    return tuple(float(v) for v in q)


@functools.lru_cache(maxsize=8)
def _cell_pixel_map(camera: GroundCamera, spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the visible cells and of the image pixel each one samples (cached)."""
    x, y = spec.cell_centres()
    u, v, visible = camera.ground_to_pixel(x, y)
    cells = np.flatnonzero(visible)
    pu = np.clip(np.rint(u.ravel()[cells]), 0, camera.width - 1).astype(np.intp)
    pv = np.clip(np.rint(v.ravel()[cells]), 0, camera.height - 1).astype(np.intp)
    return cells, pv * camera.width + pu


def drivable_grid(drivable: np.ndarray, camera: GroundCamera, spec: GridSpec) -> np.ndarray:
    """Bird's-eye ``int8`` grid of :attr:`GridSpec.shape`: 0 drivable, 100 not, -1 not visible.

    Row-major as ``nav_msgs/OccupancyGrid.data`` wants (rows along Y from -side_m,
    columns along X from the camera's foot point); each cell takes the class of the
    pixel its centre projects to.
    """
    if drivable.shape != (camera.height, camera.width):
        raise ValueError(f"mask is {drivable.shape[1]}x{drivable.shape[0]} but the camera model is "
                         f"{camera.width}x{camera.height}")
    cells, pixels = _cell_pixel_map(camera, spec)
    grid = np.full(spec.shape, GRID_UNKNOWN, dtype=np.int8)
    flat = np.ascontiguousarray(drivable).reshape(-1)
    grid.reshape(-1)[cells] = np.where(flat[pixels], GRID_FREE, GRID_OCCUPIED)
    return grid
