"""Segmenter: correctness against a plain reference, colour order, batching, sizes, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from roadseg_ros.checkpoint import Checkpoint, model_from_checkpoint, save_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.config import fit_aspect
from roadseg_ros.inference import Prediction, Segmenter, _argmax_planes
from roadseg_ros.models import build_model

NET_SIZE = (64, 48)  # (width, height) the test checkpoint "was trained at"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_checkpoint(seed: int = 0) -> Checkpoint:
    torch.manual_seed(seed)
    model = build_model("tiny_segnet", CAMVID11.num_classes)
    return Checkpoint(arch="tiny_segnet", arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors), drivable_classes=[3, 4],
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=NET_SIZE,
                      state_dict=model.state_dict(), training={"note": "random weights for tests"})


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory) -> Path:
    return save_checkpoint(make_checkpoint(), tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def seg(ckpt_path) -> Segmenter:
    return Segmenter(ckpt_path, device="cpu")


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful RGB test image: smooth gradients plus blocks, so masks are not uniform."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([255 * xx / max(1, width - 1), 255 * yy / max(1, height - 1),
                    127 + 127 * np.sin(xx / 5.0 + yy / 7.0)], axis=-1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def reference(ckpt: Checkpoint, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Straightforward float32 pipeline: mask, confidence, drivable probability."""
    model = model_from_checkpoint(ckpt)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(ckpt.mean).view(1, 3, 1, 1)) / torch.tensor(ckpt.std).view(1, 3, 1, 1)
    w, h = ckpt.input_size
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits = model(x)
    logits = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    prob = logits.softmax(1)[0]
    conf, mask = prob.max(0)
    drivable = prob[ckpt.drivable_classes].sum(0)
    return mask.numpy().astype(np.uint8), conf.numpy(), drivable.numpy()


@pytest.mark.parametrize("size", [(48, 64), (37, 53), (121, 157)])  # (H, W): equal, smaller, larger
def test_matches_plain_reference(seg, size):
    rgb = scene(*size)
    pred = seg.predict(rgb, with_drivable_prob=True)
    ref_mask, ref_conf, ref_drivable = reference(make_checkpoint(), rgb)
    assert len(np.unique(ref_mask)) > 1, "test image should give a non-trivial mask"
    assert (pred.mask == ref_mask).mean() > 0.999
    np.testing.assert_allclose(pred.confidence, ref_conf, atol=1e-4)
    np.testing.assert_allclose(pred.drivable_prob, ref_drivable, atol=1e-4)


def test_keep_aspect_runs_the_network_shaped_like_the_frame(ckpt_path):
    """keep_aspect: the checkpoint's pixel count, the frame's proportions; the same function as
    asking for that size outright, and results at the frame's own size."""
    fitted = Segmenter(ckpt_path, device="cpu", keep_aspect=True)
    w, h = NET_SIZE
    assert fitted.network_size(2 * w, 2 * h) == NET_SIZE               # same shape: unchanged
    wide = fitted.network_size(256, 48)                                # a 5.3:1 camera
    assert wide[0] > wide[1] and wide[0] % 32 == 0 and wide[1] % 32 == 0
    assert wide == fit_aspect(NET_SIZE, (256, 48))
    explicit = Segmenter(ckpt_path, device="cpu", input_size=wide)
    assert explicit.network_size(256, 48) == wide and not explicit.keep_aspect
    image = scene(48, 256, seed=3)
    a, b = fitted.predict(image), explicit.predict(image)
    assert a.mask.shape == (48, 256)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    plain = Segmenter(ckpt_path, device="cpu").predict(image)   # squeezed to NET_SIZE: another function
    assert not np.allclose(plain.confidence, a.confidence, atol=1e-3)


def test_rgb_and_bgr_give_same_mask(seg):
    rgb = scene(45, 71, seed=1)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    a = seg.predict(rgb, color_order="rgb")
    b = seg.predict(bgr, color_order="bgr")
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    # and the colour order really matters: misreading BGR as RGB changes the result
    wrong = seg.predict(bgr, color_order="rgb")
    assert not np.array_equal(wrong.confidence, a.confidence)


def test_batch_equals_one_by_one(seg):
    images = np.stack([scene(33, 47, seed=s) for s in range(3)])
    batch = seg.predict(images, with_drivable_prob=True)
    assert batch.mask.shape == (3, 33, 47) and batch.confidence.shape == (3, 33, 47)
    assert batch.drivable_prob.shape == (3, 33, 47)
    for i, image in enumerate(images):
        single = seg.predict(image, with_drivable_prob=True)
        np.testing.assert_array_equal(batch.mask[i], single.mask)
        np.testing.assert_allclose(batch.confidence[i], single.confidence, atol=1e-5)
        np.testing.assert_allclose(batch.drivable_prob[i], single.drivable_prob, atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (37, 53), (101, 67)])
def test_outputs_at_input_size_and_valid(seg, size):
    pred = seg.predict(scene(*size), with_drivable_prob=True)
    assert isinstance(pred, Prediction)
    assert pred.mask.shape == size and pred.mask.dtype == np.uint8
    assert pred.mask.max() < seg.num_classes
    for prob in (pred.confidence, pred.drivable_prob):
        assert prob.shape == size and prob.dtype == np.float32
        assert np.all(prob >= 0) and np.all(prob <= 1)
    assert np.all(pred.confidence >= 1.0 / seg.num_classes - 1e-6)  # max of a softmax


