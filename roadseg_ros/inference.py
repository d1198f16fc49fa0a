"""Fast single-image and batch inference: :class:`Segmenter` and :class:`Prediction`.

The segmentation node, ``roadseg-infer``, the evaluator and the benchmark all run the
network through this one class, so every speed-up here counts everywhere. The work is
placed where it is cheapest:

* the image travels to the device as uint8 (a third of the bytes of float32); on CUDA it
  goes through a reused pinned host buffer with a non-blocking copy;
* BGR->RGB (an index on the device), the float conversion, the resize to the network
  size (``F.interpolate``, no antialias) and the normalisation (one fused multiply-add
  with cached constants) all run on the device, in channels-last layout, which is the
  layout an HxWx3 image already has;
* logits are upsampled to the image size bilinearly on the device and the arg-max and
  the max-softmax are taken there, so a single uint8 mask (plus float maps only when
  asked for) comes back to the host.

Nothing here imports ROS.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from roadseg_ros import allocator
from roadseg_ros.backends import TORCH_DTYPES, Choice, build_network, choose, weights_digest
from roadseg_ros.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from roadseg_ros.config import DEVICE_CHOICES, fit_aspect
from roadseg_ros.models import fuse_conv_bn

__all__ = ["DTYPES", "COLOR_ORDERS", "Prediction", "Segmenter", "resolve_device"]

logger = logging.getLogger(__name__)

#: The torch dtype the torch backend runs in, per precision name.
DTYPES: dict[str, torch.dtype] = TORCH_DTYPES
#: Valid ``color_order`` values of :meth:`Segmenter.predict`.
COLOR_ORDERS = ("rgb", "bgr")


@dataclass
class Prediction:
    """The result of :meth:`Segmenter.predict`, everything at the input image's resolution.

    ``mask`` holds class ids (uint8), ``confidence`` the max softmax probability per pixel
    and ``drivable_prob`` the summed softmax probability of the drivable classes (what
    KITTI's MaxF/AP evaluation thresholds); the float maps are ``None`` when not asked
    for. Shapes are HxW for a single image and NxHxW for a batch. ``timing`` holds
    ``preprocess_ms``, ``inference_ms``, ``postprocess_ms`` and ``total_ms`` (wall clock;
    the first three add up to the total).
    """

    mask: np.ndarray
    confidence: np.ndarray | None = None
    drivable_prob: np.ndarray | None = None
    timing: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a usable :class:`torch.device`.

    ``auto`` picks CUDA when present and otherwise falls back to the CPU with a logged
    warning (so a deployment that silently lost its GPU is visible in the logs). An
    explicit CUDA device that does not exist is an error rather than a silent fallback:
    the caller asked for it.
    """
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        logger.warning("device 'auto': CUDA is not available, running on the CPU (slower)")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name[5:] if name.startswith("cuda:") else ""
        if index_text and not index_text.isdigit():
            raise ValueError(f"invalid device {device!r}: the CUDA index must be a number, e.g. 'cuda:0'")
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} was requested but CUDA is not available to this torch "
                f"({torch.__version__}, torch.cuda.is_available() is False); use device='cpu' or 'auto'")
        count = torch.cuda.device_count()
        index = int(index_text) if index_text else torch.cuda.current_device()
        if index >= count:
            raise ValueError(f"device {device!r} does not exist: {count} CUDA device(s), valid indices "
                             f"0..{count - 1}")
        return torch.device("cuda", index)
    raise ValueError(f"invalid device {device!r}; valid choices: {DEVICE_CHOICES}")


def _check_cuda_precision(choice: Choice, device: torch.device) -> None:
    """A CUDA device that cannot run the chosen precision is the caller's error, not a fallback."""
    if device.type == "cuda" and choice.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)} "
                         f"({device}); use 'fp16' or 'fp32'")


def _parse_size(size: Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"{what} must be positive (width, height), got {size!r}")
    return width, height


