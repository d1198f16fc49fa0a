"""Image/label transforms for training: resize and the training augmentation.

Geometry is applied identically to image and label (labels always with nearest-neighbour
interpolation, so no invented class ids appear at boundaries); photometric changes
(colour jitter, synthetic shadows) touch the image only. Everything is numpy + OpenCV on
uint8 arrays so a DataLoader worker keeps up with a GPU.
"""

from __future__ import annotations

import cv2
import numpy as np

from roadseg_ros.classes import IGNORE_INDEX

#: Label interpolation. OpenCV's plain INTER_NEAREST samples source pixel floor(x * ratio),
#: half a pixel off the pixel-centre grid that INTER_LINEAR / INTER_AREA use for the image, so
#: labels drifted against their image (the last source row or column of a shrunk crop showed in
#: the image but never in the label). INTER_NEAREST_EXACT samples at pixel centres too.
_LABEL_INTERP = cv2.INTER_NEAREST_EXACT


def _check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got shape {image.shape} dtype {image.dtype}")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label must be HxW uint8, got shape {label.shape} dtype {label.dtype}")
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} and label "
                         f"{label.shape[1]}x{label.shape[0]} differ in size")


def _check_size(size: tuple[int, int], what: str) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive (width, height), got {size}")
    return w, h


