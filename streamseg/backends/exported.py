"""What the backends that run our exported ONNX graph share: which file, at which size.

ONNX Runtime and OpenVINO both run :class:`~streamseg.models.graph.MaskRCNNGraph` as
exported by :mod:`streamseg.export` (the ``ort`` flavour). The file is exported from
the registry model on first use and cached per model, size, weights and flavour
(:func:`streamseg.export.cached_onnx`), or given explicitly (``onnx_path``), in which
case its metadata must say it is our graph for this model and flavour (a file of
another model, flavour, size or graph version is refused) and its size fixes the
network input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from streamseg.backends.graph_backend import GraphBackend
from streamseg.errors import ConfigError
from streamseg.models.registry import DEFAULT_MODEL

__all__ = ["ExportedGraphBackend", "usable_cores"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ExportedGraphBackend(GraphBackend):
    """A :class:`~streamseg.backends.graph_backend.GraphBackend` that runs the exported ONNX file.

    Args:
        model_name: registry name.
        onnx_path: a file from ``streamseg export`` to use instead of the cache.
        flavour: the export flavour (``"ort"``, or ``"trt"`` for ONNX Runtime's check of
            the TensorRT graph).
        **kwargs: :class:`~streamseg.backends.graph_backend.GraphBackend`'s arguments.

    Raises:
        ConfigError: ``onnx_path`` together with ``keypoints`` (one file is one model).
        WeightsError: weights or the ONNX file missing, unreadable or of another model.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        onnx_path: str | os.PathLike[str] | None = None,
        flavour: str = "ort",
        **kwargs: Any,
    ) -> None:
        self.flavour = flavour
        super().__init__(model_name, **kwargs)
        self._fixed_size: tuple[int, int] | None = None
        self._onnx_path = Path(onnx_path) if onnx_path is not None else None
        if self._onnx_path is not None:
            if len(self.models) > 1:
                raise ConfigError("--onnx gives one model's file; it cannot be combined with --keypoints")
            from streamseg.export import check_onnx_metadata
            from streamseg.models.graph import parse_size

            meta = check_onnx_metadata(self._onnx_path, model_name=self.model_name, flavour=flavour)
            self._fixed_size = parse_size(meta["streamseg.size"])
        else:
            # Resolve (and verify) the weights now, so a missing file fails before any frame.
            from streamseg.export import weights_id

            self._weights_ids = [
                weights_id(m.spec.name, self.weights_for(i), seed=self.seed, allow_download=self.allow_download)
                for i, m in enumerate(self.models)
            ]

    def network_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The file's size for an explicit ``onnx_path``, else torchvision's padded size."""
        return self._fixed_size or super().network_size(image_size)

    def onnx_file(self, index: int, size: tuple[int, int]) -> Path:
        """The ONNX file of model ``index`` at ``size`` (exported and cached on first use)."""
        if self._onnx_path is not None:
            return self._onnx_path
        from streamseg.export import cached_onnx

        return cached_onnx(
            self.models[index].spec.name,
            size=size,
            flavour=self.flavour,
            weights=self.weights_for(index),
            seed=self.seed,
            allow_download=self.allow_download,
            detections_per_img=self.detections_per_img,
            weights_sha256=self._weights_ids[index],
        )
