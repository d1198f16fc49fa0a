"""``roadseg-infer``: segment an image, a folder of images or a video offline.

Writes, under ``--output``:

* for each image ``<name>.<ext>``: ``<name>_mask.png`` (class ids, one uint8 channel)
  and ``<name>_overlay.png`` (the image with the class colours blended in);
* for a video ``<name>.<ext>``: ``<name>_overlay.mp4`` (mp4v) and one class-id mask per
  frame in ``<name>_masks/<name>_<frame:06d>_mask.png``;
* for a recorded drive (a rosbag2 folder or a ``.mcap``/``.db3`` file): the same as for a
  video, from its image topic (``--topic``; Image or CompressedImage). A recording that
  turns out truncated or corrupt part-way keeps the frames before the problem.

Files that cannot be read are reported by name and skipped; the exit status is then 1.
Example::

    roadseg-infer data/frames --output out/ --device cuda --precision fp16
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from roadseg_ros.bags import is_bag
from roadseg_ros.checkpoint import CheckpointError
from roadseg_ros.config import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ConfigError,
    add_runtime_arguments,
    default_weights_path,
    resolve_weights,
    size_type,
)
from roadseg_ros.frames import FrameSource, SourceError, VideoReader, image_files
from roadseg_ros.inference import Segmenter
from roadseg_ros.tools import CONFIG_ERROR, FAILED, report
from roadseg_ros.visualize import overlay

logger = logging.getLogger("roadseg-infer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="roadseg-infer",
        description="Segment an image, a folder of images, a video or a recorded drive (rosbag2 folder, "
                    ".mcap or .db3 file); write masks and overlays.")
    parser.add_argument("input", type=Path,
                        help="image file, folder of images, video file, or rosbag2 recording (folder, "
                             ".mcap)")
    parser.add_argument("--topic", default="",
                        help="recording: the image topic (default: its only sensor_msgs/Image or "
                             "CompressedImage topic; several are listed)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="checkpoint file, or a bundled one's name such as fcn8s_lite0 "
                             f"(default: the bundled {default_weights_path()})")
    parser.add_argument("--output", "-o", type=Path, default=Path("roadseg_output"),
                        help="output folder (created; default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    add_runtime_arguments(parser)
    parser.add_argument("--input-size", type=size_type(), default=None, metavar="WxH",
                        help="network input size (default: the checkpoint's training size)")
    parser.add_argument("--keep-aspect", action=argparse.BooleanOptionalAction, default=True,
                        help="run the network at the input size's pixel count but each frame's "
                             "proportions, not squeezed into its shape (default: on, as the node)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is often faster on a busy CPU)")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="overlay colour weight (default: %(default)s)")
    parser.add_argument("--drivable-only", action="store_true",
                        help="tint only the drivable classes in the overlay")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _unique_stem(path: Path, used: set[str]) -> str:
    """Output name for ``path``: its stem, or ``stem_ext`` if two inputs share a stem."""
    stem = path.stem
    if stem in used:
        stem = f"{path.stem}_{path.suffix.lstrip('.')}"
        n = 1
        while stem in used:
            stem, n = f"{path.stem}_{path.suffix.lstrip('.')}_{n}", n + 1
    used.add(stem)
    return stem


def _collect_inputs(source: Path) -> tuple[list[Path], list[Path]]:
    """(images, videos) to process for an input path; raises FileNotFoundError/ValueError."""
    if source.is_dir():
        images = image_files(source)
        videos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not images and not videos:
            raise ValueError(f"{source}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                             f"or videos ({', '.join(sorted(VIDEO_EXTENSIONS))})")
        return images, videos
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    suffix = source.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return [], [source]
    if suffix in IMAGE_EXTENSIONS:
        return [source], []
    raise ValueError(f"{source}: unknown file type {suffix!r}; "
                     f"images: {', '.join(sorted(IMAGE_EXTENSIONS))}; "
                     f"videos: {', '.join(sorted(VIDEO_EXTENSIONS))}")


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise OSError(f"{path}: could not write the image")


class _Runner:
    """Holds the segmenter and the overlay settings shared by images and videos."""

    def __init__(self, seg: Segmenter, alpha: float, drivable_only: bool) -> None:
        self.seg = seg
        self.alpha = alpha
        self.classes = seg.drivable_classes if drivable_only else None
        self.frames = 0
        self.total_ms = 0.0

    def segment_bgr(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BGR frame -> (mask, BGR overlay)."""
        pred = self.seg.predict(frame, color_order="bgr", with_confidence=False)
        self.frames += 1
        self.total_ms += pred.timing["total_ms"]
        blend = overlay(frame, pred.mask, self.seg.class_colors, alpha=self.alpha, color_order="bgr",
                        classes=self.classes)
        return pred.mask, blend


