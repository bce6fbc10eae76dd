"""Plain settings of the desktop application (no Qt): which model runs and how sources open.

:class:`ModelConfig` says which backend and model a session uses; two sessions with
equal configs share one loaded backend (:class:`~streamseg_app.session.BackendCache`).
What is *drawn* is a :class:`streamseg.render.RenderOptions`, changed per frame.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamseg.backends import create_backend
from streamseg.backends.base import Backend
from streamseg.errors import BackendError, ConfigError
from streamseg.models.registry import DEFAULT_MODEL, get_model_spec

__all__ = [
    "ModelConfig",
    "MODEL_SCORE_FLOOR",
    "DEVICES",
    "default_min_size",
    "display_categories",
    "resolve_device",
]

#: Score threshold the model itself runs with. The window's threshold only filters
#: what is drawn, listed and recorded, so it can change on the next frame without
#: reloading the model; the tracker sees every detection above this floor (ByteTrack
#: uses the low-score ones to keep tracks alive through occlusions).
MODEL_SCORE_FLOOR = 0.05
#: Device choices: ``auto`` is CUDA when torch sees a GPU, else the CPU.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def default_min_size(model: str) -> int:
    """Default shorter input side in pixels: the demo model's 240, else torchvision's 800."""
    from streamseg.models.demo_model import DEMO_MIN_SIZE

    return DEMO_MIN_SIZE if model == "demo" else 800


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def display_categories(categories: list[str] | tuple[str, ...]) -> list[tuple[int, str]]:
    """The (label, name) pairs a user can choose from: every category but the background and ``N/A`` gaps.

    Args:
        categories: class names indexed by label (index 0 is the background), e.g. the
            91 COCO entries (80 names and 11 ``"N/A"`` gaps).

    Returns:
        ``[(label, name), ...]`` in label order (80 pairs for COCO).
    """
    return [
        (label, name)
        for label, name in enumerate(categories)
        if label > 0 and name not in ("N/A", "__background__", "background")
    ]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which backend and model a session runs; changing it restarts the stream.

    Attributes:
        backend: a name of ``streamseg.backends.BACKENDS`` (``"torch"``, ``"onnxruntime"``,
            ``"tensorrt"``).
        model: registry name (``streamseg models``), e.g. ``"maskrcnn_resnet50_fpn"`` or ``"demo"``.
        weights: a weights file, ``"random"``, or None for the registry's file.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        min_size: shorter side of the network input in pixels; None for
            :func:`default_min_size` of the model.
        keypoints: with a mask model, also run Keypoint R-CNN for person keypoints.
        max_detections: at most this many detections per frame (torchvision's
            ``box_detections_per_img``).
        score_floor: the score threshold the model runs with (see :data:`MODEL_SCORE_FLOOR`).

    Raises:
        ConfigError: from :meth:`validate` for an unknown model or an out-of-range value.
    """

    backend: str = "torch"
    model: str = DEFAULT_MODEL
    weights: str | None = None
    device: str = "auto"
    min_size: int | None = None
    keypoints: bool = False
    max_detections: int = 100
    score_floor: float = MODEL_SCORE_FLOOR

    def validate(self) -> ModelConfig:
        """Check the values without loading anything; returns self.

        Raises:
            ConfigError: unknown model name, ``min_size`` < 32, ``max_detections`` < 1 or
                ``score_floor`` outside [0, 1].
        """
        get_model_spec(self.model)
        if self.min_size is not None and self.min_size < 32:
            raise ConfigError(f"min size must be at least 32 pixels, got {self.min_size}")
        if self.max_detections < 1:
            raise ConfigError(f"max detections must be at least 1, got {self.max_detections}")
        if not 0.0 <= self.score_floor <= 1.0:
            raise ConfigError(f"score floor must be in [0, 1], got {self.score_floor}")
        return self

    @property
    def effective_min_size(self) -> int:
        """``min_size``, or the model's default when it is None (pixels)."""
        return self.min_size if self.min_size is not None else default_min_size(self.model)

    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``streamseg.backends.create_backend`` for this config."""
        return {
            "model_name": self.model,
            "weights": self.weights or None,
            "device": resolve_device(self.device),
            "score_thresh": self.score_floor,
            "min_size": self.effective_min_size,
            "keypoints": self.keypoints,
            "detections_per_img": self.max_detections,
        }

    def create(self) -> Backend:
        """Load the backend (slow: builds the model and reads the weights).

        Returns:
            The backend.

        Raises:
            ConfigError: invalid settings or unknown backend name.
            BackendError: the backend cannot run here (missing package, no GPU, ...) or
                does not accept these settings.
            WeightsError: the weights are missing, corrupt or of another model.
        """
        self.validate()
        try:
            return create_backend(self.backend, **self.backend_kwargs())
        except TypeError as exc:  # a backend whose constructor takes other settings
            raise BackendError(f"backend {self.backend!r} does not accept these settings: {exc}") from exc

    def describe(self) -> str:
        """One short line, e.g. ``"demo on torch (cpu, 240 px)"``."""
        weights = f", weights {self.weights}" if self.weights else ""
        return f"{self.model} on {self.backend} ({self.device}, {self.effective_min_size} px{weights})"
