"""The small protocol every inference backend (torch, onnxruntime, tensorrt) implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from streamseg.types import Instances

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """Runs one model (or a mask model plus a keypoint model) on single RGB images.

    Attributes:
        name: backend name ("torch", "onnxruntime", "tensorrt").
        model_name: registry name of the model (e.g. "maskrcnn_resnet50_fpn").
        categories: class names indexed by label (index 0 is the background).
        random_weights: True when the weights are seeded random (detections are meaningless).
        device: where it runs ("cpu", "cuda", "cuda:1").
    """

    name: str
    model_name: str
    categories: Sequence[str]
    random_weights: bool
    device: str

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """Detect instances in one image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``(instances, timings_ms)``: instances in ``image`` pixels, and the time
            spent in ``preprocess``, ``model`` and ``postprocess`` (milliseconds).

        Raises:
            BackendError: the backend failed on this image.
        """
        ...
