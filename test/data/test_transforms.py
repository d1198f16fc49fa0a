"""Training transforms: geometry keeps image and label aligned; labels are never interpolated."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from roadseg_ros.classes import CAMVID11, IGNORE_INDEX
from roadseg_ros.data.transforms import TrainAugment, color_jitter, random_shadow, resize_pair, scale_crop

# Well separated colours, one per class: the image "spells out" its own label.
PALETTE = np.array(CAMVID11.class_colors, np.uint8)
assert len({tuple(c) for c in PALETTE}) == len(PALETTE)


def coded_pair(seed: int, w: int = 128, h: int = 96, block: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Label of random class blocks (a few ignored), image = PALETTE[label] (black where ignored)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, len(PALETTE) + 1, (h // block, w // block)).astype(np.uint8)
    blocks[blocks == len(PALETTE)] = IGNORE_INDEX
    label = np.kron(blocks, np.ones((block, block), np.uint8))
    image = np.zeros((h, w, 3), np.uint8)
    known = label != IGNORE_INDEX
    image[known] = PALETTE[label[known]]
    return image, label


def interior(label: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood carries one label (away from class borders).

    Pixels on the output's edge never count: a shrunk pixel there may straddle a class (or
    padding) border that the next row or column, outside the crop, would have shown.
    """
    k = np.ones((3, 3), np.uint8)
    padded = np.pad(label, 1, constant_values=254)  # 254: no class, not ignore
    return (cv2.dilate(padded, k) == cv2.erode(padded, k))[1:-1, 1:-1]


def check_aligned(image: np.ndarray, label: np.ndarray) -> float:
    """Assert alignment away from borders; return the mismatch fraction over all labelled pixels."""
    known = label != IGNORE_INDEX
    expected = PALETTE[np.where(known, label, 0)]
    close = (np.abs(image.astype(int) - expected.astype(int)) <= 2).all(axis=2)
    inner = known & interior(label)
    bad_inner = inner & ~close
    assert not bad_inner.any(), f"{bad_inner.sum()} interior pixels do not match their label's colour"
    return float((known & ~close).sum()) / max(int(known.sum()), 1)


def test_train_augment_keeps_image_and_label_aligned() -> None:
    aug = TrainAugment(
        crop_size=(64, 48), scale_range=(0.6, 1.8), hflip=True, color_jitter=0.0, shadow_prob=0.0
    )
    image, label = coded_pair(0)
    mismatch, padded_seen, outputs = [], 0, set()
    for seed in range(60):
        out_img, out_lab = aug(image, label, np.random.default_rng(seed))
        assert out_img.shape == (48, 64, 3) and out_img.dtype == np.uint8
        assert out_lab.shape == (48, 64) and out_lab.dtype == np.uint8
        assert set(np.unique(out_lab)) <= set(np.unique(label)) | {IGNORE_INDEX}, "no label values invented"
        mismatch.append(check_aligned(out_img, out_lab))
        padded_seen += bool(((out_lab == IGNORE_INDEX) & (out_img == 0).all(axis=2)).any())
        outputs.add(out_lab.tobytes())
    # Only class-border pixels may differ (checked strictly above); blocks are 10-29 px in the
    # output and a border mixes about one pixel on each side, so about 8 % of pixels on average.
    assert np.mean(mismatch) < 0.1, f"mean border mismatch {np.mean(mismatch):.3f}"
    assert max(mismatch) < 0.25, f"worst border mismatch {max(mismatch):.3f}"
    assert len(outputs) > 50, "different rngs must give different crops"
    assert padded_seen > 0, "scales below 1 must pad (image 0, label 255)"


