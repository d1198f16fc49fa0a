"""roadseg_ros.image_codec: every encoding round-trips, malformed fields are rejected by name."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from roadseg_ros.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    bytes_per_pixel,
    decode_compressed,
    decode_image,
    encode_image,
)


def _image(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_image(h: int = 8, w: int = 12) -> np.ndarray:
    """Colour that is constant over pixel pairs, so 4:2:2 chroma subsampling loses nothing."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 200
    img[..., 1] = np.linspace(40, 160, h, dtype=np.uint8)[:, None]
    img[..., 2] = 90
    return img


def _as_rgb(decoded: np.ndarray, order: str) -> np.ndarray:
    return decoded if order == "rgb" else decoded[..., ::-1]


EXACT = [e for e in SUPPORTED_ENCODINGS if e not in ("mono8", "8UC1", "mono16", "16UC1")
         and "yuv" not in e and e not in ("uyvy", "yuyv")]


@pytest.mark.parametrize("encoding", EXACT)
@pytest.mark.parametrize("bigendian", [False, True])
def test_colour_encodings_round_trip_exactly(encoding: str, bigendian: bool) -> None:
    img = _image()
    f = encode_image(img, encoding, bigendian=bigendian)
    assert f.step == 8 * bytes_per_pixel(encoding)
    out, order = decode_image(f.encoding, f.width, f.height, f.step, f.is_bigendian, f.data)
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(_as_rgb(out, order), img)


@pytest.mark.parametrize("encoding", EXACT)
def test_colour_decode_is_a_view_of_the_buffer(encoding: str) -> None:
    """No pixel copy before the network: the decoded array shares memory with the message data."""
    f = encode_image(_image(), encoding)
    data = np.frombuffer(f.data, np.uint8)
    out, _ = decode_image(f.encoding, f.width, f.height, f.step, f.is_bigendian, f.data)
    assert np.shares_memory(out, data)
    assert not out.flags.writeable


def test_byte_order_matters_for_16_bit() -> None:
    """The same bytes read with the other endianness give different (low-byte) values."""
    img = np.full((2, 4, 3), 7, np.uint8)
    f = encode_image(img, "rgb16", bigendian=True)
    raw = np.frombuffer(f.data, np.uint8)
    # 7 * 257 = 0x0707 is symmetric; write 0x0700 + 0x34 explicitly instead.
    words = np.full((2, 4, 3), 0x07_34, dtype=">u2")
    good, _ = decode_image("rgb16", 4, 2, 24, True, words.tobytes())
    wrong, _ = decode_image("rgb16", 4, 2, 24, False, words.tobytes())
    assert raw.size == 48
    assert (good == 0x07).all() and (wrong == 0x34).all()


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16", "16UC1"])
def test_mono_becomes_three_equal_channels(encoding: str) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    f = encode_image(gray, encoding)
    out, _ = decode_image(f.encoding, f.width, f.height, f.step, f.is_bigendian, f.data)
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_variants_decode_to_rgb(encoding: str) -> None:
    img = _smooth_image()
    f = encode_image(img, encoding)
    assert f.step == 12 * 2
    out, order = decode_image(f.encoding, f.width, f.height, f.step, f.is_bigendian, f.data)
    assert order == "rgb"
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 3


def test_yuv_byte_orders_differ() -> None:
    """UYVY and YUYV are different layouts: decoding one as the other gives other colours."""
    img = _smooth_image()
    f = encode_image(img, "uyvy")
    as_yuyv, _ = decode_image("yuyv", f.width, f.height, f.step, 0, f.data)
    assert np.abs(as_yuyv.astype(int) - img.astype(int)).max() > 20


def test_row_padding_is_skipped() -> None:
    """step > width * bpp (padded rows): the padding bytes never show up in the pixels."""
    img = _image(5, 7)
    rows = np.full((5, 7 * 3 + 11), 0xEE, np.uint8)
    rows[:, :21] = img.reshape(5, 21)
    out, order = decode_image("rgb8", 7, 5, 32, 0, rows.tobytes())
    assert order == "rgb"
    np.testing.assert_array_equal(out, img)


def test_rclpy_style_array_buffer_is_accepted() -> None:
    img = _image()
    data = array.array("B", img.tobytes())
    out, _ = decode_image("rgb8", 8, 6, 24, 0, data)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (("rgb8", 0, 6, 0, 0, b""), "zero or negative size"),
        (("rgb8", 8, 0, 24, 0, b""), "zero or negative size"),
        (("rgb8", 20000, 2, 60000, 0, b""), "absurd"),
        (("rgb8", 8, 6, 23, 0, bytes(6 * 24)), "step 23 is smaller than width x bytes per pixel"),
        (("rgb8", 8, 6, 24, 0, bytes(6 * 24 - 1)), "fewer than step x height"),
        (("bgra16", 4, 4, 31, 0, bytes(31 * 4)), "step 31"),
        (("yuv422", 7, 2, 14, 0, bytes(28)), "odd"),
        (("bayer_rggb8", 4, 4, 4, 0, bytes(16)), "unsupported encoding 'bayer_rggb8'"),
        (("32FC1", 4, 4, 16, 0, bytes(64)), "unsupported encoding"),
    ],
)
def test_malformed_fields_are_rejected_with_the_problem_named(fields: tuple, needle: str) -> None:
    with pytest.raises(ImageFormatError, match=needle):
        decode_image(*fields)


def test_size_limit_is_configurable() -> None:
    img = _image(6, 8)
    decode_image("rgb8", 8, 6, 24, 0, img.tobytes(), max_side=8)
    with pytest.raises(ImageFormatError, match="limit 7"):
        decode_image("rgb8", 8, 6, 24, 0, img.tobytes(), max_side=7)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_png_and_jpeg(ext: str) -> None:
    img = _smooth_image(32, 48)
    ok, buf = cv2.imencode(ext, img[..., ::-1])
    assert ok
    out, order = decode_compressed(ext[1:], buf.tobytes())
    assert order == "bgr" and out.shape == (32, 48, 3)
    tol = 0 if ext == ".png" else 12
    assert np.abs(out[..., ::-1].astype(int) - img.astype(int)).max() <= tol


@pytest.mark.parametrize(
    ("data", "needle"),
    [(b"", "empty"), (b"GIF89a....", "neither JPEG nor PNG"),
     (b"\x89PNG\r\n\x1a\n" + bytes(40), "could not")],
)
def test_bad_compressed_payload_is_rejected(data: bytes, needle: str) -> None:
    with pytest.raises(ImageFormatError, match=needle):
        decode_compressed("png", data)


def test_encode_rejects_bad_arrays() -> None:
    with pytest.raises(ImageFormatError, match="uint8"):
        encode_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ImageFormatError, match="shape"):
        encode_image(np.zeros((2, 2, 2), np.uint8), "rgb8")
