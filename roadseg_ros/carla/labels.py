"""CARLA's semantic labels in all three forms, and what counts as drivable in them.

CARLA changed its semantic-segmentation numbering in 0.9.14 (to follow CityScapes), and
its ROS bridge publishes semantic images as CityScapes-palette colours rather than ids.
Data recorded with different CARLA versions (the Lyft/Udacity frames use the old ids,
newer recordings the new ones) therefore needs one place that knows all three forms;
the evaluator node, the collector and the dataset readers share it so that they agree on
what "drivable" means: road plus road lines (lane markings are driven on, and CamVid
counts them as road too).

Pure numpy: testable without a simulator, importable without the ``carla`` client.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from roadseg_ros.classes import CAMVID11, IGNORE_INDEX
from roadseg_ros.config import CARLA_LABEL_SCHEMES

#: Ways a CARLA semantic label image can be encoded.
#: ``pre_0914``: raw ids of CARLA <= 0.9.13 (Lyft/Udacity layout: id in the red channel);
#: ``post_0914``: raw ids of CARLA >= 0.9.14 (CityScapes-aligned numbering);
#: ``palette``: CityScapes-palette colours (what ``CityScapesPalette`` and the ROS bridge give).
LABEL_SCHEMES: tuple[str, ...] = CARLA_LABEL_SCHEMES

#: CARLA <= 0.9.13 semantic tags: index = raw id, (name, CityScapes-palette RGB colour).
CARLA_LABELS_PRE_0914: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("building", (70, 70, 70)),
    ("fence", (100, 40, 40)),
    ("other", (55, 90, 80)),
    ("pedestrian", (220, 20, 60)),
    ("pole", (153, 153, 153)),
    ("road_line", (157, 234, 50)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("vegetation", (107, 142, 35)),
    ("vehicles", (0, 0, 142)),
    ("wall", (102, 102, 156)),
    ("traffic_sign", (220, 220, 0)),
    ("sky", (70, 130, 180)),
    ("ground", (81, 0, 81)),
    ("bridge", (150, 100, 100)),
    ("rail_track", (230, 150, 140)),
    ("guard_rail", (180, 165, 180)),
    ("traffic_light", (250, 170, 30)),
    ("static", (110, 190, 160)),
    ("dynamic", (170, 120, 50)),
    ("water", (45, 60, 150)),
    ("terrain", (145, 170, 100)),
)

#: CARLA >= 0.9.14 semantic tags (``carla.CityObjectLabel`` values), index = raw id.
CARLA_LABELS_POST_0914: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic_light", (250, 170, 30)),
    ("traffic_sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("pedestrian", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
    ("static", (110, 190, 160)),
    ("dynamic", (170, 120, 50)),
    ("other", (55, 90, 80)),
    ("water", (45, 60, 150)),
    ("road_line", (157, 234, 50)),
    ("ground", (81, 0, 81)),
    ("bridge", (150, 100, 100)),
    ("rail_track", (230, 150, 140)),
    ("guard_rail", (180, 165, 180)),
)

#: CARLA class names that count as drivable.
DRIVABLE_NAMES: frozenset[str] = frozenset({"road", "road_line"})

#: CARLA class name -> CAMVID11 class name (names not listed map to IGNORE_INDEX: CamVid
#: has no class for them, e.g. terrain, water, rail track, "other").
_CARLA_TO_CAMVID11_NAMES: dict[str, str] = {
    "building": "building", "wall": "building", "bridge": "building",
    "fence": "fence", "guard_rail": "fence",
    "pedestrian": "pedestrian",
    "pole": "pole",
    "road": "road", "road_line": "road",
    "sidewalk": "pavement",
    "vegetation": "tree",
    "vehicles": "car", "car": "car", "truck": "car", "bus": "car", "train": "car",
    "rider": "bicyclist", "motorcycle": "bicyclist", "bicycle": "bicyclist",
    "traffic_sign": "sign_symbol", "traffic_light": "sign_symbol",
    "sky": "sky",
}


def _table(scheme: str) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    if scheme == "pre_0914":
        return CARLA_LABELS_PRE_0914
    if scheme == "post_0914":
        return CARLA_LABELS_POST_0914
    raise ValueError(f"unknown CARLA label id scheme {scheme!r}; valid: pre_0914, post_0914 "
                     f"(palette images have no ids: use the 'palette' functions)")


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if it is one of :data:`LABEL_SCHEMES`, else fail naming the valid ones."""
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown CARLA label scheme {scheme!r}; valid: {', '.join(LABEL_SCHEMES)}")
    return scheme


def drivable_ids(scheme: str) -> tuple[int, ...]:
    """Raw CARLA ids that are drivable (road, road line) in ``scheme`` numbering."""
    return tuple(i for i, (name, _) in enumerate(_table(scheme)) if name in DRIVABLE_NAMES)


def drivable_colors() -> tuple[tuple[int, int, int], ...]:
    """CityScapes-palette RGB colours of the drivable classes (the same in all CARLA versions)."""
    colors = {c for table in (CARLA_LABELS_PRE_0914, CARLA_LABELS_POST_0914)
              for name, c in table if name in DRIVABLE_NAMES}
    return tuple(sorted(colors))


def _id_lut(values: Sequence[int], default: int) -> np.ndarray:
    lut = np.full(256, default, dtype=np.uint8)
    lut[: len(values)] = values
    return lut


