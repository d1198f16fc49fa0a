"""Offline command-line tools (inference, export, data collection)."""