def test_optional_outputs_and_timing(seg):
    pred = seg.predict(scene(40, 50), with_confidence=False)
    assert pred.confidence is None and pred.drivable_prob is None
    t = pred.timing
    assert set(t) == {"preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"}
    assert all(v >= 0 for v in t.values())
    parts = t["preprocess_ms"] + t["inference_ms"] + t["postprocess_ms"]
    assert parts == pytest.approx(t["total_ms"], rel=1e-6)


def test_non_contiguous_input(seg):
    big = scene(80, 120, seed=3)
    views = [big[::2, ::2], big[10:50, 20:90], big[:, ::-1], big[..., ::-1]]
    for view in views:
        assert not view.flags.c_contiguous
        np.testing.assert_array_equal(seg.predict(view).mask, seg.predict(np.ascontiguousarray(view)).mask)


def test_metadata_and_checkpoint_object(ckpt_path):
    ckpt = make_checkpoint()
    seg = Segmenter(ckpt, device="cpu", input_size=(32, 24), warmup=False)
    assert seg.weights_path is None and seg.model_name == "tiny_segnet"
    assert seg.input_size == (32, 24) and seg.precision == "fp32" and seg.device == torch.device("cpu")
    assert seg.class_names == list(CAMVID11.class_names) and seg.drivable_classes == [3, 4]
    assert seg.class_colors[3] == CAMVID11.class_colors[3]
    assert seg.predict(scene(30, 41)).mask.shape == (30, 41)
    from_path = Segmenter(ckpt_path, device="cpu", warmup=False)
    assert from_path.weights_path == ckpt_path and from_path.input_size == NET_SIZE


@pytest.mark.parametrize("bad, message", [
    (np.zeros((20, 30, 3), np.float32), "uint8"),
    (np.zeros((20, 30, 3), np.uint16), "uint8"),
    (np.zeros((20, 30, 4), np.uint8), "3 colour channels"),
    (np.zeros((20, 30, 1), np.uint8), "3 colour channels"),
    (np.zeros((20, 30), np.uint8), "dimensions"),
    (np.zeros((1, 2, 20, 30, 3), np.uint8), "dimensions"),
    (np.zeros((0, 30, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_input_is_a_clear_value_error(seg, bad, message):
    with pytest.raises(ValueError, match=message):
        seg.predict(bad)


def test_bad_color_order(seg):
    with pytest.raises(ValueError, match="color_order 'hsv'.*rgb, bgr"):
        seg.predict(scene(10, 10), color_order="hsv")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_explicit_cuda_without_cuda_fails_clearly(ckpt_path, device):
    with pytest.raises(RuntimeError, match=f"'{device}'.*CUDA is not available"):
        Segmenter(ckpt_path, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_falls_back_to_cpu_with_warning(ckpt_path, caplog):
    with caplog.at_level(logging.WARNING, logger="roadseg_ros.inference"):
        seg = Segmenter(ckpt_path, device="auto", warmup=False)
    assert seg.device.type == "cpu"
    assert any("CUDA is not available" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_invalid_device_names(ckpt_path, device):
    with pytest.raises(ValueError, match="device"):
        Segmenter(ckpt_path, device=device)


def test_fp16_on_cpu_is_refused(ckpt_path):
    with pytest.raises(ValueError, match="'fp16' is not supported on the CPU"):
        Segmenter(ckpt_path, device="cpu", precision="fp16")


def test_invalid_precision(ckpt_path):
    with pytest.raises(ValueError, match="precision 'int4'.*auto, fp32, fp16, bf16, int8"):
        Segmenter(ckpt_path, device="cpu", precision="int4")


def test_a_precision_torch_cannot_run_falls_back_with_a_reason(ckpt_path, seg, caplog):
    with caplog.at_level(logging.WARNING, logger="roadseg_ros"):
        torch_int8 = Segmenter(ckpt_path, device="cpu", precision="int8")
    assert (torch_int8.backend, torch_int8.precision) == ("torch", "fp32")
    assert "precision int8 is not supported by torch on cpu" in torch_int8.backend_reason
    assert any("int8" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    rgb = scene(48, 64, seed=5)
    assert np.array_equal(torch_int8.predict(rgb).mask, seg.predict(rgb).mask)


def test_bf16_on_cpu(ckpt_path, seg):
    bf16 = Segmenter(ckpt_path, device="cpu", precision="bf16")
    rgb = scene(48, 64, seed=5)
    pred = bf16.predict(rgb)
    assert pred.mask.shape == (48, 64) and pred.confidence.dtype == np.float32
    assert (pred.mask == seg.predict(rgb).mask).mean() > 0.8  # bf16 has ~3 significant digits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_matches_cpu(ckpt_path, seg, precision):
    gpu = Segmenter(ckpt_path, device="cuda", precision=precision)
    rgb = scene(75, 99, seed=6)
    assert (gpu.predict(rgb, color_order="rgb").mask == seg.predict(rgb).mask).mean() > 0.98
    batch = np.stack([rgb, rgb[..., ::-1]])
    out = gpu.predict(batch, color_order="bgr")
    np.testing.assert_array_equal(out.mask[1], gpu.predict(rgb).mask)


def test_argmax_planes_matches_torch_including_ties():
    logits = torch.randn(2, 11, 13, 17)
    logits[0, :, 0, 0] = 1.0  # all tied: first index wins, as with argmax
    logits[1, 4, 2, 3] = logits[1, 7, 2, 3] = 50.0
    index, top = _argmax_planes(logits)
    ref_top, ref_index = logits.max(dim=1)
    assert index.dtype == torch.uint8
    torch.testing.assert_close(index.long(), logits.argmax(dim=1))
    torch.testing.assert_close(index.long(), ref_index)
    torch.testing.assert_close(top, ref_top)
    assert index[0, 0, 0] == 0 and index[1, 2, 3] == 4
