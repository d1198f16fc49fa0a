"""What a run leaves in ``OUTPUT/``: checkpoints, the resume state and one metrics line per epoch.

* ``last.pt`` after every epoch and ``best.pt`` when validation improved: checkpoints in
  the engine's format (``roadseg_ros.checkpoint``), with provenance (data, command, git
  commit, metrics) in their ``training`` field;
* ``resume.pt`` (:class:`~roadseg_ros.training.state.RunState`);
* ``metrics.jsonl``: one JSON line per finished epoch, rewritten from the history on resume
  so that lines past the resumed point disappear.

The checkpoints and ``resume.pt`` are replaced whole (``roadseg_ros.files.atomic_write``), so
an interrupted save never leaves a torn one. ``metrics.jsonl`` is appended to, one line per
epoch written in one call and flushed to disk, so ``tail -f`` can follow it; a crash in the
middle of that write can leave a partial last line, which ``--resume`` replaces (the file is
then rewritten whole from the history in ``resume.pt``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from torch import nn

from roadseg_ros.classes import Taxonomy
from roadseg_ros.files import append_line, atomic_write
from roadseg_ros.training.data import model_normalization
from roadseg_ros.training.model import unwrap
from roadseg_ros.training.state import RESUME_FILE, RunState, jsonable

__all__ = ["git_commit", "make_checkpoint", "RunOutputs"]


def git_commit() -> str | None:
    """The source tree's git commit (with ``+dirty`` when it has changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def make_checkpoint(model: nn.Module, args: argparse.Namespace, taxonomy: Taxonomy, arch_kwargs: dict,
                    training: dict) -> Any:
    """A ``roadseg_ros.checkpoint.Checkpoint`` of the model's current weights."""
    from roadseg_ros.checkpoint import Checkpoint

    state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
    mean, std = model_normalization(model)
    return Checkpoint(arch=args.model, arch_kwargs=dict(arch_kwargs), class_names=list(taxonomy.class_names),
                      class_colors=[tuple(c) for c in taxonomy.class_colors],
                      drivable_classes=list(taxonomy.drivable_classes), mean=mean,
                      std=std, input_size=tuple(args.eval_size), state_dict=state,
                      training=jsonable(training))


class RunOutputs:
    """The files of one run under ``out_dir`` (rank 0 only writes them)."""

    def __init__(self, out_dir: Path, *, half: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.half = half
        self.metrics_path = self.out_dir / "metrics.jsonl"

    def start(self, history: list[dict]) -> None:
        """Create the folder; metrics.jsonl = the history so far (drops lines past a resumed point)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(record) + "\n" for record in history)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def save_epoch(self, checkpoint: Any, run: RunState, improved: bool) -> None:
        """last.pt (+ best.pt when ``improved``), resume.pt and the epoch's metrics.jsonl line."""
        from roadseg_ros.checkpoint import save_checkpoint

        save_checkpoint(checkpoint, self.out_dir / "last.pt", half=self.half)   # each replaced whole
        if improved:
            save_checkpoint(checkpoint, self.out_dir / "best.pt", half=self.half)
        run.save(self.out_dir / RESUME_FILE)
        append_line(self.metrics_path, json.dumps(run.history[-1]))
