"""Typed errors of streamseg.

Library code raises these; only :mod:`streamseg.cli` turns them into a one-line
message and an exit code. Every message is meant to be read by a user: it names
the file, URL or option at fault and, where there is one, the fix.
"""

from __future__ import annotations

__all__ = [
    "StreamsegError",
    "SourceError",
    "WeightsError",
    "BackendError",
    "EngineError",
    "SinkError",
    "ConfigError",
]


class StreamsegError(Exception):
    """Base class of every error streamseg raises on purpose."""


class SourceError(StreamsegError):
    """A video source cannot be opened, is not a video, or failed while decoding."""


class WeightsError(StreamsegError):
    """Model weights are missing, corrupt, of the wrong hash or of another architecture."""


class BackendError(StreamsegError):
    """An inference backend cannot run here (missing package, device, or model)."""


class EngineError(StreamsegError):
    """A TensorRT engine cannot be built, loaded, or does not match this machine."""


class SinkError(StreamsegError):
    """An output (annotated video, JSONL, MOT txt) cannot be written."""


class ConfigError(StreamsegError):
    """A command-line option or configuration value is invalid."""
