"""Class-mapping configs: turn a dataset's raw labels into a project taxonomy's ids.

Every dataset labels its pixels differently (CamVid ids, KITTI colours, two CARLA id
numberings, a CityScapes colour palette, Cityscapes labelIds). A mapping config is a
small YAML file that says, per target class, which raw labels belong to it, so that
several datasets can be mixed in one training run and still agree on class ids.

Format (``config/datasets/<dataset>_to_<taxonomy>.yaml``)::

    taxonomy: camvid11        # a name known to roadseg_ros.classes.get_taxonomy
    input: ids                # ids: one integer label per pixel; colors: RGB palette colours
    unmapped: ignore          # where raw labels not listed go: ignore (255) or a class name
    classes:                  # target class name -> raw labels (ids, or [R, G, B] for colors)
      road: [7, 6]
      pavement: [8]
    ignore: [0]               # raw labels that are explicitly not evaluated (optional)
    color_tolerance: 40       # colors only, optional: take the nearest listed colour within
                              # this RGB (Euclidean) distance, 255 beyond it; for labels that
                              # went through JPEG, whose boundary colours are blends
    oversample:               # optional, training only: images holding at least min_pixels of
      labels: [8]             # these raw labels (each listed above) are drawn `factor` times as
      factor: 4               # often as the others of their dataset: a rare but telling kind of
      min_pixels: 300         # scene (e.g. paved tram beds beside the road) is seen often enough

Raw ids must lie in 0..255 (the readers decode 8-bit label PNGs); a raw label may appear
only once. Every problem is reported as a ``MappingError`` naming the file and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from roadseg_ros.classes import IGNORE_INDEX, Taxonomy, get_taxonomy

#: Values of a config's ``input`` key.
INPUT_KINDS = ("ids", "colors")
_KEYS = {"taxonomy", "input", "unmapped", "classes", "ignore", "description", "dataset", "color_tolerance",
         "oversample"}
_OVERSAMPLE_KEYS = {"labels", "factor", "min_pixels"}


class MappingError(ValueError):
    """A class-mapping config is malformed; the message names the file and the problem."""


def config_dir() -> Path:
    """Directory holding the bundled mapping configs (source tree first, then the ROS share dir)."""
    here = Path(__file__).resolve().parents[2] / "config" / "datasets"
    if here.is_dir():
        return here
    try:  # installed with colcon: share/roadseg_ros/config/datasets
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("roadseg_ros")) / "config" / "datasets"
        if share.is_dir():
            return share
    except (ImportError, LookupError):
        pass
    return here


def list_mapping_configs() -> list[str]:
    """Names (file stems) of the bundled mapping configs, e.g. ``camvid_to_camvid11``."""
    d = config_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def default_mapping_path(stem: str) -> Path:
    """Path of the bundled config ``<stem>.yaml``; a missing one fails with the list of those present."""
    path = config_dir() / f"{stem}.yaml"
    if not path.is_file():
        raise MappingError(f"no bundled mapping config {path.name!r} in {config_dir()}; "
                           f"available: {', '.join(list_mapping_configs()) or '(none)'}")
    return path


@dataclass(frozen=True)
class LabelMapping:
    """A validated mapping from raw labels to a taxonomy's class ids (255 = ignore).

    ``apply`` is the hot path: ids go through a 256-entry lookup table, colours through a
    sorted table of packed ``0xRRGGBB`` keys and ``np.searchsorted``.
    """

    taxonomy: Taxonomy
    input: str
    source: str
    lut: np.ndarray | None = None            # ids: uint8[256]
    color_keys: np.ndarray | None = None     # colors: sorted int32 packed RGB
    color_values: np.ndarray | None = None   # colors: uint8 target id per key
    unmapped_value: int = IGNORE_INDEX
    color_tolerance: float = 0.0             # colors: > 0 takes the nearest key within this distance
    oversample_keys: np.ndarray | None = None  # raw labels (ids, packed RGB) marking an image to oversample
    oversample_factor: float = 1.0
    oversample_min_pixels: int = 1

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Map a raw label image to uint8 target ids.

        ``raw`` is HxW integer ids for ``input: ids`` or HxWx3 RGB uint8 for ``input: colors``.
        """
        if self.input == "ids":
            if raw.ndim != 2:
                raise ValueError(f"mapping {self.source}: expected an HxW id image, got shape {raw.shape}")
            if raw.dtype != np.uint8:
                if raw.size and (int(raw.max()) > 255 or int(raw.min()) < 0):
                    raise ValueError(f"mapping {self.source}: raw label ids outside 0..255 "
                                     f"(min {int(raw.min())}, max {int(raw.max())})")
                raw = raw.astype(np.uint8)
            return self.lut[raw]
        if raw.ndim != 3 or raw.shape[2] != 3:
            raise ValueError(f"mapping {self.source}: expected an HxWx3 RGB colour label image, "
                             f"got shape {raw.shape}")
        if self.color_tolerance > 0:
            return self._apply_nearest(raw)
        packed = _pack_rgb(raw)
        pos = np.searchsorted(self.color_keys, packed)
        pos = np.minimum(pos, len(self.color_keys) - 1)
        hit = self.color_keys[pos] == packed
        out = np.where(hit, self.color_values[pos], np.uint8(self.unmapped_value))
        return out.astype(np.uint8, copy=False)


    def _apply_nearest(self, raw: np.ndarray) -> np.ndarray:
        """Colour labels through a lossy codec: nearest key colour if within ``color_tolerance``, else 255.

        Every listed colour (classes and ``ignore``) competes, so a blend between road and
        sidewalk goes to whichever is closer or, past the tolerance, to unlabelled: training
        never sees an invented class at a boundary.
        """
        nearest, ok = self._nearest_keys(raw)
        return np.where(ok, self.color_values[nearest], np.uint8(IGNORE_INDEX)).astype(np.uint8)

    def _nearest_keys(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel of an RGB label: index of the nearest key colour, and whether it is within tolerance.

        Unique colours are matched once each (a JPEG label has a few thousand), which keeps
        this cheap per image.
        """
        keys = self.color_keys
        key_rgb = np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1).astype(np.float32)
        uniq, inverse = np.unique(_pack_rgb(raw).reshape(-1), return_inverse=True)
        uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.float32)
        d2 = ((uniq_rgb[:, None, :] - key_rgb[None, :, :]) ** 2).sum(axis=2)
        nearest = d2.argmin(axis=1)
        ok = d2[np.arange(len(uniq)), nearest] <= self.color_tolerance ** 2
        shape = raw.shape[:2]
        return nearest[inverse].reshape(shape), ok[inverse].reshape(shape)

    def oversample_weight(self, raw: np.ndarray) -> float:
        """Sampling factor of the image with this raw label: ``oversample.factor`` when it holds at
        least ``min_pixels`` of the ``oversample`` labels (decoded as ``apply`` decodes them:
        nearest colour within tolerance), else 1."""
        if self.oversample_keys is None:
            return 1.0
        if self.input == "ids":
            hits = int(np.isin(raw, self.oversample_keys).sum())
        elif self.color_tolerance > 0:
            nearest, ok = self._nearest_keys(raw)
            hits = int((ok & np.isin(self.color_keys[nearest], self.oversample_keys)).sum())
        else:
            hits = int(np.isin(_pack_rgb(raw), self.oversample_keys).sum())
        return self.oversample_factor if hits >= self.oversample_min_pixels else 1.0


def _pack_rgb(raw: np.ndarray) -> np.ndarray:
    """HxWx3 RGB -> HxW int32 ``0xRRGGBB``, the form colour keys are stored in."""
    rgb = raw.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _fail(source: str, msg: str) -> MappingError:
    return MappingError(f"{source}: {msg}")


def _class_id(taxonomy: Taxonomy, name: Any, source: str, where: str) -> int:
    if name == "ignore":
        return IGNORE_INDEX
    if not isinstance(name, str) or name not in taxonomy.class_names:
        raise _fail(source, f"{where}: unknown class {name!r} for taxonomy {taxonomy.name!r}; "
                            f"valid: ignore, {', '.join(taxonomy.class_names)}")
    return taxonomy.index(name)


def _raw_label(value: Any, kind: str, source: str, where: str) -> int:
    """Validate one raw label and return it as an int (packed 0xRRGGBB for colours)."""
    if kind == "ids":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise _fail(source, f"{where}: raw label id {value!r} is not an integer in 0..255")
        return value
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise _fail(source, f"{where}: colour {value!r} is not [R, G, B] with integers in 0..255")
    r, g, b = value
    return (r << 16) | (g << 8) | b


def mapping_from_dict(cfg: Mapping[str, Any], source: str = "<dict>",
                      taxonomy: str | Taxonomy | None = None) -> LabelMapping:
    """Validate a parsed config and build its ``LabelMapping``.

    ``taxonomy``, when given, must match the config's own (a camvid11 config cannot
    silently feed a road_binary run).
    """
    if not isinstance(cfg, Mapping):
        raise _fail(source, f"expected a mapping at the top level, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - _KEYS)
    if unknown:
        raise _fail(source, f"unknown keys {unknown}; valid keys: {', '.join(sorted(_KEYS))}")
    for key in ("taxonomy", "classes"):
        if key not in cfg:
            raise _fail(source, f"missing required key {key!r}")
    try:
        tax = get_taxonomy(cfg["taxonomy"])
    except ValueError as exc:
        raise _fail(source, str(exc)) from None
    if taxonomy is not None:
        want = taxonomy.name if isinstance(taxonomy, Taxonomy) else taxonomy
        if want != tax.name:
            raise _fail(source, f"maps onto taxonomy {tax.name!r} but {want!r} was requested")
    kind = cfg.get("input", "ids")
    if kind not in INPUT_KINDS:
        raise _fail(source, f"input {kind!r} is not one of {', '.join(INPUT_KINDS)}")
    unmapped = _class_id(tax, cfg.get("unmapped", "ignore"), source, "unmapped")

    classes = cfg["classes"]
    if not isinstance(classes, Mapping) or not classes:
        raise _fail(source, "'classes' must be a non-empty mapping of class name -> list of raw labels")
    table: dict[int, int] = {}
    groups = [(name, labels) for name, labels in classes.items()]
    if cfg.get("ignore") is not None:
        groups.append(("ignore", cfg["ignore"]))
    for name, labels in groups:
        target = _class_id(tax, name, source, f"classes[{name!r}]" if name != "ignore" else "ignore")
        if not isinstance(labels, list):
            raise _fail(source, f"{name!r}: expected a list of raw labels, got {labels!r}")
        for value in labels:
            key = _raw_label(value, kind, source, f"{name!r}")
            if key in table and table[key] != target:
                raise _fail(source, f"raw label {value!r} is mapped twice "
                                    f"({name!r} and class id {table[key]})")
            table[key] = target

    over = _oversample(cfg.get("oversample"), kind, table, source)
    if kind == "ids":
        if cfg.get("color_tolerance"):
            raise _fail(source, "color_tolerance applies to input: colors only")
        lut = np.full(256, unmapped, dtype=np.uint8)
        for key, target in table.items():
            lut[key] = target
        return LabelMapping(tax, kind, source, lut=lut, unmapped_value=unmapped, **over)
    tolerance = cfg.get("color_tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 442:
        raise _fail(source, f"color_tolerance {tolerance!r} is not a number in 0..442 (an RGB distance)")
    keys = np.array(sorted(table), dtype=np.int32)
    values = np.array([table[k] for k in sorted(table)], dtype=np.uint8)
    return LabelMapping(tax, kind, source, color_keys=keys, color_values=values, unmapped_value=unmapped,
                        color_tolerance=float(tolerance), **over)


def _oversample(spec: Any, kind: str, table: Mapping[int, int], source: str) -> dict[str, Any]:
    """Validate an ``oversample`` section into ``LabelMapping`` keywords (none when absent)."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise _fail(source, f"oversample: expected a mapping of labels, factor, min_pixels; got {spec!r}")
    unknown = sorted(set(spec) - _OVERSAMPLE_KEYS)
    if unknown:
        valid = ", ".join(sorted(_OVERSAMPLE_KEYS))
        raise _fail(source, f"oversample: unknown keys {unknown}; valid keys: {valid}")
    labels = spec.get("labels")
    if not isinstance(labels, list) or not labels:
        raise _fail(source, f"oversample.labels: expected a non-empty list of raw labels, got {labels!r}")
    keys = [_raw_label(v, kind, source, "oversample.labels") for v in labels]
    unlisted = [v for v, k in zip(labels, keys) if k not in table]
    if unlisted:   # an unlisted colour would never be decoded as itself: nearest-colour matching skips it
        raise _fail(source, f"oversample.labels {unlisted} are not listed under classes or ignore")
    factor = spec.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise _fail(source, f"oversample.factor {factor!r} is not a number >= 1")
    min_pixels = spec.get("min_pixels", 1)
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, int) or min_pixels < 1:
        raise _fail(source, f"oversample.min_pixels {min_pixels!r} is not an integer >= 1")
    return {"oversample_keys": np.array(sorted(set(keys)), dtype=np.int32),
            "oversample_factor": float(factor), "oversample_min_pixels": min_pixels}


