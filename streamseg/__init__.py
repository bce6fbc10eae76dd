"""streamseg: Mask R-CNN and Keypoint R-CNN instance segmentation on live and recorded video.

The import is light: it pulls in numpy only. torch, PyAV and the backends are
imported by the modules that need them; :class:`Predictor` (the Python API,
:mod:`streamseg.predictor`) is imported on first use of ``streamseg.Predictor``.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from streamseg.predictor import Predictor

__version__ = "0.1.0"

__all__ = [
    "Frame",
    "FrameResult",
    "Instances",
    "Predictor",
    "StreamsegError",
    "SourceError",
    "WeightsError",
    "BackendError",
    "EngineError",
    "SinkError",
    "ConfigError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "Predictor":  # the backends, the core and PyAV load here, not at ``import streamseg``
        from streamseg.predictor import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
