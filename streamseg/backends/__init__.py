"""Inference backends behind one small protocol (:class:`~streamseg.backends.base.Backend`).

``create_backend("torch", ...)`` builds one by name. Importing this package does not
import torch: :class:`TorchBackend` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamseg.backends.base import Backend
from streamseg.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from streamseg.backends.torch_backend import TorchBackend

__all__ = ["BACKENDS", "Backend", "TorchBackend", "create_backend"]

#: Backend names, the available one first.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")
_NOT_YET = ("onnxruntime", "tensorrt")


def create_backend(name: str = "torch", **kwargs: Any) -> Backend:
    """Create a backend by name.

    Args:
        name: ``"torch"`` (``"onnxruntime"`` and ``"tensorrt"`` are not available yet).
        **kwargs: passed to the backend's constructor (for torch: see
            :class:`~streamseg.backends.torch_backend.TorchBackend`).

    Returns:
        The backend.

    Raises:
        ConfigError: unknown backend name.
        BackendError: a known backend that is not available yet, or cannot run here.
        WeightsError: the model's weights cannot be found or loaded.
    """
    if name == "torch":
        from streamseg.backends.torch_backend import TorchBackend

        return TorchBackend(**kwargs)
    if name in _NOT_YET:
        raise BackendError(f"backend {name!r} is not available yet; use --backend torch")
    raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")


def __getattr__(attr: str) -> Any:
    if attr == "TorchBackend":
        from streamseg.backends.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
