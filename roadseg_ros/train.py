"""``python -m roadseg_ros.train``: the module name runs were started with before the training
package existed; kept so those runs resume with the command they were started with. The tool
itself is :mod:`roadseg_ros.tools.train` (``roadseg-train``).
"""

from __future__ import annotations

import sys

from roadseg_ros.tools.train import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
