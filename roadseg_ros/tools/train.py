"""``roadseg-train``: train a segmentation model and save it in the engine's checkpoint format.

A thin command over :mod:`roadseg_ros.training` (see its docstring for the design):
parse the options, join the process group under ``torchrun``, run. Distributed::

    torchrun --nproc_per_node 4 -m roadseg_ros.tools.train --data camvid=... --device cuda

Exit status, as every tool and node: 0 done (or a session ended by ``--stop-after`` /
``--time-limit``), 2 configured wrong (options: argparse's usage error; data, device, model
or checkpoint: one ``roadseg-train:`` line on stderr), 1 a run that failed on its way (a
non-finite loss, a file that cannot be written: one line too).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch.distributed as dist

from roadseg_ros.config import ConfigError, one_line
from roadseg_ros.training.arguments import parse_args
from roadseg_ros.training.distributed import setup_distributed
from roadseg_ros.training.errors import TrainingError
from roadseg_ros.training.loop import run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadseg-train``; returns the exit status."""
    args = parse_args(argv)
    try:
        info, device = setup_distributed(args.device)
        try:
            return run(args, info, device, list(sys.argv if argv is None else ["roadseg-train", *argv]))
        finally:
            if info.enabled and dist.is_initialized():
                dist.destroy_process_group()
    except ConfigError as exc:
        print(f"roadseg-train: {one_line(exc)}", file=sys.stderr)
        return 2
    except (TrainingError, OSError) as exc:
        print(f"roadseg-train: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
