"""Repoint the build-machine paths baked into the ROS 2 wheels' CMake exports.

The PyPI ROS 2 wheels export CMake targets that name include directories of the machine
they were built on (``/opt/python/cp311-cp311/...``, ``cp312-cp312`` in the wheels for
Python 3.12 that benchmarks/gpu_check.sh installs on the GPU machine). CMake refuses
imported targets with non-existent include paths, so message generation fails until those
paths name this environment's Python headers and NumPy headers. Idempotent: a second run
changes nothing.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy


def main() -> int:
    prefix = Path(sys.prefix)
    share = prefix / "share"
    if not share.is_dir():
        print(f"fix_ros_wheel_cmake: {share} does not exist; are the ROS wheels installed?", file=sys.stderr)
        return 1
    replacements = {
        re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include"):
            numpy.get_include(),
        re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+"): sysconfig.get_paths()["include"],
    }
    changed = 0
    for path in share.rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = text
        for old, repl in replacements.items():
            new = old.sub(lambda _match, path=repl: path, new)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    print(f"fix_ros_wheel_cmake: rewrote build-machine paths in {changed} CMake file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
