"""The OpenVINO backend: the exported graph (ort flavour) compiled by OpenVINO for the CPU.

OpenVINO (Intel's inference engine; ``openvino`` on PyPI, ``streamseg[openvino]``) reads
the same ONNX file the ONNX Runtime backend runs (:mod:`streamseg.backends.exported`:
cached per model, size and weights, or ``--onnx``) and compiles it for the CPU with the
latency hint (one request at a time, every core on it) and as many inference threads
as the cores this process may use. OpenVINO keeps the compiled blob in its model cache
(``CACHE_DIR``, a folder beside the ONNX cache), so a second run skips the compile.

Precision: ``fp32`` compiles with ``INFERENCE_PRECISION_HINT = f32`` (OpenVINO would
otherwise pick bf16 on a CPU with AVX-512 BF16 or AMX); ``bf16`` asks for bf16 inference,
where the CPU has it. Pre- and postprocessing are the ones every graph backend shares
(:mod:`streamseg.backends.graph_backend`), so the Instances are those of the torch
backend, up to the engine's arithmetic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.backends.exported import ExportedGraphBackend, usable_cores
from streamseg.backends.graph_backend import OUTPUT_ROWS
from streamseg.errors import BackendError, ConfigError
from streamseg.models.registry import DEFAULT_MODEL

__all__ = ["OpenVINOBackend", "PRECISIONS", "import_openvino"]

#: The exported graph's output names (the per-detection rows and their count).
_GRAPH_OUTPUTS = frozenset((*OUTPUT_ROWS, "num_detections"))
#: The precisions this backend compiles for, and OpenVINO's inference-precision hint for each.
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino() -> Any:
    """The ``openvino`` module.

    Raises:
        BackendError: OpenVINO is not installed (with the command that installs it).
    """
    try:
        import openvino
    except ImportError as exc:
        raise BackendError("the openvino backend needs OpenVINO: pip install 'streamseg[openvino]'") from exc
    return openvino


class OpenVINOBackend(ExportedGraphBackend):
    """Mask R-CNN / Keypoint R-CNN compiled by OpenVINO for the CPU (the ``"openvino"`` backend).

    Args:
        model_name: registry name.
        device: ``"cpu"`` (OpenVINO's ``CPU`` device).
        precision: ``"fp32"`` or ``"bf16"`` (OpenVINO's inference-precision hint).
        onnx_path: an ONNX file from ``streamseg export --flavour ort`` instead of the cache.
        threads: inference threads (default: the cores this process may use).
        **kwargs: :class:`~streamseg.backends.graph_backend.GraphBackend`'s arguments
            (``weights``, ``score_thresh``, ``min_size``, ``keypoints``,
            ``detections_per_img``, ``seed``, ``allow_download``).

    Attributes:
        name: ``"openvino"``.
        precision: the precision compiled for.

    Raises:
        BackendError: OpenVINO missing, or the file does not compile.
        ConfigError: a device other than the CPU, an unknown precision, ``onnx_path`` with
            ``keypoints``.
        WeightsError: weights or ONNX file missing, unreadable or of another model.
    """

    name = "openvino"

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        onnx_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._ov = import_openvino()
        if device != "cpu":
            raise ConfigError(f"the openvino backend runs on the CPU here; got device {device!r} (use --device cpu)")
        if precision not in PRECISIONS:
            raise ConfigError(f"the openvino backend compiles for {' or '.join(PRECISIONS)}, got precision {precision!r}")
        super().__init__(model_name, onnx_path=onnx_path, flavour="ort", **kwargs)
        self.device = "cpu"
        self.precision = precision
        self.threads = int(threads or usable_cores())
        self._compiled: dict[tuple[int, tuple[int, int]], Any] = {}

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", precision={self.precision}, threads={self.threads})"

    def compile_options(self) -> dict[str, str]:
        """The ``compile_model`` properties: latency hint, threads, inference precision."""
        return {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": str(self.threads),
            "INFERENCE_PRECISION_HINT": PRECISIONS[self.precision],
        }

    def compiled(self, index: int, size: tuple[int, int]) -> Any:
        """The infer request of model ``index`` at ``size`` (compiled once, from OpenVINO's cache when there)."""
        key = (index, size)
        if key not in self._compiled:
            path = self.onnx_file(index, size)
            core = self._ov.Core()
            core.set_property({"CACHE_DIR": str(_cache_dir(path))})
            try:
                model = core.compile_model(str(path), "CPU", self.compile_options())
            except RuntimeError as exc:
                raise BackendError(f"OpenVINO cannot compile {path}: {str(exc).strip().splitlines()[0]}") from exc
            self._compiled[key] = (model, model.create_infer_request())
        return self._compiled[key]

    def _run(self, index: int, size: tuple[int, int], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        model, request = self.compiled(index, size)
        try:
            results = request.infer(inputs)
        except RuntimeError as exc:
            raise BackendError(f"OpenVINO failed: {str(exc).strip().splitlines()[0]}") from exc
        # A compiled output carries every name its tensor had in the graph; the graph's own is the one.
        out = {}
        for output in model.outputs:
            name = next((n for n in output.get_names() if n in _GRAPH_OUTPUTS), output.get_any_name())
            out[name] = np.array(results[output])
        return out


def _cache_dir(onnx: Path) -> Path:
    """OpenVINO's model cache for a file: ``openvino/`` beside it (the ONNX cache's folder)."""
    return onnx.parent / "openvino"
