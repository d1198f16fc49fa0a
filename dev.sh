#!/usr/bin/env bash
# roadseg_ros development entry point.
#
#   ./dev.sh demo [ARGS]   set up if needed, then run the demo (synthetic camera -> node -> recorder)
#   ./dev.sh test [ARGS]   set up if needed, then ruff + the test suite (extra ARGS go to pytest)
#   ./dev.sh setup         create/refresh the project environment (.venv) and colcon-build the package
#   ./dev.sh run CMD...    run CMD inside the environment (ROS, torch and this package importable)
#   ./dev.sh shell         print the lines to `eval` for using the environment in your shell
#
# The environment is project-local: .venv (Python packages pinned in requirements.txt,
# including ROS 2 Kilted from PyPI wheels) and .ws (a colcon workspace whose src/ links
# back to this checkout). Re-running setup on a set-up machine takes a few seconds.
# ROADSEG_ROS_DISTRO=jazzy (default: kilted) uses ROS 2 Jazzy instead, pinned in
# requirements-jazzy.txt, with its own .venv-jazzy and .ws-jazzy: the two never mix.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${ROADSEG_PYTHON:-python3}"

say() { printf '[roadseg] %s\n' "$*" >&2; }
die() { printf '[roadseg] ERROR: %s\n' "$*" >&2; exit 1; }

# One environment per ROS distro; Kilted keeps the plain names it always had.
DISTRO="${ROADSEG_ROS_DISTRO:-kilted}"
case "$DISTRO" in
  kilted) SUFFIX="" ;;
  jazzy) SUFFIX="-jazzy" ;;
  *) die "ROADSEG_ROS_DISTRO=$DISTRO is not supported: use kilted (the default) or jazzy" ;;
esac
VENV="$ROOT/.venv$SUFFIX"
WS="$ROOT/.ws$SUFFIX"
REQ="$ROOT/requirements$SUFFIX.txt"

setup() {
  command -v "$PY" >/dev/null || die "no '$PY' on PATH: install Python 3.11 (the pinned ROS 2 wheels need it) or set ROADSEG_PYTHON"
  "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "the pinned ROS 2 wheels need Python 3.11; '$PY' is $("$PY" -V 2>&1). Set ROADSEG_PYTHON=python3.11"
  command -v cmake >/dev/null || die "cmake not found: message generation needs it (Debian: apt-get install cmake)"
  command -v cc >/dev/null || command -v gcc >/dev/null || die "no C compiler found: message generation needs one (Debian: apt-get install build-essential)"

  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PY" -m venv "$VENV" || die "could not create $VENV (Debian: apt-get install python3-venv)"
  fi
  local want have
  want="$(sha256sum "$REQ" | cut -d' ' -f1)"
  have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    say "installing pinned packages from ${REQ##*/} (ROS 2 $DISTRO; first time: several GB, a few minutes)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip \
      || die "could not upgrade pip in $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$REQ" \
      || die "pip install -r ${REQ##*/} failed (see above)"
    "$VENV/bin/python" "$ROOT/scripts/fix_ros_wheel_cmake.py" || die "could not patch the ROS wheels' CMake files"
    # colcon must never treat the ROS packages inside the venv as workspace packages.
    touch "$VENV/COLCON_IGNORE"
    echo "$want" > "$VENV/.requirements.sha256"
  else
    say "environment $VENV is up to date"
  fi

  mkdir -p "$WS/src"
  ln -sfn ../.. "$WS/src/roadseg_ros"
  # CMake's install(DIRECTORY) never deletes: a module removed or moved in the source would
  # stay importable from the install tree (roadseg_ros/__init__.py extends the package path
  # there) and hide the change. Start the installed copy afresh.
  rm -rf "$WS"/install/roadseg_ros/lib/python3*/site-packages/roadseg_ros
  say "building the package with colcon (ROS 2 $DISTRO, workspace $WS)"
  (
    cd "$WS"
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
    colcon build --base-paths src --event-handlers console_cohesion- summary- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" >"$WS/build.log" 2>&1
  ) || { tail -40 "$WS/build.log" >&2; die "colcon build failed (full log: $WS/build.log)"; }
  say "package built: $WS/install"
}

activate() {
  [ -f "$WS/install/setup.bash" ] || setup
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  set +u
  # shellcheck disable=SC1091
  . "$WS/install/setup.bash"
  set -u
  # The source tree comes first so edits apply without a rebuild; roadseg_ros.msg is
  # found in the install tree (see roadseg_ros/__init__.py).
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  test)
    setup
    activate
    cd "$ROOT"
    say "ruff check"
    ruff check . || die "ruff found problems (run: ./dev.sh run ruff check --fix .)"
    say "pytest"
    set +e
    pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then die "pytest collected no tests"; fi
    exit "$rc"
    ;;
  demo)
    setup
    activate
    cd "$ROOT"
    exec python -m roadseg_ros.tools.demo "$@"
    ;;
  run)
    activate
    exec "$@"
    ;;
  shell)
    echo ". '$VENV/bin/activate'; . '$WS/install/setup.bash'; export PYTHONPATH='$ROOT':\$PYTHONPATH"
    ;;
  help|-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (try: ./dev.sh help)" ;;
esac
