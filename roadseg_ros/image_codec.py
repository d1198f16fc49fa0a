"""ROS ``sensor_msgs/Image`` field layout <-> numpy, without ROS.

The node receives camera frames in many encodings (CARLA sends ``bgra8``, USB cameras
``yuv422``, industrial cameras 16-bit) and must turn each into the ``HxWx3 uint8`` array
the engine wants as cheaply as possible: wherever the layout allows it the result is a
*view* of the message buffer (row stride = ``step``, alpha dropped, 16-bit reduced to
its high byte by picking one byte of each pair) so no pixel is copied before the
network's own resize. Only mono and YUV inputs need a colour conversion (one pass).

Anything the node cannot interpret raises :class:`ImageFormatError` whose message names
the problem (encoding, sizes, byte counts), so the node can log it and go on with the
next frame.

This module imports no ROS: it works on the message *fields* (``encoding``, ``width``,
``height``, ``step``, ``is_bigendian``, ``data``), so it is testable and reusable
outside a ROS graph. :func:`decode_image_msg` / :func:`fill_image_msg` accept any object
with those attributes (a ``sensor_msgs.msg.Image``).
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Default limit on width and height; larger frames are rejected as absurd (a corrupt
#: header would otherwise make the node allocate gigabytes).
DEFAULT_MAX_SIDE = 16384


class ImageFormatError(ValueError):
    """A message that cannot be decoded; the text names the problem."""


@dataclass(frozen=True)
class _Layout:
    """How one encoding is stored: channels per pixel, bytes per channel, colour order."""

    channels: int
    depth: int          # bytes per channel (1 or 2)
    order: str          # "rgb", "bgr", "mono", "uyvy" or "yuyv"


# Names as in sensor_msgs/image_encodings.hpp (yuv422 is UYVY there; yuv422_yuy2 is YUYV).
_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, 1, "rgb"),
    "bgr8": _Layout(3, 1, "bgr"),
    "rgba8": _Layout(4, 1, "rgb"),
    "bgra8": _Layout(4, 1, "bgr"),
    "mono8": _Layout(1, 1, "mono"),
    "8UC1": _Layout(1, 1, "mono"),
    "8UC3": _Layout(3, 1, "bgr"),     # OpenCV convention: generic 3-channel images are BGR
    "8UC4": _Layout(4, 1, "bgr"),
    "rgb16": _Layout(3, 2, "rgb"),
    "bgr16": _Layout(3, 2, "bgr"),
    "rgba16": _Layout(4, 2, "rgb"),
    "bgra16": _Layout(4, 2, "bgr"),
    "mono16": _Layout(1, 2, "mono"),
    "16UC1": _Layout(1, 2, "mono"),
    "16UC3": _Layout(3, 2, "bgr"),
    "16UC4": _Layout(4, 2, "bgr"),
    "yuv422": _Layout(2, 1, "uyvy"),
    "uyvy": _Layout(2, 1, "uyvy"),
    "yuv422_yuy2": _Layout(2, 1, "yuyv"),
    "yuyv": _Layout(2, 1, "yuyv"),
}

#: Every encoding :func:`decode_image` accepts.
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

_YUV_TO_RGB = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUYV}
_RGB_TO_YUV = {"uyvy": cv2.COLOR_RGB2YUV_UYVY, "yuyv": cv2.COLOR_RGB2YUV_YUYV}


def bytes_per_pixel(encoding: str) -> int:
    """Bytes one pixel takes in ``encoding`` (YUV 4:2:2: 2); unknown encodings raise."""
    layout = _layout(encoding)
    return layout.channels * layout.depth


def _layout(encoding: str) -> _Layout:
    try:
        return _LAYOUTS[encoding]
    except KeyError:
        raise ImageFormatError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}") from None


def decode_image(encoding: str, width: int, height: int, step: int, is_bigendian: bool | int,
                 data: Any, *, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, str]:
    """Interpret raw image fields as ``(HxWx3 uint8 array, colour order "rgb"|"bgr")``.

    ``data`` is any buffer (``bytes``, ``array.array('B')`` as rclpy delivers it,
    ``memoryview``, uint8 numpy array). The returned array is a read-only view of it
    for 8-bit 3/4-channel and all 16-bit colour encodings (16-bit values are scaled to
    8 bits by keeping the high byte, so 65535 -> 255); mono and YUV images are
    converted into a new array. Callers that keep the array longer than the buffer
    must copy it.
    """
    layout = _layout(encoding)
    width, height, step = int(width), int(height), int(step)
    if width <= 0 or height <= 0:
        raise ImageFormatError(f"{encoding} image has zero or negative size {width}x{height}")
    if width > max_side or height > max_side:
        raise ImageFormatError(f"{encoding} image size {width}x{height} is absurd "
                               f"(limit {max_side} per side)")
    bpp = layout.channels * layout.depth
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageFormatError(f"{encoding} image: step {step} is smaller than width x bytes per pixel "
                               f"= {width} x {bpp} = {row_bytes}")
    if layout.order in _YUV_TO_RGB and width % 2:
        raise ImageFormatError(f"{encoding} image: width {width} is odd (4:2:2 needs pixel pairs)")
    try:
        flat = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageFormatError(f"{encoding} image: data is not a byte buffer "
                               f"({type(data).__name__}: {exc})") from None
    if flat.size < step * height:
        raise ImageFormatError(f"{encoding} image: data has {flat.size} bytes, fewer than step x height "
                               f"= {step} x {height} = {step * height}")
    # Rows of `step` bytes, each cut to its pixels; a view with row stride `step`.
    rows = np.lib.stride_tricks.as_strided(flat, shape=(height, row_bytes), strides=(step, 1),
                                           writeable=False)
    if layout.depth == 2:
        big = bool(is_bigendian)
        # The high byte of each 16-bit value is the first of the pair in big endian.
        pixels = rows.reshape(height, width, layout.channels, 2)[..., 0 if big else 1]
    else:
        pixels = rows.reshape(height, width, layout.channels)
    if layout.order in ("rgb", "bgr"):
        return pixels[..., :3], layout.order
    if layout.order == "mono":
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB), "rgb"
    return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[layout.order]), "rgb"


def decode_image_msg(msg: Any, *, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, str]:
    """:func:`decode_image` on the fields of a ``sensor_msgs/Image``-like object."""
    return decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian, msg.data,
                        max_side=max_side)


def decode_compressed(fmt: str, data: Any, *, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/CompressedImage`` payload (JPEG or PNG) to ``(BGR array, "bgr")``.

    ``fmt`` is the message's ``format`` field (``"jpeg"``, ``"png"``, ``"bgr8; jpeg
    compressed bgr8"``, ...); it is only used in error messages because the payload's
    magic bytes tell the codec. Anything that does not decode raises ImageFormatError.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageFormatError(f"compressed image ({fmt!r}): empty data")
    head = bytes(buf[:8])
    if not (head.startswith(b"\xff\xd8") or head.startswith(b"\x89PNG")):
        raise ImageFormatError(f"compressed image ({fmt!r}): data is neither JPEG nor PNG "
                               f"(first bytes {head[:4].hex()})")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f"compressed image ({fmt!r}): {buf.size} bytes could not be decoded "
                               "(corrupt or truncated)")
    h, w = image.shape[:2]
    if w > max_side or h > max_side:
        raise ImageFormatError(f"compressed image size {w}x{h} is absurd (limit {max_side} per side)")
    return image, "bgr"


@dataclass
class ImageFields:
    """The layout fields of a ``sensor_msgs/Image`` (everything except the header)."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: int
    data: array.array


