#!/usr/bin/env python3
"""Fetch, on this machine, the Python wheels the GPU machine lacks, packed to travel with a call.

The lent GPU machine reaches no package registry. Its image has Python 3.12 with torch
(CUDA), onnx, onnxruntime, OpenCV, pytest and more, but no ROS 2 and none of colcon's
build tools; its ``python3`` is not this project's pinned 3.11. So this script takes the
project's pins (``requirements.txt``), leaves out what that image already holds and what
the check does not need there (torch and the CUDA libraries, CARLA, ruff), downloads the
rest for CPython 3.12 on x86-64 Linux, and packs them into ``.whl/roadseg_gpu_wheels.tar.xz``
(``.whl/`` is git-ignored) for ``benchmarks/gpu_check.sh`` to install there.

Why one ``.tar.xz`` of uncompressed wheels rather than the wheels themselves: a call
carries at most 64 MiB, repository included, and the ROS 2 wheels alone are about 47 MiB
as downloaded (zip-deflated). Stored uncompressed and then xz-compressed together they
take about a third of that, which leaves room for the EfficientNet weights package and the
repository. Each wheel stays a valid wheel (a zip with stored members).

    ./dev.sh run python benchmarks/gpu_wheels.py          # ~1-3 min; writes .whl/roadseg_gpu_wheels.tar.xz

Sdist-only pure-Python packages (e.g. ``empy``) are built into ``py3-none-any`` wheels
here; a package that would need compiling is an error naming it, never a wheel for the
wrong Python.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = "roadseg_gpu_wheels.tar.xz"
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
#: Requirements the device image already has (the device tool's KINDS.md package list, read
#: 2026-11-17). The bootstrap checks again on the machine itself and installs only what is missing.
DEVICE_HAS = frozenset({
    "absl-py", "coverage", "filelock", "flatbuffers", "fsspec", "grpcio", "iniconfig", "jinja2", "markdown",
    "markupsafe", "ml-dtypes", "mpmath", "networkx", "numpy", "onnx", "onnxruntime", "opencv-python-headless",
    "packaging", "pillow", "pluggy", "protobuf", "pygments", "pyparsing", "pytest", "pytest-cov",
    "python-dateutil", "pyyaml", "sympy", "tensorboard", "tensorboard-data-server", "tqdm",
    "typing-extensions", "werkzeug",
})
#: Never carried: the image's own torch/CUDA stack must not be shadowed, and these are not used there.
NOT_NEEDED = frozenset({"torch", "torchvision", "triton", "carla", "ruff"})
NOT_NEEDED_PREFIXES = ("nvidia-", "cuda-")
#: What one device call may carry in all, repository included.
CARRY_LIMIT = 64 * 2**20


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted(requirements: Path) -> list[str]:
    """``name==version`` pins from ``requirements`` that the device needs and lacks."""
    pins = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise SystemExit(f"gpu_wheels: {requirements}: {line!r} is not pinned (NAME==VERSION)")
        name = normalise(line.split("==", 1)[0])
        if name in DEVICE_HAS or name in NOT_NEEDED or name.startswith(NOT_NEEDED_PREFIXES):
            continue
        pins.append(line)
    return pins


def download(pins: list[str], dest: Path) -> None:
    """Download every pin for the device's Python and platform (wheels, else the sdist)."""
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
           "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platform_args, "-d", str(dest),
           *pins]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"gpu_wheels: pip download failed:\n{proc.stderr.strip()[-2000:]}")


def build_sdists(folder: Path) -> None:
    """Turn downloaded sdists into wheels; only pure-Python (``none-any``) results are accepted."""
    for sdist in sorted([*folder.glob("*.tar.gz"), *folder.glob("*.zip")]):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
                   "-w", tmp, str(sdist)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            built = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or len(built) != 1:
                raise SystemExit(f"gpu_wheels: could not build {sdist.name} into a wheel:\n"
                                 f"{proc.stderr[-1500:]}")
            if not built[0].name.endswith("-none-any.whl"):
                raise SystemExit(f"gpu_wheels: {sdist.name} builds a platform wheel ({built[0].name}); it "
                                 f"cannot be built here for Python {DEVICE_PYTHON}: find a cp312 wheel")
            shutil.move(str(built[0]), folder / built[0].name)
        sdist.unlink()


def restore_uncompressed(wheel: Path) -> None:
    """Rewrite a wheel with stored (uncompressed) members, so xz compresses across all of them."""
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    tmp.replace(wheel)


def travel_size(extra: Path) -> int:
    """Bytes a device call would send: tracked and untracked-not-ignored files, plus ``extra``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    total = extra.stat().st_size
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl",
                        help="folder to write into (default: .whl)")
    args = parser.parse_args(argv)

    pins = wanted(args.requirements)
    print(f"gpu_wheels: {len(pins)} packages for CPython {DEVICE_PYTHON} (x86-64 Linux) ...", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_wheels_") as tmp:
        folder = Path(tmp) / "wheels"
        folder.mkdir()
        download(pins, folder)
        build_sdists(folder)
        wheels = sorted(folder.glob("*.whl"))
        names = {normalise(w.name.split("-")[0]) for w in wheels}
        missing = [p for p in pins if normalise(p.split("==")[0]) not in names]
        if missing:
            raise SystemExit(f"gpu_wheels: no wheel came for {missing}")
        raw = sum(w.stat().st_size for w in wheels)
        for wheel in wheels:
            restore_uncompressed(wheel)
        archive = args.out / ARCHIVE
        part = archive.with_suffix(".part")
        with tarfile.open(part, "w:xz", preset=9) as tar:
            for wheel in wheels:
                tar.add(wheel, arcname=f"wheels/{wheel.name}")
        part.replace(archive)
    size = archive.stat().st_size
    total = travel_size(archive)
    print(f"gpu_wheels: {len(wheels)} wheels ({raw / 2**20:.1f} MiB as downloaded) -> {archive} "
          f"({size / 2**20:.1f} MiB)")
    print(f"gpu_wheels: a device call would carry about {total / 2**20:.1f} MiB of "
          f"{CARRY_LIMIT / 2**20:.0f} MiB "
          f"(working tree + this archive)")
    if total > CARRY_LIMIT:
        print("gpu_wheels: ERROR: over the carry limit; remove large untracked files from the tree",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