def _camvid_ids(table: Sequence[tuple[str, tuple[int, int, int]]]) -> list[int]:
    out = []
    for name, _ in table:
        target = _CARLA_TO_CAMVID11_NAMES.get(name)
        out.append(CAMVID11.index(target) if target is not None else IGNORE_INDEX)
    return out


def _check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"expected an HxW array of CARLA label ids, got shape {ids.shape}")
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError(f"CARLA label ids must be in 0..255, got {ids.min()}..{ids.max()}")
        ids = ids.astype(np.uint8)
    return ids


def ids_to_drivable(ids: np.ndarray, scheme: str) -> np.ndarray:
    """HxW bool drivable mask from raw CARLA ids (unknown ids count as not drivable)."""
    ids = _check_ids(ids)
    lut = np.zeros(256, dtype=bool)
    lut[list(drivable_ids(scheme))] = True
    return lut[ids]


def ids_to_camvid11(ids: np.ndarray, scheme: str) -> np.ndarray:
    """HxW uint8 CAMVID11 class ids from raw CARLA ids; classes CamVid lacks -> IGNORE_INDEX."""
    ids = _check_ids(ids)
    return _id_lut(_camvid_ids(_table(scheme)), IGNORE_INDEX)[ids]


def ids_to_palette(ids: np.ndarray, scheme: str) -> np.ndarray:
    """HxWx3 RGB CityScapes-palette image from raw CARLA ids (what CARLA's CityScapesPalette
    converter produces); ids outside the table become black (unlabeled)."""
    ids = _check_ids(ids)
    table = _table(scheme)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(table)] = [c for _, c in table]
    return lut[ids]


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 (or x4) uint8 palette image, got shape {rgb.shape} "
                         f"dtype {rgb.dtype}")
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def _palette_lookup(rgb: np.ndarray, mapping: dict[tuple[int, int, int], int], default: int) -> np.ndarray:
    packed = _pack_rgb(rgb)
    keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in mapping), dtype=np.uint32)
    values = np.array([mapping[((k >> 16) & 255, (k >> 8) & 255, k & 255)] for k in keys.tolist()],
                      dtype=np.uint8)
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    return np.where(keys[pos] == packed, values[pos], np.uint8(default)).astype(np.uint8)


def palette_to_drivable(image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
    """HxW bool drivable mask from a CityScapes-palette image (RGB, or BGR/BGRA as ROS publishes
    it, chosen by ``color_order``: rgb | rgba | bgr | bgra)."""
    rgb = to_rgb(image, color_order)
    mapping = {c: 1 for c in drivable_colors()}
    return _palette_lookup(rgb, mapping, 0).astype(bool)


def palette_to_camvid11(image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
    """HxW uint8 CAMVID11 ids from a CityScapes-palette image; colours of classes CamVid lacks
    and colours that are no CARLA class -> IGNORE_INDEX."""
    rgb = to_rgb(image, color_order)
    mapping: dict[tuple[int, int, int], int] = {}
    for table in (CARLA_LABELS_PRE_0914, CARLA_LABELS_POST_0914):
        for (_, color), cid in zip(table, _camvid_ids(table)):
            mapping.setdefault(color, cid)
    return _palette_lookup(rgb, mapping, IGNORE_INDEX)


def to_rgb(image: np.ndarray, color_order: str) -> np.ndarray:
    """Drop alpha and reorder channels so the result is HxWx3 RGB."""
    image = np.asarray(image)
    orders = ("rgb", "rgba", "bgr", "bgra")
    if color_order not in orders:
        raise ValueError(f"unknown color order {color_order!r}; valid: {', '.join(orders)}")
    want = 4 if color_order.endswith("a") else 3
    if image.ndim != 3 or image.shape[2] != want:
        raise ValueError(f"a {color_order} image must be HxWx{want}, got shape {image.shape}")
    rgb = image[..., :3]
    return rgb[..., ::-1] if color_order.startswith("bgr") else rgb


def label_image_to_drivable(image: np.ndarray, labels: str, color_order: str = "bgra") -> np.ndarray:
    """Drivable mask from a CARLA semantic image in any of the :data:`LABEL_SCHEMES`.

    ``palette``: the image holds colours in ``color_order``. Raw id schemes: the image is
    either HxW ids or a colour image with the id in its red channel (CARLA's raw semantic
    camera output and the Lyft/Udacity PNGs), whose channel order ``color_order`` gives.
    """
    check_scheme(labels)
    if labels == "palette":
        return palette_to_drivable(image, color_order)
    return ids_to_drivable(red_channel_ids(image, color_order), labels)


def red_channel_ids(image: np.ndarray, color_order: str = "bgra") -> np.ndarray:
    """Raw CARLA ids of a semantic image: HxW as is, or the red channel of a colour image."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    return to_rgb(image, color_order)[..., 0]


def label_scheme_for_version(version: str) -> str:
    """Raw-id numbering (``pre_0914`` / ``post_0914``) a CARLA server version (e.g. ``0.9.15``,
    ``0.9.13-dirty``) writes into its semantic camera's red channel."""
    parts = []
    for piece in version.strip().lstrip("v").split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            raise ValueError(f"cannot read a CARLA version from {version!r}")
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return "post_0914" if tuple(parts) >= (0, 9, 14) else "pre_0914"
