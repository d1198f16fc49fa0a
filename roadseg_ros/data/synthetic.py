"""Synthetic road scenes with exact labels, deterministic in a seed.

A level pinhole camera (height ``camera_height`` m, principal point on the horizon row)
looks down a road on a flat ground plane. The road may curve (constant curvature plus a
heading angle), has lanes with solid edge lines and dashed dividers, kerbs, sidewalks or
grass verges, and the roadside holds buildings with windows, trees, poles with signs,
fences, parked and moving cars, pedestrians and the odd cyclist, over a sky gradient with a
distant skyline. Shadows fall across the road; lighting, colour cast and texture noise vary.

Every shape is drawn into the image and the label with the same polygon, so labels are
exact (up to the anti-aliased edge pixels of the image). Labels use CAMVID11 ids
(``roadseg_ros.classes``): lane markings are road, kerbs are pavement, grass and bushes are
tree. Roadside objects live in world cells along the road, each cell seeded from
``(seed, cell)``, so ``distance`` (metres driven) animates one seed's scene consistently:
the demo camera renders ``render_scene(seed, distance=speed * t)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from roadseg_ros.classes import IGNORE_INDEX

SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
ENVIRONMENTS = ("urban", "suburban", "rural")
_SHIFT = 4                     # fillPoly fractional bits: sub-pixel polygon vertices
_SCALE = float(1 << _SHIFT)
_CELL = 10.0                   # metres of road per object cell
_Z_FAR = 400.0                 # road drawn to this distance
_OBJ_FAR = 140.0               # roadside objects drawn to this distance

#: Options ``render_scene`` accepts (None = drawn from the seed).
DEFAULT_OPTIONS: dict[str, Any] = {
    "distance": 0.0,           # metres driven along the road (animates a seed's scene)
    "environment": None,       # urban | suburban | rural
    "horizon": None,           # horizon row as a fraction of the height (0.3..0.6 sensible)
    "hfov_deg": None,          # horizontal field of view
    "camera_height": None,     # metres above the road
    "curvature": None,         # 1/m, positive bends right
    "num_lanes": None,         # 1..4
    "car_density": None,       # probability of a car per lane per 10 m cell
    "shadows": True,           # shadows across the road
    "lighting": None,          # global brightness gain
    "noise": None,             # sensor noise sigma (grey levels)
    "antialias": True,         # anti-aliased polygon edges in the image
}


@dataclass(frozen=True)
class SceneInfo:
    """The camera and road a scene was drawn with (a level pinhole camera over flat ground)."""

    width: int
    height: int
    focal_px: float
    cx: float
    horizon_row: float         # = cy, the principal point row; the camera has no pitch
    camera_height: float       # metres above the road plane
    hfov_deg: float
    curvature: float
    num_lanes: int
    lane_width: float
    environment: str

    def camera_matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K (for a CameraInfo message)."""
        return np.array([[self.focal_px, 0.0, self.cx], [0.0, self.focal_px, self.horizon_row],
                         [0.0, 0.0, 1.0]])


class _Canvas:
    """Image + label pair drawn with the same polygons."""

    def __init__(self, width: int, height: int, antialias: bool) -> None:
        self.image = np.zeros((height, width, 3), np.uint8)
        self.label = np.zeros((height, width), np.uint8)
        self.line = cv2.LINE_AA if antialias else cv2.LINE_8
        self.lim = 20.0 * max(width, height)

    def _pts(self, pts: np.ndarray) -> list[np.ndarray]:
        p = np.clip(np.asarray(pts, np.float64), -self.lim, self.lim)
        return [np.round(p * _SCALE).astype(np.int32)]

    def poly(self, pts: np.ndarray, color, label: int | None) -> None:
        """Fill a polygon (Nx2 pixel coords) in the image, and in the label unless ``label`` is None."""
        p = self._pts(pts)
        cv2.fillPoly(self.image, p, _col(color), self.line, _SHIFT)
        if label is not None:
            cv2.fillPoly(self.label, p, int(label), cv2.LINE_8, _SHIFT)

    def ellipse(self, center, axes, color, label: int | None) -> None:
        c = (int(round(center[0] * _SCALE)), int(round(center[1] * _SCALE)))
        a = (max(1, int(round(axes[0] * _SCALE))), max(1, int(round(axes[1] * _SCALE))))
        if abs(c[0]) > self.lim * _SCALE or abs(c[1]) > self.lim * _SCALE:
            return
        cv2.ellipse(self.image, c, a, 0, 0, 360, _col(color), -1, self.line, _SHIFT)
        if label is not None:
            cv2.ellipse(self.label, c, a, 0, 0, 360, int(label), -1, cv2.LINE_8, _SHIFT)


