"""``roadseg-demo``: see the whole pipeline run in one command, no robot or data needed.

camera_source (synthetic road scenes by default, or your video / image folder / recorded drive)
-> segmentation node (the bundled weights) -> recorder, all in this one process on a
MultiThreadedExecutor (``ros2 launch`` is not needed, so this also works where only the
ROS 2 Python wheels are installed). The topics go through the real ROS 2 middleware, so
what is measured is what a deployed graph would see. It stops by itself after
``--frames`` overlay frames and leaves under ``--output`` (default ``runs/demo``):

* ``overlay.mp4`` - the camera frames with the predicted classes blended in,
* ``snapshot_NNNN.png`` - a few of those frames as images,
* ``summary.json`` - frames, rate, latency percentiles, mean drivable ratio,
* ``demo.mcap`` - an MCAP recording of the graph (input image + camera_info, mask,
  overlay, drivable_area, drivable_grid, /diagnostics) for Foxglove
  (``config/roadseg.foxglove.json``) or ``ros2 bag play``; it plays back as a source too.

Examples::

    roadseg-demo                                   # 60 synthetic frames at 10 Hz
    roadseg-demo --source drive.mp4 --frames 200   # your own video
    roadseg-demo --source path/to/CameraRGB --rate 5 --device cuda
    roadseg-demo --source drive_bag/ --topic /front/image_raw --frames 0   # a rosbag2 recording (or .mcap)
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from roadseg_ros.config import ConfigError, add_runtime_arguments
from roadseg_ros.tools import ToolError, run_tool

#: Namespace of the demo's nodes (keeps its topics apart from a graph that is already running).
NAMESPACE = "/roadseg_demo"
#: The demo's MCAP recording under --output (open it in Foxglove with config/roadseg.foxglove.json).
DEMO_MCAP = "demo.mcap"
#: How long to wait for more frames once a non-looping source has ended.
IDLE_AFTER_SOURCE_END_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="roadseg-demo",
        description="Run camera -> road segmentation node -> recorder in one process and write an overlay "
                    "video, snapshots and summary.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", default="synthetic",
                   help="'synthetic', a video file, a folder of images (sorted by name), or a recording "
                        "(rosbag2 folder, .mcap; played at its recorded timing)")
    p.add_argument("--topic", default="", help="recording: its image topic (default: its only one)")
    p.add_argument("--frames", type=int, default=60,
                   help="stop after this many processed frames (0: until a video/folder ends)")
    p.add_argument("--rate", type=float, default=10.0, help="camera frame rate in Hz")
    p.add_argument("--width", type=int, default=0, help="camera image width (0: the source's own)")
    p.add_argument("--height", type=int, default=0, help="camera image height (0: the source's own)")
    p.add_argument("--output", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint file, or a bundled one's name such as fcn8s_lite0 "
                        "(default: the bundled roadseg_default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_runtime_arguments(p)
    p.add_argument("--snapshots", type=int, default=3, help="number of overlay PNG snapshots to save")
    p.add_argument("--lossless-recording", action="store_true",
                   help="store the input frames in demo.mcap as PNG instead of JPEG (larger; a replay then "
                        "reproduces the masks exactly)")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds (default: generous, from --frames and --rate)")
    p.add_argument("--verbose", action="store_true", help="show the nodes' info logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 on success, 2 on a configuration problem, 1 when the run fails (one error line)."""
    args = build_parser().parse_args(argv)
    return run_tool("roadseg-demo", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise ConfigError(f"--rate must be > 0, got {args.rate}")
    if args.frames < 0:
        raise ConfigError(f"--frames must be >= 0, got {args.frames}")
    if args.frames == 0 and args.source == "synthetic":
        raise ConfigError("--frames 0 (until the source ends) needs a video, image folder or recording: "
                          "the synthetic camera never ends")
    from roadseg_ros.config import resolve_weights

    weights = resolve_weights(args.weights)
    # Imports that pull in rclpy and torch come after the cheap checks.
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from tqdm import tqdm

    from roadseg_ros.nodes.camera_source import CameraSource
    from roadseg_ros.nodes.recorder import Recorder
    from roadseg_ros.nodes.segmentation_node import SegmentationNode
    from roadseg_ros.runtime import configure_process

    configure_process()   # three nodes share this process (and its GIL) with the inference worker
    output = args.output.expanduser()
    output.mkdir(parents=True, exist_ok=True)
    context = Context()
    rclpy.init(args=None if args.verbose else ["--ros-args", "--log-level", "warn"], context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    nodes = []
    spinner: threading.Thread | None = None
    try:
        camera = CameraSource(context=context, namespace=NAMESPACE, parameter_overrides=[
            Parameter("source", value=args.source), Parameter("rate_hz", value=float(args.rate)),
            Parameter("width", value=args.width), Parameter("height", value=args.height),
            Parameter("loop", value=False), Parameter("wait_for_subscribers", value=True),
            Parameter("frame_id", value="demo_camera"), Parameter("topic", value=args.topic)])
        nodes.append(camera)
        try:
            segmenter = SegmentationNode(context=context, namespace=NAMESPACE, parameter_overrides=[
                Parameter("weights", value=str(weights)), Parameter("device", value=args.device),
                Parameter("backend", value=args.backend), Parameter("precision", value=args.precision)])
        except ConfigError as exc:    # the weights, the device, the model: as the node reports them
            raise ConfigError(f"the segmentation node did not start: {exc}") from None
        except Exception as exc:  # anything else still gets one line, as a failure of the run
            raise ToolError(f"the segmentation node did not start: {exc}") from exc
        nodes.append(segmenter)
        snapshot_every = max(1, args.frames // args.snapshots) if args.snapshots > 0 and args.frames else 0
        recorder = Recorder(context=context, namespace=NAMESPACE, cli_args=[
            "--ros-args", *(arg for name in ("overlay", "drivable_area", "mask", "drivable_grid")
                            for arg in ("-r", f"{name}:={NAMESPACE}/roadseg/{name}"))], parameter_overrides=[
            Parameter("output_dir", value=str(output)), Parameter("max_frames", value=args.frames),
            Parameter("video_fps", value=float(args.rate)), Parameter("mcap_name", value=DEMO_MCAP),
            Parameter("input_format", value="png" if args.lossless_recording else "jpeg"),
            Parameter("snapshot_every", value=snapshot_every)])
        nodes.append(recorder)
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="roadseg-demo-executor", daemon=True)
        spinner.start()

        timeout = args.timeout if args.timeout is not None else 120.0 + 3.0 * (args.frames or 600) / args.rate
        start = time.monotonic()
        last_count, last_change = 0, start
        outcome = "ok"
        with tqdm(total=args.frames or None, unit="frame", desc="roadseg-demo", dynamic_ncols=True) as bar:
            while not recorder.done:
                now = time.monotonic()
                if recorder.frames != last_count:
                    bar.update(recorder.frames - last_count)
                    last_count, last_change = recorder.frames, now
                if camera.finished and now - max(last_change, start) > IDLE_AFTER_SOURCE_END_S:
                    outcome = "source_ended"
                    break
                if now - start > timeout:
                    outcome = "timeout"
                    break
                time.sleep(0.05)
            bar.update(recorder.frames - last_count)
        summary = recorder.close()
        if outcome == "timeout":
            raise ToolError(f"only {recorder.frames} of {args.frames} frames came through in {timeout:.0f} s "
                            f"(camera published {camera.frames_published}); the node may be too slow on this "
                            f"device or stuck: rerun with --verbose, fewer --frames or a higher --timeout")
        if recorder.frames == 0:
            raise ToolError(f"the source {args.source!r} ended before any frame was processed")
        seg = segmenter.segmenter
        _report(args, weights, output, summary, camera.source.kind,
                f"{seg.backend} {seg.precision} on {seg.device}")
        return 0
    except KeyboardInterrupt:
        for node in nodes:
            if isinstance(node, Recorder):
                node.close()
        print("roadseg-demo: interrupted; partial results in " + str(output), file=sys.stderr)
        return 130
    finally:
        executor.shutdown(timeout_sec=5.0)
        for node in nodes:
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
        if spinner is not None:
            spinner.join(timeout=5.0)


def _report(args: argparse.Namespace, weights: Path, output: Path, summary: dict, kind: str,
            runtime: str) -> None:
    def ms(stats: dict) -> str:
        return "n/a" if stats["p50"] is None else f"p50 {stats['p50']:.1f} ms, p90 {stats['p90']:.1f} ms"

    lat = summary["latency_ms"]
    rate = f"{summary['rate_hz']:.1f} Hz" if summary["rate_hz"] else "n/a"
    ratio = summary["mean_drivable_ratio"]
    lines = [
        f"roadseg-demo: {summary['frames']} frames from the {kind} camera ({args.source}) went through "
        f"{summary['model_name'] or 'the model'} ({weights}; {runtime})",
        f"  output rate {rate}; camera-to-overlay latency {ms(lat['stamp_to_overlay'])}; "
        f"node processing {ms(lat['node_total'])}",
        f"  mean drivable ratio {ratio:.3f}" if ratio is not None else "  mean drivable ratio n/a",
        f"  overlay video: {output / 'overlay.mp4'}",
        f"  summary:       {output / 'summary.json'}",
        f"  recording:     {output / DEMO_MCAP} (Foxglove: config/roadseg.foxglove.json)",
    ]
    if summary["snapshots"]:
        lines.append(f"  snapshots:     {', '.join(str(output / s) for s in summary['snapshots'])}")
    print("\n".join(lines))
    (output / "demo_args.json").write_text(json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