def _argmax_planes(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max (uint8, first index on ties like ``argmax``) and max over dim 1 of contiguous NCHW logits.

    On the CPU ``Tensor.max(dim=1)`` is a slow, poorly vectorised kernel for the few
    classes a segmentation net has (measured ~4x slower at 576x160); a running maximum
    over the class planes is a handful of vectorised element-wise passes. The index only
    moves to class ``c`` when ``c`` is strictly larger, so ``max(index, c * greater)`` is
    the update, all in uint8.
    """
    best = logits[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8, device=logits.device)
    for c in range(1, logits.shape[1]):
        plane = logits[:, c]
        torch.maximum(index, torch.gt(plane, best).view(torch.uint8).mul_(c), out=index)
        torch.maximum(best, plane, out=best)
    return index, best


def _softmax_planes(logits: torch.Tensor, top: torch.Tensor, want_confidence: bool,
                    drivable: Sequence[int] | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Max softmax probability and summed drivable probability from contiguous NCHW logits.

    ``sum_c exp(l_c - max)`` accumulated plane by plane with same-shape, vectorised ops
    (broadcast subtraction over the class dimension is several times slower on the CPU);
    the max class contributes ``exp(0) = 1``, so the confidence is ``1 / sum``.
    """
    total = torch.zeros_like(top)
    partial = torch.zeros_like(top) if drivable is not None else None
    wanted = set(drivable or ())
    term = torch.empty_like(top)
    for c in range(logits.shape[1]):
        torch.sub(logits[:, c], top, out=term).exp_()
        total.add_(term)
        if c in wanted:
            partial.add_(term)
    confidence = total.reciprocal() if want_confidence else None
    drivable_prob = partial.div_(total).clamp_(0, 1) if partial is not None else None
    return confidence, drivable_prob


class Segmenter:
    """A trained segmentation network ready for fast repeated ``predict`` calls.

    Args:
        weights: checkpoint path or a loaded :class:`~roadseg_ros.checkpoint.Checkpoint`.
        device: ``auto`` (CUDA if available, else CPU with a warning), ``cpu``, ``cuda``
            or ``cuda:N``.
        precision: ``fp32``, ``fp16`` (CUDA only), ``bf16`` (where supported), ``int8``
            (OpenVINO, with calibrated ranges) or ``auto`` (the backend's fastest proven one).
        backend: ``torch`` (eager), ``openvino``, ``onnxruntime`` or ``auto``
            (:func:`roadseg_ros.backends.choose`); what was chosen and why is in
            :attr:`backend`, :attr:`precision` and :attr:`backend_reason`.
        cache_dir: where converted graphs are cached (``None``: the user's cache folder).
        int8_ranges: the calibration file for ``int8`` (``None``: beside ``weights``,
            :func:`roadseg_ros.quantization.ranges_path_for`), or an
            :class:`~roadseg_ros.quantization.Int8Ranges` (used as given: its accuracy is the
            caller's to check, as ``roadseg-quantize`` does while measuring it).
        input_size: ``(width, height)`` the network runs at; ``None`` uses the
            checkpoint's training size. Images of any size are resized to it on the
            device and results are returned at the image's own size.
        keep_aspect: run the network at ``input_size``'s pixel count but each image's
            proportions (sides multiples of 32; :func:`roadseg_ros.config.fit_aspect`), so a
            wide camera is not squeezed into the training shape. Same cost per frame.
        compile: wrap the network in ``torch.compile`` (``True`` or a compile mode
            string such as ``"max-autotune"``); the first calls are slow.
        warmup: run a few dummy frames now so the first real frame is not slow
            (allocator, cuDNN autotuning, compilation).
        num_threads: set torch's intra-op CPU thread count (process-wide); ``None``
            leaves torch's default.
        fuse_batchnorm: fold each ``Conv2d -> BatchNorm2d`` pair into one convolution
            (:func:`roadseg_ros.models.fuse_conv_bn`; same function, a few per cent faster).
        keep_freed_memory: on the CPU, tune glibc ``malloc`` (process-wide, see
            :mod:`roadseg_ros.allocator`) so the buffers of one frame are reused by the
            next instead of being page-faulted in again.
    """

    def __init__(self, weights: str | Path | Checkpoint, device: str | torch.device = "auto",
                 precision: str = "fp32", input_size: Sequence[int] | None = None,
                 compile: bool | str = False, warmup: bool = True, num_threads: int | None = None,
                 fuse_batchnorm: bool = True, keep_freed_memory: bool = True,
                 keep_aspect: bool = False, backend: str = "torch", cache_dir: str | Path | None = None,
                 int8_ranges: str | Path | Any = None) -> None:
        if num_threads is not None:
            if int(num_threads) < 1:
                raise ValueError(f"num_threads must be >= 1, got {num_threads!r}")
            torch.set_num_threads(int(num_threads))
        if isinstance(weights, Checkpoint):
            ckpt, self.weights_path = weights, None
        else:
            self.weights_path = Path(weights)
            ckpt = load_checkpoint(self.weights_path)
        self.checkpoint_info: dict = dict(ckpt.training or {})
        self.model_name: str = ckpt.arch
        self.class_names: list[str] = list(ckpt.class_names)
        if not 1 <= len(self.class_names) <= 256:
            raise ValueError(f"{len(self.class_names)} classes: a uint8 mask holds 1..256 classes")
        self.class_colors: list[tuple[int, int, int]] = [tuple(int(v) for v in c) for c in ckpt.class_colors]
        self.drivable_classes: list[int] = [int(c) for c in ckpt.drivable_classes]
        self.mean: tuple[float, float, float] = tuple(float(v) for v in ckpt.mean)
        self.std: tuple[float, float, float] = tuple(float(v) for v in ckpt.std)
        self.device: torch.device = resolve_device(device)
        if keep_freed_memory and self.device.type == "cpu":
            allocator.keep_freed_memory()
        self.input_size: tuple[int, int] = (_parse_size(input_size, "input_size")
                                            or _parse_size(ckpt.input_size, "checkpoint input_size"))
        self.keep_aspect: bool = bool(keep_aspect)

        digest = ranges = None
        int8_why: str | None = "not looked for"
        if backend in ("auto", "openvino") and precision in ("auto", "int8") and self.device.type == "cpu":
            from roadseg_ros.quantization import Int8Ranges, find_ranges, ranges_path_for
            digest = weights_digest(ckpt.state_dict, ckpt.arch, ckpt.arch_kwargs)
            if int8_ranges is None and self.weights_path is not None:
                int8_ranges = ranges_path_for(self.weights_path)
            if isinstance(int8_ranges, Int8Ranges):   # in memory: the caller vouches for its accuracy
                ranges = int8_ranges if int8_ranges.digest == digest else None
                int8_why = None if ranges is not None else "the int8 ranges given are for other weights"
            else:
                ranges, int8_why = find_ranges(int8_ranges, digest)
        choice = choose(backend, precision, self.device, int8_ready=int8_why)
        _check_cuda_precision(choice, self.device)

        model = model_from_checkpoint(ckpt, device=self.device)
        # Fold in float32, before any cast to fp16/bf16, so the folded weights lose nothing.
        self.fused_batchnorms: int = fuse_conv_bn(model) if fuse_batchnorm else 0
        model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        if choice.backend != "torch" and digest is None:
            digest = weights_digest(ckpt.state_dict, ckpt.arch, ckpt.arch_kwargs)
        w, h = self.input_size
        self._network, choice = build_network(
            choice, model, digest=digest or "", num_threads=int(num_threads or torch.get_num_threads()),
            cache_dir=Path(cache_dir).expanduser() if cache_dir else None, int8_ranges=ranges,
            compile=compile, probe_shape=(1, 3, h, w) if choice.backend != "torch" else None)
        #: The runtime, the precision it runs and why (one line, also logged).
        self.backend: str = choice.backend
        self.precision: str = choice.precision
        self.backend_reason: str = choice.reason
        logger.log(logging.WARNING if choice.fallback else logging.INFO, "network runtime: %s %s (%s)",
                   self.backend, self.precision, self.backend_reason)
        self.dtype: torch.dtype = self._network.input_dtype
        self.model: torch.nn.Module = model
        if self.device.type == "cuda":
            # The network always sees the same input size, so autotuning pays off.
            torch.backends.cudnn.benchmark = True

        # (x / 255 - mean) / std  ==  x * scale + shift, cached per colour order.
        mean = torch.tensor(self.mean, dtype=torch.float32)
        std = torch.tensor(self.std, dtype=torch.float32)
        scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
        shift = (-mean / std).view(1, 3, 1, 1)
        self._scale = scale.to(self.device, self.dtype)
        self._shift = shift.to(self.device, self.dtype)
        self._bgr_index = torch.tensor([2, 1, 0], device=self.device)
        self._drivable_index = torch.tensor(self.drivable_classes, device=self.device, dtype=torch.long)
        self._pinned: torch.Tensor | None = None  # reused host staging buffer (CUDA only)
        self._lock = threading.Lock()  # the staging buffer is shared: one predict at a time

        if warmup:
            self.warmup()

    # ------------------------------------------------------------------ helpers
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        w, h = self.input_size
        fit = ", keep_aspect" if self.keep_aspect else ""
        return (f"Segmenter({self.model_name}, {self.num_classes} classes, device={self.device}, "
                f"backend={self.backend}, precision={self.precision}, input_size={w}x{h}{fit})")

    def network_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` the network runs at for a ``width`` x ``height`` image."""
        if not self.keep_aspect:
            return self.input_size
        return fit_aspect(self.input_size, (width, height))

    def warmup(self, iterations: int = 2) -> None:
        """Run dummy frames at the network size (allocators, cuDNN autotuning, compile)."""
        w, h = self.input_size
        dummy = np.zeros((h, w, 3), dtype=np.uint8)
        for _ in range(max(1, iterations)):
            self.predict(dummy, with_confidence=True)

    @staticmethod
    def _validate(image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise ValueError("image must be a numpy array (HxWx3 or NxHxWx3 uint8), "
                             f"got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got dtype {image.dtype}; convert 0..255 images with "
                             f"image.astype(np.uint8)")
        if image.ndim not in (3, 4):
            raise ValueError(f"image must be HxWx3 or NxHxWx3, got {image.ndim} dimensions {image.shape}")
        if image.shape[-1] != 3:
            raise ValueError(f"image must have 3 colour channels in the last axis, got shape {image.shape}")
        if min(image.shape[:-1]) == 0:
            raise ValueError(f"image is empty: shape {image.shape}")
        return image

    def _upload(self, batch: np.ndarray) -> torch.Tensor:
        """NxHxWx3 uint8 numpy -> uint8 tensor on the device (same layout)."""
        if self.device.type == "cpu":
            if any(s < 0 for s in batch.strides):  # e.g. image[:, ::-1]: torch refuses negative strides
                batch = np.ascontiguousarray(batch)
            if not batch.flags.writeable:
                # Read-only views (e.g. of a ROS message buffer) are only read by the network;
                # torch warns because it cannot enforce that, so say it here, locally.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                    return torch.from_numpy(batch)
            return torch.from_numpy(batch)
        if self._pinned is None or tuple(self._pinned.shape) != batch.shape:
            self._pinned = torch.empty(batch.shape, dtype=torch.uint8, pin_memory=True)
        # The previous call synchronised before returning, so the buffer is free again.
        np.copyto(self._pinned.numpy(), batch)
        return self._pinned.to(self.device, non_blocking=True)

    def _prepare(self, batch: np.ndarray, color_order: str, net_w: int, net_h: int) -> torch.Tensor:
        """NxHxWx3 uint8 -> the normalised network input, ``net_w`` x ``net_h``, on the device."""
        _, H, W, _ = batch.shape
        x = self._upload(batch)
        if color_order == "bgr":
            x = x.index_select(3, self._bgr_index)  # uint8 copy, still NHWC
        # The NCHW view of NHWC memory is channels_last, which every step below keeps.
        x = x.permute(0, 3, 1, 2).to(self.dtype, memory_format=torch.channels_last)
        resize = (net_h, net_w) != (H, W)
        if resize and net_h * net_w < H * W:  # normalise whichever of the two is smaller
            x = F.interpolate(x, size=(net_h, net_w), mode="bilinear", align_corners=False, antialias=False)
            resize = False
        x = x.mul_(self._scale).add_(self._shift)
        if resize:
            x = F.interpolate(x, size=(net_h, net_w), mode="bilinear", align_corners=False, antialias=False)
        return x.contiguous(memory_format=torch.channels_last)  # no-op unless a step changed layout

    def network_input(self, image: np.ndarray, color_order: str = "rgb") -> np.ndarray:
        """The float32 ``[N,3,h,w]`` batch the network sees for ``image`` (HxWx3 or NxHxWx3 uint8).

        Exactly :meth:`predict`'s pre-processing, for tools that feed the network themselves
        (int8 calibration must see what the network will see).
        """
        if color_order not in COLOR_ORDERS:
            raise ValueError(f"invalid color_order {color_order!r}; valid choices: {', '.join(COLOR_ORDERS)}")
        image = self._validate(image)
        batch = image[None] if image.ndim == 3 else image
        net_w, net_h = self.network_size(batch.shape[2], batch.shape[1])
        with self._lock, torch.inference_mode():
            x = self._prepare(batch, color_order, net_w, net_h)
            return x.float().contiguous().cpu().numpy()

    # ------------------------------------------------------------------ predict
    def predict(self, image: np.ndarray, color_order: str = "rgb", with_confidence: bool = True,
                with_drivable_prob: bool = False) -> Prediction:
        """Segment one HxWx3 image or an NxHxWx3 batch of uint8 images.

        ``color_order`` says whether the channels are ``rgb`` or ``bgr`` (OpenCV); the
        reorder happens on the device. Returns a :class:`Prediction` at the input size.
        Thread-safe (calls are serialised); the returned arrays are never reused.
        """
        t_start = time.perf_counter()
        # On CUDA, make this Segmenter's GPU the thread's current device: the timing events and
        # the final synchronisation use the current device's stream, and a caller's thread (the
        # node's worker) starts on cuda:0, so on cuda:1 they would miss the work entirely.
        device_scope = torch.cuda.device(self.device) if self.device.type == "cuda" else nullcontext()
        with self._lock, torch.inference_mode(), device_scope:
            return self._predict(image, color_order, with_confidence, with_drivable_prob, t_start)

    def _predict(self, image: np.ndarray, color_order: str, with_confidence: bool, with_drivable_prob: bool,
                 t_start: float) -> Prediction:
        if color_order not in COLOR_ORDERS:
            raise ValueError(f"invalid color_order {color_order!r}; valid choices: {', '.join(COLOR_ORDERS)}")
        image = self._validate(image)
        single = image.ndim == 3
        batch = image[None] if single else image
        _, H, W, _ = batch.shape
        net_w, net_h = self.network_size(W, H)
        cuda = self.device.type == "cuda"
        if cuda:
            events = [torch.cuda.Event(enable_timing=True) for _ in range(3)]

        # ---- preprocess: uint8 upload, reorder, convert, resize, normalise (on device)
        if cuda:
            t_launch = time.perf_counter()
            events[0].record()  # GPU time from here covers the pinned staging copy and the upload
        x = self._prepare(batch, color_order, net_w, net_h)
        if cuda:
            events[1].record()
        else:
            t_pre = time.perf_counter()

        # ---- network
        logits = self._network(x)
        if cuda:
            events[2].record()
        else:
            t_net = time.perf_counter()

        # ---- postprocess: upsample logits, argmax / max-softmax on device, one copy back
        if logits.shape[-2:] != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False, antialias=False)
        if cuda:
            top, mask = logits.max(dim=1)
            mask = mask.to(torch.uint8)
            logits32 = logits.float()
        else:
            logits32 = logits.float().contiguous()  # class planes: per-class ops vectorise over pixels
            mask, top = _argmax_planes(logits32)
        outputs = {"mask": mask}
        if not cuda and (with_confidence or with_drivable_prob):
            confidence, drivable_prob = _softmax_planes(
                logits32, top, with_confidence, self.drivable_classes if with_drivable_prob else None)
            if confidence is not None:
                outputs["confidence"] = confidence
            if drivable_prob is not None:
                outputs["drivable_prob"] = drivable_prob
        elif with_confidence or with_drivable_prob:
            lse = torch.logsumexp(logits32, dim=1)
            if with_confidence:
                outputs["confidence"] = torch.exp(top.float() - lse)
            if with_drivable_prob:
                if len(self.drivable_classes) == 0:
                    outputs["drivable_prob"] = torch.zeros_like(lse)
                else:
                    drivable = logits32.index_select(1, self._drivable_index)
                    outputs["drivable_prob"] = torch.exp(torch.logsumexp(drivable, dim=1) - lse).clamp_(0, 1)
        if cuda:
            host = {k: v.to("cpu", non_blocking=True) for k, v in outputs.items()}
            done = torch.cuda.Event()
            done.record()
            done.synchronize()
        else:
            host = outputs
        result = {k: (v[0] if single else v).numpy() for k, v in host.items()}
        t_end = time.perf_counter()

        total_ms = (t_end - t_start) * 1e3
        if cuda:
            pre_ms = (t_launch - t_start) * 1e3 + events[0].elapsed_time(events[1])
            net_ms = events[1].elapsed_time(events[2])
        else:
            pre_ms = (t_pre - t_start) * 1e3
            net_ms = (t_net - t_pre) * 1e3
        timing = {"preprocess_ms": pre_ms, "inference_ms": net_ms,
                  "postprocess_ms": max(0.0, total_ms - pre_ms - net_ms), "total_ms": total_ms}
        return Prediction(mask=result["mask"], confidence=result.get("confidence"),
                          drivable_prob=result.get("drivable_prob"), timing=timing)