def encode_image(image: np.ndarray, encoding: str, *, color_order: str = "rgb",
                 bigendian: bool | None = None) -> ImageFields:
    """Pack ``image`` into Image fields of ``encoding`` (the inverse of :func:`decode_image`).

    ``image`` is ``HxW`` (mono) or ``HxWx3`` uint8 in ``color_order``; it is converted
    to the encoding's channel order (alpha = 255; 16-bit values = 8-bit x 257, in
    ``bigendian`` byte order, default: this machine's). ``data`` is an
    ``array.array('B')``, what rclpy stores without another conversion.
    """
    layout = _layout(encoding)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageFormatError(f"encode_image wants uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ImageFormatError(f"encode_image wants HxW or HxWx3, got shape {image.shape}")
    if color_order not in ("rgb", "bgr"):
        raise ImageFormatError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    height, width = image.shape[:2]
    if image.shape[2] == 1 and layout.channels != 1:
        image = np.repeat(image, 3, axis=2)
    if layout.order == "mono":
        pixels = image if image.shape[2] == 1 else cv2.cvtColor(
            np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY if color_order == "rgb" else cv2.COLOR_BGR2GRAY)
        pixels = pixels.reshape(height, width, 1)
    elif layout.order in _RGB_TO_YUV:
        rgb = image if color_order == "rgb" else image[..., ::-1]
        pixels = cv2.cvtColor(np.ascontiguousarray(rgb), _RGB_TO_YUV[layout.order])
    else:
        pixels = image if color_order == layout.order else image[..., ::-1]
        if layout.channels == 4:
            alpha = np.full((height, width, 1), 255, np.uint8)
            pixels = np.concatenate([pixels, alpha], axis=2)
    if layout.depth == 2:
        big = sys.byteorder == "big" if bigendian is None else bigendian
        pixels = (pixels.astype(np.uint16) * 257).astype(">u2" if big else "<u2")
    else:
        big = False
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(pixels).view(np.uint8).reshape(-1))
    return ImageFields(encoding=encoding, width=width, height=height,
                       step=width * layout.channels * layout.depth, is_bigendian=int(big), data=out)


def fill_image_msg(msg: Any, image: np.ndarray, encoding: str, *, color_order: str = "rgb") -> Any:
    """Write :func:`encode_image`'s fields into ``msg`` (a ``sensor_msgs/Image``) and return it."""
    fields = encode_image(image, encoding, color_order=color_order)
    msg.encoding = fields.encoding
    msg.width = fields.width
    msg.height = fields.height
    msg.step = fields.step
    msg.is_bigendian = fields.is_bigendian
    msg.data = fields.data
    return msg
