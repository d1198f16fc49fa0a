"""The model of a run: built from the registry with the run's keywords, or started from a checkpoint.

``--init`` fine-tunes: the parent's weights are loaded strictly and what it was (path,
architecture, date, command, metrics) is recorded in the new checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from roadseg_ros.config import one_line
from roadseg_ros.training.errors import TrainingConfigError

__all__ = ["build_model_for", "init_weights", "unwrap"]


def build_model_for(args: argparse.Namespace, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``args.model`` with the --model-arg keywords; ``--dropout`` is passed only when given.

    Returns the model and the keywords, which the checkpoint records to rebuild it.
    """
    from roadseg_ros.models import accepts_pretrained, build_model

    kwargs: dict[str, Any] = dict(getattr(args, "model_kwargs", {}))
    kwargs.pop("pretrained", None)   # a build-time choice, never recorded (see the module docstring)
    if args.dropout is not None:
        kwargs["dropout"] = args.dropout
    build_kw = dict(kwargs)
    try:
        if accepts_pretrained(args.model):
            # ImageNet weights only for a fresh start: --init and --resume bring every weight themselves.
            build_kw["pretrained"] = not (getattr(args, "no_pretrained", False) or getattr(args, "init", None)
                                          or getattr(args, "resume", None))
        return build_model(args.model, num_classes, **build_kw), kwargs
    except (ValueError, RuntimeError) as exc:
        # an unknown model name or keyword value; the ImageNet weights package missing
        raise TrainingConfigError(one_line(exc)) from exc
    except TypeError as exc:
        if "dropout" in kwargs and "dropout" in str(exc):
            raise TrainingConfigError(f"model {args.model!r} takes no dropout argument; "
                                      f"drop --dropout ({one_line(exc)})") from exc
        raise TrainingConfigError(one_line(exc)) from exc


def init_weights(model: nn.Module | None, path: Path) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` (strictly) for fine-tuning (``None``: only read it).

    Loaded without executing code (``weights_only``), like every checkpoint here. Returns
    what the new checkpoint records about its parent: path, architecture, date, command
    and headline metrics, so a fine-tuned model says what it was made from.
    """
    from roadseg_ros.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if model is not None:
        try:
            model.load_state_dict(ckpt.state_dict, strict=True)
        except RuntimeError as exc:
            raise TrainingConfigError(f"--init {path}: its weights do not fit {ckpt.arch} as built "
                                      f"here ({one_line(exc)[:300]})") from exc
    parent = ckpt.training or {}
    return {"path": str(path), "arch": ckpt.arch, "arch_kwargs": dict(ckpt.arch_kwargs),
            "date": parent.get("date"), "command": parent.get("command"),
            "git_commit": parent.get("git_commit"), "metrics": parent.get("metrics")}


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") else model
