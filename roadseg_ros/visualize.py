"""Mask colourisation and image overlays (used by the node, roadseg-infer and the demo).

Both functions index a 256-entry lookup table with the mask, which costs one gather per
pixel whatever the number of classes, and handles ids without a colour (e.g. the ignore
label 255) by leaving them black / untinted instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

__all__ = ["colorize", "overlay", "color_lut"]


def color_lut(colors: Sequence[Sequence[int]], color_order: str = "rgb") -> np.ndarray:
    """A 256x3 uint8 table: row ``i`` is the colour of class ``i`` (black past the palette)."""
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"invalid color_order {color_order!r}; valid choices: rgb, bgr")
    palette = np.asarray(colors, dtype=np.int64).reshape(-1, 3) if len(colors) else np.zeros((0, 3), np.int64)
    if palette.shape[0] > 256:
        raise ValueError(f"at most 256 class colours fit a uint8 mask, got {palette.shape[0]}")
    if palette.size and (palette.min() < 0 or palette.max() > 255):
        raise ValueError("class colours must be 0..255 RGB triples")
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: palette.shape[0]] = palette
    if color_order == "bgr":
        lut = np.ascontiguousarray(lut[:, ::-1])
    return lut


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"mask must be a numpy array, got {type(mask).__name__}")
    if mask.dtype != np.uint8:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"mask must hold integer class ids, got dtype {mask.dtype}")
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError("mask class ids must be in 0..255")
        mask = mask.astype(np.uint8)
    return mask


def colorize(mask: np.ndarray, colors: Sequence[Sequence[int]], color_order: str = "rgb") -> np.ndarray:
    """Colour a class-id mask (HxW or NxHxW) with the palette; returns ...x3 uint8 (RGB by default).

    Ids without a palette entry come out black.
    """
    mask = _check_mask(mask)
    return color_lut(colors, color_order)[mask]


def overlay(image: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]], alpha: float = 0.5,
            color_order: str = "rgb", classes: Iterable[int] | None = None) -> np.ndarray:
    """Blend the class colours into ``image`` (HxWx3 uint8) where ``mask`` (HxW) says.

    ``alpha`` is the colour's weight. ``color_order`` is the image's channel order (the
    palette is RGB and is reordered to match). With ``classes`` only those class ids are
    tinted (e.g. just the drivable road); other pixels, and ids without a colour, keep
    the image unchanged.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"image must be an HxWx3 uint8 array, got shape {shape} dtype {dtype}")
    mask = _check_mask(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image size {image.shape[:2]}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    lut = color_lut(colors, color_order)
    tint = np.zeros(256, dtype=bool)
    if classes is None:
        tint[: len(colors)] = True
    else:
        ids = [int(c) for c in classes]
        bad = [c for c in ids if not 0 <= c < 256]
        if bad:
            raise ValueError(f"overlay classes must be class ids 0..255, got {bad}")
        tint[[c for c in ids if c < len(colors)]] = True
    blended = cv2.addWeighted(image, 1.0 - float(alpha), lut[mask], float(alpha), 0.0)
    selected = tint[mask]
    if selected.all():
        return blended
    out = image.copy()
    out[selected] = blended[selected]
    return out
