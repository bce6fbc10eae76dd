"""The ``tensorrt`` backend factory, registered through the ``streamseg.backends`` entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamseg.backends.base import Backend
    from streamseg.config import ModelConfig

__all__ = ["create_backend"]


def create_backend(config: ModelConfig) -> Backend:
    """A :class:`TensorRTBackend` for ``config`` (device ``auto`` means the first GPU).

    Raises:
        BackendError: TensorRT or a GPU is missing.
        EngineError: the engine cannot be built or loaded.
    """
    from streamseg.backends import graph_backend_kwargs
    from streamseg.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(device=config.resolved_device(), precision=config.precision, **graph_backend_kwargs(config))