def _col(c) -> tuple[int, int, int]:
    return tuple(int(np.clip(v, 0, 255)) for v in c)


class _Camera:
    """Projection of road coordinates (lateral offset from the road centre, distance ahead)."""

    def __init__(self, info: SceneInfo, heading: float, ego_offset: float) -> None:
        self.f, self.cx, self.cy, self.hc = info.focal_px, info.cx, info.horizon_row, info.camera_height
        self.k, self.heading, self.ego = info.curvature, heading, ego_offset
        self.z_near = 0.9 * self.f * self.hc / max(info.height - self.cy, 1.0)

    def centre_x(self, z: np.ndarray) -> np.ndarray:
        """Lateral position (camera frame, metres) of the road centre at distance z."""
        return -self.ego + self.heading * z + 0.5 * self.k * z * z

    def project(self, lateral, z, y=0.0) -> np.ndarray:
        """Pixel coordinates of points at road-relative ``lateral``, distance ``z``, height ``y``."""
        z = np.maximum(np.asarray(z, np.float64), 0.05)
        x = self.centre_x(z) + lateral
        u = self.cx + self.f * x / z
        v = self.cy + self.f * (self.hc - np.asarray(y, np.float64)) / z
        return np.stack(np.broadcast_arrays(u, v), axis=-1)

    def zs(self, z0: float, z1: float, n: int) -> np.ndarray:
        z0 = max(z0, self.z_near)
        if z1 <= z0:
            return np.empty(0)
        return np.geomspace(z0, z1, n)

    def strip(self, a: float, b: float, z0: float, z1: float, n: int = 24) -> np.ndarray | None:
        """Ground polygon between lateral offsets a < b from z0 to z1 (None if behind the camera)."""
        z = self.zs(z0, z1, n)
        if z.size == 0:
            return None
        left, right = self.project(a, z), self.project(b, z)
        return np.concatenate([left, right[::-1]])

    def wall(self, lateral: float, z0: float, z1: float, y0: float, y1: float, n: int = 8
             ) -> np.ndarray | None:
        """Vertical surface along the road at ``lateral`` from z0 to z1, heights y0..y1."""
        z = self.zs(z0, z1, n)
        if z.size == 0:
            return None
        return np.concatenate([self.project(lateral, z, y0), self.project(lateral, z[::-1], y1)])

    def face(self, a: float, b: float, z: float, y0: float, y1: float) -> np.ndarray | None:
        """Vertical rectangle facing the camera at distance z, lateral a..b, heights y0..y1."""
        if z < 0.5:
            return None
        return self.project(np.array([a, b, b, a]), z, np.array([y0, y0, y1, y1]))


def _choose(rng: np.random.Generator, opts: dict[str, Any], key: str, draw):
    return draw() if opts[key] is None else opts[key]


