#!/usr/bin/env bash
# The GPU machine's entry point: give its Python what it lacks, then run gpu_check.py.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]     # on the lent GPU machine
#   bash benchmarks/gpu_check.sh --bootstrap-only           # only build the environment (also here)
#
# The device image has Python 3.12 with torch (CUDA), onnx, onnxruntime, OpenCV and pytest,
# but no ROS 2, no colcon, and no network. What it lacks travels as
# .whl/roadseg_gpu_wheels.tar.xz (made here by `python benchmarks/gpu_wheels.py`, sent with
# the call's carry: [".whl"]). The bootstrap, time-boxed as a whole:
#   1. a virtual environment in /tmp whose .pth file points at the image's own packages, so
#      its torch is used as is and nothing of the image is replaced;
#   2. the carried wheels that the image lacks, installed into it (no index, no deps);
#   3. the ROS wheels' CMake exports repointed to this Python, and this package colcon-built
#      in /tmp (rosidl generates roadseg_ros.msg), exactly as dev.sh does here.
# A failed bootstrap costs only what needs ROS (the node benchmark, the ROS tests):
# gpu_check.py then runs on the image's python3 and records those stages as failed.
#
# Writes $OUT/gpu_bootstrap.log (OUT defaults to runs/gpu_check) besides gpu_check.py's files.
# Exit status: gpu_check.py's (0 all stages ok, 1 a stage failed); 3 when no torch is found.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-$ROOT/runs/gpu_check}"
PY="${ROADSEG_GPU_PYTHON:-python3}"                  # the image's Python with torch
ENV_DIR="${ROADSEG_GPU_ENV:-/tmp/roadseg_gpu_env}"
WS_DIR="${ROADSEG_GPU_WS:-/tmp/roadseg_gpu_ws}"
WHEELS="${ROADSEG_GPU_WHEELS:-$ROOT/.whl/roadseg_gpu_wheels.tar.xz}"
BOOTSTRAP_TIMEOUT="${ROADSEG_GPU_BOOTSTRAP_TIMEOUT:-150}"
LOG="$OUT_DIR/gpu_bootstrap.log"

say() { printf '[gpu_check.sh] %s\n' "$*"; }

bootstrap() {
  set -e
  local t0=$SECONDS
  command -v "$PY" >/dev/null || { echo "no '$PY' on PATH"; return 1; }
  "$PY" -c 'import sys; print("base python", sys.version.split()[0], sys.executable)'
  echo "tools: cmake=$(command -v cmake || echo MISSING) cc=$(command -v cc || command -v gcc || echo MISSING)" \
       "c++=$(command -v c++ || command -v g++ || echo MISSING)"
  [ -f "$WHEELS" ] || { echo "no carried wheels at $WHEELS (make them with benchmarks/gpu_wheels.py, carry .whl)"; return 1; }

  rm -rf "$ENV_DIR" "$WS_DIR" /tmp/roadseg_gpu_wheels
  mkdir -p /tmp/roadseg_gpu_wheels
  # Python's tarfile rather than tar -J: the image need not have the xz program.
  "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
    "$WHEELS" /tmp/roadseg_gpu_wheels
  "$PY" -m venv --without-pip "$ENV_DIR"
  local site
  site="$("$ENV_DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # The image's own site-packages, after the venv's: its torch, numpy, OpenCV are used as they are.
  # site.addsitedir (not a bare path line) so that the image's own .pth files are honoured too.
  "$PY" -c 'import site; print("\n".join(f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()))' \
    > "$site/_roadseg_image_packages.pth"

  # Install only the carried wheels whose distribution the image does not already have.
  local missing
  missing="$("$PY" - /tmp/roadseg_gpu_wheels/wheels/*.whl <<'EOF'
import importlib.metadata as md
import re
import sys
for path in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", path.rsplit("/", 1)[-1].split("-")[0]).lower()
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        print(path)
EOF
)"
  echo "installing $(echo "$missing" | grep -c . || true) carried wheels the image lacks"
  # shellcheck disable=SC2086
  "$PY" -m pip --python "$ENV_DIR/bin/python" install -q --disable-pip-version-check --no-index --no-deps \
      --no-compile --no-cache-dir $missing \
    || "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
         --prefix "$ENV_DIR" $missing
  "$ENV_DIR/bin/python" -c 'import sysconfig, os; inc = sysconfig.get_paths()["include"]; \
print("python headers", inc, "present" if os.path.exists(os.path.join(inc, "Python.h")) else "MISSING")'
  touch "$ENV_DIR/COLCON_IGNORE"
  "$ENV_DIR/bin/python" "$ROOT/scripts/fix_ros_wheel_cmake.py"

  mkdir -p "$WS_DIR/src"
  ln -sfn "$ROOT" "$WS_DIR/src/roadseg_ros"
  (
    cd "$WS_DIR"
    export VIRTUAL_ENV="$ENV_DIR" PATH="$ENV_DIR/bin:$PATH" CMAKE_PREFIX_PATH="$ENV_DIR" AMENT_PREFIX_PATH="$ENV_DIR"
    "$ENV_DIR/bin/python" -c 'import sys; from colcon_core.command import main; sys.exit(main())' \
      build --base-paths src --event-handlers console_cohesion- summary- \
      --cmake-args -DPython3_EXECUTABLE="$ENV_DIR/bin/python"
  )
  stamp > "$WS_DIR/.roadseg_bootstrap_ok"
  echo "bootstrap done in $((SECONDS - t0)) s"
}