def _process_images(runner: _Runner, images: list[Path], out_dir: Path, used: set[str], progress: bool,
                    failures: list[str]) -> None:
    for path in tqdm(images, desc="images", unit="img", disable=not progress):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            failures.append(f"{path}: cannot read the image (corrupt or unsupported format)")
            continue
        stem = _unique_stem(path, used)
        mask, blend = runner.segment_bgr(frame)
        _write_png(out_dir / f"{stem}_mask.png", mask)
        _write_png(out_dir / f"{stem}_overlay.png", blend)


def _process_stream(runner: _Runner, frames_in: Iterator[np.ndarray], path: Path, fps: float,
                    total: int | None, out_dir: Path, used: set[str], progress: bool) -> int:
    """Segment a stream of frames (a video, a recording): numbered masks and an overlay video."""
    writer = None
    frames = 0
    try:
        stem = _unique_stem(path, used)
        mask_dir = out_dir / f"{stem}_masks"
        mask_dir.mkdir(parents=True, exist_ok=True)
        video_path = out_dir / f"{stem}_overlay.mp4"
        with tqdm(total=total, desc=path.name, unit="frame", disable=not progress) as bar:
            for frame in frames_in:
                mask, blend = runner.segment_bgr(frame)
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise OSError(f"{video_path}: cannot open an mp4v video writer")
                writer.write(blend)
                _write_png(mask_dir / f"{stem}_{frames:06d}_mask.png", mask)
                frames += 1
                bar.update(1)
    finally:
        if writer is not None:
            writer.release()
    return frames


def _process_video(runner: _Runner, path: Path, out_dir: Path, used: set[str], progress: bool,
                   failures: list[str]) -> None:
    try:
        video = VideoReader(path)
    except SourceError as exc:
        failures.append(str(exc))
        return
    with video:
        frames = _process_stream(runner, iter(video), path, video.fps, video.frame_count, out_dir, used,
                                 progress)
    if frames == 0:
        failures.append(f"{path}: the video has no readable frames")


def _process_recording(runner: _Runner, source: FrameSource, out_dir: Path, used: set[str], progress: bool,
                       failures: list[str]) -> None:
    """A recorded drive: every frame of its image topic; a problem part-way keeps the frames before it."""
    bag = source.bag
    fps = (bag.count - 1) / (bag.duration_ns / 1e9) if bag.count > 1 and bag.duration_ns > 0 else 10.0
    try:
        _process_stream(runner, source.frames(), source.path, fps, bag.count, out_dir, used, progress)
    except SourceError as exc:
        failures.append(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 1 if some inputs failed, 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")

    try:
        weights = resolve_weights(args.weights)
    except ConfigError as exc:
        return report("roadseg-infer", exc, CONFIG_ERROR)
    recording: FrameSource | None = None
    images: list[Path] = []
    videos: list[Path] = []
    try:
        if is_bag(args.input) or args.topic:
            recording = FrameSource(str(args.input), loop=False, topic=args.topic)
        else:
            images, videos = _collect_inputs(args.input)
    except (FileNotFoundError, ValueError, SourceError) as exc:
        return report("roadseg-infer", exc, CONFIG_ERROR)
    try:
        seg = Segmenter(weights, device=args.device, precision=args.precision, backend=args.backend,
                        input_size=args.input_size, num_threads=args.threads, keep_aspect=args.keep_aspect)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
        return report("roadseg-infer", exc, CONFIG_ERROR)
    logger.info("%s from %s", seg, weights)

    args.output.mkdir(parents=True, exist_ok=True)
    runner = _Runner(seg, args.alpha, args.drivable_only)
    progress = not args.no_progress
    failures: list[str] = []
    used: set[str] = set()
    if images:
        _process_images(runner, images, args.output, used, progress, failures)
    for video in videos:
        _process_video(runner, video, args.output, used, progress, failures)
    if recording is not None:
        _process_recording(runner, recording, args.output, used, progress, failures)
    if runner.frames:
        logger.info("%d frame(s) segmented, %.1f ms/frame in predict; results in %s",
                    runner.frames, runner.total_ms / runner.frames, args.output)
    for failure in failures:
        print(f"roadseg-infer: skipped {failure}", file=sys.stderr)
    if failures:
        return report("roadseg-infer", f"{len(failures)} input(s) failed", FAILED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
