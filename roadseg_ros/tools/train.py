"""``roadseg-train``: train a segmentation model and save it in the engine's checkpoint format.

A thin command over :mod:`roadseg_ros.training` (see its docstring for the design):
parse the options, join the process group under ``torchrun``, run. Distributed::

    torchrun --nproc_per_node 4 -m roadseg_ros.tools.train --data camvid=... --device cuda
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch.distributed as dist

from roadseg_ros.training.arguments import parse_args
from roadseg_ros.training.distributed import setup_distributed
from roadseg_ros.training.loop import run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadseg-train``; returns the exit status."""
    args = parse_args(argv)
    info, device = setup_distributed(args.device)
    try:
        return run(args, info, device, list(sys.argv if argv is None else ["roadseg-train", *argv]))
    finally:
        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
