"""Segmenter on CUDA: what only a GPU can show (skipped without one).

These run in the GPU check (``benchmarks/gpu_check.py``'s ``cuda_tests`` stage selects the
tests with ``cuda`` in their names, so every test of this module). The node calls
``predict`` from a worker thread, whose current CUDA device is cuda:0 whatever the
Segmenter's device is; the timing events and the final synchronisation must still follow
the Segmenter's own device.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from roadseg_ros.inference import Segmenter

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SIZE = (96, 64)  # (width, height) of the test checkpoint's network


@pytest.fixture(scope="module")
def weights(tmp_path_factory, save_tiny_checkpoint):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("cuda") / "tiny.pt", SIZE)


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (75, 130, 3), dtype=np.uint8)


def in_thread(seg: Segmenter, image: np.ndarray):
    """``seg.predict(image)`` from a fresh thread, as the node's worker calls it."""
    out = {}
    worker = threading.Thread(target=lambda: out.update(pred=seg.predict(image)))
    worker.start()
    worker.join(timeout=120)
    assert "pred" in out, "predict did not finish in the worker thread"
    return out["pred"]


def test_cuda_predict_in_a_worker_thread_matches_the_cpu(weights):
    gpu = Segmenter(weights, device="cuda")
    cpu = Segmenter(weights, device="cpu")
    image = frame(1)
    pred = in_thread(gpu, image)
    assert (pred.mask == cpu.predict(image).mask).mean() > 0.98
    np.testing.assert_array_equal(pred.mask, gpu.predict(image).mask)


def test_cuda_timing_covers_the_call(weights):
    gpu = Segmenter(weights, device="cuda", precision="fp16")
    timing = gpu.predict(frame(2)).timing
    assert timing["inference_ms"] > 0 and timing["preprocess_ms"] > 0
    parts = timing["preprocess_ms"] + timing["inference_ms"] + timing["postprocess_ms"]
    assert parts == pytest.approx(timing["total_ms"], rel=0.05, abs=0.5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_cuda_second_gpu_from_a_thread_on_the_first(weights):
    gpu1 = Segmenter(weights, device="cuda:1")
    cpu = Segmenter(weights, device="cpu")
    image = frame(3)
    torch.cuda.set_device(0)
    pred = in_thread(gpu1, image)
    assert (pred.mask == cpu.predict(image).mask).mean() > 0.98
    assert pred.timing["inference_ms"] > 0
