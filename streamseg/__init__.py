"""streamseg: Mask R-CNN and Keypoint R-CNN instance segmentation on live and recorded video.

The import is light: it pulls in numpy only. torch, PyAV and the backends are
imported by the modules that need them.
"""

from streamseg.errors import (
    BackendError,
    ConfigError,
    EngineError,
    SinkError,
    SourceError,
    StreamsegError,
    WeightsError,
)
from streamseg.types import Frame, FrameResult, Instances

__version__ = "0.1.0"

__all__ = [
    "Frame",
    "FrameResult",
    "Instances",
    "StreamsegError",
    "SourceError",
    "WeightsError",
    "BackendError",
    "EngineError",
    "SinkError",
    "ConfigError",
    "__version__",
]