def test_train_augment_flip_and_reproducibility() -> None:
    # Left half one class, right half another: a flip swaps the sides in both image and label.
    label = np.zeros((40, 60), np.uint8)
    label[:, 30:] = 8
    image = PALETTE[label]
    aug = TrainAugment(
        crop_size=(60, 40), scale_range=(1.0, 1.0), hflip=True, color_jitter=0.0, shadow_prob=0.0
    )
    sides = set()
    for seed in range(20):
        out_img, out_lab = aug(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_img, PALETTE[out_lab])
        sides.add(int(out_lab[0, 0]))
    assert sides == {0, 8}, "hflip must happen for some rngs and not for others"
    a = aug(image, label, np.random.default_rng(7))
    b = aug(image, label, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    no_flip = TrainAugment(
        crop_size=(60, 40), scale_range=(1.0, 1.0), hflip=False, color_jitter=0.0, shadow_prob=0.0
    )
    assert all(no_flip(image, label, np.random.default_rng(s))[1][0, 0] == 0 for s in range(10))


def test_photometric_changes_touch_the_image_only() -> None:
    image, label = coded_pair(1)
    plain = TrainAugment(crop_size=(64, 48), color_jitter=0.0, shadow_prob=0.0)
    full = TrainAugment(crop_size=(64, 48), color_jitter=0.4, shadow_prob=1.0)
    changed = 0
    for seed in range(10):
        p_img, p_lab = plain(image, label, np.random.default_rng(seed))
        f_img, f_lab = full(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(p_lab, f_lab)  # geometry is drawn first, from the same rng
        changed += not np.array_equal(p_img, f_img)
    assert changed == 10


def test_scale_crop_exact_size_for_odd_shapes() -> None:
    rng = np.random.default_rng(0)
    for w, h in ((37, 23), (500, 20), (20, 300)):
        image, label = rng.integers(0, 255, (h, w, 3), np.uint8), rng.integers(0, 11, (h, w), np.uint8)
        for scale in (0.5, 1.0, 2.0):
            img, lab = scale_crop(image, label, (33, 17), scale, rng)
            assert img.shape == (17, 33, 3) and lab.shape == (17, 33)


def test_resize_pair_uses_nearest_for_labels() -> None:
    # Alternating 0 / 10 columns: any interpolation would invent values in between.
    label = np.zeros((30, 40), np.uint8)
    label[:, 1::2] = 10
    label[:5] = IGNORE_INDEX
    image = PALETTE[np.minimum(label, 10)]
    for size in ((17, 11), (40, 30), (97, 61)):
        img, lab = resize_pair(image, label, size)
        assert img.shape == (size[1], size[0], 3) and lab.shape == (size[1], size[0])
        assert set(np.unique(lab)) <= {0, 10, IGNORE_INDEX}
    assert (
        len(np.unique(cv2.resize(label, (17, 11), interpolation=cv2.INTER_LINEAR))) > 3
    )  # the test can fail
    # Enlarging a block label: nearest keeps blocks exactly.
    small = np.array([[1, 2], [3, 255]], np.uint8)
    _, big = resize_pair(np.zeros((2, 2, 3), np.uint8), small, (4, 4))
    np.testing.assert_array_equal(big, np.kron(small, np.ones((2, 2), np.uint8)))
    # The image is interpolated (a smooth ramp stays smooth).
    ramp = np.tile(np.linspace(0, 255, 8, dtype=np.uint8)[None, :, None], (4, 1, 3))
    img, _ = resize_pair(ramp, np.zeros((4, 8), np.uint8), (16, 4))
    assert len(np.unique(img)) > 8


def test_label_sampled_at_the_image_pixel_centres() -> None:
    """Shrinking by 3: each image pixel averages source columns 3x..3x+2, centred on 3x+1; the label
    must come from that same centre column (OpenCV's plain INTER_NEAREST takes 3x, one column off)."""
    cols = np.arange(96, dtype=np.uint8)
    label = np.tile(cols, (6, 1))
    image = np.repeat(label[..., None], 3, axis=2)
    img, lab = resize_pair(image, label, (32, 2))
    np.testing.assert_array_equal(lab[0], 3 * np.arange(32) + 1)
    np.testing.assert_array_equal(img[..., 0], lab)
    # The same holds inside TrainAugment's scale-and-crop (scale 1 on a 3x wider image: shrink by 3).
    wide_label = np.tile(cols, (48, 1))
    wide_image = np.repeat(wide_label[..., None], 3, axis=2)
    img, lab = scale_crop(wide_image, wide_label, (32, 16), 1.0, np.random.default_rng(0))
    assert np.abs(img[..., 0].astype(int) - lab.astype(int)).max() <= 1


def test_shape_and_argument_errors() -> None:
    image, label = coded_pair(2)
    with pytest.raises(ValueError, match="image 128x96 and label 64x96 differ in size"):
        resize_pair(image, label[:, :64], (32, 32))
    with pytest.raises(ValueError, match="label must be HxW uint8"):
        resize_pair(image, label.astype(np.int64), (32, 32))
    with pytest.raises(ValueError, match="image must be HxWx3 uint8"):
        resize_pair(image[..., 0], label, (32, 32))
    with pytest.raises(ValueError, match="size must be positive"):
        resize_pair(image, label, (0, 32))
    with pytest.raises(ValueError, match="scale_range"):
        TrainAugment((32, 32), scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="color_jitter"):
        TrainAugment((32, 32), color_jitter=1.5)
    with pytest.raises(ValueError, match="shadow_prob"):
        TrainAugment((32, 32), shadow_prob=2.0)


def test_color_jitter_and_shadow_keep_shape() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(30, 220, (48, 64, 3), np.uint8)
    assert color_jitter(image, 0.0, rng) is image
    jittered = color_jitter(image, 0.3, rng)
    assert jittered.shape == image.shape and jittered.dtype == np.uint8
    for seed in range(5):
        shaded = random_shadow(image, np.random.default_rng(seed))
        assert shaded.shape == image.shape and shaded.dtype == np.uint8
        assert (shaded <= image).all(), "a shadow only darkens"
        assert (shaded < image).any()


def test_aspect_stretches_the_window_not_the_output() -> None:
    """aspect=4 at scale 1: the crop shows a quarter as many source columns as rows."""
    cols = np.broadcast_to(np.arange(40, dtype=np.uint8), (40, 40)).copy()
    rows = cols.T.copy()
    image = np.zeros((40, 40, 3), np.uint8)
    rng = np.random.default_rng(0)
    _, c = scale_crop(image, cols, (40, 40), 1.0, rng, aspect=4.0)
    _, r = scale_crop(image, rows, (40, 40), 1.0, np.random.default_rng(0), aspect=4.0)
    assert c.shape == (40, 40)
    assert len(np.unique(c)) <= 11          # 10 source columns stretched over 40
    assert len(np.unique(r)) == 40          # all 40 source rows kept
    _, same = scale_crop(image, cols, (40, 40), 1.0, np.random.default_rng(0))
    assert np.array_equal(same, cols)       # aspect 1: the whole image, unchanged


def test_train_augment_aspect_range_off_draws_nothing_extra() -> None:
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    img = np.random.default_rng(1).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    lab = np.zeros((30, 50), np.uint8)
    a = TrainAugment((32, 24))(img, lab, rng_a)
    b = TrainAugment((32, 24), aspect_range=(1.0, 1.0))(img, lab, rng_b)
    assert np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="aspect_range"):
        TrainAugment((32, 24), aspect_range=(2.0, 1.0))