def resize_pair(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` = (width, height): image bilinear (area when shrinking), label nearest."""
    _check_pair(image, label)
    w, h = _check_size(size, "size")
    if image.shape[1] == w and image.shape[0] == h:
        return image, label
    interp = cv2.INTER_AREA if w < image.shape[1] and h < image.shape[0] else cv2.INTER_LINEAR
    return (cv2.resize(image, (w, h), interpolation=interp),
            cv2.resize(label, (w, h), interpolation=_LABEL_INTERP))


def _crop_padded(arr: np.ndarray, x0: int, y0: int, w: int, h: int, fill: int) -> np.ndarray:
    """``arr[y0:y0+h, x0:x0+w]`` where out-of-image parts are ``fill``."""
    H, W = arr.shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    part = arr[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) == (x0, y0, x0 + w, y0 + h):
        return part
    top, left = iy0 - y0, ix0 - x0
    return cv2.copyMakeBorder(np.ascontiguousarray(part), top, h - top - part.shape[0], left,
                              w - left - part.shape[1], cv2.BORDER_CONSTANT, value=fill)


def scale_crop(image: np.ndarray, label: np.ndarray, crop_size: tuple[int, int], scale: float,
               rng: np.random.Generator, aspect: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scale (aspect kept unless ``aspect`` != 1), crop a random ``crop_size`` window; pad image 0, label 255.

    ``scale`` is relative to the scale at which the image just covers the crop, so 1.0 means
    "the crop sees the whole width or height", >1 zooms in, <1 leaves padded borders.
    ``aspect`` > 1 stretches the content horizontally (by ``sqrt(aspect)``, and squashes it
    vertically by as much): the node resizes every camera to one network size, so the model
    must tolerate scenes whose proportions changed.
    The window is chosen in source pixels and resized once, so no full-size intermediate is
    made: that keeps large inputs (Cityscapes, KITTI) cheap.
    """
    cw, ch = crop_size
    H, W = label.shape
    ax, ay = (aspect ** 0.5, aspect ** -0.5) if aspect != 1.0 else (1.0, 1.0)
    s = max(cw / (W * ax), ch / (H * ay)) * scale   # output pixels per source pixel (before stretch)
    sw, sh = cw / (s * ax), ch / (s * ay)    # window size in source pixels
    # Window origin: uniform over positions that keep the window inside the image, or the
    # image inside the window when the window is larger (padding on a random side).
    x0 = rng.uniform(min(0.0, W - sw), max(0.0, W - sw))
    y0 = rng.uniform(min(0.0, H - sh), max(0.0, H - sh))
    ix0, iy0 = int(round(x0)), int(round(y0))
    iw, ih = max(1, int(round(sw))), max(1, int(round(sh)))
    img = _crop_padded(image, ix0, iy0, iw, ih, 0)
    lab = _crop_padded(label, ix0, iy0, iw, ih, IGNORE_INDEX)
    interp = cv2.INTER_AREA if min(s * ax, s * ay) < 1.0 else cv2.INTER_LINEAR
    return (cv2.resize(img, (cw, ch), interpolation=interp),
            cv2.resize(lab, (cw, ch), interpolation=_LABEL_INTERP))


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation and per-channel gain, each within ``1 +- strength``.

    Brightness, contrast and gain are folded into one per-channel 256-entry lookup table.
    """
    if strength <= 0:
        return image
    b = rng.uniform(1 - strength, 1 + strength)
    c = rng.uniform(1 - strength, 1 + strength)
    sat = rng.uniform(1 - strength, 1 + strength)
    gains = rng.uniform(1 - strength / 3, 1 + strength / 3, size=3)
    mean = float(image.mean())
    x = np.arange(256, dtype=np.float32)
    luts = [np.clip(((x * b - mean * b) * c + mean * b) * g, 0, 255).astype(np.uint8) for g in gains]
    out = cv2.merge([cv2.LUT(image[..., k], luts[k]) for k in range(3)])
    if abs(sat - 1.0) > 1e-3:
        gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        out = cv2.addWeighted(out, sat, cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), 1.0 - sat, 0.0)
    return out


def random_shadow(image: np.ndarray, rng: np.random.Generator, strength: tuple[float, float] = (0.35, 0.75)
                  ) -> np.ndarray:
    """Darken a random quadrilateral (image only), like a tree or building shadow across the road.

    The polygon spans the lower part of the image, where road shadows fall, with soft edges.
    """
    H, W = image.shape[:2]
    top = rng.uniform(0.3, 0.9) * H
    xs = np.sort(rng.uniform(-0.2, 1.2, size=2)) * W
    xb = np.sort(rng.uniform(-0.2, 1.2, size=2)) * W
    pts = np.array([[xs[0], top], [xs[1], top + rng.uniform(-0.1, 0.1) * H], [xb[1], H], [xb[0], H]],
                   dtype=np.float32)
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    k = 2 * int(rng.integers(0, 4)) + 1
    if k > 1:
        mask = cv2.blur(mask, (k, k))
    factor = rng.uniform(*strength)
    dark = (image.astype(np.float32) * factor).astype(np.uint8)
    return np.where(mask[..., None] > 127, dark, image) if k == 1 else \
        (image + (dark.astype(np.float32) - image) * (mask[..., None] / 255.0)).astype(np.uint8)


class TrainAugment:
    """Training augmentation: random scale + crop (aspect kept), horizontal flip, colour jitter, shadows.

    ``aug(image, label, rng) -> (image, label)``, both exactly ``crop_size`` = (width, height).
    The caller owns the ``rng`` (seeded per worker/sample), so a run is reproducible.
    ``scale_range`` multiplies the scale at which the image just covers the crop;
    ``aspect_range`` (log-uniform) stretches the content's proportions (see ``scale_crop``).
    """

    def __init__(self, crop_size: tuple[int, int], scale_range: tuple[float, float] = (0.75, 1.5),
                 hflip: bool = True, color_jitter: float = 0.3, shadow_prob: float = 0.3,
                 aspect_range: tuple[float, float] = (1.0, 1.0)) -> None:
        self.crop_size = _check_size(crop_size, "crop_size")
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        if not 0 <= color_jitter < 1:
            raise ValueError(f"color_jitter must lie in [0, 1), got {color_jitter}")
        if not 0 <= shadow_prob <= 1:
            raise ValueError(f"shadow_prob must lie in [0, 1], got {shadow_prob}")
        self.scale_range = (lo, hi)
        alo, ahi = (float(v) for v in aspect_range)
        if not 0 < alo <= ahi:
            raise ValueError(f"aspect_range must satisfy 0 < low <= high, got {aspect_range}")
        self.aspect_range = (alo, ahi)
        self.hflip = hflip
        self.color_jitter = float(color_jitter)
        self.shadow_prob = float(shadow_prob)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, label)
        scale = rng.uniform(*self.scale_range)
        aspect = 1.0
        if self.aspect_range != (1.0, 1.0):   # no draw when off: earlier runs stay reproducible
            aspect = float(np.exp(rng.uniform(np.log(self.aspect_range[0]), np.log(self.aspect_range[1]))))
        image, label = scale_crop(image, label, self.crop_size, scale, rng, aspect)
        if self.hflip and rng.random() < 0.5:
            image, label = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(label[:, ::-1])
        image = color_jitter(image, self.color_jitter, rng)
        if self.shadow_prob > 0 and rng.random() < self.shadow_prob:
            image = random_shadow(image, rng)
        return image, label

    def __repr__(self) -> str:
        return (f"TrainAugment(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"aspect_range={self.aspect_range}, hflip={self.hflip}, color_jitter={self.color_jitter}, "
                f"shadow_prob={self.shadow_prob})")
