"""The TensorRT backend: a serialized engine of the export-friendly graph, run on a CUDA stream.

Per frame: the uint8 frame is copied to the GPU and preprocessed there as
torchvision's ``GeneralizedRCNNTransform``
(``streamseg.models.preprocess.preprocess_tensor``: normalise, resize, zero-pad to the
engine's H x W, the torch backend's arithmetic), copied into the engine's input
buffers (torch CUDA tensors, no pycuda), the engine runs with
``IExecutionContext.execute_async_v3`` on a torch CUDA stream, keypoint heatmaps are
decoded on the GPU (``streamseg.postprocess.keypoints_from_heatmaps``), and only the
first ``num_detections`` rows of each output are copied back (boxes, scores, labels,
the 28 x 28 mask probabilities, the (n, 17, 3) keypoints). The rows become
:class:`~streamseg.postprocess.RawDetections` and go through the same
:func:`~streamseg.postprocess.postprocess` as every other backend; the kept masks are
then pasted into their boxes and binarised on the GPU
(:func:`~streamseg.masks.paste_crops_tensor`), and only their uint8 box crops are
copied back (``Instances.mask_crops``).

An engine has a fixed input size. The size is the frame's resized size rounded up
to multiples of 32 (``streamseg.models.preprocess.network_size_for``, the padding
torchvision itself applies), so the backend builds (or finds in the engine cache)
the engine on the first frame of each new size, with a progress message; pass
``size`` to build at construction instead.

TensorRT is imported when the backend is created, never at module import. The
backend reaches streamseg through the ``streamseg.backends`` entry point
(:func:`create_backend`): the library never imports this package.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.backends.graph_backend import OUTPUT_ROWS, GraphBackend, raw_from_outputs, valid_rows
from streamseg.errors import BackendError, ConfigError, EngineError
from streamseg.models.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    from streamseg.config import ModelConfig

__all__ = ["OUTPUT_ROWS", "TensorRTBackend", "TensorRTEngine", "create_backend", "raw_from_outputs", "valid_rows"]

log = logging.getLogger("streamseg.tensorrt")

_PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTEngine:
    """A deserialized engine bound to torch CUDA buffers (thin: TensorRT's documented API only).

    Args:
        path: the ``.engine`` file.
        device_index: CUDA device.

    Attributes:
        inputs: ``{name: tensor}`` device input buffers.
        outputs: ``{name: tensor}`` device output buffers.
        rows: D, the number of detection rows.

    Raises:
        EngineError: TensorRT cannot deserialize the file (another TensorRT version, GPU,
            or a plugin that is not registered), or its I/O is not the streamseg graph's.
    """

    def __init__(self, path: str | Path, *, device_index: int = 0) -> None:
        import torch

        from streamseg_engines.builder import import_tensorrt

        trt = import_tensorrt()
        self.path = Path(path)
        self._torch = torch
        self._device = torch.device("cuda", device_index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self._device):
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self._engine is None:
                raise EngineError(
                    f"TensorRT {trt.__version__} could not load {self.path}: it was built by another TensorRT "
                    "version or for another GPU, or it needs a plugin that is not registered; rebuild it with "
                    "`streamseg build-engine --rebuild`"
                )
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineError(f"TensorRT could not create an execution context for {self.path} (GPU memory?)")
            dtypes = {
                trt.float32: torch.float32,
                trt.float16: torch.float16,
                trt.int32: torch.int32,
                trt.int64: torch.int64,
                trt.int8: torch.int8,
                trt.bool: torch.bool,
            }
            self.inputs: dict[str, Any] = {}
            self.outputs: dict[str, Any] = {}
            for i in range(self._engine.num_io_tensors):
                name = self._engine.get_tensor_name(i)
                shape = tuple(self._engine.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise EngineError(f"{self.path}: tensor {name} has a dynamic shape {shape}; streamseg engines are static")
                dtype = dtypes.get(self._engine.get_tensor_dtype(name))
                if dtype is None:
                    raise EngineError(f"{self.path}: tensor {name} has unsupported dtype {self._engine.get_tensor_dtype(name)}")
                buffer = torch.zeros(shape, dtype=dtype, device=self._device)
                self._context.set_tensor_address(name, buffer.data_ptr())
                is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                (self.inputs if is_input else self.outputs)[name] = buffer
            self._stream = torch.cuda.Stream(self._device)
        missing = [n for n in ("images", "image_size", "score_thresh") if n not in self.inputs]
        missing += [n for n in ("boxes", "scores", "labels", "num_detections") if n not in self.outputs]
        if missing:
            raise EngineError(f"{self.path} is not a streamseg engine: no tensor(s) {', '.join(missing)}")
        self.rows = int(self.outputs["boxes"].shape[0])

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the ``images`` input, pixels."""
        shape = self.inputs["images"].shape
        return int(shape[-2]), int(shape[-1])

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy the inputs in, execute on the stream, copy the valid rows out.

        Args:
            feeds: ``{"images": (1, 3, H, W) float32, "image_size": (2,) float32,
                "score_thresh": (1,) float32}``, torch tensors on this engine's GPU (made
                there by :meth:`TensorRTBackend._inputs`) or host numpy arrays.

        Returns:
            Host arrays of the first ``num_detections`` rows of each per-detection output,
            with ``keypoint_heatmaps`` replaced by ``keypoints`` (n, 17, 3) decoded on the GPU.

        Raises:
            BackendError: execution failed.
        """
        from streamseg.postprocess import keypoints_from_heatmaps

        torch = self._torch
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            # The feeds were made on the device's default stream: this stream waits for them.
            self._stream.wait_stream(torch.cuda.default_stream(self._device))
            for name, value in feeds.items():
                buffer = self.inputs[name]
                if not isinstance(value, torch.Tensor):
                    value = torch.from_numpy(np.ascontiguousarray(value))
                buffer.copy_(value.reshape(buffer.shape).to(buffer.dtype), non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError(f"TensorRT execute_async_v3 failed on {self.path}")
            n = valid_rows(self.outputs["num_detections"].to("cpu", non_blocking=False), self.rows)
            rows = {name: self.outputs[name][:n] for name in OUTPUT_ROWS if name in self.outputs}
            # Kept on the GPU for the backend to paste (a view of the output buffer: valid until the next run).
            self.last_mask_probs = rows.get("mask_probs")
            heatmaps = rows.pop("keypoint_heatmaps", None)
            if heatmaps is not None:
                rows["keypoints"] = keypoints_from_heatmaps(heatmaps, rows["boxes"])
            host = {name: t.to("cpu", non_blocking=True) for name, t in rows.items()}
            self._stream.synchronize()
        return {name: t.numpy() for name, t in host.items()}


class TensorRTBackend(GraphBackend):
    """Mask R-CNN / Keypoint R-CNN as TensorRT engines (one per network input size).

    Sizing, preprocessing and postprocessing are :class:`~streamseg.backends.graph_backend.GraphBackend`'s;
    this class finds, builds or loads the engine for a size and runs it.

    Attributes:
        name: ``"tensorrt"``.
        model_name: registry name.
        categories: class names indexed by label.
        random_weights: True when exported with ``weights="random"``.
        device: ``"cuda:N"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        score_thresh, min_size, max_size, detections_per_img: as :class:`~streamseg.backends.torch_backend.TorchBackend`.
    """

    name = "tensorrt"

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        weights: str | None = None,
        device: str = "cuda",
        score_thresh: float = 0.5,
        min_size: int = 800,
        detections_per_img: int = 100,
        allow_download: bool = True,
        precision: str = "fp16",
        size: tuple[int, int] | None = None,
        engine: str | Path | None = None,
        cache_dir: str | Path | None = None,
        calib: str | Path | None = None,
        keypoints: bool = False,
        seed: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Check TensorRT, the GPU and the plugin; load the engine now if ``size`` or ``engine`` is given.

        Args:
            model_name: registry name.
            weights: weights to export (None: the registry file; ``"random"``: seeded random).
            device: ``"cuda"`` or ``"cuda:N"``.
            score_thresh: minimum score (exclusive), in [0, 1]; an engine input, so changing
                it needs no rebuild.
            min_size: shorter side of the network input, pixels (longest capped at
                ``round(min_size * 1333 / 800)``).
            detections_per_img: D, detection rows of the engine.
            allow_download: allow downloading the registry weights for the export.
            precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (INT8 needs ``calib``).
            size: (H, W) network input to build for now; default: from the first frame.
            engine: a prebuilt ``.engine`` file to use (its ``.json`` beside it is checked
                against this GPU and TensorRT); its size is fixed.
            cache_dir: engine cache folder (default ``$STREAMSEG_ENGINES`` or ~/.cache/streamseg/engines).
            calib: INT8 calibration video or image folder.
            keypoints: not supported by this backend (use a keypoint model).
            seed: unused (random weights are seeded by the export).
            progress: where build messages go (default: stderr).

        Raises:
            ConfigError: bad model, threshold, size, precision or device string; ``keypoints``.
            BackendError: TensorRT not installed, no CUDA GPU, or the plugin cannot be registered.
            EngineError: ``engine`` was built for another GPU or TensorRT version, or cannot be loaded.
        """
        if precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        if keypoints:
            raise ConfigError(
                "--keypoints is not supported with --backend tensorrt; run keypointrcnn_resnet50_fpn, "
                "or use --backend torch"
            )
        if precision == "int8" and calib is None and engine is None:
            raise ConfigError("--precision int8 needs calibration frames (calib=VIDEO_OR_FOLDER) or a prebuilt engine")
        super().__init__(
            model_name,
            score_thresh=score_thresh,
            min_size=min_size,
            detections_per_img=detections_per_img,
            weights=weights,
            seed=seed,
            allow_download=allow_download,
        )
        self.precision = precision
        self._calib = calib
        self._progress = progress or (lambda msg: print(f"streamseg: {msg}", file=sys.stderr))
        self._device_index = _cuda_index(device)
        self.device = f"cuda:{self._device_index}"
        self._facts = _check_runtime(self._device_index)
        from streamseg_engines.cache import EngineCache

        self._cache = EngineCache(cache_dir)
        self._engines: dict[tuple[int, int], Any] = {}
        self._mask_probs: Any = None
        self._fixed: tuple[int, int] | None = None
        if engine is not None:
            loaded = self._load_prebuilt(Path(engine))
            self._fixed = loaded.input_size
            self._engines[loaded.input_size] = loaded
        elif size is not None:
            self._engine_for((int(size[0]), int(size[1])))

    def __repr__(self) -> str:
        random = ", RANDOM weights" if self.random_weights else ""
        return (
            f"TensorRTBackend({self.model_name}, {self.precision}, device={self.device}, "
            f"min_size={self.min_size}, score_thresh={self.score_thresh}{random})"
        )

    # -- engines ------------------------------------------------------------------------

    def _load_prebuilt(self, path: Path) -> TensorRTEngine:
        from streamseg_engines.cache import EngineCache

        if not path.is_file():
            raise EngineError(f"engine file {path} does not exist")
        key = EngineCache.read_key(path)
        why = key.runtime_mismatch(
            gpu_name=self._facts.gpu_name,
            compute_capability=self._facts.compute_capability,
            tensorrt_version=self._facts.tensorrt_version,
        )
        if why:
            raise EngineError(f"cannot use {path}: {why}; rebuild it here with `streamseg build-engine`")
        if key.model != self.model_name:
            raise EngineError(f"{path} is an engine of {key.model}, not {self.model_name}")
        return TensorRTEngine(path, device_index=self._device_index)

    def _engine_for(self, size: tuple[int, int]) -> Any:
        """The engine for a network input size: loaded, found in the cache, or built."""
        engine = self._engines.get(size)
        if engine is not None:
            return engine
        if self._fixed is not None:
            raise BackendError(
                f"this frame needs a {size[0]}x{size[1]} network input but the engine given is "
                f"{self._fixed[0]}x{self._fixed[1]}; build one with `streamseg build-engine --size "
                f"{size[0]}x{size[1]}` or leave the engine out"
            )
        from streamseg_engines.build import ensure_engine

        record = ensure_engine(
            self.model_name,
            size=size,
            precision=self.precision,
            calib=self._calib,
            min_size=self.min_size,
            weights=self.weights,
            allow_download=self.allow_download,
            detections_per_img=self.detections_per_img,
            cache=self._cache,
            device_index=self._device_index,
            progress=self._progress,
        )
        if not record.built:
            log.info("using the cached engine %s", record.path)
        engine = TensorRTEngine(record.path, device_index=self._device_index)
        self._engines[size] = engine
        return engine

    def network_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) engine input: the prebuilt engine's size, else torchvision's padded size."""
        return self._fixed or super().network_size(image_size)

    def _inputs(self, image: np.ndarray, size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The engine's inputs, made on the GPU: the uint8 frame is copied there and preprocessed there.

        The arithmetic is :func:`~streamseg.models.preprocess.preprocess_tensor`'s (the
        torch backend's): only the (H, W, 3) uint8 frame crosses PCIe, not the float
        network input (12 bytes per pixel of the padded input at 800 px).

        Returns:
            ``(inputs, (h, w))``: ``images`` (1, 3, H', W') float32, ``image_size`` (2,)
            float32, ``score_thresh`` (1,) float32, torch tensors on the backend's GPU;
            (h, w) pixels.
        """
        return self._device_inputs(image, size, self._torch_device)

    @property
    def _torch_device(self) -> Any:
        """The backend's GPU as a ``torch.device``."""
        import torch

        return torch.device("cuda", self._device_index)

    def _run(self, index: int, size: tuple[int, int], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run the engine for ``size`` (found, built or loaded on first use); valid rows only."""
        engine = self._engine_for(size)
        out = engine.run(inputs)
        self._mask_probs = getattr(engine, "last_mask_probs", None)
        return out

    def _device_mask_probs(self) -> Any:
        """The last run's (n, 28, 28) mask probabilities, still on the GPU: pasted there by ``infer``."""
        return self._mask_probs


def _cuda_index(device: str) -> int:
    """``"cuda"`` -> 0, ``"cuda:1"`` -> 1.

    Raises:
        ConfigError: not a CUDA device string.
        BackendError: ``"cpu"``: TensorRT runs on NVIDIA GPUs only.
    """
    text = str(device).strip().lower()
    if text == "cpu":
        raise BackendError("TensorRT runs on NVIDIA GPUs only; use --device cuda, or --backend torch for the CPU")
    if text == "cuda":
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    raise ConfigError(f"invalid device {device!r} for TensorRT (use cuda or cuda:N)")


def _check_runtime(device_index: int) -> Any:
    """TensorRT, the GPU and the plugin, each with a message saying what is missing.

    Raises:
        BackendError: no TensorRT, no CUDA GPU, or the plugin cannot be registered.
    """
    from streamseg_engines.build import runtime_facts

    try:
        facts = runtime_facts(device_index)
    except EngineError as exc:  # TensorRT missing
        raise BackendError(f"backend tensorrt cannot run here: {exc}") from exc
    from streamseg_plugins.trt_plugin import PluginRegistrationError, register

    try:
        register()
    except PluginRegistrationError as exc:
        raise BackendError(f"backend tensorrt cannot run here: the RoIAlign plugin is not registered: {exc}") from exc
    return facts


def create_backend(config: ModelConfig) -> TensorRTBackend:
    """The ``tensorrt`` backend of ``config`` (the ``streamseg.backends`` entry point; ``auto`` is the first GPU).

    Raises:
        BackendError: TensorRT or a GPU is missing.
        EngineError: the engine cannot be built or loaded.
    """
    from streamseg.backends import graph_backend_kwargs

    return TensorRTBackend(
        device=config.resolved_device(), precision=config.resolved_precision, calib=config.calib,
        **graph_backend_kwargs(config),
    )
