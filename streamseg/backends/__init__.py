"""Inference backends behind one small protocol (:class:`~streamseg.backends.base.Backend`).

:func:`create_backend` builds one from a :class:`~streamseg.config.ModelConfig`. Four
backends are built in (``torch``, ``onnxruntime``, ``openvino``, ``replay``); optional packages add more through
the ``streamseg.backends`` entry-point group (``streamseg[tensorrt]`` adds ``tensorrt``
from ``streamseg_engines``), so the library never imports them. Importing this package
imports neither torch nor any backend: each is loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from streamseg.backends.base import Backend
from streamseg.errors import ConfigError

if TYPE_CHECKING:
    from streamseg.backends.torch_backend import TorchBackend
    from streamseg.config import ModelConfig

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "Backend",
    "TorchBackend",
    "backend_names",
    "create_backend",
    "graph_backend_kwargs",
]

#: The entry-point group where packages register backends: ``name = "module:factory"``,
#: ``factory(config: ModelConfig) -> Backend``.
ENTRY_POINT_GROUP = "streamseg.backends"


def graph_backend_kwargs(config: ModelConfig) -> dict[str, Any]:
    """The constructor arguments every graph backend takes, from ``config`` (the one mapping).

    ``model_name``, ``weights``, ``score_thresh`` (the model's score floor), ``min_size``
    (the registry default when unset), ``keypoints``, ``seed`` and ``detections_per_img``.
    """
    return {
        "model_name": config.name,
        "weights": config.weights,
        "score_thresh": config.score_floor,
        "min_size": config.input_min_size,
        "keypoints": config.keypoints,
        "seed": config.seed,
        "detections_per_img": config.max_detections,
    }


def _torch(config: ModelConfig) -> Backend:
    from streamseg.backends.torch_backend import TorchBackend

    return TorchBackend(device=config.resolved_device(), **graph_backend_kwargs(config))


def _onnxruntime(config: ModelConfig) -> Backend:
    from streamseg.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(device=config.resolved_device(), onnx_path=config.onnx, **graph_backend_kwargs(config))


def _openvino(config: ModelConfig) -> Backend:
    from streamseg.backends.openvino_backend import OpenVINOBackend

    return OpenVINOBackend(device=config.resolved_device(), precision=config.resolved_precision,
                           calib=config.calib, onnx_path=config.onnx, **graph_backend_kwargs(config))  # fmt: skip


def _replay(config: ModelConfig) -> Backend:
    from streamseg.backends.replay import ReplayBackend

    return ReplayBackend.from_config(config)


#: The built-in backends: torchvision's modules in our graph, that graph exported to ONNX Runtime
#: or compiled by OpenVINO, and detections recorded in a JSONL file given back at no model cost.
BACKENDS: dict[str, Callable[[ModelConfig], Backend]] = {
    "torch": _torch,
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "replay": _replay,
}


def _registered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BACKENDS}


def backend_names() -> tuple[str, ...]:
    """Every backend name: the built-in ones, then those installed packages register (not imported)."""
    return (*BACKENDS, *sorted(_registered()))


def create_backend(config: ModelConfig) -> Backend:
    """Build the backend a :class:`~streamseg.config.ModelConfig` names.

    Args:
        config: the validated model configuration.

    Returns:
        The backend, with its model loaded.

    Raises:
        ConfigError: unknown backend name, or settings the backend does not take.
        BackendError: a backend that cannot run here (its runtime or a GPU is missing).
        WeightsError: the model's weights cannot be found or loaded.
    """
    factory = BACKENDS.get(config.backend)
    if factory is None:
        ep = _registered().get(config.backend)
        if ep is None:
            raise ConfigError(f"unknown backend {config.backend!r}; known backends: {', '.join(backend_names())}")
        factory = ep.load()
    return factory(config)


def __getattr__(attr: str) -> Any:
    if attr == "TorchBackend":
        from streamseg.backends.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