def load_mapping(path: str | Path, taxonomy: str | Taxonomy | None = None) -> LabelMapping:
    """Read and validate a mapping YAML file."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: mapping config not found; bundled configs in {config_dir()}: "
                           f"{', '.join(list_mapping_configs()) or '(none)'}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: invalid YAML: {exc}") from None
    return mapping_from_dict(cfg, source=str(path), taxonomy=taxonomy)


def resolve_mapping(mapping: str | Path | Mapping[str, Any] | LabelMapping | None, default_stem: str,
                    taxonomy: str | Taxonomy) -> LabelMapping:
    """Turn a reader's ``mapping`` argument into a ``LabelMapping``.

    None means the bundled ``<default_stem>.yaml``; a path is loaded; a dict is validated;
    a ready ``LabelMapping`` is checked against ``taxonomy``.
    """
    if mapping is None:
        return load_mapping(default_mapping_path(default_stem), taxonomy)
    if isinstance(mapping, LabelMapping):
        want = taxonomy.name if isinstance(taxonomy, Taxonomy) else taxonomy
        if mapping.taxonomy.name != want:
            raise MappingError(f"{mapping.source}: maps onto {mapping.taxonomy.name!r} "
                               f"but {want!r} was requested")
        return mapping
    if isinstance(mapping, Mapping):
        return mapping_from_dict(mapping, taxonomy=taxonomy)
    return load_mapping(mapping, taxonomy)
