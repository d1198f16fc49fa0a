"""The one error type of the training library; ``roadseg-train`` turns it into its exit status.

Library code never ends the program itself (no ``SystemExit``): a caller that trains from
its own code gets an exception it can catch, and the command decides what the user sees.
"""

from __future__ import annotations

from roadseg_ros.config import ConfigError

__all__ = ["TrainingError", "TrainingConfigError"]


class TrainingError(Exception):
    """A run failed in a way the user can act on; its text is the one line to print (exit status 1)."""


class TrainingConfigError(TrainingError, ConfigError):
    """The run is configured wrong (data, device, model, checkpoint to start or resume from),
    found before or while setting it up: exit status 2, like every tool's configuration error."""
