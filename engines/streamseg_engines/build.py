"""Build or reuse the TensorRT engine of a model: :func:`ensure_engine`.

Steps (each one a function here, tested without TensorRT where it can be):

1. :func:`runtime_facts`: the GPU (name, compute capability) and TensorRT version.
2. :func:`~streamseg_engines.precision.plan_precision`: the precision recipe for it.
3. The trt-flavour ONNX (``streamseg.export.cached_onnx``), its sha256, and the
   :class:`~streamseg_engines.cache.EngineKey`.
4. Cache hit: return it. Miss: :func:`prepare_onnx` (plugin attributes, FP16 cast or
   INT8 Q/DQ), :func:`~streamseg_engines.builder.build_serialized_engine` with the
   shared timing cache, and store the engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamseg.calibration import calibration_source_digest
from streamseg.errors import BackendError, ConfigError, EngineError
from streamseg.models.graph import IMAGE_MEAN, IMAGE_STD
from streamseg.models.weights import file_sha256
from streamseg_engines.cache import EngineCache, EngineKey, EngineRecord, format_size
from streamseg_engines.precision import PrecisionPlan, plan_precision

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "RuntimeFacts",
    "engine_key",
    "ensure_engine",
    "plugin_sha256",
    "prepare_onnx",
    "runtime_facts",
]

log = logging.getLogger("streamseg.engines")

_PLUGIN_MODULES = (
    "streamseg_plugins.trt_plugin",
    "streamseg_plugins.trt_node",
    "streamseg_plugins.trt_aot",
    "streamseg_plugins.roialign_triton",
)


@dataclasses.dataclass(frozen=True)
class RuntimeFacts:
    """The GPU and TensorRT an engine would be built for or run on.

    Attributes:
        gpu_name: ``torch.cuda.get_device_name(index)``.
        compute_capability: (major, minor).
        tensorrt_version: ``tensorrt.__version__``.
        device_index: CUDA device index.
    """

    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    device_index: int = 0


def runtime_facts(device_index: int = 0) -> RuntimeFacts:
    """Read the GPU's name and compute capability (torch) and TensorRT's version.

    Raises:
        BackendError: torch sees no CUDA GPU, or not that many.
        EngineError: TensorRT is not installed.
    """
    import torch

    if not torch.cuda.is_available():
        raise BackendError(
            "TensorRT needs an NVIDIA GPU, but torch.cuda.is_available() is False "
            "(no GPU or driver visible); use --backend torch or --backend onnxruntime"
        )
    if device_index >= torch.cuda.device_count():
        raise BackendError(f"cuda:{device_index} requested but torch sees {torch.cuda.device_count()} GPU(s)")
    from streamseg_engines.builder import tensorrt_version

    version = tensorrt_version()
    return RuntimeFacts(
        gpu_name=torch.cuda.get_device_name(device_index),
        compute_capability=tuple(torch.cuda.get_device_capability(device_index)),
        tensorrt_version=version,
        device_index=device_index,
    )


def plugin_sha256() -> str:
    """sha256 over the plugin's source files (its kernel is compiled into every engine).

    Reads the files without importing them; a missing module hashes as its name only.
    """
    digest = hashlib.sha256()
    for name in _PLUGIN_MODULES:
        digest.update(name.encode())
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()


def engine_key(
    *,
    model: str,
    size: tuple[int, int],
    precision: str,
    onnx_sha256: str,
    facts: RuntimeFacts,
    calib_sha256: str = "",
) -> EngineKey:
    """The :class:`EngineKey` of a build on the machine described by ``facts``."""
    return EngineKey(
        model=model,
        size=size,
        precision=precision,
        onnx_sha256=onnx_sha256,
        gpu_name=facts.gpu_name,
        compute_capability=facts.compute_capability,
        tensorrt_version=facts.tensorrt_version,
        plugin_sha256=plugin_sha256(),
        calib_sha256=calib_sha256 if precision == "int8" else "",
    )


def check_onnx_metadata(onnx_path: Path, *, model: str, size: tuple[int, int]) -> dict[str, str]:
    """Read the ONNX metadata and check it is the trt flavour of ``model`` at ``size``.

    Raises:
        EngineError: another flavour, model or size.
    """
    import onnx

    from streamseg_engines.onnx_prep import metadata

    meta = metadata(onnx.load(str(onnx_path), load_external_data=False))
    expect = {"streamseg.flavour": "trt", "streamseg.model": model, "streamseg.size": format_size(size)}
    wrong = {k: meta.get(k) for k, v in expect.items() if k in meta and meta[k] != v}
    if wrong:
        raise EngineError(f"{onnx_path} does not match the engine asked for: expected {expect}, file says {wrong}")
    return meta


def prepare_onnx(
    onnx_path: Path,
    plan: PrecisionPlan,
    out_path: Path,
    *,
    quantized_ort: Path | None = None,
) -> dict[str, Any]:
    """Write the ONNX TensorRT will parse: plugin attributes, then the precision recipe.

    Args:
        onnx_path: the trt-flavour ONNX.
        plan: the precision plan.
        out_path: where to write (external data, if any, is loaded and re-embedded).
        quantized_ort: for INT8, the ModelOpt-quantized ort-flavour ONNX whose Q/DQ
            nodes are transplanted (:func:`~streamseg_engines.onnx_prep.transplant_qdq`).

    Returns:
        Facts for the cache metadata (plugin nodes, cast or transplant counts).

    Raises:
        EngineError: no plugin node (not the trt flavour), or INT8 without ``quantized_ort``.
    """
    import onnx

    from streamseg_engines import onnx_prep

    model = onnx.load(str(onnx_path))
    info: dict[str, Any] = {"plugin_nodes": onnx_prep.prepare_plugin_nodes(model, aot=True)}
    if info["plugin_nodes"] == 0:
        raise EngineError(f"{onnx_path} has no streamseg::MultiLevelRoIAlign node: is it the trt flavour?")
    if plan.quantize_int8:
        if quantized_ort is None:
            raise EngineError("INT8 needs the quantized ort-flavour ONNX to take the Q/DQ nodes from")
        result = onnx_prep.transplant_qdq(onnx.load(str(quantized_ort)), model)
        if result["missing"]:
            log.warning("%d quantized nodes have no twin in the trt graph: %s", len(result["missing"]),
                        ", ".join(result["missing"][:5]))
        info["qdq"] = {"nodes": result["nodes"], "chains": result["chains"], "missing": len(result["missing"])}
    if plan.cast_fp16:
        info["fp16"] = onnx_prep.cast_to_fp16(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    large = model.ByteSize() > 1_900_000_000
    onnx.save(model, str(out_path), save_as_external_data=large, location=out_path.name + ".data" if large else None)
    return info


def _quantize_ort(ort_onnx: Path, arrays: dict[str, Any], out_path: Path) -> None:
    """ModelOpt post-training INT8 quantization of the ort-flavour graph (ONNX Runtime calibration)."""
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        raise EngineError(
            f"INT8 needs NVIDIA ModelOpt for calibration ({exc}); install it with "
            "`pip install 'nvidia-modelopt[onnx]'`"
        ) from exc
    quantize(
        onnx_path=str(ort_onnx),
        quantize_mode="int8",
        calibration_data=arrays,
        calibration_method="entropy",
        calibration_eps=["cuda:0", "cpu"],
        op_types_to_quantize=["Conv", "ConvTranspose", "Gemm", "MatMul"],
        # ModelOpt defaults to fp16 here, giving fp16 Q/DQ scales in front of the trt graph's fp32
        # Conv/Gemm nodes: mixed types a strongly typed TensorRT network rejects.
        high_precision_dtype="fp32",
        output_path=str(out_path),
    )
    if not out_path.is_file():
        raise EngineError(f"ModelOpt did not write {out_path}")


def _source_onnx(model: str, size: tuple[int, int], flavour: str, **kwargs: Any) -> Path:
    try:
        from streamseg.export import cached_onnx
    except ImportError as exc:
        raise EngineError(f"streamseg.export is not available ({exc}): cannot export the {flavour} ONNX") from exc
    return Path(cached_onnx(model, size=size, flavour=flavour, **kwargs))


def ensure_engine(
    model: str,
    *,
    size: tuple[int, int],
    precision: str = "fp16",
    calib: str | Path | None = None,
    calib_frames: int = 64,
    min_size: int = 800,
    weights: str | None = None,
    allow_download: bool = True,
    detections_per_img: int = 100,
    cache: EngineCache | None = None,
    device_index: int = 0,
    rebuild: bool = False,
    onnx_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> EngineRecord:
    """Return the engine of ``model`` at ``size`` and ``precision``, building it on a cache miss.

    Args:
        model: registry name.
        size: (H, W) network input, multiples of 32.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        calib: INT8 only: a video file or image folder whose frames calibrate.
        calib_frames: INT8 only: how many frames to calibrate on.
        min_size: INT8 only: shorter side the calibration frames are resized to (as at run time).
        weights: weights for the export (see ``streamseg.export``).
        allow_download: allow the export to download registry weights.
        detections_per_img: D, the static number of detection rows.
        cache: the engine cache (default ``EngineCache()``).
        device_index: CUDA device.
        rebuild: build even on a cache hit.
        onnx_path: use this trt-flavour ONNX instead of exporting.
        progress: called with one-line messages (e.g. ``print`` to stderr); None is silent.
        verbose: TensorRT INFO logging.

    Returns:
        The :class:`EngineRecord` (``built`` tells whether this call built it).

    Raises:
        ConfigError: bad precision or size, INT8 without ``calib``.
        BackendError: no CUDA GPU.
        EngineError: no TensorRT, no plugin, export, parse or build failure.
        WeightsError: the export's weights are missing.
    """
    from streamseg.models.registry import get_model_spec

    spec = get_model_spec(model)
    size = (int(size[0]), int(size[1]))
    if size[0] <= 0 or size[1] <= 0 or size[0] % 32 or size[1] % 32:
        raise ConfigError(f"size sides must be positive multiples of 32 pixels, got {format_size(size)}")
    if precision == "int8" and calib is None:
        raise ConfigError("--precision int8 needs --calib VIDEO_OR_FOLDER: frames to calibrate the INT8 ranges on")
    say = progress or (lambda _msg: None)
    facts = runtime_facts(device_index)
    plan = plan_precision(precision, facts.tensorrt_version)
    export_kwargs = {"weights": weights, "allow_download": allow_download, "detections_per_img": detections_per_img}
    onnx_file = Path(onnx_path) if onnx_path is not None else _source_onnx(spec.name, size, "trt", **export_kwargs)
    if not onnx_file.is_file():
        raise EngineError(f"ONNX file {onnx_file} does not exist")
    check_onnx_metadata(onnx_file, model=spec.name, size=size)
    calib_sha = calibration_source_digest(calib, calib_frames) if precision == "int8" else ""
    key = engine_key(
        model=spec.name, size=size, precision=precision, onnx_sha256=file_sha256(onnx_file), facts=facts,
        calib_sha256=calib_sha,
    )
    cache = cache if cache is not None else EngineCache()

    def build() -> tuple[bytes, dict[str, Any]]:
        from streamseg_engines.builder import build_serialized_engine

        say(
            f"building the TensorRT engine {key.stem()} for {facts.gpu_name} ({plan.describe()}); "
            "this takes minutes, once: later runs reuse it from " + str(cache.root)
        )
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="streamseg-engine-") as tmp:
            quantized = None
            if plan.quantize_int8:
                quantized = _int8_ort(spec.name, size, calib, calib_frames, min_size, Path(tmp), say, export_kwargs)
            prepared = Path(tmp) / "prepared.onnx"
            info = prepare_onnx(onnx_file, plan, prepared, quantized_ort=quantized)
            engine = build_serialized_engine(
                prepared,
                strongly_typed=plan.strongly_typed,
                builder_flags=plan.builder_flags,
                timing_cache=cache.timing_cache_path(
                    gpu_name=facts.gpu_name,
                    compute_capability=facts.compute_capability,
                    tensorrt_version=facts.tensorrt_version,
                ),
                verbose=verbose,
                device_index=facts.device_index,
            )
        seconds = time.perf_counter() - t0
        say(f"built the TensorRT engine in {seconds:.0f} s")
        info.update({"build_seconds": round(seconds, 1), "onnx": str(onnx_file), "plan": plan.describe()})
        return engine, info

    return cache.get_or_build(key, build, rebuild=rebuild)


def _int8_ort(
    model: str,
    size: tuple[int, int],
    calib: str | Path,
    count: int,
    min_size: int,
    tmp: Path,
    say: Callable[[str], None],
    export_kwargs: dict[str, Any],
) -> Path:
    """Calibrate and quantize the ort flavour with ModelOpt; return the quantized ONNX."""
    from streamseg.backends.torch_backend import max_size_for
    from streamseg.calibration import sample_frames
    from streamseg.models.graph import preprocess
    from streamseg_engines.calib import calibration_arrays

    frames = sample_frames(calib, count)
    say(f"calibrating INT8 on {len(frames)} frames of {calib}")

    def prep(image: Any) -> Any:
        return preprocess(
            image, size=size, min_size=min_size, max_size=max_size_for(min_size),
            image_mean=IMAGE_MEAN, image_std=IMAGE_STD,
        )

    arrays = calibration_arrays(frames, prep)
    ort_onnx = _source_onnx(model, size, "ort", **export_kwargs)
    out = tmp / "quantized-ort.onnx"
    _quantize_ort(ort_onnx, arrays, out)
    return out