def render_scene(seed: int, width: int = 640, height: int = 360, **options: Any
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render a road scene: (RGB uint8 HxWx3 image, uint8 HxW CAMVID11 labels), deterministic in ``seed``.

    ``options`` (see ``DEFAULT_OPTIONS``) fix what the seed would otherwise choose, e.g.
    ``render_scene(3, distance=12.5, environment="urban", car_density=0.0)``.
    """
    image, label, _ = render_scene_with_info(seed, width, height, **options)
    return image, label


def render_scene_with_info(seed: int, width: int = 640, height: int = 360, **options: Any
                           ) -> tuple[np.ndarray, np.ndarray, SceneInfo]:
    """``render_scene`` plus the ``SceneInfo`` (camera intrinsics, horizon row, road) it used."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"render_scene: unknown option(s) {unknown}; valid: {', '.join(DEFAULT_OPTIONS)}")
    if width < 16 or height < 16:
        raise ValueError(f"render_scene: size {width}x{height} too small (at least 16x16)")
    opts = {**DEFAULT_OPTIONS, **options}
    if opts["environment"] is not None and opts["environment"] not in ENVIRONMENTS:
        raise ValueError(f"render_scene: environment {opts['environment']!r} not one of "
                         f"{', '.join(ENVIRONMENTS)}")
    seed = int(seed)
    rng = np.random.default_rng([seed, 0])

    env = _choose(rng, opts, "environment", lambda: ENVIRONMENTS[int(rng.integers(0, 3))])
    horizon = _choose(rng, opts, "horizon", lambda: rng.uniform(0.38, 0.5))
    hfov = _choose(rng, opts, "hfov_deg", lambda: rng.uniform(60.0, 85.0))
    cam_h = _choose(rng, opts, "camera_height", lambda: rng.uniform(1.2, 1.9))
    curv = _choose(rng, opts, "curvature",
                   lambda: 0.0 if rng.random() < 0.25 else rng.uniform(-1.0, 1.0) * rng.uniform(0.001, 0.006))
    lanes = int(_choose(rng, opts, "num_lanes", lambda: int(rng.choice([1, 2, 2, 3, 4]))))
    if not 1 <= lanes <= 6:
        raise ValueError(f"render_scene: num_lanes {lanes} out of range 1..6")
    density = _choose(rng, opts, "car_density", lambda: rng.uniform(0.0, 0.25))
    lw = rng.uniform(3.0, 3.8)
    heading = rng.uniform(-0.04, 0.04)
    ego_lane = int(rng.integers(0, lanes))
    half = lanes * lw / 2
    ego = -half + (ego_lane + 0.5) * lw + rng.uniform(-0.4, 0.4)
    info = SceneInfo(width, height, width / (2 * math.tan(math.radians(hfov) / 2)), width / 2.0,
                     horizon * height, cam_h, hfov, curv, lanes, lw, env)
    cam = _Camera(info, heading, ego)
    cv_ = _Canvas(width, height, bool(opts["antialias"]))
    dist = float(opts["distance"])

    # Palette for this scene.
    sky_top = np.array([rng.uniform(40, 110), rng.uniform(90, 150), rng.uniform(170, 235)])
    sky_bot = np.minimum(sky_top + rng.uniform(40, 100), 250)
    asphalt = np.full(3, rng.uniform(60, 120)) + rng.uniform(-6, 6, 3)
    grass = np.array([rng.uniform(50, 110), rng.uniform(100, 150), rng.uniform(30, 70)])
    walk = np.full(3, rng.uniform(130, 185)) + rng.uniform(-10, 10, 3)
    kerb = np.minimum(walk + 25, 235)
    line_white = np.full(3, rng.uniform(200, 245))
    # Lighting is drawn now, before anything whose count depends on ``distance``, so that an
    # animated sequence keeps one exposure.
    shadow_strength = rng.uniform(0.3, 0.55)
    gain = _choose(rng, opts, "lighting", lambda: rng.uniform(0.65, 1.25))
    sigma = _choose(rng, opts, "noise", lambda: rng.uniform(1.5, 6.0))
    cast = rng.uniform(0.92, 1.08, 3).astype(np.float32)

    # Sky gradient and clouds.
    hz = int(math.ceil(info.horizon_row))
    t = np.linspace(0.0, 1.0, max(hz, 1), dtype=np.float32)[:, None]
    cv_.image[:hz] = ((1 - t) * sky_top + t * sky_bot).astype(np.uint8)[:, None, :]
    cv_.label[:hz] = SKY
    for _ in range(int(rng.integers(0, 5))):
        c = (rng.uniform(0, width), rng.uniform(0, 0.7) * info.horizon_row)
        cv_.ellipse(c, (rng.uniform(0.05, 0.2) * width, rng.uniform(0.01, 0.05) * height),
                    sky_bot + rng.uniform(0, 30), None)

    # Distant skyline on the horizon (static: far away).
    x = -rng.uniform(0, 30)
    while x < width:
        w = rng.uniform(0.03, 0.12) * width
        h = rng.uniform(0.02, 0.12 if env == "urban" else 0.05) * height
        if rng.random() < (0.7 if env == "urban" else 0.25):
            cv_.poly(np.array([[x, hz + 1], [x + w, hz + 1], [x + w, hz - h], [x, hz - h]]),
                     np.full(3, rng.uniform(90, 160)) + rng.uniform(-10, 10, 3), BUILDING)
        else:
            cv_.ellipse((x + w / 2, hz), (w * 0.7, h), grass * rng.uniform(0.5, 0.8), TREE)
        x += w * rng.uniform(0.6, 1.3)

    # Ground, verges, sidewalks and kerbs, road.
    ground = np.array([[0, info.horizon_row], [width, info.horizon_row], [width, height], [0, height]])
    cv_.poly(ground, grass, TREE)
    side_walk = {s: (env == "urban" or (env == "suburban" and rng.random() < 0.7)) for s in (-1, 1)}
    walk_w = {s: rng.uniform(1.5, 4.0) for s in (-1, 1)}
    kerb_w = 0.18
    for s in (-1, 1):
        if side_walk[s]:
            a, b = sorted((s * half, s * (half + kerb_w + walk_w[s])))
            cv_.poly(cam.strip(a, b, 0, _Z_FAR), walk, PAVEMENT)
            a, b = sorted((s * half, s * (half + kerb_w)))
            cv_.poly(cam.strip(a, b, 0, _Z_FAR), kerb, PAVEMENT)
    cv_.poly(cam.strip(-half, half, 0, _Z_FAR, 40), asphalt, ROAD)
    for _ in range(int(rng.integers(0, 4))):  # repaired patches: texture only
        z0 = rng.uniform(5, 120) - dist
        a = rng.uniform(-half, half - 1)
        cv_.poly(cam.strip(a, a + rng.uniform(0.8, 3), z0, z0 + rng.uniform(2, 10), 4),
                 asphalt * rng.uniform(0.8, 1.15), None)

    # Lane markings (road class): solid edges, dashed dividers moving with the camera.
    lw_m = 0.13
    if lanes >= 2 or rng.random() < 0.5:
        for s in (-1, 1):
            e = s * (half - 0.3)
            cv_.poly(cam.strip(e - lw_m / 2, e + lw_m / 2, 0, _Z_FAR, 32), line_white, ROAD)
    period, dash = rng.uniform(9, 14), rng.uniform(3, 5)
    centre_yellow = lanes == 2 and rng.random() < 0.3
    for i in range(1, lanes):
        e = -half + i * lw
        color = np.array([225, 190, 40]) if centre_yellow else line_white
        k0 = math.floor(dist / period)
        for k in range(k0, k0 + int(_OBJ_FAR / period) + 1):
            z0 = k * period - dist
            if z0 + dash > cam.z_near:
                cv_.poly(cam.strip(e - lw_m / 2, e + lw_m / 2, z0, z0 + dash, 3), color, ROAD)

    # Roadside objects in world cells, seeded per cell so that motion is consistent.
    objects: list[tuple[float, Any]] = []
    side_kind = {s: _side_kind(env, rng) for s in (-1, 1)}
    fence_side = {s: env == "rural" and rng.random() < 0.5 for s in (-1, 1)}
    shadow_mask = np.zeros((height, width), np.uint8) if opts["shadows"] else None
    first, last = int(math.floor((dist + 1) / _CELL)), int(math.floor((dist + _OBJ_FAR) / _CELL))
    for cell in range(first, last + 1):
        crng = np.random.default_rng([seed, 1, cell])
        base = cell * _CELL - dist
        _cell_objects(cam, crng, base, half, lanes, lw, ego, side_walk, walk_w, side_kind, fence_side,
                      density, objects, shadow_mask, env)
    if shadow_mask is not None and shadow_mask.any():
        k = max(3, (width // 160) | 1)
        soft = cv2.blur(shadow_mask, (k, k)).astype(np.float32) / 255.0
        factor = 1.0 - shadow_strength * soft
        cv_.image[:] = (cv_.image * factor[..., None]).astype(np.uint8)

    objects.sort(key=lambda o: -o[0])
    for _, draw in objects:
        draw(cv_)

    # Lighting, colour cast, texture and sensor noise.
    nrng = np.random.default_rng([seed, 2, int(round(dist * 1000))])
    texture = np.array([0.01, 0.05, 0.03, 0.06, 0.05, 0.12, 0.02, 0.06, 0.02, 0.03, 0.03], np.float32)
    gx, gy = max(2, width // 80), max(2, height // 80)
    illum = cv2.resize(nrng.uniform(-0.08, 0.08, (gy, gx)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    grain = nrng.standard_normal((height, width), dtype=np.float32)
    lab = np.minimum(cv_.label, 10)
    shade = (1.0 + illum + texture[lab] * grain) * np.float32(gain)
    out = cv_.image.astype(np.float32) * shade[..., None] * cast
    if sigma > 0:
        out += nrng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    image = np.clip(out, 0, 255).astype(np.uint8)
    return image, cv_.label, info


def _side_kind(env: str, rng: np.random.Generator) -> str:
    if env == "urban":
        return "buildings" if rng.random() < 0.85 else "trees"
    if env == "suburban":
        return ("buildings", "trees", "mixed")[int(rng.integers(0, 3))]
    return "trees" if rng.random() < 0.7 else "open"


def _cell_objects(cam: _Camera, r: np.random.Generator, base: float, half: float, lanes: int, lw: float,
                  ego: float, side_walk: dict, walk_w: dict, side_kind: dict, fence_side: dict,
                  density: float, objects: list, shadow_mask: np.ndarray | None, env: str) -> None:
    """Append (distance, draw) pairs for one 10 m road cell; add its shadows to ``shadow_mask``."""
    for s in (-1, 1):
        edge = half + 0.18 + (walk_w[s] if side_walk[s] else 0.0)
        kind = side_kind[s]
        if kind == "buildings" or (kind == "mixed" and r.random() < 0.5):
            if r.random() < 0.85:
                z0, z1 = base + r.uniform(0, 1.5), base + _CELL - r.uniform(0, 2.5)
                setback = edge + r.uniform(0.0, 2.0 if side_walk[s] else 5.0)
                objects.append((z0, _building(cam, r, s, setback, z0, z1)))
        elif kind in ("trees", "mixed"):
            for _ in range(int(r.integers(0, 3))):
                z = base + r.uniform(0, _CELL)
                objects.append((z, _tree(cam, r, s * (edge + r.uniform(0.5, 6.0)), z)))
        if fence_side[s]:
            objects.append((base + _CELL, _fence(cam, r, s * (edge + 0.6), base, base + _CELL)))
        if r.random() < 0.3:  # pole at the kerb, maybe with a sign
            z = base + r.uniform(0, _CELL)
            objects.append((z, _pole(cam, r, s * (half + 0.6), z)))
        if side_walk[s] and r.random() < 0.25:
            z = base + r.uniform(0, _CELL)
            objects.append((z, _pedestrian(cam, r, s * (half + 0.5 + r.uniform(0.3, walk_w[s])), z)))
        if shadow_mask is not None and r.random() < (0.45 if kind != "open" else 0.1):
            z0 = base + r.uniform(0, _CELL)
            reach = r.uniform(0.2, 1.0) * 2 * half
            a, b = sorted((s * (half + 3), s * (half - reach)))
            poly = cam.strip(a, b, z0, z0 + r.uniform(1.5, 7), 4)
            if poly is not None:
                cv2.fillPoly(shadow_mask, [np.round(np.clip(poly, -1e5, 1e5) * _SCALE).astype(np.int32)],
                             255, cv2.LINE_8, _SHIFT)
    for lane in range(lanes):
        if r.random() < density:
            z = base + r.uniform(0, _CELL)
            c = -half + (lane + 0.5) * lw + r.uniform(-0.3, 0.3)
            own = abs(c - ego) < lw / 2
            if z > (14.0 if own else 5.0):
                objects.append((z, _car(cam, r, c, z)))
    if env != "rural" and r.random() < 0.1:  # parked car against the kerb
        s = 1 if r.random() < 0.7 else -1
        z = base + r.uniform(0, _CELL)
        if z > 5.0:
            objects.append((z, _car(cam, r, s * (half - 1.1), z)))
    if r.random() < 0.05:
        z = base + r.uniform(0, _CELL)
        if z > 6.0:
            objects.append((z, _cyclist(cam, r, half - 0.8, z)))


def _building(cam: _Camera, r: np.random.Generator, s: int, setback: float, z0: float, z1: float):
    h = r.uniform(5, 24)
    depth = r.uniform(8, 20)
    color = np.array([r.uniform(90, 210), r.uniform(80, 190), r.uniform(70, 170)])
    win = color * r.uniform(0.3, 0.6)
    rows, floor_h = int(h / 3.2), 3.2
    cols = max(1, int((z1 - z0) / 2.5))

    def draw(cv_: _Canvas) -> None:
        front = cam.face(*sorted((s * setback, s * (setback + depth))), z0, 0, h)
        if front is not None:
            cv_.poly(front, color * 0.8, BUILDING)
        side = cam.wall(s * setback, z0, z1, 0, h)
        if side is None:
            return
        cv_.poly(side, color, BUILDING)
        for i in range(rows):
            y0 = 0.9 + i * floor_h
            for j in range(cols):
                a = z0 + 0.6 + j * (z1 - z0) / cols
                w = cam.wall(s * setback, a, a + 1.2, y0, y0 + 1.4, 2)
                if w is not None and cam.project(0, a)[1] - cam.cy > 1.0:
                    cv_.poly(w, win, None)
    return draw


def _tree(cam: _Camera, r: np.random.Generator, lateral: float, z: float):
    trunk_h, crown = r.uniform(1.5, 4.0), r.uniform(1.5, 3.5)
    leaves = np.array([r.uniform(30, 90), r.uniform(80, 140), r.uniform(20, 60)])

    def draw(cv_: _Canvas) -> None:
        f = cam.face(lateral - 0.15, lateral + 0.15, z, 0, trunk_h + crown * 0.5)
        if f is None:
            return
        cv_.poly(f, (90, 70, 50), TREE)
        c = cam.project(lateral, z, trunk_h + crown)
        rad = cam.f * crown / max(z, 0.5)
        cv_.ellipse(c, (rad, rad * 1.1), leaves, TREE)
        cv_.ellipse((c[0] - rad * 0.3, c[1] - rad * 0.3), (rad * 0.45, rad * 0.4), leaves * 1.25, None)
    return draw


def _pole(cam: _Camera, r: np.random.Generator, lateral: float, z: float):
    h = r.uniform(3.0, 8.0)
    sign = r.random() < 0.5
    sign_color = [(200, 30, 30), (30, 70, 180), (230, 200, 40), (240, 240, 240)][int(r.integers(0, 4))]
    round_sign = r.random() < 0.5

    def draw(cv_: _Canvas) -> None:
        f = cam.face(lateral - 0.07, lateral + 0.07, z, 0, h)
        if f is None:
            return
        cv_.poly(f, (120, 120, 125), POLE)
        if sign:
            if round_sign:
                c = cam.project(lateral, z, 2.6)
                rad = cam.f * 0.35 / max(z, 0.5)
                cv_.ellipse(c, (rad, rad), sign_color, SIGN)
            else:
                cv_.poly(cam.face(lateral - 0.4, lateral + 0.4, z, 2.2, 2.9), sign_color, SIGN)
    return draw


def _fence(cam: _Camera, r: np.random.Generator, lateral: float, z0: float, z1: float):
    color = np.array([r.uniform(90, 150), r.uniform(70, 120), r.uniform(50, 90)])
    h = r.uniform(0.9, 1.5)

    def draw(cv_: _Canvas) -> None:
        w = cam.wall(lateral, z0, z1, 0, h, 4)
        if w is None:
            return
        cv_.poly(w, color, FENCE)
        for k in range(5):
            z = z0 + k * (z1 - z0) / 5
            p = cam.wall(lateral, z, z + 0.15, 0, h + 0.1, 2)
            if p is not None:
                cv_.poly(p, color * 0.6, FENCE)
    return draw


def _car(cam: _Camera, r: np.random.Generator, lateral: float, z: float):
    w, h, length = r.uniform(1.6, 2.0), r.uniform(1.3, 1.7), r.uniform(3.8, 4.8)
    body = np.array([r.uniform(20, 230), r.uniform(20, 230), r.uniform(20, 230)])
    if r.random() < 0.3:
        body = np.full(3, r.uniform(20, 230))
    a, b = lateral - w / 2, lateral + w / 2

    def draw(cv_: _Canvas) -> None:
        rear = cam.face(a, b, z, 0.25, h * 0.6)
        if rear is None:
            return
        # Visible side (the one facing the camera axis), drawn first so the rear covers it.
        near_side = b if cam.centre_x(z) + lateral < 0 else a
        side = cam.wall(near_side, z, z + length, 0.25, h * 0.6, 3)
        if side is not None:
            cv_.poly(side, body * 0.7, CAR)
        cabin = cam.project(np.array([a + 0.15, b - 0.15, b - 0.35, a + 0.35]), z + 0.6,
                            np.array([h * 0.6, h * 0.6, h, h]))
        cv_.poly(cabin, body * 0.85, CAR)
        cv_.poly(rear, body, CAR)
        window = cam.project(np.array([a + 0.3, b - 0.3, b - 0.45, a + 0.45]), z + 0.6,
                             np.array([h * 0.63, h * 0.63, h * 0.95, h * 0.95]))
        cv_.poly(window, (40, 50, 60), None)
        for x0 in (a + 0.1, b - 0.45):
            cv_.poly(cam.face(x0, x0 + 0.35, z, h * 0.45, h * 0.55), (200, 20, 20), None)
        for x0 in (a + 0.05, b - 0.35):
            cv_.poly(cam.face(x0, x0 + 0.3, z + 0.05, 0.0, 0.35), (20, 20, 20), CAR)
    return draw


def _pedestrian(cam: _Camera, r: np.random.Generator, lateral: float, z: float):
    h = r.uniform(1.5, 1.9)
    shirt = r.uniform(20, 230, 3)
    trousers = r.uniform(10, 120, 3)

    def draw(cv_: _Canvas) -> None:
        legs = cam.face(lateral - 0.18, lateral + 0.18, z, 0, h * 0.48)
        if legs is None:
            return
        cv_.poly(legs, trousers, PEDESTRIAN)
        cv_.poly(cam.face(lateral - 0.22, lateral + 0.22, z, h * 0.47, h * 0.85), shirt, PEDESTRIAN)
        c = cam.project(lateral, z, h * 0.92)
        rad = cam.f * 0.11 / max(z, 0.5)
        cv_.ellipse(c, (rad, rad * 1.2), (200, 160, 130), PEDESTRIAN)
    return draw


def _cyclist(cam: _Camera, r: np.random.Generator, lateral: float, z: float):
    jacket = r.uniform(20, 230, 3)

    def draw(cv_: _Canvas) -> None:
        if z < 1.0:
            return
        rad = cam.f * 0.35 / z
        wheel = cam.project(lateral, z, 0.35)
        cv_.ellipse(wheel, (rad * 0.25, rad), (30, 30, 30), BICYCLIST)
        cv_.poly(cam.face(lateral - 0.05, lateral + 0.05, z, 0.35, 1.0), (60, 60, 60), BICYCLIST)
        cv_.poly(cam.face(lateral - 0.2, lateral + 0.2, z, 1.0, 1.55), jacket, BICYCLIST)
        head = cam.project(lateral, z, 1.68)
        cv_.ellipse(head, (rad * 0.3, rad * 0.35), (200, 160, 130), BICYCLIST)
    return draw


__all__ = ["DEFAULT_OPTIONS", "ENVIRONMENTS", "IGNORE_INDEX", "SceneInfo", "render_scene",
           "render_scene_with_info"]