# What the bootstrap was made from; a warm machine whose /tmp still holds a bootstrap made from
# the same wheels and message definitions reuses it (a second call skips the 30-60 s rebuild).
stamp() {
  cat "$WHEELS" "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" 2>/dev/null | cksum
}

activate() {
  # shellcheck disable=SC1091
  . "$ENV_DIR/bin/activate"
  export AMENT_PREFIX_PATH="$ENV_DIR${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  set +u
  # shellcheck disable=SC1091
  . "$WS_DIR/install/setup.bash"
  set -u
}

mkdir -p "$OUT_DIR"
if [ "${1:-}" = "--bootstrap-only" ]; then
  shift
  (bootstrap) 2>&1 | tee "$LOG"
  exit "${PIPESTATUS[0]}"
fi

if ! "$PY" -c 'import torch' 2>/dev/null; then
  say "ERROR: '$PY' cannot import torch. The check needs the image's CUDA build of torch; a CUDA torch"
  say "wheel (about 1 GB) cannot travel within a call's 64 MiB. Set ROADSEG_GPU_PYTHON to a Python with torch."
  exit 3
fi

export -f bootstrap stamp
export PY ENV_DIR WS_DIR WHEELS ROOT
if [ -f "$WS_DIR/.roadseg_bootstrap_ok" ] && [ "$(cat "$WS_DIR/.roadseg_bootstrap_ok")" = "$(stamp)" ]; then
  say "reusing the bootstrap in $ENV_DIR and $WS_DIR (same wheels and messages)"
  echo "reused the bootstrap of an earlier call" >"$LOG"
  activate
  RUN_PY="$ENV_DIR/bin/python"
elif say "bootstrap (time box ${BOOTSTRAP_TIMEOUT} s, log $LOG) ..." \
    && timeout --kill-after=10 "$BOOTSTRAP_TIMEOUT" bash -c bootstrap >"$LOG" 2>&1; then
  say "bootstrap ok: $(tail -1 "$LOG")"
  activate
  RUN_PY="$ENV_DIR/bin/python"
else
  say "bootstrap FAILED (ROS stages will fail; the rest runs on $PY); last lines of $LOG:"
  tail -15 "$LOG" | sed 's/^/    /'
  RUN_PY="$PY"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$ROOT"
exec "$RUN_PY" "$ROOT/benchmarks/gpu_check.py" "$@"
