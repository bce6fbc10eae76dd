"""The OpenVINO backend: the exported graph (ort flavour) compiled by OpenVINO for the CPU.

OpenVINO (Intel's inference engine; ``openvino`` on PyPI, ``streamseg[openvino]``) reads
the same ONNX file the ONNX Runtime backend runs (:mod:`streamseg.backends.exported`:
cached per model, size and weights, or ``--onnx``) and compiles it for the CPU with the
latency hint (one request at a time, every core on it) and as many inference threads
as the cores this process may use. OpenVINO keeps the compiled blob in its model cache
(``CACHE_DIR``, a folder beside the ONNX cache), so a second run skips the compile.

Precision: ``fp32`` compiles with ``INFERENCE_PRECISION_HINT = f32`` (OpenVINO would
otherwise pick bf16 on a CPU with AVX-512 BF16 or AMX); ``bf16`` asks for bf16 inference,
where the CPU has it. ``int8`` quantizes the graph after training with NNCF
(``nncf.quantize``, the MIXED preset: symmetric weights, asymmetric activations; the
RoIAlign and the mask and keypoint heads stay in float, :data:`FLOAT_SCOPE`),
calibrated on frames of the user's own video or image folder (``calib``,
:func:`streamseg.calibration.sample_frames`), and keeps the quantized model as OpenVINO
IR in the cache, named by the ONNX file (model, weights, size) and the calibration set's
digest, which is also written into the IR and checked when it is loaded. Pre- and postprocessing are the ones every graph backend shares
(:mod:`streamseg.backends.graph_backend`), so the Instances are those of the torch
backend, up to the engine's arithmetic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.backends.exported import ExportedGraphBackend, usable_cores
from streamseg.backends.graph_backend import OUTPUT_ROWS
from streamseg.calibration import DEFAULT_CALIB_FRAMES, calibration_source_digest, sample_frames
from streamseg.errors import BackendError, ConfigError
from streamseg.models.registry import DEFAULT_MODEL
from streamseg.optional import import_optional

__all__ = ["FLOAT_SCOPE", "FLOAT_TYPES", "PRECISIONS", "OpenVINOBackend", "import_openvino"]

#: Graph nodes INT8 leaves in float (NNCF ignored-scope patterns, matched against OpenVINO's node
#: names, which are the ONNX ones): the mask and keypoint heads, and the three RoIAlign subgraphs.
#: Quantized, the heads cost the demo model 0.19 segm AP and 0.79 keypoint AP on the held-out clip
#: (benchmarks/accuracy_cpu.py). RoIAlign's box arithmetic (FPN level from the box area) is
#: geometry, not features, and its per-level outputs see only the RoIs of calibration frames: a
#: level no calibration RoI reached, or a head that found nothing to pool, would get an empty
#: range. The box head's quantizer then sits at its input, after the levels are merged. The
#: backbone, FPN, RPN and box head quantize at -0.003 bbox AP.
FLOAT_SCOPE = (
    "/box_roi_align/.*", "/mask_roi_align/.*", "/keypoint_roi_align/.*",
    "/mask_head/.*", "/mask_predictor/.*", "/keypoint_head/.*", "/keypoint_predictor/.*",
    "mask_probs", "keypoint_heatmaps",  # the heads' last nodes, which OpenVINO names after the outputs
)  # fmt: skip
#: Node types INT8 leaves in float: the transposed convolutions, which are the mask and keypoint
#: predictors' (OpenVINO gives the ConvolutionBackpropData of an ONNX ConvTranspose a generated name).
FLOAT_TYPES = ("ConvolutionBackpropData",)
#: The exported graph's output names (the per-detection rows and their count).
_GRAPH_OUTPUTS = frozenset((*OUTPUT_ROWS, "num_detections"))
#: The precisions this backend compiles for, and OpenVINO's inference-precision hint for each
#: (INT8 layers run in int8 whatever the hint; the layers NNCF leaves in float run in f32).
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def import_openvino() -> Any:
    """The ``openvino`` module.

    Raises:
        BackendError: OpenVINO is not installed (with the command that installs it).
    """
    return import_optional("openvino", BackendError("the openvino backend needs OpenVINO: pip install 'streamseg[openvino]'"))


class OpenVINOBackend(ExportedGraphBackend):
    """Mask R-CNN / Keypoint R-CNN compiled by OpenVINO for the CPU (the ``"openvino"`` backend).

    Args:
        model_name: registry name.
        device: ``"cpu"`` (OpenVINO's ``CPU`` device).
        precision: ``"fp32"``, ``"bf16"`` (OpenVINO's inference-precision hint) or ``"int8"``
            (NNCF post-training quantization, needs ``calib``).
        calib: with ``int8``, a video file or image folder to calibrate on.
        calib_frames: frames sampled from ``calib``.
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
        calib: str | os.PathLike[str] | None = None,
        calib_frames: int = DEFAULT_CALIB_FRAMES,
        onnx_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._ov = import_openvino()
        if device != "cpu":
            raise ConfigError(f"the openvino backend runs on the CPU here; got device {device!r} (use --device cpu)")
        if precision not in PRECISIONS:
            raise ConfigError(f"the openvino backend compiles for {', '.join(PRECISIONS)}, got precision {precision!r}")
        if (precision == "int8") != (calib is not None):
            raise ConfigError(
                "--precision int8 needs calibration frames: --calib VIDEO_OR_FOLDER (frames of your own cameras)"
                if calib is None
                else "--calib is only used with --precision int8"
            )
        super().__init__(model_name, onnx_path=onnx_path, flavour="ort", **kwargs)
        self.calib = None if calib is None else Path(calib)
        self.calib_frames = int(calib_frames)
        self._calib_sha256 = None if calib is None else calibration_source_digest(calib, self.calib_frames)
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
            source: Any = str(path) if self.precision != "int8" else self.quantized(core, index, size)
            try:
                model = core.compile_model(source, "CPU", self.compile_options())
            except RuntimeError as exc:
                raise BackendError(f"OpenVINO cannot compile {path}: {str(exc).strip().splitlines()[0]}") from exc
            self._compiled[key] = (model, model.create_infer_request())
        return self._compiled[key]

    def quantized(self, core: Any, index: int, size: tuple[int, int]) -> Any:
        """The INT8 model of model ``index`` at ``size``: from the cache, or quantized now with NNCF.

        Raises:
            BackendError: NNCF is not installed.
            ConfigError: a cached INT8 model was calibrated on another set (or from another
                file) than its name says; no calibration frame fits the network size.
            SourceError: the calibration source yields no frame.
        """
        path = self.onnx_file(index, size)
        ir = _cache_dir(path) / f"{path.stem}-int8-{self._calib_sha256[:16]}.xml"
        if ir.is_file():
            model = core.read_model(str(ir))
            made_from = {k: _rt_info(model, k) for k in ("calib_sha256", "onnx")}
            if made_from != {"calib_sha256": self._calib_sha256, "onnx": path.name}:
                raise ConfigError(
                    f"{ir} was quantized from another calibration set or ONNX file ({made_from}) than its "
                    f"name says; refused: delete it to calibrate again on {self.calib}"
                )
            return model
        nncf = import_optional("nncf", BackendError("--precision int8 needs NNCF: pip install 'streamseg[openvino]'"))
        items = []
        for frame in sample_frames(self.calib, self.calib_frames):
            try:
                items.append(self._inputs(frame, size)[0])
            except ConfigError:  # a calibration frame of another shape that does not fit this input
                continue
        if not items:
            raise ConfigError(f"no frame of {self.calib} fits the network input {size[1]}x{size[0]}")
        print(f"streamseg: quantizing {path.name} to INT8 on {len(items)} frames of {self.calib} (once; cached)",
              file=sys.stderr)  # fmt: skip
        with _quiet_nncf():
            model = nncf.quantize(
                core.read_model(str(path)), nncf.Dataset(items), subset_size=len(items),
                preset=nncf.QuantizationPreset.MIXED,
                ignored_scope=nncf.IgnoredScope(patterns=list(FLOAT_SCOPE), types=list(FLOAT_TYPES), validate=False),
            )  # fmt: skip
        model.set_rt_info(self._calib_sha256, ["streamseg", "calib_sha256"])
        model.set_rt_info(path.name, ["streamseg", "onnx"])
        ir.parent.mkdir(parents=True, exist_ok=True)
        self._ov.save_model(model, str(ir), compress_to_fp16=False)
        return model

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


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF's INFO lines (one per node it leaves in float, on stdout) only with ``-v``, and not the
    warning of torch's C++-extension helper, which NNCF loads, that a CPU machine has no CUDA."""
    loggers = {"torch.utils.cpp_extension": logging.ERROR}
    if not logging.getLogger("streamseg").isEnabledFor(logging.INFO):
        loggers["nncf"] = logging.WARNING
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _rt_info(model: Any, key: str) -> str | None:
    """The ``streamseg/<key>`` entry of a model's runtime info, or None."""
    try:
        return str(model.get_rt_info(["streamseg", key]).astype(str))
    except RuntimeError:
        return None


def _cache_dir(onnx: Path) -> Path:
    """OpenVINO's model cache for a file: ``openvino/`` beside it (the ONNX cache's folder)."""
    return onnx.parent / "openvino"
