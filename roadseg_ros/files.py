"""Writing a file whole or not at all: checkpoints, resume states, rewritten metrics.

Why: training saves its checkpoints and resume state every epoch, and a run can be killed at
any moment (a time limit, a pre-empted machine, Ctrl-C). A file written in place and cut off
half-way would be torn: the previous epoch's good file is gone and the new one does not load.
Writing a temporary sibling and renaming it over the target replaces the file in one step.
Torch-free and package-free, so any layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "append_line"]


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Replace ``path`` with what ``write(tmp)`` writes to a temporary file next to it; returns ``path``.

    The temporary file is flushed to disk before the rename, so after a crash or a power cut
    ``path`` is the old file or the new one, never a mix. Its name carries the process id, so
    two processes saving the same file do not write into one temporary; it is removed when
    ``write`` fails. The parent folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0), best_effort=True)   # the rename itself
    return path


def append_line(path: str | Path, line: str) -> None:
    """Append one line (``line`` without its newline) in one write, flushed to disk before returning.

    Not atomic: a crash during the write can leave a partial last line. Callers that can
    rebuild the file (training rewrites metrics.jsonl from the resume state on ``--resume``)
    repair it that way; readers should skip a last line that does not parse.
    """
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path, flags: int, best_effort: bool = False) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        if best_effort:       # e.g. a platform that cannot open folders
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not best_effort:
            raise
    finally:
        os.close(fd)
