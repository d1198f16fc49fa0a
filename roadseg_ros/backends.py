"""Where the network runs: eager PyTorch, OpenVINO or ONNX Runtime, behind one call.

:class:`~roadseg_ros.inference.Segmenter` does its pre- and post-processing in torch
whatever the runtime, and hands the normalised ``[N,3,H,W]`` float32 batch to a
*network* from :func:`build_network`; it gets ``[N,C,H,W]`` float32 logits back. So the
mask, overlay, confidence, drivable analysis and grid downstream are the same code for
every backend; only the convolutions run elsewhere.

Why several runtimes: on a CPU, eager PyTorch leaves most of the machine unused. OpenVINO
compiles the graph for the CPU it finds (AVX-512 VNNI / BF16 / AMX kernels, fused
operators) and runs in bf16 or int8 where the CPU has instructions for them (measured
figures: README "Runtimes"). On CUDA the torch path stays until the GPU check has
measured something better.

* **Conversion at load time, from the same checkpoint**: the torch module is traced at
  each network shape it meets (``N x H x W``) and converted with ``openvino.convert_model``
  (or exported to ONNX). Per shape, because a trace bakes in the sizes it was traced at
  (the TF-style padding, PSP's pooling matrices) and because a static shape compiles to
  faster code than a dynamic one. The converted graph is cached on disk (``cache_dir``,
  default ``$XDG_CACHE_HOME/roadseg_ros``) keyed by the weights' digest, the shape and
  the runtime's version, so a second start skips the trace; a cache file that does not
  load is said in one line and converted again.
* **int8** needs calibration (``roadseg-quantize``, NNCF): its result is a small file of
  quantisation ranges bound to the checkpoint's digest (:mod:`roadseg_ros.quantization`),
  inserted into the graph of every shape, so a new camera size needs no calibration data.
* **Choice** (:func:`choose`): ``auto`` picks by device, by what is installed and by the
  CPU's instruction set, and says why; a runtime that is missing, a precision it cannot
  run or a model that will not convert is one warning line and a fallback (torch, or the
  same runtime at a precision it can run), never a crash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from roadseg_ros.config import BACKENDS, PRECISIONS, one_line

__all__ = ["BackendError", "Choice", "cpu_features", "runtime_missing", "choose", "weights_digest",
           "default_cache_dir", "build_network", "Network", "TorchNetwork", "OpenVINONetwork",
           "OnnxRuntimeNetwork", "export_onnx_graph", "TORCH_DTYPES"]

logger = logging.getLogger(__name__)

#: The torch dtype of each precision the torch backend runs.
TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: What each runtime can run, by device type ("cuda" runtimes other than torch are not offered
#: until the GPU check has measured them).
SUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "torch": {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")},
    "openvino": {"cpu": ("fp32", "bf16", "int8")},
    "onnxruntime": {"cpu": ("fp32",)},
}
_RUNTIME_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


class BackendError(RuntimeError):
    """A runtime cannot run this model here; the text is one line naming why."""


@dataclass(frozen=True)
class Choice:
    """The runtime and precision a Segmenter uses, and the one line that says why."""

    backend: str
    precision: str
    reason: str
    #: True when something asked for could not be honoured (the reason says what): logged as a warning.
    fallback: bool = False


# ----------------------------------------------------------------------------- what is here
@lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU's instruction-set flags that decide a precision (``/proc/cpuinfo``; empty elsewhere)."""
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile"}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(set(line.split(":", 1)[1].split()) & wanted)
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (else bf16 is emulated and slower than fp32)."""
    return bool(cpu_features() & {"avx512_bf16", "amx_bf16"})


def native_int8() -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI / AMX)."""
    return bool(cpu_features() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def runtime_missing(backend: str) -> str | None:
    """Why ``backend`` cannot be imported here (``None`` when it can); one line."""
    module = _RUNTIME_MODULES.get(backend)
    if module is None:
        return None
    try:
        __import__(module)
    except Exception as exc:  # ImportError, or a broken install raising anything on import
        return f"{backend} is not usable here ({type(exc).__name__}: {one_line(exc)})"
    return None


def _flags_text() -> str:
    return ", ".join(sorted(cpu_features())) or "none of avx512_bf16/avx512_vnni/amx found"


def choose(backend: str, precision: str, device: torch.device, *, int8_ready: str | None = None) -> Choice:
    """The runtime and precision for a request, with the reason (logged by the caller).

    ``int8_ready``: ``None`` when a calibrated int8 model of this checkpoint is at hand
    (and proven within the accuracy limits), else why not. Invalid names raise
    ``ValueError``; everything else that cannot be honoured falls back with a reason:
    an unavailable runtime to torch, an unsupported precision to the runtime's best.
    """
    if backend not in BACKENDS:
        raise ValueError(f"invalid backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"invalid precision {precision!r}; valid choices: {', '.join(PRECISIONS)}")
    kind = device.type
    notes: list[str] = []
    fallback = False
    if backend == "auto":
        if kind != "cpu":
            backend = "torch"
            notes.append(f"auto on {kind}: torch (other runtimes are not measured on {kind} yet)")
        else:
            for candidate in ("openvino", "onnxruntime"):
                missing = runtime_missing(candidate)
                if missing is None:
                    backend = candidate
                    notes.append(f"auto on cpu: {candidate}")
                    break
                notes.append(missing)
            else:
                backend = "torch"
                notes.append("auto on cpu: torch")
    elif backend != "torch":
        missing = runtime_missing(backend)
        if missing is not None:
            notes.append(f"{missing}; using torch")
            backend, fallback = "torch", True
        elif kind not in SUPPORTED[backend]:
            notes.append(f"backend {backend} is not offered on {kind} (not measured there); using torch")
            backend, fallback = "torch", True
    supported = SUPPORTED[backend][kind]
    if precision == "auto":
        precision = _auto_precision(backend, kind, int8_ready, notes)
    elif precision not in supported:
        fallback_precision = _auto_precision(backend, kind, int8_ready, [])
        if backend == "torch" and kind == "cpu" and precision == "fp16":
            raise ValueError("precision 'fp16' is not supported on the CPU (half-precision convolutions are "
                             "slow or missing there); use 'fp32', 'bf16' or 'auto' on device 'cpu'")
        notes.append(f"precision {precision} is not supported by {backend} on {kind} "
                     f"(supported: {', '.join(supported)}); using {fallback_precision}")
        precision, fallback = fallback_precision, True
    elif precision == "int8" and int8_ready is not None:
        fallback_precision = _auto_precision(backend, kind, int8_ready, [])
        notes.append(f"int8: {int8_ready}; using {fallback_precision}")
        precision, fallback = fallback_precision, True
    return Choice(backend, precision, "; ".join(notes) or f"{backend} {precision} as asked", fallback)


def _auto_precision(backend: str, kind: str, int8_ready: str | None, notes: list[str]) -> str:
    """The fastest precision whose accuracy is shown (README "Runtimes") for this runtime here."""
    if backend == "torch":
        precision = "fp16" if kind == "cuda" else "fp32"
        notes.append(f"precision auto: {precision}")
        return precision
    if backend == "openvino":
        if native_bf16():
            notes.append(f"precision auto: bf16 (the CPU has {_flags_text()})")
            return "bf16"
        if native_int8() and int8_ready is None:
            notes.append(f"precision auto: int8 (calibrated model found; the CPU has {_flags_text()})")
            return "int8"
        why = int8_ready if native_int8() else f"the CPU has no bf16/int8 instructions ({_flags_text()})"
        notes.append(f"precision auto: fp32 ({why})")
        return "fp32"
    notes.append("precision auto: fp32")
    return "fp32"


# ----------------------------------------------------------------------------- caches
def weights_digest(state_dict: dict[str, torch.Tensor], arch: str, arch_kwargs: dict | None = None) -> str:
    """A SHA-256 of the network's architecture and weights: what a converted graph or a
    calibration is bound to (the same weights saved to another file keep their digest)."""
    h = hashlib.sha256(f"{arch}|{sorted((arch_kwargs or {}).items())!r}".encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(f"|{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        h.update(tensor.float().numpy().tobytes() if tensor.is_floating_point() else tensor.numpy().tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$ROADSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/roadseg_ros``, else ``~/.cache/roadseg_ros``."""
    if os.environ.get("ROADSEG_CACHE_DIR"):
        return Path(os.environ["ROADSEG_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "roadseg_ros"


def _replace_atomically(write: Callable[[Path], None], path: Path, companions: tuple[str, ...] = ()) -> None:
    """Write through ``write(tmp)`` then rename, so a reader never sees half a cache file.

    ``companions``: suffixes of files ``write`` puts beside it (OpenVINO's ``.bin`` beside
    the ``.xml``); they are renamed first, so the main file appears last, complete.
    """
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        write(tmp)
        for suffix in companions:
            os.replace(tmp.with_suffix(suffix), path.with_suffix(suffix))
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, *(tmp.with_suffix(sfx) for sfx in companions)):
            leftover.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- networks
class Network:
    """A network callable: normalised ``[N,3,H,W]`` batch -> float32 logits ``[N,C,H,W]``.

    ``input_dtype`` is the dtype the pre-processing should produce. Subclasses run the
    same fused float32 module in another runtime, one compiled graph per input shape.
    """

    backend = "torch"

    def __init__(self, precision: str, input_dtype: torch.dtype) -> None:
        self.precision = precision
        self.input_dtype = input_dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes compiled so far (torch: none, it needs none)."""
        return []


class TorchNetwork(Network):
    """Eager PyTorch (optionally ``torch.compile``d): the module itself, cast to the precision."""

    def __init__(self, module: nn.Module, precision: str, compile: bool | str = False) -> None:
        super().__init__(precision, TORCH_DTYPES[precision])
        self.module = module.to(dtype=self.input_dtype, memory_format=torch.channels_last)
        self._forward = self.module
        if compile:
            self._forward = torch.compile(self.module, mode=compile if isinstance(compile, str) else None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from roadseg_ros.models import main_output
        return main_output(self._forward(x))


class _PerShapeNetwork(Network):
    """Shared part of the converted runtimes: a compiled graph per input shape, converted once
    per shape (or read from the cache), under a lock so two threads never convert twice."""

    suffix = ""
    companions: tuple[str, ...] = ()

    def __init__(self, module: nn.Module, precision: str, *, digest: str, num_threads: int,
                 cache_dir: Path | None, version: str) -> None:
        super().__init__(precision, torch.float32)
        self.module = module.float().eval()
        self.digest = digest
        self.num_threads = max(1, int(num_threads))
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.version = version
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._lock = threading.Lock()

    def shapes(self) -> list[tuple[int, ...]]:
        return sorted(self._compiled)

    def cache_path(self, shape: tuple[int, ...], tag: str = "fp32") -> Path:
        n, c, h, w = shape
        name = f"{self.digest[:20]}-{n}x{c}x{h}x{w}-{tag}-{self.backend}{self.version}{self.suffix}"
        return self.cache_dir / name

    def _trace_input(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.float32)

    def compiled(self, shape: tuple[int, ...]) -> Any:
        """The compiled graph for ``shape``, converting (or loading from the cache) on first use."""
        graph = self._compiled.get(shape)
        if graph is None:
            with self._lock:
                graph = self._compiled.get(shape)
                if graph is None:
                    graph = self._compiled[shape] = self._prepare(shape)
        return graph

    def _prepare(self, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def _cached(self, path: Path, load: Callable[[Path], Any], make: Callable[[Path], None]) -> Any:
        """``load(path)`` if a usable cache file is there, else ``make`` it (atomically) and load."""
        if path.exists():
            try:
                return load(path)
            except Exception as exc:
                logger.warning("cache file %s does not load (%s): converting again", path,
                               f"{type(exc).__name__}: {one_line(exc)}"[:300])
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _replace_atomically(make, path, self.companions)
        except OSError as exc:
            # An unwritable cache costs a conversion per start, nothing else.
            logger.warning("cannot write the conversion cache %s (%s): converting in memory", path,
                           one_line(exc))
            tmp_dir = Path(_tempdir())
            path = tmp_dir / path.name
            make(path)
        return load(path)


def _tempdir() -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="roadseg_ros-")


class OpenVINONetwork(_PerShapeNetwork):
    """OpenVINO on the CPU: fp32, bf16 (an inference-precision hint) or int8 (quantisation
    ranges from :mod:`roadseg_ros.quantization` inserted into each shape's graph)."""

    backend = "openvino"
    suffix = ".xml"
    companions = (".bin",)

    def __init__(self, module: nn.Module, precision: str, *, digest: str, num_threads: int,
                 cache_dir: Path | None, int8_ranges: Any = None) -> None:
        import openvino as ov
        super().__init__(module, precision, digest=digest, num_threads=num_threads, cache_dir=cache_dir,
                         version=ov.__version__.split("-")[0])
        if precision == "int8" and int8_ranges is None:
            raise BackendError("int8 needs the calibrated ranges of this checkpoint (roadseg-quantize)")
        self._ov = ov
        self._core = ov.Core()
        self.int8_ranges = int8_ranges
        self._requests: dict[tuple[int, ...], Any] = {}

    def config(self) -> dict[str, Any]:
        """The compile settings: one stream, ``num_threads`` threads, latency first; bf16 as a hint."""
        cfg: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                               "INFERENCE_NUM_THREADS": self.num_threads,
                               "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32"}
        return cfg

    def convert(self, shape: tuple[int, ...]) -> Any:
        """The float32 ``ov.Model`` of the module traced at ``shape`` (no cache)."""
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the sizes baked in are this shape's
            return self._ov.convert_model(_LogitsOnly(self.module), example_input=self._trace_input(shape))

    def _prepare(self, shape: tuple[int, ...]) -> Any:
        ov = self._ov

        def make_fp32(path: Path) -> None:
            ov.save_model(self.convert(shape), str(path), compress_to_fp16=False)

        fp32_path = self.cache_path(shape, "fp32")
        model = self._cached(fp32_path, lambda p: _read_ov(self._core, p), make_fp32)
        if self.precision == "int8":
            from roadseg_ros.quantization import insert_ranges
            model = insert_ranges(model, self.int8_ranges)
        # The batch arrives channels-last (the layout an HxWx3 image has, kept by the pre-processing):
        # let OpenVINO take NHWC and fold the transpose into its first operator, instead of a copy here.
        ppp = ov.preprocess.PrePostProcessor(model)
        ppp.input().tensor().set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        model = ppp.build()
        try:
            compiled = self._core.compile_model(model, "CPU", self.config())
        except Exception as exc:
            raise BackendError(f"openvino cannot compile {self.precision} at {shape}: "
                               f"{one_line(exc)}") from None
        return compiled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (``[N,3,H,W]``, any memory layout). The returned tensor is OpenVINO's own
        output buffer, valid until this network's next call: Segmenter finishes with it first
        (one predict at a time), which saves copying the largest array of a frame."""
        shape = tuple(x.shape)
        request = self._requests.get(shape)
        if request is None:
            request = self._requests[shape] = self.compiled(shape).create_infer_request()
        data = x.detach().float().permute(0, 2, 3, 1).contiguous().numpy()   # a view when channels-last
        request.infer({0: data}, share_inputs=True, share_outputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data)


def _read_ov(core: Any, path: Path) -> Any:
    if not path.with_suffix(".bin").exists():
        raise FileNotFoundError(f"{path.with_suffix('.bin').name} is missing")
    return core.read_model(str(path))


class OnnxRuntimeNetwork(_PerShapeNetwork):
    """ONNX Runtime's CPU provider, float32: the graph exported per shape, fully optimised."""

    backend = "onnxruntime"
    suffix = ".onnx"

    def __init__(self, module: nn.Module, precision: str, *, digest: str, num_threads: int,
                 cache_dir: Path | None) -> None:
        import onnxruntime as ort
        super().__init__(module, precision, digest=digest, num_threads=num_threads, cache_dir=cache_dir,
                         version=ort.__version__)
        self._ort = ort

    def _prepare(self, shape: tuple[int, ...]) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

        def load(path: Path) -> Any:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def make(path: Path) -> None:
            export_onnx_graph(self.module, self._trace_input(shape), path, dynamic=False)

        return self._cached(self.cache_path(shape), load, make)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        session = self.compiled(tuple(x.shape))
        data = x.detach().float().contiguous().numpy()
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: data})[0])


class _LogitsOnly(nn.Module):
    """The module as a graph with one output: the main logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from roadseg_ros.models import main_output
        return main_output(self.model(x))


def export_onnx_graph(model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int = 17,
                      dynamic: bool = False) -> None:
    """Write ``model``'s logits graph traced at ``example`` to ``path`` (ONNX, legacy exporter).

    The legacy (TorchScript) exporter: it needs no onnxscript and handles every registry model.
    ``dynamic`` names batch, height and width as dynamic axes (which a trace does not always honour).
    """
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer warnings
        torch.onnx.export(_LogitsOnly(model).eval(), (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": axes, "logits": axes} if dynamic else None)


def build_network(choice: Choice, module: nn.Module, *, digest: str, num_threads: int,
                  cache_dir: Path | None = None, int8_ranges: Any = None, compile: bool | str = False,
                  probe_shape: tuple[int, ...] | None = None) -> tuple[Network, Choice]:
    """The network for ``choice``; when the runtime fails on this model (conversion, compile),
    one warning line and the torch network instead, with the choice amended to say so.

    ``probe_shape``: a shape to convert and compile now, so a model the runtime cannot
    take fails here (at start-up) rather than on the first frame.
    """
    if choice.backend == "torch":
        return TorchNetwork(module, choice.precision, compile=compile), choice
    try:
        if choice.backend == "openvino":
            net: Network = OpenVINONetwork(module, choice.precision, digest=digest, num_threads=num_threads,
                                           cache_dir=cache_dir, int8_ranges=int8_ranges)
        else:
            net = OnnxRuntimeNetwork(module, choice.precision, digest=digest, num_threads=num_threads,
                                     cache_dir=cache_dir)
        if probe_shape is not None:
            net.compiled(tuple(probe_shape))
        return net, choice
    except Exception as exc:
        text = f"{choice.backend} cannot run this model ({type(exc).__name__}: {one_line(exc)})"[:400]
        fallback = "fp32"  # torch's bf16 on a CPU is no faster than its fp32: the safe one
        amended = Choice("torch", fallback, f"{choice.reason}; {text}; using torch {fallback}", True)
        return TorchNetwork(module, fallback, compile=compile), amended
