"""Plain configuration facts shared by every entry point: sizes, devices, precisions, file kinds, weights.

Each of these used to be spelled out by the node, the tools and the training script on
their own, and the copies drifted (one accepted ``.pgm`` images, another did not; one
size parser allowed 1x1, another demanded 8x8). They live here once. The module imports
neither torch nor ROS, so a node or a tool can validate what it was given and fail with
one line before paying for the torch import.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "ConfigError", "WeightsError", "one_line",
    "parse_size", "size_type", "fit_aspect", "DEVICE_CHOICES", "check_device",
    "PRECISIONS", "BACKENDS", "add_runtime_arguments",
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "DATASET_IMAGE_EXTENSIONS",
    "CARLA_LABEL_SCHEMES", "default_weights_path", "bundled_weights", "resolve_weights",
]


class ConfigError(Exception):
    """A configuration problem found before any work starts; its text is the one line to print.

    Every node and tool exits with status 2 on it, so a launch system or a script can tell
    "you configured me wrong" apart from "I failed while running" (status 1).
    """


class WeightsError(ConfigError):
    """The checkpoint to load does not exist (given, or the bundled one)."""


def one_line(text: object) -> str:
    """``text`` (an exception, say) with every run of whitespace folded into one space.

    Errors reach the user as one line on stderr or in a log (see :class:`ConfigError`),
    but the messages of rcl, OpenCV, torch and the file system often carry newlines and
    indentation; this is the one place they are folded.
    """
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------- sizes
def parse_size(text: str, minimum: int = 1) -> tuple[int, int]:
    """``"576x160"`` -> ``(576, 160)`` (width, height); ValueError naming the problem."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 576x160), got {text!r}") from None
    if w < minimum or h < minimum:
        raise ValueError(f"size {text!r} too small: width and height must be >= {minimum}")
    return w, h


def fit_aspect(budget: tuple[int, int], frame: tuple[int, int], multiple: int = 32) -> tuple[int, int]:
    """The network size with ``budget``'s pixel count and ``frame``'s proportions (width, height).

    Why: a network trained at one size, fed a camera of another aspect through a plain
    resize, sees every object stretched: KITTI's 1242x375 frames squeezed into 512x320 are
    stretched 2x vertically, while 736x224 has the same pixel count and the frame's shape,
    and the bundled model's KITTI MaxF is higher there. The cost per frame stays the same.
    Sides are rounded to ``multiple`` (the encoders' stride), at least one multiple; a frame
    already shaped like ``budget`` gets ``budget`` itself.
    """
    bw, bh = budget
    fw, fh = frame
    if min(bw, bh, fw, fh) <= 0 or multiple <= 0:
        raise ValueError(f"fit_aspect needs positive sizes, got budget {budget!r}, frame {frame!r}")
    if fw * bh == fh * bw:
        return bw, bh
    pixels = bw * bh
    height = max(float(multiple), (pixels * fh / fw) ** 0.5)   # a side below one multiple is clamped,
    width = max(float(multiple), pixels / height)               # the other shrinks to keep the count
    height = pixels / width if width * height > pixels * 1.001 else height
    return (max(multiple, round(width / multiple) * multiple),
            max(multiple, round(height / multiple) * multiple))


def size_type(minimum: int = 1) -> Callable[[str], tuple[int, int]]:
    """An argparse ``type=`` for ``WxH`` options; training and evaluation ask for at least 8 px."""
    def convert(text: str) -> tuple[int, int]:
        try:
            return parse_size(text, minimum)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = "size"     # argparse names the type in its error message
    return convert


# ----------------------------------------------------------------------------- devices, precisions
#: What a ``device`` setting may say (resolved to a torch device by ``inference.resolve_device``).
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device(value: str) -> str | None:
    """Why ``value`` is not a device name (``None`` when it is one); no torch needed to say so."""
    return None if _DEVICE_RE.match(str(value)) else f"valid choices: {DEVICE_CHOICES}"


#: Network precisions, in the order the help texts list them: ``auto`` lets the backend choice
#: pick (see ``roadseg_ros.backends.choose``), fp16 needs CUDA, int8 needs a calibrated
#: model of the checkpoint (``roadseg-quantize``) and the OpenVINO backend.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
#: Runtimes the network can run in (``roadseg_ros.backends``): ``auto`` picks by device and by
#: what is installed; ``torch`` is eager PyTorch; ``openvino`` and ``onnxruntime`` run on the CPU.
BACKENDS: tuple[str, ...] = ("auto", "torch", "openvino", "onnxruntime")

def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--precision`` with the node's words and defaults, for every tool.

    ``auto`` for both, as in the node: a tool scores or segments with what the node would
    run, unless told otherwise.
    """
    parser.add_argument("--backend", default="auto", choices=list(BACKENDS),
                        help="network runtime (default: %(default)s: OpenVINO on the CPU where installed, "
                             "torch on CUDA; one that cannot run here falls back to torch, logged)")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                        help="network precision (default: %(default)s: the backend's fastest proven one; "
                             "fp16 needs CUDA, int8 needs OpenVINO and a calibrated checkpoint)")


# ----------------------------------------------------------------------------- files
#: Still images OpenCV reads, for folders of frames (camera source, roadseg-infer).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".pnm", ".tif",
                                     ".tiff", ".webp")
#: Videos roadseg-infer segments frame by frame.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: Images the dataset readers pair with labels. Narrower on purpose: dataset folders hold
#: derived files (previews, masks as .bmp/.tif) that must not become training samples.
DATASET_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

# ----------------------------------------------------------------------------- datasets
# What each dataset is (reader, options, default split, licence) lives in roadseg_ros.dataset_registry.
#: How a CARLA semantic image encodes its labels (``roadseg_ros.carla.labels``).
CARLA_LABEL_SCHEMES: tuple[str, ...] = ("pre_0914", "post_0914", "palette")


# ----------------------------------------------------------------------------- weights
def default_weights_path() -> Path:
    """The bundled checkpoint's location (``roadseg_ros/weights/roadseg_default.pt``; may not exist)."""
    return Path(__file__).resolve().parent / "weights" / "roadseg_default.pt"


def bundled_weights() -> dict[str, Path]:
    """The checkpoints shipped in the package, by name (file stem): ``roadseg_default`` and others."""
    folder = default_weights_path().parent
    return {p.stem: p for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}


def resolve_weights(weights: str | Path | None, how: str = "--weights PATH") -> Path:
    """The checkpoint to load: ``weights`` when given (non-empty), else the bundled default.

    ``weights`` is a file path, or the name of a bundled checkpoint (``fcn8s_lite0``: see
    :func:`bundled_weights`) when no such file exists, so a second shipped model is one word
    away in a launch file. Raises :class:`WeightsError` when nothing is found, with a message
    that says which it was, lists the bundled names and what to do (``how``: how this caller is
    given weights, e.g. ``-p weights:=PATH`` for a node), so every tool and node reports it alike.
    """
    if weights is not None and str(weights) != "":
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        bundled = bundled_weights()
        name = str(weights)
        if name in bundled and "/" not in name and not path.suffix:
            return bundled[name]
        names = ", ".join(bundled) or "none"
        raise WeightsError(f"weights file {path} does not exist (nor is it a bundled checkpoint's name; "
                           f"bundled: {names})")
    path = default_weights_path()
    if not path.is_file():
        raise WeightsError(f"the bundled checkpoint {path} is missing: train one with roadseg-train "
                           f"(docs/training.md) and pass it with {how}, or copy it to {path}")
    return path
