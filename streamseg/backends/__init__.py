"""Inference backends behind one small protocol (:class:`~streamseg.backends.base.Backend`).

``create_backend("torch", ...)`` builds one by name. Importing this package does not
import torch: :class:`TorchBackend` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamseg.backends.base import Backend
from streamseg.errors import ConfigError

if TYPE_CHECKING:
    from streamseg.backends.torch_backend import TorchBackend

__all__ = ["BACKENDS", "Backend", "TorchBackend", "create_backend"]

#: Backend names: torchvision's modules, the exported graph under ONNX Runtime, a TensorRT engine.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")


def create_backend(name: str = "torch", **kwargs: Any) -> Backend:
    """Create a backend by name.

    Args:
        name: ``"torch"`` (:class:`~streamseg.backends.torch_backend.TorchBackend`),
            ``"onnxruntime"`` (:class:`~streamseg.backends.onnxruntime_backend.OnnxRuntimeBackend`)
            or ``"tensorrt"`` (:class:`~streamseg.backends.tensorrt_backend.TensorRTBackend`).
        **kwargs: passed to the backend's constructor.

    Returns:
        The backend.

    Raises:
        ConfigError: unknown backend name.
        BackendError: a backend that cannot run here (its runtime or a GPU is missing).
        WeightsError: the model's weights cannot be found or loaded.
    """
    if name == "torch":
        from streamseg.backends.torch_backend import TorchBackend

        return TorchBackend(**kwargs)
    if name == "onnxruntime":
        from streamseg.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(**kwargs)
    if name == "tensorrt":
        from streamseg.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(**kwargs)
    raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")


def __getattr__(attr: str) -> Any:
    if attr == "TorchBackend":
        from streamseg.backends.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
