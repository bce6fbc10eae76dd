"""The TensorRT-facing part of engine building: parse the ONNX, set the precision, build.

Thin on purpose: every decision (precision recipe, ONNX preparation, cache key)
is made elsewhere and tested without TensorRT; this module only calls TensorRT's
documented Python API (10.x and 11.x): ``trt.Builder``, ``create_network``
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` when the plan says so),
``trt.OnnxParser.parse_from_file``, ``IBuilderConfig`` flags, memory pool limit and
timing cache, and ``build_serialized_network``. TensorRT is imported when a
function is called, never at import time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from streamseg.errors import EngineError

__all__ = ["build_serialized_engine", "import_tensorrt", "tensorrt_version"]

log = logging.getLogger("streamseg.engines")

_INSTALL_HINT = (
    "install it with `pip install 'streamseg[tensorrt]'` (TensorRT 10.9 or newer, from NVIDIA's index) "
    "on a machine with an NVIDIA GPU"
)


def import_tensorrt() -> Any:
    """Import and return the ``tensorrt`` module.

    Raises:
        EngineError: TensorRT is not installed (or its libraries do not load).
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(f"TensorRT is not installed ({exc}); {_INSTALL_HINT}") from exc
    except OSError as exc:  # the wheel is there but libnvinfer does not load
        raise EngineError(f"TensorRT is installed but its libraries do not load: {exc}") from exc
    return tensorrt


def tensorrt_version() -> str:
    """``tensorrt.__version__`` (e.g. ``"10.13.0.35"``).

    Raises:
        EngineError: TensorRT is not installed.
    """
    return str(import_tensorrt().__version__)


def _register_plugin() -> None:
    from streamseg_plugins.trt_plugin import PluginRegistrationError, register

    try:
        register()
    except PluginRegistrationError as exc:
        raise EngineError(str(exc)) from exc


def _parse_errors(parser: Any) -> list[str]:
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        desc = err.desc() if hasattr(err, "desc") else str(err)
        node = f" (node {err.node()})" if hasattr(err, "node") else ""
        out.append(f"{desc}{node}")
    return out


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    *,
    strongly_typed: bool,
    builder_flags: tuple[str, ...] = (),
    timing_cache: str | os.PathLike[str] | None = None,
    workspace_bytes: int | None = None,
    verbose: bool = False,
    device_index: int = 0,
) -> bytes:
    """Parse an ONNX file and build a serialized engine, on CUDA device ``device_index``.

    Registers the ``streamseg::MultiLevelRoIAlign`` plugin first (its ONNX node
    must carry ``plugin_namespace`` and ``aot``: see
    :func:`streamseg_engines.onnx_prep.prepare_plugin_nodes`).

    Args:
        onnx_path: the prepared ONNX file (external data beside it).
        strongly_typed: create a strongly typed network (required on 11.x, where
            the flag is accepted and ignored).
        builder_flags: ``trt.BuilderFlag`` member names to set (10.x: "FP16", "INT8").
        timing_cache: file of the builder timing cache: read if present (so kernels
            timed in an earlier build are not timed again) and rewritten after the build.
        workspace_bytes: workspace memory pool limit, default TensorRT's (the GPU's memory).
        verbose: TensorRT INFO logging instead of WARNING.
        device_index: the GPU to build for. The build runs with it as torch's current
            device, so TensorRT's builder and the plugin's ``@aot_impl`` (which compiles the
            PTX for the current device's architecture) both target it.

    Returns:
        The serialized engine.

    Raises:
        EngineError: TensorRT missing, the plugin not registered, a parse error (each
            parser error listed), an unknown builder flag, or a failed build.
    """
    import torch

    with torch.cuda.device(device_index):
        return _build(onnx_path, strongly_typed, builder_flags, timing_cache, workspace_bytes, verbose)


def _build(
    onnx_path: str | os.PathLike[str],
    strongly_typed: bool,
    builder_flags: tuple[str, ...],
    timing_cache: str | os.PathLike[str] | None,
    workspace_bytes: int | None,
    verbose: bool,
) -> bytes:
    """:func:`build_serialized_engine` on the current CUDA device."""
    trt = import_tensorrt()
    _register_plugin()
    logger = trt.Logger(trt.Logger.INFO if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = _parse_errors(parser)
        text = "; ".join(errors) or "no error text"
        if "MultiLevelRoIAlign" in text:
            text += (
                " -- the streamseg::MultiLevelRoIAlign plugin was not found: it is registered by "
                "streamseg_plugins.trt_plugin.register() (TensorRT 10.9+ with tensorrt.plugin), and the ONNX "
                "node needs the attributes plugin_namespace='streamseg' and aot=1"
            )
        raise EngineError(f"TensorRT could not parse {onnx_path}: {text}")
    config = builder.create_builder_config()
    for name in builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise EngineError(f"this TensorRT {trt.__version__} has no BuilderFlag.{name}")
        config.set_flag(flag)
    if workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("TensorRT rejected the timing cache %s; timing from scratch", cache_path)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path} (run with -v for its log)")
    if cache_path is not None:
        from streamseg_engines.cache import _atomic_write

        try:
            _atomic_write(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
        except OSError as exc:
            log.warning("could not save the timing cache %s: %s", cache_path, exc)
    return bytes(memoryview(serialized))
