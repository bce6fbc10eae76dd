"""argparse ``type=`` functions shared by every ``streamseg`` subcommand (cli.py, the gui, ...)."""

from __future__ import annotations

import argparse

__all__ = ["positive_float", "positive_int", "unit_float"]


def positive_int(text: str) -> int:
    """An integer > 0; argparse reports anything else as a usage error (exit 2)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def unit_float(text: str) -> float:
    """A float in [0, 1] (scores, thresholds, opacities)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    """A float > 0 (seconds, rates)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
